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
pub mod feature;
pub mod i18n;
pub mod live;
pub mod logic;
pub mod pages;
pub mod storage;
pub mod ticker;
pub mod user_channel;

use pages::{hold::Hold, home::Home, join::Join, not_found::NotFound, rejoin::Rejoin};

/// The frame every page of both bundles shares: the router, the top bar, and the page's place.
#[component]
pub fn Frame(children: Children) -> impl IntoView {
    let rel = home_rel();
    view! {
        <Router>
            <header class="topbar">
                <a class="brand" href="/" rel=rel>"callqueue"</a>
                <i18n::LanguageSwitcher/>
            </header>
            <main class="page">{children()}</main>
        </Router>
    }
}

/// The customer's app: home, hold, join and rejoin. The specialist's console is its own bundle
/// (`console/`, served at `/agent`), so a customer never downloads it.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <Frame>
            <Routes fallback=NotFound>
                <Route path=path!("/") view=Home/>
                <Route path=path!("/hold/r/:sid") view=Hold/>
                <Route path=path!("/join/r/:sid") view=Join/>
                <Route path=path!("/rejoin/r/:sid") view=Rejoin/>
            </Routes>
        </Frame>
    }
}

/// Provided by a bundle that has the console's route: then the way back to `/agent` is a
/// step inside the app; without it, `/agent` is another bundle and is loaded as a new page.
#[derive(Clone, Copy)]
pub struct ConsoleHere;

/// The `rel` of a link to the start page: in the console's bundle the start page is the other
/// bundle, loaded as a new page (`external`); in the customer's, a step inside the app.
pub fn home_rel() -> Option<&'static str> {
    use_context::<ConsoleHere>().map(|_| "external")
}

/// Where a page both bundles have goes when it is done: the start page for a customer, the
/// console for a specialist (`true`). Inside this bundle by the router, else as a new page.
pub fn use_leave_to() -> impl Fn(bool) + Clone + 'static {
    let navigate = leptos_router::hooks::use_navigate();
    let console_here = use_context::<ConsoleHere>().is_some();
    move |specialist| {
        let (path, here) = if specialist {
            (CONSOLE_PATH, console_here)
        } else {
            ("/", !console_here)
        };
        if here {
            navigate(path, Default::default());
        } else if let Err(e) = window().location().assign(path) {
            leptos::logging::error!("could not open {path}: {e:?}");
        }
    }
}

/// Where the specialist's console is served.
pub const CONSOLE_PATH: &str = "/agent";

/// Starts a bundle in the page: panics to the browser's console, the visitor's language, and
/// `app` in the place of the static shell that `index.html` painted first.
pub fn start<N: IntoView + 'static>(app: impl FnOnce() -> N + 'static) {
    console_error_panic_hook::set_once();
    i18n::init();
    if let Some(shell) = document().get_element_by_id("shell") {
        shell.remove();
    }
    leptos::mount::mount_to_body(app);
}
