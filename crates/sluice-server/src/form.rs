//! The source form of the API (the setup guide's fields) and how it maps onto a `SourceSpec`;
//! the view a response shows (settings, which secrets are set and the password's age — never a
//! secret).
//!
//! Certificates and keys are PEM text only: a path would let an API caller read the server's
//! own files.

use serde::{Deserialize, Serialize};
use sluice_core::{
    Auth, CertSource, HostKeyCheck, HostPort, KeySource, Network, RdsIam, Secret, SecretField, SessionAttrs,
    SourceSecrets, SourceSpec, SshSpec, SslMode,
};
use sluice_store::SourceRecord;

use crate::ApiError;

/// A source's form, for creating (`name`, `host`, `database` and `user` are required) and for
/// editing (every field optional: what is left out keeps its value, secrets included).
/// Certificates and keys are PEM text, never file names.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceForm {
    /// The source's stable id (1 to 64 of `a-z`, `0-9`, `-`, `_`); made from the name when left
    /// out. It cannot change.
    pub id: Option<String>,
    pub name: Option<String>,
    pub network: Option<NetworkKind>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    /// Stored sealed; never shown again.
    pub password: Option<String>,
    #[schema(value_type = Option<crate::openapi::SslModeDoc>)]
    pub sslmode: Option<SslMode>,
    /// PEM text, `system` for the OS trust store, or empty to clear.
    pub sslrootcert: Option<String>,
    /// The client certificate, PEM text (empty to clear).
    pub sslcert: Option<String>,
    /// The client key, PEM text; stored sealed.
    pub sslkey: Option<String>,
    pub tls_server_name: Option<String>,
    #[schema(value_type = Option<crate::openapi::SessionAttrsDoc>)]
    pub target_session_attrs: Option<SessionAttrs>,
    /// The source is PgBouncer in transaction pooling mode.
    pub pgbouncer: Option<bool>,
    pub connect_timeout_secs: Option<u64>,
    /// The bastion, with `network` `ssh`.
    pub ssh: Option<SshForm>,
    /// `password` (the default) or `rds_iam`. Given on an edit, the IAM settings are the form's
    /// alone; left out, each IAM field given changes only itself.
    pub auth: Option<AuthKind>,
    /// For `rds_iam`: the database's AWS region (required).
    pub aws_region: Option<String>,
    /// For `rds_iam`: the RDS endpoint name to sign for when it differs from `host`.
    pub iam_sign_host: Option<String>,
    /// For `rds_iam`: the RDS endpoint port to sign for when it differs from `port`.
    pub iam_sign_port: Option<u16>,
    /// For `rds_iam`: an IAM role to assume with the server's AWS credentials.
    pub aws_role_arn: Option<String>,
    /// The external id the role's trust policy requires.
    pub aws_external_id: Option<String>,
    /// The role session's name; default `sluice-<source id>`.
    pub aws_role_session_name: Option<String>,
    /// How often the source is discovered, in seconds: 60 to 604800 (a week). Left out: the
    /// service's default (5 minutes), or on an edit the current interval.
    pub discovery_interval_secs: Option<u64>,
}

/// How a source logs in: its password, or AWS RDS IAM tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    Password,
    RdsIam,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    Direct,
    Ssh,
    PrivateEndpoint,
}

/// An SSH bastion.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SshForm {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// The client key, PEM or OpenSSH text; stored sealed.
    pub private_key: Option<String>,
    /// Instead of `private_key`: the `key_id` of a key pair `POST /api/v1/ssh-keys` generated
    /// (claimed by the source when it is saved; once only).
    pub private_key_id: Option<String>,
    /// Stored sealed.
    pub passphrase: Option<String>,
    /// The bastion's host key fingerprint, `SHA256:…`.
    pub host_key: Option<String>,
}

fn pem(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim_start().starts_with("-----BEGIN") {
        Ok(())
    } else {
        Err(ApiError::invalid(field, "give the PEM text (starting with -----BEGIN), not a file name"))
    }
}

impl SourceForm {
    /// The generated key (`ssh.private_key_id`) the form names, if any.
    pub fn ssh_key_id(&self) -> Option<&str> {
        self.ssh.as_ref().and_then(|s| s.private_key_id.as_deref())
    }

    /// The spec (secrets included) this form describes on top of `base` (the stored spec, for an
    /// edit; `None` for a new source, which must then give host, database and user). The
    /// returned secrets are only those the form carries.
    pub fn to_spec(&self, base: Option<&SourceSpec>) -> Result<(SourceSpec, SourceSecrets), ApiError> {
        let required = |v: &Option<String>, field: &str| -> Result<String, ApiError> {
            match v {
                Some(s) => Ok(s.clone()),
                None => Err(ApiError::invalid(field, format!("{field} is required"))),
            }
        };
        let mut spec = match base {
            Some(b) => b.clone(),
            None => SourceSpec::new(
                required(&self.host, "host")?,
                required(&self.database, "database")?,
                required(&self.user, "user")?,
            ),
        };
        if let Some(host) = &self.host {
            let port = spec.hosts.first().map(|h| h.port).unwrap_or(sluice_core::DEFAULT_PORT);
            spec.hosts = vec![HostPort { host: host.clone(), port }];
        }
        if let Some(port) = self.port {
            for h in &mut spec.hosts {
                h.port = port;
            }
        }
        if let Some(v) = &self.database {
            spec.database = v.clone();
        }
        if let Some(v) = &self.user {
            spec.user = v.clone();
        }
        if let Some(v) = self.sslmode {
            spec.sslmode = v;
        }
        if let Some(v) = &self.sslrootcert {
            spec.sslrootcert = match v.as_str() {
                "" => None,
                "system" => Some(CertSource::System),
                text => {
                    pem("sslrootcert", text)?;
                    Some(CertSource::Pem(text.to_string()))
                }
            };
        }
        if let Some(v) = &self.sslcert {
            spec.sslcert = if v.is_empty() {
                None
            } else {
                pem("sslcert", v)?;
                Some(CertSource::Pem(v.clone()))
            };
        }
        if let Some(v) = &self.tls_server_name {
            spec.tls_server_name = (!v.is_empty()).then(|| v.clone());
        }
        if let Some(v) = self.target_session_attrs {
            spec.target_session_attrs = v;
        }
        if let Some(v) = self.pgbouncer {
            spec.pgbouncer = v;
        }
        if let Some(v) = self.connect_timeout_secs {
            spec.connect_timeout_secs = v;
        }
        let mut secrets = SourceSecrets::default();
        if let Some(p) = &self.password {
            secrets.password = Some(Secret::new(p.as_str()));
        }
        if let Some(k) = &self.sslkey {
            pem("sslkey", k)?;
            secrets.sslkey = Some(KeySource::Pem(Secret::new(k.as_str())));
        }
        let kind = self.network.unwrap_or(match &spec.network {
            Network::Direct => NetworkKind::Direct,
            Network::Ssh(_) => NetworkKind::Ssh,
            Network::PrivateEndpoint => NetworkKind::PrivateEndpoint,
        });
        spec.network = match kind {
            NetworkKind::Direct => {
                if self.ssh.is_some() {
                    return Err(ApiError::invalid("ssh", "ssh settings need network `ssh`"));
                }
                Network::Direct
            }
            NetworkKind::PrivateEndpoint => Network::PrivateEndpoint,
            NetworkKind::Ssh => {
                let old = match &spec.network {
                    Network::Ssh(s) => Some(s.clone()),
                    _ => None,
                };
                let form = self.ssh.as_ref();
                let pick = |new: Option<&String>, old: Option<&String>, field: &str| -> Result<String, ApiError> {
                    new.or(old).cloned().ok_or_else(|| ApiError::invalid(field, format!("{field} is required")))
                };
                let host = pick(form.and_then(|f| f.host.as_ref()), old.as_ref().map(|o| &o.host), "ssh.host")?;
                let user = pick(form.and_then(|f| f.user.as_ref()), old.as_ref().map(|o| &o.user), "ssh.user")?;
                let port = form.and_then(|f| f.port).or(old.as_ref().map(|o| o.port)).unwrap_or(22);
                let host_key = match (form.and_then(|f| f.host_key.as_ref()), old.as_ref().map(|o| &o.host_key)) {
                    // Without a pin every key the bastion presents is unknown: Test Connection
                    // shows it, and an admin approves it (POST …/ssh-host-key).
                    (Some(fp), _) if fp.trim().is_empty() => HostKeyCheck::Unpinned,
                    (Some(fp), _) => HostKeyCheck::Fingerprint(fp.clone()),
                    (None, Some(k)) => k.clone(),
                    (None, None) => HostKeyCheck::Unpinned,
                };
                if let Some(f) = form {
                    if f.private_key.is_some() && f.private_key_id.is_some() {
                        return Err(ApiError::invalid(
                            "ssh.private_key_id",
                            "give either ssh.private_key or ssh.private_key_id, not both",
                        ));
                    }
                    if let Some(k) = &f.private_key {
                        pem("ssh.private_key", k)?;
                        secrets.ssh_private_key = Some(KeySource::Pem(Secret::new(k.as_str())));
                    }
                    if let Some(p) = &f.passphrase {
                        secrets.ssh_passphrase = Some(Secret::new(p.as_str()));
                    }
                }
                Network::Ssh(SshSpec { host, port, user, private_key: None, passphrase: None, host_key })
            }
        };
        if self.ssh.is_some() && kind != NetworkKind::Ssh {
            return Err(ApiError::invalid("ssh", "ssh settings need network `ssh`"));
        }
        spec.auth = self.auth_on(&spec.auth)?;
        Ok((spec, secrets))
    }

    /// The IAM fields the form gives, by name.
    fn iam_fields(&self) -> [(&'static str, bool); 6] {
        [
            ("aws_region", self.aws_region.is_some()),
            ("iam_sign_host", self.iam_sign_host.is_some()),
            ("iam_sign_port", self.iam_sign_port.is_some()),
            ("aws_role_arn", self.aws_role_arn.is_some()),
            ("aws_external_id", self.aws_external_id.is_some()),
            ("aws_role_session_name", self.aws_role_session_name.is_some()),
        ]
    }

    /// The auth this form describes on top of `current`.
    fn auth_on(&self, current: &Auth) -> Result<Auth, ApiError> {
        let kind = self.auth.unwrap_or(match current {
            Auth::Password => AuthKind::Password,
            Auth::RdsIam(_) => AuthKind::RdsIam,
        });
        if kind == AuthKind::Password {
            if let Some((field, _)) = self.iam_fields().into_iter().find(|(_, given)| *given) {
                return Err(ApiError::invalid(field, format!("{field} is only used with auth `rds_iam`"))
                    .with_hint(Some("set auth to rds_iam, or leave the field out".into())));
            }
            return Ok(Auth::Password);
        }
        // An explicit `auth` starts the IAM settings afresh; otherwise they are patched.
        let base = match (self.auth, current) {
            (None, Auth::RdsIam(iam)) => Some(iam.clone()),
            _ => None,
        };
        let region = match (&self.aws_region, &base) {
            (Some(r), _) => r.clone(),
            (None, Some(b)) => b.region.clone(),
            (None, None) => {
                return Err(ApiError::invalid("aws_region", "auth rds_iam needs the database's AWS region")
                    .with_hint(Some("give aws_region, e.g. eu-west-1".into())))
            }
        };
        let text = |new: &Option<String>, old: Option<&Option<String>>| match new {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(v.clone()),
            None => old.cloned().flatten(),
        };
        Ok(Auth::RdsIam(RdsIam {
            region,
            sign_host: text(&self.iam_sign_host, base.as_ref().map(|b| &b.sign_host)),
            sign_port: self.iam_sign_port.or(base.as_ref().and_then(|b| b.sign_port)),
            role_arn: text(&self.aws_role_arn, base.as_ref().map(|b| &b.role_arn)),
            external_id: text(&self.aws_external_id, base.as_ref().map(|b| &b.external_id)),
            role_session_name: text(&self.aws_role_session_name, base.as_ref().map(|b| &b.role_session_name)),
        }))
    }
}

/// A source as responses show it: which secrets are set, never their values.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    pub id: String,
    pub name: String,
    pub network: NetworkKind,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    #[schema(value_type = crate::openapi::SslModeDoc)]
    pub sslmode: SslMode,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey_set: bool,
    pub tls_server_name: Option<String>,
    #[schema(value_type = crate::openapi::SessionAttrsDoc)]
    pub target_session_attrs: SessionAttrs,
    pub pgbouncer: bool,
    pub connect_timeout_secs: u64,
    pub ssh: Option<SshView>,
    /// `password` or `rds_iam`; the IAM fields are null for a password source.
    pub auth: AuthKind,
    pub aws_region: Option<String>,
    pub iam_sign_host: Option<String>,
    pub iam_sign_port: Option<u16>,
    pub aws_role_arn: Option<String>,
    pub aws_external_id: Option<String>,
    pub aws_role_session_name: Option<String>,
    pub password_set: bool,
    pub password_updated_at: Option<i64>,
    pub password_age_days: Option<i64>,
    /// `ok`, `warn` from day 80, `rotate` from day 90 (the rotation advice of the setup guide).
    pub password_rotation: Option<&'static str>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The discovery schedule: interval, next due time, the last run's time, outcome and
    /// relation count.
    pub discovery: Option<crate::routes::discoveries::DiscoveryView>,
    /// The source's open alerts, oldest first: access or schema usage lost (with the GRANT that
    /// restores it), or discovery failing run after run. Cleared ones are in
    /// `GET /sources/{id}/alerts`.
    pub alerts: Vec<crate::alerts::AlertView>,
    /// The outcome of the last Test Connection of the saved source (`POST /sources/{id}/test`);
    /// null when it was never tested, or its settings or secrets changed since.
    pub last_test: Option<LastTestView>,
}

/// A saved source's last Test Connection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LastTestView {
    /// Passed: no check failed (warnings allowed).
    pub ok: bool,
    /// Milliseconds since the Unix epoch.
    pub tested_at: i64,
    /// The audit actor who ran it (`user:<login>` or `token:<id>`).
    pub tested_by: String,
    /// The first failing check (`dns`, `tcp`, `tls`, `auth`, …), and its one-line summary.
    pub failed: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SshView {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub host_key: Option<String>,
    pub private_key_set: bool,
    pub passphrase_set: bool,
    /// Who approved the pinned host key through the service, and when (null when it was given
    /// in the form).
    pub host_key_approved_by: Option<String>,
    pub host_key_approved_at: Option<i64>,
    /// The public half of the private key, when Sluice generated it (`POST /api/v1/ssh-keys`):
    /// the line the bastion's `authorized_keys` must hold.
    pub public_key: Option<String>,
}

/// Days from which a password's age is warned about, and flagged.
pub const PASSWORD_WARN_DAYS: i64 = 80;
pub const PASSWORD_FLAG_DAYS: i64 = 90;

fn cert_text(c: &Option<CertSource>) -> Option<String> {
    match c {
        None => None,
        Some(CertSource::System) => Some("system".into()),
        Some(CertSource::Pem(p)) => Some(p.clone()),
        Some(CertSource::File(p)) => Some(p.display().to_string()),
    }
}

impl SourceView {
    pub fn of(r: &SourceRecord, now_ms: i64) -> SourceView {
        let s = &r.settings;
        let has = |f: SecretField| r.secret_fields.contains(&f);
        let first = s.hosts.first();
        let age = r.password_updated_at.map(|at| (now_ms - at).max(0) / 86_400_000);
        let iam = match &s.auth {
            Auth::RdsIam(iam) => Some(iam),
            Auth::Password => None,
        };
        SourceView {
            id: r.id.to_string(),
            name: r.name.clone(),
            network: match &s.network {
                Network::Direct => NetworkKind::Direct,
                Network::Ssh(_) => NetworkKind::Ssh,
                Network::PrivateEndpoint => NetworkKind::PrivateEndpoint,
            },
            host: first.map(|h| h.host.clone()).unwrap_or_default(),
            port: first.map(|h| h.port).unwrap_or_default(),
            database: s.database.clone(),
            user: s.user.clone(),
            sslmode: s.sslmode,
            sslrootcert: cert_text(&s.sslrootcert),
            sslcert: cert_text(&s.sslcert),
            sslkey_set: has(SecretField::SslKey),
            tls_server_name: s.tls_server_name.clone(),
            target_session_attrs: s.target_session_attrs,
            pgbouncer: s.pgbouncer,
            connect_timeout_secs: s.connect_timeout_secs,
            ssh: match &s.network {
                Network::Ssh(ssh) => Some(SshView {
                    host: ssh.host.clone(),
                    port: ssh.port,
                    user: ssh.user.clone(),
                    host_key: match &ssh.host_key {
                        HostKeyCheck::Fingerprint(f) => Some(f.clone()),
                        HostKeyCheck::KnownHosts(_) | HostKeyCheck::Unpinned => None,
                    },
                    host_key_approved_by: approval(r, &ssh.host_key).map(|a| a.approved_by.clone()),
                    host_key_approved_at: approval(r, &ssh.host_key).map(|a| a.approved_at),
                    private_key_set: has(SecretField::SshPrivateKey),
                    passphrase_set: has(SecretField::SshPassphrase),
                    public_key: r.ssh_public_key.clone(),
                }),
                _ => None,
            },
            auth: match &s.auth {
                Auth::Password => AuthKind::Password,
                Auth::RdsIam(_) => AuthKind::RdsIam,
            },
            aws_region: iam.map(|i| i.region.clone()),
            iam_sign_host: iam.and_then(|i| i.sign_host.clone()),
            iam_sign_port: iam.and_then(|i| i.sign_port),
            aws_role_arn: iam.and_then(|i| i.role_arn.clone()),
            aws_external_id: iam.and_then(|i| i.external_id.clone()),
            aws_role_session_name: iam.and_then(|i| i.role_session_name.clone()),
            password_set: has(SecretField::Password),
            password_updated_at: r.password_updated_at,
            password_age_days: age,
            password_rotation: age.map(|d| {
                if d >= PASSWORD_FLAG_DAYS {
                    "rotate"
                } else if d >= PASSWORD_WARN_DAYS {
                    "warn"
                } else {
                    "ok"
                }
            }),
            created_at: r.created_at,
            updated_at: r.updated_at,
            discovery: None,
            alerts: Vec::new(),
            last_test: r.last_test.as_ref().map(|t| LastTestView {
                ok: t.ok,
                tested_at: t.tested_at,
                tested_by: t.tested_by.clone(),
                failed: t.failed.clone(),
                message: t.message.clone(),
            }),
        }
    }

    /// The view with the source's open alerts.
    pub fn with_alerts(mut self, alerts: Vec<crate::alerts::AlertView>) -> SourceView {
        self.alerts = alerts;
        self
    }

    /// The view with its place in the discovery schedule.
    pub fn with_discovery(mut self, discovery: Option<crate::routes::discoveries::DiscoveryView>) -> SourceView {
        self.discovery = discovery;
        self
    }
}

/// The recorded approval of the pinned host key (none once the pin was changed otherwise).
fn approval<'a>(r: &'a SourceRecord, pin: &HostKeyCheck) -> Option<&'a sluice_store::HostKeyApproval> {
    match (pin, &r.host_key_approval) {
        (HostKeyCheck::Fingerprint(fp), Some(a)) if sluice_store::normalize_fingerprint(fp) == a.fingerprint => Some(a),
        _ => None,
    }
}

/// A source id from a name: lower-case letters, digits and `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(sluice_core::SourceId::MAX_LEN).collect();
    if out.is_empty() {
        "source".into()
    } else {
        out
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
