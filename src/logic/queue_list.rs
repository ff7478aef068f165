//! The specialist's copy of a queue, kept in order from the queue stream's events.

use callqueue_protocol::{QueueEvent, Reservation};

/// Applies one queue event; answers whether the list changed. Positions are the list order.
pub fn apply(list: &mut Vec<Reservation>, event: QueueEvent) -> bool {
    match event {
        QueueEvent::Snapshot { reservations, .. } => {
            *list = reservations;
            true
        }
        QueueEvent::Added { reservation, .. } => {
            if list
                .iter()
                .any(|r| r.reservation_sid == reservation.reservation_sid)
            {
                return false;
            }
            list.push(reservation);
            true
        }
        QueueEvent::Removed { reservation, .. } => remove(list, &reservation.reservation_sid),
    }
}

/// Removes one reservation (as accept does at once, before the server confirms).
pub fn remove(list: &mut Vec<Reservation>, sid: &str) -> bool {
    let before = list.len();
    list.retain(|r| r.reservation_sid != sid);
    list.len() != before
}

/// "2 min", "45 s": how long someone has waited.
pub fn waited_text(waited_ms: i64) -> String {
    let secs = waited_ms.max(0) / 1000;
    let n = |v: i64| crate::i18n::number(v);
    if secs < 60 {
        tf("duration.seconds", &[("n", &n(secs))])
    } else if secs < 3600 {
        tf("duration.minutes", &[("n", &n(secs / 60))])
    } else {
        tf(
            "duration.hours",
            &[("h", &n(secs / 3600)), ("m", &n((secs / 60) % 60))],
        )
    }
}

use crate::i18n::tf;

#[cfg(test)]
mod tests {
    use super::*;
    use callqueue_protocol::ReservationStatus;
    use chrono::Utc;

    fn r(sid: &str) -> Reservation {
        let now = Utc::now();
        Reservation {
            reservation_sid: sid.into(),
            group_name: "default".into(),
            reservation_status: ReservationStatus::Queued,
            queue_position: None,
            estimated_wait_until: None,
            estimated_wait_earliest: None,
            estimated_wait_latest: None,
            created_at: now,
            updated_at: now,
            call_id: None,
            call_type: None,
            join_deadline: None,
            join_extended: false,
            customer_name: None,
            reason: None,
            specialist_name: None,
            notice: None,
            message: None,
            server_time: now,
        }
    }

    #[test]
    fn events_keep_the_list_in_order() {
        let t = Utc::now();
        let mut list = Vec::new();
        assert!(apply(
            &mut list,
            QueueEvent::Snapshot {
                group_name: "default".into(),
                reservations: vec![r("a"), r("b")],
                server_time: t
            }
        ));
        assert!(apply(
            &mut list,
            QueueEvent::Added {
                reservation: r("c"),
                server_time: t
            }
        ));
        assert!(
            !apply(
                &mut list,
                QueueEvent::Added {
                    reservation: r("c"),
                    server_time: t
                }
            ),
            "duplicate"
        );
        assert!(apply(
            &mut list,
            QueueEvent::Removed {
                reservation: r("a"),
                server_time: t
            }
        ));
        let sids: Vec<_> = list.iter().map(|r| r.reservation_sid.as_str()).collect();
        assert_eq!(sids, ["b", "c"]);
        assert!(!apply(
            &mut list,
            QueueEvent::Removed {
                reservation: r("zz"),
                server_time: t
            }
        ));
    }

    #[test]
    fn waited_reads_well() {
        assert_eq!(waited_text(-5), "0 s");
        assert_eq!(waited_text(45_000), "45 s");
        assert_eq!(waited_text(150_000), "2 min");
        assert_eq!(waited_text(3_900_000), "1 h 5 min");
    }
}
