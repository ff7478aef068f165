//! The app's components, mounted and exercised in headless Chromium.
#![cfg(target_arch = "wasm32")]

use callqueue::pages::{home::Home, not_found::NotFound};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A fresh element in the document to mount into.
fn container() -> web_sys::HtmlElement {
    let document = document();
    let el = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&el).unwrap();
    el.unchecked_into()
}

#[wasm_bindgen_test]
async fn home_offers_to_start_a_video_chat() {
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), Home);
    leptos::task::tick().await;
    let button = parent
        .query_selector("button.primary")
        .unwrap()
        .expect("a primary button");
    assert_eq!(button.text_content().unwrap(), "Start video chat");
    let heading = parent.query_selector("h1").unwrap().unwrap();
    assert_eq!(heading.text_content().unwrap(), "Talk to a specialist");
}

#[wasm_bindgen_test]
async fn not_found_links_home() {
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), NotFound);
    leptos::task::tick().await;
    let link = parent.query_selector("a").unwrap().expect("a link home");
    assert_eq!(link.get_attribute("href").as_deref(), Some("/"));
    assert!(parent.text_content().unwrap().contains("Page not found"));
}
