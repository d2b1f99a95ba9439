//! The Parquet export of one huge value holds it at most twice: the row it arrived in and the
//! encoder's page, not a third time in the Arrow array between them. Measured as this process's
//! peak resident set (Linux's VmHWM, reset just before the export), so this file holds one test.

mod common;

use arrow_array::Array;
use common::*;
use sluice_query::export::{self, ExportContext, ExportOptions, Format, Sink};
use sluice_query::run;

const CELL: usize = 64_000_000;

/// A field of /proc/self/status in bytes (the file gives KiB).
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("field");
    let kib: usize = line.split_whitespace().nth(1).expect("value").parse().expect("number");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_text_value_is_held_at_most_twice_while_it_is_encoded_to_parquet() {
    let env = env();
    let sql = format!("SELECT repeat('x', {CELL}) AS big, 1 AS n");
    let session = env.pool.get().await.expect("session");
    let stream = run(session, req(&sql, Format::Parquet)).await.expect("run");
    let mut exporter = Format::Parquet.exporter_with(ExportContext::default(), ExportOptions::default());
    let mut out = Vec::new();

    // "5" resets the peak to the current resident set (Linux 4.0 and later).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident set");
    let before = status_bytes("VmRSS:");
    export::export(stream, exporter.as_mut(), Sink::Blocking(&mut out)).await.expect("export");
    let grew = status_bytes("VmHWM:").saturating_sub(before);

    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(out))
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<_> = reader.map(|b| b.expect("batch")).collect();
    let big = batches
        .iter()
        .map(|b| b.column(0).as_any().downcast_ref::<arrow_array::StringArray>().expect("utf8").clone())
        .collect::<Vec<_>>();
    assert_eq!(big.iter().map(|a| a.len()).sum::<usize>(), 1);
    assert!(big[0].value(0).len() == CELL && big[0].value(0).bytes().all(|b| b == b'x'));

    // Two copies and some slack; a third copy would be 3x.
    let ratio = grew as f64 / CELL as f64;
    assert!(ratio < 2.5, "the export's peak resident set grew by {grew} bytes, {ratio:.2}x the value");
}
