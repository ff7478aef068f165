//! `GET /api/health`: liveness and whether the database answers.

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use callqueue_protocol::Health;
use chrono::Utc;

use crate::{http::error::Json, state::AppState};

#[utoipa::path(get, path = "/api/health", tag = "operations", responses((status = 200, body = Health), (status = 503, description = "the database does not answer", body = Health)))]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let db_ok = sqlx::query("SELECT 1")
        .execute(state.store.db())
        .await
        .is_ok();
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if db_ok { "ok" } else { "degraded" }.into(),
        database: if db_ok { "ok" } else { "unreachable" }.into(),
        server_time: Utc::now(),
    };
    (status, Json(body))
}
