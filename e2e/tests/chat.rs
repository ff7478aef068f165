//! Talking beside the video, in real browsers against the real server: the chat in the call
//! (both ways, line breaks, text that stays text, safe links, a reload, a server restart while a
//! message is on its way, the title badge and chime while the page is hidden, the transcript
//! closed to a third party, German), the queue's notice and a line to one waiting customer, and
//! axe-core at phone and desktop size on the call pages with the chat open and the hold page
//! with a notice. Runs in the loopback-only network namespace (scripts/test).

use std::time::{Duration, Instant};

use callqueue_e2e::*;
use serde_json::Value;

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

/// The texts of the messages in a page's conversation (read from the DOM, so a closed phone
/// panel, which keeps them for screen readers, counts too).
const TEXTS: &str =
    "return [...document.querySelectorAll('#chat-log li .text')].map(e => e.textContent);";

/// Polls a script until its value satisfies `pred` (at most `within`); answers the value.
async fn wait_js(
    b: &Browser,
    script: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        last = b.eval(script).await?;
        if pred(&last) {
            return Ok(last);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{script}: still {last} after {within:?}").into())
}

async fn texts(b: &Browser) -> Result<Vec<String>> {
    Ok(serde_json::from_value(b.eval(TEXTS).await?)?)
}

/// Waits until the conversation is exactly `want`.
async fn wait_conversation(b: &Browser, want: &[&str]) -> Result<()> {
    let want: Vec<Value> = want.iter().map(|s| Value::from(*s)).collect();
    wait_js(b, TEXTS, Duration::from_secs(10), |v| {
        v.as_array() == Some(&want)
    })
    .await?;
    Ok(())
}

/// Types a message and presses Enter. `\n` in `text` is typed as Shift+Enter.
async fn say(b: &Browser, text: &str) -> Result<()> {
    let keys: String = text
        .split('\n')
        .collect::<Vec<_>>()
        // Shift down, Enter, all keys up: a new line, not a send.
        .join("\u{E008}\u{E007}\u{E000}");
    b.find("#chat-text")
        .await?
        .send_keys(&format!("{keys}\u{E007}"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_chat_carries_text_both_ways_safely_and_survives_reloads_and_restarts() -> Result<()> {
    let mut server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    let sid = into_a_call(&server, &server.base, &alice, &doc, "dr-chat").await?;
    // The chat is there once the call's socket is; on a desktop beside the video.
    doc.find(".chat:not(.hidden) #chat-text").await?;
    alice.find(".chat:not(.hidden) .chat-toggle").await?;
    assert_eq!(
        doc.eval("return getComputedStyle(document.querySelector('.chat-toggle')).display;")
            .await?,
        "none",
        "no button on a desktop: the chat is beside the video"
    );

    // The specialist writes two lines (Shift+Enter) and sends them with Enter.
    say(&doc, "Hello, can you hear me?\nIf not, type here.").await?;
    wait_conversation(&doc, &["Hello, can you hear me?\nIf not, type here."]).await?;
    assert_eq!(
        doc.find("#chat-text")
            .await?
            .prop("value")
            .await?
            .as_deref(),
        Some("")
    );
    // On the customer's phone it waits behind the button, counted, and in the tab's title.
    wait_conversation(&alice, &["Hello, can you hear me?\nIf not, type here."]).await?;
    alice
        .wait_text(".chat-toggle", |t| t == "Chat (1 new)")
        .await?;
    // The tab's title counts it too.
    wait_js(
        &alice,
        "return document.title;",
        Duration::from_secs(5),
        |t| t.as_str().unwrap_or_default().starts_with("(1) "),
    )
    .await?;
    alice.click(".chat-toggle").await?;
    alice.wait_text(".chat-toggle", |t| t == "Chat").await?;
    wait_js(
        &alice,
        "return document.title;",
        Duration::from_secs(5),
        |t| !t.as_str().unwrap_or_default().starts_with('('),
    )
    .await?;
    let who = alice
        .eval("return document.querySelector('#chat-log li .who').textContent;")
        .await?;
    assert!(
        who.as_str()
            .unwrap_or_default()
            .starts_with("Specialist · "),
        "{who}"
    );

    // Markup stays text, a web address is a safe link, nothing runs.
    let hostile = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"> \
                   see https://example.com/a?b=1&c=2.";
    say(&alice, hostile).await?;
    let both = ["Hello, can you hear me?\nIf not, type here.", hostile];
    wait_conversation(&doc, &both).await?;
    wait_conversation(&alice, &both).await?;
    for b in [&alice, &doc] {
        let checked = b
            .eval(
                "const li = document.querySelectorAll('#chat-log li')[1]; \
                 const a = li.querySelectorAll('a'); \
                 return { pwned: window.pwned === undefined ? null : window.pwned, \
                   elements: li.querySelectorAll('script, img').length, links: a.length, \
                   href: a[0] && a[0].getAttribute('href'), rel: a[0] && a[0].rel, \
                   target: a[0] && a[0].target, shown: a[0] && a[0].textContent };",
            )
            .await?;
        assert_eq!(checked["pwned"], Value::Null, "{checked}");
        assert_eq!(checked["elements"], 0, "{checked}");
        assert_eq!(checked["links"], 1, "{checked}");
        assert_eq!(
            checked["href"], "https://example.com/a?b=1&c=2",
            "{checked}"
        );
        assert_eq!(checked["rel"], "noopener noreferrer", "{checked}");
        assert_eq!(checked["target"], "_blank", "{checked}");
        assert_eq!(
            checked["shown"], "https://example.com/a?b=1&c=2",
            "{checked}"
        );
    }
    let who = doc
        .eval("return document.querySelectorAll('#chat-log li .who')[1].textContent;")
        .await?;
    assert!(
        who.as_str().unwrap_or_default().starts_with("Customer · "),
        "{who}"
    );

    // Announced politely to screen readers; axe finds nothing with the chat open.
    assert_eq!(
        alice
            .eval("return document.querySelector('#chat-log').getAttribute('aria-live');")
            .await?,
        "polite"
    );
    alice
        .check_at_sizes("call-chat-customer", "en", PHONE, DESKTOP, PHONE)
        .await?;
    doc.check_at_sizes("call-chat-specialist", "en", PHONE, DESKTOP, DESKTOP)
        .await?;

    // While the customer's page is hidden, news chimes and counts in the tab's title.
    alice
        .eval(
            "window.chimes = 0; \
             const make = AudioContext.prototype.createOscillator; \
             AudioContext.prototype.createOscillator = function () { window.chimes++; return make.call(this); }; \
             Object.defineProperty(document, 'hidden', { configurable: true, get: () => true }); \
             document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));",
        )
        .await?;
    say(&doc, "Are you still there?").await?;
    wait_js(
        &alice,
        "return document.title;",
        Duration::from_secs(10),
        |t| t.as_str().unwrap_or_default().starts_with("(1) "),
    )
    .await?;
    let chimes = alice.eval("return window.chimes;").await?;
    assert!(chimes.as_u64().unwrap_or(0) >= 1, "a chime: {chimes}");
    alice
        .eval(
            "delete document.hidden; \
             document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));",
        )
        .await?;
    wait_js(
        &alice,
        "return document.title;",
        Duration::from_secs(5),
        |t| !t.as_str().unwrap_or_default().starts_with('('),
    )
    .await?;
    let three = [both[0], both[1], "Are you still there?"];

    // A reload shows the whole conversation, once.
    alice.client.refresh().await?;
    alice.find(".chat:not(.hidden)").await?;
    wait_conversation(&alice, &three).await?;
    // What was said before is not news.
    assert_eq!(alice.find(".chat-toggle").await?.text().await?, "Chat");
    alice.click(".chat-toggle").await?;

    // The server restarts while the customer writes: shown as on its way, then delivered once.
    server.kill().await;
    say(&alice, "Sent while the server was away").await?;
    alice
        .wait_text(".chat-unsent li .who", |t| t == "Sending…")
        .await?;
    server.restart().await?;
    let four = [
        three[0],
        three[1],
        three[2],
        "Sent while the server was away",
    ];
    for b in [&doc, &alice] {
        wait_js(b, TEXTS, Duration::from_secs(30), |v| {
            v.as_array().is_some_and(|a| a.len() == 4)
        })
        .await?;
        assert_eq!(texts(b).await?, four, "once, in order");
    }
    wait_js(
        &alice,
        "return document.querySelectorAll('.chat-unsent li').length;",
        Duration::from_secs(5),
        |n| n == 0,
    )
    .await?;

    // The transcript: the call's members only.
    let call_id = alice
        .eval(&format!(
            "return fetch('/api/groups/default/reservations/{sid}').then(r => r.json()).then(r => r.call_id);"
        ))
        .await?;
    let call_id = call_id.as_str().ok_or("no call id")?.to_string();
    let path = format!("/api/calls/appointment/{call_id}/chat");
    let mine = alice
        .eval(&format!("return fetch('{path}').then(r => r.json());"))
        .await?;
    assert_eq!(mine.as_array().map(Vec::len), Some(4), "{mine}");
    let stranger = server.http_client()?;
    join_queue(&stranger, &server.base).await?;
    let r = stranger.get(server.url(&path)).send().await?;
    assert_eq!(r.status(), 404, "a third party");
    assert_eq!(
        reqwest::get(server.url(&path)).await?.status(),
        404,
        "nobody"
    );

    // German.
    alice.choose_language("de").await?;
    alice.wait_text(".chat-toggle", |t| t == "Chat").await?;
    assert_eq!(
        alice
            .eval("return document.querySelector('#chat-text').placeholder;")
            .await?,
        "Nachricht schreiben…"
    );
    wait_conversation(&alice, &four).await?;
    let who = alice
        .eval("return document.querySelectorAll('#chat-log li .who')[1].textContent;")
        .await?;
    assert!(
        who.as_str().unwrap_or_default().starts_with("Sie · "),
        "{who}"
    );
    alice
        .check_at_sizes("call-chat-customer", "de", PHONE, DESKTOP, PHONE)
        .await?;

    // After the call, what was said stays readable; there is nothing more to write.
    doc.click_text("Leave call").await?;
    alice.find(".chat.ended").await?;
    wait_conversation(&alice, &four).await?;
    assert_eq!(
        alice
            .eval("return getComputedStyle(document.querySelector('.chat-form')).display;")
            .await?,
        "none"
    );
    // The streams cut by the restart are the browser's to log; nothing else may be.
    let severe: Vec<_> = alice
        .severe_logs()
        .await?
        .into_iter()
        .filter(|l| !l.contains("net::ERR_"))
        .collect();
    assert!(severe.is_empty(), "alice's console: {severe:#?}");
    // And after a reload, from the transcript (the page's join is refused with 409, as it
    // should be for an ended call).
    alice.client.refresh().await?;
    alice.find(".chat.ended").await?;
    wait_conversation(&alice, &four).await?;

    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_notice_reaches_every_hold_page_and_a_line_only_its_customer() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let ada = driver.browser(PHONE.0, PHONE.1).await?;
    let ben = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    start_chat(&ada, &server).await?;
    let ben_sid = start_chat(&ben, &server).await?;
    sign_in_specialist(&doc, &server, "dr-notice").await?;
    doc.wait_text("h2", |t| t == "Waiting now: 2").await?;

    let word = "We're running about 10 minutes late — thank you for waiting.";
    doc.find("input[name=notice]")
        .await?
        .send_keys(word)
        .await?;
    doc.click("button.post-notice").await?;
    doc.wait_text(".current-notice", |t| t.contains(word))
        .await?;
    for b in [&ada, &ben] {
        b.wait_text("#queue-words", |t| t == word).await?;
    }
    assert_eq!(
        ada.eval("return document.querySelector('#queue-words').getAttribute('role');")
            .await?,
        "status",
        "a polite live region"
    );

    // A line to Ben from his row.
    doc.click(&format!(
        "li.queue-row[data-sid='{ben_sid}'] button.message-one"
    ))
    .await?;
    let line = "Ben, your documents are ready — I'll take you next.";
    doc.find("#line-text").await?.send_keys(line).await?;
    doc.click("button.send-line").await?;
    doc.wait_text(".words-done", |t| t.starts_with("Sent to "))
        .await?;
    ben.wait_text("#queue-words", |t| t.contains(line) && t.contains(word))
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        ada.find("#queue-words").await?.text().await?,
        word,
        "Ben's only"
    );

    // Both survive a reload; axe finds nothing on the hold page with them.
    ben.client.refresh().await?;
    ben.wait_text("#queue-words", |t| t.contains(line) && t.contains(word))
        .await?;
    ben.check_at_sizes("hold-notice", "en", PHONE, DESKTOP, DESKTOP)
        .await?;
    ada.choose_language("de").await?;
    ada.wait_text("#queue-words", |t| t == word).await?;
    ada.check_at_sizes("hold-notice", "de", PHONE, DESKTOP, PHONE)
        .await?;
    doc.screenshot("console-queue-words").await?;

    // Removed: gone from every hold page.
    doc.click("button.clear-notice").await?;
    ada.wait_text_for("#queue-words", Duration::from_secs(10), str::is_empty)
        .await?;
    ben.wait_text("#queue-words", |t| t == line).await?;
    for b in [ada, ben, doc] {
        b.close().await?;
    }
    Ok(())
}
