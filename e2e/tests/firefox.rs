//! The call between Firefox (Debian's firefox-esr, through geckodriver) and Chromium, both
//! ways round: the whole journey including "It's your turn", video both ways, mute shown on
//! the other side, a reload that comes back by itself, and no error in either browser's
//! console. In the loopback-only network namespace (scripts/test).

use std::time::Duration;

use callqueue_e2e::*;

/// Firefox opens no window narrower than 500 px.
const NARROW: (u32, u32) = (500, 900);
const DESKTOP: (u32, u32) = (1280, 900);

async fn across(server: &Server, customer: &Browser, doc: &Browser, name: &str) -> Result<()> {
    start_chat(customer, server).await?;
    sign_in_specialist(doc, server, name).await?;
    doc.wait_text("h2", |t| t == "Waiting now: 1").await?;
    doc.click("button.accept-next").await?;
    // The turn panel ("It's your turn") and its button into the call.
    customer.wait_text("h1", |t| t == "It's your turn").await?;
    join_when_called(customer).await?;
    doc.wait_url(|u| u.contains("/join/r/")).await?;
    let both = [(customer, "customer"), (doc, "specialist")];
    for (b, who) in both {
        let took = match b
            .wait_video_playing("video.remote", Duration::from_secs(25))
            .await
        {
            Ok(took) => took,
            Err(e) => {
                for (b, who) in both {
                    eprintln!("{who}'s console: {:#?}", b.logs().await?);
                }
                return Err(format!("{who}: {e}").into());
            }
        };
        eprintln!("{who}: their video after {took:?}");
    }

    // Mute crosses both ways.
    customer.click("button.toggle.mic").await?;
    doc.wait_text(".badge.peer-muted", |t| t == "The customer is muted")
        .await?;
    customer.click("button.toggle.mic").await?;
    doc.click("button.toggle.mic").await?;
    customer
        .wait_text(".badge.peer-muted", |t| t == "The specialist is muted")
        .await?;
    doc.click("button.toggle.mic").await?;

    // The customer reloads: the call comes back on both sides by itself.
    customer.client.refresh().await?;
    for (b, who) in both {
        let took = b
            .wait_video_playing("video.remote", Duration::from_secs(20))
            .await
            .map_err(|e| format!("{who} after the reload: {e}"))?;
        eprintln!("{who}: video again {took:?} after the reload");
    }
    for (b, who) in both {
        let severe = b.severe_logs().await?;
        assert!(severe.is_empty(), "{who}'s console: {severe:#?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_firefox_customer_and_a_chromium_specialist() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let customer = firefox(NARROW.0, NARROW.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    let result = across(&server, &customer, &doc, "dr-chromium").await;
    customer.screenshot("call-firefox-customer").await?;
    for b in [customer, doc] {
        b.close().await?;
    }
    result
}

#[tokio::test]
async fn a_chromium_customer_and_a_firefox_specialist() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let customer = driver.browser(390, 844).await?;
    let doc = firefox(DESKTOP.0, DESKTOP.1).await?;
    let result = across(&server, &customer, &doc, "dr-firefox").await;
    doc.screenshot("call-firefox-specialist").await?;
    for b in [customer, doc] {
        b.close().await?;
    }
    result
}
