//! A programmable mock HTTP server, used as a fake identity provider
//! (token introspection endpoints, JWKS, userinfo, ...).
//!
//! Routes are matched on the exact method (case-sensitive) and the exact path
//! (without the query string). Unknown routes are answered
//! `404 {"error":"not_found"}`. Every request is recorded and counted per
//! path, whether it was routed, unknown or dropped because the server is
//! [down](MockIdp::set_down).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;

use crate::server::{self, CloseConnection, Handler, HandlerFuture, ServerHandle};

/// Maximum request body size recorded (larger bodies are truncated).
pub const MAX_IDP_BODY: usize = 1024 * 1024;

/// Maximum number of requests remembered per path (oldest are dropped first;
/// counters keep counting).
pub const MAX_RECORDED_PER_PATH: usize = 10_000;

/// A canned response of the mock server.
#[derive(Clone, Debug)]
pub struct MockResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
    /// Latency added before answering (on top of [`MockIdp::set_delay`]).
    pub delay: Option<Duration>,
}

impl MockResponse {
    /// A JSON response (`content-type: application/json`).
    pub fn json(status: u16, value: serde_json::Value) -> MockResponse {
        MockResponse {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: serde_json::to_vec(&value).unwrap_or_default(),
            delay: None,
        }
    }

    /// A plain-text response (`content-type: text/plain; charset=utf-8`).
    pub fn text(status: u16, body: &str) -> MockResponse {
        MockResponse {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "text/plain; charset=utf-8".to_owned(),
            )],
            body: body.as_bytes().to_vec(),
            delay: None,
        }
    }

    /// A response with the given status and an empty body.
    pub fn status(status: u16) -> MockResponse {
        MockResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Delays this response by `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// A request received by the mock server.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Request method, e.g. `POST`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Request body (at most [`MAX_IDP_BODY`] bytes).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8 text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Decoded `application/x-www-form-urlencoded` body parameter `name`.
    pub fn form_param(&self, name: &str) -> Option<String> {
        let body = String::from_utf8_lossy(&self.body);
        body.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k) == name).then(|| form_decode(v))
        })
    }
}

/// Decodes `+` and `%XX` escapes of a form-urlencoded component.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

type ResponseFn = dyn Fn(&RecordedRequest) -> MockResponse + Send + Sync + 'static;

#[derive(Clone)]
enum Route {
    Fixed(MockResponse),
    Computed(Arc<ResponseFn>),
}

#[derive(Default)]
struct PathRecord {
    count: usize,
    requests: VecDeque<RecordedRequest>,
}

#[derive(Default)]
struct IdpState {
    routes: Mutex<HashMap<(String, String), Route>>,
    records: Mutex<HashMap<String, PathRecord>>,
    total: AtomicUsize,
    delay: Mutex<Option<Duration>>,
    down: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking route closure must not wedge the whole mock.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running mock identity provider; dropping it stops the server.
pub struct MockIdp {
    state: Arc<IdpState>,
    server: ServerHandle,
}

impl MockIdp {
    /// Starts the mock on a random loopback port.
    ///
    /// Panics if the server cannot be started.
    pub fn start() -> MockIdp {
        Self::start_on(server::loopback_any()).expect("starting mock IdP")
    }

    /// Starts the mock on the given address.
    pub fn start_on(addr: SocketAddr) -> anyhow::Result<MockIdp> {
        let state = Arc::new(IdpState::default());
        let server = server::spawn_server("mock-idp", addr, Arc::clone(&state))?;
        Ok(MockIdp { state, server })
    }

    /// Like [`start_on`](Self::start_on), but [down](Self::set_down) from the
    /// first connection on, so routes can be registered before anything is
    /// answered (a restarted mock never answers 404 to a racing client).
    pub fn start_down_on(addr: SocketAddr) -> anyhow::Result<MockIdp> {
        let state = Arc::new(IdpState::default());
        state.down.store(true, Ordering::SeqCst);
        let server = server::spawn_server("mock-idp", addr, Arc::clone(&state))?;
        Ok(MockIdp { state, server })
    }

    /// Address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    /// Answers `method path` with a fixed response, replacing any previous
    /// handler for that route.
    pub fn route(&self, method: &str, path: &str, resp: MockResponse) {
        lock(&self.state.routes).insert((method.to_owned(), path.to_owned()), Route::Fixed(resp));
    }

    /// Answers `method path` with a response computed from the request,
    /// replacing any previous handler for that route.
    pub fn route_fn(
        &self,
        method: &str,
        path: &str,
        f: impl Fn(&RecordedRequest) -> MockResponse + Send + Sync + 'static,
    ) {
        lock(&self.state.routes).insert(
            (method.to_owned(), path.to_owned()),
            Route::Computed(Arc::new(f)),
        );
    }

    /// Removes the handler for `method path` (it will answer 404 again).
    pub fn unroute(&self, method: &str, path: &str) {
        lock(&self.state.routes).remove(&(method.to_owned(), path.to_owned()));
    }

    /// Number of requests received for `path` (any method, any outcome).
    pub fn calls(&self, path: &str) -> usize {
        lock(&self.state.records).get(path).map_or(0, |r| r.count)
    }

    /// Number of requests received in total.
    pub fn total_calls(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Requests recorded for `path`, in arrival order (at most
    /// [`MAX_RECORDED_PER_PATH`], the most recent ones).
    pub fn requests(&self, path: &str) -> Vec<RecordedRequest> {
        lock(&self.state.records)
            .get(path)
            .map(|r| r.requests.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Clears all counters and recorded requests (routes are kept).
    pub fn reset_counters(&self) {
        let mut records = lock(&self.state.records);
        records.clear();
        self.state.total.store(0, Ordering::SeqCst);
    }

    /// Extra latency added to every response (`None` to disable).
    pub fn set_delay(&self, d: Option<Duration>) {
        *lock(&self.state.delay) = d;
    }

    /// While down, new connections are closed immediately and requests on
    /// existing connections are answered by closing the connection without
    /// a response.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for MockIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockIdp")
            .field("addr", &self.addr())
            .field("total_calls", &self.total_calls())
            .finish()
    }
}

impl IdpState {
    fn record(&self, req: &RecordedRequest) {
        let mut records = lock(&self.records);
        let entry = records.entry(req.path.clone()).or_default();
        entry.count += 1;
        if entry.requests.len() >= MAX_RECORDED_PER_PATH {
            entry.requests.pop_front();
        }
        entry.requests.push_back(req.clone());
        self.total.fetch_add(1, Ordering::SeqCst);
    }
}

impl Handler for IdpState {
    fn accept_connection(&self) -> bool {
        !self.down.load(Ordering::SeqCst)
    }

    fn handle(self: Arc<Self>, req: Request<Incoming>) -> HandlerFuture {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = server::read_body_capped(body, MAX_IDP_BODY).await;
            let recorded = RecordedRequest {
                method: parts.method.as_str().to_owned(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
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
                body,
            };
            self.record(&recorded);

            if self.down.load(Ordering::SeqCst) {
                return Err(CloseConnection);
            }

            let route = lock(&self.routes)
                .get(&(recorded.method.clone(), recorded.path.clone()))
                .cloned();
            let resp = match route {
                Some(Route::Fixed(resp)) => resp,
                Some(Route::Computed(f)) => f(&recorded),
                None => MockResponse::json(404, serde_json::json!({"error": "not_found"})),
            };

            let extra = *lock(&self.delay);
            let total_delay = extra.unwrap_or_default() + resp.delay.unwrap_or_default();
            if !total_delay.is_zero() {
                tokio::time::sleep(total_delay).await;
            }
            Ok(server::build_response(
                resp.status,
                &resp.headers,
                resp.body,
            ))
        })
    }
}
