//! The one error type of the API, and how it becomes `{ "error": { "code", "message" } }`.

use axum::{
    extract::{FromRequest, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use callqueue_protocol::{ErrorBody, ErrorDetail};

use crate::{limits::Refused, store::StoreError};

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
    /// Outside the group's opening hours.
    #[error("{0}")]
    Closed(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many requests from one client; retry after this many seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// The database cannot answer now (down, busy, out of connections): worth retrying.
    #[error("the database is unavailable; try again shortly")]
    Unavailable(String),
    /// Our own bug (a row we cannot read, a query that cannot be right): the client can do
    /// nothing about it; the detail goes to the log, not to the client.
    #[error("something went wrong on our side; it has been logged")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Forbidden(m) => Self::Forbidden(m),
            StoreError::Unauthorized(m) => Self::Unauthorized(m),
            StoreError::Unprocessable(m) => Self::Unprocessable(m),
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        Self::TooManyRequests {
            message: r.message,
            retry_after: r.retry_after,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
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
            Self::Closed(_) => (StatusCode::CONFLICT, "closed"),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Unavailable(e) => tracing::warn!(error = %e, "database unavailable"),
            Self::Internal(e) => tracing::error!(error = %e, "internal error"),
            _ => {}
        }
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            Self::Unavailable(_) => Some(2),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.to_string(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.max(1).into());
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::TooLarge(crate::http::BODY_LIMIT),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ),
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

/// An optional JSON body: none (or only whitespace) is `T::default()`; anything else must be
/// JSON of `T`'s shape, or a 400 that says what is wrong with it.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(T::default()),
        // serde reads a struct from an array too; our bodies are objects.
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::BadRequest(
                "invalid JSON body: expected a JSON object".into(),
            ));
        }
    }
    // Through serde_path_to_error so that the message names the field that is wrong.
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        let e = e.into_inner();
        ApiError::BadRequest(if path == "." || path.is_empty() {
            format!("invalid JSON body: {e}")
        } else {
            format!("invalid JSON body: {path}: {e}")
        })
    })?;
    reader
        .end()
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_sorted_into_retry_and_bug() {
        let status = |e: sqlx::Error| ApiError::from(e).status_and_code().0;
        assert_eq!(
            status(sqlx::Error::PoolTimedOut),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(sqlx::Error::PoolClosed),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(sqlx::Error::Io(std::io::ErrorKind::BrokenPipe.into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(sqlx::Error::Decode("unknown status".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(sqlx::Error::ColumnNotFound("x".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(sqlx::Error::RowNotFound),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn busy_sqlite_is_unavailable_and_a_bad_query_is_ours() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let bad = sqlx::query("SELECT * FROM no_such_table")
            .execute(&pool)
            .await
            .unwrap_err();
        assert_eq!(
            ApiError::from(bad).status_and_code().0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        // An internal error says nothing of its detail to the client.
        let shown = ApiError::Internal("database: secret detail".into()).to_string();
        assert!(!shown.contains("secret"));
    }
}
