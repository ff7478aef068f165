//! The per-user WebSocket channel: the handshake, its refusals, and user events.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::Message};

async fn open(server: &TestServer) -> Socket {
    let url = server.url("/api/ws").replace("http://", "ws://");
    connect_async(url).await.unwrap().0
}

async fn token(server: &TestServer, c: &reqwest::Client) -> String {
    let t: Value = c
        .post(server.url("/api/agent/stream-token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    t["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn handshake_then_user_events() {
    let server = TestServer::start().await;
    let doc = specialist(&server, "dr-ws").await;
    let mut ws = open(&server).await;

    // Invalid JSON is answered, not dropped.
    ws.send(Message::Text("{oops".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await.unwrap()["type"], "error");

    send(
        &mut ws,
        json!({"type": "authrequest", "token": token(&server, &doc).await}),
    )
    .await;
    assert_eq!(
        recv(&mut ws).await.unwrap(),
        json!({"type": "authresponse", "success": true})
    );
    send(&mut ws, json!({"type": "startusereventrequest"})).await;
    assert_eq!(
        recv(&mut ws).await.unwrap(),
        json!({"type": "startusereventresponse", "success": true})
    );
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await.unwrap()["type"], "pong");

    // A customer starts waiting: the specialist hears of it.
    let alice = client();
    let r: Value = alice
        .post(server.url("/api/groups/default/reservations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ev = recv(&mut ws).await.unwrap();
    assert_eq!(ev["type"], "userevent");
    assert_eq!(ev["event"]["event_type"], "customer_waiting");
    assert_eq!(ev["event"]["reservation_sid"], r["reservation_sid"]);

    // Accept and join: call started; leave: call ended.
    let acc: Value = doc
        .post(server.url("/api/groups/default/accept"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let call_url = server.url(&format!(
        "/api/calls/appointment/{}",
        acc["call"]["call"]["id"].as_str().unwrap()
    ));
    alice.post(format!("{call_url}/join")).send().await.unwrap();
    assert_eq!(
        recv(&mut ws).await.unwrap()["event"]["event_type"],
        "call_started"
    );
    alice
        .post(format!("{call_url}/leave"))
        .send()
        .await
        .unwrap();
    let ended = recv(&mut ws).await.unwrap();
    assert_eq!(ended["event"]["event_type"], "call_ended");
    assert_eq!(ended["event"]["reason"], "customer_left");
    server.stop().await;
}

#[tokio::test]
async fn refuses_anything_before_authentication_and_spent_tokens() {
    let server = TestServer::start().await;
    let doc = specialist(&server, "dr-no").await;

    let mut ws = open(&server).await;
    send(&mut ws, json!({"type": "startusereventrequest"})).await;
    assert_eq!(recv(&mut ws).await, Err(Some(4001)));

    let t = token(&server, &doc).await;
    let mut ws = open(&server).await;
    send(&mut ws, json!({"type": "authrequest", "token": t})).await;
    assert_eq!(recv(&mut ws).await.unwrap()["success"], true);

    // The same token again: refused, and the socket closes with 4003.
    let mut ws = open(&server).await;
    send(&mut ws, json!({"type": "authrequest", "token": t})).await;
    let answer = recv(&mut ws).await.unwrap();
    assert_eq!(answer["type"], "authresponse");
    assert_eq!(answer["success"], false);
    assert_eq!(recv(&mut ws).await, Err(Some(4003)));

    // A customer cannot get a token.
    let r = client()
        .post(server.url("/api/agent/stream-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    server.stop().await;
}

/// A client that floods its channel with messages is cut off with 4029, after its burst.
#[tokio::test]
async fn a_message_flood_closes_the_socket() {
    let server = TestServer::start_with(|c| {
        c.rate_limits = true;
        c.messages_per_second = 5;
    })
    .await;
    let doc = specialist(&server, "dr-flood").await;
    let t = token(&server, &doc).await;
    let mut ws = open(&server).await;
    send(&mut ws, json!({"type": "authrequest", "token": t})).await;
    assert_eq!(recv(&mut ws).await.unwrap()["success"], true);
    send(&mut ws, json!({"type": "startusereventrequest"})).await;
    assert_eq!(recv(&mut ws).await.unwrap()["success"], true);
    // Within the burst (twice the rate), each ping is answered.
    for _ in 0..5 {
        send(&mut ws, json!({"type": "ping"})).await;
        assert_eq!(recv(&mut ws).await.unwrap()["type"], "pong");
    }
    let mut closed = None;
    for _ in 0..50 {
        if ws
            .send(Message::Text(json!({"type": "ping"}).to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    for _ in 0..60 {
        match recv(&mut ws).await {
            Ok(_) => continue,
            Err(code) => {
                closed = code;
                break;
            }
        }
    }
    assert_eq!(closed, Some(4029));
    server.stop().await;
}

/// Malformed frames do not move the authentication deadline: `{` every two seconds still gets
/// the socket closed with 4008 ten seconds after it opened.
#[tokio::test]
async fn malformed_frames_do_not_move_the_authentication_deadline() {
    let server = TestServer::start().await;
    let opened = std::time::Instant::now();
    let mut ws = open(&server).await;
    let mut closed = None;
    // At most 8 rounds of 2 s: past the 10 s deadline with room to spare.
    for _ in 0..8 {
        if ws.send(Message::Text("{".into())).await.is_err() {
            break;
        }
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while let Ok(Some(msg)) =
            tokio::time::timeout_at(until, futures_util::StreamExt::next(&mut ws)).await
        {
            match msg {
                Ok(Message::Close(frame)) => {
                    closed = Some(frame.map(|f| u16::from(f.code)));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if closed.is_some() {
            break;
        }
    }
    assert_eq!(closed, Some(Some(4008)), "closed for not authenticating");
    let took = opened.elapsed().as_secs_f64();
    assert!(took < 13.0, "closed after {took:.1} s, not 10");
    server.stop().await;
}

/// A client carrying the specialist's cookie.
fn with_cookie(cookie: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("cookie", cookie.parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

/// Whether an event stream ends (the server closed it) within five seconds, reading past
/// whatever it still sends.
async fn stream_ends(reader: &mut SseReader) -> bool {
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while reader.next().await.is_some() {}
    })
    .await
    .is_ok()
}

/// On a shared computer, signing out (or the session expiring) stops customers' names and
/// reasons at once: the channel closes with 4401 and the queue stream ends; a token made before
/// the sign-out opens nothing.
#[tokio::test]
async fn sign_out_and_expiry_close_the_channel_and_the_queue_stream() {
    use common::signalling::{specialist_cookie, user_channel};
    let server =
        TestServer::start_with(|c| c.heartbeat = std::time::Duration::from_millis(300)).await;
    let queue_url = server.url("/api/groups/default/events");

    // Signed out.
    let cookie = specialist_cookie(&server, "dr-shared").await;
    let doc = with_cookie(&cookie);
    let mut channel = user_channel(&server, &cookie).await;
    let mut queue = SseReader::open(&doc, &queue_url, None).await;
    assert!(queue.next().await.is_some(), "the snapshot");
    let spare = token(&server, &doc).await;
    let r = doc
        .delete(server.url("/api/agent/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(recv(&mut channel).await, Err(Some(4401)));
    assert!(stream_ends(&mut queue).await, "the queue stream ends");
    let mut ws = open(&server).await;
    send(&mut ws, json!({"type": "authrequest", "token": spare})).await;
    assert_eq!(recv(&mut ws).await.unwrap()["success"], false);

    // Expired (as if twelve hours had passed): seen at the next check.
    let r = plain_client()
        .post(server.url("/api/agent/session"))
        .json(&json!({"user_id": "dr-shared", "secret": "pw"}))
        .send()
        .await
        .unwrap();
    let cookie = common::signalling::cookie_of(&r);
    let doc = with_cookie(&cookie);
    let mut channel = user_channel(&server, &cookie).await;
    let mut queue = SseReader::open(&doc, &queue_url, None).await;
    assert!(queue.next().await.is_some(), "the snapshot");
    let pool = callqueue_server::db::open(&server.config.database)
        .await
        .unwrap();
    sqlx::query("UPDATE agent_sessions SET expires_at = $1")
        .bind("2000-01-01T00:00:00+00:00")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(recv(&mut channel).await, Err(Some(4401)));
    assert!(stream_ends(&mut queue).await, "the queue stream ends");
    server.stop().await;
}
