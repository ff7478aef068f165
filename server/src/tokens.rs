//! Random secrets and how they are stored: only their SHA-256, never the secret itself.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// 128 random bits, hex-encoded: ids, session tokens, stream tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the database keeps of a token. Tokens carry 128 bits of entropy, so a fast hash is
/// enough; a slow password hash would only add latency to every request.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Ids and group names we accept in paths: short, URL-safe, no surprises in logs.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = random_token();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_token());
        assert_eq!(hash("x"), hash("x"));
        assert_ne!(hash("x"), hash("y"));
    }

    #[test]
    fn ids_are_checked() {
        assert!(is_valid_id("default"));
        assert!(is_valid_id("0f3a-b_C"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("é"));
        assert!(!is_valid_id(&"a".repeat(65)));
    }
}
