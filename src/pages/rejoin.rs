//! `/rejoin/r/:sid`: the reservation expired; explain and offer a new place.

use leptos::prelude::*;

use crate::{
    components::busy::{BusyButton, ErrorNote},
    i18n::t,
    pages::{last_check_in, use_document_title, use_join_queue},
};

/// Explains the expiry and rejoins the queue.
#[component]
pub fn Rejoin() -> impl IntoView {
    let (busy, error, rejoin) = use_join_queue();
    use_document_title(|| Some(t("rejoin.tab").to_string()));

    view! {
        <section class="card rejoin">
            <h1>{move || t("rejoin.title")}</h1>
            <p class="lead">{move || t("rejoin.lead")}</p>
            <BusyButton
                class="primary"
                label="rejoin.again"
                working="rejoin.joining"
                busy=busy
                on_press=Callback::new(move |()| rejoin.run(last_check_in()))
            />
            <ErrorNote error=error/>
            <p><a href="/">{move || t("common.back_to_start")}</a></p>
        </section>
    }
}
