//! Idle cost: CPU time and timer wake-ups of the hold and join pages over an idle minute in
//! headless Chromium (CDP `Performance.getMetrics`; wake-ups counted by wrapping the page's
//! `setTimeout`/`setInterval` before the app loads).
//!
//! Run through `bench/idle [seconds]` (default 60).

use std::time::Duration;

use callqueue_e2e::{Browser, Driver, Result, Server, ServerOptions};
use serde_json::{Value, json};

/// Installed before any page script: counts timer callbacks that actually run.
const COUNT_WAKEUPS: &str = r#"
(() => {
  window.__wakeups = 0;
  const wrap = (orig) => function (cb, ...rest) {
    if (typeof cb !== 'function') return orig.call(this, cb, ...rest);
    return orig.call(this, function (...a) { window.__wakeups++; return cb.apply(this, a); }, ...rest);
  };
  window.setTimeout = wrap(window.setTimeout);
  window.setInterval = wrap(window.setInterval);
  const raf = window.requestAnimationFrame;
  window.requestAnimationFrame = function (cb) { return raf.call(this, (t) => { window.__wakeups++; cb(t); }); };
})();
"#;

fn metric(metrics: &Value, name: &str) -> f64 {
    metrics["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["name"] == name))
        .and_then(|x| x["value"].as_f64())
        .unwrap_or(0.0)
}

async fn measure(b: &Browser, page: &str, secs: u64) -> Result<()> {
    // Let the page settle (wasm compiled, stream open) before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = b.cdp("Performance.getMetrics", json!({})).await?;
    let wakeups_before = b
        .eval("return window.__wakeups")
        .await?
        .as_f64()
        .unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = b.cdp("Performance.getMetrics", json!({})).await?;
    let wakeups_after = b
        .eval("return window.__wakeups")
        .await?
        .as_f64()
        .unwrap_or(0.0);
    let task = metric(&after, "TaskDuration") - metric(&before, "TaskDuration");
    let script = metric(&after, "ScriptDuration") - metric(&before, "ScriptDuration");
    println!(
        "{page:<5} over {secs} s: main-thread task time {:.1} ms ({:.3}% of one core), script {:.1} ms, timer wake-ups {:.2}/s",
        task * 1000.0,
        task / secs as f64 * 100.0,
        script * 1000.0,
        (wakeups_after - wakeups_before) / secs as f64
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    let server = Server::start(ServerOptions {
        rate_limits: false,
        ..ServerOptions::default()
    })
    .await?;
    let driver = Driver::start().await?;
    let customer = driver.browser(1280, 900).await?;
    customer
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": COUNT_WAKEUPS }),
        )
        .await?;
    customer.cdp("Performance.enable", json!({})).await?;

    // Hold: a customer waiting.
    customer.goto(&server.url("/")).await?;
    customer.click("form.check-in button[type=submit]").await?;
    let url = customer.wait_url(|u| u.contains("/hold/r/")).await?;
    let sid = url.rsplit('/').next().unwrap_or_default().to_string();
    customer.wait_text(".connection", |t| t == "Live").await?;
    measure(&customer, "hold", secs).await?;

    // Join: a specialist accepts over the API; the customer's page moves to the call.
    server.add_specialist("bench", "bench-secret").await?;
    let http = reqwest::Client::builder().cookie_store(true).build()?;
    http.post(server.url("/api/agent/session"))
        .json(&json!({"user_id": "bench", "secret": "bench-secret"}))
        .send()
        .await?;
    http.put(server.url("/api/agent/availability"))
        .json(&json!({"available": true}))
        .send()
        .await?;
    http.post(server.url("/api/groups/default/accept"))
        .json(&json!({"reservation_sid": sid}))
        .send()
        .await?;
    callqueue_e2e::join_when_called(&customer).await?;
    customer.wait_text(".timer-value", |t| t != "--:--").await?;
    measure(&customer, "join", secs).await?;
    customer.close().await?;
    Ok(())
}
