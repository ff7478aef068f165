//! One module per route.

pub mod agent;
pub mod hold;
pub mod home;
pub mod join;
pub mod not_found;
pub mod rejoin;

use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{api, logic::status::route_for};

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

/// A "join the queue" action for a button: creates a reservation (the server hands back this
/// browser's active one instead of making a second) and goes where its status belongs. Returns
/// whether a request is in flight, the last error, and the action.
pub fn use_join_queue() -> (ReadSignal<bool>, ReadSignal<Option<String>>, Callback<()>) {
    let navigate = use_navigate();
    let (busy, set_busy) = signal(false);
    let (error, set_error) = signal(None::<String>);
    let join = Callback::new(move |()| {
        if busy.get_untracked() {
            return;
        }
        set_busy.set(true);
        set_error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::create_reservation(api::GROUP).await {
                Ok(r) => navigate(
                    &route_for(r.reservation_status, &r.reservation_sid),
                    Default::default(),
                ),
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                    set_busy.try_set(false);
                }
            }
        });
    });
    (busy, error, join)
}
