//! The Arrow IPC stream exporter.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::writer::{StreamEncoder, StreamWriter};
use arrow_schema::{Schema, SchemaRef};

use super::builders::Builders;
use super::spool::Spool;
use super::{encode_err, names_json, schema, schema_with_meta, Shared, RECORD_BATCH_ROWS};
use crate::export::{ExportContext, ExportOptions, Exporter, OUT_CHUNK};
use crate::{Batch, Column, QueryError};

/// Arrow IPC stream format. Without a row limit the schema (`sluice.truncated = false`) goes out
/// first and record batches follow as they fill. With a limit, truncation is only known at the
/// end, and the schema message that says so comes first: the batches are encoded as they fill
/// into a spool (memory, then a temporary file past [`SPOOL_IN_MEMORY`](super::SPOOL_IN_MEMORY)), and after the
/// schema they are handed on a piece at a time — memory stays flat whatever `max_rows` is.
///
/// A record batch is written when it has [`RECORD_BATCH_ROWS`] rows or [`RECORD_BATCH_BYTES`](super::RECORD_BATCH_BYTES)
/// of values, and its encoding refers to the arrays' own buffers (no copy): it goes out in
/// [`OUT_CHUNK`] pieces after the rows it came from were released. With
/// [`ExportOptions::max_cell_bytes`](crate::export::ExportOptions::max_cell_bytes), the schema is already out when a value is cut, so the cut
/// is marked in band only (the value ends with the marker; bytea values too); Parquet, whose
/// footer is written last, also lists the cut columns in its key-value metadata
/// ([`TRUNCATED_COLUMNS_KEY`](super::TRUNCATED_COLUMNS_KEY)).
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
