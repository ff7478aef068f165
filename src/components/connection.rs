//! The small "Live / Reconnecting… / Offline" indicator.

use leptos::prelude::*;

use crate::{i18n::t, live::Connection};

/// Shows the state of the page's live connection.
#[component]
pub fn ConnectionIndicator(
    /// The connection to show.
    #[prop(into)]
    state: Signal<Connection>,
    /// The catalogue key of which connection, where a page has more than one.
    #[prop(optional)]
    what: Option<&'static str>,
) -> impl IntoView {
    view! {
        <p class=move || state.get().class() role="status" aria-live="polite">
            <span class="dot" aria-hidden="true"></span>
            {move || what.map(|w| format!("{} ", t(w)))}
            {move || t(state.get().label())}
        </p>
    }
}
