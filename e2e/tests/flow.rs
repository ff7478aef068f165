//! The whole flow in real browsers against the real server: a customer (or two) and a
//! specialist, each in their own headless Chromium profile.

use std::time::Duration;

use callqueue_e2e::{
    Browser, Driver, Result, Server, ServerOptions, into_a_call, sign_in_specialist, start_chat,
};
use serde_json::{Value, json};

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

/// "59:58" or "01:29:58" → seconds.
fn seconds(timer: &str) -> i64 {
    timer
        .trim()
        .split(':')
        .map(|p| p.parse::<i64>().unwrap_or(0))
        .fold(0, |acc, n| acc * 60 + n)
}

async fn no_severe_logs(b: &Browser, who: &str) -> Result<()> {
    let severe: Vec<String> = b
        .severe_logs()
        .await?
        .into_iter()
        // A dropped stream while the server restarts is expected in some tests, not an app fault.
        .filter(|m| !m.contains("ERR_CONNECTION_REFUSED") && !m.contains("/events"))
        .collect();
    assert!(
        severe.is_empty(),
        "{who}'s browser logged errors: {severe:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn customers_queue_a_specialist_accepts_and_extends() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let bob = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;

    // 1. Customers start: positions 1 and 2, no estimate yet.
    for (b, name) in [(&alice, "home-phone"), (&bob, "home-desktop")] {
        b.goto(&server.url("/")).await?;
        b.wait_text(".notice", |t| t.starts_with("Nobody is available"))
            .await?;
        b.screenshot(name).await?;
    }
    let alice_sid = start_chat(&alice, &server).await?;
    alice.wait_text(".position", |t| t == "1").await?;
    alice
        .wait_text(".wait", |t| t == "Estimating your wait…")
        .await?;
    alice.wait_text(".connection", |t| t == "Live").await?;
    let title = alice.client.title().await?;
    assert!(title.starts_with("#1 in the queue"), "title {title:?}");
    alice.screenshot("hold-phone").await?;
    start_chat(&bob, &server).await?;
    bob.wait_text(".position", |t| t == "2").await?;
    bob.screenshot("hold-desktop").await?;
    // Home knows her place and takes her back to it, rather than offering a second one.
    alice.goto(&server.url("/")).await?;
    alice
        .wait_text(".come-back p", |t| t == "You are number 1 in the queue.")
        .await?;
    alice.click(".come-back a").await?;
    let back = alice.wait_url(|u| u.contains("/hold/r/")).await?;
    assert!(back.ends_with(&alice_sid), "{back}");
    alice.wait_text(".position", |t| t == "1").await?;

    // 2. The specialist signs in, goes available, accepts the next customer.
    sign_in_specialist(&doc, &server, "dr-e2e").await?;
    doc.wait_text("h2", |t| t == "Waiting now: 2").await?;
    // Their channel tells them of each customer who joins from now on.
    doc.wait_text(".channel .connection", |t| t == "Notices: Live")
        .await?;
    let carol = reqwest::Client::new();
    callqueue_e2e::join_queue(&carol, &server.base).await?;
    doc.wait_text(".notices li", |t| {
        t == "A customer is waiting (3 in the queue)"
    })
    .await?;
    doc.wait_text("h2", |t| t == "Waiting now: 3").await?;
    doc.screenshot("agent-desktop").await?;
    doc.click("button.accept-next").await?;
    doc.wait_url(|u| u.contains(&format!("/join/r/{alice_sid}")))
        .await?;
    // Alice is told it is her turn and joins when she is ready.
    alice.wait_text("h1", |t| t == "It's your turn").await?;
    alice
        .wait_text(".join-within", |t| {
            t.starts_with("Your specialist is waiting — join within ")
        })
        .await?;
    alice.screenshot("turn-phone").await?;
    callqueue_e2e::join_when_called(&alice).await?;
    alice
        .wait_url(|u| u.contains(&format!("/join/r/{alice_sid}")))
        .await?;
    bob.wait_text(".position", |t| t == "1").await?;

    // 3. Both see the timer; only the specialist can extend.
    let before = seconds(
        &alice
            .wait_text(".timer-value", |t| t.contains(':') && t != "--:--")
            .await?,
    );
    assert!(
        (3590..=3600).contains(&before),
        "a one-hour session, got {before}"
    );
    doc.wait_text(".timer-value", |t| t.contains(':') && t != "--:--")
        .await?;
    doc.find("button.extend").await?;
    assert!(
        !alice.exists("button.extend").await?,
        "a patient has no extend button"
    );
    alice.screenshot("join-phone").await?;
    doc.click("button.extend").await?;
    let doc_after = seconds(
        &doc.wait_text(".timer-value", |t| seconds(t) > 3600 + 1700)
            .await?,
    );
    let alice_after = seconds(
        &alice
            .wait_text(".timer-value", |t| seconds(t) > 3600 + 1700)
            .await?,
    );
    assert!((5380..=5400).contains(&doc_after), "{doc_after}");
    assert!((5380..=5400).contains(&alice_after), "{alice_after}");
    doc.screenshot("join-specialist-desktop").await?;

    // 7. A patient's direct API call to extend is refused by the server.
    let cookie = alice.client.get_named_cookie("cq_customer").await?;
    let http = reqwest::Client::new();
    let reservation: Value = http
        .get(server.url(&format!("/api/groups/default/reservations/{alice_sid}")))
        .header("cookie", format!("cq_customer={}", cookie.value()))
        .send()
        .await?
        .json()
        .await?;
    let call_id = reservation["call_id"].as_str().unwrap_or_default();
    let r = http
        .patch(server.url(&format!("/api/calls/appointment/{call_id}")))
        .header("cookie", format!("cq_customer={}", cookie.value()))
        .json(&json!({"settings_override": {"limits": {"max_duration_seconds": 99999}}}))
        .send()
        .await?;
    assert_eq!(r.status(), 403);

    for (b, who) in [(&alice, "alice"), (&bob, "bob"), (&doc, "doc")] {
        no_severe_logs(b, who).await?;
    }
    for b in [alice, bob, doc] {
        b.close().await?;
    }
    Ok(())
}

/// The customer starts a chat, the specialist (signed in as `name`) accepts, and the
/// customer's page is in the call with its timer running.
async fn in_a_call(server: &Server, customer: &Browser, doc: &Browser, name: &str) -> Result<()> {
    into_a_call(server, &server.base, customer, doc, name).await?;
    customer.wait_text(".timer-value", |t| t != "--:--").await?;
    Ok(())
}

#[tokio::test]
async fn the_alerts_come_and_the_call_ends_on_both_sides() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    in_a_call(&server, &alice, &doc, "dr-alerts").await?;

    // The specialist shortens the session to 5 minutes and 3 seconds from now, through the API
    // the extend button uses: the 5-minute alert appears a few seconds later on both sides.
    let cookie = doc.client.get_named_cookie("cq_agent").await?;
    let http = reqwest::Client::new();
    let agent_cookie = format!("cq_agent={}", cookie.value());
    let session: Value = http
        .get(server.url("/api/agent/session"))
        .header("cookie", &agent_cookie)
        .send()
        .await?
        .json()
        .await?;
    let call_url = server.url(&format!(
        "/api/calls/appointment/{}",
        session["active_call_id"].as_str().unwrap_or_default()
    ));
    let call: Value = http
        .get(&call_url)
        .header("cookie", &agent_cookie)
        .send()
        .await?
        .json()
        .await?;
    let started = call["call"]["session"]["started_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let elapsed = |started: &str| {
        let s = chrono_like_parse(started);
        (now_secs() - s).ceil() as u32
    };
    let set_length = |secs: u32| {
        let http = http.clone();
        let call_url = call_url.clone();
        let agent_cookie = agent_cookie.clone();
        async move {
            let r = http
                .patch(&call_url)
                .header("cookie", agent_cookie)
                .json(&json!({"settings_override": {"limits": {"max_duration_seconds": secs}}}))
                .send()
                .await?;
            assert_eq!(r.status(), 200);
            Result::Ok(())
        }
    };
    set_length(elapsed(&started) + 303).await?;
    for b in [&alice, &doc] {
        b.wait_text_for(".alert.ending-soon span", Duration::from_secs(10), |t| {
            t == "Less than 5 minutes remaining"
        })
        .await?;
    }
    alice.screenshot("join-alert-phone").await?;
    doc.screenshot("join-alert-desktop").await?;
    // Dismissed, it stays dismissed.
    alice.click(".alert.ending-soon button.dismiss").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!alice.exists(".alert.ending-soon").await?);

    // Now end it 3 seconds from now: the zero alert, and the call ends by itself on both sides.
    set_length(elapsed(&started) + 3).await?;
    for b in [&alice, &doc] {
        b.wait_text_for(".alert.time-up", Duration::from_secs(10), |t| {
            t == "The time has run out"
        })
        .await?;
        b.wait_text(".timer-value", |t| t == "00:00").await?;
        b.wait_text("h1.eyebrow", |t| {
            t.eq_ignore_ascii_case("Your call has ended")
        })
        .await?;
    }
    assert!(
        !alice.exists(".alert.ending-soon").await?,
        "still dismissed"
    );
    alice.screenshot("join-ended-phone").await?;
    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Seconds since the epoch of an RFC 3339 UTC time like `2026-11-23T01:02:03.456Z`.
fn chrono_like_parse(s: &str) -> f64 {
    let (date, time) = s.trim_end_matches('Z').split_once('T').unwrap_or_default();
    let d: Vec<i64> = date.split('-').filter_map(|p| p.parse().ok()).collect();
    let t: Vec<f64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    if d.len() != 3 || t.len() != 3 {
        return 0.0;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days as f64 * 86_400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}

#[tokio::test]
async fn expiry_rejoin_leave_and_restart() -> Result<()> {
    let short = Server::start(ServerOptions {
        queue_timeout_secs: 4,
        ..ServerOptions::default()
    })
    .await?;
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let bob = driver.browser(DESKTOP.0, DESKTOP.1).await?;

    // 5. Expiry lands on rejoin; rejoining goes back to hold.
    start_chat(&alice, &short).await?;
    alice.wait_url(|u| u.contains("/rejoin/r/")).await?;
    alice
        .wait_text("h1", |t| t == "Your place in the queue expired")
        .await?;
    alice.screenshot("rejoin-phone").await?;
    // The page stands on its own: the same address on a desktop.
    bob.goto(alice.client.current_url().await?.as_ref()).await?;
    bob.wait_text("h1", |t| t == "Your place in the queue expired")
        .await?;
    bob.screenshot("rejoin-desktop").await?;
    alice.click_text("Rejoin the queue").await?;
    alice.wait_url(|u| u.contains("/hold/r/")).await?;
    alice.wait_text(".position", |t| t == "1").await?;
    drop(short);

    // 6. Leaving goes home and the customer behind moves up.
    let mut server = Server::start(ServerOptions::default()).await?;
    start_chat(&alice, &server).await?;
    start_chat(&bob, &server).await?;
    bob.wait_text(".position", |t| t == "2").await?;
    alice.click_text("Leave the queue").await?;
    alice.wait_url(|u| u.ends_with('/')).await?;
    alice.find("button.primary").await?;
    bob.wait_text(".position", |t| t == "1").await?;

    // 8. The server dies during hold: Reconnecting…, then Live again, same position.
    server.kill().await;
    bob.wait_text(".connection", |t| t == "Reconnecting…")
        .await?;
    bob.screenshot("hold-reconnecting-desktop").await?;
    server.restart().await?;
    bob.wait_text_for(".connection", Duration::from_secs(40), |t| t == "Live")
        .await?;
    bob.wait_text(".position", |t| t == "1").await?;
    for b in [alice, bob] {
        b.close().await?;
    }
    Ok(())
}

/// The specialist ends the call a few seconds in: the customer's page says so in its own words
/// (never "The time has run out"), and the whole app ran under the server's
/// Content-Security-Policy without a violation in either console.
#[tokio::test]
async fn an_early_end_says_who_ended_it_under_the_csp() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let page = reqwest::get(server.url("/")).await?;
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-"),
        "{csp}"
    );
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    in_a_call(&server, &alice, &doc, "dr-early").await?;
    doc.wait_url(|u| u.contains("/join/r/")).await?;
    doc.wait_text(".timer-value", |t| t != "--:--").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    doc.click_text("Leave call").await?;
    alice
        .wait_text_for(".alert.call-ended", Duration::from_secs(10), |t| {
            t == "The specialist ended the call"
        })
        .await?;
    assert!(!alice.exists(".alert.time-up").await?, "not a time-up");
    alice.screenshot("join-specialist-ended-phone").await?;
    for (b, who) in [(&alice, "alice"), (&doc, "doc")] {
        no_severe_logs(b, who).await?;
    }
    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}
