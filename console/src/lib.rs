//! The specialist's console: its own bundle, served at `/agent`, so that a customer never
//! downloads it. It shares the app's code (`callqueue`): the frame, the call page, the live
//! client, the translations; only the console page itself lives here.

use callqueue::{
    ConsoleHere, Frame,
    pages::{join::Join, not_found::NotFound},
};
use leptos::prelude::*;
use leptos_router::{
    components::{Route, Routes},
    path,
};

pub mod admin;
pub mod console;
pub mod queue_words;

use admin::Admin;
use console::Agent;

/// Adds the console's words to the shared catalogue (the customer's bundle has none of them).
pub fn add_console_words() {
    callqueue::i18n::add_words([
        include_str!("../locales/console.en.txt"),
        include_str!("../locales/console.de.txt"),
    ]);
}

/// The console's app: the console, and the call page it sends the specialist to.
#[component]
pub fn AgentApp() -> impl IntoView {
    add_console_words();
    provide_context(ConsoleHere);
    view! {
        <Frame>
            <Routes fallback=NotFound>
                <Route path=path!("/agent") view=Agent/>
                <Route path=path!("/admin") view=Admin/>
                <Route path=path!("/join/r/:sid") view=Join/>
            </Routes>
        </Frame>
    }
}
