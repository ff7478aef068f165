//! What a customer sees before the app runs, and instead of it when it cannot: the static page
//! `index.html` paints at once (in the visitor's language), the app takes its place, and a
//! build whose wasm does not arrive says so in plain words instead of staying blank.

use std::{path::Path, time::Duration};

use callqueue_e2e::{Driver, Result, Server, ServerOptions, dist};

const PHONE: (u32, u32) = (390, 844);

/// A copy of a build (both bundles) without its wasm: what a browser gets when the download is
/// blocked or fails.
fn build_without_wasm(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            std::fs::create_dir(to.join(&*name))?;
            build_without_wasm(&path, &to.join(&*name))?;
        } else if !name.contains(".wasm") {
            std::fs::copy(&path, to.join(&*name))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_first_paint_becomes_the_app_or_says_why_it_cannot() -> Result<()> {
    let driver = Driver::start().await?;
    let b = driver.browser(PHONE.0, PHONE.1).await?;

    // The real build: the app takes the static page's place, with nothing of it left.
    let server = Server::start(ServerOptions::default()).await?;
    b.goto(&server.url("/")).await?;
    b.wait_text("form.check-in button[type=submit]", |t| {
        t == "Start video chat"
    })
    .await?;
    assert!(
        !b.exists("#shell").await?,
        "the app replaced the first paint"
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('h1').length")
            .await?,
        1
    );
    assert!(b.severe_logs().await?.is_empty());

    // Without its wasm: the heading stays, and the page says what happened.
    let broken = tempfile::tempdir()?;
    build_without_wasm(&dist(), broken.path())?;
    let server = Server::start(ServerOptions {
        dist: Some(broken.path().to_path_buf()),
        ..Default::default()
    })
    .await?;
    b.goto(&server.url("/")).await?;
    let said = b
        .wait_text_for("#shell-status.notice", Duration::from_secs(10), |t| {
            t.contains("could not start")
        })
        .await?;
    assert!(said.contains("reload the page"), "{said}");
    assert_eq!(
        b.find("h1").await?.text().await?,
        "Talk to a specialist",
        "the first paint is still the home page"
    );
    b.screenshot("first-paint-failed-phone").await?;
    b.assert_accessible("the first paint, failed").await?;

    // In the visitor's language (as remembered by the app's switcher).
    b.eval("localStorage.setItem('callqueue.lang', 'de')")
        .await?;
    b.goto(&server.url("/")).await?;
    b.wait_text_for("#shell-status.notice", Duration::from_secs(10), |t| {
        t.contains("konnte nicht starten")
    })
    .await?;
    assert_eq!(
        b.find("h1").await?.text().await?,
        "Mit einer Fachkraft sprechen"
    );
    assert_eq!(b.eval("return document.documentElement.lang").await?, "de");

    // Any other page shows no home heading while it waits.
    b.goto(&server.url("/hold/r/abc")).await?;
    b.wait_text_for("#shell-status.notice", Duration::from_secs(10), |t| {
        t.contains("konnte nicht starten")
    })
    .await?;
    assert!(!b.exists("h1").await?);
    b.eval("localStorage.removeItem('callqueue.lang')").await?;

    // The console's bundle says it of the console.
    b.goto(&server.url("/agent")).await?;
    b.wait_text_for("#shell-status.notice", Duration::from_secs(10), |t| {
        t.starts_with("The console could not start.")
    })
    .await?;
    b.close().await
}
