//! Opening the database: an SQLite file (the default: created and migrated on first run,
//! write-ahead logged) or PostgreSQL (migrated on start). The store talks to either through
//! sqlx's `Any` driver with one set of SQL (`$1` placeholders, times as RFC 3339 text,
//! integers as 64 bits), so the two cannot drift apart; each has its own migrations, kept in
//! step (`migrations/sqlite`, `migrations/postgres`).

use std::{fmt, path::PathBuf, time::Duration};

use sqlx::{
    AnyPool, ConnectOptions, Connection, Executor,
    any::{AnyPoolOptions, install_default_drivers},
    sqlite::SqliteConnectOptions,
};

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://user:pass@host:port/db`).
    Postgres(String),
}

impl Location {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

impl fmt::Display for Location {
    /// The file, or the URL without its password (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    write!(f, "{u}")
                }
                Err(_) => write!(f, "postgres://…"),
            },
        }
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Self {
        Self::Sqlite(path)
    }
}

/// Reads `--database`: a file path, `sqlite://path` / `sqlite:path`, or a `postgres://` /
/// `postgresql://` URL. Any other URL is an error saying so, instead of a file (or a folder
/// called `postgres:`) of that name.
pub fn parse_location(value: &str) -> Result<Location, String> {
    let value = value.trim();
    if let Some(path) = value
        .strip_prefix("sqlite://")
        .or_else(|| value.strip_prefix("sqlite:"))
    {
        return if path.is_empty() {
            Err("sqlite: needs a file path, e.g. sqlite://data/callqueue.sqlite3".into())
        } else {
            Ok(Location::Sqlite(PathBuf::from(path)))
        };
    }
    let scheme = value.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => match url::Url::parse(value) {
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => {
                Ok(Location::Postgres(value.to_string()))
            }
            _ => Err(
                "a PostgreSQL URL looks like postgres://user:password@host:port/database".into(),
            ),
        },
        Some(other) => Err(format!(
            "unknown database {other}://: give an SQLite file (a path, or sqlite://path) or a \
             postgres:// URL"
        )),
        None if value.is_empty() => Err("the database path is empty".into()),
        None => Ok(Location::Sqlite(PathBuf::from(value))),
    }
}

/// Opens (and migrates) the database; the error says which database and why.
pub async fn open(location: &Location) -> Result<AnyPool, String> {
    open_pool(location)
        .await
        .map_err(|e| format!("cannot open the database {location}: {e}"))
}

async fn open_pool(location: &Location) -> Result<AnyPool, sqlx::Error> {
    install_default_drivers();
    match location {
        Location::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            // The file as a URL, its path escaped as sqlx reads it back.
            let url = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .to_url_lossy();
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Write-ahead logged; with WAL, NORMAL survives a process kill (not a
                        // power cut) and is much faster than FULL.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect(url.as_str())
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            Ok(pool)
        }
        Location::Postgres(url) => {
            // One connection first, so that a wrong address or password is said as such
            // rather than as a pool that timed out.
            sqlx::AnyConnection::connect(url).await?.close().await?;
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Ok(pool)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_a_file_or_a_clear_error() {
        let file = |p: &str| Ok(Location::Sqlite(p.into()));
        assert_eq!(parse_location("data/x.sqlite3"), file("data/x.sqlite3"));
        assert_eq!(parse_location("sqlite://data/x.db"), file("data/x.db"));
        assert_eq!(parse_location("sqlite:x.db"), file("x.db"));
        for url in ["postgres://u:p@127.0.0.1:5432/db", "postgresql://h/db"] {
            assert_eq!(parse_location(url), Ok(Location::Postgres(url.into())));
        }
        assert!(
            parse_location("postgres://")
                .unwrap_err()
                .contains("postgres://user:password@host:port/database")
        );
        // The password stays out of logs.
        assert_eq!(
            parse_location("postgres://u:secret@h:5432/db")
                .unwrap()
                .to_string(),
            "postgres://u:***@h:5432/db"
        );
        assert!(
            parse_location("mysql://h/db")
                .unwrap_err()
                .contains("mysql://")
        );
        assert!(parse_location("").is_err());
        assert!(parse_location("sqlite://").is_err());
    }
}
