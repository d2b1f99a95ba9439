//! A source's discovery runs: one run (what `POST …/refresh` answered with), the latest runs,
//! and the schedule as a source's view shows it.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use sluice_store::{DiscoveryRun, DiscoverySchedule, RunId, RunState};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::source_id;
use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// How many runs the listing shows.
const LISTED_RUNS: u32 = 50;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(show))
}

/// A discovery run.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DiscoveryRun)]
pub(crate) struct RunView {
    pub id: i64,
    /// `queued`, `running`, or how it ended: `ok`, `failed`, `cancelled`.
    pub state: &'static str,
    /// `schedule` (its interval came, or the source was saved) or `refresh` (asked for).
    pub reason: Option<&'static str>,
    /// When it started; for a queued run, when it was asked for.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Where a failed run stopped: the doctor's stage (`dns`, `tcp`, `tls`, `auth`, …),
    /// `config`, `discover`, `timeout`, `store`, or `scheduler` (its instance stopped).
    pub stage: Option<String>,
    pub message: Option<String>,
    /// Whether it stored a new snapshot (the catalog had changed).
    pub changed: Option<bool>,
    /// Relations in the discovered catalog.
    pub relations: Option<i64>,
    /// The instance that ran it.
    pub instance: Option<String>,
    /// How many runs this record stands for. Consecutive scheduled runs that succeeded and
    /// found the catalog unchanged (with as many relations) are kept as one record: the first
    /// run's id, times and instance, and the last one's in `last_started_at`,
    /// `last_finished_at` and `last_instance`. A run asked for, a failure or a change always
    /// has a record of its own (1), so its id stays valid to poll.
    pub runs: i64,
    /// When the last of the runs this record stands for started (null while it stands for one).
    pub last_started_at: Option<i64>,
    /// When the last of them finished.
    pub last_finished_at: Option<i64>,
    /// The instance that ran the last of them.
    pub last_instance: Option<String>,
}

impl RunView {
    pub(crate) fn of(r: &DiscoveryRun) -> RunView {
        let state = match (r.state, r.outcome) {
            (RunState::Queued, _) => "queued",
            (RunState::Running, _) | (RunState::Finished, None) => "running",
            (RunState::Finished, Some(outcome)) => outcome.as_str(),
        };
        RunView {
            id: r.id.0,
            state,
            reason: r.reason.map(|r| r.as_str()),
            started_at: r.started_at,
            finished_at: r.finished_at,
            stage: r.stage.clone(),
            message: r.message.clone(),
            changed: r.changed,
            relations: r.relations,
            instance: r.instance.clone(),
            runs: r.runs,
            last_started_at: r.last_started_at,
            last_finished_at: r.last_finished_at,
            last_instance: r.last_instance.clone(),
        }
    }
}

/// A source's place in the discovery schedule.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DiscoveryStatus)]
pub(crate) struct DiscoveryView {
    /// The source's interval, its own or the service's default.
    pub interval_secs: u64,
    /// Whether the interval is the source's own (`discovery_interval_secs` in the form).
    pub interval_is_own: bool,
    /// When it is due next (sooner after a save or a refresh; later while failing).
    pub next_due_at: i64,
    /// Failed runs in a row.
    pub failures: u32,
    /// A run is in progress on some instance.
    pub running: bool,
    /// The last finished run.
    pub last: Option<RunView>,
}

impl DiscoveryView {
    pub(crate) fn of(s: &DiscoverySchedule, state: &AppState) -> DiscoveryView {
        let default = state.config().discovery.default_interval.as_secs();
        DiscoveryView {
            interval_secs: s.interval_ms.map(|ms| u64::try_from(ms / 1000).unwrap_or(0)).unwrap_or(default),
            interval_is_own: s.interval_ms.is_some(),
            next_due_at: s.next_due_at,
            failures: s.failures,
            running: s.leased_by.is_some(),
            last: s.last_run.as_ref().map(RunView::of),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = DiscoveryRunList)]
#[allow(dead_code)]
struct RunListDoc {
    runs: Vec<RunView>,
}

/// The source's latest discovery runs, newest first.
#[utoipa::path(
    get,
    path = "/sources/{id}/discoveries",
    operation_id = "list_discoveries",
    tag = "sources",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id.")),
    responses(
        (status = 200, description = "The latest runs (at most 50), newest first.", body = RunListDoc),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    state.store().source(&id).await?;
    let runs = state.store().discovery_runs(&id, LISTED_RUNS).await?;
    let runs: Vec<RunView> = runs.iter().map(RunView::of).collect();
    Ok(Json(json!({ "runs": runs })).into_response())
}

/// One discovery run: poll it after `POST …/refresh` until its state is `ok`, `failed` or
/// `cancelled`.
#[utoipa::path(
    get,
    path = "/sources/{id}/discoveries/{run}",
    operation_id = "show_discovery",
    tag = "sources",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The source's id."),
        ("run" = i64, Path, description = "The run's id."),
    ),
    responses(
        (status = 200, description = "The run.", body = RunView),
        (status = 404, description = "No such source or run.", body = crate::error::ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    Path((id, run)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    let run: i64 = run.parse().map_err(|_| ApiError::not_found("discovery run"))?;
    let run = state.store().discovery_run(&id, RunId(run)).await?;
    Ok(Json(RunView::of(&run)).into_response())
}
