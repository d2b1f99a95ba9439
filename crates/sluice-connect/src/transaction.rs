//! Read-only transactions, and what makes them safe behind PgBouncer in transaction mode.
//!
//! Behind transaction pooling, each transaction may run on another server connection, and server
//! connections are shared with other clients. PgBouncer 1.18 (Debian's) knows nothing of prepared
//! statements, and tokio-postgres prepares named statements (`s0`, `s1`, …) — for
//! `Client::prepare` and, cached for the client's lifetime, for its type lookups (the first time
//! a result column has a non-built-in type, such as an enum). Left alone, that fails two ways:
//! "prepared statement "s3" does not exist" when a cached statement is used on another server
//! connection, and "… already exists" when another client's leftover has the name.
//!
//! So in PgBouncer mode a transaction is:
//!
//! ```sql
//! BEGIN READ ONLY; SET LOCAL statement_timeout = …; SET LOCAL …;
//! PREPARE "s3" AS <the driver's type-lookup query>;  -- each one the driver has cached
//! SAVEPOINT sluice_work; SELECT current_setting('transaction_read_only');
//! … the work …
//! ROLLBACK TO SAVEPOINT sluice_work;  -- usable again even after an error
//! SELECT name, … FROM pg_prepared_statements WHERE prepare_time >= now();
//! DEALLOCATE "s3"; DEALLOCATE "s7"; COMMIT;  -- nothing of ours outlives the transaction
//! ```
//!
//! Type-lookup statements the driver prepared during the transaction join the replay list; every
//! statement prepared during it is deallocated before the server connection goes back to the
//! pool. Statements from `Client::prepare` therefore live for one transaction only.
//! Nothing is set at session level; `transaction_read_only` is confirmed in every transaction.

use sluice_core::quote::{ident, literal};
use tokio_postgres::{Client, Statement};

use crate::session::{prepared_left_after_reset, read_queued_end, session_err, text_rows};
use crate::{ConnectError, ReadOnlySession};

/// A cached driver statement to re-prepare in each transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replay {
    name: String,
    sql: String,
}

/// tokio-postgres 0.7's type-lookup queries (`prepare.rs`): the statements it caches per client.
/// The PgBouncer test with two enum types on two server connections fails if these drift.
const DRIVER_TYPE_LOOKUPS: [&str; 5] = [
    "SELECT t.typname, t.typtype, t.typelem, r.rngsubtype, t.typbasetype, n.nspname, t.typrelid\nFROM pg_catalog.pg_type t\nLEFT OUTER JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid\nINNER JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid\nWHERE t.oid = $1\n",
    "SELECT t.typname, t.typtype, t.typelem, NULL::OID, t.typbasetype, n.nspname, t.typrelid\nFROM pg_catalog.pg_type t\nINNER JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid\nWHERE t.oid = $1\n",
    "SELECT enumlabel\nFROM pg_catalog.pg_enum\nWHERE enumtypid = $1\nORDER BY enumsortorder\n",
    "SELECT enumlabel\nFROM pg_catalog.pg_enum\nWHERE enumtypid = $1\nORDER BY oid\n",
    "SELECT attname, atttypid\nFROM pg_catalog.pg_attribute\nWHERE attrelid = $1\nAND NOT attisdropped\nAND attnum > 0\nORDER BY attnum\n",
];

const SAVEPOINT: &str = "sluice_work";

/// The isolation level of a [`ReadOnlyTransaction`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// PostgreSQL's default: each statement sees what was committed before it began.
    #[default]
    ReadCommitted,
    /// One snapshot for the whole transaction (taken by the confirming statement).
    RepeatableRead,
    Serializable,
}

impl Isolation {
    fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

/// How [`ReadOnlySession::read_only_transaction_with`] begins a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionOptions {
    pub isolation: Isolation,
    /// This transaction's `statement_timeout` instead of the session's.
    pub statement_timeout: Option<std::time::Duration>,
    /// Settings to read (`current_setting`) in the statement that confirms the transaction is
    /// read-only, so a caller needing them spends no round trip of its own; see
    /// [`ReadOnlyTransaction::setting`].
    pub read_settings: Vec<String>,
    /// This transaction's `application_name` (`SET LOCAL`, so it also holds behind PgBouncer), for
    /// a DBA watching `pg_stat_activity`: the service names the person who runs the statement.
    pub application_name: Option<String>,
    /// A snapshot exported by another transaction (`pg_export_snapshot()`), imported first
    /// (`SET TRANSACTION SNAPSHOT`): this transaction then sees exactly what that one sees. Needs
    /// `REPEATABLE READ` or `SERIALIZABLE`, and the exporting transaction still open.
    pub snapshot: Option<String>,
}

/// A read-only transaction on a [`ReadOnlySession`], begun and confirmed by the server
/// (`transaction_read_only = on`, read by a snapshot-taking statement, after which `SET
/// TRANSACTION READ WRITE` is refused) before it is handed out. It is the only way to reach the
/// driver's client, in every mode: behind PgBouncer in transaction mode there is no session-level
/// guard, so a client reachable outside a transaction could write.
///
/// ```compile_fail
/// // The session's client is not public: SQL runs only inside a confirmed read-only transaction.
/// async fn write(session: &sluice_connect::ReadOnlySession) {
///     let _ = session.client().simple_query("CREATE TABLE t (x int)").await;
/// }
/// ```
///
/// End it with [`ReadOnlyTransaction::commit`] or [`ReadOnlyTransaction::rollback`], or queue
/// its end behind a running statement with [`ReadOnlyTransaction::queue_rollback`]; one dropped
/// unfinished is rolled back (and, behind PgBouncer, cleaned up) when the session is next used,
/// ended with [`ReadOnlySession::end_transaction`], or returned to its pool. The client is the
/// driver's own, so SQL sent through it can still end the transaction itself (`COMMIT`): Sluice's
/// crates never send transaction control through it, and user SQL reaches it only through the
/// statement gate, which admits none. Behind PgBouncer, a transaction ended that way is found out
/// when the guard ends (its savepoint is gone) and the session is closed, never reused.
#[derive(Debug)]
pub struct ReadOnlyTransaction<'a> {
    session: &'a mut ReadOnlySession,
    settings: Vec<(String, String)>,
}

impl ReadOnlyTransaction<'_> {
    /// The client, inside this transaction. With PgBouncer, named statements from
    /// `Client::prepare` are valid until the transaction ends.
    pub fn client(&self) -> &Client {
        &self.session.client
    }

    /// The session this transaction runs on (its facts and limits).
    pub fn info(&self) -> &crate::SessionInfo {
        self.session.info()
    }

    /// The built-in types' names this session has learned.
    pub fn type_names(&self) -> &crate::TypeNames {
        &self.session.type_names
    }

    /// The value of a setting named in [`TransactionOptions::read_settings`], as the
    /// transaction's first statement saw it.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub async fn commit(self) -> Result<(), ConnectError> {
        self.session.finish(true).await
    }

    pub async fn rollback(self) -> Result<(), ConnectError> {
        self.session.finish(false).await
    }

    /// Sends the transaction's `ROLLBACK` now, behind everything already sent, and does not
    /// wait for it: the server runs it as soon as what came before has ended (a statement whose
    /// rows are still streaming, say), so ending the transaction later costs no round trip of
    /// its own. [`ReadOnlySession::end_transaction`] reads its answer; until then the session
    /// counts as inside the transaction. Behind PgBouncer nothing is sent (ending a transaction
    /// there deallocates its statements first), and `end_transaction` ends it as usual.
    pub async fn queue_rollback(self) {
        let session = self.session;
        if session.pgbouncer || session.queued_end.is_some() {
            return;
        }
        // Resolves as soon as the message is queued on the connection: no answer is awaited.
        match session.client.simple_query_raw("ROLLBACK").await {
            Ok(answer) => session.queued_end = Some(answer),
            // The connection is gone: `end_transaction` finds that out and the session is
            // discarded.
            Err(e) => tracing::debug!("could not queue the rollback: {e}"),
        }
    }
}

impl ReadOnlySession {
    /// Begins a read-only transaction (`READ COMMITTED`) carrying Sluice's time limits (`SET
    /// LOCAL`), confirmed read-only by the server. The one way to run work, correct both on a
    /// direct connection and behind PgBouncer in transaction mode.
    pub async fn read_only_transaction(&mut self) -> Result<ReadOnlyTransaction<'_>, ConnectError> {
        self.read_only_transaction_with(&TransactionOptions::default()).await
    }

    /// [`ReadOnlySession::read_only_transaction`] with an isolation level, a statement timeout
    /// of its own and settings read on the way (still one round trip).
    pub async fn read_only_transaction_with(
        &mut self,
        options: &TransactionOptions,
    ) -> Result<ReadOnlyTransaction<'_>, ConnectError> {
        self.begin(options, None).await.map(|(tx, _)| tx)
    }

    /// [`ReadOnlySession::read_only_transaction_with`], and `sql` described by the server in the
    /// same round trip: its Parse and Describe go out right behind the transaction's batch
    /// (nothing is executed before the server confirmed the transaction read-only). The
    /// description's own result comes second, for the caller to map. Behind PgBouncer the two
    /// are sent one after the other.
    pub async fn read_only_transaction_describing(
        &mut self,
        options: &TransactionOptions,
        sql: &str,
    ) -> Result<(ReadOnlyTransaction<'_>, Result<Statement, tokio_postgres::Error>), ConnectError> {
        let (tx, described) = self.begin(options, Some(sql)).await?;
        let described = match described {
            Some(d) => d,
            None => tx.client().prepare(sql).await,
        };
        Ok((tx, described))
    }

    async fn begin(
        &mut self,
        options: &TransactionOptions,
        describe: Option<&str>,
    ) -> Result<(ReadOnlyTransaction<'_>, Option<Result<Statement, tokio_postgres::Error>>), ConnectError> {
        if self.poisoned {
            return Err(session_err("this session could not clean up after an earlier transaction; take a new one"));
        }
        // A reset the pool left to do goes first in this transaction's batch (it begins with
        // `ROLLBACK`, so it also ends a transaction left open): one round trip for both.
        let folded_reset = self.reset_pending && !self.pgbouncer;
        self.reset_pending = false;
        if folded_reset {
            self.in_transaction = false;
        } else if self.in_transaction {
            self.finish(false).await?;
        }
        let mut limits = self.settings.clone();
        if let Some(t) = options.statement_timeout {
            limits.statement_timeout = t;
        }
        // Folded only onto a session known to be outside a transaction: no `ROLLBACK` first.
        let mut sql = if folded_reset { self.reset_sql(false) } else { String::new() };
        sql.push_str(&format!("BEGIN ISOLATION LEVEL {} READ ONLY; ", options.isolation.sql()));
        // Before any statement that takes a snapshot, as the server requires.
        if let Some(snapshot) = &options.snapshot {
            sql.push_str(&format!("SET TRANSACTION SNAPSHOT {}; ", literal(snapshot)));
        }
        sql.push_str(&limits.set_local_sql());
        if let Some(name) = &options.application_name {
            sql.push_str(&format!(" SET LOCAL application_name = {};", literal(name)));
        }
        if self.pgbouncer {
            for r in &self.replay {
                sql.push_str(&format!(" PREPARE {} AS {};", ident(&r.name), r.sql));
            }
            sql.push_str(&format!(" SAVEPOINT {SAVEPOINT};"));
        }
        // A snapshot-taking statement: from here on `SET TRANSACTION READ WRITE` is refused.
        sql.push_str(" SELECT pg_catalog.current_setting('transaction_read_only')");
        for name in &options.read_settings {
            sql.push_str(&format!(", pg_catalog.current_setting({})", literal(name)));
        }
        sql.push(';');
        self.in_transaction = true;
        let (rows, described) = match describe.filter(|_| !self.pgbouncer) {
            Some(statement) => {
                let (rows, described) =
                    futures_util::future::join(text_rows(&self.client, &sql), self.client.prepare(statement)).await;
                (rows, Some(described))
            }
            None => (text_rows(&self.client, &sql).await, None),
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                // Whatever ran of the batch is rolled back; a replay that collided makes the
                // session unfit for reuse (a fresh client has no replay list).
                let _ = text_rows(&self.client, "ROLLBACK").await;
                self.in_transaction = false;
                // A reset that may not have run leaves the session untrusted too.
                self.poisoned = self.pgbouncer || folded_reset;
                return Err(e);
            }
        };
        if folded_reset {
            // The reset's row, then the confirming row. SQL-level prepared statements left by
            // the last user (a function may `EXECUTE 'PREPARE …'`) are removed here, inside the
            // read-only transaction, by name: `DEALLOCATE ALL` would also remove the driver's
            // own, its cached type lookups and the statement being described.
            let reset_rows = rows.split_last().map(|(_, before)| before).unwrap_or_default();
            let cleaned = match prepared_left_after_reset(reset_rows) {
                Ok(false) => Ok(()),
                Ok(true) => deallocate_sql_level(&self.client).await,
                Err(e) => Err(e),
            };
            if let Err(e) = cleaned {
                let _ = self.finish(false).await;
                self.poisoned = true;
                return Err(e);
            }
        }
        let confirm = rows.last().cloned().unwrap_or_default();
        if confirm.first().map(String::as_str) != Some("on") {
            let _ = self.finish(false).await;
            return Err(session_err("the server did not confirm transaction_read_only = on"));
        }
        let settings = options.read_settings.iter().cloned().zip(confirm.into_iter().skip(1)).collect();
        Ok((ReadOnlyTransaction { session: self, settings }, described))
    }

    /// Ends the transaction left open by a [`ReadOnlyTransaction`] that was let go unfinished
    /// (e.g. while a row stream it started is still being read): rolls it back and, behind
    /// PgBouncer, deallocates what was prepared in it. Without one, sends a `ROLLBACK` anyway.
    pub async fn end_transaction(&mut self) -> Result<(), ConnectError> {
        if self.in_transaction {
            self.finish(false).await
        } else {
            text_rows(&self.client, "ROLLBACK").await.map(drop)
        }
    }

    /// Ends the open transaction; behind PgBouncer, first deallocates every statement prepared
    /// during it and remembers the driver's type lookups for the next one.
    pub(crate) async fn finish(&mut self, commit: bool) -> Result<(), ConnectError> {
        // A queued `ROLLBACK` was the end: only its answer is left to read. (Only a guard queues
        // one, and it is gone then, so nothing can ask for a commit after it.)
        if let Some(queued) = self.queued_end.take() {
            let ended = read_queued_end(queued).await;
            self.in_transaction = ended.is_err();
            return ended;
        }
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        if !self.pgbouncer {
            text_rows(&self.client, end).await?;
            self.in_transaction = false;
            return Ok(());
        }
        let listed = text_rows(
            &self.client,
            &format!(
                "ROLLBACK TO SAVEPOINT {SAVEPOINT}; \
                 SELECT name, from_sql::text, statement FROM pg_prepared_statements WHERE prepare_time >= now();"
            ),
        )
        .await;
        let rows = match listed {
            Ok(rows) => rows,
            Err(e) => {
                // The savepoint is gone or the connection is: the statements cannot be found, so
                // this session must not be trusted with a shared server connection again.
                let _ = text_rows(&self.client, "ROLLBACK").await;
                self.in_transaction = false;
                self.poisoned = true;
                return Err(e);
            }
        };
        let mut sql = String::new();
        for row in &rows {
            let [name, from_sql, statement] = row.as_slice() else {
                continue;
            };
            if from_sql == "false"
                && DRIVER_TYPE_LOOKUPS.contains(&statement.as_str())
                && !self.replay.iter().any(|r| &r.name == name)
            {
                self.replay.push(Replay { name: name.clone(), sql: statement.clone() });
            }
            sql.push_str(&format!("DEALLOCATE {}; ", ident(name)));
        }
        sql.push_str(end);
        let result = text_rows(&self.client, &sql).await;
        self.in_transaction = false;
        if result.is_err() {
            self.poisoned = true;
        }
        result.map(drop)
    }
}

/// Deallocates the SQL-level prepared statements (`PREPARE`) of the session, by the names the
/// server quotes, and none of the driver's own.
async fn deallocate_sql_level(client: &Client) -> Result<(), ConnectError> {
    let names =
        text_rows(client, "SELECT pg_catalog.quote_ident(name) FROM pg_catalog.pg_prepared_statements WHERE from_sql")
            .await?;
    let sql: String = names.iter().filter_map(|r| r.first()).map(|name| format!("DEALLOCATE {name}; ")).collect();
    if sql.is_empty() {
        return Ok(());
    }
    text_rows(client, &sql).await.map(drop)
}
