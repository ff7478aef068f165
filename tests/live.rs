//! The live engine against connections that stay open and go quiet: a socket or event stream
//! that says nothing (not even the server's heartbeat) is taken for dropped and tried again;
//! one that keeps hearing heartbeats stays live, and the heartbeats never reach the page's
//! handler. The connections are stand-ins in the page (no server, no timing of a real network).
#![cfg(target_arch = "wasm32")]

use std::{cell::Cell, rc::Rc};

use callqueue::live::{Connection, Live, LiveOptions, Transport};
use leptos::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

mod common;

use common::{eventually, sleep};

wasm_bindgen_test_configure!(run_in_browser);

/// Stands in for `window[class]` (`WebSocket` or `EventSource`) while it lives: every
/// connection opens at once and then, if `beat_ms` is given, hears a heartbeat that often, else
/// nothing at all. Counts the connections made (`opened`).
struct Quiet {
    class: &'static str,
    original: JsValue,
}

impl Quiet {
    fn install(class: &'static str, beat_ms: Option<u32>) -> Self {
        let window = window();
        let original = js_sys::Reflect::get(&window, &class.into()).unwrap();
        let stub = js_sys::Function::new_with_args(
            "beat, frame, event",
            r#"globalThis.__quietOpened = 0;
               return class Quiet extends EventTarget {
                   static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
                   constructor(url) {
                       super();
                       this.url = url;
                       this.readyState = 0;
                       globalThis.__quietOpened++;
                       setTimeout(() => {
                           if (this.readyState === 3) return;
                           this.readyState = 1;
                           this.dispatchEvent(new Event("open"));
                           if (beat !== null) this.timer = setInterval(() => {
                               // A socket's heartbeat is a text frame; a stream's, a named event.
                               const name = event ? event : "message";
                               this.dispatchEvent(new MessageEvent(name, { data: event ? "{}" : frame }));
                           }, beat);
                       }, 0);
                   }
                   send() {}
                   close() { this.readyState = 3; clearInterval(this.timer); }
               };"#,
        )
        .call3(
            &JsValue::NULL,
            &beat_ms.map_or(JsValue::NULL, JsValue::from),
            &callqueue_protocol::HEARTBEAT_FRAME.into(),
            &if class == "EventSource" {
                JsValue::from(callqueue_protocol::HEARTBEAT_EVENT)
            } else {
                JsValue::NULL
            },
        )
        .unwrap();
        js_sys::Reflect::set(&window, &class.into(), &stub).unwrap();
        Self { class, original }
    }

    fn opened() -> u32 {
        js_sys::Reflect::get(&window(), &"__quietOpened".into())
            .unwrap()
            .as_f64()
            .unwrap_or(0.0) as u32
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        let _ = js_sys::Reflect::set(&window(), &self.class.into(), &self.original);
    }
}

fn transport(class: &str) -> Transport {
    if class == "WebSocket" {
        Transport::WebSocket
    } else {
        Transport::EventSource {
            events: &["message"],
        }
    }
}

#[wasm_bindgen_test]
async fn a_connection_that_hears_nothing_is_taken_for_dropped() {
    for class in ["WebSocket", "EventSource"] {
        let _quiet = Quiet::install(class, None);
        let state = RwSignal::new(Connection::Connecting);
        let live = Live::connect(
            "ws://127.0.0.1:9/quiet".into(),
            LiveOptions {
                transport: transport(class),
                silence_ms: 300,
                ..Default::default()
            },
            Some(state),
        );
        assert!(
            eventually(3_000, || state.get_untracked() == Connection::Live).await,
            "{class}: live once open"
        );
        // Nothing comes: reconnecting, and a new connection is made after the backoff.
        assert!(
            eventually(3_000, || state.get_untracked() == Connection::Reconnecting).await,
            "{class}: a silent connection counts as dropped"
        );
        assert!(
            eventually(5_000, || Quiet::opened() >= 2).await,
            "{class}: and is tried again"
        );
        drop(live);
    }
}

#[wasm_bindgen_test]
async fn heartbeats_keep_a_quiet_connection_live_and_never_reach_the_page() {
    for class in ["WebSocket", "EventSource"] {
        let _quiet = Quiet::install(class, Some(100));
        let state = RwSignal::new(Connection::Connecting);
        let messages = Rc::new(Cell::new(0u32));
        let live = {
            let messages = messages.clone();
            Live::connect(
                "ws://127.0.0.1:9/beating".into(),
                LiveOptions {
                    transport: transport(class),
                    silence_ms: 300,
                    on_message: Rc::new(move |_, _, _| messages.set(messages.get() + 1)),
                    ..Default::default()
                },
                Some(state),
            )
        };
        assert!(eventually(3_000, || state.get_untracked() == Connection::Live).await);
        // Many silence limits long: still live, still the first connection.
        sleep(1_500).await;
        assert_eq!(state.get_untracked(), Connection::Live, "{class}");
        assert_eq!(Quiet::opened(), 1, "{class}: never reconnected");
        assert_eq!(messages.get(), 0, "{class}: heartbeats are not messages");
        drop(live);
    }
}
