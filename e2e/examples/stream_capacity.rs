//! Stream capacity: the real server binary, N customers created over HTTP (reservations created
//! per second, durable in SQLite), N idle reservation streams held open (server resident memory
//! per stream), then one change that every stream must hear (fan-out latency p50/p99).
//!
//! Loopback only. The server runs with its per-address limits on (joins per minute raised for
//! the one address that creates every customer), so each stream carries its client's stream and
//! connection accounting as in production: clients spread over 127.0.0.2, 127.0.0.3, ...,
//! [`PER_SOURCE`] to an address, under the per-address caps. Every wait is bounded. Run through `bench/streams`, which raises
//! the open-files limit first:
//!
//! `bench/streams 10000 50000`
//!
//! With `--kept-alive`, each client first reads its reservation and then opens the stream on the
//! same connection, as a browser does when it has an idle connection to reuse: that stream is
//! served through hyper and the router instead of the accept loop's own writer.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use callqueue_e2e::{
    Result, Server, ServerOptions, join_queue, open_reservation_stream_from, percentile, rss_kb,
};

/// Streams per client address: under the server's default caps (64 streams, 128 connections).
const PER_SOURCE: usize = 60;
use std::sync::Mutex;

use tokio::io::AsyncReadExt;

/// CPU time the process has used, user and system, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    ticks * 10.0
}

struct Customer {
    sid: String,
    cookie: String,
}

async fn create_customers(server: &Server, n: usize) -> Result<(Vec<Customer>, f64)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = server.base.clone();
    let next = Arc::new(AtomicUsize::new(0));
    let out = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (http, base, next, out) = (http.clone(), base.clone(), next.clone(), out.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let (sid, cookie) = join_queue(&http, &base).await?;
                out.lock().unwrap().push(Customer { sid, cookie });
            }
            Result::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let customers = std::mem::take(&mut *out.lock().unwrap());
    Ok((customers, n as f64 / secs))
}

/// Opens one idle stream; reports when its first event (the snapshot) arrived, then records the
/// arrival time of every later event until `stop`.
async fn hold_stream(
    kept_alive: bool,
    i: usize,
    port: u16,
    c: Customer,
    ready: Arc<AtomicUsize>,
    events: Arc<Mutex<Vec<Instant>>>,
) -> Result<()> {
    let source = std::net::Ipv4Addr::from(
        u32::from(std::net::Ipv4Addr::new(127, 0, 0, 2)) + (i / PER_SOURCE) as u32,
    );
    let mut stream =
        open_reservation_stream_from(source, port, "default", &c.sid, &c.cookie, kept_alive)
            .await?;
    let mut buf = [0u8; 1024];
    let mut seen_first = false;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let chunk = &buf[..n];
        // A heartbeat (after 10 s of quiet) is not an event of the reservation.
        let heartbeat = chunk.windows(16).any(|w| w == b"event: heartbeat");
        if chunk.windows(5).any(|w| w == b"data:") && !heartbeat {
            if seen_first {
                // A std mutex: held for one push, so 10,000 readers do not queue behind it
                // the way they would behind an async one (which would add to the latency).
                events.lock().unwrap().push(Instant::now());
            } else {
                seen_first = true;
                ready.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn run(n: usize, kept_alive: bool) -> Result<()> {
    let server = Server::start(ServerOptions {
        rate_limits: true,
        extra_args: vec!["--joins-per-minute".into(), "100000000".into()],
        ..ServerOptions::default()
    })
    .await?;
    let pid = server.pid().ok_or("no server process")?;
    let rss_empty = rss_kb(pid);
    let (customers, creates_per_sec) = create_customers(&server, n).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_queued = rss_kb(pid);

    let ready = Arc::new(AtomicUsize::new(0));
    let events = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let first_cookie = customers.first().map(|c| (c.sid.clone(), c.cookie.clone()));
    let mut tasks = Vec::with_capacity(n);
    let failures = Arc::new(Mutex::new((0usize, None::<String>)));
    // Opened in two halves: the average over all streams includes caches that fill once (the
    // database's page cache, the allocator's arenas); the second half's cost is what one more
    // stream adds.
    let half = n / 2;
    let mut rss_half = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    for (i, c) in customers.into_iter().enumerate() {
        if i == half {
            while ready.load(Ordering::Relaxed) < half && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            rss_half = rss_kb(pid);
        }
        let (ready, events, failures) = (ready.clone(), events.clone(), failures.clone());
        let port = server.port;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = hold_stream(kept_alive, i, port, c, ready, events).await {
                let mut failures = failures.lock().unwrap();
                failures.0 += 1;
                failures.1.get_or_insert_with(|| e.to_string());
            }
        }));
        if i % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
    while ready.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open = ready.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_streams = rss_kb(pid);
    // `BENCH_HOLD_SECS=60`: the streams stay open that long (at most ten minutes) before the
    // fan-out, for a heap profiler to look at the server meanwhile.
    if let Some(secs) = std::env::var("BENCH_HOLD_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        println!("holding {open} streams for {secs} s (server pid {pid})");
        tokio::time::sleep(Duration::from_secs(secs.min(600))).await;
    }
    let per_stream = (rss_streams.saturating_sub(rss_queued)) as f64 * 1024.0 / open.max(1) as f64;
    let marginal = (rss_streams.saturating_sub(rss_half)) as f64 * 1024.0
        / open.saturating_sub(half).max(1) as f64;

    // Fan-out: the first customer leaves; everyone behind moves up and must be told.
    let (sid, cookie) = first_cookie.ok_or("no customers")?;
    let http = reqwest::Client::new();
    let cpu0 = cpu_ms(pid);
    let t0 = Instant::now();
    http.delete(server.url(&format!("/api/groups/default/reservations/{sid}")))
        .header("cookie", cookie)
        .send()
        .await?;
    let want = open.saturating_sub(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while events.lock().unwrap().len() < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut lat: Vec<f64> = events
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.duration_since(t0).as_secs_f64() * 1000.0)
        .collect();
    let heard = lat.len();
    let server_cpu = cpu_ms(pid) - cpu0;
    if let (count @ 1.., first) = &*failures.lock().unwrap() {
        println!(
            "{count} streams failed; the first: {}",
            first.as_deref().unwrap_or("?")
        );
    }
    for t in tasks {
        t.abort();
    }
    println!(
        "{n:>7}{} | creates/s {creates_per_sec:>8.0} | streams open {open:>7} | RSS empty {:>6} MB, queued {:>6} MB, streaming {:>6} MB | {per_stream:>6.0} B/stream ({marginal:>5.0} B for each of the second half) | fan-out to {heard:>7}: p50 {:>7.1} ms p99 {:>7.1} ms max {:>7.1} ms, server CPU {server_cpu:.0} ms",
        if kept_alive { " kept-alive" } else { "" },
        rss_empty / 1024,
        rss_queued / 1024,
        rss_streams / 1024,
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        percentile(&mut lat, 1.0),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let kept_alive = std::env::args().any(|a| a == "--kept-alive");
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000]
    } else {
        sizes
    };
    for n in sizes {
        run(n, kept_alive).await?;
    }
    Ok(())
}
