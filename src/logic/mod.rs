//! Pure logic: no DOM, no network, no timers. Tested natively with plain `#[test]`.

pub mod backoff;
pub mod call;
pub mod chat;
pub mod clock;
pub mod ending;
pub mod events;
pub mod handshake;
pub mod negotiation;
pub mod quality;
pub mod queue_list;
pub mod status;
