//! Sluice sessions behind a real PgBouncer (Debian's 1.18) in transaction pooling mode.
//!
//! PgBouncer runs with 2 server connections for 4+ clients, so consecutive transactions of one
//! client really do land on different server connections.

use std::collections::HashSet;
use std::error::Error;

use sluice_connect::{Connector, Isolation, Pool, PoolOptions, ReadOnlySession, TransactionOptions};
use sluice_core::{Secret, SourceSpec, SslMode};
use sluice_testkit::{Cluster, PgBouncer, PgBouncerOptions};
use tokio_postgres::types::{FromSql, Kind, Type};

const PW: &str = "bouncer-pw";

/// A value of a user-defined enum type; checks the driver learned the type's labels.
#[derive(Debug, PartialEq)]
struct Label {
    type_name: String,
    value: String,
}

impl<'a> FromSql<'a> for Label {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let value = std::str::from_utf8(raw)?.to_string();
        match ty.kind() {
            Kind::Enum(labels) if labels.contains(&value) => Ok(Label { type_name: ty.name().to_string(), value }),
            other => Err(format!("`{value}` is not a label of {other:?}").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.kind(), Kind::Enum(_))
    }
}

struct Setup {
    cluster: Cluster,
    bouncer: PgBouncer,
}

fn setup() -> Setup {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("app", PW).expect("role");
    cluster
        .psql(
            "postgres",
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
             CREATE TYPE weather AS ENUM ('rain', 'sun'); \
             CREATE TABLE feelings(id int, m mood, w weather); \
             INSERT INTO feelings SELECT i, (ARRAY['sad','ok','happy'])[1 + i % 3]::mood, \
                (ARRAY['rain','sun'])[1 + i % 2]::weather FROM generate_series(1, 12) i; \
             GRANT SELECT ON feelings TO app;",
        )
        .expect("schema");
    let bouncer =
        PgBouncer::start(&cluster, PgBouncerOptions { users: vec![("app".into(), PW.into())], ..Default::default() })
            .expect("pgbouncer");
    Setup { cluster, bouncer }
}

fn spec(bouncer: &PgBouncer, pgbouncer: bool) -> SourceSpec {
    let mut s = SourceSpec::new(bouncer.host(), "postgres", "app");
    s.hosts[0].port = bouncer.port();
    s.password = Some(Secret::new(PW));
    s.sslmode = SslMode::Disable;
    s.connect_timeout_secs = 5;
    s.pgbouncer = pgbouncer;
    s
}

/// A plain driver client through PgBouncer, for holding a server connection or looking at one.
async fn raw_client(bouncer: &PgBouncer) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=app password={PW} dbname=postgres", bouncer.port()),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("raw client: {e:?}\n{}", bouncer.log()));
    tokio::spawn(connection);
    client
}

async fn pid(client: &tokio_postgres::Client) -> i32 {
    client.query_typed_one("SELECT pg_backend_pid()", &[]).await.expect("pid").get(0)
}

/// One unit of work: a read-only transaction reading the enum column `column`.
async fn read_labels(session: &mut ReadOnlySession, column: &str) -> Result<(i32, Vec<Label>), tokio_postgres::Error> {
    let tx = session.read_only_transaction().await.expect("begin");
    let backend = pid(tx.client()).await;
    let rows = tx.client().query_typed(&format!("SELECT {column} FROM feelings ORDER BY id"), &[]).await?;
    tx.commit().await.expect("commit");
    Ok((backend, rows.iter().map(|r| r.get(0)).collect()))
}

/// The environment really breaks what tokio-postgres does by default: a named statement
/// prepared on one server connection is gone when the next transaction lands on the other.
#[tokio::test]
async fn this_pgbouncer_really_swaps_server_connections() {
    let Setup { bouncer, cluster: _cluster } = setup();
    let a = raw_client(&bouncer).await;
    let b = raw_client(&bouncer).await;
    let stmt = a.prepare("SELECT 1").await.expect("prepare");
    // `b` takes the server connection `a` just released (PgBouncer hands out the most recently
    // used one) and keeps it inside a transaction.
    b.batch_execute("BEGIN").await.expect("begin");
    pid(&b).await;
    let e = a.query(&stmt, &[]).await.expect_err("the statement is on the other server");
    assert_eq!(e.code().map(|c| c.code()), Some("26000"), "{e}");
    b.batch_execute("COMMIT").await.expect("commit");
}

/// The driver caches its type-lookup statement; a new enum type seen in a later transaction on
/// another server connection must still resolve, and no `SET` may leak into shared connections.
#[tokio::test]
async fn type_lookups_survive_a_change_of_server_connection() {
    let Setup { bouncer, cluster: _cluster } = setup();
    let connector = Connector::new(spec(&bouncer, true)).expect("connector");
    let mut session = connector.connect().await.expect("session");
    assert!(session.info().pgbouncer);

    let (first, labels) = read_labels(&mut session, "m").await.expect("mood");
    assert_eq!(labels[0], Label { type_name: "mood".into(), value: "ok".into() });

    let holder = raw_client(&bouncer).await;
    holder.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(pid(&holder).await, first, "the holder took the server connection just used");
    // Nothing Sluice did is left on the shared server connection.
    let leaked = holder
        .query_typed_one(
            "SELECT current_setting('statement_timeout'), current_setting('default_transaction_read_only')",
            &[],
        )
        .await
        .expect("settings");
    assert_eq!((leaked.get::<_, String>(0), leaked.get::<_, String>(1)), ("0".into(), "off".into()));
    let leftovers: i64 =
        holder.query_typed_one("SELECT count(*) FROM pg_prepared_statements", &[]).await.expect("statements").get(0);
    assert_eq!(leftovers, 0, "no prepared statement outlives Sluice's transaction");

    let (second, labels) = read_labels(&mut session, "w").await.expect("a new enum type on another connection");
    assert_ne!(second, first);
    assert_eq!(labels[0], Label { type_name: "weather".into(), value: "sun".into() });
    let (_, labels) = read_labels(&mut session, "m").await.expect("the cached type again");
    assert_eq!(labels.len(), 12);
    holder.batch_execute("COMMIT").await.expect("commit");

    // Limits are set per transaction, and writes are refused.
    let tx = session.read_only_transaction().await.expect("begin");
    let row = tx
        .client()
        .query_typed_one("SELECT current_setting('statement_timeout'), current_setting('transaction_read_only')", &[])
        .await
        .expect("show");
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), ("5min".into(), "on".into()));
    let e = tx.client().batch_execute("CREATE TABLE nope(x int)").await.expect_err("read-only");
    assert_eq!(e.code().map(|c| c.code()), Some("25006"));
    // After an error the transaction still ends cleanly (savepoint), and the session goes on.
    tx.rollback().await.expect("rollback after an error");
    read_labels(&mut session, "m").await.expect("usable after an error");

    // Without PgBouncer mode the same sequence breaks, which is what the mode is for.
    let plain = Connector::new(spec(&bouncer, false)).expect("connector");
    let mut session = plain.connect().await.expect("session");
    let (first, _) = read_labels(&mut session, "m").await.expect("mood");
    let holder = raw_client(&bouncer).await;
    holder.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(pid(&holder).await, first);
    let e = read_labels(&mut session, "w").await.expect_err("the cached lookup is on the other server");
    assert_eq!(e.code().map(|c| c.code()), Some("26000"), "{e}");
    holder.batch_execute("COMMIT").await.expect("commit");
}

#[tokio::test]
async fn two_hundred_queries_from_four_concurrent_sessions() {
    let Setup { bouncer, cluster } = setup();
    let pool = Pool::new(
        Connector::new(spec(&bouncer, true)).expect("connector"),
        PoolOptions { max_size: 4, ..Default::default() },
    );
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut session = pool.get().await.expect("session");
            let mut pids = HashSet::new();
            let mut done = 0;
            for i in 0..50i32 {
                let tx = session.read_only_transaction().await.expect("begin");
                let c = tx.client();
                // A short sleep keeps the 4 sessions' transactions overlapping, so the 2 server
                // connections are both busy and handed out in turn.
                let backend: i32 =
                    c.query_typed_one("SELECT pg_backend_pid() FROM pg_sleep(0.01)", &[]).await.expect("pid").get(0);
                pids.insert(backend);
                match (worker + i) % 4 {
                    0 => {
                        let rows = c.query_typed("SELECT m FROM feelings ORDER BY id", &[]).await.expect("enum");
                        assert_eq!(rows.len(), 12);
                        let first: Label = rows[0].get(0);
                        assert_eq!(first.value, "ok");
                    }
                    1 => {
                        let row = c
                            .query_typed_one(
                                "SELECT w, count(*) FROM feelings WHERE id > $1 GROUP BY w ORDER BY w LIMIT 1",
                                &[(&3i32, Type::INT4)],
                            )
                            .await
                            .expect("enum with a parameter");
                        let w: Label = row.get(0);
                        assert_eq!(w.value, "rain");
                    }
                    2 => {
                        // A named statement from `prepare`, used within its transaction.
                        let stmt = c.prepare("SELECT $1::int4 * 2").await.expect("prepare");
                        let row = c.query_one(&stmt, &[&i]).await.expect("execute");
                        assert_eq!(row.get::<_, i32>(0), i * 2);
                    }
                    _ => {
                        let rows = c.simple_query("SELECT count(*) FROM feelings").await.expect("simple");
                        let count = rows.iter().find_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                            _ => None,
                        });
                        assert_eq!(count.as_deref(), Some("12"));
                    }
                }
                tx.commit().await.expect("commit");
                done += 1;
            }
            (done, pids)
        }));
    }
    let mut total = 0;
    let mut backends = HashSet::new();
    let mut moved = 0;
    for t in tasks {
        let (done, pids) = t.await.expect("worker");
        total += done;
        moved += usize::from(pids.len() > 1);
        backends.extend(pids);
    }
    assert_eq!(total, 200);
    // How often a session moved between server connections depends on scheduling, so it is
    // reported, not asserted; the tests above force the move deterministically.
    eprintln!("{moved} of 4 sessions ran on more than one server connection; {} backends in all", backends.len());
    // The 4 sessions shared PgBouncer's 2 server connections.
    assert!(!backends.is_empty() && backends.len() <= 2, "{backends:?}");
    let servers =
        cluster.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app';").expect("count");
    assert!(servers.parse::<u32>().unwrap_or(99) <= 2, "{servers}");
}

/// PgBouncer forwards a cancel over a server connection of its own and drops it if the client
/// hangs up first; Sluice's cancel waits until PgBouncer closes, so the statement really stops.
#[tokio::test]
async fn a_cancel_through_pgbouncer_reaches_the_statement() {
    let Setup { bouncer, cluster } = setup();
    let connector = Connector::new(spec(&bouncer, true)).expect("connector");
    for round in 0..3 {
        let mut session = connector.connect().await.expect("session");
        let cancel = session.cancel_handle();
        let running = tokio::spawn(async move {
            let tx = session.read_only_transaction().await.expect("begin");
            let r = tx.client().simple_query("SELECT pg_sleep(60)").await.map(|_| ());
            // The server's cancel signals its backend twice (process and group); behind PgBouncer
            // the second may land on the ROLLBACK. Either way the transaction is over.
            if let Err(e) = tx.rollback().await {
                assert!(e.to_string().contains("57014"), "rollback after the cancel: {e:?}");
            }
            r
        });
        // Wait until the statement is running on the server, then cancel it.
        let mut seen = String::new();
        for _ in 0..100 {
            seen = cluster
                .psql(
                    "postgres",
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(60)';",
                )
                .expect("activity");
            if seen == "1" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(seen, "1", "round {round}: the statement never started\n{}", bouncer.log());
        cancel.cancel().await.unwrap_or_else(|e| panic!("round {round}: cancel: {e:?}\n{}", bouncer.log()));
        // Well before the 60 s sleep would end on its own.
        let result = tokio::time::timeout(std::time::Duration::from_secs(20), running)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the cancel never reached the statement\n{}", bouncer.log()))
            .expect("join");
        let e = result.expect_err("cancelled");
        assert_eq!(e.code().map(|c| c.code()), Some("57014"), "round {round}: {e}");
    }
}

/// Behind PgBouncer nothing is set on the session, so the confirmed transaction is the only
/// guard — and the only way to the client (the session's own is not public: see the
/// `compile_fail` example on `ReadOnlyTransaction`). Every kind of write tried through it fails
/// with SQLSTATE 25006, at every isolation level, and nothing is written.
#[tokio::test]
async fn behind_pgbouncer_every_write_through_a_transaction_fails_read_only() {
    let Setup { bouncer, cluster } = setup();
    cluster
        .psql(
            "postgres",
            "GRANT ALL ON feelings TO app; GRANT CREATE ON SCHEMA public TO app; \
             CREATE SEQUENCE counter; GRANT ALL ON SEQUENCE counter TO app;",
        )
        .expect("grants");
    let mut session = Connector::new(spec(&bouncer, true)).expect("connector").connect().await.expect("session");
    assert!(session.info().pgbouncer);
    let writes = [
        "CREATE TABLE nope(x int)",
        "INSERT INTO feelings(id) VALUES (100)",
        "UPDATE feelings SET id = id + 1",
        "DELETE FROM feelings",
        "SELECT nextval('counter')",
        "SET default_transaction_read_only = off; INSERT INTO feelings(id) VALUES (101)",
    ];
    for isolation in [Isolation::ReadCommitted, Isolation::RepeatableRead, Isolation::Serializable] {
        for sql in writes {
            let options = TransactionOptions { isolation, ..Default::default() };
            let tx = session.read_only_transaction_with(&options).await.expect("begin");
            let simple = tx.client().batch_execute(sql).await.expect_err("simple protocol write");
            assert_eq!(simple.code().map(|c| c.code()), Some("25006"), "{isolation:?} {sql}: {simple}");
            tx.rollback().await.expect("rollback after the refused write");
            if !sql.contains(';') {
                let tx = session.read_only_transaction_with(&options).await.expect("begin");
                let extended = tx.client().execute(sql, &[]).await.expect_err("extended protocol write");
                assert_eq!(extended.code().map(|c| c.code()), Some("25006"), "{isolation:?} {sql}: {extended}");
                tx.rollback().await.expect("rollback after the refused write");
            }
        }
        // The transaction already took its snapshot: it cannot be made read-write.
        let tx = session.read_only_transaction_with(&TransactionOptions { isolation, ..Default::default() }).await;
        let tx = tx.expect("begin");
        let e = tx.client().batch_execute("SET TRANSACTION READ WRITE").await.expect_err("too late");
        assert_eq!(e.code().map(|c| c.code()), Some("25001"), "{e}");
        tx.rollback().await.expect("rollback");
    }
    assert_eq!(cluster.psql("postgres", "SELECT count(*) FROM feelings").expect("count"), "12");
    assert_eq!(cluster.psql("postgres", "SELECT to_regclass('public.nope') IS NULL").expect("nope"), "t");
    assert_eq!(cluster.psql("postgres", "SELECT last_value FROM counter").expect("counter"), "1");
    assert_eq!(cluster.psql("postgres", "SELECT is_called::text FROM counter").expect("counter"), "false");
}
