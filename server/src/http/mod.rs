//! The HTTP layer: what turns requests into store operations and results into responses. It
//! imports the store; the store never imports it.
//!
//! `routes/` has one module per resource, `auth.rs` who is asking (cookies, client address),
//! `error.rs` the error body and how each store error is shown, `headers.rs` the security
//! headers, `sse.rs` the event streams' shared mechanics, and `edge.rs` the accept loop (a
//! connection whose first request opens a reservation stream is written straight to the socket).

pub mod auth;
pub mod edge;
pub mod error;
pub mod headers;
pub mod routes;
pub mod sse;

/// Largest request body accepted anywhere.
pub const BODY_LIMIT: usize = 16 * 1024;
