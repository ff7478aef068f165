//! `POST /api/webhooks/streem`: the provider's `group_reservation_updated` relay.
//!
//! The body is verified with HMAC-SHA256 over the raw bytes, with the configured secret, sent as
//! hex in `X-Streem-Signature` (optionally prefixed `sha256=`). Without a secret the endpoint does
//! not exist (404). A verified update that moves the reservation forward is applied, which
//! relays it to every stream of that reservation; one that would move it backwards changes
//! nothing. Unknown event types are acknowledged and ignored.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use callqueue_protocol::ErrorBody;
use callqueue_protocol::{GroupReservationUpdated, ReservationStatus, WebhookEnvelope};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    http::error::{ApiError, ApiResult, Json},
    http::routes::check_id,
    state::AppState,
};

pub const SIGNATURE_HEADER: &str = "x-streem-signature";

/// The signature a sender computes for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let hex_sig = signature.trim().trim_start_matches("sha256=");
    let Ok(bytes) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&bytes).is_ok()
}

#[utoipa::path(post, path = "/api/webhooks/streem", tag = "operations", request_body = WebhookEnvelope, responses((status = 200, description = "applied"), (status = 401, description = "a missing or wrong `X-Streem-Signature`", body = ErrorBody), (status = 404, description = "the webhook is off (no secret configured)", body = ErrorBody)))]
pub async fn streem(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let Some(secret) = state.store.config().webhook_secret.clone() else {
        return Err(ApiError::not_found("the webhook endpoint"));
    };
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized(format!("missing {SIGNATURE_HEADER} header")))?;
    if !verify(&secret, &body, signature) {
        return Err(ApiError::Unauthorized("bad signature".into()));
    }
    let envelope: WebhookEnvelope = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid webhook body: {e}")))?;
    if envelope.event.event_type != "group_reservation_updated" {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "relayed": false })),
        ));
    }
    let payload: GroupReservationUpdated =
        serde_json::from_value(envelope.event.payload).map_err(|e| {
            ApiError::BadRequest(format!("invalid group_reservation_updated payload: {e}"))
        })?;
    let update = payload.updated_group_reservation;
    check_id("reservation id", &update.reservation_sid)?;
    let (current, _) = state
        .store
        .reservation(&update.reservation_sid)
        .await?
        .ok_or_else(|| ApiError::not_found("the reservation"))?;
    let next = update.reservation_status;
    let relayed = current.reservation_status.can_advance_to(next) && next.is_final();
    if relayed {
        state
            .store
            .finish_reservation(&update.reservation_sid, next)
            .await?;
    } else if next == ReservationStatus::Matched
        && current.reservation_status == ReservationStatus::Queued
    {
        // Matching happens here, where the calls are; a provider's match has no call to join.
        tracing::info!(sid = %update.reservation_sid, "ignored a provider match");
    }
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({ "relayed": relayed })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_same_body_and_secret() {
        let sig = sign("s3cret", b"{}");
        assert!(verify("s3cret", b"{}", &sig));
        assert!(verify("s3cret", b"{}", &format!("sha256={sig}")));
        assert!(!verify("s3cret", b"{ }", &sig));
        assert!(!verify("other", b"{}", &sig));
        assert!(!verify("s3cret", b"{}", "not hex"));
    }
}
