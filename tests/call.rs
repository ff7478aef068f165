//! The call's media in headless Chromium with its fake camera and microphone: the device check,
//! what a refusal says, two peer connections in one page negotiating (one-way the first time,
//! with and without devices), and glare resolved in a fresh page context every round.
#![cfg(target_arch = "wasm32")]

use std::{cell::RefCell, rc::Rc};

use callqueue::logic::call::ConnState;
use callqueue::{
    call::{
        media::{self, DeviceChoice, MediaError},
        peer::{Peer, PeerEvent},
    },
    components::device_check::{DeviceCheck, DeviceCheckPanel, Phase},
};
use callqueue_protocol::signal::{SdpKind, SignalClient, SignalServer};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

mod common;

use common::{container, eventually, sleep};

wasm_bindgen_test_configure!(run_in_browser);

fn click(parent: &web_sys::HtmlElement, css: &str) {
    parent
        .query_selector(css)
        .unwrap()
        .unwrap_or_else(|| panic!("no {css}"))
        .unchecked_into::<web_sys::HtmlElement>()
        .click();
}

#[wasm_bindgen_test]
async fn the_device_check_shows_a_preview_and_a_moving_level() {
    // Start from the defaults, whatever an earlier test remembered.
    DeviceChoice::default().save();
    let parent = container();
    let check = RwSignal::new(None::<DeviceCheck>);
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        let c = DeviceCheck::new();
        check.set(Some(c));
        view! { <DeviceCheckPanel check=c/> }
    });
    leptos::task::tick().await;
    let check = check.get_untracked().unwrap();
    assert_eq!(
        check.phase.get_untracked(),
        Phase::Idle,
        "nothing is asked on load"
    );
    click(&parent, "button.check-devices");
    assert!(eventually(10_000, || check.phase.get_untracked() == Phase::Live).await);
    let video: web_sys::HtmlVideoElement = parent
        .query_selector(".device-check video.self")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert!(
        eventually(5_000, || video.video_width() > 0).await,
        "the preview shows the camera"
    );
    // The fake microphone beeps: the level moves.
    let mut levels = Vec::new();
    for _ in 0..40 {
        levels.push(check.level.get_untracked());
        sleep(100).await;
    }
    let (lo, hi) = levels
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &l| (lo.min(l), hi.max(l)));
    assert!(hi > 0.01 && hi > lo, "the level meter moves: {levels:?}");
    let meter = parent.query_selector("meter").unwrap().expect("a meter");
    assert!(meter.get_attribute("value").is_some() || hi > 0.0);
    assert!(
        parent.query_selector("select").unwrap().is_some(),
        "device pickers once permission is given"
    );

    // Audio only is remembered for the call page; the camera is let go.
    click(&parent, "button.audio-only");
    assert!(eventually(5_000, || check.phase.get_untracked() == Phase::Live).await);
    assert!(!DeviceChoice::load().video);
    assert!(DeviceChoice::load().audio);
    click(&parent, "button.no-devices");
    leptos::task::tick().await;
    assert_eq!(check.phase.get_untracked(), Phase::Idle);
    assert_eq!(
        parent
            .query_selector(".device-choice")
            .unwrap()
            .unwrap()
            .text_content()
            .unwrap(),
        "No camera or microphone"
    );
    DeviceChoice::default().save();
}

#[wasm_bindgen_test]
async fn a_denied_permission_says_how_to_allow_it() {
    let denied = web_sys::DomException::new_with_message_and_name("no", "NotAllowedError").unwrap();
    assert_eq!(MediaError::from_js(&denied), MediaError::Denied);
    let busy = web_sys::DomException::new_with_message_and_name("x", "NotReadableError").unwrap();
    assert_eq!(MediaError::from_js(&busy), MediaError::Busy);
    let none = web_sys::DomException::new_with_message_and_name("x", "NotFoundError").unwrap();
    assert_eq!(MediaError::from_js(&none), MediaError::NoDevice);

    let parent = container();
    let check = RwSignal::new(None::<DeviceCheck>);
    let _handle = leptos::mount::mount_to(parent.clone(), move || {
        let c = DeviceCheck::new();
        check.set(Some(c));
        view! { <DeviceCheckPanel check=c/> }
    });
    leptos::task::tick().await;
    check.get_untracked().unwrap().fail(&MediaError::Denied);
    leptos::task::tick().await;
    let text = parent
        .query_selector(".device-error")
        .unwrap()
        .expect("the refusal is shown")
        .text_content()
        .unwrap();
    assert!(text.contains("blocked") && text.contains("Allow"), "{text}");
    assert!(
        parent
            .query_selector("button.no-devices")
            .unwrap()
            .is_some(),
        "one may go on without"
    );
}

#[wasm_bindgen_test]
async fn continue_without_while_the_browser_asks_leaves_no_device_running() {
    DeviceChoice::default().save();
    // The browser's answers are held back, as while its permission prompt is open; every
    // stream it gives is remembered.
    js_sys::Function::new_no_args(
        r#"const md = navigator.mediaDevices;
           const real = md.getUserMedia.bind(md);
           window.__gum = { streams: [], asked: 0 };
           const gate = new Promise((r) => (window.__gum.release = r));
           md.getUserMedia = async (c) => {
               window.__gum.asked++;
               await gate;
               const s = await real(c);
               window.__gum.streams.push(s);
               return s;
           };"#,
    )
    .call0(&wasm_bindgen::JsValue::NULL)
    .unwrap();
    let gum = || js_sys::Reflect::get(&window(), &"__gum".into()).unwrap();
    let asked = || {
        js_sys::Reflect::get(&gum(), &"asked".into())
            .unwrap()
            .as_f64()
            .unwrap_or(0.0) as u32
    };
    let parent = container();
    let check = RwSignal::new(None::<DeviceCheck>);
    let handle = leptos::mount::mount_to(parent.clone(), move || {
        let c = DeviceCheck::new();
        check.set(Some(c));
        view! { <DeviceCheckPanel check=c/> }
    });
    leptos::task::tick().await;
    let check = check.get_untracked().unwrap();
    click(&parent, "button.check-devices");
    // Changed the mind while asked: audio only (a second request), then neither.
    click(&parent, "button.audio-only");
    click(&parent, "button.no-devices");
    assert_eq!(check.phase.get_untracked(), Phase::Idle);
    assert!(
        eventually(3_000, || asked() == 2).await,
        "both requests are with the browser"
    );
    // The browser answers both at last: nothing may start now.
    js_sys::Function::new_no_args("window.__gum.release();")
        .call0(&wasm_bindgen::JsValue::NULL)
        .unwrap();
    let all_stopped = || {
        let streams: js_sys::Array = js_sys::Reflect::get(&gum(), &"streams".into())
            .unwrap()
            .unchecked_into();
        streams.length() == 2
            && streams.iter().all(|s| {
                s.unchecked_into::<web_sys::MediaStream>()
                    .get_tracks()
                    .iter()
                    .map(JsCast::unchecked_into::<web_sys::MediaStreamTrack>)
                    .all(|t| t.ready_state() == web_sys::MediaStreamTrackState::Ended)
            })
    };
    assert!(
        eventually(5_000, all_stopped).await,
        "every device the late answers opened was stopped"
    );
    sleep(200).await;
    assert_eq!(
        check.phase.get_untracked(),
        Phase::Idle,
        "and the check stays off"
    );
    let preview: web_sys::HtmlVideoElement = parent
        .query_selector(".device-check video.self")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert!(preview.src_object().is_none(), "no preview");
    drop(handle);
    js_sys::Function::new_no_args("delete navigator.mediaDevices.getUserMedia;")
        .call0(&wasm_bindgen::JsValue::NULL)
        .unwrap();
}

/// What one side of an in-page call saw.
#[derive(Default)]
struct Seen {
    remote: Option<web_sys::MediaStream>,
    connected: bool,
    /// Offers and candidates sent.
    offers: u32,
    candidates: u32,
}

type Slot = Rc<RefCell<Option<Peer>>>;
type Shared<T> = Rc<RefCell<T>>;

/// An in-memory wire between two connections of one page, as the server would be: what one
/// sends reaches the other later (never inside the sender's own call), stamped with its
/// session. While `hold` is set, offers wait in `held` instead.
#[derive(Clone, Default)]
struct Wire {
    hold: Rc<std::cell::Cell<bool>>,
    held: Shared<Vec<(Slot, SignalServer)>>,
}

impl Wire {
    fn end(&self, from: String, to: Slot, seen: Shared<Seen>) -> impl Fn(PeerEvent) + 'static {
        let wire = self.clone();
        move |event: PeerEvent| {
            let message = match event {
                PeerEvent::Signal(SignalClient::Description { description, .. }) => {
                    if description.kind == SdpKind::Offer {
                        seen.borrow_mut().offers += 1;
                        if wire.hold.get() {
                            wire.held.borrow_mut().push((
                                to.clone(),
                                SignalServer::Description {
                                    from: from.clone(),
                                    description,
                                },
                            ));
                            return;
                        }
                    }
                    SignalServer::Description {
                        from: from.clone(),
                        description,
                    }
                }
                PeerEvent::Signal(SignalClient::Candidate { candidate, .. }) => {
                    seen.borrow_mut().candidates += 1;
                    SignalServer::Candidate {
                        from: from.clone(),
                        candidate,
                    }
                }
                PeerEvent::Signal(_) => return,
                PeerEvent::RemoteStream(stream) => {
                    seen.borrow_mut().remote = Some(stream);
                    return;
                }
                PeerEvent::State(state) => {
                    seen.borrow_mut().connected = state == ConnState::Connected;
                    return;
                }
            };
            deliver(to.clone(), message);
        }
    }

    /// Lets the held offers go, in the order they were made.
    fn release(&self) {
        self.hold.set(false);
        for (to, message) in self.held.borrow_mut().drain(..) {
            deliver(to, message);
        }
    }
}

fn deliver(to: Slot, message: SignalServer) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Some(p) = to.borrow().as_ref() {
            p.handle(message);
        }
    });
}

/// Whether a stream has a live track of `kind`.
fn has_live(stream: &Option<web_sys::MediaStream>, kind: &str) -> bool {
    stream.as_ref().is_some_and(|s| {
        s.get_tracks()
            .iter()
            .map(JsCast::unchecked_into::<web_sys::MediaStreamTrack>)
            .any(|t| t.kind() == kind && t.ready_state() == web_sys::MediaStreamTrackState::Live)
    })
}

/// A call between a specialist's and a customer's connection in this page.
struct InPageCall {
    customer: Slot,
    specialist: Slot,
    customer_seen: Shared<Seen>,
    specialist_seen: Shared<Seen>,
    wire: Wire,
}

impl InPageCall {
    fn start(
        round: u32,
        customer_media: Option<&web_sys::MediaStream>,
        specialist_media: Option<&web_sys::MediaStream>,
    ) -> Self {
        let customer: Slot = Rc::default();
        let specialist: Slot = Rc::default();
        let customer_seen: Shared<Seen> = Rc::default();
        let specialist_seen: Shared<Seen> = Rc::default();
        let wire = Wire::default();
        let (c, s) = (format!("c-{round}"), format!("s-{round}"));
        // The customer's page first, as when it is waiting when the specialist comes.
        let c_peer = Peer::new(
            &[],
            false,
            true,
            &s,
            customer_media,
            wire.end(c.clone(), specialist.clone(), customer_seen.clone()),
        )
        .unwrap();
        *customer.borrow_mut() = Some(c_peer);
        let s_peer = Peer::new(
            &[],
            false,
            false,
            &c,
            specialist_media,
            wire.end(s, customer.clone(), specialist_seen.clone()),
        )
        .unwrap();
        *specialist.borrow_mut() = Some(s_peer);
        Self {
            customer,
            specialist,
            customer_seen,
            specialist_seen,
            wire,
        }
    }

    /// Both connected, and each receives the other's video (and audio).
    fn media_both_ways(&self) -> bool {
        let (c, s) = (self.customer_seen.borrow(), self.specialist_seen.borrow());
        c.connected
            && s.connected
            && has_live(&c.remote, "video")
            && has_live(&s.remote, "video")
            && has_live(&c.remote, "audio")
            && has_live(&s.remote, "audio")
    }

    fn states(&self) -> String {
        let state = |p: &Slot, seen: &Shared<Seen>| {
            let seen = seen.borrow();
            p.borrow().as_ref().map(|p| {
                let pc = p.connection();
                format!(
                    "{:?}/{:?}/{:?}, {} offers, {} candidates, remote tracks [{}]",
                    pc.signaling_state(),
                    js_sys::Reflect::get(pc, &"iceConnectionState".into())
                        .ok()
                        .and_then(|v| v.as_string()),
                    pc.connection_state(),
                    seen.offers,
                    seen.candidates,
                    seen.remote.as_ref().map_or(String::new(), |r| r
                        .get_tracks()
                        .iter()
                        .map(JsCast::unchecked_into::<web_sys::MediaStreamTrack>)
                        .map(|t| format!("{}:{:?}", t.kind(), t.ready_state()))
                        .collect::<Vec<_>>()
                        .join(",")),
                )
            })
        };
        format!(
            "customer {:?}; specialist {:?}",
            state(&self.customer, &self.customer_seen),
            state(&self.specialist, &self.specialist_seen)
        )
    }
}

impl Drop for InPageCall {
    fn drop(&mut self) {
        self.customer.borrow_mut().take();
        self.specialist.borrow_mut().take();
    }
}

/// (That messages from a stale session never reach a connection is the call machine's job:
/// `logic::call`'s `messages_from_a_stale_session_never_reach_the_connection`.)
#[wasm_bindgen_test]
async fn the_first_negotiation_is_one_way() {
    let choice = DeviceChoice::default();
    let c_stream = media::open(&choice).await.unwrap().unwrap();
    let s_stream = media::open(&choice).await.unwrap().unwrap();
    let call = InPageCall::start(0, Some(&c_stream), Some(&s_stream));
    assert!(
        eventually(15_000, || call.media_both_ways()).await,
        "{}",
        call.states()
    );
    assert_eq!(
        call.customer_seen.borrow().offers,
        0,
        "the customer only answers"
    );
    assert_eq!(call.specialist_seen.borrow().offers, 1);
    drop(call);
    media::stop(&c_stream);
    media::stop(&s_stream);
}

#[wasm_bindgen_test]
async fn a_call_where_neither_side_has_devices_connects_receive_only() {
    let call = InPageCall::start(0, None, None);
    let connected =
        || call.customer_seen.borrow().connected && call.specialist_seen.borrow().connected;
    assert!(eventually(15_000, connected).await, "{}", call.states());
    assert_eq!(call.customer_seen.borrow().offers, 0);
    // Each side has the other's (silent, empty) tracks: a camera turned on later needs no
    // renegotiation.
    for seen in [&call.customer_seen, &call.specialist_seen] {
        let remote = seen.borrow().remote.clone().expect("a remote stream");
        assert_eq!(remote.get_tracks().length(), 2);
    }
}

/// Points this page's `RTCPeerConnection` at the one of a fresh same-origin iframe while it
/// lives, so every connection made meanwhile is a new page context's first. Puts everything
/// back when dropped.
struct FreshFrame {
    frame: web_sys::HtmlElement,
    original: wasm_bindgen::JsValue,
    theirs: wasm_bindgen::JsValue,
}

impl FreshFrame {
    async fn open() -> Self {
        let document = document();
        let frame: web_sys::HtmlElement =
            document.create_element("iframe").unwrap().unchecked_into();
        frame.set_attribute("src", "about:blank").unwrap();
        document.body().unwrap().append_child(&frame).unwrap();
        let content = || js_sys::Reflect::get(&frame, &"contentWindow".into()).unwrap();
        assert!(
            eventually(5_000, || !content().is_null()
                && js_sys::Reflect::has(&content(), &"RTCPeerConnection".into())
                    .unwrap())
            .await
        );
        let window = window();
        let original = js_sys::Reflect::get(&window, &"RTCPeerConnection".into()).unwrap();
        let theirs = js_sys::Reflect::get(&content(), &"RTCPeerConnection".into()).unwrap();
        js_sys::Reflect::set(&window, &"RTCPeerConnection".into(), &theirs).unwrap();
        Self {
            frame,
            original,
            theirs,
        }
    }

    /// Whether `pc` was made by the frame's `RTCPeerConnection`.
    fn made(&self, pc: &web_sys::RtcPeerConnection) -> bool {
        let prototype =
            |f: &wasm_bindgen::JsValue| js_sys::Reflect::get(f, &"prototype".into()).unwrap();
        let of: wasm_bindgen::JsValue = js_sys::Object::get_prototype_of(pc).into();
        of == prototype(&self.theirs) && of != prototype(&self.original)
    }
}

impl Drop for FreshFrame {
    fn drop(&mut self) {
        let _ = js_sys::Reflect::set(&window(), &"RTCPeerConnection".into(), &self.original);
        self.frame.remove();
    }
}

/// Every round in a fresh page context: the first negotiation connects with media both ways
/// in under 3 s with no wait anywhere, and then both sides offer at once (both restart ICE,
/// and the wire holds both offers until both have offered): perfect negotiation resolves the
/// collision and media flow both ways again.
#[wasm_bindgen_test]
async fn glare_is_resolved_in_twenty_fresh_pages_in_a_row() {
    let choice = DeviceChoice::default();
    let c_stream = media::open(&choice).await.unwrap().unwrap();
    let s_stream = media::open(&choice).await.unwrap().unwrap();
    const ROUNDS: u32 = 20;
    let mut failed = Vec::new();
    let mut slowest = 0.0_f64;
    for round in 0..ROUNDS {
        let frame = FreshFrame::open().await;
        let started = js_sys::Date::now();
        let call = InPageCall::start(round, Some(&c_stream), Some(&s_stream));
        for slot in [&call.customer, &call.specialist] {
            assert!(
                frame.made(slot.borrow().as_ref().unwrap().connection()),
                "a fresh page's connection"
            );
        }
        // Counted in 20 ms steps, so a busy machine gets more time, never less.
        if !eventually(3_000, || call.media_both_ways()).await {
            failed.push(format!(
                "round {round}, first connection: {}",
                call.states()
            ));
            continue;
        }
        slowest = slowest.max(js_sys::Date::now() - started);

        call.wire.hold.set(true);
        let offers = |seen: &Shared<Seen>| seen.borrow().offers;
        let (c0, s0) = (offers(&call.customer_seen), offers(&call.specialist_seen));
        for slot in [&call.customer, &call.specialist] {
            slot.borrow().as_ref().unwrap().restart();
        }
        let both_offered =
            || offers(&call.customer_seen) > c0 && offers(&call.specialist_seen) > s0;
        if !eventually(3_000, both_offered).await {
            failed.push(format!(
                "round {round}: not both offered: {}",
                call.states()
            ));
            continue;
        }
        call.wire.release();
        // Let the collision play out before looking (the link never went down).
        sleep(200).await;
        if !eventually(3_000, || call.media_both_ways()).await {
            failed.push(format!("round {round}, after glare: {}", call.states()));
        }
        drop(call);
        drop(frame);
    }
    media::stop(&c_stream);
    media::stop(&s_stream);
    assert!(
        failed.is_empty(),
        "{} of {ROUNDS} rounds failed: {failed:#?}",
        failed.len()
    );
    web_sys::console::log_1(&format!("slowest first connection: {slowest} ms").into());
}
