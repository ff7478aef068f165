//! One module per route.

pub mod agent;
pub mod hold;
pub mod home;
pub mod join;
pub mod not_found;
pub mod rejoin;

use leptos::prelude::*;

const APP_TITLE: &str = "callqueue";

/// Keeps the document title in step with `title` while the page is mounted, and puts the app's
/// own title back when it goes (a background tab's title is how a waiting customer is told).
pub fn use_document_title(title: impl Fn() -> Option<String> + Send + Sync + 'static) {
    Effect::new(move |_| {
        let text = match title() {
            Some(t) => format!("{t} · {APP_TITLE}"),
            None => APP_TITLE.to_string(),
        };
        document().set_title(&text);
    });
    on_cleanup(|| document().set_title(APP_TITLE));
}

/// Navigation that replaces the current history entry: a status change is not a page the
/// customer should go "back" to.
pub fn replace() -> leptos_router::NavigateOptions {
    leptos_router::NavigateOptions {
        replace: true,
        ..Default::default()
    }
}

/// The `:sid` of the current route.
pub fn route_sid() -> String {
    leptos_router::hooks::use_params_map()
        .read_untracked()
        .get("sid")
        .unwrap_or_default()
}
