//! Type fidelity: every type in every format, CSV compared byte for byte with `psql --csv`.

mod common;

use common::*;
use sluice_query::export::Format;
use sluice_query::QueryError;

/// Every type the issue lists, with edge values; row 3 is all NULL.
const SETUP: &str = r#"
CREATE EXTENSION citext;
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN label AS text;
CREATE TYPE pair AS (n integer, s text, t timestamptz);
CREATE TABLE fidelity (
  id int PRIMARY KEY,
  nul text, b bool, i2 int2, i4 int4, i8 int8, o oid,
  n numeric, n_big numeric, n_dec numeric(12,2), n_wide numeric(60,10),
  f4 float4, f8 float8, f8_special float8,
  t text, vc varchar(20), ch char(6), nm name, ci citext,
  by bytea, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
  u uuid, js json, jb jsonb,
  a_int int[], a_2d int[], a_lb int[], a_text text[], a_empty int[], a_tstz timestamptz[], a_num numeric(6,2)[],
  mo mood, a_mood mood[], dom posint, dom_text label, comp pair,
  ip inet, cid cidr, mac macaddr, mon money,
  r int4range, rts tstzrange, mr int4multirange,
  bt bit(4), vb varbit, tsv tsvector, x xml, pt point, lsn pg_lsn
);
INSERT INTO fidelity VALUES (
  1, NULL, true, -32768, -2147483648, -9223372036854775808, 4294967295,
  '-0.000012', (repeat('9', 500) || '.' || repeat('1', 500))::numeric, 1234567890.12, '-12345678901234567890123456789012345678901234567890.0123456789',
  '0.1', '0.1', '1e100',
  E'comma, "quote"\nnewline\ttab \\ back é ☃', 'short', 'ab', 'pg_name', 'MiXeD',
  '\x00ff10', '2020-02-29', '13:45:06.789', '13:45:06+05:30', '2020-01-01 00:00:00.123456', '2020-06-01 12:00:00+02', '1 year 2 mons 3 days 04:05:06.789',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50, "x"]}', '{"b": {"c": null}, "a": 1.000}',
  '{1,NULL,3}', '{{1,2},{3,4}}', '[0:1]={7,8}', '{"a b","c,d",NULL,"NULL","","q\"uote"}', '{}', '{"2020-01-01 00:00:00+00",NULL}', '{1.50,NULL,-2}',
  'happy', '{sad,happy}', 7, 'lbl', ROW(1, 'a b', '2020-01-01 00:00:00+00'),
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '12.34',
  '[1,10)', '[2020-01-01,2020-02-01)', '{[1,3),[5,7)}',
  B'1010', B'101', 'a fat cat sat', '<a>b &amp; c</a>', '(1.5,-2)', '16/B374D848'
), (
  2, '', false, 32767, 2147483647, 9223372036854775807, 0,
  'NaN', 'Infinity', -0.01, NULL,
  'NaN', '-0', 'Infinity',
  '\.', '', '', '', '',
  '', '-infinity', '24:00:00', '00:00:00-12', '0044-03-15 12:00:00 BC', '-infinity', '-1 days -00:00:01',
  '00000000-0000-0000-0000-000000000000', '[]', '[]',
  '{NULL}', '{{NULL,NULL}}', '[-3:-2][5:5]={{1},{2}}', '{"{}","\\"}', '{}', '{}', '{}',
  'sad', '{}', 1, '', ROW(NULL, NULL, NULL),
  '::1', '::/0', 'ff:ff:ff:ff:ff:ff', '-0.01',
  'empty', '(,)', '{}',
  B'0000', B'', '', '<x/>', '(0,0)', '0/0'
), (
  3, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, '-Infinity', NULL, NULL,
  NULL, '1.7976931348623157e308', '-Infinity',
  NULL, NULL, NULL, NULL, NULL,
  NULL, 'infinity', NULL, NULL, 'infinity', 'infinity', NULL,
  NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL,
  NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL
), (
  4, 'x', true, 0, 0, 0, 0,
  '0', '1e-20', 0, 0,
  '3.4028235e38', '5e-324', '123456789012345678',
  'NULL', 'x', 'abcdef', 'n', 'é',
  '\x', '5874897-12-31', '00:00:00', '23:59:59.999999+14', '294276-12-31 23:59:59.999999', '1900-01-01 00:00:00+00', '0',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '"str"', 'true',
  '{-1}', '{{{1}}}', '{1}', '{" lead",trail\ ,"tab\t"}', '{}', '{infinity}', '{NaN}',
  'ok', '{ok,ok}', 2147483647, E'multi\nline', ROW(-1, E'q"\\', '-infinity'),
  '10.1.2.3', '10.1.2.0/24', '00:00:00:00:00:00', '92233720368547758.07',
  '(,5]', '[2020-01-01,)', '{[1,2), [4,5)}',
  B'1111', B'1', 'b:1A c:2B,3', '<?xml version="1.0"?><r/>', '(1e-05,100000)', 'FFFFFFFF/FFFFFFFF'
);
"#;

const QUERY: &str = "SELECT * FROM fidelity ORDER BY id";

/// [`SETUP`] for this server: before PostgreSQL 14 there are no multiranges and no numeric
/// infinities, so those cells use a range and NaN instead.
fn setup_for(env: &Env) -> String {
    let version = env.cluster.version_num().expect("version");
    if version >= 140000 {
        return SETUP.to_string();
    }
    SETUP
        .replace("mr int4multirange", "mr int4range")
        .replace("'{[1,3),[5,7)}'", "'[1,3)'")
        .replace("'(,)', '{}'", "'(,)', 'empty'")
        .replace("'{[1,2), [4,5)}'", "'[4,5)'")
        .replace("'NaN', 'Infinity', -0.01", "'NaN', 'NaN', -0.01")
        .replace("NULL, '-Infinity', NULL, NULL,", "NULL, 'NaN', NULL, NULL,")
}

#[tokio::test]
async fn csv_is_byte_identical_to_psql_for_every_type() {
    let env = env();
    su(&env.cluster, &setup_for(&env));
    su(&env.cluster, "GRANT SELECT ON fidelity TO analyst;");
    let ours = csv(&env.pool, QUERY).await.expect("query");
    let theirs = psql_csv(&env.cluster, QUERY);
    assert_eq!(ours, theirs);
    // Each column alone too: the wrapped (server-rendered) and binary paths mix per column.
    let columns = parse_csv(&theirs)[0].clone();
    for c in columns {
        let q = format!("SELECT {c}, {c} AS again FROM fidelity ORDER BY id DESC");
        assert_eq!(csv(&env.pool, &q).await.expect("query"), psql_csv(&env.cluster, &q), "{c}");
    }
    // Expressions, duplicate names and a zero-row result.
    for q in [
        "SELECT 1 AS a, 'x' AS a, NULL AS a, 1.5::float4 * 3, now() - now()",
        "SELECT * FROM fidelity WHERE false",
        "VALUES (1, 'one'), (2, NULL)",
        "TABLE fidelity",
        "WITH x AS (SELECT mo, a_mood FROM fidelity) SELECT * FROM x ORDER BY 1",
        "SELECT g, g::numeric / 7, (g * 1.1)::float8, (g || ' days')::interval, 'happy'::mood FROM generate_series(1, 3000) g",
        "SHOW TimeZone",
        "EXPLAIN (COSTS OFF) SELECT * FROM fidelity",
    ] {
        assert_eq!(csv(&env.pool, q).await.expect("query"), psql_csv(&env.cluster, q), "{q}");
    }
}

#[tokio::test]
async fn csv_matches_psql_under_other_session_settings() {
    // Non-UTC TimeZone, a non-ISO DateStyle, low float precision, escape bytea: the server then
    // renders those types itself.
    let env = env_with(&[
        ("TimeZone", "America/New_York"),
        ("DateStyle", "SQL, DMY"),
        ("extra_float_digits", "0"),
        ("bytea_output", "escape"),
        ("IntervalStyle", "iso_8601"),
    ]);
    su(&env.cluster, &setup_for(&env));
    su(&env.cluster, "GRANT SELECT ON fidelity TO analyst;");
    let ours = csv(&env.pool, QUERY).await.expect("query");
    assert_eq!(ours, psql_csv(&env.cluster, QUERY));
    assert!(ours.contains("EST") || ours.contains("EDT"), "{ours}");
}

fn cell<'a>(rows: &'a [Vec<String>], header: &[String], row: usize, col: &str) -> &'a str {
    let i = header.iter().position(|h| h == col).expect("column");
    &rows[row][i]
}

#[tokio::test]
async fn json_and_ndjson_are_exact() {
    let env = env();
    su(&env.cluster, &setup_for(&env));
    su(&env.cluster, "GRANT SELECT ON fidelity TO analyst;");
    let reference = parse_csv(&psql_csv(&env.cluster, QUERY));
    let header = reference[0].clone();
    let rows = &reference[1..];

    let (bytes, summary) = export_bytes(&env.pool, req(QUERY, Format::Json), Format::Json).await.expect("json");
    assert_eq!(summary.rows, 4);
    let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
    assert_eq!(doc["truncated"], serde_json::Value::Bool(false));
    let cols = doc["columns"].as_array().expect("columns");
    assert_eq!(cols.len(), header.len());
    assert_eq!(cols[3]["name"], "i2");
    assert_eq!(cols[3]["type"], "smallint");
    let mood = cols.iter().find(|c| c["name"] == "mo").expect("mo");
    assert_eq!(mood["type"], "mood");
    let out_rows = doc["rows"].as_array().expect("rows");
    assert_eq!(out_rows.len(), 4);

    // Every scalar value: a string or number equals psql's text exactly (numbers keep every
    // digit), a bool is t/f, null is null.
    for (r, row) in out_rows.iter().enumerate() {
        for (c, v) in row.as_array().expect("row").iter().enumerate() {
            let want = rows[r][c].as_str();
            let name = header[c].as_str();
            match v {
                serde_json::Value::Null => assert_eq!(want, "", "{name} row {r}"),
                json if name.starts_with('j') => {
                    let parsed: serde_json::Value = serde_json::from_str(want).expect("json text");
                    assert_eq!(json, &parsed, "{name}");
                }
                serde_json::Value::Bool(b) => {
                    assert_eq!(want, if *b { "t" } else { "f" }, "{name}")
                }
                serde_json::Value::Number(n) => assert_eq!(n.to_string(), want, "{name} row {r}"),
                serde_json::Value::String(s) => assert_eq!(s, want, "{name} row {r}"),
                other => assert!(name.starts_with("a_"), "{name}: unexpected {other}"),
            }
        }
    }
    // Arrays: nested JSON arrays with default bounds, text with other bounds.
    let at = |r: usize, name: &str| out_rows[r][header.iter().position(|h| h == name).expect("col")].clone();
    assert_eq!(at(0, "a_int").to_string(), "[1,null,3]");
    assert_eq!(at(0, "a_2d").to_string(), "[[1,2],[3,4]]");
    assert_eq!(at(0, "a_lb"), serde_json::json!("[0:1]={7,8}"));
    assert_eq!(at(0, "a_text"), serde_json::json!(["a b", "c,d", null, "NULL", "", "q\"uote"]));
    assert_eq!(at(0, "a_num").to_string(), "[1.50,null,-2.00]");
    assert_eq!(at(0, "a_mood"), serde_json::json!("{sad,happy}"));
    assert_eq!(at(1, "a_empty").to_string(), "[]");
    assert_eq!(at(0, "n_big").to_string(), cell(rows, &header, 0, "n_big"));
    assert_eq!(at(1, "n"), serde_json::json!("NaN"));
    assert_eq!(at(2, "f8_special"), serde_json::json!("-Infinity"));
    assert_eq!(at(0, "by"), serde_json::json!("\\x00ff10"));

    let (lines, _) = export_bytes(&env.pool, req(QUERY, Format::Ndjson), Format::Ndjson).await.expect("ndjson");
    let text = String::from_utf8(lines).expect("utf8");
    let objects: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("one object per line")).collect();
    assert_eq!(objects.len(), 4);
    for (r, o) in objects.iter().enumerate() {
        let o = o.as_object().expect("object");
        assert_eq!(o.len(), header.len());
        for (c, name) in header.iter().enumerate() {
            assert_eq!(o[name.as_str()], out_rows[r][c], "{name}");
        }
    }

    // Duplicate names: kept in JSON's column list, made unique as NDJSON keys.
    let q = "SELECT 1 AS a, 2 AS a, 3 AS a_2";
    let (b, _) = export_bytes(&env.pool, req(q, Format::Ndjson), Format::Ndjson).await.expect("dups");
    assert_eq!(String::from_utf8(b).expect("utf8"), "{\"a\":1,\"a_3\":2,\"a_2\":3}\n");
    let (b, _) = export_bytes(&env.pool, req(q, Format::Json), Format::Json).await.expect("dups");
    let doc: serde_json::Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(doc["columns"][1]["name"], "a");
}

#[tokio::test]
async fn arrow_and_parquet_are_typed_and_exact() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Decimal128Type, Decimal256Type, Float64Type, Int16Type, Int32Type, Int64Type,
        TimestampMicrosecondType, UInt32Type,
    };
    use arrow_array::Array;
    use arrow_schema::{DataType, TimeUnit};

    let env = env();
    su(&env.cluster, &setup_for(&env));
    // A decimal cannot hold NaN: `nan_in_a_decimal_column_is_refused_never_nulled` covers that
    // refusal; here the numeric(6,2)[] cell holding NaN gets a value a decimal list can hold.
    su(&env.cluster, "UPDATE fidelity SET a_num = '{NULL,-0.05}' WHERE id = 4;");
    su(&env.cluster, "GRANT SELECT ON fidelity TO analyst;");
    let reference = parse_csv(&psql_csv(&env.cluster, QUERY));
    let header = reference[0].clone();
    let rows = &reference[1..];

    let (bytes, summary) = export_bytes(&env.pool, req(QUERY, Format::Arrow), Format::Arrow).await.expect("arrow");
    assert!(!summary.truncated);
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("ipc");
    let schema = reader.schema();
    assert_eq!(schema.metadata().get("sluice.truncated").map(String::as_str), Some("false"));
    let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("batches");
    let batch = arrow_select_concat(&batches);
    assert_eq!(batch.num_rows(), 4);
    let col = |name: &str| batch.column(header.iter().position(|h| h == name).expect("col")).clone();
    let field = |name: &str| schema.field_with_name(name).expect("field").clone();

    let expect_types = [
        ("b", DataType::Boolean),
        ("i2", DataType::Int16),
        ("i4", DataType::Int32),
        ("i8", DataType::Int64),
        ("o", DataType::UInt32),
        ("n", DataType::Utf8),
        ("n_dec", DataType::Decimal128(12, 2)),
        ("n_wide", DataType::Decimal256(60, 10)),
        ("f4", DataType::Float32),
        ("f8", DataType::Float64),
        ("t", DataType::Utf8),
        ("by", DataType::Binary),
        ("d", DataType::Date32),
        ("tm", DataType::Time64(TimeUnit::Microsecond)),
        ("ts", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("tstz", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
        ("u", DataType::Utf8),
        ("jb", DataType::Utf8),
        ("mo", DataType::Utf8),
        ("dom", DataType::Int32),
        ("iv", DataType::Utf8),
    ];
    for (name, dt) in expect_types {
        assert_eq!(field(name).data_type(), &dt, "{name}");
    }
    assert!(matches!(field("a_int").data_type(), DataType::List(f) if f.data_type() == &DataType::Int32));
    assert!(
        matches!(field("a_num").data_type(), DataType::List(f) if f.data_type() == &DataType::Decimal128(6, 2)),
        "{:?}",
        field("a_num")
    );
    assert_eq!(field("n_dec").metadata()["pg_type"], "numeric(12,2)");
    assert_eq!(field("mo").metadata()["pg_type"], "mood");
    assert_eq!(field("dom").metadata()["pg_type"], "posint");
    assert_eq!(field("a_int").metadata()["pg_type"], "integer[]");
    assert_eq!(field("ci").metadata()["pg_type"], "citext");

    assert_eq!(col("i2").as_primitive::<Int16Type>().value(0), -32768);
    assert_eq!(col("i4").as_primitive::<Int32Type>().value(1), 2147483647);
    assert_eq!(col("i8").as_primitive::<Int64Type>().value(0), i64::MIN);
    assert_eq!(col("o").as_primitive::<UInt32Type>().value(0), u32::MAX);
    assert_eq!(col("n_dec").as_primitive::<Decimal128Type>().value(0), 123456789012);
    assert_eq!(col("n_dec").as_primitive::<Decimal128Type>().value(1), -1);
    assert!(col("n_dec").is_null(2));
    assert_eq!(
        col("n_wide").as_primitive::<Decimal256Type>().value(0).to_string(),
        "-123456789012345678901234567890123456789012345678900123456789"
    );
    assert!(col("f8").as_primitive::<Float64Type>().value(1).is_sign_negative());
    assert_eq!(col("f8_special").as_primitive::<Float64Type>().value(0), 1e100);
    assert_eq!(col("d").as_primitive::<Date32Type>().value(0), 18321);
    assert_eq!(col("tstz").as_primitive::<TimestampMicrosecondType>().value(0), 1_591_005_600_000_000);
    assert_eq!(col("ts").as_primitive::<TimestampMicrosecondType>().value(2), i64::MAX);
    assert_eq!(col("by").as_binary::<i32>().value(0), &[0, 255, 16]);
    let list = col("a_int");
    let list = list.as_list::<i32>();
    assert_eq!(list.value_length(0), 3);
    assert!(list.value(0).is_null(1));
    let decimals = col("a_num");
    let decimals = decimals.as_list::<i32>().value(3);
    let decimals = decimals.as_primitive::<Decimal128Type>();
    assert!(decimals.is_null(0));
    assert_eq!(decimals.value(1), -5);
    // Every Utf8 column holds exactly psql's text.
    for (c, f) in schema.fields().iter().enumerate() {
        if f.data_type() != &DataType::Utf8 {
            continue;
        }
        let a = batch.column(c).as_string::<i32>();
        for (r, want) in rows.iter().enumerate() {
            if a.is_null(r) {
                assert_eq!(want[c], "", "{}", f.name());
            } else {
                assert_eq!(a.value(r), want[c], "{} row {r}", f.name());
            }
        }
    }

    let (pq, _) = export_bytes(&env.pool, req(QUERY, Format::Parquet), Format::Parquet).await.expect("parquet");
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(pq))
        .expect("parquet file");
    let kv = builder.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    assert!(kv.iter().any(|k| k.key == "sluice.truncated" && k.value.as_deref() == Some("false")));
    let pschema = builder.schema().clone();
    for (name, dt) in [("n_dec", DataType::Decimal128(12, 2)), ("i8", DataType::Int64), ("mo", DataType::Utf8)] {
        assert_eq!(pschema.field_with_name(name).expect("field").data_type(), &dt, "{name}");
    }
    let pbatches: Vec<_> = builder.build().expect("reader").collect::<Result<_, _>>().expect("batches");
    let pbatch = arrow_select_concat(&pbatches);
    assert_eq!(pbatch.num_rows(), 4);
    assert_eq!(pbatch.columns().len(), batch.columns().len());
    for (c, name) in header.iter().enumerate() {
        if matches!(
            batch.schema().field(c).data_type(),
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Time64(_)
        ) {
            continue; // Parquet stores these in its own units; the values are checked above.
        }
        assert_eq!(pbatch.column(c).to_data(), batch.column(c).to_data(), "{name}");
    }
}

/// One batch from several (the test results are tiny).
fn arrow_select_concat(batches: &[arrow_array::RecordBatch]) -> arrow_array::RecordBatch {
    assert_eq!(batches.len(), 1, "a small result is one record batch");
    batches[0].clone()
}

/// A decimal cannot hold NaN, and a null would lose it: Arrow and Parquet refuse the value,
/// naming the column and the cast that keeps it; the cast then exports exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_in_a_decimal_column_is_refused_never_nulled() {
    let env = env();
    for format in [Format::Arrow, Format::Parquet] {
        for sql in [
            "SELECT g::numeric(10,2) AS price FROM generate_series(1, 3) g UNION ALL SELECT 'NaN'::numeric(10,2)",
            "SELECT '{1.5,NaN}'::numeric(6,2)[] AS price",
        ] {
            let e = export_bytes(&env.pool, req(sql, format), format).await.expect_err("NaN in a decimal");
            match &e {
                QueryError::Encode(m) => {
                    assert!(m.contains("column price"), "{m}");
                    assert!(m.contains("holds NaN"), "{m}");
                    assert!(m.contains("::text"), "{m}");
                }
                other => panic!("{format:?} {sql}: {other:?}"),
            }
        }
        let (bytes, _) = export_bytes(&env.pool, req("SELECT 'NaN'::numeric(10,2)::text AS price", format), format)
            .await
            .expect("cast to text");
        assert!(!bytes.is_empty());
        // The session is fine afterwards.
        assert_eq!(csv(&env.pool, "SELECT 1 AS one").await.expect("next"), "one\n1\n");
    }
}
