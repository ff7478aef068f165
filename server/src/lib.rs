//! The callqueue server: the queue, the calls, their live streams, and the built app, on one
//! address. `main.rs` is the command line; everything else is here so tests can run the real
//! router on an ephemeral port.

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod edge;
pub mod error;
pub mod estimator;
pub mod headers;
pub mod limits;
pub mod routes;
pub mod signal;
pub mod sse;
pub mod store;
pub mod tokens;
