//! `/`: where a customer starts a video chat.

use leptos::prelude::*;

/// The landing page with the "Start video chat" button.
#[component]
pub fn Home() -> impl IntoView {
    view! {
        <section class="card home">
            <h1>"Talk to a specialist"</h1>
            <p class="lead">"Start a video chat and we will connect you with the next available specialist."</p>
            <button class="primary" type="button">"Start video chat"</button>
        </section>
    }
}
