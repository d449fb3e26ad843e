//! The byte budget of an unfinished HTTP/1 request head.
//!
//! Pingora reads a request head into a buffer that may grow to 1 MiB before
//! it gives up, and `request_header_timeout` only bounds how long that may
//! take: 200 clients each trickling an endless head held about 190 MB. A
//! [`HeadGuard`] sits between Pingora and an HTTP/1 connection's stream and
//! lets at most a budget of bytes through while a head is being read: the
//! proxy's first hook ([`super::head_read`]) lifts it once the head is
//! complete, the keep-alive loop sets it again before the next request. A
//! head that is still unfinished when the budget is spent is answered `431`
//! straight on the connection, and the request's task is told to close it.
//!
//! The budget is `server.max_request_header_bytes` plus [`SLACK`]: a head
//! up to the limit — and a little over, spelled differently — reaches the
//! proxy's own (JSON) `431`, which carries a request id.

use super::guard::{Guarded, ReadGuard};
use pingora::protocols::Stream;
use prometheus::IntCounter;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Bytes over `max_request_header_bytes` a raw head may take before the
/// guard answers instead of the proxy (line folding, spacing, the final
/// empty line).
pub const SLACK: usize = 1024;

/// Most bytes discarded after a refusal while waiting for the client to close.
const DRAIN_MAX: usize = 64 * 1024;

/// "No head is being read": reads pass through untouched.
const LIFTED: usize = usize::MAX;

/// What the guard answers to a head over its budget. No request id: the
/// head was never parsed.
const REFUSAL: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
content-type: application/json\r\n\
content-length: 124\r\n\
connection: close\r\n\r\n\
{\"error\":\"request_header_too_large\",\"error_description\":\"the request head is larger than this server accepts\",\"status\":431}\n";

/// The budget shared by a connection's [`HeadGuard`] and its request loop.
#[derive(Debug)]
pub struct HeadBudget {
    /// Bytes the current head may still take; [`LIFTED`] between heads.
    remaining: AtomicUsize,
    /// Notified once the guard answered a head over its budget.
    spent: Notify,
    /// `gatehouse_request_heads_refused_total`.
    refused: IntCounter,
}

impl HeadBudget {
    fn new(refused: IntCounter) -> Self {
        Self {
            remaining: AtomicUsize::new(LIFTED),
            spent: Notify::new(),
            refused,
        }
    }

    /// A new head starts: it may take `bytes`.
    pub fn start(&self, bytes: usize) {
        self.remaining.store(bytes, Ordering::Release);
    }

    /// The head is complete: reads pass through.
    pub fn lift(&self) {
        self.remaining.store(LIFTED, Ordering::Release);
    }

    /// Resolves once the guard answered a head over its budget.
    pub async fn spent(&self) {
        self.spent.notified().await;
    }
}

/// The head budget in front of a connection's reads (in a guarded stream).
#[derive(Debug)]
pub struct HeadGuard {
    budget: Arc<HeadBudget>,
    refusal: Refusal,
}

/// Where the answer to a head over its budget is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No head outgrew its budget.
    None,
    /// This many bytes of [`REFUSAL`] are written.
    Writing(usize),
    Flushing,
    /// Sending FIN.
    Closing,
    /// This many bytes the client still sent were discarded.
    Draining(usize),
    /// The request loop is to be told.
    Done,
    Told,
}

impl HeadGuard {
    /// Wraps `inner`; the returned budget is lifted until [`HeadBudget::start`].
    /// Refusals are counted in `refused`.
    pub fn wrap(inner: Stream, refused: IntCounter) -> (Stream, Arc<HeadBudget>) {
        let budget = Arc::new(HeadBudget::new(refused));
        let guard = HeadGuard {
            budget: budget.clone(),
            refusal: Refusal::None,
        };
        (Box::new(Guarded::new(inner, guard)), budget)
    }

    /// Answers the refusal and closes like NGINX's lingering close: write
    /// it, send FIN, then read and discard what the client was still sending
    /// (at most [`DRAIN_MAX`]) until it closes — closing with unread bytes
    /// would reset the connection and could destroy the answer in flight.
    /// Then tells the request loop, which drops the connection; the request
    /// loop's head deadline bounds all of it.
    fn poll_refuse(&mut self, inner: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let inner = Pin::new(&mut *inner);
            self.refusal = match self.refusal {
                Refusal::Writing(n) => match inner.poll_write(cx, &REFUSAL[n..]) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(w)) if w > 0 && n + w < REFUSAL.len() => Refusal::Writing(n + w),
                    Poll::Ready(Ok(w)) if w > 0 => Refusal::Flushing,
                    Poll::Ready(_) => Refusal::Done,
                },
                Refusal::Flushing => match inner.poll_flush(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => Refusal::Closing,
                    Poll::Ready(Err(_)) => Refusal::Done,
                },
                Refusal::Closing => match inner.poll_shutdown(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => Refusal::Draining(0),
                    Poll::Ready(Err(_)) => Refusal::Done,
                },
                Refusal::Draining(d) => {
                    let mut scratch = [0u8; 2048];
                    let mut sink = ReadBuf::new(&mut scratch);
                    match inner.poll_read(cx, &mut sink) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) if !sink.filled().is_empty() => {
                            let d = d + sink.filled().len();
                            if d > DRAIN_MAX {
                                Refusal::Done
                            } else {
                                Refusal::Draining(d)
                            }
                        }
                        Poll::Ready(_) => Refusal::Done,
                    }
                }
                Refusal::Done => {
                    self.refusal = Refusal::Told;
                    self.budget.spent.notify_one();
                    return Poll::Pending;
                }
                Refusal::Told | Refusal::None => return Poll::Pending,
            };
        }
    }
}

impl ReadGuard for HeadGuard {
    fn poll_read(
        &mut self,
        inner: &mut Stream,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let remaining = self.budget.remaining.load(Ordering::Acquire);
        if remaining == LIFTED {
            return Pin::new(inner).poll_read(cx, buf);
        }
        if remaining == 0 {
            if self.refusal == Refusal::None {
                self.refusal = Refusal::Writing(0);
                self.budget.refused.inc();
            }
            return self.poll_refuse(inner, cx);
        }
        // Read at most `remaining` bytes, into a bounded view of `buf`.
        let want = remaining.min(buf.remaining());
        let dst = buf.initialize_unfilled_to(want);
        let mut bounded = ReadBuf::new(dst);
        match Pin::new(inner).poll_read(cx, &mut bounded) {
            Poll::Ready(Ok(())) => {
                let n = bounded.filled().len();
                buf.advance(n);
                self.budget
                    .remaining
                    .store(remaining - n, Ordering::Release);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_refusal_is_well_formed() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), len);
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "request_header_too_large");
    }
}
