//! One tick source per page, on second boundaries, gone when the page is.

#[cfg(feature = "test-hooks")]
use std::cell::Cell;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use std::cell::RefCell;

#[cfg(feature = "test-hooks")]
thread_local! {
    static ACTIVE: Cell<usize> = const { Cell::new(0) };
}

/// How many tick sources are running: zero once every page that started one is gone. Counted
/// in test builds only (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
pub fn active_tickers() -> usize {
    ACTIVE.with(Cell::get)
}

/// The browser's clock, in milliseconds since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A signal of the local time that updates when `delay_after(now)` says: a page passes the time
/// to the next displayed second, so each shown second appears exactly once. Stops on cleanup of
/// the calling owner (the page).
pub fn use_ticker(delay_after: impl Fn(f64) -> u32 + 'static) -> ReadSignal<f64> {
    let (now, set_now) = signal(now_ms());
    let timer: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
    let delay_after: Rc<dyn Fn(f64) -> u32> = Rc::new(delay_after);

    fn schedule(
        timer: Rc<RefCell<Option<Timeout>>>,
        delay_after: Rc<dyn Fn(f64) -> u32>,
        set_now: WriteSignal<f64>,
    ) {
        let delay = delay_after(now_ms()).max(16);
        let next = timer.clone();
        *timer.borrow_mut() = Some(Timeout::new(delay, move || {
            set_now.set(now_ms());
            schedule(next, delay_after, set_now);
        }));
    }

    #[cfg(feature = "test-hooks")]
    ACTIVE.with(|n| n.set(n.get() + 1));
    schedule(timer.clone(), delay_after, set_now);
    // Cleanups must be Send; this one only ever runs on the browser's one thread.
    let timer = SendWrapper::new(timer);
    on_cleanup(move || {
        timer.borrow_mut().take();
        #[cfg(feature = "test-hooks")]
        ACTIVE.with(|n| n.set(n.get().saturating_sub(1)));
    });
    now
}
