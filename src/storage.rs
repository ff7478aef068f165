//! What this browser remembers between visits (local storage) and within a tab's session
//! (session storage). Both may be missing or refused (private modes): then nothing is kept.

fn local() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn session() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// This browser's reservation: so the start page can offer the way back to it.
pub const RESERVATION: &str = "callqueue.reservation";
/// Whether the "it's your turn" chime plays (`on` / `off`).
pub const SOUND: &str = "callqueue.sound";
/// The last check-in (name and reason), for rejoining without typing it again.
pub const CHECK_IN: &str = "callqueue.check-in";
/// `1`: the call's internals go to the browser console in a release build too (see
/// [`debug_enabled`]).
pub const DEBUG: &str = "callqueue.debug";

/// Whether the call's internals (states, restarts, what the browser refused, signalling
/// errors) are written to the browser's console: always in a debug build; in a release build
/// only after `localStorage.setItem("callqueue.debug", "1")`, so a customer's console carries
/// no call internals or ids. Read each time: setting it takes effect at once.
pub fn debug_enabled() -> bool {
    cfg!(debug_assertions) || get(DEBUG).as_deref() == Some("1")
}

/// Writes to the console at debug level when [`storage::debug_enabled`](debug_enabled).
#[macro_export]
macro_rules! debug_log {
    ($($arg:tt)*) => {
        if $crate::storage::debug_enabled() {
            web_sys::console::debug_1(&format!($($arg)*).into());
        }
    };
}

pub fn get(key: &str) -> Option<String> {
    local()?.get_item(key).ok().flatten()
}

pub fn set(key: &str, value: &str) {
    if let Some(s) = local() {
        let _ = s.set_item(key, value);
    }
}

pub fn remove(key: &str) {
    if let Some(s) = local() {
        let _ = s.remove_item(key);
    }
}

pub fn get_session(key: &str) -> Option<String> {
    session()?.get_item(key).ok().flatten()
}

pub fn remove_session(key: &str) {
    if let Some(s) = session() {
        let _ = s.remove_item(key);
    }
}

pub fn set_session(key: &str, value: &str) {
    if let Some(s) = session() {
        let _ = s.set_item(key, value);
    }
}

/// Where the console leaves the chosen session length for the call page of a reservation.
pub fn session_length_key(sid: &str) -> String {
    format!("callqueue.session-length.{sid}")
}
