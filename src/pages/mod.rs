//! One module per route.

pub mod hold;
pub mod home;
pub mod join;
pub mod not_found;
pub mod rejoin;

use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use callqueue_protocol::CreateReservationRequest;

use crate::{api, logic::status::route_for, storage};

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

/// The check-in this tab last gave (to rejoin without typing it again).
pub fn last_check_in() -> CreateReservationRequest {
    storage::get_session(storage::CHECK_IN)
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

/// A "join the queue" action: creates a reservation with a check-in (the server hands back this
/// browser's active one instead of making a second), remembers it, and goes where its status
/// belongs. Returns whether a request is in flight, the last error, and the action.
pub fn use_join_queue() -> (
    ReadSignal<bool>,
    ReadSignal<Option<String>>,
    Callback<CreateReservationRequest>,
) {
    let navigate = use_navigate();
    let (busy, set_busy) = signal(false);
    let (error, set_error) = signal(None::<String>);
    // One key per join: a try again after an error the network caused is the same join.
    let key = StoredValue::new(api::join_key());
    let join = Callback::new(move |check_in: CreateReservationRequest| {
        if busy.get_untracked() {
            return;
        }
        set_busy.set(true);
        set_error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            let join_key = key.get_value();
            match api::create_reservation(api::GROUP, &check_in, &join_key).await {
                Ok(r) => {
                    key.set_value(api::join_key());
                    storage::set(storage::RESERVATION, &r.reservation_sid);
                    if let Ok(json) = serde_json::to_string(&check_in) {
                        storage::set_session(storage::CHECK_IN, &json);
                    }
                    navigate(
                        &route_for(r.reservation_status, &r.reservation_sid),
                        Default::default(),
                    )
                }
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                    set_busy.try_set(false);
                }
            }
        });
    });
    (busy, error, join)
}
