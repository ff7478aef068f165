//! `/agent`: the specialist's console — sign in, availability, the live queue, accept.

use std::rc::Rc;

use callqueue_protocol::{
    AgentSession, GroupDay, QueueEvent, Reservation, ReservationStatus, UserEvent,
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::queue_words::QueueWords;

use callqueue::{
    api,
    components::device_check::{DeviceCheck, DeviceCheckPanel},
    components::{
        busy::{BusyButton, ErrorNote},
        connection::ConnectionIndicator,
        queue_view::QueueView,
        turn,
    },
    i18n::{number, t, tf, tn},
    live::{LiveHandle, LiveOptions, PollFuture, Transport, use_live},
    logic::{
        clock::ClockOffset,
        handshake::{notice, who},
        queue_list::{self, waited_text},
    },
    pages::use_document_title,
    storage::{self, session_length_key},
    ticker::{now_ms, use_ticker},
    user_channel::use_user_channel,
};

/// How many notices are kept.
const NOTICES: usize = 5;

/// Who is signed in (read once), and whether that has been asked yet: the console and the
/// admin page show their sign-in form only once the answer is in.
pub fn use_agent_session() -> (RwSignal<Option<AgentSession>>, ReadSignal<bool>) {
    let session = RwSignal::new(None::<AgentSession>);
    let (checked, set_checked) = signal(false);
    spawn_local(async move {
        if let Ok(s) = api::agent_session().await {
            session.try_set(s);
        }
        set_checked.try_set(true);
    });
    (session, checked)
}

/// The console, or the sign-in form when nobody is signed in.
#[component]
pub fn Agent() -> impl IntoView {
    let (session, checked) = use_agent_session();
    use_document_title(|| Some(t("console.tab").to_string()));
    view! {
        <section class="card console">
            <Show
                when=move || session.with(Option::is_some)
                fallback=move || view! { <Show when=move || checked.get()><SignIn session=session/></Show> }
            >
                <Console session=session/>
            </Show>
        </section>
    }
}

/// The sign-in form.
#[component]
pub fn SignIn(
    /// Set when the specialist has signed in.
    session: RwSignal<Option<AgentSession>>,
) -> impl IntoView {
    let user = NodeRef::<leptos::html::Input>::new();
    let secret = NodeRef::<leptos::html::Input>::new();
    let (busy, set_busy) = signal(false);
    let (error, set_error) = signal(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (Some(user), Some(secret)) = (user.get(), secret.get()) else {
            return;
        };
        let (user, secret) = (user.value(), secret.value());
        set_busy.set(true);
        set_error.set(None);
        spawn_local(async move {
            match api::sign_in(user.trim(), secret.trim()).await {
                Ok(s) => {
                    session.try_set(Some(s));
                }
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                }
            }
            set_busy.try_set(false);
        });
    };
    view! {
        <h1>{move || t("signin.title")}</h1>
        <form on:submit=submit>
            <label>{move || t("signin.user")} <input node_ref=user name="user_id" autocomplete="username" required/></label>
            <label>{move || t("signin.secret")} <input node_ref=secret name="secret" type="password" autocomplete="current-password" required/></label>
            <BusyButton class="primary" label="signin.submit" working="signin.working" busy=busy/>
            <ErrorNote error=error/>
        </form>
    }
}

/// The choices of session length the console offers, in minutes.
pub const SESSION_MINUTES: [u32; 4] = [15, 30, 60, 90];
/// Where the chosen session length is remembered.
const SESSION_KEY: &str = "callqueue.session-minutes";
/// Where the console's sound choice is remembered.
const CONSOLE_SOUND: &str = "callqueue.console-sound";

/// The session lengths a specialist may choose, within the server's longest.
pub fn session_choices(max_call_seconds: u32) -> Vec<u32> {
    SESSION_MINUTES
        .into_iter()
        .filter(|m| max_call_seconds == 0 || m * 60 <= max_call_seconds)
        .collect()
}

/// Whether a new customer is announced (sound, notification): only to a specialist who could
/// take them now — available and not in a call.
pub fn announce_new_customer(available: bool, in_call: bool) -> bool {
    available && !in_call
}

/// The median of a day's waits as a person reads it.
fn median_text(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => waited_text((s * 1000.0) as i64),
        None => "–".to_string(),
    }
}

/// The signed-in console: the queue as the main column; beside it the current or next call,
/// the session length for the next one, the day's figures, alerts and notices.
#[component]
pub fn Console(
    /// The signed-in specialist; cleared on sign-out.
    session: RwSignal<Option<AgentSession>>,
) -> impl IntoView {
    crate::add_console_words();
    let navigate = use_navigate();
    let queue = RwSignal::new(Vec::<Reservation>::new());
    let offset = RwSignal::new(ClockOffset::default());
    let notices = RwSignal::new(Vec::<String>::new());
    let day = RwSignal::new(None::<GroupDay>);
    let (error, set_error) = signal(None::<String>);
    let (accepting, set_accepting) = signal(false);
    let (toggling, set_toggling) = signal(false);
    let groups = move || session.with(|s| s.as_ref().map(|s| s.groups.clone()).unwrap_or_default());
    let group = RwSignal::new(
        session
            .with_untracked(|s| s.as_ref().and_then(|s| s.groups.first().cloned()))
            .unwrap_or_else(|| api::GROUP.to_string()),
    );
    let minutes = RwSignal::new(
        storage::get(SESSION_KEY)
            .and_then(|m| m.parse::<u32>().ok())
            .filter(|m| SESSION_MINUTES.contains(m))
            .unwrap_or(60),
    );
    let sound = RwSignal::new(storage::get(CONSOLE_SOUND).as_deref() != Some("off"));
    // The waiting customer chosen for a line of their own: (reservation id, name).
    let line_to = RwSignal::new(None::<(String, String)>);

    // The day's figures for the group shown, since this browser's midnight.
    let load_day = move || {
        let group = group.get_untracked();
        spawn_local(async move {
            if let Ok(d) = api::today(&group, &local_midnight()).await {
                day.try_set(Some(d));
            }
        });
    };
    Effect::new(move |_| {
        group.track();
        day.set(None);
        load_day();
    });

    // The queue stream, with the same reconnect rules as the customer pages.
    let on_message = Rc::new(move |_: &LiveHandle, name: &str, data: &str| {
        match QueueEvent::from_sse(name, data) {
            Ok(event) => {
                let server_time = match &event {
                    QueueEvent::Snapshot { server_time, .. }
                    | QueueEvent::Added { server_time, .. }
                    | QueueEvent::Removed { server_time, .. } => *server_time,
                };
                // Someone was served (by anyone): the day's figures moved.
                let served = matches!(&event, QueueEvent::Removed { reservation, .. }
                    if reservation.reservation_status == ReservationStatus::Matched);
                offset.set(ClockOffset::measure(server_time, now_ms() as i64));
                queue.update(|list| {
                    queue_list::apply(list, event);
                });
                if served {
                    load_day();
                }
            }
            Err(e) => leptos::logging::warn!("ignored a malformed queue event: {e}"),
        }
    });
    let poll = Rc::new(move || {
        let group = group.get_untracked();
        Box::pin(async move {
            let q = api::queue(&group).await.map_err(|_| ())?;
            offset.set(ClockOffset::measure(q.server_time, now_ms() as i64));
            let changed = queue.with_untracked(|l| *l != q.reservations);
            queue.set(q.reservations);
            Ok(changed)
        }) as PollFuture
    });
    let stream_state = use_live(
        Signal::derive(move || Some(api::queue_events_url(&group.get()))),
        LiveOptions {
            transport: Transport::EventSource {
                events: &["queue.snapshot", "reservation.added", "reservation.removed"],
            },
            on_message,
            poll: Some(poll),
            ..Default::default()
        },
    )
    .state;
    let available = move || session.with(|s| s.as_ref().is_some_and(|s| s.available));
    let in_call = move || session.with(|s| s.as_ref().is_some_and(|s| s.active_call_id.is_some()));
    // Whether the customer of the current call has the call page open: (call, connected).
    let customer = RwSignal::new(None::<(String, bool)>);
    let channel_state = use_user_channel(
        move |event| {
            match &event {
                UserEvent::CallStarted {
                    call_id,
                    reservation_sid,
                    ..
                } => session.update(|s| {
                    if let Some(s) = s {
                        s.active_call_id = Some(call_id.clone());
                        s.active_reservation_sid = Some(reservation_sid.clone());
                    }
                }),
                UserEvent::CallEnded { call_id, .. } => {
                    session.update(|s| {
                        if let Some(s) = s
                            .as_mut()
                            .filter(|s| s.active_call_id.as_ref() == Some(call_id))
                        {
                            s.active_call_id = None;
                            s.active_reservation_sid = None;
                        }
                    });
                    customer.set(None);
                    load_day();
                }
                UserEvent::CustomerPresence { call_id, connected } => {
                    let known = customer.with_untracked(|c| c.clone());
                    customer.set(Some((call_id.clone(), *connected)));
                    // The same state again (the channel reconnected) is not news.
                    if known.as_ref() == Some(&(call_id.clone(), *connected)) {
                        return;
                    }
                }
                UserEvent::CustomerWaiting { .. } => {
                    // A new customer: heard only by a specialist who could take them now.
                    if announce_new_customer(available(), in_call()) {
                        if sound.get_untracked() {
                            turn::chime();
                        }
                        turn::notify_if_hidden(
                            t("console.new_customer"),
                            &notice(&event),
                            "callqueue-customer",
                        );
                    }
                }
            }
            notices.update(|n| {
                n.insert(0, notice(&event));
                n.truncate(NOTICES);
            });
        },
        // Signed out elsewhere, disabled by an admin, or expired: back to the sign-in form.
        move || {
            session.try_set(None);
        },
    );
    let customer_here = move || {
        session.with(|s| {
            let call = s.as_ref()?.active_call_id.clone()?;
            customer.with(|c| {
                c.as_ref()
                    .filter(|(id, _)| *id == call)
                    .map(|(_, here)| *here)
            })
        })
    };

    // "Waited" ticks every 5 s: minutes are what matter here.
    let tick = use_ticker(|_| 5_000);
    let server_now = Signal::derive(move || {
        tick.track();
        offset.get().server_now_ms(now_ms() as i64)
    });

    let toggle = move |_| {
        let Some(before) = session.get_untracked() else {
            return;
        };
        if toggling.get_untracked() {
            return;
        }
        let want = !before.available;
        // Optimistic: show the new state at once, put it back if the server refuses.
        session.update(|s| {
            if let Some(s) = s {
                s.available = want;
            }
        });
        set_toggling.set(true);
        set_error.set(None);
        spawn_local(async move {
            match api::set_available(want).await {
                Ok(s) => {
                    session.try_set(Some(s));
                }
                Err(e) => {
                    session.try_set(Some(before));
                    set_error.try_set(Some(tf(
                        "console.availability_failed",
                        &[("error", &e.to_string())],
                    )));
                }
            }
            set_toggling.try_set(false);
        });
    };

    let accept = {
        let navigate = navigate.clone();
        move |sid: Option<String>| {
            if accepting.get_untracked() {
                return;
            }
            let group = group.get_untracked();
            let before = queue.get_untracked();
            // Optimistic: the customer leaves the list at once; back in place on failure.
            let target = sid
                .clone()
                .or_else(|| before.first().map(|r| r.reservation_sid.clone()));
            if let Some(target) = &target {
                queue.update(|l| {
                    queue_list::remove(l, target);
                });
            }
            set_accepting.set(true);
            set_error.set(None);
            let navigate = navigate.clone();
            let seconds = minutes.get_untracked() * 60;
            spawn_local(async move {
                match api::accept(&group, sid).await {
                    Ok(r) => {
                        let sid = r.reservation.reservation_sid;
                        // The call page starts the session at the chosen length.
                        storage::set_session(&session_length_key(&sid), &seconds.to_string());
                        navigate(&format!("/join/r/{sid}"), Default::default())
                    }
                    Err(e) => {
                        queue.try_set(before);
                        set_error.try_set(Some(tf(
                            "console.accept_failed",
                            &[("error", &e.to_string())],
                        )));
                        set_accepting.try_set(false);
                    }
                }
            });
        }
    };
    let accept_next = {
        let accept = accept.clone();
        Callback::new(move |()| accept(None))
    };
    let accept_one = Callback::new(move |sid: String| accept(Some(sid)));

    let sign_out = move |_| {
        spawn_local(async move {
            let _ = api::sign_out().await;
            session.try_set(None);
        });
    };

    let longest = move || {
        queue.with(|l| {
            l.first()
                .map(|r| waited_text(server_now.get() - r.created_at.timestamp_millis()))
        })
    };
    let next_up = move || {
        queue.with(|l| {
            l.first()
                .map(|r| (who(r.customer_name.as_deref()), r.reason.clone()))
        })
    };
    let choices =
        move || session.with(|s| session_choices(s.as_ref().map_or(0, |s| s.max_call_seconds)));

    view! {
        <div class="console-head">
            <h1>{move || session.with(|s| s.as_ref().map(|s| tf("console.hello", &[("user", s.display_name.as_deref().unwrap_or(&s.user_id))])))}</h1>
            <Show when=move || session.with(|s| s.as_ref().is_some_and(|s| s.admin))>
                <a class="button secondary to-admin" href="/admin">{move || crate::admin::at("title")}</a>
            </Show>
            <button type="button" class="secondary sign-out" on:click=sign_out>{move || t("console.sign_out")}</button>
        </div>
        <div class="actions">
            // A real switch: its name says what it is; its state is aria-checked.
            <button
                type="button"
                role="switch"
                class="secondary availability"
                aria-checked=move || available().to_string()
                on:click=toggle
            >
                {move || t("console.available")}
            </button>
            <BusyButton
                class="primary accept-next"
                label="console.accept_next"
                working="console.accepting"
                busy=accepting
                unavailable=Signal::derive(move || !available() || queue.with(Vec::is_empty))
                on_press=accept_next
            />
        </div>
        <ErrorNote error=error/>
        <div class="console-grid">
            <section class="queue-column" aria-labelledby="queue-title">
                <div class="queue-head">
                    <h2 id="queue-title">{move || tf("console.waiting_now", &[("n", &number(queue.with(Vec::len) as i64))])}</h2>
                    <Show when=move || { groups().len() > 1 }>
                        <label class="group-filter">
                            <span>{move || t("console.group")}</span>
                            <select on:change=move |ev| group.set(event_target_value(&ev))>
                                {move || groups().into_iter().map(|g| {
                                    let selected = g == group.get_untracked();
                                    view! { <option value=g.clone() selected=selected>{g.clone()}</option> }
                                }).collect_view()}
                            </select>
                        </label>
                    </Show>
                </div>
                <p class="serving">{move || tf("console.serving", &[("groups", &groups().join(", "))])}</p>
                <QueueView
                    queue=queue
                    server_now_ms=server_now
                    can_accept=Signal::derive(move || available() && !accepting.get())
                    on_accept=accept_one
                    on_message=Callback::new(move |to| line_to.set(Some(to)))
                />
            </section>
            <aside class="side-column">
                <section class="panel current" aria-labelledby="current-title">
                    <h2 id="current-title">{move || if in_call() { t("console.current") } else { t("console.next") }}</h2>
                    {move || match session.with(|s| s.as_ref().and_then(|s| s.active_reservation_sid.clone())) {
                        Some(sid) => view! {
                            <p class="notice in-call">
                                {move || t("console.in_call")} " "
                                <span class="presence" role="status">
                                    {move || match customer_here() {
                                        Some(true) => t("console.customer_here"),
                                        Some(false) => t("console.customer_away"),
                                        None => "",
                                    }}
                                </span>
                                " "
                                <a href=format!("/join/r/{sid}")>{move || t("console.go_to_call")}</a>
                            </p>
                        }.into_any(),
                        None => match next_up() {
                            Some((name, reason)) => view! {
                                <p class="next-who">{name}</p>
                                {reason.map(|r| view! { <p class="next-reason">{r}</p> })}
                            }.into_any(),
                            None => view! { <p class="hint">{move || t("console.nobody")}</p> }.into_any(),
                        },
                    }}
                    <label class="session-length">
                        <span>{move || t("console.session_length")}</span>
                        <select on:change=move |ev| {
                            if let Ok(m) = event_target_value(&ev).parse::<u32>() {
                                minutes.set(m);
                                storage::set(SESSION_KEY, &m.to_string());
                            }
                        }>
                            {move || choices().into_iter().map(|m| view! {
                                <option value=m.to_string() selected=move || minutes.get() == m>
                                    {tn("console.minutes", m as i64, &[])}
                                </option>
                            }).collect_view()}
                        </select>
                    </label>
                </section>
                <section class="panel figures" aria-labelledby="day-title">
                    <h2 id="day-title">{move || t("console.today")}</h2>
                    <dl>
                        <dt>{move || t("console.served_today")}</dt>
                        <dd class="served">{move || day.get().map_or("–".to_string(), |d| number(d.served as i64))}</dd>
                        <dt>{move || t("console.median_wait")}</dt>
                        <dd class="median">{move || median_text(day.get().and_then(|d| d.median_wait_seconds))}</dd>
                        <dt>{move || t("console.longest_now")}</dt>
                        <dd class="longest">{move || longest().unwrap_or_else(|| "–".to_string())}</dd>
                        <dt>{move || t("console.rating")}</dt>
                        <dd class="rating">{move || day.get().and_then(|d| d.rating_average.map(|a| tf(
                            "console.rating_value",
                            &[("average", &format!("{a:.1}")), ("count", &number(d.ratings as i64))],
                        ))).unwrap_or_else(|| "–".to_string())}</dd>
                    </dl>
                    // What this specialist's customers wrote about their calls today.
                    {move || {
                        let said: Vec<_> = day.get().map(|d| d.feedback).unwrap_or_default()
                            .into_iter().filter(|f| f.comment.is_some()).collect();
                        (!said.is_empty()).then(|| view! {
                            <h3>{move || t("console.feedback")}</h3>
                            <ul class="feedback-list">
                                {said.into_iter().map(|f| view! {
                                    <li><span class="stars">{format!("{}/5", f.rating)}</span>" "
                                        <span class="comment">{f.comment.unwrap_or_default()}</span></li>
                                }).collect_view()}
                            </ul>
                        })
                    }}
                </section>
                <QueueWords group=group to=line_to/>
                <section class="panel alerts-choice">
                    <button type="button" role="switch" class="secondary console-sound"
                        aria-checked=move || sound.get().to_string()
                        on:click=move |_| {
                            let on = !sound.get_untracked();
                            sound.set(on);
                            storage::set(CONSOLE_SOUND, if on { "on" } else { "off" });
                        }>
                        {move || t("console.sound")}
                    </button>
                    <turn::NotifyButton why="console.why_notify" label="console.allow_notify"/>
                </section>
                <section class="panel" aria-labelledby="notices-title">
                    <h2 id="notices-title">{move || t("console.notices")}</h2>
                    <ul class="notices" aria-live="polite">
                        {move || notices.get().into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}
                    </ul>
                </section>
                // Before going available: the camera and microphone the calls will use.
                <DeviceCheckPanel check=DeviceCheck::new()/>
            </aside>
        </div>
        <div class="connections">
            <ConnectionIndicator state=stream_state what="console.queue_conn"/>
            // Without it a specialist could not tell that notices had stopped coming.
            <div class="channel">
                <ConnectionIndicator state=channel_state what="console.notices_conn"/>
            </div>
        </div>
    }
}

/// This browser's midnight today, as RFC 3339 (the day's figures start there).
fn local_midnight() -> String {
    let d = js_sys::Date::new_0();
    d.set_hours(0);
    d.set_minutes(0);
    d.set_seconds(0);
    d.set_milliseconds(0);
    String::from(d.to_iso_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_lengths_stay_within_the_longest_allowed() {
        assert_eq!(session_choices(4 * 3600), vec![15, 30, 60, 90]);
        assert_eq!(session_choices(3600), vec![15, 30, 60]);
        assert_eq!(session_choices(900), vec![15]);
        assert_eq!(session_choices(0), vec![15, 30, 60, 90], "unknown: all");
    }

    #[test]
    fn new_customers_are_announced_only_to_a_free_available_specialist() {
        assert!(announce_new_customer(true, false));
        assert!(!announce_new_customer(true, true));
        assert!(!announce_new_customer(false, false));
        assert!(!announce_new_customer(false, true));
    }
}
