//! The call's media: the camera and microphone, the connection to the other member, and the
//! signal socket between them, put together for the join page.
//!
//! A connection exists only while the other member's page is there: when their session
//! appears (our `welcome` names it, or `peer_joined` comes), both pages start a fresh
//! `RTCPeerConnection` and negotiate by the perfect-negotiation rules; when it goes
//! (`peer_left`), ours closes. A reload on either side is a new session, so the call is rebuilt
//! within seconds with no action from anyone.

pub mod media;
pub mod peer;
pub mod signal;

use std::{cell::RefCell, rc::Rc};

use callqueue_protocol::{
    Role,
    signal::{IceServer, MediaState, Peer as PeerInfo, SignalClient, SignalServer},
};
use gloo_timers::callback::Interval;
use leptos::{html::Video, prelude::*};
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{MediaStream, MediaStreamTrack};

use crate::i18n::t;
use crate::logic::quality::{Quality, Sample, assess};
use media::DeviceChoice;
use peer::{LinkState, Peer, PeerEvent};
use signal::{SignalSocket, SocketEvent};

/// Whether the other member is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Not yet seen in this page's life.
    Waiting,
    Here,
    /// Was here, and their page is gone.
    Left,
}

/// What the page shows of the call's media; all of it changes as the call goes on.
#[derive(Clone, Copy)]
pub struct CallView {
    pub presence: RwSignal<Presence>,
    pub peer_media: RwSignal<MediaState>,
    pub link: RwSignal<LinkState>,
    pub quality: RwSignal<Option<Quality>>,
    /// Our microphone is sending (it exists and is not muted).
    pub mic: RwSignal<bool>,
    /// Our camera is on.
    pub camera: RwSignal<bool>,
    /// A camera switch is in progress.
    pub switching: RwSignal<bool>,
    /// Another tab of ours took the call over.
    pub replaced: RwSignal<bool>,
    /// Why the camera or microphone is not there, if it is not.
    pub media_error: RwSignal<Option<String>>,
    pub local_video: NodeRef<Video>,
    pub remote_video: NodeRef<Video>,
}

impl CallView {
    pub fn new() -> Self {
        Self {
            presence: RwSignal::new(Presence::Waiting),
            peer_media: RwSignal::new(MediaState {
                audio: true,
                video: true,
            }),
            link: RwSignal::new(LinkState::Connecting),
            quality: RwSignal::new(None),
            mic: RwSignal::new(false),
            camera: RwSignal::new(false),
            switching: RwSignal::new(false),
            replaced: RwSignal::new(false),
            media_error: RwSignal::new(None),
            local_video: NodeRef::new(),
            remote_video: NodeRef::new(),
        }
    }

    /// What the stage says over the other member's video, if anything; `other` is who they are.
    pub fn status(&self, other: Role) -> Option<&'static str> {
        let specialist = other == Role::Specialist;
        if self.replaced.get() {
            return Some(t("video.other_tab"));
        }
        match self.presence.get() {
            Presence::Waiting if specialist => return Some(t("video.waiting_specialist")),
            Presence::Waiting => return Some(t("video.waiting_customer")),
            Presence::Left if specialist => return Some(t("video.specialist_left")),
            Presence::Left => return Some(t("video.customer_left")),
            Presence::Here => {}
        }
        match self.link.get() {
            LinkState::Reconnecting => Some(t("conn.reconnecting")),
            LinkState::Connecting => Some(t("conn.connecting")),
            LinkState::Connected if !self.peer_media.get().video => Some(if specialist {
                t("video.specialist_camera_off")
            } else {
                t("video.customer_camera_off")
            }),
            LinkState::Connected => None,
        }
    }
}

impl Default for CallView {
    fn default() -> Self {
        Self::new()
    }
}

struct Inner {
    view: CallView,
    signal_url: String,
    session: String,
    local: Option<MediaStream>,
    choice: DeviceChoice,
    polite: bool,
    relay_only: bool,
    ice_servers: Vec<IceServer>,
    peer_session: Option<String>,
    peer: Option<Peer>,
    socket: Option<SignalSocket>,
    stats: Option<Interval>,
    /// Restarts ICE while the connection does not come up (see [`start_watchdog`]).
    watchdog: Option<Interval>,
    last_sample: Option<Sample>,
    online: Option<Closure<dyn FnMut(web_sys::Event)>>,
    stopped: bool,
}

/// The media of one call page. Dropping it (or [`CallMedia::stop`]) stops every track and
/// closes the connection and the socket.
pub struct CallMedia {
    inner: Rc<RefCell<Inner>>,
}

/// A random id for this page load.
fn new_session() -> String {
    (0..4)
        .map(|_| {
            format!(
                "{:08x}",
                (js_sys::Math::random() * f64::from(u32::MAX)) as u32
            )
        })
        .collect()
}

fn show(video: &NodeRef<Video>, stream: Option<&MediaStream>) {
    if let Some(v) = video.get_untracked() {
        let v: &web_sys::HtmlMediaElement = v.as_ref();
        v.set_src_object(stream);
        if stream.is_some()
            && let Ok(playing) = v.play()
        {
            // A new stream interrupts the last play(), and a refused autoplay only means a
            // click plays it: neither is an error worth the console.
            leptos::task::spawn_local(async move {
                let _ = wasm_bindgen_futures::JsFuture::from(playing).await;
            });
        }
    }
}

/// Plays the other member's sound on the chosen speaker (`setSinkId`, where the browser has it;
/// web-sys binds it only behind its unstable flag).
fn use_speaker(video: &NodeRef<Video>, speaker: &str) {
    let Some(v) = video.get_untracked() else {
        return;
    };
    let set = js_sys::Reflect::get(&v, &"setSinkId".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    if let Some(set) = set
        && let Ok(promise) = set.call1(&v, &speaker.into())
        && let Ok(promise) = promise.dyn_into::<js_sys::Promise>()
    {
        // A speaker that has gone away keeps the default one: nothing to tell.
        leptos::task::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        });
    }
}

fn tracks(stream: &MediaStream, kind: &str) -> Vec<MediaStreamTrack> {
    stream
        .get_tracks()
        .iter()
        .filter_map(|t| t.dyn_into::<MediaStreamTrack>().ok())
        .filter(|t| t.kind() == kind)
        .collect()
}

impl CallMedia {
    /// Starts the call's media for the page of `role` in the call whose signal socket is at
    /// `signal_url`: the devices of the remembered choice, then the socket.
    pub fn start(signal_url: String, view: CallView) -> Self {
        let inner = Rc::new(RefCell::new(Inner {
            view,
            signal_url: signal_url.clone(),
            session: new_session(),
            local: None,
            choice: DeviceChoice::load(),
            polite: true,
            relay_only: false,
            ice_servers: Vec::new(),
            peer_session: None,
            peer: None,
            socket: None,
            stats: None,
            watchdog: None,
            last_sample: None,
            online: None,
            stopped: false,
        }));
        let weak = Rc::downgrade(&inner);
        leptos::task::spawn_local(async move {
            let choice = match weak.upgrade() {
                Some(rc) => rc.borrow().choice.clone(),
                None => return,
            };
            let (stream, used, error) = media::open_best(&choice).await;
            let Some(rc) = weak.upgrade() else {
                if let Some(s) = &stream {
                    media::stop(s);
                }
                return;
            };
            if rc.borrow().stopped {
                if let Some(s) = &stream {
                    media::stop(s);
                }
                return;
            }
            {
                let mut inner = rc.borrow_mut();
                inner.view.mic.set(used.audio);
                inner.view.camera.set(used.video);
                inner.view.media_error.set(error.map(|e| e.message()));
                show(&inner.view.local_video, stream.as_ref());
                inner.local = stream;
            }
            open_socket(&rc, signal_url);
            watch_network(&rc);
        });
        Self { inner }
    }

    /// Mutes or unmutes the microphone (the other side sees it).
    pub fn set_mic(&self, on: bool) {
        let mut inner = self.inner.borrow_mut();
        let Some(local) = inner.local.clone() else {
            return;
        };
        let audio = tracks(&local, "audio");
        if audio.is_empty() {
            return;
        }
        for t in &audio {
            t.set_enabled(on);
        }
        inner.view.mic.set(on);
        send_media(&mut inner);
    }

    /// Turns the camera off (releasing it: its light goes off) or on again.
    pub fn set_camera(&self, on: bool) {
        let rc = self.inner.clone();
        if !on {
            let mut inner = rc.borrow_mut();
            if let Some(local) = inner.local.clone() {
                for t in tracks(&local, "video") {
                    t.stop();
                    local.remove_track(&t);
                }
            }
            if let Some(peer) = &inner.peer {
                peer.replace_track("video", None);
            }
            inner.view.camera.set(false);
            send_media(&mut inner);
            return;
        }
        let view = rc.borrow().view;
        if view.switching.get_untracked() {
            return;
        }
        view.switching.set(true);
        let camera_choice = DeviceChoice {
            audio: false,
            video: true,
            ..rc.borrow().choice.clone()
        };
        leptos::task::spawn_local(async move {
            let opened = media::open(&camera_choice).await;
            view.switching.try_set(false);
            let mut inner = rc.borrow_mut();
            if inner.stopped {
                if let Ok(Some(s)) = &opened {
                    media::stop(s);
                }
                return;
            }
            let track = match opened {
                Ok(Some(s)) => tracks(&s, "video").into_iter().next(),
                Ok(None) => None,
                Err(e) => {
                    inner.view.media_error.set(Some(e.message()));
                    None
                }
            };
            let Some(track) = track else { return };
            let local = match inner.local.clone() {
                Some(l) => l,
                None => match MediaStream::new() {
                    Ok(l) => {
                        inner.local = Some(l.clone());
                        l
                    }
                    Err(_) => return,
                },
            };
            local.add_track(&track);
            show(&inner.view.local_video, Some(&local));
            if let Some(peer) = &inner.peer
                && !peer.replace_track("video", Some(&track))
            {
                peer.add_track(&track, &local);
            }
            inner.view.camera.set(true);
            inner.view.media_error.set(None);
            send_media(&mut inner);
        });
    }

    /// Stops everything: tracks, connection, socket.
    pub fn stop(&self) {
        stop(&mut self.inner.borrow_mut());
    }
}

impl Drop for CallMedia {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            stop(&mut inner);
        }
    }
}

fn stop(inner: &mut Inner) {
    if inner.stopped {
        return;
    }
    inner.stopped = true;
    inner.socket = None;
    inner.peer = None;
    inner.stats = None;
    inner.watchdog = None;
    if let Some(online) = inner.online.take()
        && let Some(w) = web_sys::window()
    {
        let _ = w.remove_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    }
    if let Some(local) = inner.local.take() {
        media::stop(&local);
    }
    show(&inner.view.local_video, None);
    show(&inner.view.remote_video, None);
    inner.view.quality.try_set(None);
}

fn media_state(inner: &Inner) -> MediaState {
    let has = |kind| {
        inner
            .local
            .as_ref()
            .is_some_and(|l| !tracks(l, kind).is_empty())
    };
    MediaState {
        audio: has("audio") && inner.view.mic.get_untracked(),
        video: has("video") && inner.view.camera.get_untracked(),
    }
}

fn send_media(inner: &mut Inner) {
    let media = media_state(inner);
    if let Some(socket) = &inner.socket {
        socket.send(&SignalClient::Media { media });
    }
}

fn open_socket(rc: &Rc<RefCell<Inner>>, url: String) {
    let weak = Rc::downgrade(rc);
    let hello_of = Rc::downgrade(rc);
    let socket = SignalSocket::open(
        url,
        move || {
            let (session, media) = hello_of
                .upgrade()
                .map(|rc| {
                    let inner = rc.borrow();
                    (inner.session.clone(), media_state(&inner))
                })
                .unwrap_or_default();
            SignalClient::Hello {
                session,
                media,
                received: 0,
            }
        },
        move |event| {
            if let Some(rc) = weak.upgrade() {
                on_socket(&rc, event);
            }
        },
    );
    rc.borrow_mut().socket = Some(socket);
}

fn on_socket(rc: &Rc<RefCell<Inner>>, event: SocketEvent) {
    match event {
        SocketEvent::Message(SignalServer::Welcome {
            polite,
            ice_servers,
            peer,
            relay_only,
            ..
        }) => {
            leptos::logging::log!(
                "call: welcome; the other member is {}",
                if peer.is_some() {
                    "here"
                } else {
                    "not here yet"
                }
            );
            {
                let mut inner = rc.borrow_mut();
                inner.polite = polite;
                inner.ice_servers = ice_servers;
                inner.relay_only = relay_only;
            }
            match peer {
                Some(p) => peer_here(rc, p),
                None => {
                    let mut inner = rc.borrow_mut();
                    // Our socket came back and the peer is gone too.
                    if inner.peer_session.take().is_some() {
                        inner.peer = None;
                        inner.view.presence.set(Presence::Left);
                        show(&inner.view.remote_video, None);
                    }
                }
            }
        }
        SocketEvent::Message(SignalServer::PeerJoined { peer }) => peer_here(rc, peer),
        SocketEvent::Message(SignalServer::PeerLeft { session }) => {
            let mut inner = rc.borrow_mut();
            if inner.peer_session.as_deref() == Some(session.as_str()) {
                inner.peer_session = None;
                inner.peer = None;
                inner.stats = None;
                inner.view.presence.set(Presence::Left);
                inner.view.quality.set(None);
                show(&inner.view.remote_video, None);
            }
        }
        SocketEvent::Message(SignalServer::Media { from, media }) => {
            let inner = rc.borrow();
            if inner.peer_session.as_deref() == Some(from.as_str()) {
                inner.view.peer_media.set(media);
            }
        }
        SocketEvent::Message(message @ SignalServer::Description { .. })
        | SocketEvent::Message(message @ SignalServer::Candidate { .. }) => {
            if let Some(peer) = &rc.borrow().peer {
                peer.handle(message);
            }
        }
        SocketEvent::Message(SignalServer::RestartIce { .. }) => {
            if let Some(peer) = &rc.borrow().peer {
                peer.restart();
            }
        }
        SocketEvent::Message(SignalServer::Error { message }) => {
            leptos::logging::warn!("signal: {message}");
        }
        SocketEvent::Up | SocketEvent::Down => {}
        SocketEvent::Replaced => {
            let mut inner = rc.borrow_mut();
            inner.view.replaced.set(true);
            stop(&mut inner);
        }
        SocketEvent::Ended => stop(&mut rc.borrow_mut()),
    }
}

/// The other member's session is there: a new one gets a fresh connection.
fn peer_here(rc: &Rc<RefCell<Inner>>, info: PeerInfo) {
    leptos::logging::log!("call: the other member's session {} is here", info.session);
    let mut inner = rc.borrow_mut();
    inner.view.presence.set(Presence::Here);
    inner.view.peer_media.set(info.media);
    if inner.peer_session.as_deref() == Some(info.session.as_str()) && inner.peer.is_some() {
        return;
    }
    inner.peer = None;
    inner.peer_session = Some(info.session.clone());
    inner.view.link.set(LinkState::Connecting);
    show(&inner.view.remote_video, None);
    let weak = Rc::downgrade(rc);
    let made = Peer::new(
        &inner.ice_servers,
        inner.relay_only,
        inner.polite,
        &info.session,
        inner.local.as_ref(),
        move |event| on_peer_event(&weak, event),
    );
    match made {
        Ok(peer) => {
            inner.peer = Some(peer);
            start_stats(rc, &mut inner);
            start_watchdog(rc, &mut inner);
        }
        Err(e) => leptos::logging::warn!("could not start the connection: {e:?}"),
    }
}

/// What the connection reports. Never dropped: if the page's state is being changed right now,
/// the event is handled a moment later.
fn on_peer_event(weak: &std::rc::Weak<RefCell<Inner>>, event: PeerEvent) {
    let Some(rc) = weak.upgrade() else { return };
    let Ok(inner) = rc.try_borrow() else {
        let weak = weak.clone();
        leptos::task::spawn_local(async move { on_peer_event(&weak, event) });
        return;
    };
    match event {
        PeerEvent::Signal(message) => {
            if let Some(socket) = &inner.socket {
                socket.send(&message);
            }
        }
        PeerEvent::RemoteStream(stream) => {
            show(&inner.view.remote_video, Some(&stream));
            if let Some(speaker) = &inner.choice.speaker {
                use_speaker(&inner.view.remote_video, speaker);
            }
        }
        PeerEvent::Link(link) => inner.view.link.set(link),
    }
}

/// Reads the connection's stats every 2 s for the quality indicator.
fn start_stats(rc: &Rc<RefCell<Inner>>, inner: &mut Inner) {
    let weak = Rc::downgrade(rc);
    inner.last_sample = None;
    inner.stats = Some(Interval::new(2_000, move || {
        let weak = weak.clone();
        leptos::task::spawn_local(async move {
            let Some(rc) = weak.upgrade() else { return };
            let sample = {
                let inner = rc.borrow();
                match &inner.peer {
                    Some(peer) if inner.view.link.get_untracked() == LinkState::Connected => {
                        Some(peer::sample(peer.connection().clone()))
                    }
                    _ => None,
                }
            };
            let Some(sample) = sample else { return };
            let Some(sample) = sample.await else { return };
            let mut inner = rc.borrow_mut();
            let quality = assess(inner.last_sample.as_ref(), &sample);
            inner.last_sample = Some(sample);
            inner.view.quality.try_set(Some(quality));
        });
    }));
}

/// How long a new connection may take to come up before the page starts over.
const CONNECT_PATIENCE_MS: u32 = 8_000;

/// If a new connection has not come up in time, starts over as a reload would: a new session
/// on a new socket, so both pages build fresh connections and negotiate from nothing. That
/// also mends a negotiation that went out of step (an offer left unanswered after both offered
/// at once), which an ICE restart cannot: it needs a stable state to offer from. Only the
/// impolite side does it, so the two do not start over across each other.
fn start_watchdog(rc: &Rc<RefCell<Inner>>, inner: &mut Inner) {
    inner.watchdog = None;
    if inner.polite {
        return;
    }
    let weak = Rc::downgrade(rc);
    inner.watchdog = Some(Interval::new(CONNECT_PATIENCE_MS, move || {
        let Some(rc) = weak.upgrade() else { return };
        let stuck = rc.try_borrow().is_ok_and(|inner| {
            inner.peer.is_some() && inner.view.link.get_untracked() != LinkState::Connected
        });
        if stuck {
            leptos::logging::log!("call: the connection did not come up; starting over");
            start_over(&rc);
        }
    }));
}

/// A new session on a new socket, as if the page had been reloaded (the media stay).
fn start_over(rc: &Rc<RefCell<Inner>>) {
    let url = {
        let mut inner = rc.borrow_mut();
        if inner.stopped {
            return;
        }
        inner.session = new_session();
        inner.peer = None;
        inner.peer_session = None;
        inner.stats = None;
        inner.watchdog = None;
        inner.socket = None;
        inner.view.link.set(LinkState::Connecting);
        show(&inner.view.remote_video, None);
        inner.signal_url.clone()
    };
    open_socket(rc, url);
}

/// A network change (back online) restarts ICE at once rather than waiting for it to fail.
fn watch_network(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    let online = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        if let Some(rc) = weak.upgrade()
            && let Some(peer) = &rc.borrow().peer
        {
            peer.restart();
        }
    });
    if let Some(w) = web_sys::window() {
        let _ = w.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    }
    rc.borrow_mut().online = Some(online);
}

/// Who the other member is, in words.
pub fn other_side(role: Option<Role>) -> Role {
    match role {
        Some(Role::Specialist) => Role::Patient,
        _ => Role::Specialist,
    }
}
