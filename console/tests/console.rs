//! The console's bundle in headless Chromium: its routes, and a console that leaves nothing
//! running behind it.
#![cfg(target_arch = "wasm32")]

use callqueue::{live::open_streams, ticker::active_tickers};
use callqueue_console::{AgentApp, console::Console};
use callqueue_protocol::{AgentSession, Role};
use chrono::Utc;
use leptos::prelude::*;
use leptos_router::components::Router;
use wasm_bindgen_test::*;

// The app's browser-test helpers, shared rather than copied.
#[path = "../../tests/common/mod.rs"]
mod common;

use common::{container, eventually, go, text};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn the_console_bundle_has_the_console_and_the_call_page() {
    go("/agent");
    let parent = container();
    let handle = leptos::mount::mount_to(parent.clone(), AgentApp);
    // Nobody is signed in (this test page has no API behind it): the sign-in form.
    assert!(
        eventually(5000, || text(&parent, "h1").as_deref()
            == Some("Specialist sign-in"))
        .await
    );
    // The start page is the customer's bundle: the brand link loads it as a new page.
    let brand = parent.query_selector("a.brand").unwrap().unwrap();
    assert_eq!(brand.get_attribute("rel").as_deref(), Some("external"));
    drop(handle);

    go("/join/r/nosuch");
    let parent = container();
    let handle = leptos::mount::mount_to(parent.clone(), AgentApp);
    assert!(
        eventually(5000, || text(&parent, ".error")
            .is_some_and(|t| t.contains("couldn't find this call")))
        .await,
        "the call page, inside the console's bundle"
    );
    drop(handle);

    go("/");
    let parent = container();
    let handle = leptos::mount::mount_to(parent.clone(), AgentApp);
    leptos::task::tick().await;
    assert_eq!(text(&parent, "h1").as_deref(), Some("Page not found"));
    // Its way home is the customer's bundle too.
    let home = parent.query_selector(".not-found a").unwrap().unwrap();
    assert_eq!(home.get_attribute("rel").as_deref(), Some("external"));
    drop(handle);
}

#[wasm_bindgen_test]
async fn no_timers_or_streams_left_after_30_consoles() {
    let base_tickers = active_tickers();
    let base_streams = open_streams();
    go("/agent");
    for _ in 0..30 {
        let parent = container();
        let handle = leptos::mount::mount_to(parent.clone(), || {
            let session = RwSignal::new(Some(AgentSession {
                user_id: "dr".into(),
                admin: false,
                display_name: None,
                role: Role::Specialist,
                groups: vec!["default".into()],
                available: false,
                active_call_id: None,
                active_reservation_sid: None,
                max_call_seconds: 14_400,
                server_time: Utc::now(),
            }));
            view! { <Router><Console session=session/></Router> }
        });
        leptos::task::tick().await;
        assert!(active_tickers() > base_tickers);
        assert!(
            eventually(3000, || open_streams() > base_streams).await,
            "the console opened its streams"
        );
        drop(handle);
        parent.remove();
    }
    go("/");
    leptos::task::tick().await;
    assert_eq!(
        active_tickers(),
        base_tickers,
        "every console clock stopped"
    );
    assert_eq!(open_streams(), base_streams, "every stream closed");
}
