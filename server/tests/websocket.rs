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
