//! A source's alerts, decided after each discovery run and kept in the store.
//!
//! - `lost_access`: a relation the read-only user could SELECT and no longer can (a `REVOKE`, or
//!   the ELT trap: a table recreated by a role whose default privileges grant nothing). Details
//!   name the relation, its owner, the `GRANT` that restores it and the `ALTER DEFAULT
//!   PRIVILEGES` that keeps its next recreation readable, both written by `sluice-doctor`.
//! - `lost_usage`: a schema the user lost `USAGE` on, with the relations that became unreachable
//!   and the `GRANT USAGE` that restores them (their `lost_access` is this alert's).
//! - `discovery_failing`: [`FAILING_AFTER`] runs in a row failed; details carry the doctor's
//!   stage and message of the failure that raised it.
//!
//! Access lost is a *change* between snapshots, but the alert is about a *state*: every
//! successful run raises from the source's latest recorded change (a no-op for what is open
//! already, so a run that failed to record an alert is made good by the next) and clears what the
//! catalog just discovered shows resolved — access back, usage back, or the relation or schema
//! dropped. Runs that change nothing leave the open alerts open. Each raise and clear is audited
//! and queued for the webhook in the store's transaction.
//!
//! Must not: write SQL text of its own (the doctor's [`sluice_doctor::grants`] does), or raise
//! from anything but the store's recorded changes and the catalog just discovered.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::json;
use sluice_catalog::{Catalog, CatalogDiff, Relation};
use sluice_core::quote::{ident, qualified};
use sluice_core::SourceId;
use sluice_doctor::grants;
use sluice_store::{Alert, AlertKind, StoreError};
use utoipa::ToSchema;

use crate::AppState;

/// Failed runs in a row that raise `discovery_failing`.
pub const FAILING_AFTER: u32 = 3;

/// The subject of a source's `discovery_failing` alert.
const DISCOVERY: &str = "discovery";

/// An alert as a source's view shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Alert)]
pub struct AlertView {
    pub id: i64,
    /// `lost_access`, `lost_usage` or `discovery_failing`.
    pub kind: &'static str,
    /// What it is about: a relation's or a schema's quoted name, or `discovery`.
    pub subject: String,
    /// `lost_access`: `schema`, `name`, `kind`, `owner`, `grant` (the statement that restores
    /// access) and `default_privileges` (what keeps the owner's next recreation readable);
    /// `lost_usage`: `schema`, `relations` and `grant`; `discovery_failing`: `stage`, `message`
    /// and `failures`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub raised_at: i64,
    /// Null while it is open.
    pub cleared_at: Option<i64>,
}

impl AlertView {
    pub fn of(a: &Alert) -> AlertView {
        AlertView {
            id: a.id.0,
            kind: a.kind.as_str(),
            subject: a.subject.clone(),
            details: a.details.clone(),
            raised_at: a.raised_at,
            cleared_at: a.cleared_at,
        }
    }
}

/// After a successful run: raises what the latest change lost and is still lost, clears what is
/// resolved, and clears `discovery_failing`.
pub(crate) async fn after_success(state: &AppState, id: &SourceId, catalog: &Catalog) -> Result<(), StoreError> {
    let store = state.store();
    let latest = store.catalog_changes(id, None, Some(1)).await?.changes.into_iter().next();
    if let Some(change) = latest {
        match serde_json::from_value::<CatalogDiff>(change.diff) {
            Ok(diff) => raise_lost(state, id, catalog, &diff).await?,
            Err(e) => tracing::warn!(source = %id, error = %e, "a stored catalog change does not read back"),
        }
    }
    let relations = relations(catalog);
    for alert in store.open_alerts(Some(id)).await? {
        if resolved(&alert, catalog, &relations) {
            store.clear_alert(id, alert.id).await?;
        }
    }
    Ok(())
}

/// After a failed run, the `failures`th in a row: raises `discovery_failing` from the
/// [`FAILING_AFTER`]th on.
pub(crate) async fn after_failure(
    state: &AppState,
    id: &SourceId,
    failures: u32,
    stage: &str,
    message: &str,
) -> Result<(), StoreError> {
    if failures < FAILING_AFTER {
        return Ok(());
    }
    let details = json!({ "stage": stage, "message": message, "failures": failures });
    state.store().raise_alert(id, AlertKind::DiscoveryFailing, DISCOVERY, &details).await?;
    Ok(())
}

type Relations<'a> = HashMap<(&'a str, &'a str), &'a Relation>;

/// The catalog's relations (partitions included) by schema and name.
fn relations(catalog: &Catalog) -> Relations<'_> {
    catalog.relations().map(|(s, r)| ((s, r.name.as_str()), r)).collect()
}

async fn raise_lost(state: &AppState, id: &SourceId, catalog: &Catalog, diff: &CatalogDiff) -> Result<(), StoreError> {
    let store = state.store();
    let user = catalog.user.as_str();
    let unusable: BTreeSet<&str> = catalog.schemas.iter().filter(|s| !s.usable).map(|s| s.name.as_str()).collect();
    for schema in diff.lost_usage.iter().filter(|s| unusable.contains(s.as_str())) {
        let relations: Vec<&str> =
            diff.lost_access.iter().filter(|r| &r.schema == schema).map(|r| r.name.as_str()).collect();
        let details = json!({
            "schema": schema,
            "relations": relations,
            "grant": grants::grant_usage(schema, user),
        });
        store.raise_alert(id, AlertKind::LostUsage, &ident(schema), &details).await?;
    }
    let relations = relations(catalog);
    for lost in &diff.lost_access {
        if unusable.contains(lost.schema.as_str()) {
            continue; // its schema's lost_usage alert covers it
        }
        let Some(now) = relations.get(&(lost.schema.as_str(), lost.name.as_str())) else { continue };
        if now.selectable {
            continue;
        }
        let mut details = json!({
            "schema": lost.schema,
            "name": lost.name,
            "kind": lost.kind,
            "owner": now.owner,
            "grant": grants::grant_select(&lost.schema, &lost.name, user),
        });
        if now.owner != user {
            details["default_privileges"] = grants::default_select(&now.owner, &lost.schema, user).into();
        }
        store.raise_alert(id, AlertKind::LostAccess, &qualified(&lost.schema, &lost.name), &details).await?;
    }
    Ok(())
}

/// Whether the catalog just discovered shows the alert's cause gone.
fn resolved(alert: &Alert, catalog: &Catalog, relations: &Relations<'_>) -> bool {
    let text = |key: &str| alert.details.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let schema = text("schema");
    let usable = catalog.schemas.iter().find(|s| s.name == schema).map(|s| s.usable);
    match alert.kind {
        AlertKind::DiscoveryFailing => true,
        // Usage back, or the schema dropped.
        AlertKind::LostUsage => usable != Some(false),
        AlertKind::LostAccess => match usable {
            None => true,
            // Hidden behind a schema without USAGE: still unreadable.
            Some(false) => false,
            Some(true) => relations.get(&(schema.as_str(), text("name").as_str())).is_none_or(|r| r.selectable),
        },
    }
}
