//! "Extend session": only for those who hold `change-max-duration`.

use callqueue_protocol::Capability;
use leptos::prelude::*;

use crate::i18n::{t, tn};

/// Renders only when `capabilities` contains `change-max-duration`. While its request is in
/// flight it shows progress and cannot be pressed again.
#[component]
pub fn ExtendButton(
    /// The caller's `own_capabilities` in the call.
    #[prop(into)]
    capabilities: Signal<Vec<Capability>>,
    /// How much one press adds, in seconds. Default: 30 minutes.
    #[prop(default = 1800)]
    extend_by_seconds: u32,
    /// Does the extending; receives `extend_by_seconds` and settles when the server answered.
    on_extend: Callback<u32, ()>,
    /// Whether a request is in flight (the page owns it, since it owns the request).
    #[prop(into)]
    busy: Signal<bool>,
) -> impl IntoView {
    let allowed = move || capabilities.get().contains(&Capability::ChangeMaxDuration);
    let minutes = extend_by_seconds / 60;
    view! {
        <Show when=allowed>
            <button
                type="button"
                class="extend"
                disabled=move || busy.get()
                aria-busy=move || busy.get().to_string()
                on:click=move |_| {
                    if !busy.get_untracked() {
                        on_extend.run(extend_by_seconds);
                    }
                }
            >
                {move || {
                    if busy.get() {
                        t("extend.working").to_string()
                    } else {
                        tn("extend.label", minutes as i64, &[])
                    }
                }}
            </button>
        </Show>
    }
}
