//! The app in headless Chromium: pages, components, the live client, timers.
#![cfg(target_arch = "wasm32")]

use std::{cell::Cell, rc::Rc};

use callqueue::{
    App,
    components::{
        alerts::{EndingSoonAlert, TimeUpAlert},
        busy::{BusyButton, ErrorNote},
        connection::ConnectionIndicator,
        extend_button::ExtendButton,
        session_timer::SessionTimer,
    },
    live::{After, Connection, Live, LiveOptions, PollFuture, Transport, open_streams, use_live},
    pages::{
        hold::{HoldCard, HoldState, TurnPanel},
        home::Home,
        join::CallState,
        not_found::NotFound,
        rejoin::Rejoin,
    },
    ticker::active_tickers,
};
use callqueue::{
    components::queue_view::{QueueView, ROW_PX},
    components::turn::turns_told,
    i18n::{Lang, LanguageSwitcher, set_lang},
};
use callqueue_protocol::{
    Call, CallEndReason, CallEvent, CallEventType, CallResponse, CallSession, CallSettings,
    Capability, Limits, Reservation, ReservationStatus, Role,
};
use chrono::{DateTime, Duration, Utc};
use leptos::prelude::*;
use leptos_router::components::Router;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

mod common;

use common::{StubSocket, container, eventually, go, sleep, text};

wasm_bindgen_test_configure!(run_in_browser);

/// An SSE body served from a Blob URL, parsed by the browser's own EventSource.
fn sse_blob(body: &str) -> String {
    let parts = js_sys::Array::of1(&JsValue::from_str(body));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/event-stream");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).unwrap();
    web_sys::Url::create_object_url_with_blob(&blob).unwrap()
}

fn reservation(
    status: ReservationStatus,
    position: Option<u32>,
    estimate: Option<DateTime<Utc>>,
    updated_secs: i64,
) -> Reservation {
    let t0 = Utc::now() - Duration::minutes(5);
    Reservation {
        reservation_sid: "r1".into(),
        group_name: "default".into(),
        reservation_status: status,
        queue_position: position,
        estimated_wait_until: estimate,
        estimated_wait_earliest: estimate,
        estimated_wait_latest: estimate,
        created_at: t0,
        updated_at: t0 + Duration::seconds(updated_secs),
        call_id: None,
        call_type: None,
        join_deadline: None,
        join_extended: false,
        customer_name: None,
        reason: None,
        specialist_name: None,
        notice: None,
        message: None,
        server_time: Utc::now(),
    }
}

fn message(id: u64, data: &impl serde::Serialize) -> String {
    format!(
        "id: {id}\ndata: {}\n\n",
        serde_json::to_string(data).unwrap()
    )
}

#[wasm_bindgen_test]
async fn home_offers_to_start_a_video_chat() {
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), || view! { <Router><Home/></Router> });
    leptos::task::tick().await;
    let button = parent
        .query_selector("button.primary")
        .unwrap()
        .expect("a primary button");
    assert_eq!(button.text_content().unwrap(), "Start video chat");
    assert_eq!(text(&parent, "h1").unwrap(), "Talk to a specialist");
}

#[wasm_bindgen_test]
async fn not_found_links_home() {
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), NotFound);
    leptos::task::tick().await;
    let link = parent.query_selector("a").unwrap().expect("a link home");
    assert_eq!(link.get_attribute("href").as_deref(), Some("/"));
    assert!(parent.text_content().unwrap().contains("Page not found"));
}

#[wasm_bindgen_test]
async fn rejoin_explains_and_offers_a_new_place() {
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), || view! { <Router><Rejoin/></Router> });
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, "h1").unwrap(),
        "Your place in the queue expired"
    );
    assert_eq!(text(&parent, "button.primary").unwrap(), "Rejoin the queue");
}

/// Mounts the whole app at `path` (this test page has no API behind it).
async fn app_at(
    path: &str,
) -> (
    web_sys::HtmlElement,
    leptos::mount::UnmountHandle<impl Mountable>,
) {
    go(path);
    let parent = container();
    let handle = leptos::mount::mount_to(parent.clone(), App);
    leptos::task::tick().await;
    (parent, handle)
}

#[wasm_bindgen_test]
async fn every_route_renders() {
    let (p, h) = app_at("/").await;
    assert_eq!(
        text(&p, "button.primary").as_deref(),
        Some("Start video chat")
    );
    drop(h);

    // Without a server behind it, a reservation cannot be found: the page says so, not blank.
    let (p, h) = app_at("/hold/r/nosuch").await;
    assert!(
        eventually(5000, || text(&p, "h1").as_deref()
            == Some("We couldn't find your place in the queue"))
        .await
    );
    drop(h);

    let (p, h) = app_at("/join/r/nosuch").await;
    assert!(
        eventually(5000, || text(&p, ".error")
            .is_some_and(|t| t.contains("couldn't find this call")))
        .await
    );
    assert!(text(&p, ".timer-value").is_some());
    drop(h);

    let (p, h) = app_at("/rejoin/r/nosuch").await;
    assert_eq!(
        text(&p, "h1").as_deref(),
        Some("Your place in the queue expired")
    );
    drop(h);

    // The console is another bundle (console/): the customer's app does not know its route.
    let (p, h) = app_at("/agent").await;
    assert_eq!(text(&p, "h1").as_deref(), Some("Page not found"));
    drop(h);

    let (p, h) = app_at("/no/such/page").await;
    assert_eq!(text(&p, "h1").as_deref(), Some("Page not found"));
    drop(h);
    go("/");
}

#[wasm_bindgen_test]
async fn hold_follows_stream_events_in_order() {
    let soon = Utc::now() + Duration::seconds(9 * 60 + 30);
    let body = [
        message(3, &reservation(ReservationStatus::Queued, Some(3), None, 3)),
        message(
            5,
            &reservation(ReservationStatus::Queued, Some(2), Some(soon), 5),
        ),
        // Late and duplicate: dropped.
        message(4, &reservation(ReservationStatus::Queued, Some(1), None, 4)),
        message(5, &reservation(ReservationStatus::Queued, Some(1), None, 6)),
        // Malformed: logged and ignored, the page keeps its last good state.
        "id: 6\ndata: {\"reservation_status\":\"GROUP_RESERVATION_STATUS_LOST\"}\n\n".to_string(),
    ]
    .concat();
    let state = HoldState::new();
    let connection = RwSignal::new(Connection::Connecting);
    // The positions the page showed, one per change it took.
    let seen = Rc::new(Cell::new(Vec::<Option<u32>>::new()));
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! { <HoldCard state=state connection=connection tick=Signal::stored(0.0)><span/></HoldCard> }
    });
    assert_eq!(text(&parent, ".wait"), Some(String::new()));
    let live = {
        let seen = seen.clone();
        Live::connect(
            sse_blob(&body),
            LiveOptions {
                // The page's own handler; the test only notes what it showed.
                on_message: Rc::new(move |_, _, data| {
                    let (changed, _) = state.take_event(data);
                    if changed {
                        let mut v = seen.take();
                        v.push(
                            state
                                .reservation
                                .with_untracked(|r| r.as_ref().and_then(|r| r.queue_position)),
                        );
                        seen.set(v);
                    }
                }),
                ..Default::default()
            },
            Some(connection),
        )
    };
    assert!(eventually(3000, || text(&parent, ".position").as_deref() == Some("2")).await);
    sleep(200).await;
    assert_eq!(text(&parent, ".position").as_deref(), Some("2"));
    assert_eq!(text(&parent, ".wait").as_deref(), Some("About 10 minutes"));
    let seen = seen.take();
    assert_eq!(
        seen,
        vec![Some(3), Some(2)],
        "applied in id order; late, duplicate and malformed ones dropped"
    );
    drop(live);

    // Statuses never move backwards.
    let state = HoldState::new();
    let matched = reservation(ReservationStatus::Matched, None, None, 10);
    assert_eq!(state.apply(matched).1, Some(ReservationStatus::Matched));
    let late = reservation(ReservationStatus::Queued, Some(1), None, 11);
    assert_eq!(state.apply(late), (false, None));
    let expired = reservation(ReservationStatus::Expired, None, None, 12);
    assert_eq!(state.apply(expired).1, Some(ReservationStatus::Expired));
    let canceled = reservation(ReservationStatus::Canceled, None, None, 13);
    assert_eq!(state.apply(canceled).1, None);
}

#[wasm_bindgen_test]
async fn hold_says_estimating_while_unknown() {
    let state = HoldState::new();
    state.apply(reservation(ReservationStatus::Queued, Some(4), None, 1));
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! { <HoldCard state=state connection=Connection::Live tick=Signal::stored(0.0)><span/></HoldCard> }
    });
    leptos::task::tick().await;
    assert_eq!(text(&parent, ".position").as_deref(), Some("4"));
    assert_eq!(
        text(&parent, ".wait").as_deref(),
        Some("Estimating your wait…")
    );
    assert_eq!(text(&parent, ".connection").as_deref(), Some("Live"));
    let position = parent.query_selector(".position").unwrap().unwrap();
    assert_eq!(
        position.get_attribute("aria-live").as_deref(),
        Some("polite")
    );
    // An estimate already in the past is never a negative number.
    state.apply(reservation(
        ReservationStatus::Queued,
        Some(1),
        Some(Utc::now() - Duration::minutes(3)),
        2,
    ));
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, ".wait").as_deref(),
        Some("Less than a minute")
    );
}

#[wasm_bindgen_test]
async fn session_timer_formats_the_time_left() {
    let remaining = RwSignal::new(None::<i64>);
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! { <SessionTimer remaining_ms=remaining/> }
    });
    let cases = [
        (None, "--:--"),
        (Some(3_600_000), "01:00:00"),
        (Some(5_400_000 + 7_000), "01:30:07"),
        (Some(299_001), "05:00"),
        (Some(59_000), "00:59"),
        (Some(1), "00:01"),
        (Some(0), "00:00"),
    ];
    for (ms, want) in cases {
        remaining.set(ms);
        leptos::task::tick().await;
        assert_eq!(
            text(&parent, ".timer-value").as_deref(),
            Some(want),
            "{ms:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn ending_soon_alert_appears_once_and_stays_dismissed() {
    let remaining = RwSignal::new(Some(400_000_i64));
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! { <EndingSoonAlert remaining_ms=remaining/> }
    });
    leptos::task::tick().await;
    assert!(text(&parent, ".alert").is_none());
    remaining.set(Some(299_500)); // the timer still reads 05:00
    leptos::task::tick().await;
    assert!(text(&parent, ".alert").is_none());
    remaining.set(Some(298_900));
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, ".alert span").as_deref(),
        Some("Less than 5 minutes remaining")
    );
    let dismiss: web_sys::HtmlElement = parent
        .query_selector(".alert button.dismiss")
        .unwrap()
        .unwrap()
        .unchecked_into();
    dismiss.click();
    leptos::task::tick().await;
    assert!(text(&parent, ".alert").is_none());
    // Extended past 5 minutes and crossing again: it stays dismissed.
    remaining.set(Some(1_000_000));
    leptos::task::tick().await;
    remaining.set(Some(200_000));
    leptos::task::tick().await;
    assert!(text(&parent, ".alert").is_none());
}

#[wasm_bindgen_test]
async fn time_up_alert_at_zero_and_when_ended() {
    let remaining = RwSignal::new(Some(5_000_i64));
    let reason = RwSignal::new(None::<CallEndReason>);
    let role = RwSignal::new(Some(Role::Patient));
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! { <TimeUpAlert remaining_ms=remaining ended_reason=reason role=role/> }
    });
    leptos::task::tick().await;
    assert!(text(&parent, ".alert").is_none());
    remaining.set(Some(0));
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, ".alert.time-up").as_deref(),
        Some("The time has run out")
    );
    reason.set(Some(CallEndReason::TimeUp));
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, ".alert.time-up").as_deref(),
        Some("The time has run out")
    );
    assert!(text(&parent, ".alert.call-ended").is_none());

    // The specialist ended the call early: the page counts an ended call as 0 left, and must
    // still not say the time ran out.
    remaining.set(Some(0));
    reason.set(Some(CallEndReason::SpecialistLeft));
    leptos::task::tick().await;
    assert!(text(&parent, ".alert.time-up").is_none());
    assert_eq!(
        text(&parent, ".alert.call-ended").as_deref(),
        Some("The specialist ended the call")
    );
    role.set(Some(Role::Specialist));
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, ".alert.call-ended").as_deref(),
        Some("You ended the call")
    );
    reason.set(Some(CallEndReason::NotJoined));
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, ".alert.call-ended").as_deref(),
        Some("The customer did not join in time")
    );
}

#[wasm_bindgen_test]
async fn extend_button_only_for_change_max_duration() {
    let caps = RwSignal::new(vec![
        Capability::JoinCall,
        Capability::SendAudio,
        Capability::SendVideo,
    ]);
    let pressed = RwSignal::new(None::<u32>);
    let busy = RwSignal::new(false);
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        let on_extend = Callback::new(move |by: u32| pressed.set(Some(by)));
        view! { <ExtendButton capabilities=caps on_extend=on_extend busy=busy/> }
    });
    leptos::task::tick().await;
    assert!(
        parent.query_selector("button").unwrap().is_none(),
        "a patient has no button"
    );
    caps.set(vec![Capability::JoinCall, Capability::ChangeMaxDuration]);
    leptos::task::tick().await;
    let button: web_sys::HtmlButtonElement = parent
        .query_selector("button.extend")
        .unwrap()
        .expect("a specialist has the button")
        .unchecked_into();
    assert!(button.text_content().unwrap().starts_with("Extend session"));
    button.click();
    assert_eq!(pressed.get_untracked(), Some(1800));
    busy.set(true);
    leptos::task::tick().await;
    assert!(button.disabled(), "no double submit while in flight");
    assert_eq!(button.text_content().as_deref(), Some("Extending…"));
}

#[wasm_bindgen_test]
async fn busy_buttons_say_so_and_take_one_press() {
    let presses = RwSignal::new(0);
    let busy = RwSignal::new(false);
    let away = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        let on_press = Callback::new(move |()| presses.update(|n| *n += 1));
        view! {
            <BusyButton class="primary go" label="Go" working="Going…" busy=busy unavailable=away on_press=on_press/>
            <form><BusyButton class="send" label="Send" working="Sending…" busy=busy/></form>
            <ErrorNote error=error/>
        }
    });
    leptos::task::tick().await;
    let go: web_sys::HtmlButtonElement = parent
        .query_selector("button.go")
        .unwrap()
        .unwrap()
        .unchecked_into();
    let send: web_sys::HtmlButtonElement = parent
        .query_selector("button.send")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert_eq!(go.type_(), "button");
    assert_eq!(
        send.type_(),
        "submit",
        "without an action it submits its form"
    );
    assert_eq!(go.text_content().as_deref(), Some("Go"));
    assert_eq!(go.get_attribute("aria-busy").as_deref(), Some("false"));
    assert!(parent.query_selector("[role=alert]").unwrap().is_none());
    go.click();
    assert_eq!(presses.get_untracked(), 1);

    busy.set(true);
    leptos::task::tick().await;
    assert!(
        go.disabled() && send.disabled(),
        "no second request while one is in flight"
    );
    assert_eq!(go.get_attribute("aria-busy").as_deref(), Some("true"));
    assert_eq!(go.text_content().as_deref(), Some("Going…"));
    assert_eq!(send.text_content().as_deref(), Some("Sending…"));
    go.click();
    assert_eq!(presses.get_untracked(), 1);

    busy.set(false);
    away.set(true);
    error.set(Some("The service answered 503.".into()));
    leptos::task::tick().await;
    assert!(go.disabled(), "disabled while unavailable");
    assert_eq!(go.get_attribute("aria-busy").as_deref(), Some("false"));
    assert_eq!(go.text_content().as_deref(), Some("Go"));
    assert!(!send.disabled());
    assert_eq!(
        text(&parent, "[role=alert]").as_deref(),
        Some("The service answered 503.")
    );
    error.set(None);
    leptos::task::tick().await;
    assert!(parent.query_selector("[role=alert]").unwrap().is_none());
}

fn call(ends_in: Option<Duration>, max: u32) -> Call {
    let now = Utc::now();
    Call {
        id: "c1".into(),
        call_type: "appointment".into(),
        reservation_sid: "r1".into(),
        created_at: now,
        settings: CallSettings {
            limits: Limits {
                max_duration_seconds: max,
            },
        },
        session: CallSession {
            started_at: Some(now),
            timer_ends_at: ends_in.map(|d| now + d),
            ended_at: None,
            ended_reason: None,
        },
    }
}

#[wasm_bindgen_test]
async fn the_timer_follows_call_updated_events() {
    let event = |d: Duration, max: u32| CallEvent {
        event_type: CallEventType::Updated,
        call: call(Some(d), max),
        server_time: Utc::now(),
    };
    let body = format!(
        "event: call.updated\n{}event: call.updated\n{}",
        message(1, &event(Duration::minutes(10), 600)),
        message(2, &event(Duration::minutes(40), 2400)),
    );
    let state = CallState::new();
    let remaining = Signal::derive(move || state.remaining_ms(callqueue::ticker::now_ms()));
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! { <SessionTimer remaining_ms=remaining/> }
    });
    let _live = Live::connect(
        sse_blob(&body),
        LiveOptions {
            transport: Transport::EventSource {
                events: &["call.updated", "call.session_started", "call.ended"],
            },
            // The page's own handler.
            on_message: Rc::new(move |_, _, data| {
                state.take_event(data);
            }),
            ..Default::default()
        },
        None,
    );
    assert!(
        eventually(3000, || text(&parent, ".timer-value")
            .is_some_and(|t| t.starts_with("40:") || t.starts_with("39:")))
        .await,
        "{:?}",
        text(&parent, ".timer-value")
    );
}

#[wasm_bindgen_test]
async fn a_dead_stream_falls_back_to_polling() {
    let polls = Rc::new(Cell::new(0u32));
    let state = RwSignal::new(Connection::Connecting);
    let live = {
        let polls = polls.clone();
        Live::connect(
            // This test page's server has no such stream: the browser gives up at once.
            "/no-such-stream".into(),
            LiveOptions {
                poll: Some(Rc::new(move || {
                    polls.set(polls.get() + 1);
                    Box::pin(async { Ok(false) }) as PollFuture
                })),
                ..Default::default()
            },
            Some(state),
        )
    };
    assert!(
        eventually(5000, || polls.get() >= 1).await,
        "polls while the stream is down"
    );
    assert_eq!(state.get_untracked(), Connection::Reconnecting);
    assert_eq!(
        callqueue::i18n::t(state.get_untracked().label()),
        "Reconnecting…"
    );
    drop(live);
    let after = polls.get();
    sleep(2500).await;
    assert_eq!(polls.get(), after, "no polling after close");
}

#[wasm_bindgen_test]
async fn use_live_follows_its_url_and_closes_with_its_component() {
    let base = open_streams();
    let first = sse_blob("data: one\n\n");
    let second = sse_blob("data: two\n\n");
    let url = RwSignal::new(None::<String>);
    let got = RwSignal::new(Vec::<String>::new());
    let parent = container();
    let handle = leptos::mount::mount_to(parent.clone(), move || {
        let live = use_live(
            url,
            LiveOptions {
                on_message: Rc::new(move |_, _, data| got.update(|g| g.push(data.to_string()))),
                ..Default::default()
            },
        );
        view! { <ConnectionIndicator state=live.state/> }
    });
    sleep(100).await;
    assert_eq!(
        open_streams(),
        base,
        "no connection before the url is known"
    );
    url.set(Some(first));
    assert!(eventually(3000, || got.with_untracked(|g| g.contains(&"one".into()))).await);
    assert_eq!(open_streams(), base + 1);
    url.set(Some(second));
    assert!(eventually(3000, || got.with_untracked(|g| g.contains(&"two".into()))).await);
    assert_eq!(
        open_streams(),
        base + 1,
        "the old connection went when the url changed"
    );
    url.set(None);
    assert!(
        eventually(3000, || open_streams() == base).await,
        "no url, no connection"
    );
    url.set(Some(sse_blob("data: three\n\n")));
    assert!(eventually(3000, || open_streams() == base + 1).await);
    drop(handle);
    parent.remove();
    assert_eq!(
        open_streams(),
        base,
        "the hook closed it with its component"
    );
}

#[wasm_bindgen_test]
async fn a_socket_close_code_decides_between_retrying_and_stopping() {
    let base = open_streams();
    // Every socket closes at once with 1006, as a dropped connection's does.
    let stub = StubSocket::closing_with(1006);
    let codes = Rc::new(Cell::new(Vec::<u16>::new()));
    let retrying = RwSignal::new(Connection::Connecting);
    let live = {
        let codes = codes.clone();
        Live::connect(
            "ws://127.0.0.1:9/".to_string(),
            LiveOptions {
                transport: Transport::WebSocket,
                on_close: Some(Rc::new(move |_, code| {
                    let mut v = codes.take();
                    v.push(code);
                    codes.set(v);
                    After::Retry
                })),
                ..Default::default()
            },
            Some(retrying),
        )
    };
    let seen = Rc::new(Cell::new(0u32));
    let counted = {
        let codes = codes.clone();
        let seen = seen.clone();
        move || {
            let v = codes.take();
            seen.set(v.len() as u32);
            let ok = v.len() >= 2 && v.iter().all(|c| *c == 1006);
            codes.set(v);
            ok
        }
    };
    // The first retry comes after the first backoff step (about a second).
    assert!(
        eventually(8000, counted).await,
        "tried again after each close ({} seen)",
        seen.get()
    );
    assert_eq!(retrying.get_untracked(), Connection::Reconnecting);
    assert_eq!(StubSocket::opened(), seen.get(), "one socket per attempt");
    drop(live);
    assert_eq!(open_streams(), base);
    drop(stub);

    // A code that means "do not come back" (the server's 4403, say) stops for good.
    let _stub = StubSocket::closing_with(4403);
    let stopped = RwSignal::new(Connection::Connecting);
    let closes = Rc::new(Cell::new(Vec::<u16>::new()));
    let _live = {
        let closes = closes.clone();
        Live::connect(
            "ws://127.0.0.1:9/".to_string(),
            LiveOptions {
                transport: Transport::WebSocket,
                on_close: Some(Rc::new(move |_, code| {
                    let mut v = closes.take();
                    v.push(code);
                    closes.set(v);
                    After::Stop
                })),
                ..Default::default()
            },
            Some(stopped),
        )
    };
    assert!(eventually(8000, || stopped.get_untracked() == Connection::Offline).await);
    assert_eq!(open_streams(), base, "a stop is final");
    // Longer than the first backoff steps: a retry would have opened another socket by now.
    sleep(2500).await;
    assert_eq!(closes.take(), vec![4403], "and nothing is tried again");
    assert_eq!(StubSocket::opened(), 1);
}

/// Answers the app's API calls in this test page (which has no server): the reservation `x`
/// is matched into call `c1`, so hold and join both get as far as opening their streams. Gives
/// the browser's own `fetch` back when dropped.
struct FakeApi {
    original: JsValue,
}

impl FakeApi {
    fn install(status: ReservationStatus) -> Self {
        let window = window();
        let original = js_sys::Reflect::get(&window, &"fetch".into()).unwrap();
        let mut r = reservation(status, Some(1), None, 1);
        r.reservation_sid = "x".into();
        if status == ReservationStatus::Matched {
            r.call_id = Some("c1".into());
            r.call_type = Some("appointment".into());
        }
        let call = CallResponse {
            call: call(Some(Duration::minutes(30)), 1800),
            members: Vec::new(),
            own_capabilities: vec![Capability::JoinCall],
            own_role: Role::Patient,
            customer_name: None,
            reason: None,
            server_time: Utc::now(),
        };
        let body = format!(
            r#"const url = new URL(typeof input === "string" ? input : input.url, location.href);
               const json = (status, body) => Promise.resolve(new Response(body, {{
                   status, headers: {{ "content-type": "application/json" }} }}));
               if (url.pathname === "/api/groups/default/reservations/x") return json(200, {reservation:?});
               if (url.pathname.startsWith("/api/calls/appointment/c1")) return json(200, {call:?});
               return json(404, '{{"error":{{"code":"not_found","message":"no such thing"}}}}');"#,
            reservation = serde_json::to_string(&r).unwrap(),
            call = serde_json::to_string(&call).unwrap(),
        );
        let fake = js_sys::Function::new_with_args("input", &body);
        js_sys::Reflect::set(&window, &"fetch".into(), &fake).unwrap();
        Self { original }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = js_sys::Reflect::set(&window(), &"fetch".into(), &self.original);
    }
}

/// A hundred changes (after two to warm up) between the hold page and the call page, the call page in a call (a
/// stand-in signal socket whose welcome says the specialist is there, so the page opens the
/// camera and builds its peer connection): afterwards the page holds nothing more than before:
/// no clock, stream, interval, peer connection, live camera or microphone track, or window
/// listener.
#[wasm_bindgen_test]
async fn nothing_is_left_after_100_page_changes() {
    use callqueue_protocol::signal::{MediaState, Peer, SignalServer};
    let welcome = serde_json::to_string(&SignalServer::Welcome {
        role: Role::Patient,
        polite: true,
        ice_servers: Vec::new(),
        relay_only: false,
        peer: Some(Peer {
            session: "specialist-1".into(),
            role: Role::Specialist,
            media: MediaState {
                audio: true,
                video: true,
            },
        }),
    })
    .unwrap();
    let _socket = common::StubSocket::welcoming(&welcome);
    let _resources = common::Resources::install();
    let base_tickers = active_tickers();
    let base_streams = open_streams();
    // Taken after the first two pages: the router keeps one click and one popstate listener
    // on the window for good (its own, not a page's).
    let mut base = common::Resources::held();
    for i in 0..102 {
        if i == 2 {
            assert!(
                eventually(3000, || common::Resources::held().connections == 0).await,
                "the first call page let its connection go"
            );
            base = common::Resources::held();
        }
        let _api = FakeApi::install(if i % 2 == 0 {
            ReservationStatus::Queued
        } else {
            ReservationStatus::Matched
        });
        let parent = container();
        let path = if i % 2 == 0 { "/hold/r/x" } else { "/join/r/x" };
        go(path);
        let handle = leptos::mount::mount_to(parent.clone(), || view! { <App/> }.into_any());
        leptos::task::tick().await;
        assert!(active_tickers() > base_tickers);
        // Every page gets as far as its stream (hold and join after reading the reservation
        // and joining the call), and the call page into its call.
        assert!(
            eventually(3000, || open_streams() > base_streams).await,
            "{path} opened its stream"
        );
        if i % 2 == 1 {
            assert!(
                eventually(5000, || {
                    let now = common::Resources::held();
                    now.connections > base.connections && now.live_tracks > base.live_tracks
                })
                .await,
                "the call page is in its call: {:?}",
                common::Resources::held()
            );
        }
        drop(handle);
        parent.remove();
    }
    go("/");
    leptos::task::tick().await;
    assert_eq!(active_tickers(), base_tickers, "every page clock stopped");
    assert_eq!(open_streams(), base_streams, "every stream closed");
    // Tracks stop and connections close as the page goes, some a moment later (a track is
    // stopped only once its replacement is in: see `call::peer`).
    assert!(
        eventually(3000, || common::Resources::held() == base).await,
        "left behind: {:?} ({:?}), before: {base:?}",
        common::Resources::held(),
        common::Resources::listener_types()
    );
}

/// Types into a field as a person would (its value, then the `input` event).
fn type_into(parent: &web_sys::HtmlElement, css: &str, value: &str) {
    let el = parent.query_selector(css).unwrap().expect(css);
    js_sys::Reflect::set(&el, &"value".into(), &value.into()).unwrap();
    // Bubbling, as a typed character's is: Leptos listens for it on the document.
    let init = web_sys::EventInit::new();
    init.set_bubbles(true);
    el.dispatch_event(&web_sys::Event::new_with_event_init_dict("input", &init).unwrap())
        .unwrap();
}

#[wasm_bindgen_test]
async fn the_check_in_says_what_is_wrong_in_the_field() {
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), || view! { <Router><Home/></Router> });
    leptos::task::tick().await;
    assert!(text(&parent, "label[for=check-in-name]").is_some_and(|t| t.contains("optional")));
    type_into(&parent, "#check-in-name", &"n".repeat(81));
    type_into(&parent, "#check-in-reason", "My router");
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, "#check-in-reason-count").as_deref(),
        Some("9 of 500 characters")
    );
    let button: web_sys::HtmlElement = parent
        .query_selector("form.check-in button[type=submit]")
        .unwrap()
        .unwrap()
        .unchecked_into();
    button.click();
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, "#check-in-name-error").as_deref(),
        Some("Your name: at most 80 characters, please.")
    );
    let name = parent.query_selector("#check-in-name").unwrap().unwrap();
    assert_eq!(name.get_attribute("aria-invalid").as_deref(), Some("true"));
    assert_eq!(
        document().active_element().map(|e| e.id()).as_deref(),
        Some("check-in-name"),
        "the field with the problem has the focus"
    );
    // Nothing was sent: the page is still the form, not busy.
    assert_eq!(button.get_attribute("aria-busy").as_deref(), Some("false"));
    // A control character in the reason is named too.
    type_into(&parent, "#check-in-name", "Anna");
    type_into(&parent, "#check-in-reason", "bell\u{7}");
    button.click();
    leptos::task::tick().await;
    assert_eq!(name.get_attribute("aria-invalid").as_deref(), Some("false"));
    assert_eq!(
        text(&parent, "#check-in-reason-error").as_deref(),
        Some("Reason: please use letters, numbers and punctuation only.")
    );
}

fn matched_in(secs: i64, extended: bool, updated_secs: i64) -> Reservation {
    let mut r = reservation(ReservationStatus::Matched, None, None, updated_secs);
    r.join_deadline = Some(Utc::now() + Duration::seconds(secs));
    r.join_extended = extended;
    r.call_id = Some("c1".into());
    r
}

#[wasm_bindgen_test]
async fn the_turn_is_told_once_with_the_time_to_join_and_one_moment_more() {
    let state = HoldState::new();
    let tick = RwSignal::new(0.0);
    let asked = RwSignal::new(0);
    let joined = RwSignal::new(0);
    let on_more_time = Callback::new(move |()| asked.update(|n| *n += 1));
    let on_join = Callback::new(move |()| joined.update(|n| *n += 1));
    let before = turns_told();
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! {
            <TurnPanel state=state tick=tick asking=false on_join=on_join on_more_time=on_more_time/>
        }
    });
    leptos::task::tick().await;
    assert!(text(&parent, ".turn").is_none(), "nothing while queued");
    assert_eq!(turns_told(), before);

    state.apply(matched_in(105, false, 10));
    leptos::task::tick().await;
    assert_eq!(text(&parent, "h1").as_deref(), Some("It's your turn"));
    let shown = text(&parent, ".join-within").unwrap();
    assert!(
        shown == "Your specialist is waiting — join within 1:45"
            || shown == "Your specialist is waiting — join within 1:44",
        "{shown}"
    );
    // Screen readers hear it once, not every second.
    let said = text(&parent, "[role=status]").unwrap();
    assert!(said.starts_with("Your specialist is waiting"), "{said}");
    tick.set(1.0);
    leptos::task::tick().await;
    assert_eq!(text(&parent, "[role=status]").unwrap(), said);
    assert_eq!(turns_told(), before + 1, "told when the turn came");
    // A repeated copy does not tell again.
    state.apply(matched_in(104, false, 11));
    leptos::task::tick().await;
    assert_eq!(turns_told(), before + 1);

    let press = |css: &str| {
        let b: web_sys::HtmlElement = parent
            .query_selector(css)
            .unwrap()
            .expect(css)
            .unchecked_into();
        b.click();
    };
    press("button.more-time");
    press("button.join-now");
    assert_eq!((asked.get_untracked(), joined.get_untracked()), (1, 1));
    // Once extended, it cannot be asked again.
    state.apply(matched_in(160, true, 12));
    leptos::task::tick().await;
    assert!(parent.query_selector("button.more-time").unwrap().is_none());
    assert_eq!(
        text(&parent, ".turn .hint").as_deref(),
        Some("You have a little more time. Join when you are ready.")
    );
    // Half a minute left: said again.
    state.apply(matched_in(25, true, 13));
    tick.set(2.0);
    leptos::task::tick().await;
    let said = text(&parent, "[role=status]").unwrap();
    assert!(
        said.starts_with("Your specialist is waiting — join within 0:2"),
        "{said}"
    );
}

#[wasm_bindgen_test]
async fn the_language_switch_changes_the_words_and_the_page_language() {
    let state = HoldState::new();
    state.apply(reservation(
        ReservationStatus::Queued,
        Some(12_345),
        Some(Utc::now() + Duration::minutes(9)),
        1,
    ));
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! {
            <LanguageSwitcher/>
            <HoldCard state=state connection=Connection::Offline tick=Signal::stored(0.0)><span/></HoldCard>
        }
    });
    leptos::task::tick().await;
    assert_eq!(text(&parent, "h1").as_deref(), Some("You are in the queue"));
    assert_eq!(text(&parent, ".position").as_deref(), Some("12,345"));
    assert_eq!(text(&parent, ".wait").as_deref(), Some("About 9 minutes"));
    // Not live: when it last heard.
    assert_eq!(
        text(&parent, ".updated").as_deref(),
        Some("Updated just now")
    );

    let select: web_sys::HtmlSelectElement = parent
        .query_selector("label.language select")
        .unwrap()
        .unwrap()
        .unchecked_into();
    select.set_value("de");
    let init = web_sys::EventInit::new();
    init.set_bubbles(true);
    select
        .dispatch_event(&web_sys::Event::new_with_event_init_dict("change", &init).unwrap())
        .unwrap();
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, "h1").as_deref(),
        Some("Sie sind in der Warteschlange")
    );
    assert_eq!(text(&parent, ".position").as_deref(), Some("12.345"));
    assert_eq!(text(&parent, ".wait").as_deref(), Some("Etwa 9 Minuten"));
    assert_eq!(text(&parent, ".connection").as_deref(), Some("Offline"));
    assert_eq!(
        text(&parent, ".updated").as_deref(),
        Some("Gerade aktualisiert")
    );
    let html = document().document_element().unwrap();
    assert_eq!(html.get_attribute("lang").as_deref(), Some("de"));
    let stored = window()
        .local_storage()
        .unwrap()
        .unwrap()
        .get_item("callqueue.lang")
        .unwrap();
    assert_eq!(stored.as_deref(), Some("de"));
    set_lang(Lang::En);
    leptos::task::tick().await;
    assert_eq!(text(&parent, "h1").as_deref(), Some("You are in the queue"));
    assert_eq!(html.get_attribute("lang").as_deref(), Some("en"));
}

fn waiting(n: usize) -> Vec<Reservation> {
    (0..n)
        .map(|i| {
            let mut r = reservation(ReservationStatus::Queued, Some(i as u32 + 1), None, 1);
            r.reservation_sid = format!("r{i}");
            r.customer_name = Some(format!("Customer {i}"));
            r
        })
        .collect()
}

#[wasm_bindgen_test]
async fn ten_thousand_waiting_draw_a_few_rows_and_a_change_keeps_the_others() {
    callqueue::i18n::add_words([
        include_str!("../console/locales/console.en.txt"),
        include_str!("../console/locales/console.de.txt"),
    ]);
    let queue = RwSignal::new(waiting(10_000));
    let accepted = RwSignal::new(None::<String>);
    let messaged = RwSignal::new(None::<(String, String)>);
    let now = RwSignal::new(Utc::now().timestamp_millis());
    let parent = container();
    parent.style().set_property("height", "600px").unwrap();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! {
            <QueueView queue=queue server_now_ms=now can_accept=true
                on_accept=Callback::new(move |sid| accepted.set(Some(sid)))
                on_message=Callback::new(move |to| messaged.set(Some(to)))/>
        }
    });
    leptos::task::tick().await;
    let rows = || parent.query_selector_all(".queue-row").unwrap().length();
    assert!(rows() > 0 && rows() <= 40, "{} rows drawn", rows());
    let list: web_sys::HtmlElement = parent
        .query_selector(".queue-list")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert_eq!(
        list.style().get_property_value("height").unwrap(),
        format!("{}px", 10_000.0 * ROW_PX)
    );
    assert_eq!(
        text(&parent, ".queue-row .who").as_deref(),
        Some("Customer 0")
    );

    // One customer leaves: the rows of the others are the same elements, moved up one place.
    let third = parent.query_selector("[data-sid=r3]").unwrap().unwrap();
    js_sys::Reflect::set(&third, &"marked".into(), &true.into()).unwrap();
    queue.update(|l| {
        l.remove(1);
    });
    leptos::task::tick().await;
    let still = parent.query_selector("[data-sid=r3]").unwrap().unwrap();
    assert!(
        still.is_same_node(Some(&third)),
        "the row was kept, not rebuilt"
    );
    assert_eq!(
        js_sys::Reflect::get(&still, &"marked".into())
            .unwrap()
            .as_bool(),
        Some(true)
    );
    assert_eq!(
        still
            .query_selector(".place")
            .unwrap()
            .unwrap()
            .text_content()
            .as_deref(),
        Some("3")
    );
    assert!(parent.query_selector("[data-sid=r1]").unwrap().is_none());

    // The clock moving changes the waited texts in place.
    now.set(Utc::now().timestamp_millis() + 3_600_000);
    leptos::task::tick().await;
    let still = parent.query_selector("[data-sid=r3]").unwrap().unwrap();
    assert!(still.is_same_node(Some(&third)));
    assert!(
        still.text_content().unwrap().contains("h"),
        "{:?}",
        still.text_content()
    );

    // Scrolled far down: the rows there, and only a few.
    let scroller: web_sys::HtmlElement = parent
        .query_selector(".queue-scroll")
        .unwrap()
        .unwrap()
        .unchecked_into();
    scroller.set_scroll_top((5_000.0 * ROW_PX) as i32);
    scroller
        .dispatch_event(&web_sys::Event::new("scroll").unwrap())
        .unwrap();
    leptos::task::tick().await;
    assert!(rows() <= 40, "{} rows drawn", rows());
    assert!(parent.query_selector("[data-sid=r5001]").unwrap().is_some());
    assert!(parent.query_selector("[data-sid=r3]").unwrap().is_none());
    // Accept on a row names that customer.
    let button: web_sys::HtmlElement = parent
        .query_selector("[data-sid=r5001] button.accept-one")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert_eq!(
        button.get_attribute("aria-label").as_deref(),
        Some("Accept Customer 5001")
    );
    button.click();
    assert_eq!(accepted.get_untracked().as_deref(), Some("r5001"));
    // Message on a row chooses that customer for a line of their own.
    let button: web_sys::HtmlElement = parent
        .query_selector("[data-sid=r5001] button.message-one")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert_eq!(
        button.get_attribute("aria-label").as_deref(),
        Some("Message Customer 5001")
    );
    button.click();
    assert_eq!(
        messaged.get_untracked(),
        Some(("r5001".to_string(), "Customer 5001".to_string()))
    );
}

/// Each join has a key of its own that the server takes (16 to 64 letters and digits).
#[wasm_bindgen_test]
fn join_keys_are_unique_and_well_formed() {
    let keys: Vec<String> = (0..50).map(|_| callqueue::api::join_key()).collect();
    for k in &keys {
        assert_eq!(k.len(), 32, "{k}");
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()), "{k}");
    }
    let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len());
}

fn line(seq: u64, role: Role, name: Option<&str>, text: &str) -> callqueue::logic::chat::ChatLine {
    callqueue::logic::chat::ChatLine {
        seq,
        id: format!("m{seq}"),
        role,
        name: name.map(str::to_string),
        text: text.into(),
        at: js_sys::Date::now(),
    }
}

#[wasm_bindgen_test]
async fn the_chat_panel_shows_text_as_text_counts_news_and_sends_with_enter() {
    use callqueue::{call::CallView, components::chat::ChatPanel};
    set_lang(Lang::En);
    let view = CallView::new();
    let sent = RwSignal::new(Vec::<String>::new());
    let unread = RwSignal::new(0u32);
    let ended = RwSignal::new(false);
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! {
            <ChatPanel view=view send=Callback::new(move |t| sent.update(|s| s.push(t)))
                unread=unread ended=Signal::derive(move || ended.get())/>
        }
    });
    leptos::task::tick().await;
    let section = parent.query_selector("section.chat").unwrap().unwrap();
    assert!(
        section.class_list().contains("hidden"),
        "hidden until the socket says who we are"
    );
    view.me.set(Some(Role::Patient));
    leptos::task::tick().await;
    assert!(!section.class_list().contains("hidden"));
    assert_eq!(text(&parent, "#chat-log").unwrap(), "", "nothing said yet");
    assert_eq!(
        parent
            .query_selector("#chat-log")
            .unwrap()
            .unwrap()
            .get_attribute("aria-live")
            .as_deref(),
        Some("polite")
    );

    // The other member's message, live: text stays text, a web address is a safe link.
    view.chat.set(vec![line(
        1,
        Role::Specialist,
        Some("Dr. Lena Roth"),
        "<b>bold?</b>\nsee https://example.com/x?a=1&b=2.",
    )]);
    view.arrived.set(1);
    leptos::task::tick().await;
    let item = parent.query_selector("#chat-log li").unwrap().unwrap();
    assert_eq!(item.class_name(), "theirs");
    assert!(item.query_selector("b").unwrap().is_none(), "no markup");
    assert_eq!(
        text(&parent, "#chat-log li .text").unwrap(),
        "<b>bold?</b>\nsee https://example.com/x?a=1&b=2."
    );
    assert!(
        text(&parent, "#chat-log li .who")
            .unwrap()
            .starts_with("Dr. Lena Roth · ")
    );
    let link = item.query_selector("a").unwrap().unwrap();
    assert_eq!(
        link.get_attribute("href").as_deref(),
        Some("https://example.com/x?a=1&b=2")
    );
    assert_eq!(
        link.get_attribute("rel").as_deref(),
        Some("noopener noreferrer")
    );
    assert_eq!(link.get_attribute("target").as_deref(), Some("_blank"));
    let toggle: web_sys::HtmlElement = parent
        .query_selector(".chat-toggle")
        .unwrap()
        .unwrap()
        .unchecked_into();
    if window().inner_width().unwrap().as_f64().unwrap() < 900.0 {
        // A phone: news waits behind the button, counted, until the panel opens.
        assert_eq!(unread.get_untracked(), 1);
        assert_eq!(toggle.text_content().unwrap(), "Chat (1 new)");
        assert_eq!(
            toggle.get_attribute("aria-expanded").as_deref(),
            Some("false")
        );
        toggle.click();
        leptos::task::tick().await;
        assert_eq!(
            toggle.get_attribute("aria-expanded").as_deref(),
            Some("true")
        );
        assert!(section.class_list().contains("open"));
    }
    assert_eq!(unread.get_untracked(), 0, "seen once on screen");
    assert_eq!(toggle.text_content().unwrap(), "Chat");

    // Ours on the way shows apart from the conversation, then in it.
    view.unsent.set(vec![("u1".into(), "on its way".into())]);
    leptos::task::tick().await;
    assert_eq!(
        text(&parent, ".chat-unsent li .who").as_deref(),
        Some("Sending…")
    );
    view.unsent.set(Vec::new());
    view.chat
        .update(|c| c.push(line(2, Role::Patient, None, "on its way")));
    leptos::task::tick().await;
    let items = parent.query_selector_all("#chat-log li").unwrap();
    assert_eq!(items.length(), 2);
    assert!(
        text(&parent, "#chat-log li.mine .who")
            .unwrap()
            .starts_with("You · ")
    );
    assert_eq!(
        parent
            .query_selector_all(".chat-unsent li")
            .unwrap()
            .length(),
        0
    );

    // Enter sends what is written; Shift+Enter does not; white space alone is not sent.
    let area: web_sys::HtmlTextAreaElement = parent
        .query_selector("#chat-text")
        .unwrap()
        .unwrap()
        .unchecked_into();
    let key = |shift: bool| {
        let init = web_sys::KeyboardEventInit::new();
        init.set_key("Enter");
        init.set_shift_key(shift);
        init.set_bubbles(true);
        init.set_cancelable(true);
        web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap()
    };
    area.set_value("two\nlines  ");
    let shift_enter = key(true);
    area.dispatch_event(&shift_enter).unwrap();
    assert!(!shift_enter.default_prevented(), "a new line");
    assert!(sent.get_untracked().is_empty());
    let enter = key(false);
    area.dispatch_event(&enter).unwrap();
    assert!(enter.default_prevented());
    leptos::task::tick().await;
    assert_eq!(sent.get_untracked(), vec!["two\nlines".to_string()]);
    assert_eq!(area.value(), "", "the box is emptied");
    area.set_value("  \n ");
    area.dispatch_event(&key(false)).unwrap();
    leptos::task::tick().await;
    assert_eq!(sent.get_untracked().len(), 1);

    // A message that arrived out of order takes its place.
    view.chat.update(|c| {
        c.insert(1, line(3, Role::Specialist, None, "late"));
        c.sort_by_key(|m| m.seq);
    });
    leptos::task::tick().await;
    let texts: Vec<String> = (0..3)
        .map(|i| {
            parent
                .query_selector_all("#chat-log li .text")
                .unwrap()
                .item(i)
                .unwrap()
                .text_content()
                .unwrap()
        })
        .collect();
    assert_eq!(
        texts,
        [
            "<b>bold?</b>\nsee https://example.com/x?a=1&b=2.",
            "on its way",
            "late"
        ]
    );

    // In German, what was said stays.
    set_lang(Lang::De);
    leptos::task::tick().await;
    assert_eq!(
        parent.query_selector_all("#chat-log li").unwrap().length(),
        3
    );
    assert!(
        text(&parent, "#chat-log li.mine .who")
            .unwrap()
            .starts_with("Sie · ")
    );
    set_lang(Lang::En);

    // Over: the conversation stays, the box goes.
    ended.set(true);
    leptos::task::tick().await;
    assert!(section.class_list().contains("ended"));
}

#[wasm_bindgen_test]
async fn the_hold_card_shows_the_queues_notice_and_a_line_in_a_live_region() {
    let state = HoldState::new();
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        view! { <HoldCard state=state connection=Connection::Live tick=Signal::stored(0.0)><span/></HoldCard> }
    });
    let words = parent.query_selector("#queue-words").unwrap().unwrap();
    assert_eq!(words.get_attribute("role").as_deref(), Some("status"));
    let mut r = reservation(ReservationStatus::Queued, Some(2), None, 1);
    r.notice = Some("Running late <i>sorry</i>".into());
    state.apply(r.clone());
    leptos::task::tick().await;
    assert_eq!(words.text_content().unwrap(), "Running late <i>sorry</i>");
    assert!(
        words.query_selector("i").unwrap().is_none(),
        "text, never markup"
    );
    let drawn = words.first_element_child().unwrap();
    // A new position does not draw the words again (the live region would read them again).
    r.queue_position = Some(1);
    r.updated_at += Duration::seconds(1);
    state.apply(r.clone());
    leptos::task::tick().await;
    assert!(
        words
            .first_element_child()
            .unwrap()
            .is_same_node(Some(&drawn))
    );
    r.message = Some("You're next".into());
    r.updated_at += Duration::seconds(1);
    state.apply(r.clone());
    leptos::task::tick().await;
    assert_eq!(words.query_selector_all("p.notice").unwrap().length(), 2);
    assert_eq!(
        words.text_content().unwrap(),
        "Running late <i>sorry</i>You're next"
    );
    r.notice = None;
    r.message = None;
    r.updated_at += Duration::seconds(1);
    state.apply(r);
    leptos::task::tick().await;
    assert_eq!(words.text_content().unwrap(), "");
}
