//! Exporters: one interface, five formats, fed batch by batch from a [`RowStream`].
//!
//! An [`Exporter`] turns batches into bytes appended to a buffer; [`export`] moves those bytes
//! to the caller's writer after every batch, so memory stays flat and output starts with the
//! first rows. Formats:
//!
//! - **CSV** ([`Csv`]): RFC 4180 with a header, each value byte-identical to `psql --csv` (which
//!   prints NULL and the empty string alike, as an empty field). Truncation is not marked in
//!   band: the caller says it (the CLI prints a line on stderr).
//! - **JSON** ([`Json`]): `{"columns":[{"name","type"}],"rows":[[…]],"truncated":bool}`.
//! - **NDJSON** ([`Json`] in NDJSON mode): one object per row keyed by [`unique_names`].
//! - **Arrow IPC stream** and **Parquet** ([`arrow`]): typed columns; truncation is the schema
//!   metadata key `sluice.truncated`.
//!
//! JSON value mapping (both JSON formats): bool → true/false; int2/int4/int8/oid and numeric →
//! JSON numbers written with exactly PostgreSQL's digits (never rounded through a float: parse
//! them with an arbitrary-precision reader to keep every digit); numeric and float `NaN`,
//! `Infinity`, `-Infinity` → the strings `"NaN"`, `"Infinity"`, `"-Infinity"`; float4/float8 →
//! numbers in PostgreSQL's shortest round-trip text; json/jsonb → embedded as JSON; bytea →
//! `"\x…"` hex strings; arrays with default lower bounds → nested JSON arrays (one level per
//! dimension), arrays with other lower bounds → the PostgreSQL text form as a string (so the
//! bounds are kept); every other type → its PostgreSQL text form as a string.
//!
//! Column names: CSV and JSON's `columns` keep PostgreSQL's names as they are, duplicates
//! included. NDJSON keys and Arrow/Parquet field names must be unique: see [`unique_names`]
//! (`a`, `a` → `a`, `a_2`; an empty name → `column_N`). The original name is kept in Arrow
//! field metadata (`pg_name`).

pub mod arrow;
mod body;
mod cell;
mod csv;
mod json;

use std::str::FromStr;

use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use self::arrow::{ArrowIpc, Parquet};
pub use self::body::{spawn_body, Body, BodyError, BODY_CHUNKS};
pub use self::csv::Csv;
pub use self::json::Json;
use crate::{unique_names, Batch, Column, Flavor, QueryError, RowStream};

/// What an exporter knows before the first row.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportContext {
    /// The request's row limit: an Arrow IPC stream can only mark truncation in its schema, so
    /// with a limit it holds the rows (at most this many) until it knows.
    pub max_rows: Option<u64>,
}

/// Output is handed on to the sink once it holds about this many bytes, also in the middle of a
/// batch or of one large value, so a huge cell is never copied whole into the output buffer.
pub const OUT_CHUNK: usize = 1 << 20;

/// Options for interactive use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Cut every value whose text (or, for Arrow/Parquet binary and text columns, whose bytes) is
    /// longer than this many bytes: see [`truncation_marker`] for what the cut looks like and
    /// how each format flags the column.
    pub max_cell_bytes: Option<usize>,
}

/// The marker a cut value ends with: `…[truncated N bytes]`, N being how many bytes of the
/// value's text were left out. The kept part ends at a UTF-8 character boundary, and a bytea
/// keeps whole bytes (in CSV, JSON and NDJSON, whose bytea is its hex text, `\x` and whole pairs
/// of hex digits, or nothing under a cap of 2), so it is at most `max_cell_bytes` long; the
/// marker comes on top.
pub fn truncation_marker(left_out: usize) -> String {
    format!("…[truncated {left_out} bytes]")
}

/// The longest prefix of `text` of at most `cap` bytes that ends on a UTF-8 character boundary
/// (for text that is not UTF-8, just `cap` bytes).
pub(crate) fn cut_point(text: &[u8], cap: usize) -> usize {
    if text.len() <= cap {
        return text.len();
    }
    let continuation = |at: usize| text.get(at).is_some_and(|b| b & 0xC0 == 0x80);
    // Back off continuation bytes (10xxxxxx): at most three in valid UTF-8.
    let mut at = cap;
    for _ in 0..3 {
        if at > 0 && continuation(at) {
            at -= 1;
        }
    }
    if continuation(at) {
        cap
    } else {
        at
    }
}

/// Turns a stream of batches into bytes, appending them to `out`.
pub trait Exporter: Send {
    fn begin(&mut self, columns: &[Column], out: &mut Vec<u8>) -> Result<(), QueryError>;
    /// Appends the output for `batch`. Returns true when it stopped early because `out` reached
    /// [`OUT_CHUNK`] with more of this batch to come: the caller hands `out` on, clears it and
    /// calls again with the same batch.
    fn batch(&mut self, columns: &[Column], batch: &Batch, out: &mut Vec<u8>) -> Result<bool, QueryError>;
    /// After a batch's rows were released: output that waited for that (an encoded record
    /// batch), one piece at a time. False once there is none left.
    fn settle(&mut self, _out: &mut Vec<u8>) -> Result<bool, QueryError> {
        Ok(false)
    }
    /// After the last batch; `truncated` when `max_rows` cut the result short.
    fn finish(&mut self, columns: &[Column], truncated: bool, out: &mut Vec<u8>) -> Result<(), QueryError>;
    /// After `finish`: output still held back (a spooled result), one piece at a time, so it
    /// never has to sit in memory whole. False once there is none left.
    fn more(&mut self, _out: &mut Vec<u8>) -> Result<bool, QueryError> {
        Ok(false)
    }
    /// The indexes of the columns in which a value was cut by [`ExportOptions::max_cell_bytes`].
    fn cut_columns(&self) -> Vec<usize> {
        Vec::new()
    }
    /// The indexes of the columns whose text (a value, or the name) was not UTF-8 and was written
    /// with U+FFFD for each invalid byte sequence: text from a `SQL_ASCII` database, in every
    /// format but CSV, which writes the bytes as they are.
    fn lossy_columns(&self) -> Vec<usize> {
        Vec::new()
    }
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Csv,
    Json,
    Ndjson,
    Arrow,
    Parquet,
}

impl Format {
    pub const ALL: [Format; 5] = [Format::Csv, Format::Json, Format::Ndjson, Format::Arrow, Format::Parquet];

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Arrow => "arrow",
            Format::Parquet => "parquet",
        }
    }

    /// Whether the format needs PostgreSQL's exact text (CSV, JSON) or typed values.
    pub fn flavor(self) -> Flavor {
        match self {
            Format::Csv | Format::Json | Format::Ndjson => Flavor::Text,
            Format::Arrow | Format::Parquet => Flavor::Typed,
        }
    }

    pub fn exporter(self, ctx: ExportContext) -> Box<dyn Exporter> {
        self.exporter_with(ctx, ExportOptions::default())
    }

    /// An exporter with [`ExportOptions`] (a per-cell cap for interactive use).
    pub fn exporter_with(self, ctx: ExportContext, options: ExportOptions) -> Box<dyn Exporter> {
        match self {
            Format::Csv => Box::new(Csv::with_options(options)),
            Format::Json => Box::new(Json::document().with_options(options)),
            Format::Ndjson => Box::new(Json::lines().with_options(options)),
            Format::Arrow => Box::new(ArrowIpc::with_options(ctx, options)),
            Format::Parquet => Box::new(Parquet::with_options(options)),
        }
    }
}

impl FromStr for Format {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Format, QueryError> {
        Format::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(s)).ok_or_else(|| QueryError::Invalid {
            field: "format",
            message: format!("`{s}` is not a format; use csv, json, ndjson, arrow or parquet"),
        })
    }
}

/// What an export produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub rows: u64,
    pub truncated: bool,
}

/// Where the bytes go.
pub enum Sink<'a> {
    Async(&'a mut (dyn AsyncWrite + Unpin + Send)),
    /// A blocking writer (a file, stdout): written from the calling task.
    Blocking(&'a mut (dyn std::io::Write + Send)),
    /// Chunks handed to a reader on another task ([`spawn_body`]); a reader that went away is a
    /// broken pipe.
    Channel(&'a tokio::sync::mpsc::Sender<Result<bytes::Bytes, BodyError>>),
}

impl Sink<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<(), QueryError> {
        match self {
            Sink::Async(w) => w.write_all(buf).await,
            Sink::Blocking(w) => w.write_all(buf),
            Sink::Channel(_) if buf.is_empty() => Ok(()),
            Sink::Channel(tx) => tx
                .send(Ok(bytes::Bytes::copy_from_slice(buf)))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        }
        .map_err(QueryError::Output)
    }

    async fn flush(&mut self) -> Result<(), QueryError> {
        match self {
            Sink::Async(w) => w.flush().await,
            Sink::Blocking(w) => w.flush(),
            Sink::Channel(_) => Ok(()),
        }
        .map_err(QueryError::Output)
    }
}

/// Drains `stream` through `exporter` into `sink`, then finishes the request (rollback, session
/// back). On any error the request is finished too and the error returned; the output is then
/// incomplete and must not be presented as a result (formats with a trailer — JSON, Parquet,
/// Arrow's end-of-stream — are left without it).
pub async fn export(
    mut stream: RowStream,
    exporter: &mut dyn Exporter,
    mut sink: Sink<'_>,
) -> Result<Summary, QueryError> {
    let result = pump(&mut stream, exporter, &mut sink).await;
    let rows = stream.rows_read();
    let truncated = stream.is_truncated();
    let finished = stream.finish().await;
    result?;
    finished?;
    Ok(Summary { rows, truncated })
}

async fn pump(stream: &mut RowStream, exporter: &mut dyn Exporter, sink: &mut Sink<'_>) -> Result<(), QueryError> {
    let columns: Vec<Column> = stream.columns().to_vec();
    let mut out = Vec::with_capacity(OUT_CHUNK + (64 << 10));
    exporter.begin(&columns, &mut out)?;
    sink.write(&out).await?;
    sink.flush().await?;
    out.clear();
    while let Some(batch) = stream.next_batch().await? {
        while exporter.batch(&columns, &batch, &mut out)? {
            sink.write(&out).await?;
            out.clear();
        }
        drop(batch);
        if !out.is_empty() {
            sink.write(&out).await?;
            out.clear();
        }
        while exporter.settle(&mut out)? {
            sink.write(&out).await?;
            out.clear();
        }
        if !out.is_empty() {
            sink.write(&out).await?;
            out.clear();
        }
        // A huge value grew the buffer: give the memory back.
        if out.capacity() > 4 * OUT_CHUNK {
            out = Vec::with_capacity(OUT_CHUNK + (64 << 10));
        }
    }
    exporter.finish(&columns, stream.is_truncated(), &mut out)?;
    sink.write(&out).await?;
    out.clear();
    while exporter.more(&mut out)? {
        sink.write(&out).await?;
        out.clear();
    }
    sink.flush().await
}

/// Names for formats keyed by name; re-exported for callers that print them.
pub fn output_names(columns: &[Column]) -> Vec<String> {
    unique_names(columns)
}
