//! Cookie-carrying helpers for the call's signalling socket and the specialist's notice
//! channel (signal.rs, cluster.rs).

use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::client::IntoClientRequest};

use super::*;

pub fn cookie_of(r: &reqwest::Response) -> String {
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A customer in the queue: their cookie.
pub async fn customer(server: &TestServer) -> String {
    let r = plain_client()
        .post(server.url("/api/groups/default/reservations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    cookie_of(&r)
}

/// A signed-in, available specialist: their cookie.
pub async fn specialist_cookie(server: &TestServer, name: &str) -> String {
    server.add_agent(name, "pw").await;
    let r = plain_client()
        .post(server.url("/api/agent/session"))
        .json(&json!({"user_id": name, "secret": "pw"}))
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(&r);
    plain_client()
        .put(server.url("/api/agent/availability"))
        .header("cookie", &cookie)
        .json(&json!({"available": true}))
        .send()
        .await
        .unwrap();
    cookie
}

/// The specialist accepts the next customer: the call's id.
pub async fn accept(server: &TestServer, doc: &str) -> String {
    let r: Value = plain_client()
        .post(server.url("/api/groups/default/accept"))
        .header("cookie", doc)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["call"]["call"]["id"].as_str().unwrap().to_string()
}

pub fn signal_url(server: &TestServer, call: &str) -> String {
    server
        .url(&format!("/api/calls/appointment/{call}/signal"))
        .replace("http://", "ws://")
}

/// Opens the signal socket with a cookie; the HTTP status when refused.
pub async fn open(server: &TestServer, call: &str, cookie: Option<&str>) -> Result<Socket, u16> {
    let mut request = signal_url(server, call).into_client_request().unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
    }
    match connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

pub async fn hello(ws: &mut Socket, session: &str) -> Value {
    send(
        ws,
        json!({"type": "hello", "session": session, "media": {"audio": true, "video": true}}),
    )
    .await;
    let welcome = recv(ws).await.unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    welcome
}

/// The specialist's notice channel, past its handshake.
pub async fn user_channel(server: &TestServer, cookie: &str) -> Socket {
    let t: Value = plain_client()
        .post(server.url("/api/agent/stream-token"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = server.url("/api/ws").replace("http://", "ws://");
    let mut ws = connect_async(url).await.unwrap().0;
    send(&mut ws, json!({"type": "authrequest", "token": t["token"]})).await;
    assert_eq!(recv(&mut ws).await.unwrap()["success"], true);
    send(&mut ws, json!({"type": "startusereventrequest"})).await;
    assert_eq!(recv(&mut ws).await.unwrap()["success"], true);
    ws
}

/// The next user event on the channel.
pub async fn user_event(ws: &mut Socket) -> Value {
    let m = recv(ws).await.unwrap();
    assert_eq!(m["type"], "userevent", "{m}");
    m["event"].clone()
}
