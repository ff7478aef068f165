//! `/rejoin/r/:sid`: the reservation expired; explain and offer a new place.

use leptos::prelude::*;

use crate::{
    components::busy::{BusyButton, ErrorNote},
    pages::{use_document_title, use_join_queue},
};

/// Explains the expiry and rejoins the queue.
#[component]
pub fn Rejoin() -> impl IntoView {
    let (busy, error, rejoin) = use_join_queue();
    use_document_title(|| Some("Your place expired".to_string()));

    view! {
        <section class="card rejoin">
            <h1>"Your place in the queue expired"</h1>
            <p class="lead">
                "We held your place for as long as we could, but no specialist reached you in time, or the call was not joined. You can join the queue again now."
            </p>
            <BusyButton
                class="primary"
                label="Rejoin the queue"
                working="Joining…"
                busy=busy
                on_press=rejoin
            />
            <ErrorNote error=error/>
            <p><a href="/">"Back to the start"</a></p>
        </section>
    }
}
