//! A budget of cheap HTTP/2 frames per connection.
//!
//! The `h2` crate answers every PING and SETTINGS and applies every
//! WINDOW_UPDATE, PRIORITY and RST_STREAM a client sends, with no limit: a
//! flood of 100 000 PINGs was answered in full, each costing a read, a
//! parse and a write (CPU, and the answers' bandwidth). Like Envoy's flood
//! limits, a [`FrameMeter`] in front of an HTTP/2 connection's reads counts
//! the frames that ask for work but carry no request — PING, SETTINGS,
//! WINDOW_UPDATE, PRIORITY, RST_STREAM, PUSH_PROMISE, DATA that is empty
//! and does not end its stream, and frame types HTTP/2 does not define
//! (ignored by `h2`) — and closes the connection once they exceed
//! [`BASE`] plus [`PER_STREAM`] for each stream the client opened, one per
//! KiB Gatehouse wrote to it (flow-control updates follow what a client
//! receives) and [`PER_SECOND`] of the connection's age.
//!
//! Only frame headers are read: the meter parses nine bytes per frame and
//! skips payloads, never buffering anything.

use super::guard::{Guarded, ReadGuard};
use pingora::protocols::Stream;
use prometheus::IntCounter;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, ReadBuf};

/// Cheap frames any connection may send.
pub const BASE: u64 = 1_000;
/// Cheap frames allowed per stream the client opened (HEADERS frames).
pub const PER_STREAM: u64 = 100;
/// Cheap frames allowed per second of the connection's life.
pub const PER_SECOND: u64 = 10;
/// Bytes written to the client per cheap frame allowed.
pub const BYTES_PER_FRAME: u64 = 1024;

/// The client connection preface (RFC 9113 §3.4) comes before any frame.
const PREFACE_LEN: usize = 24;

/// Counts a client's HTTP/2 frames as they are read.
#[derive(Debug)]
pub struct FrameMeter {
    /// Preface bytes still to pass.
    preface: usize,
    /// The frame header being read, and how much of it is in.
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    cheap: u64,
    streams: u64,
    written: u64,
    started: Instant,
    flooded: Option<IntCounter>,
    over: bool,
}

impl FrameMeter {
    /// A meter for a connection whose preface is still unread; floods are
    /// counted in `flooded`.
    pub fn new(flooded: Option<IntCounter>) -> Self {
        Self {
            preface: PREFACE_LEN,
            header: [0; 9],
            have: 0,
            skip: 0,
            cheap: 0,
            streams: 0,
            written: 0,
            started: Instant::now(),
            flooded,
            over: false,
        }
    }

    /// `inner` (an HTTP/2 connection before its preface is read) behind a meter.
    pub fn wrap(inner: Stream, flooded: IntCounter) -> Stream {
        Box::new(Guarded::new(inner, Self::new(Some(flooded))))
    }

    /// Counts the frames in `data` (the next bytes the client sent);
    /// `true` once the cheap ones are over the budget.
    pub fn meter(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(data.len());
                self.preface -= n;
                data = &data[n..];
            } else if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
            } else {
                let n = (9 - self.have).min(data.len());
                self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == 9 {
                    self.have = 0;
                    self.frame();
                }
            }
        }
        self.cheap > BASE && self.cheap > self.allowance()
    }

    fn frame(&mut self) {
        let [l0, l1, l2, kind, flags, ..] = self.header;
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        self.skip = len;
        const END_STREAM: u8 = 0x1;
        match kind {
            // HEADERS opens (or, with trailers, ends) a stream.
            0x1 => self.streams += 1,
            // DATA with a payload, or ending its stream; CONTINUATION
            // belongs to a HEADERS the `h2` crate bounds itself.
            0x0 if len > 0 || flags & END_STREAM != 0 => {}
            0x9 => {}
            _ => self.cheap += 1,
        }
    }

    /// Cheap frames this connection may have sent by now.
    fn allowance(&self) -> u64 {
        let age = self.started.elapsed().as_secs();
        BASE.saturating_add(self.streams.saturating_mul(PER_STREAM))
            .saturating_add(self.written / BYTES_PER_FRAME)
            .saturating_add(age.saturating_mul(PER_SECOND))
    }
}

impl ReadGuard for FrameMeter {
    fn poll_read(
        &mut self,
        inner: &mut Stream,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.over {
            return Poll::Ready(Err(flood()));
        }
        let before = buf.filled().len();
        match Pin::new(inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if self.meter(&buf.filled()[before..]) {
                    self.over = true;
                    if let Some(c) = &self.flooded {
                        c.inc();
                    }
                    tracing::debug!(
                        cheap = self.cheap,
                        streams = self.streams,
                        "closed an HTTP/2 connection that sent more control frames than its budget"
                    );
                    return Poll::Ready(Err(flood()));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn wrote(&mut self, n: usize) {
        self.written = self.written.saturating_add(n as u64);
    }
}

fn flood() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "HTTP/2 connection closed: more control frames than its budget",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: usize) -> Vec<u8> {
        let len = (payload as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 1];
        f.resize(9 + payload, 0);
        f
    }

    fn preface() -> Vec<u8> {
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()
    }

    #[test]
    fn a_ping_flood_is_over_the_budget_and_requests_are_not() {
        let mut m = FrameMeter::new(None);
        assert!(!m.meter(&preface()));
        assert!(!m.meter(&frame(0x4, 0, 6)));
        // 500 requests, each HEADERS (+ an empty END_STREAM DATA) and a
        // WINDOW_UPDATE: no cheap-frame problem.
        for _ in 0..500 {
            assert!(!m.meter(&frame(0x1, 0x4, 40)));
            assert!(!m.meter(&frame(0x0, 0x1, 0)));
            assert!(!m.meter(&frame(0x8, 0, 4)));
        }
        assert_eq!(m.streams, 500);
        let mut m = FrameMeter::new(None);
        m.meter(&preface());
        let pings: Vec<u8> = (0..BASE + 1).flat_map(|_| frame(0x6, 0, 8)).collect();
        assert!(m.meter(&pings), "{} PINGs", BASE + 1);
    }

    #[test]
    fn frames_split_across_reads_byte_by_byte_are_counted() {
        let mut m = FrameMeter::new(None);
        let mut bytes = preface();
        for _ in 0..10 {
            bytes.extend(frame(0x8, 0, 4));
            bytes.extend(frame(0x0, 0, 0));
            bytes.extend(frame(0x0, 0, 3));
            bytes.extend(frame(0xfa, 0, 7));
        }
        for b in &bytes {
            assert!(!m.meter(std::slice::from_ref(b)));
        }
        assert_eq!(m.cheap, 30);
        assert_eq!((m.have, m.skip, m.preface), (0, 0, 0));
    }

    proptest::proptest! {
        /// Hostile bytes, cut anywhere: never a panic, and the count does
        /// not depend on how the reads were cut.
        #[test]
        fn any_bytes_cut_anywhere_count_the_same(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096),
            cuts in proptest::collection::vec(0usize..4096, 0..16),
        ) {
            let mut whole = FrameMeter::new(None);
            whole.meter(&bytes);
            let mut cut = FrameMeter::new(None);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            points.sort_unstable();
            let mut from = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                cut.meter(&bytes[from..p]);
                from = p;
            }
            proptest::prop_assert_eq!(
                (whole.cheap, whole.streams, whole.skip, whole.have, whole.preface),
                (cut.cheap, cut.streams, cut.skip, cut.have, cut.preface)
            );
        }
    }

    #[test]
    fn what_was_written_and_time_raise_the_budget() {
        let mut m = FrameMeter::new(None);
        m.meter(&preface());
        m.wrote(4 * 1024 * 1024);
        let updates: Vec<u8> = (0..3_000).flat_map(|_| frame(0x8, 0, 4)).collect();
        assert!(!m.meter(&updates), "WINDOW_UPDATEs for 4 MiB received");
    }
}
