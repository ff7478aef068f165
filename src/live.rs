//! Staying live: one reconnecting engine for every connection the app keeps open — the pages'
//! event streams (`EventSource`), the specialist's notice channel and the call's signal socket
//! (`WebSocket`) — and [`use_live`], the Leptos hook pages use to hold one.
//!
//! Written by hand on web-sys rather than taken from a hook library (leptos-use's
//! `use_event_source` / `use_websocket`) because the behaviour is the point and those do not
//! have it: the browser's own SSE retries first; after it gives up (or fails repeatedly), or a
//! socket closes, capped exponential backoff with jitter; polling with an adaptive interval
//! meanwhile; back to live as soon as it works; at once when the tab becomes visible or the
//! network returns; SSE events applied in id order with duplicates dropped; an async step
//! before each attempt (a token), a handshake before a socket counts as live, close codes
//! that end the connection for good, and a connection that has heard nothing (not even the
//! server's heartbeat) for too long treated as dropped. The pure parts (schedule, ordering)
//! live in `logic/`.

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    rc::{Rc, Weak},
};

use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{CloseEvent, EventSource, MessageEvent, WebSocket};

use crate::logic::{
    backoff::{Backoff, FAILURES_BEFORE_POLLING, PollInterval},
    events::{EventGate, parse_id},
};

/// What the connection indicator shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting,
    Offline,
}

impl Connection {
    /// The catalogue key of what the indicator says.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "conn.connecting",
            Self::Live => "conn.live",
            Self::Reconnecting => "conn.reconnecting",
            Self::Offline => "conn.offline",
        }
    }

    pub fn class(self) -> &'static str {
        match self {
            Self::Connecting | Self::Reconnecting => "connection reconnecting",
            Self::Live => "connection live",
            Self::Offline => "connection offline",
        }
    }
}

/// A future the engine awaits in the page (not `Send`: it holds browser objects).
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// A poll of the resource behind the stream: `Ok(true)` when it changed something.
pub type PollFuture = LocalFuture<Result<bool, ()>>;

/// What happens after a failed attempt or a closed socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Try again after the backoff delay.
    Retry,
    /// Stop for good (the state becomes `Offline`).
    Stop,
}

/// What the engine connects with.
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    /// Server-sent events with these event names (`message` is the unnamed one). The first event
    /// of each connection is a snapshot; later ones apply only in id order, once.
    EventSource { events: &'static [&'static str] },
    /// A WebSocket; every text frame is a `message`.
    WebSocket,
}

/// Handles one message: the handle, the event name and the data.
pub type MessageHandler = Rc<dyn Fn(&LiveHandle, &str, &str)>;
/// Prepares an attempt.
pub type Prepare = Rc<dyn Fn() -> LocalFuture<Result<(), After>>>;
/// Runs when the connection opens.
pub type OpenHandler = Rc<dyn Fn(&LiveHandle)>;
/// Decides what a socket's close code means.
pub type CloseHandler = Rc<dyn Fn(&LiveHandle, u16) -> After>;

/// How to stay connected and what to do with what arrives. Every field but `on_message` has a
/// default (`..Default::default()`): an `EventSource` listening for `message`, no preparation,
/// nothing sent on open, every close retried, live as soon as it opens, no polling.
#[derive(Clone)]
pub struct LiveOptions {
    /// Default: `EventSource` with the unnamed `message` event.
    pub transport: Transport,
    /// One message: the handle, the event name and the data. Called in id order only (SSE); the
    /// handler may close the connection or leave the page.
    pub on_message: MessageHandler,
    /// Runs before every attempt (e.g. fetching a token); its error says whether to try again.
    /// Default: none.
    pub prepare: Option<Prepare>,
    /// Runs when the connection opens (e.g. sending a hello). Default: none.
    pub on_open: Option<OpenHandler>,
    /// A socket closed with this code (0 when unknown): try again or stop. Runs also for the
    /// final close the engine itself does not make. Default: always retry.
    pub on_close: Option<CloseHandler>,
    /// The connection counts as live only once a handler calls [`LiveHandle::set_live`] (after
    /// a handshake); until then it shows as connecting. Default: false, live on open.
    pub live_after_handshake: bool,
    /// Fetches the resource while the connection is down; `Ok(true)` when it changed something
    /// (polls then come faster). Default: no polling.
    pub poll: Option<Rc<dyn Fn() -> PollFuture>>,
    /// An open connection that hears nothing for this long (no message and no heartbeat) is
    /// taken for dropped: closed, shown as reconnecting, and tried again. Default: two and a
    /// half of the server's heartbeat intervals ([`SILENCE_MS`]).
    pub silence_ms: u32,
}

/// How long a connection may hear nothing before it counts as dropped: the server sends a
/// heartbeat after [`callqueue_protocol::HEARTBEAT_SECS`] of quiet, so this is two and a half
/// heartbeats missed.
pub const SILENCE_MS: u32 = callqueue_protocol::HEARTBEAT_SECS as u32 * 2_500;

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            transport: Transport::EventSource {
                events: &["message"],
            },
            on_message: Rc::new(|_, _, _| {}),
            prepare: None,
            on_open: None,
            on_close: None,
            live_after_handshake: false,
            poll: None,
            silence_ms: SILENCE_MS,
        }
    }
}

#[cfg(feature = "test-hooks")]
thread_local! {
    static OPEN_STREAMS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many live connections exist: zero once every page that opened one is gone. Counted in
/// test builds only (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
pub fn open_streams() -> usize {
    OPEN_STREAMS.with(std::cell::Cell::get)
}

type Listener = Closure<dyn FnMut(web_sys::Event)>;

enum Channel {
    Stream(EventSource),
    Socket(WebSocket),
}

impl Channel {
    fn target(&self) -> &web_sys::EventTarget {
        match self {
            Self::Stream(s) => s,
            Self::Socket(s) => s,
        }
    }
}

struct Inner {
    url: String,
    options: LiveOptions,
    /// Where the state is shown, if anywhere.
    shown: Option<RwSignal<Connection>>,
    state: Connection,
    channel: Option<Channel>,
    channel_listeners: Vec<(&'static str, Listener)>,
    window_listeners: Vec<(&'static str, Listener)>,
    gate: EventGate,
    first_since_open: bool,
    /// Bumped on every attempt, so a preparation that finishes late is ignored.
    attempt: u32,
    failures: u32,
    backoff: Backoff,
    poll: PollInterval,
    polling: bool,
    poll_generation: u32,
    reconnect_timer: Option<Timeout>,
    poll_timer: Option<Timeout>,
    /// Runs out when the open connection has heard nothing for `silence_ms`.
    silence_timer: Option<Timeout>,
    closed: bool,
}

/// What handlers get: send on the connection, mark it live, or close it. Holds no strong
/// reference, so it does nothing once the connection is gone.
#[derive(Clone)]
pub struct LiveHandle(Weak<RefCell<Inner>>);

impl LiveHandle {
    /// Sends a text frame on an open socket; false when there is none (the frame is lost: a
    /// protocol on top says hello again on every open).
    pub fn send(&self, text: &str) -> bool {
        let Some(rc) = self.0.upgrade() else {
            return false;
        };
        let inner = rc.borrow();
        match &inner.channel {
            Some(Channel::Socket(s)) if s.ready_state() == WebSocket::OPEN => {
                s.send_with_str(text).is_ok()
            }
            _ => false,
        }
    }

    /// The handshake finished: the connection is live.
    pub fn set_live(&self) {
        if let Some(rc) = self.0.upgrade() {
            went_live(&mut rc.borrow_mut());
        }
    }

    /// Stops for good.
    pub fn close(&self) {
        if let Some(rc) = self.0.upgrade() {
            close(&mut rc.borrow_mut());
        }
    }
}

/// One live connection; dropping it (or [`Live::close`]) stops everything it started.
pub struct Live {
    inner: Rc<RefCell<Inner>>,
}

impl Live {
    /// Connects to `url` now; `shown`, if given, follows the connection's state.
    pub fn connect(url: String, options: LiveOptions, shown: Option<RwSignal<Connection>>) -> Self {
        let inner = Rc::new(RefCell::new(Inner {
            url,
            options,
            shown,
            state: Connection::Connecting,
            channel: None,
            channel_listeners: Vec::new(),
            window_listeners: Vec::new(),
            gate: EventGate::default(),
            first_since_open: true,
            attempt: 0,
            failures: 0,
            backoff: Backoff::default(),
            poll: PollInterval::default(),
            polling: false,
            poll_generation: 0,
            reconnect_timer: None,
            poll_timer: None,
            silence_timer: None,
            closed: false,
        }));
        if let Some(shown) = shown {
            shown.try_set(Connection::Connecting);
        }
        #[cfg(feature = "test-hooks")]
        OPEN_STREAMS.with(|n| n.set(n.get() + 1));
        add_window_listeners(&inner);
        attempt(&inner);
        Self { inner }
    }

    pub fn handle(&self) -> LiveHandle {
        LiveHandle(Rc::downgrade(&self.inner))
    }

    /// See [`LiveHandle::send`].
    pub fn send(&self, text: &str) -> bool {
        self.handle().send(text)
    }

    /// Stops the connection, the timers and the listeners.
    pub fn close(&self) {
        close(&mut self.inner.borrow_mut());
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.close();
    }
}

fn close(inner: &mut Inner) {
    if inner.closed {
        return;
    }
    inner.closed = true;
    close_channel(inner);
    inner.reconnect_timer = None;
    inner.poll_timer = None;
    inner.polling = false;
    if let Some(window) = web_sys::window() {
        for (name, listener) in inner.window_listeners.drain(..) {
            let target: &web_sys::EventTarget = if name == "visibilitychange" {
                &document()
            } else {
                &window
            };
            let _ =
                target.remove_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
        }
    }
    #[cfg(feature = "test-hooks")]
    OPEN_STREAMS.with(|n| n.set(n.get().saturating_sub(1)));
}

/// Closes the current stream or socket, if any. (A listener dropped while it runs is freed by
/// wasm-bindgen when it returns.)
fn close_channel(inner: &mut Inner) {
    inner.silence_timer = None;
    if let Some(channel) = inner.channel.take() {
        for (name, listener) in inner.channel_listeners.drain(..) {
            let _ = channel
                .target()
                .remove_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
        }
        match channel {
            Channel::Stream(s) => s.close(),
            Channel::Socket(s) => {
                let _ = s.close();
            }
        }
    }
}

fn went_live(inner: &mut Inner) {
    if inner.closed {
        return;
    }
    inner.failures = 0;
    inner.backoff.reset();
    inner.polling = false;
    inner.poll_timer = None;
    inner.reconnect_timer = None;
    set_state(inner, Connection::Live);
}

fn listener(weak: &Weak<RefCell<Inner>>, f: fn(&Rc<RefCell<Inner>>, web_sys::Event)) -> Listener {
    let weak = weak.clone();
    Closure::new(move |event: web_sys::Event| {
        if let Some(inner) = weak.upgrade() {
            f(&inner, event);
        }
    })
}

fn online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

/// What a connection that is down shows.
fn down() -> Connection {
    if online() {
        Connection::Reconnecting
    } else {
        Connection::Offline
    }
}

fn add_window_listeners(rc: &Rc<RefCell<Inner>>) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let weak = Rc::downgrade(rc);
    let wake = |inner: &Rc<RefCell<Inner>>, _| reconnect_now(inner);
    let went_offline = |inner: &Rc<RefCell<Inner>>, _| {
        set_state(&mut inner.borrow_mut(), Connection::Offline);
    };
    let visible = |inner: &Rc<RefCell<Inner>>, _| {
        if document().visibility_state() == web_sys::VisibilityState::Visible {
            reconnect_now(inner);
        }
    };
    let mut inner = rc.borrow_mut();
    for (name, f) in [
        ("online", wake as fn(&Rc<RefCell<Inner>>, web_sys::Event)),
        ("offline", went_offline),
        ("visibilitychange", visible),
    ] {
        let l = listener(&weak, f);
        let target: &web_sys::EventTarget = if name == "visibilitychange" {
            &document()
        } else {
            &window
        };
        let _ = target.add_event_listener_with_callback(name, l.as_ref().unchecked_ref());
        inner.window_listeners.push((name, l));
    }
}

/// Shows that an attempt is under way (unless the connection is live).
fn show_attempt(inner: &mut Inner) {
    if inner.state == Connection::Live {
        return;
    }
    let state = if !online() {
        Connection::Offline
    } else if inner.failures == 0 && inner.gate.last_id().is_none() {
        Connection::Connecting
    } else {
        Connection::Reconnecting
    };
    set_state(inner, state);
}

/// One attempt: the preparation, if any, then the connection.
fn attempt(rc: &Rc<RefCell<Inner>>) {
    let (prepare, number) = {
        let mut inner = rc.borrow_mut();
        if inner.closed {
            return;
        }
        inner.attempt = inner.attempt.wrapping_add(1);
        show_attempt(&mut inner);
        (inner.options.prepare.clone(), inner.attempt)
    };
    let Some(prepare) = prepare else {
        open(rc);
        return;
    };
    let future = prepare();
    let weak = Rc::downgrade(rc);
    leptos::task::spawn_local(async move {
        let prepared = future.await;
        let Some(rc) = weak.upgrade() else { return };
        if rc.borrow().closed || rc.borrow().attempt != number {
            return;
        }
        match prepared {
            Ok(()) => open(&rc),
            Err(After::Retry) => failed(&rc),
            Err(After::Stop) => stop(&rc),
        }
    });
}

/// Opens a new stream or socket.
fn open(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    let mut inner = rc.borrow_mut();
    if inner.closed {
        return;
    }
    close_channel(&mut inner);
    // Every stream starts with the whole state, so a reconnect needs no resume id.
    let (channel, mut listeners) = match inner.options.transport {
        Transport::EventSource { events } => {
            let Ok(source) = EventSource::new(&inner.url) else {
                drop(inner);
                failed(rc);
                return;
            };
            let mut listeners = vec![
                ("error", listener(&weak, on_stream_error)),
                (
                    callqueue_protocol::HEARTBEAT_EVENT,
                    listener(&weak, |rc, _| heard(rc)),
                ),
            ];
            for name in events {
                listeners.push((name, listener(&weak, on_message)));
            }
            (Channel::Stream(source), listeners)
        }
        Transport::WebSocket => {
            let Ok(socket) = WebSocket::new(&inner.url) else {
                drop(inner);
                failed(rc);
                return;
            };
            let listeners = vec![
                ("message", listener(&weak, on_message)),
                ("close", listener(&weak, on_socket_close)),
            ];
            (Channel::Socket(socket), listeners)
        }
    };
    listeners.push(("open", listener(&weak, on_open)));
    for (name, l) in &listeners {
        let _ = channel
            .target()
            .add_event_listener_with_callback(name, l.as_ref().unchecked_ref());
    }
    inner.channel_listeners = listeners;
    inner.channel = Some(channel);
}

/// The open connection heard something: it is alive for another `silence_ms`.
fn heard(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    let mut inner = rc.borrow_mut();
    if inner.closed || inner.channel.is_none() {
        return;
    }
    let ms = inner.options.silence_ms;
    inner.silence_timer = Some(Timeout::new(ms, move || {
        if let Some(rc) = weak.upgrade() {
            went_silent(&rc);
        }
    }));
}

/// Nothing came for too long: the connection is dead even if the browser has not noticed
/// (a network hand-over can leave a socket open that carries nothing).
fn went_silent(rc: &Rc<RefCell<Inner>>) {
    let socket = {
        let mut inner = rc.borrow_mut();
        if inner.closed || inner.channel.is_none() {
            return;
        }
        crate::debug_log!(
            "live: nothing heard for {} ms; reconnecting",
            inner.options.silence_ms
        );
        let socket = matches!(inner.channel, Some(Channel::Socket(_)));
        close_channel(&mut inner);
        socket
    };
    if socket {
        // As a connection lost without a close frame: 1006.
        socket_closed(rc, 1006);
    } else {
        rc.borrow_mut().failures += 1;
        failed(rc);
    }
}

fn on_open(rc: &Rc<RefCell<Inner>>, _: web_sys::Event) {
    heard(rc);
    let on_open = {
        let mut inner = rc.borrow_mut();
        inner.first_since_open = true;
        if !inner.options.live_after_handshake {
            went_live(&mut inner);
        }
        inner.options.on_open.clone()
    };
    if let Some(on_open) = on_open {
        on_open(&LiveHandle(Rc::downgrade(rc)));
    }
}

fn on_message(rc: &Rc<RefCell<Inner>>, event: web_sys::Event) {
    heard(rc);
    let Ok(event) = event.dyn_into::<MessageEvent>() else {
        return;
    };
    let Some(data) = event.data().as_string() else {
        return;
    };
    if data == callqueue_protocol::HEARTBEAT_FRAME {
        return;
    }
    let handler = {
        let mut inner = rc.borrow_mut();
        if matches!(inner.options.transport, Transport::EventSource { .. }) {
            let snapshot = std::mem::replace(&mut inner.first_since_open, false);
            if !inner
                .gate
                .accept(parse_id(&event.last_event_id()), snapshot)
            {
                return;
            }
        }
        inner.options.on_message.clone()
    };
    // The handler may navigate away and close this connection: hold no borrow while it runs.
    handler(&LiveHandle(Rc::downgrade(rc)), &event.type_(), &data);
}

fn on_stream_error(rc: &Rc<RefCell<Inner>>, _: web_sys::Event) {
    let gave_up = {
        let mut inner = rc.borrow_mut();
        if inner.closed {
            return;
        }
        inner.failures += 1;
        set_state(&mut inner, down());
        let browser_gave_up = match &inner.channel {
            Some(Channel::Stream(s)) => s.ready_state() == EventSource::CLOSED,
            _ => true,
        };
        browser_gave_up || inner.failures >= FAILURES_BEFORE_POLLING
    };
    if gave_up {
        failed(rc);
    }
}

fn on_socket_close(rc: &Rc<RefCell<Inner>>, event: web_sys::Event) {
    let code = event.dyn_ref::<CloseEvent>().map_or(0, |c| c.code());
    socket_closed(rc, code);
}

/// The socket closed with `code`: the handler decides whether to try again.
fn socket_closed(rc: &Rc<RefCell<Inner>>, code: u16) {
    let on_close = {
        let inner = rc.borrow();
        if inner.closed {
            return;
        }
        inner.options.on_close.clone()
    };
    let after = on_close.map_or(After::Retry, |f| f(&LiveHandle(Rc::downgrade(rc)), code));
    match after {
        After::Retry => {
            rc.borrow_mut().failures += 1;
            failed(rc);
        }
        After::Stop => stop(rc),
    }
}

/// The attempt failed or the connection dropped: poll meanwhile, try again later.
fn failed(rc: &Rc<RefCell<Inner>>) {
    {
        let mut inner = rc.borrow_mut();
        if inner.closed {
            return;
        }
        close_channel(&mut inner);
        set_state(&mut inner, down());
    }
    start_polling(rc);
    schedule_reconnect(rc);
}

fn stop(rc: &Rc<RefCell<Inner>>) {
    let mut inner = rc.borrow_mut();
    set_state(&mut inner, Connection::Offline);
    close(&mut inner);
}

fn set_state(inner: &mut Inner, state: Connection) {
    if inner.state != state {
        inner.state = state;
        if let Some(shown) = inner.shown {
            shown.try_set(state);
        }
    }
}

fn schedule_reconnect(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    let mut inner = rc.borrow_mut();
    if inner.closed {
        return;
    }
    let delay = inner.backoff.next_delay_ms(js_sys::Math::random());
    inner.reconnect_timer = Some(Timeout::new(delay, move || {
        if let Some(rc) = weak.upgrade() {
            attempt(&rc);
        }
    }));
}

/// The tab came back or the network did: try at once, from the first backoff step.
fn reconnect_now(rc: &Rc<RefCell<Inner>>) {
    let should = {
        let mut inner = rc.borrow_mut();
        let down = inner.state != Connection::Live || inner.channel.is_none();
        if down && !inner.closed {
            inner.backoff.reset();
            inner.reconnect_timer = None;
        }
        down && !inner.closed
    };
    if should {
        attempt(rc);
        poll_once(rc);
    }
}

fn start_polling(rc: &Rc<RefCell<Inner>>) {
    {
        let mut inner = rc.borrow_mut();
        if inner.polling || inner.closed || inner.options.poll.is_none() {
            return;
        }
        inner.polling = true;
        inner.poll = PollInterval::default();
    }
    poll_once(rc);
}

/// One poll now, then the next at the adaptive interval while the connection stays down.
fn poll_once(rc: &Rc<RefCell<Inner>>) {
    let poll = {
        let mut inner = rc.borrow_mut();
        if !inner.polling || inner.closed {
            return;
        }
        inner.poll_generation += 1;
        inner.poll_timer = None;
        inner.options.poll.clone()
    };
    let Some(poll) = poll else { return };
    let future = poll();
    let generation = rc.borrow().poll_generation;
    let weak = Rc::downgrade(rc);
    leptos::task::spawn_local(async move {
        let result = future.await;
        let Some(rc) = weak.upgrade() else { return };
        let next_weak = Rc::downgrade(&rc);
        let mut inner = rc.borrow_mut();
        // A newer poll started meanwhile (tab became visible): let it schedule the next one.
        if !inner.polling || inner.closed || inner.poll_generation != generation {
            return;
        }
        let delay = match result {
            Ok(changed) => inner.poll.after_poll(changed),
            Err(()) => inner.poll.current_ms,
        };
        inner.poll_timer = Some(Timeout::new(delay, move || {
            if let Some(rc) = next_weak.upgrade() {
                poll_once(&rc);
            }
        }));
    });
}

/// What [`use_live`] gives the page; `Copy`, so closures in the view can hold it.
#[derive(Clone, Copy)]
pub struct UseLiveReturn {
    /// The connection's state, for the indicator.
    pub state: Signal<Connection>,
    live: StoredValue<Option<Live>, LocalStorage>,
}

impl UseLiveReturn {
    /// Sends a text frame on the open socket, if there is one.
    pub fn send(&self, text: &str) -> bool {
        self.live
            .try_with_value(|l| l.as_ref().is_some_and(|l| l.send(text)))
            .unwrap_or(false)
    }

    /// Stops the connection for good (leaving the page does it too).
    pub fn close(&self) {
        self.live.try_update_value(|l| l.take());
    }
}

/// Keeps a live connection to `url` for as long as the calling component lives: connects when
/// the url is known (`Some`), moves when it changes, stops when it becomes `None` and when the
/// component goes (the hook owns its cleanup).
pub fn use_live(url: impl Into<Signal<Option<String>>>, options: LiveOptions) -> UseLiveReturn {
    let url = url.into();
    let state = RwSignal::new(Connection::Connecting);
    let live = StoredValue::new_local(None::<Live>);
    Effect::new(move |previous: Option<Option<String>>| {
        let next = url.get();
        if previous.as_ref() != Some(&next) {
            let options = options.clone();
            live.try_update_value(|l| {
                // The old connection goes before the new one starts.
                *l = None;
                *l = next.clone().map(|u| Live::connect(u, options, Some(state)));
            });
        }
        next
    });
    on_cleanup(move || {
        live.try_update_value(|l| l.take());
    });
    UseLiveReturn {
        state: state.into(),
        live,
    }
}
