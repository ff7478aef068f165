//! Runs the real server on an ephemeral loopback port with a temporary database, and reads its
//! Server-Sent Events the way a browser would.
#![allow(dead_code)]

pub mod signalling;

use std::{path::PathBuf, time::Duration};

use callqueue_protocol::Role;
use callqueue_server::{app::Server, config::Config, db, store::Store};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

pub struct TestServer {
    pub base: String,
    /// `http://addr` of the plain-HTTP listener beside HTTPS, when TLS is on.
    pub http: Option<String>,
    /// `http://addr` of `/metrics`, when the config asked for it.
    pub metrics: Option<String>,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
    pub config: Config,
    /// The server's store (for what no API shows).
    pub store: Store,
    _dir: tempfile::TempDir,
}

/// A test's own database: an SQLite file in `dir`, or, when `CALLQUEUE_TEST_POSTGRES` names a
/// PostgreSQL server (its URL, with a role that may create databases), a new database there.
/// The server's test command runs every suite both ways (scripts/test).
pub async fn test_config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::for_tests(dir.path().join("callqueue.sqlite3"));
    if let Some(url) = postgres_url().await {
        config.database = db::Location::Postgres(url);
    }
    config
}

/// Whether the suites run on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("CALLQUEUE_TEST_POSTGRES").is_ok_and(|u| !u.is_empty())
}

/// A fresh, empty database on the test PostgreSQL server, if there is one.
async fn postgres_url() -> Option<String> {
    use sqlx::Connection;
    let admin = std::env::var("CALLQUEUE_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())?;
    let name = format!(
        "t_{}",
        callqueue_server::tokens::random_token().to_lowercase()
    );
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("the test PostgreSQL server answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&dir).await;
        tweak(&mut config);
        Self::start_in(dir, config).await
    }

    /// Starts on `config` in `dir` (kept alive for the server's life).
    pub async fn start_in(dir: tempfile::TempDir, config: Config) -> Self {
        let server = Server::bind(config.clone()).await.expect("server binds");
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let base = format!("{scheme}://{}", server.local_addr());
        let http = server.http_addr().map(|a| format!("http://{a}"));
        let metrics = server.metrics_addr().map(|a| format!("http://{a}"));
        let store = server.state.store.clone();
        let shutdown = server.state.shutdown.clone();
        let handle = tokio::spawn(server.run());
        Self {
            base,
            http,
            metrics,
            shutdown,
            handle,
            config,
            store,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server and hands back its folder (to start again on the same database).
    pub async fn stop(self) -> (tempfile::TempDir, Config) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("graceful shutdown within 10 s")
            .unwrap()
            .unwrap();
        (self._dir, self.config)
    }

    /// Creates a specialist directly in the database, as `agent add` does.
    pub async fn add_agent(&self, user_id: &str, secret: &str) {
        let pool = db::open(&self.config.database).await.unwrap();
        Store::add_agent(
            &pool,
            user_id,
            Role::Specialist,
            &["default".to_string()],
            secret,
        )
        .await
        .unwrap();
    }
}

/// A browser-like client: keeps cookies, and says its bodies are JSON as the app does (the
/// server takes state-changing requests only so).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(json_headers())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// [`client`], with its cookie jar (to send its cookies by hand on a raw socket).
pub fn client_with_jar() -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let c = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .default_headers(json_headers())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    (c, jar)
}

/// A client without cookies, sending `Content-Type: application/json`.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(json_headers())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn json_headers() -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    h
}

/// A customer joins the default group's queue (or is answered their active reservation).
pub async fn join_queue(server: &TestServer, c: &reqwest::Client) -> serde_json::Value {
    let r = c
        .post(server.url("/api/groups/default/reservations"))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 201 || r.status() == 200, "{}", r.status());
    r.json().await.unwrap()
}

/// A specialist accepts the next customer; the accept's answer.
pub async fn accept_next(server: &TestServer, doc: &reqwest::Client) -> serde_json::Value {
    let r = doc
        .post(server.url("/api/groups/default/accept"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "accept");
    r.json().await.unwrap()
}

/// A GET's status and JSON body (`null` if it has none).
pub async fn post_json(
    c: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = c.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

pub async fn get_json(c: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// A reservation's id.
pub fn sid(r: &serde_json::Value) -> String {
    r["reservation_sid"].as_str().unwrap().to_string()
}

/// A signed-in, available specialist.
pub async fn specialist(server: &TestServer, user_id: &str) -> reqwest::Client {
    server.add_agent(user_id, "secret-1").await;
    let c = client();
    let r = c
        .post(server.url("/api/agent/session"))
        .json(&serde_json::json!({"user_id": user_id, "secret": "secret-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "sign in");
    let r = c
        .put(server.url("/api/agent/availability"))
        .json(&serde_json::json!({"available": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "availability");
    c
}

/// One parsed SSE event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap()
    }

    pub fn id(&self) -> u64 {
        self.id.as_deref().unwrap().parse().unwrap()
    }
}

/// Reads an event stream incrementally.
pub struct SseReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
    /// Heartbeat events seen (and skipped) so far.
    pub heartbeats: usize,
}

impl SseReader {
    pub async fn open(client: &reqwest::Client, url: &str, last_id: Option<u64>) -> Self {
        let mut req = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "stream opens: {url}");
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
            heartbeats: 0,
        }
    }

    /// The next event, within `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<SseEvent> {
        tokio::time::timeout(timeout, self.next())
            .await
            .ok()
            .flatten()
    }

    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf[..end].to_string();
                self.buf.drain(..end + 2);
                let mut ev = SseEvent::default();
                let mut data = Vec::new();
                let mut any = false;
                for line in block.lines() {
                    if line.starts_with(':') {
                        continue;
                    }
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    any = true;
                    match k {
                        "id" => ev.id = Some(v.to_string()),
                        "event" => ev.event = Some(v.to_string()),
                        "data" => data.push(v.to_string()),
                        "retry" => ev.retry = v.parse().ok(),
                        _ => {}
                    }
                }
                if !any || data.is_empty() {
                    continue;
                }
                // Not news: a test reads the events, and counts these.
                if ev.event.as_deref() == Some(callqueue_protocol::HEARTBEAT_EVENT) {
                    self.heartbeats += 1;
                    continue;
                }
                ev.data = data.join("\n");
                return Some(ev);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }
}

pub fn dist_with_index() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!DOCTYPE html><html><body>callqueue app</body></html>",
    )
    .unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log('app')").unwrap();
    // The console's bundle, as scripts/build-app lays it out, with an inline loader.
    std::fs::create_dir(dir.path().join("agent")).unwrap();
    std::fs::write(
        dir.path().join("agent/index.html"),
        "<!DOCTYPE html><html><head><script type=\"module\">start('console')</script></head>\
         <body>callqueue console</body></html>",
    )
    .unwrap();
    // A build's file named by its content, with the brotli copy the build writes beside it.
    std::fs::write(
        dir.path().join("callqueue-0123456789abcdef_bg.wasm"),
        b"\0asm\x01\0\0\0",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("callqueue-0123456789abcdef_bg.wasm.br"),
        b"precompressed",
    )
    .unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// A test's WebSocket client.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends one JSON text message.
pub async fn send(ws: &mut Socket, v: serde_json::Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        v.to_string().into(),
    ))
    .await
    .unwrap();
}

/// The next text message as JSON (heartbeats skipped), or the close code.
pub async fn recv(ws: &mut Socket) -> Result<serde_json::Value, Option<u16>> {
    use tokio_tungstenite::tungstenite::Message;
    // One deadline for the answer: heartbeats skipped on the way do not move it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("an answer within 5 s");
        match msg {
            // The server's heartbeat is not news (`heartbeats_reach_every_socket` reads it).
            Some(Ok(Message::Text(t))) if t.as_str() == callqueue_protocol::HEARTBEAT_FRAME => {
                continue;
            }
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code.into())),
            Some(Ok(_)) => continue,
            _ => return Err(None),
        }
    }
}
