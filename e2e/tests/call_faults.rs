//! The call as a real network and a real browser try it: every connection to the server cut
//! for 3 s mid-call, all UDP dropped for 5 s, a browser that will not play video by itself, a
//! camera that goes away. Two headless Chromium pages with fake devices, the real server, in
//! the loopback-only network namespace (scripts/test). Each watches its call from inside the
//! page ([`Browser::watch_call`]): connections made, the longest video stall, what the stage
//! said.

use std::time::{Duration, Instant};

use callqueue_e2e::{proxy::Proxy, *};

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

/// Both pages in a call through `base` ([`into_a_call`]), each seeing the other's video.
async fn playing_call(
    server: &Server,
    base: &str,
    customer: &Browser,
    doc: &Browser,
    name: &str,
) -> Result<()> {
    into_a_call(server, base, customer, doc, name).await?;
    for (b, who) in [(customer, "customer"), (doc, "specialist")] {
        if let Err(e) = b
            .wait_video_playing("video.remote", Duration::from_secs(20))
            .await
        {
            for (name, b) in [("customer", customer), ("specialist", doc)] {
                eprintln!("{name}'s console: {:#?}", b.logs().await?);
            }
            return Err(format!("{who}: {e}").into());
        }
    }
    Ok(())
}

/// Waits (bounded) until the other member's video has shown a new frame since `since`.
async fn video_back(b: &Browser, since: Instant, within: Duration) -> Result<Duration> {
    let deadline = since + within;
    loop {
        let w = b.call_watch().await?;
        let last_frame = Instant::now() - Duration::from_millis(w.since_last_frame_ms as u64);
        if last_frame > since && w.since_last_frame_ms < 300.0 {
            return Ok(last_frame - since);
        }
        if Instant::now() > deadline {
            return Err(format!("no new frame {within:?} after: {w:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_signalling_blip_leaves_the_video_playing() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port)).await?;
    let driver = Driver::start().await?;
    let customer = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    playing_call(&server, &proxy.base, &customer, &doc, "dr-blip").await?;
    for b in [&customer, &doc] {
        b.watch_call().await?;
    }

    // Every HTTP, event-stream and WebSocket connection of both pages goes at once, and the
    // server cannot be reached for 3 s; then everything reconnects.
    let cut = proxy.cut(Duration::from_secs(3));
    assert!(cut >= 4, "both pages' streams and sockets were cut ({cut})");
    // Past the outage, the pages' backoff and their signalling's hello.
    tokio::time::sleep(Duration::from_secs(9)).await;

    for (b, who) in [(&customer, "customer"), (&doc, "specialist")] {
        let w = b.call_watch().await?;
        eprintln!("{who}: {w:?}");
        assert_eq!(w.connections_made, 0, "{who}: no new connection: {w:?}");
        assert!(
            w.longest_stall_ms < 1_500.0,
            "{who}: the video stalled for {} ms: {w:?}",
            w.longest_stall_ms
        );
        assert!(
            !w.statuses.iter().any(|s| s.contains("left")),
            "{who}: the other member was never said to have left: {w:?}"
        );
    }
    // Signalling works again afterwards: a mute crosses.
    customer.click("button.toggle.mic").await?;
    doc.wait_text(".badge.peer-muted", |t| t == "The customer is muted")
        .await?;
    for b in [&customer, &doc] {
        // The cut connections' failures are logged by the browser; the app itself failed
        // nowhere.
        let severe = b.severe_logs().await?;
        assert!(
            !severe
                .iter()
                .any(|l| l.contains("panicked") || l.contains("RuntimeError")),
            "{severe:#?}"
        );
    }
    for b in [customer, doc] {
        b.close().await?;
    }
    Ok(())
}

/// Drops every UDP packet in this (loopback-only) network namespace while it lives.
struct UdpOutage;

impl UdpOutage {
    fn start() -> Result<Self> {
        let script = "add table inet cq_outage\n\
            add chain inet cq_outage input { type filter hook input priority 0; }\n\
            add chain inet cq_outage output { type filter hook output priority 0; }\n\
            add rule inet cq_outage input meta l4proto udp drop\n\
            add rule inet cq_outage output meta l4proto udp drop\n";
        let mut nft = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft (Debian nftables, from scripts/bootstrap): {e}"))?;
        use std::io::Write;
        nft.stdin
            .take()
            .ok_or("nft's stdin")?
            .write_all(script.as_bytes())?;
        if !nft.wait()?.success() {
            return Err("nft refused the outage rules (not in the test namespace?)".into());
        }
        Ok(Self)
    }
}

impl Drop for UdpOutage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", "cq_outage"])
            .status();
    }
}

/// All UDP dropped for `secs`, then back: how long until each side's video moves again, and
/// how many times each side's page restarted ICE meanwhile (from its console).
async fn outage(customer: &Browser, doc: &Browser, secs: u64) -> Result<[usize; 2]> {
    let before = Instant::now();
    let outage = UdpOutage::start()?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    drop(outage);
    let restored = Instant::now();
    let mut restarts = [0; 2];
    for (i, (b, who)) in [(customer, "customer"), (doc, "specialist")]
        .into_iter()
        .enumerate()
    {
        let took = video_back(b, restored, Duration::from_secs(5))
            .await
            .map_err(|e| format!("{who}, {secs} s outage: {e}"))?;
        let w = b.call_watch().await?;
        let logs = b.logs().await?;
        restarts[i] = logs
            .iter()
            .filter(|(_, m)| m.contains("call: restarting ICE"))
            .count();
        eprintln!(
            "{who}: video back {took:?} after a {secs} s outage ({:?} in all), {} ICE restarts",
            Instant::now() - before,
            restarts[i]
        );
        assert_eq!(w.connections_made, 0, "{who}: not a start-over: {w:?}");
    }
    Ok(restarts)
}

#[tokio::test]
async fn a_media_outage_is_mended_without_a_start_over() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let customer = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    playing_call(&server, &server.base, &customer, &doc, "dr-outage").await?;
    for (b, who) in [(&customer, "customer"), (&doc, "specialist")] {
        b.watch_call().await?;
        // A release build keeps the call's internals out of the console...
        let internals: Vec<_> = b
            .logs()
            .await?
            .into_iter()
            .filter(|(_, m)| m.contains("call: ") || m.contains("session"))
            .collect();
        assert!(internals.is_empty(), "{who}'s console: {internals:?}");
        // ... until someone debugging asks for them (counted below).
        b.eval("localStorage.setItem('callqueue.debug', '1'); return true;")
            .await?;
    }
    // 5 s: the browsers' own ICE checks may bring the link back before the specialist's
    // patience for a disconnected link runs out; either way no connection is rebuilt.
    outage(&customer, &doc, 5).await?;
    // Longer: the specialist restarts ICE when its patience runs out (the browsers' own checks
    // sometimes win the race on a loaded machine, so whether it had to is not asserted: that
    // failed once in a CI run with the video back in 0.8 s and no restart), the customer's
    // page leaves that to it, and the same connections carry the video again.
    let [customer_restarts, doc_restarts] = outage(&customer, &doc, 10).await?;
    println!("after the 10 s outage the specialist restarted ICE {doc_restarts} time(s)");
    assert_eq!(customer_restarts, 0, "only the specialist restarts ICE");
    for b in [customer, doc] {
        b.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_refused_autoplay_offers_a_tap_to_play() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    // A browser that plays sound only after a person has touched the page.
    let customer = driver
        .browser_with(
            PHONE.0,
            PHONE.1,
            &["--autoplay-policy=document-user-activation-required"],
        )
        .await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    playing_call(&server, &server.base, &customer, &doc, "dr-autoplay").await?;
    // The customer continues without camera or microphone (a page that captures may always
    // play sound), and reloads: a reload is not a touch, so the other member's video (with
    // sound) may not start by itself.
    customer
        .eval(
            "localStorage.setItem('callqueue.devices', \
             JSON.stringify({ audio: false, video: false })); return true;",
        )
        .await?;
    customer.client.refresh().await?;
    let button = customer
        .wait_text("button.tap-to-play", |t| {
            t == "Tap to start the sound and video"
        })
        .await?;
    assert!(!button.is_empty());
    customer.screenshot("call-tap-to-play").await?;
    customer.click("button.tap-to-play").await?;
    customer
        .wait_video_playing("video.remote", Duration::from_secs(10))
        .await?;
    assert!(
        !customer.exists("button.tap-to-play").await?,
        "gone once playing"
    );
    for b in [customer, doc] {
        b.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_lost_camera_is_said_and_another_is_one_press_away() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let driver = Driver::start().await?;
    let customer = driver.browser(PHONE.0, PHONE.1).await?;
    let doc = driver.browser(DESKTOP.0, DESKTOP.1).await?;
    playing_call(&server, &server.base, &customer, &doc, "dr-camera").await?;

    // The camera goes away as an unplugged one does: its track ends.
    customer
        .eval(
            "const t = document.querySelector('video.self').srcObject.getVideoTracks()[0]; \
             t.stop(); t.dispatchEvent(new Event('ended')); return true;",
        )
        .await?;
    customer
        .wait_text(".media-error", |t| t.starts_with("Your camera stopped"))
        .await?;
    customer
        .wait_text("button.toggle.camera", |t| t == "Turn camera on")
        .await?;
    doc.wait_text(".stage-status", |t| t == "The customer's camera is off")
        .await?;
    customer.screenshot("call-camera-lost").await?;
    // Another camera (here the same fake one, opened again) is one press away.
    customer.click("button.toggle.camera").await?;
    doc.wait_video_playing("video.remote", Duration::from_secs(15))
        .await?;
    assert!(!customer.exists(".media-error").await?, "the words go");
    for b in [customer, doc] {
        b.close().await?;
    }
    Ok(())
}
