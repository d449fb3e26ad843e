//! An upstream that echoes every request back as JSON.
//!
//! Every request is answered `200` (unless overridden) with
//! `content-type: application/json` and a body like:
//!
//! ```json
//! {"method": "GET", "path": "/x/y", "query": "a=1",
//!  "headers": {"accept": ["*/*"]}, "body": "", "pad": ""}
//! ```
//!
//! Controls:
//! - `x-echo-delay-ms: N` header or `echo_delay_ms=N` query parameter: sleep
//!   `N` ms before answering.
//! - `x-echo-status: NNN` header: answer with that status (same JSON body).
//! - `echo_pad=N` query parameter: `pad` is `N` bytes of `x` (at most
//!   [`MAX_ECHO_PAD`]), for a large response.
//!
//! Every request is also recorded as an [`EchoRecord`] (method, request
//! target exactly as received, version, every header in order), readable
//! with [`EchoUpstream::recorded`]: tests that must know what reached the
//! upstream (the adversarial suite) inspect these records.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Map, Value};

use crate::server::{self, Handler, HandlerFuture, ServerHandle};

/// Maximum request body size echoed back (larger bodies are truncated).
pub const MAX_ECHO_BODY: usize = 1024 * 1024;

/// Largest `echo_pad=N` honoured: the answer carries a `pad` string of `N`
/// bytes, for tests that need a large response.
pub const MAX_ECHO_PAD: usize = 16 * 1024 * 1024;

/// A running echo upstream; dropping it stops the server.
pub struct EchoUpstream {
    state: Arc<EchoState>,
    server: ServerHandle,
}

#[derive(Default)]
struct EchoState {
    requests: AtomicUsize,
    recorded: Mutex<Vec<EchoRecord>>,
}

/// What the echo upstream received, recorded before the body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoRecord {
    /// The method exactly as sent (case preserved).
    pub method: String,
    /// The request target as received: the origin-form path and query
    /// verbatim (no decoding or normalisation), or the absolute-form URI.
    pub target: String,
    /// `HTTP/1.1`, `HTTP/1.0`, ...
    pub version: String,
    /// Every header in the order received; names lower-cased (as the HTTP
    /// parser delivers them), values lossily decoded as UTF-8.
    pub headers: Vec<(String, String)>,
}

impl EchoRecord {
    /// Values of every header named `name` (ASCII case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl EchoUpstream {
    /// Starts an echo upstream on a random loopback port.
    ///
    /// Panics if the server cannot be started (it binds port 0, so this
    /// should not happen).
    pub fn start() -> EchoUpstream {
        Self::start_on(server::loopback_any()).expect("starting echo upstream")
    }

    /// Starts an echo upstream on the given address.
    pub fn start_on(addr: SocketAddr) -> anyhow::Result<EchoUpstream> {
        let state = Arc::new(EchoState::default());
        let server = server::spawn_server("echo", addr, Arc::clone(&state))?;
        Ok(EchoUpstream { state, server })
    }

    /// Address the upstream listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Base URL of the upstream followed by `path` (`http://127.0.0.1:PORT{path}`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    /// Number of requests answered or in progress.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Every request received so far, in arrival order.
    pub fn recorded(&self) -> Vec<EchoRecord> {
        match self.state.recorded.lock() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl std::fmt::Debug for EchoUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoUpstream")
            .field("addr", &self.addr())
            .field("requests", &self.requests())
            .finish()
    }
}

impl Handler for EchoState {
    fn handle(self: Arc<Self>, req: Request<Incoming>) -> HandlerFuture {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let query = parts.uri.query().map(str::to_owned);
            let record = EchoRecord {
                method: parts.method.as_str().to_owned(),
                target: parts.uri.to_string(),
                version: format!("{:?}", parts.version),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
            };
            match self.recorded.lock() {
                Ok(mut r) => r.push(record),
                Err(poisoned) => poisoned.into_inner().push(record),
            }

            let mut headers = Map::new();
            for (name, value) in &parts.headers {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                match headers
                    .entry(name.as_str().to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    Value::Array(values) => values.push(Value::String(value)),
                    other => *other = Value::Array(vec![Value::String(value)]),
                }
            }

            let delay_ms = parts
                .headers
                .get("x-echo-delay-ms")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .or_else(|| server::query_param(query.as_deref(), "echo_delay_ms"))
                .and_then(|v| v.parse::<u64>().ok());
            let status = parts
                .headers
                .get("x-echo-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u16>().ok())
                .filter(|s| (200..=999).contains(s))
                .unwrap_or(200);

            let pad = server::query_param(query.as_deref(), "echo_pad")
                .and_then(|v| v.parse::<usize>().ok())
                .map_or(0, |n| n.min(MAX_ECHO_PAD));
            let body = server::read_body_capped(body, MAX_ECHO_BODY).await;

            if let Some(ms) = delay_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }

            let payload = json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": query,
                "headers": Value::Object(headers),
                "body": String::from_utf8_lossy(&body),
                "pad": "x".repeat(pad),
            });
            let bytes = serde_json::to_vec(&payload).unwrap_or_default();
            Ok(server::build_response(
                status,
                &[("content-type".to_owned(), "application/json".to_owned())],
                bytes,
            ))
        })
    }
}
