//! Where a reservation's status sends the customer, and never backwards.

use callqueue_protocol::ReservationStatus;

/// The route a status belongs on: queued and matched → hold (where a matched customer is told
/// it is their turn and chooses when to join), expired → rejoin, canceled → home.
pub fn route_for(status: ReservationStatus, sid: &str) -> String {
    match status {
        ReservationStatus::Queued | ReservationStatus::Matched => format!("/hold/r/{sid}"),
        ReservationStatus::Expired => format!("/rejoin/r/{sid}"),
        ReservationStatus::Canceled => "/".to_string(),
    }
}

/// Follows one reservation's status as updates arrive in any order, repeated or late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusTracker {
    current: ReservationStatus,
}

impl Default for StatusTracker {
    fn default() -> Self {
        Self {
            current: ReservationStatus::Queued,
        }
    }
}

impl StatusTracker {
    pub fn new(current: ReservationStatus) -> Self {
        Self { current }
    }

    pub fn current(&self) -> ReservationStatus {
        self.current
    }

    /// Takes an update; answers the new status only when it moves the reservation forward.
    pub fn advance(&mut self, status: ReservationStatus) -> Option<ReservationStatus> {
        if self.current.can_advance_to(status) {
            self.current = status;
            Some(status)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReservationStatus::*;

    #[test]
    fn each_status_has_its_route() {
        assert_eq!(route_for(Queued, "r1"), "/hold/r/r1");
        assert_eq!(route_for(Matched, "r1"), "/hold/r/r1");
        assert_eq!(route_for(Expired, "r1"), "/rejoin/r/r1");
        assert_eq!(route_for(Canceled, "r1"), "/");
    }

    #[test]
    fn repeated_late_and_out_of_order_statuses_do_not_move_back() {
        let mut t = StatusTracker::default();
        assert_eq!(t.advance(Queued), None, "repeated");
        assert_eq!(t.advance(Matched), Some(Matched));
        assert_eq!(t.advance(Matched), None, "repeated");
        assert_eq!(t.advance(Queued), None, "late");
        assert_eq!(t.advance(Expired), Some(Expired));
        assert_eq!(t.advance(Canceled), None, "after a final status");
        assert_eq!(t.current(), Expired);
    }
}
