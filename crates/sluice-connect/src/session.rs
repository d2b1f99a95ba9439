use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::HostPort;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::cancel::CancelHandle;
use crate::tls::TlsInfo;
use crate::ConnectError;

/// Server-side limits every Sluice session carries. Defaults: statement 5 min, lock 5 s, idle in
/// transaction 60 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub idle_in_transaction_timeout: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            statement_timeout: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(5),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl SessionSettings {
    /// The same limits for one transaction only (`SET LOCAL`): what PgBouncer mode relies on.
    pub(crate) fn set_local_sql(&self) -> String {
        format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}; \
             SET LOCAL idle_in_transaction_session_timeout = {};",
            self.statement_timeout.as_millis(),
            self.lock_timeout.as_millis(),
            self.idle_in_transaction_timeout.as_millis()
        )
    }

    /// The same settings as [`SessionSettings::set_sql`], as one `SELECT` list of `set_config`
    /// calls (one statement instead of four; a reset runs on every reuse). The first value is
    /// `default_transaction_read_only` as the server holds it once set.
    fn set_config_list(&self) -> String {
        format!(
            "pg_catalog.set_config('default_transaction_read_only', 'on', false), \
             pg_catalog.set_config('statement_timeout', '{}', false), \
             pg_catalog.set_config('lock_timeout', '{}', false), \
             pg_catalog.set_config('idle_in_transaction_session_timeout', '{}', false)",
            self.statement_timeout.as_millis(),
            self.lock_timeout.as_millis(),
            self.idle_in_transaction_timeout.as_millis()
        )
    }

    /// The `SET` statements that make a session Sluice's: read-only by default, bounded in time.
    fn set_sql(&self) -> String {
        format!(
            "SET default_transaction_read_only = on; SET statement_timeout = {}; SET lock_timeout = {}; \
             SET idle_in_transaction_session_timeout = {};",
            self.statement_timeout.as_millis(),
            self.lock_timeout.as_millis(),
            self.idle_in_transaction_timeout.as_millis()
        )
    }
}

/// What Sluice learned about the server while opening the session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    pub host: String,
    pub port: u16,
    /// `server_version`, e.g. `15.4 (Debian 15.4-1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. 150004.
    pub server_version_num: u32,
    pub backend_pid: i32,
    pub in_recovery: bool,
    /// The server's `default_transaction_read_only` before Sluice's own `SET`.
    pub server_default_read_only: bool,
    pub tls: Option<TlsInfo>,
    /// Opened in PgBouncer mode (see [`ReadOnlySession::read_only_transaction`]); `backend_pid`
    /// is then only that of the server connection that answered the first query.
    pub pgbouncer: bool,
    /// The database's `server_encoding` (e.g. `UTF8`, or `SQL_ASCII`, whose text may be in any
    /// encoding).
    pub server_encoding: String,
}

/// A session whose every transaction is read-only and whose time is bounded. The only way to get
/// one is [`crate::Connector::connect`], which applies the settings first.
///
/// Work runs only in a [`crate::ReadOnlyTransaction`] ([`ReadOnlySession::read_only_transaction`]),
/// the one thing that hands out the driver's client, after the server confirmed the transaction
/// is read-only. Directly connected sessions are also read-only at session level
/// (`default_transaction_read_only = on`, confirmed by the server when the session opens and
/// after every reset). Behind PgBouncer in transaction mode (`pgbouncer = true` on the source)
/// nothing survives a transaction — each one may run on another server connection — so Sluice
/// sets nothing at session level and the confirmed transaction is the only guard.
pub struct ReadOnlySession {
    pub(crate) client: Client,
    info: SessionInfo,
    cancel: CancelHandle,
    pub(crate) settings: SessionSettings,
    connection: JoinHandle<()>,
    connection_error: Arc<Mutex<Option<String>>>,
    pub(crate) pgbouncer: bool,
    /// A transaction was begun and not yet ended (its guard was dropped, or ending it failed).
    pub(crate) in_transaction: bool,
    /// The answer to a `ROLLBACK` already sent behind the transaction's last statement
    /// ([`crate::ReadOnlyTransaction::queue_rollback`]), still to be read.
    pub(crate) queued_end: Option<tokio_postgres::SimpleQueryStream>,
    /// The session can no longer be trusted to leave shared server connections clean.
    pub(crate) poisoned: bool,
    /// The pool handed the session out with its reset still to do: the next transaction's first
    /// batch carries it (see [`ReadOnlySession::reset_sql`]).
    pub(crate) reset_pending: bool,
    /// PgBouncer mode: the driver's cached type-lookup statements, re-prepared in every
    /// transaction (see `transaction.rs`).
    pub(crate) replay: Vec<crate::transaction::Replay>,
    /// Built-in types' SQL names as this session's server gave them (see [`TypeNames`]).
    pub(crate) type_names: TypeNames,
}

/// The SQL names (`format_type(oid, NULL)`) of built-in types, as a session's server gave them,
/// so that they are read from the catalog once per session rather than once per statement.
///
/// Only OIDs below 10,000 are kept: those are fixed in PostgreSQL's source, the same type on
/// every server that has it, and no user can rename them. A type made in a database (an enum, a
/// domain, an extension's type) can be renamed at any time and is always read afresh. The memory
/// belongs to one session, whose settings the reset restores before every use, so a setting that
/// changes how names are spelt (`quote_all_identifiers`, set for a database or role) is the same
/// for everything it holds.
#[derive(Debug, Default)]
pub struct TypeNames(Mutex<std::collections::HashMap<u32, String>>);

impl TypeNames {
    /// Below this, OIDs are assigned by hand in PostgreSQL's source (`FirstGenbkiObjectId`).
    pub const FIRST_ASSIGNED_OID: u32 = 10_000;

    /// Whether the name of `oid` is one this memory keeps.
    pub fn keeps(oid: u32) -> bool {
        oid < Self::FIRST_ASSIGNED_OID
    }

    /// Whether the name of `oid` is known (without copying it).
    pub fn knows(&self, oid: u32) -> bool {
        self.0.lock().is_ok_and(|names| names.contains_key(&oid))
    }

    pub fn get(&self, oid: u32) -> Option<String> {
        self.0.lock().ok().and_then(|names| names.get(&oid).cloned())
    }

    /// Remembers a built-in type's name; any other OID is ignored.
    pub fn learn(&self, oid: u32, name: &str) {
        if !Self::keeps(oid) {
            return;
        }
        if let Ok(mut names) = self.0.lock() {
            names.entry(oid).or_insert_with(|| name.to_string());
        }
    }
}

impl std::fmt::Debug for ReadOnlySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlySession").field("info", &self.info).finish_non_exhaustive()
    }
}

impl ReadOnlySession {
    /// Applies the read-only settings on a freshly authenticated client and reads what the
    /// session needs to know. Fails (and the client is dropped) unless the server confirms
    /// `default_transaction_read_only = on`.
    /// In PgBouncer mode nothing is set (a session-level `SET` would land on whichever server
    /// connection answers, and stay there for other clients).
    pub(crate) async fn establish(
        client: Client,
        connection: (JoinHandle<()>, Arc<Mutex<Option<String>>>),
        host: HostPort,
        tls: Option<TlsInfo>,
        cancel: CancelHandle,
        settings: SessionSettings,
        pgbouncer: bool,
    ) -> Result<ReadOnlySession, ConnectError> {
        let facts_sql = "SELECT pg_is_in_recovery()::text, current_setting('default_transaction_read_only'), \
             current_setting('server_version_num'), current_setting('server_version'), pg_backend_pid()::text, \
             current_setting('server_encoding');";
        let sql = if pgbouncer {
            facts_sql.to_string()
        } else {
            format!("{facts_sql} {} SHOW default_transaction_read_only;", settings.set_sql())
        };
        let rows = text_rows(&client, &sql).await?;
        let facts = rows.first().ok_or_else(|| session_err("the server returned no session facts"))?;
        let confirm = rows.last().and_then(|r| r.first()).map(String::as_str);
        if !pgbouncer && confirm != Some("on") {
            return Err(session_err("the server did not confirm default_transaction_read_only = on"));
        }
        let field = |i: usize| facts.get(i).cloned().unwrap_or_default();
        let info = SessionInfo {
            host: host.host,
            port: host.port,
            in_recovery: field(0) == "true",
            server_default_read_only: field(1) == "on",
            server_version_num: field(2).parse().unwrap_or(0),
            server_version: field(3),
            backend_pid: field(4).parse().unwrap_or(0),
            server_encoding: field(5),
            tls,
            pgbouncer,
        };
        Ok(ReadOnlySession {
            client,
            info,
            cancel,
            settings,
            connection: connection.0,
            connection_error: connection.1,
            pgbouncer,
            in_transaction: false,
            queued_end: None,
            poisoned: false,
            reset_pending: false,
            replay: Vec::new(),
            type_names: TypeNames::default(),
        })
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The limits this session carries. Behind PgBouncer they are not set on the session, so a
    /// caller that sends its own `BEGIN … COMMIT` batch applies them with `SET LOCAL`.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// A handle that cancels whatever this session is running, from any task.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Whether the session may be handed out again: open, and trusted to keep shared server
    /// connections clean.
    pub fn is_reusable(&self) -> bool {
        !self.client.is_closed() && !self.poisoned
    }

    /// Why the connection to the server ended, once it has — e.g. that the SSH session to the
    /// bastion died. The driver's own error for the interrupted query only says "connection
    /// closed".
    pub fn connection_error(&self) -> Option<String> {
        self.connection_error.lock().ok().and_then(|e| e.clone())
    }

    /// Returns the session to the state `establish` left it in: ends any transaction, resets every
    /// setting, role, cursor, listener, advisory lock, temporary object and sequence cache, then
    /// re-applies the read-only settings. Fails when SQL-level prepared statements exist (the
    /// session is then discarded rather than reused). In PgBouncer mode there is no session state
    /// to reset, but a transaction may be open — one whose guard or whose future was dropped
    /// mid-flight — and it would pin its server connection to whoever takes the session next:
    /// Sluice's own is cleaned up and rolled back, and a `ROLLBACK` is sent even when none is
    /// known to be open (the driver does not say), so the session is never handed out inside
    /// one. Any failure on the way discards the session.
    pub(crate) async fn reset(&mut self) -> Result<(), ConnectError> {
        if self.poisoned {
            return Err(session_err("the session was marked unusable"));
        }
        if self.pgbouncer {
            if self.in_transaction {
                self.finish(false).await?;
            }
            return text_rows(&self.client, "ROLLBACK").await.map(drop);
        }
        // A rollback already on its way is let through first; the reset ends any transaction
        // itself, so its answer does not matter.
        if let Some(queued) = self.queued_end.take() {
            let _ = read_queued_end(queued).await;
        }
        self.in_transaction = false;
        self.reset_pending = false;
        // Whatever the last user left open is ended first: this path is taken when a transaction
        // may be open, or the session sat idle.
        let rows = text_rows(&self.client, &self.reset_sql(true)).await?;
        if prepared_left_after_reset(&rows)? {
            return Err(session_err("the session holds SQL-level prepared statements"));
        }
        Ok(())
    }

    /// The reset's batch (directly connected sessions only): one result row, which
    /// [`prepared_left_after_reset`] reads, and no transaction left open — it ends with its own
    /// `COMMIT`, so a `BEGIN` with an isolation level may follow it in the same batch.
    ///
    /// `end_transaction` puts a `ROLLBACK` first, for a session that may be inside a transaction.
    /// Without one it is left out: on a session known to be outside any, it would only make the
    /// server log a warning ("there is no transaction in progress") on every reuse.
    ///
    /// Each statement of a batch has a cost of its own on the server, so the ones that can be
    /// are folded into one `SELECT`: the advisory locks released, the settings applied, and the
    /// count of SQL-level prepared statements. (`DISCARD ALL` would be one statement for all of
    /// it, but it also deallocates the driver's cached type-lookup statements, which the driver
    /// cannot be told to forget.)
    pub(crate) fn reset_sql(&self, end_transaction: bool) -> String {
        format!(
            "{}BEGIN READ WRITE; RESET ALL; SET SESSION AUTHORIZATION DEFAULT; CLOSE ALL; UNLISTEN *; \
             DISCARD TEMP; DISCARD SEQUENCES; \
             SELECT (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql)::text, {}, \
             pg_catalog.pg_advisory_unlock_all()::text; \
             COMMIT; ",
            if end_transaction { "ROLLBACK; " } else { "" },
            self.settings.set_config_list()
        )
    }
}

/// Reads the rows [`ReadOnlySession::reset_sql`] returned (and nothing after them): fails
/// unless the server confirms `default_transaction_read_only = on`; true when SQL-level prepared
/// statements are left (the reset cannot remove them without also removing the driver's own).
pub(crate) fn prepared_left_after_reset(rows: &[Vec<String>]) -> Result<bool, ConnectError> {
    let Some(row) = rows.last() else {
        return Err(session_err("the session reset returned no row"));
    };
    if row.get(1).map(String::as_str) != Some("on") {
        return Err(session_err("the server did not confirm default_transaction_read_only = on after reset"));
    }
    match row.first().map(String::as_str) {
        Some("0") => Ok(false),
        Some(_) => Ok(true),
        None => Err(session_err("the session reset returned no count of prepared statements")),
    }
}

impl Drop for ReadOnlySession {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

pub(crate) fn session_err(message: &str) -> ConnectError {
    ConnectError::Session { message: message.to_string() }
}

/// Reads the answer to a `ROLLBACK` sent earlier without waiting (see
/// [`crate::ReadOnlyTransaction::queue_rollback`]).
pub(crate) async fn read_queued_end(queued: tokio_postgres::SimpleQueryStream) -> Result<(), ConnectError> {
    use futures_util::TryStreamExt;
    queued.try_collect::<Vec<_>>().await.map(drop).map_err(db_err)
}

fn db_err(e: tokio_postgres::Error) -> ConnectError {
    match e.as_db_error() {
        Some(db) => ConnectError::Session { message: format!("{} ({})", db.message(), db.code().code()) },
        None => ConnectError::Session { message: e.to_string() },
    }
}

/// Runs a simple-protocol batch and returns every row as text, statement by statement.
pub(crate) async fn text_rows(client: &Client, sql: &str) -> Result<Vec<Vec<String>>, ConnectError> {
    let messages = client.simple_query(sql).await.map_err(db_err)?;
    Ok(rows_as_text(&messages))
}

/// The rows of a simple-protocol answer as text (NULL as empty), every statement's in order.
pub fn rows_as_text(messages: &[SimpleQueryMessage]) -> Vec<Vec<String>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).unwrap_or("").to_string()).collect()),
            _ => None,
        })
        .collect()
}
