//! Reading the client's private key: OpenSSH, PEM (PKCS#1 / SEC1, optionally AES-128-CBC
//! encrypted) or PKCS#8 (optionally encrypted); ed25519, ECDSA or RSA.

use russh::keys::PrivateKey;
use sluice_core::{KeySource, Secret};

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

#[cfg(test)]
mod tests {
    use super::*;

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
