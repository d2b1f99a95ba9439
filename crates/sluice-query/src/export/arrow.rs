//! Arrow IPC stream and Parquet: typed columns built batch by batch.
//!
//! Mapping: bool → Boolean; int2/int4/int8 → Int16/Int32/Int64; oid → UInt32; float4/float8 →
//! Float32/Float64; numeric(p,s) → Decimal128(p,s) for p ≤ 38, Decimal256(p,s) for p ≤ 76 (a NaN
//! there ends the export with an error naming the column and the cast that keeps it: a decimal
//! cannot hold it, and a null would lose it), numeric without a declared precision → Utf8 with
//! the exact text; date → Date32; time → Time64(µs); timestamp → Timestamp(µs); timestamptz →
//! Timestamp(µs, "UTC"); ±infinity dates and timestamps → the type's largest/smallest value;
//! bytea → Binary; arrays of those → List (a multi-dimensional array's elements in row-major
//! order; its shape and lower bounds are in the PostgreSQL text form, which CSV and JSON keep);
//! text, varchar, char, name, uuid, json, jsonb and every type the server renders → Utf8. Each field's metadata carries
//! `pg_type` (e.g. `numeric(12,2)`, `integer[]`, `mood`), `pg_type_oid` and `pg_name` (the
//! column's name as PostgreSQL gave it; field names are [`unique_names`]).
//!
//! In a `SQL_ASCII` database text-carrying columns ([`Codec::RawText`]) are Utf8 (arrays of text
//! too, in their PostgreSQL text form) whose values are the stored bytes where they are UTF-8 and
//! are decoded with U+FFFD for each invalid byte sequence where not. The schema goes first, so such
//! a field says so in advance with the metadata `pg_encoding` = `SQL_ASCII`; Parquet's footer, and
//! a row-limited Arrow stream's schema (held until the end), also list the columns in which bytes
//! were replaced ([`LOSSY_COLUMNS_KEY`]).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::builder::{
    make_builder, ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt32Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::writer::{StreamEncoder, StreamWriter};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use super::{cut_point, truncation_marker, ExportContext, ExportOptions, Exporter, OUT_CHUNK};
use crate::decode::{self, Malformed};
use crate::types::{write_scalar, write_text, Codec, Scalar};
use crate::{unique_names, Batch, Column, QueryError};

/// The schema metadata key that says whether `max_rows` cut the result short.
pub const TRUNCATED_KEY: &str = "sluice.truncated";
/// The Parquet key-value metadata key listing, as a JSON array of field names, the columns in
/// which [`ExportOptions::max_cell_bytes`] cut a value (absent when none was cut).
pub const TRUNCATED_COLUMNS_KEY: &str = "sluice.truncated_columns";
/// The key-value metadata key (Parquet's footer; a row-limited Arrow stream's schema) listing, as
/// a JSON array of field names, the columns whose text (a value, or the name) was not UTF-8 and
/// was written with U+FFFD (absent when none).
pub const LOSSY_COLUMNS_KEY: &str = "sluice.lossy_columns";
/// The field metadata key set to `SQL_ASCII` on a text field from a `SQL_ASCII` database.
pub const ENCODING_KEY: &str = "pg_encoding";
/// Rows per Arrow record batch (and the unit Parquet receives).
pub const RECORD_BATCH_ROWS: usize = 65_536;
/// A record batch is also written once its text and binary values reach this many bytes, so a
/// batch of huge values is not held until it has its rows.
pub const RECORD_BATCH_BYTES: usize = 32 << 20;
/// Rows per Parquet row group: bounds the writer's memory.
pub const ROW_GROUP_ROWS: usize = 65_536;
/// A partly filled record batch is written after this long, so slow results still stream.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// How much encoded Arrow a row-limited export keeps in memory before spooling to a temporary
/// file.
pub const SPOOL_IN_MEMORY: usize = 16 << 20;
/// The pieces a spooled file is read back in.
const SPOOL_PIECE: usize = 1 << 20;

/// How one column is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    I16,
    I32,
    I64,
    U32,
    F32,
    F64,
    Dec128,
    Dec256,
    /// Exact text: Utf8 from PostgreSQL's text rendering of this codec.
    Text(Codec),
    Binary,
    Date,
    Time,
    Ts,
}

fn scalar_kind(s: Scalar, numeric: Option<(u8, i8)>) -> (Kind, DataType) {
    match s {
        Scalar::Bool => (Kind::Bool, DataType::Boolean),
        Scalar::Int2 => (Kind::I16, DataType::Int16),
        Scalar::Int4 => (Kind::I32, DataType::Int32),
        Scalar::Int8 => (Kind::I64, DataType::Int64),
        Scalar::Oid => (Kind::U32, DataType::UInt32),
        Scalar::Float4 => (Kind::F32, DataType::Float32),
        Scalar::Float8 => (Kind::F64, DataType::Float64),
        Scalar::Numeric => match numeric {
            Some((p, s)) if (1..=38).contains(&p) && (s as i32) <= p as i32 => {
                (Kind::Dec128, DataType::Decimal128(p, s))
            }
            Some((p, s)) if (1..=76).contains(&p) && (s as i32) <= p as i32 => {
                (Kind::Dec256, DataType::Decimal256(p, s))
            }
            _ => (Kind::Text(Codec::Scalar(s)), DataType::Utf8),
        },
        Scalar::Bytea => (Kind::Binary, DataType::Binary),
        Scalar::Date => (Kind::Date, DataType::Date32),
        Scalar::Time => (Kind::Time, DataType::Time64(TimeUnit::Microsecond)),
        Scalar::Timestamp => (Kind::Ts, DataType::Timestamp(TimeUnit::Microsecond, None)),
        Scalar::TimestampTz => (Kind::Ts, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
        Scalar::Text | Scalar::Json | Scalar::Jsonb | Scalar::Uuid => (Kind::Text(Codec::Scalar(s)), DataType::Utf8),
    }
}

struct Plan {
    kind: Kind,
    /// Set for arrays: values are lists of `kind`.
    list: bool,
    data_type: DataType,
    scale: i8,
}

fn plan(c: &Column) -> Plan {
    let numeric = c.numeric_precision_scale();
    let scale = numeric.map(|(_, s)| s).unwrap_or(0);
    match c.codec {
        Codec::Scalar(s) => {
            let (kind, data_type) = scalar_kind(s, numeric);
            Plan { kind, list: false, data_type, scale }
        }
        Codec::Array(s) => {
            let (kind, elem) = scalar_kind(s, numeric);
            Plan { kind, list: true, data_type: DataType::List(Arc::new(Field::new("item", elem, true))), scale }
        }
        Codec::ServerText | Codec::RawText { .. } => {
            Plan { kind: Kind::Text(c.codec), list: false, data_type: DataType::Utf8, scale: 0 }
        }
    }
}

/// The Arrow schema for these columns; `truncated` adds the [`TRUNCATED_KEY`] metadata.
pub fn schema(columns: &[Column], truncated: Option<bool>) -> Schema {
    schema_with_meta(columns, truncated, None)
}

/// [`schema`], and `lossy` (a JSON array of field names) as [`LOSSY_COLUMNS_KEY`].
fn schema_with_meta(columns: &[Column], truncated: Option<bool>, lossy: Option<String>) -> Schema {
    let names = unique_names(columns);
    let fields: Vec<Field> = columns
        .iter()
        .zip(names)
        .map(|(c, name)| {
            let mut type_name = c.type_name.clone();
            if let Some((p, s)) = c.numeric_precision_scale() {
                let suffix = format!("({p},{s})");
                type_name = match type_name.strip_suffix("[]") {
                    Some(base) => format!("{base}{suffix}[]"),
                    None => format!("{type_name}{suffix}"),
                };
            }
            let mut meta = HashMap::from([
                ("pg_type".to_string(), type_name),
                ("pg_type_oid".to_string(), c.type_oid.to_string()),
                ("pg_name".to_string(), c.name.clone()),
            ]);
            if matches!(c.codec, Codec::RawText { .. }) {
                meta.insert(ENCODING_KEY.to_string(), "SQL_ASCII".to_string());
            }
            Field::new(name, plan(c).data_type, true).with_metadata(meta)
        })
        .collect();
    let mut meta = HashMap::new();
    if let Some(t) = truncated {
        meta.insert(TRUNCATED_KEY.to_string(), t.to_string());
    }
    if let Some(lossy) = lossy {
        meta.insert(LOSSY_COLUMNS_KEY.to_string(), lossy);
    }
    Schema::new_with_metadata(fields, meta)
}

/// Column builders for one record batch at a time.
struct Builders {
    plans: Vec<Plan>,
    builders: Vec<Box<dyn ArrayBuilder>>,
    /// Rows per record batch: builders are created at this capacity, so they never regrow.
    capacity: usize,
    rows: usize,
    /// Bytes of text and binary values appended since the last `take`.
    bytes: usize,
    scratch: Vec<u8>,
    since: Instant,
    max_cell_bytes: Option<usize>,
    cut: Vec<bool>,
    lossy: Vec<bool>,
}

impl Builders {
    fn new(columns: &[Column], capacity: usize, options: ExportOptions) -> Builders {
        let plans: Vec<Plan> = columns.iter().map(plan).collect();
        let builders = plans.iter().map(|p| make_builder(&p.data_type, capacity)).collect();
        Builders {
            plans,
            builders,
            capacity,
            rows: 0,
            bytes: 0,
            scratch: Vec::new(),
            since: Instant::now(),
            max_cell_bytes: options.max_cell_bytes,
            cut: vec![false; columns.len()],
            lossy: columns.iter().map(|c| c.name_bytes.is_some()).collect(),
        }
    }

    fn append(&mut self, columns: &[Column], batch: &Batch) -> Result<(), QueryError> {
        for (i, c) in columns.iter().enumerate() {
            let (Some(plan), Some(b)) = (self.plans.get(i), self.builders.get_mut(i)) else {
                continue;
            };
            let failed = |e: AppendError| match e {
                AppendError::Malformed(m) => {
                    QueryError::Internal(format!("column {} held a malformed {} value", c.name, m.0))
                }
                AppendError::NotFinite(value) => QueryError::Encode(format!(
                    "column {} ({}) holds {value}, which an Arrow decimal cannot hold; cast it in the query: \
                     `::text` keeps it exactly, `::float8` keeps it as a float",
                    c.name, c.type_name
                )),
            };
            let mut cell =
                Cell { scratch: &mut self.scratch, cap: self.max_cell_bytes, cut: false, lossy: false, bytes: 0 };
            for r in 0..batch.len() {
                let raw = batch.value(r, i);
                if plan.list {
                    append_list(b.as_mut(), plan, raw, &mut cell).map_err(failed)?;
                } else {
                    append(b.as_mut(), plan.kind, plan.scale, raw, &mut cell).map_err(failed)?;
                }
            }
            self.bytes += cell.bytes;
            if cell.cut {
                if let Some(flag) = self.cut.get_mut(i) {
                    *flag = true;
                }
            }
            if cell.lossy {
                if let Some(flag) = self.lossy.get_mut(i) {
                    *flag = true;
                }
            }
        }
        self.rows += batch.len();
        Ok(())
    }

    fn due(&self) -> bool {
        self.rows >= self.capacity
            || self.bytes >= RECORD_BATCH_BYTES
            || (self.rows > 0 && self.since.elapsed() >= FLUSH_AFTER)
    }

    fn take(&mut self, schema: &SchemaRef) -> Result<Option<RecordBatch>, QueryError> {
        self.since = Instant::now();
        if self.rows == 0 {
            return Ok(None);
        }
        self.rows = 0;
        self.bytes = 0;
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        // `finish` leaves empty builders; start the next batch at full capacity.
        self.builders = self.plans.iter().map(|p| make_builder(&p.data_type, self.capacity)).collect();
        RecordBatch::try_new(schema.clone(), arrays).map(Some).map_err(|e| QueryError::Encode(e.to_string()))
    }

    fn cut_columns(&self) -> Vec<usize> {
        self.cut.iter().enumerate().filter(|(_, &c)| c).map(|(i, _)| i).collect()
    }

    fn lossy_columns(&self) -> Vec<usize> {
        self.lossy.iter().enumerate().filter(|(_, &l)| l).map(|(i, _)| i).collect()
    }
}

/// Field names of `indexes` as a JSON array, or `None` when there are none.
fn names_json(columns: &[Column], indexes: Vec<usize>) -> Option<String> {
    let names = unique_names(columns);
    let listed: Vec<serde_json::Value> =
        indexes.into_iter().filter_map(|i| names.get(i).cloned().map(serde_json::Value::String)).collect();
    (!listed.is_empty()).then(|| serde_json::Value::Array(listed).to_string())
}

/// What appending one column's values needs besides the builder.
struct Cell<'a> {
    scratch: &'a mut Vec<u8>,
    /// [`ExportOptions::max_cell_bytes`].
    cap: Option<usize>,
    /// Set when a value was cut.
    cut: bool,
    /// Set when a value was not UTF-8 and was decoded with U+FFFD.
    lossy: bool,
    /// Bytes of text and binary values appended.
    bytes: usize,
}

/// How much of `value` is appended under the cap, and the marker when it is cut (returned
/// separately, so that the kept part is not copied).
fn cut_at(cap: Option<usize>, value: &[u8]) -> (usize, Option<String>) {
    let keep = cap.map_or(value.len(), |cap| cut_point(value, cap));
    (keep, (keep < value.len()).then(|| truncation_marker(value.len() - keep)))
}

impl Cell<'_> {
    fn note(&mut self, kept: usize, cut: bool) {
        self.bytes += kept;
        self.cut |= cut;
    }
}

fn downcast<T: 'static>(b: &mut dyn ArrayBuilder) -> Result<&mut T, Malformed> {
    b.as_any_mut().downcast_mut::<T>().ok_or(Malformed("arrow builder"))
}

/// Why a value could not be appended.
enum AppendError {
    Malformed(Malformed),
    /// NaN or ±Infinity for a decimal column.
    NotFinite(&'static str),
}

impl From<Malformed> for AppendError {
    fn from(m: Malformed) -> Self {
        AppendError::Malformed(m)
    }
}

/// A numeric's value for a decimal column: its unscaled digits, or why there are none.
fn finite(n: decode::Numeric<'_>) -> Result<decode::Numeric<'_>, AppendError> {
    match n {
        decode::Numeric::NaN => Err(AppendError::NotFinite("NaN")),
        decode::Numeric::PosInf => Err(AppendError::NotFinite("Infinity")),
        decode::Numeric::NegInf => Err(AppendError::NotFinite("-Infinity")),
        finite => Ok(finite),
    }
}

fn append(
    b: &mut dyn ArrayBuilder,
    kind: Kind,
    scale: i8,
    raw: Option<&[u8]>,
    cell: &mut Cell<'_>,
) -> Result<(), AppendError> {
    match kind {
        Kind::Bool => downcast::<BooleanBuilder>(b)?.append_option(raw.map(decode::bool_).transpose()?),
        Kind::I16 => downcast::<Int16Builder>(b)?.append_option(raw.map(decode::be_i16).transpose()?),
        Kind::I32 => downcast::<Int32Builder>(b)?.append_option(raw.map(decode::be_i32).transpose()?),
        Kind::I64 => downcast::<Int64Builder>(b)?.append_option(raw.map(decode::be_i64).transpose()?),
        Kind::U32 => downcast::<UInt32Builder>(b)?.append_option(raw.map(decode::be_u32).transpose()?),
        Kind::F32 => downcast::<Float32Builder>(b)?.append_option(raw.map(decode::be_f32).transpose()?),
        Kind::F64 => downcast::<Float64Builder>(b)?.append_option(raw.map(decode::be_f64).transpose()?),
        Kind::Dec128 => {
            let v = match raw {
                Some(r) => {
                    let n = finite(decode::numeric(r)?)?;
                    n.unscaled_i128(scale as i32).or_else(|| n.unscaled(scale as i32).and_then(|v| v.to_i128()))
                }
                None => None,
            };
            downcast::<Decimal128Builder>(b)?.append_option(v)
        }
        Kind::Dec256 => {
            let v = match raw {
                Some(r) => finite(decode::numeric(r)?)?.unscaled(scale as i32),
                None => None,
            };
            downcast::<Decimal256Builder>(b)?.append_option(v)
        }
        Kind::Binary => {
            let bb = downcast::<BinaryBuilder>(b)?;
            let Some(r) = raw else {
                bb.append_null();
                return Ok(());
            };
            let (keep, marker) = cut_at(cell.cap, r);
            cell.note(keep, marker.is_some());
            match marker {
                None => bb.append_value(r),
                Some(marker) => bb.append_value([&r[..keep], marker.as_bytes()].concat()),
            }
        }
        Kind::Date => {
            let v = raw.map(decode::be_i32).transpose()?.map(|d| match d {
                i32::MAX | i32::MIN => d,
                d => d.saturating_add(decode::UNIX_TO_PG_DAYS),
            });
            downcast::<Date32Builder>(b)?.append_option(v)
        }
        Kind::Time => downcast::<Time64MicrosecondBuilder>(b)?.append_option(raw.map(decode::be_i64).transpose()?),
        Kind::Ts => {
            let v = raw.map(decode::be_i64).transpose()?.map(|t| match t {
                i64::MAX | i64::MIN => t,
                t => t.saturating_add(decode::UNIX_TO_PG_USECS),
            });
            downcast::<TimestampMicrosecondBuilder>(b)?.append_option(v)
        }
        Kind::Text(codec) => {
            let sb = downcast::<StringBuilder>(b)?;
            let Some(r) = raw else {
                sb.append_null();
                return Ok(());
            };
            // Text the row already holds is appended from there; other types are rendered.
            let text: &[u8] = match codec {
                Codec::ServerText | Codec::Scalar(Scalar::Text | Scalar::Json) => r,
                Codec::RawText { .. } if std::str::from_utf8(r).is_ok() => r,
                Codec::RawText { .. } => {
                    cell.scratch.clear();
                    decode::push_utf8_lossy(cell.scratch, r);
                    cell.lossy = true;
                    cell.scratch
                }
                Codec::Scalar(Scalar::Jsonb) => decode::jsonb_text(r)?,
                Codec::Scalar(s) => {
                    cell.scratch.clear();
                    write_scalar(s, r, cell.scratch)?;
                    cell.scratch
                }
                other => {
                    cell.scratch.clear();
                    write_text(other, r, cell.scratch)?;
                    cell.scratch
                }
            };
            let text = std::str::from_utf8(text).map_err(|_| Malformed("text"))?;
            let (keep, marker) = cut_at(cell.cap, text.as_bytes());
            match &marker {
                None => sb.append_value(text),
                Some(marker) => {
                    // `cut_point` cuts valid UTF-8 at a character boundary.
                    let kept = text.get(..keep).ok_or(Malformed("text"))?;
                    sb.write_str(kept).map_err(|_| Malformed("text"))?;
                    sb.write_str(marker).map_err(|_| Malformed("text"))?;
                    sb.append_value("");
                }
            }
            cell.note(keep, marker.is_some());
        }
    }
    Ok(())
}

fn append_list(
    b: &mut dyn ArrayBuilder,
    plan: &Plan,
    raw: Option<&[u8]>,
    cell: &mut Cell<'_>,
) -> Result<(), AppendError> {
    let lb = downcast::<ListBuilder<Box<dyn ArrayBuilder>>>(b)?;
    let Some(raw) = raw else {
        lb.append_null();
        return Ok(());
    };
    let a = decode::array(raw)?;
    for e in &a.elems {
        append(lb.values().as_mut(), plan.kind, plan.scale, *e, cell)?;
    }
    lb.append(true);
    Ok(())
}

/// A `Write` whose bytes the exporter hands on after every write.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("output buffer poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn drain_into(&self, out: &mut Vec<u8>) {
        if let Ok(mut b) = self.0.lock() {
            // Usually `out` is empty: hand the buffer over instead of copying it.
            if out.is_empty() {
                std::mem::swap(out, &mut b);
            } else {
                out.append(&mut b);
            }
        }
    }
}

fn encode_err(e: impl std::fmt::Display) -> QueryError {
    QueryError::Encode(e.to_string())
}

/// Arrow IPC stream format. Without a row limit the schema (`sluice.truncated = false`) goes out
/// first and record batches follow as they fill. With a limit, truncation is only known at the
/// end, and the schema message that says so comes first: the batches are encoded as they fill
/// into a spool (memory, then a temporary file past [`SPOOL_IN_MEMORY`]), and after the
/// schema they are handed on a piece at a time — memory stays flat whatever `max_rows` is.
///
/// A record batch is written when it has [`RECORD_BATCH_ROWS`] rows or [`RECORD_BATCH_BYTES`]
/// of values, and its encoding refers to the arrays' own buffers (no copy): it goes out in
/// [`OUT_CHUNK`] pieces after the rows it came from were released. With
/// [`ExportOptions::max_cell_bytes`], the schema is already out when a value is cut, so the cut
/// is marked in band only (the value ends with the marker; bytea values too); Parquet, whose
/// footer is written last, also lists the cut columns in its key-value metadata
/// ([`TRUNCATED_COLUMNS_KEY`]).
pub struct ArrowIpc {
    ctx: ExportContext,
    options: ExportOptions,
    builders: Option<Builders>,
    schema: Option<SchemaRef>,
    /// The stream's schema message and end-of-stream marker.
    writer: Option<StreamWriter<Shared>>,
    /// Encodes record batches; the schema message it puts before the first one (`skip` bytes)
    /// is dropped, since `writer` wrote the real one.
    encoder: Option<StreamEncoder>,
    skip: usize,
    /// Encoded buffers not yet handed on.
    pending: VecDeque<Buffer>,
    /// With a row limit: the batches' IPC messages, written before the schema is known.
    spool: Option<Spool>,
    /// After `finish` with a row limit: the spooled messages still to hand on.
    replay: Option<Spool>,
    buf: Shared,
}

impl ArrowIpc {
    pub fn with_options(ctx: ExportContext, options: ExportOptions) -> ArrowIpc {
        ArrowIpc { options, ..ArrowIpc::new(ctx) }
    }

    pub fn new(ctx: ExportContext) -> ArrowIpc {
        ArrowIpc {
            ctx,
            options: ExportOptions::default(),
            builders: None,
            schema: None,
            writer: None,
            encoder: None,
            skip: 0,
            pending: VecDeque::new(),
            spool: None,
            replay: None,
            buf: Shared::default(),
        }
    }

    /// Encodes `batch` into `pending` (or straight into the spool), without copying its values.
    fn encode(&mut self, batch: RecordBatch) -> Result<(), QueryError> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Err(QueryError::Internal("batch before begin".into()));
        };
        let buffers = encoder.encode(&batch).map_err(encode_err)?;
        drop(batch);
        for mut b in buffers {
            if self.skip > 0 {
                let n = self.skip.min(b.len());
                self.skip -= n;
                b = b.slice(n);
            }
            if b.is_empty() {
                continue;
            }
            match self.spool.as_mut() {
                Some(spool) => spool.write_all(b.as_slice()).map_err(encode_err)?,
                None => self.pending.push_back(b),
            }
        }
        Ok(())
    }
}

/// The length of the schema message a [`StreamEncoder`] puts before its first batch.
fn schema_message_len(schema: &Schema) -> Result<usize, QueryError> {
    let twin = StreamEncoder::try_new(schema).map_err(encode_err)?;
    let total: usize = twin.finish().map_err(encode_err)?.iter().map(|b| b.len()).sum();
    // `finish` adds the end-of-stream marker: a continuation and a zero length.
    total.checked_sub(8).ok_or_else(|| QueryError::Internal("an Arrow schema message shorter than expected".into()))
}

/// Encoded IPC messages waiting for their schema message: in memory up to [`SPOOL_IN_MEMORY`]
/// bytes, then in an unnamed temporary file (gone when dropped, also on a crash).
#[derive(Default)]
struct Spool {
    mem: Vec<u8>,
    file: Option<std::fs::File>,
    len: u64,
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.file.is_none() && self.mem.len() + buf.len() > SPOOL_IN_MEMORY {
            let mut file = tempfile::tempfile().map_err(|e| {
                std::io::Error::other(format!(
                    "a row-limited Arrow export spools past {} MiB to a temporary file, and none could be \
                     created in {} ({e}); set TMPDIR to a writable directory",
                    SPOOL_IN_MEMORY >> 20,
                    std::env::temp_dir().display()
                ))
            })?;
            file.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(file);
        }
        match self.file.as_mut() {
            Some(f) => f.write_all(buf)?,
            None => self.mem.extend_from_slice(buf),
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl Spool {
    /// Gets ready to read back from byte `from`.
    fn rewind_to(&mut self, from: u64) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        match self.file.as_mut() {
            Some(f) => {
                f.seek(SeekFrom::Start(from))?;
            }
            None => {
                let from = usize::try_from(from).unwrap_or(usize::MAX).min(self.mem.len());
                self.mem.drain(..from);
            }
        }
        Ok(())
    }

    /// Appends the next piece to `out` (what is in memory is at most [`SPOOL_IN_MEMORY`] and goes
    /// in one piece); false when everything was read.
    fn read_piece(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        use std::io::Read;
        match self.file.as_mut() {
            Some(f) => {
                let start = out.len();
                out.resize(start + SPOOL_PIECE, 0);
                let n = f.read(&mut out[start..])?;
                out.truncate(start + n);
                Ok(n > 0)
            }
            None if self.mem.is_empty() => Ok(false),
            None => {
                out.append(&mut self.mem);
                Ok(true)
            }
        }
    }
}

impl Exporter for ArrowIpc {
    fn begin(&mut self, columns: &[Column], out: &mut Vec<u8>) -> Result<(), QueryError> {
        self.builders = Some(Builders::new(columns, RECORD_BATCH_ROWS, self.options));
        // Record batches carry the plain schema; the stream's schema message adds the metadata.
        let plain = schema(columns, None);
        self.skip = schema_message_len(&plain)?;
        self.encoder = Some(StreamEncoder::try_new(&plain).map_err(encode_err)?);
        self.schema = Some(Arc::new(plain));
        if self.ctx.max_rows.is_none() {
            let s = schema(columns, Some(false));
            self.writer = Some(StreamWriter::try_new(self.buf.clone(), &s).map_err(encode_err)?);
            self.buf.drain_into(out);
        } else {
            self.spool = Some(Spool::default());
        }
        Ok(())
    }

    fn batch(&mut self, columns: &[Column], batch: &Batch, _out: &mut Vec<u8>) -> Result<bool, QueryError> {
        let (Some(b), Some(schema)) = (self.builders.as_mut(), self.schema.clone()) else {
            return Err(QueryError::Internal("batch before begin".into()));
        };
        b.append(columns, batch)?;
        if b.due() {
            if let Some(rb) = b.take(&schema)? {
                self.encode(rb)?;
            }
        }
        Ok(false)
    }

    fn settle(&mut self, out: &mut Vec<u8>) -> Result<bool, QueryError> {
        while let Some(b) = self.pending.pop_front() {
            let room = OUT_CHUNK.saturating_sub(out.len()).max(1);
            if b.len() > room {
                out.extend_from_slice(&b.as_slice()[..room]);
                self.pending.push_front(b.slice(room));
                return Ok(true);
            }
            out.extend_from_slice(b.as_slice());
        }
        Ok(false)
    }

    fn finish(&mut self, columns: &[Column], truncated: bool, out: &mut Vec<u8>) -> Result<(), QueryError> {
        let (Some(b), Some(schema)) = (self.builders.as_mut(), self.schema.clone()) else {
            return Err(QueryError::Internal("finish before begin".into()));
        };
        let lossy = names_json(columns, b.lossy_columns());
        if let Some(rb) = b.take(&schema)? {
            self.encode(rb)?;
        }
        if let Some(mut spool) = self.spool.take() {
            // The real schema message, then the spooled batch messages, then the end of stream
            // in `more`.
            let s = schema_with_meta(columns, Some(truncated), lossy);
            self.writer = Some(StreamWriter::try_new(self.buf.clone(), &s).map_err(encode_err)?);
            self.buf.drain_into(out);
            spool.flush().map_err(encode_err)?;
            spool.rewind_to(0).map_err(encode_err)?;
            self.replay = Some(spool);
            return Ok(());
        }
        // The last batch's pieces and the end of stream follow in `more`.
        Ok(())
    }

    fn more(&mut self, out: &mut Vec<u8>) -> Result<bool, QueryError> {
        if self.settle(out)? || !out.is_empty() {
            return Ok(true);
        }
        if let Some(spool) = self.replay.as_mut() {
            if spool.read_piece(out).map_err(encode_err)? {
                return Ok(true);
            }
            self.replay = None;
        }
        if let Some(mut w) = self.writer.take() {
            w.finish().map_err(encode_err)?;
            self.buf.drain_into(out);
            return Ok(!out.is_empty());
        }
        Ok(false)
    }

    fn cut_columns(&self) -> Vec<usize> {
        self.builders.as_ref().map(Builders::cut_columns).unwrap_or_default()
    }

    fn lossy_columns(&self) -> Vec<usize> {
        self.builders.as_ref().map(Builders::lossy_columns).unwrap_or_default()
    }
}

/// Parquet, zstd-compressed (level 1, plain encoding: dictionary pages cost more CPU than they
/// save on typical exports) in data pages v2 (which compress a page's values without copying
/// them first: a huge value is held once less), one row group per [`ROW_GROUP_ROWS`] rows written as soon as it is
/// full; `sluice.truncated` goes into the file's key-value metadata (which readers show as schema
/// metadata) when the footer is written.
///
/// Encoding runs on its own thread, fed record batches of [`PARQUET_BATCH_ROWS`] through a
/// channel of two, so decoding the next rows overlaps compressing the previous ones; the encoded
/// bytes come back to the exporter and go out with the next batch.
pub struct Parquet {
    options: ExportOptions,
    builders: Option<Builders>,
    /// A full record batch, handed to the encoder once the rows it came from were released.
    pending: Option<RecordBatch>,
    schema: Option<SchemaRef>,
    worker: Option<Encoder>,
}

/// Rows per record batch handed to the Parquet encoder thread.
pub const PARQUET_BATCH_ROWS: usize = 16_384;

enum ToEncoder {
    Batch(RecordBatch),
    Finish { truncated: bool, cut: Option<String>, lossy: Option<String> },
}

struct Encoder {
    to: std::sync::mpsc::SyncSender<ToEncoder>,
    from: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl Encoder {
    fn start(schema: SchemaRef) -> Result<Encoder, QueryError> {
        let level = ZstdLevel::try_new(1).map_err(encode_err)?;
        // Min/max statistics copy whole values (they are cut to 64 bytes only when written), so
        // a huge text or binary value would be held three times: fixed-width columns keep them,
        // variable-width ones (text, binary, lists) go without.
        // Data pages v2: a page's values are compressed straight from the encoder's buffer,
        // where v1 first copies them after the levels into one more buffer the page's size;
        // with a huge value that copy was a whole extra cell. Plain encoding, as v1 writes
        // (v2's default for text and binary is DELTA_BYTE_ARRAY, which copies them again).
        let mut props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_encoding(Encoding::PLAIN)
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None);
        for f in schema.fields() {
            if f.data_type().is_primitive() || f.data_type() == &DataType::Boolean {
                props = props
                    .set_column_statistics_enabled(ColumnPath::new(vec![f.name().clone()]), EnabledStatistics::Page);
            }
        }
        let props = props.build();
        let buf = Shared::default();
        let mut writer = ArrowWriter::try_new(buf.clone(), schema, Some(props)).map_err(encode_err)?;
        let (to, inbox) = std::sync::mpsc::sync_channel::<ToEncoder>(2);
        let (outbox, from) = std::sync::mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("sluice-parquet".into())
            .spawn(move || -> Result<(), String> {
                let send = |out: &std::sync::mpsc::Sender<Vec<u8>>| {
                    let mut bytes = Vec::new();
                    buf.drain_into(&mut bytes);
                    if !bytes.is_empty() {
                        let _ = out.send(bytes);
                    }
                };
                send(&outbox);
                while let Ok(msg) = inbox.recv() {
                    match msg {
                        ToEncoder::Batch(rb) => {
                            writer.write(&rb).map_err(|e| e.to_string())?;
                            send(&outbox);
                        }
                        ToEncoder::Finish { truncated, cut, lossy } => {
                            writer.append_key_value_metadata(KeyValue::new(
                                TRUNCATED_KEY.to_string(),
                                truncated.to_string(),
                            ));
                            if let Some(cut) = cut {
                                writer.append_key_value_metadata(KeyValue::new(TRUNCATED_COLUMNS_KEY.to_string(), cut));
                            }
                            if let Some(lossy) = lossy {
                                writer.append_key_value_metadata(KeyValue::new(LOSSY_COLUMNS_KEY.to_string(), lossy));
                            }
                            writer.close().map_err(|e| e.to_string())?;
                            send(&outbox);
                            return Ok(());
                        }
                    }
                }
                // The exporter went away without finishing: no footer, an unreadable file.
                Ok(())
            })
            .map_err(|e| QueryError::Encode(format!("cannot start the Parquet encoder: {e}")))?;
        Ok(Encoder { to, from, thread })
    }

    /// Hands a message to the encoder (waiting while it is two batches behind).
    fn send(&mut self, msg: ToEncoder) -> Result<(), QueryError> {
        self.to.send(msg).map_err(|_| QueryError::Encode("the Parquet encoder stopped".into()))
    }

    /// Encoded bytes so far.
    fn collect(&self, out: &mut Vec<u8>) {
        while let Ok(bytes) = self.from.try_recv() {
            out.extend_from_slice(&bytes);
        }
    }

    fn join(self, out: &mut Vec<u8>) -> Result<(), QueryError> {
        drop(self.to);
        let result = self.thread.join().map_err(|_| QueryError::Encode("the Parquet encoder panicked".into()))?;
        while let Ok(bytes) = self.from.try_recv() {
            out.extend_from_slice(&bytes);
        }
        result.map_err(QueryError::Encode)
    }
}

impl Default for Parquet {
    fn default() -> Self {
        Parquet::new()
    }
}

impl Parquet {
    pub fn with_options(options: ExportOptions) -> Parquet {
        Parquet { options, ..Parquet::new() }
    }

    pub fn new() -> Parquet {
        Parquet { options: ExportOptions::default(), builders: None, pending: None, schema: None, worker: None }
    }
}

impl Exporter for Parquet {
    fn begin(&mut self, columns: &[Column], out: &mut Vec<u8>) -> Result<(), QueryError> {
        let s = Arc::new(schema(columns, None));
        let worker = Encoder::start(s.clone())?;
        worker.collect(out);
        self.worker = Some(worker);
        self.builders = Some(Builders::new(columns, PARQUET_BATCH_ROWS, self.options));
        self.schema = Some(s);
        Ok(())
    }

    fn batch(&mut self, columns: &[Column], batch: &Batch, out: &mut Vec<u8>) -> Result<bool, QueryError> {
        let (Some(b), Some(schema), Some(w)) = (self.builders.as_mut(), self.schema.clone(), self.worker.as_mut())
        else {
            return Err(QueryError::Internal("batch before begin".into()));
        };
        b.append(columns, batch)?;
        if b.rows >= PARQUET_BATCH_ROWS || b.bytes >= RECORD_BATCH_BYTES {
            self.pending = b.take(&schema)?;
        }
        w.collect(out);
        Ok(false)
    }

    fn settle(&mut self, out: &mut Vec<u8>) -> Result<bool, QueryError> {
        let Some(w) = self.worker.as_mut() else {
            return Ok(false);
        };
        if let Some(rb) = self.pending.take() {
            w.send(ToEncoder::Batch(rb))?;
        }
        w.collect(out);
        Ok(false)
    }

    fn finish(&mut self, columns: &[Column], truncated: bool, out: &mut Vec<u8>) -> Result<(), QueryError> {
        let (Some(b), Some(schema), Some(mut w)) = (self.builders.as_mut(), self.schema.clone(), self.worker.take())
        else {
            return Err(QueryError::Internal("finish before begin".into()));
        };
        if let Some(rb) = self.pending.take() {
            w.send(ToEncoder::Batch(rb))?;
        }
        if let Some(rb) = b.take(&schema)? {
            w.send(ToEncoder::Batch(rb))?;
        }
        let cut = names_json(columns, b.cut_columns());
        let lossy = names_json(columns, b.lossy_columns());
        w.send(ToEncoder::Finish { truncated, cut, lossy })?;
        w.join(out)
    }

    fn cut_columns(&self) -> Vec<usize> {
        self.builders.as_ref().map(Builders::cut_columns).unwrap_or_default()
    }

    fn lossy_columns(&self) -> Vec<usize> {
        self.builders.as_ref().map(Builders::lossy_columns).unwrap_or_default()
    }
}
