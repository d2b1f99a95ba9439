//! Sources: the form, Test Connection (the doctor's report, or its checks streamed as NDJSON),
//! catalog refresh and the latest snapshot.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use sluice_connect::{NetworkPolicy, Pool};
use sluice_core::{Auth, SecretField, SourceId, SourceSpec, SpecError};
use sluice_doctor::DoctorInput;
use sluice_iam::IamAuth;
use sluice_store::{ScheduleEdit, StoreError};
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::discoveries::DiscoveryView;
use super::history::{parse_time, query_params};
use super::{audit, audit_as, source_id};
use crate::alerts::AlertView;
use crate::auth::{Authenticated, RequireAdmin, RequireRefresh};
use crate::form::{now_ms, slug, SourceForm, SourceView};
use crate::{ApiError, ApiJson, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(test_form))
        .routes(routes!(show, edit, remove))
        .routes(routes!(test_saved))
        .routes(routes!(refresh))
        .routes(routes!(catalog))
}

/// The sources the caller may use.
#[utoipa::path(
    get,
    path = "/sources",
    operation_id = "list_sources",
    tag = "sources",
    security(("bearer" = [])),
    responses((status = 200, description = "The sources.", body = crate::openapi::SourceListDoc))
)]
async fn list(State(state): State<AppState>, Authenticated(who): Authenticated) -> Result<Response, ApiError> {
    let now = now_ms();
    let mut schedules: std::collections::HashMap<SourceId, DiscoveryView> = state
        .store()
        .discovery_schedules()
        .await?
        .iter()
        .map(|s| (s.source.clone(), DiscoveryView::of(s, &state)))
        .collect();
    let mut alerts: std::collections::HashMap<SourceId, Vec<AlertView>> = std::collections::HashMap::new();
    for a in state.store().open_alerts(None).await? {
        alerts.entry(a.source.clone()).or_default().push(AlertView::of(&a));
    }
    let sources: Vec<SourceView> = state
        .store()
        .sources()
        .await?
        .iter()
        .filter(|r| who.may_use(&r.id).is_ok())
        .map(|r| {
            let alerts = alerts.remove(&r.id).unwrap_or_default();
            SourceView::of(r, now).with_discovery(schedules.remove(&r.id)).with_alerts(alerts)
        })
        .collect();
    Ok(Json(json!({ "sources": sources })).into_response())
}

/// One source, without its secrets.
#[utoipa::path(
    get,
    path = "/sources/{id}",
    operation_id = "show_source",
    tag = "sources",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id.")),
    responses(
        (status = 200, description = "The source.", body = SourceView),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    let record = state.store().source(&id).await?;
    Ok(Json(view(&state, &record).await?).into_response())
}

/// A source with its place in the discovery schedule and its open alerts.
async fn view(state: &AppState, record: &sluice_store::SourceRecord) -> Result<SourceView, ApiError> {
    let schedule = state.store().discovery_schedule(&record.id).await?;
    let alerts = state.store().open_alerts(Some(&record.id)).await?.iter().map(AlertView::of).collect();
    Ok(SourceView::of(record, now_ms()).with_discovery(Some(DiscoveryView::of(&schedule, state))).with_alerts(alerts))
}

/// The form's `discovery_interval_secs`, checked: at least a minute, at most a week.
fn discovery_interval(form: &SourceForm) -> Result<Option<std::time::Duration>, ApiError> {
    match form.discovery_interval_secs {
        None => Ok(None),
        Some(secs) if (MIN_DISCOVERY_INTERVAL_SECS..=MAX_DISCOVERY_INTERVAL_SECS).contains(&secs) => {
            Ok(Some(std::time::Duration::from_secs(secs)))
        }
        Some(_) => Err(ApiError::invalid(
            "discovery_interval_secs",
            format!(
                "give a discovery interval from {MIN_DISCOVERY_INTERVAL_SECS} seconds to {MAX_DISCOVERY_INTERVAL_SECS} seconds (a week)"
            ),
        )),
    }
}

/// The shortest discovery interval a source may have, and the longest.
pub const MIN_DISCOVERY_INTERVAL_SECS: u64 = 60;
pub const MAX_DISCOVERY_INTERVAL_SECS: u64 = 7 * 86_400;

/// The spec with its secrets, validated as a connection would validate it.
fn validated(spec: &SourceSpec, secrets: &sluice_core::SourceSecrets) -> Result<(), ApiError> {
    spec.clone().with_secrets(secrets.clone()).validate().map_err(ApiError::from)
}

/// Registers a source from the form (`name`, `host`, `database` and `user` are required).
#[utoipa::path(
    post,
    path = "/sources",
    operation_id = "create_source",
    tag = "sources",
    security(("bearer" = [])),
    request_body = SourceForm,
    responses(
        (status = 201, description = "The new source.", body = SourceView),
        (status = 409, description = "A source with this id exists (`field`: `id`).", body = crate::error::ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    ApiJson(form): ApiJson<SourceForm>,
) -> Result<Response, ApiError> {
    let name = form.name.clone().ok_or_else(|| ApiError::invalid("name", "name is required"))?;
    let id: SourceId = match &form.id {
        Some(id) => id.parse().map_err(|e: sluice_core::BadSourceId| ApiError::invalid("id", e.to_string()))?,
        None => slug(&name).parse().map_err(|e: sluice_core::BadSourceId| ApiError::invalid("name", e.to_string()))?,
    };
    let (spec, secrets) = form.to_spec(None)?;
    let key_id = form.ssh_key_id();
    validated(&spec, &with_generated_key(&state, &secrets, key_id).await?)?;
    let interval = discovery_interval(&form)?;
    // Saved with its schedule, due now and on its own interval: whichever instance claims its
    // first run already sees that interval.
    let record = state.store().put_source_claiming(&id, &name, &spec, &secrets, key_id, interval).await?;
    state.wake_scheduler();
    audit(&state, &who, "source.create", Some(&id), json!({"name": record.name})).await?;
    if !secrets.is_empty() || key_id.is_some() {
        audit(&state, &who, "source.secret_set", Some(&id), secret_detail(&secrets, key_id)).await?;
    }
    Ok((StatusCode::CREATED, Json(view(&state, &record).await?)).into_response())
}

/// Changes what the form gives; everything left out (secrets included) keeps its value. The
/// source's pool is rebuilt on its next use.
#[utoipa::path(
    patch,
    path = "/sources/{id}",
    operation_id = "edit_source",
    tag = "sources",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id.")),
    request_body = SourceForm,
    responses(
        (status = 200, description = "The source as edited.", body = SourceView),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
    )
)]
async fn edit(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    Path(id): Path<String>,
    ApiJson(form): ApiJson<SourceForm>,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    if form.id.as_ref().is_some_and(|new| new != id.as_str()) {
        return Err(ApiError::invalid("id", "a source's id cannot change"));
    }
    let current = state.store().source(&id).await?;
    let full = state.store().source_spec(&id).await?;
    let (_, stored_secrets) = full.split();
    let (spec, patch) = form.to_spec(Some(&current.settings))?;
    let key_id = form.ssh_key_id();
    let patched = with_generated_key(&state, &patch, key_id).await?;
    let mut kept = stored_secrets;
    let mut dropped = Vec::new();
    match (&current.settings.auth, &spec.auth) {
        // An IAM source logs in with tokens: its stored password goes (one given now is refused).
        (_, Auth::RdsIam(_)) if kept.password.is_some() => {
            kept.password = None;
            dropped.push(SecretField::Password);
        }
        // Back to passwords: one must be given (unless a client certificate logs in).
        (Auth::RdsIam(_), Auth::Password) if patch.password.is_none() && spec.sslcert.is_none() => {
            return Err(ApiError::invalid("password", "switching from rds_iam to password auth needs the password")
                .with_hint(Some("give the database password with auth `password`".into())));
        }
        _ => {}
    }
    validated(&spec, &kept.updated_with(patched))?;
    let name = form.name.clone().unwrap_or_else(|| current.name.clone());
    // Saved with the edit, in its transaction: a new interval (a run in flight is scheduled on
    // it when it completes, and a shorter one makes the source due within it), and new
    // connection settings discovered at once.
    let schedule = ScheduleEdit {
        interval: discovery_interval(&form)?,
        due_now: spec != current.settings || !patch.is_empty() || key_id.is_some(),
    };
    let record = state.store().update_source_dropping(&id, &name, &spec, &patch, key_id, &dropped, schedule).await?;
    state.drop_pool(&id).await;
    if schedule.due_now {
        state.wake_scheduler();
    }
    audit(&state, &who, "source.update", Some(&id), json!({"name": record.name})).await?;
    if !patch.is_empty() || key_id.is_some() {
        audit(&state, &who, "source.secret_changed", Some(&id), secret_detail(&patch, key_id)).await?;
    }
    if !dropped.is_empty() {
        let fields: Vec<&str> = dropped.iter().map(|f| f.as_str()).collect();
        audit(&state, &who, "source.secret_removed", Some(&id), json!({"fields": fields})).await?;
    }
    Ok(Json(view(&state, &record).await?).into_response())
}

/// Deletes a source, its secrets and snapshots (the audit log keeps its history).
#[utoipa::path(
    delete,
    path = "/sources/{id}",
    operation_id = "delete_source",
    tag = "sources",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id.")),
    responses(
        (status = 204, description = "The source is deleted."),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    let record = state.store().source(&id).await?;
    state.store().delete_source(&id).await?;
    state.drop_pool(&id).await;
    audit(&state, &who, "source.delete", Some(&id), json!({"name": record.name})).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `secrets` with the generated key a form names (unclaimed and unexpired, else a 4xx naming
/// `ssh.private_key_id`) as their SSH private key: to validate or test the form. Saving claims
/// the key in the store.
async fn with_generated_key(
    state: &AppState,
    secrets: &sluice_core::SourceSecrets,
    key_id: Option<&str>,
) -> Result<sluice_core::SourceSecrets, ApiError> {
    let mut secrets = secrets.clone();
    if let Some(key_id) = key_id {
        let private = state.store().pending_ssh_key(key_id).await?;
        secrets.ssh_private_key = Some(sluice_core::KeySource::Pem(private));
    }
    Ok(secrets)
}

/// An audit entry's detail for a secret change: the fields set, and the generated key used.
fn secret_detail(secrets: &sluice_core::SourceSecrets, key_id: Option<&str>) -> serde_json::Value {
    let mut fields: Vec<&str> = secrets.fields().iter().map(|f| f.as_str()).collect();
    if key_id.is_some() && !fields.contains(&"ssh.private_key") {
        fields.push("ssh.private_key");
    }
    match key_id {
        Some(k) => json!({"fields": fields, "ssh_key_id": k}),
        None => json!({"fields": fields}),
    }
}

/// Tests an unsaved form: the doctor's checks, as JSON or, with `Accept: application/x-ndjson`,
/// streamed one check per line as each is decided, then a summary line. A source that cannot be
/// reached is a report whose checks fail, not an error.
#[utoipa::path(
    post,
    path = "/sources/test",
    operation_id = "test_source_form",
    tag = "sources",
    security(("bearer" = [])),
    request_body = SourceForm,
    responses(
        (status = 200, description = "The report.", content(
            (crate::openapi::ReportDoc = "application/json"),
            (crate::openapi::ReportLineDoc = "application/x-ndjson"),
        )),
    )
)]
async fn test_form(
    State(state): State<AppState>,
    RequireAdmin(_): RequireAdmin,
    headers: HeaderMap,
    ApiJson(form): ApiJson<SourceForm>,
) -> Result<Response, ApiError> {
    let (spec, secrets) = form.to_spec(None)?;
    let spec = spec.with_secrets(with_generated_key(&state, &secrets, form.ssh_key_id()).await?);
    let id = form.id.as_deref().and_then(|id| id.parse::<SourceId>().ok());
    let iam = state.iam_signer(id.as_ref(), &spec);
    let checked: Result<SourceSpec, SpecError> = spec.validate().map(|()| spec);
    Ok(doctor_response(checked, state.config().network.clone(), None, iam, &headers, None))
}

/// Tests a saved source through its pool; answers as the test of a form does.
#[utoipa::path(
    post,
    path = "/sources/{id}/test",
    operation_id = "test_source",
    tag = "sources",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id.")),
    responses(
        (status = 200, description = "The report.", content(
            (crate::openapi::ReportDoc = "application/json"),
            (crate::openapi::ReportLineDoc = "application/x-ndjson"),
        )),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
    )
)]
async fn test_saved(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    let spec = state.store().source_spec(&id).await?;
    // A spec the connector refuses (a certificate that does not parse) still gets its report:
    // the doctor's config check says what is wrong.
    let pool = state.pool(&id).await.ok();
    // The pool's signer when there is a pool (credentials it already holds are reused).
    let iam = if pool.is_some() { None } else { state.iam_signer(Some(&id), &spec) };
    let checked: Result<SourceSpec, SpecError> = spec.validate().map(|()| spec);
    let bastion = checked.as_ref().ok().and_then(|s| match &s.network {
        sluice_core::Network::Ssh(ssh) => Some(bastion_of(ssh)),
        _ => None,
    });
    let record = Recorder { state: state.clone(), source: id.clone(), bastion, tested_by: who.actor.clone() };
    Ok(doctor_response(checked, state.config().network.clone(), pool, iam, &headers, Some(record)))
}

/// A bastion as the store records its host keys: `host:port`.
pub(super) fn bastion_of(ssh: &sluice_core::SshSpec) -> String {
    format!("{}:{}", ssh.host, ssh.port)
}

/// Where a saved source's test records its outcome, and the host keys its bastion presented.
struct Recorder {
    state: AppState,
    source: SourceId,
    /// `host:port` of the source's bastion, when it has one.
    bastion: Option<String>,
    /// The audit actor of the admin (or token) who asked.
    tested_by: String,
}

impl Recorder {
    /// Records the test's outcome: passed, or the first failing check and its summary. A
    /// source deleted meanwhile, or a store that fails, costs the record, never the report.
    async fn outcome(&self, report: &sluice_doctor::Report) {
        let failed = report.checks.iter().find(|c| c.status == sluice_doctor::Status::Fail);
        let test = sluice_store::NewSourceTest {
            tested_by: &self.tested_by,
            ok: report.ok,
            failed: failed.map(|c| c.id.as_ref()),
            message: failed.map(|c| c.summary.as_str()),
        };
        if let Err(e) = self.state.store().record_source_test(&self.source, &test).await {
            tracing::warn!(source = %self.source, error = %e, "could not record the test's outcome");
        }
    }
}

/// The service's advice on a host key the bastion presented: compare, then approve.
fn host_key_advice(check: &mut sluice_doctor::Check, source: Option<&SourceId>) {
    let Some(key) = &check.host_key else { return };
    let file = match key.algorithm.as_str() {
        "ssh-ed25519" => "ed25519",
        a if a.starts_with("ecdsa") => "ecdsa",
        a if a.starts_with("rsa") || a == "ssh-rsa" => "rsa",
        _ => "*",
    };
    let compare = format!(
        "compare {} with the bastion's own key, read on the bastion itself or from its owners (`ssh-keygen -lf /etc/ssh/ssh_host_{file}_key.pub`)",
        key.fingerprint
    );
    let then = match source {
        Some(id) => format!(
            "if they match, approve it: POST /api/v1/sources/{id}/ssh-host-key {{\"fingerprint\": \"{}\"}}",
            key.fingerprint
        ),
        None => "if they match, save the source and approve the key after its test (POST /api/v1/sources/{id}/ssh-host-key), or give it as ssh.host_key".into(),
    };
    let warning = match key.status {
        sluice_connect::HostKeyStatus::Unknown => String::new(),
        _ => "the bastion's host key CHANGED since it was pinned: a new key, or something intercepting the connection (possible MITM). Do not approve it before its owners confirm the new key; ".into(),
    };
    check.fix = Some(format!("{warning}{compare}; {then}"));
}

fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-ndjson")))
}

/// The doctor's report as `sluice doctor --format json` prints it; or, for NDJSON, each check
/// on its own line as soon as it is decided, then a summary line. Every address the doctor dials
/// is checked against the service's network policy (a saved source's pool has the same one).
fn doctor_response(
    spec: Result<SourceSpec, SpecError>,
    network: NetworkPolicy,
    pool: Option<Pool>,
    iam: Option<IamAuth>,
    headers: &HeaderMap,
    record: Option<Recorder>,
) -> Response {
    let input = DoctorInput { spec, schemas: Vec::new() };
    let ndjson = wants_ndjson(headers);
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let lines = tx.clone();
        let source = record.as_ref().map(|r| r.source.clone());
        let shown = source.clone();
        let mut on_check = move |check: &sluice_doctor::Check| {
            if ndjson {
                let mut check = check.clone();
                host_key_advice(&mut check, shown.as_ref());
                if let Ok(mut line) = serde_json::to_vec(&check) {
                    line.push(b'\n');
                    let _ = lines.send(Bytes::from(line));
                }
            }
        };
        let mut report = sluice_doctor::run_under_iam(input, &network, pool.as_ref(), iam, &mut on_check).await;
        for check in &mut report.checks {
            host_key_advice(check, source.as_ref());
            // Recorded before the response ends, so the key can be approved once it is read.
            if let (Some(key), Some(r), Some(bastion)) =
                (&check.host_key, &record, record.as_ref().and_then(|r| r.bastion.as_ref()))
            {
                let seen = sluice_store::HostKeySeen {
                    fingerprint: key.fingerprint.clone(),
                    algorithm: key.algorithm.clone(),
                    public_key: key.public_key.clone(),
                };
                if let Err(e) = r.state.store().record_host_key(&r.source, bastion, &seen).await {
                    tracing::warn!(source = %r.source, error = %e, "could not record the bastion's host key");
                }
            }
        }
        // Also before the response ends: a client that read the summary finds it in the list.
        if let Some(r) = &record {
            r.outcome(&report).await;
        }
        let last = if ndjson {
            let summary =
                json!({"summary": {"ok": report.ok, "source": report.source, "server_version": report.server_version}});
            format!("{summary}\n")
        } else {
            report.to_json() + "\n"
        };
        let _ = tx.send(Bytes::from(last));
    });
    let stream = tokio_stream_from(rx).map(Ok::<_, Infallible>);
    let mut response = Body::from_stream(stream).into_response();
    let content_type = if ndjson { "application/x-ndjson" } else { "application/json" };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An unbounded receiver as a stream.
fn tokio_stream_from(mut rx: mpsc::UnboundedReceiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Asks for a discovery run now: answers `202 {"run": id}` at once (a run already queued is
/// shared); `GET …/discoveries/{run}` reports it.
#[utoipa::path(
    post,
    path = "/sources/{id}/refresh",
    operation_id = "refresh_source",
    tag = "sources",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id.")),
    responses(
        (status = 403, description = "Not an administrator, nor a refresh token of this source.", body = crate::error::ErrorBody),
        (status = 202, description = "The run is queued; poll GET /api/v1/sources/{id}/discoveries/{run}.", body = crate::openapi::RefreshQueuedDoc),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    who: RequireRefresh,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_refresh(&id)?;
    state.store().source(&id).await?;
    let run = state.store().request_discovery(&id).await?;
    state.wake_scheduler();
    audit_as(&state, &who.actor, "source.refresh", Some(&id), json!({"run": run})).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": run}))).into_response())
}

/// The latest snapshot, or with `?at=TIME` (RFC 3339) the one in force then:
/// `{"snapshot": {id, discovered_at, …}, "catalog": <the catalog JSON>}`.
#[utoipa::path(
    get,
    path = "/sources/{id}/catalog",
    operation_id = "source_catalog",
    tag = "sources",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The source's id."),
        ("at" = Option<String>, Query, description = "An RFC 3339 time: the snapshot in force then instead of the latest."),
    ),
    responses(
        (status = 200, description = "The latest snapshot, or the one in force at `at`.", body = crate::openapi::CatalogSnapshotDoc),
        (status = 400, description = "`at` is not an RFC 3339 time (`field` is `at`).", body = crate::error::ErrorBody),
        (status = 404, description = "No such source, or no snapshot yet (refresh the source first), or none by `at`.", body = crate::error::ErrorBody),
    )
)]
async fn catalog(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    let q: CatalogQuery = query_params(raw.as_deref(), &["at"])?;
    let at = q.at.as_deref().map(parse_time("at")).transpose()?;
    state.store().source(&id).await?;
    let found = match at {
        Some(at) => state.store().snapshot_at_compressed(&id, at).await?,
        None => state.store().latest_snapshot_compressed(&id).await?,
    };
    let Some((meta, snapshot)) = found else {
        let hint = match at {
            Some(_) => "no snapshot of this source had been taken by then; ask for a later time",
            None => "the source has not been discovered yet: refresh it (POST /api/v1/sources/{id}/refresh) and wait for the run",
        };
        return Err(ApiError::from(StoreError::NotFound { entity: "catalog snapshot" }).with_hint(Some(hint.into())));
    };
    let mut head = b"{\"snapshot\":".to_vec();
    serde_json::to_writer(&mut head, &meta).map_err(ApiError::internal)?;
    head.extend_from_slice(b",\"catalog\":");
    let reader = snapshot.into_reader()?;
    // The JSON is decompressed piece by piece on a blocking thread as the client reads: a large
    // catalog (150 MB for 100,000 tables) is never held whole. A snapshot that fails to
    // decompress midway ends the body early, which the client sees as a broken response.
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || stream_snapshot(head, reader, &tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Sends `head`, the snapshot's JSON in pieces of up to 64 KiB, and the closing brace; stops when
/// the client has gone (the receiver is dropped).
fn stream_snapshot(head: Vec<u8>, mut reader: impl std::io::Read, tx: &mpsc::Sender<std::io::Result<Bytes>>) {
    if tx.blocking_send(Ok(Bytes::from(head))).is_err() {
        return;
    }
    loop {
        let mut piece = vec![0u8; 64 * 1024];
        match reader.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => {
                piece.truncate(n);
                if tx.blocking_send(Ok(Bytes::from(piece))).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "a stored catalog snapshot could not be decompressed");
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
    let _ = tx.blocking_send(Ok(Bytes::from_static(b"}")));
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogQuery {
    /// RFC 3339: the snapshot in force at that time.
    at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `data`, then fails when `fail` is set.
    struct Source {
        data: std::io::Cursor<Vec<u8>>,
        fail: bool,
    }

    impl std::io::Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.data.read(buf)? {
                0 if self.fail => Err(std::io::Error::other("damaged")),
                n => Ok(n),
            }
        }
    }

    fn pieces(json: &[u8], fail: bool) -> Vec<std::io::Result<Bytes>> {
        let (tx, mut rx) = mpsc::channel(1024);
        stream_snapshot(
            b"{\"snapshot\":{},\"catalog\":".to_vec(),
            Source { data: std::io::Cursor::new(json.to_vec()), fail },
            &tx,
        );
        drop(tx);
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn a_snapshot_streams_in_pieces_and_a_damaged_one_ends_the_body_early() {
        let json = br#"{"schemas":[]}"#.repeat(20_000); // 280,000 bytes
        let got = pieces(&json, false);
        let bytes: Vec<Bytes> = got.into_iter().map(|p| p.expect("a piece")).collect();
        assert!(bytes.len() >= 6, "the head, five pieces or more, the brace: {}", bytes.len());
        assert!(bytes.iter().all(|b| b.len() <= 64 * 1024));
        let mut expected = b"{\"snapshot\":{},\"catalog\":".to_vec();
        expected.extend_from_slice(&json);
        expected.push(b'}');
        assert_eq!(bytes.concat(), expected);

        let got = pieces(&json, true);
        let last = got.last().expect("pieces");
        assert!(last.is_err(), "the body ends with the error, without its closing brace");
        assert!(got.iter().rev().skip(1).all(|p| p.as_ref().is_ok_and(|b| &b[..] != b"}")));

        // A client gone: the sender stops at once.
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        stream_snapshot(Vec::new(), Source { data: std::io::Cursor::new(json.to_vec()), fail: false }, &tx);
    }
}
