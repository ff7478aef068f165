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
