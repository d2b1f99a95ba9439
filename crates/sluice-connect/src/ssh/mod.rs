//! The SSH bastion transport: `direct-tcpip` channels through one shared russh session, no local
//! listening port.
//!
//! One [`SshTunnel`] serves a source: every session and every cancel request of that source opens
//! a channel on the same SSH session, which is (re)established lazily — when the first channel is
//! wanted, and again after the bastion was lost, so a pool recovers by itself once the bastion is
//! back. Keep-alives notice a dead bastion within seconds.
//!
//! The host key is always verified, against a pinned `SHA256:` fingerprint or a known_hosts file;
//! there is no way to accept an unknown key. Every failure says which step failed (see
//! [`SshFailure`]) and shows what the bastion presented.

mod host_keys;
mod keys;

pub use self::keys::{generate_ed25519, GeneratedKey};
mod quick_ack;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelOpenFailure, Disconnect};
use sluice_core::{HostKeyCheck, HostPort, SshSpec};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use self::host_keys::{fingerprint, HostKeyPolicy, Verdict};
use crate::policy::NetworkPolicy;
use crate::{BoxedStream, ConnectError, HostKeyStatus, PresentedHostKey, SshFailure, Stage, Tunnel};

/// How often the bastion is asked whether it is alive, and how many unanswered asks end the
/// session. Default: every 2 s, 2 missed → a dead bastion is noticed within about 6 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: Duration,
    pub max_missed: usize,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive { interval: Duration::from_secs(2), max_missed: 2 }
    }
}

/// The steps of reaching a database through a bastion, in order; the doctor's `ssh` check
/// reports each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SshStage {
    /// DNS and TCP to the bastion.
    Reach,
    /// The SSH handshake and the host key check.
    HostKey,
    /// Public key authentication.
    Auth,
    /// A `direct-tcpip` channel to the database.
    Forward,
}

impl SshStage {
    pub const ALL: [SshStage; 4] = [SshStage::Reach, SshStage::HostKey, SshStage::Auth, SshStage::Forward];

    pub fn id(self) -> &'static str {
        match self {
            SshStage::Reach => "reach",
            SshStage::HostKey => "host_key",
            SshStage::Auth => "auth",
            SshStage::Forward => "forward",
        }
    }
}

/// The outcome of one [`SshStage`]: evidence on success, the error otherwise.
#[derive(Debug)]
pub struct SshStageReport {
    pub stage: SshStage,
    pub outcome: Result<String, ConnectError>,
}

/// An SSH bastion that opens `direct-tcpip` channels to database hosts. Use it as
/// `Dialer::Tunnel(Arc::new(tunnel))`, or let [`crate::Connector::new`] build it from the spec.
pub struct SshTunnel {
    bastion: HostPort,
    user: String,
    key: Arc<PrivateKey>,
    policy: Arc<HostKeyPolicy>,
    timeout: Duration,
    keepalive: Keepalive,
    /// Checked on the bastion's addresses before each TCP connection to it, reconnections too.
    /// The database host is resolved by the bastion: Sluice never sees its address.
    network: Arc<NetworkPolicy>,
    /// The shared session; `None` until first needed and after it died.
    session: tokio::sync::Mutex<Option<Arc<Handle<Verifier>>>>,
}

impl std::fmt::Debug for SshTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTunnel").field("bastion", &self.bastion).field("user", &self.user).finish_non_exhaustive()
    }
}

type Session = Handle<Verifier>;

impl SshTunnel {
    /// Reads the private key (and the known_hosts file) now, so a bad key, a wrong passphrase or
    /// an unreadable file is a config error before any connection. `timeout` bounds each step.
    pub fn new(spec: &SshSpec, timeout: Duration) -> Result<SshTunnel, ConnectError> {
        let key = match &spec.private_key {
            Some(source) => keys::load(source, spec.passphrase.as_ref())?,
            None => {
                return Err(ConnectError::Config {
                    field: "ssh.private_key",
                    message: "no private key given".into(),
                    hint: "give the SSH private key (OpenSSH, PEM or PKCS#8)".into(),
                })
            }
        };
        let policy = match &spec.host_key {
            HostKeyCheck::Fingerprint(fp) => HostKeyPolicy::Pinned(fp.clone()),
            HostKeyCheck::Unpinned => HostKeyPolicy::Unpinned,
            HostKeyCheck::KnownHosts(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConnectError::Config {
                    field: "ssh.known_hosts",
                    message: format!("cannot read {}: {e}", path.display()),
                    hint: "give a readable OpenSSH known_hosts file, or pin the host key with its SHA256 fingerprint"
                        .into(),
                })?;
                HostKeyPolicy::known_hosts(&path.display().to_string(), &text)
            }
        };
        Ok(SshTunnel {
            bastion: HostPort { host: spec.host.clone(), port: spec.port },
            user: spec.user.clone(),
            key: Arc::new(key),
            policy: Arc::new(policy),
            timeout,
            keepalive: Keepalive::default(),
            network: Arc::new(NetworkPolicy::default()),
            session: tokio::sync::Mutex::new(None),
        })
    }

    /// Checks the bastion's addresses against `policy` (default: [`NetworkPolicy::default`]).
    pub fn with_network_policy(mut self, policy: NetworkPolicy) -> SshTunnel {
        self.network = Arc::new(policy);
        self
    }

    pub fn with_keepalive(mut self, keepalive: Keepalive) -> SshTunnel {
        self.keepalive = keepalive;
        self
    }

    pub fn bastion(&self) -> &HostPort {
        &self.bastion
    }

    /// The client key's type and fingerprint, e.g. `ssh-ed25519 SHA256:…`.
    pub fn client_key_description(&self) -> String {
        describe_key(self.key.public_key())
    }

    /// Runs the bastion steps one by one on a connection of its own (the shared session is not
    /// touched) and reports each, stopping at the first failure: the later steps depend on it.
    /// [`SshStage::ALL`] lists the steps a short report did not reach.
    pub async fn check_stages(&self, target: &HostPort) -> Vec<SshStageReport> {
        let mut out = Vec::new();
        let (tcp, addr) = match self.reach().await {
            Ok(ok) => ok,
            Err(e) => {
                out.push(report(SshStage::Reach, Err(e)));
                return out;
            }
        };
        out.push(report(SshStage::Reach, Ok(format!("{addr} accepted a TCP connection"))));
        let (mut session, presented) = match self.handshake(tcp).await {
            Ok(ok) => ok,
            Err(e) => {
                out.push(report(SshStage::HostKey, Err(e)));
                return out;
            }
        };
        out.push(report(SshStage::HostKey, Ok(presented)));
        match self.authenticate(&mut session).await {
            Ok(detail) => out.push(report(SshStage::Auth, Ok(detail))),
            Err(e) => {
                out.push(report(SshStage::Auth, Err(e)));
                return out;
            }
        }
        let forward = match self.open_channel(&session, target).await {
            Ok(channel) => {
                drop(channel);
                Ok(format!("the bastion opened a channel to {target}"))
            }
            Err(e) => Err(e.into_error(self, target)),
        };
        out.push(report(SshStage::Forward, forward));
        let _ = session.disconnect(Disconnect::ByApplication, "check done", "en").await;
        out
    }

    /// The shared session, connecting (again) when there is none or it died.
    async fn session(&self) -> Result<Arc<Session>, ConnectError> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
            tracing::info!(bastion = %self.bastion, "the SSH session ended; reconnecting");
        }
        *slot = None;
        let (tcp, _) = self.reach().await?;
        let (mut session, _) = self.handshake(tcp).await?;
        self.authenticate(&mut session).await?;
        let session = Arc::new(session);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Drops `dead` as the shared session, unless another task already replaced it.
    async fn forget(&self, dead: &Arc<Session>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, dead)) {
            *slot = None;
        }
    }

    /// DNS and TCP to the bastion.
    async fn reach(&self) -> Result<(TcpStream, String), ConnectError> {
        let unreachable = |reason: String| {
            ConnectError::Ssh {
            failure: SshFailure::Unreachable,
            presented: None,
            message: format!("cannot reach the SSH bastion {}: {reason}", self.bastion),
            hint: "check the bastion's host name and port, and that it accepts connections from Sluice's address (security groups, firewalls)".into(),
        }
        };
        let addrs = crate::resolve_allowed(&self.bastion, self.timeout, &self.network).await.map_err(|e| match e {
            // The policy's refusal is the dns stage's, as for a database host.
            e @ ConnectError::Refused { .. } => e,
            ConnectError::Dns { reason, .. } => unreachable(format!("its name does not resolve ({reason})")),
            ConnectError::Timeout { secs, .. } => unreachable(format!("its name did not resolve within {secs} s")),
            other => unreachable(other.to_string()),
        })?;
        let tcp = crate::tcp_connect(&addrs, self.timeout).await.map_err(|e| match e {
            ConnectError::Tcp { addr, reason } if addr == self.bastion.to_string() => unreachable(reason),
            ConnectError::Tcp { addr, reason } => unreachable(format!("{reason} ({addr})")),
            ConnectError::Timeout { secs, .. } => unreachable(format!("no answer within {secs} s")),
            other => unreachable(other.to_string()),
        })?;
        let addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| self.bastion.to_string());
        Ok((tcp, addr))
    }

    /// The SSH handshake, including the host key check. Returns the (not yet authenticated)
    /// session and a description of the verified key.
    async fn handshake(&self, tcp: TcpStream) -> Result<(Session, String), ConnectError> {
        let config = client::Config {
            keepalive_interval: Some(self.keepalive.interval),
            keepalive_max: self.keepalive.max_missed,
            nodelay: true,
            preferred: russh::Preferred {
                key: self.policy.preferred_algorithms(&self.bastion.host, self.bastion.port).into(),
                ..russh::Preferred::default()
            },
            ..client::Config::default()
        };
        let seen = Arc::new(Mutex::new(None::<Presented>));
        let verifier = Verifier {
            policy: self.policy.clone(),
            host: self.bastion.host.clone(),
            port: self.bastion.port,
            seen: seen.clone(),
        };
        let result = tokio::time::timeout(
            self.timeout,
            client::connect_stream(Arc::new(config), quick_ack::bastion_stream(tcp), verifier),
        )
        .await;
        let presented = seen.lock().ok().and_then(|s| s.clone());
        match result {
            Err(_) => Err(ConnectError::Timeout { stage: Stage::Ssh, secs: self.timeout.as_secs() }),
            Ok(Ok(session)) => {
                let how = match &presented {
                    Some(Presented { verdict: Verdict::Trusted(how), description, .. }) => {
                        format!("the bastion's host key {description} {how}")
                    }
                    _ => "the bastion's host key was verified".into(),
                };
                Ok((session, how))
            }
            Ok(Err(e)) => Err(match presented {
                Some(p) if !matches!(p.verdict, Verdict::Trusted(_)) => self.host_key_error(p),
                _ => ConnectError::Ssh {
                    failure: SshFailure::Handshake,
                    presented: None,
                    message: format!("the SSH handshake with {} failed: {}", self.bastion, russh_reason(&e)),
                    hint: "check that the port is the bastion's SSH port and that it accepts Sluice's address".into(),
                },
            }),
        }
    }

    fn host_key_error(&self, p: Presented) -> ConnectError {
        let bastion = &self.bastion;
        let source = self.policy.source();
        let shown = |status: HostKeyStatus| {
            Some(Box::new(PresentedHostKey {
                status,
                algorithm: p.algorithm.clone(),
                fingerprint: p.fingerprint.clone(),
                public_key: p.public_line.clone(),
            }))
        };
        match p.verdict {
            Verdict::Unknown => ConnectError::Ssh {
                failure: SshFailure::HostKeyUnknown,
                presented: shown(HostKeyStatus::Unknown),
                message: format!(
                    "the bastion {bastion} presented the host key {}, which {source} does not list",
                    p.description
                ),
                hint: format!(
                    "check that fingerprint out of band (on the bastion: `ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub`); if it is right, pin it ({}) or add this line to the known_hosts file: {} {}",
                    p.key_file_type,
                    p.fingerprint,
                    host_keys::lookup_name(&bastion.host, bastion.port),
                    p.public_line
                ),
            },
            Verdict::Revoked(line) => ConnectError::Ssh {
                failure: SshFailure::HostKeyMismatch,
                presented: shown(HostKeyStatus::Revoked),
                message: format!(
                    "the bastion {bastion} presented the host key {}, which {source} marks @revoked (line {line})",
                    p.description
                ),
                hint: "do not connect: the bastion uses a key its owners revoked; ask them which key is current".into(),
            },
            Verdict::Mismatch(expected) => ConnectError::Ssh {
                failure: SshFailure::HostKeyMismatch,
                presented: shown(HostKeyStatus::Changed),
                message: format!(
                    "HOST KEY MISMATCH: the bastion {bastion} presented {}, but {source} expects {}",
                    p.description,
                    expected.join(", ")
                ),
                hint: "the bastion's key changed, or something intercepts the connection: confirm the new key with the bastion's owners before updating the pin or known_hosts (a pin must be of the key type the bastion presents)".into(),
            },
            Verdict::Trusted(_) => ConnectError::Ssh {
                failure: SshFailure::Handshake,
                presented: None,
                message: format!("the SSH handshake with {bastion} failed after the host key was accepted"),
                hint: "retry; if it persists, check the bastion's sshd log".into(),
            },
        }
    }

    /// Public key authentication; RSA keys sign with SHA-2 (rsa-sha2-512/256).
    async fn authenticate(&self, session: &mut Session) -> Result<String, ConnectError> {
        let work = async {
            let hash = if self.key.algorithm().is_rsa() {
                // Servers that do not announce their signature algorithms get SHA-256.
                session.best_supported_rsa_hash().await.ok().flatten().flatten().or(Some(russh::keys::HashAlg::Sha256))
            } else {
                None
            };
            let key = PrivateKeyWithHashAlg::new(self.key.clone(), hash);
            let offered = key.algorithm().to_string();
            let result = session.authenticate_publickey(&self.user, key).await;
            (offered, result)
        };
        let (offered, result) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ConnectError::Timeout { stage: Stage::Ssh, secs: self.timeout.as_secs() })?;
        let fp = fingerprint(self.key.public_key());
        match result {
            Ok(AuthResult::Success) => Ok(format!("authenticated as `{}` with the {offered} key {fp}", self.user)),
            Ok(AuthResult::Failure { remaining_methods, .. }) => {
                let methods: Vec<String> = remaining_methods.iter().map(|m| String::from(<&str>::from(m))).collect();
                Err(ConnectError::Ssh {
                    failure: SshFailure::AuthRefused,
                    presented: None,
                    message: format!(
                        "the bastion refused the {offered} key {fp} for user `{}` (it accepts: {})",
                        self.user,
                        if methods.is_empty() { "nothing more".to_string() } else { methods.join(", ") }
                    ),
                    hint: format!(
                        "add Sluice's public key ({}) to ~{}/.ssh/authorized_keys on the bastion, or check the user name",
                        self.key.public_key().to_openssh().unwrap_or_default(),
                        self.user
                    ),
                })
            }
            Err(e) => Err(ConnectError::Ssh {
                failure: SshFailure::Lost,
                presented: None,
                message: format!("the SSH session broke during authentication: {}", russh_reason(&e)),
                hint: "retry; if it persists, check the bastion's sshd log".into(),
            }),
        }
    }

    async fn open_channel(
        &self,
        session: &Session,
        target: &HostPort,
    ) -> Result<russh::Channel<client::Msg>, ChannelError> {
        let open = session.channel_open_direct_tcpip(target.host.clone(), u32::from(target.port), "127.0.0.1", 0);
        match tokio::time::timeout(self.timeout, open).await {
            Err(_) => Err(ChannelError::Timeout),
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(russh::Error::ChannelOpenFailure(why))) => Err(ChannelError::Refused(why)),
            Ok(Err(e)) => Err(ChannelError::SessionGone(russh_reason(&e))),
        }
    }
}

fn report(stage: SshStage, outcome: Result<String, ConnectError>) -> SshStageReport {
    SshStageReport { stage, outcome }
}

/// Why a channel did not open.
enum ChannelError {
    Refused(ChannelOpenFailure),
    /// The session is dead; a fresh one may succeed.
    SessionGone(String),
    Timeout,
}

impl ChannelError {
    fn into_error(self, tunnel: &SshTunnel, target: &HostPort) -> ConnectError {
        let bastion = &tunnel.bastion;
        match self {
            ChannelError::Refused(ChannelOpenFailure::AdministrativelyProhibited) => ConnectError::Ssh {
                failure: SshFailure::ForwardingRefused,
                presented: None,
                message: format!("the bastion {bastion} refuses to forward to {target} (administratively prohibited)"),
                hint: format!(
                    "allow it in the bastion's sshd_config for user `{}`: `AllowTcpForwarding yes` and `PermitOpen {target}` (or any)",
                    tunnel.user
                ),
            },
            ChannelError::Refused(ChannelOpenFailure::ConnectFailed) => ConnectError::Ssh {
                failure: SshFailure::TargetUnreachable,
                presented: None,
                message: format!("the bastion {bastion} could not connect to the database at {target}"),
                hint: "give the database's host and port as the bastion sees them, and check that the database accepts the bastion's address (security groups, listen_addresses)".into(),
            },
            ChannelError::Refused(other) => ConnectError::Ssh {
                failure: SshFailure::ForwardingRefused,
                presented: None,
                message: format!("the bastion {bastion} did not open a channel to {target} ({other:?})"),
                hint: "check the bastion's sshd log for the refused direct-tcpip channel".into(),
            },
            ChannelError::SessionGone(reason) => ConnectError::Ssh {
                failure: SshFailure::Lost,
                presented: None,
                message: format!("the SSH session to {bastion} ended: {reason}"),
                hint: "the bastion went away or the network dropped; Sluice reconnects on the next attempt".into(),
            },
            ChannelError::Timeout => ConnectError::Timeout {
                stage: Stage::Ssh,
                secs: tunnel.timeout.as_secs(),
            },
        }
    }
}

impl Tunnel for SshTunnel {
    fn with_policy(self: Arc<Self>, policy: Arc<NetworkPolicy>) -> Arc<dyn Tunnel> {
        if *self.network == *policy {
            return self;
        }
        // A tunnel of its own (key and host keys shared): a session opened under another policy
        // is never reused.
        Arc::new(SshTunnel {
            bastion: self.bastion.clone(),
            user: self.user.clone(),
            key: self.key.clone(),
            policy: self.policy.clone(),
            timeout: self.timeout,
            keepalive: self.keepalive,
            network: policy,
            session: tokio::sync::Mutex::new(None),
        })
    }

    fn open(&self, target: HostPort) -> Pin<Box<dyn Future<Output = Result<BoxedStream, ConnectError>> + Send + '_>> {
        Box::pin(async move {
            // A session that died since it was last used is found out here: retry once on a
            // fresh one.
            let mut attempt = 0;
            loop {
                let session = self.session().await?;
                match self.open_channel(&session, &target).await {
                    Ok(channel) => {
                        return Ok(Box::new(ChannelStream {
                            inner: channel.into_stream(),
                            session,
                            bastion: self.bastion.to_string(),
                        }) as BoxedStream)
                    }
                    Err(ChannelError::SessionGone(_) | ChannelError::Timeout) if attempt == 0 => {
                        self.forget(&session).await;
                        attempt += 1;
                    }
                    Err(e) => {
                        if matches!(e, ChannelError::SessionGone(_) | ChannelError::Timeout) {
                            self.forget(&session).await;
                        }
                        return Err(e.into_error(self, &target));
                    }
                }
            }
        })
    }
}

/// A channel as a byte stream. When the SSH session under it dies, reads fail with an error that
/// says so, instead of a bare end-of-stream.
struct ChannelStream {
    inner: russh::ChannelStream<client::Msg>,
    session: Arc<Session>,
    bastion: String,
}

impl AsyncRead for ChannelStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before && self.session.is_closed() => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!(
                        "the SSH session to the bastion {} ended (it stopped answering keep-alives or closed the connection)",
                        self.bastion
                    ),
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for ChannelStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the bastion presented, recorded by the host key check for error messages.
#[derive(Debug, Clone)]
struct Presented {
    /// `ssh-ed25519 SHA256:…`.
    description: String,
    /// `ed25519`, as in `/etc/ssh/ssh_host_ed25519_key.pub`.
    key_file_type: &'static str,
    /// `ssh-ed25519`.
    algorithm: String,
    fingerprint: String,
    /// `ssh-ed25519 AAAA…`, for a known_hosts line.
    public_line: String,
    verdict: Verdict,
}

/// russh's callbacks: only the host key check matters to Sluice.
struct Verifier {
    policy: Arc<HostKeyPolicy>,
    host: String,
    port: u16,
    seen: Arc<Mutex<Option<Presented>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let key: PublicKey = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            // Host certificates are not requested; judge one by its key if it comes anyway.
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        let verdict = self.policy.check(&self.host, self.port, &key);
        let trusted = matches!(verdict, Verdict::Trusted(_));
        let presented = Presented {
            description: describe_key(&key),
            key_file_type: match key.algorithm() {
                russh::keys::Algorithm::Ed25519 => "ed25519",
                russh::keys::Algorithm::Ecdsa { .. } => "ecdsa",
                russh::keys::Algorithm::Rsa { .. } => "rsa",
                _ => "*",
            },
            algorithm: key.algorithm().to_string(),
            fingerprint: fingerprint(&key),
            public_line: {
                let mut k = key.clone();
                k.set_comment("");
                k.to_openssh().unwrap_or_default().trim().to_string()
            },
            verdict,
        };
        if let Ok(mut slot) = self.seen.lock() {
            *slot = Some(presented);
        }
        Ok(trusted)
    }
}

fn describe_key(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm(), fingerprint(key))
}

/// russh's error, in words for a person.
fn russh_reason(e: &russh::Error) -> String {
    match e {
        russh::Error::Version => "the peer is not an SSH server".into(),
        russh::Error::HUP | russh::Error::Disconnect => "the bastion closed the connection".into(),
        russh::Error::KeepaliveTimeout => "the bastion stopped answering keep-alives".into(),
        russh::Error::ConnectionTimeout | russh::Error::InactivityTimeout => "the connection timed out".into(),
        russh::Error::NoCommonAlgo { kind, .. } => {
            format!("no {kind:?} algorithm in common with the bastion")
        }
        russh::Error::IO(io) => io.to_string(),
        other => other.to_string(),
    }
}
