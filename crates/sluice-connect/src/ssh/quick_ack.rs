//! Prompt acknowledgements on the bastion's TCP connection.
//!
//! OpenSSH's sshd turns Nagle's algorithm off only for interactive sessions (a pty), so on a
//! session that only forwards channels it holds a small write back until the previous one is
//! acknowledged — and Linux delays that acknowledgement by up to 40 ms. A PostgreSQL reply that
//! the server sends in two pieces (an error, then ReadyForQuery) then arrives 40 ms late.
//! Re-arming `TCP_QUICKACK` after every read makes the kernel acknowledge at once.
//!
//! russh reads each packet's length and then its body with two small reads; a read buffer in
//! front turns those into one socket read (and one re-arm) per burst of data.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;

/// The bastion's TCP stream as the SSH session reads and writes it: buffered reads, each
/// acknowledged at once.
pub(super) fn bastion_stream(tcp: TcpStream) -> BufReader<QuickAck> {
    BufReader::with_capacity(64 << 10, QuickAck(tcp))
}

/// A TCP stream that acknowledges every read at once.
pub(super) struct QuickAck(TcpStream);

impl AsyncRead for QuickAck {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            // Linux leaves quick-ack mode on its own, so it is re-armed after each read. A failure
            // only costs latency.
            let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
