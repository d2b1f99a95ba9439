//! How long a cancel takes to stop a running statement, from the moment it is asked for until the
//! backend is no longer active, through each transport — against psql (libpq's `PQcancel` on
//! SIGINT) as the peer, measured in the same run. Not a timed test: it prints figures.
//!
//! ```sh
//! cargo bench -p sluice-connect --bench cancel
//! SLUICE_BENCH_RUNS=21 cargo bench -p sluice-connect --bench cancel
//! ```
//!
//! Every path starts a throwaway cluster, an OpenSSH bastion and a PgBouncer in transaction mode
//! (testkit); `PG_BIN` picks the server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_connect::{Connector, ReadOnlySession};
use sluice_core::{HostKeyCheck, KeySource, Network, Secret, SourceSpec, SshSpec, SslMode};
use sluice_testkit::{Cluster, KeyFormat, KeyType, PgBouncer, PgBouncerOptions, Sshd, SshdOptions};

const PW: &str = "bench-pw";
const SLEEP: &str = "SELECT pg_sleep(60)";

fn runs() -> usize {
    std::env::var("SLUICE_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(11).max(1)
}

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times.get(times.len() / 2).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN)
}

/// A superuser connection that watches pg_stat_activity.
struct Monitor(tokio_postgres::Client);

impl Monitor {
    async fn open(cluster: &Cluster) -> Monitor {
        let (client, connection) =
            tokio_postgres::connect(&cluster.superuser_url("postgres"), tokio_postgres::NoTls).await.expect("monitor");
        tokio::spawn(connection);
        Monitor(client)
    }

    /// Polls until the sleep runs (`want` = 1) or is gone (`want` = 0); panics after 30 s.
    async fn wait_for(&self, want: i64) {
        let t = Instant::now();
        loop {
            let row = self
                .0
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1", &[&SLEEP])
                .await
                .expect("pg_stat_activity");
            if row.get::<_, i64>(0) == want {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "the statement never reached {want} active");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn spec(host: &str, port: u16) -> SourceSpec {
    let mut s = SourceSpec::new(host, "postgres", "ro");
    s.hosts[0].port = port;
    s.password = Some(Secret::new(PW));
    s.sslmode = SslMode::Disable;
    s
}

/// One cancel through a Sluice session: from `cancel()` until the backend is idle.
async fn sluice_cancel(monitor: &Monitor, connector: &Connector) -> Duration {
    let mut session: ReadOnlySession = connector.connect().await.expect("session");
    let cancel = session.cancel_handle();
    let running = tokio::spawn(async move {
        let tx = session.read_only_transaction().await.expect("begin");
        let r = tx.client().simple_query(SLEEP).await.map(|_| ());
        let _ = tx.rollback().await;
        r
    });
    monitor.wait_for(1).await;
    let t = Instant::now();
    cancel.cancel().await.expect("cancel");
    monitor.wait_for(0).await;
    let took = t.elapsed();
    let result = running.await.expect("join");
    assert!(result.is_err(), "the sleep was cancelled");
    took
}

/// One cancel by psql: SIGINT makes libpq send its cancel; until the backend is idle.
async fn psql_cancel(cluster: &Cluster, monitor: &Monitor) -> Duration {
    let mut child = Command::new("psql")
        .args(["-X", "-h", "127.0.0.1", "-p", &cluster.port().to_string(), "-U", "ro", "-d", "postgres", "-c", SLEEP])
        .env("PGPASSWORD", PW)
        .env("PGSSLMODE", "disable")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql");
    monitor.wait_for(1).await;
    let t = Instant::now();
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    monitor.wait_for(0).await;
    let took = t.elapsed();
    let _ = child.wait();
    took
}

#[tokio::main]
async fn main() {
    let runs = runs();
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let bouncer =
        PgBouncer::start(&cluster, PgBouncerOptions { users: vec![("ro".into(), PW.into())], ..Default::default() })
            .expect("pgbouncer");

    let direct = Connector::new(spec("127.0.0.1", cluster.port())).expect("direct");
    let mut via_bouncer = spec(bouncer.host(), bouncer.port());
    via_bouncer.pgbouncer = true;
    let via_bouncer = Connector::new(via_bouncer).expect("pgbouncer");
    let mut via_ssh = spec("127.0.0.1", cluster.port());
    via_ssh.network = Network::Ssh(SshSpec {
        host: sshd.host().into(),
        port: sshd.port(),
        user: sshd.user().into(),
        private_key: Some(KeySource::File(key.private_key_path.clone())),
        passphrase: None,
        host_key: HostKeyCheck::Fingerprint(sshd.host_key_fingerprint().into()),
    });
    let via_ssh = Connector::new(via_ssh).expect("ssh");

    let monitor = Monitor::open(&cluster).await;
    let (mut psql, mut d, mut b, mut s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        psql.push(psql_cancel(&cluster, &monitor).await);
        d.push(sluice_cancel(&monitor, &direct).await);
        b.push(sluice_cancel(&monitor, &via_bouncer).await);
        s.push(sluice_cancel(&monitor, &via_ssh).await);
    }
    let peer = median_ms(psql);
    println!(
        "cancel until the backend is idle, median of {runs} runs, PostgreSQL {}",
        cluster.version_num().unwrap_or(0)
    );
    println!("| path | median ms | vs psql SIGINT |");
    println!("|---|---:|---:|");
    println!("| psql (libpq PQcancel on SIGINT) | {peer:.1} | 1.00× |");
    for (name, times) in
        [("sluice direct", d), ("sluice through PgBouncer 1.18", b), ("sluice through the SSH bastion", s)]
    {
        let ms = median_ms(times);
        println!("| {name} | {ms:.1} | {:.2}× |", ms / peer);
    }
}
