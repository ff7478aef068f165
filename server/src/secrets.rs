//! Specialists' secrets as a password store keeps them: Argon2id with a random salt per
//! secret, in PHC string form (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), so the
//! parameters travel with each hash and can be raised later. Rows from before Argon2 hold an
//! unsalted SHA-256; they still sign in, and are rehashed on that sign-in, as are hashes made
//! with other parameters than today's.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};
use rand::RngCore;

/// OWASP's Password Storage Cheat Sheet, Argon2id's first configuration: 19 MiB of memory, two
/// passes, one lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// The shortest secret a person may choose (generated ones are 32 hex digits).
pub const MIN_CHARS: usize = 12;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a chosen secret is refused, if it is.
pub fn check_chosen(secret: &str) -> Result<(), String> {
    let chars = secret.chars().count();
    if chars < MIN_CHARS {
        return Err(format!(
            "the secret has {chars} characters; it needs at least {MIN_CHARS} (or leave it out \
             and a random one is made)"
        ));
    }
    if secret.trim() != secret {
        return Err("the secret starts or ends with white space (a stray newline?)".into());
    }
    Ok(())
}

/// A new Argon2id hash of `secret` with a fresh random salt. Takes tens of milliseconds of CPU
/// and 19 MiB: call it off the async threads (`spawn_blocking`).
pub fn hash(secret: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    argon2()
        .hash_password(secret.as_bytes(), &salt)
        .expect("Argon2id hashes any secret with valid parameters")
        .to_string()
}

/// What checking a secret against a stored hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Wrong,
    Right,
    /// Right, and the stored hash is an old kind or has old parameters: store [`hash`] anew.
    RightButOld,
}

/// Checks `secret` against `stored` (an Argon2 PHC string, or a legacy SHA-256 hex digest).
/// As slow as [`hash`] for an Argon2 hash: call it off the async threads.
pub fn verify(secret: &str, stored: &str) -> Verified {
    if let Ok(parsed) = PasswordHash::new(stored) {
        // The hash's own algorithm and parameters are used to check it.
        if argon2()
            .verify_password(secret.as_bytes(), &parsed)
            .is_err()
        {
            return Verified::Wrong;
        }
        let current = parsed.algorithm == Algorithm::Argon2id.ident()
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == MEMORY_KIB && p.t_cost() == PASSES && p.p_cost() == LANES
            });
        return if current {
            Verified::Right
        } else {
            Verified::RightButOld
        };
    }
    // A hash from before Argon2. Comparing two SHA-256 digests with `==` tells a timing
    // attacker at most how many leading hex digits of a hash matched, which does not help find
    // a secret.
    if crate::tokens::hash(secret) == stored {
        Verified::RightButOld
    } else {
        Verified::Wrong
    }
}

/// A hash that no secret is known for: checked against when the user id does not exist, so that
/// an unknown user id takes as long to refuse as a wrong secret.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&crate::tokens::random_token()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_with_owasps_parameters() {
        let a = hash("correct horse battery");
        let b = hash("correct horse battery");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a salt of its own");
        assert_eq!(verify("correct horse battery", &a), Verified::Right);
        assert_eq!(verify("correct horse batterz", &a), Verified::Wrong);
        assert_eq!(verify("", &a), Verified::Wrong);
    }

    #[test]
    fn old_hashes_still_sign_in_and_ask_to_be_replaced() {
        let legacy = crate::tokens::hash("summer2024-long");
        assert_eq!(verify("summer2024-long", &legacy), Verified::RightButOld);
        assert_eq!(verify("summer2024-lonG", &legacy), Verified::Wrong);
        // Argon2id with weaker parameters than today's.
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(
            b"a long enough secret",
            &SaltString::encode_b64(&[7; 16]).unwrap(),
        )
        .unwrap()
        .to_string();
        assert_eq!(verify("a long enough secret", &weak), Verified::RightButOld);
        assert_eq!(verify("another secret!", &weak), Verified::Wrong);
        assert_eq!(verify("anything", "not a hash"), Verified::Wrong);
    }

    #[test]
    fn chosen_secrets_must_be_long_enough() {
        assert!(check_chosen("summer2024").is_err());
        assert!(check_chosen("summer2024!!").is_ok());
        assert!(check_chosen("twelve chars\n").is_err());
        assert!(
            check_chosen("ünïcödé-ünï").is_err(),
            "counted in characters"
        );
    }
}
