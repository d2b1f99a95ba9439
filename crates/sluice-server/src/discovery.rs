//! Discovery of one source: a run recorded in the store, the catalog read through the source's
//! pool, the snapshot stored when it differs from the latest. The refresh endpoint and the demo
//! call [`refresh_source`]; nothing else writes discovery runs.

use axum::http::StatusCode;
use sluice_catalog::DiscoverOptions;
use sluice_core::SourceId;
use sluice_store::{RunId, RunOutcome, SnapshotMeta};

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
    match discover(state, id).await {
        Ok(json) => {
            let stored = state.store().put_snapshot(id, &json).await;
            let (outcome, message) = match &stored {
                Ok(_) => (RunOutcome::Ok, None),
                Err(e) => (RunOutcome::Failed, Some(e.to_string())),
            };
            state.metrics().discovery(outcome);
            state.store().finish_discovery_run(run, outcome, None, message.as_deref()).await?;
            Ok(Refreshed { run, snapshot: stored? })
        }
        Err((stage, e)) => {
            state.metrics().discovery(RunOutcome::Failed);
            state.store().finish_discovery_run(run, RunOutcome::Failed, Some(stage), Some(&e.message)).await?;
            Err(e)
        }
    }
}

async fn discover(state: &AppState, id: &SourceId) -> Result<Vec<u8>, (&'static str, ApiError)> {
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
    serde_json::to_vec(&catalog).map_err(|e| ("discover", ApiError::internal(e)))
}
