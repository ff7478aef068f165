//! Any path the app does not know.

use leptos::prelude::*;

use crate::i18n::t;

/// Says the page does not exist and offers a way home.
#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <section class="card not-found">
            <h1>{move || t("notfound.title")}</h1>
            <p>{move || t("notfound.lead")}</p>
            <a class="button" href="/" rel=crate::home_rel()>{move || t("notfound.home")}</a>
        </section>
    }
}
