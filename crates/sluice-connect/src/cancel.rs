//! Cancel requests: dialled like the session they cancel, and closed only after the server has
//! closed its end.
//!
//! libpq's `PQcancel` waits for that close too. PgBouncer forwards a cancel over a new server
//! connection of its own and (1.18 at least) drops the request when the client hangs up before it
//! was delivered, so a cancel that closes right after writing may never reach the statement.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use sluice_core::HostPort;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::CancelToken;

use crate::tls::TlsSetup;
use crate::{ConnectError, Dialer};

/// How long a cancel request may take, dialling included, before it is reported as failed.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Cancels the running query of one session. The request is dialled through the same transport
/// (direct, private endpoint or tunnel) and wrapped in the same TLS as the session it cancels.
#[derive(Clone)]
pub struct CancelHandle {
    pub(crate) token: CancelToken,
    pub(crate) dialer: Dialer,
    pub(crate) tls: TlsSetup,
    pub(crate) host: HostPort,
    pub(crate) server_name: String,
}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHandle").field("host", &self.host).finish_non_exhaustive()
    }
}

impl CancelHandle {
    /// Sends the cancel request and returns once the server (or pooler) has closed the request's
    /// connection, i.e. once it has taken the request in.
    pub async fn cancel(&self) -> Result<(), ConnectError> {
        let lost = |reason: String| ConnectError::Lost { addr: self.host.to_string(), reason };
        let send = async {
            let stream = self.dialer.dial(&self.host).await?;
            let tls = self.tls.connector(&self.server_name, Arc::new(Mutex::new(None)))?.awaiting_close();
            self.token
                .cancel_query_raw(AwaitClose(stream), tls)
                .await
                .map_err(|e| lost(format!("cancel request failed: {e}")))
        };
        match tokio::time::timeout(CANCEL_WAIT, send).await {
            Ok(result) => result,
            Err(_) => Err(lost(format!("the cancel request was not taken in within {}s", CANCEL_WAIT.as_secs()))),
        }
    }
}

/// A cancel request's plaintext stream: shutting it down waits for the server to close instead
/// of closing first.
pub(crate) struct AwaitClose<S>(pub(crate) S);

impl<S: AsyncRead + Unpin> AsyncRead for AwaitClose<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for AwaitClose<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_until_closed(&mut self.0, cx)
    }
}

/// Reads and discards until the peer closes. A reset counts as closed: either way the server
/// is done with the request.
pub(crate) fn poll_until_closed<R: AsyncRead + Unpin>(reader: &mut R, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut scratch = [0u8; 256];
    loop {
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
            Poll::Ready(Ok(())) => continue,
            Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_waits_for_the_peer_to_close() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut client = AwaitClose(client);
        client.write_all(b"cancel").await.expect("write");
        let closing = tokio::spawn(async move { client.shutdown().await });
        let mut got = [0u8; 6];
        server.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"cancel");
        // The peer still has the connection open: the shutdown is still waiting.
        tokio::task::yield_now().await;
        assert!(!closing.is_finished(), "shutdown returned before the peer closed");
        server.write_all(b"ignored").await.expect("peer writes");
        drop(server);
        closing.await.expect("join").expect("shutdown");
    }
}
