//! A raw-socket HTTP/1.x client for hostile requests.
//!
//! [`raw_exchange`] writes the caller's bytes unchanged on a fresh loopback
//! connection (no parsing, no normalisation, no added headers) and reads the
//! answers back: as many complete responses as arrive, until the server
//! closes the connection or one response was read and no more is expected.
//! With [`RawOptions::follow_up`], once the first response is complete the
//! follow-up bytes (typically a `Connection: close` sentinel request) are
//! written and everything up to EOF is read: anything smuggled in the first
//! request's body is answered before the sentinel, so no timing is involved.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One response as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines as `(name, value)`, in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as lossy UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOutcome {
    /// Complete responses, in order.
    pub responses: Vec<RawResponse>,
    /// Bytes left after the last complete response (a truncated response).
    pub trailing: Vec<u8>,
    /// The server closed (or reset) the connection.
    pub closed: bool,
    /// A read timed out before the exchange was complete.
    pub timed_out: bool,
}

impl RawOutcome {
    /// Status of the first response, if any.
    pub fn first_status(&self) -> Option<u16> {
        self.responses.first().map(|r| r.status)
    }

    /// A one-line summary: `400`, `200+200`, `closed`, `timeout`.
    pub fn summary(&self) -> String {
        let mut s: Vec<String> = self
            .responses
            .iter()
            .map(|r| r.status.to_string())
            .collect();
        if s.is_empty() {
            s.push(if self.timed_out { "timeout" } else { "closed" }.to_string());
        }
        s.join("+")
    }
}

/// Options of [`raw_exchange`].
#[derive(Debug, Clone)]
pub struct RawOptions {
    /// Bytes written after the first complete response; then read to EOF.
    pub follow_up: Option<Vec<u8>>,
    /// Upper bound on each blocking read (a safety net, not a margin).
    pub read_timeout: Duration,
}

impl Default for RawOptions {
    fn default() -> Self {
        RawOptions {
            follow_up: None,
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// Sends `request` verbatim to `addr` and reads the response(s).
pub fn raw_exchange(
    addr: SocketAddr,
    request: &[u8],
    opts: &RawOptions,
) -> std::io::Result<RawOutcome> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(opts.read_timeout))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    let mut out = RawOutcome {
        responses: Vec::new(),
        trailing: Vec::new(),
        closed: false,
        timed_out: false,
    };
    // The server may answer (and close) before reading everything: a failed
    // write is not an error of the exchange.
    if stream.write_all(request).is_err() {
        out.closed = true;
    }
    let mut buf = Vec::new();
    let mut follow_up = opts.follow_up.clone();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        while let Some((resp, used)) = parse_response(&buf) {
            out.responses.push(resp);
            buf.drain(..used);
        }
        if !out.responses.is_empty() && buf.is_empty() {
            match follow_up.take() {
                Some(bytes) if stream.write_all(&bytes).is_err() => {
                    out.closed = true;
                    break;
                }
                None if opts.follow_up.is_none() => break,
                _ => {}
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                out.closed = true;
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                out.timed_out = true;
                break;
            }
            Err(_) => {
                out.closed = true;
                break;
            }
        }
    }
    // At EOF a response without a length ends with the connection.
    if out.closed && !buf.is_empty() {
        if let Some(head) = parse_head(&buf) {
            if head.content_length.is_none() && !head.chunked {
                out.responses.push(RawResponse {
                    status: head.status,
                    headers: head.headers,
                    body: buf[head.body_start..].to_vec(),
                });
                buf.clear();
            }
        }
    }
    out.trailing = buf;
    Ok(out)
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    body_start: usize,
    content_length: Option<usize>,
    chunked: bool,
}

fn parse_head(buf: &[u8]) -> Option<Head> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let mut headers = Vec::new();
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
        headers.push((name, value));
    }
    Some(Head {
        status,
        headers,
        body_start: end + 4,
        content_length,
        chunked,
    })
}

/// A complete response at the start of `buf` and the bytes it used.
fn parse_response(buf: &[u8]) -> Option<(RawResponse, usize)> {
    let head = parse_head(buf)?;
    let rest = &buf[head.body_start..];
    let (body, used) = if matches!(head.status, 100..=199 | 204 | 304) {
        (Vec::new(), 0)
    } else if head.chunked {
        dechunk(rest)?
    } else {
        let len = head.content_length?;
        if rest.len() < len {
            return None;
        }
        (rest[..len].to_vec(), len)
    };
    let resp = RawResponse {
        status: head.status,
        headers: head.headers,
        body,
    };
    Some((resp, head.body_start + used))
}

/// Decodes a complete chunked body: the body and the bytes consumed.
fn dechunk(mut body: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = body.len();
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_line = String::from_utf8_lossy(&body[..line_end]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            // Trailers end with an empty line.
            let rest = if body.starts_with(b"\r\n") {
                &body[2..]
            } else {
                let t = body.windows(4).position(|w| w == b"\r\n\r\n")?;
                &body[t + 4..]
            };
            return Some((out, total - rest.len()));
        }
        if body.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_length_and_chunked_responses() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let (r, used) = parse_response(a).unwrap();
        assert_eq!((r.status, r.body_text().as_str()), (200, "ok"));
        let (r2, used2) = parse_response(&a[used..]).unwrap();
        assert_eq!((r2.status, r2.body_text().as_str()), (400, "abc"));
        assert_eq!(used + used2, a.len());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok").is_none());
    }
}
