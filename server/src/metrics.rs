//! What an operator watches: Prometheus text at `/metrics` on `--metrics-addr`, recorded with
//! the `metrics` facade and rendered by `metrics-exporter-prometheus`.
//!
//! Counters and histograms are recorded where things happen, on the node that does them (with
//! several nodes, Prometheus adds the nodes up); the per-group gauges are read from the store
//! when scraped, so they are never stale.

use std::{net::SocketAddr, sync::OnceLock, time::Instant};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::store::Store;

/// Every metric, with what it measures (the README and the dashboard use these names).
pub const METRICS: &[(&str, &str)] = &[
    (QUEUE_LENGTH, "gauge, per group: customers waiting now"),
    (
        AVAILABLE,
        "gauge, per group: specialists available now (in a call or not)",
    ),
    (
        WAIT_TO_MATCH,
        "histogram, per group: seconds from joining the queue to being matched",
    ),
    (
        WAIT_TO_JOIN,
        "histogram, per group: seconds from joining the queue to joining the call",
    ),
    (
        ABANDONED,
        "counter, per group and reason (left, expired): reservations that ended before a match",
    ),
    (
        ESTIMATE_ERROR,
        "histogram, per group: the real wait minus the first estimate, seconds (negative: sooner)",
    ),
    (
        CALLS_STARTED,
        "counter, per group: calls whose session started",
    ),
    (
        CALLS_ENDED,
        "counter, per group and reason (time_up, specialist_left, customer_left, not_joined, canceled)",
    ),
    (
        EXTENSIONS,
        "counter, per group and kind (session: a call made longer; join: \"I need a moment\")",
    ),
    (
        OPEN_CONNECTIONS,
        "gauge, per kind (event_stream, websocket): long-lived connections open now",
    ),
    (
        HTTP_REQUESTS,
        "counter, per route, method and status: API requests answered",
    ),
    (
        HTTP_DURATION,
        "histogram, per route: seconds to answer an API request",
    ),
    (
        CALL_RATING,
        "histogram, per group: customers' ratings of their calls, 1 to 5",
    ),
    (
        CHAT_MESSAGES,
        "counter, per group and role (specialist, patient): chat messages sent in calls",
    ),
    (
        TLS_CERTIFICATE_EXPIRY,
        "gauge: when the certificate presented expires, Unix seconds (HTTPS on)",
    ),
];

pub const QUEUE_LENGTH: &str = "callqueue_queue_length";
pub const AVAILABLE: &str = "callqueue_available_specialists";
pub const WAIT_TO_MATCH: &str = "callqueue_wait_to_match_seconds";
pub const WAIT_TO_JOIN: &str = "callqueue_wait_to_join_seconds";
pub const ABANDONED: &str = "callqueue_abandoned_total";
pub const ESTIMATE_ERROR: &str = "callqueue_estimate_error_seconds";
pub const CALLS_STARTED: &str = "callqueue_calls_started_total";
pub const CALLS_ENDED: &str = "callqueue_calls_ended_total";
pub const EXTENSIONS: &str = "callqueue_extensions_total";
pub const OPEN_CONNECTIONS: &str = "callqueue_open_connections";
pub const HTTP_REQUESTS: &str = "callqueue_http_requests_total";
pub const HTTP_DURATION: &str = "callqueue_http_request_duration_seconds";
pub const CALL_RATING: &str = "callqueue_call_rating";
pub const CHAT_MESSAGES: &str = "callqueue_chat_messages_total";
pub const TLS_CERTIFICATE_EXPIRY: &str = "callqueue_tls_certificate_expiry_timestamp_seconds";

/// Waits, from seconds to an hour.
const WAIT_BUCKETS: &[f64] = &[
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
];
/// Estimate errors either way.
const ERROR_BUCKETS: &[f64] = &[
    -1800.0, -900.0, -600.0, -300.0, -120.0, -60.0, -15.0, 0.0, 15.0, 60.0, 120.0, 300.0, 600.0,
    900.0, 1800.0,
];
/// Ratings: one bucket per star.
const RATING_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0];
/// Request times, from a millisecond to a few seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process's recorder, installed on first use (several servers in one test process share
/// it). `None` when another recorder was installed first.
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(WAIT_TO_MATCH.into()), WAIT_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(WAIT_TO_JOIN.into()), WAIT_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(ESTIMATE_ERROR.into()), ERROR_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(CALL_RATING.into()), RATING_BUCKETS)
                });
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::error!(error = %e, "metrics are off: the recorder did not install");
                    None
                }
            }
        })
        .as_ref()
}

/// Starts recording (before anything is recorded, so that nothing is lost).
pub fn install() {
    handle();
}

/// The text of `/metrics`: the per-group gauges read now, then everything recorded.
pub fn render(store: &Store) -> String {
    // Every group the store has, those an admin added included.
    for group in &store.group_names() {
        let queue = store.queue_length(group).unwrap_or(0);
        metrics::gauge!(QUEUE_LENGTH, "group" => group.clone()).set(queue as f64);
        let available = store.available_specialists(group);
        metrics::gauge!(AVAILABLE, "group" => group.clone()).set(available as f64);
    }
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// Serves `/metrics` on its own address (kept apart from the public one) until shutdown.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(store): State<Store>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(&store),
                )
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics here\n") })
        .with_state(store);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Binds `--metrics-addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Which long-lived connection a [`Open`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    EventStream,
    WebSocket,
}

impl Connection {
    fn as_str(self) -> &'static str {
        match self {
            Self::EventStream => "event_stream",
            Self::WebSocket => "websocket",
        }
    }
}

/// Counts one open connection of a kind until dropped.
#[derive(Debug)]
pub struct Open(Connection);

impl Open {
    pub fn new(kind: Connection) -> Self {
        metrics::gauge!(OPEN_CONNECTIONS, "kind" => kind.as_str()).increment(1.0);
        Self(kind)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(OPEN_CONNECTIONS, "kind" => self.0.as_str()).decrement(1.0);
    }
}

/// The header a request's id travels in, both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request id the client sent, if it is a sane one (letters, digits, `-`, `_`, `.`, at
/// most 64): kept so a proxy's id follows the request; otherwise a new random one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| {
            let bytes: [u8; 8] = rand::random();
            hex::encode(bytes)
        })
}

/// Every API request: an id (in its log lines and the `X-Request-Id` response header), its
/// count by route, method and status, and its time.
pub async fn observe(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let method_label = method_label(request.method());
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let took = started.elapsed().as_secs_f64();
    span.in_scope(|| tracing::debug!(status, took_ms = took * 1000.0, "answered"));
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method_label, "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route).record(took);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response.into_response()
}

/// A request method as a metric label: the methods the API knows, else `other` (any token is a
/// valid method, and a label per made-up one would grow the series without bound).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Seconds between two times, for a histogram.
pub fn seconds(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_shows_every_metric_and_only_these() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/grafana/callqueue.json");
        let dashboard = std::fs::read_to_string(path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
        assert!(json["panels"].as_array().is_some_and(|p| p.len() >= 10));
        let mut used = std::collections::BTreeSet::new();
        for part in dashboard.split("callqueue_").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let name = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_string();
            if !name.is_empty() {
                used.insert(format!("callqueue_{name}"));
            }
        }
        let known: std::collections::BTreeSet<String> =
            METRICS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(used, known, "the dashboard and METRICS differ");
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let with = |v: &str| {
            let request = Request::builder()
                .header(&REQUEST_ID, v)
                .body(axum::body::Body::empty())
                .unwrap();
            request_id(&request)
        };
        assert_eq!(with("abc-1.2_3"), "abc-1.2_3");
        assert_ne!(with("a b"), "a b");
        assert_ne!(with(&"x".repeat(65)), "x".repeat(65));
        assert_eq!(with("").len(), 16);
    }
}
