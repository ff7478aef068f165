//! `/rejoin/r/:sid`: the reservation expired; explain and offer a new place.

use leptos::{prelude::*, task::spawn_local};

use crate::{
    api,
    components::busy::{BusyButton, ErrorNote},
    i18n::t,
    pages::{home::closed_text, last_check_in, use_document_title, use_join_queue},
};

/// Explains the expiry and rejoins the queue; when the queue has closed (its opening hours),
/// says when it opens again instead.
#[component]
pub fn Rejoin() -> impl IntoView {
    let (busy, error, rejoin) = use_join_queue();
    use_document_title(|| Some(t("rejoin.tab").to_string()));
    let (closed, set_closed) = signal(None::<Option<chrono::DateTime<chrono::Utc>>>);
    spawn_local(async move {
        if let Ok(status) = api::group_status(api::GROUP).await {
            set_closed.try_set((!status.open).then_some(status.opens_at));
        }
    });

    view! {
        <section class="card rejoin">
            <h1>{move || t("rejoin.title")}</h1>
            <p class="lead">
                {move || if closed.with(Option::is_some) { t("rejoin.closed") } else { t("rejoin.lead") }}
            </p>
            {move || closed.get().map(|opens_at| view! {
                <p class="notice closed" role="status">{closed_text(opens_at)}</p>
            })}
            <div class:hidden=move || closed.with(Option::is_some)>
                <BusyButton
                    class="primary"
                    label="rejoin.again"
                    working="rejoin.joining"
                    busy=busy
                    on_press=Callback::new(move |()| rejoin.run(last_check_in()))
                />
            </div>
            <ErrorNote error=error/>
            <p><a href="/">{move || t("common.back_to_start")}</a></p>
        </section>
    }
}
