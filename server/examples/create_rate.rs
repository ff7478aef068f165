//! Reservations created per second by the store alone (no HTTP), durable in SQLite: where the
//! create path's time goes. `cargo run --release -p callqueue-server --example create_rate [N]`

use std::{sync::Arc, time::Instant};

use callqueue_server::{config::Config, db, store::Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000);
    let dir = std::env::temp_dir().join(format!("callqueue-create-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = Config::for_tests(dir.join("db.sqlite3"));
    let pool = db::open(&config.database).await?;
    let store = Store::open(pool, Arc::new(config)).await?;
    let started = Instant::now();
    for _ in 0..n {
        let (customer, _) = Store::new_customer();
        store
            .create_reservation(
                "default",
                &customer.id.clone(),
                Some(&customer),
                Default::default(),
            )
            .await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} reservations in {secs:.2} s: {:.0} creates/s, {:.0} µs each (one at a time, store only)",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
