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
