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
        PoolOptions { max_size: 1, acquire_timeout: Duration::from_secs(30), ..Default::default() },
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

/// A `SQL_ASCII` database holding Latin-1 bytes: a column whose name is `na\xefve`, values
/// `caf\xe9` in text, char(6), jsonb, text[] and a composite, UTF-8 and ASCII beside them, and
/// aliases (one of them `s`, one `k`, as Sluice's own name probe calls its relations).
const LATIN1_FIXTURE: &str = "
    DO $$ BEGIN
      EXECUTE pg_catalog.format(
        'CREATE TABLE t (id int, %I text, code char(6), clean text, doc jsonb, tags text[], span interval)',
        convert_from('\\x6e61ef7665', 'SQL_ASCII'));
    END $$;
    INSERT INTO t VALUES
      (1, convert_from('\\x636166e9', 'SQL_ASCII'), convert_from('\\xe9', 'SQL_ASCII'), 'plain, \"quoted\"',
          jsonb_build_object('k', convert_from('\\x636166e9', 'SQL_ASCII')),
          ARRAY[convert_from('\\x636166e9', 'SQL_ASCII'), 'x,y'], '1 day'),
      (2, convert_from('\\x636166c3a9', 'SQL_ASCII'), 'ab', 'two', '{\"n\": 1}', '{}', '2 hours'),
      (3, NULL, NULL, NULL, NULL, NULL, NULL);";

const LATIN1_QUERY: &str = "SELECT t.*, ROW(t.id, t.code) AS r, clean AS \"prénom vu\", id AS s, id + 1 AS k \
                            FROM t ORDER BY id";

/// Runs `sql` in `format` and returns the output and the columns the exporter reported lossy.
async fn export_with_flags(pool: &Pool, sql: &str, format: Format, max_rows: Option<u64>) -> (Vec<u8>, Vec<String>) {
    use sluice_query::export::{self, ExportContext, Sink};
    let mut request = common::req(sql, format);
    request.max_rows = max_rows;
    let stream = sluice_query::run(pool.get().await.expect("session"), request).await.expect("query");
    let names: Vec<String> = stream.columns().iter().map(|c| c.name.clone()).collect();
    let mut exporter = format.exporter(ExportContext { max_rows });
    let mut out = Vec::new();
    export::export(stream, exporter.as_mut(), Sink::Blocking(&mut out)).await.expect("export");
    let lossy = exporter.lossy_columns().into_iter().map(|i| names[i].clone()).collect();
    (out, lossy)
}

const NAIVE: &str = "na\u{FFFD}ve";
const CAFE: &str = "caf\u{FFFD}";

fn lossy_expected() -> Vec<String> {
    [NAIVE, "code", "doc", "tags", "r"].map(String::from).to_vec()
}

#[tokio::test]
async fn a_sql_ascii_database_holding_latin1_csv_is_byte_identical_to_psql() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database_with_encoding("latin", "SQL_ASCII").expect("database");
    cluster.psql("latin", LATIN1_FIXTURE).expect("fixture");
    let pool = pool_for(&cluster, "latin");

    let want = cluster.psql_csv("latin", LATIN1_QUERY, "SQL_ASCII").expect("psql");
    assert!(want.starts_with(b"id,na\xefve,code,"), "{}", String::from_utf8_lossy(&want));
    assert!(want.windows(4).any(|w| w == b"caf\xe9"), "the fixture holds Latin-1 bytes");
    // What a UTF8 client gets from the server itself for such text.
    let refused = cluster.psql_csv("latin", "SELECT code FROM t", "UTF8").expect_err("psql as UTF8");
    assert!(refused.to_string().contains("invalid byte sequence for encoding \"UTF8\""), "{refused}");

    let (got, lossy) = export_with_flags(&pool, LATIN1_QUERY, Format::Csv, None).await;
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
    assert_eq!(got, want, "byte for byte");
    assert!(lossy.is_empty(), "CSV keeps the bytes: {lossy:?}");

    // Column names alone, NULLs, and a statement whose columns are all decoded on the client.
    for sql in ["SELECT * FROM t WHERE false", "SELECT id, id * 2 AS \"é\" FROM t ORDER BY 1", "SELECT"] {
        let want = cluster.psql_csv("latin", sql, "SQL_ASCII").expect("psql");
        assert_eq!(sluice_csv(&pool, sql).await, want, "{sql}");
    }

    // An error in the statement still points where PostgreSQL does.
    let request = common::req("SELECT nosuch FROM t", Format::Csv);
    let e = common::export_bytes(&pool, request, Format::Csv).await.expect_err("unknown column");
    assert_eq!((e.sqlstate(), e.position()), (Some("42703"), Some(8)), "{e}");
}

#[tokio::test]
async fn a_sql_ascii_database_holding_latin1_gives_utf8_with_the_lossy_columns_flagged() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database_with_encoding("latin", "SQL_ASCII").expect("database");
    cluster.psql("latin", LATIN1_FIXTURE).expect("fixture");
    let pool = pool_for(&cluster, "latin");

    // JSON: valid UTF-8, U+FFFD where bytes were invalid, the lossy columns listed after the rows.
    let (json, lossy) = export_with_flags(&pool, LATIN1_QUERY, Format::Json, None).await;
    let text = String::from_utf8(json).expect("UTF-8");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let names: Vec<&str> =
        doc["columns"].as_array().expect("columns").iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["id", NAIVE, "code", "clean", "doc", "tags", "span", "r", "prénom vu", "s", "k"]);
    let row = |i: usize| doc["rows"][i].as_array().expect("row").clone();
    assert_eq!(row(0)[1], serde_json::json!(CAFE));
    assert_eq!(row(0)[2], serde_json::json!(format!("{}     ", '\u{FFFD}')));
    assert_eq!(row(0)[3], serde_json::json!("plain, \"quoted\""));
    assert_eq!(row(0)[4], serde_json::json!({ "k": CAFE }));
    assert_eq!(row(0)[5], serde_json::json!(format!("{{{CAFE},\"x,y\"}}")));
    assert_eq!(row(0)[6], serde_json::json!("1 day"));
    assert_eq!(row(0)[7], serde_json::json!(format!("(1,\"{}     \")", '\u{FFFD}')));
    assert_eq!(row(1)[1], serde_json::json!("café"), "UTF-8 text is kept");
    assert_eq!(row(2)[1], serde_json::Value::Null);
    assert_eq!(doc["lossy_columns"], serde_json::json!(lossy_expected()));
    assert_eq!(lossy, lossy_expected());
    assert_eq!(doc["truncated"], serde_json::json!(false));
    assert!(text.find("\"lossy_columns\"") > text.find("\"rows\""), "after the rows");

    // A clean result has no list.
    let (clean, lossy) = export_with_flags(&pool, "SELECT clean, span FROM t ORDER BY id", Format::Json, None).await;
    assert!(lossy.is_empty() && !String::from_utf8(clean).expect("UTF-8").contains("lossy_columns"));

    // NDJSON: the same values; the exporter reports the columns (the CLI prints them).
    let (nd, lossy) = export_with_flags(&pool, LATIN1_QUERY, Format::Ndjson, None).await;
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(nd).expect("UTF-8").lines().next().expect("a line")).expect("json");
    assert_eq!(first[NAIVE], serde_json::json!(CAFE));
    assert_eq!(first["prénom vu"], serde_json::json!("plain, \"quoted\""));
    assert_eq!(lossy, lossy_expected());

    // Arrow: text fields say `pg_encoding=SQL_ASCII` in the schema, which comes first; values
    // hold U+FFFD. A row-limited stream holds its schema until the end and lists the columns.
    for max_rows in [None, Some(10)] {
        let (ipc, lossy) = export_with_flags(&pool, LATIN1_QUERY, Format::Arrow, max_rows).await;
        assert_eq!(lossy, lossy_expected());
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).expect("ipc");
        let schema = reader.schema();
        let encoded: Vec<&str> = schema
            .fields()
            .iter()
            .filter(|f| f.metadata().get("pg_encoding").map(String::as_str) == Some("SQL_ASCII"))
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(encoded, [NAIVE, "code", "clean", "doc", "tags", "span", "r", "prénom vu"]);
        let listed = schema.metadata().get("sluice.lossy_columns").cloned();
        let want_listed = max_rows.map(|_| serde_json::json!(lossy_expected()).to_string());
        assert_eq!(listed, want_listed, "max_rows {max_rows:?}");
        let batches: Vec<_> = reader.map(|b| b.expect("batch")).collect();
        let naive = batches[0].column(1).as_any().downcast_ref::<arrow_array::StringArray>().expect("utf8");
        assert_eq!((naive.value(0), naive.value(1), arrow_array::Array::is_null(naive, 2)), (CAFE, "café", true));
    }

    // Parquet: the footer lists the lossy columns.
    let (pq, lossy) = export_with_flags(&pool, LATIN1_QUERY, Format::Parquet, None).await;
    assert_eq!(lossy, lossy_expected());
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(pq))
        .expect("parquet");
    let kv = builder.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    let listed = kv.iter().find(|k| k.key == "sluice.lossy_columns").and_then(|k| k.value.clone());
    assert_eq!(listed, Some(serde_json::json!(lossy_expected()).to_string()));
    let batch = builder.build().expect("reader").next().expect("a batch").expect("batch");
    let tags = batch.column(5).as_any().downcast_ref::<arrow_array::StringArray>().expect("utf8");
    assert_eq!(tags.value(0), format!("{{{CAFE},\"x,y\"}}"));
}
