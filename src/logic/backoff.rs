//! When to try again: the reconnect backoff and the polling interval.

/// Exponential backoff with jitter, capped: 1 s, 2 s, 4 s, ... up to 30 s, each scaled by a
/// random factor in [0.5, 1.0) so many browsers dropped together do not return together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub attempt: u32,
    pub base_ms: u32,
    pub cap_ms: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempt: 0,
            base_ms: 1_000,
            cap_ms: 30_000,
        }
    }
}

impl Backoff {
    /// The delay before the next attempt; `random` is uniform in [0, 1).
    pub fn next_delay_ms(&mut self, random: f64) -> u32 {
        let exp = self.base_ms.saturating_mul(1u32 << self.attempt.min(16));
        let ceiling = exp.min(self.cap_ms);
        self.attempt = self.attempt.saturating_add(1);
        let factor = 0.5 + 0.5 * random.clamp(0.0, 1.0);
        ((ceiling as f64) * factor).round() as u32
    }

    /// Back to the first step after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Consecutive stream failures after which the page also polls.
pub const FAILURES_BEFORE_POLLING: u32 = 3;

/// The polling interval: 2 s, doubling to 30 s while nothing changes, back to 2 s on a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollInterval {
    pub current_ms: u32,
}

impl PollInterval {
    pub const MIN_MS: u32 = 2_000;
    pub const MAX_MS: u32 = 30_000;

    /// The interval after a poll that did (or did not) see a change.
    pub fn after_poll(&mut self, changed: bool) -> u32 {
        self.current_ms = if changed {
            Self::MIN_MS
        } else {
            (self.current_ms * 2).min(Self::MAX_MS)
        };
        self.current_ms
    }
}

impl Default for PollInterval {
    fn default() -> Self {
        Self {
            current_ms: Self::MIN_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::default();
        let top: Vec<u32> = (0..7).map(|_| b.next_delay_ms(0.999_999)).collect();
        assert_eq!(top, vec![1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        let mut b = Backoff::default();
        let low: Vec<u32> = (0..3).map(|_| b.next_delay_ms(0.0)).collect();
        assert_eq!(low, vec![500, 1000, 2000]);
        b.reset();
        assert_eq!(b.next_delay_ms(0.0), 500);
        let mut b = Backoff::default();
        for _ in 0..100 {
            assert!(b.next_delay_ms(0.5) <= 30_000);
        }
    }

    #[test]
    fn polling_slows_while_nothing_changes() {
        let mut p = PollInterval::default();
        let seq: Vec<u32> = (0..6).map(|_| p.after_poll(false)).collect();
        assert_eq!(seq, vec![4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(p.after_poll(true), 2000);
    }
}
