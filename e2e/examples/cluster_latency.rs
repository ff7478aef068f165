//! Cross-node event latency: two nodes on one PostgreSQL; a customer watches their place on
//! node A, a specialist accepts them on node B, and the time from sending the accept to the
//! MATCHED frame arriving on A is measured. First idle, then with N open streams on each node
//! (customers waiting behind, so every accept also moves all of them). Also prints each node's
//! memory per idle stream. Loopback only, bounded waits. Run through `bench/cluster`:
//!
//! `bench/cluster 5000`

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use callqueue_e2e::{
    Result, ServerOptions,
    cluster::{Cluster, Sse},
    join_queue, open_reservation_stream, percentile, rss_kb,
};
use serde_json::json;
use tokio::io::AsyncReadExt;

const MATCHED: &str = "GROUP_RESERVATION_STATUS_MATCHED";

/// `rounds` accepts on B of customers watching on A: the latencies in ms.
async fn rounds(cluster: &Cluster, doc: &reqwest::Client, rounds: usize) -> Result<Vec<f64>> {
    let (a, b) = (&cluster.nodes[0].base, &cluster.nodes[1].base);
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let alice = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        let made: serde_json::Value = alice
            .post(format!("{a}/api/groups/default/reservations"))
            .header("content-type", "application/json")
            .send()
            .await?
            .json()
            .await?;
        let sid = made["reservation_sid"].as_str().ok_or("no reservation")?;
        let mut stream = Sse::open(&alice, &format!("{a}/api/events/g/default/r/{sid}")).await?;
        stream.next(Duration::from_secs(10)).await?;
        // Let B hear of the new customer first (its own notification), as it would have long
        // before a specialist could click.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = Instant::now();
        let r = doc
            .post(format!("{b}/api/groups/default/accept"))
            .json(&json!({"reservation_sid": sid}))
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(format!("accept: {} {}", r.status(), r.text().await?).into());
        }
        loop {
            let v = stream
                .next(Duration::from_secs(10))
                .await?
                .ok_or("the stream ended")?;
            if v["reservation_status"] == MATCHED {
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        // The customer leaves, which ends the call and frees the specialist.
        alice
            .delete(format!("{a}/api/groups/default/reservations/{sid}"))
            .header("content-type", "application/json")
            .send()
            .await?;
    }
    Ok(lat)
}

/// Opens `n` idle reservation streams on `port` for new customers, reading (and dropping) what
/// they are sent; answers when all have their first event.
async fn hold_streams(
    base: &str,
    port: u16,
    n: usize,
    offset: usize,
) -> Result<(Vec<tokio::task::JoinHandle<()>>, usize)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()?;
    let ready = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (sid, cookie) = join_queue(&http, base).await?;
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) =
                open_reservation_stream(offset + i, port, "default", &sid, &cookie, false).await
            else {
                return;
            };
            let mut buf = [0u8; 2048];
            let mut first = true;
            while let Ok(got @ 1..) = s.read(&mut buf).await {
                if first && buf[..got].windows(5).any(|w| w == b"data:") {
                    first = false;
                    ready.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((tasks, ready.load(Ordering::Relaxed)))
}

fn summary(name: &str, lat: &mut [f64]) -> String {
    format!(
        "{name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        percentile(lat, 1.0),
        lat.len()
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(5000), |a| a.parse())?;
    let cluster = Cluster::start(
        2,
        ServerOptions {
            rate_limits: false,
            ..Default::default()
        },
    )
    .await?;
    cluster.nodes[1]
        .add_specialist("bench", "bench-secret")
        .await?;
    let doc = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let b = &cluster.nodes[1].base;
    doc.post(format!("{b}/api/agent/session"))
        .json(&json!({"user_id": "bench", "secret": "bench-secret"}))
        .send()
        .await?;
    doc.put(format!("{b}/api/agent/availability"))
        .json(&json!({"available": true}))
        .send()
        .await?;

    rounds(&cluster, &doc, 10).await?; // warm-up
    let mut idle = rounds(&cluster, &doc, 100).await?;
    println!("accept on B → frame on A, {}", summary("idle", &mut idle));

    let pids: Vec<u32> = cluster.nodes.iter().filter_map(|s| s.pid()).collect();
    let before: Vec<u64> = pids.iter().map(|&p| rss_kb(p)).collect();
    let mut held = Vec::new();
    let mut open = Vec::new();
    for (k, node) in cluster.nodes.iter().enumerate() {
        let (tasks, ready) = hold_streams(&node.base, node.port, n, k * n).await?;
        held.extend(tasks);
        open.push(ready);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<u64> = pids.iter().map(|&p| rss_kb(p)).collect();
    for (k, ((b, a), o)) in before.iter().zip(&after).zip(&open).enumerate() {
        println!(
            "node {k}: {o} streams open, RSS {} → {} MB ({:.0} B per stream, reservations included)",
            b / 1024,
            a / 1024,
            (a.saturating_sub(*b)) as f64 * 1024.0 / (*o).max(1) as f64
        );
    }
    let mut loaded = rounds(&cluster, &doc, 30).await?;
    println!(
        "accept on B → frame on A, {}",
        summary(&format!("with 2 × {n} open streams"), &mut loaded)
    );
    for t in held {
        t.abort();
    }
    Ok(())
}
