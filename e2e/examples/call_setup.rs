//! Call setup time: from the moment both members' call pages are up (the second one's timer is
//! showing) to the first frame of the other's video decoded on each side, over N calls between
//! two headless Chromium sessions with fake cameras. Prints p50/p95 per side; asserts nothing.
//!
//! `bench/call [calls]`: runs in a loopback-only network namespace, so every ICE candidate is
//! 127.0.0.1 and the figure is the negotiation and the media pipeline, not a network.

use std::time::{Duration, Instant};

use callqueue_e2e::{
    Driver, Result, Server, ServerOptions, percentile, sign_in_specialist, start_chat,
};

/// Milliseconds until the `<video>` has decoded a frame, polled every 10 ms (up to 20 s).
async fn first_frame(b: &callqueue_e2e::Browser, from: Instant) -> Result<f64> {
    let deadline = from + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some((w, frames)) = b.video_frames("video.remote").await?
            && w > 0
            && frames > 0
        {
            return Ok(from.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("no remote frame within 20 s".into())
}

#[tokio::main]
async fn main() -> Result<()> {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
        .clamp(1, 200);
    let server = Server::start(ServerOptions {
        rate_limits: false,
        ..ServerOptions::default()
    })
    .await?;
    let driver = Driver::start().await?;
    let doc = driver.browser(1280, 900).await?;
    sign_in_specialist(&doc, &server, "bench-doc").await?;
    let (mut customer_ms, mut doc_ms) = (Vec::new(), Vec::new());
    for i in 0..calls {
        // A new customer each time, as in life.
        let customer = driver.browser(390, 844).await?;
        start_chat(&customer, &server).await?;
        doc.wait_text("h2", |t| t == "Waiting now: 1").await?;
        doc.click("button.accept-next").await?;
        callqueue_e2e::join_when_called(&customer).await?;
        doc.wait_url(|u| u.contains("/join/r/")).await?;
        // Both pages are up once both timers run (each page joins the call, then starts its media).
        customer.wait_text(".timer-value", |t| t != "--:--").await?;
        doc.wait_text(".timer-value", |t| t != "--:--").await?;
        let t0 = Instant::now();
        let (c, d) = tokio::join!(first_frame(&customer, t0), first_frame(&doc, t0));
        let (c, d) = (c?, d?);
        eprintln!("call {}: customer {c:.0} ms, specialist {d:.0} ms", i + 1);
        if std::env::var("CALL_SETUP_LOGS").is_ok() && c.max(d) > 3000.0 {
            for (who, b) in [("customer", &customer), ("specialist", &doc)] {
                for (_, m) in b.logs().await? {
                    eprintln!("  {who}: {m}");
                }
            }
        }
        customer_ms.push(c);
        doc_ms.push(d);
        // The specialist ends the call and is back on the console; the customer goes home.
        doc.click_text("Leave call").await?;
        doc.wait_url(|u| u.ends_with("/agent")).await?;
        customer
            .wait_text("h1.eyebrow", |t| {
                t.eq_ignore_ascii_case("Your call has ended")
            })
            .await?;
        customer.close().await?;
    }
    println!(
        "call setup over {calls} calls (both pages up -> first remote frame decoded):\n  \
         customer   p50 {:.0} ms  p95 {:.0} ms\n  specialist p50 {:.0} ms  p95 {:.0} ms",
        percentile(&mut customer_ms.clone(), 0.5),
        percentile(&mut customer_ms, 0.95),
        percentile(&mut doc_ms.clone(), 0.5),
        percentile(&mut doc_ms, 0.95),
    );
    doc.close().await?;
    Ok(())
}
