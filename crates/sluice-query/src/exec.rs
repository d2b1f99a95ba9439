//! Running one admitted statement on a read-only session and streaming its rows.
//!
//! The protocol, step by step (every statement Sluice sends is its own, except the user's
//! statement, which travels alone in Parse messages of the extended protocol, as admitted):
//!
//! 1. A read-only transaction from `sluice_connect` (`BEGIN ISOLATION LEVEL REPEATABLE READ READ
//!    ONLY`, `SET LOCAL` limits, and a snapshot-taking `SELECT` that confirms it is read-only and
//!    reads the settings text rendering depends on). Once a snapshot exists, `SET TRANSACTION
//!    READ WRITE` is no longer accepted.
//! 2. Parse + Describe of the statement as it is ([`crate::describe`]): column names, type OIDs
//!    and modifiers, without executing it. The statement is closed at once.
//! 3. In one round trip: Sluice's catalog query naming the column types, then the statement
//!    itself through `query_typed_raw` (unnamed statement and portal) — unchanged, or, when some
//!    columns must be rendered by the server, inside a SELECT that reaches them by position
//!    ([`crate::describe::wrap`]). Every column of what executes has a built-in type, so the
//!    driver never looks a type up while rows wait unread.
//! 4. The transaction is ended, always. Once the statement runs, its `ROLLBACK` is sent right
//!    behind it without waiting, so the server ends the transaction as soon as the last row is
//!    out and the stream's end only reads the answer: after the last row, after an error, after
//!    truncation (preceded by a cancel request), and from a spawned task when the stream is
//!    dropped early. Behind PgBouncer in transaction mode the end is sent afterwards instead,
//!    and also deallocates every statement prepared in the transaction.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use sluice_connect::tokio_postgres::types::{FromSql, Type};
use sluice_connect::tokio_postgres::{self, Row};
use sluice_connect::{CancelHandle, Isolation, PooledSession, ReadOnlySession, TransactionOptions};
use tokio::time::Instant;

use crate::describe;
use crate::gate::{self, StatementKind};
use crate::types::{Column, Flavor, SessionFormat};
use crate::QueryError;

/// Rows handed to exporters per batch at most (fewer when the server is slower than the reader).
pub const BATCH_ROWS: usize = 4096;
/// How long after `timeout` Sluice stops waiting for the server's own statement timeout.
const CLIENT_GRACE: Duration = Duration::from_secs(2);
/// How long the closing ROLLBACK may wait behind a cancelled statement before the session is
/// closed instead of returned.
const ROLLBACK_WAIT: Duration = Duration::from_secs(5);
/// A session that received a row larger than this is closed instead of returned: the driver
/// keeps its read buffer at the size of the largest message it ever received (a 200 MB cell
/// would leave about 256 MiB held by an idle pooled session for its lifetime).
pub const RETIRE_AFTER_ROW_BYTES: usize = 16 << 20;

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
    /// `application_name` while this request runs (e.g. `sluice:ana`), so `pg_stat_activity`
    /// names who ran the statement; the session's own name otherwise.
    pub application_name: Option<String>,
    /// The gate's limits (the longest statement admitted).
    pub gate: gate::GateOptions,
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

    /// The wire bytes and length words of one row.
    pub fn row_bytes(&self, row: usize) -> usize {
        self.rows.get(row).map_or(0, Row::raw_size_bytes)
    }

    /// One value's wire bytes as [`bytes::Bytes`] that share the row's memory instead of copying
    /// it: the row stays alive as long as they do. `None` is SQL NULL.
    pub fn value_shared(&self, row: usize, col: usize) -> Option<bytes::Bytes> {
        let row = self.rows.get(row)?.clone();
        let cell = SharedCell { row, col };
        cell.value().is_some().then(|| bytes::Bytes::from_owner(cell))
    }
}

/// A row that lends out one of its values.
struct SharedCell {
    row: Row,
    col: usize,
}

impl SharedCell {
    fn value(&self) -> Option<&[u8]> {
        self.row.try_get::<usize, Raw<'_>>(self.col).ok().and_then(|r| r.0)
    }
}

impl AsRef<[u8]> for SharedCell {
    fn as_ref(&self) -> &[u8] {
        self.value().unwrap_or_default()
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
    ctx: ErrorContext,
    deadline: Option<Instant>,
    /// The largest row received so far, as its columns' length words and bytes.
    largest_row: usize,
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
/// A statement the gate cannot parse is refused with the server's own account of the error
/// ([`explain_syntax_error`]).
pub async fn run<L: SessionLoan>(loan: L, req: QueryRequest) -> Result<RowStream, QueryError> {
    let admitted = match gate::admit_async(&req.sql, &req.gate).await {
        Ok(admitted) => admitted,
        Err(e @ QueryError::Syntax { .. }) => return Err(explain_syntax_error(loan, &req, e).await),
        Err(e) => return Err(e),
    };
    run_admitted(loan, admitted, req).await
}

/// For a statement the gate refused as a syntax error ([`QueryError::Syntax`], which has the
/// message only: the gate's parser, libpg_query, keeps the error's position in a C struct that
/// the `pg_query` crate does not pass on, has no hint at all, and calling it directly would take
/// `unsafe`): the same error with the server's SQLSTATE, position and hint, as `psql` shows them.
/// The server is asked to parse the text, in a read-only transaction, and nothing more. Any other
/// error is returned as it is; so is the gate's when the server does not refuse the text with a
/// scanner or grammar error of its own (42601 or class 22), e.g. when a newer server grammar
/// accepts it, or the session fails: the statement is refused whatever the server says.
///
/// Why sending a text the gate could not vet is safe: the extended protocol's Parse message
/// (with Describe, as for every admitted statement) runs the raw parser and, only if that
/// succeeds, parse analysis and rewriting; planning waits for Bind and execution for Execute,
/// neither of which is ever sent. The raw parser reads text and builds a tree; parse analysis
/// looks up names in the catalogs, takes the relations' locks (until the rollback that follows
/// at once) and converts literals with their types' input functions, which are built in or
/// installed by a superuser — as it does for every statement Sluice describes. No function of
/// the statement is called, no row is read or written, no trigger fires. In the usual case the
/// raw parser refuses the text as the gate's did and nothing else happens. The session is then
/// rolled back and given back like any other.
pub async fn explain_syntax_error<L: SessionLoan>(loan: L, req: &QueryRequest, refusal: QueryError) -> QueryError {
    let QueryError::Syntax { message, position, .. } = &refusal else {
        return refusal;
    };
    let mut loan: Box<dyn SessionLoan> = Box::new(loan);
    let cancel = loan.session().cancel_handle();
    let options = TransactionOptions {
        isolation: Isolation::RepeatableRead,
        statement_timeout: req.timeout.filter(|t| !t.is_zero()),
        read_settings: Vec::new(),
        application_name: req.application_name.clone(),
        snapshot: None,
    };
    let outcome = loan.session_mut().read_only_transaction_describing(&options, &req.sql).await;
    let (healthy, server) = match outcome {
        Ok((_tx, described)) => (true, described.err()),
        // A session that failed here is closed if its connection is (see `release`).
        Err(_) => (true, None),
    };
    release(loan, Release { healthy, cancel_first: false, largest_row: 0 }, cancel).await;
    let timeout_ms = req.timeout.and_then(|t| u64::try_from(t.as_millis()).ok());
    let server = server.map(|e| QueryError::from_driver(e, 0, 0, timeout_ms));
    syntax_account(message, *position, server)
}

/// The gate's syntax error (`message`, `position`), or the server's `server` error in its
/// place when that is a scanner or grammar error (42601, or class 22: a bad escape).
fn syntax_account(message: &str, position: Option<u32>, server: Option<QueryError>) -> QueryError {
    match server {
        Some(QueryError::Database { code, message, hint, position, .. })
            if code == "42601" || code.starts_with("22") =>
        {
            QueryError::Syntax { message, position, code, hint }
        }
        other => {
            if let Some(other) = other {
                tracing::debug!("the server did not refuse the text as the gate did: {other}");
            }
            QueryError::syntax(message.to_string(), position)
        }
    }
}

/// [`run`] for a caller that already admitted `req.sql` (to refuse a statement before it takes a
/// session or a connection), so the text is parsed once. `admitted` must come from
/// [`gate::admit_with`] on `req.sql`: its offset maps the server's error positions onto that text.
pub async fn run_admitted<L: SessionLoan>(
    loan: L,
    admitted: gate::Admitted,
    req: QueryRequest,
) -> Result<RowStream, QueryError> {
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
            ctx: started_query.ctx,
            deadline: req.timeout.map(|t| started + t + CLIENT_GRACE),
            largest_row: 0,
        }),
        Err(e) => {
            let healthy = !matches!(e, QueryError::Lost { .. });
            release(loan, Release { healthy, cancel_first: false, largest_row: 0 }, cancel).await;
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
            release_later(loan, Release { healthy: true, cancel_first: true, largest_row: 0 }, self.cancel.clone());
        }
    }
}

struct Started {
    columns: Vec<Column>,
    rows: Pin<Box<tokio_postgres::RowStream>>,
    ctx: ErrorContext,
}

/// The settings [`SessionFormat`] is made of, read when the transaction begins.
const FORMAT_SETTINGS: [&str; 5] = ["TimeZone", "DateStyle", "extra_float_digits", "bytea_output", "server_encoding"];

async fn start(
    session: &mut ReadOnlySession,
    admitted: &gate::Admitted,
    req: &QueryRequest,
    timeout_ms: Option<u64>,
) -> Result<Started, QueryError> {
    let options = TransactionOptions {
        isolation: Isolation::RepeatableRead,
        statement_timeout: timeout_ms.map(Duration::from_millis),
        read_settings: FORMAT_SETTINGS.iter().map(|s| s.to_string()).collect(),
        application_name: req.application_name.clone(),
        snapshot: None,
    };
    let sql = admitted.sql.as_str();
    let offset = admitted.char_offset;
    let own = ErrorContext { shift: 0, offset, timeout_ms };
    if let Some(e) = describe::parameter_error(sql, offset) {
        return Err(e);
    }
    // The statement is described in the same round trip as the transaction begins, except in a
    // SQL_ASCII database, where describing a statement whose names are not UTF-8 fails (and
    // aborts the transaction): there the names are read another way first.
    let (tx, described) = if session.info().server_encoding == "SQL_ASCII" {
        (session.read_only_transaction_with(&options).await?, None)
    } else {
        let (tx, described) = session.read_only_transaction_describing(&options, sql).await?;
        (tx, Some(described))
    };
    let setting = |name: &str| tx.setting(name).unwrap_or_default().to_string();
    let fmt = SessionFormat {
        timezone: setting("TimeZone"),
        datestyle: setting("DateStyle"),
        extra_float_digits: setting("extra_float_digits").parse().unwrap_or(0),
        bytea_output: setting("bytea_output"),
        raw_text: setting("server_encoding") == "SQL_ASCII",
    };
    // The transaction stays open until the statement has run: its `ROLLBACK` is queued behind
    // the statement, and the stream's end (or its drop) reads it with `end_transaction`.
    let client = tx.client();

    let utility = admitted.kind != StatementKind::Select;
    let (wire, name_bytes) = match described {
        _ if fmt.raw_text && !utility => describe_sql_ascii(client, sql, offset, timeout_ms).await?,
        Some(described) => (describe::columns_of(described).map_err(|e| own.map(e))?, Vec::new()),
        None => (describe::describe(client, sql).await.map_err(|e| own.map(e))?, Vec::new()),
    };
    let codecs = describe::codecs(&wire, &fmt, req.flavor, utility);
    let (main, shift) = describe::wrap(sql, &codecs);
    let ctx = ErrorContext { shift, offset, timeout_ms };

    // The catalog query goes first and the statement right behind it, without waiting: one
    // round trip for both.
    let known = tx.type_names();
    let (names, rows) = match describe::type_names_sql(&wire, known) {
        Some(names_sql) => {
            let (names, rows) =
                futures_util::future::join(client.simple_query(&names_sql), query(client, &main, ctx)).await;
            // A position in Sluice's own query is no position in the user's text.
            let names = names.map_err(|e| ErrorContext { shift: usize::MAX, offset: 0, timeout_ms }.map(e));
            (Some(names), rows)
        }
        None => (None, query(client, &main, ctx).await),
    };
    // The catalog query ran first: its error, if any, is the cause of the statement's.
    let rows_of_names = match names {
        Some(messages) => sluice_connect::rows_as_text(&messages?),
        None => Vec::new(),
    };
    let names = describe::resolve_type_names(&wire, &rows_of_names, known).map_err(QueryError::Internal)?;
    let rows = Box::pin(rows?);
    // The statement runs: its transaction's end goes out behind it now, and the server rolls
    // back as soon as the last row is sent. The stream's end only reads the answer.
    tx.queue_rollback().await;
    let columns = describe::columns(wire, codecs, names, name_bytes);
    Ok(Started { columns, rows, ctx })
}

/// Describes a statement in a `SQL_ASCII` database, whose RowDescription the server refuses to
/// send when a name is not UTF-8: the names first, as bytea ([`describe::names_sql`]), then the
/// statement with its columns renamed by position. Also returns the bytes of each name that is
/// not UTF-8. One round trip more than elsewhere, in such databases only.
async fn describe_sql_ascii(
    client: &tokio_postgres::Client,
    sql: &str,
    offset: usize,
    timeout_ms: Option<u64>,
) -> Result<(Vec<describe::WireColumn>, Vec<Option<Vec<u8>>>), QueryError> {
    let (names_sql, shift) = describe::names_sql(sql);
    let ctx = ErrorContext { shift, offset, timeout_ms };
    let rows = client.query_typed(&names_sql, &[]).await.map_err(|e| ctx.map(e))?;
    let names = rows
        .iter()
        .map(|r| r.try_get::<_, Vec<u8>>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| QueryError::Internal(format!("reading the column names: {e}")))?;
    let (aliased, shift) = describe::aliased_sql(sql, names.len());
    let ctx = ErrorContext { shift, offset, timeout_ms };
    let mut wire = describe::describe(client, &aliased).await.map_err(|e| ctx.map(e))?;
    let bytes = describe::rename(&mut wire, names).map_err(QueryError::Internal)?;
    Ok((wire, bytes))
}

async fn query(
    client: &tokio_postgres::Client,
    sql: &str,
    ctx: ErrorContext,
) -> Result<tokio_postgres::RowStream, QueryError> {
    let params: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> = Vec::new();
    client.query_typed_raw(sql, params).await.map_err(|e| ctx.map(e))
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
                Some(Some(Ok(r))) => {
                    self.largest_row = self.largest_row.max(row_bytes(&r));
                    rows.push(r);
                }
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
            Some(Ok(r)) => {
                self.largest_row = self.largest_row.max(row_bytes(&r));
                Ok(Some(r))
            }
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
        let how = Release { healthy: !lost, cancel_first: running, largest_row: self.largest_row };
        release(loan, how, self.cancel.clone()).await;
        Ok(())
    }
}

/// The size of a row's DataRow message body past its column count: each column's length word
/// and bytes (what the driver's read buffer had to hold for it).
fn row_bytes(row: &Row) -> usize {
    (0..row.len()).map(|i| 4 + row.try_get::<_, Raw>(i).ok().and_then(|r| r.0).map_or(0, <[u8]>::len)).sum()
}

/// How a request's session is given back.
#[derive(Debug, Clone, Copy)]
struct Release {
    /// False when the session's state is unknown (its connection was lost).
    healthy: bool,
    /// The statement may still be running: cancel it first.
    cancel_first: bool,
    largest_row: usize,
}

/// Cancels (when asked), rolls back and gives the session back — or discards it when its state
/// is unknown, or when a row larger than [`RETIRE_AFTER_ROW_BYTES`] grew its read buffer.
async fn release(mut loan: Box<dyn SessionLoan>, how: Release, cancel: CancelHandle) {
    if how.cancel_first {
        if let Err(e) = cancel.cancel().await {
            tracing::debug!("cancel request failed: {e}");
        }
    }
    if how.largest_row > RETIRE_AFTER_ROW_BYTES {
        tracing::debug!(row_bytes = how.largest_row, "closing a session that received a huge row");
        loan.discard();
        return;
    }
    if !how.healthy || loan.session().is_closed() {
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
        let how = Release { healthy: true, cancel_first: running, largest_row: self.largest_row };
        release_later(loan, how, self.cancel.clone());
    }
}

/// [`release`] from a spawned task, for `Drop`; without a runtime the session is closed instead.
fn release_later(loan: Box<dyn SessionLoan>, how: Release, cancel: CancelHandle) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(release(loan, how, cancel));
        }
        Err(_) => loan.discard(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(code: &str) -> QueryError {
        QueryError::Database {
            code: code.into(),
            message: format!("server says {code}"),
            detail: None,
            hint: Some("a hint".into()),
            position: Some(9),
        }
    }

    #[test]
    fn the_servers_account_replaces_the_gates_only_for_a_scanner_or_grammar_error() {
        for code in ["42601", "22025"] {
            match syntax_account("gate says", Some(3), Some(db(code))) {
                QueryError::Syntax { message, position, code: c, hint } => {
                    assert_eq!(
                        (message.as_str(), position, c.as_str(), hint.as_deref()),
                        (format!("server says {code}").as_str(), Some(9), code, Some("a hint"))
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        // The server parsed the text (a newer grammar) and failed later, or failed otherwise: the
        // gate's refusal stands as it was.
        for server in [Some(db("42P01")), Some(db("42501")), Some(QueryError::Lost { reason: "gone".into() }), None] {
            match syntax_account("gate says", Some(3), server) {
                QueryError::Syntax { message, position, code, hint } => {
                    assert_eq!(
                        (message.as_str(), position, code.as_str(), hint),
                        ("gate says", Some(3), "42601", None)
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
