//! The specialist's per-user WebSocket channel: token, handshake, events, reconnect.
//!
//! Built on web-sys's `WebSocket` by hand for the same reason as `live.rs`: the handshake and the
//! reconnect schedule are ours (see `logic::handshake` and `logic::backoff`).

use std::{cell::RefCell, rc::Rc};

use callqueue_protocol::{ServerMessage, UserEvent};
use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{MessageEvent, WebSocket};

use crate::{
    api,
    live::Connection,
    logic::{
        backoff::Backoff,
        handshake::{Handshake, Stage, Step},
    },
};

/// The channel's address: `ws(s)://host/api/ws` on the same origin.
pub fn ws_url() -> String {
    api::ws_url("/ws")
}

struct Inner {
    socket: Option<WebSocket>,
    handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    handshake: Handshake,
    backoff: Backoff,
    timer: Option<Timeout>,
    closed: bool,
    state: RwSignal<Connection>,
    on_event: Rc<dyn Fn(UserEvent)>,
}

/// An open channel; dropping it closes the socket and stops reconnecting.
pub struct UserChannel {
    inner: Rc<RefCell<Inner>>,
}

impl UserChannel {
    pub fn open(state: RwSignal<Connection>, on_event: impl Fn(UserEvent) + 'static) -> Self {
        let inner = Rc::new(RefCell::new(Inner {
            socket: None,
            handlers: Vec::new(),
            handshake: Handshake::default(),
            backoff: Backoff::default(),
            timer: None,
            closed: false,
            state,
            on_event: Rc::new(on_event),
        }));
        connect(&inner);
        Self { inner }
    }
}

impl Drop for UserChannel {
    fn drop(&mut self) {
        let mut inner = self.inner.borrow_mut();
        inner.closed = true;
        inner.timer = None;
        if let Some(socket) = inner.socket.take() {
            socket.set_onopen(None);
            socket.set_onmessage(None);
            socket.set_onclose(None);
            let _ = socket.close();
        }
        inner.handlers.clear();
    }
}

/// Gets a fresh token, then opens the socket; the handshake starts when it opens.
fn connect(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    leptos::task::spawn_local(async move {
        let token = api::stream_token().await;
        let Some(rc) = weak.upgrade() else { return };
        if rc.borrow().closed {
            return;
        }
        match token {
            Ok(token) => open_socket(&rc, token.token),
            Err(e) if e.status() == Some(401) => rc.borrow().state.set(Connection::Offline),
            Err(_) => retry_later(&rc),
        }
    });
}

fn open_socket(rc: &Rc<RefCell<Inner>>, token: String) {
    let Ok(socket) = WebSocket::new(&ws_url()) else {
        retry_later(rc);
        return;
    };
    let weak = Rc::downgrade(rc);
    let (handshake, first) = Handshake::start(token);
    let first = serde_json::to_string(&first).unwrap_or_default();
    let on_open = {
        let socket = socket.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            let _ = socket.send_with_str(&first);
        })
    };
    let on_message = {
        let weak = weak.clone();
        let socket = socket.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let Some(rc) = weak.upgrade() else { return };
            let Some(text) = event
                .dyn_ref::<MessageEvent>()
                .and_then(|m| m.data().as_string())
            else {
                return;
            };
            let Ok(msg) = ServerMessage::from_json(&text) else {
                leptos::logging::warn!("ignored a malformed channel message");
                return;
            };
            let step = rc.borrow_mut().handshake.on_message(msg);
            match step {
                Step::Send(reply) => {
                    let _ =
                        socket.send_with_str(&serde_json::to_string(&reply).unwrap_or_default());
                }
                Step::Ready => {
                    let mut inner = rc.borrow_mut();
                    inner.backoff.reset();
                    inner.state.set(Connection::Live);
                }
                Step::Event(event) => {
                    let handler = rc.borrow().on_event.clone();
                    handler(event);
                }
                Step::Refused(why) => leptos::logging::warn!("user channel refused: {why}"),
                Step::Nothing => {}
            }
        })
    };
    let on_close = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        if let Some(rc) = weak.upgrade() {
            rc.borrow_mut().socket = None;
            retry_later(&rc);
        }
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let mut inner = rc.borrow_mut();
    inner.handshake = handshake;
    inner.handlers = vec![on_open, on_message, on_close];
    inner.socket = Some(socket);
}

fn retry_later(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    let mut inner = rc.borrow_mut();
    if inner.closed {
        return;
    }
    if inner.handshake.stage != Stage::Refused {
        inner.state.set(Connection::Reconnecting);
    }
    let delay = inner.backoff.next_delay_ms(js_sys::Math::random());
    inner.timer = Some(Timeout::new(delay, move || {
        if let Some(rc) = weak.upgrade() {
            connect(&rc);
        }
    }));
}
