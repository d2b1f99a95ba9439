//! A query's output as a stream of byte chunks: the body of an HTTP response.
//!
//! [`spawn_body`] runs the export on a task of its own and hands its output over a bounded
//! channel, so a slow client slows the export (and through it the server's statement) instead of
//! filling memory. It returns the [`Body`] (a `Stream` of [`Bytes`]) and a handle on the export's
//! [`Summary`], for the audit trail.
//!
//! Two conventions a caller relies on:
//! - **A client that goes away cancels the statement.** Dropping the [`Body`] makes the export's
//!   next write fail; the export then finishes its request as any failed export does (a cancel
//!   request for a statement still running, ROLLBACK, the session back to its pool or closed),
//!   and the handle returns [`QueryError::Output`] with `BrokenPipe`.
//! - **An error after the first byte ends the body with that error.** The body's last item is
//!   `Err`: an HTTP server then aborts the response without its terminating chunk, so a client
//!   sees a broken transfer (curl exits 18), never a complete-looking file. No format writes its
//!   trailer (JSON's closing, Arrow's end of stream, Parquet's footer) after an error, and CSV and
//!   NDJSON, which have none, are cut where the error struck. The handle returns the same error.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{pump, Exporter, Sink, Summary};
use crate::{QueryError, RowStream};

/// How many chunks (each up to about [`super::OUT_CHUNK`]) may wait for a slow client.
pub const BODY_CHUNKS: usize = 4;

/// What ended a body early: the export's error, as plain data (an HTTP body's error type must be
/// `Send + Sync + 'static`; the full [`QueryError`] comes from the task's handle).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    pub message: String,
    pub sqlstate: Option<String>,
}

impl From<&QueryError> for BodyError {
    fn from(e: &QueryError) -> BodyError {
        BodyError { message: e.to_string(), sqlstate: e.sqlstate().map(str::to_string) }
    }
}

/// The export's output, chunk by chunk. Ends after the last chunk, or with one `Err`.
pub struct Body {
    rx: mpsc::Receiver<Result<Bytes, BodyError>>,
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Starts exporting `stream` through `exporter` on a task of its own; see the module docs for
/// what a dropped body and an error do. Must be called within a tokio runtime.
pub fn spawn_body(
    stream: RowStream,
    mut exporter: Box<dyn Exporter>,
) -> (Body, JoinHandle<Result<Summary, QueryError>>) {
    let (tx, rx) = mpsc::channel(BODY_CHUNKS);
    let task = tokio::spawn(async move {
        let mut stream = stream;
        let pumped = pump(&mut stream, exporter.as_mut(), &mut Sink::Channel(&tx)).await;
        let summary = Summary { rows: stream.rows_read(), truncated: stream.is_truncated() };
        match pumped {
            Ok(()) => {
                // The output is whole: the body ends now, and the client does not wait for the
                // transaction to end and the session to go back, which follow.
                drop(tx);
                stream.finish().await?;
                Ok(summary)
            }
            Err(e) => {
                // Ended (statement cancelled, session back) before the client hears of it.
                stream.finish().await?;
                // The client may be gone already; then nobody needs to hear it.
                let _ = tx.send(Err(BodyError::from(&e))).await;
                Err(e)
            }
        }
    });
    (Body { rx }, task)
}
