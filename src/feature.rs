//! Browser APIs that some browsers lack — `navigator.vibrate` (desktop Firefox, Safari),
//! `setSinkId`, `Notification` as a constructor (Android Chrome), `restartIce` — looked up
//! before use and called so that a JavaScript exception comes back as a value.
//!
//! Why not the web-sys bindings: calling a binding whose function the browser does not have
//! throws a `TypeError` straight through the wasm, and the async runtime that was running it
//! is left mid-borrow (the next task panics with "already borrowed").

use wasm_bindgen::{JsCast, JsValue};

/// `target[name]`, if it is a function.
pub fn method(target: &JsValue, name: &str) -> Option<js_sys::Function> {
    js_sys::Reflect::get(target, &JsValue::from_str(name))
        .ok()
        .filter(JsValue::is_function)
        .map(JsCast::unchecked_into)
}

/// Calls `target[name](...args)` where the browser has it: `None` when it does not, else what
/// it returned or threw.
pub fn call(target: &JsValue, name: &str, args: &[JsValue]) -> Option<Result<JsValue, JsValue>> {
    let f = method(target, name)?;
    let args: js_sys::Array = args.iter().collect();
    Some(f.apply(target, &args))
}

/// Whether `target` has a property `name` (a constructor, an object).
pub fn has(target: &JsValue, name: &str) -> bool {
    js_sys::Reflect::has(target, &JsValue::from_str(name)).unwrap_or(false)
}

/// `new window[name]()` for the first of `names` the browser has (a standard name, then a
/// vendor-prefixed one); `None` when it has none or the constructor threw. Looked up when
/// called, so a test can stand in for it.
pub fn construct(names: &[&str]) -> Option<JsValue> {
    let window: JsValue = web_sys::window()?.into();
    let class = names.iter().find_map(|n| {
        js_sys::Reflect::get(&window, &JsValue::from_str(n))
            .ok()
            .filter(JsValue::is_function)
    })?;
    js_sys::Reflect::construct(
        class.unchecked_ref::<js_sys::Function>(),
        &js_sys::Array::new(),
    )
    .ok()
}
