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

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::types::{Codec, Scalar};
use crate::{unique_names, Column, QueryError};

mod builders;
mod ipc;
mod parquet_writer;
mod spool;

pub use ipc::ArrowIpc;
pub use parquet_writer::{Parquet, PARQUET_BATCH_ROWS};

/// The schema metadata key that says whether `max_rows` cut the result short.
pub const TRUNCATED_KEY: &str = "sluice.truncated";
/// The Parquet key-value metadata key listing, as a JSON array of field names, the columns in
/// which [`ExportOptions::max_cell_bytes`](crate::export::ExportOptions::max_cell_bytes) cut a value (absent when none was cut).
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
/// A text or binary value at least this long goes to the Parquet encoder in a record batch of
/// its own row, in an array over the row's memory rather than a copy: the encoder's page buffer
/// is then the value's only copy besides the row (two in all, where a copy made three).
pub const SHARED_CELL_BYTES: usize = 1 << 20;
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

/// Field names of `indexes` as a JSON array, or `None` when there are none.
fn names_json(columns: &[Column], indexes: Vec<usize>) -> Option<String> {
    let names = unique_names(columns);
    let listed: Vec<serde_json::Value> =
        indexes.into_iter().filter_map(|i| names.get(i).cloned().map(serde_json::Value::String)).collect();
    (!listed.is_empty()).then(|| serde_json::Value::Array(listed).to_string())
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
