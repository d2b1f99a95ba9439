//! Secrets at rest: XChaCha20-Poly1305 under one master key.
//!
//! Every sealed value carries the id of the key that sealed it and a random 24-byte nonce
//! (random nonces are safe at XChaCha's nonce size). The associated data binds the value to its
//! source, its field and the key id, so a ciphertext copied onto another source or field, or
//! relabelled with another key id, fails to open. The store keeps one sealed check value: a
//! wrong key fails to open it, and the store refuses to start rather than fail later, secret by
//! secret. There is no plaintext fallback: without a key the store does not open.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64ct::{Base64, Encoding};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::StoreError;

/// The environment variable holding the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "SLUICE_MASTER_KEY";
/// The key file's name in a SQLite store's data directory.
pub const KEY_FILE_NAME: &str = "master.key";
/// The environment variable holding the key a rotation seals under, when the key in use comes
/// from [`MASTER_KEY_ENV`].
pub const NEW_MASTER_KEY_ENV: &str = "SLUICE_NEW_MASTER_KEY";

/// Where a rotation writes the new key before the store is re-sealed: `<key file>.new`.
pub fn pending_key_path(key_file: &Path) -> std::path::PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".new");
    std::path::PathBuf::from(name)
}

/// Syncs the directory holding `path`, so a create, rename or removal in it is durable.
fn sync_dir_of(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => std::fs::File::open(".")?.sync_all(),
    }
}

/// Renames `from` over `to` and syncs their directory.
pub(crate) fn replace_key_file(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).and_then(|()| sync_dir_of(to)).map_err(|e| {
        StoreError::key(
            format!("the store is sealed under {}, but it could not replace {}: {e}", from.display(), to.display()),
            format!("rename it by hand before the next start: mv {} {}", from.display(), to.display()),
        )
    })
}

/// Removes a key file that opens nothing, and syncs its directory.
pub(crate) fn remove_key_file(path: &Path) -> Result<(), StoreError> {
    std::fs::remove_file(path)
        .and_then(|()| sync_dir_of(path))
        .map_err(|e| StoreError::backend(&format!("remove {}", path.display()), e))
}

const NONCE_LEN: usize = 24;
const CHECK_PLAINTEXT: &[u8] = b"sluice-store master key check v1";

/// The 32-byte master key. `Debug` shows only its id; the bytes are wiped on drop.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id={}, <redacted>)", self.id)
    }
}

impl MasterKey {
    /// A new random key from the OS.
    pub fn generate() -> Result<MasterKey, StoreError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|e| StoreError::backend("read the OS random source", e))?;
        Ok(MasterKey::from_bytes(bytes))
    }

    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> MasterKey {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"sluice master key id\0");
        ctx.update(bytes.as_ref());
        let digest = ctx.finish();
        let id = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        MasterKey { bytes, id }
    }

    /// Parses the base64 of exactly 32 bytes (surrounding whitespace ignored). The error never
    /// echoes the input.
    pub fn from_base64(text: &str) -> Result<MasterKey, StoreError> {
        let mut decoded = Zeroizing::new([0u8; 48]);
        let len = Base64::decode(text.trim().as_bytes(), decoded.as_mut())
            .map_err(|_| {
                StoreError::key(
                    "the master key is not valid base64",
                    "give the base64 of 32 random bytes, e.g. the output of `head -c 32 /dev/urandom | base64`",
                )
            })?
            .len();
        if len != 32 {
            return Err(StoreError::key(
                format!("the master key is {len} bytes long, not 32"),
                "give the base64 of exactly 32 random bytes",
            ));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&decoded[..32]);
        Ok(MasterKey::from_bytes(bytes))
    }

    /// The key from [`MASTER_KEY_ENV`], when it is set.
    pub fn from_env() -> Result<Option<MasterKey>, StoreError> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(mut text) => {
                let key = MasterKey::from_base64(&text);
                text.zeroize();
                key.map(Some).map_err(|e| match e {
                    StoreError::Key { message, hint } => {
                        StoreError::Key { message: format!("{MASTER_KEY_ENV}: {message}"), hint }
                    }
                    other => other,
                })
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(StoreError::key(
                format!("{MASTER_KEY_ENV} is not valid base64"),
                "give the base64 of 32 random bytes",
            )),
        }
    }

    /// Reads a key file (base64 text). It must be readable by its owner only.
    pub fn read_file(path: &Path) -> Result<MasterKey, StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| {
            StoreError::key(
                format!("cannot read the master key file {}: {e}", path.display()),
                "restore the key file from your backup, or give the key in SLUICE_MASTER_KEY",
            )
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(StoreError::key(
                format!("the master key file {} is readable by others", path.display()),
                format!("make it private: chmod 600 {}", path.display()),
            ));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            StoreError::key(format!("cannot read the master key file {}: {e}", path.display()), "check its permissions")
        })?);
        MasterKey::from_base64(&text).map_err(|e| match e {
            StoreError::Key { message, hint } => {
                StoreError::Key { message: format!("{}: {message}", path.display()), hint }
            }
            other => other,
        })
    }

    /// Writes a new random key to `path` (mode 0600, never replacing an existing file) and
    /// returns it.
    pub fn create_file(path: &Path) -> Result<MasterKey, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let key = MasterKey::generate()?;
        let fail =
            |e: std::io::Error| StoreError::backend(&format!("create the master key file {}", path.display()), e);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(fail)?;
        let mut text = key.to_base64();
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        sync_dir_of(path).map_err(fail)?;
        Ok(key)
    }

    /// The key as base64, for handing to an operator once (e.g. after a rotation).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(Base64::encode_string(self.bytes.as_ref()))
    }

    /// A short public id (a hash of the key): stored beside every value it sealed.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305, StoreError> {
        XChaCha20Poly1305::new_from_slice(self.bytes.as_ref())
            .map_err(|e| StoreError::backend("load the master key", e))
    }
}

/// What a sealed value belongs to; bound into its associated data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealContext<'a> {
    /// The source id; empty for the store's own check value (a source id is never empty).
    pub source: &'a str,
    pub field: &'a str,
}

impl SealContext<'_> {
    pub(crate) const CHECK: SealContext<'static> = SealContext { source: "", field: "store.check" };

    fn associated_data(&self, key_id: &str) -> Vec<u8> {
        let mut ad = b"sluice-seal-v1\0".to_vec();
        for part in [self.source, self.field, key_id] {
            ad.extend_from_slice(part.as_bytes());
            ad.push(0);
        }
        ad
    }
}

/// A sealed value as stored: key id, nonce, ciphertext (with its tag).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(key_id={}, {} bytes)", self.key_id, self.ciphertext.len())
    }
}

pub(crate) fn seal(key: &MasterKey, ctx: SealContext<'_>, plaintext: &[u8]) -> Result<Sealed, StoreError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| StoreError::backend("read the OS random source", e))?;
    let ad = ctx.associated_data(key.id());
    let ciphertext = key
        .cipher()?
        .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: &ad })
        .map_err(|_| StoreError::backend("seal a secret", "encryption failed"))?;
    Ok(Sealed { key_id: key.id().to_string(), nonce: nonce.to_vec(), ciphertext })
}

/// Opens a sealed value; `None` when it was not sealed by `key` for `ctx` (or was altered).
pub(crate) fn open(key: &MasterKey, ctx: SealContext<'_>, sealed: &Sealed) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.key_id != key.id() {
        return None;
    }
    let nonce: [u8; NONCE_LEN] = sealed.nonce.as_slice().try_into().ok()?;
    let ad = ctx.associated_data(&sealed.key_id);
    key.cipher()
        .ok()?
        .decrypt(&XNonce::from(nonce), Payload { msg: &sealed.ciphertext, aad: &ad })
        .ok()
        .map(Zeroizing::new)
}

/// Opens a source's secret; failure means the store was altered or sealed with another key.
pub(crate) fn open_secret(
    key: &MasterKey,
    ctx: SealContext<'_>,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    open(key, ctx, sealed).ok_or_else(|| {
        StoreError::key(
            format!(
                "the stored {} of source {} cannot be unsealed with the master key {}",
                ctx.field,
                ctx.source,
                key.id()
            ),
            "the row was altered or sealed with another key; set the secret again",
        )
    })
}

pub(crate) fn seal_check(key: &MasterKey) -> Result<Sealed, StoreError> {
    seal(key, SealContext::CHECK, CHECK_PLAINTEXT)
}

/// Whether `key` is the key the store's check value was sealed with.
pub(crate) fn verify_check(key: &MasterKey, sealed: &Sealed) -> Result<(), StoreError> {
    match open(key, SealContext::CHECK, sealed) {
        Some(text) if text.as_slice() == CHECK_PLAINTEXT => Ok(()),
        _ => Err(StoreError::key(
            format!(
                "the master key (id {}) is not the key this store was sealed with (id {})",
                key.id(),
                sealed.key_id
            ),
            "give the store's own key (SLUICE_MASTER_KEY or its key file); without it the sealed secrets cannot be read",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_in_its_own_context_and_under_its_own_key() {
        let key = MasterKey::generate().expect("key");
        let other = MasterKey::generate().expect("key");
        let ctx = SealContext { source: "prod", field: "password" };
        let sealed = seal(&key, ctx, b"hunter2").expect("seal");
        assert_eq!(sealed.nonce.len(), 24);
        assert_eq!(open(&key, ctx, &sealed).expect("open").as_slice(), b"hunter2");
        assert!(open(&key, SealContext { source: "staging", field: "password" }, &sealed).is_none());
        assert!(open(&key, SealContext { source: "prod", field: "sslkey" }, &sealed).is_none());
        assert!(open(&other, ctx, &sealed).is_none());
        // Relabelling the key id does not help: it is bound into the associated data.
        let relabelled = Sealed { key_id: other.id().to_string(), ..sealed.clone() };
        assert!(open(&other, ctx, &relabelled).is_none());
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(open(&key, ctx, &flipped).is_none());
        // Two seals of one value differ (fresh nonces).
        assert_ne!(seal(&key, ctx, b"hunter2").expect("seal").ciphertext, sealed.ciphertext);
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_and_never_echo_it() {
        let key = MasterKey::generate().expect("key");
        let text = key.to_base64();
        let again = MasterKey::from_base64(&format!(" {}\n", text.as_str())).expect("parse");
        assert_eq!(again.id(), key.id());
        assert!(!format!("{key:?}").contains(text.as_str()));
        for bad in ["", "not base64!", "c2hvcnQ=", &Base64::encode_string(&[7u8; 33])] {
            let e = MasterKey::from_base64(bad).expect_err(bad);
            assert!(matches!(e, StoreError::Key { .. }), "{e:?}");
            if !bad.is_empty() {
                assert!(!e.to_string().contains(bad), "{e}");
            }
        }
        let e = verify_check(&MasterKey::generate().expect("key"), &seal_check(&key).expect("seal"))
            .expect_err("wrong key");
        assert!(e.to_string().contains("is not the key this store was sealed with"), "{e}");
    }
}
