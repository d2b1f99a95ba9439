//! A source's settings apart from its secrets, and the id a service knows it by.
//!
//! A service keeps the two halves apart: settings as plain JSON anyone with access may read,
//! secrets sealed field by field (the field's name bound into the seal) and never returned.
//! [`SourceSpec::split`] takes a spec apart, [`SourceSpec::with_secrets`] puts it back together;
//! a secret given as a file path stays a path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{KeySource, Network, Secret, SourceSpec, SshSpec};

/// The stable id of a registered source: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceId(String);

impl SourceId {
    pub const MAX_LEN: usize = 64;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a string is not a [`SourceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not a source id: use 1 to 64 characters of a-z, 0-9, '-' and '_'")]
pub struct BadSourceId {
    /// The input, cut to a readable length.
    shown: String,
}

impl FromStr for SourceId {
    type Err = BadSourceId;

    fn from_str(s: &str) -> Result<SourceId, BadSourceId> {
        let ok = !s.is_empty()
            && s.len() <= SourceId::MAX_LEN
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(SourceId(s.to_string()))
        } else {
            Err(BadSourceId { shown: s.chars().take(SourceId::MAX_LEN).collect() })
        }
    }
}

impl TryFrom<String> for SourceId {
    type Error = BadSourceId;

    fn try_from(s: String) -> Result<SourceId, BadSourceId> {
        s.parse()
    }
}

impl From<SourceId> for String {
    fn from(id: SourceId) -> String {
        id.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One secret of a source; its name is what a seal binds the ciphertext to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretField {
    Password,
    SslKey,
    SshPrivateKey,
    SshPassphrase,
}

impl SecretField {
    pub const ALL: [SecretField; 4] =
        [SecretField::Password, SecretField::SslKey, SecretField::SshPrivateKey, SecretField::SshPassphrase];

    /// The field's name as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretField::Password => "password",
            SecretField::SslKey => "sslkey",
            SecretField::SshPrivateKey => "ssh.private_key",
            SecretField::SshPassphrase => "ssh.passphrase",
        }
    }
}

/// The secrets of one source. `Debug` shows which are set, never their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceSecrets {
    pub password: Option<Secret>,
    /// The client key for certificate authentication (PEM text, or a file path kept as a path).
    pub sslkey: Option<KeySource>,
    pub ssh_private_key: Option<KeySource>,
    pub ssh_passphrase: Option<Secret>,
}

impl SourceSecrets {
    /// The fields that hold a value.
    pub fn fields(&self) -> Vec<SecretField> {
        SecretField::ALL.into_iter().filter(|f| self.has(*f)).collect()
    }

    pub fn has(&self, field: SecretField) -> bool {
        match field {
            SecretField::Password => self.password.is_some(),
            SecretField::SslKey => self.sslkey.is_some(),
            SecretField::SshPrivateKey => self.ssh_private_key.is_some(),
            SecretField::SshPassphrase => self.ssh_passphrase.is_some(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }

    /// `newer`'s secrets replace these; a field `newer` leaves unset keeps its value here (an edit
    /// that does not retype a secret keeps it).
    pub fn updated_with(self, newer: SourceSecrets) -> SourceSecrets {
        SourceSecrets {
            password: newer.password.or(self.password),
            sslkey: newer.sslkey.or(self.sslkey),
            ssh_private_key: newer.ssh_private_key.or(self.ssh_private_key),
            ssh_passphrase: newer.ssh_passphrase.or(self.ssh_passphrase),
        }
    }
}

impl SourceSpec {
    /// Takes the secrets out: the spec returned holds none (so serializing it loses nothing), the
    /// secrets go apart.
    pub fn split(mut self) -> (SourceSpec, SourceSecrets) {
        let (ssh_private_key, ssh_passphrase) = match ssh_mut(&mut self.network) {
            Some(ssh) => (ssh.private_key.take(), ssh.passphrase.take()),
            None => (None, None),
        };
        let secrets = SourceSecrets {
            password: self.password.take(),
            sslkey: self.sslkey.take(),
            ssh_private_key,
            ssh_passphrase,
        };
        (self, secrets)
    }

    /// Puts secrets back: each one given replaces the spec's; SSH secrets apply only when the
    /// spec goes through a bastion.
    pub fn with_secrets(mut self, secrets: SourceSecrets) -> SourceSpec {
        if secrets.password.is_some() {
            self.password = secrets.password;
        }
        if secrets.sslkey.is_some() {
            self.sslkey = secrets.sslkey;
        }
        if let Some(ssh) = ssh_mut(&mut self.network) {
            if secrets.ssh_private_key.is_some() {
                ssh.private_key = secrets.ssh_private_key;
            }
            if secrets.ssh_passphrase.is_some() {
                ssh.passphrase = secrets.ssh_passphrase;
            }
        }
        self
    }
}

fn ssh_mut(network: &mut Network) -> Option<&mut SshSpec> {
    match network {
        Network::Ssh(ssh) => Some(ssh),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostKeyCheck;

    fn full_spec() -> SourceSpec {
        let mut spec = SourceSpec::new("db.internal", "app", "ro");
        spec.password = Some(Secret::new("pw-1"));
        spec.sslkey = Some(KeySource::File("/etc/sluice/client.key".into()));
        spec.network = Network::Ssh(SshSpec {
            host: "bastion".into(),
            port: 22,
            user: "tunnel".into(),
            private_key: Some(KeySource::Pem(Secret::new("-----BEGIN OPENSSH PRIVATE KEY-----x"))),
            passphrase: Some(Secret::new("phrase-2")),
            host_key: HostKeyCheck::Fingerprint("SHA256:abc".into()),
        });
        spec
    }

    #[test]
    fn split_then_join_gives_the_spec_back_and_the_settings_hold_no_secret() {
        let spec = full_spec();
        let (settings, secrets) = spec.clone().split();
        assert_eq!(
            secrets.fields(),
            [SecretField::Password, SecretField::SslKey, SecretField::SshPrivateKey, SecretField::SshPassphrase]
        );
        assert!(settings.password.is_none() && settings.sslkey.is_none());
        let json = serde_json::to_string(&settings).expect("json");
        for secret in ["pw-1", "client.key", "OPENSSH", "phrase-2"] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
        let debug = format!("{secrets:?}");
        for secret in ["pw-1", "OPENSSH", "phrase-2"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        // The settings survive a trip through JSON; joined with the secrets they are the spec.
        let settings: SourceSpec = serde_json::from_str(&json).expect("parse");
        assert_eq!(settings.with_secrets(secrets), spec);
    }

    #[test]
    fn an_edit_without_a_secret_keeps_the_old_one() {
        let (_, old) = full_spec().split();
        let newer = SourceSecrets { password: Some(Secret::new("pw-new")), ..SourceSecrets::default() };
        let merged = old.updated_with(newer);
        assert_eq!(merged.password, Some(Secret::new("pw-new")));
        assert_eq!(merged.ssh_passphrase, Some(Secret::new("phrase-2")));
        assert!(merged.has(SecretField::SshPrivateKey) && merged.has(SecretField::SslKey));
    }

    #[test]
    fn ssh_secrets_apply_only_through_a_bastion() {
        let (_, secrets) = full_spec().split();
        let direct = SourceSpec::new("db", "app", "ro").with_secrets(secrets);
        assert_eq!(direct.password, Some(Secret::new("pw-1")));
        assert!(matches!(direct.network, Network::Direct));
    }

    #[test]
    fn source_ids_are_checked() {
        for good in ["a", "prod-db_1", &"x".repeat(64)] {
            assert_eq!(good.parse::<SourceId>().map(|id| id.to_string()), Ok(good.to_string()));
        }
        for bad in ["", "Prod", "a b", "a/b", "é", &"x".repeat(65)] {
            let e = bad.parse::<SourceId>().expect_err(bad);
            assert!(e.to_string().contains("is not a source id"), "{e}");
        }
        let id: SourceId = serde_json::from_str("\"warehouse\"").expect("id");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"warehouse\"");
        assert!(serde_json::from_str::<SourceId>("\"No\"").is_err());
    }
}
