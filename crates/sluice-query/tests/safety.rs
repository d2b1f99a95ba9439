//! Never writes; no session state leaks between requests on one pooled connection.

mod common;

use common::*;
use sluice_core::UserFacing;
use sluice_query::export::Format;
use sluice_query::QueryError;

/// Functions the gate cannot see into (it allows `SELECT f()`): they try, from inside the
/// request's transaction, what a hostile or careless function could do.
const FUNCTIONS: &str = r#"
CREATE SEQUENCE counter;
CREATE FUNCTION fx_write() RETURNS int LANGUAGE plpgsql AS $$
BEGIN INSERT INTO accounts (owner, balance) VALUES ('intruder', 1); RETURN 1; END $$;
CREATE FUNCTION fx_temp() RETURNS int LANGUAGE plpgsql AS $$
BEGIN CREATE TEMP TABLE scratch (a int); RETURN 1; END $$;
CREATE FUNCTION fx_seq() RETURNS bigint LANGUAGE sql AS $$ SELECT nextval('counter') $$;
CREATE FUNCTION fx_rw() RETURNS int LANGUAGE plpgsql AS $$
BEGIN SET TRANSACTION READ WRITE; INSERT INTO accounts (owner) VALUES ('rw'); RETURN 1; END $$;
CREATE FUNCTION fx_default_rw() RETURNS text LANGUAGE sql AS
$$ SELECT set_config('default_transaction_read_only', 'off', false) $$;
CREATE FUNCTION fx_path() RETURNS text LANGUAGE sql AS $$ SELECT set_config('search_path', 'evil', false) $$;
CREATE FUNCTION fx_lock() RETURNS void LANGUAGE sql AS $$ SELECT pg_advisory_lock(42) $$;
CREATE FUNCTION fx_prepare() RETURNS int LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'PREPARE leftover AS SELECT 1'; RETURN 1; END $$;
CREATE FUNCTION fx_listen() RETURNS int LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'LISTEN channel'; RETURN 1; END $$;
CREATE FUNCTION fx_notify() RETURNS void LANGUAGE sql AS $$ SELECT pg_notify('channel', 'x') $$;
CREATE FUNCTION fx_lock_table() RETURNS int LANGUAGE plpgsql AS $$
BEGIN LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE; RETURN 1; END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO analyst;
"#;

/// Contents and catalog, as one comparable string.
fn fingerprint(env: &Env) -> String {
    su(
        &env.cluster,
        "SELECT (SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM accounts a), \
         (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_proc), \
         (SELECT last_value FROM counter), (SELECT count(*) FROM pg_prepared_xacts);",
    )
}

/// What a fresh session looks like from inside a request.
const STATE: &str = "SELECT current_setting('search_path') AS search_path, \
     current_setting('default_transaction_read_only') AS dtro, \
     (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory, \
     (SELECT count(*) FROM pg_prepared_statements) AS prepared, \
     (SELECT count(*) FROM pg_class WHERE relpersistence = 't') AS temp_objects, \
     (SELECT count(*) FROM pg_listening_channels()) AS listening, \
     current_setting('statement_timeout') AS timeout";

async fn clean_state(env: &Env) -> String {
    csv(&env.pool, STATE).await.expect("state query")
}

#[tokio::test]
async fn write_attempts_leave_the_database_and_the_session_unchanged() {
    let env = env();
    su(&env.cluster, FUNCTIONS);
    let before = fingerprint(&env);
    let pristine = clean_state(&env).await;
    assert!(pristine.ends_with("\n\"\"\"$user\"\", public\",on,0,0,0,0,5min\n"), "{pristine}");

    // Refused by the gate, naming what was refused.
    let refused = [
        ("SET default_transaction_read_only=off; INSERT INTO accounts (owner) VALUES ('x')", "2 statements"),
        ("SET default_transaction_read_only=off", "SET"),
        ("COMMIT; INSERT INTO accounts (owner) VALUES ('x')", "2 statements"),
        ("COMMIT", "transaction control"),
        ("SET TRANSACTION READ WRITE", "SET"),
        ("INSERT INTO accounts (owner) VALUES ('x')", "INSERT"),
        ("UPDATE accounts SET balance = 0", "UPDATE"),
        ("DELETE FROM accounts", "DELETE"),
        ("WITH d AS (DELETE FROM accounts RETURNING *) SELECT count(*) FROM d", "DELETE"),
        ("WITH u AS (UPDATE accounts SET balance = 0 RETURNING 1) SELECT * FROM u", "UPDATE"),
        ("SELECT * FROM accounts FOR UPDATE", "FOR UPDATE"),
        ("SELECT * FROM accounts FOR SHARE", "FOR SHARE"),
        ("SELECT nextval('counter')", "nextval()"),
        ("CALL some_proc()", "CALL"),
        ("DO $$BEGIN DELETE FROM accounts; END$$", "DO"),
        ("COPY accounts TO PROGRAM 'cat > /tmp/x'", "COPY"),
        ("COPY accounts FROM PROGRAM 'echo 1'", "COPY"),
        ("CREATE TEMP TABLE t (a int)", "CREATE TABLE"),
        ("CREATE TABLE t AS SELECT 1", "CREATE TABLE AS"),
        ("SELECT 1 AS a INTO t", "SELECT … INTO"),
        ("LOCK accounts", "LOCK"),
        ("NOTIFY channel", "NOTIFY"),
        ("SELECT pg_advisory_lock(1)", "pg_advisory_lock()"),
        ("SELECT pg_terminate_backend(pg_backend_pid())", "pg_terminate_backend()"),
        ("SELECT set_config('search_path', 'x', false)", "set_config()"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("EXPLAIN ANALYZE DELETE FROM accounts", "DELETE"),
    ];
    for (sql, named) in refused {
        let e = csv(&env.pool, sql).await.expect_err(sql);
        assert!(matches!(e, QueryError::Refused { .. }), "{sql}: {e:?}");
        assert!(e.to_string().contains(named), "{sql}: `{e}` should name {named}");
        assert!(e.hint().is_some());
    }

    // Let through by the gate (a plain function call), stopped by the read-only transaction.
    // 25006: read-only transaction; 25001: the snapshot-taking first statement means
    // SET TRANSACTION READ WRITE comes too late.
    for (f, code) in [("fx_write", "25006"), ("fx_temp", "25006"), ("fx_seq", "25006"), ("fx_rw", "25001")] {
        let e = csv(&env.pool, &format!("SELECT {f}()")).await.expect_err(f);
        assert_eq!(e.sqlstate(), Some(code), "{f}: {e:?}");
    }
    // Allowed inside a read-only transaction, but undone by ROLLBACK or the session reset.
    // (A table lock is transaction-scoped: ROLLBACK releases it.)
    for f in ["fx_default_rw", "fx_path", "fx_lock", "fx_prepare", "fx_listen", "fx_notify", "fx_lock_table"] {
        csv(&env.pool, &format!("SELECT {f}()")).await.expect(f);
        assert_eq!(clean_state(&env).await, pristine, "state after {f}()");
        // A write right after: still read-only.
        let e = csv(&env.pool, "SELECT fx_write()").await.expect_err("write after");
        assert_eq!(e.sqlstate(), Some("25006"), "after {f}: {e:?}");
    }
    assert_eq!(fingerprint(&env), before, "contents and catalog are unchanged");
    assert_eq!(
        su(
            &env.cluster,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' OR relation = 'accounts'::regclass;"
        ),
        "0"
    );
}

#[tokio::test]
async fn errors_carry_sqlstate_position_and_hint() {
    let env = env();
    let e = csv(&env.pool, "SELECT 1/0").await.expect_err("division");
    assert_eq!(e.sqlstate(), Some("22012"));
    // Positions count characters in what the user sent, whatever Sluice wrapped around it.
    let sql = "  -- note\n  SELECT 'é', nosuch FROM accounts";
    match csv(&env.pool, sql).await.expect_err("column") {
        QueryError::Database { code, position, .. } => {
            assert_eq!(code, "42703");
            let want = sql.chars().collect::<Vec<_>>();
            let p = position.expect("position") as usize;
            assert_eq!(want[p - 1..p + 5].iter().collect::<String>(), "nosuch");
        }
        other => panic!("{other:?}"),
    }
    // The same through the wrapped path (a column the server renders).
    let sql = "SELECT 'ok'::mood, nosuch FROM accounts";
    match csv(&env.pool, sql).await.expect_err("wrapped") {
        QueryError::Database { position, .. } => assert_eq!(position, Some(20)),
        other => panic!("{other:?}"),
    }
    match csv(&env.pool, "SELECT * FROM accounts WHERE id = 'x'").await.expect_err("cast") {
        QueryError::Database { code, position, .. } => {
            assert_eq!(code, "22P02");
            assert_eq!(position, Some(35));
        }
        other => panic!("{other:?}"),
    }
    let e = csv(&env.pool, "SELECT lower(1, 2)").await.expect_err("hint");
    assert_eq!(e.sqlstate(), Some("42883"));
    assert!(e.hint().unwrap_or_default().contains("No function matches"), "{:?}", e.hint());
    let e = csv(&env.pool, "SELEC 1").await.expect_err("syntax");
    assert_eq!(e.sqlstate(), Some("42601"));
    assert!(matches!(e, QueryError::Syntax { position: Some(1), .. }), "{e:?}");
    assert!(matches!(csv(&env.pool, "  ").await, Err(QueryError::Empty)));
    // The session is healthy after all of that.
    assert_eq!(csv(&env.pool, "SELECT 1 AS one").await.expect("ok"), "one\n1\n");
    let _ = Format::Csv;
}

/// Syntax errors never reach the server (the gate parses first), yet they point where PostgreSQL
/// itself points: each text is also sent to the server, and the two positions must agree.
#[tokio::test]
async fn syntax_errors_point_where_postgresql_points() {
    let env = env();
    let (server, connection) =
        sluice_connect::tokio_postgres::connect(&env.cluster.superuser_url(DB), sluice_connect::tokio_postgres::NoTls)
            .await
            .expect("superuser");
    tokio::spawn(connection);
    let texts = [
        "SELEC 1",
        "SELECT 1 FROM FROM accounts",
        "SELECT id, FROM accounts",
        "SELECT 'é', 'ü' ,, 2",
        "  -- a comment with FROM\n  SELECT owner FROM accounts WHERE WHERE id = 1",
        "SELECT 1 +",
        "SELECT (1",
        "SELECT 'unterminated",
        "SELECT \"unterminated",
        "SELECT 1; SELECT FROM FROM",
        "SELECT select FROM accounts",
        "WITH q AS (SELECT 1) SELECT * FROM q q q",
        "SELECT $$abc",
        "SELECT 1 2 3",
    ];
    // Many tokens read like the failing one, before and after it.
    let many =
        format!("SELECT {}, , {}", (1..2000).map(|i| i.to_string()).collect::<Vec<_>>().join(", "), "1, ".repeat(500));
    for sql in texts.iter().copied().chain([many.as_str()]) {
        let ours = match sluice_query::gate::admit(sql) {
            Err(QueryError::Syntax { position, message, .. }) => (position, message),
            other => panic!("{sql}: expected a syntax error, got {other:?}"),
        };
        let theirs = server.simple_query(sql).await.expect_err("the server refuses it too");
        let db = theirs.as_db_error().unwrap_or_else(|| panic!("{sql}: {theirs:?}"));
        assert_eq!(db.code().code(), "42601", "{sql}: {db:?}");
        let want = match db.position() {
            Some(sluice_connect::tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(ours.0, want, "{sql}: ours {:?}, PostgreSQL says {:?}", ours.1, db.message());
        assert_eq!(ours.1, db.message(), "{sql}");
    }
}

/// A statement the gate cannot parse is refused with the server's own SQLSTATE, message,
/// position and hint — also for the scanner's errors, which the gate's parser reports with a
/// message only — and the session is healthy afterwards.
#[tokio::test]
async fn a_syntax_error_carries_the_servers_position_and_hint() {
    let env = env();
    let (server, connection) =
        sluice_connect::tokio_postgres::connect(&env.cluster.superuser_url(DB), sluice_connect::tokio_postgres::NoTls)
            .await
            .expect("superuser");
    tokio::spawn(connection);
    let texts = [
        r"SELECT U&'wrong: \061'",
        r"SELECT 1, E'\u00'",
        r"SELECT U&'\0061' UESCAPE 'xy'",
        "SELEC 1",
        "SELECT 1 FROM FROM accounts",
        "SELECT 'unterminated",
    ];
    let mut hints = 0;
    for sql in texts {
        let ours = csv(&env.pool, sql).await.expect_err("refused");
        let QueryError::Syntax { ref message, position, ref code, ref hint } = ours else {
            panic!("{sql}: expected a syntax error, got {ours:?}");
        };
        let theirs = server.simple_query(sql).await.expect_err("the server refuses it too");
        let db = theirs.as_db_error().unwrap_or_else(|| panic!("{sql}: {theirs:?}"));
        let want = match db.position() {
            Some(sluice_connect::tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!((code.as_str(), message.as_str()), (db.code().code(), db.message()), "{sql}");
        assert_eq!(position, want, "{sql}");
        assert_eq!(hint.as_deref(), db.hint(), "{sql}");
        assert_eq!(ours.hint().as_deref(), db.hint(), "{sql}");
        hints += usize::from(hint.is_some());
    }
    // PostgreSQL 13 gave the Unicode escape errors their hints.
    if env.cluster.version_num().expect("version") >= 130000 {
        assert!(hints >= 2, "the escape errors come with a hint");
    }
    // The session went back to the pool healthy, outside any transaction.
    assert_eq!(csv(&env.pool, "SELECT 1 AS one").await.expect("ok"), "one\n1\n");
}
