//! A corpus of real statements (`data/corpus.sql`) run through Sluice's CSV exporter and through
//! `psql --csv` against the same cluster, as the same role: byte-identical output, or the same
//! SQLSTATE (and the same position when PostgreSQL gives one).

mod common;

use common::*;
use sluice_query::QueryError;

const CORPUS: &str = include_str!("data/corpus.sql");
const SETUP: &str = include_str!("data/corpus-setup.sql");

/// The statements for this server version, in file order.
fn statements(version: u32) -> Vec<&'static str> {
    CORPUS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .filter_map(|l| match l.strip_prefix('[') {
            Some(rest) => {
                let (min, sql) = rest.split_once("] ")?;
                let min: u32 = min.parse().expect("a major version");
                (version >= min * 10000).then_some(sql)
            }
            None => Some(l),
        })
        .collect()
}

/// The error Sluice gave, as (SQLSTATE, position).
fn ours_error(e: &QueryError) -> (Option<&str>, Option<u32>) {
    (e.sqlstate(), e.position())
}

#[tokio::test]
async fn every_corpus_statement_matches_psql() {
    let env = env();
    su(&env.cluster, SETUP);
    let version = env.cluster.version_num().expect("version");
    let all = statements(version);
    assert!(all.len() >= 500, "the corpus holds {} statements", all.len());
    let mut failures = Vec::new();
    let (mut same_output, mut same_error) = (0, 0);
    for sql in &all {
        let ours = csv(&env.pool, sql).await;
        match (psql_outcome(&env.cluster, sql), ours) {
            (Psql::Csv(theirs), Ok(ours)) if theirs == ours => same_output += 1,
            (Psql::Error { sqlstate, position, .. }, Err(e))
                if ours_error(&e).0 == Some(sqlstate.as_str()) && (position.is_none() || e.position() == position) =>
            {
                same_error += 1
            }
            (theirs, ours) => failures.push(format!("{sql}\n  psql:   {theirs:?}\n  sluice: {ours:?}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} statements differ:\n{}", failures.len(), all.len(), failures.join("\n"));
    // The corpus exercises both outcomes substantially.
    assert!(same_output >= 400 && same_error >= 80, "{same_output} outputs, {same_error} errors");
    // And the session is still healthy after all of it.
    assert_eq!(csv(&env.pool, "SELECT 1 AS s").await.expect("healthy"), "s\n1\n");
}
