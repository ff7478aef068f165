//! Talking beside the video: the call's chat on the signal socket (stored, numbered, once per
//! id, caught up after a reconnect, its transcript for the two members only, deleted after the
//! retention period), the group's notice to everyone waiting and a line to one customer. Runs
//! on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::{signalling::*, *};
use serde_json::{Value, json};

async fn get_with(server: &TestServer, path: &str, cookie: Option<&str>) -> (u16, Value) {
    let mut r = plain_client().get(server.url(path));
    if let Some(cookie) = cookie {
        r = r.header("cookie", cookie);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn send_with(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    body: Value,
) -> (u16, Value) {
    let r = plain_client()
        .request(method, server.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn hello_after(ws: &mut Socket, session: &str, chat: u64) -> Value {
    send(
        ws,
        json!({"type": "hello", "session": session, "media": {"audio": true, "video": true}, "chat": chat}),
    )
    .await;
    let welcome = recv(ws).await.unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    welcome
}

/// The one message of a live `chat`.
fn one(chat: Value) -> Value {
    assert_eq!(chat["catch_up"], false, "{chat}");
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{chat}");
    messages[0].clone()
}

/// The next message of a type, skipping presence news.
async fn next_of(ws: &mut Socket, kind: &str) -> Value {
    for _ in 0..10 {
        let m = recv(ws).await.unwrap();
        if m["type"] == kind {
            return m;
        }
        assert!(
            m["type"] == "peer_joined" || m["type"] == "peer_left",
            "expected {kind}, got {m}"
        );
    }
    panic!("no {kind} within 10 messages");
}

#[tokio::test]
async fn chat_is_stored_numbered_once_and_caught_up_after_a_reconnect() {
    let server = TestServer::start().await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-chat").await;
    let call = accept(&server, &doc).await;
    let mut d = open(&server, &call, Some(&doc)).await.unwrap();
    hello(&mut d, "doc-1").await;
    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    hello(&mut a, "alice-1").await;
    assert_eq!(recv(&mut d).await.unwrap()["type"], "peer_joined");

    // The customer writes: her own copy is the acknowledgement, the specialist gets it live.
    let text = "I can't hear you <script>alert(1)</script>\nsee https://example.com/?a=1&b=2";
    send(&mut a, json!({"type": "chat", "id": "m-1", "text": text})).await;
    let ack = one(next_of(&mut a, "chat").await);
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["id"], "m-1");
    assert_eq!(ack["role"], "patient");
    assert_eq!(
        ack["text"], text,
        "stored as sent, markup and line break kept"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(ack["at"].as_str().unwrap()).is_ok(),
        "{ack}"
    );
    assert_eq!(one(next_of(&mut d, "chat").await), ack);

    // Sent again (the page did not see the acknowledgement before a reconnect): the same
    // message, not a second one.
    send(&mut a, json!({"type": "chat", "id": "m-1", "text": text})).await;
    assert_eq!(one(next_of(&mut a, "chat").await), ack);
    assert_eq!(one(next_of(&mut d, "chat").await)["seq"], 1);

    // The specialist answers; bad messages are refused with the reason and go nowhere.
    send(
        &mut d,
        json!({"type": "chat", "id": "d-1", "text": "Can you see me?"}),
    )
    .await;
    let answer = one(next_of(&mut d, "chat").await).clone();
    assert_eq!(
        (answer["seq"].clone(), answer["role"].clone()),
        (json!(2), json!("specialist"))
    );
    assert_eq!(one(next_of(&mut a, "chat").await), answer);
    for bad in [
        json!({"type": "chat", "id": "d-2", "text": "  \n "}),
        json!({"type": "chat", "id": "d-3", "text": "x".repeat(1001)}),
        json!({"type": "chat", "id": "not an id!", "text": "hi"}),
        json!({"type": "chat", "id": "d-4", "text": "bell\u{7}"}),
    ] {
        send(&mut d, bad.clone()).await;
        let e = recv(&mut d).await.unwrap();
        assert_eq!(e["type"], "error", "{bad}");
        assert!(e["message"].as_str().unwrap().starts_with("chat:"), "{e}");
    }

    // A reloaded page (a new session, chat 0) gets the whole conversation after welcome; a
    // page that had the first message gets the rest.
    drop(a);
    let mut a2 = open(&server, &call, Some(&alice)).await.unwrap();
    hello_after(&mut a2, "alice-2", 0).await;
    let t = next_of(&mut a2, "chat").await;
    assert_eq!(t["catch_up"], true);
    assert_eq!(t["messages"], json!([ack, answer]));
    let mut a3 = open(&server, &call, Some(&alice)).await.unwrap();
    hello_after(&mut a3, "alice-3", 1).await;
    let t = next_of(&mut a3, "chat").await;
    assert_eq!(t["messages"], json!([answer]));

    // The transcript: the two members only.
    let path = format!("/api/calls/appointment/{call}/chat");
    for who in [&alice, &doc] {
        let (status, body) = get_with(&server, &path, Some(who)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!([ack, answer]));
    }
    let stranger = customer(&server).await;
    let other_doc = specialist_cookie(&server, "dr-other").await;
    for who in [Some(stranger.as_str()), Some(other_doc.as_str()), None] {
        let (status, body) = get_with(&server, &path, who).await;
        assert_eq!(status, 404, "{body}");
    }
    assert_eq!(
        get_with(&server, "/api/calls/appointment/x%20y/chat", Some(&alice))
            .await
            .0,
        400
    );
    server.stop().await;
}

#[tokio::test]
async fn an_ended_calls_chat_is_deleted_after_the_retention_period() {
    let server = TestServer::start_with(|c| {
        c.keep_calls = Duration::from_millis(500);
        c.purge_interval = Duration::from_millis(200);
    })
    .await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-purge").await;
    let call = accept(&server, &doc).await;
    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    hello(&mut a, "alice-1").await;
    send(
        &mut a,
        json!({"type": "chat", "id": "m-1", "text": "hello"}),
    )
    .await;
    assert_eq!(one(next_of(&mut a, "chat").await)["seq"], 1);
    let path = format!("/api/calls/appointment/{call}/chat");

    // Kept while the call is on, however long that is.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get_with(&server, &path, Some(&alice)).await.0, 200);

    let (status, _) = send_with(
        &server,
        reqwest::Method::POST,
        &format!("/api/calls/appointment/{call}/leave"),
        &doc,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get_with(&server, &path, Some(&alice)).await.0,
        200,
        "kept after the end"
    );
    let mut gone = false;
    for _ in 0..50 {
        if get_with(&server, &path, Some(&doc)).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the call and its chat are deleted once the retention period is over"
    );
    let (_, r) = get_with(
        &server,
        &format!("/api/calls/appointment/{call}"),
        Some(&alice),
    )
    .await;
    assert_eq!(r["error"]["code"], "not_found", "{r}");
    server.stop().await;
}

/// A customer in the queue: their cookie and reservation id.
async fn queued(server: &TestServer) -> (String, String) {
    let r = plain_client()
        .post(server.url("/api/groups/default/reservations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let cookie = cookie_of(&r);
    let body: Value = r.json().await.unwrap();
    (cookie, sid(&body))
}

async fn own_copy(server: &TestServer, cookie: &str, sid: &str) -> Value {
    let (status, r) = get_with(
        server,
        &format!("/api/groups/default/reservations/{sid}"),
        Some(cookie),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    r
}

#[tokio::test]
async fn a_notice_reaches_everyone_waiting_and_a_line_only_its_customer() {
    let server = TestServer::start().await;
    let doc = specialist_cookie(&server, "dr-notice").await;
    // Not available: the customers stay queued.
    let (status, _) = send_with(
        &server,
        reqwest::Method::PUT,
        "/api/agent/availability",
        &doc,
        json!({"available": false}),
    )
    .await;
    assert_eq!(status, 200);
    let (ada, ada_sid) = queued(&server).await;
    let (ben, ben_sid) = queued(&server).await;
    let notice = "/api/groups/default/notice";

    // Who may speak: the group's specialists (customers and strangers may not).
    assert_eq!(get_with(&server, notice, None).await.0, 401);
    assert_eq!(get_with(&server, notice, Some(&ada)).await.0, 401);
    let (status, body) = get_with(&server, notice, Some(&doc)).await;
    assert_eq!((status, body), (200, json!({"notice": null})));
    let (status, _) = send_with(
        &server,
        reqwest::Method::PUT,
        notice,
        &ada,
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send_with(
        &server,
        reqwest::Method::PUT,
        "/api/groups/nosuch/notice",
        &doc,
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(status, 403, "not their group");
    for (bad, says) in [
        (json!({"text": "x".repeat(281)}), "280"),
        (json!({"text": "two\nlines"}), "one line"),
        (json!({"text": "hi", "extra": 1}), "extra"),
    ] {
        let (status, body) =
            send_with(&server, reqwest::Method::PUT, notice, &doc, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }

    // Ada's hold page is listening.
    let ada_client = {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("cookie", ada.parse().unwrap());
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let mut ada_stream = SseReader::open(
        &ada_client,
        &server.url(&format!("/api/events/g/default/r/{ada_sid}")),
        None,
    )
    .await;
    let first = ada_stream
        .next_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert!(first.json().get("notice").is_none(), "{}", first.data);

    // Posted: every waiting customer's copy carries it, and so does a newcomer's.
    let word = "We're running about 10 minutes late — thank you for waiting";
    let (status, body) = send_with(
        &server,
        reqwest::Method::PUT,
        notice,
        &doc,
        json!({"text": format!("  {word} ")}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"notice": word})));
    let live = ada_stream
        .next_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        live.json()["notice"],
        word,
        "live on the stream: {}",
        live.data
    );
    assert_eq!(own_copy(&server, &ada, &ada_sid).await["notice"], word);
    assert_eq!(own_copy(&server, &ben, &ben_sid).await["notice"], word);
    let (cy, cy_sid) = queued(&server).await;
    assert_eq!(own_copy(&server, &cy, &cy_sid).await["notice"], word);
    assert_eq!(
        get_with(&server, notice, Some(&doc)).await.1,
        json!({"notice": word})
    );

    // A line to Ben alone.
    let line = |sid: &str| format!("/api/groups/default/reservations/{sid}/message");
    let (status, _) = send_with(
        &server,
        reqwest::Method::POST,
        &line(&ben_sid),
        &ada,
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(status, 401, "a customer cannot");
    let (status, body) = send_with(
        &server,
        reqwest::Method::POST,
        &line(&ben_sid),
        &doc,
        json!({"text": "Ben, your documents are ready — I'll be with you next"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reservation_sid"], ben_sid.as_str());
    let ben_copy = own_copy(&server, &ben, &ben_sid).await;
    assert_eq!(
        ben_copy["message"],
        "Ben, your documents are ready — I'll be with you next"
    );
    assert_eq!(ben_copy["notice"], word);
    assert!(
        own_copy(&server, &ada, &ada_sid)
            .await
            .get("message")
            .is_none(),
        "Ben's only"
    );
    let (status, _) = send_with(
        &server,
        reqwest::Method::POST,
        &line("nosuch"),
        &doc,
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(status, 404);

    // Both survive a restart.
    let (dir, config) = server.stop().await;
    let server = TestServer::start_in(dir, config).await;
    assert_eq!(own_copy(&server, &ada, &ada_sid).await["notice"], word);
    let ben_copy = own_copy(&server, &ben, &ben_sid).await;
    assert_eq!(
        ben_copy["message"],
        "Ben, your documents are ready — I'll be with you next"
    );

    // Once matched, neither shows, and no line can be sent any more.
    let doc = specialist_cookie(&server, "dr-notice-2").await;
    let call = accept(&server, &doc).await;
    assert!(!call.is_empty());
    let ada_copy = own_copy(&server, &ada, &ada_sid).await;
    assert_eq!(
        ada_copy["reservation_status"],
        "GROUP_RESERVATION_STATUS_MATCHED"
    );
    assert!(ada_copy.get("notice").is_none(), "{ada_copy}");
    let (status, body) = send_with(
        &server,
        reqwest::Method::POST,
        &line(&ada_sid),
        &doc,
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Cleared with empty text.
    let (status, body) = send_with(
        &server,
        reqwest::Method::PUT,
        notice,
        &doc,
        json!({"text": " "}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"notice": null})));

    // An admin speaks for any group, theirs or not.
    let pool = callqueue_server::db::open(&server.config.database)
        .await
        .unwrap();
    callqueue_server::store::Store::add_account(
        &pool,
        "boss",
        "admin",
        &["elsewhere".to_string()],
        "admin secret 123",
        None,
    )
    .await
    .unwrap();
    let boss = client();
    let (status, _) = post_json(
        &boss,
        &server.url("/api/agent/session"),
        json!({"user_id": "boss", "secret": "admin secret 123"}),
    )
    .await;
    assert_eq!(status, 200);
    let r = boss
        .put(server.url(notice))
        .json(&json!({"text": "Closed early today"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        own_copy(&server, &ben, &ben_sid).await["notice"],
        "Closed early today"
    );
    let r = boss
        .put(server.url(notice))
        .json(&json!({"text": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        own_copy(&server, &ben, &ben_sid)
            .await
            .get("notice")
            .is_none()
    );
    server.stop().await;
}
