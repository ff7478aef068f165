//! The session's two alerts: a warning before the end, and time up.

use leptos::prelude::*;

use crate::logic::clock::crossed;

/// Appears once when the time left crosses `threshold_ms`, until dismissed; once dismissed it
/// stays dismissed, even if the session is extended and crosses the threshold again.
#[component]
pub fn EndingSoonAlert(
    /// Milliseconds left; `None` before the session starts.
    #[prop(into)]
    remaining_ms: Signal<Option<i64>>,
    /// When to warn. Default: 5 minutes.
    #[prop(default = 300_000)]
    threshold_ms: i64,
) -> impl IntoView {
    let (shown, set_shown) = signal(false);
    let (dismissed, set_dismissed) = signal(false);
    let previous = StoredValue::new(None::<i64>);
    Effect::new(move |_| {
        let Some(now) = remaining_ms.get() else {
            return;
        };
        let prev = previous.get_value();
        previous.set_value(Some(now));
        // The timer shows whole seconds rounded up, so the warning waits until it reads one
        // second under the threshold ("04:59"), never "05:00" beside "less than 5 minutes".
        if now <= 0 {
            // The time-up alert takes over.
            set_shown.set(false);
        } else if now > threshold_ms - 1000 {
            set_shown.set(false);
        } else if crossed(prev, now, threshold_ms - 1000) && !dismissed.get_untracked() {
            set_shown.set(true);
        }
    });
    let minutes = threshold_ms / 60_000;
    let text = if minutes >= 1 {
        format!(
            "Less than {minutes} minute{} remaining",
            if minutes == 1 { "" } else { "s" }
        )
    } else {
        format!("Less than {} seconds remaining", threshold_ms / 1000)
    };
    view! {
        <Show when=move || shown.get() && !dismissed.get()>
            <div class="alert warning ending-soon" role="alert">
                <span>{text.clone()}</span>
                <button type="button" class="dismiss" on:click=move |_| set_dismissed.set(true)>
                    "Dismiss"
                </button>
            </div>
        </Show>
    }
}

/// Appears when the time has run out, or the server has ended the call.
#[component]
pub fn TimeUpAlert(
    /// Milliseconds left; `None` before the session starts.
    #[prop(into)]
    remaining_ms: Signal<Option<i64>>,
    /// Whether the server has ended the call, and why (`timer`, `left`, ...).
    #[prop(into)]
    ended_reason: Signal<Option<String>>,
) -> impl IntoView {
    let time_up = move || {
        remaining_ms.get().is_some_and(|ms| ms <= 0)
            || ended_reason.get().as_deref() == Some("timer")
    };
    let ended_other = move || ended_reason.get().is_some_and(|r| r != "timer") && !time_up();
    view! {
        <Show when=time_up>
            <div class="alert danger time-up" role="alert">"The time has run out"</div>
        </Show>
        <Show when=ended_other>
            <div class="alert info call-ended" role="status">"The call has ended"</div>
        </Show>
    }
}
