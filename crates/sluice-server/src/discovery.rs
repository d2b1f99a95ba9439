//! Discovery of one source: the catalog read through the source's pool, the snapshot stored when
//! it differs from the latest. The scheduler ([`crate::scheduler`]) runs it for claimed sources
//! and records each run through its lease; [`refresh_source`] runs it at once, outside the
//! schedule, with a run record of its own (the demo uses it).

use axum::http::StatusCode;
use sluice_catalog::DiscoverOptions;
use sluice_core::SourceId;
use sluice_store::{RunId, RunOutcome, RunResult, SnapshotMeta};

use crate::{ApiError, AppState};

/// A finished, successful run: its id and the new snapshot (`None` when the catalog was
/// identical to the latest).
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub run: RunId,
    pub snapshot: Option<SnapshotMeta>,
}

/// Runs discovery of `id` now and records the run, whatever its outcome. A failed run is stored
/// with the stage that failed (`config`, the connection's stage, or `discover`) and its message.
pub async fn refresh_source(state: &AppState, id: &SourceId) -> Result<Refreshed, ApiError> {
    state.store().source(id).await?;
    let run = state.store().start_discovery_run(id).await?;
    match discover_and_store(state, id).await {
        Ok(found) => {
            state.metrics().discovery(RunOutcome::Ok);
            state.store().finish_discovery_run(run, RunOutcome::Ok, None, None).await?;
            Ok(Refreshed { run, snapshot: found.snapshot })
        }
        Err((stage, e)) => {
            state.metrics().discovery(RunOutcome::Failed);
            state.store().finish_discovery_run(run, RunOutcome::Failed, Some(stage), Some(&e.message)).await?;
            Err(e)
        }
    }
}

/// What one discovery found.
pub(crate) struct Found {
    /// The new snapshot, `None` when the catalog was identical to the latest.
    pub snapshot: Option<SnapshotMeta>,
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

/// Discovers the source and stores the snapshot unless unchanged; a failure names its stage
/// (`config`, the connection's stage as the doctor names it, `discover`, or `store`).
pub(crate) async fn discover_and_store(state: &AppState, id: &SourceId) -> Result<Found, (&'static str, ApiError)> {
    let (json, relations) = discover(state, id).await?;
    let snapshot = state.store().put_snapshot(id, &json).await.map_err(|e| ("store", ApiError::from(e)))?;
    Ok(Found { snapshot, relations })
}

async fn discover(state: &AppState, id: &SourceId) -> Result<(Vec<u8>, i64), (&'static str, ApiError)> {
    let pool = state.pool(id).await.map_err(|e| ("config", e))?;
    let mut session = pool.get().await.map_err(|e| {
        let stage = e.stage().id();
        (stage, ApiError::from(e))
    })?;
    let catalog = sluice_catalog::discover(&mut session, &DiscoverOptions::default()).await.map_err(|e| {
        use sluice_core::UserFacing;
        ("discover", ApiError::new(StatusCode::BAD_GATEWAY, "discovery_failed", e.message()).with_hint(e.hint()))
    })?;
    drop(session);
    let relations = catalog.schemas.iter().map(|s| s.relations.len()).sum::<usize>();
    let json = serde_json::to_vec(&catalog).map_err(|e| ("discover", ApiError::internal(e)))?;
    drop(catalog);
    Ok((json, i64::try_from(relations).unwrap_or(i64::MAX)))
}
