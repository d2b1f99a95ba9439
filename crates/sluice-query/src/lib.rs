//! Read-only query execution with streaming export.
//!
//! Owns the statement gate ([`gate`]: PostgreSQL's own grammar decides what may run), the
//! execution protocol on a [`sluice_connect::ReadOnlySession`] ([`run`] → [`RowStream`]: one
//! unnamed extended-protocol statement inside `BEGIN … READ ONLY`, always rolled back), exact
//! value rendering ([`types`], [`decode`]) and the exporters ([`export`]: CSV, JSON, NDJSON,
//! Arrow IPC, Parquet) that consume the stream batch by batch with flat memory.
//!
//! The flow of one request: [`gate::admit`] → [`run`] (begin, snapshot, describe, execute) →
//! [`export::export`] (batches → exporter → writer) → [`RowStream::finish`] (cancel if cut
//! short, ROLLBACK, session back to its pool).
//!
//! Must not do: open connections or choose sessions (that is `sluice-connect`), parse command
//! lines or print (that is `sluice-cli`), or know about HTTP. No SQL but the admitted statement
//! and Sluice's own fixed describe/transaction statements ever reaches the server.

pub mod decode;
mod describe;
mod error;
mod exec;
pub mod export;
pub mod gate;
pub mod types;

pub use error::QueryError;
pub use exec::{
    explain_syntax_error, run, run_admitted, Batch, QueryRequest, RowStream, SessionLoan, BATCH_ROWS,
    RETIRE_AFTER_ROW_BYTES,
};
pub use types::{unique_names, Codec, Column, Flavor, Scalar};
