//! The statement gate: PostgreSQL's own grammar (libpg_query) decides what a request may run,
//! before anything reaches the server.
//!
//! Allowed: exactly one SELECT, VALUES, TABLE, WITH … SELECT (no data-modifying CTE), EXPLAIN
//! (ANALYZE only of an allowed read) or SHOW. Refused anywhere in the tree: `SELECT … INTO`,
//! `FOR UPDATE/SHARE`, `INSERT/UPDATE/DELETE/MERGE`, and calls to [`DENIED_FUNCTIONS`] or
//! [`DENIED_PREFIXES`]. The server-side read-only transaction and the session reset are the
//! other two layers; this one exists so that a refused request never opens a transaction at all.
//! The gate fails closed: it walks pg_query's typed parse tree (`gate/walk.rs`, generated with every
//! field of every known node destructured) and refuses any node kind outside its allow-list,
//! naming it. Requests over [`GateOptions::max_sql_bytes`] are refused unparsed, and parsing runs
//! on the gate's own threads (`gate/workers.rs`), each with a [`GATE_STACK_BYTES`] stack, so deep
//! nesting ends in a refusal, not a crash.
//! The gate sees only what the statement spells out: a function reached another way (inside a
//! view, an operator or a user-defined function) is left to those two layers, which the
//! acceptance tests exercise with such functions.

mod walk;
mod workers;

use pg_query::protobuf as pb;
use pg_query::NodeEnum;

use self::walk::{item_of, push_children, Item};
use crate::QueryError;

/// Functions with effects outside the transaction (signals, locks, files, other connections,
/// sequences, configuration) or that run SQL given as a string (which the gate cannot see).
pub const DENIED_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_signal_backend",
    "pg_notify",
    "set_config",
    "pg_stat_file",
    "nextval",
    "setval",
    "txid_current",
    "pg_current_xact_id",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_create_restore_point",
    "pg_promote",
    "pg_log_backend_memory_contexts",
    "pg_drop_replication_slot",
    "pg_replication_slot_advance",
    "pg_logical_emit_message",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_import_system_collations",
    "pg_truncate_visibility_map",
    "loread",
    "lowrite",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "ts_stat",
];

/// Function-name prefixes refused as a family.
pub const DENIED_PREFIXES: &[&str] = &[
    "pg_advisory_",
    "pg_try_advisory_",
    "dblink",
    "lo_",
    "pg_read_",
    "pg_ls_",
    "pg_file_",
    "pg_create_",
    "pg_copy_",
    "pg_logical_slot_",
    "pg_replication_origin_",
    "pg_stat_reset",
    "pg_wal_replay_",
];

/// What the gate let through.
#[derive(Debug, Clone, PartialEq, Eq)]
/// Only the gate makes one, so holding an `Admitted` proves the text passed it.
pub struct Admitted {
    pub(crate) kind: StatementKind,
    /// The statement's own text: comments and whitespace around it and a trailing `;` removed.
    pub(crate) sql: String,
    /// Character (not byte) offset of `sql` inside the request text, to map server error
    /// positions back onto what the user wrote.
    pub(crate) char_offset: usize,
}

impl Admitted {
    pub fn kind(&self) -> StatementKind {
        self.kind
    }

    /// The statement's own text, as it will be sent.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT, VALUES, TABLE, WITH … SELECT: can be wrapped as a subquery.
    Select,
    Explain,
    Show,
}

/// Where a syntax error is, as PostgreSQL reports it: the 1-based character position of the
/// failing token. libpg_query gives only the message (`syntax error at or near "X"`), so the token
/// is found again with its own scanner: the first token reading `X` at which a parse of the text
/// up to it fails with the same message. The parser stops at the first token it cannot take, so
/// that holds for every such token from the failing one on, and a binary search needs only a
/// logarithmic number of parses however long the text. A lexer error (an unterminated literal)
/// falls back to the first occurrence of `X`.
///
/// Errors of the scanner and of the parser's string post-processing that name no token —
/// `invalid Unicode escape` in `E'\u00'` (the server: 22025, position of the escape, a hint) or
/// in `U&'\061'` (42601, position of the escape inside the literal, a hint) — go without a
/// position here: the pg_query crate passes on libpg_query's message only (its `cursorpos` stays
/// in the crate's private bindings, and calling libpg_query directly needs `unsafe`, which the
/// workspace forbids), and finding the escape again means re-implementing PostgreSQL's escape
/// rules for each kind of literal. With a session, [`explain_syntax_error`](crate::explain_syntax_error)
/// takes the position and the hint from the server.
fn syntax_position(sql: &str, message: &str) -> Option<u32> {
    let position_of = |byte: usize| sql.get(..byte).map(|s| s.chars().count() as u32 + 1);
    if message.ends_with("at end of input") {
        return position_of(sql.len());
    }
    let near = message.split_once("at or near \"")?.1.strip_suffix('"')?;
    let Ok(scan) = pg_query::scan(sql) else {
        return sql.find(near).and_then(position_of);
    };
    let candidates: Vec<(usize, usize)> = scan
        .tokens
        .iter()
        .filter_map(|t| Some((usize::try_from(t.start).ok()?, usize::try_from(t.end).ok()?)))
        .filter(|&(start, end)| sql.get(start..end) == Some(near))
        .collect();
    let fails_here = |&(_, end): &(usize, usize)| {
        let Some(prefix) = sql.get(..end) else {
            return false;
        };
        matches!(std::panic::catch_unwind(|| pg_query::parse(prefix, 0)), Ok(Err(pg_query::Error::Parse(m))) if m == message)
    };
    let first = candidates.partition_point(|c| !fails_here(c));
    candidates.get(first).and_then(|&(start, _)| position_of(start))
}

/// The longest request text [`admit`] accepts: 1 MiB.
pub const DEFAULT_MAX_SQL_BYTES: usize = 1 << 20;
/// The stack of the thread the gate parses and walks on. libpg_query sizes its own recursion
/// check to the stack it finds (up to 2 MB of depth, plus 512 kB of slack), so deep nesting ends
/// in its "stack depth limit exceeded" error rather than an overflow.
pub const GATE_STACK_BYTES: usize = 16 << 20;

/// The gate's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateOptions {
    /// Requests longer than this many bytes are refused before they are parsed.
    pub max_sql_bytes: usize,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions { max_sql_bytes: DEFAULT_MAX_SQL_BYTES }
    }
}

/// Classifies `sql` with the default [`GateOptions`] and returns the one statement it holds, or
/// why it is refused.
pub fn admit(sql: &str) -> Result<Admitted, QueryError> {
    admit_with(sql, &GateOptions::default())
}

/// Classifies `sql` and returns the one statement it holds, or why it is refused.
///
/// Fails closed: the statement's whole parse tree is walked (iteratively), and a node of a kind
/// the gate does not know refuses the statement, so a grammar or library change can never make a
/// call invisible to the deny-list. Parsing and walking run on one of the gate's threads, each
/// with a [`GATE_STACK_BYTES`] stack, and the text is capped at `max_sql_bytes`: no request,
/// however deeply it nests, can overflow the caller's stack. The calling thread waits; an async
/// caller uses [`admit_async`] instead.
pub fn admit_with(sql: &str, options: &GateOptions) -> Result<Admitted, QueryError> {
    check_size(sql, options)?;
    let sql = sql.to_string();
    workers::run_blocking(move || classify(&sql))
}

/// [`admit_with`] for an async caller: the task waits for the gate's answer without blocking
/// the runtime's thread.
pub async fn admit_async(sql: &str, options: &GateOptions) -> Result<Admitted, QueryError> {
    check_size(sql, options)?;
    let sql = sql.to_string();
    workers::run_async(move || classify(&sql)).await
}

fn check_size(sql: &str, options: &GateOptions) -> Result<(), QueryError> {
    if sql.len() > options.max_sql_bytes {
        return Err(QueryError::Refused {
            message: format!(
                "the statement is {} bytes, more than the gate's limit of {} bytes",
                sql.len(),
                options.max_sql_bytes
            ),
            hint: "send a shorter statement, or raise the limit (max_sql_bytes)".into(),
        });
    }
    Ok(())
}

fn classify(sql: &str) -> Result<Admitted, QueryError> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| match e {
        pg_query::Error::Parse(message) if is_too_deep(&message) => too_deep(),
        pg_query::Error::Decode(e) if e.to_string().contains("recursion limit") => too_deep(),
        pg_query::Error::Parse(message) => {
            let position = syntax_position(sql, &message);
            QueryError::syntax(message, position)
        }
        other => QueryError::syntax(other.to_string(), None),
    })?;
    let stmts = &parsed.protobuf.stmts;
    let raw = match stmts.as_slice() {
        [] => return Err(QueryError::Empty),
        [one] => one,
        more => return Err(refused(&format!("the request holds {} statements; send exactly one", more.len()))),
    };
    let top = raw.stmt.as_deref().ok_or_else(|| refused("the statement could not be classified"))?;
    let top_node = top.node.as_ref().ok_or_else(|| refused("the statement could not be classified"))?;
    let kind = match top_node {
        NodeEnum::SelectStmt(_) => StatementKind::Select,
        NodeEnum::ExplainStmt(_) => StatementKind::Explain,
        NodeEnum::VariableShowStmt(_) => StatementKind::Show,
        other => return Err(refused_kind(&kind_name(other))),
    };
    let facts = walk(Item::Node(top))?;
    match top_node {
        NodeEnum::SelectStmt(_) => facts.check_select()?,
        NodeEnum::ExplainStmt(e) => check_explain(e, &facts)?,
        _ => {}
    }
    if let Some(name) = facts.denied {
        return Err(QueryError::Refused {
            message: format!("the function {name}() has effects outside a read-only query and is not allowed"),
            hint: "remove the call; long work such as pg_sleep is bounded by the timeout instead".into(),
        });
    }

    let start = usize::try_from(raw.stmt_location).unwrap_or(0).min(sql.len());
    let len = usize::try_from(raw.stmt_len).unwrap_or(0);
    let end = if len == 0 { sql.len() } else { (start + len).min(sql.len()) };
    let text = sql.get(start..end).unwrap_or(sql);
    let trimmed_start = text.len() - text.trim_start().len();
    let body_text = text.trim().trim_end_matches(';').trim_end();
    let byte_offset = start + trimmed_start;
    Ok(Admitted {
        kind,
        sql: body_text.to_string(),
        char_offset: sql.get(..byte_offset).map(|p| p.chars().count()).unwrap_or(0),
    })
}

/// libpg_query's own limits on nesting: the parser's stack ("memory exhausted") and its
/// recursion check.
fn is_too_deep(message: &str) -> bool {
    message.starts_with("memory exhausted") || message.starts_with("stack depth limit exceeded")
}

fn too_deep() -> QueryError {
    QueryError::Refused {
        message: "the statement nests too deeply for the gate to check it".into(),
        hint: "flatten it: fewer nested parentheses, subqueries or chained operators (use IN (…) or \
               ANY(ARRAY[…]) instead of long OR chains)"
            .into(),
    }
}

/// What the walk found, anywhere in the tree.
#[derive(Debug, Default)]
struct Facts {
    /// `SELECT … INTO`.
    into: bool,
    /// The first locking clause's strength.
    lock: Option<i32>,
    /// The first data-modifying statement's node kind.
    writer: Option<&'static str>,
    /// The first deny-listed function called.
    denied: Option<String>,
}

impl Facts {
    fn check_select(&self) -> Result<(), QueryError> {
        if self.into {
            return Err(refused("SELECT … INTO creates a table; use a plain SELECT to read the rows"));
        }
        if let Some(strength) = self.lock {
            use pb::LockClauseStrength as S;
            let what = match S::try_from(strength) {
                Ok(S::LcsForkeyshare) => "FOR KEY SHARE",
                Ok(S::LcsForshare) => "FOR SHARE",
                Ok(S::LcsFornokeyupdate) => "FOR NO KEY UPDATE",
                Ok(S::LcsForupdate) => "FOR UPDATE",
                _ => "FOR UPDATE/SHARE",
            };
            return Err(refused(&format!("SELECT … {what} locks rows; remove the locking clause")));
        }
        if let Some(writer) = self.writer {
            return Err(refused(&format!("a data-modifying WITH clause ({}) is not allowed", human_kind(writer))));
        }
        Ok(())
    }
}

/// Visits every node under `root` with an explicit stack (no recursion, whatever the depth), and
/// refuses any node kind outside the allow-list of [`walk::item_of`].
fn walk(root: Item<'_>) -> Result<Facts, QueryError> {
    let mut facts = Facts::default();
    let mut stack = vec![root];
    while let Some(item) = stack.pop() {
        let item = match item {
            Item::Node(n) => match n.node.as_ref() {
                None => continue,
                Some(inner) => item_of(inner).map_err(|other| unsupported(&kind_name(other)))?,
            },
            other => other,
        };
        match item {
            Item::SelectStmt(s) if s.into_clause.is_some() => facts.into = true,
            Item::LockingClause(l) => {
                facts.lock.get_or_insert(l.strength);
            }
            Item::InsertStmt(_) => {
                facts.writer.get_or_insert("InsertStmt");
            }
            Item::UpdateStmt(_) => {
                facts.writer.get_or_insert("UpdateStmt");
            }
            Item::DeleteStmt(_) => {
                facts.writer.get_or_insert("DeleteStmt");
            }
            Item::MergeStmt(_) => {
                facts.writer.get_or_insert("MergeStmt");
            }
            Item::FuncCall(f) => {
                // A name whose last part is not a plain string cannot be checked: refuse it.
                let name = match f.funcname.last().and_then(|n| n.node.as_ref()) {
                    Some(NodeEnum::String(s)) => s.sval.to_ascii_lowercase(),
                    Some(other) => return Err(unsupported(&format!("function name of kind {}", kind_name(other)))),
                    None => return Err(unsupported("function call without a name")),
                };
                if facts.denied.is_none() && is_denied(&name) {
                    facts.denied = Some(name);
                }
            }
            _ => {}
        }
        push_children(item, &mut stack).map_err(unsupported)?;
    }
    Ok(facts)
}

/// A node kind's name (`SelectStmt`), read from the start of its `Debug` form without formatting
/// the rest of the subtree.
fn kind_name(node: &NodeEnum) -> String {
    struct Head(String);
    impl std::fmt::Write for Head {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.push_str(s);
            if self.0.contains(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
                return Err(std::fmt::Error);
            }
            Ok(())
        }
    }
    let mut head = Head(String::new());
    let _ = std::fmt::Write::write_fmt(&mut head, format_args!("{node:?}"));
    let end = head.0.find(|c: char| !c.is_ascii_alphanumeric() && c != '_').unwrap_or(head.0.len());
    head.0.truncate(end);
    if head.0.is_empty() {
        head.0.push_str("unknown");
    }
    head.0
}

fn check_explain(explain: &pb::ExplainStmt, facts: &Facts) -> Result<(), QueryError> {
    let analyze = explain.options.iter().any(is_analyze_on);
    let inner = explain
        .query
        .as_deref()
        .and_then(|n| n.node.as_ref())
        .ok_or_else(|| refused("the EXPLAIN could not be classified"))?;
    if let NodeEnum::SelectStmt(_) = inner {
        return if analyze { facts.check_select() } else { Ok(()) };
    }
    if analyze {
        return Err(refused(&format!(
            "EXPLAIN ANALYZE runs the statement, and {} is not allowed; drop ANALYZE to see the plan only",
            human_kind(&kind_name(inner))
        )));
    }
    Ok(())
}

fn is_analyze_on(opt: &pb::Node) -> bool {
    let Some(NodeEnum::DefElem(def)) = opt.node.as_ref() else {
        return false;
    };
    if def.defname != "analyze" {
        return false;
    }
    match def.arg.as_deref().and_then(|a| a.node.as_ref()) {
        None => true,
        Some(NodeEnum::Boolean(b)) => b.boolval,
        Some(NodeEnum::String(s)) => !matches!(s.sval.to_ascii_lowercase().as_str(), "false" | "off" | "0" | "no"),
        Some(NodeEnum::Integer(i)) => i.ival != 0,
        Some(_) => true,
    }
}

/// Whether a function name is on the deny-list (exact or by family prefix).
pub fn is_denied(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    DENIED_FUNCTIONS.contains(&name.as_str()) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn refused(message: &str) -> QueryError {
    QueryError::Refused {
        message: message.to_string(),
        hint: "Sluice runs one read-only statement: SELECT, VALUES, TABLE, WITH … SELECT, EXPLAIN or SHOW".into(),
    }
}

/// A node kind outside the gate's allow-list: the statement is refused, never passed unchecked.
fn unsupported(node: &str) -> QueryError {
    QueryError::Refused {
        message: format!(
            "the statement holds a {node} node, which the gate does not know; this statement is not supported"
        ),
        hint: "rewrite it with common SELECT syntax".into(),
    }
}

fn refused_kind(node: &str) -> QueryError {
    QueryError::Refused {
        message: format!("{} is not allowed: Sluice only reads", human_kind(node)),
        hint: "send one SELECT, VALUES, TABLE, WITH … SELECT, EXPLAIN or SHOW".into(),
    }
}

/// `InsertStmt` → `INSERT`, as a person names the statement.
fn human_kind(node: &str) -> String {
    let known = match node {
        "InsertStmt" => "INSERT",
        "UpdateStmt" => "UPDATE",
        "DeleteStmt" => "DELETE",
        "MergeStmt" => "MERGE",
        "CreateStmt" => "CREATE TABLE",
        "CreateTableAsStmt" => "CREATE TABLE AS / SELECT INTO",
        "CallStmt" => "CALL",
        "DoStmt" => "DO",
        "CopyStmt" => "COPY",
        "LockStmt" => "LOCK",
        "NotifyStmt" => "NOTIFY",
        "ListenStmt" => "LISTEN",
        "UnlistenStmt" => "UNLISTEN",
        "VariableSetStmt" => "SET",
        "TransactionStmt" => "transaction control (BEGIN/COMMIT/ROLLBACK/SET TRANSACTION)",
        "TruncateStmt" => "TRUNCATE",
        "DropStmt" => "DROP",
        "AlterTableStmt" => "ALTER TABLE",
        "GrantStmt" => "GRANT/REVOKE",
        "PrepareStmt" => "PREPARE",
        "ExecuteStmt" => "EXECUTE",
        "DeallocateStmt" => "DEALLOCATE",
        "DeclareCursorStmt" => "DECLARE CURSOR",
        "FetchStmt" => "FETCH/MOVE",
        "ClosePortalStmt" => "CLOSE",
        "VacuumStmt" => "VACUUM/ANALYZE",
        "DiscardStmt" => "DISCARD",
        "CreateFunctionStmt" => "CREATE FUNCTION",
        "ViewStmt" => "CREATE VIEW",
        "IndexStmt" => "CREATE INDEX",
        "CreateSeqStmt" => "CREATE SEQUENCE",
        "RefreshMatViewStmt" => "REFRESH MATERIALIZED VIEW",
        "CheckPointStmt" => "CHECKPOINT",
        "LoadStmt" => "LOAD",
        "VariableSetStmtReset" => "RESET",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let base = node.strip_suffix("Stmt").unwrap_or(node);
    let mut out = String::new();
    for (i, c) in base.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> Admitted {
        admit(sql).unwrap_or_else(|e| panic!("{sql}: refused: {e}"))
    }

    fn no(sql: &str) -> String {
        match admit(sql) {
            Ok(a) => panic!("{sql}: admitted as {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_are_admitted() {
        for sql in [
            "SELECT 1",
            "select * from t where a = 1;",
            "VALUES (1), (2)",
            "TABLE t",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 5) SELECT * FROM r",
            "SELECT 1 UNION SELECT 2 ORDER BY 1",
            "EXPLAIN SELECT 1",
            "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t",
            "EXPLAIN INSERT INTO t VALUES (1)",
            "EXPLAIN (ANALYZE false) DELETE FROM t",
            "SHOW search_path",
            "SHOW ALL",
            "SELECT pg_sleep(1)",
            "SELECT now(), currval('s')",
            // The breadth of read syntax the walker must know.
            "SELECT DISTINCT ON (a) a, b::text COLLATE \"C\", c[1:2], (d).f, -e, NOT f FROM t ORDER BY a DESC NULLS LAST",
            "SELECT count(*) FILTER (WHERE a > 1), sum(b) OVER w, rank() OVER (PARTITION BY c ORDER BY d) \
             FROM t GROUP BY GROUPING SETS ((a), ROLLUP (b), CUBE (c)) HAVING count(*) > 1 WINDOW w AS (ORDER BY a)",
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a), grouping(a) FROM t GROUP BY a",
            "SELECT * FROM t JOIN u USING (id) AS j NATURAL LEFT JOIN v CROSS JOIN LATERAL (SELECT 1) s",
            "SELECT * FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (1), ROWS FROM (generate_series(1, 2), f(1)) \
             WITH ORDINALITY AS g(a, b, n), json_to_record('{}') AS r(a int, b text)",
            "SELECT CASE WHEN a IS NULL THEN 1 WHEN a IS NOT TRUE THEN 2 ELSE 3 END, coalesce(a, b), greatest(a, b), \
             nullif(a, b), ROW(1, 2), ARRAY[1, 2], ARRAY(SELECT 1), EXISTS (SELECT 1), a IN (1, 2), \
             a = ANY (SELECT 1), a BETWEEN 1 AND 2, a IS DISTINCT FROM b, a LIKE 'x%', $1, f(x => 1) FROM t",
            "SELECT CURRENT_DATE, CURRENT_USER, LOCALTIMESTAMP(2), xmlelement(name a, 'b'), \
             xmlserialize(content '<a/>'::xml AS text), B'101', X'1F', 1.5e3, true, NULL, interval '1 day'",
            "SELECT * FROM t, xmltable('/a' PASSING t.doc COLUMNS x int PATH 'x', y FOR ORDINALITY)",
            "SELECT json_object('a': 1), json_array(1, 2), json_objectagg(k: v), json_arrayagg(v ORDER BY v), \
             '{}'::json IS JSON OBJECT, json_value('{}', '$.a' RETURNING int DEFAULT 0 ON EMPTY), \
             json_query('{}', '$.a' WITH WRAPPER), json_exists('{}', '$.a'), json_scalar(1), json_serialize('1'), \
             json('{}') FROM t",
            "SELECT * FROM JSON_TABLE('[1]', '$[*]' COLUMNS (id FOR ORDINALITY, v int PATH '$', \
             NESTED PATH '$' COLUMNS (w text PATH '$')))",
            "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SEARCH DEPTH FIRST BY n SET o \
             CYCLE n SET c USING p SELECT * FROM r LIMIT 5 OFFSET 1",
            "WITH m AS MATERIALIZED (SELECT 1) SELECT * FROM m ORDER BY 1 FETCH FIRST 1 ROWS WITH TIES",
            "SELECT 1 INTERSECT SELECT 1 EXCEPT ALL SELECT 2",
            "EXPLAIN (FORMAT JSON, ANALYZE off) UPDATE t SET (a, b) = (SELECT 1, 2) WHERE a = 1 RETURNING *",
            "EXPLAIN INSERT INTO t (a) VALUES (DEFAULT) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
            "EXPLAIN MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN UPDATE SET a = 1 \
             WHEN NOT MATCHED THEN INSERT VALUES (s.a) RETURNING merge_action()",
        ] {
            ok(sql);
        }
    }

    #[test]
    fn statement_text_and_offset() {
        let a = ok("  -- hi\n  SELECT 'é' ;  ");
        assert_eq!(a.sql, "SELECT 'é'");
        assert_eq!(a.kind, StatementKind::Select);
        assert_eq!(a.char_offset, 10);
        let a = ok("SELECT 1 -- trailing comment");
        assert_eq!(a.sql, "SELECT 1 -- trailing comment");
        assert_eq!(ok("SHOW TimeZone").kind, StatementKind::Show);
        assert_eq!(ok("EXPLAIN SELECT 1").kind, StatementKind::Explain);
    }

    #[test]
    fn writes_and_side_effects_are_refused_with_the_kind_named() {
        let cases = [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("DELETE FROM t", "DELETE"),
            ("MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", "MERGE"),
            ("CREATE TABLE x (a int)", "CREATE TABLE"),
            ("CREATE TEMP TABLE x (a int)", "CREATE TABLE"),
            ("CREATE TABLE x AS SELECT 1", "CREATE TABLE AS"),
            ("SELECT 1 INTO x", "SELECT … INTO"),
            ("CALL p()", "CALL"),
            ("DO $$BEGIN END$$", "DO"),
            ("COPY t TO PROGRAM 'cat'", "COPY"),
            ("COPY t FROM PROGRAM 'cat'", "COPY"),
            ("COPY (SELECT 1) TO STDOUT", "COPY"),
            ("LOCK t", "LOCK"),
            ("NOTIFY c", "NOTIFY"),
            ("LISTEN c", "LISTEN"),
            ("SET default_transaction_read_only = off", "SET"),
            ("SET TRANSACTION READ WRITE", "SET"),
            ("COMMIT", "transaction control"),
            ("BEGIN", "transaction control"),
            ("PREPARE p AS SELECT 1", "PREPARE"),
            ("DECLARE c CURSOR FOR SELECT 1", "DECLARE CURSOR"),
            ("SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
            ("SELECT * FROM t FOR SHARE", "FOR SHARE"),
            ("SELECT * FROM (SELECT * FROM t FOR NO KEY UPDATE) s", "FOR NO KEY UPDATE"),
            ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE"),
            ("WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1", "INSERT"),
            ("SELECT nextval('s')", "nextval()"),
            ("SELECT setval('s', 1)", "setval()"),
            ("SELECT pg_advisory_lock(1)", "pg_advisory_lock()"),
            ("SELECT * FROM pg_try_advisory_lock(1)", "pg_try_advisory_lock()"),
            ("SELECT pg_catalog.pg_terminate_backend(1)", "pg_terminate_backend()"),
            ("SELECT pg_cancel_backend(1)", "pg_cancel_backend()"),
            ("SELECT dblink_exec('x', 'y')", "dblink_exec()"),
            ("SELECT lo_import('/etc/passwd')", "lo_import()"),
            ("SELECT pg_notify('c', 'x')", "pg_notify()"),
            ("SELECT set_config('search_path', 'x', false)", "set_config()"),
            ("SELECT pg_read_file('/etc/passwd')", "pg_read_file()"),
            ("SELECT pg_read_binary_file('/etc/passwd')", "pg_read_binary_file()"),
            ("SELECT * FROM pg_ls_dir('.')", "pg_ls_dir()"),
            ("SELECT pg_stat_file('x')", "pg_stat_file()"),
            ("SELECT pg_reload_conf()", "pg_reload_conf()"),
            ("SELECT query_to_xml('select 1', true, true, '')", "query_to_xml()"),
            ("SELECT a FROM t WHERE a IN (SELECT PG_ADVISORY_LOCK(2))", "pg_advisory_lock()"),
            ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "INSERT"),
            ("EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
            ("EXPLAIN SELECT pg_advisory_lock(1)", "pg_advisory_lock()"),
            ("SELECT 1; SELECT 2", "2 statements"),
            ("SELECT 1; DELETE FROM t", "2 statements"),
        ];
        for (sql, named) in cases {
            let msg = no(sql);
            assert!(msg.contains(named), "{sql}: `{msg}` does not name `{named}`");
        }
    }

    #[test]
    fn empty_and_invalid_input() {
        assert!(matches!(admit("  -- nothing\n"), Err(QueryError::Empty)));
        assert!(matches!(admit(""), Err(QueryError::Empty)));
        assert!(matches!(admit("SELEC 1"), Err(QueryError::Syntax { .. })));
        assert!(matches!(admit("SELECT 'a\0'"), Err(QueryError::Syntax { .. })));
    }

    fn refusal(sql: &str) -> String {
        match admit(sql) {
            Err(QueryError::Refused { message, .. }) => message,
            other => panic!("{}…: expected a refusal, got {other:?}", &sql[..sql.len().min(40)]),
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let parens = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(refusal(&parens).contains("nests too deeply"));
        let subqueries = format!("SELECT {}1{}", "(SELECT ".repeat(5_000), ")".repeat(5_000));
        assert!(refusal(&subqueries).contains("nests too deeply"));
        let concat = format!("SELECT {}", vec!["'a'"; 100_000].join(" || "));
        assert!(refusal(&concat).contains("nests too deeply"));
        // Moderate nesting is still read, and still checked.
        ok(&format!("SELECT {}1{}", "(".repeat(30), ")".repeat(30)));
        let hidden = format!("SELECT {}pg_advisory_lock(1){}", "(".repeat(30), ")".repeat(30));
        assert!(refusal(&hidden).contains("pg_advisory_lock()"));
    }

    #[test]
    fn a_long_or_chain_is_walked_whole() {
        let terms: Vec<String> = (0..100_000).map(|i| format!("a={}", i % 10)).collect();
        let sql = format!("SELECT 1 FROM t WHERE {}", terms.join(" OR "));
        assert!(sql.len() < DEFAULT_MAX_SQL_BYTES);
        assert_eq!(ok(&sql).kind, StatementKind::Select);
        // The last term is seen as well as the first.
        let denied = format!("SELECT 1 FROM t WHERE {} OR pg_advisory_lock(1) = 0", terms[..20_000].join(" OR "));
        assert!(refusal(&denied).contains("pg_advisory_lock()"));
    }

    #[test]
    fn the_text_is_capped_with_the_limit_named() {
        let sql = format!("SELECT '{}'", "x".repeat(2 << 20));
        let message = refusal(&sql);
        assert!(message.contains(&DEFAULT_MAX_SQL_BYTES.to_string()), "{message}");
        assert!(message.contains(&sql.len().to_string()), "{message}");
        let wider = GateOptions { max_sql_bytes: 4 << 20 };
        assert_eq!(admit_with(&sql, &wider).map(|a| a.sql.len()).ok(), Some(sql.len()));
        let narrow = GateOptions { max_sql_bytes: 8 };
        assert!(matches!(admit_with("SELECT 1, 2", &narrow), Err(QueryError::Refused { .. })));
        assert!(admit_with("SELECT 1", &narrow).is_ok());
    }

    fn node(n: NodeEnum) -> pb::Node {
        pb::Node { node: Some(n) }
    }

    #[test]
    fn a_node_kind_outside_the_allow_list_is_refused() {
        // A planner node (never in a raw parse tree) inside an otherwise ordinary SELECT.
        let target = pb::ResTarget { val: Some(Box::new(node(NodeEnum::Var(Box::default())))), ..Default::default() };
        let select =
            pb::SelectStmt { target_list: vec![node(NodeEnum::ResTarget(Box::new(target)))], ..Default::default() };
        let tree = node(NodeEnum::SelectStmt(Box::new(select)));
        match walk(Item::Node(&tree)) {
            Err(QueryError::Refused { message, .. }) => {
                assert!(message.contains("Var node") && message.contains("not supported"), "{message}")
            }
            other => panic!("walked past an unknown node: {other:?}"),
        }
        // The same tree with a known node instead is walked, and its call is seen.
        let call = pb::FuncCall {
            funcname: vec![node(NodeEnum::String(pb::String { sval: "pg_notify".into() }))],
            ..Default::default()
        };
        let target =
            pb::ResTarget { val: Some(Box::new(node(NodeEnum::FuncCall(Box::new(call))))), ..Default::default() };
        let select =
            pb::SelectStmt { target_list: vec![node(NodeEnum::ResTarget(Box::new(target)))], ..Default::default() };
        let tree = node(NodeEnum::SelectStmt(Box::new(select)));
        let facts = walk(Item::Node(&tree)).expect("known kinds");
        assert_eq!(facts.denied.as_deref(), Some("pg_notify"));
        // An analyzer-only typed child is refused too.
        let into = pb::IntoClause { view_query: Some(Box::default()), ..Default::default() };
        let select = pb::SelectStmt { into_clause: Some(Box::new(into)), ..Default::default() };
        let tree = node(NodeEnum::SelectStmt(Box::new(select)));
        assert!(
            matches!(walk(Item::Node(&tree)), Err(QueryError::Refused { message, .. }) if message.contains("Query node"))
        );
    }

    #[test]
    fn kind_names_come_from_the_node() {
        assert_eq!(kind_name(&NodeEnum::Var(Box::default())), "Var");
        assert_eq!(kind_name(&NodeEnum::CreateStmt(pb::CreateStmt::default())), "CreateStmt");
    }

    #[test]
    fn deny_list_families() {
        for f in ["pg_advisory_xact_lock", "dblink_connect", "lo_unlink", "pg_ls_waldir", "Pg_Read_File"] {
            assert!(is_denied(f), "{f}");
        }
        for f in ["pg_sleep", "now", "lower", "currval", "pg_backend_pid", "pg_size_pretty"] {
            assert!(!is_denied(f), "{f}");
        }
    }
}
