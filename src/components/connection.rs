//! The small "Live / Reconnecting… / Offline" indicator.

use leptos::prelude::*;

use crate::live::Connection;

/// Shows the state of the page's live connection.
#[component]
pub fn ConnectionIndicator(
    /// The connection to show.
    #[prop(into)]
    state: Signal<Connection>,
    /// Which connection, where a page has more than one (e.g. "Notices: ").
    #[prop(optional)]
    what: &'static str,
) -> impl IntoView {
    view! {
        <p class=move || state.get().class() role="status" aria-live="polite">
            <span class="dot" aria-hidden="true"></span>
            {what}
            {move || state.get().label()}
        </p>
    }
}
