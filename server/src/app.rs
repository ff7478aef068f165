//! The router: the API under `/api`, the built app everywhere else, and the server's lifetime.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::DefaultBodyLimit,
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
    error::ApiError,
    routes::{agent, calls, health, reservations, webhook, ws},
    store::Store,
};

/// Largest request body accepted anywhere.
pub const BODY_LIMIT: usize = 16 * 1024;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Fires on shutdown so open streams end and the server can stop.
    pub shutdown: CancellationToken,
}

/// The long-lived routes: event streams and the WebSocket. They get no per-request layers, since
/// each layer's state lives as long as the connection (compression alone cost ~14 KB per idle
/// stream, tracing and the body limit ~6 KB; see README "Performance").
fn streams() -> Router<AppState> {
    Router::new()
        .route("/events/g/{group}/r/{sid}", get(reservations::events))
        .route("/groups/{group}/events", get(agent::queue_events))
        .route("/calls/{type}/{id}/events", get(calls::events))
        .route("/ws", get(ws::upgrade))
}

/// The request/response API routes.
fn requests() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/groups/{group}/status", get(reservations::group_status))
        .route("/groups/{group}/reservations", post(reservations::create))
        .route(
            "/groups/{group}/reservations/{sid}",
            get(reservations::get).delete(reservations::cancel),
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
        .route("/groups/{group}/accept", post(agent::accept))
        .route("/calls/{type}/{id}", get(calls::get).patch(calls::update))
        .route("/calls/{type}/{id}/join", post(calls::join))
        .route("/calls/{type}/{id}/leave", post(calls::leave))
        .route("/webhooks/streem", post(webhook::streem))
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this endpoint does not take that method".into())
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new().nest("/api", streams().merge(requests()));
    if let Some(dist) = &state.store.config().dist {
        // Client-side routes (/hold/r/..., /agent, ...) all load the app's index page, sent
        // brotli- or gzip-compressed when the browser takes it.
        let index = ServeFile::new(dist.join("index.html"));
        app = app.fallback_service(Compression::new(ServeDir::new(dist).fallback(index)));
    }
    app.with_state(state)
}

/// A server bound to its address, ready to run.
pub struct Server {
    pub listener: TcpListener,
    pub state: AppState,
}

impl Server {
    /// Opens the database, rebuilds the live state, binds the address.
    pub async fn bind(config: Config) -> Result<Self, BoxError> {
        let pool = db::open(&config.database).await?;
        let store = Store::open(pool, Arc::new(config.clone())).await?;
        let listener = TcpListener::bind(config.addr).await?;
        Ok(Self {
            listener,
            state: AppState {
                store,
                shutdown: CancellationToken::new(),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` fires, then lets requests in flight finish.
    pub async fn run(self) -> std::io::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let sweeper = tokio::spawn(sweep(self.state.store.clone(), shutdown.clone()));
        let app = router(self.state.clone());
        let result = crate::edge::serve(self.listener, app, self.state).await;
        shutdown.cancel();
        let _ = sweeper.await;
        result
    }
}

/// Expires reservations and ends calls whose time is up, until shutdown.
async fn sweep(store: Store, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(store.config().sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = store.sweep().await {
                    tracing::warn!(error = %e, "sweep failed; will retry");
                }
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Start-up failures: any of them ends the process with its message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
