//! Limits against hostile clients that live below the proxy hooks: the
//! connection cap and the per-connection timeouts (a [`ServerApp`] around
//! Pingora's `HttpProxy`), the request-head size, and the process's file
//! descriptors (the limit raised at start-up, the count `/readyz` watches).
//!
//! Why a wrapper: Pingora 0.9 has no connection cap, reads the first request
//! head of an HTTP/1 connection with a fixed 60 s timeout, lets a keep-alive
//! connection idle forever once it served a request (the request's own
//! keep-alive turns the timeout into "infinite"), and on `h2c` listeners
//! waits without any timeout for the 24 bytes that tell HTTP/2 from
//! HTTP/1.1. [`Gate::process_new`] is called once per accepted connection
//! (after the TLS handshake), so it can count connections and run the
//! HTTP/1 keep-alive loop itself: with our timeouts, nothing built for a
//! request before its first byte, and the head's byte budget
//! ([`head::HeadGuard`]). HTTP/2 connections are handed to Pingora behind
//! the control-frame budget ([`h2::FrameMeter`]). The loop assumes
//! Pingora's HTTP/1.1 pipelining stays off (its default, never enabled
//! here): with pipelined bytes carried over, the first-byte wait would
//! wait for bytes already read.

use crate::state::State;
use async_trait::async_trait;
use gatehouse_config::limits::{derived_max_connections, whole_seconds};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::{HttpProxy, ProxyHttp};
use pingora::server::ShutdownWatch;
use prometheus::{IntCounter, IntGauge};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod guard;
pub mod h2;
pub mod head;
pub mod streams;
pub mod tls;
use head::{HeadBudget, HeadGuard};

/// RFC 9113 §3.4: what an HTTP/2 client sends first.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The descriptor limits in force after start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// Soft limit found at start.
    pub soft_before: u64,
    /// Soft limit now (raised to `hard` when it was lower).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Raises `RLIMIT_NOFILE`'s soft limit to the hard limit and logs both.
pub fn raise_fd_limit() -> Option<FdLimit> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft_before, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot read the file descriptor limit: {e}");
            return None;
        }
    };
    let mut soft = soft_before;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => soft = hard,
            Err(e) => tracing::warn!(
                soft_before,
                hard,
                "cannot raise the file descriptor limit to the hard limit: {e}"
            ),
        }
    }
    tracing::info!(
        soft,
        hard,
        soft_before,
        "file descriptor limit: {soft} (hard limit {hard}, was {soft_before})"
    );
    Some(FdLimit {
        soft_before,
        soft,
        hard,
    })
}

/// The soft descriptor limit now in force.
pub fn fd_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Descriptors this process has open (entries of `/proc/self/fd`).
pub fn open_fds() -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory handle itself is one of the entries.
    Some((dir.count() as u64).saturating_sub(1))
}

/// How many descriptors short of the limit `/readyz` already says 503:
/// 1/64 of the limit, at least 16 (accept needs one, its upstream another).
pub fn fd_margin(limit: u64) -> u64 {
    (limit / 64).max(16)
}

/// `Some((open, limit))` when the process is within [`fd_margin`] of its
/// descriptor limit and may soon fail to accept.
pub fn fd_exhausted() -> Option<(u64, u64)> {
    let limit = fd_limit()?;
    let open = open_fds()?;
    (open + fd_margin(limit) >= limit).then_some((open, limit))
}

/// The size of a request head as HTTP/1.1 spells it: request line
/// (`METHOD target HTTP/1.1\r\n`) plus `name: value\r\n` per header; for an
/// HTTP/2 request the target is the authority and path, and the pseudo
/// headers count as that request line.
pub fn head_size(req: &RequestHeader) -> usize {
    let authority = if req.version == http::Version::HTTP_2 {
        req.uri.authority().map_or(0, |a| a.as_str().len())
    } else {
        0
    };
    let line = req.method.as_str().len() + 1 + authority + req.raw_path().len() + 11;
    req.headers
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// `Some(size)` when `req`'s head is larger than `max` bytes.
pub fn head_over(req: &RequestHeader, max: usize) -> Option<usize> {
    let size = head_size(req);
    (size > max).then_some(size)
}

/// Counts open client connections and refuses those over the cap.
pub struct Connections {
    open: AtomicUsize,
    gauge: IntGauge,
    refused: IntCounter,
}

/// One admitted connection; dropping it frees the place.
pub struct Slot<'a>(&'a Connections);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

impl Connections {
    /// A counter reporting to `gauge` and `refused`.
    pub fn new(gauge: IntGauge, refused: IntCounter) -> Self {
        Self {
            open: AtomicUsize::new(0),
            gauge,
            refused,
        }
    }

    /// A place for one more connection, or `None` (counted) when `cap` are open.
    pub fn admit(&self, cap: usize) -> Option<Slot<'_>> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.gauge.inc();
            Some(Slot(self))
        } else {
            self.refused.inc();
            None
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// The proxy service's application: Pingora's `HttpProxy` of `P` (the
/// proxy, `GatehouseProxy`) behind the connection cap, with our HTTP/1
/// timeouts. Generic so this module does not depend on the proxy, whose
/// first hook calls [`head_read`].
pub struct Gate<P> {
    proxy: Arc<HttpProxy<P>>,
    state: Arc<State>,
    connections: Arc<Connections>,
    /// The cap when `server.max_connections` is not set.
    derived_cap: usize,
    h2c: bool,
}

/// The per-connection values, copied out of the snapshot at accept so a
/// connection never pins an old snapshot.
struct ConnLimits {
    cap: usize,
    first_head: Duration,
    idle_secs: u64,
    body: Duration,
    write: Duration,
    min_send_rate: usize,
    /// Bytes an unfinished head may take (the limit plus [`head::SLACK`]).
    head_budget: usize,
    /// `SO_SNDBUF` of the connection (`server.send_buffer_bytes`).
    send_buffer: Option<usize>,
}

impl<P> Gate<P> {
    /// Wraps `proxy`; `fd_limit` (the soft limit after start-up) derives the
    /// default cap.
    pub fn new(proxy: HttpProxy<P>, state: Arc<State>, fd_limit: Option<u64>, h2c: bool) -> Self {
        let connections = Arc::new(Connections::new(
            state.metrics.connections_open.clone(),
            state.metrics.connections_refused.clone(),
        ));
        let derived_cap = derived_max_connections(fd_limit.unwrap_or(1024));
        Self {
            proxy: Arc::new(proxy),
            state,
            connections,
            derived_cap,
            h2c,
        }
    }

    /// The pre-TLS hook sharing this gate's connection count.
    pub fn tls_gate(&self, fd_limit: Option<u64>) -> tls::TlsGate {
        tls::TlsGate::new(self.state.clone(), self.connections.clone(), fd_limit)
    }

    /// The connection cap now in force.
    pub fn cap(&self) -> usize {
        self.state
            .current()
            .config
            .server
            .max_connections
            .unwrap_or(self.derived_cap)
    }

    fn limits(&self) -> ConnLimits {
        let snapshot = self.state.current();
        let s = &snapshot.config.server;
        ConnLimits {
            cap: s.max_connections.unwrap_or(self.derived_cap),
            first_head: s.request_header_timeout.get(),
            idle_secs: whole_seconds(s.idle_timeout.get()),
            body: s.request_body_timeout.get(),
            write: s.response_write_timeout.get(),
            min_send_rate: usize::try_from(s.response_min_send_rate).unwrap_or(usize::MAX),
            head_budget: s.max_request_header_bytes.saturating_add(head::SLACK),
            send_buffer: s.send_buffer_bytes,
        }
    }

    /// Whether `stream` speaks HTTP/2; `None`: closed, or silent for the
    /// whole head timeout on an `h2c` listener.
    async fn is_h2(&self, stream: &mut Stream, wait: Duration) -> Option<bool> {
        if stream.get_ssl_digest().is_some() {
            return Some(matches!(stream.selected_alpn_proto(), Some(ALPN::H2)));
        }
        if !self.h2c {
            return Some(false);
        }
        let mut buf = [0u8; H2_PREFACE.len()];
        match tokio::time::timeout(wait, stream.try_peek(&mut buf)).await {
            Ok(Ok(true)) => Some(&buf == H2_PREFACE),
            Ok(Ok(false)) => Some(false),
            Ok(Err(_)) => None,
            Err(_) => {
                tracing::debug!("closed a connection that sent no request within {wait:?}");
                None
            }
        }
    }

    fn h1_session(stream: Stream, l: &ConnLimits) -> ServerSession {
        let mut session = ServerSession::new_http1(stream);
        session.set_read_timeout(Some(l.body));
        session.set_write_timeout(Some(l.write));
        session.set_min_send_rate((l.min_send_rate > 0).then_some(l.min_send_rate));
        session
    }
}

#[async_trait]
impl<P> ServerApp for Gate<P>
where
    P: ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let l = self.limits();
        let _slot = self.connections.admit(l.cap)?;
        let accepted = Instant::now();
        if let Some(n) = l.send_buffer {
            // A TCP stream's id is its descriptor (TLS streams report the
            // one below them).
            if let Err(e) = pingora::protocols::l4::ext::set_snd_buf(stream.id(), n) {
                tracing::debug!(error = %e, "SO_SNDBUF not set");
            }
        }
        if self.is_h2(&mut stream, l.first_head).await? {
            // Pingora's own HTTP/2 path (h2_idle_timeout, stream limits),
            // behind the control-frame budget.
            let stream = h2::FrameMeter::wrap(stream, self.state.metrics.h2_floods.clone());
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }
        // Pingora's HTTP/1 keep-alive loop (apps/mod.rs), with our bounds:
        // - nothing is built for a request (session, Pingora's 14 KiB request
        //   future, the head buffer) before its first byte arrives, so an
        //   idle connection holds little more than its socket;
        // - the whole first head must be complete within
        //   `request_header_timeout` of the accept, each later one within
        //   `idle_timeout` of the previous answer — a deadline, not a per-read
        //   timeout, so a client trickling one byte at a time is closed too;
        // - an unfinished head may take `max_request_header_bytes` (plus
        //   slack) of memory, not Pingora's 1 MiB ([`HeadGuard`]).
        let refused = self.state.metrics.request_heads_refused.clone();
        let (mut stream, budget) = HeadGuard::wrap(stream, refused);
        let mut deadline = accepted + l.first_head;
        let mut later: Option<Option<HttpPersistentSettings>> = None;
        loop {
            match Self::first_byte(&mut stream, deadline, shutdown).await {
                FirstByte::Arrived => {}
                FirstByte::Closed => return None,
                FirstByte::Silent => {
                    if later.is_none() {
                        // A first request that never started: a silent client.
                        self.state.metrics.heads_timed_out.inc();
                    }
                    return None;
                }
            }
            let mut session = Self::h1_session(stream, &l);
            match later {
                None => {
                    let first = (!*shutdown.borrow()).then(|| whole_seconds(l.first_head));
                    session.set_keepalive(first);
                }
                Some(settings) => {
                    if let Some(settings) = settings {
                        settings.apply_to_session(&mut session);
                    }
                    if session.get_keepalive().is_some() {
                        session.set_keepalive(Some(l.idle_secs));
                    }
                }
            }
            budget.start(l.head_budget);
            // Boxed: its state (the session, timers) exists only while a
            // request does, not in every idle connection's future.
            let (next, settings) = Box::pin(self.serve_one(session, shutdown, deadline, &budget))
                .await?
                .consume();
            stream = next;
            later = Some(settings);
            deadline = Instant::now() + Duration::from_secs(l.idle_secs);
        }
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.proxy.as_ref()).await;
    }
}

/// Handed to a request through its session: the proxy's first hook
/// ([`head_read`]) lifts the head budget and notifies the request loop once
/// the request head has been read.
struct HeadSignal {
    read: Arc<tokio::sync::Notify>,
    budget: Arc<HeadBudget>,
}

/// Called from the proxy's first hook: the head of this request is complete,
/// so its deadline and byte budget no longer apply.
pub fn head_read(session: &mut pingora::proxy::Session) {
    if let Some(ctx) = session.take_connection_user_context() {
        if let Ok(signal) = ctx.downcast::<HeadSignal>() {
            signal.budget.lift();
            signal.read.notify_one();
        }
    }
}

/// What became of the wait for a request's first byte.
enum FirstByte {
    Arrived,
    /// Closed by the client, or the server is shutting down.
    Closed,
    /// Nothing arrived before the deadline.
    Silent,
}

impl<P> Gate<P>
where
    P: ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    /// Waits for the first byte of the next request (without consuming it).
    /// Streams that cannot peek (TLS) answer at once: their request is
    /// served as before, with the same deadline.
    async fn first_byte(
        stream: &mut Stream,
        deadline: Instant,
        shutdown: &ShutdownWatch,
    ) -> FirstByte {
        let mut byte = [0u8; 1];
        if *shutdown.borrow() {
            // Shutting down: serve a request that is already here (tokio's
            // timeout polls the peek once before it looks at the clock),
            // close an idle connection.
            return match tokio::time::timeout(Duration::ZERO, stream.try_peek(&mut byte)).await {
                Ok(Ok(_)) => FirstByte::Arrived,
                _ => FirstByte::Closed,
            };
        }
        let mut shutdown = shutdown.clone();
        tokio::select! {
            biased;
            peeked = tokio::time::timeout_at(deadline.into(), stream.try_peek(&mut byte)) => match peeked {
                Ok(Ok(_)) => FirstByte::Arrived,
                Ok(Err(_)) => FirstByte::Closed,
                Err(_) => FirstByte::Silent,
            },
            _ = shutdown.changed() => FirstByte::Closed,
        }
    }

    /// Serves one request of an HTTP/1 connection; the connection is closed
    /// (`None`) when its head is not complete by `deadline`, or when it
    /// outgrew its byte budget (answered 431 by the [`HeadGuard`]).
    async fn serve_one(
        &self,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
        deadline: Instant,
        budget: &Arc<HeadBudget>,
    ) -> Option<ReusedHttpStream> {
        let read = Arc::new(tokio::sync::Notify::new());
        session.set_connection_user_context(Some(Box::new(HeadSignal {
            read: read.clone(),
            budget: budget.clone(),
        })));
        let serve = self.proxy.process_new_http(session, shutdown);
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => result,
            () = budget.spent() => {
                tracing::debug!("closed a connection whose unfinished request head outgrew its budget");
                None
            }
            late = tokio::time::timeout_at(deadline.into(), read.notified()) => match late {
                // The head arrived in time: the request runs to its end.
                Ok(()) => serve.await,
                Err(_) => {
                    self.state.metrics.heads_timed_out.inc();
                    tracing::debug!("closed a connection whose request head was not complete in time");
                    None
                }
            },
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.connections.open()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn head_size_counts_the_http1_spelling() {
        let mut req = RequestHeader::build("GET", b"/a?b=c", None).unwrap();
        req.insert_header("host", "example.com").unwrap();
        req.insert_header("x-y", "z").unwrap();
        // "GET /a?b=c HTTP/1.1\r\n" + "host: example.com\r\n" + "x-y: z\r\n"
        assert_eq!(head_size(&req), 21 + 19 + 8);
    }

    #[test]
    fn connections_over_the_cap_are_refused_and_places_come_back() {
        let c = Connections::new(
            IntGauge::new("g", "g").unwrap(),
            IntCounter::new("r", "r").unwrap(),
        );
        let a = c.admit(2).unwrap();
        let _b = c.admit(2).unwrap();
        assert!(c.admit(2).is_none());
        assert_eq!(c.refused.get(), 1);
        drop(a);
        assert!(c.admit(2).is_some());
        assert_eq!(c.gauge.get(), 1);
    }

    #[test]
    fn the_fd_margin_is_small() {
        assert_eq!(fd_margin(1024), 16);
        assert_eq!(fd_margin(65536), 1024);
        assert!(open_fds().unwrap() > 2);
    }
}
