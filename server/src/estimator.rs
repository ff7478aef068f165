//! The wait estimate behind `estimated_wait_until`.
//!
//! Method: every available specialist is a server who becomes free at a known time: now if idle,
//! or when their current call is expected to end (its start plus the group's mean call length,
//! never earlier than now). Customers are served in queue order by whichever specialist frees up
//! first, each call lasting the mean length. Walking the queue with a min-heap of free times gives
//! every queued customer the moment a specialist should reach them. Like Streem's example the
//! estimate is `null` until a call in the group has completed (there is nothing to learn the
//! call length from), and also while nobody is available (nobody will reach anyone).

use std::{cmp::Reverse, collections::BinaryHeap};

use chrono::{DateTime, Duration, Utc};

/// How many completed calls the mean call length is taken over.
pub const HISTORY: usize = 50;

/// The moments specialists reach the queue's customers, in queue order: each step hands the
/// next customer to whichever specialist frees up first. `None` when there is no history or no
/// specialist.
///
/// `busy_since` has one entry per available specialist: `None` if idle, `Some(start)` if in a call
/// that started (or was matched) at `start`.
pub fn walk(
    now: DateTime<Utc>,
    busy_since: &[Option<DateTime<Utc>>],
    mean_call: Option<Duration>,
) -> Option<impl Iterator<Item = DateTime<Utc>>> {
    let mean = mean_call.filter(|m| *m > Duration::zero())?;
    if busy_since.is_empty() {
        return None;
    }
    let mut free_at: BinaryHeap<Reverse<DateTime<Utc>>> = busy_since
        .iter()
        .map(|since| Reverse(since.map_or(now, |s| (s + mean).max(now))))
        .collect();
    Some(std::iter::from_fn(move || {
        let Reverse(t) = free_at.pop()?;
        free_at.push(Reverse(t + mean));
        Some(t)
    }))
}

/// When each of `queue_len` customers (in queue order) should be reached; all `None` when
/// [`walk`] has nothing to go on.
pub fn estimate_queue(
    now: DateTime<Utc>,
    queue_len: usize,
    busy_since: &[Option<DateTime<Utc>>],
    mean_call: Option<Duration>,
) -> Vec<Option<DateTime<Utc>>> {
    match walk(now, busy_since, mean_call) {
        Some(times) => times.take(queue_len).map(Some).collect(),
        None => vec![None; queue_len],
    }
}

/// When the customer at 1-based `position` should be reached (a new arrival at the back: no one
/// else's estimate changes).
pub fn estimate_position(
    now: DateTime<Utc>,
    position: usize,
    busy_since: &[Option<DateTime<Utc>>],
    mean_call: Option<Duration>,
) -> Option<DateTime<Utc>> {
    walk(now, busy_since, mean_call)?.nth(position.checked_sub(1)?)
}

/// The mean of the last completed call lengths, in seconds.
pub fn mean_call(history: impl ExactSizeIterator<Item = f64>) -> Option<Duration> {
    let n = history.len();
    if n == 0 {
        return None;
    }
    let mean = history.sum::<f64>() / n as f64;
    Some(Duration::milliseconds((mean * 1000.0).round() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .into()
    }

    #[test]
    fn unknown_without_history_or_specialists() {
        let now = t0();
        assert_eq!(estimate_queue(now, 2, &[None], None), vec![None, None]);
        assert_eq!(
            estimate_queue(now, 1, &[], Some(Duration::minutes(5))),
            vec![None]
        );
    }

    #[test]
    fn one_idle_specialist_serves_in_turn() {
        let now = t0();
        let est = estimate_queue(now, 3, &[None], Some(Duration::minutes(10)));
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
        let est = estimate_queue(now, 3, &busy, Some(mean));
        assert_eq!(est[0], Some(now + Duration::minutes(1)));
        assert_eq!(est[1], Some(now + Duration::minutes(6)));
        assert_eq!(est[2], Some(now + Duration::minutes(11)));
    }

    #[test]
    fn overdue_calls_count_as_ending_now() {
        let now = t0();
        let est = estimate_queue(
            now,
            1,
            &[Some(now - Duration::hours(2))],
            Some(Duration::minutes(10)),
        );
        assert_eq!(est, vec![Some(now)]);
    }

    #[test]
    fn more_specialists_shorten_the_wait() {
        let now = t0();
        let mean = Some(Duration::minutes(10));
        let one = estimate_queue(now, 6, &[None], mean);
        let three = estimate_queue(now, 6, &[None, None, None], mean);
        assert!(three[5] < one[5]);
        assert_eq!(three[5], Some(now + Duration::minutes(10)));
    }

    #[test]
    fn one_position_agrees_with_the_whole_queue() {
        let now = t0();
        let busy = [None, Some(now - Duration::minutes(3))];
        let mean = Some(Duration::minutes(7));
        let all = estimate_queue(now, 9, &busy, mean);
        for p in 1..=9 {
            assert_eq!(estimate_position(now, p, &busy, mean), all[p - 1]);
        }
        assert_eq!(estimate_position(now, 0, &busy, mean), None);
        assert_eq!(estimate_position(now, 3, &[], mean), None);
    }

    #[test]
    fn mean_of_history() {
        assert_eq!(mean_call([].into_iter()), None);
        assert_eq!(
            mean_call([60.0, 120.0].into_iter()),
            Some(Duration::seconds(90))
        );
    }
}
