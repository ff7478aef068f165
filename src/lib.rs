//! The callqueue browser app: the route table and the pages behind it.
//!
//! Pages live one per file under `pages/`; the wire types come from `callqueue-protocol`.

use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

pub mod pages;

use pages::{home::Home, not_found::NotFound};

/// The whole app: the router and its routes.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <Router>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=Home/>
                </Routes>
            </main>
        </Router>
    }
}
