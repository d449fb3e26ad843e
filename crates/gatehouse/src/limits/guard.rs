//! A client connection's stream with a guard in front of its reads: the
//! byte budget of an unfinished HTTP/1 head ([`super::head::HeadGuard`]) or
//! the HTTP/2 frame meter ([`super::h2::FrameMeter`]). Everything else —
//! writes, TLS and socket facts Pingora asks for — goes to the stream as is.

use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::fmt::Debug;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What stands in front of a stream's reads.
pub(super) trait ReadGuard: Debug + Send + Sync + Unpin + 'static {
    /// Reads from `inner` into `buf`, or refuses to.
    fn poll_read(
        &mut self,
        inner: &mut Stream,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>>;

    /// `n` bytes were written to the client.
    fn wrote(&mut self, _n: usize) {}
}

/// A stream with a [`ReadGuard`] in front of its reads.
#[derive(Debug)]
pub(super) struct Guarded<G> {
    inner: Stream,
    guard: G,
}

impl<G: ReadGuard> Guarded<G> {
    /// `inner` behind `guard`.
    pub(super) fn new(inner: Stream, guard: G) -> Self {
        Self { inner, guard }
    }
}

impl<G: ReadGuard> AsyncRead for Guarded<G> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.guard.poll_read(&mut this.inner, cx, buf)
    }
}

impl<G: ReadGuard> AsyncWrite for Guarded<G> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.guard.wrote(n);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            this.guard.wrote(n);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl<G: ReadGuard> Shutdown for Guarded<G> {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl<G: ReadGuard> UniqueID for Guarded<G> {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl<G: ReadGuard> Ssl for Guarded<G> {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl<G: ReadGuard> GetTimingDigest for Guarded<G> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl<G: ReadGuard> GetProxyDigest for Guarded<G> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl<G: ReadGuard> GetSocketDigest for Guarded<G> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait::async_trait]
impl<G: ReadGuard> Peek for Guarded<G> {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
