//! The callqueue browser app: the route table and the pages behind it.
//!
//! `pages/` has one module per route, `components/` the pieces pages share, `live.rs` the
//! stream client, `ticker.rs` the page clock, `api.rs` the REST calls, and `logic/` the pure
//! rules (clock, ordering, backoff, status → route) tested natively.

use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

pub mod api;
pub mod call;
pub mod components;
pub mod i18n;
pub mod live;
pub mod logic;
pub mod pages;
pub mod storage;
pub mod ticker;
pub mod user_channel;

use pages::{
    agent::Agent, hold::Hold, home::Home, join::Join, not_found::NotFound, rejoin::Rejoin,
};

/// The whole app: the router and its routes.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"callqueue"</a>
                <i18n::LanguageSwitcher/>
            </header>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=Home/>
                    <Route path=path!("/hold/r/:sid") view=Hold/>
                    <Route path=path!("/join/r/:sid") view=Join/>
                    <Route path=path!("/rejoin/r/:sid") view=Rejoin/>
                    <Route path=path!("/agent") view=Agent/>
                </Routes>
            </main>
        </Router>
    }
}
