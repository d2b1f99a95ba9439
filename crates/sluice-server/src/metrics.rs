//! `GET /metrics`: Prometheus text, every metric named `sluice_…`. Counters live in the
//! process (per instance); pool figures are read from the pools when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sluice_store::{QueryOutcome, RunOutcome};

use crate::AppState;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Responses by status class (1xx … 5xx).
    responses: [AtomicU64; 5],
    /// Queries by outcome: ok, truncated, failed, cancelled.
    queries: [AtomicU64; 4],
    rows: AtomicU64,
    bytes: AtomicU64,
    query_millis: AtomicU64,
    discovery: [AtomicU64; 3],
}

const QUERY_OUTCOMES: [&str; 4] = ["ok", "truncated", "failed", "cancelled"];
const RUN_OUTCOMES: [&str; 3] = ["ok", "failed", "cancelled"];

impl Metrics {
    pub(crate) fn response(&self, status: u16) {
        if let Some(c) = self.responses.get(usize::from(status / 100).saturating_sub(1)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn query(&self, outcome: QueryOutcome, rows: u64, bytes: u64, millis: u64) {
        let i = match outcome {
            QueryOutcome::Ok => 0,
            QueryOutcome::Truncated => 1,
            QueryOutcome::Failed => 2,
            QueryOutcome::Cancelled => 3,
        };
        self.queries[i].fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.query_millis.fetch_add(millis, Ordering::Relaxed);
    }

    pub(crate) fn discovery(&self, outcome: RunOutcome) {
        let i = match outcome {
            RunOutcome::Ok => 0,
            RunOutcome::Failed => 1,
            RunOutcome::Cancelled => 2,
        };
        self.discovery[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// The service's metrics in Prometheus text (per instance).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "service",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.", content_type = "text/plain", body = String))
)]
pub(crate) async fn render(State(state): State<AppState>) -> Response {
    let m = state.metrics();
    let mut out = String::new();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    out.push_str("# HELP sluice_http_responses_total HTTP responses by status class.\n# TYPE sluice_http_responses_total counter\n");
    for (i, c) in m.responses.iter().enumerate() {
        let _ = writeln!(out, "sluice_http_responses_total{{class=\"{}xx\"}} {}", i + 1, get(c));
    }
    out.push_str("# HELP sluice_queries_total Queries by outcome.\n# TYPE sluice_queries_total counter\n");
    for (name, c) in QUERY_OUTCOMES.iter().zip(&m.queries) {
        let _ = writeln!(out, "sluice_queries_total{{outcome=\"{name}\"}} {}", get(c));
    }
    let _ = writeln!(
        out,
        "# HELP sluice_query_rows_total Rows sent.\n# TYPE sluice_query_rows_total counter\nsluice_query_rows_total {}",
        get(&m.rows)
    );
    let _ = writeln!(out, "# HELP sluice_query_bytes_total Bytes of query output sent.\n# TYPE sluice_query_bytes_total counter\nsluice_query_bytes_total {}", get(&m.bytes));
    let _ = writeln!(
        out,
        "# HELP sluice_query_duration_seconds_total Time spent in queries.\n# TYPE sluice_query_duration_seconds_total counter\nsluice_query_duration_seconds_total {:.3}",
        get(&m.query_millis) as f64 / 1000.0
    );
    out.push_str("# HELP sluice_discovery_runs_total Catalog discovery runs by outcome.\n# TYPE sluice_discovery_runs_total counter\n");
    for (name, c) in RUN_OUTCOMES.iter().zip(&m.discovery) {
        let _ = writeln!(out, "sluice_discovery_runs_total{{outcome=\"{name}\"}} {}", get(c));
    }
    out.push_str("# HELP sluice_pool_sessions Sessions of a source's pool: in use, waiting for one, and the cap.\n# TYPE sluice_pool_sessions gauge\n");
    for (source, pool) in state.pools_snapshot().await {
        for (kind, n) in [("in_use", pool.in_use()), ("waiting", pool.waiting()), ("max", pool.max_size())] {
            let _ = writeln!(out, "sluice_pool_sessions{{source=\"{source}\",kind=\"{kind}\"}} {n}");
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
