//! The session countdown.

use leptos::prelude::*;

use crate::{
    i18n::t,
    logic::clock::{display_seconds, format_countdown},
};

/// `mm:ss` (or `hh:mm:ss`) left in the session.
#[component]
pub fn SessionTimer(
    /// Milliseconds left, by the server's clock; `None` before the session starts.
    #[prop(into)]
    remaining_ms: Signal<Option<i64>>,
) -> impl IntoView {
    let text = move || match remaining_ms.get() {
        Some(ms) => format_countdown(display_seconds(ms)),
        None => "--:--".to_string(),
    };
    view! {
        <div class="timer" aria-label=move || t("timer.aria")>
            <span class="timer-label">{move || t("timer.label")}</span>
            <time class="timer-value">{text}</time>
        </div>
    }
}
