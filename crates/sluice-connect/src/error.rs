use std::fmt;

use sluice_core::{ErrorKind, SpecError, UserFacing};

/// The stage of a connection attempt; the doctor's check ids are these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Config,
    Dns,
    Tcp,
    Ssh,
    Tls,
    Auth,
    Session,
}

impl Stage {
    pub fn id(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Dns => "dns",
            Stage::Tcp => "tcp",
            Stage::Ssh => "ssh",
            Stage::Tls => "tls",
            Stage::Auth => "auth",
            Stage::Session => "session",
        }
    }
}

/// Why the TLS handshake failed, as a person needs to hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The chain does not lead to a CA Sluice trusts.
    UnknownCa,
    /// The certificate does not carry the name Sluice checked.
    NameMismatch {
        expected: String,
        presented: Vec<String>,
    },
    Expired,
    NotYetValid,
    /// The server refused the client certificate (or wanted one and got none).
    ClientCertRejected(String),
    /// The peer answered the TLS request with something that is not TLS.
    NotTls,
    Other(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::UnknownCa => f.write_str("the server certificate is signed by an unknown CA"),
            TlsFailure::NameMismatch { expected, presented } => write!(
                f,
                "the server certificate is not valid for `{expected}`; it names: {}",
                if presented.is_empty() { "(no names)".to_string() } else { presented.join(", ") }
            ),
            TlsFailure::Expired => f.write_str("the server certificate has expired"),
            TlsFailure::NotYetValid => f.write_str("the server certificate is not yet valid"),
            TlsFailure::ClientCertRejected(why) => {
                write!(f, "the server rejected the client certificate ({why})")
            }
            TlsFailure::NotTls => f.write_str("the server answered the TLS request with something that is not TLS"),
            TlsFailure::Other(s) => f.write_str(s),
        }
    }
}

/// Why a login under `channel_binding=require` was not bound to the TLS connection. The driver
/// refuses before it sends the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelBindingRefusal {
    /// The connection is not encrypted (sslmode allow or prefer, and the server took plaintext).
    NoTls { addr: String },
    /// The server certificate allows no binding (signed with Ed25519, say).
    Certificate { addr: String, why: String },
    /// The server authenticated without `SCRAM-SHA-256-PLUS`: md5, password, trust or cert.
    NotOffered { addr: String },
}

impl ChannelBindingRefusal {
    fn hint(&self) -> &'static str {
        match self {
            ChannelBindingRefusal::NoTls { .. } => {
                "channel binding needs TLS: use sslmode=require or stricter, and enable ssl on the server"
            }
            ChannelBindingRefusal::Certificate { .. } => {
                "re-issue the server certificate from a CA with an RSA or ECDSA key (signed with SHA-256, SHA-384 or SHA-512), or use channel_binding=prefer"
            }
            ChannelBindingRefusal::NotOffered { .. } => {
                "the pg_hba.conf line that matches must be `hostssl … scram-sha-256` (not md5, password, trust or cert) and the role's password stored as SCRAM (password_encryption = scram-sha-256, then set it again); or use channel_binding=prefer"
            }
        }
    }
}

impl fmt::Display for ChannelBindingRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelBindingRefusal::NoTls { addr } => write!(f, "the connection to {addr} is not encrypted"),
            ChannelBindingRefusal::Certificate { addr, why } => write!(f, "{why} ({addr})"),
            ChannelBindingRefusal::NotOffered { addr } => {
                write!(f, "{addr} authenticated without SCRAM-SHA-256-PLUS, so the login was not bound to TLS")
            }
        }
    }
}

/// Which part of the SSH bastion path failed; each needs a different fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SshFailure {
    /// The bastion's name does not resolve or its port does not accept TCP.
    Unreachable,
    /// Something answered but the SSH handshake did not complete (not an SSH server, or it
    /// dropped the connection).
    Handshake,
    /// The bastion's host key is not pinned and not in the known_hosts file.
    HostKeyUnknown,
    /// The bastion presented another key than the pinned / known one (or a revoked one).
    HostKeyMismatch,
    /// The bastion refused the client key.
    AuthRefused,
    /// The bastion refuses to forward to the database (`AllowTcpForwarding`, `PermitOpen`).
    ForwardingRefused,
    /// The bastion tried, and could not connect to the database.
    TargetUnreachable,
    /// An established SSH session died (keep-alives unanswered, connection reset).
    Lost,
}

impl SshFailure {
    pub fn id(self) -> &'static str {
        match self {
            SshFailure::Unreachable => "unreachable",
            SshFailure::Handshake => "handshake",
            SshFailure::HostKeyUnknown => "host_key_unknown",
            SshFailure::HostKeyMismatch => "host_key_mismatch",
            SshFailure::AuthRefused => "auth_refused",
            SshFailure::ForwardingRefused => "forwarding_refused",
            SshFailure::TargetUnreachable => "target_unreachable",
            SshFailure::Lost => "lost",
        }
    }
}

/// Why a presented host key was not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKeyStatus {
    /// Nothing pins or lists a key for this bastion.
    Unknown,
    /// Another key is pinned or listed: the key changed, or something intercepts the connection.
    Changed,
    /// The key is marked `@revoked`.
    Revoked,
}

/// A host key a bastion presented and Sluice did not trust, for a person to compare with the
/// bastion's own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) before pinning it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresentedHostKey {
    pub status: HostKeyStatus,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `rsa-sha2-512`…
    pub algorithm: String,
    /// `SHA256:…` without padding, as OpenSSH prints it.
    pub fingerprint: String,
    /// `ssh-ed25519 AAAA…`: the key itself (public).
    pub public_key: String,
}

/// Everything that can stop Sluice from handing out a read-only session.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{field}: {message}")]
    Config { field: &'static str, message: String, hint: String },
    #[error("could not resolve `{host}`: {reason}")]
    Dns { host: String, reason: String },
    #[error("could not connect to {addr}: {reason}")]
    Tcp { addr: String, reason: String },
    #[error("{addr} is not a PostgreSQL server: {detail}")]
    NotPostgres { addr: String, detail: String },
    #[error("ssh: {message}")]
    Ssh {
        failure: SshFailure,
        message: String,
        hint: String,
        /// The host key the bastion presented, when it is why the connection failed (unknown,
        /// changed or revoked).
        presented: Option<Box<PresentedHostKey>>,
    },
    #[error("the server at {addr} does not support TLS")]
    TlsUnsupported { addr: String },
    #[error("TLS handshake with {addr} failed: {failure}")]
    Tls { addr: String, failure: TlsFailure },
    #[error("the server refused the login: {message}")]
    Auth { code: String, message: String, server_hint: Option<String> },
    /// No RDS IAM token could be made (no credentials, or a credential source failed).
    #[error("{0}")]
    Iam(#[from] sluice_iam::IamError),
    /// The server refused an RDS IAM token.
    #[error("the server refused the RDS IAM token for {user}: {message}")]
    IamLogin { code: String, message: String, region: String, user: String },
    /// `channel_binding=require`, and the login was not bound to the TLS connection.
    #[error("channel_binding=require, but {reason}")]
    ChannelBinding { addr: String, reason: ChannelBindingRefusal },
    #[error("the server refused the connection: {message}")]
    Server { code: String, message: String },
    #[error("{stage:?} did not finish within {secs} s")]
    Timeout { stage: Stage, secs: u64 },
    #[error("setting up the read-only session failed: {message}")]
    Session { message: String },
    #[error("no host matched target_session_attrs={attrs}: {tried}")]
    NoMatchingHost { attrs: String, tried: String },
    #[error("the connection to {addr} was lost: {reason}")]
    Lost { addr: String, reason: String },
    #[error("waited {secs} s for a free session (the pool holds at most {max})")]
    PoolTimeout { secs: u64, max: usize },
    /// The network policy refuses an address the host resolved to; nothing was sent to it.
    #[error("{}", refused_message(host, refusal))]
    Refused { host: String, refusal: crate::policy::Refusal },
}

fn refused_message(host: &str, refusal: &crate::policy::Refusal) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() {
        format!("{refusal}; nothing was sent to it")
    } else {
        format!("`{host}` resolves to {}, and {refusal}; nothing was sent to it", refusal.addr.ip())
    }
}

impl ConnectError {
    pub fn stage(&self) -> Stage {
        match self {
            ConnectError::Spec(_) | ConnectError::Config { .. } => Stage::Config,
            ConnectError::Dns { .. } | ConnectError::Refused { .. } => Stage::Dns,
            ConnectError::Tcp { .. } | ConnectError::NotPostgres { .. } => Stage::Tcp,
            ConnectError::Ssh { .. } => Stage::Ssh,
            ConnectError::TlsUnsupported { .. } | ConnectError::Tls { .. } => Stage::Tls,
            ConnectError::Auth { .. }
            | ConnectError::Iam(_)
            | ConnectError::IamLogin { .. }
            | ConnectError::ChannelBinding { .. }
            | ConnectError::Server { .. } => Stage::Auth,
            ConnectError::Timeout { stage, .. } => *stage,
            ConnectError::Session { .. }
            | ConnectError::NoMatchingHost { .. }
            | ConnectError::Lost { .. }
            | ConnectError::PoolTimeout { .. } => Stage::Session,
        }
    }

    /// The SQLSTATE, when the server sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ConnectError::Auth { code, .. }
            | ConnectError::IamLogin { code, .. }
            | ConnectError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl UserFacing for ConnectError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConnectError::Spec(_) | ConnectError::Config { .. } | ConnectError::Refused { .. } => ErrorKind::Config,
            ConnectError::Iam(e) => e.kind(),
            ConnectError::Auth { .. }
            | ConnectError::IamLogin { .. }
            | ConnectError::ChannelBinding { .. }
            | ConnectError::Ssh { failure: SshFailure::AuthRefused, .. } => ErrorKind::Auth,
            ConnectError::Server { .. } | ConnectError::Session { .. } => ErrorKind::Database,
            ConnectError::Timeout { .. } | ConnectError::PoolTimeout { .. } => ErrorKind::Timeout,
            _ => ErrorKind::Network,
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }

    fn hint(&self) -> Option<String> {
        let hint = match self {
            ConnectError::Spec(e) => return e.hint(),
            ConnectError::Iam(e) => return e.hint(),
            ConnectError::IamLogin { region, user, .. } => {
                let causes = sluice_iam::login_failure_causes(region, user);
                let numbered: Vec<String> = causes.iter().enumerate().map(|(i, c)| format!("{}. {c}", i + 1)).collect();
                format!("check, in this order: {}", numbered.join(" "))
            }
            ConnectError::Config { hint, .. } | ConnectError::Ssh { hint, .. } => hint.clone(),
            ConnectError::Dns { .. } => "check the host name; from inside a private network, use the name its DNS resolves".into(),
            ConnectError::Tcp { reason, .. } if reason.contains("refused") => {
                "nothing listens there: check the port, that PostgreSQL runs, and its listen_addresses".into()
            }
            ConnectError::Tcp { .. } => {
                "check the port, firewalls and security groups between Sluice and the database (allow Sluice's egress address)".into()
            }
            ConnectError::NotPostgres { .. } => "check the port: another service answers there".into(),
            ConnectError::TlsUnsupported { .. } => {
                "enable TLS on the server (ssl = on with a certificate), or lower sslmode to prefer only on a trusted network".into()
            }
            ConnectError::Tls { failure, .. } => match failure {
                TlsFailure::UnknownCa => "give the CA that signed the server certificate as sslrootcert (for RDS, the region's CA bundle)".into(),
                TlsFailure::NameMismatch { .. } => {
                    "connect with a name on the certificate, or set tls_server_name to one of the names it lists".into()
                }
                TlsFailure::Expired | TlsFailure::NotYetValid => "renew the server certificate, or check the server's clock".into(),
                TlsFailure::ClientCertRejected(_) => {
                    "check that the client certificate is signed by the server's ssl_ca_file and that its CN is the user".into()
                }
                TlsFailure::NotTls => "check the port: this does not look like PostgreSQL".into(),
                TlsFailure::Other(_) => return None,
            },
            ConnectError::Auth { code, server_hint, .. } => match code.as_str() {
                "28P01" => "the password is wrong for this user (or the user does not exist)".into(),
                "28000" => "pg_hba.conf has no rule that lets this user in from Sluice's address with this sslmode: add a `hostssl DB USER ADDRESS scram-sha-256` line, or use sslmode=require if only hostssl lines exist".into(),
                "3D000" => "the database does not exist: check dbname".into(),
                _ => return server_hint.clone(),
            },
            ConnectError::ChannelBinding { reason, .. } => reason.hint().into(),
            ConnectError::Server { code, .. } if code == "53300" => {
                "the server has no free connection slots: raise max_connections or lower other clients' pools".into()
            }
            ConnectError::Server { .. } => return None,
            ConnectError::Timeout { stage, .. } => format!("raise connect_timeout or check the network path ({} stage)", stage.id()),
            ConnectError::Session { .. } => "the user may not set session parameters; check ALTER ROLE … SET overrides".into(),
            ConnectError::NoMatchingHost { .. } => "check the host list and target_session_attrs".into(),
            ConnectError::Lost { .. } => "the server closed the connection or the network dropped; retry".into(),
            ConnectError::PoolTimeout { .. } => "all sessions are busy; retry, or raise the pool size".into(),
            ConnectError::Refused { refusal, .. } => refusal.hint(),
        };
        Some(hint)
    }
}
