//! Any path the app does not know.

use leptos::prelude::*;

/// Says the page does not exist and offers a way home.
#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <section class="card not-found">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <a class="button" href="/">"Go to the start page"</a>
        </section>
    }
}
