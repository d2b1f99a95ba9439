use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::{Auth, ChannelBinding, HostPort, Network, SessionAttrs, SourceSpec, SslMode};
use sluice_iam::{Env, IamAuth};
use tokio_postgres::config::{ChannelBinding as DriverChannelBinding, SslMode as DriverSslMode};

use crate::cancel::CancelHandle;
use crate::session::{ReadOnlySession, SessionSettings};
use crate::tls::{BindingSlot, TlsInfo, TlsSetup};
use crate::{ChannelBindingRefusal, ConnectError, Dialer, SshTunnel, Stage};

/// Opens read-only sessions to one source. Built once per source (it reads certificates and keys
/// then) and shared: it is cheap to clone.
#[derive(Clone, Debug)]
pub struct Connector {
    spec: Arc<SourceSpec>,
    tls: TlsSetup,
    dialer: Dialer,
    settings: SessionSettings,
    /// For `auth = rds_iam`: signs the password of every login attempt.
    iam: Option<IamAuth>,
}

impl Connector {
    /// A connector for the spec's `network`: direct TCP for `direct` and `private_endpoint`
    /// (the endpoint's name is dialled, the certificate checked against `tls_server_name`), an
    /// [`SshTunnel`] for `ssh` (its key and known_hosts file are read now).
    pub fn new(spec: SourceSpec) -> Result<Connector, ConnectError> {
        spec.validate()?;
        let timeout = Duration::from_secs(spec.connect_timeout_secs);
        let dialer = match &spec.network {
            Network::Direct | Network::PrivateEndpoint => Dialer::direct(timeout),
            Network::Ssh(ssh) => Dialer::Tunnel(Arc::new(SshTunnel::new(ssh, timeout)?)),
        };
        Connector::with_dialer(spec, dialer)
    }

    /// [`Connector::new`] off the async executor: reading certificate, key and known_hosts files
    /// and decrypting an SSH key (bcrypt-pbkdf, slow by design) run on tokio's blocking pool, so
    /// whatever else the runtime serves never waits on them. Async callers use this one.
    pub async fn open(spec: SourceSpec) -> Result<Connector, ConnectError> {
        match tokio::task::spawn_blocking(move || Connector::new(spec)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(ConnectError::Session { message: "the runtime is shutting down".into() }),
        }
    }

    /// A connector whose streams come from `dialer` (an SSH tunnel, say).
    pub fn with_dialer(spec: SourceSpec, dialer: Dialer) -> Result<Connector, ConnectError> {
        spec.validate()?;
        let tls = TlsSetup::from_spec(&spec)?;
        let iam = match &spec.auth {
            Auth::Password => None,
            Auth::RdsIam(iam) => Some(IamAuth::new(iam.clone(), Env::from_process())),
        };
        Ok(Connector { spec: Arc::new(spec), tls, dialer, settings: SessionSettings::default(), iam })
    }

    /// Replaces the token signer of an `rds_iam` source (another environment, a fixed clock).
    /// Ignored for a password source.
    pub fn with_iam(mut self, iam: IamAuth) -> Connector {
        if self.iam.is_some() {
            self.iam = Some(iam);
        }
        self
    }

    /// The token signer of an `rds_iam` source.
    pub fn iam(&self) -> Option<&IamAuth> {
        self.iam.as_ref()
    }

    /// Checks every address this connector dials against `policy`: the database's (direct and
    /// private endpoint), or the SSH bastion's, for sessions, reconnections and cancel requests
    /// alike. Default: [`crate::NetworkPolicy::default`].
    pub fn with_policy(mut self, policy: crate::NetworkPolicy) -> Connector {
        self.dialer = self.dialer.with_policy(policy);
        self
    }

    pub fn with_settings(mut self, settings: SessionSettings) -> Connector {
        self.settings = settings;
        self
    }

    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.spec.connect_timeout_secs)
    }

    /// A session on the first host that answers and satisfies `target_session_attrs`.
    pub async fn connect(&self) -> Result<ReadOnlySession, ConnectError> {
        let attrs = self.spec.target_session_attrs;
        if self.spec.hosts.len() == 1 && attrs == SessionAttrs::Any {
            let host = self.spec.hosts[0].clone();
            return self.connect_host(&host).await;
        }
        let passes: Vec<SessionAttrs> = match attrs {
            SessionAttrs::PreferStandby => vec![SessionAttrs::Standby, SessionAttrs::Any],
            other => vec![other],
        };
        let mut tried = Vec::new();
        let mut last_err = None;
        // Indexing (not iterator references) keeps this future `Send` for the scheduler.
        for wanted in passes {
            for i in 0..self.spec.hosts.len() {
                let host = self.spec.hosts[i].clone();
                match self.connect_host(&host).await {
                    Ok(s) if matches_attrs(wanted, s.info().in_recovery, s.info().server_default_read_only) => {
                        return Ok(s)
                    }
                    Ok(s) => tried
                        .push(format!("{host} is {}", if s.info().in_recovery { "a standby" } else { "a primary" })),
                    Err(e) => {
                        tried.push(format!("{host}: {e}"));
                        last_err = Some(e);
                    }
                }
            }
        }
        // With a single host or a single failure, the precise error is the useful one.
        match last_err {
            Some(e) if tried.len() == 1 => Err(e),
            _ => Err(ConnectError::NoMatchingHost { attrs: attrs.as_str().to_string(), tried: tried.join("; ") }),
        }
    }

    /// A session on this host, whatever its role.
    pub async fn connect_host(&self, host: &HostPort) -> Result<ReadOnlySession, ConnectError> {
        let host = host.clone();
        match self.spec.sslmode {
            SslMode::Disable => self.attempt(&host, DriverSslMode::Disable).await,
            // libpq's allow: plaintext first, TLS only when the server refuses plaintext.
            SslMode::Allow => match self.attempt(&host, DriverSslMode::Disable).await {
                Err(ConnectError::Auth { code, .. }) if code == "28000" => {
                    self.attempt(&host, DriverSslMode::Require).await
                }
                other => other,
            },
            SslMode::Prefer => self.attempt(&host, DriverSslMode::Prefer).await,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                self.attempt(&host, DriverSslMode::Require).await
            }
        }
    }

    async fn attempt(&self, host: &HostPort, mode: DriverSslMode) -> Result<ReadOnlySession, ConnectError> {
        let host = host.clone();
        // A reset or garbled reply during the handshake often means another service answers on
        // this port: ask it PostgreSQL's SSL question to say so precisely.
        match self.handshake(host.clone(), mode).await {
            Err(e @ ConnectError::Lost { .. }) => Err(self.explain_lost(&host, e).await),
            other => other,
        }
    }

    /// When a handshake broke off, checks whether the peer is PostgreSQL at all.
    async fn explain_lost(&self, host: &HostPort, original: ConnectError) -> ConnectError {
        let Ok(mut stream) = self.dialer.dial(host).await else {
            return original;
        };
        match crate::probe_postgres(&mut stream, &host.to_string(), self.timeout()).await {
            Err(e @ ConnectError::NotPostgres { .. }) => e,
            _ => original,
        }
    }

    async fn handshake(&self, host: HostPort, mode: DriverSslMode) -> Result<ReadOnlySession, ConnectError> {
        // A fresh token for every attempt: never one kept from an earlier login.
        let token = match &self.iam {
            Some(iam) => Some(iam.token(&host, &self.spec.user).await?),
            None => None,
        };
        let stream = self.dialer.dial(&host).await?;
        let server_name = self.spec.tls_name_for(&host).to_string();
        let info = Arc::new(Mutex::new(None::<TlsInfo>));
        let binding: BindingSlot = Arc::new(Mutex::new(None));
        let tls = self.tls.connector(&server_name, info.clone())?.recording_binding(binding.clone());

        let mut config = tokio_postgres::Config::new();
        config
            .user(&self.spec.user)
            .dbname(&self.spec.database)
            .application_name(&self.spec.application_name)
            .ssl_mode(mode)
            .channel_binding(match self.spec.channel_binding {
                ChannelBinding::Disable => DriverChannelBinding::Disable,
                ChannelBinding::Prefer => DriverChannelBinding::Prefer,
                ChannelBinding::Require => DriverChannelBinding::Require,
            });
        if let Some(pw) = token.as_ref().or(self.spec.password.as_ref()) {
            config.password(pw.expose());
        }
        let timeout = self.timeout();
        let (client, connection) = match tokio::time::timeout(timeout, config.connect_raw(stream, tls)).await {
            Err(_) => {
                let tls_done = info.lock().map(|i| i.is_some()).unwrap_or(false);
                let stage = if mode != DriverSslMode::Disable && !tls_done { Stage::Tls } else { Stage::Auth };
                return Err(ConnectError::Timeout { stage, secs: timeout.as_secs() });
            }
            Ok(Err(e)) if is_unbound_login(&e) => return Err(unbound_login(&host, &info, &binding)),
            Ok(Err(e)) => return Err(self.classify(&host, &e)),
            Ok(Ok(pair)) => pair,
        };
        let connection_error = Arc::new(Mutex::new(None::<String>));
        let slot = connection_error.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("session connection ended: {e}");
                let reason = match std::error::Error::source(&e) {
                    Some(cause) => cause.to_string(),
                    None => e.to_string(),
                };
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(reason);
                }
            }
        });
        let tls_info = info.lock().ok().and_then(|i| i.clone());
        let cancel = CancelHandle {
            token: client.cancel_token(),
            dialer: self.dialer.clone(),
            tls: self.tls.clone(),
            host: host.clone(),
            server_name,
        };
        ReadOnlySession::establish(
            client,
            (task, connection_error),
            host,
            tls_info,
            cancel,
            self.settings.clone(),
            self.spec.pgbouncer,
        )
        .await
    }

    fn classify(&self, host: &HostPort, e: &tokio_postgres::Error) -> ConnectError {
        let addr = host.to_string();
        if let Some(db) = e.as_db_error() {
            let code = db.code().code().to_string();
            let message = db.message().to_string();
            if let (Some(iam), true) = (&self.iam, code.starts_with("28")) {
                return ConnectError::IamLogin {
                    code,
                    message,
                    region: iam.spec().region.clone(),
                    user: self.spec.user.clone(),
                };
            }
            return if code.starts_with("28") || code == "3D000" || code == "42501" {
                ConnectError::Auth { code, message, server_hint: db.hint().map(str::to_string) }
            } else {
                ConnectError::Server { code, message }
            };
        }
        let text = e.to_string();
        let source = std::error::Error::source(e);
        if text == "error performing TLS handshake" {
            let inner = source.map(|s| s.to_string()).unwrap_or_default();
            if inner == "server does not support TLS" {
                return ConnectError::TlsUnsupported { addr };
            }
            let failure = source.map(|s| self.tls.classify(s)).unwrap_or(crate::TlsFailure::Other(inner));
            if failure == crate::TlsFailure::NotTls {
                return ConnectError::NotPostgres { addr, detail: failure.to_string() };
            }
            return ConnectError::Tls { addr, failure };
        }
        if TlsSetup::is_tls_error(e) {
            return ConnectError::Tls { addr, failure: self.tls.classify(e) };
        }
        if text == "unexpected message from server" || text == "error parsing response from server" {
            return ConnectError::NotPostgres { addr, detail: "it does not speak the PostgreSQL protocol".into() };
        }
        if text == "authentication error" {
            let detail = source.map(|s| s.to_string()).unwrap_or_default();
            return ConnectError::Auth {
                code: "28000".into(),
                message: format!("authentication failed: {detail}"),
                server_hint: None,
            };
        }
        let reason = match source {
            Some(s) => format!("{text}: {s}"),
            None => text,
        };
        ConnectError::Lost { addr, reason }
    }
}

/// The driver's refusal under `channel_binding=require`: it authenticated, or was about to send
/// the password, without `SCRAM-SHA-256-PLUS`.
fn is_unbound_login(e: &tokio_postgres::Error) -> bool {
    e.to_string() == "authentication error"
        && std::error::Error::source(e).is_some_and(|s| s.to_string() == "server did not use channel binding")
}

/// Says why a login under `channel_binding=require` was not bound: no TLS, a certificate that
/// allows no binding, or a server that did not offer it.
fn unbound_login(host: &HostPort, info: &Mutex<Option<TlsInfo>>, binding: &BindingSlot) -> ConnectError {
    let addr = host.to_string();
    let encrypted = info.lock().map(|i| i.is_some()).unwrap_or(false);
    let certificate = binding.lock().ok().and_then(|b| b.clone());
    let reason = match certificate {
        _ if !encrypted => ChannelBindingRefusal::NoTls { addr: addr.clone() },
        Some(Err(why)) => ChannelBindingRefusal::Certificate { addr: addr.clone(), why: why.to_string() },
        _ => ChannelBindingRefusal::NotOffered { addr: addr.clone() },
    };
    ConnectError::ChannelBinding { addr, reason }
}

fn matches_attrs(wanted: SessionAttrs, in_recovery: bool, default_read_only: bool) -> bool {
    match wanted {
        SessionAttrs::Any => true,
        SessionAttrs::ReadWrite => !in_recovery && !default_read_only,
        SessionAttrs::ReadOnly => in_recovery || default_read_only,
        SessionAttrs::Primary => !in_recovery,
        SessionAttrs::Standby | SessionAttrs::PreferStandby => in_recovery,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_session_attrs_as_libpq() {
        // (wanted, in_recovery, default_read_only) -> matches
        let cases = [
            (SessionAttrs::Any, true, true, true),
            (SessionAttrs::ReadWrite, false, false, true),
            (SessionAttrs::ReadWrite, false, true, false),
            (SessionAttrs::ReadWrite, true, false, false),
            (SessionAttrs::ReadOnly, false, true, true),
            (SessionAttrs::ReadOnly, false, false, false),
            (SessionAttrs::Primary, false, true, true),
            (SessionAttrs::Standby, true, false, true),
            (SessionAttrs::Standby, false, false, false),
        ];
        for (w, rec, ro, expect) in cases {
            assert_eq!(matches_attrs(w, rec, ro), expect, "{w:?} rec={rec} ro={ro}");
        }
    }
}
