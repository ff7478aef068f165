//! The wait estimate behind `estimated_wait_until`.
//!
//! Method: every available specialist is a server who becomes free at a known time: now if idle,
//! or when their current call is expected to end (its start plus the group's mean call length,
//! never earlier than now). Customers are served in queue order by whichever specialist frees up
//! first, each call lasting the mean length. Walking the queue with a min-heap of free times gives
//! every queued customer the moment a specialist should reach them. Like Streem's example the
//! estimate is `null` until a call in the group has completed (there is nothing to learn the
//! call length from), and also while nobody is available (nobody will reach anyone).
//!
//! The range around each estimate comes from the spread of the same call lengths: the more
//! calls have to end before a customer is reached, the wider it is (see [`range`]).

use std::{cmp::Reverse, collections::BinaryHeap};

use chrono::{DateTime, Duration, Utc};

/// How many completed calls the mean call length is taken over.
pub const HISTORY: usize = 50;

/// How wide the range is, in standard deviations either side of the estimate. A normal
/// variable falls within ±1.28 of its mean 80% of the time; call lengths are skewed and the
/// estimate itself is rough, so a little more (the estimate benchmark measures the coverage).
pub const RANGE_Z: f64 = 1.5;

/// What the estimator knows about a group's call lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallStats {
    pub mean: Duration,
    /// Their standard deviation.
    pub spread: Duration,
}

/// When a customer should be reached, and the range it should fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub at: DateTime<Utc>,
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
}

/// The moments specialists reach the queue's customers, in queue order: each step hands the
/// next customer to whichever specialist frees up first. `None` when there is no history or no
/// specialist. Each moment comes with how many calls of uncertain length have to end before it
/// (zero for a specialist idle now).
///
/// `busy_since` has one entry per available specialist: `None` if idle, `Some(start)` if in a call
/// that started (or was matched) at `start`.
pub fn walk(
    now: DateTime<Utc>,
    busy_since: &[Option<DateTime<Utc>>],
    stats: Option<CallStats>,
) -> Option<impl Iterator<Item = (DateTime<Utc>, u32)>> {
    let mean = stats.map(|s| s.mean).filter(|m| *m > Duration::zero())?;
    if busy_since.is_empty() {
        return None;
    }
    let mut free_at: BinaryHeap<Reverse<(DateTime<Utc>, u32)>> = busy_since
        .iter()
        .map(|since| {
            Reverse(match since {
                None => (now, 0),
                Some(s) => ((*s + mean).max(now), 1),
            })
        })
        .collect();
    Some(std::iter::from_fn(move || {
        let Reverse((t, calls)) = free_at.pop()?;
        free_at.push(Reverse((t + mean, calls + 1)));
        Some((t, calls))
    }))
}

/// The estimate for a moment from [`walk`]. By the central limit theorem the time `s`
/// specialists take for `n` calls spreads by about `spread · √n / s`; with `k` calls ahead on
/// each specialist's line, `n = k · s`, so `spread · √(k / s)`.
fn range(
    now: DateTime<Utc>,
    (at, calls): (DateTime<Utc>, u32),
    spread: Duration,
    specialists: usize,
) -> Estimate {
    let sd = spread.num_milliseconds() as f64 * (calls as f64 / specialists as f64).sqrt();
    let half = Duration::milliseconds((RANGE_Z * sd).round() as i64);
    Estimate {
        at,
        earliest: (at - half).max(now),
        latest: at + half,
    }
}

/// When each of `queue_len` customers (in queue order) should be reached; all `None` when
/// [`walk`] has nothing to go on.
pub fn estimate_queue(
    now: DateTime<Utc>,
    queue_len: usize,
    busy_since: &[Option<DateTime<Utc>>],
    stats: Option<CallStats>,
) -> Vec<Option<Estimate>> {
    match (walk(now, busy_since, stats), stats) {
        (Some(times), Some(stats)) => times
            .take(queue_len)
            .map(|t| Some(range(now, t, stats.spread, busy_since.len())))
            .collect(),
        _ => vec![None; queue_len],
    }
}

/// When the customer at 1-based `position` should be reached (a new arrival at the back: no one
/// else's estimate changes).
pub fn estimate_position(
    now: DateTime<Utc>,
    position: usize,
    busy_since: &[Option<DateTime<Utc>>],
    stats: Option<CallStats>,
) -> Option<Estimate> {
    let t = walk(now, busy_since, stats)?.nth(position.checked_sub(1)?)?;
    Some(range(now, t, stats?.spread, busy_since.len()))
}

/// The mean and spread of the last completed call lengths, in seconds.
pub fn call_stats(history: impl ExactSizeIterator<Item = f64> + Clone) -> Option<CallStats> {
    let n = history.len();
    if n == 0 {
        return None;
    }
    let mean = history.clone().sum::<f64>() / n as f64;
    let variance = history.map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    let ms = |secs: f64| Duration::milliseconds((secs * 1000.0).round() as i64);
    Some(CallStats {
        mean: ms(mean),
        spread: ms(variance.sqrt()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .into()
    }

    /// Calls of exactly `mean` (no spread): each estimate is one moment.
    fn exactly(mean: Duration) -> Option<CallStats> {
        Some(CallStats {
            mean,
            spread: Duration::zero(),
        })
    }

    fn at(v: Vec<Option<Estimate>>) -> Vec<Option<DateTime<Utc>>> {
        v.into_iter().map(|e| e.map(|e| e.at)).collect()
    }

    #[test]
    fn unknown_without_history_or_specialists() {
        let now = t0();
        assert_eq!(estimate_queue(now, 2, &[None], None), vec![None, None]);
        assert_eq!(
            estimate_queue(now, 1, &[], exactly(Duration::minutes(5))),
            vec![None]
        );
    }

    #[test]
    fn the_range_is_certain_for_an_idle_specialist_and_widens_down_the_queue() {
        let now = t0();
        let stats = Some(CallStats {
            mean: Duration::minutes(10),
            spread: Duration::minutes(4),
        });
        let est: Vec<Estimate> = estimate_queue(now, 4, &[None], stats)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        // The first is reached now, for sure.
        assert_eq!((est[0].earliest, est[0].latest), (now, now));
        // Then one call ahead: ±1.5 × 4 min around 10 min.
        assert_eq!(est[1].at, now + Duration::minutes(10));
        assert_eq!(est[1].earliest, now + Duration::minutes(4));
        assert_eq!(est[1].latest, now + Duration::minutes(16));
        let width = |e: &Estimate| e.latest - e.earliest;
        assert!(width(&est[3]) > width(&est[2]) && width(&est[2]) > width(&est[1]));
        for e in &est {
            assert!(e.earliest <= e.at && e.at <= e.latest && e.earliest >= now);
        }
        // More specialists: the same position is reached sooner, with less spread.
        let three = estimate_position(now, 7, &[None, None, None], stats).unwrap();
        let one = estimate_position(now, 3, &[None], stats).unwrap();
        assert!(width(&three) < width(&one) * 2);
    }

    #[test]
    fn one_idle_specialist_serves_in_turn() {
        let now = t0();
        let est = at(estimate_queue(
            now,
            3,
            &[None],
            exactly(Duration::minutes(10)),
        ));
        assert_eq!(
            est,
            vec![
                Some(now),
                Some(now + Duration::minutes(10)),
                Some(now + Duration::minutes(20))
            ]
        );
    }

    #[test]
    fn busy_specialists_free_up_when_their_call_should_end() {
        let now = t0();
        let mean = Duration::minutes(10);
        // One started 4 minutes ago (6 left), one 9 minutes ago (1 left).
        let busy = [
            Some(now - Duration::minutes(4)),
            Some(now - Duration::minutes(9)),
        ];
        let est = at(estimate_queue(now, 3, &busy, exactly(mean)));
        assert_eq!(est[0], Some(now + Duration::minutes(1)));
        assert_eq!(est[1], Some(now + Duration::minutes(6)));
        assert_eq!(est[2], Some(now + Duration::minutes(11)));
    }

    #[test]
    fn overdue_calls_count_as_ending_now() {
        let now = t0();
        let est = at(estimate_queue(
            now,
            1,
            &[Some(now - Duration::hours(2))],
            exactly(Duration::minutes(10)),
        ));
        assert_eq!(est, vec![Some(now)]);
    }

    #[test]
    fn more_specialists_shorten_the_wait() {
        let now = t0();
        let mean = exactly(Duration::minutes(10));
        let one = at(estimate_queue(now, 6, &[None], mean));
        let three = at(estimate_queue(now, 6, &[None, None, None], mean));
        assert!(three[5] < one[5]);
        assert_eq!(three[5], Some(now + Duration::minutes(10)));
    }

    #[test]
    fn one_position_agrees_with_the_whole_queue() {
        let now = t0();
        let busy = [None, Some(now - Duration::minutes(3))];
        let mean = Some(CallStats {
            mean: Duration::minutes(7),
            spread: Duration::minutes(2),
        });
        let all = estimate_queue(now, 9, &busy, mean);
        for p in 1..=9 {
            assert_eq!(estimate_position(now, p, &busy, mean), all[p - 1]);
        }
        assert_eq!(estimate_position(now, 0, &busy, mean), None);
        assert_eq!(estimate_position(now, 3, &[], mean), None);
    }

    #[test]
    fn mean_and_spread_of_history() {
        assert_eq!(call_stats([].into_iter()), None);
        assert_eq!(
            call_stats([60.0, 120.0].into_iter()),
            Some(CallStats {
                mean: Duration::seconds(90),
                spread: Duration::seconds(30)
            })
        );
    }
}
