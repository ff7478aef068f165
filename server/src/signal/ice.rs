//! The ICE servers handed to a call's members: STUN and TURN addresses from configuration, and
//! for TURN short-lived credentials in the TURN REST API form that coturn's `use-auth-secret`
//! checks: the username is `expiry:user` (expiry in Unix seconds), the credential the base64
//! HMAC-SHA1 of the username under the shared secret.

use base64::Engine;
use callqueue_protocol::signal::IceServer;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The ICE servers for `user`, valid until `expires`.
pub fn servers_for(
    urls: &[String],
    turn_secret: Option<&str>,
    user: &str,
    expires: DateTime<Utc>,
) -> Vec<IceServer> {
    urls.iter()
        .map(|url| {
            let is_turn = url.starts_with("turn:") || url.starts_with("turns:");
            match turn_secret.filter(|_| is_turn) {
                Some(secret) => {
                    let (username, credential) = turn_credentials(secret, user, expires);
                    IceServer {
                        urls: vec![url.clone()],
                        username: Some(username),
                        credential: Some(credential),
                    }
                }
                None => IceServer {
                    urls: vec![url.clone()],
                    username: None,
                    credential: None,
                },
            }
        })
        .collect()
}

/// The TURN REST API username and credential for `user` until `expires`.
pub fn turn_credentials(secret: &str, user: &str, expires: DateTime<Utc>) -> (String, String) {
    let username = format!("{}:{user}", expires.timestamp());
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_are_what_coturn_computes() {
        // coturn: credential = base64(hmac-sha1(static-auth-secret, "expiry:user")). The
        // expected value was computed independently:
        //   printf '%s' '1700000000:alice' | openssl dgst -sha1 -hmac 'north' -binary | base64
        let expires = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (username, credential) = turn_credentials("north", "alice", expires);
        assert_eq!(username, "1700000000:alice");
        assert_eq!(credential, "Cd/49soE35ICqcJF/bCTn8Z4OyE=");
    }

    #[test]
    fn only_turn_urls_get_credentials() {
        let urls = vec![
            "stun:127.0.0.1:3478".to_string(),
            "turn:127.0.0.1:3478?transport=udp".to_string(),
        ];
        let expires = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let servers = servers_for(&urls, Some("north"), "bob", expires);
        assert_eq!(servers[0].username, None);
        assert_eq!(servers[1].username.as_deref(), Some("1700000000:bob"));
        assert!(servers[1].credential.is_some());
        let plain = servers_for(&urls, None, "bob", expires);
        assert!(plain.iter().all(|s| s.username.is_none()));
    }
}
