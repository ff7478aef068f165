//! The rules of perfect negotiation (the W3C / MDN pattern), apart from the browser's
//! `RTCPeerConnection`: which peer gives way when both offer at once, which messages are stale,
//! and what to do with ICE candidates that arrive before the description they belong to.
//!
//! The customer is the polite peer: on a collision it rolls its own offer back and takes the
//! specialist's. The specialist is impolite: it ignores the customer's colliding offer (and the
//! candidates that belong to it). Every page load is a new session; messages from any session
//! but the current peer's are dropped.

use callqueue_protocol::signal::{IceCandidate, SdpKind};

/// What to do with a session description from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDescription {
    /// Not from the current peer, or a colliding offer the impolite peer ignores.
    Ignore,
    /// Set it as the remote description; then, for an offer, answer it.
    Apply { answer: bool },
}

/// What to do with an ICE candidate from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnCandidate {
    Add(IceCandidate),
    /// Kept until the remote description it belongs to is set.
    Held,
    /// Stale, or part of an offer we ignored.
    Drop,
}

/// One peer connection's negotiation state.
#[derive(Debug, Clone)]
pub struct Negotiation {
    polite: bool,
    peer: Option<String>,
    making_offer: bool,
    ignore_offer: bool,
    has_remote_description: bool,
    held: Vec<IceCandidate>,
}

/// Most candidates held for a description that has not come (a peer sends a few dozen).
const MAX_HELD: usize = 200;

impl Negotiation {
    pub fn new(polite: bool) -> Self {
        Self {
            polite,
            peer: None,
            making_offer: false,
            ignore_offer: false,
            has_remote_description: false,
            held: Vec::new(),
        }
    }

    pub fn polite(&self) -> bool {
        self.polite
    }

    /// The peer session this negotiation is with.
    pub fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }

    /// A peer session is there: answers whether it is a new one (the page then starts over with
    /// a fresh connection, and this state is reset for it).
    pub fn peer_joined(&mut self, session: &str) -> bool {
        if self.peer.as_deref() == Some(session) {
            return false;
        }
        *self = Self::new(self.polite);
        self.peer = Some(session.to_string());
        true
    }

    /// The peer's session is gone.
    pub fn peer_left(&mut self, session: &str) -> bool {
        if self.peer.as_deref() != Some(session) {
            return false;
        }
        *self = Self::new(self.polite);
        true
    }

    /// Whether a message from `session` is for this negotiation.
    pub fn is_current(&self, session: &str) -> bool {
        self.peer.as_deref() == Some(session)
    }

    /// We are creating and sending an offer (`negotiationneeded`).
    pub fn offering(&mut self, making: bool) {
        self.making_offer = making;
    }

    /// A description from `from`; `stable` is whether our signalling state is `stable`.
    pub fn on_description(&mut self, from: &str, kind: SdpKind, stable: bool) -> OnDescription {
        if !self.is_current(from) {
            return OnDescription::Ignore;
        }
        let offer = kind == SdpKind::Offer;
        let collision = offer && (self.making_offer || !stable);
        self.ignore_offer = !self.polite && collision;
        if self.ignore_offer {
            return OnDescription::Ignore;
        }
        OnDescription::Apply { answer: offer }
    }

    /// The remote description was set: the candidates held for it, to add now.
    pub fn remote_description_set(&mut self) -> Vec<IceCandidate> {
        self.has_remote_description = true;
        std::mem::take(&mut self.held)
    }

    /// A candidate from `from`.
    pub fn on_candidate(&mut self, from: &str, candidate: IceCandidate) -> OnCandidate {
        if !self.is_current(from) || self.ignore_offer {
            return OnCandidate::Drop;
        }
        if !self.has_remote_description {
            if self.held.len() < MAX_HELD {
                self.held.push(candidate);
            }
            return OnCandidate::Held;
        }
        OnCandidate::Add(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(n: u8) -> IceCandidate {
        IceCandidate {
            candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {n} typ host"),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
        }
    }

    #[test]
    fn glare_the_polite_peer_gives_way_the_impolite_one_ignores() {
        let mut customer = Negotiation::new(true);
        let mut specialist = Negotiation::new(false);
        assert!(customer.peer_joined("doc"));
        assert!(specialist.peer_joined("cust"));
        // Both are making offers when the other's arrives.
        customer.offering(true);
        specialist.offering(true);
        assert_eq!(
            specialist.on_description("cust", SdpKind::Offer, false),
            OnDescription::Ignore,
            "impolite: its own offer wins"
        );
        assert_eq!(
            customer.on_description("doc", SdpKind::Offer, false),
            OnDescription::Apply { answer: true },
            "polite: rolls back (implicitly) and answers"
        );
        // The customer's candidates for its ignored offer are dropped by the specialist.
        assert_eq!(
            specialist.on_candidate("cust", candidate(1)),
            OnCandidate::Drop
        );
        // The answer to the specialist's offer is applied (answers never collide).
        specialist.offering(false);
        assert_eq!(
            specialist.on_description("cust", SdpKind::Answer, false),
            OnDescription::Apply { answer: false }
        );
    }

    #[test]
    fn an_offer_in_a_stable_state_is_answered_by_either() {
        for polite in [true, false] {
            let mut n = Negotiation::new(polite);
            n.peer_joined("p");
            assert_eq!(
                n.on_description("p", SdpKind::Offer, true),
                OnDescription::Apply { answer: true }
            );
        }
    }

    #[test]
    fn stale_sessions_are_ignored_and_a_new_one_starts_over() {
        let mut n = Negotiation::new(true);
        assert_eq!(
            n.on_description("nobody", SdpKind::Offer, true),
            OnDescription::Ignore
        );
        n.peer_joined("old");
        n.remote_description_set();
        assert!(
            !n.peer_joined("old"),
            "the same session again is nothing new"
        );
        assert!(n.peer_joined("new"), "a reload is a new peer");
        assert_eq!(
            n.on_description("old", SdpKind::Answer, true),
            OnDescription::Ignore
        );
        assert_eq!(n.on_candidate("old", candidate(1)), OnCandidate::Drop);
        assert_eq!(
            n.on_candidate("new", candidate(2)),
            OnCandidate::Held,
            "a fresh start has no remote description yet"
        );
        assert!(!n.peer_left("old"));
        assert!(n.peer_left("new"));
        assert_eq!(n.peer(), None);
    }

    #[test]
    fn candidates_before_the_description_wait_for_it() {
        let mut n = Negotiation::new(false);
        n.peer_joined("p");
        assert_eq!(n.on_candidate("p", candidate(1)), OnCandidate::Held);
        assert_eq!(n.on_candidate("p", candidate(2)), OnCandidate::Held);
        assert_eq!(
            n.on_description("p", SdpKind::Offer, true),
            OnDescription::Apply { answer: true }
        );
        assert_eq!(n.remote_description_set(), vec![candidate(1), candidate(2)]);
        assert_eq!(
            n.on_candidate("p", candidate(3)),
            OnCandidate::Add(candidate(3))
        );
        // Held candidates are bounded.
        let mut n = Negotiation::new(false);
        n.peer_joined("p");
        for i in 0..255 {
            n.on_candidate("p", candidate(i));
        }
        assert_eq!(n.remote_description_set().len(), MAX_HELD);
    }
}
