//! What phones and other browsers lack or refuse, stood in for in headless Chromium: no
//! `navigator.vibrate` (desktop Firefox and Safari), a `Notification` that may not be
//! constructed (Android Chrome: only a service worker may show one), and sound that may only
//! start in a person's tap (Safari, phones).
#![cfg(target_arch = "wasm32")]

use callqueue::{
    components::turn::{chime, tell_turn, turns_told},
    pages::home::Home,
};
use leptos::prelude::*;
use leptos_router::components::Router;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

mod common;

use common::{container, eventually, sleep};

wasm_bindgen_test_configure!(run_in_browser);

/// Runs `script` (a function body) in the page.
fn js(script: &str) -> JsValue {
    js_sys::Function::new_no_args(script)
        .call0(&JsValue::NULL)
        .unwrap()
}

/// Puts back what [`js`] stood in for, when dropped.
struct Restore(&'static str);

impl Drop for Restore {
    fn drop(&mut self) {
        js(self.0);
    }
}

#[wasm_bindgen_test]
async fn the_turn_is_told_without_vibrate_and_by_the_service_worker_where_pages_may_not_notify() {
    // As desktop Firefox (no vibrate) and Android Chrome (no page notifications, a service
    // worker's registration shows them), with the tab hidden and notifications allowed.
    js(r#"
        window.__saved = { Notification: window.Notification };
        Object.defineProperty(navigator, "vibrate", { value: undefined, configurable: true });
        Object.defineProperty(document, "hidden", { get: () => true, configurable: true });
        window.Notification = class {
            constructor() { throw new TypeError("Illegal constructor. Use ServiceWorkerRegistration.showNotification() instead."); }
            static get permission() { return "granted"; }
            static requestPermission() { return Promise.resolve("granted"); }
        };
        window.__shown = null;
        Object.defineProperty(navigator, "serviceWorker", { configurable: true, value: {
            register: () => Promise.resolve({}),
            getRegistration: () => Promise.resolve({
                showNotification: (title, options) => {
                    window.__shown = [title, options.body, options.tag];
                    return Promise.resolve();
                },
            }),
        }});
    "#);
    let _restore = Restore(
        r#"
        delete navigator.vibrate; delete document.hidden; delete navigator.serviceWorker;
        window.Notification = window.__saved.Notification;
    "#,
    );
    let before = turns_told();
    tell_turn();
    assert_eq!(turns_told(), before + 1);
    let shown = || {
        js_sys::Reflect::get(&window(), &"__shown".into())
            .ok()
            .filter(|v| !v.is_null())
    };
    assert!(
        eventually(3_000, || shown().is_some()).await,
        "shown by the worker"
    );
    let shown: js_sys::Array = shown().unwrap().unchecked_into();
    assert_eq!(shown.get(0).as_string().unwrap(), "It's your turn");
    assert_eq!(shown.get(2).as_string().unwrap(), "callqueue-turn");
    // The async runtime is fine afterwards (a throw through the wasm would leave it borrowed).
    let later = std::rc::Rc::new(std::cell::Cell::new(0));
    let set = later.clone();
    wasm_bindgen_futures::spawn_local(async move { set.set(1) });
    sleep(50).await;
    assert_eq!(later.get(), 1);
}

#[wasm_bindgen_test]
async fn the_chime_plays_on_the_sound_the_start_tap_unlocked() {
    // An AudioContext that counts how it is made and resumed, and takes the chime's calls.
    js(r#"
        window.__saved_audio = window.AudioContext;
        window.__audio = { made: 0, resumed: 0, closed: 0, tones: 0 };
        const param = () => ({ value: 0, setValueAtTime() {}, linearRampToValueAtTime() {},
            exponentialRampToValueAtTime() {} });
        const node = () => ({ connect() {}, frequency: param(), gain: param(),
            start() { window.__audio.tones++; }, stop() {} });
        window.AudioContext = class {
            constructor() { window.__audio.made++; this.currentTime = 0; this.destination = node(); }
            resume() { window.__audio.resumed++; return Promise.resolve(); }
            close() { window.__audio.closed++; return Promise.resolve(); }
            createOscillator() { return node(); }
            createGain() { return node(); }
        };
    "#);
    let _restore = Restore("window.AudioContext = window.__saved_audio;");
    let count = |k: &str| {
        js_sys::Reflect::get(&js("return window.__audio;"), &k.into())
            .unwrap()
            .as_f64()
            .unwrap() as u32
    };
    let parent = container();
    let _handle = leptos::mount::mount_to(parent.clone(), || {
        view! { <Router><Home/></Router> }
    });
    leptos::task::tick().await;
    let button: web_sys::HtmlElement = parent
        .query_selector("form.check-in button[type=submit]")
        .unwrap()
        .expect("the start button")
        .unchecked_into();
    assert_eq!(count("made"), 0, "no sound is made on load");
    button.click();
    // In the tap itself, not after a request: only there may a phone start sound.
    assert_eq!(count("made"), 1);
    assert_eq!(count("resumed"), 1);
    chime();
    assert_eq!(count("made"), 1, "the chime uses the unlocked context");
    assert_eq!(count("tones"), 2);
    sleep(1_200).await;
    assert_eq!(count("closed"), 0, "and keeps it for the next time");
}
