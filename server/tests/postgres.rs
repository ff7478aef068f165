//! What is particular to PostgreSQL (every other suite runs on it too, see scripts/test, and
//! several nodes on one database are in cluster.rs): its migrations make the same tables as
//! SQLite's. Without `CALLQUEUE_TEST_POSTGRES` this says so and passes.

mod common;

use std::collections::BTreeSet;

use callqueue_server::db;
use common::*;
use sqlx::Row;

/// Every (table, column) of a database, our migrations' bookkeeping aside.
async fn columns(pool: &sqlx::AnyPool, sql: &str) -> BTreeSet<(String, String)> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        // sqlx's bookkeeping, and SQLite's own (`sqlite_sequence`, for AUTOINCREMENT).
        .filter(|(t, _)| !t.starts_with("_sqlx") && !t.starts_with("sqlite_"))
        .collect()
}

#[tokio::test]
async fn the_two_migrations_make_the_same_tables() {
    if !on_postgres() {
        eprintln!("SQLite run: nothing to compare (CALLQUEUE_TEST_POSTGRES is not set)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite = db::open(&db::Location::Sqlite(dir.path().join("a.sqlite3")))
        .await
        .unwrap();
    let postgres = db::open(&test_config(&dir).await.database).await.unwrap();
    let a = columns(
        &sqlite,
        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table'",
    )
    .await;
    let b = columns(
        &postgres,
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public'",
    )
    .await;
    assert!(a.len() > 40, "{a:?}");
    assert_eq!(a, b, "migrations/sqlite and migrations/postgres differ");
}
