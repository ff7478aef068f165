//! The call's media: the camera and microphone, the connection to the other member, and the
//! signal socket between them, put together for the join page.
//!
//! What happens when is decided by one pure state machine, [`crate::logic::call`]: this module
//! feeds it what the socket, the connection, the network and the timers report, and carries out
//! the effects it answers with (send, build or close the connection, restart ICE, start over,
//! set a timer). The connection lives while the other member's session does, not while a socket
//! does: a blip of either page's signalling leaves the media alone.

pub mod media;
pub mod peer;
pub mod signal;

use std::{cell::RefCell, rc::Rc};

use callqueue_protocol::{
    Role,
    signal::{IceServer, MediaState, SignalClient, SignalServer},
};
use gloo_timers::callback::{Interval, Timeout};
use leptos::{html::Video, prelude::*};
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{MediaStream, MediaStreamTrack};

pub use crate::logic::call::{LinkState, Presence};
use crate::logic::{
    call::{CallMachine, Effect, Input, Side, Timer},
    quality::{Quality, Sample, assess},
};
use crate::{i18n::t, logic::chat::ChatLine};
use media::DeviceChoice;
use peer::{Peer, PeerEvent};
use signal::{SignalSocket, SocketEvent};

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
    /// The browser would not play the other member's video by itself: a tap must start it.
    pub needs_tap: RwSignal<bool>,
    pub local_video: NodeRef<Video>,
    pub remote_video: NodeRef<Video>,
    /// The call's chat, in order.
    pub chat: RwSignal<Vec<ChatLine>>,
    /// Our messages not yet acknowledged: (id, text), sent again on every reconnect.
    pub unsent: RwSignal<Vec<(String, String)>>,
    /// Counts the other member's messages as they arrive live (not those caught up on).
    pub arrived: RwSignal<u32>,
    /// Which member we are, as the server said.
    pub me: RwSignal<Option<Role>>,
    /// The page is hidden (another tab, a locked phone).
    pub hidden: RwSignal<bool>,
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
            needs_tap: RwSignal::new(false),
            local_video: NodeRef::new(),
            remote_video: NodeRef::new(),
            chat: RwSignal::new(Vec::new()),
            unsent: RwSignal::new(Vec::new()),
            arrived: RwSignal::new(0),
            me: RwSignal::new(None),
            hidden: RwSignal::new(false),
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

type Listener = Closure<dyn FnMut(web_sys::Event)>;

struct Inner {
    view: CallView,
    signal_url: String,
    machine: CallMachine,
    local: Option<MediaStream>,
    choice: DeviceChoice,
    relay_only: bool,
    ice_servers: Vec<IceServer>,
    peer: Option<Peer>,
    socket: Option<SignalSocket>,
    stats: Option<Interval>,
    timers: Vec<(Timer, Timeout)>,
    last_sample: Option<Sample>,
    /// `online` and `pagehide` on the window.
    listeners: Vec<(&'static str, Listener)>,
    /// `ended` on our own tracks (a camera unplugged).
    track_ended: Option<Listener>,
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

/// Shows `stream` in `video` and plays it. A play the browser refuses (no user gesture yet,
/// autoplay with sound blocked: Safari, Chromium's stricter policies) shows the tap-to-play
/// control through `needs_tap`; a play interrupted by a newer stream is nothing.
fn show(video: &NodeRef<Video>, stream: Option<&MediaStream>, needs_tap: Option<RwSignal<bool>>) {
    let Some(v) = video.get_untracked() else {
        return;
    };
    let v: &web_sys::HtmlMediaElement = v.as_ref();
    v.set_src_object(stream);
    if stream.is_some() {
        play(v, needs_tap);
    } else if let Some(needs_tap) = needs_tap {
        needs_tap.try_set(false);
    }
}

fn play(v: &web_sys::HtmlMediaElement, needs_tap: Option<RwSignal<bool>>) {
    let Ok(playing) = v.play() else { return };
    leptos::task::spawn_local(async move {
        let refused = match wasm_bindgen_futures::JsFuture::from(playing).await {
            Ok(_) => false,
            Err(e) => {
                e.dyn_ref::<web_sys::DomException>()
                    .map(|d| d.name())
                    .as_deref()
                    == Some("NotAllowedError")
            }
        };
        if let Some(needs_tap) = needs_tap {
            needs_tap.try_set(refused);
        }
    });
}

/// Plays the other member's sound on the chosen speaker (`setSinkId`, where the browser has it;
/// web-sys binds it only behind its unstable flag).
fn use_speaker(video: &NodeRef<Video>, speaker: &str) {
    let Some(v) = video.get_untracked() else {
        return;
    };
    if let Some(Ok(promise)) = crate::feature::call(&v, "setSinkId", &[speaker.into()])
        && let Ok(promise) = promise.dyn_into::<js_sys::Promise>()
    {
        leptos::task::spawn_local(async move {
            if let Err(e) = wasm_bindgen_futures::JsFuture::from(promise).await {
                // A speaker that has gone away keeps the default one.
                peer::log_error("the chosen speaker could not be used", &e);
            }
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
    /// Starts the call's media for the page whose call's signal socket is at `signal_url`: the
    /// devices of the remembered choice, then the socket.
    pub fn start(signal_url: String, view: CallView) -> Self {
        let inner = Rc::new(RefCell::new(Inner {
            view,
            signal_url: signal_url.clone(),
            // The side is the server's word (`welcome`); until then nothing is negotiated.
            machine: CallMachine::new(Side::Customer, new_session()),
            local: None,
            choice: DeviceChoice::load(),
            relay_only: false,
            ice_servers: Vec::new(),
            peer: None,
            socket: None,
            stats: None,
            timers: Vec::new(),
            last_sample: None,
            listeners: Vec::new(),
            track_ended: None,
            stopped: false,
        }));
        let weak = Rc::downgrade(&inner);
        leptos::task::spawn_local(async move {
            let choice = match weak.upgrade() {
                Some(rc) => rc.borrow().choice.clone(),
                None => return,
            };
            let (stream, used, error) = media::open_best(&choice).await;
            let Some(rc) = weak.upgrade().filter(|rc| !rc.borrow().stopped) else {
                if let Some(s) = &stream {
                    media::stop(s);
                }
                return;
            };
            {
                let mut inner = rc.borrow_mut();
                inner.view.mic.set(used.audio);
                inner.view.camera.set(used.video);
                inner.view.media_error.set(error.map(|e| e.message()));
                show(&inner.view.local_video, stream.as_ref(), None);
                inner.local = stream;
            }
            watch_tracks(&rc);
            let media = media_state(&rc.borrow());
            feed(&rc, Input::Media(media));
            open_socket(&rc, signal_url);
            watch_window(&rc);
        });
        Self { inner }
    }

    /// Sends a chat message (its text already checked): shown as sending until the server
    /// acknowledges it, sent again after a reconnect until it does.
    pub fn send_chat(&self, text: String) {
        let inner = self.inner.borrow();
        let id = new_session();
        inner
            .view
            .unsent
            .update(|u| u.push((id.clone(), text.clone())));
        if let Some(socket) = &inner.socket {
            socket.send(&SignalClient::Chat { id, text });
        }
    }

    /// Mutes or unmutes the microphone (the other side sees it).
    pub fn set_mic(&self, on: bool) {
        let media = {
            let inner = self.inner.borrow();
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
            media_state(&inner)
        };
        feed(&self.inner, Input::Media(media));
    }

    /// Turns the camera off (releasing it: its light goes off) or on again, on the same
    /// sender (no renegotiation).
    pub fn set_camera(&self, on: bool) {
        if on {
            reopen(&self.inner, "video", false);
        } else {
            camera_off(&self.inner, None);
        }
    }

    /// Uses another device during the call: a camera or microphone takes the place of the one
    /// in use on the same sender (the other side sees no gap beyond the switch), a speaker plays
    /// the other member's sound from now on. The choice is remembered.
    pub fn use_device(&self, kind: media::DeviceKind, id: String) {
        {
            let mut inner = self.inner.borrow_mut();
            let choice = &mut inner.choice;
            match kind {
                media::DeviceKind::Camera => choice.camera = Some(id.clone()),
                media::DeviceKind::Microphone => choice.microphone = Some(id.clone()),
                media::DeviceKind::Speaker => choice.speaker = Some(id.clone()),
            }
            choice.save();
        }
        match kind {
            media::DeviceKind::Camera => {
                // A camera that is off stays off: the next "on" uses the new one.
                if self.inner.borrow().view.camera.get_untracked() {
                    reopen(&self.inner, "video", true);
                }
            }
            media::DeviceKind::Microphone => reopen(&self.inner, "audio", true),
            media::DeviceKind::Speaker => use_speaker(&self.inner.borrow().view.remote_video, &id),
        }
    }

    /// The devices chosen now (for the pickers).
    pub fn choice(&self) -> DeviceChoice {
        self.inner.borrow().choice.clone()
    }

    /// Plays the other member's video after a tap (the browser refused to start it alone).
    pub fn play_remote(&self) {
        let inner = self.inner.borrow();
        if let Some(v) = inner.view.remote_video.get_untracked() {
            play(v.as_ref(), Some(inner.view.needs_tap));
        }
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

/// Opens the chosen device of `kind` (`audio` or `video`) anew and sends it in place of what
/// the page sends of that kind now (`replaceTrack`: no renegotiation); the old track stops. A
/// microphone keeps its muted state; a camera comes on. `exact`: the device was picked just now
/// (see [`media::open_with`]).
fn reopen(rc: &Rc<RefCell<Inner>>, kind: &'static str, exact: bool) {
    let view = rc.borrow().view;
    if view.switching.get_untracked() {
        return;
    }
    view.switching.set(true);
    let choice = DeviceChoice {
        audio: kind == "audio",
        video: kind == "video",
        ..rc.borrow().choice.clone()
    };
    let rc = rc.clone();
    leptos::task::spawn_local(async move {
        let opened = media::open_with(&choice, exact).await;
        view.switching.try_set(false);
        let media = {
            let mut inner = rc.borrow_mut();
            if inner.stopped {
                if let Ok(Some(s)) = &opened {
                    media::stop(s);
                }
                return;
            }
            let track = match opened {
                Ok(Some(s)) => tracks(&s, kind).into_iter().next(),
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
                        inner.local = Some(Clone::clone(&l));
                        if let Some(peer) = &inner.peer {
                            peer.use_local(&l);
                        }
                        l
                    }
                    Err(_) => return,
                },
            };
            let old = tracks(&local, kind);
            for t in &old {
                t.set_onended(None);
                local.remove_track(t);
            }
            local.add_track(&track);
            // The old device stops once the new one is on the sender (not before: see
            // `replace_track_then`).
            let stop_old = {
                let old = old.clone();
                move || old.iter().for_each(MediaStreamTrack::stop)
            };
            match &inner.peer {
                Some(peer) => peer.replace_track_then(kind, Some(&track), stop_old),
                None => stop_old(),
            }
            if kind == "video" {
                show(&inner.view.local_video, Some(&local), None);
                inner.view.camera.set(true);
            } else {
                // A muted microphone stays muted; one that was not there is on.
                let on = old.is_empty() || inner.view.mic.get_untracked();
                track.set_enabled(on);
                inner.view.mic.set(on);
            }
            inner.view.media_error.set(None);
            media_state(&inner)
        };
        watch_tracks(&rc);
        feed(&rc, Input::Media(media));
    });
}

/// The camera goes off: by a press, or because the device went away (`lost`: the words that
/// say so). Its track stops and the sender sends nothing.
fn camera_off(rc: &Rc<RefCell<Inner>>, lost: Option<&str>) {
    let media = {
        let inner = rc.borrow();
        if inner.stopped {
            return;
        }
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
        if let Some(lost) = lost {
            inner.view.media_error.set(Some(lost.to_string()));
        }
        media_state(&inner)
    };
    feed(rc, Input::Media(media));
}

/// Listens for our tracks ending without us (a camera unplugged, a microphone taken away by the
/// system): said in words, the camera shown off, and another device one press away.
fn watch_tracks(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    let callback = {
        let mut inner = rc.borrow_mut();
        let ended = inner.track_ended.get_or_insert_with(|| {
            Closure::new(move |e: web_sys::Event| {
                let Some(rc) = weak.upgrade() else { return };
                let kind = e
                    .target()
                    .and_then(|t| t.dyn_into::<MediaStreamTrack>().ok())
                    .map(|t| t.kind());
                match kind.as_deref() {
                    Some("video") => camera_off(&rc, Some(t("media.camera_lost"))),
                    Some("audio") => {
                        let media = {
                            let inner = rc.borrow();
                            inner.view.mic.set(false);
                            let lost = t("media.microphone_lost").to_string();
                            inner.view.media_error.set(Some(lost));
                            media_state(&inner)
                        };
                        feed(&rc, Input::Media(media));
                    }
                    _ => {}
                }
            })
        });
        ended.as_ref().unchecked_ref::<js_sys::Function>().clone()
    };
    if let Some(local) = &rc.borrow().local {
        for track in local.get_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                track.set_onended(Some(&callback));
            }
        }
    }
}

fn stop(inner: &mut Inner) {
    if inner.stopped {
        return;
    }
    inner.stopped = true;
    // Gone for good, not a blip: the other page hears it at once.
    if let Some(socket) = inner.socket.take() {
        let _ = socket.send(&SignalClient::Bye);
    }
    inner.peer = None;
    inner.stats = None;
    inner.timers.clear();
    if let Some(w) = web_sys::window() {
        for (name, listener) in inner.listeners.drain(..) {
            let _ = w.remove_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
        }
    }
    if let Some(local) = inner.local.take() {
        for track in local.get_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                track.set_onended(None);
            }
        }
        media::stop(&local);
    }
    inner.track_ended = None;
    show(&inner.view.local_video, None, None);
    show(&inner.view.remote_video, None, Some(inner.view.needs_tap));
    inner.view.quality.try_set(None);
}

fn media_state(inner: &Inner) -> MediaState {
    let has = |kind| {
        inner.local.as_ref().is_some_and(|l| {
            tracks(l, kind)
                .iter()
                .any(|t| t.ready_state() == web_sys::MediaStreamTrackState::Live)
        })
    };
    MediaState {
        audio: has("audio") && inner.view.mic.get_untracked(),
        video: has("video") && inner.view.camera.get_untracked(),
    }
}

fn open_socket(rc: &Rc<RefCell<Inner>>, url: String) {
    let weak = Rc::downgrade(rc);
    let hello_of = Rc::downgrade(rc);
    let socket = SignalSocket::open(
        url,
        move || {
            hello_of
                .upgrade()
                .map(|rc| {
                    let inner = rc.borrow();
                    let mut hello = inner.machine.hello();
                    if let SignalClient::Hello { chat, .. } = &mut hello {
                        *chat = inner
                            .view
                            .chat
                            .with_untracked(|c| c.last().map_or(0, |m| m.seq));
                    }
                    hello
                })
                .unwrap_or(SignalClient::Bye)
        },
        move |event| {
            if let Some(rc) = weak.upgrade() {
                on_socket(&rc, event);
            }
        },
    );
    rc.borrow_mut().socket = Some(socket);
}

/// A chat message or a transcript: into the conversation; ours no longer waits.
fn on_chat(view: &CallView, messages: Vec<ChatLine>, live: bool) {
    let me = view.me.get_untracked();
    view.unsent
        .update(|u| u.retain(|(id, _)| !messages.iter().any(|m| m.id == *id)));
    // News: one of theirs numbered past everything the page had (so not seen before).
    let last = view.chat.with_untracked(|c| c.last().map_or(0, |m| m.seq));
    let news = live && messages.iter().any(|m| m.seq > last && Some(m.role) != me);
    view.chat.update(|c| {
        crate::logic::chat::take(c, messages);
    });
    if news {
        view.arrived.update(|n| *n += 1);
    }
}

fn on_socket(rc: &Rc<RefCell<Inner>>, event: SocketEvent) {
    match event {
        SocketEvent::Chat(messages, catch_up) => on_chat(&rc.borrow().view, messages, !catch_up),
        SocketEvent::Message(message) => {
            {
                let mut inner = rc.borrow_mut();
                match &message {
                    SignalServer::Welcome {
                        ice_servers,
                        relay_only,
                        role,
                        ..
                    } => {
                        inner.ice_servers = ice_servers.clone();
                        inner.relay_only = *relay_only;
                        inner.view.me.set(Some(*role));
                    }
                    SignalServer::PeerJoined { peer } => inner.view.peer_media.set(peer.media),
                    SignalServer::Media { from, media }
                        if inner.machine.peer() == Some(from.as_str()) =>
                    {
                        inner.view.peer_media.set(*media);
                    }
                    SignalServer::Error { message } => {
                        crate::debug_log!("signal: {message}");
                    }
                    _ => {}
                }
                if let SignalServer::Welcome { peer: Some(p), .. } = &message {
                    inner.view.peer_media.set(p.media);
                }
            }
            feed(rc, Input::Server(message));
        }
        SocketEvent::Up => {
            // What we wrote that the server has not acknowledged: again (it keeps one copy).
            let inner = rc.borrow();
            if let Some(socket) = &inner.socket {
                for (id, text) in inner.view.unsent.get_untracked() {
                    socket.send(&SignalClient::Chat { id, text });
                }
            }
        }
        SocketEvent::Down => feed(rc, Input::SocketDown),
        SocketEvent::Replaced => {
            let mut inner = rc.borrow_mut();
            inner.view.replaced.set(true);
            stop(&mut inner);
        }
        SocketEvent::Ended => stop(&mut rc.borrow_mut()),
    }
}

/// One event for the call's state machine, and its effects carried out. Never dropped: if the
/// page's state is being changed right now, the event is handled a moment later.
fn feed(rc: &Rc<RefCell<Inner>>, input: Input) {
    let Ok(mut inner) = rc.try_borrow_mut() else {
        let weak = Rc::downgrade(rc);
        leptos::task::spawn_local(async move {
            if let Some(rc) = weak.upgrade() {
                feed(&rc, input);
            }
        });
        return;
    };
    if inner.stopped {
        return;
    }
    let effects = inner.machine.handle(input);
    let mut unsent = Vec::new();
    let mut start_over = false;
    for effect in effects {
        match effect {
            Effect::Send(message) => {
                let sent =
                    unsent.is_empty() && inner.socket.as_ref().is_some_and(|s| s.send(&message));
                if !sent {
                    unsent.push(message);
                }
            }
            Effect::CreateConnection { peer } => create_connection(rc, &mut inner, &peer),
            Effect::CloseConnection => {
                inner.peer = None;
                inner.stats = None;
                inner.view.quality.set(None);
                show(&inner.view.remote_video, None, Some(inner.view.needs_tap));
            }
            Effect::ToConnection(message) => {
                if let Some(peer) = &inner.peer {
                    peer.handle(message);
                }
            }
            Effect::RestartIce => {
                crate::debug_log!("call: restarting ICE");
                if let Some(peer) = &inner.peer {
                    peer.restart();
                }
            }
            Effect::StartOver => start_over = true,
            Effect::SetTimer(timer, ms) => {
                let weak = Rc::downgrade(rc);
                let timeout = Timeout::new(ms, move || {
                    if let Some(rc) = weak.upgrade() {
                        feed(&rc, Input::Timer(timer));
                    }
                });
                inner.timers.retain(|(t, _)| *t != timer);
                inner.timers.push((timer, timeout));
            }
            Effect::CancelTimer(timer) => inner.timers.retain(|(t, _)| *t != timer),
        }
    }
    if !unsent.is_empty() {
        // The socket went down under us: the machine keeps them for the next welcome.
        inner.machine.unsent(unsent);
    }
    inner.view.presence.set(inner.machine.presence());
    inner.view.link.set(inner.machine.link());
    if start_over {
        crate::debug_log!("call: the connection did not come back; starting over");
        inner.machine.started_over(new_session());
        inner.socket = None;
        let url = inner.signal_url.clone();
        drop(inner);
        open_socket(rc, url);
    }
}

fn create_connection(rc: &Rc<RefCell<Inner>>, inner: &mut Inner, session: &str) {
    inner.peer = None;
    show(&inner.view.remote_video, None, Some(inner.view.needs_tap));
    let weak = Rc::downgrade(rc);
    let made = Peer::new(
        &inner.ice_servers,
        inner.relay_only,
        inner.machine.polite(),
        session,
        inner.local.as_ref(),
        move |event| on_peer_event(&weak, event),
    );
    match made {
        Ok(peer) => {
            inner.peer = Some(peer);
            start_stats(rc, inner);
        }
        Err(e) => peer::log_error("could not start the connection", &e),
    }
}

/// What the connection reports.
fn on_peer_event(weak: &std::rc::Weak<RefCell<Inner>>, event: PeerEvent) {
    let Some(rc) = weak.upgrade() else { return };
    match event {
        PeerEvent::Signal(message) => feed(&rc, Input::FromConnection(message)),
        PeerEvent::State(state) => {
            crate::debug_log!("call: connection {state:?}");
            feed(&rc, Input::Conn(state))
        }
        PeerEvent::RemoteStream(stream) => {
            let Ok(inner) = rc.try_borrow() else {
                let weak = weak.clone();
                leptos::task::spawn_local(async move {
                    on_peer_event(&weak, PeerEvent::RemoteStream(stream))
                });
                return;
            };
            show(
                &inner.view.remote_video,
                Some(&stream),
                Some(inner.view.needs_tap),
            );
            if let Some(speaker) = &inner.choice.speaker {
                use_speaker(&inner.view.remote_video, speaker);
            }
        }
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
            let Some(mut sample) = sample.await else {
                return;
            };
            let mut inner = rc.borrow_mut();
            if !inner.view.peer_media.get_untracked().video {
                // Their camera is off: no frames is what is expected, not a poor link.
                sample.fps = None;
            }
            let quality = assess(inner.last_sample.as_ref(), &sample);
            inner.last_sample = Some(sample);
            inner.view.quality.try_set(Some(quality));
        });
    }));
}

/// The network coming back is news for the machine (an ICE restart if the link is down), and a
/// page that closes says goodbye, so the other member hears at once that it left rather than
/// after the grace period for a dropped connection.
fn watch_window(rc: &Rc<RefCell<Inner>>) {
    let Some(w) = web_sys::window() else { return };
    let weak = Rc::downgrade(rc);
    let online = Listener::new(move |_| {
        if let Some(rc) = weak.upgrade() {
            feed(&rc, Input::Online);
        }
    });
    let weak = Rc::downgrade(rc);
    let pagehide = Listener::new(move |_| {
        if let Some(rc) = weak.upgrade()
            && let Some(socket) = &rc.borrow().socket
        {
            let _ = socket.send(&SignalClient::Bye);
        }
    });
    let hidden = rc.borrow().view.hidden;
    hidden.set(document().hidden());
    // `visibilitychange` is fired at the document and bubbles to the window.
    let visibility = Listener::new(move |_| {
        hidden.try_set(document().hidden());
    });
    let mut inner = rc.borrow_mut();
    for (name, listener) in [
        ("online", online),
        ("pagehide", pagehide),
        ("visibilitychange", visibility),
    ] {
        let _ = w.add_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
        inner.listeners.push((name, listener));
    }
}

/// Who the other member is, in words.
pub fn other_side(role: Option<Role>) -> Role {
    match role {
        Some(Role::Specialist) => Role::Patient,
        _ => Role::Specialist,
    }
}
