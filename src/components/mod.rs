//! Components used by more than one page, each usable on its own.

pub mod alerts;
pub mod busy;
pub mod chat;
pub mod connection;
pub mod device_check;
pub mod extend_button;
pub mod feedback;
pub mod queue_view;
pub mod session_timer;
pub mod turn;
