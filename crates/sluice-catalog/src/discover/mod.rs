//! Running the discovery batch and assembling its rows into a [`Catalog`].
//!
//! Rows are consumed as they stream in (nothing holds a whole result set); what is kept is the
//! catalog itself plus the key arrays needed to name constraint and index columns at the end.
//!
//! Text in a `SQL_ASCII` database arrives escaped (`sql::txt`): the client turns it back into the
//! stored bytes, keeps them when they are UTF-8 (as they often are there), and otherwise replaces
//! each invalid sequence with U+FFFD and flags the object (`lossy_text`). One such byte in a
//! comment never fails a discovery. Every other server encoding is converted to UTF8 by the
//! server, as for any client.
//!
//! A large catalog is read by two sessions at once ([`discover_sharing`]): the server runs one
//! statement at a time per session, and the batch's work is the server's. The first session
//! exports its snapshot; the second imports it (`SET TRANSACTION SNAPSHOT`), so both read the
//! very same catalog, and runs the second half of the batch. Its rows are folded as they arrive,
//! except that rows which attach to a relation wait (unread, held back by the connection) until
//! the first session's relations are all in.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;

use futures_util::{FutureExt, StreamExt};
use sluice_connect::tokio_postgres::{Client, SimpleQueryMessage};
use sluice_connect::{Isolation, PooledSession, ReadOnlySession, TransactionOptions};
use tokio::sync::mpsc;

use crate::model::Catalog;
use crate::sql::{self, Features, Part, Statement};
use crate::CatalogError;

mod assemble;
mod fold;

use fold::{Builder, Cells};

/// Above this many rows in `pg_class` (the server's estimate), a discovery given a second
/// session shares its batch with it: about 5,000 tables with their indexes, sequences and TOAST
/// tables. Below it, one session is done before a second would have logged in.
pub const DEFAULT_SHARE_ABOVE: u64 = 20_000;

/// What to discover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Only these schemas (exact names); empty means every non-system schema.
    pub schemas: Vec<String>,
    /// With [`discover_sharing`]: the estimated number of `pg_class` rows from which the second
    /// session is asked for; 0 asks for it whatever the size.
    pub share_above: u64,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions { schemas: Vec::new(), share_above: DEFAULT_SHARE_ABOVE }
    }
}

/// A second session for a large discovery, on the same source.
#[derive(Debug)]
pub enum SecondSession {
    /// A session of the discovery's own, closed when the discovery is done.
    Own(ReadOnlySession),
    /// A session of a pool, given back when the discovery is done.
    Pooled(PooledSession),
}

impl SecondSession {
    fn session(&mut self) -> &mut ReadOnlySession {
        match self {
            SecondSession::Own(s) => s,
            SecondSession::Pooled(s) => s,
        }
    }
}

/// Gets a [`SecondSession`], or `None` when there is none to be had now (the discovery then runs
/// on one session). Polled only for a large catalog, while the first session's statements
/// already run; left unpolled (and so never opening anything) otherwise.
pub type GetSecondSession = Pin<Box<dyn Future<Output = Option<SecondSession>> + Send>>;

/// Discovers everything `session`'s user can see, in one read-only `REPEATABLE READ`
/// transaction: begun and confirmed read-only (one round trip), then a fixed number of catalog
/// queries sent as one message (one round trip whatever the catalog's size), then one naming the
/// column types those met (one `format_type` per distinct type, not per column), then committed.
///
/// On error the transaction is rolled back and the session stays usable. If the future is
/// dropped midway, the session is left inside the transaction: hand it back to its pool, whose
/// reset ends it, or drop it (the next transaction on the session also ends it first).
pub async fn discover(session: &mut ReadOnlySession, opts: &DiscoverOptions) -> Result<Catalog, CatalogError> {
    run_discovery(session, opts, None).await
}

/// [`discover`], sharing the work of a large catalog with a second session from `second`.
///
/// The first session's batch begins by reading the estimated size of `pg_class`; from
/// `opts.share_above` rows on, it exports its snapshot and `second` is polled. The second
/// session imports the snapshot and runs half of the batch, so the result is the same catalog,
/// read from the same moment, as [`discover`] reads. When no second session comes, or it cannot
/// import the snapshot (its transaction fails to begin), the first session runs the second half
/// after its own: the discovery does not fail for want of a helper. On success the second
/// session's transaction is committed before this returns; on an error it is dropped where it
/// stands (a pooled session is then reset before its next use, as any given back inside a
/// transaction). Behind PgBouncer (`pgbouncer` sessions) `second` is never polled.
pub async fn discover_sharing(
    session: &mut ReadOnlySession,
    opts: &DiscoverOptions,
    second: GetSecondSession,
) -> Result<Catalog, CatalogError> {
    run_discovery(session, opts, Some(second)).await
}

async fn run_discovery(
    session: &mut ReadOnlySession,
    opts: &DiscoverOptions,
    second: Option<GetSecondSession>,
) -> Result<Catalog, CatalogError> {
    let info = session.info().clone();
    if info.server_version_num < 100_000 {
        return Err(CatalogError::UnsupportedVersion { version: info.server_version.clone() });
    }
    // Behind PgBouncer, one server connection: the pooler's are shared with the customer's own
    // clients, and a second transaction could wait in its queue behind the first.
    let second = second.filter(|_| !info.pgbouncer);
    let split_above = second.as_ref().map(|_| opts.share_above);
    let batch =
        sql::batch(Features::for_version(info.server_version_num), session.settings(), &opts.schemas, split_above)?;
    let options = TransactionOptions { isolation: Isolation::RepeatableRead, ..Default::default() };
    let tx = session.read_only_transaction_with(&options).await.map_err(connect_err)?;
    // Known before the first row: every part's text may arrive escaped.
    let mut builder = Builder { escaped: info.server_encoding == "SQL_ASCII", ..Builder::default() };
    let ran = match (batch.second, second) {
        (Some(rest), Some(second)) => run_shared(tx.client(), &batch.first, rest, second, &mut builder).await,
        _ => run(tx.client(), &batch.first, &mut builder).await,
    };
    let ran = match ran {
        Ok(()) => name_types(tx.client(), &mut builder).await,
        Err(e) => Err(e),
    };
    if let Err(e) = ran {
        // Best effort: the batch stopped inside the transaction.
        let _ = tx.rollback().await;
        return Err(e);
    }
    tx.commit().await.map_err(connect_err)?;
    let started = std::time::Instant::now();
    let catalog = builder.finish(&info, opts);
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "catalog assembled");
    catalog
}

fn connect_err(e: sluice_connect::ConnectError) -> CatalogError {
    CatalogError::Connection { reason: e.to_string() }
}

/// Names the column types the batch met, in one more statement on the same transaction.
async fn name_types(client: &Client, builder: &mut Builder) -> Result<(), CatalogError> {
    if builder.types.keys.is_empty() {
        return Ok(());
    }
    let sql = sql::type_names(&builder.types.keys);
    let stream = client.simple_query_raw(&sql).await.map_err(CatalogError::from_driver)?;
    let mut stream = std::pin::pin!(stream);
    while let Some(message) = stream.next().await {
        if let SimpleQueryMessage::Row(row) = message.map_err(CatalogError::from_driver)? {
            let escaped = builder.escaped;
            builder.row(Cells { row: &row, statement: Statement::TypeNames, escaped, lossy: Cell::new(false) })?;
        }
    }
    Ok(())
}

/// One part's progress: which statement the next message belongs to.
struct Progress<'a> {
    part: &'a Part,
    done: usize,
    started: std::time::Instant,
}

impl<'a> Progress<'a> {
    fn new(part: &'a Part) -> Progress<'a> {
        Progress { part, done: 0, started: std::time::Instant::now() }
    }

    /// The statement the next message belongs to (`None` once every one completed).
    fn current(&self) -> Option<Statement> {
        self.part.order.get(self.done).copied()
    }

    fn finished(&self) -> bool {
        self.done == self.part.order.len()
    }

    /// Folds one message; returns the statement a `CommandComplete` ended.
    fn message(
        &mut self,
        message: SimpleQueryMessage,
        builder: &mut Builder,
    ) -> Result<Option<Statement>, CatalogError> {
        match message {
            SimpleQueryMessage::Row(row) => {
                let statement = self.current().ok_or(CatalogError::Protocol {
                    statement: "batch",
                    detail: "more result sets than statements".into(),
                })?;
                let escaped = builder.escaped;
                builder.row(Cells { row: &row, statement, escaped, lossy: Cell::new(false) })?;
                Ok(None)
            }
            SimpleQueryMessage::CommandComplete(rows) => {
                let statement = self.current();
                if let Some(statement) = statement {
                    builder.statement_done(statement);
                }
                tracing::debug!(
                    statement = statement.map_or("?", |s| s.name()),
                    rows,
                    elapsed_ms = self.started.elapsed().as_millis() as u64,
                    "catalog statement done"
                );
                self.done += 1;
                Ok(statement)
            }
            _ => Ok(None),
        }
    }

    fn check_complete(&self) -> Result<(), CatalogError> {
        if self.finished() {
            return Ok(());
        }
        Err(CatalogError::Protocol {
            statement: "batch",
            detail: format!("{} of {} statements completed", self.done, self.part.order.len()),
        })
    }
}

async fn run(client: &Client, part: &Part, builder: &mut Builder) -> Result<(), CatalogError> {
    let stream = client.simple_query_raw(&part.sql).await.map_err(CatalogError::from_driver)?;
    let mut stream = std::pin::pin!(stream);
    let mut progress = Progress::new(part);
    while let Some(message) = stream.next().await {
        progress.message(message.map_err(CatalogError::from_driver)?, builder)?;
    }
    progress.check_complete()
}

/// The first part on `client`; the second on a second session if the first part's
/// [`Statement::Split`] row exported a snapshot and a session comes, else on `client` after the
/// first.
async fn run_shared(
    client: &Client,
    first: &Part,
    rest: Part,
    get_second: GetSecondSession,
    builder: &mut Builder,
) -> Result<(), CatalogError> {
    let stream = client.simple_query_raw(&first.sql).await.map_err(CatalogError::from_driver)?;
    let mut stream = std::pin::pin!(stream);
    let mut progress = Progress::new(first);
    let mut get_second = Some(get_second);
    let mut helper: Option<Helper> = None;
    let mut relations_in = false;
    let mut rest_here = false;
    loop {
        let read_helper = helper.as_ref().is_some_and(|h| h.may_read(&rest, relations_in));
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { break };
                let message = message.map_err(CatalogError::from_driver)?;
                if let (Some(Statement::Split), SimpleQueryMessage::Row(row)) = (progress.current(), &message) {
                    let snapshot = row.try_get(0).map_err(CatalogError::from_driver)?;
                    match (snapshot, get_second.take()) {
                        (Some(snapshot), Some(get)) => {
                            helper = Some(Helper::start(get, snapshot.to_string(), rest.sql.clone()));
                        }
                        _ => rest_here = true,
                    }
                    continue;
                }
                if progress.message(message, builder)? == Some(Statement::Relations) {
                    relations_in = true;
                }
            }
            event = recv(&mut helper), if read_helper => {
                if let Some(h) = helper.as_mut() {
                    if h.event(event, &rest, builder)? {
                        rest_here |= !h.ready;
                        helper = None;
                    }
                }
            }
        }
    }
    progress.check_complete()?;
    // A second session that has not begun yet is waited for (its login is bounded by the
    // connect timeout): asked for only for a large catalog, it is all but always there by now.
    if let Some(mut h) = helper {
        loop {
            let event = h.rx.recv().await;
            if h.event(event, &rest, builder)? {
                if !h.ready {
                    rest_here = true;
                }
                break;
            }
        }
    }
    // No second session ran it (or none was asked for: no split row came, which a server that
    // ran the batch cannot do, but then nothing of it may be missing either).
    if rest_here || get_second.is_some() {
        run(client, &rest, builder).await?;
    }
    Ok(())
}

async fn recv(helper: &mut Option<Helper>) -> Option<Event> {
    match helper {
        Some(h) => h.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the second session's task reports, in order.
enum Event {
    /// Its transaction began on the imported snapshot; the part's messages follow.
    Ready,
    /// No second session, or its transaction did not begin: the part must run on the first.
    Unavailable,
    /// Messages of one statement, in order (see [`BATCH`]).
    Messages(Vec<SimpleQueryMessage>),
    Failed(CatalogError),
}

/// At most this many messages go over the channel at once: one wake-up of the folding task for
/// each, not one per row (the two tasks may run on two threads). A batch never spans two
/// statements, so the folding task can hold back a statement's rows until their relations are in.
const BATCH: usize = 256;

/// The second session's task, seen from the first.
struct Helper {
    rx: mpsc::Receiver<Event>,
    ready: bool,
    done: usize,
    started: std::time::Instant,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Helper {
    fn drop(&mut self) {
        // A discovery that ended early (an error, or its future dropped) stops its helper too;
        // the helper's session is dropped with its task.
        self.task.abort();
    }
}

impl Helper {
    /// Starts the task: get a session, begin on `snapshot`, run `sql`, report every message.
    fn start(get: GetSecondSession, snapshot: String, sql: String) -> Helper {
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(async move {
            let Some(mut session) = get.await else {
                let _ = tx.send(Event::Unavailable).await;
                return;
            };
            let options = TransactionOptions {
                isolation: Isolation::RepeatableRead,
                snapshot: Some(snapshot),
                ..Default::default()
            };
            let transaction = match session.session().read_only_transaction_with(&options).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!("the second discovery session could not begin: {e}");
                    let _ = tx.send(Event::Unavailable).await;
                    return;
                }
            };
            if tx.send(Event::Ready).await.is_err() {
                let _ = transaction.rollback().await;
                return;
            }
            let failed = match transaction.client().simple_query_raw(&sql).await {
                Err(e) => Some(CatalogError::from_driver(e)),
                Ok(stream) => {
                    let mut stream = std::pin::pin!(stream);
                    let mut failed = None;
                    let mut batch = Vec::with_capacity(BATCH);
                    loop {
                        // Whatever has arrived joins the batch; it goes when nothing more has,
                        // at a statement's end, or when full.
                        let next = if batch.is_empty() {
                            stream.next().await
                        } else {
                            match stream.next().now_or_never() {
                                Some(next) => next,
                                None => {
                                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                                    if tx.send(Event::Messages(full)).await.is_err() {
                                        break;
                                    }
                                    continue;
                                }
                            }
                        };
                        match next {
                            None => break,
                            Some(Err(e)) => {
                                failed = Some(CatalogError::from_driver(e));
                                break;
                            }
                            Some(Ok(m)) => {
                                let ends = matches!(m, SimpleQueryMessage::CommandComplete(_));
                                batch.push(m);
                                if ends || batch.len() >= BATCH {
                                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                                    if tx.send(Event::Messages(full)).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    if failed.is_none() && !batch.is_empty() {
                        let _ = tx.send(Event::Messages(batch)).await;
                    }
                    failed
                }
            };
            let ended = match failed {
                None => transaction.commit().await.map_err(connect_err),
                Some(e) => {
                    let _ = transaction.rollback().await;
                    Err(e)
                }
            };
            if let Err(e) = ended {
                let _ = tx.send(Event::Failed(e)).await;
            }
        });
        Helper { rx, ready: false, done: 0, started: std::time::Instant::now(), task }
    }

    /// Whether its next event may be folded now: before it began, always (nothing to fold);
    /// then, unless the statement it is on attaches rows to relations not all in yet (its
    /// messages then wait in the connection, and the server behind them).
    fn may_read(&self, rest: &Part, relations_in: bool) -> bool {
        if !self.ready || relations_in {
            return true;
        }
        rest.order.get(self.done).is_none_or(|s| !s.needs_relations())
    }

    /// Handles one event of the part `rest`; true once the helper is over (its part complete,
    /// or it never began).
    fn event(&mut self, event: Option<Event>, rest: &Part, builder: &mut Builder) -> Result<bool, CatalogError> {
        match event {
            Some(Event::Ready) => {
                self.ready = true;
                Ok(false)
            }
            Some(Event::Unavailable) => Ok(true),
            Some(Event::Failed(e)) => Err(e),
            Some(Event::Messages(messages)) => {
                let mut progress = Progress { part: rest, done: self.done, started: self.started };
                for message in messages {
                    progress.message(message, builder)?;
                }
                self.done = progress.done;
                Ok(false)
            }
            None if !self.ready => Ok(true),
            None => {
                let progress = Progress { part: rest, done: self.done, started: self.started };
                progress.check_complete().map(|()| true)
            }
        }
    }
}
