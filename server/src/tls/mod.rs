//! HTTPS: the certificate the server presents, from files (`--tls-cert`, `--tls-key`, read again
//! when they change, so a renewal needs no restart) or from an ACME certificate authority
//! (`--acme-domain`, `acme.rs`); and the plain-HTTP listener beside it, which answers ACME's
//! HTTP-01 challenges and sends everything else to HTTPS.

pub mod acme;
pub mod redirect;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    ServerConfig,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// PEM files: the chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// An ACME certificate authority.
    Acme(acme::Settings),
}

/// A certificate's validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// When to renew: two thirds into its life (Let's Encrypt's advice; 60 of 90 days).
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + life * 2 / 3
    }
}

/// The certificate TLS handshakes get; replaced whole when a new one is loaded.
#[derive(Debug, Default)]
pub struct Certificates {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok()?.clone()
    }
}

impl Certificates {
    /// Presents `cert` from now on, and reports its expiry as a metric.
    pub fn install(&self, cert: LoadedCert) {
        let expiry = cert
            .validity
            .not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        metrics::gauge!(crate::metrics::TLS_CERTIFICATE_EXPIRY).set(expiry.as_secs_f64());
        if let Ok(mut current) = self.current.write() {
            *current = Some(cert.key);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.current.read().map(|c| c.is_none()).unwrap_or(true)
    }
}

/// A parsed certificate chain with its key and validity.
#[derive(Debug)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub validity: Validity,
}

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("no certificate in the PEM")]
    NoCertificate,
    #[error("the certificate PEM: {0}")]
    CertificatePem(rustls_pki_types::pem::Error),
    #[error("the private key PEM: {0}")]
    KeyPem(rustls_pki_types::pem::Error),
    #[error("the private key: {0}")]
    Key(rustls::Error),
    #[error("the private key does not belong to the certificate")]
    Mismatch,
    #[error("the certificate: {0}")]
    Certificate(String),
}

/// Parses a PEM chain (leaf first) and its PEM private key.
pub fn parse(cert_pem: &[u8], key_pem: &[u8]) -> Result<LoadedCert, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::CertificatePem)?;
    let leaf = chain.first().ok_or(TlsError::NoCertificate)?;
    let validity = validity(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(TlsError::Key)?;
    let key = CertifiedKey::new(chain, signer);
    match key.keys_match() {
        Ok(()) => {}
        // Keys of a kind rustls cannot compare are taken on trust.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => return Err(TlsError::Mismatch),
    }
    Ok(LoadedCert {
        key: Arc::new(key),
        validity,
    })
}

/// Reads and parses a chain and key from files.
pub fn load(cert: &Path, key: &Path) -> Result<LoadedCert, TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| TlsError::Read(p.to_path_buf(), e));
    parse(&read(cert)?, &read(key)?)
}

/// A certificate's validity period.
pub fn validity(der: &CertificateDer<'_>) -> Result<Validity, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    Ok(Validity {
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
    })
}

/// The rustls settings of the HTTPS listener: HTTP/2 offered before HTTP/1.1.
// ring's provider is deprecated for lacking post-quantum key exchange; aws-lc-rs, which has it,
// needs cmake and a long C build on every fresh machine. Classical X25519 and P-256 remain what
// most clients negotiate today; switch when ring gains ML-KEM.
#[allow(deprecated)]
pub fn server_config(certs: Arc<Certificates>) -> Arc<ServerConfig> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// How often `--tls-cert` and `--tls-key` are looked at for a change.
pub const FILE_CHECK: Duration = Duration::from_secs(2);

/// Loads the files again whenever either changes (by size or modification time), until
/// `shutdown`. A renewal tool writes the two files one after the other, so a chain and key that
/// do not match yet are skipped until they do; the certificate presented meanwhile stays.
///
/// Why polling rather than inotify (the `notify` crate): two `stat` calls every two seconds
/// cost nothing, and polling sees a file replaced by a rename or through a symlink (certbot's
/// `live/` links) the same as one written in place, where inotify watches need re-arming.
pub async fn watch_files(
    certs: Arc<Certificates>,
    cert: PathBuf,
    key: PathBuf,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let mut seen = (stamp(&cert), stamp(&key));
    let mut tick = tokio::time::interval(FILE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let now = (stamp(&cert), stamp(&key));
        if now == seen {
            continue;
        }
        match load(&cert, &key) {
            Ok(loaded) => {
                tracing::info!(cert = %cert.display(), "loaded the changed certificate");
                certs.install(loaded);
                seen = now;
            }
            // Tried again at the next change of either file (or when the pair matches).
            Err(e) => {
                tracing::warn!(error = %e, "the changed certificate files cannot be used yet")
            }
        }
    }
}

/// ACME HTTP-01 answers waiting to be fetched: token → key authorization.
#[derive(Debug, Default, Clone)]
pub struct Challenges(Arc<Mutex<std::collections::HashMap<String, String>>>);

impl Challenges {
    pub fn insert(&self, token: String, answer: String) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(token, answer);
        }
    }

    pub fn remove(&self, token: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(token);
        }
    }

    pub fn answer(&self, token: &str) -> Option<String> {
        self.0.lock().ok()?.get(token).cloned()
    }
}
