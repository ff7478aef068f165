//! "It's your turn": telling a matched customer even when the tab is in the background — a
//! chime, a system notification, a vibration — and the choices that go with it (sound on or
//! off, notifications allowed or not).

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::{i18n::t, storage};

/// Whether the person asked for less motion (`prefers-reduced-motion`).
pub fn reduced_motion() -> bool {
    window()
        .match_media("(prefers-reduced-motion: reduce)")
        .ok()
        .flatten()
        .is_some_and(|m| m.matches())
}

/// Whether the chime plays: on unless the person turned it off (remembered).
pub fn sound_on() -> bool {
    storage::get(storage::SOUND).as_deref() != Some("off")
}

pub fn set_sound(on: bool) {
    storage::set(storage::SOUND, if on { "on" } else { "off" });
}

#[cfg(feature = "test-hooks")]
thread_local! {
    static TURNS_TOLD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// How many times [`tell_turn`] ran (for the browser tests).
#[cfg(feature = "test-hooks")]
pub fn turns_told() -> u32 {
    TURNS_TOLD.with(|c| c.get())
}

/// Tells the customer it is their turn, every way they allowed: the chime (sound on), a
/// vibration (sound on, and not under reduced motion), and a system notification when the tab
/// is hidden and notifications are allowed. Each part that the browser lacks is skipped.
pub fn tell_turn() {
    #[cfg(feature = "test-hooks")]
    TURNS_TOLD.with(|c| c.set(c.get() + 1));
    if sound_on() {
        chime();
        if !reduced_motion() {
            // Phones only: desktop Firefox and Safari have no `vibrate`.
            let _ = crate::feature::call(&window().navigator(), "vibrate", &[vibration()]);
        }
    }
    notify_if_hidden(
        t("turn.title"),
        t("turn.notification_body"),
        "callqueue-turn",
    );
}

/// A system notification, when the tab is hidden and notifications are allowed (a visible
/// page says it itself). `tag` replaces an earlier one of the same kind. Where a page may not
/// construct one (Android Chrome), our service worker shows it.
pub fn notify_if_hidden(title: &str, body: &str, tag: &str) {
    if document().hidden() && notification_permission() == "granted" {
        let options = web_sys::NotificationOptions::new();
        options.set_body(body);
        options.set_tag(tag);
        if web_sys::Notification::new_with_options(title, &options).is_err() {
            notify_by_worker(title.to_string(), options);
        }
    }
}

/// The service worker's URL (`shell/sw.js`, copied to the root of the build).
const WORKER: &str = "/sw.js";

fn service_workers() -> Option<wasm_bindgen::JsValue> {
    let navigator = window().navigator();
    crate::feature::has(&navigator, "serviceWorker")
        .then(|| js_sys::Reflect::get(&navigator, &"serviceWorker".into()).ok())
        .flatten()
        .filter(|w| !w.is_undefined() && !w.is_null())
}

/// Registers the service worker that shows notifications where a page cannot (once
/// notifications are allowed; nothing else uses it).
pub fn register_worker() {
    if let Some(workers) = service_workers()
        && let Some(Ok(registered)) = crate::feature::call(&workers, "register", &[WORKER.into()])
        && let Ok(registered) = registered.dyn_into::<js_sys::Promise>()
    {
        wasm_bindgen_futures::spawn_local(async move {
            // Without it (a private window may refuse), notifications show where they can.
            let _ = wasm_bindgen_futures::JsFuture::from(registered).await;
        });
    }
}

fn notify_by_worker(title: String, options: web_sys::NotificationOptions) {
    let Some(workers) = service_workers() else {
        return;
    };
    let Some(Ok(found)) = crate::feature::call(&workers, "getRegistration", &[]) else {
        return;
    };
    let Ok(found) = found.dyn_into::<js_sys::Promise>() else {
        return;
    };
    wasm_bindgen_futures::spawn_local(async move {
        let Ok(registration) = wasm_bindgen_futures::JsFuture::from(found).await else {
            return;
        };
        let shown = crate::feature::call(
            &registration,
            "showNotification",
            &[title.into(), options.into()],
        );
        if let Some(Ok(shown)) = shown
            && let Ok(shown) = shown.dyn_into::<js_sys::Promise>()
        {
            let _ = wasm_bindgen_futures::JsFuture::from(shown).await;
        }
    });
}

fn vibration() -> wasm_bindgen::JsValue {
    let pattern = js_sys::Array::new();
    for ms in [200, 100, 200] {
        pattern.push(&ms.into());
    }
    pattern.into()
}

thread_local! {
    /// The chime's audio context, made in the customer's own tap (see [`unlock_sound`]).
    static SOUND: std::cell::RefCell<Option<web_sys::AudioContext>> =
        const { std::cell::RefCell::new(None) };
}

/// A new audio context (older Safari names it `webkitAudioContext`).
fn new_audio_context() -> Option<web_sys::AudioContext> {
    crate::feature::construct(&["AudioContext", "webkitAudioContext"]).map(JsCast::unchecked_into)
}

/// Makes the chime's audio context in a person's tap ("Start video chat") and resumes it:
/// Safari and phone browsers start a context only there, and one made later, when the turn
/// comes, would stay silent.
pub fn unlock_sound() {
    SOUND.with(|sound| {
        let mut sound = sound.borrow_mut();
        if sound.is_none() {
            *sound = new_audio_context();
        }
        if let Some(ctx) = sound.as_ref()
            && let Ok(resumed) = ctx.resume()
        {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = wasm_bindgen_futures::JsFuture::from(resumed).await;
            });
        }
    });
}

/// Two short rising tones made with Web Audio: nothing to download. Played on the context the
/// customer's tap made, else on a new one (which the browser may keep silent before the page
/// was touched; then there is no sound and the rest still happens).
pub fn chime() {
    let shared = SOUND.with(|s| s.borrow().clone());
    let Some(ctx) = shared.clone().or_else(new_audio_context) else {
        return;
    };
    if shared.is_some() {
        let _ = ctx.resume();
    }
    let start = ctx.current_time();
    for (i, freq) in [660.0_f32, 880.0].into_iter().enumerate() {
        let (Ok(osc), Ok(gain)) = (ctx.create_oscillator(), ctx.create_gain()) else {
            return;
        };
        osc.frequency().set_value(freq);
        let at = start + i as f64 * 0.18;
        let g = gain.gain();
        let _ = g.set_value_at_time(0.0, at);
        let _ = g.linear_ramp_to_value_at_time(0.25, at + 0.02);
        let _ = g.exponential_ramp_to_value_at_time(0.001, at + 0.35);
        let _ = osc.connect_with_audio_node(&gain);
        let _ = gain.connect_with_audio_node(&ctx.destination());
        let _ = osc.start_with_when(at);
        let _ = osc.stop_with_when(at + 0.4);
    }
    if shared.is_some() {
        return;
    }
    // A context of its own is closed once the tones are over, so contexts do not pile up.
    let close = wasm_bindgen::closure::Closure::once_into_js(move || {
        let _ = ctx.close();
    });
    let _ = window()
        .set_timeout_with_callback_and_timeout_and_arguments_0(close.unchecked_ref(), 1_000);
}

/// `granted`, `denied`, `default`, or `unsupported` where the browser has no notifications.
pub fn notification_permission() -> String {
    let has = js_sys::Reflect::has(&window(), &"Notification".into()).unwrap_or(false);
    if !has {
        return "unsupported".into();
    }
    match web_sys::Notification::permission() {
        web_sys::NotificationPermission::Granted => "granted".into(),
        web_sys::NotificationPermission::Denied => "denied".into(),
        _ => "default".into(),
    }
}

/// The hold page's choices: the sound switch, and — while the browser has not been asked —
/// a button that asks for notifications, with a sentence saying why. Never asked on load.
#[component]
pub fn TurnChoices() -> impl IntoView {
    let sound = RwSignal::new(sound_on());
    let toggle = move |_| {
        let on = !sound.get_untracked();
        set_sound(on);
        sound.set(on);
    };
    view! {
        <div class="turn-choices">
            <button
                type="button"
                class="secondary toggle sound"
                role="switch"
                aria-checked=move || sound.get().to_string()
                on:click=toggle
            >
                {move || t("turn.sound")}
            </button>
            <NotifyButton why="turn.why_notify" label="turn.allow_notify"/>
        </div>
    }
}

/// While the browser has not been asked: a sentence saying why (`why`, a catalogue key) and a
/// button (`label`) that asks for notifications. Never asked without a press.
#[component]
pub fn NotifyButton(why: &'static str, label: &'static str) -> impl IntoView {
    let permission = RwSignal::new(notification_permission());
    if permission.get_untracked() == "granted" {
        register_worker();
    }
    let ask = move |_| {
        if let Ok(promise) = web_sys::Notification::request_permission() {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
                let now = notification_permission();
                if now == "granted" {
                    register_worker();
                }
                permission.try_set(now);
            });
        }
    };
    view! {
        <Show when=move || permission.get() == "default">
            <p class="why-notify">{move || t(why)}</p>
            <button type="button" class="secondary notify" on:click=ask>
                {move || t(label)}
            </button>
        </Show>
    }
}
