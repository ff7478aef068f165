//! `/agent`: the specialist's console — sign in, availability, the live queue, accept.

use std::rc::Rc;

use callqueue_protocol::{AgentSession, QueueEvent, Reservation, UserEvent};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{
    api,
    components::device_check::{DeviceCheck, DeviceCheckPanel},
    components::{
        busy::{BusyButton, ErrorNote},
        connection::ConnectionIndicator,
    },
    i18n::{number, t, tf},
    live::{LiveHandle, LiveOptions, PollFuture, Transport, use_live},
    logic::{
        clock::ClockOffset,
        handshake::{notice, who},
        queue_list::{self, waited_text},
    },
    pages::use_document_title,
    ticker::{now_ms, use_ticker},
    user_channel::use_user_channel,
};

/// How many queue rows are drawn; the rest are counted. Keeps the page fast with thousands
/// waiting.
pub const VISIBLE_ROWS: usize = 50;
/// How many notices are kept.
const NOTICES: usize = 5;

/// The console, or the sign-in form when nobody is signed in.
#[component]
pub fn Agent() -> impl IntoView {
    let session = RwSignal::new(None::<AgentSession>);
    let (checked, set_checked) = signal(false);
    use_document_title(|| Some(t("console.tab").to_string()));
    spawn_local(async move {
        if let Ok(s) = api::agent_session().await {
            session.try_set(s);
        }
        set_checked.try_set(true);
    });
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

/// The signed-in console.
#[component]
pub fn Console(
    /// The signed-in specialist; cleared on sign-out.
    session: RwSignal<Option<AgentSession>>,
) -> impl IntoView {
    let navigate = use_navigate();
    let queue = RwSignal::new(Vec::<Reservation>::new());
    let offset = RwSignal::new(ClockOffset::default());
    let notices = RwSignal::new(Vec::<String>::new());
    let (error, set_error) = signal(None::<String>);
    let (accepting, set_accepting) = signal(false);
    let (toggling, set_toggling) = signal(false);
    let group = move || {
        session.with(|s| {
            s.as_ref()
                .and_then(|s| s.groups.first().cloned())
                .unwrap_or_else(|| api::GROUP.to_string())
        })
    };
    let group_now = group();

    // The queue stream, with the same reconnect rules as the customer pages.
    let on_message = Rc::new(move |_: &LiveHandle, name: &str, data: &str| {
        match QueueEvent::from_sse(name, data) {
            Ok(event) => {
                let server_time = match &event {
                    QueueEvent::Snapshot { server_time, .. }
                    | QueueEvent::Added { server_time, .. }
                    | QueueEvent::Removed { server_time, .. } => *server_time,
                };
                offset.set(ClockOffset::measure(server_time, now_ms() as i64));
                queue.update(|list| {
                    queue_list::apply(list, event);
                });
            }
            Err(e) => leptos::logging::warn!("ignored a malformed queue event: {e}"),
        }
    });
    let poll = {
        let group = group_now.clone();
        Rc::new(move || {
            let group = group.clone();
            Box::pin(async move {
                let q = api::queue(&group).await.map_err(|_| ())?;
                offset.set(ClockOffset::measure(q.server_time, now_ms() as i64));
                let changed = queue.with_untracked(|l| *l != q.reservations);
                queue.set(q.reservations);
                Ok(changed)
            }) as PollFuture
        })
    };
    let stream_state = use_live(
        Signal::stored(Some(api::queue_events_url(&group_now))),
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
    // Whether the customer of the current call has the call page open: (call, connected).
    let customer = RwSignal::new(None::<(String, bool)>);
    let channel_state = use_user_channel(move |event| {
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
            }
            UserEvent::CustomerPresence { call_id, connected } => {
                let known = customer.with_untracked(|c| c.clone());
                customer.set(Some((call_id.clone(), *connected)));
                // The same state again (the channel reconnected) is not news.
                if known.as_ref() == Some(&(call_id.clone(), *connected)) {
                    return;
                }
            }
            UserEvent::CustomerWaiting { .. } => {}
        }
        notices.update(|n| {
            n.insert(0, notice(&event));
            n.truncate(NOTICES);
        });
    });
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

    let available = move || session.with(|s| s.as_ref().is_some_and(|s| s.available));
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
            let group = group();
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
            spawn_local(async move {
                match api::accept(&group, sid).await {
                    Ok(r) => navigate(
                        &format!("/join/r/{}", r.reservation.reservation_sid),
                        Default::default(),
                    ),
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

    let sign_out = move |_| {
        spawn_local(async move {
            let _ = api::sign_out().await;
            session.try_set(None);
        });
    };

    let rows = move || {
        tick.track();
        let server_now = offset.get().server_now_ms(now_ms() as i64);
        queue.with(|list| {
            list.iter()
                .take(VISIBLE_ROWS)
                .enumerate()
                .map(|(i, r)| {
                    let waited = waited_text(server_now - r.created_at.timestamp_millis());
                    let sid = r.reservation_sid.clone();
                    let name = who(r.customer_name.as_deref());
                    let label = tf("console.accept_who", &[("who", &name)]);
                    let accept = accept.clone();
                    view! {
                        <li>
                            <span class="who">{format!("{} · {name}", number(i as i64 + 1))}</span>
                            <span class="waited">{tf("console.waiting_for", &[("time", &waited)])}</span>
                            {r.reason.clone().map(|reason| view! { <span class="reason">{reason}</span> })}
                            <button type="button" class="secondary accept-one"
                                aria-label=label
                                disabled=move || accepting.get() || !available()
                                on:click=move |_| accept(Some(sid.clone()))>
                                {t("console.accept")}
                            </button>
                        </li>
                    }
                })
                .collect_view()
        })
    };
    let more = move || queue.with(|l| l.len().saturating_sub(VISIBLE_ROWS));

    view! {
        <div class="console-head">
            <h1>{move || session.with(|s| s.as_ref().map(|s| tf("console.hello", &[("user", &s.user_id)])))}</h1>
            <button type="button" class="secondary sign-out" on:click=sign_out>{move || t("console.sign_out")}</button>
        </div>
        {move || session.with(|s| s.as_ref().and_then(|s| s.active_reservation_sid.clone())).map(|sid| view! {
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
        })}
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
        <h2>{move || tf("console.waiting_now", &[("n", &number(queue.with(Vec::len) as i64))])}</h2>
        <ul class="queue-list" aria-live="polite">{rows}</ul>
        <Show when=move || { more() > 0 }>
            <p class="more">{move || tf("console.more", &[("n", &number(more() as i64))])}</p>
        </Show>
        <h2>{move || t("console.notices")}</h2>
        <ul class="notices" aria-live="polite">
            {move || notices.get().into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}
        </ul>
        // Before going available: the camera and microphone the calls will use.
        <DeviceCheckPanel check=DeviceCheck::new()/>
        <div class="connections">
            <ConnectionIndicator state=stream_state what="console.queue_conn"/>
            // Without it a specialist could not tell that notices had stopped coming.
            <div class="channel">
                <ConnectionIndicator state=channel_state what="console.notices_conn"/>
            </div>
        </div>
    }
}
