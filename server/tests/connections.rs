//! Reservation streams over raw sockets, both ways a browser opens them: as the first request of
//! a new connection (written by the server's own accept loop) and on a kept-alive connection
//! (through hyper and the router). Each must say the same thing; anything the accept loop does
//! not take must still get the router's answer.

mod common;

use std::time::Duration;

use common::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Joins the queue; the reservation id and the customer cookie (`cq_customer=...`).
async fn join(server: &TestServer) -> (String, String) {
    let r = plain_client()
        .post(server.url("/api/groups/default/reservations"))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        body["reservation_sid"].as_str().unwrap().to_string(),
        cookie,
    )
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until `done` holds for what has arrived, the peer closes, or 5 s pass.
async fn read_until(tcp: &mut TcpStream, got: &mut String, done: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while !done(got) {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => return,
        }
    }
}

fn stream_request(sid: &str, cookie: &str) -> String {
    format!(
        "GET /api/events/g/default/r/{sid} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
    )
}

/// The `data:` lines of an SSE text, parsed, but for the heartbeats' empty `{}`.
fn data(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v.as_object().is_none_or(|o| !o.is_empty()))
        .collect()
}

#[tokio::test]
async fn a_stream_on_a_new_connection_snapshots_updates_beats_and_ends_on_shutdown() {
    let server = TestServer::start_with(|c| c.heartbeat = Duration::from_millis(200)).await;
    let (sid, cookie) = join(&server).await;
    let mut tcp = connect(&server).await;
    tcp.write_all(stream_request(&sid, &cookie).as_bytes())
        .await
        .unwrap();
    let mut got = String::new();
    read_until(&mut tcp, &mut got, |t| t.contains("data:")).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("content-type: text/event-stream"), "{got}");
    assert!(
        got.contains("retry: 2000\n"),
        "the first event says when to retry: {got}"
    );
    let snapshot = &data(&got)[0];
    assert_eq!(snapshot["reservation_sid"], sid.as_str());
    assert_eq!(snapshot["queue_position"], 1);

    read_until(&mut tcp, &mut got, |t| t.contains("event: heartbeat")).await;
    assert!(
        got.contains("event: heartbeat\ndata: {}\n\n"),
        "heartbeat events while idle: {got}"
    );

    let r = plain_client()
        .delete(server.url(&format!("/api/groups/default/reservations/{sid}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    read_until(&mut tcp, &mut got, |t| data(t).len() >= 2).await;
    let update = &data(&got)[1];
    assert_eq!(
        update["reservation_status"],
        "GROUP_RESERVATION_STATUS_CANCELED"
    );
    let ids: Vec<u64> = got
        .lines()
        .filter_map(|l| l.strip_prefix("id: ")?.parse().ok())
        .collect();
    assert!(ids.len() == 2 && ids[1] > ids[0], "ids grow: {ids:?}");

    // Shutdown ends the stream (the server does not wait on it) and closes the socket.
    server.stop().await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "the socket closes on shutdown");
}

#[tokio::test]
async fn a_stream_on_a_kept_alive_connection_says_the_same() {
    let server = TestServer::start().await;
    let (sid, cookie) = join(&server).await;
    let mut tcp = connect(&server).await;
    // A plain read first, so the stream is the connection's second request.
    tcp.write_all(
        format!(
            "GET /api/groups/default/reservations/{sid} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = String::new();
    read_until(&mut tcp, &mut got, |t| t.ends_with('}')).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains(&sid), "{got}");

    tcp.write_all(stream_request(&sid, &cookie).as_bytes())
        .await
        .unwrap();
    let mut stream = String::new();
    read_until(&mut tcp, &mut stream, |t| t.contains("data:")).await;
    assert!(stream.starts_with("HTTP/1.1 200 OK\r\n"), "{stream}");
    assert!(stream.contains("text/event-stream"), "{stream}");
    assert!(stream.contains("retry: 2000"), "{stream}");
    let snapshot = &data(&stream)[0];
    assert_eq!(snapshot["reservation_sid"], sid.as_str());
    assert_eq!(snapshot["queue_position"], 1);
    server.stop().await;
}

#[tokio::test]
async fn what_the_accept_loop_does_not_take_gets_the_routers_answer() {
    let server = TestServer::start().await;
    let (sid, cookie) = join(&server).await;

    let cases = [
        // A cookie we never issued: the reservation is not theirs to see.
        (
            stream_request(&sid, "cq_customer=someone-else"),
            "404",
            "not_found",
        ),
        // No cookie at all.
        (stream_request(&sid, ""), "404", "not_found"),
        // An id the router rejects once decoded.
        (stream_request("a%24b", &cookie), "400", "bad_request"),
        // No such group.
        (
            format!(
                "GET /api/events/g/nowhere/r/{sid} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
            ),
            "404",
            "not_found",
        ),
        // Not a stream at all.
        (
            "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            "200",
            "\"ok\"",
        ),
        // A head split over several writes is read whole.
        (
            "GET /api/nope HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            "404",
            "not_found",
        ),
    ];
    for (i, (request, status, body)) in cases.iter().enumerate() {
        let mut tcp = connect(&server).await;
        if i == cases.len() - 1 {
            for part in request.as_bytes().chunks(7) {
                tcp.write_all(part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } else {
            tcp.write_all(request.as_bytes()).await.unwrap();
        }
        let mut got = String::new();
        read_until(&mut tcp, &mut got, |t| t.contains(body)).await;
        assert!(
            got.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:?} → {got}"
        );
        assert!(got.contains(body), "{request:?} → {got}");
    }

    // Garbage gets a 400 and a closed connection, not a hang.
    let mut tcp = connect(&server).await;
    tcp.write_all(b"\x00\x01 not http\r\n\r\n").await.unwrap();
    let mut got = String::new();
    read_until(&mut tcp, &mut got, |_| false).await;
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 400"), "{got}");
    server.stop().await;
}
