//! The page's end of the call's signal socket: says hello on every (re)connect, hands each
//! message on, reconnects with backoff after a drop, and stops for good when the call ends or
//! another tab takes it over.

use std::{cell::RefCell, rc::Rc};

use callqueue_protocol::signal::{SignalClient, SignalServer, close};
use gloo_timers::callback::Timeout;
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::logic::backoff::Backoff;

/// What the socket reports.
pub enum SocketEvent {
    Message(SignalServer),
    /// Connected (again); `hello` was sent.
    Up,
    /// Dropped; trying again.
    Down,
    /// Another tab of this member took the call over: stop.
    Replaced,
    /// The call is over: stop.
    Ended,
}

type Handler = Closure<dyn FnMut(web_sys::Event)>;

struct Inner {
    url: String,
    hello: Box<dyn Fn() -> SignalClient>,
    on_event: Rc<dyn Fn(SocketEvent)>,
    socket: Option<WebSocket>,
    handlers: Vec<Handler>,
    backoff: Backoff,
    timer: Option<Timeout>,
    closed: bool,
}

/// An open signal socket; dropping it closes it and stops reconnecting.
pub struct SignalSocket {
    inner: Rc<RefCell<Inner>>,
}

impl SignalSocket {
    pub fn open(
        url: String,
        hello: impl Fn() -> SignalClient + 'static,
        on_event: impl Fn(SocketEvent) + 'static,
    ) -> Self {
        let inner = Rc::new(RefCell::new(Inner {
            url,
            hello: Box::new(hello),
            on_event: Rc::new(on_event),
            socket: None,
            handlers: Vec::new(),
            backoff: Backoff::default(),
            timer: None,
            closed: false,
        }));
        connect(&inner);
        Self { inner }
    }

    /// Sends a message if the socket is open (a message lost in a drop is made up for: the
    /// reconnect's hello starts a fresh negotiation).
    pub fn send(&self, message: &SignalClient) {
        let inner = self.inner.borrow();
        if let Some(socket) = inner
            .socket
            .as_ref()
            .filter(|s| s.ready_state() == WebSocket::OPEN)
        {
            let _ = socket.send_with_str(&serde_json::to_string(message).unwrap_or_default());
        }
    }
}

fn shut(inner: &mut Inner) {
    inner.timer = None;
    if let Some(socket) = inner.socket.take() {
        socket.set_onopen(None);
        socket.set_onmessage(None);
        socket.set_onclose(None);
        let _ = socket.close();
    }
    inner.handlers.clear();
}

impl Drop for SignalSocket {
    fn drop(&mut self) {
        let mut inner = self.inner.borrow_mut();
        inner.closed = true;
        shut(&mut inner);
    }
}

fn connect(rc: &Rc<RefCell<Inner>>) {
    let url = rc.borrow().url.clone();
    let Ok(socket) = WebSocket::new(&url) else {
        retry_later(rc);
        return;
    };
    let weak = Rc::downgrade(rc);
    let on_open: Handler = {
        let weak = weak.clone();
        let socket = socket.clone();
        Closure::new(move |_| {
            let Some(rc) = weak.upgrade() else { return };
            let (hello, on_event) = {
                let mut inner = rc.borrow_mut();
                inner.backoff.reset();
                ((inner.hello)(), inner.on_event.clone())
            };
            let _ = socket.send_with_str(&serde_json::to_string(&hello).unwrap_or_default());
            on_event(SocketEvent::Up);
        })
    };
    let on_message: Handler = {
        let weak = weak.clone();
        Closure::new(move |event: web_sys::Event| {
            let Some(rc) = weak.upgrade() else { return };
            let Some(text) = event
                .dyn_ref::<MessageEvent>()
                .and_then(|m| m.data().as_string())
            else {
                return;
            };
            match serde_json::from_str::<SignalServer>(&text) {
                Ok(message) => {
                    let on_event = rc.borrow().on_event.clone();
                    on_event(SocketEvent::Message(message));
                }
                Err(e) => leptos::logging::warn!("ignored a malformed signal message: {e}"),
            }
        })
    };
    let on_close: Handler = Closure::new(move |event: web_sys::Event| {
        let Some(rc) = weak.upgrade() else { return };
        let code = event.dyn_ref::<CloseEvent>().map_or(0, |c| c.code());
        // The socket is gone; its handlers stay until the next connect replaces them (this one
        // is running).
        let on_event = {
            let mut inner = rc.borrow_mut();
            inner.socket = None;
            inner.on_event.clone()
        };
        match code {
            close::REPLACED => {
                rc.borrow_mut().closed = true;
                on_event(SocketEvent::Replaced);
            }
            close::CALL_ENDED => {
                rc.borrow_mut().closed = true;
                on_event(SocketEvent::Ended);
            }
            _ => {
                on_event(SocketEvent::Down);
                retry_later(&rc);
            }
        }
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let mut inner = rc.borrow_mut();
    inner.handlers = vec![on_open, on_message, on_close];
    inner.socket = Some(socket);
}

fn retry_later(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    let mut inner = rc.borrow_mut();
    if inner.closed {
        return;
    }
    let delay = inner.backoff.next_delay_ms(js_sys::Math::random());
    inner.timer = Some(Timeout::new(delay, move || {
        if let Some(rc) = weak.upgrade() {
            connect(&rc);
        }
    }));
}
