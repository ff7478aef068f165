//! Event to screen: how long from the request that changes a waiting customer's reservation to
//! the hold page's DOM showing it, in headless Chromium against the real server. One machine, one
//! clock: the browser stamps each change of `.position` with `Date.now()` from a MutationObserver,
//! the benchmark stamps each request with the system clock.
//!
//! 500 customers wait ahead of the watched one; each update removes the one at the front, so the
//! watched position counts down 501 → 1. Optionally `others` idle streams are held open meanwhile
//! (spread over 127.0.0.x source addresses), by customers of another group (`other`: the server
//! holds them, but the updates are not theirs) or queued behind the watched one (`same`: every
//! update moves each of them too, so each one is a fan-out to all of them). Run through
//! `bench/latency [updates] [others] [other|same]`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callqueue_e2e::{
    Result, Server, ServerOptions, join_group, join_queue, open_reservation_stream, percentile,
};
use serde_json::{Value, json};

/// Records when `.position` shows each value, from before the app starts.
const OBSERVE: &str = r#"
window.__shown = {};
new MutationObserver(() => {
  const el = document.querySelector('.position');
  if (el && !(el.textContent in window.__shown)) window.__shown[el.textContent] = Date.now();
}).observe(document, { subtree: true, childList: true, characterData: true });
"#;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let updates = args.next().unwrap_or(500);
    let others = args.next().unwrap_or(0);
    let same_group = std::env::args().nth(3).as_deref() == Some("same");
    let others_group = if same_group { "default" } else { "others" };
    let server = Server::start(ServerOptions {
        groups: "default,others".into(),
        rate_limits: false,
        ..ServerOptions::default()
    })
    .await?;
    let http = reqwest::Client::new();

    let mut ahead = Vec::with_capacity(updates);
    for _ in 0..updates {
        ahead.push(join_queue(&http, &server.base).await?);
    }
    let driver = callqueue_e2e::Driver::start().await?;
    let browser = driver.browser(1280, 900).await?;
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": OBSERVE }),
        )
        .await?;
    browser.goto(&server.url("/")).await?;
    browser.click("form.check-in button[type=submit]").await?;
    let first = (updates + 1).to_string();
    browser.wait_text(".position", |t| t == first).await?;
    browser.wait_text(".connection", |t| t == "Live").await?;

    // Others: customers of another group, or behind the watched one, each with an idle stream.
    let mut held = Vec::with_capacity(others);
    for i in 0..others {
        let (sid, cookie) = join_group(&http, &server.base, others_group).await?;
        // No reading needed: the kernel buffers the events each gets (and the server sends a
        // lagging stream only the newest state).
        held.push(
            open_reservation_stream(i, server.port, others_group, &sid, &cookie, false).await?,
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut sent = Vec::with_capacity(updates);
    for (sid, cookie) in &ahead {
        sent.push(now_ms());
        http.delete(server.url(&format!("/api/groups/default/reservations/{sid}")))
            .header("cookie", cookie)
            .send()
            .await?;
        // Paced so each update is its own event.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    browser.wait_text(".position", |t| t == "1").await?;
    let shown = browser.eval("return window.__shown").await?;
    let mut latency = Vec::with_capacity(updates);
    for (i, t) in sent.iter().enumerate() {
        let position = (updates - i).to_string();
        if let Some(at) = shown.get(&position).and_then(Value::as_f64) {
            latency.push(at - t);
        }
    }
    println!(
        "{} updates seen of {updates}, {others} other streams open ({}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latency.len(),
        if same_group {
            "queued behind, each update reaches them all"
        } else {
            "in another group"
        },
        percentile(&mut latency, 0.5),
        percentile(&mut latency, 0.99),
        percentile(&mut latency, 1.0),
    );
    drop(held);
    browser.close().await?;
    Ok(())
}
