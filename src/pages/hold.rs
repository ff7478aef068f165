//! `/hold/r/:sid`: the waiting screen, live from the reservation stream; once matched, "it's
//! your turn" with the time left to join.

use std::rc::Rc;

use callqueue_protocol::{Reservation, ReservationStatus};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{
    api,
    components::{
        busy::{BusyButton, ErrorNote},
        chat::element,
        connection::ConnectionIndicator,
        device_check::{DeviceCheck, DeviceCheckPanel},
        turn::{TurnChoices, reduced_motion, tell_turn},
    },
    i18n::{number, t, tf, time_of_day},
    live::{Connection, LiveHandle, LiveOptions, PollFuture, use_live},
    logic::{
        clock::{
            ClockOffset, display_seconds, format_short, ms_to_next_second, remaining_ms,
            updated_text, wait_text,
        },
        status::{StatusTracker, route_for},
    },
    pages::{replace, route_sid, use_document_title},
    storage,
    ticker::{now_ms, use_ticker},
};

/// What a hold page knows, and how a new copy of the reservation is taken in.
#[derive(Clone, Copy)]
pub struct HoldState {
    pub reservation: RwSignal<Option<Reservation>>,
    pub offset: RwSignal<ClockOffset>,
    /// When (by our clock, ms) a copy last arrived, whether or not it changed anything.
    pub heard_at: RwSignal<f64>,
    tracker: StoredValue<StatusTracker>,
}

impl HoldState {
    pub fn new() -> Self {
        Self {
            reservation: RwSignal::new(None),
            offset: RwSignal::new(ClockOffset::default()),
            heard_at: RwSignal::new(now_ms()),
            tracker: StoredValue::new(StatusTracker::default()),
        }
    }

    /// Takes a copy of the reservation from the stream or a poll. Answers whether it changed
    /// what the page shows, and the status to navigate to when it moved forward. A copy older
    /// than the one shown, or with an earlier status, is ignored.
    pub fn apply(&self, r: Reservation) -> (bool, Option<ReservationStatus>) {
        // A request that finishes after the page has gone finds its signals disposed.
        let Some(current) = self.reservation.try_get_untracked() else {
            return (false, None);
        };
        self.offset
            .set(ClockOffset::measure(r.server_time, now_ms() as i64));
        self.heard_at.set(now_ms());
        let tracker = self.tracker.get_value();
        if r.reservation_status.rank() < tracker.current().rank()
            || current
                .as_ref()
                .is_some_and(|c| r.updated_at < c.updated_at)
        {
            return (false, None);
        }
        let moved = self
            .tracker
            .try_update_value(|t| t.advance(r.reservation_status))
            .flatten();
        let changed = current.as_ref().is_none_or(|c| !c.same_state(&r));
        if changed {
            self.reservation.set(Some(r));
        }
        (changed, moved)
    }

    /// Takes one reservation stream event's data, as the page does: a malformed one is logged
    /// and changes nothing.
    pub fn take_event(&self, data: &str) -> (bool, Option<ReservationStatus>) {
        match serde_json::from_str::<Reservation>(data) {
            Ok(r) => self.apply(r),
            Err(e) => {
                leptos::logging::warn!("ignored a malformed reservation event: {e}");
                (false, None)
            }
        }
    }
}

impl Default for HoldState {
    fn default() -> Self {
        Self::new()
    }
}

/// The live waiting screen.
#[component]
pub fn Hold() -> impl IntoView {
    let sid = route_sid();
    let navigate = use_navigate();
    let state = HoldState::new();
    let (error, set_error) = signal(None::<String>);
    let (missing, set_missing) = signal(false);
    let (leaving, set_leaving) = signal(false);
    // The stream opens once the first read found the reservation.
    let stream_url = RwSignal::new(None::<String>);

    // Navigates when the status moves forward; the page's own status (queued) stays here.
    let follow: Rc<dyn Fn(Option<ReservationStatus>)> = {
        let sid = sid.clone();
        let navigate = navigate.clone();
        Rc::new(move |moved| {
            // Queued and matched are both shown here; the others have their own pages.
            if let Some(status) = moved.filter(|s| s.is_final()) {
                navigate(&route_for(status, &sid), replace());
            }
        })
    };

    {
        let sid = sid.clone();
        let follow = follow.clone();
        spawn_local(async move {
            match api::reservation(api::GROUP, &sid).await {
                Ok(r) => {
                    storage::set(storage::RESERVATION, &sid);
                    let status = r.reservation_status;
                    state.apply(r);
                    if status.is_final() {
                        follow(Some(status));
                        return;
                    }
                }
                Err(e) if e.status() == Some(404) || e.status() == Some(400) => {
                    set_missing.try_set(true);
                    return;
                }
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                }
            }
            stream_url.try_set(Some(api::reservation_events_url(api::GROUP, &sid)));
        });
    }

    let on_message = {
        let follow = follow.clone();
        Rc::new(move |_: &LiveHandle, _: &str, data: &str| {
            let (_, moved) = state.take_event(data);
            follow(moved);
        })
    };
    let poll = {
        let sid = sid.clone();
        let follow = follow.clone();
        Rc::new(move || {
            let sid = sid.clone();
            let follow = follow.clone();
            Box::pin(async move {
                let r = api::reservation(api::GROUP, &sid).await.map_err(|_| ())?;
                let (changed, moved) = state.apply(r);
                follow(moved);
                Ok(changed)
            }) as PollFuture
        })
    };
    let connection = use_live(
        stream_url,
        LiveOptions {
            on_message,
            poll: Some(poll),
            ..Default::default()
        },
    )
    .state;

    // Ticks each second while the join window counts down, else when the shown minute
    // would change.
    let tick = use_ticker(move |now| {
        let (deadline, estimate) = state.reservation.with_untracked(|r| {
            r.as_ref().map_or((None, None), |r| {
                (r.join_deadline, r.estimated_wait_earliest)
            })
        });
        let server_now = state.offset.get_untracked().server_now_ms(now as i64);
        match (deadline, estimate) {
            (Some(d), _) => ms_to_next_second(remaining_ms(d, server_now)),
            (None, Some(t)) => {
                let left = remaining_ms(t, server_now);
                (left.rem_euclid(60_000) + 5).clamp(1_000, 60_000) as u32
            }
            (None, None) => 60_000,
        }
    });

    use_document_title(move || {
        state.reservation.with(|r| {
            r.as_ref().map(|r| match r.reservation_status {
                ReservationStatus::Matched => t("turn.title").to_string(),
                _ => match r.queue_position {
                    Some(p) => tf("hold.tab_position", &[("position", &number(p as i64))]),
                    None => t("hold.tab_waiting").to_string(),
                },
            })
        })
    });

    let join = {
        let sid = sid.clone();
        let navigate = navigate.clone();
        Callback::new(move |()| navigate(&format!("/join/r/{sid}"), Default::default()))
    };
    let leave = {
        let sid = sid.clone();
        Callback::new(move |()| {
            if leaving.get_untracked() {
                return;
            }
            set_leaving.set(true);
            let sid = sid.clone();
            let navigate = navigate.clone();
            spawn_local(async move {
                match api::cancel_reservation(api::GROUP, &sid).await {
                    Ok(r) => navigate(&route_for(r.reservation_status, &sid), replace()),
                    Err(e) => {
                        set_error.try_set(Some(e.to_string()));
                        set_leaving.try_set(false);
                    }
                }
            });
        })
    };

    let (asking, set_asking) = signal(false);
    let more_time = {
        let sid = sid.clone();
        Callback::new(move |()| {
            if asking.get_untracked() {
                return;
            }
            set_asking.set(true);
            set_error.set(None);
            let sid = sid.clone();
            spawn_local(async move {
                match api::extend_join(api::GROUP, &sid).await {
                    Ok(r) => {
                        state.apply(r);
                    }
                    Err(e) => {
                        set_error.try_set(Some(e.to_string()));
                    }
                }
                set_asking.try_set(false);
            });
        })
    };

    view! {
        <Show
            when=move || !missing.get()
            fallback=|| {
                view! {
                    <section class="card missing">
                        <h1>{move || t("hold.missing")}</h1>
                        <p class="lead">{move || t("hold.missing_lead")}</p>
                        <a class="button" href="/">{move || t("hold.start_again")}</a>
                    </section>
                }
            }
        >
            <HoldCard state=state connection=connection tick=tick>
                <TurnPanel state=state tick=tick asking=asking on_join=join on_more_time=more_time/>
                <TurnChoices/>
                // While waiting: the camera and microphone the call will use.
                <DeviceCheckPanel check=DeviceCheck::new()/>
                <BusyButton
                    class="secondary leave"
                    label="hold.leave"
                    working="hold.leaving"
                    busy=leaving
                    on_press=leave
                />
                <ErrorNote error=error/>
            </HoldCard>
        </Show>
    }
}

/// Once matched: "Your specialist is waiting — join within 1:45", the join button, and once
/// "I need a moment". The countdown is shown each second but announced to screen readers only
/// when the turn comes and when a minute and half a minute are left.
#[component]
pub fn TurnPanel(
    state: HoldState,
    /// The page's clock.
    #[prop(into)]
    tick: Signal<f64>,
    /// Whether "I need a moment" is in flight.
    #[prop(into)]
    asking: Signal<bool>,
    on_join: Callback<()>,
    on_more_time: Callback<()>,
) -> impl IntoView {
    let matched = move || {
        state.reservation.with(|r| {
            r.as_ref()
                .is_some_and(|r| r.reservation_status == ReservationStatus::Matched)
        })
    };
    let left_ms = move || {
        tick.track();
        state
            .reservation
            .with(|r| r.as_ref().and_then(|r| r.join_deadline))
            .map(|d| remaining_ms(d, state.offset.get().server_now_ms(now_ms() as i64)))
    };
    // It's the customer's turn: told once on this page, however they have the tab.
    let told = StoredValue::new(false);
    Effect::new(move |_| {
        if matched() && !told.get_value() {
            told.set_value(true);
            tell_turn();
        }
    });
    // "Dr. Anna Berg is waiting for you", or "Your specialist is waiting" without a name.
    let join_within = move |time: &str| {
        state.reservation.with(
            |r| match r.as_ref().and_then(|r| r.specialist_name.as_deref()) {
                Some(name) => tf("turn.named_join_within", &[("name", name), ("time", time)]),
                None => tf("turn.join_within", &[("time", time)]),
            },
        )
    };
    let countdown = move || left_ms().map(|ms| format_short(display_seconds(ms)));
    // What screen readers hear: the sentence when the turn comes, then at 60 s and 30 s.
    let announced = RwSignal::new(String::new());
    let last_said = StoredValue::new(None::<u64>);
    Effect::new(move |_| {
        if !matched() {
            return;
        }
        let Some(secs) = left_ms().map(display_seconds) else {
            return;
        };
        let mark = if secs > 60 {
            u64::MAX
        } else if secs > 30 {
            60
        } else {
            30
        };
        if last_said.get_value() != Some(mark) {
            last_said.set_value(Some(mark));
            announced.set(join_within(&format_short(secs)));
        }
    });
    let extended = move || {
        state
            .reservation
            .with(|r| r.as_ref().is_some_and(|r| r.join_extended))
    };
    view! {
        <Show when=matched>
            <div class="turn" class:animate=move || !reduced_motion()>
                <h1>{move || t("turn.title")}</h1>
                <p class="join-within" aria-hidden="true">
                    {move || join_within(&countdown().unwrap_or_default())}
                </p>
                <p class="visually-hidden" role="status" aria-live="assertive">{move || announced.get()}</p>
                <button type="button" class="primary join-now" on:click=move |_| on_join.run(())>
                    {move || t("turn.join")}
                </button>
                <Show
                    when=move || !extended()
                    fallback=move || view! { <p class="hint">{move || t("turn.extended")}</p> }
                >
                    <BusyButton
                        class="secondary more-time"
                        label="turn.more_time"
                        working="turn.asking"
                        busy=asking
                        on_press=on_more_time
                    />
                </Show>
            </div>
        </Show>
    }
}

/// The waiting card: position (announced to screen readers), estimated wait, connection state.
#[component]
pub fn HoldCard(
    /// The reservation as last received.
    state: HoldState,
    /// The live connection's state.
    #[prop(into)]
    connection: Signal<Connection>,
    /// The page's clock: the wait is recomputed when it ticks.
    #[prop(into)]
    tick: Signal<f64>,
    /// The page's actions (leave, errors).
    children: Children,
) -> impl IntoView {
    let position = move || {
        state
            .reservation
            .with(|r| r.as_ref().and_then(|r| r.queue_position))
    };
    let queued = move || {
        state.reservation.with(|r| {
            r.as_ref()
                .is_none_or(|r| r.reservation_status == ReservationStatus::Queued)
        })
    };
    let wait = move || {
        tick.track();
        state.reservation.with(|r| {
            r.as_ref().map(
                |r| match (r.estimated_wait_earliest, r.estimated_wait_latest) {
                    (Some(lo), Some(hi)) => {
                        let now = state.offset.get().server_now_ms(now_ms() as i64);
                        wait_text(remaining_ms(lo, now), remaining_ms(hi, now))
                    }
                    _ => t("wait.estimating").to_string(),
                },
            )
        })
    };
    let since = move || {
        state.reservation.with(|r| {
            r.as_ref()
                .map(|r| tf("hold.since", &[("time", &time_of_day(r.created_at))]))
        })
    };
    // A moved position shows a short animation (none under reduced motion). The specialists'
    // word to everyone waiting, and the line sent to this customer alone, are drawn when they
    // change (not with every new position, which their live region would read again); by DOM
    // calls in this one effect, which cost the download less than a view of their own.
    let moved = RwSignal::new(false);
    let previous = StoredValue::new(None::<u32>);
    Effect::new(move |drawn: Option<[Option<String>; 2]>| {
        let now = position();
        let before = previous.get_value();
        previous.set_value(now);
        if before.is_some() && now.is_some() && before != now && !reduced_motion() {
            moved.set(true);
            let off = gloo_timers::callback::Timeout::new(700, move || {
                moved.try_set(false);
            });
            off.forget();
        }
        let words = state.reservation.with(|r| {
            r.as_ref()
                .map_or([None, None], |r| [r.notice.clone(), r.message.clone()])
        });
        if drawn.as_ref() != Some(&words)
            && let Some(div) = document().get_element_by_id("queue-words")
        {
            div.set_text_content(None);
            let doc = document();
            for word in words.iter().flatten() {
                if let Some(p) = element(&doc, "p", "notice") {
                    p.set_text_content(Some(word));
                    let _ = div.append_child(&p);
                }
            }
        }
        words
    });
    let stale = move || {
        tick.track();
        (connection.get() != Connection::Live)
            .then(|| updated_text((now_ms() - state.heard_at.get()) as i64))
    };
    view! {
        <section class="card hold">
            <div id="queue-words" class="queue-words" role="status"></div>
            <Show when=queued>
                <h1 class="eyebrow">{move || t("hold.title")}</h1>
                <p class="position-label" id="position-label">{move || t("hold.position")}</p>
                <p class="position" class:moved=move || moved.get() aria-live="polite" aria-atomic="true" aria-labelledby="position-label">
                    {move || position().map_or("–".to_string(), |p| number(p as i64))}
                </p>
                <p class="wait" aria-live="polite">{wait}</p>
                <p class="since">{since}</p>
                <p class="hint">{move || t("hold.hint")}</p>
            </Show>
            {children()}
            <ConnectionIndicator state=connection/>
            {move || stale().map(|s| view! { <p class="updated">{s}</p> })}
        </section>
    }
}
