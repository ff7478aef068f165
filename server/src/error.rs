//! The one error type of the API, and how it becomes `{ "error": { "code", "message" } }`.

use axum::{
    extract::{FromRequest, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use callqueue_protocol::{ErrorBody, ErrorDetail};

/// Everything a handler can answer besides success. Client mistakes are 4xx with a sentence a
/// person can read; only the server's own failures are 5xx.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the database is unavailable")]
    Database(#[from] sqlx::Error),
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} was not found"))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::Database(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Database(e) = &self {
            tracing::error!(error = %e, "database error");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.to_string(),
            },
        };
        (status, axum::Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::TooLarge(crate::app::BODY_LIMIT),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::BadRequest("send the body as JSON with Content-Type: application/json".into())
            }
            _ => Self::BadRequest(format!("invalid JSON body: {}", rejection.body_text())),
        }
    }
}

/// `axum::Json`, but its rejections are [`ApiError`]s with our error body.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
