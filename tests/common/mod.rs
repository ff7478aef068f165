//! What the browser test files share: a place to mount, and waiting for the page.
#![allow(dead_code)]

use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// A fresh element in the document to mount into.
pub fn container() -> web_sys::HtmlElement {
    let document = document();
    let el = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&el).unwrap();
    el.unchecked_into()
}

pub async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Waits (up to `ms`) until `cond` holds; false if it never did.
pub async fn eventually(ms: u32, cond: impl Fn() -> bool) -> bool {
    for _ in 0..ms / 20 {
        if cond() {
            return true;
        }
        sleep(20).await;
    }
    cond()
}

/// The text of the first element matching `css` under `parent`.
pub fn text(parent: &web_sys::HtmlElement, css: &str) -> Option<String> {
    parent
        .query_selector(css)
        .unwrap()
        .and_then(|e| e.text_content())
}

/// Puts `path` in the address bar (for the router), as a link would.
pub fn go(path: &str) {
    window()
        .history()
        .unwrap()
        .push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(path))
        .unwrap();
}

/// Stands in for the browser's `WebSocket` while it lives: every socket the page opens closes
/// by itself with `code`, on the next task, without touching the network. Tests of close codes
/// use it because a real dead port is throttled by Chromium (new sockets to an endpoint that
/// has just failed are delayed), which makes a count of attempts depend on what ran before.
/// Gives the real `WebSocket` back when dropped.
pub struct StubSocket {
    original: wasm_bindgen::JsValue,
}

impl StubSocket {
    pub fn closing_with(code: u16) -> Self {
        let window = window();
        let original = js_sys::Reflect::get(&window, &"WebSocket".into()).unwrap();
        let class = js_sys::Function::new_with_args(
            "code",
            r#"return class StubSocket extends EventTarget {
                static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
                constructor(url) {
                    super();
                    this.url = url;
                    this.readyState = 0;
                    globalThis.__stubSocketsOpened = (globalThis.__stubSocketsOpened || 0) + 1;
                    setTimeout(() => {
                        if (this.readyState === 3) return;
                        this.readyState = 3;
                        this.dispatchEvent(new CloseEvent("close", { code, wasClean: false }));
                    }, 0);
                }
                send() { throw new DOMException("not open", "InvalidStateError"); }
                close() { this.readyState = 3; }
            };"#,
        )
        .call1(&wasm_bindgen::JsValue::NULL, &code.into())
        .unwrap();
        js_sys::Reflect::set(&window, &"WebSocket".into(), &class).unwrap();
        Self { original }
    }

    /// How many sockets the page has opened since the stub went in.
    pub fn opened() -> u32 {
        js_sys::Reflect::get(&window(), &"__stubSocketsOpened".into())
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0) as u32
    }
}

impl Drop for StubSocket {
    fn drop(&mut self) {
        let window = window();
        let _ = js_sys::Reflect::set(&window, &"WebSocket".into(), &self.original);
        let _ = js_sys::Reflect::delete_property(&window, &"__stubSocketsOpened".into());
    }
}

/// Counts what the page holds that outlives a page change if nobody lets it go: intervals,
/// peer connections, camera and microphone tracks, and window listeners. It wraps the browser's
/// own `setInterval`, `RTCPeerConnection`, `getUserMedia` and `addEventListener` (so the app's
/// real code is what is counted), and puts them back when dropped.
pub struct Resources {
    _private: (),
}

/// What [`Resources`] counted at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    pub intervals: u32,
    pub connections: u32,
    pub live_tracks: u32,
    pub window_listeners: u32,
}

impl Resources {
    pub fn install() -> Self {
        js_sys::Function::new_no_args(
            r#"
            if (globalThis.__held) return;
            const held = globalThis.__held = {
                intervals: new Set(), connections: new Set(), tracks: [], listeners: new Map(),
                originals: {
                    setInterval: window.setInterval, clearInterval: window.clearInterval,
                    RTCPeerConnection: window.RTCPeerConnection,
                    getUserMedia: navigator.mediaDevices.getUserMedia,
                    addEventListener: window.addEventListener,
                    removeEventListener: window.removeEventListener,
                },
            };
            const o = held.originals;
            window.setInterval = function (...a) {
                const id = o.setInterval.apply(window, a);
                held.intervals.add(id);
                return id;
            };
            window.clearInterval = function (id) {
                held.intervals.delete(id);
                return o.clearInterval.call(window, id);
            };
            window.RTCPeerConnection = class extends o.RTCPeerConnection {
                constructor(...a) { super(...a); held.connections.add(this); }
                close() { held.connections.delete(this); return super.close(); }
            };
            navigator.mediaDevices.getUserMedia = async function (...a) {
                const stream = await o.getUserMedia.apply(navigator.mediaDevices, a);
                held.tracks.push(...stream.getTracks());
                return stream;
            };
            const key = (type, f, options) =>
                type + "|" + (typeof options === "boolean" ? options : !!(options && options.capture));
            window.addEventListener = function (type, f, options) {
                const k = key(type, f, options);
                if (!held.listeners.has(k)) held.listeners.set(k, new Set());
                held.listeners.get(k).add(f);
                return o.addEventListener.call(window, type, f, options);
            };
            window.removeEventListener = function (type, f, options) {
                held.listeners.get(key(type, f, options))?.delete(f);
                return o.removeEventListener.call(window, type, f, options);
            };
            "#,
        )
        .call0(&wasm_bindgen::JsValue::NULL)
        .unwrap();
        Self { _private: () }
    }

    /// The types of the window listeners the page holds now (`type|capture`).
    pub fn listener_types() -> Vec<String> {
        let v = js_sys::Function::new_no_args(
            r#"
            const out = [];
            for (const [k, set] of globalThis.__held.listeners) if (set.size) out.push(k + " x" + set.size);
            return out.join(", ");
            "#,
        )
        .call0(&wasm_bindgen::JsValue::NULL)
        .unwrap();
        v.as_string()
            .unwrap_or_default()
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// What the page holds now.
    pub fn held() -> Held {
        let v = js_sys::Function::new_no_args(
            r#"
            const h = globalThis.__held;
            let listeners = 0;
            for (const set of h.listeners.values()) listeners += set.size;
            return [h.intervals.size, h.connections.size,
                    h.tracks.filter(t => t.readyState === "live").length, listeners];
            "#,
        )
        .call0(&wasm_bindgen::JsValue::NULL)
        .unwrap();
        let a: js_sys::Array = v.unchecked_into();
        let n = |i: u32| a.get(i).as_f64().unwrap_or(-1.0) as u32;
        Held {
            intervals: n(0),
            connections: n(1),
            live_tracks: n(2),
            window_listeners: n(3),
        }
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        let _ = js_sys::Function::new_no_args(
            r#"
            const h = globalThis.__held;
            if (!h) return;
            const o = h.originals;
            window.setInterval = o.setInterval; window.clearInterval = o.clearInterval;
            window.RTCPeerConnection = o.RTCPeerConnection;
            navigator.mediaDevices.getUserMedia = o.getUserMedia;
            window.addEventListener = o.addEventListener;
            window.removeEventListener = o.removeEventListener;
            delete globalThis.__held;
            "#,
        )
        .call0(&wasm_bindgen::JsValue::NULL);
    }
}

impl StubSocket {
    /// A stand-in `WebSocket` that opens, and answers a call page's `hello` with a welcome in
    /// which the other member is there (`welcome`, the JSON the server would send): the page
    /// builds its peer connection as in a call. Closing it says 1000.
    pub fn welcoming(welcome: &str) -> Self {
        let window = window();
        let original = js_sys::Reflect::get(&window, &"WebSocket".into()).unwrap();
        let class = js_sys::Function::new_with_args(
            "welcome",
            r#"return class StubSocket extends EventTarget {
                static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
                constructor(url) {
                    super();
                    this.url = url;
                    this.readyState = 0;
                    this.bufferedAmount = 0;
                    globalThis.__stubSocketsOpened = (globalThis.__stubSocketsOpened || 0) + 1;
                    setTimeout(() => {
                        if (this.readyState !== 0) return;
                        this.readyState = 1;
                        this.dispatchEvent(new Event("open"));
                    }, 0);
                }
                send(data) {
                    if (this.readyState !== 1) throw new DOMException("not open", "InvalidStateError");
                    if (String(data).includes('"hello"')) {
                        setTimeout(() => {
                            if (this.readyState === 1)
                                this.dispatchEvent(new MessageEvent("message", { data: welcome }));
                        }, 0);
                    }
                }
                close() {
                    if (this.readyState === 3) return;
                    this.readyState = 3;
                    this.dispatchEvent(new CloseEvent("close", { code: 1000, wasClean: true }));
                }
            };"#,
        )
        .call1(&wasm_bindgen::JsValue::NULL, &welcome.into())
        .unwrap();
        js_sys::Reflect::set(&window, &"WebSocket".into(), &class).unwrap();
        Self { original }
    }
}
