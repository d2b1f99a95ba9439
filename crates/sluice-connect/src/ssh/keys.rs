//! Reading the client's private key: OpenSSH, PEM (PKCS#1 / SEC1, optionally AES-128-CBC
//! encrypted) or PKCS#8 (optionally encrypted); ed25519, ECDSA or RSA. And making a new
//! ed25519 key pair for a bastion's `authorized_keys`.

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;
use sluice_core::{KeySource, Secret};
use zeroize::Zeroizing;

use crate::ConnectError;

fn config(field: &'static str, message: String, hint: &str) -> ConnectError {
    ConnectError::Config { field, message, hint: hint.to_string() }
}

/// Loads the key, decrypting it with `passphrase` when it is encrypted (a passphrase given for
/// an unencrypted key is not needed and ignored, as OpenSSH does).
pub(crate) fn load(source: &KeySource, passphrase: Option<&Secret>) -> Result<PrivateKey, ConnectError> {
    let text = match source {
        KeySource::Pem(secret) => secret.expose().to_string(),
        KeySource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            config(
                "ssh.private_key",
                format!("cannot read {}: {e}", path.display()),
                "give a readable private key file",
            )
        })?,
    };
    decode(&text, passphrase.map(Secret::expose))
}

fn decode(text: &str, passphrase: Option<&str>) -> Result<PrivateKey, ConnectError> {
    let encrypted_pem = text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED");
    let first = if encrypted_pem {
        Err(russh::keys::Error::KeyIsEncrypted)
    } else {
        russh::keys::decode_secret_key(text, None)
    };
    match first {
        Ok(key) => Ok(key),
        Err(russh::keys::Error::KeyIsEncrypted) => match passphrase {
            None => Err(config(
                "ssh.passphrase",
                "the SSH private key is encrypted and no passphrase was given".into(),
                "give the key's passphrase (e.g. --ssh-key-passphrase-file)",
            )),
            Some(p) => russh::keys::decode_secret_key(text, Some(p)).map_err(|_| {
                config(
                    "ssh.passphrase",
                    "the passphrase does not decrypt the SSH private key".into(),
                    "check the passphrase; a PEM key encrypted with a cipher other than AES-128-CBC can be rewritten as an OpenSSH key with `ssh-keygen -p -f KEY`",
                )
            }),
        },
        Err(e) => Err(config(
            "ssh.private_key",
            format!("not a private key Sluice can read ({e})"),
            "give an ed25519, ECDSA or RSA private key in OpenSSH, PEM or PKCS#8 form (not the .pub file)",
        )),
    }
}

/// A key pair made by [`generate_ed25519`]: the private key as OpenSSH text (a [`Secret`]) and
/// the public half as an `authorized_keys` line.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----…`, unencrypted.
    pub private_openssh: Secret,
    /// `ssh-ed25519 AAAA… COMMENT`.
    pub public_line: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// A new ed25519 key pair, `comment` on its public line. The 32-byte seed comes straight from
/// the OS CSPRNG (what ssh-key's own `random` draws, but an OS failure is an error here, not a
/// panic); the key is expanded and encoded by ssh-key.
pub fn generate_ed25519(comment: &str) -> Result<GeneratedKey, ConnectError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| ConnectError::Config {
        field: "ssh.private_key",
        message: format!("the OS random source failed: {e}"),
        hint: "retry; if it persists, check the host's entropy source".into(),
    })?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    let encode_error = |e: russh::keys::ssh_key::Error| ConnectError::Config {
        field: "ssh.private_key",
        message: format!("could not encode the new key: {e}"),
        hint: "retry".into(),
    };
    let private = key.to_openssh(LineEnding::LF).map_err(encode_error)?;
    let public_line = key.public_key().to_openssh().map_err(encode_error)?;
    Ok(GeneratedKey {
        private_openssh: Secret::new(private.as_str()),
        fingerprint: super::host_keys::fingerprint(key.public_key()),
        public_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_fresh_ed25519_pairs_that_load_back() {
        let a = generate_ed25519("sluice-test").expect("key");
        let b = generate_ed25519("sluice-test").expect("key");
        assert!(
            a.public_line.starts_with("ssh-ed25519 AAAA") && a.public_line.ends_with(" sluice-test"),
            "{}",
            a.public_line
        );
        assert!(a.private_openssh.expose().starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert_ne!(a.public_line, b.public_line, "each key is new");
        let loaded = load(&KeySource::Pem(a.private_openssh.clone()), None).expect("loads as a client key");
        assert_eq!(loaded.algorithm(), russh::keys::Algorithm::Ed25519);
        assert_eq!(super::super::host_keys::fingerprint(loaded.public_key()), a.fingerprint);
        assert!(a.fingerprint.starts_with("SHA256:"));
        assert!(!format!("{a:?}").contains("PRIVATE KEY"), "Debug hides the private key");
    }

    #[test]
    fn bad_keys_name_the_field() {
        let e = decode("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBo6iTe0tSGTZUKedSzijO+wCZIppqSKYnqRTZuvP3Qe", None)
            .expect_err("a public key is not a private key");
        assert!(matches!(e, ConnectError::Config { field: "ssh.private_key", .. }), "{e:?}");
        let e = decode("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n", None)
            .expect_err("encrypted without a passphrase");
        assert!(matches!(e, ConnectError::Config { field: "ssh.passphrase", .. }), "{e:?}");
        let e = load(&KeySource::File("/nonexistent/id_ed25519".into()), None).expect_err("missing file");
        assert!(e.to_string().contains("/nonexistent/id_ed25519"), "{e}");
    }
}
