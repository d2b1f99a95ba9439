//! Discovery of one source: the catalog read through the source's pool, the snapshot stored when
//! it differs from the latest, and then what changed from the snapshot before it (the catalog
//! diff) stored in the source's change history. The scheduler ([`crate::scheduler`]) runs it for claimed sources
//! and records each run through its lease; [`refresh_source`] runs it at once, outside the
//! schedule, with a run record of its own (the demo uses it).

use std::sync::Arc;

use axum::http::StatusCode;
use sluice_catalog::{Catalog, CatalogDiff, DiscoverOptions, GetSecondSession, SecondSession};
use sluice_core::SourceId;
use sluice_store::{
    CatalogChange, CompressedSnapshot, RunId, RunOutcome, RunResult, SnapshotMeta, SnapshotWriter, StoreError,
};

use crate::{ApiError, AppState};

/// A finished, successful run: its id, the new snapshot (`None` when the catalog was identical
/// to the latest) and, when there was a snapshot before it, what changed.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub run: RunId,
    pub snapshot: Option<SnapshotMeta>,
    pub change: Option<(CatalogChange, CatalogDiff)>,
}

/// Runs discovery of `id` now and records the run, whatever its outcome. A failed run is stored
/// with the stage that failed (`config`, the connection's stage, or `discover`) and its message,
/// and counts in the source's failures in a row as a scheduled run's does (a success starts them
/// again): from the [`crate::alerts::FAILING_AFTER`]th the source shows `discovery_failing`.
pub async fn refresh_source(state: &AppState, id: &SourceId) -> Result<Refreshed, ApiError> {
    state.store().source(id).await?;
    let run = state.store().start_discovery_run(id).await?;
    match discover_and_store(state, id).await {
        Ok(found) => {
            state.metrics().discovery(RunOutcome::Ok);
            state.store().finish_discovery_run(run, RunOutcome::Ok, None, None).await?;
            if let Err(e) = state.store().count_discovery_outcome(id, RunOutcome::Ok).await {
                tracing::warn!(source = %id, error = %e, "failed to count a discovery's success");
            }
            Ok(Refreshed { run, snapshot: found.snapshot, change: found.change })
        }
        Err((stage, e)) => {
            state.metrics().discovery(RunOutcome::Failed);
            state.store().finish_discovery_run(run, RunOutcome::Failed, Some(stage), Some(&e.message)).await?;
            // The discovery's error is the answer; one that follows it is only logged.
            let raised = match state.store().count_discovery_outcome(id, RunOutcome::Failed).await {
                Ok(failures) => crate::alerts::after_failure(state, id, failures, stage, &e.message).await,
                Err(e) => Err(e),
            };
            if let Err(raised) = raised {
                tracing::warn!(source = %id, error = %raised, "failed to count a discovery's failure");
            }
            Err(e)
        }
    }
}

/// What one discovery found.
pub(crate) struct Found {
    /// The new snapshot, `None` when the catalog was identical to the latest.
    pub snapshot: Option<SnapshotMeta>,
    /// What changed from the snapshot before the new one, when there was one.
    pub change: Option<(CatalogChange, CatalogDiff)>,
    pub relations: i64,
}

impl Found {
    pub(crate) fn result(&self) -> RunResult {
        RunResult {
            outcome: RunOutcome::Ok,
            stage: None,
            message: None,
            changed: Some(self.snapshot.is_some()),
            relations: Some(self.relations),
        }
    }
}

/// Discovers the source, stores the snapshot unless unchanged, and updates the source's alerts
/// ([`crate::alerts`]); a failure names its stage
/// (`config`, the connection's stage as the doctor names it, `discover`, or `store`).
pub(crate) async fn discover_and_store(state: &AppState, id: &SourceId) -> Result<Found, (&'static str, ApiError)> {
    let (catalog, snapshot, relations) = discover(state, id).await?;
    let (snapshot, change) =
        store_snapshot(state, id, catalog.clone(), snapshot).await.map_err(|e| ("store", ApiError::from(e)))?;
    // An alert not recorded now is by the next run, which raises from the same stored change.
    if let Err(e) = crate::alerts::after_success(state, id, &catalog).await {
        tracing::warn!(source = %id, error = %e, "failed to update the source's alerts");
    }
    Ok(Found { snapshot, change, relations })
}

/// How long the change history is kept unless configured: 90 days.
pub const DEFAULT_HISTORY_KEEP: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

/// Applies the configured retention ([`crate::Config::history_keep`]) to every source's history
/// now: changes older than it go, with the snapshots no longer in force then and old finished
/// runs; each source's latest snapshot and run stay.
pub async fn prune_history(state: &AppState) -> Result<sluice_store::Pruned, ApiError> {
    Ok(state.store().prune_history(crate::form::now_ms(), state.config().history_keep).await?)
}

type Stored = (Option<SnapshotMeta>, Option<(CatalogChange, CatalogDiff)>);

/// Stores the snapshot when it is new and, when a snapshot came before it, the diff from that
/// one to this in the change history. An unchanged catalog is dropped at once. The previous
/// snapshot is read through a decompressing reader one schema at a time: neither its JSON nor
/// its catalog is ever held whole.
async fn store_snapshot(
    state: &AppState,
    id: &SourceId,
    catalog: Arc<Catalog>,
    snapshot: CompressedSnapshot,
) -> Result<Stored, StoreError> {
    let Some(new) = state.store().put_compressed_snapshot(id, &snapshot).await? else { return Ok((None, None)) };
    drop(snapshot);
    let Some((previous, old)) = state.store().previous_snapshot_compressed(id, new.id).await? else {
        return Ok((Some(new), None));
    };
    let name = id.to_string();
    let diff = tokio::task::spawn_blocking(move || {
        sluice_catalog::diff_from_reader(old.reader()?, &name, &catalog).map_err(|e| StoreError::Backend {
            message: format!("read the previous snapshot: {}", sluice_core::UserFacing::message(&e)),
        })
    })
    .await
    .map_err(|e| StoreError::Backend { message: format!("compare with the previous snapshot: {e}") })??;
    let (diff_json, counts) = diff_json(&diff)?;
    let change = state.store().add_catalog_change(id, previous.id, new.id, &diff_json, &counts).await?;
    Ok((Some(new), Some((change, diff))))
}

/// The diff's JSON and how many entries of each kind it holds (kinds with none left out).
fn diff_json(diff: &CatalogDiff) -> Result<(serde_json::Value, serde_json::Value), StoreError> {
    let value = serde_json::to_value(diff)
        .map_err(|e| StoreError::Backend { message: format!("serialize a catalog diff: {e}") })?;
    let counts: serde_json::Map<String, serde_json::Value> = value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(kind, list)| list.as_array().filter(|l| !l.is_empty()).map(|l| (kind.clone(), l.len().into())))
        .collect();
    Ok((value, serde_json::Value::Object(counts)))
}

/// Discovers the source and writes its snapshot, compressed as the JSON is produced (on a
/// blocking thread: a large catalog takes a moment to serialize).
async fn discover(
    state: &AppState,
    id: &SourceId,
) -> Result<(Arc<Catalog>, CompressedSnapshot, i64), (&'static str, ApiError)> {
    let pool = state.pool(id).await.map_err(|e| ("config", e))?;
    let mut session = pool.get().await.map_err(|e| {
        let stage = e.stage().id();
        (stage, ApiError::from(e))
    })?;
    // A large catalog is read over a second session too, if the pool has one free now: a
    // discovery never waits behind queries for it.
    let second_pool = pool.clone();
    let second: GetSecondSession = Box::pin(async move {
        match second_pool.try_get().await {
            Ok(s) => s.map(SecondSession::Pooled),
            Err(e) => {
                tracing::debug!("no second session for the discovery: {e}");
                None
            }
        }
    });
    let discovered = sluice_catalog::discover_sharing(&mut session, &DiscoverOptions::default(), second).await;
    let catalog = discovered.map_err(|e| {
        use sluice_core::UserFacing;
        ("discover", ApiError::new(StatusCode::BAD_GATEWAY, "discovery_failed", e.message()).with_hint(e.hint()))
    })?;
    drop(session);
    let relations = catalog.schemas.iter().map(|s| s.relations.len()).sum::<usize>();
    let (catalog, snapshot) = tokio::task::spawn_blocking(move || {
        let snapshot = write_snapshot(&catalog);
        (catalog, snapshot)
    })
    .await
    .map_err(|e| ("store", ApiError::internal(e)))?;
    let snapshot = snapshot.map_err(|e| ("store", ApiError::from(e)))?;
    Ok((Arc::new(catalog), snapshot, i64::try_from(relations).unwrap_or(i64::MAX)))
}

/// The catalog's JSON, compressed, with a content hash that leaves out `discovered_at`: two
/// discoveries of an unchanged database store one snapshot.
fn write_snapshot(catalog: &Catalog) -> Result<CompressedSnapshot, StoreError> {
    let mut writer = SnapshotWriter::new()?;
    {
        let (json, content) = writer.parts();
        catalog
            .write_json_and_content(json, content)
            .map_err(|e| StoreError::Backend { message: format!("write a snapshot: {e}") })?;
    }
    writer.finish()
}
