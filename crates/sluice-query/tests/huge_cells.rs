//! A value far larger than the output buffer goes through every format byte for byte, and the
//! per-cell cap cuts at a character boundary with its marker and flags the column.

mod common;

use arrow_array::{Array, StringArray};
use common::*;
use sluice_query::export::{self, truncation_marker, ExportContext, ExportOptions, Format, Sink};
use sluice_query::run;

/// About 20 MB of text holding every character CSV and JSON escape, and a two-byte one.
const UNIT: &str = "ab\"c,é\\\n\t";
const REPEAT: usize = 2_000_000;
const BIG: &str = "SELECT repeat(E'ab\"c,é\\\\\\n\\t', 2000000) AS big, 7 AS n";

fn big() -> String {
    UNIT.repeat(REPEAT)
}

async fn export_with(env: &Env, sql: &str, format: Format, options: ExportOptions) -> (Vec<u8>, Vec<usize>) {
    let session = env.pool.get().await.expect("session");
    let stream = run(session, req(sql, format)).await.expect("run");
    let mut exporter = format.exporter_with(ExportContext::default(), options);
    let mut out = Vec::new();
    export::export(stream, exporter.as_mut(), Sink::Blocking(&mut out)).await.expect("export");
    (out, exporter.cut_columns())
}

fn csv_field(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn arrow_strings(bytes: Vec<u8>) -> (Vec<String>, arrow_schema::SchemaRef) {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("ipc");
    let schema = reader.schema();
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let col = batch.column(0).as_any().downcast_ref::<StringArray>().expect("utf8").clone();
        values.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    (values, schema)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_cell_round_trips_in_every_format() {
    let env = env();
    let expected = big();
    assert_eq!(expected.len(), 20_000_000);
    let none = ExportOptions::default();

    let (csv, cut) = export_with(&env, BIG, Format::Csv, none).await;
    assert_eq!(String::from_utf8(csv).expect("utf8"), format!("big,n\n{},7\n", csv_field(&expected)));
    assert!(cut.is_empty());

    let (json, _) = export_with(&env, BIG, Format::Json, none).await;
    let doc: serde_json::Value = serde_json::from_slice(&json).expect("json");
    assert_eq!(doc["rows"][0][0].as_str(), Some(expected.as_str()));
    assert_eq!(doc["rows"][0][1].to_string(), "7");
    assert!(doc.get("truncated_columns").is_none());

    let (ndjson, _) = export_with(&env, BIG, Format::Ndjson, none).await;
    let line: serde_json::Value = serde_json::from_slice(&ndjson).expect("ndjson");
    assert_eq!(line["big"].as_str(), Some(expected.as_str()));

    let (arrow, _) = export_with(&env, BIG, Format::Arrow, none).await;
    let (values, _) = arrow_strings(arrow);
    assert_eq!(values, vec![expected.clone()]);

    let (pq, _) = export_with(&env, BIG, Format::Parquet, none).await;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(pq))
        .expect("parquet")
        .build()
        .expect("reader");
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let col = batch.column(0).as_any().downcast_ref::<StringArray>().expect("utf8").clone();
        values.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    assert_eq!(values, vec![expected]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cell_cap_cuts_at_a_character_boundary_and_flags_the_column() {
    let env = env();
    let full = big();
    // Byte 3 of the unit starts `"`, byte 6 is the second byte of `é`: a cap there backs off
    // to the start of `é`.
    let cap = 10 * UNIT.len() + 6;
    let kept = &full[..cap - 1];
    assert!(full.is_char_boundary(cap - 1) && !full.is_char_boundary(cap));
    let cell = format!("{kept}{}", truncation_marker(full.len() - kept.len()));
    let options = ExportOptions { max_cell_bytes: Some(cap) };
    let sql = "SELECT repeat(E'ab\"c,é\\\\\\n\\t', 2000000) AS big, 'short' AS small, '{\"a\": [1, 2]}'::jsonb AS j";

    let (csv, cut) = export_with(&env, sql, Format::Csv, options).await;
    assert_eq!(
        String::from_utf8(csv).expect("utf8"),
        format!("big,small,j\n{},short,\"{{\"\"a\"\": [1, 2]}}\"\n", csv_field(&cell))
    );
    assert_eq!(cut, vec![0]);

    let (json, cut) = export_with(&env, sql, Format::Json, options).await;
    let doc: serde_json::Value = serde_json::from_slice(&json).expect("json");
    assert_eq!(doc["rows"][0][0].as_str(), Some(cell.as_str()));
    assert_eq!(doc["rows"][0][1].as_str(), Some("short"));
    assert_eq!(doc["rows"][0][2], serde_json::json!({"a": [1, 2]}));
    assert_eq!(doc["truncated_columns"], serde_json::json!(["big"]));
    assert_eq!(doc["truncated"], serde_json::json!(false));
    assert_eq!(cut, vec![0]);

    // A json value that is cut is no longer JSON: it becomes a string, marker included.
    let small = ExportOptions { max_cell_bytes: Some(5) };
    let (ndjson, cut) = export_with(&env, sql, Format::Ndjson, small).await;
    let line: serde_json::Value = serde_json::from_slice(&ndjson).expect("ndjson");
    assert_eq!(line["small"].as_str(), Some("short"));
    let j = r#"{"a": [1, 2]}"#;
    assert_eq!(line["j"].as_str(), Some(format!("{}{}", &j[..5], truncation_marker(j.len() - 5)).as_str()));
    assert_eq!(cut, vec![0, 2]);

    // Arrow: the value ends with the marker (the schema went out before the cut was known).
    let (arrow, cut) = export_with(&env, sql, Format::Arrow, options).await;
    let (values, _) = arrow_strings(arrow);
    assert_eq!(values, vec![cell.clone()]);
    assert_eq!(cut, vec![0]);

    // Parquet: the same value, and the footer lists the cut columns.
    let (pq, cut) = export_with(&env, sql, Format::Parquet, options).await;
    assert_eq!(cut, vec![0]);
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(pq))
        .expect("parquet");
    let kv = builder.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    let listed = kv.iter().find(|k| k.key == sluice_query::export::arrow::TRUNCATED_COLUMNS_KEY);
    assert_eq!(listed.and_then(|k| k.value.as_deref()), Some(r#"["big"]"#));
    let batch = builder.build().expect("reader").next().expect("a batch").expect("batch");
    let col = batch.column(0).as_any().downcast_ref::<StringArray>().expect("utf8");
    assert_eq!(col.value(0), cell);
}

/// A 10 MB bytea (20 MB of hex, many output pieces) between two other columns, an empty one and a
/// NULL one: CSV written piece by piece is byte-identical to `psql --csv`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_bytea_in_csv_matches_psql_byte_for_byte() {
    let env = env();
    let sql = "SELECT 1 AS a, decode(repeat('00ab7f', 3333333) || 'ff', 'hex') AS b, 'x,y' AS c \
               UNION ALL SELECT 2, '\\x'::bytea, NULL UNION ALL SELECT 3, NULL, 'z' ORDER BY 1";
    let (ours, cut) = export_with(&env, sql, Format::Csv, ExportOptions::default()).await;
    assert!(cut.is_empty());
    let ours = String::from_utf8(ours).expect("utf8");
    let theirs = psql_csv(&env.cluster, sql);
    assert_eq!(ours.len(), theirs.len());
    assert!(ours == theirs, "CSV differs from psql --csv");
    assert!(ours.starts_with("a,b,c\n1,\\x00ab7f00ab7f"));
    assert!(ours.ends_with("ff,\"x,y\"\n2,\\x,\n3,,z\n"));

    // Cut by the cell cap: whole bytes of the hex text within 11 characters (`\x` and four
    // pairs of digits, never half a byte), then the marker.
    let options = ExportOptions { max_cell_bytes: Some(11) };
    let (capped, cut) = export_with(&env, sql, Format::Csv, options).await;
    let total = 2 + 2 * (3 * 3_333_333 + 1);
    let expected = format!("a,b,c\n1,\\x00ab7f00{},\"x,y\"\n2,\\x,\n3,,z\n", truncation_marker(total - 10));
    assert_eq!(String::from_utf8(capped).expect("utf8"), expected);
    assert_eq!(cut, vec![1]);
}

/// A huge value that does not compress (data pages v2 then keep it uncompressed) reads back
/// whole from the Parquet file, next to a column that does compress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_incompressible_value_round_trips_through_parquet() {
    let env = env();
    let sql = "SELECT decode(string_agg(md5(g::text), '' ORDER BY g), 'hex') AS b, repeat('y', 5000000) AS t \
               FROM generate_series(1, 1000000) g";
    let (pq, _) = export_with(&env, sql, Format::Parquet, ExportOptions::default()).await;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(pq))
        .expect("parquet")
        .build()
        .expect("reader");
    let mut got = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let b = batch.column(0).as_any().downcast_ref::<arrow_array::BinaryArray>().expect("binary").clone();
        let t = batch.column(1).as_any().downcast_ref::<StringArray>().expect("utf8").clone();
        got.extend((0..b.len()).map(|i| (b.value(i).to_vec(), t.value(i).to_string())));
    }
    let expected: Vec<u8> = {
        let (csv, _) = export_with(
            &env,
            &format!("SELECT encode(b, 'hex') FROM ({sql}) s"),
            Format::Csv,
            ExportOptions::default(),
        )
        .await;
        let text = String::from_utf8(csv).expect("utf8");
        let hex = text.lines().nth(1).expect("row").to_string();
        (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex")).collect()
    };
    assert_eq!(expected.len(), 16_000_000);
    assert_eq!(got.len(), 1);
    assert!(got[0].0 == expected, "the bytea read back differs");
    assert_eq!(got[0].1, "y".repeat(5_000_000));
}

/// The backend pid in the first data row of a CSV export whose first column is `pg_backend_pid()`.
fn pid_of(csv: &[u8]) -> String {
    let text = std::str::from_utf8(csv).expect("utf8");
    let row = text.split('\n').nth(1).expect("a data row");
    row.split(',').next().expect("pid").to_string()
}

async fn pid_after(env: &Env, sql: &str) -> String {
    let (out, _) = export_with(env, sql, Format::Csv, ExportOptions::default()).await;
    pid_of(&out)
}

/// The driver keeps its read buffer at the size of the largest message it received: a session
/// that received a row over the threshold is closed instead of pooled, a smaller one is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_received_a_huge_row_is_closed_not_pooled() {
    let env = env();
    let small = "SELECT pg_backend_pid() AS pid";
    let first = pid_after(&env, small).await;
    assert_eq!(pid_after(&env, small).await, first, "a small result's session is reused");

    // 16 MB: under the threshold (16 MiB), kept.
    let under = "SELECT pg_backend_pid() AS pid, repeat('x', 16000000) AS big";
    assert_eq!(pid_after(&env, under).await, first);
    assert_eq!(env.pool.idle_count(), 1);
    assert_eq!(pid_after(&env, small).await, first);

    // 32 MB: that session is closed; the next request gets a new backend, which is then reused.
    let over = "SELECT pg_backend_pid() AS pid, repeat('x', 32000000) AS big";
    assert_eq!(pid_after(&env, over).await, first);
    assert_eq!((env.pool.idle_count(), env.pool.in_use()), (0, 0));
    let second = pid_after(&env, small).await;
    assert_ne!(second, first, "the session that received 32 MB was handed out again");
    assert_eq!(pid_after(&env, small).await, second);
    assert_eq!(env.pool.idle_count(), 1);

    // The same when the stream is dropped after the huge row, before its end (released from a
    // spawned task): wait until the loan is back, then nothing is idle.
    let session = env.pool.get().await.expect("session");
    let sql = "SELECT repeat('x', 32000000) AS big UNION ALL SELECT 'y'";
    let mut stream = run(session, req(sql, Format::Csv)).await.expect("run");
    let batch = stream.next_batch().await.expect("batch").expect("a row");
    assert!(!batch.is_empty());
    drop(stream);
    while env.pool.in_use() > 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(env.pool.idle_count(), 0);
    assert_ne!(pid_after(&env, small).await, second);
}

/// The same 10 MB bytea in JSON and NDJSON, written piece by piece from the wire bytes: the
/// output is byte-identical to that of its hex text as a `text` column (`'\x' || encode(…)`),
/// which is what rendering the whole value first produced; the cell cap cuts the hex text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_bytea_in_json_and_ndjson_is_its_hex_text_byte_for_byte() {
    let env = env();
    let rows = |b: &str| {
        format!(
            "SELECT 1 AS a, {b} AS b, 'x,y' AS c FROM (SELECT decode(repeat('00ab7f', 3333333) || 'ff', 'hex') AS v) s \
             UNION ALL SELECT 2, {e}, NULL UNION ALL SELECT 3, NULL, 'z' ORDER BY 1",
            e = if b == "v" { "'\\x'::bytea".to_string() } else { "'\\x'".to_string() }
        )
    };
    let bytea = rows("v");
    let text = rows("'\\x' || encode(v, 'hex')");
    let none = ExportOptions::default();
    // What follows the column list in a JSON document (the header names the types, which differ).
    let body = |doc: &[u8]| {
        let at = doc.windows(8).position(|w| w == b"\"rows\":[").expect("rows");
        doc[at..].to_vec()
    };

    let (ours, cut) = export_with(&env, &bytea, Format::Json, none).await;
    assert!(cut.is_empty());
    let (reference, _) = export_with(&env, &text, Format::Json, none).await;
    assert!(ours.len() > 20_000_000);
    assert!(body(&ours) == body(&reference), "the JSON rows differ from the hex text's");
    let doc: serde_json::Value = serde_json::from_slice(&ours).expect("json");
    let hex = doc["rows"][0][1].as_str().expect("a string");
    assert_eq!(hex.len(), 2 + 2 * (3 * 3_333_333 + 1));
    assert!(hex.starts_with("\\x00ab7f00ab7f") && hex.ends_with("7fff"));
    assert_eq!(doc["rows"][1][1].as_str(), Some("\\x"));
    assert!(doc["rows"][2][1].is_null());

    let (ours, _) = export_with(&env, &bytea, Format::Ndjson, none).await;
    let (reference, _) = export_with(&env, &text, Format::Ndjson, none).await;
    assert_eq!(ours.len(), reference.len());
    assert!(ours == reference, "the NDJSON lines differ from the hex text's");
    let first: serde_json::Value =
        serde_json::from_slice(ours.split(|&b| b == b'\n').next().expect("a line")).expect("ndjson");
    assert_eq!(first["b"].as_str().map(str::len), Some(hex.len()));

    // Cut by the cell cap: whole bytes of the hex text within 11 characters (never half a
    // byte), then the marker; and a cap of one keeps nothing, not even the backslash, of the
    // empty value's `\\x` too.
    let total = 2 + 2 * (3 * 3_333_333 + 1);
    let (capped, cut) = export_with(&env, &bytea, Format::Ndjson, ExportOptions { max_cell_bytes: Some(11) }).await;
    let first = String::from_utf8(capped).expect("utf8").lines().next().expect("a line").to_string();
    assert_eq!(first, format!(r#"{{"a":1,"b":"\\x00ab7f00{}","c":"x,y"}}"#, truncation_marker(total - 10)));
    assert_eq!(cut, vec![1]);
    let (capped, cut) = export_with(&env, &bytea, Format::Json, ExportOptions { max_cell_bytes: Some(1) }).await;
    let doc: serde_json::Value = serde_json::from_slice(&capped).expect("json");
    assert_eq!(doc["rows"][0][1].as_str(), Some(truncation_marker(total).as_str()));
    assert_eq!(doc["rows"][1][1].as_str(), Some(truncation_marker(2).as_str()));
    assert_eq!(doc["truncated_columns"], serde_json::json!(["b", "c"]));
    assert_eq!(cut, vec![1, 2]);
}

/// Rows holding a value of a megabyte or more become record batches of their own in the Parquet
/// export: the rows around them keep their order and values, and a cap still cuts such a value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_values_among_small_rows_keep_their_order_through_parquet() {
    let env = env();
    let sql = "SELECT g, CASE WHEN g IN (3, 4) THEN repeat(chr(96 + g), 2000000) ELSE 'v' || g END AS t, \
               CASE WHEN g = 6 THEN decode(repeat('ab', 1500000), 'hex') WHEN g = 7 THEN '\\x01'::bytea END AS b \
               FROM generate_series(1, 8) g";
    let read = |pq: Vec<u8>| {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(pq))
            .expect("parquet")
            .build()
            .expect("reader");
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            let g = batch.column(0).as_any().downcast_ref::<arrow_array::Int32Array>().expect("int4").clone();
            let t = batch.column(1).as_any().downcast_ref::<StringArray>().expect("utf8").clone();
            let b = batch.column(2).as_any().downcast_ref::<arrow_array::BinaryArray>().expect("binary").clone();
            rows.extend(
                (0..g.len()).map(|i| (g.value(i), t.value(i).to_string(), b.is_valid(i).then(|| b.value(i).to_vec()))),
            );
        }
        rows
    };
    let (pq, cut) = export_with(&env, sql, Format::Parquet, ExportOptions::default()).await;
    assert!(cut.is_empty());
    let rows = read(pq);
    assert_eq!(rows.len(), 8);
    for (i, (g, t, b)) in rows.iter().enumerate() {
        assert_eq!(*g as usize, i + 1);
        let expected_t = match g {
            3 => "c".repeat(2_000_000),
            4 => "d".repeat(2_000_000),
            g => format!("v{g}"),
        };
        assert!(*t == expected_t, "row {g}: text differs (length {})", t.len());
        let expected_b = match g {
            6 => Some(vec![0xab; 1_500_000]),
            7 => Some(vec![1]),
            _ => None,
        };
        assert!(*b == expected_b, "row {g}: bytea differs");
    }

    let capped = ExportOptions { max_cell_bytes: Some(1_000_000) };
    let (pq, cut) = export_with(&env, sql, Format::Parquet, capped).await;
    assert_eq!(cut, vec![1, 2]);
    let rows = read(pq);
    assert_eq!(rows[2].1, format!("{}{}", "c".repeat(1_000_000), truncation_marker(1_000_000)));
    assert_eq!(rows[5].2.as_deref().map(<[u8]>::len), Some(1_000_000 + truncation_marker(500_000).len()));
    assert_eq!(rows[6].2, Some(vec![1]));
}
