//! The same protocol behind a real PgBouncer in transaction mode, where consecutive
//! transactions of one client land on different, shared server connections.

mod common;

use std::time::Duration;

use common::*;
use sluice_connect::{Connector, Pool, PoolOptions};
use sluice_query::export::Format;
use sluice_query::QueryError;
use sluice_testkit::{PgBouncer, PgBouncerOptions};

fn bouncer_pool(bouncer: &PgBouncer) -> Pool {
    let mut s = spec_for(bouncer.host(), bouncer.port());
    s.pgbouncer = true;
    Pool::new(
        Connector::new(s).expect("connector"),
        PoolOptions { max_size: 1, acquire_timeout: Duration::from_secs(30), ..Default::default() },
    )
}

fn spec_for(host: &str, port: u16) -> sluice_core::SourceSpec {
    let mut s = sluice_core::SourceSpec::new(host, DB, USER);
    s.hosts[0].port = port;
    s.password = Some(sluice_core::Secret::new(PW));
    s.sslmode = sluice_core::SslMode::Disable;
    s.connect_timeout_secs = 10;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_results_interleaved_across_shared_server_connections() {
    let env = env();
    su(
        &env.cluster,
        "CREATE TYPE level AS ENUM ('low', 'high');\n\
         CREATE TABLE feelings AS SELECT g AS id, (ARRAY['sad','ok','happy']::mood[])[1 + g % 3] AS m, \
         (ARRAY['low','high']::level[])[1 + g % 2] AS l FROM generate_series(1, 500) g;\n\
         GRANT SELECT ON feelings TO analyst;",
    );
    let bouncer = PgBouncer::start(
        &env.cluster,
        PgBouncerOptions { users: vec![(USER.into(), PW.into())], ..Default::default() },
    )
    .expect("pgbouncer");
    let a = bouncer_pool(&bouncer);
    let b = bouncer_pool(&bouncer);
    let queries = [
        "SELECT id, m FROM feelings ORDER BY id",
        "SELECT id, l, m FROM feelings ORDER BY id DESC",
        "SELECT m, count(*) FROM feelings GROUP BY m ORDER BY m",
    ];
    for round in 0..4 {
        for (i, q) in queries.iter().enumerate() {
            let pool = if (round + i) % 2 == 0 { &a } else { &b };
            let ours = csv(pool, q).await.unwrap_or_else(|e| panic!("{q}: {e:?}\n{}", bouncer.log()));
            assert_eq!(ours, psql_csv(&env.cluster, q), "{q}");
            for format in [Format::Json, Format::Arrow] {
                let (_, summary) = export_bytes(pool, req(q, format), format).await.expect("typed");
                assert!(summary.rows > 0);
            }
        }
    }
    // The limits travel with each transaction; truncation cancels through PgBouncer.
    let mut r = req("SELECT generate_series(1, 1000000000) AS g", Format::Csv);
    r.max_rows = Some(5);
    let (bytes, summary) = export_bytes(&a, r, Format::Csv).await.expect("truncated");
    assert!(summary.truncated);
    assert_eq!(String::from_utf8_lossy(&bytes).lines().count(), 6);
    // The cancel went through PgBouncer to the statement, which is no longer running.
    let running = env
        .cluster
        .psql(DB, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series(1, 1000000000)%' AND pid <> pg_backend_pid();")
        .expect("activity");
    assert_eq!(running, "0", "{}", bouncer.log());
    let mut r = req("SELECT pg_sleep(30)", Format::Csv);
    r.timeout = Some(Duration::from_millis(300));
    let e = export_bytes(&b, r, Format::Csv).await.expect_err("timeout");
    assert!(matches!(e, QueryError::Timeout { .. }), "{e:?}\n{}", bouncer.log());
    assert_eq!(csv(&b, "SHOW lock_timeout").await.expect("show"), "lock_timeout\n5s\n");
}
