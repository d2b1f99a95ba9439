//! Connection acceptance against real PostgreSQL clusters from the testkit.

use std::time::{Duration, Instant};

use sluice_connect::{ConnectError, Connector, Pool, PoolOptions, Stage, TlsFailure};
use sluice_core::{CertSource, KeySource, Secret, SourceSpec, SslMode, UserFacing};
use sluice_testkit::{Cluster, ClusterOptions, HbaRule, TestCa, TlsFiles};

const PW: &str = "s3cret-pw";

fn spec(host: &str, port: u16, user: &str, mode: SslMode) -> SourceSpec {
    let mut s = SourceSpec::new(host, "postgres", user);
    s.hosts[0].port = port;
    s.password = Some(Secret::new(PW));
    s.sslmode = mode;
    s.connect_timeout_secs = 5;
    s
}

async fn connect(s: SourceSpec) -> Result<sluice_connect::ReadOnlySession, ConnectError> {
    Connector::new(s)?.connect().await
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, ConnectError>) -> ConnectError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

struct TlsServer {
    cluster: Cluster,
    ca: TestCa,
}

/// Server certificate for `localhost` only; pg_hba allows TLS connections only.
fn tls_server() -> TlsServer {
    let ca = TestCa::new("Sluice Test CA").expect("ca");
    let server = ca.server_cert(&["localhost"]).expect("server cert");
    let cluster = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server, client_ca_pem: Some(ca.cert_pem.clone()) }),
        hba: vec![HbaRule::HostSslCert { role: "certuser".into() }, HbaRule::HostSslScram],
        ..Default::default()
    })
    .expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    cluster.psql("postgres", "CREATE ROLE certuser LOGIN;").expect("cert role");
    TlsServer { cluster, ca }
}

#[tokio::test]
async fn tls_modes_against_a_localhost_certificate() {
    let srv = tls_server();
    let port = srv.cluster.port();
    let ca = CertSource::Pem(srv.ca.cert_pem.clone());

    // verify-full to the name on the certificate passes.
    let mut s = spec("localhost", port, "ro", SslMode::VerifyFull);
    s.sslrootcert = Some(ca.clone());
    let session = connect(s.clone()).await.expect("verify-full to localhost");
    let tls = session.info().tls.clone().expect("tls info");
    assert_eq!(tls.verified, "chain+name");

    // verify-full to 127.0.0.1 fails at tls and names what the certificate carries.
    s.hosts[0].host = "127.0.0.1".into();
    let e = expect_err(connect(s.clone()).await);
    assert_eq!(e.stage(), Stage::Tls, "{e}");
    match &e {
        ConnectError::Tls { failure: TlsFailure::NameMismatch { expected, presented }, .. } => {
            assert_eq!(expected, "127.0.0.1");
            assert_eq!(presented, &vec!["localhost".to_string()]);
        }
        other => panic!("expected a name mismatch, got {other:?}"),
    }
    assert!(e.to_string().contains("localhost"), "{e}");

    // …and passes with tls_server_name = localhost.
    s.tls_server_name = Some("localhost".into());
    connect(s.clone()).await.expect("verify-full with tls_server_name");

    // verify-ca to 127.0.0.1 passes: the chain is checked, the name is not.
    let mut s = spec("127.0.0.1", port, "ro", SslMode::VerifyCa);
    s.sslrootcert = Some(ca.clone());
    assert_eq!(connect(s.clone()).await.expect("verify-ca").info().tls.as_ref().map(|t| t.verified), Some("chain"));

    // verify-ca against an unrelated CA fails at tls.
    let other = TestCa::new("Unrelated CA").expect("other ca");
    s.sslrootcert = Some(CertSource::Pem(other.cert_pem.clone()));
    let e = expect_err(connect(s.clone()).await);
    assert!(matches!(e, ConnectError::Tls { failure: TlsFailure::UnknownCa, .. }), "{e:?}");
    assert!(e.hint().unwrap_or_default().contains("sslrootcert"));

    // require with an unrelated root certificate behaves as verify-ca (libpq's rule) …
    s.sslmode = SslMode::Require;
    assert!(matches!(expect_err(connect(s.clone()).await), ConnectError::Tls { failure: TlsFailure::UnknownCa, .. }));
    // … and without one it encrypts without verifying.
    s.sslrootcert = None;
    let session = connect(s).await.expect("require");
    assert_eq!(session.info().tls.as_ref().map(|t| t.verified), Some("none"));

    // disable against hostssl-only pg_hba fails at auth with the pg_hba hint.
    let e = expect_err(connect(spec("127.0.0.1", port, "ro", SslMode::Disable)).await);
    assert_eq!(e.stage(), Stage::Auth, "{e}");
    assert_eq!(e.sqlstate(), Some("28000"));
    assert!(e.hint().unwrap_or_default().contains("pg_hba.conf"), "{:?}", e.hint());

    // allow retries with TLS when plaintext is refused.
    connect(spec("127.0.0.1", port, "ro", SslMode::Allow)).await.expect("allow falls forward to TLS");
}

#[tokio::test]
async fn client_certificate_authentication() {
    let srv = tls_server();
    let client = srv.ca.client_cert("certuser").expect("client cert");
    let mut s = spec("localhost", srv.cluster.port(), "certuser", SslMode::VerifyFull);
    s.password = None;
    s.sslrootcert = Some(CertSource::Pem(srv.ca.cert_pem.clone()));
    s.sslcert = Some(CertSource::Pem(client.cert_pem.clone()));
    s.sslkey = Some(KeySource::Pem(Secret::new(client.key_pem.clone())));
    let mut session = connect(s.clone()).await.expect("cert auth");
    let tx = session.read_only_transaction().await.expect("begin");
    let who = tx.client().simple_query("SELECT current_user").await.expect("query");
    assert!(format!("{who:?}").contains("certuser"));

    // The same key in the traditional (SEC1 `EC PRIVATE KEY`) encoding, as a file.
    let dir = tempfile::tempdir().expect("dir");
    let traditional = traditional_key(&client.key_pem);
    assert!(traditional.contains("BEGIN EC PRIVATE KEY"), "{traditional}");
    let key_file = dir.path().join("client.key");
    std::fs::write(&key_file, traditional).expect("key file");
    let mut from_file = s.clone();
    from_file.sslkey = Some(KeySource::File(key_file));
    connect(from_file).await.expect("cert auth with a traditional key file");

    // Without the certificate, the cert rule refuses the login.
    let mut bare = s.clone();
    bare.sslcert = None;
    bare.sslkey = None;
    let e = expect_err(connect(bare).await);
    assert!(matches!(e.stage(), Stage::Auth | Stage::Tls), "{e:?}");

    // A certificate from another CA is rejected by the server.
    let other = TestCa::new("Rogue CA").expect("ca").client_cert("certuser").expect("cert");
    s.sslcert = Some(CertSource::Pem(other.cert_pem));
    s.sslkey = Some(KeySource::Pem(Secret::new(other.key_pem)));
    let e = expect_err(connect(s).await);
    assert!(matches!(e, ConnectError::Tls { failure: TlsFailure::ClientCertRejected(_), .. }), "{e:?}");
}

/// PKCS#8 → the key's traditional encoding, with the openssl CLI.
fn traditional_key(pkcs8_pem: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["pkey", "-traditional"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().expect("stdin").write_all(pkcs8_pem.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("openssl output");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
async fn expired_server_certificate_is_named() {
    let ca = TestCa::new("CA").expect("ca");
    let cluster = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server: ca.expired_server_cert(&["localhost"]).expect("cert"), client_ca_pem: None }),
        ..Default::default()
    })
    .expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    let mut s = spec("localhost", cluster.port(), "ro", SslMode::VerifyFull);
    s.sslrootcert = Some(CertSource::Pem(ca.cert_pem.clone()));
    let e = expect_err(connect(s).await);
    assert!(matches!(e, ConnectError::Tls { failure: TlsFailure::Expired, .. }), "{e:?}");
}

#[tokio::test]
async fn plaintext_server_and_auth_failures() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    let port = cluster.port();

    let e = expect_err(connect(spec("127.0.0.1", port, "ro", SslMode::Require)).await);
    assert!(matches!(e, ConnectError::TlsUnsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("does not support TLS"));
    let e = expect_err(connect(spec("127.0.0.1", port, "ro", SslMode::VerifyFull)).await);
    assert!(matches!(e, ConnectError::TlsUnsupported { .. }), "verify-full never falls back: {e:?}");

    let session = connect(spec("127.0.0.1", port, "ro", SslMode::Prefer)).await.expect("prefer falls back");
    assert!(session.info().tls.is_none());
    assert!(session.info().server_version_num >= 100000);

    let mut wrong = spec("127.0.0.1", port, "ro", SslMode::Disable);
    wrong.password = Some(Secret::new("not-the-password-xyz"));
    let e = expect_err(connect(wrong).await);
    assert_eq!(e.stage(), Stage::Auth);
    assert_eq!(e.sqlstate(), Some("28P01"));
    let shown = format!("{e} {e:?} {}", e.hint().unwrap_or_default());
    assert!(!shown.contains("not-the-password-xyz"), "the password is never echoed: {shown}");

    let mut nodb = spec("127.0.0.1", port, "ro", SslMode::Disable);
    nodb.database = "nope".into();
    let e = expect_err(connect(nodb).await);
    assert_eq!(e.sqlstate(), Some("3D000"), "{e:?}");
}

#[tokio::test]
async fn network_failures_name_their_stage() {
    // A closed port: fails at tcp, quickly.
    let port = sluice_testkit::free_port().expect("port");
    let e = expect_err(connect(spec("127.0.0.1", port, "ro", SslMode::Disable)).await);
    assert_eq!(e.stage(), Stage::Tcp, "{e:?}");

    // An unresolvable name: fails at dns.
    let e = expect_err(connect(spec("no-such-host.invalid", 5432, "ro", SslMode::Disable)).await);
    assert_eq!(e.stage(), Stage::Dns, "{e:?}");

    // Another TCP service (it greets like sshd): "not a PostgreSQL server", in every mode.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n").await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    for mode in [SslMode::Disable, SslMode::Require] {
        let e = expect_err(connect(spec("127.0.0.1", port, "ro", mode)).await);
        assert!(matches!(e, ConnectError::NotPostgres { .. }), "{mode}: {e:?}");
        assert!(e.to_string().contains("not a PostgreSQL server"), "{e}");
    }
}

#[tokio::test]
async fn sessions_are_read_only_and_the_pool_is_capped() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("rw", PW).expect("role");
    cluster
        .psql("postgres", "CREATE TABLE t(x int); GRANT ALL ON t TO rw; GRANT CREATE, USAGE ON SCHEMA public TO rw;")
        .expect("setup");
    let mut s = spec("127.0.0.1", cluster.port(), "rw", SslMode::Disable);
    s.application_name = "pool-cap-test".into();
    let pool = Pool::new(
        Connector::new(s).expect("connector"),
        PoolOptions { max_size: 5, acquire_timeout: Duration::from_secs(20), ..Default::default() },
    );

    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(pool.get().await.expect("session"));
    }
    for session in &mut held {
        let tx = session.read_only_transaction().await.expect("begin");
        let rows = tx.client().query_one("SHOW default_transaction_read_only", &[]).await.expect("show");
        assert_eq!(rows.get::<_, String>(0), "on", "read-only at session level too");
        let e = tx.client().simple_query("INSERT INTO t VALUES (1)").await.expect_err("write refused");
        assert_eq!(e.code().map(|c| c.code()), Some("25006"));
        tx.rollback().await.expect("rollback");
    }
    // One that must not wait gets none, at once, and does not queue.
    assert!(pool.try_get().await.expect("try_get").is_none(), "no session is free");
    assert_eq!(pool.waiting(), 0);
    // The sixth waits rather than opening a sixth server connection.
    let p2 = pool.clone();
    let sixth = tokio::spawn(async move { p2.get().await.map(|s| s.info().backend_pid) });
    let started = Instant::now();
    while pool.waiting() != 1 {
        assert!(started.elapsed() < Duration::from_secs(10), "the sixth never asked");
        tokio::task::yield_now().await;
    }
    assert_eq!(pool.in_use(), 5);
    let count = || {
        cluster
            .psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pool-cap-test';")
            .expect("count")
    };
    assert_eq!(count(), "5");
    assert!(!sixth.is_finished());
    let freed_pid = held[0].info().backend_pid;
    held.remove(0);
    let pid = tokio::time::timeout(Duration::from_secs(10), sixth)
        .await
        .expect("sixth gets a session")
        .expect("join")
        .expect("session");
    assert_eq!(pid, freed_pid, "the sixth reuses the freed session");
    assert_eq!(count(), "5");
    // The sixth gave it back: one that must not wait now gets it.
    let free = pool.try_get().await.expect("try_get").expect("a free session");
    assert_eq!(free.info().backend_pid, freed_pid);
    assert!(pool.try_get().await.expect("try_get").is_none(), "all five on loan again");
    drop(free);
    assert_eq!(count(), "5");
    assert_eq!(cluster.psql("postgres", "SELECT count(*) FROM t;").expect("count"), "0");
}

#[tokio::test]
async fn session_state_does_not_survive_reuse() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("rw", PW).expect("role");
    cluster
        .psql("postgres", "GRANT CREATE, USAGE ON SCHEMA public TO rw; GRANT TEMP ON DATABASE postgres TO rw;")
        .expect("grants");
    let s = spec("127.0.0.1", cluster.port(), "rw", SslMode::Disable);
    let pool = Pool::new(Connector::new(s).expect("connector"), PoolOptions { max_size: 1, ..Default::default() });
    let pid;
    {
        let mut session = pool.get().await.expect("session");
        pid = session.info().backend_pid;
        let tx = session.read_only_transaction().await.expect("begin");
        // Transaction control through the client ends Sluice's transaction: what a reset must
        // undo, whatever was done.
        tx.client()
            .batch_execute(
                "COMMIT; SET default_transaction_read_only = off; SET search_path = nowhere; \
                 SET statement_timeout = 0;",
            )
            .await
            .expect("dirty the settings");
        tx.client()
            .batch_execute(
                "CREATE TEMP TABLE leftover(x int); SELECT pg_advisory_lock(42); BEGIN; DECLARE c CURSOR FOR SELECT 1;",
            )
            .await
            .expect("leave objects, a lock and an open transaction behind");
    }
    let mut session = pool.get().await.expect("session again");
    assert_eq!(session.info().backend_pid, pid, "same server connection");
    let tx = session.read_only_transaction().await.expect("begin");
    let rows = tx
        .client()
        .simple_query(
            "SELECT current_setting('default_transaction_read_only'), current_setting('search_path'), \
             current_setting('statement_timeout'), to_regclass('pg_temp.leftover') IS NULL, \
             (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
             (SELECT count(*) FROM pg_cursors)",
        )
        .await
        .expect("inspect");
    let row = match rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    }) {
        Some(r) => (0..6).map(|i| r.get(i).unwrap_or("").to_string()).collect::<Vec<_>>(),
        None => panic!("no row"),
    };
    assert_eq!(row, vec!["on", "\"$user\", public", "5min", "t", "0", "0"]);
}

/// A session handed back after a clean transaction is reset in the next transaction's own batch.
/// The reset must leave the driver's statements alone (its cached type lookups, the statement
/// described in the same round trip) while it removes a `PREPARE` the last user left, and it
/// must not make the server log a warning on every reuse.
#[tokio::test]
async fn a_folded_reset_keeps_the_drivers_statements_and_logs_nothing() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    cluster
        .psql("postgres", "CREATE TYPE mood AS ENUM ('calm', 'busy'); GRANT USAGE ON TYPE mood TO ro;")
        .expect("a type of the database's own");
    let s = spec("127.0.0.1", cluster.port(), "ro", SslMode::Disable);
    let pool = Pool::new(Connector::new(s).expect("connector"), PoolOptions { max_size: 1, ..Default::default() });
    let options = sluice_connect::TransactionOptions::default();
    let sql = "SELECT 'busy'::mood AS m";
    let mut pid = None;
    for round in 0..4 {
        let mut session = pool.get().await.expect("session");
        assert_eq!(*pid.get_or_insert(session.info().backend_pid), session.info().backend_pid, "one server connection");
        let (tx, described) = session.read_only_transaction_describing(&options, sql).await.expect("begin");
        // The driver looks the enum up once and keeps its lookup statement for the next rounds.
        let statement = described.unwrap_or_else(|e| panic!("round {round}: describe: {e}"));
        let rows = tx.client().query(&statement, &[]).await.unwrap_or_else(|e| panic!("round {round}: execute: {e}"));
        assert_eq!(rows.len(), 1);
        let left: i64 = tx
            .client()
            .query_one("SELECT count(*) FROM pg_prepared_statements WHERE from_sql", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(left, 0, "round {round}: the last round's PREPARE was removed");
        // What a function may leave behind: an SQL-level prepared statement.
        tx.client().batch_execute("PREPARE leftover AS SELECT 1").await.expect("prepare");
        drop(rows);
        drop(statement);
        tx.commit().await.expect("commit");
    }
    let log = cluster.log();
    assert!(!log.contains("there is no transaction in progress"), "the reuse made the server warn:\n{log}");
}

#[tokio::test]
async fn a_running_query_is_cancelled_and_its_backend_is_idle() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    let mut session = connect(spec("127.0.0.1", cluster.port(), "ro", SslMode::Prefer)).await.expect("session");
    let pid = session.info().backend_pid;
    let cancel = session.cancel_handle();
    let started = Instant::now();
    let running = tokio::spawn(async move {
        let tx = session.read_only_transaction().await.expect("begin");
        let r = tx.client().simple_query("SELECT pg_sleep(30)").await;
        drop(tx);
        (r.map(|_| ()), session)
    });
    // A cancel only reaches a statement that runs: wait until the server says it does.
    let active = || {
        cluster
            .psql("postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active';"))
            .expect("activity")
    };
    while active() != "1" {
        assert!(started.elapsed() < Duration::from_secs(10), "the query never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel().await.expect("cancel sent");
    // A guard against hanging, far below the 30 s the sleep would take; the latency itself is
    // measured by `cargo bench -p sluice-connect --bench cancel`.
    let (result, _session) = tokio::time::timeout(Duration::from_secs(20), running).await.expect("ends").expect("join");
    eprintln!("the cancelled statement ended {:?} after it started", started.elapsed());
    let e = result.expect_err("cancelled");
    assert_eq!(e.code().map(|c| c.code()), Some("57014"));
    assert_eq!(active(), "0");
}

#[tokio::test]
async fn target_session_attrs_skips_hosts() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    let closed = sluice_testkit::free_port().expect("port");
    let mut s = spec("127.0.0.1", closed, "ro", SslMode::Disable);
    s.hosts.push(sluice_core::HostPort { host: "127.0.0.1".into(), port: cluster.port() });
    s.target_session_attrs = sluice_core::SessionAttrs::Primary;
    let session = connect(s.clone()).await.expect("second host");
    assert_eq!(session.info().port, cluster.port());
    s.target_session_attrs = sluice_core::SessionAttrs::Standby;
    let e = expect_err(connect(s).await);
    assert!(matches!(e, ConnectError::NoMatchingHost { .. }), "{e:?}");
    assert!(e.to_string().contains("is a primary"), "{e}");
}

#[tokio::test]
async fn a_private_endpoint_is_dialled_by_its_name_and_verified_by_the_databases() {
    // The endpoint's address (here 127.0.0.1) is not on the certificate; the database's own
    // name (`localhost`) is, and tls_server_name carries it.
    let srv = tls_server();
    let mut s = spec("127.0.0.1", srv.cluster.port(), "ro", SslMode::VerifyFull);
    s.network = sluice_core::Network::PrivateEndpoint;
    s.sslrootcert = Some(CertSource::Pem(srv.ca.cert_pem.clone()));
    let e = expect_err(connect(s.clone()).await);
    assert_eq!(e.stage(), Stage::Config, "{e:?}");
    assert!(e.to_string().contains("tls_server_name"), "{e}");

    s.tls_server_name = Some("localhost".into());
    let session = connect(s.clone()).await.expect("verify-full via the endpoint");
    assert_eq!(session.info().tls.as_ref().map(|t| t.verified), Some("chain+name"));
    // The cancel request takes the same path.
    session.cancel_handle().cancel().await.expect("cancel");

    s.tls_server_name = Some("db.other.example".into());
    let e = expect_err(connect(s).await);
    assert!(matches!(e, ConnectError::Tls { failure: TlsFailure::NameMismatch { .. }, .. }), "{e:?}");
}

/// The session's lock_timeout ends a wait for a lock another session holds (SQLSTATE 55P03)
/// instead of waiting for as long as the holder keeps it.
#[tokio::test]
async fn lock_timeout_ends_a_wait_for_a_held_lock() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    cluster.psql("postgres", "CREATE TABLE held(x int); GRANT SELECT ON held TO ro;").expect("table");
    let limits = sluice_connect::SessionSettings { lock_timeout: Duration::from_millis(300), ..Default::default() };
    let connector = Connector::new(spec("127.0.0.1", cluster.port(), "ro", SslMode::Disable)).expect("connector");
    let mut session = connector.with_settings(limits).connect().await.expect("session");
    let (holder, connection) =
        tokio_postgres::connect(&cluster.superuser_url("postgres"), tokio_postgres::NoTls).await.expect("lock holder");
    let holder_task = tokio::spawn(connection);
    holder.batch_execute("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE").await.expect("take the lock");

    let tx = session.read_only_transaction().await.expect("begin");
    let shown = tx.client().query_one("SHOW lock_timeout", &[]).await.expect("show");
    assert_eq!(shown.get::<_, String>(0), "300ms");
    // A hang guard only: without the limit the read would wait until the holder commits.
    let read = tokio::time::timeout(Duration::from_secs(30), tx.client().simple_query("SELECT count(*) FROM held"))
        .await
        .expect("the wait ends without the holder letting go");
    let e = read.expect_err("lock_timeout");
    assert_eq!(e.code().map(|c| c.code()), Some("55P03"), "{e}");
    tx.rollback().await.expect("rollback");
    // The holder still has its lock: the limit ended the wait, not the lock.
    let held = cluster
        .psql("postgres", "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'held' AND l.granted AND l.mode = 'AccessExclusiveLock'")
        .expect("locks");
    assert_eq!(held, "1");
    holder.batch_execute("COMMIT").await.expect("release");
    holder_task.abort();
}

/// The session's idle_in_transaction_session_timeout makes the server end a session left idle
/// inside a transaction: the server closes it, and the session says so.
#[tokio::test]
async fn an_idle_transaction_is_ended_by_the_server() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    let limits = sluice_connect::SessionSettings {
        idle_in_transaction_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let connector = Connector::new(spec("127.0.0.1", cluster.port(), "ro", SslMode::Disable)).expect("connector");
    let mut session = connector.with_settings(limits).connect().await.expect("session");
    let pid = session.info().backend_pid;
    let tx = session.read_only_transaction().await.expect("begin");
    let shown = tx.client().query_one("SHOW idle_in_transaction_session_timeout", &[]).await.expect("show");
    assert_eq!(shown.get::<_, String>(0), "300ms");
    // Idle inside the transaction until the server has ended the backend.
    let started = Instant::now();
    while cluster
        .psql("postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"))
        .expect("activity")
        != "0"
    {
        assert!(started.elapsed() < Duration::from_secs(30), "the server never ended the idle transaction");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = tx.client().simple_query("SELECT 1").await.expect_err("the session is gone");
    assert!(e.is_closed() || e.code().map(|c| c.code()) == Some("25P03"), "{e:?}");
    drop(tx);
    let started = Instant::now();
    while !session.is_closed() {
        assert!(started.elapsed() < Duration::from_secs(10), "the session never noticed");
        tokio::task::yield_now().await;
    }
    assert!(!session.is_reusable());
    // The session says why: the server's FATAL (idle-in-transaction timeout, SQLSTATE 25P03)
    // when the driver read it before the socket closed, else that the connection closed.
    let why = session.connection_error().expect("the session says why it ended");
    assert!(why.contains("idle-in-transaction timeout") || why.contains("connection closed"), "{why}");
}

#[tokio::test]
async fn an_idle_session_is_closed_after_the_idle_timeout() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("reader", PW).expect("role");
    let s = spec("127.0.0.1", cluster.port(), "reader", SslMode::Disable);
    let options = PoolOptions { max_size: 1, idle_timeout: Duration::from_millis(200), ..Default::default() };
    let pool = Pool::new(Connector::new(s).expect("connector"), options);
    let pid = pool.get().await.expect("session").info().backend_pid;
    let alive = |pid: i32| {
        cluster
            .psql("postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"))
            .expect("pg_stat_activity")
            .trim()
            == "1"
    };
    // Back in the pool, idle: its server connection ends without anyone asking.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(std::time::Instant::now() < deadline, "the idle session {pid} is still connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.idle_count(), 0);
    // The pool opens a new session when asked again.
    let again = pool.get().await.expect("a new session");
    assert_ne!(again.info().backend_pid, pid);
    // A session in use is never closed, however long it is held.
    let held = again.info().backend_pid;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(alive(held), "a session on loan stays open");
    assert_eq!(pool.close_idle(), 0);
}
