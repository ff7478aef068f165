//! One `RTCPeerConnection` to the other member, negotiated by the rules of
//! [`crate::logic::negotiation`]: offers on `negotiationneeded`, answers offers, adds ICE
//! candidates (holding early ones), restarts ICE when the connection fails, and reports the
//! remote stream and the connection's state.
//!
//! Messages from the peer are handled one at a time, in the order they came: each may await the
//! browser (setting a description), and the next must see its result.

use std::{cell::RefCell, collections::VecDeque, rc::Rc};

use callqueue_protocol::signal::{
    IceCandidate, IceServer, SdpKind, SessionDescription, SignalClient, SignalServer,
};
use wasm_bindgen::{JsCast, JsValue, prelude::*};
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    MediaStream, MediaStreamTrack, RtcConfiguration, RtcIceCandidateInit, RtcIceServer,
    RtcPeerConnection, RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcRtpSender, RtcSdpType,
    RtcSessionDescriptionInit, RtcSignalingState, RtcTrackEvent,
};

use crate::logic::{
    negotiation::{Negotiation, OnCandidate, OnDescription},
    quality::Sample,
};

// web-sys has no binding for these two (both are in every current browser): the argument-less
// `setLocalDescription()` that creates the right offer or answer itself, which perfect
// negotiation relies on, and `restartIce()`.
#[wasm_bindgen]
extern "C" {
    /// `RTCPeerConnection` with the two methods web-sys lacks.
    #[wasm_bindgen(extends = RtcPeerConnection, js_name = RTCPeerConnection)]
    type PeerConnectionExt;

    #[wasm_bindgen(method, js_name = setLocalDescription)]
    fn set_local_description_implicit(this: &PeerConnectionExt) -> js_sys::Promise;

    #[wasm_bindgen(method, js_name = restartIce)]
    fn restart_ice(this: &PeerConnectionExt);
}

/// `pc.setLocalDescription()`: the offer or answer the connection's state calls for.
pub fn set_local_description(pc: &RtcPeerConnection) -> js_sys::Promise {
    pc.unchecked_ref::<PeerConnectionExt>()
        .set_local_description_implicit()
}

/// `pc.restartIce()`.
pub fn restart_ice(pc: &RtcPeerConnection) {
    pc.unchecked_ref::<PeerConnectionExt>().restart_ice()
}

/// The state of the media path, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// Disconnected or failed: the browser (and an ICE restart) is trying again.
    Reconnecting,
}

/// What the connection tells its owner.
pub enum PeerEvent {
    /// A message for the other member.
    Signal(SignalClient),
    RemoteStream(MediaStream),
    Link(LinkState),
}

type Handler = Closure<dyn FnMut(web_sys::Event)>;

struct Shared {
    pc: RtcPeerConnection,
    negotiation: RefCell<Negotiation>,
    on_event: Box<dyn Fn(PeerEvent)>,
    queue: RefCell<VecDeque<SignalServer>>,
    busy: std::cell::Cell<bool>,
    closed: std::cell::Cell<bool>,
    /// Our senders with the kind of media each carries (a sender whose track was taken away
    /// has none to say so).
    senders: RefCell<Vec<(String, RtcRtpSender)>>,
    /// The polite side's media, not yet added: see [`POLITE_WAIT_MS`].
    pending: RefCell<Option<MediaStream>>,
}

/// A connection to one peer session. Dropping it closes the connection.
pub struct Peer {
    shared: Rc<Shared>,
    _handlers: Vec<Handler>,
    _fallback: Option<gloo_timers::callback::Timeout>,
}

/// How long the polite side waits for the other's offer before offering its own media itself.
///
/// Both sides offering at once (glare) is what perfect negotiation resolves, and it does: the
/// browser test resolves 12 collisions in a row in about a second. But with both pages offering
/// at once, about one call in four in `bench/call` stalled until the page started over (8 s);
/// each of those was a fresh browser's first connection, and a page's first connection in
/// Chromium can get no network to gather on at all (no candidates, ICE `new` for good; the
/// browser test sees it with and without glare). Rather than add to that, the polite side does
/// not start a negotiation: it adds its tracks when the impolite side's offer comes (just before
/// answering it), and only offers itself if no offer comes in time (the other side has nothing
/// to send).
const POLITE_WAIT_MS: u32 = 1_500;

fn sdp_type(kind: SdpKind) -> RtcSdpType {
    match kind {
        SdpKind::Offer => RtcSdpType::Offer,
        SdpKind::Answer => RtcSdpType::Answer,
        SdpKind::Pranswer => RtcSdpType::Pranswer,
        SdpKind::Rollback => RtcSdpType::Rollback,
    }
}

fn sdp_kind(kind: RtcSdpType) -> Option<SdpKind> {
    match kind {
        RtcSdpType::Offer => Some(SdpKind::Offer),
        RtcSdpType::Answer => Some(SdpKind::Answer),
        RtcSdpType::Pranswer => Some(SdpKind::Pranswer),
        RtcSdpType::Rollback => Some(SdpKind::Rollback),
        _ => None,
    }
}

impl Shared {
    /// Sends our current local description to the peer.
    fn send_local_description(&self) {
        let Some(d) = self.pc.local_description() else {
            return;
        };
        if let Some(kind) = sdp_kind(d.type_()) {
            leptos::logging::log!("call: sending our {kind:?}");
            (self.on_event)(PeerEvent::Signal(SignalClient::Description {
                description: SessionDescription { kind, sdp: d.sdp() },
                to: None,
            }));
        }
    }

    async fn add_candidate(&self, c: &IceCandidate) {
        let init = RtcIceCandidateInit::new(&c.candidate);
        init.set_sdp_mid(c.sdp_mid.as_deref());
        init.set_sdp_m_line_index(c.sdp_m_line_index);
        let added = self
            .pc
            .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
        // A candidate the browser refuses (for an m-line it no longer has) is not fatal.
        let _ = JsFuture::from(added).await;
    }

    fn add_track(&self, track: &MediaStreamTrack, stream: &MediaStream) {
        let sender = self.pc.add_track_0(track, stream);
        self.senders.borrow_mut().push((track.kind(), sender));
    }

    /// Adds the polite side's waiting media, if any (a negotiation follows when needed).
    fn add_pending(&self) {
        let Some(local) = self.pending.borrow_mut().take() else {
            return;
        };
        for track in local.get_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                self.add_track(&track, &local);
            }
        }
    }

    async fn handle(&self, message: SignalServer) {
        match message {
            SignalServer::Description { from, description } => {
                let stable = self.pc.signaling_state() == RtcSignalingState::Stable;
                leptos::logging::log!(
                    "call: a {:?} came in state {:?}",
                    description.kind,
                    self.pc.signaling_state()
                );
                let action =
                    self.negotiation
                        .borrow_mut()
                        .on_description(&from, description.kind, stable);
                let OnDescription::Apply { answer } = action else {
                    leptos::logging::log!("call: ignored a {:?} from {from}", description.kind);
                    return;
                };
                let init = RtcSessionDescriptionInit::new(sdp_type(description.kind));
                init.set_sdp(&description.sdp);
                if let Err(e) = JsFuture::from(self.pc.set_remote_description(&init)).await {
                    leptos::logging::log!(
                        "call: the remote {:?} was refused: {e:?}",
                        description.kind
                    );
                    return;
                }
                let held = self.negotiation.borrow_mut().remote_description_set();
                for c in &held {
                    self.add_candidate(c).await;
                }
                if answer {
                    // Our media joins the transceivers the offer made, in this answer.
                    self.add_pending();
                    match JsFuture::from(set_local_description(&self.pc)).await {
                        Ok(_) => self.send_local_description(),
                        Err(e) => leptos::logging::log!("call: could not answer: {e:?}"),
                    }
                }
            }
            SignalServer::Candidate { from, candidate } => {
                let action = self.negotiation.borrow_mut().on_candidate(&from, candidate);
                if let OnCandidate::Add(c) = action {
                    self.add_candidate(&c).await;
                }
            }
            _ => {}
        }
    }

    /// Takes the queued messages one at a time.
    fn drain(self: &Rc<Self>) {
        if self.busy.replace(true) {
            return;
        }
        let shared = self.clone();
        spawn_local(async move {
            loop {
                let next = shared.queue.borrow_mut().pop_front();
                let Some(message) = next else { break };
                if shared.closed.get() {
                    shared.queue.borrow_mut().clear();
                    break;
                }
                shared.handle(message).await;
            }
            shared.busy.set(false);
        });
    }
}

impl Peer {
    /// A new connection to the peer session `peer`, sending the tracks of `local`.
    pub fn new(
        ice_servers: &[IceServer],
        force_relay: bool,
        polite: bool,
        peer: &str,
        local: Option<&MediaStream>,
        on_event: impl Fn(PeerEvent) + 'static,
    ) -> Result<Self, JsValue> {
        let config = RtcConfiguration::new();
        let servers = js_sys::Array::new();
        for s in ice_servers {
            let server = RtcIceServer::new();
            let urls = js_sys::Array::new();
            for u in &s.urls {
                urls.push(&JsValue::from_str(u));
            }
            server.set_urls(&urls);
            if let Some(u) = &s.username {
                server.set_username(u);
            }
            if let Some(c) = &s.credential {
                server.set_credential(c);
            }
            servers.push(&server);
        }
        config.set_ice_servers(&servers);
        if force_relay {
            config.set_ice_transport_policy(web_sys::RtcIceTransportPolicy::Relay);
        }
        let pc = RtcPeerConnection::new_with_configuration(&config)?;
        let mut negotiation = Negotiation::new(polite);
        negotiation.peer_joined(peer);
        let shared = Rc::new(Shared {
            pc: pc.clone(),
            negotiation: RefCell::new(negotiation),
            on_event: Box::new(on_event),
            queue: RefCell::new(VecDeque::new()),
            busy: std::cell::Cell::new(false),
            closed: std::cell::Cell::new(false),
            senders: RefCell::new(Vec::new()),
            pending: RefCell::new(None),
        });
        let mut handlers = Vec::new();

        let weak = Rc::downgrade(&shared);
        let negotiation_needed: Handler = Closure::new(move |_: web_sys::Event| {
            let Some(shared) = weak.upgrade() else { return };
            spawn_local(async move {
                shared.negotiation.borrow_mut().offering(true);
                let made = JsFuture::from(set_local_description(&shared.pc)).await;
                if made.is_ok() && !shared.closed.get() {
                    shared.send_local_description();
                }
                shared.negotiation.borrow_mut().offering(false);
            });
        });
        pc.set_onnegotiationneeded(Some(negotiation_needed.as_ref().unchecked_ref()));
        handlers.push(negotiation_needed);

        let weak = Rc::downgrade(&shared);
        let ice: Handler = Closure::new(move |e: web_sys::Event| {
            let (Some(shared), Ok(e)) = (weak.upgrade(), e.dyn_into::<RtcPeerConnectionIceEvent>())
            else {
                return;
            };
            // No candidate: gathering is over; the peer needs no word of it.
            if let Some(c) = e.candidate() {
                (shared.on_event)(PeerEvent::Signal(SignalClient::Candidate {
                    candidate: IceCandidate {
                        candidate: c.candidate(),
                        sdp_mid: c.sdp_mid(),
                        sdp_m_line_index: c.sdp_m_line_index(),
                    },
                    to: None,
                }));
            }
        });
        pc.set_onicecandidate(Some(ice.as_ref().unchecked_ref()));
        handlers.push(ice);

        let weak = Rc::downgrade(&shared);
        let track: Handler = Closure::new(move |e: web_sys::Event| {
            let (Some(shared), Ok(e)) = (weak.upgrade(), e.dyn_into::<RtcTrackEvent>()) else {
                return;
            };
            let stream = e
                .streams()
                .get(0)
                .dyn_into::<MediaStream>()
                .ok()
                .or_else(|| {
                    let s = MediaStream::new().ok()?;
                    s.add_track(&e.track());
                    Some(s)
                });
            if let Some(stream) = stream {
                (shared.on_event)(PeerEvent::RemoteStream(stream));
            }
        });
        pc.set_ontrack(Some(track.as_ref().unchecked_ref()));
        handlers.push(track);

        let weak = Rc::downgrade(&shared);
        let state: Handler = Closure::new(move |_: web_sys::Event| {
            let Some(shared) = weak.upgrade() else { return };
            let link = match shared.pc.connection_state() {
                RtcPeerConnectionState::Connected => LinkState::Connected,
                RtcPeerConnectionState::Disconnected => LinkState::Reconnecting,
                RtcPeerConnectionState::Failed => {
                    // A new path (a network change, a dead relay): restart ICE, which
                    // renegotiates by the same rules.
                    restart_ice(&shared.pc);
                    LinkState::Reconnecting
                }
                RtcPeerConnectionState::Closed => return,
                _ => LinkState::Connecting,
            };
            (shared.on_event)(PeerEvent::Link(link));
        });
        pc.set_onconnectionstatechange(Some(state.as_ref().unchecked_ref()));
        handlers.push(state);

        *shared.pending.borrow_mut() = local.cloned();
        let fallback = if polite {
            let weak = Rc::downgrade(&shared);
            Some(gloo_timers::callback::Timeout::new(
                POLITE_WAIT_MS,
                move || {
                    if let Some(shared) = weak.upgrade()
                        && !shared.closed.get()
                    {
                        shared.add_pending();
                    }
                },
            ))
        } else {
            shared.add_pending();
            None
        };
        Ok(Self {
            shared,
            _handlers: handlers,
            _fallback: fallback,
        })
    }

    /// Queues a message from the peer.
    pub fn handle(&self, message: SignalServer) {
        self.shared.queue.borrow_mut().push_back(message);
        self.shared.drain();
    }

    /// Adds the media now instead of waiting for the other's offer (the polite side waits, see
    /// [`POLITE_WAIT_MS`]); both sides doing it at once is glare.
    pub fn send_media_now(&self) {
        self.shared.add_pending();
    }

    /// Starts sending a track (a renegotiation follows by itself).
    pub fn add_track(&self, track: &MediaStreamTrack, stream: &MediaStream) {
        // Media still waiting to be added goes first, so the new track joins it.
        self.shared.add_pending();
        self.shared.add_track(track, stream);
    }

    /// Sends `track` instead of what the sender of that kind sends now (`None` sends nothing);
    /// false when there is no sender of that kind yet.
    pub fn replace_track(&self, kind: &str, track: Option<&MediaStreamTrack>) -> bool {
        if self.shared.pending.borrow().is_some() {
            // Not added yet: the waiting stream already holds what the page changed.
            return true;
        }
        let senders = self.shared.senders.borrow();
        match senders.iter().find(|(k, _)| k == kind) {
            Some((_, s)) => {
                let _ = s.replace_track(track);
                true
            }
            None => false,
        }
    }

    /// ICE again from scratch (the network changed).
    pub fn restart(&self) {
        restart_ice(&self.shared.pc);
    }

    /// The browser's connection.
    pub fn connection(&self) -> &RtcPeerConnection {
        &self.shared.pc
    }
}

/// One reading of a connection's stats for the quality indicator.
pub async fn sample(pc: RtcPeerConnection) -> Option<Sample> {
    {
        let report = JsFuture::from(pc.get_stats()).await.ok()?;
        let sample = Rc::new(RefCell::new(Sample::default()));
        let into = sample.clone();
        let each = Closure::<dyn FnMut(JsValue)>::new(move |stat: JsValue| {
            let mut sample = into.borrow_mut();
            let get = |k: &str| js_sys::Reflect::get(&stat, &JsValue::from_str(k)).ok();
            let text = |k: &str| get(k).and_then(|v| v.as_string());
            let number = |k: &str| get(k).and_then(|v| v.as_f64());
            match text("type").as_deref() {
                Some("candidate-pair")
                    if get("nominated").and_then(|v| v.as_bool()) == Some(true)
                        && text("state").as_deref() == Some("succeeded") =>
                {
                    if let Some(rtt) = number("currentRoundTripTime") {
                        sample.rtt = Some(rtt);
                    }
                }
                Some("inbound-rtp") => {
                    sample.packets_received += number("packetsReceived").unwrap_or(0.0) as u64;
                    sample.packets_lost += number("packetsLost").unwrap_or(0.0).max(0.0) as u64;
                    if text("kind").as_deref() == Some("video") {
                        sample.fps = number("framesPerSecond").or(Some(0.0));
                    }
                }
                _ => {}
            }
        });
        let for_each = js_sys::Reflect::get(&report, &"forEach".into()).ok()?;
        let for_each: js_sys::Function = for_each.dyn_into().ok()?;
        let _ = for_each.call1(&report, each.as_ref());
        drop(each);
        let sample = *sample.borrow();
        Some(sample)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.shared.closed.set(true);
        let pc = &self.shared.pc;
        pc.set_onnegotiationneeded(None);
        pc.set_onicecandidate(None);
        pc.set_ontrack(None);
        pc.set_onconnectionstatechange(None);
        pc.close();
    }
}
