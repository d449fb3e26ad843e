//! The blocking WebSocket client of the tests: [`ws_connect`] opens a
//! [`WsClient`] (a handshake over a `std::net::TcpStream`, every step bounded
//! by a timeout); an answer other than `101` is a [`WsRefused`].

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{
    self, client::IntoClientRequest, HandshakeError, Message, WebSocket,
};

/// Upper bound on each blocking step of the client (connect, read, write).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to a [`ws_connect`] handshake that was not a `101`: the error
/// [`ws_connect`] returns, to get with `err.downcast_ref::<WsRefused>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsRefused {
    /// Its status.
    pub status: u16,
    /// Its headers as `(name, value)`, names lower-case, in order.
    pub headers: Vec<(String, String)>,
    /// Its body, if any was read.
    pub body: Vec<u8>,
}

impl std::fmt::Display for WsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebSocket handshake answered {} instead of 101: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl std::error::Error for WsRefused {}

/// A connected blocking WebSocket client (see [`ws_connect`]).
pub struct WsClient {
    status: u16,
    headers: Vec<(String, String)>,
    ws: WebSocket<TcpStream>,
}

/// The request headers the handshake itself sets: an extra header with one
/// of these names replaces it instead of being added.
const HANDSHAKE_HEADERS: [&str; 5] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-version",
    "sec-websocket-key",
];

/// Opens a WebSocket to `ws://{addr}{path}` (`path` must be a valid request
/// target, starting with `/`), with `extra_headers` added to the handshake
/// request (names are sent lower-case; a name among `Host`, `Connection`,
/// `Upgrade`, `Sec-WebSocket-Version` and `Sec-WebSocket-Key` replaces the
/// handshake's own value).
///
/// Connect, reads and writes are bounded by a 10 s timeout. A handshake
/// answered with a status other than `101` fails with a [`WsRefused`]
/// (`err.downcast_ref::<WsRefused>()`); a `101` that is not a valid
/// WebSocket answer (no `Upgrade`, wrong `Sec-WebSocket-Accept`…) fails with
/// tungstenite's error.
pub fn ws_connect(
    addr: SocketAddr,
    path: &str,
    extra_headers: &[(&str, &str)],
) -> anyhow::Result<WsClient> {
    let url = format!("ws://{addr}{path}");
    let mut request = url
        .as_str()
        .into_client_request()
        .with_context(|| format!("building a handshake request for {url}"))?;
    for (name, value) in extra_headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("invalid header name {name:?}"))?;
        let value = HeaderValue::from_str(value)
            .with_context(|| format!("invalid value {value:?} of header {name}"))?;
        if HANDSHAKE_HEADERS.contains(&name.as_str()) {
            request.headers_mut().insert(name, value);
        } else {
            request.headers_mut().append(name, value);
        }
    }
    let stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    match tungstenite::client::client(request, stream) {
        Ok((ws, response)) => Ok(WsClient {
            status: response.status().as_u16(),
            headers: header_pairs(response.headers()),
            ws,
        }),
        Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(anyhow::Error::new(WsRefused {
                status: response.status().as_u16(),
                headers: header_pairs(response.headers()),
                body: response.body().clone().unwrap_or_default(),
            }))
        }
        Err(HandshakeError::Failure(e)) => Err(anyhow!("WebSocket handshake with {url}: {e}")),
        Err(HandshakeError::Interrupted(_)) => Err(anyhow!(
            "WebSocket handshake with {url}: no complete answer within {CLIENT_TIMEOUT:?}"
        )),
    }
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl WsClient {
    /// The handshake answer's status (`101`).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The handshake answer's headers as `(name, value)`, names lower-case.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of handshake answer header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws
            .send(Message::text(text))
            .context("sending a text message")
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.ws
            .send(Message::binary(data.to_vec()))
            .context("sending a binary message")
    }

    /// Reads the next data message (pings and pongs are skipped), or fails
    /// on a close, an error or after 10 s without one.
    pub fn recv(&mut self) -> anyhow::Result<Message> {
        loop {
            match self.ws.read() {
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(frame)) => bail!("the server closed the WebSocket: {frame:?}"),
                Ok(m) => return Ok(m),
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    bail!("no WebSocket message within {CLIENT_TIMEOUT:?}")
                }
                Err(e) => return Err(anyhow!("reading a WebSocket message: {e}")),
            }
        }
    }

    /// Reads the next message, which must be text.
    pub fn recv_text(&mut self) -> anyhow::Result<String> {
        match self.recv()? {
            Message::Text(t) => Ok(t.as_str().to_string()),
            other => bail!("expected a text message, got {other:?}"),
        }
    }

    /// Reads the next message, which must be binary.
    pub fn recv_binary(&mut self) -> anyhow::Result<Vec<u8>> {
        match self.recv()? {
            Message::Binary(b) => Ok(b.to_vec()),
            other => bail!("expected a binary message, got {other:?}"),
        }
    }

    /// Sends a close and waits (up to the timeout) for the server's.
    pub fn close(mut self) -> anyhow::Result<()> {
        self.ws.close(None).context("sending a close")?;
        loop {
            match self.ws.read() {
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
                Err(e) => return Err(anyhow!("closing the WebSocket: {e}")),
            }
        }
    }

    /// The underlying tungstenite WebSocket, for anything else.
    pub fn inner(&mut self) -> &mut WebSocket<TcpStream> {
        &mut self.ws
    }
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish()
    }
}
