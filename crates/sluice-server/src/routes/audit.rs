//! `GET /audit`: the log, newest first, filtered by user, source, kind and time, paged by cursor;
//! and `GET /me/queries`: the caller's own queries from it (the SQL workspace's history), which
//! needs no administrator.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sluice_core::SourceId;
use sluice_store::{AuditFilter, AuditId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::history::query_params;
use crate::auth::{Authenticated, RequireAdmin};
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(my_queries))
}

/// The filters; every one is optional, and a parameter not listed here is refused.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// A login (`user:<login>` in the log) or an actor as the log spells it (`token:<id>`).
    user: Option<String>,
    /// A source's id.
    source: Option<String>,
    /// An entry kind: `query`, `source.create`, `sign_in.failed`, …
    kind: Option<String>,
    /// Milliseconds since the epoch: entries at or after.
    from: Option<i64>,
    /// Milliseconds since the epoch: entries before.
    to: Option<i64>,
    /// The `next` of the previous page.
    cursor: Option<i64>,
    /// Entries per page: 1 to 1000, 100 when left out.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The audit log, newest first, filtered and paged by cursor.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "list_audit",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of entries.", body = crate::openapi::AuditPageDoc),
        (status = 400, description = "A filter is not valid, or unknown; `field` names it.", body = crate::error::ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    RequireAdmin(_): RequireAdmin,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q: AuditQuery = query_params(raw.as_deref(), &["user", "source", "kind", "from", "to", "cursor", "limit"])?;
    let source = match &q.source {
        Some(s) => Some(s.parse::<SourceId>().map_err(|e| ApiError::invalid("source", e.to_string()))?),
        None => None,
    };
    let filter = AuditFilter {
        actor: q.user.map(|u| if u.contains(':') { u } else { format!("user:{u}") }),
        source,
        kind: q.kind,
        from: q.from,
        until: q.to,
        before: q.cursor.map(AuditId),
        limit: q.limit,
    };
    Ok(Json(state.store().audit(&filter).await?).into_response())
}

/// Which of the caller's queries to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MyQueriesQuery {
    /// Only the queries run against this source.
    source: Option<String>,
    /// The `next` of the previous page.
    cursor: Option<i64>,
    /// Queries per page: 1 to 1000, 50 when left out.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The caller's own queries, newest first: those its session's person (or its token) ran, as the
/// audit log recorded them.
#[utoipa::path(
    get,
    path = "/me/queries",
    operation_id = "my_queries",
    tag = "query",
    security(("bearer" = [])),
    params(MyQueriesQuery),
    responses(
        (status = 200, description = "One page of the caller's queries.", body = crate::openapi::QueryHistoryDoc),
        (status = 400, description = "A parameter is not valid, or unknown; `field` names it.", body = crate::error::ErrorBody),
        (status = 404, description = "`source` is not the one a scoped token may use.", body = crate::error::ErrorBody),
    )
)]
async fn my_queries(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q: MyQueriesQuery = query_params(raw.as_deref(), &["source", "cursor", "limit"])?;
    let source = match &q.source {
        Some(s) => {
            let id = s.parse::<SourceId>().map_err(|e| ApiError::invalid("source", e.to_string()))?;
            who.may_use(&id)?;
            Some(id)
        }
        // A token scoped to one source ran queries only there.
        None => who.source.clone(),
    };
    let filter = AuditFilter {
        actor: Some(who.actor.clone()),
        source,
        kind: Some("query".into()),
        before: q.cursor.map(AuditId),
        limit: Some(q.limit.unwrap_or(50)),
        ..AuditFilter::default()
    };
    let page = state.store().audit(&filter).await?;
    let queries: Vec<serde_json::Value> = page
        .entries
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": e.at,
                "source": e.source,
                "sql": e.sql,
                "finished_at": e.finished_at,
                "duration_ms": e.duration_ms,
                "rows": e.rows,
                "bytes": e.bytes,
                "outcome": e.outcome,
                "error": e.error,
            })
        })
        .collect();
    Ok(Json(json!({"queries": queries, "next": page.next})).into_response())
}
