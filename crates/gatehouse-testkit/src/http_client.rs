//! A minimal blocking HTTP/1.0 client for probing listeners (`/readyz`,
//! `/metrics`) from plain `#[test]` functions and from inside an async
//! runtime alike, without pulling a runtime in.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// Minimal blocking HTTP/1.0 `GET` over a `std::net::TcpStream`.
///
/// Works inside and outside an async runtime. Returns the status code and
/// the body as (lossy) UTF-8. Handles `content-length`, `chunked` and
/// read-until-close bodies.
pub fn http_get_blocking(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("sending request to {addr}"))?;

    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(done) = parse_http_response(&buf)? {
            return Ok(done);
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !buf.is_empty() => 0,
            Err(e) => return Err(e).with_context(|| format!("reading response from {addr}")),
        };
        if n == 0 {
            // EOF: the body is whatever we have (read-until-close).
            return finish_at_eof(&buf);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Head {
    status: u16,
    body_start: usize,
    content_length: Option<usize>,
    chunked: bool,
}

fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        bail!("malformed status line: {status_line:?}");
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("malformed status line: {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some(Head {
        status,
        body_start: end + 4,
        content_length,
        chunked,
    }))
}

/// Returns the complete response if `buf` holds all of it.
fn parse_http_response(buf: &[u8]) -> anyhow::Result<Option<(u16, String)>> {
    let Some(head) = parse_head(buf)? else {
        return Ok(None);
    };
    let body = &buf[head.body_start..];
    if head.chunked {
        return Ok(decode_chunked(body)?.map(|b| (head.status, lossy(&b))));
    }
    if let Some(len) = head.content_length {
        if body.len() >= len {
            return Ok(Some((head.status, lossy(&body[..len]))));
        }
    }
    // 1xx/204/304 have no body.
    if matches!(head.status, 100..=199 | 204 | 304) {
        return Ok(Some((head.status, String::new())));
    }
    Ok(None)
}

fn finish_at_eof(buf: &[u8]) -> anyhow::Result<(u16, String)> {
    let head = parse_head(buf)?.ok_or_else(|| {
        anyhow!(
            "connection closed before a complete response head ({} bytes received)",
            buf.len()
        )
    })?;
    let body = &buf[head.body_start..];
    if head.chunked {
        let decoded =
            decode_chunked(body)?.ok_or_else(|| anyhow!("truncated chunked response body"))?;
        return Ok((head.status, lossy(&decoded)));
    }
    if let Some(len) = head.content_length {
        if body.len() < len {
            bail!("truncated response body: {} of {len} bytes", body.len());
        }
        return Ok((head.status, lossy(&body[..len])));
    }
    Ok((head.status, lossy(body)))
}

/// Decodes a chunked body; `None` if incomplete.
fn decode_chunked(mut body: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = String::from_utf8_lossy(&body[..line_end]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_hex:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if body.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn http_response_parsing() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello extra";
        assert_eq!(
            parse_http_response(raw).unwrap(),
            Some((200, "hello".to_owned()))
        );
        let partial = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(parse_http_response(partial).unwrap(), None);
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_response(chunked).unwrap(),
            Some((503, "abcde".to_owned()))
        );
        let until_close = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_http_response(until_close).unwrap(), None);
        assert_eq!(
            finish_at_eof(until_close).unwrap(),
            (404, "nope".to_owned())
        );
        assert!(finish_at_eof(b"HTTP/1.1 200").is_err());
        assert!(parse_http_response(b"garbage\r\n\r\n").is_err());
    }
}
