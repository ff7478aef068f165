//! The button of an action that takes a request, and the error that request may end with.

use leptos::prelude::*;

use crate::i18n::t;

/// A button whose action waits on the server: while `busy` it says so (`working`), is disabled
/// and `aria-busy`, so a second press cannot send a second request.
#[component]
pub fn BusyButton(
    /// The button's classes.
    class: &'static str,
    /// The catalogue key of what it says when it can be pressed (a signal where that
    /// changes, e.g. to "Done").
    #[prop(into)]
    label: Signal<&'static str>,
    /// The catalogue key of what it says while its request is in flight.
    working: &'static str,
    /// Whether its request is in flight (the page owns it, since it owns the request).
    #[prop(into)]
    busy: Signal<bool>,
    /// Also disabled while this holds, for reasons other than being busy.
    #[prop(optional, into)]
    unavailable: Option<Signal<bool>>,
    /// What a press does; `None` for a form's submit button.
    #[prop(optional, into)]
    on_press: Option<Callback<()>>,
) -> impl IntoView {
    let unavailable = move || unavailable.is_some_and(|u| u.get());
    let kind = if on_press.is_some() {
        "button"
    } else {
        "submit"
    };
    view! {
        <button
            type=kind
            class=class
            disabled=move || busy.get() || unavailable()
            aria-busy=move || busy.get().to_string()
            on:click=move |_| {
                if let Some(press) = on_press
                    && !busy.get_untracked()
                {
                    press.run(());
                }
            }
        >
            {move || if busy.get() { t(working) } else { t(label.get()) }}
        </button>
    }
}

/// The last error, as an alert, or nothing.
#[component]
pub fn ErrorNote(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|e| view! { <p class="error" role="alert">{e}</p> })
    }
}
