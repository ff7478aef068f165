//! `/`: where a customer starts a video chat.

use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{api, logic::status::route_for};

/// The landing page with the "Start video chat" button. Says when nobody is available; the
/// server hands back this browser's active reservation rather than making a second one.
#[component]
pub fn Home() -> impl IntoView {
    let navigate = use_navigate();
    let (busy, set_busy) = signal(false);
    let (error, set_error) = signal(None::<String>);
    let (available, set_available) = signal(None::<u32>);

    spawn_local(async move {
        if let Ok(status) = api::group_status(api::GROUP).await {
            set_available.try_set(Some(status.available_specialists));
        }
    });

    let start = move |_| {
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
        <section class="card home">
            <h1>"Talk to a specialist"</h1>
            <p class="lead">
                "Start a video chat and we will connect you with the next available specialist."
            </p>
            <Show when=move || available.get() == Some(0)>
                <p class="notice" role="status">
                    "Nobody is available right now. You can still join the queue: we will connect you as soon as a specialist is free."
                </p>
            </Show>
            <button
                class="primary"
                type="button"
                on:click=start
                disabled=move || busy.get()
                aria-busy=move || busy.get().to_string()
            >
                {move || if busy.get() { "Starting…" } else { "Start video chat" }}
            </button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}
