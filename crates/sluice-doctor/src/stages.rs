//! The connection stages: config → dns → tcp → ssh → iam → tls → auth → server_version.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connect::{
    probe_postgres, resolve_allowed, tcp_connect, ConnectError, Connector, Dialer, NetworkPolicy, Pool, PooledSession,
    ReadOnlySession, SshTunnel, Stage,
};
use sluice_core::{Auth, HostPort, Network, SourceSpec, SpecError, SslMode, UserFacing};
use sluice_iam::IamAuth;

use crate::report::{Check, CheckId, Report, SourceSummary, Status};

/// What the doctor examines: a source spec, or the reason the input did not make one.
#[derive(Debug, Clone)]
pub struct DoctorInput {
    pub spec: Result<SourceSpec, SpecError>,
    /// Schemas in scope for the privilege checks; empty means every non-system schema.
    pub schemas: Vec<String>,
}

/// The oldest major Sluice supports.
const MIN_SERVER_VERSION_NUM: u32 = 100_000;

/// Runs every check that can run and returns the report.
pub async fn run(input: DoctorInput) -> Report {
    run_with(input, None, &mut |_| {}).await
}

/// [`run`], handing each check to `on_check` as soon as it is decided (so a page can show the
/// stages live), in report order. With a `pool` (the source's own, or a separately capped one)
/// the login is a fresh session taken through it ([`Pool::get_fresh`]): it waits for a free slot
/// and counts against the cap, so a source never holds more sessions than its cap whoever is
/// testing it; the session goes back to the pool afterwards. The pool must be for the source
/// `input` describes: the other stages use `input`'s spec.
pub async fn run_with(input: DoctorInput, pool: Option<&Pool>, on_check: &mut (dyn FnMut(&Check) + Send)) -> Report {
    run_under(input, &NetworkPolicy::default(), pool, on_check).await
}

/// [`run_with`] under `network`: every address the doctor dials is checked against it, as the
/// source's connector checks them, and a refused one fails the `dns` check (the later connection
/// stages are skipped, as for any dns failure). A `pool` logs in under its own connector's
/// policy, which should be this one.
pub async fn run_under(
    input: DoctorInput,
    network: &NetworkPolicy,
    pool: Option<&Pool>,
    on_check: &mut (dyn FnMut(&Check) + Send),
) -> Report {
    run_full(input, network, pool, None, on_check).await
}

/// [`run_under`] for an `rds_iam` source whose tokens `iam` signs (credentials from another
/// environment than the process's, a fixed clock, a role session name). Without it the signer
/// is the `pool`'s, else one reading the process environment.
pub async fn run_under_iam(
    input: DoctorInput,
    network: &NetworkPolicy,
    pool: Option<&Pool>,
    iam: Option<IamAuth>,
    on_check: &mut (dyn FnMut(&Check) + Send),
) -> Report {
    run_full(input, network, pool, iam, on_check).await
}

async fn run_full(
    input: DoctorInput,
    network: &NetworkPolicy,
    pool: Option<&Pool>,
    iam: Option<IamAuth>,
    on_check: &mut (dyn FnMut(&Check) + Send),
) -> Report {
    let mut checks = Checks { list: Vec::new(), on_check };
    let iam = iam.or_else(|| pool.and_then(|p| p.connector().iam().cloned()));
    let mut session = connection_stages(&input, network, pool, iam, &mut checks).await;
    for check in crate::privileges::checks(session.as_deref_mut(), &input.schemas).await {
        checks.push(check);
    }
    let server_version = session.as_ref().map(|s| short_version(&s.info().server_version));
    Report::new(SourceSummary::of(input.spec.as_ref().ok()), server_version, checks.list)
}

/// The checks so far; each one pushed is also handed to the caller's callback.
pub(crate) struct Checks<'a> {
    list: Vec<Check>,
    on_check: &'a mut (dyn FnMut(&Check) + Send),
}

impl Checks<'_> {
    fn push(&mut self, check: Check) {
        (self.on_check)(&check);
        self.list.push(check);
    }

    fn failed(&self, id: &str) -> bool {
        self.list.iter().any(|c| c.id == id && c.status == Status::Fail)
    }

    fn all_passed(&self) -> bool {
        self.list.iter().all(|c| c.status != Status::Fail)
    }
}

/// The session the privilege checks run on: the doctor's own, or one on loan from a pool.
pub(crate) enum Held {
    Own(ReadOnlySession),
    Pooled(PooledSession),
}

impl Deref for Held {
    type Target = ReadOnlySession;
    fn deref(&self) -> &ReadOnlySession {
        match self {
            Held::Own(s) => s,
            Held::Pooled(s) => s,
        }
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut ReadOnlySession {
        match self {
            Held::Own(s) => s,
            Held::Pooled(s) => s,
        }
    }
}

fn short_version(v: &str) -> String {
    v.split_whitespace().next().unwrap_or(v).to_string()
}

type Prepared<'a> = (&'a SourceSpec, Option<Arc<SshTunnel>>, Connector);

/// Everything the `config` check vouches for: a valid spec, its bastion (kept so the doctor can
/// run the ssh stages on it) and the connector (certificates and keys read).
async fn prepare<'a>(
    input: &'a DoctorInput,
    network: &NetworkPolicy,
    iam: Option<IamAuth>,
) -> Result<Prepared<'a>, Box<dyn UserFacing>> {
    let spec = input.spec.as_ref().map_err(|e| Box::new(e.clone()) as Box<dyn UserFacing>)?;
    let owned = spec.clone();
    let network = network.clone();
    // File reads and SSH key decryption (bcrypt-pbkdf, slow by design) stay off the executor.
    let (tunnel, connector) = match tokio::task::spawn_blocking(move || build_connector(owned, network)).await {
        Ok(built) => built.map_err(|e| Box::new(e) as Box<dyn UserFacing>)?,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => {
            return Err(Box::new(ConnectError::Session { message: "the runtime is shutting down".into() }));
        }
    };
    let connector = match iam {
        Some(iam) => connector.with_iam(iam),
        None => connector,
    };
    Ok((spec, tunnel, connector))
}

/// Reads the bastion's key and known_hosts file and the certificates: blocking work.
fn build_connector(
    spec: SourceSpec,
    network: NetworkPolicy,
) -> Result<(Option<Arc<SshTunnel>>, Connector), ConnectError> {
    let timeout = Duration::from_secs(spec.connect_timeout_secs);
    let tunnel = match &spec.network {
        Network::Ssh(ssh) => Some(Arc::new(SshTunnel::new(ssh, timeout)?.with_network_policy(network.clone()))),
        _ => None,
    };
    // The tunnel already has this policy, so the connector keeps the same tunnel.
    let connector = match &tunnel {
        Some(t) => Connector::with_dialer(spec, Dialer::Tunnel(t.clone()))?,
        None => Connector::new(spec)?,
    }
    .with_policy(network);
    Ok((tunnel, connector))
}

/// `config` failed: every later stage is skipped.
fn invalid_source(message: String, hint: Option<String>, started: Instant, checks: &mut Checks<'_>) {
    checks.push(Check::new(CheckId::CONFIG, Status::Fail, message).fix(hint).timed(started));
    skip_rest(
        checks,
        &[CheckId::DNS, CheckId::TCP, CheckId::SSH, CheckId::IAM, CheckId::TLS, CheckId::AUTH, CheckId::SERVER_VERSION],
        "the source is not valid",
    );
}

/// The connection stages; also returns the session when `auth` passed, for later checks.
pub(crate) async fn connection_stages(
    input: &DoctorInput,
    network: &NetworkPolicy,
    pool: Option<&Pool>,
    iam: Option<IamAuth>,
    checks: &mut Checks<'_>,
) -> Option<Held> {
    let started = Instant::now();
    let (spec, tunnel, connector) = match prepare(input, network, iam).await {
        Ok(ready) => ready,
        Err(e) => {
            invalid_source(e.message(), e.hint(), started, checks);
            return None;
        }
    };
    checks.push(config_check(spec).timed(started));
    let timeout = Duration::from_secs(spec.connect_timeout_secs);

    // dns and tcp are about what Sluice itself dials: the database, or the bastion in front of it
    // (which then resolves and dials the database; the ssh check reports on that part).
    let reachable = match &tunnel {
        Some(t) => network_checks(std::slice::from_ref(t.bastion()), false, timeout, network, checks).await,
        None => network_checks(&spec.hosts, true, timeout, network, checks).await,
    };
    match &tunnel {
        Some(t) if reachable => checks.push(ssh_check(t, &spec.hosts).await),
        Some(_) => checks.push(Check::skip(CheckId::SSH, "the bastion is not reachable")),
        None => checks.push(Check::skip(CheckId::SSH, "no SSH tunnel configured")),
    }
    checks.push(iam_check(spec, &connector).await);
    if checks.failed(CheckId::IAM) {
        skip_rest(checks, &[CheckId::TLS, CheckId::AUTH, CheckId::SERVER_VERSION], "no RDS IAM token");
        return None;
    }
    if !reachable || checks.failed(CheckId::SSH) {
        skip_rest(checks, &[CheckId::TLS, CheckId::AUTH, CheckId::SERVER_VERSION], "the server is not reachable");
        return None;
    }

    let started = Instant::now();
    let result = match pool {
        Some(pool) => pool.get_fresh().await.map(Held::Pooled),
        None => connector.connect().await.map(Held::Own),
    };
    let elapsed = started;
    let session = match result {
        Ok(s) => s,
        Err(e) => {
            let failed = Check::new(stage_check_id(e.stage()), Status::Fail, e.message()).fix(e.hint()).timed(elapsed);
            match e.stage() {
                Stage::Auth | Stage::Session => {
                    checks.push(tls_passed_before_auth(spec, &e).timed(elapsed));
                    checks.push(Check { id: CheckId::AUTH.into(), ..failed });
                }
                _ => {
                    checks.push(Check { id: CheckId::TLS.into(), ..failed });
                    checks.push(Check::skip(CheckId::AUTH, "the TLS stage failed"));
                }
            }
            checks.push(Check::skip(CheckId::SERVER_VERSION, "not logged in"));
            return None;
        }
    };
    checks.push(tls_check(spec, session.info().tls.as_ref()).timed(elapsed));
    checks.push(
        Check::new(CheckId::AUTH, Status::Pass, format!("logged in as {} to database {}", spec.user, spec.database))
            .detail(format!("backend pid {}; sessions are read-only by default", session.info().backend_pid))
            .timed(elapsed),
    );
    checks.push(version_check(&session));
    checks.all_passed().then_some(session)
}

/// For an `rds_iam` source: which source of the AWS chain supplied credentials, and that a token
/// was signed for the first host (nothing secret is shown).
async fn iam_check(spec: &SourceSpec, connector: &Connector) -> Check {
    let started = Instant::now();
    let (Auth::RdsIam(iam), Some(signer), Some(host)) = (&spec.auth, connector.iam(), spec.primary_host()) else {
        return Check::skip(CheckId::IAM, "the source logs in with a password");
    };
    let creds = match signer.credentials().await {
        Ok(c) => c,
        Err(e) => return Check::new(CheckId::IAM, Status::Fail, e.message()).fix(e.hint()).timed(started),
    };
    let target = iam.signed_for(host);
    match signer.token_with(&creds, host, &spec.user) {
        Err(e) => Check::new(CheckId::IAM, Status::Fail, e.message()).fix(e.hint()).timed(started),
        Ok(_token) => {
            let expiry = match creds.expiry.and_then(|t| t.duration_since(std::time::SystemTime::now()).ok()) {
                Some(left) => format!("temporary credentials, valid {} more min", left.as_secs() / 60),
                None if creds.expiry.is_some() => "temporary credentials, already expired".to_string(),
                None => "long-term credentials".to_string(),
            };
            Check::new(
                CheckId::IAM,
                Status::Pass,
                format!("AWS credentials from {}; an RDS IAM token was signed", creds.source),
            )
            .detail(format!(
                "source {}, access key id {}, {expiry}; token for {} at {target} in {}, valid 15 min, signed anew for every login",
                creds.source.id(),
                creds.access_key_id,
                spec.user,
                iam.region
            ))
            .timed(started)
        }
    }
}

fn skip_rest(checks: &mut Checks<'_>, ids: &[&'static str], why: &str) {
    for id in ids {
        checks.push(Check::skip(id, why));
    }
}

fn stage_check_id(stage: Stage) -> &'static str {
    match stage {
        Stage::Config => CheckId::CONFIG,
        Stage::Dns => CheckId::DNS,
        Stage::Tcp => CheckId::TCP,
        Stage::Ssh => CheckId::SSH,
        Stage::Tls => CheckId::TLS,
        Stage::Auth | Stage::Session => CheckId::AUTH,
    }
}

fn config_check(spec: &SourceSpec) -> Check {
    let hosts: Vec<String> = spec.hosts.iter().map(|h| h.to_string()).collect();
    Check::new(CheckId::CONFIG, Status::Pass, "the source is valid").detail(format!(
        "{} as {} on database {}, sslmode={}, network={}, connect_timeout={} s",
        hosts.join(", "),
        spec.user,
        spec.database,
        spec.sslmode,
        spec.network.label(),
        spec.connect_timeout_secs
    ))
}

/// The bastion's stages (reach, host key, auth, forward) for every database host, as one check
/// whose detail lists each stage.
async fn ssh_check(tunnel: &SshTunnel, hosts: &[HostPort]) -> Check {
    let started = Instant::now();
    let mut lines = Vec::new();
    let mut first_failure: Option<ConnectError> = None;
    for host in hosts {
        let reports = tunnel.check_stages(host).await;
        for r in &reports {
            match &r.outcome {
                Ok(detail) => lines.push(format!("{} ({host}): {detail}", r.stage.id())),
                Err(e) => lines.push(format!("{} ({host}): FAILED: {}", r.stage.id(), e.message())),
            }
        }
        if first_failure.is_none() {
            first_failure = reports.into_iter().find_map(|r| r.outcome.err());
        }
    }
    let check = match first_failure {
        Some(e) => {
            let presented = match &e {
                ConnectError::Ssh { presented: Some(p), .. } => Some((**p).clone()),
                _ => None,
            };
            Check { host_key: presented, ..Check::new(CheckId::SSH, Status::Fail, e.message()).fix(e.hint()) }
        }
        None => {
            Check::new(CheckId::SSH, Status::Pass, format!("the bastion {} forwards to the database", tunnel.bastion()))
        }
    };
    check.detail(format!("key {}\n{}", tunnel.client_key_description(), lines.join("\n"))).timed(started)
}

/// dns and tcp for every host (probing that it is PostgreSQL when `probe_pg`); returns whether
/// any host is reachable. A host whose address the network policy refuses fails at dns, and is
/// never dialled.
async fn network_checks(
    hosts: &[HostPort],
    probe_pg: bool,
    timeout: Duration,
    network: &NetworkPolicy,
    checks: &mut Checks<'_>,
) -> bool {
    let started = Instant::now();
    let mut resolved: Vec<(HostPort, Vec<std::net::SocketAddr>)> = Vec::new();
    let mut dns_failures = Vec::new();
    for host in hosts {
        match resolve_allowed(host, timeout, network).await {
            Ok(addrs) => resolved.push((host.clone(), addrs)),
            Err(e) => dns_failures.push(e),
        }
    }
    let dns_detail = resolved
        .iter()
        .map(|(h, a)| format!("{} → {}", h.host, a.iter().map(|x| x.ip().to_string()).collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    match (resolved.is_empty(), dns_failures.first()) {
        (true, Some(e)) => {
            checks.push(Check::new(CheckId::DNS, Status::Fail, e.message()).fix(e.hint()).timed(started));
            checks.push(Check::skip(CheckId::TCP, "no host resolved"));
            return false;
        }
        (false, Some(e)) => checks.push(
            Check::new(CheckId::DNS, Status::Warn, format!("some hosts did not resolve: {}", e.message()))
                .detail(dns_detail)
                .timed(started),
        ),
        _ => {
            checks.push(Check::new(CheckId::DNS, Status::Pass, "every host resolved").detail(dns_detail).timed(started))
        }
    }

    let started = Instant::now();
    let mut reached = Vec::new();
    let mut failures: Vec<ConnectError> = Vec::new();
    for (host, addrs) in &resolved {
        match tcp_connect(addrs, timeout).await {
            Err(e) => failures.push(e),
            Ok(_) if !probe_pg => reached.push(format!("{host} accepts TCP connections")),
            Ok(mut stream) => match probe_postgres(&mut stream, &host.to_string(), timeout).await {
                Ok(offers_tls) => reached.push(format!(
                    "{host} answers as PostgreSQL (TLS {})",
                    if offers_tls { "offered" } else { "not offered" }
                )),
                Err(e) => failures.push(e),
            },
        }
    }
    match (reached.is_empty(), failures.first()) {
        (true, Some(e)) => {
            checks.push(Check::new(CheckId::TCP, Status::Fail, e.message()).fix(e.hint()).timed(started));
            false
        }
        (false, Some(e)) => {
            checks.push(
                Check::new(CheckId::TCP, Status::Warn, format!("some hosts are unreachable: {}", e.message()))
                    .detail(reached.join("; "))
                    .timed(started),
            );
            true
        }
        _ => {
            checks.push(
                Check::new(
                    CheckId::TCP,
                    Status::Pass,
                    if probe_pg { "the server answers as PostgreSQL" } else { "the bastion accepts TCP connections" },
                )
                .detail(reached.join("; "))
                .timed(started),
            );
            true
        }
    }
}

/// When login failed after the handshake, the TLS stage itself succeeded (or was not used).
fn tls_passed_before_auth(spec: &SourceSpec, _e: &ConnectError) -> Check {
    match spec.sslmode {
        SslMode::Disable => Check::skip(CheckId::TLS, "sslmode=disable: the connection is not encrypted"),
        SslMode::Allow | SslMode::Prefer => {
            Check::new(CheckId::TLS, Status::Pass, format!("sslmode={}: the handshake did not fail", spec.sslmode))
        }
        _ => Check::new(CheckId::TLS, Status::Pass, format!("TLS handshake succeeded (sslmode={})", spec.sslmode)),
    }
}

fn tls_check(spec: &SourceSpec, tls: Option<&sluice_connect::TlsInfo>) -> Check {
    let loopback = spec.hosts.iter().all(|h| h.is_loopback());
    match tls {
        None if loopback => Check::new(
            CheckId::TLS,
            Status::Pass,
            format!("not encrypted (sslmode={}); acceptable on loopback", spec.sslmode),
        ),
        None => Check::new(
            CheckId::TLS,
            Status::Warn,
            format!("the connection is not encrypted (sslmode={})", spec.sslmode),
        )
        .fix(Some("enable TLS on the server and use sslmode=verify-full with the server's CA as sslrootcert".into())),
        Some(tls) => {
            let detail = format!("{} {}, certificate verified: {}", tls.protocol, tls.cipher_suite, tls.verified);
            if tls.verified == "chain+name" || loopback {
                Check::new(
                    CheckId::TLS,
                    Status::Pass,
                    format!("encrypted and {}", if tls.verified == "chain+name" { "verified" } else { "on loopback" }),
                )
                .detail(detail)
            } else {
                Check::new(CheckId::TLS, Status::Warn, "encrypted but not verified")
                    .detail(detail)
                    .fix(Some("use sslmode=verify-full with the server's CA as sslrootcert (and tls_server_name for a private endpoint)".into()))
            }
        }
    }
}

fn version_check(session: &ReadOnlySession) -> Check {
    let info = session.info();
    let v = short_version(&info.server_version);
    if info.server_version_num < MIN_SERVER_VERSION_NUM {
        Check::new(
            CheckId::SERVER_VERSION,
            Status::Fail,
            format!("PostgreSQL {v} is older than 10, which Sluice requires"),
        )
        .fix(Some("upgrade the server to PostgreSQL 10 or newer".into()))
    } else {
        Check::new(CheckId::SERVER_VERSION, Status::Pass, format!("PostgreSQL {v}")).detail(format!(
            "server_version_num {}{}",
            info.server_version_num,
            if info.in_recovery { ", a standby" } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_connect::TlsInfo;

    fn tls(verified: &'static str) -> TlsInfo {
        TlsInfo { protocol: "TLSv1.3".into(), cipher_suite: "TLS13_AES_256_GCM_SHA384".into(), verified }
    }

    #[test]
    fn tls_verdicts() {
        let remote = SourceSpec::new("db.example.com", "app", "ro");
        let local = SourceSpec::new("localhost", "app", "ro");
        let cases = [
            (&remote, Some(tls("chain+name")), Status::Pass),
            (&remote, Some(tls("chain")), Status::Warn),
            (&remote, Some(tls("none")), Status::Warn),
            (&remote, None, Status::Warn),
            (&local, Some(tls("none")), Status::Pass),
            (&local, None, Status::Pass),
        ];
        for (spec, info, want) in cases {
            let check = tls_check(spec, info.as_ref());
            assert_eq!(check.status, want, "{} {:?}: {}", spec.hosts[0].host, info.map(|i| i.verified), check.summary);
        }
        assert_eq!(tls_check(&remote, Some(&tls("none"))).summary, "encrypted but not verified");
    }
}
