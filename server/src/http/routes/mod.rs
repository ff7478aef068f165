//! The HTTP API, one module per resource.

pub mod admin;
pub mod agent;
pub mod calls;
pub mod health;
pub mod openapi;
pub mod reservations;
pub mod signal;
pub mod talk;
pub mod webhook;
pub mod ws;

use crate::{
    http::error::{ApiError, ApiResult},
    tokens,
};

/// Rejects ids that cannot be ours before they reach a query.
pub fn check_id(kind: &str, id: &str) -> ApiResult<()> {
    if tokens::is_valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "malformed {kind}: use 1 to 64 letters, digits, '-' or '_'"
        )))
    }
}
