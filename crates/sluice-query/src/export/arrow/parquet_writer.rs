//! The Parquet exporter and the thread its encoder runs on.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use super::builders::Builders;
use super::{
    encode_err, names_json, schema, Shared, LOSSY_COLUMNS_KEY, RECORD_BATCH_BYTES, ROW_GROUP_ROWS,
    TRUNCATED_COLUMNS_KEY, TRUNCATED_KEY,
};
use crate::export::{ExportOptions, Exporter};
use crate::{Batch, Column, QueryError};

/// Parquet, zstd-compressed (level 1, plain encoding: dictionary pages cost more CPU than they
/// save on typical exports) in data pages v2 (which compress a page's values without copying
/// them first: a huge value is held once less), one row group per [`ROW_GROUP_ROWS`] rows written as soon as it is
/// full; `sluice.truncated` goes into the file's key-value metadata (which readers show as schema
/// metadata) when the footer is written.
///
/// Encoding runs on its own thread, fed record batches of [`PARQUET_BATCH_ROWS`] through a
/// channel of two, so decoding the next rows overlaps compressing the previous ones; the encoded
/// bytes come back to the exporter and go out with the next batch. A row holding a text or
/// binary value of [`SHARED_CELL_BYTES`](super::SHARED_CELL_BYTES) or more goes in a record batch
/// of its own whose array for that value is the row's memory: the encoder copies a value into its
/// page, and with the row and a copy in an Arrow array that made three.
pub struct Parquet {
    options: ExportOptions,
    builders: Option<Builders>,
    /// Full record batches, handed to the encoder once the rows they came from were released
    /// (except a row holding a value of [`SHARED_CELL_BYTES`](super::SHARED_CELL_BYTES) or more, whose record
    /// batch keeps it).
    pending: Vec<RecordBatch>,
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
        Parquet { options: ExportOptions::default(), builders: None, pending: Vec::new(), schema: None, worker: None }
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
        // A row with a huge value becomes a record batch of its own, that value not copied.
        let mut start = 0;
        for r in 0..batch.len() {
            let shared = b.shareable(batch, r);
            if shared.is_empty() {
                continue;
            }
            b.append_rows(columns, batch, start..r, &[])?;
            self.pending.extend(b.take(&schema)?);
            self.pending.push(b.take_shared(columns, batch, r, shared, &schema)?);
            start = r + 1;
        }
        b.append_rows(columns, batch, start..batch.len(), &[])?;
        if b.rows >= PARQUET_BATCH_ROWS || b.bytes >= RECORD_BATCH_BYTES {
            self.pending.extend(b.take(&schema)?);
        }
        w.collect(out);
        Ok(false)
    }

    fn settle(&mut self, out: &mut Vec<u8>) -> Result<bool, QueryError> {
        let Some(w) = self.worker.as_mut() else {
            return Ok(false);
        };
        for rb in self.pending.drain(..) {
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
        for rb in self.pending.drain(..) {
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
