//! `/`: where a customer checks in and starts a video chat, or finds the way back to the
//! place this browser already has.

use callqueue_protocol::{
    CheckInError, CheckInField, CheckInProblem, CreateReservationRequest, NAME_MAX_CHARS,
    REASON_MAX_CHARS, Reservation, ReservationStatus,
};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api,
    components::busy::{BusyButton, ErrorNote},
    i18n::{day_from_today, number, t, tf, time_of_day},
    pages::{use_document_title, use_join_queue},
    storage,
};

/// What a check-in problem says, in the reader's language.
pub fn check_in_message(e: CheckInError) -> String {
    let field = match e.field {
        CheckInField::Name => t("checkin.name"),
        CheckInField::Reason => t("checkin.reason"),
    };
    match e.problem {
        CheckInProblem::TooLong(max) => tf(
            "checkin.too_long",
            &[("field", field), ("max", &number(max as i64))],
        ),
        CheckInProblem::ControlCharacter => tf("checkin.control", &[("field", field)]),
        CheckInProblem::Required => tf("checkin.required", &[("field", field)]),
    }
}

/// The start page: the check-in form and "Start video chat"; instead, the way back when this
/// browser already has a place in the queue or a call.
#[component]
pub fn Home() -> impl IntoView {
    let (busy, error, start) = use_join_queue();
    let (available, set_available) = signal(None::<u32>);
    let (name_required, set_name_required) = signal(false);
    // Outside opening hours: when it opens next (`Some(None)`: not known).
    let (closed, set_closed) = signal(None::<Option<chrono::DateTime<chrono::Utc>>>);
    let active = RwSignal::new(None::<Reservation>);
    use_document_title(|| None);

    spawn_local(async move {
        if let Ok(status) = api::group_status(api::GROUP).await {
            set_available.try_set(Some(status.available_specialists));
            set_name_required.try_set(status.name_required);
            set_closed.try_set((!status.open).then_some(status.opens_at));
        }
    });
    // This browser's reservation, if it is still in the queue or in a call.
    if let Some(sid) = storage::get(storage::RESERVATION) {
        spawn_local(async move {
            match api::reservation(api::GROUP, &sid).await {
                Ok(r) if !r.reservation_status.is_final() => {
                    // A matched reservation stays matched after its call: ask the call.
                    let over = match (&r.call_type, &r.call_id) {
                        (Some(call_type), Some(id)) => api::call(call_type, id)
                            .await
                            .is_ok_and(|c| c.call.session.ended_at.is_some()),
                        _ => false,
                    };
                    if over {
                        storage::remove(storage::RESERVATION);
                    } else {
                        active.try_set(Some(r));
                    }
                }
                Ok(_) => storage::remove(storage::RESERVATION),
                Err(e) if matches!(e.status(), Some(400 | 404)) => {
                    storage::remove(storage::RESERVATION)
                }
                Err(_) => {}
            }
        });
    }

    let name = NodeRef::<leptos::html::Input>::new();
    let reason = NodeRef::<leptos::html::Textarea>::new();
    let (invalid, set_invalid) = signal(None::<CheckInError>);
    let (reason_len, set_reason_len) = signal(0usize);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let request = CreateReservationRequest {
            name: name.get().map(|n| n.value()),
            reason: reason.get().map(|r| r.value()),
        };
        // The server checks the same way; checking here says it at once, in our words.
        match request.checked(name_required.get_untracked()) {
            Ok((name, reason)) => {
                set_invalid.set(None);
                // In the tap itself: the chime for "it's your turn" can play later.
                crate::components::turn::unlock_sound();
                start.run(CreateReservationRequest { name, reason });
            }
            Err(e) => {
                set_invalid.set(Some(e));
                // The field with the problem takes the focus (a refused focus changes nothing).
                let _ = match e.field {
                    CheckInField::Name => name.get().map(|n| n.focus()),
                    CheckInField::Reason => reason.get().map(|r| r.focus()),
                };
            }
        }
    };
    let problem = move |field: CheckInField| {
        invalid
            .get()
            .filter(|e| e.field == field)
            .map(check_in_message)
    };

    let back = move || {
        active.get().map(|r| {
            let sid = r.reservation_sid.clone();
            let (text, link, href) = match r.reservation_status {
                ReservationStatus::Matched => (
                    t("back.in_call").to_string(),
                    t("back.to_call"),
                    format!("/join/r/{sid}"),
                ),
                _ => (
                    match r.queue_position {
                        Some(p) => tf("back.queued", &[("position", &number(p as i64))]),
                        None => t("back.queued_unknown").to_string(),
                    },
                    t("back.to_place"),
                    format!("/hold/r/{sid}"),
                ),
            };
            view! {
                <div class="come-back" role="status">
                    <p class="lead">{text}</p>
                    <a class="button primary" href=href>{link}</a>
                </div>
            }
        })
    };

    view! {
        <section class="card home">
            <h1>{move || t("home.title")}</h1>
            // The way back to a place this browser has; else, outside opening hours, when it
            // opens; else the check-in.
            <Show
                when=move || active.with(Option::is_none) && closed.with(Option::is_none)
                fallback=move || match closed.get() {
                    Some(opens_at) if active.with(Option::is_none) => {
                        Some(view! { <p class="notice closed" role="status">{closed_text(opens_at)}</p> }.into_any())
                    }
                    _ => back().map(IntoAny::into_any),
                }
            >
                <p class="lead">{move || t("home.lead")}</p>
                <form class="check-in" on:submit=submit novalidate=true>
                    <label for="check-in-name">
                        {move || if name_required.get() { t("checkin.name") } else { t("checkin.name_optional") }}
                    </label>
                    <input
                        id="check-in-name"
                        node_ref=name
                        name="name"
                        autocomplete="name"
                        maxlength=NAME_MAX_CHARS
                        required=name_required
                        aria-invalid=move || problem(CheckInField::Name).is_some().to_string()
                        aria-describedby="check-in-name-error"
                    />
                    <p class="field-error" id="check-in-name-error">{move || problem(CheckInField::Name)}</p>
                    <label for="check-in-reason">{move || t("checkin.reason_optional")}</label>
                    <textarea
                        id="check-in-reason"
                        node_ref=reason
                        name="reason"
                        rows="3"
                        maxlength=REASON_MAX_CHARS
                        placeholder=move || t("checkin.reason_hint")
                        aria-invalid=move || problem(CheckInField::Reason).is_some().to_string()
                        aria-describedby="check-in-reason-count check-in-reason-error"
                        on:input=move |ev| set_reason_len.set(event_target_value(&ev).chars().count())
                    ></textarea>
                    <p class="count" id="check-in-reason-count">
                        {move || tf("checkin.count", &[
                            ("used", &number(reason_len.get() as i64)),
                            ("max", &number(REASON_MAX_CHARS as i64)),
                        ])}
                    </p>
                    <p class="field-error" id="check-in-reason-error">{move || problem(CheckInField::Reason)}</p>
                    <p class="privacy">{move || t("checkin.privacy")}</p>
                    <BusyButton
                        class="primary"
                        label="home.start"
                        working="home.starting"
                        busy=busy
                    />
                    // Under the button it is about, so that nothing above moves when it comes.
                    <Show when=move || available.get() == Some(0)>
                        <p class="notice" role="status">{move || t("home.nobody")}</p>
                    </Show>
                </form>
                <ErrorNote error=error/>
            </Show>
        </section>
    }
}

/// "We're closed. We open again on Monday at 9:00." in the reader's language and time format.
pub fn closed_text(opens_at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    let Some(at) = opens_at else {
        return t("home.closed").to_string();
    };
    let time = time_of_day(at);
    match day_from_today(at) {
        None => tf("home.closed_today", &[("time", &time)]),
        Some(day) => tf("home.closed_day", &[("day", &day), ("time", &time)]),
    }
}
