//! Applying stream events in order: ids only move forward, duplicates are dropped.

/// Remembers the last applied event id of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventGate {
    last_id: Option<u64>,
}

impl EventGate {
    pub fn last_id(&self) -> Option<u64> {
        self.last_id
    }

    /// Whether to apply an event. The first event of a connection is a snapshot of the whole
    /// state and always applies (it is also how a server whose ids restarted is recovered);
    /// later ones apply only with a higher id than any applied before.
    pub fn accept(&mut self, id: Option<u64>, snapshot: bool) -> bool {
        match id {
            Some(id) if snapshot || self.last_id.is_none_or(|last| id > last) => {
                self.last_id = Some(id);
                true
            }
            Some(_) => false,
            // An event without an id cannot be ordered; take it only as a snapshot.
            None => snapshot,
        }
    }
}

/// The id of an SSE event, if it is a number.
pub fn parse_id(raw: &str) -> Option<u64> {
    raw.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_stale_events_are_dropped() {
        let mut g = EventGate::default();
        assert!(g.accept(Some(5), true));
        assert!(!g.accept(Some(5), false), "duplicate");
        assert!(!g.accept(Some(4), false), "late");
        assert!(g.accept(Some(7), false));
        assert_eq!(g.last_id(), Some(7));
        assert!(g.accept(Some(7), true), "a reconnect's snapshot applies");
        assert!(
            g.accept(Some(1), true),
            "a restarted id sequence recovers via snapshot"
        );
        assert!(!g.accept(None, false));
        assert_eq!(parse_id(" 12 "), Some(12));
        assert_eq!(parse_id("x"), None);
    }
}
