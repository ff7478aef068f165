//! The customer's journey in real browsers, once in English and once in German: the check-in
//! reaching the specialist (and only them), "it's your turn" with "I need a moment", the start
//! page offering the way back, the end said in the customer's words — with an axe-core audit of
//! every page on the way, and screenshots of each at phone and desktop sizes.

use std::time::Duration;

use callqueue_e2e::{
    Browser, Driver, Result, Server, ServerOptions, join_when_called, sign_in_named_specialist_at,
    sign_in_specialist,
};

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

/// What each language says where the test looks.
struct Words {
    code: &'static str,
    home: &'static str,
    hold: &'static str,
    back_queued: &'static str,
    turn: &'static str,
    join_within: &'static str,
    /// The console's greeting, by the specialist's display name.
    hello: &'static str,
    extended: &'static str,
    back_in_call: &'static str,
    specialist_ended: &'static str,
    /// The question after the call, the thanks for an answer, and the console's figure.
    how_was_it: &'static str,
    thanks: &'static str,
    rating: &'static str,
    reason: &'static str,
}

/// What customers see the journey's specialist as (never their sign-in id).
const SPECIALIST: &str = "Dr. Lena Roth";

const ENGLISH: Words = Words {
    code: "en",
    home: "Talk to a specialist",
    hold: "You are in the queue",
    back_queued: "You are number 1 in the queue.",
    turn: "It's your turn",
    join_within: "Dr. Lena Roth is waiting for you — join within ",
    hello: "Hello, Dr. Lena Roth",
    extended: "You have a little more time. Join when you are ready.",
    back_in_call: "Your call is in progress.",
    specialist_ended: "The specialist ended the call",
    how_was_it: "How was your call?",
    thanks: "Thank you for your feedback.",
    rating: "4.0 of 5 (",
    reason: "My router blinks red since Monday",
};

const GERMAN: Words = Words {
    code: "de",
    home: "Mit einer Fachkraft sprechen",
    hold: "Sie sind in der Warteschlange",
    back_queued: "Sie sind Nummer 1 in der Warteschlange.",
    turn: "Sie sind an der Reihe",
    join_within: "Dr. Lena Roth wartet auf Sie – bitte treten Sie innerhalb von ",
    hello: "Hallo, Dr. Lena Roth",
    extended: "Sie haben etwas mehr Zeit. Treten Sie bei, sobald Sie bereit sind.",
    back_in_call: "Ihr Gespräch läuft.",
    specialist_ended: "Die Fachkraft hat das Gespräch beendet",
    how_was_it: "Wie war Ihr Gespräch?",
    thanks: "Vielen Dank für Ihre Rückmeldung.",
    rating: "4.0 von 5 (",
    reason: "Mein Router blinkt seit Montag rot",
};

/// Audits the page and saves it at phone and desktop sizes; leaves the window at `back_to`.
async fn check(b: &Browser, name: &str, lang: &str, back_to: (u32, u32)) -> Result<()> {
    b.check_at_sizes(name, lang, PHONE, DESKTOP, back_to).await
}

async fn journey(server: &Server, driver: &Driver, words: &Words) -> Result<()> {
    let lang = words.code;
    let anna = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;

    // The start page in the chosen language, remembered across a reload.
    anna.goto(&server.url("/")).await?;
    anna.choose_language(lang).await?;
    anna.goto(&server.url("/")).await?;
    anna.wait_attr("html", "lang", |l| l == lang).await?;
    anna.wait_text("h1", |t| t == words.home).await?;
    check(&anna, "home", lang, PHONE).await?;
    if lang == "en" {
        // The audit can fail: a field without a label is found.
        anna.eval(
            "document.body.appendChild(Object.assign(document.createElement('input'), \
             { id: 'unlabelled' }))",
        )
        .await?;
        let found = anna.axe().await?;
        assert!(found.iter().any(|v| v.starts_with("label ")), "{found:#?}");
        anna.eval("document.getElementById('unlabelled').remove()")
            .await?;
    }

    // Check-in: a name and a reason.
    anna.find("#check-in-name")
        .await?
        .send_keys("  Anna Berg ")
        .await?;
    anna.find("#check-in-reason")
        .await?
        .send_keys(words.reason)
        .await?;
    anna.click("form.check-in button[type=submit]").await?;
    anna.wait_url(|u| u.contains("/hold/r/")).await?;
    // The eyebrow heading is styled in capitals.
    anna.wait_text("h1", |t| t.to_lowercase() == words.hold.to_lowercase())
        .await?;
    anna.wait_text(".position", |t| t == "1").await?;
    check(&anna, "hold", lang, PHONE).await?;

    // The start page knows her place and takes her back to it.
    anna.goto(&server.url("/")).await?;
    anna.wait_text(".come-back p", |t| t == words.back_queued)
        .await?;
    check(&anna, "home-back", lang, PHONE).await?;
    anna.click(".come-back a").await?;
    anna.wait_url(|u| u.contains("/hold/r/")).await?;
    anna.wait_text(".position", |t| t == "1").await?;

    // The specialist sees who she is and why she came.
    let name = format!("dr-journey-{lang}");
    sign_in_named_specialist_at(&doc, server, &server.base, &name, Some(SPECIALIST)).await?;
    doc.choose_language(lang).await?;
    doc.wait_text("h1", |t| t == words.hello).await?;
    doc.wait_text(".queue-list li .who", |t| t.ends_with("Anna Berg"))
        .await?;
    doc.wait_text(".queue-list li .reason", |t| t == words.reason)
        .await?;
    check(&doc, "console", lang, DESKTOP).await?;
    // Nowhere on her own pages.
    assert!(!anna.body_text().await?.contains(words.reason));

    // The console's figures, and a 15-minute session chosen for the next call.
    doc.wait_text(".figures .longest", |t| t != "–").await?;
    let served_before: u32 = doc
        .wait_text(".figures .served", |t| t.parse::<u32>().is_ok())
        .await?
        .parse()?;
    doc.find(".session-length select")
        .await?
        .select_by_value("15")
        .await?;

    // Her turn: told, with the time to join, and one "I need a moment".
    doc.click("button.accept-next").await?;
    doc.wait_url(|u| u.contains("/join/r/")).await?;
    anna.wait_text("h1", |t| t == words.turn).await?;
    anna.wait_text(".join-within", |t| t.starts_with(words.join_within))
        .await?;
    let title = anna.client.title().await?;
    assert!(title.starts_with(words.turn), "title {title:?}");
    assert!(
        !anna.body_text().await?.contains(&name),
        "the customer never sees the sign-in id"
    );
    check(&anna, "turn", lang, PHONE).await?;
    anna.click("button.more-time").await?;
    anna.wait_text(".turn .hint", |t| t == words.extended)
        .await?;
    assert!(!anna.exists("button.more-time").await?, "asked once only");

    // In the call: the specialist's page shows the check-in; hers does not.
    join_when_called(&anna).await?;
    for b in [&anna, &doc] {
        b.wait_text(".timer-value", |t| t != "--:--").await?;
    }
    doc.wait_text(".check-in-card .who", |t| t == "Anna Berg")
        .await?;
    // The session is the 15 minutes chosen, on both sides.
    for b in [&anna, &doc] {
        b.wait_text(".timer-value", |t| {
            let secs = t
                .split(':')
                .fold(0, |acc, p| acc * 60 + p.parse::<u32>().unwrap_or(99_999));
            (850..=900).contains(&secs)
        })
        .await?;
    }
    doc.wait_text(".check-in-card .reason", |t| t == words.reason)
        .await?;
    assert!(!anna.exists(".check-in-card").await?);
    check(&anna, "call", lang, PHONE).await?;
    check(&doc, "call-specialist", lang, DESKTOP).await?;

    // The start page during the call: the way back to it.
    anna.goto(&server.url("/")).await?;
    anna.wait_text(".come-back p", |t| t == words.back_in_call)
        .await?;
    anna.click(".come-back a").await?;
    anna.wait_url(|u| u.contains("/join/r/")).await?;
    anna.wait_text(".timer-value", |t| t != "--:--").await?;

    // The specialist ends it: said in her words, and the start page offers a new chat again.
    doc.click("button.leave").await?;
    anna.wait_text_for(".alert.call-ended", Duration::from_secs(10), |t| {
        t == words.specialist_ended
    })
    .await?;
    // How was it? Asked once, in her words; sent with a comment (kept as text).
    anna.wait_text(".feedback legend", |t| t == words.how_was_it)
        .await?;
    check(&anna, "call-ended", lang, PHONE).await?;
    anna.click(".feedback input[name=rating][value='4']")
        .await?;
    anna.find("#feedback-comment")
        .await?
        .send_keys("<b>Kind</b> and quick")
        .await?;
    anna.click(".feedback button.send-feedback").await?;
    anna.wait_text(".feedback-thanks", |t| t == words.thanks)
        .await?;
    anna.goto(anna.client.current_url().await?.as_ref()).await?;
    anna.wait_text(".alert.call-ended", |t| t == words.specialist_ended)
        .await?;
    assert!(
        !anna.find("form.feedback").await?.is_displayed().await?,
        "asked once per call"
    );
    anna.goto(&server.url("/")).await?;
    anna.find("#check-in-name").await?;
    assert!(!anna.exists(".come-back").await?);

    // Back on the console: one more served today.
    doc.goto(&server.url("/agent")).await?;
    doc.wait_text(".figures .served", |t| {
        t.parse::<u32>().is_ok_and(|n| n == served_before + 1)
    })
    .await?;
    // Her rating and comment on the day's figures.
    doc.wait_text(".figures .rating", |t| t.starts_with(words.rating))
        .await?;
    doc.wait_text(".feedback-list .comment", |t| t == "<b>Kind</b> and quick")
        .await?;

    // The pages off the main path.
    for (path, page) in [
        ("/rejoin/r/nosuch", "rejoin"),
        ("/no/such/page", "not-found"),
    ] {
        anna.goto(&server.url(path)).await?;
        anna.find("h1").await?;
        check(&anna, page, lang, PHONE).await?;
    }
    doc.click("button.sign-out").await?;
    doc.find("input[name=user_id]").await?;
    check(&doc, "sign-in", lang, DESKTOP).await?;
    for b in [anna, doc] {
        b.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_journey_in_english_and_german_passes_an_accessibility_audit() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    journey(&server, &driver, &ENGLISH).await?;
    journey(&server, &driver, &GERMAN).await?;
    Ok(())
}

/// A specialist serving two groups sees both named and switches the queue between them; the
/// console's layout at desktop and phone size passes the audit.
#[tokio::test]
async fn the_console_serves_several_groups() -> Result<()> {
    let server = Server::start(ServerOptions {
        groups: "default,billing".into(),
        ..ServerOptions::default()
    })
    .await?;
    let driver = Driver::start().await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    let http = reqwest::Client::new();
    callqueue_e2e::join_group(&http, &server.base, "billing").await?;
    callqueue_e2e::join_group(&http, &server.base, "billing").await?;
    sign_in_specialist(&doc, &server, "dr-groups").await?;
    doc.wait_text(".serving", |t| t == "You serve: default, billing")
        .await?;
    doc.wait_text("h2", |t| t == "Waiting now: 0").await?;
    doc.find(".group-filter select")
        .await?
        .select_by_value("billing")
        .await?;
    doc.wait_text("h2", |t| t == "Waiting now: 2").await?;
    doc.wait_text(".current .next-who", |t| t == "A customer")
        .await?;
    check(&doc, "console-groups", "en", DESKTOP).await?;
    doc.click("button.accept-next").await?;
    doc.wait_url(|u| u.contains("/join/r/")).await?;
    doc.close().await?;
    Ok(())
}
