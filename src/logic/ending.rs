//! How a call's end is told to each member: one sentence per end reason and point of view.

use callqueue_protocol::{CallEndReason, Role};

/// What the call page says when the call has ended, for the member in `own_role` (`None`:
/// not known yet, said neutrally).
pub fn end_sentence(reason: CallEndReason, own_role: Option<Role>) -> &'static str {
    use CallEndReason::*;
    let specialist = own_role == Some(Role::Specialist);
    let customer = own_role == Some(Role::Patient);
    match reason {
        TimeUp => "The time has run out",
        SpecialistLeft if specialist => "You ended the call",
        SpecialistLeft if customer => "The specialist ended the call",
        SpecialistLeft => "The specialist ended the call",
        CustomerLeft if customer => "You left the call",
        CustomerLeft => "The customer left the call",
        NotJoined if customer => "You did not join in time, so the call was released",
        NotJoined => "The customer did not join in time",
        Canceled if customer => "You left the queue before the call started",
        Canceled => "The customer left the queue before the call started",
    }
}

/// Whether the page shows the time-up alert: the server says the time ran out, or the local
/// count reached zero while the server has not (yet) said the call ended for another reason.
pub fn is_time_up(reason: Option<CallEndReason>, remaining_ms: Option<i64>) -> bool {
    match reason {
        Some(reason) => reason == CallEndReason::TimeUp,
        None => remaining_ms.is_some_and(|ms| ms <= 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_sentence_for_each_side() {
        for role in [Some(Role::Specialist), Some(Role::Patient)] {
            let sentences: Vec<_> = CallEndReason::ALL
                .into_iter()
                .map(|r| end_sentence(r, role))
                .collect();
            for (i, s) in sentences.iter().enumerate() {
                assert!(!sentences[i + 1..].contains(s), "{s:?} is said twice");
            }
        }
        assert_eq!(
            end_sentence(CallEndReason::SpecialistLeft, Some(Role::Patient)),
            "The specialist ended the call"
        );
        assert_eq!(
            end_sentence(CallEndReason::CustomerLeft, Some(Role::Specialist)),
            "The customer left the call"
        );
    }

    #[test]
    fn an_early_end_is_never_time_up() {
        // The page counts an ended call as 0 left; the reason decides what it says.
        assert!(!is_time_up(Some(CallEndReason::SpecialistLeft), Some(0)));
        assert!(is_time_up(Some(CallEndReason::TimeUp), Some(0)));
        assert!(is_time_up(None, Some(0)));
        assert!(!is_time_up(None, Some(1)));
        assert!(!is_time_up(None, None));
    }
}
