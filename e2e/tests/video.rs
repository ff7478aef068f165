//! The call's video between two real browsers with fake cameras, through the real server: both
//! see each other, mute shows on the other side, a reload comes back by itself, and the end of
//! the call stops every track. Runs in a loopback-only network namespace (scripts/test), so
//! every ICE candidate is 127.0.0.1.

use std::time::Duration;

use callqueue_e2e::*;

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

#[tokio::test]
async fn two_browsers_see_each_other_and_recover_from_a_reload() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    into_a_call(&server, &server.base, &alice, &doc, "dr-video").await?;

    for (b, who) in [(&alice, "alice"), (&doc, "doc")] {
        let took = match b
            .wait_video_playing("video.remote", Duration::from_secs(20))
            .await
        {
            Ok(took) => took,
            Err(e) => {
                for (name, b) in [("alice", &alice), ("doc", &doc)] {
                    eprintln!("{name}'s console: {:#?}", b.logs().await?);
                }
                return Err(format!("{who}: {e}").into());
            }
        };
        eprintln!("{who}: remote video playing after {took:?}");
        b.wait_video_playing("video.self", Duration::from_secs(5))
            .await
            .map_err(|e| format!("{who} (self): {e}"))?;
    }
    // One's own picture is mirrored, theirs is not.
    let transforms = doc
        .eval(
            "return ['video.self', 'video.remote'].map(s => \
             getComputedStyle(document.querySelector(s)).transform);",
        )
        .await?;
    assert!(
        transforms[0]
            .as_str()
            .unwrap_or_default()
            .starts_with("matrix(-1"),
        "{transforms}"
    );
    assert_eq!(transforms[1], "none");
    alice.screenshot("call-phone").await?;
    doc.screenshot("call-desktop").await?;

    // Mute shows on the other side; so does the camera going off.
    alice.click("button.toggle.mic").await?;
    doc.wait_text(".badge.peer-muted", |t| t == "The customer is muted")
        .await?;
    alice.click("button.toggle.mic").await?;
    doc.wait_text_for(".video-stage", Duration::from_secs(5), |t| {
        !t.contains("is muted")
    })
    .await?;
    doc.click("button.toggle.camera").await?;
    alice
        .wait_text(".stage-status", |t| t == "The specialist's camera is off")
        .await?;
    doc.click("button.toggle.camera").await?;
    alice
        .wait_video_playing("video.remote", Duration::from_secs(15))
        .await?;

    // The customer reloads: video resumes on both sides within 10 s, nobody does anything.
    alice.client.refresh().await?;
    for (b, who) in [(&alice, "alice"), (&doc, "doc")] {
        let took = b
            .wait_video_playing("video.remote", Duration::from_secs(10))
            .await
            .map_err(|e| format!("{who} after the reload: {e}"))?;
        eprintln!("{who}: video again {took:?} after the reload");
    }

    // Counting works: the camera and microphone are live while in the call.
    assert!(
        alice.live_tracks().await? >= 2,
        "the customer's camera and microphone are counted"
    );
    // The specialist leaves: the call ends and both pages stop every track.
    doc.click_text("Leave call").await?;
    alice
        .wait_text(".alert.call-ended", |t| {
            t == "The specialist ended the call"
        })
        .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alice.live_tracks().await? > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        alice.live_tracks().await?,
        0,
        "the customer's tracks stopped"
    );
    let severe = alice.severe_logs().await?;
    assert!(severe.is_empty(), "alice's console: {severe:#?}");
    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}

/// The same call through a TURN relay only (`iceTransportPolicy: "relay"`): coturn, started
/// here, with credentials the server made from the shared secret. With relay-only ICE there is
/// no other path, so video playing on both sides means the relay carried it.
#[tokio::test]
async fn a_relay_only_call_goes_through_coturn() -> Result<()> {
    let turn = Turn::start().await?;
    let server = Server::start(ServerOptions {
        extra_args: vec![
            "--ice-server".into(),
            format!("turn:127.0.0.1:{}?transport=udp", turn.port),
            "--turn-secret".into(),
            turn.secret.clone(),
            "--ice-relay-only".into(),
        ],
        ..ServerOptions::default()
    })
    .await?;
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    into_a_call(&server, &server.base, &alice, &doc, "dr-relay").await?;
    for (b, who) in [(&alice, "alice"), (&doc, "doc")] {
        if let Err(e) = b
            .wait_video_playing("video.remote", Duration::from_secs(30))
            .await
        {
            for (name, b) in [("alice", &alice), ("doc", &doc)] {
                eprintln!("{name}'s console: {:#?}", b.logs().await?);
            }
            return Err(format!("{who} through the relay: {e}\n{}", turn.log()).into());
        }
    }
    let log = turn.log();
    assert!(
        log.contains("ALLOCATE") && log.contains("success"),
        "coturn allocated relays: {log}"
    );
    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}

/// The device check before the call: on the hold page (a phone) and the console (a desktop),
/// pressing the button shows the mirrored camera preview and the microphone level.
#[tokio::test]
async fn the_device_check_shows_the_camera_before_the_call() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    start_chat(&alice, &server).await?;
    sign_in_specialist(&doc, &server, "dr-check").await?;
    for (b, name) in [
        (&alice, "device-check-phone"),
        (&doc, "device-check-desktop"),
    ] {
        assert_eq!(
            b.video_frames(".device-check video.self").await?,
            Some((0, 0)),
            "nothing is asked for before the button"
        );
        b.click("button.check-devices").await?;
        b.wait_video_playing(".device-check video.self", Duration::from_secs(10))
            .await?;
        b.find(".device-check meter").await?;
        b.find(".device-check select").await?;
        b.screenshot(name).await?;
    }
    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}

/// A second tab of the same customer takes the call over: the first one says so and lets go of
/// its camera; the specialist sees the customer's video again from the new tab.
#[tokio::test]
async fn a_second_tab_takes_the_call_over() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    into_a_call(&server, &server.base, &alice, &doc, "dr-tabs").await?;
    doc.wait_video_playing("video.remote", Duration::from_secs(20))
        .await?;
    let first = alice.client.window().await?;
    let call_url = alice.client.current_url().await?.to_string();
    let second = alice.client.new_window(true).await?.handle;
    alice.client.switch_to_window(second).await?;
    alice.goto(&call_url).await?;
    alice
        .wait_video_playing("video.remote", Duration::from_secs(20))
        .await?;
    doc.wait_video_playing("video.remote", Duration::from_secs(20))
        .await?;
    alice.client.switch_to_window(first).await?;
    alice
        .wait_text(".stage-status", |t| {
            t == "This call continues in another tab"
        })
        .await?;
    assert_eq!(
        alice.live_tracks().await?,
        0,
        "the first tab let go of the camera"
    );
    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}

/// The customer closes the call page: the specialist's call page says they left, and so does
/// the console; when the customer comes back, both know.
#[tokio::test]
async fn the_specialist_sees_the_customer_leave_and_come_back() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let alice = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    into_a_call(&server, &server.base, &alice, &doc, "dr-presence").await?;
    doc.wait_video_playing("video.remote", Duration::from_secs(20))
        .await?;
    let call_url = alice.client.current_url().await?.to_string();

    // Gone from the call page (a closed tab looks the same to the server: its socket closes).
    alice.goto(&server.url("/")).await?;
    doc.wait_text(".stage-status", |t| t == "The customer left")
        .await?;

    // The console, during the call, says where the customer is.
    doc.goto(&server.url("/agent")).await?;
    doc.wait_text(".in-call .presence", |t| {
        t.contains("The customer is not on the call page")
    })
    .await?;
    alice.goto(&call_url).await?;
    doc.wait_text(".in-call .presence", |t| {
        t.contains("The customer is connected")
    })
    .await?;
    doc.wait_text(".notices", |t| t.contains("The customer is in the call"))
        .await?;
    doc.screenshot("console-in-call-desktop").await?;
    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}

/// The label and state of the page's own track of `kind` (`Video` or `Audio`).
async fn own_track(b: &Browser, kind: &str) -> Result<serde_json::Value> {
    b.eval(&format!(
        "const t = document.querySelector('video.self').srcObject.get{kind}Tracks()[0]; \
         return t ? [t.label, t.readyState] : null;"
    ))
    .await
}

/// During the call the customer picks another camera and another microphone: each takes the
/// old one's place on the same connection, and the specialist keeps seeing and hearing them.
#[tokio::test]
async fn another_camera_and_microphone_are_picked_during_the_call() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    // Three fake cameras (and Chromium's three fake microphones). The second fake camera is a
    // depth camera (16-bit grey) that video calls cannot send: the test picks the third.
    let alice = driver
        .browser_with(
            PHONE.0,
            PHONE.1,
            &["--use-fake-device-for-media-stream=device-count=3"],
        )
        .await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    into_a_call(&server, &server.base, &alice, &doc, "dr-devices").await?;
    for b in [&alice, &doc] {
        b.wait_video_playing("video.remote", Duration::from_secs(20))
            .await?;
        b.watch_call().await?;
    }
    let camera = own_track(&alice, "Video").await?;
    let microphone = own_track(&alice, "Audio").await?;

    alice.click("details.call-devices summary").await?;
    alice
        .wait_text("details.call-devices .picker.camera span", |t| {
            t == "Camera"
        })
        .await?;
    // Each picker to the last option that is not the one in use.
    for class in ["camera", "microphone"] {
        let other = alice
            .eval(&format!(
                "const s = document.querySelector('details.call-devices .picker.{class} select'); \
                 const o = [...s.options].reverse().find(o => !o.selected); \
                 return o ? o.value : null;"
            ))
            .await?;
        let other = other
            .as_str()
            .ok_or(format!("a second {class}"))?
            .to_string();
        alice
            .find(&format!("details.call-devices .picker.{class} select"))
            .await?
            .select_by_value(&other)
            .await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let before = if class == "camera" {
            &camera
        } else {
            &microphone
        };
        loop {
            let now = own_track(&alice, if class == "camera" { "Video" } else { "Audio" }).await?;
            if now != *before && now[1] == "live" {
                eprintln!("{class}: {before} -> {now}");
                break;
            }
            if std::time::Instant::now() > deadline {
                let options = alice
                    .eval(&format!(
                        "return [...document.querySelector('details.call-devices .picker.{class} select').options]\
                         .map(o => [o.value, o.text, o.selected]);"
                    ))
                    .await?;
                eprintln!("{options}\n{:#?}", alice.logs().await?);
                return Err(format!("the {class} did not change: {now}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    alice.screenshot("call-devices-phone").await?;
    // The specialist still sees the customer, on the same connection, and hears them.
    if let Err(e) = doc
        .wait_video_playing("video.remote", Duration::from_secs(10))
        .await
    {
        eprintln!("customer's console: {:#?}", alice.logs().await?);
        return Err(e);
    }
    let w = doc.call_watch().await?;
    assert_eq!(w.connections_made, 0, "{w:?}");
    assert!(!doc.exists(".badge.peer-muted").await?, "not muted");
    let w = alice.call_watch().await?;
    assert_eq!(w.connections_made, 0, "{w:?}");
    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}
