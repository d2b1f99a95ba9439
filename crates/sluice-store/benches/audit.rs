//! The SQLite store's audit writes, the two every query makes (its entry begun, then
//! completed), on their own. Not a timed test: it prints figures.
//!
//! ```sh
//! cargo bench -p sluice-store --bench audit
//! SLUICE_BENCH_REQUESTS=5000 SLUICE_BENCH_SECONDS=10 cargo bench -p sluice-store --bench audit
//! ```
//!
//! 1. One caller, one query's pair of writes after the other: p50 and p99.
//! 2. 32 callers at once for a fixed time (as 32 API clients would write): pairs per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_core::SourceId;
use sluice_store::{KeyConfig, MasterKey, QueryCompletion, QueryOutcome, Store};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default).max(1)
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn pair(store: &Store, source: &SourceId) {
    let entry = store.begin_query_audit("user:bench", source, "SELECT 1").await.expect("begin");
    let done = QueryCompletion { duration_ms: 0, rows: 1, bytes: 20, outcome: QueryOutcome::Ok, error: None };
    store.complete_query_audit(entry, &done).await.expect("complete");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let requests = env_number("SLUICE_BENCH_REQUESTS", 2000) as usize;
    let seconds = env_number("SLUICE_BENCH_SECONDS", 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = KeyConfig::Key(MasterKey::generate().expect("key"));
    let store = Arc::new(Store::open(&dir.path().display().to_string(), key).await.expect("store"));
    let source: SourceId = "bench".parse().expect("id");

    for _ in 0..200 {
        pair(&store, &source).await;
    }
    let mut one = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        pair(&store, &source).await;
        one.push(t.elapsed());
    }
    one.sort();

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (store, source) = (store.clone(), source.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                pair(&store, &source).await;
                n += 1;
            }
            n
        }));
    }
    let started = Instant::now();
    let mut total = 0u64;
    for t in tasks {
        total += t.await.expect("caller");
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();

    println!("## A query's audit writes on the SQLite store (begun, then completed)\n");
    println!("| callers | p50 ms | p99 ms | pairs/s |");
    println!("|---|---|---|---|");
    println!(
        "| 1, one after the other ({requests}) | {:.3} | {:.3} | |",
        percentile_ms(&one, 0.5),
        percentile_ms(&one, 0.99)
    );
    println!("| 32 at once ({seconds} s) | | | {rate:.0} |");
}
