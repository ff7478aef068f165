//! The server over a real socket: the app's pages, health, errors, queue, calls, expiry,
//! restarts, the webhook.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const QUEUED: &str = "GROUP_RESERVATION_STATUS_QUEUED";
const MATCHED: &str = "GROUP_RESERVATION_STATUS_MATCHED";
const EXPIRED: &str = "GROUP_RESERVATION_STATUS_EXPIRED";
const CANCELED: &str = "GROUP_RESERVATION_STATUS_CANCELED";

#[tokio::test]
async fn serves_the_console_bundle_precompressed_files_and_cache_rules() {
    let (_dist, path) = dist_with_index();
    let server = TestServer::start_with(|c| c.dist = Some(path)).await;
    let c = client();

    // /agent is the console's own bundle; the customer's routes are not.
    for url in ["/agent", "/agent/"] {
        let page = c.get(server.url(url)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{url}");
        assert_eq!(page.headers()["cache-control"], "no-cache");
        assert!(page.text().await.unwrap().contains("callqueue console"));
    }
    let page = c.get(server.url("/join/r/abc")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(page.text().await.unwrap().contains("callqueue app"));
    // The console's inline loader may run wherever it is served.
    assert_eq!(csp.matches("'sha256-").count(), 1, "{csp}");

    // A file named by its content: the build's brotli copy, kept for a year.
    let wasm = c
        .get(server.url("/callqueue-0123456789abcdef_bg.wasm"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(wasm.status(), 200);
    assert_eq!(wasm.headers()["content-encoding"], "br");
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    assert_eq!(
        wasm.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(wasm.bytes().await.unwrap().as_ref(), b"precompressed");
    // Without brotli: the file itself (gzip has no copy here, so it is made on the fly).
    let wasm = c
        .get(server.url("/callqueue-0123456789abcdef_bg.wasm"))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert!(wasm.headers().get("content-encoding").is_none());
    assert_eq!(wasm.bytes().await.unwrap().as_ref(), b"\0asm\x01\0\0\0");
    // A file of another build is not there: a 404, not the app's page kept for a year.
    let missing = c
        .get(server.url("/callqueue-fedcba9876543210.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().get("cache-control").is_none());
    // Nor is any other file that is not there (browsers ask for a favicon by themselves).
    for url in ["/favicon.ico", "/robots.txt", "/agent/missing.js"] {
        let missing = c.get(server.url(url)).send().await.unwrap();
        assert_eq!(missing.status(), 404, "{url}");
    }
    // A file that is there, unhashed (the service worker), is asked for again each time.
    let sw = c.get(server.url("/app.js")).send().await.unwrap();
    assert_eq!(sw.status(), 200);
    assert_eq!(sw.headers()["cache-control"], "no-cache");
}

#[tokio::test]
async fn serves_the_app_health_and_json_errors() {
    let (_dist, path) = dist_with_index();
    let server = TestServer::start_with(|c| c.dist = Some(path)).await;
    let c = client();

    let index = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.text().await.unwrap().contains("callqueue app"));
    // Client-side routes load the app too.
    let deep = c.get(server.url("/hold/r/abc")).send().await.unwrap();
    assert!(deep.text().await.unwrap().contains("callqueue app"));
    let js = c.get(server.url("/app.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    let br = c
        .get(server.url("/"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(
        br.headers()["content-encoding"],
        "br",
        "the app is sent compressed"
    );

    let (status, health) = get_json(&c, &server.url("/api/health")).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "ok");

    let (status, body) = get_json(&c, &server.url("/api/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");

    let (status, body) = get_json(&c, &server.url("/api/groups/default/reservations/bad$id")).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reservation id")
    );

    let r = c
        .post(server.url("/api/agent/session"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");

    let r = c
        .post(server.url("/api/agent/session"))
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let r = c
        .post(server.url("/api/groups/nowhere/reservations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn queue_positions_stay_dense_and_private() {
    let server = TestServer::start().await;
    let (alice, bob, carol) = (client(), client(), client());
    let a = join_queue(&server, &alice).await;
    assert_eq!(a["reservation_status"], QUEUED);
    assert_eq!(a["queue_position"], 1);
    assert_eq!(a["estimated_wait_until"], Value::Null);
    assert!(a["server_time"].is_string());
    // A second create by the same browser returns the same reservation.
    let again = join_queue(&server, &alice).await;
    assert_eq!(sid(&again), sid(&a));

    let b = join_queue(&server, &bob).await;
    let c = join_queue(&server, &carol).await;
    assert_eq!(b["queue_position"], 2);
    assert_eq!(c["queue_position"], 3);

    // Another customer cannot see or cancel alice's reservation.
    let url_a = server.url(&format!("/api/groups/default/reservations/{}", sid(&a)));
    assert_eq!(get_json(&bob, &url_a).await.0, 404);
    assert_eq!(bob.delete(&url_a).send().await.unwrap().status(), 404);

    // Bob leaves: carol moves up to 2, alice stays 1.
    let url_b = server.url(&format!("/api/groups/default/reservations/{}", sid(&b)));
    let left: Value = bob
        .delete(&url_b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(left["reservation_status"], CANCELED);
    let url_c = server.url(&format!("/api/groups/default/reservations/{}", sid(&c)));
    assert_eq!(get_json(&carol, &url_c).await.1["queue_position"], 2);
    assert_eq!(get_json(&alice, &url_a).await.1["queue_position"], 1);
    // Leaving twice is harmless and never moves the status back.
    let again: Value = bob
        .delete(&url_b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["reservation_status"], CANCELED);
    // Having left, bob may queue again and goes to the back.
    let b2 = join_queue(&server, &bob).await;
    assert_ne!(sid(&b2), sid(&b));
    assert_eq!(b2["queue_position"], 3);
    server.stop().await;
}

#[tokio::test]
async fn reservation_stream_sends_snapshot_then_changes() {
    let server = TestServer::start().await;
    let (alice, bob) = (client(), client());
    let a = join_queue(&server, &alice).await;
    let b = join_queue(&server, &bob).await;
    let url = server.url(&format!("/api/events/g/default/r/{}", sid(&b)));
    let mut stream = SseReader::open(&bob, &url, None).await;
    let first = stream.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.event, None, "default message events");
    assert_eq!(first.retry, Some(2000));
    assert_eq!(first.json()["queue_position"], 2);
    let first_id = first.id();

    // Someone ahead leaves: the stream says position 1 with a higher id.
    let url_a = server.url(&format!("/api/groups/default/reservations/{}", sid(&a)));
    alice.delete(&url_a).send().await.unwrap();
    let next = stream.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(next.json()["queue_position"], 1);
    assert!(next.id() > first_id);

    // Someone joining behind does not change bob's reservation: no event for him.
    let carol = client();
    join_queue(&server, &carol).await;
    assert!(
        stream
            .next_within(Duration::from_millis(400))
            .await
            .is_none()
    );

    // Bob's page loses its connection; meanwhile a specialist takes him. Reconnecting with
    // Last-Event-ID, the first event is the whole state as it is now, with a newer id: what
    // happened while he was away is not lost.
    drop(stream);
    let doc = specialist(&server, "dr-away").await;
    let taken = accept_next(&server, &doc).await;
    assert_eq!(taken["reservation"]["reservation_sid"], sid(&b).as_str());
    let mut again = SseReader::open(&bob, &url, Some(next.id())).await;
    let snap = again.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        snap.json()["reservation_status"],
        "GROUP_RESERVATION_STATUS_MATCHED",
        "{:?}",
        snap.json()
    );
    assert!(snap.id() > next.id(), "{} after {}", snap.id(), next.id());
    assert_eq!(snap.retry, Some(2000));

    // Another customer, signed in as themselves, cannot open it.
    let r = carol.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn specialist_accepts_and_only_they_may_extend() {
    let server = TestServer::start().await;
    let (alice, bob) = (client(), client());
    let a = join_queue(&server, &alice).await;
    let b = join_queue(&server, &bob).await;

    // Customers may not see the queue or accept.
    assert_eq!(
        get_json(&alice, &server.url("/api/groups/default/queue"))
            .await
            .0,
        401
    );

    let doc = specialist(&server, "dr-lecter").await;
    let (status, queue) = get_json(&doc, &server.url("/api/groups/default/queue")).await;
    assert_eq!(status, 200);
    assert_eq!(queue["reservations"].as_array().unwrap().len(), 2);
    assert_eq!(queue["available_specialists"], 1);

    let mut bob_stream = SseReader::open(
        &bob,
        &server.url(&format!("/api/events/g/default/r/{}", sid(&b))),
        None,
    )
    .await;
    assert_eq!(bob_stream.next().await.unwrap().json()["queue_position"], 2);

    let accepted: Value = doc
        .post(server.url("/api/groups/default/accept"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        accepted["reservation"]["reservation_sid"],
        a["reservation_sid"]
    );
    assert_eq!(accepted["reservation"]["reservation_status"], MATCHED);
    let call_id = accepted["call"]["call"]["id"].as_str().unwrap().to_string();
    assert_eq!(accepted["call"]["call"]["type"], "appointment");
    assert!(
        accepted["call"]["own_capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("change-max-duration"))
    );
    // The customer behind moves up.
    let moved = bob_stream
        .next_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(moved.json()["queue_position"], 1);

    // A second accept while in a call is refused.
    let r = doc
        .post(server.url("/api/groups/default/accept"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // Alice sees she is matched, with the call id, and reads the call as a patient.
    let url_a = server.url(&format!("/api/groups/default/reservations/{}", sid(&a)));
    let mine = get_json(&alice, &url_a).await.1;
    assert_eq!(mine["reservation_status"], MATCHED);
    assert_eq!(mine["call_id"], call_id.as_str());
    let call_url = server.url(&format!("/api/calls/appointment/{call_id}"));
    let (status, call) = get_json(&alice, &call_url).await;
    assert_eq!(status, 200);
    assert_eq!(
        call["call"]["settings"]["limits"]["max_duration_seconds"],
        3600
    );
    assert_eq!(call["call"]["session"]["started_at"], Value::Null);
    let caps = call["own_capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("join-call")));
    assert!(!caps.contains(&json!("change-max-duration")));
    // Bob is no member: 404.
    assert_eq!(get_json(&bob, &call_url).await.0, 404);

    let mut call_stream = SseReader::open(&alice, &format!("{call_url}/events"), None).await;
    let snap = call_stream.next().await.unwrap();
    assert_eq!(snap.event.as_deref(), Some("call.updated"));

    // The first join starts the session.
    let joined: Value = alice
        .post(format!("{call_url}/join"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let started = joined["call"]["session"]["started_at"].as_str().unwrap();
    let ends = joined["call"]["session"]["timer_ends_at"].as_str().unwrap();
    let started = chrono::DateTime::parse_from_rfc3339(started).unwrap();
    let ends = chrono::DateTime::parse_from_rfc3339(ends).unwrap();
    assert_eq!((ends - started).num_seconds(), 3600);
    let ev = call_stream
        .next_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ev.event.as_deref(), Some("call.session_started"));

    // A patient may not extend, nor set the duration on join: 403, nothing changes.
    let extend = json!({"settings_override": {"limits": {"max_duration_seconds": 5400}}});
    let r = alice.patch(&call_url).json(&extend).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    let r = alice
        .post(format!("{call_url}/join"))
        .json(&extend)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The specialist extends by 30 minutes: the timer moves and the patient's stream says so.
    let r = doc.patch(&call_url).json(&extend).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ev = call_stream
        .next_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ev.event.as_deref(), Some("call.updated"));
    let new_end = ev.json()["call"]["session"]["timer_ends_at"]
        .as_str()
        .unwrap()
        .to_string();
    let new_end = chrono::DateTime::parse_from_rfc3339(&new_end).unwrap();
    assert_eq!((new_end - ends).num_seconds(), 1800);

    // An absurd duration is refused with a reason.
    let r = doc
        .patch(&call_url)
        .json(&json!({"settings_override": {"limits": {"max_duration_seconds": 0}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // Both leave: the call ends when the last one does, and the specialist is free again.
    doc.post(format!("{call_url}/join")).send().await.unwrap();
    let r: Value = alice
        .post(format!("{call_url}/leave"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["call"]["session"]["ended_at"],
        Value::Null,
        "the specialist is still there"
    );
    let r: Value = doc
        .post(format!("{call_url}/leave"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["call"]["session"]["ended_reason"], "specialist_left");
    let ended = loop {
        let ev = call_stream
            .next_within(Duration::from_secs(5))
            .await
            .unwrap();
        if ev.event.as_deref() == Some("call.ended") {
            break ev;
        }
    };
    assert!(ended.json()["call"]["session"]["ended_at"].is_string());
    let r = doc
        .post(server.url("/api/groups/default/accept"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "free to accept bob");
    server.stop().await;
}

#[tokio::test]
async fn the_call_ends_by_itself_at_zero_and_estimates_appear() {
    let server = TestServer::start_with(|c| c.call_seconds = 1).await;
    let alice = client();
    let a = join_queue(&server, &alice).await;
    let doc = specialist(&server, "dr-who").await;
    let accepted: Value = doc
        .post(server.url("/api/groups/default/accept"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let call_id = accepted["call"]["call"]["id"].as_str().unwrap().to_string();
    let call_url = server.url(&format!("/api/calls/appointment/{call_id}"));
    let mut stream = SseReader::open(&alice, &format!("{call_url}/events"), None).await;
    stream.next().await.unwrap();
    alice.post(format!("{call_url}/join")).send().await.unwrap();
    let ended = loop {
        let ev = stream
            .next_within(Duration::from_secs(5))
            .await
            .expect("the call ends within a few seconds");
        if ev.event.as_deref() == Some("call.ended") {
            break ev;
        }
    };
    assert_eq!(ended.json()["call"]["session"]["ended_reason"], "time_up");
    let _ = a;

    // A call has completed, so the next customer gets an estimate.
    let bob = client();
    let b = join_queue(&server, &bob).await;
    assert!(b["estimated_wait_until"].is_string(), "{b}");
    // With its range, which holds it.
    let time = |k: &str| chrono::DateTime::parse_from_rfc3339(b[k].as_str().unwrap()).unwrap();
    assert!(time("estimated_wait_earliest") <= time("estimated_wait_until"));
    assert!(time("estimated_wait_until") <= time("estimated_wait_latest"));
    server.stop().await;
}

#[tokio::test]
async fn unmatched_and_unjoined_reservations_expire() {
    let server = TestServer::start_with(|c| {
        c.queue_timeout = Duration::from_millis(600);
        c.join_window = Duration::from_millis(600);
    })
    .await;
    let alice = client();
    let a = join_queue(&server, &alice).await;
    // Carol joins later, behind alice: when alice expires, carol moves up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let carol = client();
    let c = join_queue(&server, &carol).await;
    assert_eq!(c["queue_position"], 2);
    let url_a = server.url(&format!("/api/groups/default/reservations/{}", sid(&a)));
    let mut stream = SseReader::open(
        &alice,
        &server.url(&format!("/api/events/g/default/r/{}", sid(&a))),
        None,
    )
    .await;
    stream.next().await.unwrap();
    let ev = stream.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev.json()["reservation_status"], EXPIRED);
    assert_eq!(
        get_json(&alice, &url_a).await.1["reservation_status"],
        EXPIRED
    );

    // Matched but never joined: expires too and frees the specialist.
    let bob = client();
    let b = join_queue(&server, &bob).await;
    let doc = specialist(&server, "dr-house").await;
    // Bob by name: carol, ahead of him, may not have expired yet.
    let r = doc
        .post(server.url("/api/groups/default/accept"))
        .json(&json!({"reservation_sid": sid(&b)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let url_b = server.url(&format!("/api/groups/default/reservations/{}", sid(&b)));
    let mut status = Value::Null;
    for _ in 0..50 {
        status = get_json(&bob, &url_b).await.1["reservation_status"].clone();
        if status == EXPIRED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, EXPIRED);
    let session: Value = get_json(&doc, &server.url("/api/agent/session")).await.1;
    assert_eq!(session["active_call_id"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_queue_and_stream_ids() {
    let server = TestServer::start().await;
    let (alice, bob) = (client(), client());
    join_queue(&server, &alice).await;
    let b = join_queue(&server, &bob).await;
    let url = format!("/api/events/g/default/r/{}", sid(&b));
    let mut stream = SseReader::open(&bob, &server.url(&url), None).await;
    let before = stream.next().await.unwrap();
    drop(stream);
    let (dir, mut config) = server.stop().await;

    // Same database, new process state, new port.
    config.addr = "127.0.0.1:0".parse().unwrap();
    let server = TestServer::start_in(dir, config).await;
    let again = join_queue(&server, &bob).await;
    assert_eq!(sid(&again), sid(&b), "the cookie session survived");
    assert_eq!(again["queue_position"], 2);
    let mut stream = SseReader::open(&bob, &server.url(&url), Some(before.id())).await;
    let after = stream.next().await.unwrap();
    assert_eq!(after.json()["queue_position"], 2);
    assert!(after.id() >= before.id(), "ids never go back");
    server.stop().await;
}

#[tokio::test]
async fn webhook_relays_signed_updates_only() {
    use callqueue_server::http::routes::webhook::sign;
    let off = TestServer::start().await;
    let r = client()
        .post(off.url("/api/webhooks/streem"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    off.stop().await;

    let server = TestServer::start_with(|c| c.webhook_secret = Some("whsec".into())).await;
    let alice = client();
    let a = join_queue(&server, &alice).await;
    let body = json!({"event": {"event_type": "group_reservation_updated", "payload": {
        "updated_group_reservation": {"reservation_sid": sid(&a),
            "reservation_status": EXPIRED}}}})
    .to_string();
    let hook = client();
    let url = server.url("/api/webhooks/streem");
    let r = hook.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 401, "no signature");
    let r = hook
        .post(&url)
        .header("x-streem-signature", sign("wrong", body.as_bytes()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "bad signature");
    let url_a = server.url(&format!("/api/groups/default/reservations/{}", sid(&a)));
    assert_eq!(
        get_json(&alice, &url_a).await.1["reservation_status"],
        QUEUED
    );

    let r = hook
        .post(&url)
        .header(
            "x-streem-signature",
            format!("sha256={}", sign("whsec", body.as_bytes())),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get_json(&alice, &url_a).await.1["reservation_status"],
        EXPIRED
    );

    let other = json!({"event": {"event_type": "something_else", "payload": {}}}).to_string();
    let r = hook
        .post(&url)
        .header("x-streem-signature", sign("whsec", other.as_bytes()))
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn streams_send_heartbeats() {
    let server = TestServer::start_with(|c| c.heartbeat = Duration::from_millis(200)).await;
    let alice = client();
    let a = join_queue(&server, &alice).await;
    let url = server.url(&format!("/api/events/g/default/r/{}", sid(&a)));
    let mut stream = SseReader::open(&alice, &url, None).await;
    stream.next().await.unwrap();
    assert!(
        stream
            .next_within(Duration::from_millis(900))
            .await
            .is_none()
    );
    assert!(
        stream.heartbeats >= 2,
        "heartbeat events: {}",
        stream.heartbeats
    );
    server.stop().await;
}

#[tokio::test]
async fn a_chosen_customer_can_be_accepted_and_the_specialist_leaving_ends_the_call() {
    let server = TestServer::start().await;
    let (alice, bob) = (client(), client());
    let a = join_queue(&server, &alice).await;
    let b = join_queue(&server, &bob).await;
    let doc = specialist(&server, "dr-choice").await;

    // Accept bob, the second in line; alice keeps position 1.
    let r = doc
        .post(server.url("/api/groups/default/accept"))
        .json(&json!({"reservation_sid": sid(&b)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let accepted: Value = r.json().await.unwrap();
    assert_eq!(
        accepted["reservation"]["reservation_sid"],
        b["reservation_sid"]
    );
    let url_a = server.url(&format!("/api/groups/default/reservations/{}", sid(&a)));
    assert_eq!(get_json(&alice, &url_a).await.1["queue_position"], 1);

    // A sid that is not waiting is refused clearly.
    let r = doc
        .post(server.url("/api/groups/default/accept"))
        .json(&json!({"reservation_sid": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "still in bob's call");

    // Both join; the specialist leaves while bob is still there: the call ends.
    let call_url = server.url(&format!(
        "/api/calls/appointment/{}",
        accepted["call"]["call"]["id"].as_str().unwrap()
    ));
    bob.post(format!("{call_url}/join")).send().await.unwrap();
    doc.post(format!("{call_url}/join")).send().await.unwrap();
    let left: Value = doc
        .post(format!("{call_url}/leave"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(left["call"]["session"]["ended_reason"], "specialist_left");
    assert!(left["call"]["session"]["ended_at"].is_string());

    // Free again: a named sid that is not in the queue is a clear 404.
    let r = doc
        .post(server.url("/api/groups/default/accept"))
        .json(&json!({"reservation_sid": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer waiting")
    );
    server.stop().await;
}

#[tokio::test]
async fn concurrent_joins_get_dense_distinct_positions() {
    let server = TestServer::start().await;
    let clients: Vec<reqwest::Client> = (0..40).map(|_| client()).collect();
    let joins = clients.iter().map(|c| join_queue(&server, c));
    let results = futures_util::future::join_all(joins).await;
    let mut positions: Vec<u64> = results
        .iter()
        .map(|r| r["queue_position"].as_u64().unwrap())
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=40).collect::<Vec<u64>>());

    // A fresh browser's double-click (no cookie yet; the app sends one key per join): one
    // customer, one reservation, the same session cookie, however the two requests interleave.
    for round in 0..10 {
        let twice = client();
        let key = format!("join-key-{round:08}-abcdef");
        let join = || async {
            let r = twice
                .post(server.url("/api/groups/default/reservations"))
                .header("idempotency-key", &key)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
            let body: serde_json::Value = r.json().await.unwrap();
            (
                status,
                cookie.split(';').next().unwrap().to_string(),
                sid(&body),
            )
        };
        let (a, b) = tokio::join!(join(), join());
        assert_eq!(a.2, b.2, "one reservation: {a:?} {b:?}");
        assert_eq!(a.1, b.1, "one customer: {a:?} {b:?}");
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201]);
        // And with the cookie now, still the same.
        let (c, d) = tokio::join!(join_queue(&server, &twice), join_queue(&server, &twice));
        assert_eq!((sid(&c), sid(&d)), (a.2.clone(), a.2.clone()));
    }
    server.stop().await;
}
