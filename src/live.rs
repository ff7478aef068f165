//! Staying live: our own client over the browser's `EventSource`.
//!
//! Written by hand on web-sys rather than taken from a hook library because the behaviour is the
//! point: the browser's own retries first; after it gives up (or fails repeatedly) reconnects
//! with capped exponential backoff and jitter, resuming from the last event id; polling with an
//! adaptive interval meanwhile; back to streaming as soon as it works; at once when the tab
//! becomes visible or the network returns. Events apply in id order and duplicates are dropped.
//! The pure parts (schedule, ordering) live in `logic/`.

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    rc::{Rc, Weak},
};

use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{EventSource, MessageEvent};

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
    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "Connecting…",
            Self::Live => "Live",
            Self::Reconnecting => "Reconnecting…",
            Self::Offline => "Offline",
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

/// Applies one event (its name and data); answers whether it changed what the page shows.
pub type EventHandler = Rc<dyn Fn(&str, &str) -> bool>;

/// A poll of the resource behind the stream: `Ok(true)` when it changed something.
pub type PollFuture = Pin<Box<dyn Future<Output = Result<bool, ()>>>>;

/// What to connect to and what to do with what arrives.
pub struct LiveOptions {
    /// The SSE address.
    pub url: String,
    /// Event names to listen for (`message` is the default, unnamed event).
    pub events: &'static [&'static str],
    /// Applies an event's data; answers whether it changed anything. Called in id order only.
    pub on_event: EventHandler,
    /// Fetches the resource while the stream is down.
    pub poll: Rc<dyn Fn() -> PollFuture>,
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

struct Inner {
    options: LiveOptions,
    state: RwSignal<Connection>,
    source: Option<EventSource>,
    source_listeners: Vec<(&'static str, Listener)>,
    window_listeners: Vec<(&'static str, Listener)>,
    gate: EventGate,
    first_since_open: bool,
    failures: u32,
    backoff: Backoff,
    poll: PollInterval,
    polling: bool,
    poll_generation: u32,
    reconnect_timer: Option<Timeout>,
    poll_timer: Option<Timeout>,
    closed: bool,
}

/// One live connection; dropping it (or [`Live::close`]) stops everything it started.
pub struct Live {
    inner: Rc<RefCell<Inner>>,
}

impl Live {
    /// Connects now; `state` follows the connection.
    pub fn connect(options: LiveOptions, state: RwSignal<Connection>) -> Self {
        let inner = Rc::new(RefCell::new(Inner {
            options,
            state,
            source: None,
            source_listeners: Vec::new(),
            window_listeners: Vec::new(),
            gate: EventGate::default(),
            first_since_open: true,
            failures: 0,
            backoff: Backoff::default(),
            poll: PollInterval::default(),
            polling: false,
            poll_generation: 0,
            reconnect_timer: None,
            poll_timer: None,
            closed: false,
        }));
        #[cfg(feature = "test-hooks")]
        OPEN_STREAMS.with(|n| n.set(n.get() + 1));
        add_window_listeners(&inner);
        open(&inner);
        Self { inner }
    }

    /// Stops the stream, the timers and the listeners.
    pub fn close(&self) {
        let mut inner = self.inner.borrow_mut();
        if inner.closed {
            return;
        }
        inner.closed = true;
        close_source(&mut inner);
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
                let _ = target
                    .remove_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
            }
        }
        #[cfg(feature = "test-hooks")]
        OPEN_STREAMS.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.close();
    }
}

fn close_source(inner: &mut Inner) {
    if let Some(source) = inner.source.take() {
        for (name, listener) in inner.source_listeners.drain(..) {
            let _ =
                source.remove_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
        }
        source.close();
    }
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

fn add_window_listeners(rc: &Rc<RefCell<Inner>>) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let weak = Rc::downgrade(rc);
    let wake = |inner: &Rc<RefCell<Inner>>, _| reconnect_now(inner);
    let went_offline = |inner: &Rc<RefCell<Inner>>, _| {
        let state = inner.borrow().state;
        state.set(Connection::Offline);
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

/// Opens a new `EventSource`.
fn open(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    let mut inner = rc.borrow_mut();
    if inner.closed {
        return;
    }
    close_source(&mut inner);
    // Every stream starts with the whole state, so a reconnect needs no resume id.
    let url = inner.options.url.clone();
    let Ok(source) = EventSource::new(&url) else {
        drop(inner);
        schedule_reconnect(rc);
        return;
    };
    if inner.state.get_untracked() != Connection::Live {
        let state = if online() {
            if inner.failures == 0 && inner.gate.last_id().is_none() {
                Connection::Connecting
            } else {
                Connection::Reconnecting
            }
        } else {
            Connection::Offline
        };
        inner.state.set(state);
    }
    let mut listeners = vec![
        ("open", listener(&weak, on_open)),
        ("error", listener(&weak, on_error)),
    ];
    for name in inner.options.events {
        listeners.push((name, listener(&weak, on_message)));
    }
    for (name, l) in &listeners {
        let _ = source.add_event_listener_with_callback(name, l.as_ref().unchecked_ref());
    }
    inner.source_listeners = listeners;
    inner.source = Some(source);
}

fn on_open(rc: &Rc<RefCell<Inner>>, _: web_sys::Event) {
    let mut inner = rc.borrow_mut();
    inner.failures = 0;
    inner.backoff.reset();
    inner.first_since_open = true;
    inner.polling = false;
    inner.poll_timer = None;
    inner.reconnect_timer = None;
    inner.state.set(Connection::Live);
}

fn on_message(rc: &Rc<RefCell<Inner>>, event: web_sys::Event) {
    let Ok(event) = event.dyn_into::<MessageEvent>() else {
        return;
    };
    let Some(data) = event.data().as_string() else {
        return;
    };
    let accepted = {
        let mut inner = rc.borrow_mut();
        let snapshot = std::mem::replace(&mut inner.first_since_open, false);
        inner
            .gate
            .accept(parse_id(&event.last_event_id()), snapshot)
    };
    if accepted {
        // The handler may navigate away and close this connection: hold no borrow while it runs.
        let handler = rc.borrow().options.on_event.clone();
        handler(&event.type_(), &data);
    }
}

fn on_error(rc: &Rc<RefCell<Inner>>, _: web_sys::Event) {
    let gave_up = {
        let mut inner = rc.borrow_mut();
        if inner.closed {
            return;
        }
        inner.failures += 1;
        inner.state.set(if online() {
            Connection::Reconnecting
        } else {
            Connection::Offline
        });
        let browser_gave_up = inner
            .source
            .as_ref()
            .is_none_or(|s| s.ready_state() == EventSource::CLOSED);
        browser_gave_up || inner.failures >= FAILURES_BEFORE_POLLING
    };
    if gave_up {
        {
            let mut inner = rc.borrow_mut();
            close_source(&mut inner);
        }
        start_polling(rc);
        schedule_reconnect(rc);
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
            open(&rc);
        }
    }));
}

/// The tab came back or the network did: try at once, from the first backoff step.
fn reconnect_now(rc: &Rc<RefCell<Inner>>) {
    let should = {
        let mut inner = rc.borrow_mut();
        let down = inner.state.get_untracked() != Connection::Live || inner.source.is_none();
        if down && !inner.closed {
            inner.backoff.reset();
            inner.reconnect_timer = None;
        }
        down && !inner.closed
    };
    if should {
        open(rc);
        poll_once(rc);
    }
}

fn start_polling(rc: &Rc<RefCell<Inner>>) {
    {
        let mut inner = rc.borrow_mut();
        if inner.polling || inner.closed {
            return;
        }
        inner.polling = true;
        inner.poll = PollInterval::default();
    }
    poll_once(rc);
}

/// One poll now, then the next at the adaptive interval while the stream stays down.
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
