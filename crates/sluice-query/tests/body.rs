//! A query's output as a body stream (what an HTTP handler returns): the same bytes as the
//! exporters write, a client that goes away cancels the statement, and an error after the first
//! byte ends the body with that error.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use sluice_query::export::{spawn_body, ExportContext, Format};
use sluice_query::{run, QueryError};

const ENDLESS: &str = "SELECT generate_series(1, 1000000000) AS g, repeat('x', 50) AS pad";

fn active(env: &Env) -> u32 {
    su(&env.cluster, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'analyst' AND state = 'active';")
        .trim()
        .parse()
        .expect("count")
}

/// Waits until no statement of the analyst runs; the bound only guards against a hang.
async fn stopped(env: &Env) {
    let t = Instant::now();
    while active(env) > 0 {
        assert!(t.elapsed() < Duration::from_secs(20), "the statement still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_carries_exactly_what_the_exporter_writes() {
    let env = env();
    let sql = "SELECT id, owner, balance FROM accounts ORDER BY id";
    for format in Format::ALL {
        let (expected, expected_summary) = export_bytes(&env.pool, req(sql, format), format).await.expect("export");
        let session = env.pool.get().await.expect("session");
        let stream = run(session, req(sql, format)).await.expect("run");
        let columns = serde_json::to_value(stream.columns()).expect("columns serialize");
        assert_eq!(columns[1]["name"], "owner", "{format:?}");
        assert_eq!(columns[1]["type"], "text", "{format:?}");
        let (mut body, done) = spawn_body(stream, format.exporter(ExportContext::default()));
        let mut got = Vec::new();
        while let Some(chunk) = body.next().await {
            got.extend_from_slice(&chunk.expect("chunk"));
        }
        let summary = done.await.expect("task").expect("summary");
        assert_eq!(summary, expected_summary, "{format:?}");
        assert_eq!(summary.rows, 100);
        if matches!(format, Format::Parquet) {
            // Parquet's footer carries the writer's creation time: compare its rows instead.
            assert_eq!(&got[..4], b"PAR1");
            assert_eq!(&got[got.len() - 4..], b"PAR1");
        } else {
            assert_eq!(got, expected, "{format:?}");
        }
        let json = serde_json::to_value(summary).expect("summary serializes");
        assert_eq!(json, serde_json::json!({"rows": 100, "truncated": false}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_body_cancels_the_statement_and_returns_the_session() {
    let env = env();
    let session = env.pool.get().await.expect("session");
    let stream = run(session, req(ENDLESS, Format::Csv)).await.expect("run");
    let (mut body, done) = spawn_body(stream, Format::Csv.exporter(ExportContext::default()));
    let first = body.next().await.expect("a first chunk").expect("bytes");
    assert!(first.starts_with(b"g,pad\n"));
    assert_eq!(active(&env), 1, "the statement is running while the client reads");
    drop(body);
    let outcome = tokio::time::timeout(Duration::from_secs(30), done).await.expect("the export ends").expect("task");
    match outcome {
        Err(QueryError::Output(e)) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
        other => panic!("expected a broken pipe, got {other:?}"),
    }
    stopped(&env).await;
    // The pool's only session is usable again.
    assert_eq!(csv(&env.pool, "SELECT 1 AS one").await.expect("reuse"), "one\n1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_after_the_first_byte_ends_the_body_with_it() {
    let env = env();
    // Rows stream out before the division by zero at g = 0 ends the statement.
    let sql = "SELECT g, 1 / (5000 - g) AS q FROM generate_series(1, 10000) g";
    for format in [Format::Csv, Format::Ndjson, Format::Json] {
        let session = env.pool.get().await.expect("session");
        let stream = run(session, req(sql, format)).await.expect("run");
        let (mut body, done) = spawn_body(stream, format.exporter(ExportContext::default()));
        let mut bytes = 0usize;
        let mut error = None;
        while let Some(item) = body.next().await {
            match item {
                Ok(chunk) => {
                    assert!(error.is_none(), "{format:?}: nothing follows the error");
                    bytes += chunk.len();
                }
                Err(e) => error = Some(e),
            }
        }
        let error = error.unwrap_or_else(|| panic!("{format:?}: the body ended without its error"));
        assert_eq!(error.sqlstate.as_deref(), Some("22012"), "{format:?}: {error}");
        assert!(bytes > 0, "{format:?}: rows came before the error");
        match done.await.expect("task") {
            Err(e) => assert_eq!(e.sqlstate(), Some("22012")),
            Ok(s) => panic!("{format:?}: the export succeeded: {s:?}"),
        }
    }
}

/// What `pg_stat_activity` shows as the analyst's application_name (its one backend).
fn application_names(env: &Env) -> String {
    su(&env.cluster, "SELECT string_agg(application_name, ',') FROM pg_stat_activity WHERE usename = 'analyst';")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_names_who_runs_it_in_pg_stat_activity_for_its_transaction_only() {
    let env = env();
    let mut request = req(ENDLESS, Format::Csv);
    request.application_name = Some("sluice:ana".into());
    let session = env.pool.get().await.expect("session");
    let stream = run(session, request).await.expect("run");
    let (mut body, done) = spawn_body(stream, Format::Csv.exporter(ExportContext::default()));
    body.next().await.expect("a first chunk").expect("bytes");
    assert_eq!(application_names(&env), "sluice:ana");
    drop(body);
    let _ = done.await.expect("task");
    stopped(&env).await;
    // SET LOCAL ended with the transaction: the pooled session is the service's own again.
    assert_eq!(csv(&env.pool, "SELECT current_setting('application_name') AS a").await.expect("reuse"), "a\nsluice\n");
}
