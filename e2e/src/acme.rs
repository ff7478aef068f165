//! A real ACME certificate authority on loopback for the HTTPS tests: Debian's `pebble`
//! (Let's Encrypt's test server) and `pebble-challtestsrv`, a DNS server that answers every
//! name with 127.0.0.1, so pebble really fetches the HTTP-01 answer from the server under test.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

use crate::{Result, free_port};

/// A running pebble and its DNS server, killed on drop.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The CA certificate (PEM file) pebble's own HTTPS listener is signed by.
    pub listener_root: PathBuf,
    management: String,
    listener_ca_pem: String,
    dir: tempfile::TempDir,
    _children: Vec<Child>,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port` of 127.0.0.1; certificates live
    /// `validity` (pebble's default, five years, when `None`).
    pub async fn start(http_port: u16, validity: Option<Duration>) -> Result<Self> {
        for tool in ["pebble", "pebble-challtestsrv"] {
            if which(tool).is_none() {
                return Err(format!(
                    "{tool} is not installed (Debian's pebble; scripts/bootstrap)"
                )
                .into());
            }
        }
        let dir = tempfile::tempdir()?;
        // pebble's listener needs a certificate; the ACME client is told to trust its CA.
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate()?;
        let listener_ca_pem = ca.self_signed(&ca_key)?.pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?
            .signed_by(&key, &issuer)?;
        let listener_root = dir.path().join("listener-ca.pem");
        std::fs::write(&listener_root, &listener_ca_pem)?;
        std::fs::write(dir.path().join("cert.pem"), cert.pem())?;
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem())?;

        let (acme, management, dns, dns_management, tls) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let mut pebble = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(validity) = validity {
            pebble["certificateValidityPeriod"] = validity.as_secs().into();
        }
        let config = dir.path().join("pebble.json");
        std::fs::write(&config, serde_json::json!({ "pebble": pebble }).to_string())?;
        let log = |name: &str| std::fs::File::create(dir.path().join(name));
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(Stdio::from(log("challtestsrv.log")?))
            .stderr(Stdio::from(log("challtestsrv.err")?))
            .kill_on_drop(true)
            .spawn()?;
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No artificial delays, no nonces refused at random: the test is about us.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::from(log("pebble.log")?))
            .stderr(Stdio::from(log("pebble.err")?))
            .kill_on_drop(true)
            .spawn()?;
        let dns_up = format!("http://127.0.0.1:{dns_management}/");
        let me = Self {
            directory: format!("https://127.0.0.1:{acme}/dir"),
            listener_root,
            management: format!("https://127.0.0.1:{management}"),
            listener_ca_pem,
            dir,
            _children: vec![challtestsrv, pebble],
        };
        // Up once its directory answers and the DNS server's management port does (bounded).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = me.client()?.get(&me.directory).send().await
                && r.status().is_success()
                && reqwest::get(&dns_up).await.is_ok()
            {
                return Ok(me);
            }
            if Instant::now() > deadline {
                return Err(format!("pebble did not start: {}", me.log()).into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client that trusts pebble's listener.
    fn client(&self) -> Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(
                self.listener_ca_pem.as_bytes(),
            )?)
            .timeout(Duration::from_secs(5))
            .build()?)
    }

    /// pebble's issuing root and intermediate (PEM), new at every start.
    pub async fn issuers(&self) -> Result<(String, String)> {
        let get = |path: &'static str| async move {
            let r = self
                .client()?
                .get(format!("{}{path}", self.management))
                .send()
                .await?;
            Ok::<_, crate::Error>(r.error_for_status()?.text().await?)
        };
        Ok((get("/roots/0").await?, get("/intermediates/0").await?))
    }

    /// What pebble and its DNS server logged.
    pub fn log(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The base64 SHA-256 of a PEM certificate's public key: what Chromium's
/// `--ignore-certificate-errors-spki-list` takes.
pub fn spki_hash(pem: &str) -> Result<String> {
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("a PEM certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)?;
    let digest = Sha256::digest(cert.public_key().raw);
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}
