//! How good the call's connection is, from what `getStats()` reports: round-trip time, packet
//! loss and the frame rate of the video received.

/// What the page shows beside the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    Good,
    Weak,
    Poor,
}

impl Quality {
    /// The catalogue key of what the badge says.
    pub fn label(self) -> &'static str {
        match self {
            Self::Good => "quality.good",
            Self::Weak => "quality.weak",
            Self::Poor => "quality.poor",
        }
    }

    pub fn class(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Weak => "weak",
            Self::Poor => "poor",
        }
    }
}

/// One reading of the connection, as the stats give it (each part may be missing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Seconds, of the selected candidate pair.
    pub rtt: Option<f64>,
    /// Packets received and lost so far, all inbound streams together.
    pub packets_received: u64,
    pub packets_lost: u64,
    /// Frames per second of the video received, when video is received.
    pub fps: Option<f64>,
}

/// The quality over the interval between two readings (loss counts the packets of that
/// interval, not of the whole call).
pub fn assess(previous: Option<&Sample>, now: &Sample) -> Quality {
    let (received, lost) = match previous {
        Some(p) => (
            now.packets_received.saturating_sub(p.packets_received),
            now.packets_lost.saturating_sub(p.packets_lost),
        ),
        None => (now.packets_received, now.packets_lost),
    };
    let loss = if received + lost == 0 {
        0.0
    } else {
        lost as f64 / (received + lost) as f64
    };
    let rtt = now.rtt.unwrap_or(0.0);
    let fps = now.fps;
    if rtt > 0.6 || loss > 0.08 || fps.is_some_and(|f| f < 8.0) {
        Quality::Poor
    } else if rtt > 0.3 || loss > 0.02 || fps.is_some_and(|f| f < 15.0) {
        Quality::Weak
    } else {
        Quality::Good
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rtt: f64, received: u64, lost: u64, fps: Option<f64>) -> Sample {
        Sample {
            rtt: Some(rtt),
            packets_received: received,
            packets_lost: lost,
            fps,
        }
    }

    #[test]
    fn thresholds() {
        assert_eq!(
            assess(None, &sample(0.05, 1000, 0, Some(30.0))),
            Quality::Good
        );
        assert_eq!(
            assess(None, &sample(0.4, 1000, 0, Some(30.0))),
            Quality::Weak
        );
        assert_eq!(
            assess(None, &sample(0.05, 1000, 50, Some(30.0))),
            Quality::Weak
        );
        assert_eq!(
            assess(None, &sample(0.05, 1000, 0, Some(10.0))),
            Quality::Weak
        );
        assert_eq!(
            assess(None, &sample(0.9, 1000, 0, Some(30.0))),
            Quality::Poor
        );
        assert_eq!(assess(None, &sample(0.05, 100, 20, None)), Quality::Poor);
        // Audio only: no frame rate to judge.
        assert_eq!(assess(None, &sample(0.05, 1000, 0, None)), Quality::Good);
        assert_eq!(assess(None, &Sample::default()), Quality::Good);
    }

    #[test]
    fn loss_is_of_the_last_interval() {
        let before = sample(0.05, 1000, 300, Some(30.0));
        // 300 lost long ago; none in the last 1,000 packets.
        let now = sample(0.05, 2000, 300, Some(30.0));
        assert_eq!(assess(Some(&before), &now), Quality::Good);
        assert_eq!(assess(None, &now), Quality::Poor);
    }
}
