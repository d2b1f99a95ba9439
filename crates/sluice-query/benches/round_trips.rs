//! Round trips and latency of one small request, on a real cluster.
//!
//! Requests go through a loopback relay that delays every client-to-server burst by `DELAY`
//! (a stand-in for network latency) and counts round trips: a burst from the client that follows
//! an answer from the server is one. Each request is `run` → every batch → `finish` on one pooled
//! session (begin, describe, execute, end), so the figures are Sluice's protocol alone.
//!
//! `cargo bench -p sluice-query --bench round_trips`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connect::{Connector, Pool, PoolOptions};
use sluice_core::{Secret, SourceSpec, SslMode};
use sluice_query::{run, Flavor, QueryRequest};
use sluice_testkit::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DELAY: Duration = Duration::from_millis(5);
const REQUESTS: u32 = 40;

#[derive(Default)]
struct Counter {
    turns: AtomicU64,
    answered: AtomicBool,
}

async fn relay(listener: TcpListener, server_port: u16, counter: Arc<Counter>) {
    while let Ok((client, _)) = listener.accept().await {
        let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = counter.clone();
        // Each burst is delivered DELAY after it was read, whatever came before it: pipelined
        // bursts overlap as on a real link.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = cr.read(&mut buf).await {
                if up.answered.swap(false, Ordering::SeqCst) {
                    up.turns.fetch_add(1, Ordering::SeqCst);
                }
                if tx.send((tokio::time::Instant::now() + DELAY, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some((due, bytes)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                if sw.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let down = counter.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = sr.read(&mut buf).await {
                down.answered.store(true, Ordering::SeqCst);
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
    }
}

fn pool(port: u16) -> Pool {
    let mut s = SourceSpec::new("127.0.0.1", "bench", "analyst");
    s.hosts[0].port = port;
    s.password = Some(Secret::new("analyst-pw"));
    s.sslmode = SslMode::Disable;
    s.connect_timeout_secs = 10;
    Pool::new(
        Connector::new(s).expect("connector"),
        PoolOptions { max_size: 1, acquire_timeout: Duration::from_secs(30), ..Default::default() },
    )
}

async fn one(pool: &Pool, sql: &str, flavor: Flavor) {
    let session = pool.get().await.expect("session");
    let mut stream = run(session, QueryRequest { sql: sql.into(), flavor, ..Default::default() }).await.expect("run");
    while stream.next_batch().await.expect("batch").is_some() {}
    stream.finish().await.expect("finish");
}

fn main() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database("bench").expect("database");
    cluster.create_login("analyst", "analyst-pw").expect("role");
    cluster
        .psql("bench", "CREATE TYPE mood AS ENUM ('sad', 'ok'); GRANT ALL ON SCHEMA public TO analyst;")
        .expect("setup");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay");
        let relay_port = listener.local_addr().expect("addr").port();
        let counter = Arc::new(Counter::default());
        tokio::spawn(relay(listener, cluster.port(), counter.clone()));
        let delayed = pool(relay_port);
        let direct = pool(cluster.port());
        println!("one request = run + all batches + finish; relay delay {DELAY:?} per client burst");
        for (label, sql, flavor) in [
            ("SELECT 1 AS one (csv)", "SELECT 1 AS one", Flavor::Text),
            ("SELECT 1::numeric AS one (typed)", "SELECT 1::numeric AS one", Flavor::Typed),
            ("SELECT 'ok'::mood AS m, 1 AS one (csv)", "SELECT 'ok'::mood AS m, 1 AS one", Flavor::Text),
        ] {
            // Warm: the session exists and the driver knows the types.
            one(&delayed, sql, flavor).await;
            one(&direct, sql, flavor).await;
            let turns = counter.turns.load(Ordering::SeqCst);
            let started = Instant::now();
            for _ in 0..REQUESTS {
                one(&delayed, sql, flavor).await;
            }
            let per = started.elapsed() / REQUESTS;
            let trips = (counter.turns.load(Ordering::SeqCst) - turns) as f64 / f64::from(REQUESTS);
            let started = Instant::now();
            for _ in 0..REQUESTS * 5 {
                one(&direct, sql, flavor).await;
            }
            let direct_per = started.elapsed() / (REQUESTS * 5);
            println!(
                "{label:42} round trips {trips:.1}  delayed {:7.2} ms  direct {:6.3} ms",
                per.as_secs_f64() * 1e3,
                direct_per.as_secs_f64() * 1e3
            );
        }
    });
}
