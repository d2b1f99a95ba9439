//! Column builders: a batch's wire values appended to typed Arrow arrays, one record batch at a
//! time, with the cell cap and `SQL_ASCII` text applied.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{
    make_builder, ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt32Builder,
};
use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_buffer::{Buffer, OffsetBuffer};
use arrow_schema::SchemaRef;
use bytes::Bytes;

use super::{plan, Kind, Plan, FLUSH_AFTER, RECORD_BATCH_BYTES, SHARED_CELL_BYTES};
use crate::decode::{self, Malformed};
use crate::export::{cut_point, truncation_marker, ExportOptions};
use crate::types::{write_scalar, write_text, Codec, Scalar};
use crate::{Batch, Column, QueryError};

/// Column builders for one record batch at a time.
pub(super) struct Builders {
    plans: Vec<Plan>,
    builders: Vec<Box<dyn ArrayBuilder>>,
    /// Rows per record batch: builders are created at this capacity, so they never regrow.
    capacity: usize,
    pub(super) rows: usize,
    /// Bytes of text and binary values appended since the last `take`.
    pub(super) bytes: usize,
    scratch: Vec<u8>,
    since: Instant,
    max_cell_bytes: Option<usize>,
    cut: Vec<bool>,
    lossy: Vec<bool>,
}

impl Builders {
    pub(super) fn new(columns: &[Column], capacity: usize, options: ExportOptions) -> Builders {
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

    pub(super) fn append(&mut self, columns: &[Column], batch: &Batch) -> Result<(), QueryError> {
        self.append_rows(columns, batch, 0..batch.len(), &[])
    }

    /// Appends rows `rows` of `batch`; the columns in `skip` get a null instead of their value.
    pub(super) fn append_rows(
        &mut self,
        columns: &[Column],
        batch: &Batch,
        rows: Range<usize>,
        skip: &[usize],
    ) -> Result<(), QueryError> {
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
            for r in rows.clone() {
                let raw = if skip.contains(&i) { None } else { batch.value(r, i) };
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
        self.rows += rows.len();
        Ok(())
    }

    /// The values of row `r` that go into a record batch without being copied: text that needs
    /// no rendering and binary values, at least [`SHARED_CELL_BYTES`] long and not cut by the
    /// cell cap, with their column indexes. Empty for every row of ordinary size.
    pub(super) fn shareable(&self, batch: &Batch, r: usize) -> Vec<(usize, Bytes)> {
        if batch.row_bytes(r) < SHARED_CELL_BYTES {
            return Vec::new();
        }
        let mut shared = Vec::new();
        for (i, plan) in self.plans.iter().enumerate() {
            let passthrough = match plan.kind {
                Kind::Binary => true,
                Kind::Text(Codec::ServerText | Codec::Scalar(Scalar::Text | Scalar::Json)) => true,
                // Bytes that are not UTF-8 are decoded with U+FFFD: a copy.
                Kind::Text(Codec::RawText { .. }) => batch.value(r, i).is_some_and(|v| std::str::from_utf8(v).is_ok()),
                _ => false,
            };
            let Some(len) = batch.value(r, i).map(<[u8]>::len) else {
                continue;
            };
            if plan.list || !passthrough || len < SHARED_CELL_BYTES || self.max_cell_bytes.is_some_and(|cap| len > cap)
            {
                continue;
            }
            if let Some(value) = batch.value_shared(r, i) {
                shared.push((i, value));
            }
        }
        shared
    }

    /// Row `r` of `batch` as a record batch of its own, the `shared` values (from
    /// [`Builders::shareable`]) in arrays over the row's own memory. Rows appended before must
    /// have been taken.
    pub(super) fn take_shared(
        &mut self,
        columns: &[Column],
        batch: &Batch,
        r: usize,
        shared: Vec<(usize, Bytes)>,
        schema: &SchemaRef,
    ) -> Result<RecordBatch, QueryError> {
        if self.rows != 0 {
            return Err(QueryError::Internal("a shared row after rows not yet taken".into()));
        }
        let skip: Vec<usize> = shared.iter().map(|(i, _)| *i).collect();
        self.append_rows(columns, batch, r..r + 1, &skip)?;
        let mut arrays = self.finish_arrays();
        for (i, value) in shared {
            let (Some(slot), Some(plan)) = (arrays.get_mut(i), self.plans.get(i)) else {
                continue;
            };
            let name = columns.get(i).map_or("?", |c| c.name.as_str());
            let offsets = OffsetBuffer::<i32>::from_lengths([value.len()]);
            let values = Buffer::from(value);
            *slot = match plan.kind {
                Kind::Binary => Arc::new(
                    BinaryArray::try_new(offsets, values, None)
                        .map_err(|e| QueryError::Internal(format!("column {name}: {e}")))?,
                ),
                _ => Arc::new(
                    StringArray::try_new(offsets, values, None)
                        .map_err(|_| QueryError::Internal(format!("column {name} held a malformed text value")))?,
                ),
            };
        }
        RecordBatch::try_new(schema.clone(), arrays).map_err(|e| QueryError::Encode(e.to_string()))
    }

    pub(super) fn due(&self) -> bool {
        self.rows >= self.capacity
            || self.bytes >= RECORD_BATCH_BYTES
            || (self.rows > 0 && self.since.elapsed() >= FLUSH_AFTER)
    }

    pub(super) fn take(&mut self, schema: &SchemaRef) -> Result<Option<RecordBatch>, QueryError> {
        self.since = Instant::now();
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays = self.finish_arrays();
        RecordBatch::try_new(schema.clone(), arrays).map(Some).map_err(|e| QueryError::Encode(e.to_string()))
    }

    /// The appended rows as arrays, the builders started afresh.
    fn finish_arrays(&mut self) -> Vec<ArrayRef> {
        self.since = Instant::now();
        self.rows = 0;
        self.bytes = 0;
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        // `finish` leaves empty builders; start the next batch at full capacity.
        self.builders = self.plans.iter().map(|p| make_builder(&p.data_type, self.capacity)).collect();
        arrays
    }

    pub(super) fn cut_columns(&self) -> Vec<usize> {
        self.cut.iter().enumerate().filter(|(_, &c)| c).map(|(i, _)| i).collect()
    }

    pub(super) fn lossy_columns(&self) -> Vec<usize> {
        self.lossy.iter().enumerate().filter(|(_, &l)| l).map(|(i, _)| i).collect()
    }
}

/// What appending one column's values needs besides the builder.
struct Cell<'a> {
    scratch: &'a mut Vec<u8>,
    /// [`ExportOptions::max_cell_bytes`](crate::export::ExportOptions::max_cell_bytes).
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
