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
