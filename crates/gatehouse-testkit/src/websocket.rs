//! A WebSocket echo upstream, two lying "upgrade" upstreams, and a blocking
//! WebSocket client, for the tests of Gatehouse's connection upgrades.
//!
//! [`WsEcho::start`] runs a real WebSocket server on a free `127.0.0.1`
//! port (its own tokio runtime in a background thread; dropping the handle
//! stops it). It records every request head it reads, as sent (path and
//! headers, names in their original case, duplicates kept, in order) as a
//! [`WsHandshake`], answers a valid RFC 6455 handshake with `101` (echoing
//! the first offered `Sec-WebSocket-Protocol`, if any) and then echoes every
//! text and binary message back (pings are answered, a close is returned).
//! A request that is not a WebSocket handshake is answered `400`, one with a
//! `Sec-WebSocket-Version` other than `13` is answered `426`, and the
//! connection is closed.
//!
//! [`WsEcho::start_liar`] runs a server that answers *any* request with a
//! `101` that a client must not take for a WebSocket handshake
//! ([`LiarMode`]), then echoes back, byte for byte, whatever arrives on the
//! connection afterwards and records it ([`WsEcho::raw_received`]): a test can
//! see whether a proxy tunnelled, say, a tokenless `GET /api/secret` to it.
//!
//! [`ws_connect`] is the client side (`websocket/client.rs`): a blocking
//! handshake over a `std::net::TcpStream` with extra request headers, every
//! read bounded by a timeout so that a test never hangs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

mod client;

pub use client::{ws_connect, WsClient, WsRefused};

/// Largest request head the servers read; a longer one is dropped.
const MAX_HEAD: usize = 64 * 1024;

/// One request head a [`WsEcho`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsHandshake {
    /// The request method, as sent.
    pub method: String,
    /// The request target (path and query), as sent.
    pub path: String,
    /// The header lines as `(name, value)`, in order, names as sent, values
    /// without surrounding whitespace (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// The status the server answered with (`101`, or `400`/`426` when the
    /// echo server refused the handshake).
    pub status: u16,
}

impl WsHandshake {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// How a [`WsEcho::start_liar`] server lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiarMode {
    /// Answers `HTTP/1.1 101 Switching Protocols\r\n\r\n`: no `Upgrade`, no
    /// `Connection`, no `Sec-WebSocket-Accept`.
    BareSwitch,
    /// Answers `101` with `Upgrade: websocket`, `Connection: Upgrade` and a
    /// well-formed but wrong `Sec-WebSocket-Accept` ([`WRONG_ACCEPT`]).
    WrongAccept,
}

/// The `Sec-WebSocket-Accept` a [`LiarMode::WrongAccept`] server sends: the
/// accept value of another key, never the right one for a client's key.
pub const WRONG_ACCEPT: &str = "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=";

#[derive(Debug, Clone, Copy)]
enum Mode {
    Echo,
    Liar(LiarMode),
}

#[derive(Default)]
struct State {
    handshakes: Mutex<Vec<WsHandshake>>,
    raw: Mutex<Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running WebSocket echo (or lying) server; dropping it stops the server.
pub struct WsEcho {
    addr: SocketAddr,
    mode: Mode,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WsEcho {
    /// Starts the echo server on a free loopback port; returns once it
    /// listens.
    pub fn start() -> anyhow::Result<WsEcho> {
        Self::spawn(Mode::Echo)
    }

    /// Starts a server that answers every request with the lying `101` of
    /// `mode`, then echoes and records the raw bytes that follow.
    pub fn start_liar(mode: LiarMode) -> anyhow::Result<WsEcho> {
        Self::spawn(Mode::Liar(mode))
    }

    fn spawn(mode: Mode) -> anyhow::Result<WsEcho> {
        let state = Arc::new(State::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<SocketAddr>>();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let server_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("testkit-ws".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("testkit-ws")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("building runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow!("binding 127.0.0.1:0: {e}")));
                            return;
                        }
                    };
                    match listener.local_addr() {
                        Ok(a) => {
                            let _ = ready_tx.send(Ok(a));
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow!("local_addr: {e}")));
                            return;
                        }
                    }
                    accept_loop(listener, mode, server_state, shutdown_rx).await;
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .context("spawning the WebSocket server thread")?;
        match ready_rx.recv() {
            Ok(Ok(addr)) => Ok(WsEcho {
                addr,
                mode,
                state,
                shutdown: Some(shutdown_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                bail!("the WebSocket server thread exited before binding")
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Every request head read so far, in the order they were read
    /// (recorded before the server answers).
    pub fn handshakes(&self) -> Vec<WsHandshake> {
        lock(&self.state.handshakes).clone()
    }

    /// The bytes a lying server received after the request heads it
    /// answered, all connections concatenated in arrival order. Always empty
    /// for the echo server ([`WsEcho::start`]), which reads WebSocket frames
    /// instead.
    pub fn raw_received(&self) -> Vec<u8> {
        lock(&self.state.raw).clone()
    }

    /// Whether this is a lying server, and how it lies.
    pub fn liar_mode(&self) -> Option<LiarMode> {
        match self.mode {
            Mode::Echo => None,
            Mode::Liar(m) => Some(m),
        }
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            // The thread shuts its runtime down with a bounded timeout.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for WsEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsEcho")
            .field("addr", &self.addr)
            .field("mode", &self.mode)
            .finish()
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    mode: Mode,
    state: Arc<State>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            // Transient accept errors (e.g. EMFILE): back off briefly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let _ = serve(stream, mode, state).await;
        });
    }
}

/// Reads up to the end of a request head; returns the head and the bytes
/// read past it. `None` when the peer closed first or the head is too long.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = head_end(&buf) {
            let rest = buf.split_off(end);
            return Some((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Where the head ends (past its blank line: `\r\n\r\n` or a bare `\n\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Splits a request head into method, target and header lines.
fn parse_head(head: &[u8]) -> (String, String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some((n, v)) => (n.to_string(), v.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    (method, path, headers)
}

/// Whether comma-separated header `value` holds `token` (case-insensitive).
fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    mode: Mode,
    state: Arc<State>,
) -> std::io::Result<()> {
    let Some((head, rest)) = read_head(&mut stream).await else {
        return Ok(());
    };
    let (method, path, headers) = parse_head(&head);
    let mut hs = WsHandshake {
        method,
        path,
        headers,
        status: 101,
    };
    match mode {
        Mode::Echo => {
            let version_ok = hs.header("Sec-WebSocket-Version") == Some("13");
            let valid = hs.method == "GET"
                && has_token(hs.header("Upgrade"), "websocket")
                && has_token(hs.header("Connection"), "upgrade")
                && hs.header("Sec-WebSocket-Key").is_some();
            let response = if !valid {
                hs.status = 400;
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 27\r\n\
                 Connection: close\r\n\r\nnot a WebSocket handshake\r\n"
                    .to_string()
            } else if !version_ok {
                hs.status = 426;
                "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            } else {
                let key = hs.header("Sec-WebSocket-Key").unwrap_or_default();
                let mut r = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
                    derive_accept_key(key.as_bytes())
                );
                if let Some(p) = hs.header("Sec-WebSocket-Protocol") {
                    let first = p.split(',').next().unwrap_or_default().trim();
                    r.push_str(&format!("Sec-WebSocket-Protocol: {first}\r\n"));
                }
                r.push_str("\r\n");
                r
            };
            let upgraded = hs.status == 101;
            lock(&state.handshakes).push(hs);
            stream.write_all(response.as_bytes()).await?;
            if upgraded {
                echo_messages(stream, rest).await;
            } else {
                let _ = stream.shutdown().await;
            }
            Ok(())
        }
        Mode::Liar(liar) => {
            lock(&state.handshakes).push(hs);
            let response = match liar {
                LiarMode::BareSwitch => "HTTP/1.1 101 Switching Protocols\r\n\r\n".to_string(),
                LiarMode::WrongAccept => format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {WRONG_ACCEPT}\r\n\r\n"
                ),
            };
            stream.write_all(response.as_bytes()).await?;
            if !rest.is_empty() {
                lock(&state.raw).extend_from_slice(&rest);
                stream.write_all(&rest).await?;
            }
            let mut chunk = [0u8; 4096];
            loop {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    let _ = stream.shutdown().await;
                    return Ok(());
                }
                lock(&state.raw).extend_from_slice(&chunk[..n]);
                stream.write_all(&chunk[..n]).await?;
            }
        }
    }
}

/// Echoes text and binary messages until the peer closes or errs.
async fn echo_messages(stream: tokio::net::TcpStream, rest: Vec<u8>) {
    let mut ws = WebSocketStream::from_partially_read(stream, rest, Role::Server, None).await;
    while let Some(msg) = ws.next().await {
        let reply = match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => m,
            // Pings are answered and closes returned by tungstenite itself,
            // on the next read or write.
            Ok(_) => continue,
            Err(_) => return,
        };
        if ws.send(reply).await.is_err() {
            return;
        }
    }
}
