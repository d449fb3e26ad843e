//! Shared plumbing for the in-process test servers: each server owns a
//! dedicated multi-thread tokio runtime running inside a plain `std::thread`,
//! so servers can be started from synchronous tests and from inside other
//! runtimes alike.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

/// Response type produced by every test server.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// Error returned by a handler to make hyper drop the connection without
/// writing any response.
#[derive(Debug)]
pub(crate) struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed deliberately by test server")
    }
}

impl std::error::Error for CloseConnection {}

/// Boxed future returned by [`Handler::handle`].
pub(crate) type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<HttpResponse, CloseConnection>> + Send>>;

/// Behaviour of one test server.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Called for every accepted connection; returning `false` closes it at once.
    fn accept_connection(&self) -> bool {
        true
    }

    /// Answers one request.
    fn handle(self: Arc<Self>, req: Request<Incoming>) -> HandlerFuture;
}

/// Handle to a running server; dropping it stops the server.
pub(crate) struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            // The server thread shuts its runtime down with a bounded timeout,
            // so joining cannot hang for long.
            let _ = thread.join();
        }
    }
}

/// Starts `handler` on `addr` (must be a loopback address; port 0 picks a
/// free port). Returns once the listener is bound.
pub(crate) fn spawn_server<H: Handler>(
    name: &str,
    addr: SocketAddr,
    handler: Arc<H>,
) -> anyhow::Result<ServerHandle> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<SocketAddr>>();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let thread_name = format!("testkit-{name}");
    let thread = std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(thread_name)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::anyhow!("building runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("binding {addr}: {e}")));
                        return;
                    }
                };
                let bound = match listener.local_addr() {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("local_addr: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(bound));
                accept_loop(listener, handler, shutdown_rx).await;
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
    match ready_rx.recv() {
        Ok(Ok(bound)) => Ok(ServerHandle {
            addr: bound,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(anyhow::anyhow!("test server thread exited before binding"))
        }
    }
}

async fn accept_loop<H: Handler>(
    listener: tokio::net::TcpListener,
    handler: Arc<H>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                // Transient accept errors (e.g. EMFILE): back off briefly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if !handler.accept_connection() {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| Arc::clone(&handler).handle(req));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Reads a request body completely, keeping at most `cap` bytes (the rest is
/// drained and discarded so the connection stays usable).
pub(crate) async fn read_body_capped(body: Incoming, cap: usize) -> Vec<u8> {
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            let room = cap.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    out
}

/// Builds a response, falling back to a plain 500 if a status or header is
/// invalid.
pub(crate) fn build_response(
    status: u16,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> HttpResponse {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|e| {
            let mut resp = Response::new(Full::new(Bytes::from(format!(
                "testkit: invalid mock response: {e}"
            ))));
            *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            resp
        })
}

/// Parses `key=value` pairs out of a raw query string (no percent-decoding).
pub(crate) fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// Default loopback address with a random port.
pub(crate) fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
