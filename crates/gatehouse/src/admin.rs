//! The admin listener: `/metrics`, `/healthz`, `/readyz`.

use crate::state::State;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, TextEncoder};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// Answers one admin request.
pub fn handle(state: &State, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    match path {
        "/metrics" => {
            crate::tls::refresh_expiry(state);
            let mut buf = Vec::with_capacity(16 * 1024);
            let enc = TextEncoder::new();
            match enc.encode(&state.metrics.registry.gather(), &mut buf) {
                Ok(()) => {
                    #[cfg(feature = "alloc-count")]
                    crate::alloc_count::render(&mut buf);
                    reply(StatusCode::OK, "text/plain; version=0.0.4", buf)
                }
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("encoding failed: {e}\n"),
                ),
            }
        }
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            let generation = state.current().generation;
            if !state.is_started() {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    format!("{{\"status\":\"starting\",\"generation\":{generation}}}\n"),
                )
            } else if state.is_shutting_down() {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    format!("{{\"status\":\"shutting_down\",\"generation\":{generation}}}\n"),
                )
            } else if let Some((open, limit)) = crate::limits::fd_exhausted() {
                // Accepting needs descriptors: a process this close to its
                // limit soon fails to take connections (or its upstreams).
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    format!(
                        "{{\"status\":\"not_ready\",\"reason\":\"file descriptors nearly exhausted: {open} open of {limit}\",\"open_fds\":{open},\"fd_limit\":{limit},\"generation\":{generation}}}\n"
                    ),
                )
            } else {
                reply(
                    StatusCode::OK,
                    "application/json",
                    format!("{{\"status\":\"ready\",\"generation\":{generation}}}\n"),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found (try /metrics, /healthz, /readyz)\n",
        ),
    }
}

/// Binds the admin listener (errors surface at start-up).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves admin requests until the process exits. It keeps answering while
/// the proxy drains, so `/readyz` can say 503.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                let resp = handle(&state, req.method(), req.uri().path());
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
