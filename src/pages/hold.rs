//! `/hold/r/:sid`: the waiting screen, live from the reservation stream.

use std::rc::Rc;

use callqueue_protocol::{Reservation, ReservationStatus};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{
    api,
    components::{
        busy::{BusyButton, ErrorNote},
        connection::ConnectionIndicator,
        device_check::{DeviceCheck, DeviceCheckPanel},
    },
    live::{Connection, LiveHandle, LiveOptions, PollFuture, use_live},
    logic::{
        clock::{ClockOffset, remaining_ms, wait_text},
        status::{StatusTracker, route_for},
    },
    pages::{replace, route_sid, use_document_title},
    ticker::{now_ms, use_ticker},
};

/// What a hold page knows, and how a new copy of the reservation is taken in.
#[derive(Clone, Copy)]
pub struct HoldState {
    pub reservation: RwSignal<Option<Reservation>>,
    pub offset: RwSignal<ClockOffset>,
    tracker: StoredValue<StatusTracker>,
}

impl HoldState {
    pub fn new() -> Self {
        Self {
            reservation: RwSignal::new(None),
            offset: RwSignal::new(ClockOffset::default()),
            tracker: StoredValue::new(StatusTracker::default()),
        }
    }

    /// Takes a copy of the reservation from the stream or a poll. Answers whether it changed
    /// what the page shows, and the status to navigate to when it moved forward. A copy older
    /// than the one shown, or with an earlier status, is ignored.
    pub fn apply(&self, r: Reservation) -> (bool, Option<ReservationStatus>) {
        self.offset
            .set(ClockOffset::measure(r.server_time, now_ms() as i64));
        let current = self.reservation.get_untracked();
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
        let changed = current.as_ref().is_none_or(|c| {
            (
                c.reservation_status,
                c.queue_position,
                c.estimated_wait_until,
            ) != (
                r.reservation_status,
                r.queue_position,
                r.estimated_wait_until,
            )
        });
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
            if let Some(status) = moved.filter(|s| *s != ReservationStatus::Queued) {
                navigate(&route_for(status, &sid), replace());
            }
        })
    };

    {
        let sid = sid.clone();
        let follow = follow.clone();
        spawn_local(async move {
            match api::reservation(api::GROUP, &sid).await {
                Ok(r) => follow(state.apply(r).1),
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

    // Ticks when the shown minute would change.
    let tick = use_ticker(move |now| {
        let estimate = state
            .reservation
            .with_untracked(|r| r.as_ref().and_then(|r| r.estimated_wait_until));
        match estimate {
            Some(t) => {
                let left = remaining_ms(t, state.offset.get_untracked().server_now_ms(now as i64));
                (left.rem_euclid(60_000) + 5).clamp(1_000, 60_000) as u32
            }
            None => 60_000,
        }
    });

    use_document_title(move || {
        state.reservation.with(|r| {
            r.as_ref().map(|r| match r.reservation_status {
                ReservationStatus::Matched => "It's your turn".to_string(),
                _ => match r.queue_position {
                    Some(p) => format!("#{p} in the queue"),
                    None => "Waiting".to_string(),
                },
            })
        })
    });

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

    view! {
        <Show
            when=move || !missing.get()
            fallback=|| {
                view! {
                    <section class="card missing">
                        <h1>"We couldn't find your place in the queue"</h1>
                        <p class="lead">"The link may be old, or it belongs to another browser."</p>
                        <a class="button" href="/">"Start again"</a>
                    </section>
                }
            }
        >
            <HoldCard state=state connection=connection tick=tick>
                // While waiting: the camera and microphone the call will use.
                <DeviceCheckPanel check=DeviceCheck::new()/>
                <BusyButton
                    class="secondary leave"
                    label="Leave the queue"
                    working="Leaving…"
                    busy=leaving
                    on_press=leave
                />
                <ErrorNote error=error/>
            </HoldCard>
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
    let wait = move || {
        tick.track();
        state.reservation.with(|r| {
            r.as_ref().map(|r| match r.estimated_wait_until {
                Some(t) => wait_text(remaining_ms(
                    t,
                    state.offset.get().server_now_ms(now_ms() as i64),
                )),
                None => "Estimating your wait…".to_string(),
            })
        })
    };
    view! {
        <section class="card hold">
            <p class="eyebrow">"You are in the queue"</p>
            <p class="position-label" id="position-label">"Your position"</p>
            <p class="position" aria-live="polite" aria-atomic="true" aria-labelledby="position-label">
                {move || position().map_or("–".to_string(), |p| p.to_string())}
            </p>
            <p class="wait" aria-live="polite">{wait}</p>
            <p class="hint">"Keep this page open. We will bring you to the call when it's your turn."</p>
            {children()}
            <ConnectionIndicator state=connection/>
        </section>
    }
}
