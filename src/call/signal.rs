//! The page's end of the call's signal socket, on the shared reconnecting engine (`live.rs`):
//! says hello on every (re)connect (the same session, and how many messages it has received,
//! so the server continues it), hands each message on, and stops for good when the call ends
//! or another tab takes it over.

use std::rc::Rc;

use crate::{
    live::{After, Live, LiveHandle, LiveOptions, Transport},
    logic::chat::ChatLine,
};
use callqueue_protocol::{
    Role,
    signal::{SignalClient, SignalServer, close},
};
use wasm_bindgen::{JsCast, JsValue};

/// What the socket reports.
pub enum SocketEvent {
    Message(SignalServer),
    /// Chat messages: live (`false`), or the catch-up after `welcome` (`true`).
    Chat(Vec<ChatLine>, bool),
    /// Connected (again); `hello` was sent.
    Up,
    /// Dropped; trying again.
    Down,
    /// Another tab of this member took the call over: stop.
    Replaced,
    /// The call is over: stop.
    Ended,
}

/// An open signal socket; dropping it closes it and stops reconnecting.
pub struct SignalSocket {
    live: Live,
}

impl SignalSocket {
    pub fn open(
        url: String,
        hello: impl Fn() -> SignalClient + 'static,
        on_event: impl Fn(SocketEvent) + 'static,
    ) -> Self {
        let on_event = Rc::new(on_event);
        let on_open = {
            let on_event = on_event.clone();
            Rc::new(move |link: &LiveHandle| {
                link.send(&serde_json::to_string(&hello()).unwrap_or_default());
                on_event(SocketEvent::Up);
            })
        };
        let on_message = {
            let on_event = on_event.clone();
            Rc::new(move |_: &LiveHandle, _: &str, text: &str| {
                match SignalServer::from_json(text) {
                    Ok(message) => on_event(SocketEvent::Message(message)),
                    Err(e) => match chat_from_json(text) {
                        Some((lines, catch_up)) => on_event(SocketEvent::Chat(lines, catch_up)),
                        None => leptos::logging::warn!("ignored a malformed signal message: {e}"),
                    },
                }
            })
        };
        let on_close = Rc::new(move |_: &LiveHandle, code: u16| match code {
            close::REPLACED => {
                on_event(SocketEvent::Replaced);
                After::Stop
            }
            close::CALL_ENDED => {
                on_event(SocketEvent::Ended);
                After::Stop
            }
            _ => {
                on_event(SocketEvent::Down);
                After::Retry
            }
        });
        let live = Live::connect(
            url,
            LiveOptions {
                transport: Transport::WebSocket,
                on_open: Some(on_open),
                on_message,
                on_close: Some(on_close),
                ..Default::default()
            },
            None,
        );
        Self { live }
    }

    /// Sends a message if the socket is open; false when it is not (the caller keeps it for
    /// the next connection: see `logic::call`).
    pub fn send(&self, message: &SignalClient) -> bool {
        self.live
            .send(&serde_json::to_string(message).unwrap_or_default())
    }
}

/// Reads a `chat` message (`SignalServer::Chat`) with the browser's JSON parser: what serde
/// would read, for a fraction of the download (see `SignalServer::from_json`).
fn chat_from_json(text: &str) -> Option<(Vec<ChatLine>, bool)> {
    let value = js_sys::JSON::parse(text).ok()?;
    let get = |key: &str| js_sys::Reflect::get(&value, &key.into()).ok();
    if get("type")?.as_string()? != "chat" {
        return None;
    }
    let catch_up = get("catch_up")?.is_truthy();
    Some((chat_lines(&get("messages")?)?, catch_up))
}

/// Chat messages (`ChatMessage`s) as the browser parsed them, from a `chat` message or the
/// transcript (`GET …/chat`); `None` unless it is a list. A message missing a field is left
/// out.
pub fn chat_lines(list: &JsValue) -> Option<Vec<ChatLine>> {
    let get = |o: &JsValue, key: &str| js_sys::Reflect::get(o, &key.into()).ok();
    let string = |o: &JsValue, key: &str| get(o, key)?.as_string();
    let messages = list.clone().dyn_into::<js_sys::Array>().ok()?;
    Some(
        messages
            .iter()
            .filter_map(|m| {
                Some(ChatLine {
                    seq: get(&m, "seq")?.as_f64()? as u64,
                    id: string(&m, "id")?,
                    role: Role::parse(&string(&m, "role")?)?,
                    name: string(&m, "name"),
                    text: string(&m, "text")?,
                    at: js_sys::Date::parse(&string(&m, "at")?),
                })
            })
            .collect(),
    )
}
