//! `/`: where a customer starts a video chat.

use crate::{
    api,
    components::busy::{BusyButton, ErrorNote},
    pages::use_join_queue,
};
use leptos::{prelude::*, task::spawn_local};

/// The landing page with the "Start video chat" button. Says when nobody is available; the
/// server hands back this browser's active reservation rather than making a second one.
#[component]
pub fn Home() -> impl IntoView {
    let (busy, error, start) = use_join_queue();
    let (available, set_available) = signal(None::<u32>);

    spawn_local(async move {
        if let Ok(status) = api::group_status(api::GROUP).await {
            set_available.try_set(Some(status.available_specialists));
        }
    });

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
            <BusyButton
                class="primary"
                label="Start video chat"
                working="Starting…"
                busy=busy
                on_press=start
            />
            <ErrorNote error=error/>
        </section>
    }
}
