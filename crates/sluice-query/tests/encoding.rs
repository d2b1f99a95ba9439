//! Databases whose server encoding is not UTF8. Sluice's session always speaks UTF8: a LATIN1 or
//! WIN1252 database is converted by the server, and the CSV must be byte-identical to what
//! `psql --csv` prints with `client_encoding=UTF8`. A `SQL_ASCII` database is not converted: text
//! that is UTF-8 there reads as it is.

mod common;

use std::time::Duration;

use sluice_connect::{Connector, Pool, PoolOptions};
use sluice_core::{Secret, SourceSpec, SslMode};
use sluice_query::export::Format;
use sluice_testkit::{Cluster, SUPERUSER, SUPERUSER_PASSWORD};

fn pool_for(cluster: &Cluster, db: &str) -> Pool {
    let mut s = SourceSpec::new(cluster.host(), db, SUPERUSER);
    s.hosts[0].port = cluster.port();
    s.password = Some(Secret::new(SUPERUSER_PASSWORD));
    s.sslmode = SslMode::Disable;
    s.connect_timeout_secs = 10;
    Pool::new(
        Connector::new(s).expect("connector"),
        PoolOptions { max_size: 1, acquire_timeout: Duration::from_secs(30) },
    )
}

async fn sluice_csv(pool: &Pool, sql: &str) -> Vec<u8> {
    common::export_bytes(pool, common::req(sql, Format::Csv), Format::Csv).await.expect("query").0
}

/// Names, data of several text types, a composite and an array (rendered by the server), and a
/// character the target encoding has (`€` is 0x80 in WIN1252, absent from LATIN1).
fn fixture(euro: bool) -> String {
    let more = if euro { "('prix en € — 5 €', 'x', '€')," } else { "" };
    format!(
        "SET client_encoding = 'UTF8';
         CREATE TABLE \"café\" (\"naïve\" text, \"größe\" varchar(20), code char(6));
         INSERT INTO \"café\" VALUES {more} ('crème brûlée', 'déjà', 'œuf'), ('plain', NULL, 'ab');"
    )
    .replace("'œuf'", if euro { "'œuf'" } else { "'oeuf'" })
}

const QUERY: &str = "SELECT \"naïve\", \"größe\" AS \"größe vu\", code, ROW(\"naïve\", 1) AS r, \
                     ARRAY[\"naïve\", \"größe\"] AS a FROM \"café\" ORDER BY 1";

#[tokio::test]
async fn latin1_and_win1252_csv_is_byte_identical_to_psql() {
    let cluster = Cluster::start_default().expect("cluster");
    for (db, encoding, euro) in [("l1", "LATIN1", false), ("w1252", "WIN1252", true)] {
        cluster.create_database_with_encoding(db, encoding).expect("database");
        cluster.psql(db, &fixture(euro)).expect("fixture");
        let want = cluster.psql_csv(db, QUERY, "UTF8").expect("psql");
        assert!(String::from_utf8_lossy(&want).contains("crème brûlée"), "{encoding}: the fixture is in place");
        let pool = pool_for(&cluster, db);
        let got = sluice_csv(&pool, QUERY).await;
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "{encoding}");
        assert_eq!(got, want, "{encoding}: byte for byte");
    }
}

#[tokio::test]
async fn a_sql_ascii_database_holding_utf8_reads_as_it_is() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database_with_encoding("legacy", "SQL_ASCII").expect("database");
    // The bytes of `café` in UTF-8, stored as they are.
    cluster
        .psql(
            "legacy",
            "CREATE TABLE t (v text); INSERT INTO t VALUES (convert_from('\\x636166c3a9', 'SQL_ASCII')), ('plain');",
        )
        .expect("fixture");
    let want = cluster.psql_csv("legacy", "SELECT v FROM t ORDER BY v", "UTF8").expect("psql");
    assert_eq!(want, "v\ncafé\nplain\n".as_bytes());
    let got = sluice_csv(&pool_for(&cluster, "legacy"), "SELECT v FROM t ORDER BY v").await;
    assert_eq!(got, want);
}
