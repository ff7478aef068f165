//! What a call costs the machine it runs on: CPU of each side's whole browser (every Chromium
//! process of that browser, from `/proc`) over N seconds of a running call with video both
//! ways, split by kind of process, next to the page's own main-thread time (CDP
//! `Performance.getMetrics` `TaskDuration`: our wasm, the DOM, layout and paint). Fake cameras
//! (Chromium's generated test pattern) and software video codecs, headless, no GPU: the figure
//! includes encoding and decoding 640×480 video, which a real machine may do in hardware.
//!
//! `bench/call-cpu [seconds]` (default 60); in a loopback-only network namespace.

use std::{collections::BTreeMap, time::Duration};

use callqueue_e2e::{
    Browser, Driver, Result, Server, ServerOptions, sign_in_specialist, start_chat,
};
use serde_json::json;

const TICKS_PER_SECOND: f64 = 100.0;

async fn task_seconds(b: &Browser) -> Result<f64> {
    let metrics = b.cdp("Performance.getMetrics", json!({})).await?;
    Ok(metrics["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["name"] == "TaskDuration"))
        .and_then(|x| x["value"].as_f64())
        .unwrap_or(0.0))
}

fn report(
    who: &str,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    secs: f64,
    main: f64,
) {
    let used = |kind: &str| {
        after
            .get(kind)
            .copied()
            .unwrap_or(0)
            .saturating_sub(before.get(kind).copied().unwrap_or(0)) as f64
            / TICKS_PER_SECOND
    };
    let total: f64 = after.keys().map(|k| used(k)).sum();
    let parts: Vec<String> = after
        .keys()
        .map(|k| format!("{k} {:.0}%", 100.0 * used(k) / secs))
        .collect();
    println!(
        "  {who:<10} {:>4.0}% of one core ({}); page main thread {:.1}%",
        100.0 * total / secs,
        parts.join(", "),
        100.0 * main / secs
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60)
        .clamp(5, 600);
    let server = Server::start(ServerOptions {
        rate_limits: false,
        ..ServerOptions::default()
    })
    .await?;
    let driver = Driver::start().await?;
    let customer = driver.browser(390, 844).await?;
    let doc = driver.browser(1280, 900).await?;
    for b in [&customer, &doc] {
        b.cdp("Performance.enable", json!({})).await?;
    }
    start_chat(&customer, &server).await?;
    sign_in_specialist(&doc, &server, "bench-doc").await?;
    doc.wait_text("h2", |t| t == "Waiting now: 1").await?;
    doc.click("button.accept-next").await?;
    callqueue_e2e::join_when_called(&customer).await?;
    for b in [&customer, &doc] {
        b.wait_url(|u| u.contains("/join/r/")).await?;
        b.wait_video_playing("video.remote", Duration::from_secs(20))
            .await?;
    }
    // Let the encoders reach their steady rate.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = [customer.cpu_ticks(), doc.cpu_ticks()];
    let main_before = [task_seconds(&customer).await?, task_seconds(&doc).await?];
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = [customer.cpu_ticks(), doc.cpu_ticks()];
    let main_after = [task_seconds(&customer).await?, task_seconds(&doc).await?];
    // Still a call with video both ways at the end, or the figure means nothing.
    for b in [&customer, &doc] {
        b.wait_video_playing("video.remote", Duration::from_secs(5))
            .await?;
    }
    println!(
        "a call's CPU over {secs} s (video and sound both ways, headless Chromium, fake devices):"
    );
    let elapsed = secs as f64;
    report(
        "customer",
        &before[0],
        &after[0],
        elapsed,
        main_after[0] - main_before[0],
    );
    report(
        "specialist",
        &before[1],
        &after[1],
        elapsed,
        main_after[1] - main_before[1],
    );
    // Memory at the end: each browser's processes, and the page's JavaScript heap (the wasm
    // app's own memory included).
    println!("memory at the end of the call:");
    for (b, who) in [(&customer, "customer"), (&doc, "specialist")] {
        let kb = b.memory_kb();
        let total: u64 = kb.values().sum();
        let parts: Vec<String> = kb
            .iter()
            .map(|(k, v)| format!("{k} {} MB", v / 1024))
            .collect();
        let metrics = b.cdp("Performance.getMetrics", json!({})).await?;
        let heap = metrics["metrics"]
            .as_array()
            .and_then(|m| m.iter().find(|x| x["name"] == "JSHeapUsedSize"))
            .and_then(|x| x["value"].as_f64())
            .unwrap_or(0.0);
        println!(
            "  {who:<10} {} MB (proportional set size: {}); page JS heap {:.1} MB",
            total / 1024,
            parts.join(", "),
            heap / 1_048_576.0
        );
    }
    for b in [customer, doc] {
        b.close().await?;
    }
    Ok(())
}
