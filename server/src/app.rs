//! The router: the API under `/api`, the built app everywhere else, and the server's lifetime.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{
    compression::Compression,
    services::{ServeDir, ServeFile},
    trace::TraceLayer,
};

use crate::{
    config::Config,
    db,
    http::BODY_LIMIT,
    http::auth::ClientInfo,
    http::edge::{self, Kind},
    http::error::ApiError,
    http::headers::{self, SecurityHeaders},
    http::routes::{admin, agent, calls, health, openapi, reservations, signal, talk, webhook, ws},
    limits::{Limits, StreamPermit},
    signal::Rooms,
    state::AppState,
    store::Store,
    tls::Source,
};

/// The long-lived routes: event streams and the WebSocket. They get no per-request layers, since
/// each layer's state lives as long as the connection (compression alone cost ~14 KB per idle
/// stream, tracing and the body limit ~6 KB; see README "Performance").
fn streams(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/events/g/{group}/r/{sid}", get(reservations::events))
        .route("/groups/{group}/events", get(agent::queue_events))
        .route("/calls/{type}/{id}/events", get(calls::events))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_streams))
        // The WebSockets hold their own places (see `ws::upgrade`): they outlive their response.
        .route("/ws", get(ws::upgrade))
        .route("/calls/{type}/{id}/signal", get(signal::upgrade))
}

/// One of the client's stream places for as long as the stream's body lives; 429 when it has
/// none left.
async fn limit_streams(
    State(state): State<AppState>,
    client: ClientInfo,
    request: Request,
    next: Next,
) -> Response {
    let permit = match state
        .limits
        .open_stream(client.ip, crate::metrics::Connection::EventStream)
    {
        Ok(permit) => permit,
        Err(e) => return ApiError::from(e).into_response(),
    };
    next.run(request).await.map(|body| {
        axum::body::Body::new(HeldBody {
            body,
            _permit: permit,
        })
    })
}

/// A response body that keeps a stream place until the body is dropped.
struct HeldBody {
    body: axum::body::Body,
    _permit: StreamPermit,
}

impl http_body::Body for HeldBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The request/response API routes.
fn requests() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/openapi.json", get(openapi::document))
        .route("/groups/{group}/status", get(reservations::group_status))
        .route("/groups/{group}/reservations", post(reservations::create))
        .route(
            "/groups/{group}/reservations/{sid}",
            get(reservations::get).delete(reservations::cancel),
        )
        .route(
            "/groups/{group}/reservations/{sid}/join-extension",
            post(reservations::extend_join),
        )
        .route(
            "/agent/session",
            post(agent::sign_in)
                .get(agent::current)
                .delete(agent::sign_out),
        )
        .route("/agent/availability", put(agent::availability))
        .route("/agent/stream-token", post(agent::stream_token))
        .route("/groups/{group}/queue", get(agent::queue))
        .route("/groups/{group}/today", get(agent::today))
        .route("/groups/{group}/accept", post(agent::accept))
        .route("/calls/{type}/{id}", get(calls::get).patch(calls::update))
        .route("/calls/{type}/{id}/join", post(calls::join))
        .route("/calls/{type}/{id}/leave", post(calls::leave))
        .route("/calls/{type}/{id}/feedback", post(calls::feedback))
        .route("/calls/{type}/{id}/chat", get(talk::chat))
        .route(
            "/groups/{group}/notice",
            get(talk::notice).put(talk::set_notice),
        )
        .route(
            "/groups/{group}/reservations/{sid}/message",
            post(talk::customer_line),
        )
        .route("/webhooks/streem", post(webhook::streem))
        .route(
            "/admin/specialists",
            get(admin::specialists).post(admin::add_specialist),
        )
        .route("/admin/specialists/{user_id}/disable", post(admin::disable))
        .route("/admin/specialists/{user_id}/enable", post(admin::enable))
        .route(
            "/admin/specialists/{user_id}/reset-secret",
            post(admin::reset_secret),
        )
        .route("/admin/groups", get(admin::groups).post(admin::add_group))
        .route("/admin/groups/{group}", put(admin::update_group))
        .route("/admin/audit", get(admin::audit))
        .route_layer(middleware::from_fn(headers::require_json))
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this endpoint does not take that method".into())
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .layer(middleware::from_fn(crate::metrics::observe))
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new().nest("/api", streams(&state).merge(requests()));
    let mut pages = Vec::new();
    if let Some(dist) = &state.store.config().dist {
        // Client-side routes (/hold/r/..., /join/r/...) load the customer's app; /agent loads
        // the console, a bundle of its own in dist/agent. Every file goes out as the brotli or
        // gzip copy the build made beside it (scripts/precompress), else compressed on the fly.
        let mut page = |path: std::path::PathBuf| {
            pages.extend(std::fs::read_to_string(&path).ok());
            Compression::new(ServeFile::new(path).precompressed_br().precompressed_gzip())
        };
        let index = page(dist.join("index.html"));
        let console = page(dist.join(CONSOLE_DIR).join("index.html"));
        let files = ServeDir::new(dist)
            .precompressed_br()
            .precompressed_gzip()
            .fallback(index);
        let files = Router::new()
            .route_service("/agent", console.clone())
            .route_service("/agent/", console.clone())
            // The admin page is part of the console's bundle (never the customer's download).
            .route_service("/admin", console)
            .fallback_service(Compression::new(files))
            .layer(middleware::from_fn(headers::only_file_paths))
            .layer(middleware::from_fn(headers::cache_control));
        app = app.fallback_service(files);
    }
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    let security = SecurityHeaders::new(&pages, state.store.config().tls.is_some());
    app.layer(middleware::map_response(move |response: Response| {
        let security = security.clone();
        async move { security.apply(response) }
    }))
    .with_state(state)
}

/// Where in the app's folder the console's bundle is (built by `scripts/build-app`).
pub const CONSOLE_DIR: &str = "agent";

/// A server bound to its address, ready to run.
pub struct Server {
    pub listener: TcpListener,
    /// `/metrics`, when `--metrics-addr` is set.
    pub metrics: Option<TcpListener>,
    /// With HTTPS on: the certificate, and the plain-HTTP listener if there is one.
    pub tls: Option<Tls>,
    pub state: AppState,
}

/// A server's HTTPS: where its certificate comes from, the certificate, the plain-HTTP listener.
pub struct Tls {
    pub source: crate::tls::Source,
    pub certificates: Arc<crate::tls::Certificates>,
    pub http: Option<TcpListener>,
    pub challenges: crate::tls::Challenges,
}

impl Tls {
    /// Loads a file certificate (a start-up error if it cannot be used) and binds the plain-HTTP
    /// listener.
    async fn bind(config: &Config) -> Result<Option<Self>, BoxError> {
        let Some(source) = config.tls.clone() else {
            return Ok(None);
        };
        let certificates = Arc::new(crate::tls::Certificates::default());
        if let crate::tls::Source::Files { cert, key } = &source {
            certificates.install(crate::tls::load(cert, key)?);
        }
        let http = match config.http_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                format!("--http-addr {addr}: {e} (port 80 needs root or CAP_NET_BIND_SERVICE; `off` serves no plain HTTP)")
            })?),
            None => None,
        };
        Ok(Some(Self {
            source,
            certificates,
            http,
            challenges: Default::default(),
        }))
    }
}

impl Server {
    /// Opens the database, rebuilds the live state, binds the address.
    pub async fn bind(config: Config) -> Result<Self, BoxError> {
        let pool = db::open(&config.database).await?;
        let store = Store::open(pool, Arc::new(config.clone())).await?;
        let listener = TcpListener::bind(config.addr).await?;
        let tls = Tls::bind(&config).await?;
        let metrics = match config.metrics_addr {
            Some(addr) => {
                crate::metrics::install();
                Some(crate::metrics::bind(addr).await?)
            }
            None => None,
        };
        let rooms = if store.clustered() {
            // Calls whose members are on different nodes: signalling through the database.
            let out = store.clone();
            let rooms = Arc::new(Rooms::with_bus(Box::new(move |text| out.send_signal(text))));
            let mut heard = store.signals();
            let weak = Arc::downgrade(&rooms);
            tokio::spawn(async move {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match heard.recv().await {
                        Ok(text) => match weak.upgrade() {
                            Some(rooms) => rooms.heard(&text),
                            None => return,
                        },
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "signalling from other nodes fell behind");
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            });
            rooms
        } else {
            Arc::new(Rooms::default())
        };
        Ok(Self {
            listener,
            metrics,
            tls,
            state: AppState {
                limits: Limits::new(&config),
                rooms,
                store,
                shutdown: CancellationToken::new(),
                joins: Default::default(),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where plain HTTP is served beside HTTPS, if it is.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        let tls = self.tls.as_ref()?;
        tls.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` fires, then lets requests in flight finish.
    pub async fn run(self) -> std::io::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let sweeper = tokio::spawn(sweep(self.state.clone(), shutdown.clone()));
        // On PostgreSQL: hear what the other nodes change.
        let follower = match &self.state.store.config().database {
            db::Location::Postgres(url) => {
                let (store, url, shutdown) =
                    (self.state.store.clone(), url.clone(), shutdown.clone());
                Some(tokio::spawn(
                    async move { store.follow(&url, shutdown).await },
                ))
            }
            db::Location::Sqlite(_) => None,
        };
        let metrics = self.metrics.map(|listener| {
            let (store, shutdown) = (self.state.store.clone(), shutdown.clone());
            tokio::spawn(async move {
                if let Err(e) = crate::metrics::serve(listener, store, shutdown).await {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            })
        });
        let app = router(self.state.clone());
        let mut helpers = Vec::new();
        let kind = match self.tls {
            None => Kind::App(None),
            Some(tls) => {
                let https_port = self.listener.local_addr()?.port();
                helpers.push(match tls.source {
                    Source::Files { cert, key } => tokio::spawn(crate::tls::watch_files(
                        tls.certificates.clone(),
                        cert,
                        key,
                        shutdown.clone(),
                    )),
                    Source::Acme(settings) => tokio::spawn(crate::tls::acme::run(
                        settings,
                        tls.certificates.clone(),
                        tls.challenges.clone(),
                        shutdown.clone(),
                    )),
                });
                if let Some(http) = tls.http {
                    let redirect = crate::tls::redirect::router(tls.challenges, https_port);
                    let state = self.state.clone();
                    helpers.push(tokio::spawn(async move {
                        if let Err(e) = edge::serve(http, redirect, state, Kind::Redirect).await {
                            tracing::error!(error = %e, "the plain-HTTP listener failed");
                        }
                    }));
                }
                let config = crate::tls::server_config(tls.certificates);
                Kind::App(Some(tokio_rustls::TlsAcceptor::from(config)))
            }
        };
        let result = edge::serve(self.listener, app, self.state, kind).await;
        shutdown.cancel();
        for helper in helpers {
            let _ = helper.await;
        }
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        let _ = sweeper.await;
        if let Some(follower) = follower {
            let _ = follower.await;
        }
        result
    }
}

/// How often a node of a cluster reads the groups' settings again.
const SETTINGS_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Expires reservations and ends calls whose time is up, and purges what has expired, until
/// shutdown.
async fn sweep(state: AppState, shutdown: CancellationToken) {
    let store = &state.store;
    let mut tick = tokio::time::interval(store.config().sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut purge = tokio::time::interval(store.config().purge_interval);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Group settings other nodes changed (opening hours, call lengths), and groups they added.
    let mut settings = tokio::time::interval(SETTINGS_REFRESH);
    settings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = settings.tick(), if store.clustered() => {
                if let Err(e) = store.refresh_settings().await {
                    tracing::warn!(error = %e, "reading group settings failed; will retry");
                }
            }
            _ = tick.tick() => {
                if let Err(e) = store.sweep().await {
                    tracing::warn!(error = %e, "sweep failed; will retry");
                }
            }
            _ = purge.tick() => {
                match store.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "purged expired sessions and tokens"),
                    Err(e) => tracing::warn!(error = %e, "purge failed; will retry"),
                }
                let keep = chrono::Duration::from_std(store.config().keep_calls)
                    .unwrap_or(chrono::Duration::MAX);
                if let Some(before) = chrono::Utc::now().checked_sub_signed(keep) {
                    match store.purge_calls(before).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(rows = n, "deleted the data of calls past the retention period"),
                        Err(e) => tracing::warn!(error = %e, "purging old calls failed; will retry"),
                    }
                }
                state.limits.purge();
                state.joins.purge();
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Start-up failures: any of them ends the process with its message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
