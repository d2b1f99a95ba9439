//! SSH bastion acceptance against a real OpenSSH `sshd` and real PostgreSQL clusters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connect::{
    ConnectError, Connector, Dialer, Keepalive, Pool, PoolOptions, SshFailure, SshStage, SshTunnel, Stage, TlsFailure,
};
use sluice_core::{
    CertSource, HostKeyCheck, HostPort, KeySource, Network, Secret, SessionAttrs, SourceSpec, SshSpec, SslMode,
    UserFacing,
};
use sluice_testkit::{
    ClientKey, Cluster, ClusterOptions, HbaRule, KeyFormat, KeyType, Sshd, SshdOptions, TestCa, TlsFiles,
};

const PW: &str = "s3cret-pw";

fn ssh(sshd: &Sshd, key: &ClientKey, passphrase: Option<&str>, host_key: HostKeyCheck) -> SshSpec {
    SshSpec {
        host: sshd.host().into(),
        port: sshd.port(),
        user: sshd.user().into(),
        private_key: Some(KeySource::File(key.private_key_path.clone())),
        passphrase: passphrase.map(Secret::new),
        host_key,
    }
}

fn pinned(sshd: &Sshd) -> HostKeyCheck {
    HostKeyCheck::Fingerprint(sshd.host_key_fingerprint().into())
}

/// A spec for the `ro` role on `host:port` as the bastion sees it, through `ssh`.
fn spec_via(ssh: SshSpec, host: &str, port: u16) -> SourceSpec {
    let mut s = SourceSpec::new(host, "postgres", "ro");
    s.hosts[0].port = port;
    s.password = Some(Secret::new(PW));
    s.sslmode = SslMode::Disable;
    s.connect_timeout_secs = 5;
    s.network = Network::Ssh(ssh);
    s
}

fn cluster() -> Cluster {
    let c = Cluster::start_default().expect("cluster");
    c.create_login("ro", PW).expect("role");
    c
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, ConnectError>) -> ConnectError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

fn ssh_failure(e: &ConnectError) -> Option<SshFailure> {
    match e {
        ConnectError::Ssh { failure, .. } => Some(*failure),
        _ => None,
    }
}

async fn connect(s: SourceSpec) -> Result<sluice_connect::ReadOnlySession, ConnectError> {
    Connector::new(s)?.connect().await
}

async fn one_value(session: &mut sluice_connect::ReadOnlySession, sql: &str) -> String {
    let tx = session.read_only_transaction().await.expect("begin");
    let rows = tx.client().simple_query(sql).await.expect("query");
    tx.rollback().await.expect("rollback");
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test]
async fn ed25519_and_passphrase_protected_keys_connect() {
    let db = cluster();
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let cases = [
        (KeyType::Ed25519, KeyFormat::OpenSsh, None),
        (KeyType::Rsa, KeyFormat::OpenSsh, Some("rsa passphrase")),
        (KeyType::Rsa, KeyFormat::Pem, Some("pem passphrase")),
        (KeyType::Rsa, KeyFormat::Pkcs8, Some("pkcs8 passphrase")),
        (KeyType::Ecdsa, KeyFormat::OpenSsh, None),
        (KeyType::Ecdsa, KeyFormat::Pem, None),
    ];
    for (kind, format, passphrase) in cases {
        let key = sshd.client_key(kind, format, passphrase, true).expect("key");
        let s = spec_via(ssh(&sshd, &key, passphrase, pinned(&sshd)), "127.0.0.1", db.port());
        let mut session = connect(s).await.unwrap_or_else(|e| panic!("{kind:?} {format:?}: {e}\n{}", sshd.log()));
        assert_eq!(one_value(&mut session, "SELECT current_user").await, "ro");
        assert!(sshd.log().contains(&key.fingerprint), "the bastion logged the {kind:?} key");
    }

    // The RSA key signed with SHA-2, never SHA-1 (`ssh-rsa`).
    let log = sshd.log();
    assert!(log.contains("RSA SHA256:"), "{log}");
    assert!(!log.contains("ssh-rsa SHA256"), "{log}");

    // An encrypted key without its passphrase, or with a wrong one, is a config error naming the
    // passphrase, raised before anything is dialled.
    let rsa = sshd.client_key(KeyType::Rsa, KeyFormat::OpenSsh, Some("right one"), true).expect("key");
    for passphrase in [None, Some("wrong one")] {
        let e =
            expect_err(Connector::new(spec_via(ssh(&sshd, &rsa, passphrase, pinned(&sshd)), "127.0.0.1", db.port())));
        assert_eq!(e.stage(), Stage::Config);
        assert!(matches!(e, ConnectError::Config { field: "ssh.passphrase", .. }), "{e:?}");
    }
}

#[tokio::test]
async fn an_unauthorized_key_fails_at_ssh_naming_the_key() {
    let db = cluster();
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let stranger = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, false).expect("key");
    let e = expect_err(connect(spec_via(ssh(&sshd, &stranger, None, pinned(&sshd)), "127.0.0.1", db.port())).await);
    assert_eq!(e.stage(), Stage::Ssh, "{e:?}");
    assert_eq!(ssh_failure(&e), Some(SshFailure::AuthRefused), "{e:?}");
    assert_eq!(e.kind(), sluice_core::ErrorKind::Auth);
    let text = e.to_string();
    assert!(text.contains("ssh-ed25519"), "names the key type: {text}");
    assert!(text.contains(&stranger.fingerprint), "and the key: {text}");
    assert!(e.hint().unwrap_or_default().contains("authorized_keys"), "{:?}", e.hint());
}

#[tokio::test]
async fn host_keys_are_always_verified() {
    let db = cluster();
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let real = sshd.host_key_fingerprint().to_string();

    // A wrong pin fails at ssh and shows the key the bastion really presented.
    let wrong = HostKeyCheck::Fingerprint("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    let e = expect_err(connect(spec_via(ssh(&sshd, &key, None, wrong), "127.0.0.1", db.port())).await);
    assert_eq!(e.stage(), Stage::Ssh);
    assert_eq!(ssh_failure(&e), Some(SshFailure::HostKeyMismatch), "{e:?}");
    assert!(e.to_string().contains(&real), "shows the presented key: {e}");

    // A known_hosts file without this bastion: unknown key, fails and shows it, and the hint
    // carries the exact line to add once the fingerprint is confirmed.
    let other = sshd
        .write_known_hosts(
            "known_elsewhere",
            &["[10.1.2.3]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBo6iTe0tSGTZUKedSzijO+wCZIppqSKYnqRTZuvP3Qe".into()],
            false,
        )
        .expect("file");
    let e = expect_err(
        connect(spec_via(ssh(&sshd, &key, None, HostKeyCheck::KnownHosts(other)), "127.0.0.1", db.port())).await,
    );
    assert_eq!(ssh_failure(&e), Some(SshFailure::HostKeyUnknown), "{e:?}");
    assert!(e.to_string().contains(&real), "{e}");
    assert!(e.hint().unwrap_or_default().contains(&sshd.known_hosts_line()), "{:?}", e.hint());

    // A changed key: known_hosts lists another ed25519 key for this very host.
    let changed = sshd
        .write_known_hosts(
            "known_changed",
            &[format!(
                "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBo6iTe0tSGTZUKedSzijO+wCZIppqSKYnqRTZuvP3Qe",
                sshd.port()
            )],
            false,
        )
        .expect("file");
    let e = expect_err(
        connect(spec_via(ssh(&sshd, &key, None, HostKeyCheck::KnownHosts(changed)), "127.0.0.1", db.port())).await,
    );
    assert_eq!(ssh_failure(&e), Some(SshFailure::HostKeyMismatch), "{e:?}");
    assert!(e.to_string().contains("MISMATCH") && e.to_string().contains(&real), "{e}");

    // The right entry, plain and hashed, connects.
    for hashed in [false, true] {
        let good = sshd
            .write_known_hosts(if hashed { "known_hashed" } else { "known_plain" }, &[sshd.known_hosts_line()], hashed)
            .expect("file");
        let text = std::fs::read_to_string(&good).expect("read");
        assert_eq!(text.starts_with("|1|"), hashed, "{text}");
        connect(spec_via(ssh(&sshd, &key, None, HostKeyCheck::KnownHosts(good)), "127.0.0.1", db.port()))
            .await
            .unwrap_or_else(|e| panic!("hashed={hashed}: {e}"));
    }
}

#[tokio::test]
async fn unreachable_database_and_refused_forwarding_fail_at_ssh_not_tcp() {
    let db = cluster();
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");

    // Nothing listens where the bastion is told to go.
    let closed = sluice_testkit::free_port().expect("port");
    let e = expect_err(connect(spec_via(ssh(&sshd, &key, None, pinned(&sshd)), "127.0.0.1", closed)).await);
    assert_eq!(e.stage(), Stage::Ssh, "{e:?}");
    assert_eq!(ssh_failure(&e), Some(SshFailure::TargetUnreachable), "{e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{closed}")), "{e}");

    // The bastion only permits another destination.
    let strict =
        Sshd::start(SshdOptions { permit_open: vec!["127.0.0.1:1".into()], ..Default::default() }).expect("sshd");
    let key2 = strict.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let e = expect_err(connect(spec_via(ssh(&strict, &key2, None, pinned(&strict)), "127.0.0.1", db.port())).await);
    assert_eq!(ssh_failure(&e), Some(SshFailure::ForwardingRefused), "{e:?}");
    assert!(e.hint().unwrap_or_default().contains("PermitOpen"), "{:?}", e.hint());

    // No bastion at all.
    let nobody = sluice_testkit::free_port().expect("port");
    let mut spec = ssh(&sshd, &key, None, pinned(&sshd));
    spec.port = nobody;
    let e = expect_err(connect(spec_via(spec, "127.0.0.1", db.port())).await);
    assert_eq!(ssh_failure(&e), Some(SshFailure::Unreachable), "{e:?}");
    assert_eq!(e.stage(), Stage::Ssh);

    // A PostgreSQL server where the bastion should be: the handshake fails, clearly.
    let mut spec = ssh(&sshd, &key, None, pinned(&sshd));
    spec.port = db.port();
    let e = expect_err(connect(spec_via(spec, "127.0.0.1", db.port())).await);
    assert!(
        matches!(ssh_failure(&e), Some(SshFailure::Handshake))
            || matches!(e, ConnectError::Timeout { stage: Stage::Ssh, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn staged_checks_report_each_bastion_step() {
    let db = cluster();
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let target = HostPort { host: "127.0.0.1".into(), port: db.port() };
    let timeout = Duration::from_secs(5);
    let tunnel = SshTunnel::new(&ssh(&sshd, &key, None, pinned(&sshd)), timeout).expect("tunnel");
    let report = tunnel.check_stages(&target).await;
    let stages: Vec<SshStage> = report.iter().map(|r| r.stage).collect();
    assert_eq!(stages, SshStage::ALL.to_vec());
    for r in &report {
        assert!(r.outcome.is_ok(), "{:?}: {:?}", r.stage, r.outcome);
    }
    let evidence: Vec<String> = report.iter().map(|r| r.outcome.as_ref().cloned().unwrap_or_default()).collect();
    assert!(evidence[1].contains(sshd.host_key_fingerprint()), "{evidence:?}");
    assert!(evidence[2].contains(&key.fingerprint), "{evidence:?}");

    // An unauthorized key: reach and host key pass, auth fails, forward is not attempted.
    let stranger = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, false).expect("key");
    let tunnel = SshTunnel::new(&ssh(&sshd, &stranger, None, pinned(&sshd)), timeout).expect("tunnel");
    let report = tunnel.check_stages(&target).await;
    assert_eq!(report.len(), 3);
    assert!(report[1].outcome.is_ok());
    let e = report[2].outcome.as_ref().expect_err("auth refused");
    assert_eq!(ssh_failure(e), Some(SshFailure::AuthRefused));

    // A database the bastion cannot reach: only forward fails.
    let closed = HostPort { host: "127.0.0.1".into(), port: sluice_testkit::free_port().expect("port") };
    let tunnel = SshTunnel::new(&ssh(&sshd, &key, None, pinned(&sshd)), timeout).expect("tunnel");
    let report = tunnel.check_stages(&closed).await;
    assert_eq!(report.len(), 4);
    let e = report[3].outcome.as_ref().expect_err("forward fails");
    assert_eq!(ssh_failure(e), Some(SshFailure::TargetUnreachable));
}

#[tokio::test]
async fn verify_full_through_the_tunnel_checks_the_database_name() {
    // The certificate names the database host as the bastion dials it (`localhost`), not
    // anything on Sluice's side: there is no local forwarded port at all.
    let ca = TestCa::new("Tunnel CA").expect("ca");
    let db = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server: ca.server_cert(&["localhost"]).expect("cert"), client_ca_pem: None }),
        hba: vec![HbaRule::HostSslScram],
        ..Default::default()
    })
    .expect("cluster");
    db.create_login("ro", PW).expect("role");
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");

    let mut s = spec_via(ssh(&sshd, &key, None, pinned(&sshd)), "localhost", db.port());
    s.sslmode = SslMode::VerifyFull;
    s.sslrootcert = Some(CertSource::Pem(ca.cert_pem.clone()));
    let mut session = connect(s.clone()).await.expect("verify-full through the bastion");
    let tls = session.info().tls.clone().expect("tls");
    assert_eq!(tls.verified, "chain+name");
    assert_eq!(one_value(&mut session, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await, "true");

    // Dialling the same server as 127.0.0.1 through the bastion: the name check bites.
    s.hosts[0].host = "127.0.0.1".into();
    let e = expect_err(connect(s.clone()).await);
    assert!(
        matches!(&e, ConnectError::Tls { failure: TlsFailure::NameMismatch { expected, .. }, .. } if expected == "127.0.0.1"),
        "{e:?}"
    );
    // … unless tls_server_name names the database.
    s.tls_server_name = Some("localhost".into());
    connect(s).await.expect("tls_server_name through the bastion");
}

#[tokio::test]
async fn a_query_through_the_tunnel_is_cancelled_and_its_backend_is_idle() {
    let db = cluster();
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let mut session =
        connect(spec_via(ssh(&sshd, &key, None, pinned(&sshd)), "127.0.0.1", db.port())).await.expect("session");
    let pid = session.info().backend_pid;
    let cancel = session.cancel_handle();
    let running = tokio::spawn(async move {
        let tx = session.read_only_transaction().await.expect("begin");
        let r = tx.client().simple_query("SELECT pg_sleep(30)").await;
        drop(tx);
        (r.map(|_| ()), session)
    });
    // Wait until the server really runs it.
    let active = || {
        db.psql("postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active';"))
            .expect("activity")
    };
    let started = Instant::now();
    while active() != "1" {
        assert!(started.elapsed() < Duration::from_secs(5), "the query never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = Instant::now();
    cancel.cancel().await.expect("cancel sent through the bastion");
    // A guard against hanging, far below the 30 s the sleep would take; the latency itself is
    // measured by `cargo bench -p sluice-connect --bench cancel`.
    let (result, _session) = tokio::time::timeout(Duration::from_secs(20), running).await.expect("ends").expect("join");
    let elapsed = sent.elapsed();
    eprintln!("cancel through the bastion took {elapsed:?}");
    let e = result.expect_err("cancelled");
    assert_eq!(e.code().map(|c| c.code()), Some("57014"));
    assert_eq!(active(), "0", "the backend is no longer active");
}

/// Runs a 10 s query on a pooled session, does `break_it` to the bastion once the query runs, and
/// returns how long the query took to fail and the session's account of why.
async fn sleep_through(
    db: &Cluster,
    pool: &Pool,
    break_it: impl FnOnce(),
) -> (Duration, tokio_postgres::Error, Option<String>) {
    let mut session = pool.get().await.expect("session");
    let pid = session.info().backend_pid;
    let running = tokio::spawn(async move {
        let tx = session.read_only_transaction().await.expect("begin");
        let r = tx.client().simple_query("SELECT pg_sleep(10)").await;
        drop(tx);
        let why = session.connection_error();
        (r.map(|_| ()), why)
    });
    // Break it once the server really runs the query.
    let started = Instant::now();
    while db
        .psql("postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active';"))
        .expect("activity")
        != "1"
    {
        assert!(started.elapsed() < Duration::from_secs(10), "the query never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let broken = Instant::now();
    break_it();
    let (result, why) = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("the query ends within 15 s")
        .expect("join");
    (broken.elapsed(), result.expect_err("the query fails"), why)
}

#[tokio::test]
async fn a_dead_bastion_ends_the_query_and_the_pool_recovers() {
    let db = cluster();
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let spec = spec_via(ssh(&sshd, &key, None, pinned(&sshd)), "127.0.0.1", db.port());
    let pool = Pool::new(
        Connector::new(spec).expect("connector"),
        PoolOptions { max_size: 2, acquire_timeout: Duration::from_secs(20), ..Default::default() },
    );

    // The bastion dies: its connections are reset, the query fails at once.
    let (took, e, why) = sleep_through(&db, &pool, || sshd.kill()).await;
    eprintln!("killed bastion: the query failed after {took:?}: {why:?}");
    assert!(e.is_closed(), "{e}");
    let why = why.expect("the session says why");
    assert!(why.contains("SSH session to the bastion"), "{why}");

    // While it is gone, new sessions fail at ssh …
    let e = expect_err(pool.get().await);
    assert_eq!(e.stage(), Stage::Ssh, "{e:?}");
    assert_eq!(ssh_failure(&e), Some(SshFailure::Unreachable), "{e:?}");

    // … and once it is back, the pool connects again by itself.
    sshd.restart().expect("restart");
    let mut session = pool.get().await.expect("the pool recovers");
    assert_eq!(one_value(&mut session, "SELECT 1").await, "1");
    drop(session);

    // The bastion hangs instead (a dead host, a dropped route): nothing is reset, and only the
    // keep-alives can tell. The query still ends well within 15 s.
    let (took, e, why) = sleep_through(&db, &pool, || sshd.freeze()).await;
    eprintln!("frozen bastion: the query failed after {took:?}: {why:?}");
    assert!(e.is_closed(), "{e}");
    assert!(why.unwrap_or_default().contains("SSH session to the bastion"));
    sshd.thaw();
    let mut session = pool.get().await.expect("the pool recovers again");
    assert_eq!(one_value(&mut session, "SELECT 2").await, "2");
}

#[tokio::test]
async fn one_ssh_session_carries_all_channels() {
    let db = cluster();
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let tunnel = Arc::new(
        SshTunnel::new(&ssh(&sshd, &key, None, pinned(&sshd)), Duration::from_secs(5))
            .expect("tunnel")
            .with_keepalive(Keepalive::default()),
    );
    let mut spec = spec_via(ssh(&sshd, &key, None, pinned(&sshd)), "127.0.0.1", db.port());
    spec.application_name = "one-ssh-session".into();
    let connector = Connector::with_dialer(spec, Dialer::Tunnel(tunnel)).expect("connector");
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(connector.connect().await.expect("session"));
    }
    let accepted = sshd.log().matches("Accepted publickey").count();
    assert_eq!(accepted, 1, "{}", sshd.log());
    assert_eq!(
        db.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'one-ssh-session';")
            .expect("count"),
        "4"
    );
}

#[tokio::test]
async fn target_session_attrs_pick_primary_or_standby_directly_and_over_ssh() {
    let primary = cluster();
    let standby = Cluster::start_standby_of(&primary).expect("standby");
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    for over_ssh in [false, true] {
        // The standby first, so "read-write" has to skip it.
        let mut s = spec_via(ssh(&sshd, &key, None, pinned(&sshd)), "127.0.0.1", standby.port());
        s.hosts.push(HostPort { host: "127.0.0.1".into(), port: primary.port() });
        if !over_ssh {
            s.network = Network::Direct;
        }
        for (attrs, expected) in [
            (SessionAttrs::ReadWrite, primary.port()),
            (SessionAttrs::Primary, primary.port()),
            (SessionAttrs::Standby, standby.port()),
            (SessionAttrs::PreferStandby, standby.port()),
            (SessionAttrs::ReadOnly, standby.port()),
        ] {
            s.target_session_attrs = attrs;
            let mut session = connect(s.clone()).await.unwrap_or_else(|e| panic!("{attrs:?} ssh={over_ssh}: {e}"));
            assert_eq!(session.info().port, expected, "{attrs:?} ssh={over_ssh}");
            assert_eq!(session.info().in_recovery, expected == standby.port());
            let in_recovery = one_value(&mut session, "SELECT pg_is_in_recovery()::text").await;
            assert_eq!(in_recovery == "true", expected == standby.port());
        }
        // Primary listed first: standby must skip it too.
        s.hosts.reverse();
        s.target_session_attrs = SessionAttrs::Standby;
        let session = connect(s.clone()).await.expect("standby");
        assert_eq!(session.info().port, standby.port());
    }
    // Only the primary, and a standby is wanted: no match, and the message says why.
    let mut s = spec_via(ssh(&sshd, &key, None, pinned(&sshd)), "127.0.0.1", primary.port());
    s.target_session_attrs = SessionAttrs::Standby;
    let e = expect_err(connect(s).await);
    assert!(matches!(e, ConnectError::NoMatchingHost { .. }), "{e:?}");
    assert!(e.to_string().contains("is a primary"), "{e}");
}
