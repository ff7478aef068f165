//! The accept loop. Every connection is HTTP/1.1 served by hyper and the axum router, except one
//! whose first request opens a reservation stream: that stream is written here, straight onto
//! the socket.
//!
//! Why by hand: each waiting customer holds a reservation stream open for minutes, and one
//! server holds tens of thousands of them. Served by hyper and axum, an idle stream costs about
//! 36 KB (hyper's 8 KB read and 8 KB write buffers, which it does not let us shrink, then the
//! connection, response and SSE-encoder state); here it is the socket, the feed, one timer and
//! the task (README "Performance"). The request head is parsed by httparse, the parser hyper
//! itself uses. Anything that is not a well-formed stream request its caller may see, and every
//! later request on a connection, goes to hyper with the bytes already read, so the router
//! answers it exactly as before, errors included. Browsers often open their stream on a
//! kept-alive connection; the router's handler serves those with the same feed.

use std::{io, time::Duration};

use axum::{
    Router,
    http::{HeaderMap, HeaderName, HeaderValue},
};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::Instant,
};
use tokio_util::task::TaskTracker;

use crate::{
    app::AppState,
    auth::Callers,
    routes::reservations::{FeedEvent, ReservationFeed},
    sse,
};

/// The largest request head read before handing the connection to hyper (which then answers
/// 431 for a head that is too large).
const MAX_HEAD: usize = 16 * 1024;

/// How long a new connection may take to send its first request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The reservation stream's path under `/api`.
const STREAM_PREFIX: &str = "/api/events/g/";

/// Serves `app` on `listener` until `state.shutdown` fires; then stops accepting, lets requests
/// in flight finish and waits for every connection to close.
pub async fn serve(listener: TcpListener, app: Router, state: AppState) -> io::Result<()> {
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = state.shutdown.cancelled() => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tasks.spawn(connection(tcp, app.clone(), state.clone()));
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// What a failed accept means. A connection that went away before we took it is nothing; running
/// out of file descriptors or memory is worth a log line and a pause, as hyper and axum do, so
/// the loop neither spins nor gives up.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// How a connection's first request is served.
enum First {
    Stream(ReservationFeed),
    Router(Vec<u8>),
    Closed,
}

async fn connection(mut tcp: TcpStream, app: Router, state: AppState) {
    // Boxed, like the router's connection below: the task is allocated at the size of its
    // largest state, and an idle stream should not carry either of theirs.
    let first = Box::pin(first_request(&mut tcp, &state)).await;
    match first {
        First::Stream(feed) => {
            drop(app);
            tracing::debug!("reservation stream on a new connection: written by the accept loop");
            let heartbeat = state.store.config().heartbeat;
            stream(tcp, feed, heartbeat, state).await;
        }
        First::Router(head) => Box::pin(router(tcp, head, app, state)).await,
        First::Closed => {}
    }
}

/// Reads the first request head and decides who serves the connection.
async fn first_request(tcp: &mut TcpStream, state: &AppState) -> First {
    let mut buf = Vec::with_capacity(1024);
    let deadline = Instant::now() + HEAD_TIMEOUT;
    loop {
        let read = tokio::select! {
            read = tcp.read_buf(&mut buf) => read,
            _ = tokio::time::sleep_until(deadline) => return First::Closed,
            _ = state.shutdown.cancelled() => return First::Closed,
        };
        match read {
            Ok(0) | Err(_) => return First::Closed,
            Ok(_) => {}
        }
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(len)) if len == buf.len() => {
                return match stream_request(&request) {
                    Some((group, sid, cookies)) => {
                        match open_feed(state, group, sid, cookies).await {
                            Some(feed) => First::Stream(feed),
                            None => First::Router(buf),
                        }
                    }
                    None => First::Router(buf),
                };
            }
            // Pipelined requests, a body, or a malformed head: the router's business.
            Ok(httparse::Status::Complete(_)) | Err(_) => return First::Router(buf),
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return First::Router(buf),
            Ok(httparse::Status::Partial) => buf.reserve(1024),
        }
    }
}

/// The group, reservation and cookie headers of a plain `GET` of a reservation stream, or
/// `None` for any other request.
fn stream_request<'h>(
    request: &httparse::Request<'h, '_>,
) -> Option<(&'h str, &'h str, Vec<&'h [u8]>)> {
    if request.method != Some("GET") {
        return None;
    }
    let path = request.path?;
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let (group, sid) = path.strip_prefix(STREAM_PREFIX)?.split_once("/r/")?;
    // Percent-encoded or odd segments are left to the router's decoding and checks.
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !plain(group) || !plain(sid) {
        return None;
    }
    let mut cookies = Vec::new();
    for h in request.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("cookie") {
            cookies.push(h.value);
        } else if name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && h.value != b"0")
        {
            return None;
        }
    }
    Some((group, sid, cookies))
}

/// The feed, if the cookies name someone who may see the reservation.
async fn open_feed(
    state: &AppState,
    group: &str,
    sid: &str,
    cookies: Vec<&[u8]>,
) -> Option<ReservationFeed> {
    let mut headers = HeaderMap::new();
    for value in cookies {
        headers.append(
            HeaderName::from_static("cookie"),
            HeaderValue::from_bytes(value).ok()?,
        );
    }
    let callers = Callers::from_headers(&headers, &state.store).await.ok()?;
    ReservationFeed::open(state, &callers, group, sid)
        .await
        .ok()
}

/// The rest of the connection, through hyper and the router, starting with the bytes read. On
/// shutdown the request in flight finishes and the connection closes.
async fn router(tcp: TcpStream, head: Vec<u8>, app: Router, state: AppState) {
    let (read, write) = tcp.into_split();
    let io = tokio::io::join(std::io::Cursor::new(head).chain(read), write);
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = state.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Writes a reservation stream until the reservation is gone, the client leaves or the server
/// shuts down. The body runs until the connection closes (`Connection: close`), so no chunked
/// framing is needed.
async fn stream(
    mut tcp: TcpStream,
    mut feed: ReservationFeed,
    heartbeat: Duration,
    state: AppState,
) {
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
        content-type: text/event-stream\r\n\
        cache-control: no-cache\r\n\
        connection: close\r\n\r\n";
    if tcp.write_all(HEAD).await.is_err() {
        return;
    }
    let beat = tokio::time::sleep(heartbeat);
    tokio::pin!(beat);
    loop {
        let frame = tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => break,
            event = feed.next() => match event {
                Some(event) => frame(&event),
                None => break,
            },
            _ = &mut beat => ":heartbeat\n\n".to_string(),
            ready = tcp.readable() => {
                // The client sends nothing on a stream; reading tells us when it has gone.
                let mut sink = [0u8; 256];
                match ready.and_then(|()| tcp.try_read(&mut sink)) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => break,
                }
            }
        };
        if tcp.write_all(frame.as_bytes()).await.is_err() {
            break;
        }
        beat.as_mut().reset(Instant::now() + heartbeat);
    }
    let _ = tcp.shutdown().await;
}

/// One SSE event: the first carries the `retry:` hint. The JSON has no newlines, so one
/// `data:` line holds it.
fn frame(event: &FeedEvent) -> String {
    let retry = if event.first {
        format!("retry: {}\n", sse::RETRY.as_millis())
    } else {
        String::new()
    };
    format!("{retry}id: {}\ndata: {}\n\n", event.id, event.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Option<(String, String, usize)> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut headers);
        request.parse(raw.as_bytes()).ok()?;
        stream_request(&request).map(|(g, s, c)| (g.to_string(), s.to_string(), c.len()))
    }

    #[test]
    fn only_plain_stream_gets_are_taken() {
        let ok = "GET /api/events/g/default/r/abc_1-2?last_event_id=4 HTTP/1.1\r\nHost: x\r\nCookie: a=b\r\nCookie: c=d\r\n\r\n";
        assert_eq!(parse(ok), Some(("default".into(), "abc_1-2".into(), 2)));
        for other in [
            "POST /api/events/g/default/r/abc HTTP/1.1\r\n\r\n",
            "GET /api/events/g/default/r/a%20b HTTP/1.1\r\n\r\n",
            "GET /api/events/g//r/abc HTTP/1.1\r\n\r\n",
            "GET /api/events/g/default/r/ HTTP/1.1\r\n\r\n",
            "GET /api/events/g/default/abc HTTP/1.1\r\n\r\n",
            "GET /api/groups/default/events HTTP/1.1\r\n\r\n",
            "GET /api/events/g/default/r/abc HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET /api/events/g/default/r/abc HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "GET /api/events/g/default/r/abc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn frames_are_sse() {
        let first = FeedEvent {
            id: 7,
            json: "{\"a\":1}".into(),
            first: true,
        };
        assert_eq!(frame(&first), "retry: 2000\nid: 7\ndata: {\"a\":1}\n\n");
        let later = FeedEvent {
            first: false,
            ..first
        };
        assert_eq!(frame(&later), "id: 7\ndata: {\"a\":1}\n\n");
    }
}
