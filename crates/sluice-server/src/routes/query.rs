//! `POST /sources/{id}/query`: the gate first, then a session from the source's pool (a bounded
//! wait, then 429), an audit entry before the first row and its completion after the last, and
//! the rows streamed in the requested format. A client that goes away cancels the statement.
//! A browser starts a streamed download with a plain form POST (it cannot set headers on one):
//! such a request sends `application/x-www-form-urlencoded` with the session's CSRF token as the
//! `csrf_token` field, and its answer is always an attachment.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use serde::Deserialize;
use sluice_core::SourceId;
use sluice_query::export::{self, BodyError, ExportContext, Format};
use sluice_query::{QueryError, QueryRequest};
use sluice_store::{AuditId, QueryCompletion, QueryOutcome};
use tokio::sync::oneshot;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::source_id;
use crate::auth::{Authenticated, Principal, CSRF_HEADER};
use crate::{ApiError, ApiJson, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(query))
}

/// The result's format: `json` (the default; capped at the service's interactive row limit
/// unless `max_rows` is given), `csv` (as `psql --csv`), `ndjson`, `arrow` (Arrow IPC stream) or
/// `parquet`.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum FormatName {
    #[default]
    Json,
    Csv,
    Ndjson,
    Arrow,
    Parquet,
}

impl FormatName {
    fn format(self) -> Format {
        match self {
            FormatName::Json => Format::Json,
            FormatName::Csv => Format::Csv,
            FormatName::Ndjson => Format::Ndjson,
            FormatName::Arrow => Format::Arrow,
            FormatName::Parquet => Format::Parquet,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            FormatName::Json => "application/json",
            FormatName::Csv => "text/csv; charset=utf-8",
            FormatName::Ndjson => "application/x-ndjson",
            FormatName::Arrow => "application/vnd.apache.arrow.stream",
            FormatName::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// A download's file extension, whatever the format.
    fn download_extension(self) -> &'static str {
        match self {
            FormatName::Json => "json",
            FormatName::Csv => "csv",
            FormatName::Ndjson => "ndjson",
            FormatName::Arrow => "arrow",
            FormatName::Parquet => "parquet",
        }
    }

    /// Files get `Content-Disposition: attachment`.
    fn extension(self) -> Option<&'static str> {
        match self {
            FormatName::Csv => Some("csv"),
            FormatName::Arrow => Some("arrow"),
            FormatName::Parquet => Some("parquet"),
            FormatName::Json | FormatName::Ndjson => None,
        }
    }
}

/// A read-only statement to run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    /// One read statement (SELECT, VALUES, TABLE, WITH … SELECT, EXPLAIN or SHOW).
    sql: String,
    #[serde(default)]
    format: FormatName,
    /// At most this many rows (at least 1); a result cut short says so.
    #[schema(minimum = 1)]
    max_rows: Option<u64>,
    /// The statement's timeout, in milliseconds (at least 1); the source's default when left out.
    #[schema(minimum = 1)]
    timeout_ms: Option<u64>,
}

/// The same request as a browser's form POST sends it, to start a streamed download: the
/// session's CSRF token travels as a field, since a form cannot set the `X-CSRF-Token` header.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct QueryForm {
    /// One read statement.
    sql: String,
    #[serde(default)]
    format: FormatName,
    /// At most this many rows (at least 1); no cap when left out, JSON included.
    #[schema(minimum = 1)]
    max_rows: Option<u64>,
    /// The statement's timeout, in milliseconds (at least 1).
    #[schema(minimum = 1)]
    timeout_ms: Option<u64>,
    /// The session's CSRF token (what `X-CSRF-Token` carries otherwise).
    csrf_token: String,
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// The caller and the request: a JSON body after the usual authentication, or a form whose
/// `csrf_token` field stands in for the CSRF header (checked by the same extractor); the flag
/// says the answer is a download.
async fn caller_and_body(state: &AppState, req: Request) -> Result<(Principal, QueryBody, bool), ApiError> {
    let (mut parts, body) = req.into_parts();
    if !is_form(&parts.headers) {
        let Authenticated(who) = Authenticated::from_request_parts(&mut parts, state).await?;
        let ApiJson(query) = ApiJson::<QueryBody>::from_request(Request::from_parts(parts, body), state).await?;
        return Ok((who, query, false));
    }
    let bytes = axum::body::to_bytes(body, state.config().body_limit).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is larger than the server accepts")
    })?;
    let form: QueryForm = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("the form is not valid: {e} (fields: sql, format, max_rows, timeout_ms, csrf_token)"),
        )
    })?;
    // An empty token is no token: the extractor then refuses the session's request.
    parts.headers.remove(CSRF_HEADER);
    if let Ok(token) = HeaderValue::from_str(&form.csrf_token) {
        parts.headers.insert(CSRF_HEADER, token);
    }
    let Authenticated(who) = Authenticated::from_request_parts(&mut parts, state).await?;
    let query = QueryBody { sql: form.sql, format: form.format, max_rows: form.max_rows, timeout_ms: form.timeout_ms };
    Ok((who, query, true))
}

/// The gate's syntax error `e` with the server's SQLSTATE, position and hint, from a session of
/// the source's pool when one comes without queueing behind a full queue; the gate's error as it
/// is otherwise.
async fn explain_syntax_error(
    state: &AppState,
    id: &SourceId,
    who: &Principal,
    sql: String,
    e: QueryError,
) -> QueryError {
    let Ok(pool) = state.pool(id).await else {
        return e;
    };
    if pool.waiting() >= state.config().pool_queue {
        return e;
    }
    let Ok(session) = pool.get().await else {
        return e;
    };
    let request = QueryRequest { sql, application_name: Some(format!("sluice:{}", who.login)), ..Default::default() };
    sluice_query::explain_syntax_error(session, &request, e).await
}

/// Runs one read-only statement and streams its rows in the requested format. Files (CSV,
/// Arrow, Parquet) come with `Content-Disposition: attachment`. An error after the first byte
/// ends the body early (a JSON document then lacks its closing, an Arrow stream its end, a
/// Parquet file its footer): a result is complete only when its body is. A browser's form POST
/// (`application/x-www-form-urlencoded`, the session's CSRF token in the `csrf_token` field)
/// starts a streamed download: its answer is an attachment in every format, and JSON is not
/// capped unless `max_rows` says so.
#[utoipa::path(
    post,
    path = "/sources/{id}/query",
    operation_id = "query_source",
    tag = "query",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id.")),
    request_body(content(
        (QueryBody = "application/json"),
        (QueryForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The rows, in the format the request named (NDJSON: one object per row, keyed by column name).", content(
            (crate::openapi::QueryResultDoc = "application/json"),
            (String = "text/csv"),
            (Object = "application/x-ndjson"),
            (crate::openapi::ArrowStreamDoc = "application/vnd.apache.arrow.stream"),
            (crate::openapi::ParquetDoc = "application/vnd.apache.parquet"),
        )),
        (status = 400, description = "The statement does not parse (`syntax`, with `sqlstate`, `position` and the server's `hint`), is refused by the gate (`refused`), or failed in the database (`database`, with `sqlstate` and `position`).", body = crate::error::ErrorBody),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
        (status = 408, description = "The statement ran past its timeout.", body = crate::error::ErrorBody),
        (status = 429, description = "Every session of the source is busy; `Retry-After` says when to try again.", body = crate::error::ErrorBody),
        (status = 502, description = "The source could not be reached; `field` names the stage.", body = crate::error::ErrorBody),
    )
)]
async fn query(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Result<Response, ApiError> {
    let id = source_id(&id);
    // The source is looked up while the caller is authenticated; the answer counts only once
    // the caller is known (an unauthenticated request learns nothing from it).
    let lookup = async {
        match &id {
            Ok(id) => Some(state.check_source(id).await),
            Err(_) => None,
        }
    };
    let (caller, known) = tokio::join!(caller_and_body(&state, req), lookup);
    let (who, body, download) = caller?;
    let id = id?;
    who.may_use(&id)?;
    // The gate first: a refused statement never waits for a session — except a syntax error,
    // which takes one for a moment so the server can say where it is and why (it parses the
    // text and runs nothing: see `explain_syntax_error`).
    // Refusals are audited as failed queries: a write attempted through Sluice is on record, and
    // so is a text the server was asked to parse.
    let admitted = match sluice_query::gate::admit_async(&body.sql, &Default::default()).await {
        Ok(admitted) => admitted,
        Err(e) => {
            if let Some(known) = known {
                known?;
            }
            let started = Instant::now();
            let audit_id = state.store().begin_query_audit(&who.actor, &id, &body.sql).await?;
            let e = match e {
                QueryError::Syntax { .. } => explain_syntax_error(&state, &id, &who, body.sql, e).await,
                e => e,
            };
            let api = ApiError::from(e);
            record(&state, audit_id, started, Recorded::nothing(QueryOutcome::Failed, Some(api.message.clone()))).await;
            return Err(api);
        }
    };
    if body.max_rows == Some(0) {
        return Err(ApiError::invalid("max_rows", "must be at least 1 (leave it out for the default)"));
    }
    if body.timeout_ms == Some(0) {
        return Err(ApiError::invalid("timeout_ms", "must be at least 1 (leave it out for the source's default)"));
    }
    let format = body.format;
    // Interactive JSON is capped unless the request says otherwise; exports are not.
    let max_rows = match (body.max_rows, format) {
        (Some(n), _) => Some(n),
        (None, FormatName::Json) if !download => Some(state.config().interactive_max_rows),
        (None, _) => None,
    };
    if let Some(known) = known {
        known?;
    }
    let pool = state.pool(&id).await?;
    if pool.waiting() >= state.config().pool_queue {
        return Err(ApiError::too_many("every session of this source is busy and the queue is full", 1));
    }
    let started = Instant::now();
    // The audit entry is written while a session is fetched and the statement starts: none
    // waits for another, and no row streams before the entry exists. Until the answer starts, a
    // client that goes away drops this handler mid-statement; the guard then completes the entry.
    let (writer, actor, sql, source) = (state.clone(), who.actor.clone(), body.sql.clone(), id.clone());
    let writing = tokio::spawn(async move { writer.store().begin_query_audit(&actor, &source, &sql).await });
    let mut pending = PendingAudit { state: state.clone(), writing: Some(writing), id: None, started, armed: true };
    let session = match pool.get().await {
        Ok(s) => s,
        Err(e) => {
            let api = ApiError::from(e);
            let audit_id = pending.written().await?;
            pending.disarm();
            record(&state, audit_id, started, Recorded::nothing(QueryOutcome::Failed, Some(api.message.clone()))).await;
            return Err(api);
        }
    };
    let request = QueryRequest {
        sql: body.sql,
        max_rows,
        timeout: body.timeout_ms.map(Duration::from_millis),
        flavor: format.format().flavor(),
        // A DBA sees who runs what in pg_stat_activity.
        application_name: Some(format!("sluice:{}", who.login)),
        gate: Default::default(),
    };
    let run = sluice_query::run_admitted(session, admitted, request).await;
    // A statement whose entry could not be written is dropped unread (cancelled, rolled back).
    let audit_id = pending.written().await?;
    pending.disarm();
    let stream = match run {
        Ok(s) => s,
        Err(e) => {
            complete(&state, audit_id, started, 0, 0, Err(&e)).await;
            return Err(e.into());
        }
    };
    let exporter = format.format().exporter(ExportContext { max_rows });
    let (body, handle) = export::spawn_body(stream, exporter);
    let (done_tx, done_rx) = oneshot::channel();
    let bytes = Arc::new(AtomicU64::new(0));
    let counted =
        Counted { inner: body, bytes: bytes.clone(), done: Some(done_tx), closing: Some(Box::pin(state.closing())) };
    let audit_state = state.clone();
    tokio::spawn(async move {
        let result = match handle.await {
            Ok(r) => r,
            Err(e) => Err(QueryError::Internal(format!("the export task ended abnormally: {e}"))),
        };
        // Wait until the body is gone (sent whole, or dropped), so the byte count is final.
        let _ = done_rx.await;
        let sent = bytes.load(Ordering::SeqCst);
        let rows = result.as_ref().map(|s| s.rows).unwrap_or(0);
        complete(&audit_state, audit_id, started, rows, sent, result.as_ref().map(|s| s.truncated)).await;
    });
    let mut response = Body::from_stream(counted).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    if let Some(ext) = format.extension().or(download.then(|| format.download_extension())) {
        let name = format!("attachment; filename=\"{}-query.{ext}\"", id.as_str());
        if let Ok(v) = HeaderValue::from_str(&name) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}

/// Completes the query's audit entry from the export's result.
async fn complete(
    state: &AppState,
    id: AuditId,
    started: Instant,
    rows: u64,
    bytes: u64,
    result: Result<bool, &QueryError>,
) {
    let (outcome, error) = match result {
        Ok(true) => (QueryOutcome::Truncated, None),
        Ok(false) => (QueryOutcome::Ok, None),
        Err(e) if e.is_broken_pipe() => (QueryOutcome::Cancelled, Some("the client went away".to_string())),
        Err(QueryError::Cancelled) => (QueryOutcome::Cancelled, Some(e_text(result))),
        Err(_) => (QueryOutcome::Failed, Some(e_text(result))),
    };
    record(state, id, started, Recorded { rows, bytes, outcome, error }).await;
}

/// How a query ended, as its audit entry records it.
struct Recorded {
    rows: u64,
    bytes: u64,
    outcome: QueryOutcome,
    error: Option<String>,
}

impl Recorded {
    /// A query that ended before any row was read.
    fn nothing(outcome: QueryOutcome, error: Option<String>) -> Recorded {
        Recorded { rows: 0, bytes: 0, outcome, error }
    }
}

/// Completes the query's audit entry and counts it; a failure to record is logged (the response
/// is gone).
async fn record(state: &AppState, id: AuditId, started: Instant, r: Recorded) {
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    state.metrics().query(r.outcome, r.rows, r.bytes, millis);
    let done = QueryCompletion {
        duration_ms: i64::try_from(millis).unwrap_or(i64::MAX),
        rows: i64::try_from(r.rows).unwrap_or(i64::MAX),
        bytes: i64::try_from(r.bytes).unwrap_or(i64::MAX),
        outcome: r.outcome,
        error: r.error,
    };
    if let Err(e) = state.store().complete_query_audit(id, &done).await {
        tracing::error!(error = %e, audit = %id, "could not complete a query's audit entry");
    }
}

/// A query's audit entry while the handler waits for the statement's first rows: being written
/// (a task of its own, so it completes whatever happens to the handler), then written. If the
/// client goes away meanwhile (a browser's Cancel aborts its request), the handler is dropped,
/// the session with it (which cancels the statement), and this completes the entry as cancelled
/// once it is written, instead of leaving it open for ever.
struct PendingAudit {
    state: AppState,
    writing: Option<tokio::task::JoinHandle<Result<AuditId, sluice_store::StoreError>>>,
    id: Option<AuditId>,
    started: Instant,
    armed: bool,
}

impl PendingAudit {
    /// The entry's id once it is written; an error when it could not be.
    async fn written(&mut self) -> Result<AuditId, ApiError> {
        if let Some(id) = self.id {
            return Ok(id);
        }
        let Some(writing) = self.writing.as_mut() else {
            return Err(ApiError::internal("the query's audit entry was not begun"));
        };
        // Awaited by reference: a handler dropped here leaves the task to the guard.
        let written = writing.await;
        self.writing = None;
        let id = match written {
            Ok(r) => r?,
            Err(e) => return Err(ApiError::internal(format!("writing the query's audit entry failed: {e}"))),
        };
        self.id = Some(id);
        Ok(id)
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PendingAudit {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (state, started, id, writing) = (self.state.clone(), self.started, self.id, self.writing.take());
        runtime.spawn(async move {
            let id = match (id, writing) {
                (Some(id), _) => id,
                (None, Some(writing)) => match writing.await {
                    Ok(Ok(id)) => id,
                    _ => return,
                },
                (None, None) => return,
            };
            let gone = QueryError::Output(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"));
            complete(&state, id, started, 0, 0, Err(&gone)).await;
        });
    }
}

fn e_text(result: Result<bool, &QueryError>) -> String {
    match result {
        Err(e) => sluice_core::UserFacing::message(e),
        Ok(_) => String::new(),
    }
}

/// The export's body, counting the bytes handed to the client and saying when it is dropped.
struct Counted {
    inner: export::Body,
    bytes: Arc<AtomicU64>,
    done: Option<oneshot::Sender<()>>,
    /// Completes when the server's shutdown grace is over; the body then ends with an error.
    closing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Stream for Counted {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(closing) = self.closing.as_mut() {
            if closing.as_mut().poll(cx).is_ready() {
                self.closing = None;
                let message = "the server is shutting down; the result is incomplete".to_string();
                return Poll::Ready(Some(Err(BodyError { message, sqlstate: None })));
            }
        } else {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.bytes.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        polled
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}
