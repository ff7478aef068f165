//! Certificates from an ACME certificate authority (Let's Encrypt by default): obtained at start
//! when none is stored, renewed two thirds into their life, proven by HTTP-01 (answered on the
//! plain-HTTP listener, `redirect.rs`). The account key and the certificate are kept beside the
//! database, readable by the server's user only.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tokio_util::sync::CancellationToken;

use super::{Certificates, Challenges, LoadedCert};

/// Let's Encrypt's production directory (`--acme-directory`'s default).
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory: untrusted certificates, generous rate limits.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// What `--acme-*` set.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The names the certificate is for.
    pub domains: Vec<String>,
    /// Where the authority writes about expiry or problems.
    pub email: Option<String>,
    /// The authority's directory URL.
    pub directory: String,
    /// A CA certificate (PEM) the directory's HTTPS is checked against instead of the system's
    /// roots: for a test authority such as pebble.
    pub directory_root: Option<PathBuf>,
    /// Where the account and the certificate are kept.
    pub dir: PathBuf,
}

const ACCOUNT: &str = "account.json";
const CERT: &str = "cert.pem";
const KEY: &str = "key.pem";
/// The names the stored certificate is for (a changed `--acme-domain` needs a new one).
const DOMAINS: &str = "domains";

/// Keeps `certs` supplied until `shutdown`: the stored certificate first, if it is for these
/// names; a new one whenever none is good or the current one is due for renewal. Failures are
/// retried with a growing pause (at most an hour), and the certificate in use stays.
pub async fn run(
    settings: Settings,
    certs: Arc<Certificates>,
    challenges: Challenges,
    shutdown: CancellationToken,
) {
    let mut renew_at = match stored(&settings) {
        Some(cert) => {
            let at = cert.validity.renew_at();
            tracing::info!(dir = %settings.dir.display(), "using the stored certificate");
            certs.install(cert);
            at
        }
        None => SystemTime::now(),
    };
    let mut failures = 0u32;
    loop {
        let wait = renew_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
        let obtained = tokio::select! {
            obtained = obtain(&settings, &challenges) => obtained,
            _ = shutdown.cancelled() => return,
        };
        match obtained.and_then(|(chain, key)| {
            let cert = super::parse(chain.as_bytes(), key.as_bytes())
                .map_err(|e| format!("the authority's certificate: {e}"))?;
            save(&settings, &chain, &key)?;
            Ok(cert)
        }) {
            Ok(cert) => {
                tracing::info!(domains = ?settings.domains, "obtained a certificate");
                renew_at = cert.validity.renew_at();
                certs.install(cert);
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                let pause =
                    Duration::from_secs(5 << failures.min(10)).min(Duration::from_secs(3600));
                tracing::error!(error = %e, retry_in_secs = pause.as_secs(), "could not obtain a certificate");
                renew_at = SystemTime::now() + pause;
            }
        }
    }
}

/// The stored certificate, if there is one for exactly these names.
fn stored(settings: &Settings) -> Option<LoadedCert> {
    let names = std::fs::read_to_string(settings.dir.join(DOMAINS)).ok()?;
    if names.trim() != settings.domains.join(",") {
        return None;
    }
    super::load(&settings.dir.join(CERT), &settings.dir.join(KEY)).ok()
}

/// Writes the certificate and its key (0600), each by a rename, then the names they are for.
fn save(settings: &Settings, chain: &str, key: &str) -> Result<(), String> {
    let dir = &settings.dir;
    write_private(&dir.join(KEY), key.as_bytes())?;
    write_private(&dir.join(CERT), chain.as_bytes())?;
    write_private(&dir.join(DOMAINS), settings.domains.join(",").as_bytes())
}

/// Writes a file only the server's user may read, through a temporary file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// The account: the stored one, or a new one (stored at once).
async fn account(settings: &Settings) -> Result<Account, String> {
    let builder = || match &settings.directory_root {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    let path = settings.dir.join(ACCOUNT);
    if let Ok(json) = std::fs::read(&path) {
        let credentials: AccountCredentials =
            serde_json::from_slice(&json).map_err(|e| format!("{}: {e}", path.display()))?;
        return builder()
            .map_err(|e| e.to_string())?
            .from_credentials(credentials)
            .await
            .map_err(|e| format!("the stored ACME account: {e}"));
    }
    let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()
        .map_err(|e| e.to_string())?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("creating the ACME account at {}: {e}", settings.directory))?;
    let json = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
    write_private(&path, &json)?;
    Ok(account)
}

/// One order: HTTP-01 for every name, then the chain (PEM) and the new key (PEM).
async fn obtain(settings: &Settings, challenges: &Challenges) -> Result<(String, String), String> {
    let account = account(settings).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("placing the order: {e}"))?;
    let mut tokens = Vec::new();
    let result = async {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| format!("reading an authorization: {e}"))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("an authorization is {other:?}")),
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or("the authority offers no HTTP-01 challenge")?;
            let answer = challenge.key_authorization().as_str().to_string();
            challenges.insert(challenge.token.clone(), answer);
            tokens.push(challenge.token.clone());
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("answering the challenge: {e}"))?;
        }
        let patient = RetryPolicy::default().timeout(Duration::from_secs(120));
        let status = order
            .poll_ready(&patient)
            .await
            .map_err(|e| format!("waiting for validation: {e}"))?;
        if status != OrderStatus::Ready {
            return Err(format!("the order is {status:?}, not ready"));
        }
        let key = order
            .finalize()
            .await
            .map_err(|e| format!("finalizing: {e}"))?;
        let chain = order
            .poll_certificate(&patient)
            .await
            .map_err(|e| format!("fetching the certificate: {e}"))?;
        Ok((chain, key))
    }
    .await;
    for token in tokens {
        challenges.remove(&token);
    }
    result
}
