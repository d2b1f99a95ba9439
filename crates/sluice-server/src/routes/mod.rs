//! One module per resource, each exporting its routes; merged under `/api/v1`.

mod account;
mod audit;
pub(crate) mod discoveries;
mod history;
mod query;
mod setup_sql;
pub(crate) mod sources;
mod ssh;
mod webhook;

use axum::http::StatusCode;
use sluice_core::SourceId;
use sluice_store::NewAuditEntry;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::{ApiError, AppState};

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crate::openapi::serve_document))
        .merge(account::routes())
        .merge(sources::routes())
        .merge(discoveries::routes())
        .merge(ssh::routes())
        .merge(query::routes())
        .merge(audit::routes())
        .merge(setup_sql::routes())
        .merge(history::routes())
        .merge(webhook::routes())
        .fallback(not_found)
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// A source id from the path: malformed ids are simply not found.
fn source_id(text: &str) -> Result<SourceId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("source"))
}

/// Appends an admin action to the audit log.
async fn audit(
    state: &AppState,
    who: &Principal,
    kind: &str,
    source: Option<&SourceId>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    audit_as(state, &who.actor, kind, source, detail).await
}

async fn audit_as(
    state: &AppState,
    actor: &str,
    kind: &str,
    source: Option<&SourceId>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let entry = NewAuditEntry { actor: actor.to_string(), kind: kind.to_string(), source: source.cloned(), detail };
    state.store().append_audit(&entry).await?;
    Ok(())
}
