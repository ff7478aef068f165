//! Opening the SQLite database: created and migrated on first run, write-ahead logged.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// Reads `--database`: a file path, or `sqlite://path` / `sqlite:path`. Any other URL is an
/// error saying so, instead of a file (or a folder called `postgres:`) of that name.
pub fn parse_location(value: &str) -> Result<PathBuf, String> {
    let value = value.trim();
    if let Some(path) = value
        .strip_prefix("sqlite://")
        .or_else(|| value.strip_prefix("sqlite:"))
    {
        return if path.is_empty() {
            Err("sqlite: needs a file path, e.g. sqlite://data/callqueue.sqlite3".into())
        } else {
            Ok(PathBuf::from(path))
        };
    }
    let scheme = value.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => Err(
            "PostgreSQL is not supported by this version yet: give an SQLite file \
             (a path, or sqlite://path)"
                .into(),
        ),
        Some(other) => Err(format!(
            "unknown database {other}://: give an SQLite file (a path, or sqlite://path)"
        )),
        None if value.is_empty() => Err("the database path is empty".into()),
        None => Ok(PathBuf::from(value)),
    }
}

pub async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL survives a process kill (not a power cut) and is much faster than FULL.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_a_file_or_a_clear_error() {
        assert_eq!(
            parse_location("data/x.sqlite3"),
            Ok("data/x.sqlite3".into())
        );
        assert_eq!(parse_location("sqlite://data/x.db"), Ok("data/x.db".into()));
        assert_eq!(parse_location("sqlite:x.db"), Ok("x.db".into()));
        for url in [
            "postgres://u:p@127.0.0.1:5432/db",
            "postgresql://h/db",
            "POSTGRES://h/db",
        ] {
            let e = parse_location(url).unwrap_err();
            assert!(e.contains("PostgreSQL"), "{url}: {e}");
        }
        assert!(
            parse_location("mysql://h/db")
                .unwrap_err()
                .contains("mysql://")
        );
        assert!(parse_location("").is_err());
        assert!(parse_location("sqlite://").is_err());
    }
}
