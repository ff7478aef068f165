//! Five routes, a path parameter, a signal and a click handler: the framework's share of our app.

use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router, Routes},
    hooks::use_params_map,
    path,
};

#[component]
fn Page(name: &'static str) -> impl IntoView {
    let params = use_params_map();
    let (count, set_count) = signal(0);
    view! {
        <h1>{name}</h1>
        <p>{move || params.read().get("sid").unwrap_or_default()}</p>
        <button on:click=move |_| set_count.update(|n| *n += 1)>{count}</button>
    }
}

fn main() {
    mount_to_body(|| {
        view! {
            <Router>
                <a href="/">"home"</a>
                <Routes fallback=|| "not found">
                    <Route path=path!("/") view=|| view! { <Page name="home"/> }/>
                    <Route path=path!("/hold/r/:sid") view=|| view! { <Page name="hold"/> }/>
                    <Route path=path!("/join/r/:sid") view=|| view! { <Page name="join"/> }/>
                    <Route path=path!("/rejoin/r/:sid") view=|| view! { <Page name="rejoin"/> }/>
                    <Route path=path!("/agent") view=|| view! { <Page name="agent"/> }/>
                </Routes>
            </Router>
        }
    })
}
