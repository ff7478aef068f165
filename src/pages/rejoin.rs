//! `/rejoin/r/:sid`: the reservation expired; explain and offer a new place.

use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{api, logic::status::route_for, pages::use_document_title};

/// Explains the expiry and rejoins the queue.
#[component]
pub fn Rejoin() -> impl IntoView {
    let navigate = use_navigate();
    let (busy, set_busy) = signal(false);
    let (error, set_error) = signal(None::<String>);
    use_document_title(|| Some("Your place expired".to_string()));

    let rejoin = move |_| {
        if busy.get_untracked() {
            return;
        }
        set_busy.set(true);
        set_error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::create_reservation(api::GROUP).await {
                Ok(r) => navigate(
                    &route_for(r.reservation_status, &r.reservation_sid),
                    Default::default(),
                ),
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                    set_busy.try_set(false);
                }
            }
        });
    };

    view! {
        <section class="card rejoin">
            <h1>"Your place in the queue expired"</h1>
            <p class="lead">
                "We held your place for as long as we could, but no specialist reached you in time, or the call was not joined. You can join the queue again now."
            </p>
            <button
                class="primary"
                type="button"
                on:click=rejoin
                disabled=move || busy.get()
                aria-busy=move || busy.get().to_string()
            >
                {move || if busy.get() { "Joining…" } else { "Rejoin the queue" }}
            </button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <p><a href="/">"Back to the start"</a></p>
        </section>
    }
}
