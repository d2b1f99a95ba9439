//! The statement is described as it is (Parse + Describe), never rewritten to learn its columns:
//! names that collide with any wrapper, name resolution, zero-column results and parameters all
//! behave as in psql.

mod common;

use common::*;
use sluice_query::QueryError;

/// Sluice's CSV for `sql` equals psql's, or both fail with the same SQLSTATE and position.
async fn same_as_psql(env: &Env, sql: &str) {
    match (psql_outcome(&env.cluster, sql), csv(&env.pool, sql).await) {
        (Psql::Csv(theirs), Ok(ours)) => assert_eq!(ours, theirs, "{sql}"),
        (Psql::Error { sqlstate, position, .. }, Err(e)) => {
            assert_eq!(e.sqlstate(), Some(sqlstate.as_str()), "{sql}: {e:?}");
            assert_eq!(e.position(), position, "{sql}: {e:?}");
        }
        (theirs, ours) => panic!("{sql}\n  psql:   {theirs:?}\n  sluice: {ours:?}"),
    }
}

#[tokio::test]
async fn statements_that_once_collided_with_the_describe_wrapper_match_psql() {
    let env = env();
    su(
        &env.cluster,
        "CREATE TABLE t (s int, k text); INSERT INTO t VALUES (1, 'a'), (2, NULL); GRANT SELECT ON t TO analyst;",
    );
    assert_eq!(csv(&env.pool, "select 1 as s, 2 as k").await.expect("s and k"), "s,k\n1,2\n");
    assert_eq!(csv(&env.pool, "select s from t order by s").await.expect("s from t"), "s\n1\n2\n");
    // A whole-row reference named like the old describe alias: psql prints `(1)`.
    assert_eq!(csv(&env.pool, "SELECT s FROM (SELECT 1 AS x) s").await.expect("whole row"), "s\n(1)\n");
    for sql in [
        "select 1 as s, 2 as k",
        "select s from t order by s",
        "select t from t order by s",
        "SELECT s FROM (SELECT 1 AS x) s",
        "SELECT q FROM (SELECT 1 AS x, 'ok'::mood AS y) q",
        "SELECT 'ok'::mood AS q, 1 AS c1, interval '1 day' AS c2, 'sad'::mood AS q",
        "SELECT * FROM (VALUES (1)) AS d(x) LEFT JOIN LATERAL (SELECT d.x AS s) AS q ON true",
    ] {
        same_as_psql(&env, sql).await;
    }
}

#[tokio::test]
async fn names_resolve_as_in_the_statement_alone() {
    let env = env();
    // `d` was the old probe's outer alias, visible through LATERAL: PostgreSQL says 42P01.
    match csv(&env.pool, "SELECT d.a FROM (SELECT 1 AS x) t").await.expect_err("no d") {
        QueryError::Database { code, position, .. } => {
            assert_eq!(code, "42P01");
            assert_eq!(position, Some(8));
        }
        other => panic!("{other:?}"),
    }
    for sql in [
        "SELECT d.a FROM (SELECT 1 AS x) t",
        "SELECT q.x FROM (SELECT 1 AS x) t",
        "SELECT s.x, 'ok'::mood FROM (SELECT 1 AS x) t",
        "SELECT c1 FROM (SELECT 'ok'::mood AS x) t",
    ] {
        same_as_psql(&env, sql).await;
    }
}

#[tokio::test]
async fn zero_column_results_print_one_empty_line_as_psql_does() {
    let env = env();
    for sql in ["select from generate_series(1,3)", "SELECT", "SELECT FROM generate_series(1, 0)"] {
        assert_eq!(csv(&env.pool, sql).await.expect("zero columns"), "\n", "{sql}");
        same_as_psql(&env, sql).await;
    }
}

#[tokio::test]
async fn a_statement_with_a_parameter_fails_as_in_psql() {
    let env = env();
    let e = csv(&env.pool, "  SELECT 'é', $2").await.expect_err("parameter");
    assert_eq!(e.sqlstate(), Some("42P02"));
    assert_eq!(e.position(), Some(15));
    same_as_psql(&env, "SELECT 1 + $1").await;
    // The session is fine afterwards.
    assert_eq!(csv(&env.pool, "SELECT 1 AS s").await.expect("healthy"), "s\n1\n");
}

#[tokio::test]
async fn multi_line_statements_with_comments_keep_their_columns_and_positions() {
    let env = env();
    // A trailing line comment and server-rendered columns: the wrapper must not be commented out.
    let sql = "SELECT 'ok'::mood AS q, -- the mood\n  interval '2 days' AS s -- and a span";
    assert_eq!(csv(&env.pool, sql).await.expect("comment"), "q,s\nok,2 days\n");
    // A position on line 2 of a wrapped statement counts characters of what the user sent.
    let sql = "SELECT 'ok'::mood AS q,\n  nosuch AS s";
    match csv(&env.pool, sql).await.expect_err("column") {
        QueryError::Database { code, position, .. } => {
            assert_eq!(code, "42703");
            assert_eq!(position, Some(27));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn domains_of_table_columns_are_named_and_expressions_carry_their_base_type() {
    let env = env();
    su(
        &env.cluster,
        "CREATE DOMAIN posint AS integer CHECK (VALUE > 0); CREATE DOMAIN small AS posint; \
         CREATE TABLE d (a posint, b small, c int); INSERT INTO d VALUES (1, 2, 3); GRANT SELECT ON d TO analyst;",
    );
    // Twice: the second time on a session that already knows the built-in types' names.
    for _ in 0..2 {
        let (bytes, _) = export_bytes(
            &env.pool,
            req("SELECT a, b, c, a + 1 AS e, 7::posint AS f FROM d", sluice_query::export::Format::Json),
            sluice_query::export::Format::Json,
        )
        .await
        .expect("json");
        let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        let types: Vec<&str> =
            doc["columns"].as_array().expect("columns").iter().map(|c| c["type"].as_str().expect("type")).collect();
        // The wire carries a domain's base type; a table column's domain is read from the catalog.
        assert_eq!(types, ["posint", "small", "integer", "integer", "integer"]);
        assert_eq!(doc["rows"], serde_json::json!([[1, 2, 3, 2, 7]]));
    }
}

#[tokio::test]
async fn a_renamed_type_is_named_afresh_on_a_session_that_saw_its_old_name() {
    let env = env();
    su(&env.cluster, "CREATE TABLE moods (m mood); INSERT INTO moods VALUES ('ok'); GRANT SELECT ON moods TO analyst;");
    let types = |bytes: Vec<u8>| -> Vec<String> {
        let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        doc["columns"].as_array().expect("columns").iter().map(|c| c["type"].as_str().expect("type").into()).collect()
    };
    let run = || {
        export_bytes(
            &env.pool,
            req(
                "SELECT m, COALESCE(m, NULL) AS e, 1 AS i, 'x'::text AS t FROM moods",
                sluice_query::export::Format::Json,
            ),
            sluice_query::export::Format::Json,
        )
    };
    assert_eq!(types(run().await.expect("json").0), ["mood", "mood", "integer", "text"]);
    su(&env.cluster, "ALTER TYPE mood RENAME TO feeling;");
    // The pool holds one session: the same one, which learned the built-in names the first time.
    assert_eq!(types(run().await.expect("json").0), ["feeling", "feeling", "integer", "text"]);
}
