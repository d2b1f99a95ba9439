//! Running one admitted statement on a read-only session and streaming its rows.
//!
//! The protocol, step by step (every statement Sluice sends is its own, except the user's
//! statement, which travels alone in one Parse of the extended protocol, unnamed):
//!
//! 1. `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout …;` and a
//!    snapshot-taking `SELECT` that also reads the settings text rendering depends on. Once a
//!    snapshot exists, `SET TRANSACTION READ WRITE` is no longer accepted.
//! 2. For SELECT-like statements, two describe queries that plan the statement as a subquery
//!    joined `ON false` (it never runs): the column names, then the column types — each result
//!    of a built-in type, so the driver never needs its own type lookup (whose named statements
//!    break behind PgBouncer, and whose cold-cache lookup can deadlock a large result).
//! 3. The statement itself, through `query_typed_raw` (unnamed statement and portal). Columns
//!    Sluice cannot render exactly are wrapped as `format('%s', col)` — the type's own output
//!    function — in an outer SELECT; when there are none the statement is sent unchanged.
//!    Only unnamed statements are used and every result column Sluice reads is of a built-in
//!    type, so nothing of the request outlives its transaction on a server connection: the same
//!    protocol is correct behind PgBouncer in transaction mode, where the session-level limits
//!    are absent and step 1 sets them with `SET LOCAL`.
//! 4. `ROLLBACK`, always: after the last row, after an error, after truncation (preceded by a
//!    cancel request), and from a spawned task when the stream is dropped early.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use sluice_connect::tokio_postgres::types::{FromSql, Type};
use sluice_connect::tokio_postgres::{self, Row};
use sluice_connect::{CancelHandle, Isolation, PooledSession, ReadOnlySession, TransactionOptions};
use tokio::time::Instant;

use crate::gate::{self, StatementKind};
use crate::types::{Codec, Column, Flavor, Scalar, SessionFormat};
use crate::QueryError;

/// Rows handed to exporters per batch at most (fewer when the server is slower than the reader).
pub const BATCH_ROWS: usize = 4096;
/// How long after `timeout` Sluice stops waiting for the server's own statement timeout.
const CLIENT_GRACE: Duration = Duration::from_secs(2);
/// How long the closing ROLLBACK may wait behind a cancelled statement before the session is
/// closed instead of returned.
const ROLLBACK_WAIT: Duration = Duration::from_secs(5);

/// One query request.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    pub sql: String,
    /// Stop after this many rows, cancel the rest, and mark the result truncated.
    pub max_rows: Option<u64>,
    /// Cancel the statement on the server after this long.
    pub timeout: Option<Duration>,
    /// What the output needs: exact text or typed values.
    pub flavor: Flavor,
}

/// Something that lends a read-only session for one request: a pool loan, or a session owned
/// outright.
pub trait SessionLoan: Send + Sync + 'static {
    fn session(&self) -> &ReadOnlySession;
    fn session_mut(&mut self) -> &mut ReadOnlySession;
    /// Close the session instead of returning it (its state is unknown or the connection died).
    fn discard(self: Box<Self>);
}

impl SessionLoan for PooledSession {
    fn session(&self) -> &ReadOnlySession {
        self
    }
    fn session_mut(&mut self) -> &mut ReadOnlySession {
        self
    }
    fn discard(self: Box<Self>) {
        PooledSession::discard(*self);
    }
}

impl SessionLoan for ReadOnlySession {
    fn session(&self) -> &ReadOnlySession {
        self
    }
    fn session_mut(&mut self) -> &mut ReadOnlySession {
        self
    }
    fn discard(self: Box<Self>) {}
}

/// Raw access to a column's wire bytes.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A batch of rows, in arrival order.
pub struct Batch {
    rows: Vec<Row>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The wire bytes of one value; `None` is SQL NULL.
    pub fn value(&self, row: usize, col: usize) -> Option<&[u8]> {
        self.rows.get(row).and_then(|r| r.try_get::<usize, Raw<'_>>(col).ok()).and_then(|r| r.0)
    }
}

/// The result of [`run`]: its columns, then batches of rows until the end, an error, or the
/// `max_rows` limit. Dropping it early cancels the statement on the server and rolls back.
pub struct RowStream {
    columns: Arc<[Column]>,
    rows: Option<Pin<Box<tokio_postgres::RowStream>>>,
    loan: Option<Box<dyn SessionLoan>>,
    cancel: CancelHandle,
    max_rows: Option<u64>,
    read: u64,
    truncated: bool,
    finished: bool,
    failed: bool,
    pending: Option<Row>,
    ctx: ErrorContext,
    deadline: Option<Instant>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ErrorContext {
    shift: usize,
    offset: usize,
    timeout_ms: Option<u64>,
}

impl ErrorContext {
    fn map(&self, e: tokio_postgres::Error) -> QueryError {
        QueryError::from_driver(e, self.shift, self.offset, self.timeout_ms)
    }
}

impl std::fmt::Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("columns", &self.columns)
            .field("read", &self.read)
            .field("truncated", &self.truncated)
            .finish_non_exhaustive()
    }
}

/// Admits `req.sql` through the gate, then runs it on `loan` (see the module docs for the
/// protocol). The session is held by the stream until it ends or is dropped.
pub async fn run<L: SessionLoan>(loan: L, req: QueryRequest) -> Result<RowStream, QueryError> {
    let admitted = gate::admit(&req.sql)?;
    if req.max_rows == Some(0) {
        return Err(QueryError::Invalid {
            field: "max_rows",
            message: "must be at least 1 (leave it out for no limit)".into(),
        });
    }
    let timeout_ms = match req.timeout {
        Some(t) if t.is_zero() => {
            return Err(QueryError::Invalid {
                field: "timeout",
                message: "must be longer than zero (leave it out for the session default)".into(),
            })
        }
        Some(t) => Some(u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)),
        None => None,
    };
    let loan: Box<dyn SessionLoan> = Box::new(loan);
    let cancel = loan.session().cancel_handle();
    let started = Instant::now();
    // Until the first row is in, the loan sits in a guard: if this future is dropped meanwhile
    // (a caller gave up before a slow first row), the guard cancels the statement.
    let mut starting = Starting { loan: Some(loan), cancel: cancel.clone() };
    let outcome = start(starting.session_mut(), &admitted, &req, timeout_ms).await;
    let loan = starting.disarm();
    match outcome {
        Ok(started_query) => Ok(RowStream {
            columns: started_query.columns.into(),
            rows: Some(started_query.rows),
            loan: Some(loan),
            cancel,
            max_rows: req.max_rows,
            read: 0,
            truncated: false,
            finished: false,
            failed: false,
            pending: started_query.first,
            ctx: started_query.ctx,
            deadline: req.timeout.map(|t| started + t + CLIENT_GRACE),
        }),
        Err(e) => {
            let healthy = !matches!(e, QueryError::Lost { .. });
            release(loan, healthy, false, cancel).await;
            Err(e)
        }
    }
}

/// The loan while [`run`] waits for the first row. Dropped with the loan still in it (the `run`
/// future was dropped), it cancels whatever the session runs, rolls back and returns the session,
/// from a spawned task as [`RowStream`]'s `Drop` does.
struct Starting {
    loan: Option<Box<dyn SessionLoan>>,
    cancel: CancelHandle,
}

impl Starting {
    fn session_mut(&mut self) -> &mut ReadOnlySession {
        self.loan.as_deref_mut().expect("the loan is present until disarmed").session_mut()
    }

    /// The first row is in (or the start failed): the caller takes the loan over.
    fn disarm(mut self) -> Box<dyn SessionLoan> {
        self.loan.take().expect("the loan is present until disarmed")
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(loan) = self.loan.take() {
            release_later(loan, true, self.cancel.clone());
        }
    }
}

struct Started {
    columns: Vec<Column>,
    rows: Pin<Box<tokio_postgres::RowStream>>,
    first: Option<Row>,
    ctx: ErrorContext,
}

async fn start(
    session: &mut ReadOnlySession,
    admitted: &gate::Admitted,
    req: &QueryRequest,
    timeout_ms: Option<u64>,
) -> Result<Started, QueryError> {
    // Begun and confirmed read-only by sluice-connect, with the session's limits (`SET LOCAL`;
    // this request's timeout instead of the session's) and the settings text rendering depends
    // on, in one round trip. It stays open for the row stream; `release` ends it.
    let options = TransactionOptions {
        isolation: Isolation::RepeatableRead,
        statement_timeout: timeout_ms.map(Duration::from_millis),
        read_settings: ["TimeZone", "DateStyle", "extra_float_digits", "bytea_output"].map(String::from).to_vec(),
    };
    let tx = session.read_only_transaction_with(&options).await?;
    let fact = |name: &str| tx.setting(name).unwrap_or_default().to_string();
    let fmt = SessionFormat {
        timezone: fact("TimeZone"),
        datestyle: fact("DateStyle"),
        extra_float_digits: fact("extra_float_digits").parse().unwrap_or(0),
        bytea_output: fact("bytea_output"),
    };
    let client = tx.client();

    let sql = admitted.sql.as_str();
    let offset = admitted.char_offset;
    if admitted.kind != StatementKind::Select {
        // EXPLAIN and SHOW return text, json or xml (built-in types) and always at least one
        // row, whose description gives the columns.
        let ctx = ErrorContext { shift: 0, offset, timeout_ms };
        let mut rows = Box::pin(query(client, sql, ctx).await?);
        let first = match rows.next().await {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => return Err(ctx.map(e)),
            None => None,
        };
        let columns = first.as_ref().map(|r| r.columns().iter().map(wire_column).collect()).unwrap_or_default();
        return Ok(Started { columns, rows, first, ctx });
    }

    let names = describe_names(client, sql, offset, timeout_ms).await?;
    let described = describe_types(client, sql, names.len(), offset, timeout_ms).await?;
    let mut columns: Vec<Column> = names
        .into_iter()
        .zip(described)
        .map(|(name, t)| Column {
            name,
            codec: Codec::for_oid(t.wire_oid, &fmt, req.flavor),
            type_name: t.name,
            type_oid: t.oid,
            typmod: -1,
        })
        .collect();
    if req.flavor == Flavor::Typed {
        describe_typmods(client, sql, &mut columns, offset, timeout_ms).await?;
    }

    let wrap = columns.iter().any(|c| c.codec == Codec::ServerText);
    let (main, shift) = if wrap {
        let list: Vec<String> = (1..=columns.len()).map(|i| format!("c{i}")).collect();
        let select: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match c.codec {
                Codec::ServerText => format!(
                    "CASE WHEN pg_catalog.num_nulls(q.c{n}) = 0 THEN pg_catalog.format('%s', q.c{n}) END",
                    n = i + 1
                ),
                _ => format!("q.c{}", i + 1),
            })
            .collect();
        let prefix = format!("SELECT {} FROM (\n", select.join(", "));
        let shift = prefix.chars().count();
        (format!("{prefix}{sql}\n) AS q({})", list.join(", ")), shift)
    } else {
        (sql.to_string(), 0)
    };
    let ctx = ErrorContext { shift, offset, timeout_ms };
    let rows = Box::pin(query(client, &main, ctx).await?);
    Ok(Started { columns, rows, first: None, ctx })
}

async fn query(
    client: &tokio_postgres::Client,
    sql: &str,
    ctx: ErrorContext,
) -> Result<tokio_postgres::RowStream, QueryError> {
    let params: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> = Vec::new();
    client.query_typed_raw(sql, params).await.map_err(|e| ctx.map(e))
}

/// The statement as a never-executed subquery: `ON false` keeps one all-NULL row whose columns
/// have the statement's names and types.
fn probe(sql: &str, alias: &str) -> (String, String) {
    ("SELECT q.* FROM (VALUES (1)) AS d(x) LEFT JOIN LATERAL (\n".to_string(), format!("{sql}\n) AS {alias} ON false"))
}

async fn describe_names(
    client: &tokio_postgres::Client,
    sql: &str,
    offset: usize,
    timeout_ms: Option<u64>,
) -> Result<Vec<String>, QueryError> {
    let (inner_prefix, inner_suffix) = probe(sql, "q");
    // json (not jsonb) keeps duplicate keys and their order.
    let prefix =
        format!("SELECT k FROM pg_catalog.json_object_keys((SELECT pg_catalog.row_to_json(s) FROM ({inner_prefix}");
    let text = format!("{prefix}{inner_suffix}) AS s)) AS k");
    let ctx = ErrorContext { shift: prefix.chars().count(), offset, timeout_ms };
    collect_text(client, &text, ctx).await
}

struct Described {
    oid: u32,
    /// The OID the wire carries: a domain's base type (one level), else the type itself.
    wire_oid: u32,
    name: String,
}

async fn describe_types(
    client: &tokio_postgres::Client,
    sql: &str,
    n: usize,
    offset: usize,
    timeout_ms: Option<u64>,
) -> Result<Vec<Described>, QueryError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
    let typeofs: Vec<String> = (1..=n).map(|i| format!("pg_catalog.pg_typeof(s.c{i})")).collect();
    let (inner_prefix, inner_suffix) = probe(sql, &format!("q({})", list.join(", ")));
    let prefix = format!(
        "SELECT (t.oid::int8)::text, (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)::int8::text, \
         pg_catalog.format_type(t.oid, NULL) FROM ({inner_prefix}"
    );
    let text = format!(
        "{prefix}{inner_suffix}) AS s, LATERAL unnest(ARRAY[{}]::pg_catalog.oid[]) WITH ORDINALITY AS u(oid, i) \
         JOIN pg_catalog.pg_type t ON t.oid = u.oid ORDER BY u.i",
        typeofs.join(", ")
    );
    let ctx = ErrorContext { shift: prefix.chars().count(), offset, timeout_ms };
    let flat = collect_text(client, &text, ctx).await?;
    let out: Vec<Described> = flat
        .chunks(3)
        .map(|c| Described {
            oid: c.first().and_then(|v| v.parse().ok()).unwrap_or(0),
            wire_oid: c.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
            name: c.get(2).cloned().unwrap_or_default(),
        })
        .collect();
    if out.len() != n {
        return Err(QueryError::Internal(format!("described {} column types for {n} columns", out.len())));
    }
    Ok(out)
}

/// The declared type modifiers of numeric columns (decimal precision and scale for typed
/// outputs): the probe's one all-NULL row carries them in its description.
async fn describe_typmods(
    client: &tokio_postgres::Client,
    sql: &str,
    columns: &mut [Column],
    offset: usize,
    timeout_ms: Option<u64>,
) -> Result<(), QueryError> {
    let wanted: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.codec, Codec::Scalar(Scalar::Numeric) | Codec::Array(Scalar::Numeric)))
        .map(|(i, _)| i)
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = (1..=columns.len()).map(|i| format!("c{i}")).collect();
    let select: Vec<String> = wanted.iter().map(|i| format!("s.c{}", i + 1)).collect();
    let (inner_prefix, inner_suffix) = probe(sql, &format!("q({})", list.join(", ")));
    let prefix = format!("SELECT {} FROM ({inner_prefix}", select.join(", "));
    let text = format!("{prefix}{inner_suffix}) AS s");
    let ctx = ErrorContext { shift: prefix.chars().count(), offset, timeout_ms };
    let rows = query(client, &text, ctx).await?;
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| ctx.map(e))?;
        for (j, &i) in wanted.iter().enumerate() {
            if let (Some(c), Some(w)) = (columns.get_mut(i), row.columns().get(j)) {
                c.typmod = w.type_modifier();
            }
        }
    }
    Ok(())
}

/// Runs one of Sluice's own describe queries (all columns text) and returns every value, row
/// after row.
async fn collect_text(
    client: &tokio_postgres::Client,
    sql: &str,
    ctx: ErrorContext,
) -> Result<Vec<String>, QueryError> {
    let rows = query(client, sql, ctx).await?;
    let mut rows = std::pin::pin!(rows);
    let mut out = Vec::new();
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| ctx.map(e))?;
        for i in 0..row.len() {
            let v: Option<String> = row.try_get(i).map_err(|e| ctx.map(e))?;
            out.push(v.unwrap_or_default());
        }
    }
    Ok(out)
}

impl RowStream {
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Rows handed out so far.
    pub fn rows_read(&self) -> u64 {
        self.read
    }

    /// Whether `max_rows` cut the result short (known once [`RowStream::next_batch`] returned
    /// `None`).
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The next batch, or `None` at the end (or at the `max_rows` limit). After an error the
    /// stream is over: a partial result is never presented as complete.
    pub async fn next_batch(&mut self) -> Result<Option<Batch>, QueryError> {
        match self.next_inner().await {
            Err(e) => {
                self.failed = true;
                self.rows = None;
                Err(e)
            }
            ok => ok,
        }
    }

    async fn next_inner(&mut self) -> Result<Option<Batch>, QueryError> {
        if self.finished || self.truncated || self.failed {
            return Ok(None);
        }
        let limit = match self.max_rows {
            Some(max) => {
                let left = max.saturating_sub(self.read);
                if left == 0 {
                    // At the limit: one more row means the result was cut short.
                    return match self.next_row().await? {
                        Some(_) => {
                            self.truncated = true;
                            self.stop_early().await;
                            Ok(None)
                        }
                        None => Ok(None),
                    };
                }
                usize::try_from(left).unwrap_or(BATCH_ROWS).min(BATCH_ROWS)
            }
            None => BATCH_ROWS,
        };
        let mut rows = Vec::with_capacity(limit.min(BATCH_ROWS));
        match self.next_row().await? {
            Some(r) => rows.push(r),
            None => return Ok(None),
        }
        while rows.len() < limit {
            let Some(stream) = self.rows.as_mut() else {
                break;
            };
            match stream.next().now_or_never() {
                Some(Some(Ok(r))) => rows.push(r),
                Some(Some(Err(e))) => return Err(self.ctx.map(e)),
                Some(None) => {
                    self.finished = true;
                    break;
                }
                None => break,
            }
        }
        self.read += rows.len() as u64;
        Ok(Some(Batch { rows }))
    }

    async fn next_row(&mut self) -> Result<Option<Row>, QueryError> {
        if let Some(r) = self.pending.take() {
            return Ok(Some(r));
        }
        let Some(stream) = self.rows.as_mut() else {
            return Ok(None);
        };
        let next = match self.deadline {
            Some(d) => match tokio::time::timeout_at(d, stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    let _ = self.cancel.cancel().await;
                    return Err(QueryError::Timeout { millis: self.ctx.timeout_ms.unwrap_or(0) });
                }
            },
            None => stream.next().await,
        };
        match next {
            Some(Ok(r)) => Ok(Some(r)),
            Some(Err(e)) => Err(self.ctx.map(e)),
            None => {
                self.finished = true;
                Ok(None)
            }
        }
    }

    /// Stops reading and cancels the rest of the statement on the server.
    async fn stop_early(&mut self) {
        self.rows = None;
        if let Err(e) = self.cancel.cancel().await {
            tracing::debug!("cancel request failed: {e}");
        }
        // The cancel is for the statement; ROLLBACK in `finish` ends the transaction.
        self.finished = false;
    }

    /// Ends the request: cancels the statement if it is still running, rolls back and returns
    /// the session. Call it after the last batch; dropping the stream does the same from a
    /// spawned task.
    pub async fn finish(mut self) -> Result<(), QueryError> {
        let Some(loan) = self.loan.take() else {
            return Ok(());
        };
        let running = self.rows.is_some() && !self.finished;
        self.rows = None;
        let lost = self.failed && loan.session().is_closed();
        release(loan, !lost, running, self.cancel.clone()).await;
        Ok(())
    }
}

/// Cancels (when asked), rolls back and gives the session back — or discards it when its state
/// is unknown.
async fn release(mut loan: Box<dyn SessionLoan>, healthy: bool, cancel_first: bool, cancel: CancelHandle) {
    if cancel_first {
        if let Err(e) = cancel.cancel().await {
            tracing::debug!("cancel request failed: {e}");
        }
    }
    if !healthy || loan.session().is_closed() {
        loan.discard();
        return;
    }
    // A statement that ignores the cancel would hold the session (and its pool slot) until it
    // ends: give up on it after ROLLBACK_WAIT and close the connection instead.
    let rollback = tokio::time::timeout(ROLLBACK_WAIT, loan.session_mut().end_transaction()).await;
    match rollback {
        Ok(Ok(())) => drop(loan),
        Ok(Err(e)) => {
            tracing::debug!("rollback failed, discarding the session: {e}");
            loan.discard();
        }
        Err(_) => {
            tracing::debug!("rollback did not finish within {ROLLBACK_WAIT:?}; discarding the session");
            loan.discard();
        }
    }
}

impl Drop for RowStream {
    fn drop(&mut self) {
        let Some(loan) = self.loan.take() else {
            return;
        };
        let running = self.rows.is_some() && !self.finished;
        self.rows = None;
        release_later(loan, running, self.cancel.clone());
    }
}

/// [`release`] from a spawned task, for `Drop`; without a runtime the session is closed instead.
fn release_later(loan: Box<dyn SessionLoan>, cancel_first: bool, cancel: CancelHandle) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(release(loan, true, cancel_first, cancel));
        }
        Err(_) => loan.discard(),
    }
}

/// A column from the wire description of a statement whose types are all built in.
pub(crate) fn wire_column(c: &tokio_postgres::Column) -> Column {
    let oid = c.type_().oid();
    let codec = match oid {
        114 => Codec::Scalar(Scalar::Json),
        3802 => Codec::Scalar(Scalar::Jsonb),
        _ => Codec::Scalar(Scalar::Text),
    };
    Column {
        name: c.name().to_string(),
        type_name: c.type_().name().to_string(),
        type_oid: oid,
        typmod: c.type_modifier(),
        codec,
    }
}
