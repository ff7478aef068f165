//! The callqueue server: the queue, the calls, their live streams, and the built app, on one
//! address. `main.rs` is the command line; everything else is here so tests can run the real
//! router on an ephemeral port.
//!
//! `store/` owns the queue and the calls (and never imports the HTTP layer), `http/` turns
//! requests into store operations, `state.rs` is what handlers share, `signal/` the call rooms,
//! `limits.rs` the rate limits and caps, `metrics.rs` what `/metrics` shows, `app.rs` the
//! router and the server's lifetime.

pub mod app;
pub mod config;
pub mod db;
pub mod estimator;
pub mod hours;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod secrets;
pub mod signal;
pub mod state;
pub mod store;
pub mod tls;
pub mod tokens;
