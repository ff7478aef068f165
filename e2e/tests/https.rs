//! HTTPS with a certificate from a real ACME authority: pebble (Let's Encrypt's test server) on
//! loopback validates the server's HTTP-01 answer for `calls.test` (its DNS answers 127.0.0.1),
//! Chromium opens `https://calls.test:PORT/`, a secure context that is not `localhost`, and the
//! camera works there; a specialist there calls the customer (WebSockets over TLS, HTTP/2); the certificate is renewed two thirds into its (shortened) life without
//! a restart; plain HTTP redirects.

use std::time::{Duration, Instant};

use callqueue_e2e::{
    Driver, Https, Result, Server, ServerOptions,
    acme::{Pebble, spki_hash},
    free_port, join_when_called, sign_in_specialist_at, start_chat_at,
};

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);
const HOST: &str = "calls.test";
/// The certificates' life here: renewed at two thirds of it.
const LIFE: Duration = Duration::from_secs(45);

/// The certificate the server presents now (DER).
async fn served_certificate(server: &Server) -> Result<Vec<u8>> {
    let r = server
        .http_client_with(|c| c.tls_info(true))?
        .get(server.url("/api/health"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .ok_or("no TLS information")?;
    Ok(info.peer_certificate().ok_or("no certificate")?.to_vec())
}

#[tokio::test]
async fn https_from_an_acme_authority_gives_the_camera_and_renews_itself() -> Result<()> {
    let http_port = free_port();
    let pebble = Pebble::start(http_port, Some(LIFE)).await?;
    let (root, intermediate) = pebble.issuers().await?;
    let acme_dir = tempfile::tempdir()?;
    let started = Instant::now();
    let server = Server::start(ServerOptions {
        https: Some(Https {
            host: HOST.into(),
            root_pem: root.clone(),
        }),
        extra_args: vec![
            "--acme-domain".into(),
            HOST.into(),
            "--acme-email".into(),
            "ops@calls.test".into(),
            "--acme-directory".into(),
            pebble.directory.clone(),
            "--acme-directory-root".into(),
            pebble.listener_root.display().to_string(),
            "--acme-dir".into(),
            acme_dir.path().display().to_string(),
            "--http-addr".into(),
            format!("127.0.0.1:{http_port}"),
        ],
        ..Default::default()
    })
    .await
    .map_err(|e| format!("{e}\npebble: {}", pebble.log()))?;
    println!(
        "first certificate served {:?} after start",
        started.elapsed()
    );
    let first = served_certificate(&server).await?;

    // The account key and the certificate's key are the server's user's alone.
    for file in ["account.json", "key.pem", "cert.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(acme_dir.path().join(file))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    // HSTS on every answer.
    let r = server.http_client()?.get(server.url("/")).send().await?;
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);

    // Chromium trusts pebble's issuers for this test only and reaches calls.test on loopback.
    let driver = Driver::start().await?;
    let trust = format!(
        "--ignore-certificate-errors-spki-list={},{}",
        spki_hash(&root)?,
        spki_hash(&intermediate)?
    );
    let map = format!("--host-resolver-rules=MAP {HOST} 127.0.0.1");
    let b = driver
        .browser_with(PHONE.0, PHONE.1, &[&trust, &map])
        .await?;
    start_chat_at(&b, &server.base).await?;
    assert_eq!(
        b.eval("return window.isSecureContext").await?,
        serde_json::json!(true),
        "https://calls.test is a secure context"
    );
    assert!(
        b.client
            .current_url()
            .await?
            .as_str()
            .starts_with("https://calls.test:")
    );
    b.click("button.check-devices").await?;
    b.wait_video_playing(".device-check video.self", Duration::from_secs(10))
        .await?;
    b.screenshot("https-device-check-phone").await?;

    // A specialist over HTTPS too: the console's channel and the call's signalling are
    // WebSockets over TLS, the streams HTTP/2; the call connects with video both ways.
    let doc = driver
        .browser_with(DESKTOP.0, DESKTOP.1, &[&trust, &map])
        .await?;
    sign_in_specialist_at(&doc, &server, &server.base, "dr-tls").await?;
    doc.wait_text("h2", |t| t == "Waiting now: 1").await?;
    doc.click("button.accept-next").await?;
    join_when_called(&b).await?;
    for side in [&b, &doc] {
        side.wait_video_playing("video.remote", Duration::from_secs(20))
            .await?;
        assert!(side.severe_logs().await?.is_empty());
    }
    let protocol = doc
        .eval("return performance.getEntriesByType('navigation')[0].nextHopProtocol")
        .await?;
    assert_eq!(protocol, serde_json::json!("h2"), "pages over HTTP/2");
    for side in [b, doc] {
        side.close().await?;
    }

    // Plain HTTP: a permanent redirect to HTTPS, the path and query kept.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = plain
        .get(format!("http://127.0.0.1:{http_port}/hold/r/x?lang=de"))
        .header("host", HOST)
        .send()
        .await?;
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://{HOST}:{}/hold/r/x?lang=de", server.port).as_str()
    );

    // Renewed two thirds into its life (30 s of 45), served without a restart; the metric moves.
    let expiry = || async {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", server.metrics_port))
            .await?
            .text()
            .await?;
        let line = text
            .lines()
            .find(|l| l.starts_with("callqueue_tls_certificate_expiry_timestamp_seconds "))
            .ok_or("no expiry metric")?
            .to_string();
        Ok::<_, callqueue_e2e::Error>(line)
    };
    let first_expiry = expiry().await?;
    let deadline = Instant::now() + LIFE + Duration::from_secs(30);
    loop {
        if served_certificate(&server).await? != first {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "renewed within the certificate's life; log: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("renewed {:?} after start", started.elapsed());
    assert_ne!(expiry().await?, first_expiry, "the expiry metric follows");
    Ok(())
}
