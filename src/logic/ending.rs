//! How a call's end is told to each member: one sentence per end reason and point of view.

use callqueue_protocol::{CallEndReason, Role};

use crate::i18n::t;

/// What the call page says when the call has ended, for the member in `own_role` (`None`:
/// not known yet, said neutrally).
pub fn end_sentence(reason: CallEndReason, own_role: Option<Role>) -> &'static str {
    use CallEndReason::*;
    let specialist = own_role == Some(Role::Specialist);
    let customer = own_role == Some(Role::Patient);
    t(match reason {
        TimeUp => "ending.time_up",
        SpecialistLeft if specialist => "ending.you_ended",
        SpecialistLeft => "ending.specialist_ended",
        CustomerLeft if customer => "ending.you_left",
        CustomerLeft => "ending.customer_left",
        NotJoined if customer => "ending.you_not_joined",
        NotJoined => "ending.customer_not_joined",
        Canceled if customer => "ending.you_canceled",
        Canceled => "ending.customer_canceled",
    })
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
