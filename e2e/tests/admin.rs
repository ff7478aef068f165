//! The admin page end to end: an admin adds a specialist in the browser; the specialist signs
//! in with the secret shown and serves a customer, who sees their display name; the admin
//! disables them and their console is signed out at once; a closed date makes the home page say
//! so (English and German) and the API refuse joins with `closed`; opening again lets customers
//! join; the audit log lists it all; axe-core finds nothing on the admin page.

use std::time::Duration;

use callqueue_e2e::{Browser, Driver, Result, Server, ServerOptions, join_when_called, start_chat};

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);
const ADMIN_SECRET: &str = "admin-secret-long-enough";

/// Signs in on the console's form at `path` (`/agent` or `/admin`).
async fn sign_in(b: &Browser, server: &Server, path: &str, user: &str, secret: &str) -> Result<()> {
    b.goto(&server.url(path)).await?;
    b.find("input[name=user_id]").await?.send_keys(user).await?;
    b.find("input[name=secret]")
        .await?
        .send_keys(secret)
        .await?;
    b.click("button[type=submit]").await?;
    Ok(())
}

/// Saves the group `default` with these closed dates (one per line) and this choice for
/// those still waiting at closing (`serve` or `close`).
async fn save_closed_dates(admin: &Browser, dates: &str, at_closing: &str) -> Result<()> {
    let form = "form.group[data-group=default]";
    let area = admin.find(&format!("{form} textarea.closed-dates")).await?;
    area.clear().await?;
    if !dates.is_empty() {
        area.send_keys(dates).await?;
    }
    admin
        .find(&format!("{form} select.at-closing"))
        .await?
        .select_by_value(at_closing)
        .await?;
    admin.click(&format!("{form} button.save")).await?;
    admin
        .wait_text(&format!("{form} .saved"), |t| t == "Saved.")
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_admin_runs_specialists_groups_and_opening_hours_in_the_browser() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    server
        .add_account("boss", "admin", Some("The Boss"), ADMIN_SECRET)
        .await?;
    let driver = Driver::start().await?;
    let admin = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    sign_in(&admin, &server, "/admin", "boss", ADMIN_SECRET).await?;
    admin.wait_text("h1", |t| t == "Administration").await?;

    // A new specialist, added in the browser: the secret is shown once.
    admin
        .find("form.add-specialist input[name=user_id]")
        .await?
        .send_keys("dr-ines")
        .await?;
    admin
        .find("form.add-specialist input[name=display_name]")
        .await?
        .send_keys("Dr. Ines Vogt")
        .await?;
    admin
        .click("form.add-specialist button[type=submit]")
        .await?;
    let issued = admin
        .wait_text(".issued", |t| t.contains("dr-ines"))
        .await?;
    let secret = issued
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == 32)
        .ok_or(format!("no secret in {issued:?}"))?
        .to_string();
    admin
        .wait_text("tr.specialist[data-user=dr-ines] .status", |t| {
            t == "signed out"
        })
        .await?;

    // The specialist signs in with it and serves a customer, who sees the display name.
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    sign_in(&doc, &server, "/agent", "dr-ines", &secret).await?;
    doc.wait_text("h1", |t| t == "Hello, Dr. Ines Vogt").await?;
    doc.click("button.availability").await?;
    doc.wait_attr("button.availability", "aria-checked", |v| v == "true")
        .await?;
    let anna = driver.browser(PHONE.0, PHONE.1).await?;
    start_chat(&anna, &server).await?;
    doc.click("button.accept-next").await?;
    anna.wait_text(".join-within", |t| {
        t.starts_with("Dr. Ines Vogt is waiting for you — join within ")
    })
    .await?;
    assert!(
        !anna.body_text().await?.contains("dr-ines"),
        "no sign-in id"
    );
    // She joins; the specialist ends the call and is back on the console.
    doc.wait_url(|u| u.contains("/join/r/")).await?;
    join_when_called(&anna).await?;
    doc.wait_video_playing("video.remote", Duration::from_secs(20))
        .await?;
    doc.click("button.leave").await?;
    anna.wait_text_for(".alert.call-ended", Duration::from_secs(10), |t| {
        t == "The specialist ended the call"
    })
    .await?;
    doc.goto(&server.url("/agent")).await?;
    doc.wait_text("h1", |t| t == "Hello, Dr. Ines Vogt").await?;
    doc.find("button.accept-next").await?;

    // The admin sees who is signed in; disabling signs the console out at once.
    admin.goto(&server.url("/admin")).await?;
    admin
        .wait_text("tr.specialist[data-user=dr-ines] .status", |t| {
            t.starts_with("signed in")
        })
        .await?;
    admin
        .check_at_sizes("admin", "en", PHONE, DESKTOP, DESKTOP)
        .await?;
    admin
        .click("tr.specialist[data-user=dr-ines] button.toggle")
        .await?;
    admin
        .wait_text("tr.specialist[data-user=dr-ines] .status", |t| {
            t == "disabled"
        })
        .await?;
    doc.wait_text_for("h1", Duration::from_secs(5), |t| t == "Specialist sign-in")
        .await?;
    doc.find("input[name=user_id]").await?;

    // Closed today: the home page says so, in English and German, and the API refuses joins.
    // Dana waits; the queue closes with "close the queue": her hold page tells her.
    let dana = driver.browser(PHONE.0, PHONE.1).await?;
    start_chat(&dana, &server).await?;
    let today = chrono::Utc::now().date_naive().to_string();
    save_closed_dates(&admin, &today, "close").await?;
    dana.wait_url(|u| u.contains("/rejoin/r/")).await?;
    dana.wait_text(".rejoin .notice.closed", |t| {
        t.starts_with("We're closed. We open again ")
    })
    .await?;
    assert!(
        !dana
            .find(".rejoin button.primary")
            .await?
            .is_displayed()
            .await?,
        "no rejoining a closed queue"
    );
    dana.check_at_sizes("rejoin-closed", "en", PHONE, DESKTOP, PHONE)
        .await?;
    let carl = driver.browser(PHONE.0, PHONE.1).await?;
    carl.goto(&server.url("/")).await?;
    let said = carl
        .wait_text(".notice.closed", |t| {
            t.starts_with("We're closed. We open again ")
        })
        .await?;
    assert!(
        !carl.exists("form.check-in").await?,
        "no way to join: {said}"
    );
    carl.check_at_sizes("home-closed", "en", PHONE, DESKTOP, PHONE)
        .await?;
    carl.choose_language("de").await?;
    carl.wait_text(".notice.closed", |t| {
        t.starts_with("Wir haben geschlossen. Wir öffnen wieder ")
    })
    .await?;
    carl.check_at_sizes("home-closed", "de", PHONE, DESKTOP, PHONE)
        .await?;
    let r = reqwest::Client::new()
        .post(server.url("/api/groups/default/reservations"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await?;
    assert_eq!(body["error"]["code"], "closed", "{body}");

    // Open again: the customer joins.
    save_closed_dates(&admin, "", "serve").await?;
    carl.choose_language("en").await?;
    start_chat(&carl, &server).await?;

    // The audit log lists all of it, newest first.
    admin.goto(&server.url("/admin")).await?;
    let log = admin
        .wait_text("table.audit tbody", |t| t.contains("specialist.add"))
        .await?;
    let order: Vec<usize> = ["group.update", "specialist.disable", "specialist.add"]
        .iter()
        .map(|a| log.find(a).unwrap_or(usize::MAX))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "newest first: {log}");
    assert_eq!(log.matches("group.update").count(), 2, "{log}");
    assert!(log.contains(&format!("closed on {today}")), "{log}");
    // The group's settings and the log below them, in view for the screenshots.
    admin
        .eval("document.querySelector('form.group .time-zone').scrollIntoView()")
        .await?;
    admin
        .check_at_sizes("admin-groups", "en", PHONE, DESKTOP, DESKTOP)
        .await?;

    for b in [admin, doc, anna, carl, dana] {
        assert!(b.severe_logs().await?.is_empty());
        b.close().await?;
    }
    Ok(())
}

/// A specialist who is not an admin is told the page is not for them; the API answers 403.
#[tokio::test]
async fn a_specialist_is_not_let_into_the_admin_page() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    server
        .add_specialist("dr-plain", "e2e-secret-long-enough")
        .await?;
    let driver = Driver::start().await?;
    let b = driver.browser(PHONE.0, PHONE.1).await?;
    sign_in(&b, &server, "/admin", "dr-plain", "e2e-secret-long-enough").await?;
    b.wait_text(".admin .notice", |t| {
        t.starts_with("This page is for administrators")
    })
    .await?;
    assert!(!b.exists("table.specialists").await?);
    b.close().await?;
    Ok(())
}
