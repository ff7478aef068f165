//! Estimate accuracy: a queue simulation comparing callqueue's `estimated_wait_until` with the
//! wait each customer really had, against the naive estimate of Streem's example (the average of
//! previous waits), and how often the real wait fell inside the range callqueue shows
//! (`estimated_wait_earliest`..`estimated_wait_latest`, target at least 80%) and how wide that
//! range is. Seeds are fixed, so the figures repeat.
//!
//! Run: `cargo run --release -p callqueue-server --example estimate_accuracy`

use std::{cmp::Reverse, collections::BinaryHeap, collections::VecDeque};

use callqueue_server::estimator::{HISTORY, call_stats, estimate_queue};
use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// One scenario: how many specialists, how busy, how calls vary.
struct Scenario {
    specialists: usize,
    /// Mean call length, seconds.
    mean_call: f64,
    /// Offered load: arrivals × mean call / specialists (below 1 so the queue is stable).
    load: f64,
    customers: usize,
    seed: u64,
}

/// Exponential variate with the given mean.
fn exp(rng: &mut StdRng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// Call lengths vary a lot: a mix of short questions and long consultations.
fn call_length(rng: &mut StdRng, mean: f64) -> f64 {
    if rng.random::<f64>() < 0.3 {
        exp(rng, mean * 0.3)
    } else {
        exp(rng, mean * 1.3)
    }
}

fn at(t0: DateTime<Utc>, secs: f64) -> DateTime<Utc> {
    t0 + Duration::milliseconds((secs * 1000.0) as i64)
}

/// Per customer who got both estimates: the absolute errors in seconds of ours and the naive
/// one, whether the real wait fell in our range, and the range's width in seconds.
struct Outcome {
    ours: Vec<f64>,
    naive: Vec<f64>,
    inside: Vec<bool>,
    widths: Vec<f64>,
}

fn simulate(s: &Scenario) -> Outcome {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("a fixed date")
        .into();
    let arrival_mean = s.mean_call / (s.load * s.specialists as f64);
    // Arrivals.
    let mut arrivals = Vec::with_capacity(s.customers);
    let mut t = 0.0;
    for _ in 0..s.customers {
        t += exp(&mut rng, arrival_mean);
        arrivals.push(t);
    }
    // Specialists: when each frees up, and when its current call started.
    let mut busy_since: Vec<Option<f64>> = vec![None; s.specialists];
    let mut free_at: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut history: VecDeque<f64> = VecDeque::new();
    let mut waits: Vec<f64> = Vec::new();
    // (ours, naive, earliest, latest), seconds from arrival.
    let mut estimates: Vec<Option<(f64, f64, f64, f64)>> = vec![None; s.customers];
    let mut actual: Vec<Option<f64>> = vec![None; s.customers];
    let mut next = 0;
    let ms = |x: f64| (x * 1000.0) as u64;

    loop {
        let next_arrival = arrivals.get(next).copied();
        let next_free = free_at.peek().map(|Reverse((t, _))| *t as f64 / 1000.0);
        let now = match (next_arrival, next_free) {
            (None, None) => break,
            (Some(a), Some(f)) if f <= a => f,
            (Some(a), _) => a,
            (None, Some(f)) => f,
        };
        if next_free == Some(now) {
            let Reverse((_, who)) = free_at.pop().expect("peeked");
            if let Some(start) = busy_since[who].take() {
                history.push_back(now - start);
                if history.len() > HISTORY {
                    history.pop_front();
                }
            }
        } else {
            // A customer arrives; both estimates are made now, with what is known now.
            let c = next;
            next += 1;
            queue.push_back(c);
            let busy: Vec<Option<DateTime<Utc>>> = busy_since
                .iter()
                .map(|b| b.map(|start| at(t0, start)))
                .collect();
            let ours = estimate_queue(
                at(t0, now),
                queue.len(),
                &busy,
                call_stats(history.iter().copied()),
            );
            let naive = (!waits.is_empty()).then(|| waits.iter().sum::<f64>() / waits.len() as f64);
            if let (Some(Some(ours)), Some(naive)) = (ours.last(), naive) {
                let secs = |t: DateTime<Utc>| (t - at(t0, now)).num_milliseconds() as f64 / 1000.0;
                estimates[c] = Some((secs(ours.at), naive, secs(ours.earliest), secs(ours.latest)));
            }
        }
        // Idle specialists take the next customers.
        for (who, since) in busy_since.iter_mut().enumerate() {
            if since.is_none()
                && let Some(c) = queue.pop_front()
            {
                let wait = now - arrivals[c];
                waits.push(wait);
                actual[c] = Some(wait);
                *since = Some(now);
                let length = call_length(&mut rng, s.mean_call);
                free_at.push(Reverse((ms(now + length), who)));
            }
        }
    }
    let mut out = Outcome {
        ours: Vec::new(),
        naive: Vec::new(),
        inside: Vec::new(),
        widths: Vec::new(),
    };
    for (e, a) in estimates.iter().zip(&actual) {
        if let (Some((o, n, lo, hi)), Some(a)) = (e, a) {
            out.ours.push((o - a).abs());
            out.naive.push((n - a).abs());
            // Waits are measured to the millisecond, as the range is.
            out.inside.push(*lo - 0.001 <= *a && *a <= *hi + 0.001);
            out.widths.push(hi - lo);
        }
    }
    out
}

fn share(v: &[bool]) -> f64 {
    v.iter().filter(|x| **x).count() as f64 / v.len().max(1) as f64 * 100.0
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    println!(
        "{:>11} {:>6} {:>9} {:>7} | {:>12} {:>12} | {:>12} {:>12} | {:>8} {:>12}",
        "specialists",
        "load",
        "mean call",
        "n",
        "ours p50 s",
        "ours p90 s",
        "naive p50 s",
        "naive p90 s",
        "inside %",
        "width p50 s"
    );
    let (mut all_ours, mut all_naive) = (Vec::new(), Vec::new());
    let (mut all_inside, mut all_widths) = (Vec::new(), Vec::new());
    for (i, &(specialists, load)) in [(1, 0.8), (2, 0.85), (3, 0.9), (5, 0.9), (10, 0.95)]
        .iter()
        .enumerate()
    {
        let s = Scenario {
            specialists,
            mean_call: 600.0,
            load,
            customers: 5_000,
            seed: 42 + i as u64,
        };
        let Outcome {
            mut ours,
            mut naive,
            inside,
            mut widths,
        } = simulate(&s);
        all_ours.extend_from_slice(&ours);
        all_naive.extend_from_slice(&naive);
        all_inside.extend_from_slice(&inside);
        all_widths.extend_from_slice(&widths);
        println!(
            "{:>11} {:>6.2} {:>9.0} {:>7} | {:>12.0} {:>12.0} | {:>12.0} {:>12.0} | {:>8.1} {:>12.0}",
            specialists,
            load,
            s.mean_call,
            ours.len(),
            percentile(&mut ours, 0.5),
            percentile(&mut ours, 0.9),
            percentile(&mut naive, 0.5),
            percentile(&mut naive, 0.9),
            share(&inside),
            percentile(&mut widths, 0.5),
        );
    }
    let ours50 = percentile(&mut all_ours, 0.5);
    let naive50 = percentile(&mut all_naive, 0.5);
    println!(
        "all: ours median {:.0} s, p90 {:.0} s; naive median {:.0} s, p90 {:.0} s; ours/naive median = {:.2} (target <= 0.50)",
        ours50,
        percentile(&mut all_ours, 0.9),
        naive50,
        percentile(&mut all_naive, 0.9),
        ours50 / naive50
    );
    println!(
        "range: the real wait fell inside it {:.1}% of the time (target >= 80%); median width {:.0} s",
        share(&all_inside),
        percentile(&mut all_widths, 0.5)
    );
}
