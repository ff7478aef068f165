//! What the store's operations fail with, apart from how the HTTP layer shows it (`error.rs`
//! maps each kind to a status and an error body).

/// Why a store operation did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No such thing (or not the caller's to see).
    #[error("{0}")]
    NotFound(String),
    /// Not in the state the operation needs (already ended, already matched, ...).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// A value the operation cannot take (a duration over the limit, ...).
    #[error("{0}")]
    Unprocessable(String),
    /// The database cannot answer now (down, busy, out of connections): worth retrying.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Our own bug (a row we cannot read, a query that cannot be right).
    #[error("{0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} was not found"))
    }
}

impl From<sqlx::Error> for StoreError {
    /// Sorts a database error: unavailable (retry) or our own bug.
    fn from(e: sqlx::Error) -> Self {
        if db_unavailable(&e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(format!("database: {e}"))
        }
    }
}

/// Whether a database error means "not now" rather than "never": the pool or connection is
/// gone, the file is busy or locked, the disk is full or failing.
pub fn db_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            // SQLite's primary result codes (the low byte of an extended code): BUSY, LOCKED,
            // NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL.
            let sqlite_primary = code.parse::<i64>().ok().map(|c| c & 0xff);
            // PostgreSQL's SQLSTATEs: connection exceptions (08), insufficient resources (53),
            // the server shutting down or starting (57P01-57P03), serialization failures and
            // deadlocks (40001, 40P01), read-only transaction (25006).
            // (SQLSTATEs are five characters; SQLite's codes are shorter numbers.)
            let postgres = code.len() == 5
                && (code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(
                        code,
                        "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "25006"
                    ));
            postgres || matches!(sqlite_primary, Some(5 | 6 | 7 | 8 | 10 | 13 | 14 | 15))
        }
        _ => false,
    }
}
