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

use wasm_bindgen::JsCast;

/// Our own words for markup written as a string (the catalogue's; in element content or a
/// single-quoted attribute): escaped all the same.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

/// The form a submit event came from, and what it holds (the forms written as markup are
/// read this way rather than through a signal per field).
pub fn submitted(
    ev: &leptos::ev::SubmitEvent,
) -> Option<(web_sys::HtmlFormElement, web_sys::FormData)> {
    let form = ev.target()?.dyn_into::<web_sys::HtmlFormElement>().ok()?;
    let data = web_sys::FormData::new_with_form(&form).ok()?;
    Some((form, data))
}
