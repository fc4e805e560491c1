//! A connection's socket as hyper sees it: bytes read while parked replayed first, and writes
//! that make no progress for WRITE_TIMEOUT_SECONDS failed, so a client that never reads its
//! answers cannot hold a connection (and its slot) forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::routes::App;

/// Longest a write may stall while the server drains: the drain waits for answers, not for
/// clients that do not take them.
const DRAIN_WRITE_STALL: Duration = Duration::from_secs(1);

/// The socket with its replay prefix and write-stall clock.
pub struct Stream {
    /// Bytes hyper had read but not used when the connection was parked.
    pub prefix: Bytes,
    /// The client's socket.
    pub tcp: TcpStream,
    app: Arc<App>,
    write_timeout: Duration,
    /// When the pending write stalled, and the timer that wakes the connection at its limit.
    stall: Option<(Instant, Pin<Box<Sleep>>)>,
}

impl Stream {
    /// Wraps a freshly accepted socket.
    pub fn new(tcp: TcpStream, app: Arc<App>, write_timeout: Duration) -> Self {
        Self {
            prefix: Bytes::new(),
            tcp,
            app,
            write_timeout,
            stall: None,
        }
    }

    /// Passes a write's result through, tracking how long writes have been pending.
    fn track<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if poll.is_ready() {
            self.stall = None;
            return poll;
        }
        let limit = if self.app.is_draining() {
            self.write_timeout.min(DRAIN_WRITE_STALL)
        } else {
            self.write_timeout
        };
        let (since, timer) = self.stall.get_or_insert_with(|| {
            let now = Instant::now();
            (now, Box::pin(tokio::time::sleep_until(now + limit)))
        });
        // The limit shrinks when a drain starts; the timer follows.
        let deadline = *since + limit;
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_ready() {
            self.stall = None;
            self.app.metrics.write_timeouts.inc();
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the client took no data for {:.1} s (WRITE_TIMEOUT_SECONDS)",
                    limit.as_secs_f64()
                ),
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.track(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.track(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // A TCP flush is immediate and moves no data: only writes count as progress.
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
