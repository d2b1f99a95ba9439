//! The statement gate: PostgreSQL's own grammar (libpg_query) decides what a request may run,
//! before anything reaches the server.
//!
//! Allowed: exactly one SELECT, VALUES, TABLE, WITH … SELECT (no data-modifying CTE), EXPLAIN
//! (ANALYZE only of an allowed read) or SHOW. Refused anywhere in the tree: `SELECT … INTO`,
//! `FOR UPDATE/SHARE`, `INSERT/UPDATE/DELETE/MERGE`, and calls to [`DENIED_FUNCTIONS`] or
//! [`DENIED_PREFIXES`]. The server-side read-only transaction and the session reset are the
//! other two layers; this one exists so that a refused request never opens a transaction at all.
//! The gate sees only what the statement spells out: a function reached another way (inside a
//! view, an operator or a user-defined function) is left to those two layers, which the
//! acceptance tests exercise with such functions.

use serde_json::Value;

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
pub struct Admitted {
    pub kind: StatementKind,
    /// The statement's own text: comments and whitespace around it and a trailing `;` removed.
    pub sql: String,
    /// Character (not byte) offset of `sql` inside the request text, to map server error
    /// positions back onto what the user wrote.
    pub char_offset: usize,
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

/// Classifies `sql` and returns the one statement it holds, or why it is refused.
pub fn admit(sql: &str) -> Result<Admitted, QueryError> {
    // libpg_query's Rust summary code has a few `panic!`s on shapes the grammar never produces;
    // a panic here must still become a refusal, never reach the user.
    let parsed = std::panic::catch_unwind(|| pg_query::parse(sql, 0))
        .map_err(|_| refused("the statement could not be classified"))?
        .map_err(|e| match e {
            pg_query::Error::Parse(message) => {
                let position = syntax_position(sql, &message);
                QueryError::Syntax { message, position }
            }
            other => QueryError::Syntax { message: other.to_string(), position: None },
        })?;
    let stmts = &parsed.protobuf.stmts;
    let raw = match stmts.as_slice() {
        [] => return Err(QueryError::Empty),
        [one] => one,
        more => return Err(refused(&format!("the request holds {} statements; send exactly one", more.len()))),
    };
    let node = raw.stmt.as_ref().ok_or_else(|| refused("the statement could not be classified"))?;
    let tree = serde_json::to_value(node.as_ref()).map_err(|_| refused("the statement could not be classified"))?;
    let (name, body) = node_of(&tree).ok_or_else(|| refused("the statement could not be classified"))?;
    let kind = match name {
        "SelectStmt" => {
            check_select(body)?;
            StatementKind::Select
        }
        "ExplainStmt" => {
            check_explain(body)?;
            StatementKind::Explain
        }
        "VariableShowStmt" => StatementKind::Show,
        other => return Err(refused_kind(other)),
    };
    check_functions(&tree)?;

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

/// `{"node": {"SelectStmt": {...}}}` or `{"SelectStmt": {...}}` → ("SelectStmt", {...}).
fn node_of(v: &Value) -> Option<(&str, &Value)> {
    let obj = v.as_object()?;
    let inner = match obj.get("node") {
        Some(n) => n.as_object()?,
        None => obj,
    };
    let (k, body) = inner.iter().next()?;
    Some((k.as_str(), body))
}

fn check_select(body: &Value) -> Result<(), QueryError> {
    // SELECT … INTO can only sit on the top-level SELECT (or a set operation's first leaf).
    let mut into = Vec::new();
    collect(body, "into_clause", &mut into);
    if into.iter().any(|v| !v.is_null()) {
        return Err(refused("SELECT … INTO creates a table; use a plain SELECT to read the rows"));
    }
    if let Some(lock) = find_nonempty_array(body, "locking_clause") {
        let what = lock
            .first()
            .and_then(|l| l.get("node"))
            .and_then(|n| n.get("LockingClause"))
            .and_then(|c| c.get("strength"))
            .and_then(Value::as_i64)
            .map(|s| match s {
                2 => "FOR KEY SHARE",
                3 => "FOR SHARE",
                4 => "FOR NO KEY UPDATE",
                _ => "FOR UPDATE",
            })
            .unwrap_or("FOR UPDATE/SHARE");
        return Err(refused(&format!("SELECT … {what} locks rows; remove the locking clause")));
    }
    for writer in ["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"] {
        if find_key(body, &[writer]).is_some() {
            return Err(refused(&format!("a data-modifying WITH clause ({}) is not allowed", human_kind(writer))));
        }
    }
    Ok(())
}

fn check_explain(body: &Value) -> Result<(), QueryError> {
    let analyze =
        body.get("options").and_then(Value::as_array).map(|opts| opts.iter().any(is_analyze_on)).unwrap_or(false);
    let inner = body.get("query");
    let (name, inner_body) = inner.and_then(node_of).ok_or_else(|| refused("the EXPLAIN could not be classified"))?;
    if name == "SelectStmt" {
        return check_select(inner_body).or_else(|e| if analyze { Err(e) } else { Ok(()) });
    }
    if analyze {
        return Err(refused(&format!(
            "EXPLAIN ANALYZE runs the statement, and {} is not allowed; drop ANALYZE to see the plan only",
            human_kind(name)
        )));
    }
    Ok(())
}

fn is_analyze_on(opt: &Value) -> bool {
    let Some(def) = opt.get("node").and_then(|n| n.get("DefElem")) else {
        return false;
    };
    if def.get("defname").and_then(Value::as_str) != Some("analyze") {
        return false;
    }
    match def.get("arg").and_then(node_of) {
        None => true,
        Some(("Boolean", b)) => b.get("boolval").and_then(Value::as_bool).unwrap_or(false),
        Some(("String", s)) => !matches!(
            s.get("sval").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref(),
            Some("false" | "off" | "0" | "no")
        ),
        Some(("Integer", i)) => i.get("ival").and_then(Value::as_i64).unwrap_or(0) != 0,
        Some(_) => true,
    }
}

fn check_functions(tree: &Value) -> Result<(), QueryError> {
    let mut calls = Vec::new();
    collect(tree, "FuncCall", &mut calls);
    for call in calls {
        let name = call
            .get("funcname")
            .and_then(Value::as_array)
            .and_then(|parts| parts.last())
            .and_then(|p| p.get("node"))
            .and_then(|n| n.get("String"))
            .and_then(|s| s.get("sval"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        if is_denied(&name) {
            return Err(QueryError::Refused {
                message: format!("the function {name}() has effects outside a read-only query and is not allowed"),
                hint: "remove the call; long work such as pg_sleep is bounded by the timeout instead".into(),
            });
        }
    }
    Ok(())
}

/// Whether a function name is on the deny-list (exact or by family prefix).
pub fn is_denied(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    DENIED_FUNCTIONS.contains(&name.as_str()) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn collect<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == key {
                    out.push(child);
                }
                collect(child, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, key, out)),
        _ => {}
    }
}

fn find_key<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if keys.contains(&k.as_str()) {
                    return Some(child);
                }
                if let Some(found) = find_key(child, keys) {
                    return Some(found);
                }
            }
            None
        }
        Value::Array(items) => items.iter().find_map(|i| find_key(i, keys)),
        _ => None,
    }
}

fn find_nonempty_array<'a>(v: &'a Value, key: &str) -> Option<&'a Vec<Value>> {
    let mut all = Vec::new();
    collect(v, key, &mut all);
    all.into_iter().filter_map(Value::as_array).find(|a| !a.is_empty())
}

fn refused(message: &str) -> QueryError {
    QueryError::Refused {
        message: message.to_string(),
        hint: "Sluice runs one read-only statement: SELECT, VALUES, TABLE, WITH … SELECT, EXPLAIN or SHOW".into(),
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
