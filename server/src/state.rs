//! What every handler gets: the store, the limits, the call rooms, and the shutdown signal.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::{http::routes::reservations::JoinKeys, limits::Limits, signal::Rooms, store::Store};

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Per-client rate limits and stream caps.
    pub limits: Arc<Limits>,
    /// Who is connected to each call's signalling, and the relay between them.
    pub rooms: Arc<Rooms>,
    /// Fires on shutdown so open streams end and the server can stop.
    pub shutdown: CancellationToken,
    /// New customers' joins by `Idempotency-Key`: a double-click or a retry is one reservation.
    pub joins: Arc<JoinKeys>,
}
