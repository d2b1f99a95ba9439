//! Passwords, token secrets and their hashes.
//!
//! Human passwords are low-entropy: Argon2id (PHC string), computed on the blocking pool behind a
//! small semaphore so memory-hard hashing cannot exhaust the machine. Token, session and setup
//! secrets are 32 random bytes: high entropy, so a SHA-256 is enough, looked up by hash or by
//! public id and compared in constant time. A leaked store is then neither a list of passwords
//! nor a set of live sessions.

use std::fmt;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64ct::{Base64UrlUnpadded, Encoding};
use sluice_core::Secret;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::StoreError;

/// How an API token starts; the public id and the secret follow, separated by `_`.
pub const TOKEN_PREFIX: &str = "sluice_";
const PUBLIC_ID_LEN: usize = 12;

/// A secret handed to its owner once (a token, a session cookie, a CSRF token, a setup token).
/// `Debug` and `Display` hide it; the memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeSecret(Zeroizing<String>);

impl OneTimeSecret {
    /// The text to show once or to set as a cookie. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OneTimeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeSecret(<redacted>)")
    }
}

impl fmt::Display for OneTimeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

pub(crate) fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, StoreError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(bytes.as_mut()).map_err(|e| StoreError::backend("read the OS random source", e))?;
    Ok(bytes)
}

/// 32 random bytes as base64url text.
pub(crate) fn random_secret() -> Result<OneTimeSecret, StoreError> {
    Ok(OneTimeSecret(Zeroizing::new(Base64UrlUnpadded::encode_string(random_bytes::<32>()?.as_ref()))))
}

/// A token's public id: lower-case letters and digits (never `_`, so the token splits cleanly).
pub(crate) fn random_public_id() -> Result<String, StoreError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = random_bytes::<PUBLIC_ID_LEN>()?;
    // 256 % 36 = 4: a slight bias, harmless for an id that is public anyway.
    Ok(bytes.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect())
}

pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `stored` is the SHA-256 of `presented`, compared in constant time.
pub(crate) fn hash_matches(stored: &[u8], presented: &[u8]) -> bool {
    bool::from(stored.ct_eq(&sha256(presented)))
}

/// A new API token's full text, `sluice_<public id>_<secret>`.
pub(crate) fn new_token() -> Result<(String, OneTimeSecret, OneTimeSecret), StoreError> {
    let public_id = random_public_id()?;
    let secret = random_secret()?;
    let full = OneTimeSecret(Zeroizing::new(format!("{TOKEN_PREFIX}{public_id}_{}", secret.expose())));
    Ok((public_id, secret, full))
}

/// Splits a presented token into public id and secret; `None` when it is not shaped like one.
pub(crate) fn split_token(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (public_id, secret) = rest.split_once('_')?;
    let id_ok =
        public_id.len() == PUBLIC_ID_LEN && public_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (id_ok && !secret.is_empty()).then_some((public_id, secret))
}

/// The smallest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

pub(crate) fn check_password_policy(password: &Secret) -> Result<(), StoreError> {
    if password.expose().chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::Invalid {
            field: "password",
            message: format!("use at least {MIN_PASSWORD_CHARS} characters"),
        });
    }
    Ok(())
}

/// Argon2id PHC string of `password` (argon2's default parameters: 19 MiB, 2 passes).
/// Blocking: call it on the blocking pool.
pub(crate) fn hash_password_blocking(password: &[u8]) -> Result<String, StoreError> {
    let salt = random_bytes::<16>()?;
    Argon2::default()
        .hash_password_with_salt(password, salt.as_ref())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::backend("hash a password", e))
}

/// Whether `password` matches the PHC string. Blocking: call it on the blocking pool.
pub(crate) fn verify_password_blocking(password: &[u8], phc: &str) -> bool {
    Argon2::default().verify_password(password, phc).is_ok()
}

/// A PHC string no password matches, hashed against when a login does not exist, so a wrong
/// login costs as long as a wrong password.
pub(crate) fn dummy_phc() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password_blocking(b"sluice-no-such-user").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_back_into_their_parts() {
        let (public_id, secret, full) = new_token().expect("token");
        assert_eq!(split_token(full.expose()), Some((public_id.as_str(), secret.expose())));
        assert_eq!(public_id.len(), 12);
        for bad in
            ["", "sluice_", "sluice_abc_def", "other_abcdefghijkl_x", "sluice_ABCDEFGHIJKL_x", "sluice_abcdefghijkl_"]
        {
            assert_eq!(split_token(bad), None, "{bad}");
        }
        assert!(!format!("{full:?} {full}").contains(secret.expose()));
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let phc = hash_password_blocking(b"correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password_blocking(b"correct horse", &phc));
        assert!(!verify_password_blocking(b"correct horsE", &phc));
        assert!(!verify_password_blocking(b"correct horse", "not a phc string"));
        assert!(!verify_password_blocking(b"sluice-no-such-user-x", dummy_phc()));
    }

    #[test]
    fn hashes_compare_whole() {
        let h = sha256(b"abc");
        assert!(hash_matches(&h, b"abc"));
        assert!(!hash_matches(&h, b"abd"));
        assert!(!hash_matches(&h[..31], b"abc"));
    }
}
