//! The API's cost over the database, measured against peers in the same run. Not a timed test: it
//! prints figures.
//!
//! ```sh
//! cargo bench -p sluice-server --bench api
//! SLUICE_BENCH_REQUESTS=5000 SLUICE_BENCH_SECONDS=20 cargo bench -p sluice-server --bench api
//! ```
//!
//! 1. **Latency**: one client sends `SELECT 1` through `POST /api/v1/sources/{id}/query` (JSON,
//!    keep-alive, warm pool, loopback), one request after the other; the peer runs the same
//!    statement over a warm tokio-postgres connection with the same read-only transaction
//!    protocol as Sluice's (`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` with `SET LOCAL`
//!    limits and `application_name` and the read of `transaction_read_only` that confirms it, the
//!    statement, `COMMIT`; no session reset). p50 and p99 of each, and the store's share: a query's audit entry begun and
//!    completed (two acknowledged writes) on its own.
//! 2. **Throughput**: 32 clients, pool cap 5, each sending pgbench's `-S` statement (one
//!    `pgbench_accounts` row by a random key) through the API for a fixed time, against `pgbench
//!    -S -c 5` on the same database, and against five tokio-postgres connections running the
//!    statement in the same read-only transaction (what any pool of five can do with it).
//!
//! A throwaway cluster (testkit) and a SQLite store in a temp dir; the service runs in this
//! process on a loopback port, with two runtime workers (the machine's cores, shared with the
//! clients and the server, as for every peer). `PG_BIN` picks the server; pgbench comes from the
//! same directory.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use sluice_core::{HostPort, Secret, SourceId, SourceSpec, SslMode};
use sluice_doctor::{setup_sql, SetupOptions, DEFAULT_STATEMENT_TIMEOUT};
use sluice_server::{AppState, Config};
use sluice_store::{KeyConfig, NewApiToken, QueryCompletion, QueryOutcome, Store, TokenRole};
use sluice_testkit::Cluster;

const DB: &str = "bench";
const USER: &str = "sluice_ro";
const PW: &str = "bench-read-only-password";
/// pgbench's scale: 100,000 accounts each.
const SCALE: u32 = 10;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default).max(1)
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// One keep-alive HTTP/1.1 connection to the service.
struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
    path: String,
    auth: String,
}

impl Client {
    async fn open(addr: std::net::SocketAddr, source: &SourceId, token: &str) -> Client {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(connection);
        Client { sender, path: format!("/api/v1/sources/{}/query", source.as_str()), auth: format!("Bearer {token}") }
    }

    /// Sends one query and reads its whole body; the status and the body's length.
    async fn query(&mut self, sql: &str) -> (u16, usize) {
        let body = serde_json::json!({"sql": sql, "format": "json"}).to_string();
        let request = Request::post(&self.path)
            .header("host", "bench")
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, body.len())
    }
}

/// The peer: a warm tokio-postgres connection running each statement in the same read-only
/// transaction Sluice opens (limits and application_name set locally, committed after).
struct Peer(tokio_postgres::Client);

impl Peer {
    async fn open(cluster: &Cluster) -> Peer {
        let url = format!("host=127.0.0.1 port={} user={USER} password={PW} dbname={DB}", cluster.port());
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("peer");
        tokio::spawn(connection);
        Peer(client)
    }

    async fn query(&self, sql: &str) -> usize {
        self.0
            .batch_execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = 300000; \
                 SET LOCAL lock_timeout = 300000; SET LOCAL idle_in_transaction_session_timeout = 300000; \
                 SET LOCAL application_name = 'sluice:bench'; \
                 SELECT pg_catalog.current_setting('transaction_read_only');",
            )
            .await
            .expect("begin");
        let rows = self.0.query(sql, &[]).await.expect("query");
        self.0.batch_execute("COMMIT").await.expect("commit");
        rows.len()
    }
}

/// A small deterministic generator for account keys (xorshift).
struct Keys(u64);

impl Keys {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + self.0 % (u64::from(SCALE) * 100_000)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let requests = env_number("SLUICE_BENCH_REQUESTS", 2000) as usize;
    let seconds = env_number("SLUICE_BENCH_SECONDS", 10);

    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database(DB).expect("database");
    let pgbench = cluster.bin_dir().join("pgbench");
    let have_pgbench = pgbench.is_file();
    if have_pgbench {
        let out = Command::new(&pgbench)
            .args(["-i", "-q", "-s", &SCALE.to_string(), "-h", "127.0.0.1", "-p", &cluster.port().to_string()])
            .args(["-U", sluice_testkit::SUPERUSER, DB])
            .env("PGPASSWORD", sluice_testkit::SUPERUSER_PASSWORD)
            .output()
            .expect("pgbench -i");
        assert!(out.status.success(), "pgbench -i: {}", String::from_utf8_lossy(&out.stderr));
    } else {
        eprintln!("no pgbench in {}: the throughput comparison is skipped", cluster.bin_dir().display());
    }
    let script = setup_sql(&SetupOptions {
        user: USER.into(),
        database: DB.into(),
        schemas: vec!["public".into()],
        elt_owners: vec![],
        read_all_data: false,
        password: Secret::new(PW),
        statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
    })
    .expect("setup script");
    cluster.psql(DB, &script).expect("setup script runs");

    // The service, as `sluice serve` runs it, on a SQLite store.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().display().to_string(), KeyConfig::DataDir).await.expect("store"));
    let id: SourceId = "bench".parse().expect("id");
    let mut spec = SourceSpec::new("127.0.0.1", DB, USER);
    spec.hosts = vec![HostPort { host: "127.0.0.1".into(), port: cluster.port() }];
    spec.sslmode = SslMode::Disable;
    spec.password = Some(Secret::new(PW));
    let (settings, secrets) = spec.split();
    store.put_source(&id, "bench", &settings, &secrets).await.expect("source");
    let (_, token) = store
        .create_token(&NewApiToken { name: "bench".into(), role: TokenRole::Admin, source: None, created_by: None })
        .await
        .expect("token");
    let token = token.expose().to_string();
    let config = Config::default();
    let pool_size = config.pool_size;
    let state = AppState::new(store.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(sluice_server::serve(listener, state, std::future::pending()));

    // 1. Latency, one client, warm.
    let mut client = Client::open(addr, &id, &token).await;
    let peer = Peer::open(&cluster).await;
    for _ in 0..200 {
        assert_eq!(client.query("SELECT 1").await.0, 200);
        assert_eq!(peer.query("SELECT 1").await, 1);
    }
    let mut api = Vec::with_capacity(requests);
    let mut direct = Vec::with_capacity(requests);
    // Interleaved, so a slow spell of the machine hits both alike.
    for _ in 0..requests {
        let t = Instant::now();
        let (status, _) = client.query("SELECT 1").await;
        api.push(t.elapsed());
        assert_eq!(status, 200);
        let t = Instant::now();
        peer.query("SELECT 1").await;
        direct.push(t.elapsed());
    }
    let mut audit = Vec::with_capacity(requests / 4);
    for _ in 0..requests / 4 {
        let t = Instant::now();
        let entry = store.begin_query_audit("bench", &id, "SELECT 1").await.expect("audit");
        let done = QueryCompletion { duration_ms: 0, rows: 1, bytes: 1, outcome: QueryOutcome::Ok, error: None };
        store.complete_query_audit(entry, &done).await.expect("audit");
        audit.push(t.elapsed());
    }
    for v in [&mut api, &mut direct, &mut audit] {
        v.sort();
    }
    println!("## One-row query latency ({requests} requests each, interleaved, one client)\n");
    println!("| path | p50 ms | p99 ms |");
    println!("|---|---|---|");
    println!(
        "| tokio-postgres, same read-only transaction | {:.3} | {:.3} |",
        percentile_ms(&direct, 0.5),
        percentile_ms(&direct, 0.99)
    );
    println!("| POST /query (JSON) | {:.3} | {:.3} |", percentile_ms(&api, 0.5), percentile_ms(&api, 0.99));
    println!(
        "| of which: the audit entry begun and completed (store alone) | {:.3} | {:.3} |",
        percentile_ms(&audit, 0.5),
        percentile_ms(&audit, 0.99)
    );
    println!(
        "\nAPI − peer at p50: {:+.3} ms; ratio {:.2}×\n",
        percentile_ms(&api, 0.5) - percentile_ms(&direct, 0.5),
        percentile_ms(&api, 0.5) / percentile_ms(&direct, 0.5)
    );

    // 2. Throughput: pgbench -S -c 5 against 32 API clients sharing a pool of 5.
    if !have_pgbench {
        return;
    }
    let out = Command::new(&pgbench)
        .args(["-S", "-n", "-c", &pool_size.to_string(), "-j", "2", "-T", &seconds.to_string()])
        .args(["-h", "127.0.0.1", "-p", &cluster.port().to_string(), "-U", USER, DB])
        .env("PGPASSWORD", PW)
        .output()
        .expect("pgbench -S");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "pgbench -S: {text}{}", String::from_utf8_lossy(&out.stderr));
    let pgbench_tps: f64 = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .expect("pgbench's tps line");

    // The protocol's own ceiling: the same transaction per statement over five warm connections,
    // the most a pool of five can do whoever sends the statements.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut peers = Vec::new();
    for i in 0..pool_size as u64 {
        let peer = Peer::open(&cluster).await;
        peers.push(tokio::spawn(async move {
            let mut keys = Keys(0x2545_F491_4F6C_DD1D ^ (i + 1));
            let mut n = 0u64;
            while Instant::now() < deadline {
                let sql = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {}", keys.next());
                assert_eq!(peer.query(&sql).await, 1);
                n += 1;
            }
            n
        }));
    }
    let started = Instant::now();
    let mut peer_total = 0u64;
    for t in peers {
        peer_total += t.await.expect("peer task");
    }
    let peer_qps = peer_total as f64 / started.elapsed().as_secs_f64();

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let token = token.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::open(addr, &id, &token).await;
            let mut keys = Keys(0x9E37_79B9_7F4A_7C15 ^ (i + 1));
            let (mut ok, mut busy) = (0u64, 0u64);
            while Instant::now() < deadline {
                let sql = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {}", keys.next());
                match client.query(&sql).await.0 {
                    200 => ok += 1,
                    429 => busy += 1,
                    other => panic!("status {other}"),
                }
            }
            (ok, busy)
        }));
    }
    let started = Instant::now();
    let (mut ok, mut busy) = (0u64, 0u64);
    for t in tasks {
        let (o, b) = t.await.expect("client task");
        ok += o;
        busy += b;
    }
    let api_qps = ok as f64 / started.elapsed().as_secs_f64();
    println!("## Throughput ({seconds} s each, pool cap {pool_size})\n");
    println!("| path | queries/s |");
    println!("|---|---|");
    println!("| pgbench -S -c {pool_size} -j 2 | {pgbench_tps:.0} |");
    println!("| tokio-postgres, same read-only transaction, {pool_size} connections | {peer_qps:.0} |");
    println!("| POST /query, 32 clients | {api_qps:.0} ({busy} answered 429) |");
    println!(
        "\nAPI / pgbench: {:.2}×; API / tokio-postgres with the same transaction: {:.2}×",
        api_qps / pgbench_tps,
        api_qps / peer_qps
    );
}
