//! Streaming behaviour: truncation, timeout, cancel on drop, lost connections, and the
//! cold-type-cache regression.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sluice_query::export::{self, ExportContext, Format, Sink};
use sluice_query::{run, QueryError, QueryRequest};

/// Rows produced one at a time (a set-returning function in FROM would be materialized first).
const ENDLESS: &str = "SELECT generate_series(1, 1000000000) AS g, repeat('x', 50) AS pad";

/// Active statements of the analyst, seen by the superuser.
fn active(env: &Env) -> u32 {
    su(&env.cluster, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'analyst' AND state = 'active';")
        .trim()
        .parse()
        .expect("count")
}

/// Waits for the analyst's statement to stop; returns how long it took. The 20 s bound only
/// guards against hanging (the statements these tests run never end by themselves); cancel
/// latency is measured by `cargo bench -p sluice-connect --bench cancel`.
async fn stopped(env: &Env) -> Duration {
    let t = Instant::now();
    while active(env) > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the statement still runs: {}",
            su(
                &env.cluster,
                "SELECT state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity WHERE usename = 'analyst';"
            )
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rows_truncates_cancels_and_marks_every_format() {
    let env = env();
    for format in Format::ALL {
        let mut r = req(ENDLESS, format);
        r.max_rows = Some(10);
        let (bytes, summary) = export_bytes(&env.pool, r, format).await.expect("truncated");
        assert_eq!(summary.rows, 10, "{format:?}");
        assert!(summary.truncated, "{format:?}");
        assert_eq!(active(&env), 0, "{format:?}: the rest was cancelled on the server");
        match format {
            Format::Csv => assert_eq!(String::from_utf8_lossy(&bytes).lines().count(), 11),
            Format::Ndjson => assert_eq!(String::from_utf8_lossy(&bytes).lines().count(), 10),
            Format::Json => {
                let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
                assert_eq!(doc["truncated"], true);
                assert_eq!(doc["rows"].as_array().map(Vec::len), Some(10));
            }
            Format::Arrow => {
                let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("ipc");
                assert_eq!(reader.schema().metadata()["sluice.truncated"], "true");
                let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
                assert_eq!(rows, 10);
            }
            Format::Parquet => {
                let b =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                        .expect("parquet");
                let kv = b.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
                assert!(kv.iter().any(|k| k.key == "sluice.truncated" && k.value.as_deref() == Some("true")));
                assert_eq!(b.metadata().file_metadata().num_rows(), 10);
            }
        }
    }
    // Exactly max_rows rows is not truncation.
    let mut r = req("SELECT g FROM generate_series(1, 10) g", Format::Json);
    r.max_rows = Some(10);
    let (bytes, summary) = export_bytes(&env.pool, r, Format::Json).await.expect("exact");
    assert!(!summary.truncated);
    let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(doc["truncated"], false);
    // The pooled session is fine afterwards.
    assert_eq!(csv(&env.pool, "SELECT 2 AS two").await.expect("next"), "two\n2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_ends_the_statement_on_the_server() {
    let env = env();
    let mut r = req("SELECT pg_sleep(30)", Format::Csv);
    r.timeout = Some(Duration::from_millis(300));
    let e = export_bytes(&env.pool, r, Format::Csv).await.expect_err("timeout");
    assert!(matches!(e, QueryError::Timeout { millis: 300 }), "{e:?}");
    assert!(e.to_string().contains("300 ms"), "{e}");
    assert_eq!(active(&env), 0);
    // A streaming statement that outlives its timeout mid-stream.
    let mut r = req("SELECT g, pg_sleep(0.01) FROM generate_series(1, 100000) g", Format::Ndjson);
    r.timeout = Some(Duration::from_millis(500));
    let e = export_bytes(&env.pool, r, Format::Ndjson).await.expect_err("timeout");
    assert!(matches!(e, QueryError::Timeout { .. }), "{e:?}");
    // The timeout was SET LOCAL: the next request has the session default again.
    assert_eq!(csv(&env.pool, "SHOW statement_timeout").await.expect("show"), "statement_timeout\n5min\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_starts_before_the_statement_ends_and_dropping_cancels_it() {
    let env = env();
    let session = env.pool.get().await.expect("session");
    let mut stream = run(session, req(ENDLESS, Format::Csv)).await.expect("run");
    let batch = stream.next_batch().await.expect("batch").expect("rows");
    assert!(!batch.is_empty());
    // Rows are in hand while the statement still runs on the server.
    assert_eq!(active(&env), 1);
    drop(batch);
    drop(stream);
    let took = stopped(&env).await;
    eprintln!("cancelled {took:?} after the drop");
    // The session went back to the pool in a usable state.
    assert_eq!(csv(&env.pool, "SELECT 3 AS three").await.expect("next"), "three\n3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_cancels_the_statement() {
    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let env = env();
    let session = env.pool.get().await.expect("session");
    let stream = run(session, req(ENDLESS, Format::Csv)).await.expect("run");
    let mut exporter = Format::Csv.exporter(ExportContext::default());
    let e = export::export(stream, exporter.as_mut(), Sink::Blocking(&mut Closed)).await.expect_err("broken pipe");
    assert!(e.is_broken_pipe(), "{e:?}");
    stopped(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_an_error_never_a_complete_result() {
    let env = env();
    for format in [Format::Csv, Format::Json, Format::Parquet] {
        let session = env.pool.get().await.expect("session");
        let pid = session.info().backend_pid;
        let mut stream = run(session, req(ENDLESS, format)).await.expect("run");
        stream.next_batch().await.expect("first batch").expect("rows");
        su(&env.cluster, &format!("SELECT pg_terminate_backend({pid});"));
        let e = loop {
            match stream.next_batch().await {
                Ok(Some(_)) => continue,
                Ok(None) => {
                    panic!("{format:?}: a terminated backend ended the stream as if complete")
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(e, QueryError::Lost { .. }), "{format:?}: {e:?}");
        stream.finish().await.expect("finish");
    }
    // Through the exporter: the JSON trailer is never written.
    let session = env.pool.get().await.expect("session");
    let pid = session.info().backend_pid;
    let stream = run(session, req(ENDLESS, Format::Json)).await.expect("run");
    let killer = {
        let port = env.cluster.port();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let _ = std::process::Command::new("psql")
                .args(["-X", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", DB, "-c"])
                .arg(format!("SELECT pg_terminate_backend({pid})"))
                .env("PGPASSWORD", sluice_testkit::SUPERUSER_PASSWORD)
                .output();
        })
    };
    let mut exporter = Format::Json.exporter(ExportContext::default());
    let mut out = Vec::new();
    let e = export::export(stream, exporter.as_mut(), Sink::Blocking(&mut out)).await.expect_err("lost");
    killer.join().expect("killer");
    assert!(matches!(e, QueryError::Lost { .. }), "{e:?}");
    assert!(serde_json::from_slice::<serde_json::Value>(&out).is_err(), "partial JSON must not parse");
    // The pool replaces the dead session.
    assert_eq!(csv(&env.pool, "SELECT 4 AS four").await.expect("next"), "four\n4\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_stream_is_an_error() {
    let env = env();
    let session = env.pool.get().await.expect("session");
    let mut stream = run(session, req(ENDLESS, Format::Csv)).await.expect("run");
    stream.next_batch().await.expect("first").expect("rows");
    env.cluster.stop().expect("stop");
    let e = loop {
        match stream.next_batch().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a stopped server ended the stream as if complete"),
            Err(e) => break e,
        }
    };
    assert!(matches!(e, QueryError::Lost { .. }), "{e:?}");
    drop(stream);
    env.cluster.restart().expect("restart");
    assert_eq!(csv(&env.pool, "SELECT 5 AS five").await.expect("after restart"), "five\n5\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_builtin_types_on_a_cold_session_do_not_deadlock() {
    // Regression: an enum column and more than ~100 rows on a fresh client.
    let env = env();
    let sql = "SELECT (ARRAY['sad','ok','happy']::mood[])[1 + g % 3] AS m, g FROM generate_series(1, 1000) g";
    for format in Format::ALL {
        let pool = pool_of(&env.cluster, 1);
        let r = QueryRequest { sql: sql.into(), flavor: format.flavor(), ..Default::default() };
        let (_, summary) = tokio::time::timeout(Duration::from_secs(30), export_bytes(&pool, r, format))
            .await
            .expect("no deadlock")
            .expect("query");
        assert_eq!(summary.rows, 1000, "{format:?}");
    }
}

/// With a row limit, Arrow's schema message (which says whether the result was truncated) can
/// only be written at the end; the batches wait in a spool that moves to a temporary file past
/// `SPOOL_IN_MEMORY`. A result several times that size comes back whole and in order, with the
/// mark, whether or not the limit cut it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_limited_arrow_result_larger_than_memory_spool_is_exact() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;

    let env = env();
    let sql = "SELECT g, repeat(chr(97 + g % 26), 300) AS pad FROM generate_series(1, 150000) g";
    for (limit, truncated, rows) in [(120_000, true, 120_000usize), (150_000, false, 150_000)] {
        let mut r = req(sql, Format::Arrow);
        r.max_rows = Some(limit);
        let (bytes, summary) = export_bytes(&env.pool, r, Format::Arrow).await.expect("arrow");
        assert!(bytes.len() > 2 * sluice_query::export::arrow::SPOOL_IN_MEMORY, "{} bytes", bytes.len());
        assert_eq!(summary.truncated, truncated);
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("ipc");
        assert_eq!(reader.schema().metadata()["sluice.truncated"], truncated.to_string());
        let mut next = 1;
        for batch in reader {
            let batch = batch.expect("batch");
            let g = batch.column(0).as_primitive::<Int32Type>();
            let pad = batch.column(1).as_string::<i32>();
            for i in 0..batch.num_rows() {
                assert_eq!(g.value(i), next);
                let want = char::from(97 + (next % 26) as u8).to_string().repeat(300);
                assert_eq!(pad.value(i), want);
                next += 1;
            }
        }
        assert_eq!(next as usize - 1, rows);
    }
}

/// A caller may give up before the first row arrives (a statement that sorts or sleeps first):
/// dropping the `run` future then cancels the statement, and the session goes back to the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_run_before_the_first_row_cancels_the_statement() {
    let env = env();
    let session = env.pool.get().await.expect("session");
    let waiting = tokio::spawn(run(session, req("SELECT pg_sleep(30) AS slept", Format::Csv)));
    let t = Instant::now();
    while active(&env) == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "the statement never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    waiting.abort();
    assert!(waiting.await.is_err_and(|e| e.is_cancelled()));
    let took = stopped(&env).await;
    eprintln!("stopped {took:?} after the drop");
    // The pool of one gets its session back, usable.
    assert_eq!(csv(&env.pool, "SELECT 5 AS five").await.expect("next"), "five\n5\n");
}

/// The transaction's `ROLLBACK` travels right behind the statement: once the last row is read,
/// the server has already ended the transaction, before the stream is finished; finishing then
/// only reads the answer, and the session is reused clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transaction_ends_on_the_server_with_the_last_row() {
    let env = env();
    let state = |pid: i32| su(&env.cluster, &format!("SELECT state FROM pg_stat_activity WHERE pid = {pid};"));
    let session = env.pool.get().await.expect("session");
    let pid = session.info().backend_pid;
    let mut stream = run(session, req("SELECT g FROM generate_series(1, 50000) g", Format::Csv)).await.expect("run");
    let mut rows = 0;
    while let Some(batch) = stream.next_batch().await.expect("batch") {
        rows += batch.len();
    }
    assert_eq!(rows, 50_000);
    // Not finished yet, and the server is out of the transaction (the bound only guards against
    // hanging while it reads the queued ROLLBACK).
    let t = Instant::now();
    while state(pid) != "idle" {
        assert!(t.elapsed() < Duration::from_secs(20), "still {:?} with the stream not finished", state(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stream.finish().await.expect("finish");
    // The session went back to the pool and serves the next statement.
    let (bytes, summary) =
        export_bytes(&env.pool, req("SELECT 7 AS seven", Format::Csv), Format::Csv).await.expect("again");
    assert_eq!(String::from_utf8_lossy(&bytes), "seven\n7\n");
    assert_eq!(summary.rows, 1);
    let pids = su(&env.cluster, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'analyst';");
    assert_eq!(pids.trim(), "1", "one server connection, reused");
    assert_eq!(state(pid), "idle");
}
