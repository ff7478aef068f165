//! HTTPS in the server: `--tls-cert`/`--tls-key` files, read again when they change; HTTP/2 and
//! HTTP/1.1 (with the reservation stream's fast path) over TLS; HSTS and Secure cookies; plain
//! HTTP beside it redirecting to HTTPS. (Certificates from an ACME authority are tested end to
//! end against pebble: `e2e/tests/https.rs`.)

mod common;

use std::{path::Path, time::Duration};

use callqueue_server::tls::Source;
use common::{TestServer, sid};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A test certificate authority.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for 127.0.0.1 signed by this authority, written to `dir`: its DER.
    fn issue(&self, dir: &Path) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        cert.der().to_vec()
    }

    fn client(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap())
            .tls_info(true)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
    }
}

/// A server speaking HTTPS with a certificate from `ca`, plain HTTP beside it.
async fn https_server(ca: &Ca) -> (TestServer, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let der = ca.issue(&certs);
    let mut config = common::test_config(&dir).await;
    config.tls = Some(Source::Files {
        cert: certs.join("cert.pem"),
        key: certs.join("key.pem"),
    });
    config.http_addr = Some("127.0.0.1:0".parse().unwrap());
    (TestServer::start_in(dir, config).await, certs, der)
}

fn peer_certificate(r: &reqwest::Response) -> Vec<u8> {
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("a TLS response names its certificate")
        .to_vec()
}

/// Reads a stream's first event (within 10 s).
async fn first_event(r: &mut reqwest::Response) {
    let first = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .expect("the first event within 10 s")
        .unwrap()
        .expect("a first event");
    let first = String::from_utf8_lossy(&first);
    assert!(first.contains("data: {"), "{first}");
}

#[tokio::test]
async fn https_serves_http2_and_http1_with_hsts_and_secure_cookies() {
    let ca = Ca::new();
    let (server, _, der) = https_server(&ca).await;
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );

    let h2 = ca.client().build().unwrap();
    let r = h2.get(server.url("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "HTTP/2 by ALPN");
    assert_eq!(peer_certificate(&r), der);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000",
        "HSTS on every answer"
    );

    // A customer joins over HTTP/1.1: the cookie is Secure, and the reservation stream on a new
    // connection is written by the accept loop (its answer closes the connection).
    let h1 = ca.client().http1_only().build().unwrap();
    let r = h1
        .post(server.url("/api/groups/default/reservations"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let reservation: serde_json::Value = r.json().await.unwrap();
    let stream_url = server.url(&format!("/api/events/g/default/r/{}", sid(&reservation)));
    let fresh = ca.client().http1_only().build().unwrap();
    // The fresh client has no cookie: copy the session over.
    let session = cookie.split(';').next().unwrap().to_string();
    let mut r = fresh
        .get(&stream_url)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["connection"],
        "close",
        "the accept loop's stream"
    );
    first_event(&mut r).await;

    // The same stream over HTTP/2, through the router.
    let mut r = h2
        .get(&stream_url)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    first_event(&mut r).await;
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_a_restart() {
    let ca = Ca::new();
    let (server, certs, first) = https_server(&ca).await;
    let client = || ca.client().http1_only().build().unwrap();
    let served = || async {
        let r = client()
            .get(server.url("/api/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        peer_certificate(&r)
    };
    assert_eq!(served().await, first);

    // A renewal tool writes the key first: a key that does not match the old certificate is
    // not taken up, and the old pair goes on being served.
    let other = tempfile::tempdir().unwrap();
    let second = ca.issue(other.path());
    std::fs::copy(other.path().join("key.pem"), certs.join("key.pem")).unwrap();
    tokio::time::sleep(callqueue_server::tls::FILE_CHECK * 2).await;
    assert_eq!(served().await, first, "a half-written pair is not used");

    std::fs::copy(other.path().join("cert.pem"), certs.join("cert.pem")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if served().await == second {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate is served within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn plain_http_redirects_to_https() {
    let ca = Ca::new();
    let (server, _, _) = https_server(&ca).await;
    let http = server.http.clone().expect("a plain-HTTP listener");
    let https_port = server.base.rsplit(':').next().unwrap();
    let client = ca.client().build().unwrap();
    let r = client
        .post(format!("{http}/hold/r/abc?x=1"))
        .header("host", "calls.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308, "a redirect that keeps the method");
    assert_eq!(
        r.headers()["location"],
        format!("https://calls.test:{https_port}/hold/r/abc?x=1").as_str()
    );
    let r = client
        .get(format!("{http}/.well-known/acme-challenge/unknown"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no such challenge");
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_start_with_a_reason() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    ca.issue(dir.path());
    let other = tempfile::tempdir().unwrap();
    ca.issue(other.path());
    let mut config = common::test_config(&dir).await;
    for (cert, key, says) in [
        (
            dir.path().join("none.pem"),
            dir.path().join("key.pem"),
            "none.pem",
        ),
        (
            dir.path().join("cert.pem"),
            other.path().join("key.pem"),
            "does not belong",
        ),
        (
            dir.path().join("key.pem"),
            dir.path().join("key.pem"),
            "no certificate",
        ),
    ] {
        config.tls = Some(Source::Files { cert, key });
        let Err(e) = callqueue_server::app::Server::bind(config.clone()).await else {
            panic!("started with unusable files");
        };
        assert!(e.to_string().contains(says), "{e}");
    }
}
