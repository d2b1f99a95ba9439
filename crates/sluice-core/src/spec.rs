use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Secret;

pub const DEFAULT_PORT: u16 = 5432;
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_APPLICATION_NAME: &str = "sluice";

/// Everything Sluice needs to reach one PostgreSQL database. Plain data: it crosses every
/// boundary (CLI, server, store) and is validated once, by [`SourceSpec::validate`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct SourceSpec {
    /// One or more hosts, tried in order (see `target_session_attrs`).
    pub hosts: Vec<HostPort>,
    pub database: String,
    pub user: String,
    /// Never serialized: the store keeps it encrypted, apart from the spec.
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// Default [`SslMode::Require`].
    #[serde(default)]
    pub sslmode: SslMode,
    /// SCRAM channel binding (`tls-server-end-point`). Default [`ChannelBinding::Prefer`].
    #[serde(default)]
    pub channel_binding: ChannelBinding,
    /// The CA to verify the server against; `None` means the OS trust store.
    #[serde(default)]
    pub sslrootcert: Option<CertSource>,
    /// Client certificate (PEM) for certificate authentication.
    #[serde(default)]
    pub sslcert: Option<CertSource>,
    /// Client key (PEM: PKCS#8, PKCS#1 or SEC1). Never serialized.
    #[serde(default, skip_serializing)]
    pub sslkey: Option<KeySource>,
    /// The name the server certificate must carry, when the dialled host is a private endpoint or
    /// an IP address. Defaults to the host.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Seconds allowed for each stage of a connection attempt. Default 10.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Default `sluice`.
    #[serde(default = "default_application_name")]
    pub application_name: String,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub target_session_attrs: SessionAttrs,
    /// The host is PgBouncer in transaction pooling mode (or anything else that hands each
    /// transaction a possibly different server connection). Sluice then keeps nothing at session
    /// level: no `SET`, no named prepared statement outlives a transaction, and every unit of
    /// work runs in its own `BEGIN READ ONLY` with `SET LOCAL` limits. Default false.
    #[serde(default)]
    pub pgbouncer: bool,
    /// How the login proves who it is: the password (default), or a short-lived AWS RDS IAM token
    /// generated for each connection attempt.
    #[serde(default)]
    pub auth: Auth,
}

fn default_connect_timeout() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}

fn default_application_name() -> String {
    DEFAULT_APPLICATION_NAME.to_string()
}

impl SourceSpec {
    /// A spec with Sluice's defaults for everything but the essentials.
    pub fn new(host: impl Into<String>, database: impl Into<String>, user: impl Into<String>) -> Self {
        SourceSpec {
            hosts: vec![HostPort { host: host.into(), port: DEFAULT_PORT }],
            database: database.into(),
            user: user.into(),
            password: None,
            sslmode: SslMode::default(),
            channel_binding: ChannelBinding::default(),
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            tls_server_name: None,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            application_name: DEFAULT_APPLICATION_NAME.to_string(),
            network: Network::Direct,
            target_session_attrs: SessionAttrs::Any,
            pgbouncer: false,
            auth: Auth::Password,
        }
    }

    /// The first host; every valid spec has one.
    pub fn primary_host(&self) -> Option<&HostPort> {
        self.hosts.first()
    }

    /// The name the server certificate is checked against for `host`.
    pub fn tls_name_for<'a>(&'a self, host: &'a HostPort) -> &'a str {
        self.tls_server_name.as_deref().unwrap_or(&host.host)
    }

    /// Checks every field once; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), crate::SpecError> {
        use crate::SpecError as E;
        if self.hosts.is_empty() {
            return Err(E::new("host", "no host given", "set host (or PGHOST), e.g. db.example.com"));
        }
        for h in &self.hosts {
            if h.host.is_empty() {
                return Err(E::new("host", "a host is empty", "remove the empty entry from the host list"));
            }
            if h.host.starts_with('/') {
                return Err(E::new(
                    "host",
                    format!("`{}` is a Unix socket directory", h.host),
                    "Sluice connects over TCP only: give a host name or IP address",
                ));
            }
            if h.port == 0 {
                return Err(E::new("port", "port 0 is not a valid port", "use the server's port, usually 5432"));
            }
        }
        if self.database.is_empty() {
            return Err(E::new("dbname", "no database given", "set dbname (or PGDATABASE)"));
        }
        if self.user.is_empty() {
            return Err(E::new("user", "no user given", "set user (or PGUSER) to the read-only role"));
        }
        if self.connect_timeout_secs == 0 {
            return Err(E::new(
                "connect_timeout",
                "connect_timeout must be at least 1 second",
                "use e.g. connect_timeout=10",
            ));
        }
        if self.channel_binding == ChannelBinding::Require && self.sslmode == SslMode::Disable {
            return Err(E::new(
                "channel_binding",
                "channel_binding=require needs TLS, and sslmode=disable never uses it",
                "use sslmode=require or stricter with channel_binding=require, or channel_binding=prefer",
            ));
        }
        if self.sslcert.is_some() != self.sslkey.is_some() {
            return Err(E::new(
                "sslkey",
                "sslcert and sslkey must be given together",
                "give both the client certificate and its private key, or neither",
            ));
        }
        if let Some(name) = &self.tls_server_name {
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(E::new(
                    "tls_server_name",
                    format!("`{name}` is not a valid server name"),
                    "give the DNS name on the database's certificate, e.g. db.internal.example.com",
                ));
            }
        }
        if matches!(self.network, Network::PrivateEndpoint)
            && self.tls_server_name.is_none()
            && self.sslmode == SslMode::VerifyFull
        {
            return Err(E::new(
                "tls_server_name",
                "a private endpoint with sslmode=verify-full needs the database's own name",
                "set tls_server_name to the name on the database certificate (the endpoint's DNS name will not be on it)",
            ));
        }
        if let Network::Ssh(ssh) = &self.network {
            ssh.validate()?;
        }
        if let Auth::RdsIam(iam) = &self.auth {
            if !self.sslmode.requires_tls() {
                return Err(E::new(
                    "sslmode",
                    format!("auth=rds_iam needs TLS, and sslmode={} may send the token in plaintext", self.sslmode),
                    "use sslmode=verify-full with the RDS CA bundle as sslrootcert (RDS refuses IAM logins without TLS)",
                ));
            }
            if self.password.is_some() {
                return Err(E::new(
                    "password",
                    "a password was given together with auth=rds_iam",
                    "remove the password (PGPASSWORD, --password-file, the URI): the login uses a short-lived IAM token; or use auth=password",
                ));
            }
            iam.validate()?;
        }
        Ok(())
    }
}

/// How a source logs in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Auth {
    /// The source's password (or none: certificate, trust).
    #[default]
    Password,
    /// AWS RDS IAM database authentication: a token signed with AWS credentials (SigV4, valid
    /// 15 minutes) stands in for the password, generated anew for every connection attempt.
    RdsIam(RdsIam),
}

impl Auth {
    pub fn label(&self) -> &'static str {
        match self {
            Auth::Password => "password",
            Auth::RdsIam(_) => "rds_iam",
        }
    }
}

/// What an RDS IAM token is signed for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RdsIam {
    /// The database's AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// The RDS endpoint's name to sign for, when the dialled host differs from it (a private
    /// endpoint, or a name only the bastion resolves). Defaults to each dialled host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_host: Option<String>,
    /// The port to sign for. Defaults to each dialled host's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_port: Option<u16>,
    /// An IAM role to assume (STS `AssumeRole`) with the chain's credentials; the token is then
    /// signed with the role's temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The role session's name (CloudTrail shows it). Defaults to `sluice` or `sluice-<source>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_session_name: Option<String>,
}

impl RdsIam {
    pub fn new(region: impl Into<String>) -> RdsIam {
        RdsIam {
            region: region.into(),
            sign_host: None,
            sign_port: None,
            role_arn: None,
            external_id: None,
            role_session_name: None,
        }
    }

    /// The `host:port` a token for a connection to `dialled` is signed for.
    pub fn signed_for(&self, dialled: &HostPort) -> HostPort {
        HostPort {
            host: self.sign_host.clone().unwrap_or_else(|| dialled.host.clone()),
            port: self.sign_port.unwrap_or(dialled.port),
        }
    }

    fn validate(&self) -> Result<(), crate::SpecError> {
        use crate::SpecError as E;
        let region_ok = !self.region.is_empty()
            && self.region.len() <= 64
            && self.region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(E::new(
                "auth.region",
                format!("`{}` is not an AWS region", self.region),
                "give the database's region, e.g. --aws-region eu-west-1",
            ));
        }
        if let Some(host) = &self.sign_host {
            if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(E::new(
                    "auth.sign_host",
                    format!("`{host}` is not a host name to sign for"),
                    "give the RDS endpoint's DNS name, e.g. mydb.abc123.eu-west-1.rds.amazonaws.com",
                ));
            }
        }
        if self.sign_port == Some(0) {
            return Err(E::new(
                "auth.sign_port",
                "port 0 is not a valid port",
                "give the RDS endpoint's port, usually 5432",
            ));
        }
        if let Some(arn) = &self.role_arn {
            if !is_role_arn(arn) {
                return Err(E::new(
                    "auth.role_arn",
                    format!("`{arn}` is not an IAM role ARN"),
                    "give the role's ARN as IAM shows it, e.g. arn:aws:iam::123456789012:role/sluice-reader",
                ));
            }
        } else if self.external_id.is_some() || self.role_session_name.is_some() {
            let field = if self.external_id.is_some() { "auth.external_id" } else { "auth.role_session_name" };
            return Err(E::new(
                field,
                format!("{field} is only used when a role is assumed"),
                "name the role to assume (role_arn), or leave the field out",
            ));
        }
        if let Some(id) = &self.external_id {
            let ok = (2..=1224).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
            if !ok {
                return Err(E::new(
                    "auth.external_id",
                    "the external id must be 2 to 1224 characters of letters, digits and +=,.@:/-_",
                    "give the external id exactly as the role's trust policy names it (sts:ExternalId)",
                ));
            }
        }
        if let Some(name) = &self.role_session_name {
            if !is_session_name(name) {
                return Err(E::new(
                    "auth.role_session_name",
                    format!("`{name}` is not a role session name"),
                    "use 2 to 64 characters of letters, digits and +=,.@-_",
                ));
            }
        }
        Ok(())
    }
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`, with a 12-digit account.
pub fn is_role_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let partition_ok = partition.starts_with("aws") && partition.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let name = resource.strip_prefix("role/").and_then(|r| r.rsplit('/').next()).unwrap_or("");
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && resource.len() <= 512
        && resource.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b));
    partition_ok && account_ok && name_ok
}

/// STS's rule for `RoleSessionName`: 2 to 64 of `[\w+=,.@-]`.
pub fn is_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
}

/// One `host:port` to dial.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct HostPort {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

impl HostPort {
    /// True for `localhost`, 127.0.0.0/8 and ::1 — hosts where an unverified certificate is no risk.
    pub fn is_loopback(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') && !self.host.starts_with('[') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// libpq's sslmode, with libpq's meaning for each value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS only if the server insists.
    Allow,
    /// TLS when the server offers it, plaintext otherwise. Not verified.
    Prefer,
    /// TLS always, not verified — unless `sslrootcert` is given, then as `verify-ca` (libpq's rule).
    #[default]
    Require,
    /// TLS, the chain verified against the CA; the name is not checked.
    VerifyCa,
    /// TLS, chain and name verified.
    VerifyFull,
}

impl SslMode {
    pub const ALL: [SslMode; 6] =
        [SslMode::Disable, SslMode::Allow, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// `require` and stricter never fall back to plaintext.
    pub fn requires_tls(self) -> bool {
        self >= SslMode::Require
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SslMode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            format!("`{s}` is not an sslmode; use one of disable, allow, prefer, require, verify-ca, verify-full")
        })
    }
}

/// libpq's `channel_binding`: whether SCRAM authentication binds itself to the TLS connection
/// (`SCRAM-SHA-256-PLUS` with `tls-server-end-point`), so that a man in the middle holding another
/// certificate cannot relay the login.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelBinding {
    /// Never bind, even when the server offers it.
    Disable,
    /// Bind when the connection is TLS and the server offers `SCRAM-SHA-256-PLUS`.
    #[default]
    Prefer,
    /// Refuse to log in unless the login was bound: plaintext, another authentication method
    /// (md5, password, trust, cert) or a certificate whose signature has no hash all fail.
    Require,
}

impl ChannelBinding {
    pub const ALL: [ChannelBinding; 3] = [ChannelBinding::Disable, ChannelBinding::Prefer, ChannelBinding::Require];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelBinding::Disable => "disable",
            ChannelBinding::Prefer => "prefer",
            ChannelBinding::Require => "require",
        }
    }
}

impl fmt::Display for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelBinding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ChannelBinding::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a channel_binding value; use disable, prefer or require"))
    }
}

/// A certificate given inline as PEM, as a file, or (roots only) the OS trust store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertSource {
    /// The operating system's trust store (libpq's `sslrootcert=system`).
    System,
    Pem(String),
    File(PathBuf),
}

impl CertSource {
    /// `system`, PEM text (starts with `-----BEGIN`), or else a path.
    pub fn parse(value: &str) -> CertSource {
        if value == "system" {
            CertSource::System
        } else if value.trim_start().starts_with("-----BEGIN") {
            CertSource::Pem(value.to_string())
        } else {
            CertSource::File(PathBuf::from(value))
        }
    }
}

/// A private key given inline (secret) or as a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Pem(Secret),
    File(PathBuf),
}

impl KeySource {
    pub fn parse(value: &str) -> KeySource {
        if value.trim_start().starts_with("-----BEGIN") {
            KeySource::Pem(Secret::new(value))
        } else {
            KeySource::File(PathBuf::from(value))
        }
    }
}

/// How the TCP stream to the database is obtained.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Network {
    /// Dial the host directly.
    #[default]
    Direct,
    /// Open a `direct-tcpip` channel through an SSH bastion.
    Ssh(SshSpec),
    /// Dial a private endpoint's DNS name (AWS PrivateLink and the like); the certificate is
    /// checked against `tls_server_name`, the database's own name.
    PrivateEndpoint,
}

impl Network {
    pub fn label(&self) -> &'static str {
        match self {
            Network::Direct => "direct",
            Network::Ssh(_) => "ssh",
            Network::PrivateEndpoint => "private_endpoint",
        }
    }
}

/// An SSH bastion. The host key is always verified: there is no "accept any key".
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SshSpec {
    pub host: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    pub user: String,
    /// OpenSSH, PEM or PKCS#8 private key: ed25519, ECDSA or RSA. Never serialized.
    #[serde(skip_serializing)]
    pub private_key: Option<KeySource>,
    #[serde(default, skip_serializing)]
    pub passphrase: Option<Secret>,
    pub host_key: HostKeyCheck,
}

fn default_ssh_port() -> u16 {
    22
}

impl SshSpec {
    fn validate(&self) -> Result<(), crate::SpecError> {
        use crate::SpecError as E;
        if self.host.is_empty() {
            return Err(E::new("ssh.host", "no bastion host given", "set the SSH bastion's host name"));
        }
        if self.user.is_empty() {
            return Err(E::new("ssh.user", "no bastion user given", "set the SSH user on the bastion"));
        }
        if self.private_key.is_none() {
            return Err(E::new(
                "ssh.private_key",
                "no private key given",
                "give the SSH private key (OpenSSH, PEM or PKCS#8)",
            ));
        }
        if let HostKeyCheck::Fingerprint(fp) = &self.host_key {
            if !fp.starts_with("SHA256:") || fp.len() < 20 {
                return Err(E::new(
                    "ssh.host_key",
                    format!("`{fp}` is not a SHA256 host key fingerprint"),
                    "run `ssh-keyscan HOST | ssh-keygen -lf -` on a trusted machine and copy the SHA256:… value",
                ));
            }
        }
        Ok(())
    }
}

/// How the bastion's host key is pinned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKeyCheck {
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    Fingerprint(String),
    /// An OpenSSH known_hosts file.
    KnownHosts(PathBuf),
    /// Nothing trusted yet: every key the bastion presents is unknown, and the connection fails
    /// showing it, until someone compares it with the bastion's and pins it (the service's
    /// host key approval). Never "accept any key".
    Unpinned,
}

/// libpq's `target_session_attrs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionAttrs {
    #[default]
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

impl SessionAttrs {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionAttrs::Any => "any",
            SessionAttrs::ReadWrite => "read-write",
            SessionAttrs::ReadOnly => "read-only",
            SessionAttrs::Primary => "primary",
            SessionAttrs::Standby => "standby",
            SessionAttrs::PreferStandby => "prefer-standby",
        }
    }
}

impl FromStr for SessionAttrs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            SessionAttrs::Any,
            SessionAttrs::ReadWrite,
            SessionAttrs::ReadOnly,
            SessionAttrs::Primary,
            SessionAttrs::Standby,
            SessionAttrs::PreferStandby,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or_else(|| {
            format!("`{s}` is not a target_session_attrs value; use any, read-write, read-only, primary, standby or prefer-standby")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_round_trips_and_orders() {
        for m in SslMode::ALL {
            assert_eq!(m.as_str().parse::<SslMode>(), Ok(m));
        }
        assert!(SslMode::Require.requires_tls());
        assert!(!SslMode::Prefer.requires_tls());
        assert!("verify_full".parse::<SslMode>().is_err());
    }

    #[test]
    fn validate_names_the_field() {
        let mut s = SourceSpec::new("db", "app", "ro");
        assert!(s.validate().is_ok());
        s.hosts[0].host = "/var/run/postgresql".into();
        assert_eq!(s.validate().map_err(|e| e.field), Err("host"));
        let mut s = SourceSpec::new("db", "", "ro");
        assert_eq!(s.validate().map_err(|e| e.field), Err("dbname"));
        s.database = "x".into();
        s.sslcert = Some(CertSource::Pem("-----BEGIN CERTIFICATE-----".into()));
        assert_eq!(s.validate().map_err(|e| e.field), Err("sslkey"));
    }

    #[test]
    fn channel_binding_require_needs_tls() {
        for m in ChannelBinding::ALL {
            assert_eq!(m.as_str().parse::<ChannelBinding>(), Ok(m));
        }
        assert!("on".parse::<ChannelBinding>().is_err());
        let mut s = SourceSpec::new("db", "app", "ro");
        assert_eq!(s.channel_binding, ChannelBinding::Prefer);
        s.channel_binding = ChannelBinding::Require;
        assert!(s.validate().is_ok());
        for mode in [SslMode::Allow, SslMode::Prefer, SslMode::VerifyFull] {
            s.sslmode = mode;
            assert!(s.validate().is_ok(), "{mode}");
        }
        s.sslmode = SslMode::Disable;
        let e = s.validate().expect_err("require without TLS");
        assert_eq!(e.field, "channel_binding");
        assert!(e.hint.contains("sslmode=require"), "{e:?}");
        s.channel_binding = ChannelBinding::Prefer;
        assert!(s.validate().is_ok());
    }

    #[test]
    fn rds_iam_needs_tls_and_no_password() {
        let mut s = SourceSpec::new("db", "app", "ro");
        assert_eq!(s.auth, Auth::Password);
        s.auth = Auth::RdsIam(RdsIam::new("eu-west-1"));
        assert!(s.validate().is_ok());
        for mode in [SslMode::Disable, SslMode::Allow, SslMode::Prefer] {
            s.sslmode = mode;
            let e = s.validate().expect_err("plaintext possible");
            assert_eq!(e.field, "sslmode", "{mode}");
            assert!(e.message.contains("rds_iam") && e.hint.contains("verify-full"), "{e:?}");
        }
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            s.sslmode = mode;
            assert!(s.validate().is_ok(), "{mode}");
        }
        s.password = Some(Secret::new("pw"));
        let e = s.validate().expect_err("password with rds_iam");
        assert_eq!(e.field, "password");
        assert!(!format!("{e:?}").contains("pw\""), "{e:?}");
        s.password = None;
        for (iam, field) in [
            (RdsIam::new(""), "auth.region"),
            (RdsIam::new("EU West"), "auth.region"),
            (RdsIam { sign_host: Some(" ".into()), ..RdsIam::new("eu-west-1") }, "auth.sign_host"),
            (RdsIam { sign_port: Some(0), ..RdsIam::new("eu-west-1") }, "auth.sign_port"),
            (
                RdsIam { role_arn: Some("arn:aws:iam::12345:role/x".into()), ..RdsIam::new("eu-west-1") },
                "auth.role_arn",
            ),
            (
                RdsIam { role_arn: Some("arn:aws:iam::123456789012:user/x".into()), ..RdsIam::new("eu-west-1") },
                "auth.role_arn",
            ),
            (RdsIam { role_arn: Some("sluice-reader".into()), ..RdsIam::new("eu-west-1") }, "auth.role_arn"),
            (RdsIam { external_id: Some("abc".into()), ..RdsIam::new("eu-west-1") }, "auth.external_id"),
            (
                RdsIam {
                    role_arn: Some("arn:aws:iam::123456789012:role/x".into()),
                    role_session_name: Some("a b".into()),
                    ..RdsIam::new("eu-west-1")
                },
                "auth.role_session_name",
            ),
        ] {
            s.auth = Auth::RdsIam(iam);
            assert_eq!(s.validate().map_err(|e| e.field), Err(field));
        }
        for arn in ["arn:aws:iam::123456789012:role/x", "arn:aws-cn:iam::123456789012:role/team/db/sluice-reader"] {
            s.auth = Auth::RdsIam(RdsIam {
                role_arn: Some(arn.into()),
                external_id: Some("ext-1:a".into()),
                role_session_name: Some("sluice-orders".into()),
                ..RdsIam::new("eu-west-1")
            });
            assert!(s.validate().is_ok(), "{arn}");
        }
    }

    #[test]
    fn auth_serializes_with_a_method_tag_and_defaults_to_password() {
        let mut s = SourceSpec::new("db", "app", "ro");
        s.auth = Auth::RdsIam(RdsIam { sign_port: Some(5433), ..RdsIam::new("eu-west-1") });
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["auth"], serde_json::json!({"method": "rds_iam", "region": "eu-west-1", "sign_port": 5433}));
        let back: SourceSpec = serde_json::from_value(json.clone()).expect("parse");
        assert_eq!(back, s);
        let mut old = json;
        old.as_object_mut().expect("object").remove("auth");
        let old: SourceSpec = serde_json::from_value(old).expect("parse");
        assert_eq!(old.auth, Auth::Password);
        let signed = RdsIam { sign_host: Some("rds.example".into()), ..RdsIam::new("eu-west-1") }
            .signed_for(&HostPort { host: "127.0.0.1".into(), port: 6000 });
        assert_eq!(signed, HostPort { host: "rds.example".into(), port: 6000 });
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.3.2.1", "::1", "[::1]"] {
            assert!(HostPort { host: h.into(), port: 1 }.is_loopback(), "{h}");
        }
        for h in ["db.example.com", "10.0.0.1"] {
            assert!(!HostPort { host: h.into(), port: 1 }.is_loopback(), "{h}");
        }
    }

    #[test]
    fn secrets_are_not_serialized() {
        let mut s = SourceSpec::new("db", "app", "ro");
        s.password = Some(Secret::new("hunter2"));
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert!(json.contains("\"user\":\"ro\""), "{json}");
        assert!(!json.contains("hunter2"), "{json}");
    }
}
