//! One `RTCPeerConnection` to the other member.
//!
//! The first negotiation is one-way, so it can never collide: the specialist's page (impolite)
//! adds fixed audio and video transceivers, with or without devices, and offers; the customer's
//! page (polite) adds nothing, and when the offer arrives puts its own tracks on the
//! transceivers the offer made (`replaceTrack`, direction `sendrecv`) before answering. A camera
//! switched off or on, or another device, is `replaceTrack` on the same sender: no
//! renegotiation. Later negotiations (ICE restarts) follow the rules of perfect negotiation in
//! [`crate::logic::negotiation`], with an explicit rollback where the browser has no implicit
//! one. What arrives is put together into one `MediaStream` per connection, whether or not the
//! sender named a stream.
//!
//! Messages from the peer are handled one at a time, in the order they came: each may await the
//! browser (setting a description), and the next must see its result. Every error the browser
//! gives is logged.
//!
//! Beware `stream.clone()` on a `MediaStream`: web-sys binds the JavaScript method of that
//! name, which makes a new stream of copied tracks. A second handle to the same stream is
//! `Clone::clone(&stream)` (as `Option::clone` and `cloned` do).

use std::{cell::RefCell, collections::VecDeque, rc::Rc};

use callqueue_protocol::signal::{
    IceCandidate, IceServer, SdpKind, SessionDescription, SignalClient, SignalServer,
};
use wasm_bindgen::{JsCast, JsValue, prelude::*};
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    MediaStream, MediaStreamTrack, RtcBundlePolicy, RtcConfiguration, RtcIceCandidateInit,
    RtcIceServer, RtcPeerConnection, RtcPeerConnectionIceEvent, RtcPeerConnectionState,
    RtcRtpTransceiver, RtcRtpTransceiverDirection, RtcRtpTransceiverInit, RtcSdpType,
    RtcSessionDescriptionInit, RtcSignalingState, RtcTrackEvent,
};

use crate::logic::{
    call::ConnState,
    negotiation::{Negotiation, OnCandidate, OnDescription},
    quality::Sample,
};

// web-sys has no binding for these two (both are in every current browser): the argument-less
// `setLocalDescription()` that creates the right offer or answer itself, which perfect
// negotiation relies on, and `restartIce()` (feature-detected: an older browser restarts by an
// offer with `iceRestart`).
#[wasm_bindgen]
extern "C" {
    /// `RTCPeerConnection` with the two methods web-sys lacks.
    #[wasm_bindgen(extends = RtcPeerConnection, js_name = RTCPeerConnection)]
    type PeerConnectionExt;

    #[wasm_bindgen(method, catch, js_name = setLocalDescription)]
    fn set_local_description_implicit(this: &PeerConnectionExt)
    -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = restartIce)]
    fn restart_ice(this: &PeerConnectionExt) -> Result<(), JsValue>;
}

/// Logs what the browser refused, at debug level (the call mends itself; a person reading the
/// console while debugging wants to see it, a customer's console needs no red lines).
pub fn log_error(what: &str, error: &JsValue) {
    if crate::storage::debug_enabled() {
        web_sys::console::debug_2(&JsValue::from_str(&format!("call: {what}:")), error);
    }
}

/// `pc.setLocalDescription()`: the offer or answer the connection's state calls for.
async fn set_local_description(pc: &RtcPeerConnection) -> Result<JsValue, JsValue> {
    let promise = pc
        .unchecked_ref::<PeerConnectionExt>()
        .set_local_description_implicit()?;
    JsFuture::from(promise).await
}

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

/// What the connection tells its owner.
pub enum PeerEvent {
    /// A message for the other member.
    Signal(SignalClient),
    /// The other member's media: the same stream for the whole connection (given once).
    RemoteStream(MediaStream),
    State(ConnState),
}

type Handler = Closure<dyn FnMut(web_sys::Event)>;

struct Shared {
    pc: RtcPeerConnection,
    polite: bool,
    negotiation: RefCell<Negotiation>,
    on_event: Box<dyn Fn(PeerEvent)>,
    queue: RefCell<VecDeque<SignalServer>>,
    busy: std::cell::Cell<bool>,
    closed: std::cell::Cell<bool>,
    /// Our camera and microphone, as the page holds them now.
    local: RefCell<Option<MediaStream>>,
    /// What the other member sends, put together.
    remote: MediaStream,
    remote_given: std::cell::Cell<bool>,
}

/// A connection to one peer session. Dropping it closes the connection.
pub struct Peer {
    shared: Rc<Shared>,
    _handlers: Vec<Handler>,
}

// What the browser hands out here is of the type its API names, so it is cast without an
// `instanceof` check: that check fails for objects of another realm (a connection made in an
// iframe, as the browser tests do to get a fresh page context every round).

fn first_track(stream: Option<&MediaStream>, kind: &str) -> Option<MediaStreamTrack> {
    stream?
        .get_tracks()
        .iter()
        .map(JsCast::unchecked_into::<MediaStreamTrack>)
        .find(|t| t.kind() == kind)
}

impl Shared {
    fn transceivers(&self) -> Vec<RtcRtpTransceiver> {
        self.pc
            .get_transceivers()
            .iter()
            .map(JsCast::unchecked_into::<RtcRtpTransceiver>)
            .collect()
    }

    /// The transceiver that carries `kind` (its receiver's track always has the kind).
    fn transceiver(&self, kind: &str) -> Option<RtcRtpTransceiver> {
        self.transceivers()
            .into_iter()
            .find(|t| !t.stopped() && t.receiver().track().kind() == kind)
    }

    /// `replaceTrack` on the transceiver's sender; `then` runs once it has taken effect (or
    /// was refused, which is logged).
    fn replace_then(
        &self,
        transceiver: &RtcRtpTransceiver,
        track: Option<&MediaStreamTrack>,
        then: impl FnOnce() + 'static,
    ) {
        let replaced = transceiver.sender().replace_track(track);
        spawn_local(async move {
            if let Err(e) = JsFuture::from(replaced).await {
                log_error("replaceTrack was refused", &e);
            }
            then();
        });
    }

    fn replace(&self, transceiver: &RtcRtpTransceiver, track: Option<&MediaStreamTrack>) {
        self.replace_then(transceiver, track, || {});
    }

    /// The polite side's tracks go on the transceivers the offer made, before the answer.
    fn attach_local(&self) {
        let local = self.local.borrow().clone();
        for t in self.transceivers() {
            if t.stopped() {
                continue;
            }
            let kind = t.receiver().track().kind();
            t.set_direction(RtcRtpTransceiverDirection::Sendrecv);
            if t.sender().track().is_none()
                && let Some(track) = first_track(local.as_ref(), &kind)
            {
                self.replace(&t, Some(&track));
            }
        }
    }

    /// Sends our current local description to the peer.
    fn send_local_description(&self) {
        let Some(d) = self.pc.local_description() else {
            return;
        };
        if let Some(kind) = sdp_kind(d.type_()) {
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
        if let Err(e) = JsFuture::from(added).await {
            // One for an m-line the connection no longer has is harmless; logged all the same.
            log_error("a remote candidate was refused", &e);
        }
    }

    async fn set_remote(&self, description: &SessionDescription) -> Result<JsValue, JsValue> {
        let init = RtcSessionDescriptionInit::new(sdp_type(description.kind));
        init.set_sdp(&description.sdp);
        JsFuture::from(self.pc.set_remote_description(&init)).await
    }

    async fn handle(&self, message: SignalServer) {
        match message {
            SignalServer::Description { from, description } => {
                let stable = self.pc.signaling_state() == RtcSignalingState::Stable;
                let action =
                    self.negotiation
                        .borrow_mut()
                        .on_description(&from, description.kind, stable);
                let OnDescription::Apply { answer } = action else {
                    return;
                };
                let mut applied = self.set_remote(&description).await;
                if applied.is_err() && answer && !stable {
                    // The polite side, mid-offer, in a browser without implicit rollback.
                    let rollback = RtcSessionDescriptionInit::new(RtcSdpType::Rollback);
                    match JsFuture::from(self.pc.set_local_description(&rollback)).await {
                        Ok(_) => applied = self.set_remote(&description).await,
                        Err(e) => log_error("the rollback was refused", &e),
                    }
                }
                if let Err(e) = applied {
                    log_error("the remote description was refused", &e);
                    return;
                }
                let held = self.negotiation.borrow_mut().remote_description_set();
                for c in &held {
                    self.add_candidate(c).await;
                }
                if answer {
                    if self.polite {
                        self.attach_local();
                    }
                    match set_local_description(&self.pc).await {
                        Ok(_) => self.send_local_description(),
                        Err(e) => log_error("could not answer", &e),
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

    async fn negotiate(&self) {
        self.negotiation.borrow_mut().offering(true);
        match set_local_description(&self.pc).await {
            Ok(_) if !self.closed.get() => self.send_local_description(),
            Ok(_) => {}
            Err(e) => log_error("could not make an offer", &e),
        }
        self.negotiation.borrow_mut().offering(false);
    }
}

fn configuration(ice_servers: &[IceServer], force_relay: bool) -> RtcConfiguration {
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
    // One transport for audio and video: fewer candidates to gather and check.
    config.set_bundle_policy(RtcBundlePolicy::MaxBundle);
    if force_relay {
        config.set_ice_transport_policy(web_sys::RtcIceTransportPolicy::Relay);
    }
    config
}

impl Peer {
    /// A new connection to the peer session `peer`, sending the tracks of `local`. The
    /// impolite side (`polite` false) offers at once.
    pub fn new(
        ice_servers: &[IceServer],
        force_relay: bool,
        polite: bool,
        peer: &str,
        local: Option<&MediaStream>,
        on_event: impl Fn(PeerEvent) + 'static,
    ) -> Result<Self, JsValue> {
        let pc =
            RtcPeerConnection::new_with_configuration(&configuration(ice_servers, force_relay))?;
        let mut negotiation = Negotiation::new(polite);
        negotiation.peer_joined(peer);
        let shared = Rc::new(Shared {
            pc: Clone::clone(&pc),
            polite,
            negotiation: RefCell::new(negotiation),
            on_event: Box::new(on_event),
            queue: RefCell::new(VecDeque::new()),
            busy: std::cell::Cell::new(false),
            closed: std::cell::Cell::new(false),
            local: RefCell::new(local.cloned()),
            remote: MediaStream::new()?,
            remote_given: std::cell::Cell::new(false),
        });
        let mut handlers = Vec::new();

        let weak = Rc::downgrade(&shared);
        let negotiation_needed: Handler = Closure::new(move |_: web_sys::Event| {
            let Some(shared) = weak.upgrade() else { return };
            spawn_local(async move { shared.negotiate().await });
        });
        pc.set_onnegotiationneeded(Some(negotiation_needed.as_ref().unchecked_ref()));
        handlers.push(negotiation_needed);

        let weak = Rc::downgrade(&shared);
        let ice: Handler = Closure::new(move |e: web_sys::Event| {
            let Some(shared) = weak.upgrade() else { return };
            let e: RtcPeerConnectionIceEvent = e.unchecked_into();
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
            let Some(shared) = weak.upgrade() else { return };
            let e: RtcTrackEvent = e.unchecked_into();
            // One stream for the connection, one track of each kind in it, whatever streams
            // (if any) the sender named.
            let track = e.track();
            for old in shared.remote.get_tracks().iter() {
                let old: MediaStreamTrack = old.unchecked_into();
                if old.kind() == track.kind() && old.id() != track.id() {
                    shared.remote.remove_track(&old);
                }
            }
            shared.remote.add_track(&track);
            if !shared.remote_given.replace(true) {
                (shared.on_event)(PeerEvent::RemoteStream(Clone::clone(&shared.remote)));
            }
        });
        pc.set_ontrack(Some(track.as_ref().unchecked_ref()));
        handlers.push(track);

        let weak = Rc::downgrade(&shared);
        let state: Handler = Closure::new(move |_: web_sys::Event| {
            let Some(shared) = weak.upgrade() else { return };
            let state = match shared.pc.connection_state() {
                RtcPeerConnectionState::Connected => ConnState::Connected,
                RtcPeerConnectionState::Disconnected => ConnState::Disconnected,
                RtcPeerConnectionState::Failed => ConnState::Failed,
                RtcPeerConnectionState::Connecting => ConnState::Connecting,
                RtcPeerConnectionState::Closed => return,
                _ => ConnState::New,
            };
            (shared.on_event)(PeerEvent::State(state));
        });
        pc.set_onconnectionstatechange(Some(state.as_ref().unchecked_ref()));
        handlers.push(state);

        if !polite {
            // Fixed transceivers, devices or not: the offer always has audio and video.
            let streams = js_sys::Array::of1(local.unwrap_or(&shared.remote));
            for kind in ["audio", "video"] {
                let init = RtcRtpTransceiverInit::new();
                init.set_direction(RtcRtpTransceiverDirection::Sendrecv);
                init.set_streams(&streams);
                let t = pc.add_transceiver_with_str_and_init(kind, &init);
                if let Some(track) = first_track(local, kind) {
                    shared.replace(&t, Some(&track));
                }
            }
        }
        Ok(Self {
            shared,
            _handlers: handlers,
        })
    }

    /// Queues a message from the peer.
    pub fn handle(&self, message: SignalServer) {
        self.shared.queue.borrow_mut().push_back(message);
        self.shared.drain();
    }

    /// Our camera and microphone are now `local` (a stream the page made anew).
    pub fn use_local(&self, local: &MediaStream) {
        *self.shared.local.borrow_mut() = Some(Clone::clone(local));
    }

    /// Sends `track` instead of what the sender of that kind sends now (`None` sends nothing).
    /// Before the customer's page has answered there is no transceiver yet: the track goes on
    /// it when the answer is made.
    pub fn replace_track(&self, kind: &str, track: Option<&MediaStreamTrack>) {
        self.replace_track_then(kind, track, || {});
    }

    /// [`Peer::replace_track`], then `then` (at once when there is no transceiver yet). The
    /// track being replaced must not stop before: a sender whose track ended mid-replace sends
    /// nothing more in Chromium.
    pub fn replace_track_then(
        &self,
        kind: &str,
        track: Option<&MediaStreamTrack>,
        then: impl FnOnce() + 'static,
    ) {
        match self.shared.transceiver(kind) {
            Some(t) => self.shared.replace_then(&t, track, then),
            None => then(),
        }
    }

    /// ICE again from scratch (the specialist's page; the customer's asks it to).
    pub fn restart(&self) {
        let shared = &self.shared;
        if let Err(e) = shared.pc.unchecked_ref::<PeerConnectionExt>().restart_ice() {
            // No restartIce(): an offer that asks for new ICE credentials does the same.
            log_error("restartIce is missing; offering with iceRestart", &e);
            let options = web_sys::RtcOfferOptions::new();
            options.set_ice_restart(true);
            let shared = shared.clone();
            spawn_local(async move {
                let offer = JsFuture::from(shared.pc.create_offer_with_rtc_offer_options(&options));
                let Ok(offer) = offer.await else { return };
                let init: RtcSessionDescriptionInit = offer.unchecked_into();
                match JsFuture::from(shared.pc.set_local_description(&init)).await {
                    Ok(_) => shared.send_local_description(),
                    Err(e) => log_error("could not restart ICE", &e),
                }
            });
        }
    }

    /// The browser's connection.
    pub fn connection(&self) -> &RtcPeerConnection {
        &self.shared.pc
    }
}

/// One reading of a connection's stats for the quality indicator. The round trip is the
/// selected candidate pair's: the transport's `selectedCandidatePairId` (Chromium, Safari), or
/// the pair marked `selected` (Firefox); failing both, the `remote-inbound-rtp` reports.
pub async fn sample(pc: RtcPeerConnection) -> Option<Sample> {
    let report = JsFuture::from(pc.get_stats()).await.ok()?;
    let stats: Vec<JsValue> = {
        let all = Rc::new(RefCell::new(Vec::new()));
        let into = all.clone();
        let each = Closure::<dyn FnMut(JsValue)>::new(move |stat: JsValue| {
            into.borrow_mut().push(stat);
        });
        let for_each = js_sys::Reflect::get(&report, &"forEach".into()).ok()?;
        if !for_each.is_function() {
            return None;
        }
        let for_each: js_sys::Function = for_each.unchecked_into();
        let _ = for_each.call1(&report, each.as_ref());
        drop(each);
        all.take()
    };
    let get = |stat: &JsValue, k: &str| js_sys::Reflect::get(stat, &JsValue::from_str(k)).ok();
    let text = |stat: &JsValue, k: &str| get(stat, k).and_then(|v| v.as_string());
    let number = |stat: &JsValue, k: &str| get(stat, k).and_then(|v| v.as_f64());
    let of_type = |t: &'static str| {
        stats
            .iter()
            .filter(move |s| text(s, "type").as_deref() == Some(t))
    };
    let selected_id = of_type("transport").find_map(|t| text(t, "selectedCandidatePairId"));
    let pair = of_type("candidate-pair").find(|p| match &selected_id {
        Some(id) => text(p, "id").as_deref() == Some(id.as_str()),
        None => get(p, "selected").and_then(|v| v.as_bool()) == Some(true),
    });
    let mut sample = Sample {
        rtt: pair.and_then(|p| number(p, "currentRoundTripTime")),
        ..Sample::default()
    };
    if sample.rtt.is_none() {
        sample.rtt = of_type("remote-inbound-rtp").find_map(|r| number(r, "roundTripTime"));
    }
    for inbound in of_type("inbound-rtp") {
        sample.packets_received += number(inbound, "packetsReceived").unwrap_or(0.0) as u64;
        sample.packets_lost += number(inbound, "packetsLost").unwrap_or(0.0).max(0.0) as u64;
        if text(inbound, "kind").as_deref() == Some("video") {
            // Missing while no frames come (the other camera is off): no reading, not zero.
            sample.fps = number(inbound, "framesPerSecond");
        }
    }
    Some(sample)
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
