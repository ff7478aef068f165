//! The accept loop. Every connection is HTTP/1.1 served by hyper and the axum router, except one
//! whose first request opens a reservation stream: that stream is written here, straight onto
//! the socket. With TLS on, the handshake comes first; a client that chose HTTP/2 (ALPN) is
//! served by hyper's HTTP/2 and the router, an HTTP/1.1 one exactly as over plain TCP.
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

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::ConnectInfo,
    http::{HeaderMap, HeaderName, HeaderValue},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::task::TaskTracker;

use crate::{
    http::auth::Callers,
    http::routes::reservations::{FeedEvent, ReservationFeed},
    http::sse,
    limits::{ConnectionPermit, StreamPermit},
    state::AppState,
};

/// The largest request head, on every request of a connection: the accept loop reads no more
/// before handing the connection to hyper, and hyper answers 431 past it.
const MAX_HEAD: usize = 16 * 1024;

/// The reservation stream's path under `/api`.
const STREAM_PREFIX: &str = "/api/events/g/";

/// What a listener serves.
#[derive(Clone)]
pub enum Kind {
    /// The app, over plain TCP or (with an acceptor) TLS, reservation streams written here.
    App(Option<TlsAcceptor>),
    /// Plain HTTP beside HTTPS: every request to the router (ACME challenges and redirects).
    Redirect,
}

/// Serves `app` on `listener` until `state.shutdown` fires; then stops accepting, lets requests
/// in flight finish and waits for every connection to close.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    state: AppState,
    kind: Kind,
) -> io::Result<()> {
    let tasks = TaskTracker::new();
    // Each connection holds a place; past the cap a connection is told so and closed.
    let places = Arc::new(Semaphore::new(state.store.config().max_connections));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = state.shutdown.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Ok(place) = places.clone().try_acquire_owned() else {
            tasks.spawn(refuse(tcp, Refusal::Busy));
            continue;
        };
        // One address may not take every place (idle or slow connections are cheap to hold).
        let Some(own) = state.limits.open_connection(peer.ip()) else {
            tasks.spawn(refuse(
                tcp,
                Refusal::TooMany(state.limits.connections_per_client()),
            ));
            continue;
        };
        let places = Places {
            _server: place,
            _client: own,
        };
        tasks.spawn(connection(
            tcp,
            peer,
            app.clone(),
            state.clone(),
            places,
            tasks.clone(),
            kind.clone(),
        ));
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

/// A connection's places: one of the server's and one of its client's.
struct Places {
    _server: OwnedSemaphorePermit,
    _client: ConnectionPermit,
}

/// Why a connection is turned away.
enum Refusal {
    /// The server holds `--max-connections`.
    Busy,
    /// The client's address holds this many (`--connections-per-client`).
    TooMany(u32),
}

/// Tells a connection over a cap so, and closes it.
async fn refuse(mut tcp: TcpStream, why: Refusal) {
    let (status, body) = match why {
        Refusal::Busy => (
            "503 Service Unavailable",
            r#"{"error":{"code":"server_busy","message":"the server has too many open connections; try again shortly"}}"#.to_string(),
        ),
        Refusal::TooMany(cap) => (
            "429 Too Many Requests",
            format!(
                r#"{{"error":{{"code":"too_many_requests","message":"this address already has {cap} connections open; close some first"}}}}"#
            ),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
         retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = tcp.write_all(response.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

/// How a connection's first request is served.
// Lives only from the first request to the match in `connection`: boxing the large variant
// would add a heap allocation to every stream to save stack for a moment.
#[allow(clippy::large_enum_variant)]
enum First {
    Stream(ReservationFeed, StreamPermit),
    Router(Vec<u8>),
    Closed,
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    state: AppState,
    places: Places,
    tasks: TaskTracker,
    kind: Kind,
) {
    match kind {
        Kind::App(None) => Box::pin(app_connection(tcp, peer, app, state, places, tasks)).await,
        Kind::App(Some(tls)) => {
            let handshake = tls.accept(tcp);
            let tls = match tokio::time::timeout(state.store.config().idle_timeout, handshake).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                let _held = places;
                Box::pin(http2(tls, peer, app, state)).await
            } else {
                Box::pin(app_connection(tls, peer, app, state, places, tasks)).await
            }
        }
        Kind::Redirect => {
            let _held = places;
            Box::pin(router(tcp, peer, Vec::new(), app, state)).await
        }
    }
}

/// A connection the accept loop may write a reservation stream on: plain TCP or TLS over it.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Waits until the client sends something or goes away; `false` once it has gone. (A client
    /// sends nothing on a stream; reading tells us when it has left.)
    fn heard(&mut self) -> impl Future<Output = bool> + Send;
}

impl Socket for TcpStream {
    async fn heard(&mut self) -> bool {
        // Readiness first, then a read: no buffer is held while waiting.
        let mut sink = [0u8; 256];
        match self
            .readable()
            .await
            .and_then(|()| self.try_read(&mut sink))
        {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        }
    }
}

impl Socket for TlsStream<TcpStream> {
    async fn heard(&mut self) -> bool {
        let mut sink = [0u8; 256];
        matches!(self.read(&mut sink).await, Ok(n) if n > 0)
    }
}

/// An HTTP/1.1 connection to the app: its first request may open a reservation stream.
async fn app_connection<S: Socket>(
    mut tcp: S,
    peer: SocketAddr,
    app: Router,
    state: AppState,
    places: Places,
    tasks: TaskTracker,
) {
    // Boxed, like the router's connection below: the task is allocated at the size of its
    // largest state.
    let first = Box::pin(first_request(&mut tcp, peer, &state)).await;
    match first {
        First::Stream(feed, permit) => {
            tracing::debug!("reservation stream on a new connection: written by the accept loop");
            let heartbeat = state.store.config().heartbeat;
            let shutdown = state.shutdown.clone();
            // The stream goes on in a task of its own, allocated at the size of what it holds
            // (under 1 KB); this one (about 2 KB: the router's and the first request's state
            // share its layout) ends here. Every idle stream costs its task's size.
            tasks.spawn(stream(tcp, feed, heartbeat, shutdown, (places, permit)));
        }
        First::Router(head) => {
            let _held = places;
            Box::pin(router(tcp, peer, head, app, state)).await
        }
        First::Closed => {}
    }
}

/// Reads the first request head and decides who serves the connection.
async fn first_request<S: Socket>(tcp: &mut S, peer: SocketAddr, state: &AppState) -> First {
    let mut buf = Vec::with_capacity(1024);
    let deadline = Instant::now() + state.store.config().idle_timeout;
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
                    Some((group, sid, headers)) => {
                        match open_feed(state, peer, group, sid, headers).await {
                            Some((feed, permit)) => First::Stream(feed, permit),
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

/// A stream request's group, reservation id and the headers of [`READ_HEADERS`].
type StreamHead<'h> = (&'h str, &'h str, Vec<(&'static str, &'h [u8])>);

/// The headers the accept loop reads: cookies (who is asking) and those a trusted proxy sets.
const READ_HEADERS: [&str; 3] = ["cookie", "x-forwarded-for", "x-forwarded-proto"];

/// The group, reservation and the headers of [`READ_HEADERS`] of a plain `GET` of a
/// reservation stream, or `None` for any other request.
fn stream_request<'h>(request: &httparse::Request<'h, '_>) -> Option<StreamHead<'h>> {
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
    let mut headers = Vec::new();
    for h in request.headers.iter() {
        let name = h.name;
        if let Some(known) = READ_HEADERS.iter().find(|k| name.eq_ignore_ascii_case(k)) {
            headers.push((*known, h.value));
        } else if name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && h.value != b"0")
        {
            return None;
        }
    }
    Some((group, sid, headers))
}

/// The feed and the client's stream place, if the cookies name someone who may see the
/// reservation and the client has a place left (else the router answers, with its error).
async fn open_feed(
    state: &AppState,
    peer: SocketAddr,
    group: &str,
    sid: &str,
    read: Vec<(&'static str, &[u8])>,
) -> Option<(ReservationFeed, StreamPermit)> {
    let mut headers = HeaderMap::new();
    for (name, value) in read {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_bytes(value).ok()?,
        );
    }
    let client = state.limits.client(peer.ip(), &headers);
    let permit = state
        .limits
        .open_stream(client, crate::metrics::Connection::EventStream)
        .ok()?;
    let callers = Callers::from_headers(&headers, &state.store).await.ok()?;
    let feed = ReservationFeed::open(state, &callers, group, sid)
        .await
        .ok()?;
    Some((feed, permit))
}

/// Runs a hyper connection to its end; on shutdown its requests in flight finish first. (A
/// macro: hyper's HTTP/1 and HTTP/2 connections share `graceful_shutdown` by name, not by trait.)
macro_rules! until_shutdown {
    ($conn:ident, $state:ident, $what:literal) => {
        tokio::pin!($conn);
        let result = tokio::select! {
            result = $conn.as_mut() => result,
            _ = $state.shutdown.cancelled() => {
                $conn.as_mut().graceful_shutdown();
                $conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, concat!($what, " ended with an error"));
        }
    };
}

/// The rest of the connection, through hyper and the router, starting with the bytes read. On
/// shutdown the request in flight finishes and the connection closes.
async fn router<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    tcp: S,
    peer: SocketAddr,
    head: Vec<u8>,
    app: Router,
    state: AppState,
) {
    let (read, write) = tokio::io::split(tcp);
    let io = tokio::io::join(std::io::Cursor::new(head).chain(read), write);
    // Every request says which peer it came from (the client address of `auth::ClientInfo`).
    let app = app.layer(axum::Extension(ConnectInfo(peer)));
    // hyper's header read timeout starts as soon as it waits for a request head, so it closes
    // idle kept-alive connections and slow senders alike; the head limit holds for every
    // request, not only the first (which the accept loop read).
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.store.config().idle_timeout)
        .max_header_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .with_upgrades();
    until_shutdown!(conn, state, "connection");
}

/// An HTTP/2 connection (over TLS), every request through the router. On shutdown the streams
/// in flight finish and the connection closes.
async fn http2<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    tls: S,
    peer: SocketAddr,
    app: Router,
    state: AppState,
) {
    let app = app.layer(axum::Extension(ConnectInfo(peer)));
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // Pings find a connection whose client vanished (a phone that lost its network).
        .keep_alive_interval(Some(state.store.config().idle_timeout))
        .max_header_list_size(MAX_HEAD as u32)
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
    until_shutdown!(conn, state, "HTTP/2 connection");
}

/// Writes a reservation stream until the reservation is gone, the client leaves or the server
/// shuts down, holding the connection's and the stream's places meanwhile. The body runs until
/// the connection closes (`Connection: close`), so no chunked framing is needed.
async fn stream<S: Socket>(
    mut tcp: S,
    mut feed: ReservationFeed,
    heartbeat: Duration,
    shutdown: tokio_util::sync::CancellationToken,
    _places: (Places, StreamPermit),
) {
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
        content-type: text/event-stream\r\n\
        cache-control: no-cache\r\n\
        x-content-type-options: nosniff\r\n\
        connection: close\r\n\r\n";
    if tcp.write_all(HEAD).await.is_err() || tcp.flush().await.is_err() {
        return;
    }
    let beat = tokio::time::sleep(heartbeat);
    tokio::pin!(beat);
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            event = feed.next() => match event {
                Some(event) => frame(&event),
                None => break,
            },
            _ = &mut beat => format!("event: {}\ndata: {{}}\n\n", callqueue_protocol::HEARTBEAT_EVENT),
            alive = tcp.heard() => if alive { continue } else { break },
        };
        // Flushed: a no-op on TCP; over TLS nothing of the frame waits in the session.
        if tcp.write_all(frame.as_bytes()).await.is_err() || tcp.flush().await.is_err() {
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
