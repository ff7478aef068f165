//! The session's two alerts: a warning before the end, and time up.

use leptos::prelude::*;

use callqueue_protocol::{CallEndReason, Role};

use crate::{
    i18n::{t, tn},
    logic::{
        clock::crossed,
        ending::{end_sentence, is_time_up},
    },
};

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
    let text = move || {
        if minutes >= 1 {
            tn("alert.minutes_left", minutes, &[])
        } else {
            tn("alert.seconds_left", threshold_ms / 1000, &[])
        }
    };
    view! {
        <Show when=move || shown.get() && !dismissed.get()>
            <div class="alert warning ending-soon" role="alert">
                <span>{text}</span>
                <button type="button" class="dismiss" on:click=move |_| set_dismissed.set(true)>
                    {move || t("alert.dismiss")}
                </button>
            </div>
        </Show>
    }
}

/// Appears when the time has run out, or says why the server ended the call otherwise.
#[component]
pub fn TimeUpAlert(
    /// Milliseconds left; `None` before the session starts.
    #[prop(into)]
    remaining_ms: Signal<Option<i64>>,
    /// Whether the server has ended the call, and why.
    #[prop(into)]
    ended_reason: Signal<Option<CallEndReason>>,
    /// Whose page this is: the sentence is said from their side.
    #[prop(into)]
    role: Signal<Option<Role>>,
) -> impl IntoView {
    let time_up = move || is_time_up(ended_reason.get(), remaining_ms.get());
    let ended_other = move || {
        ended_reason
            .get()
            .filter(|r| *r != CallEndReason::TimeUp)
            .map(|r| end_sentence(r, role.get()))
    };
    view! {
        <Show when=time_up>
            <div class="alert danger time-up" role="alert">{move || end_sentence(CallEndReason::TimeUp, None)}</div>
        </Show>
        {move || ended_other().map(|sentence| view! {
            <div class="alert info call-ended" role="status">{sentence}</div>
        })}
    }
}
