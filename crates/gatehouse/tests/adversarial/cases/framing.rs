//! Hostile framing: upgrades on routes that allow none, smuggling with
//! conflicting framing, oversized request lines and headers, odd request
//! lines.

use super::*;

/// A request smuggled in a body: complete, tokenless, for `/api/secret`.
fn smuggled(id: &str) -> String {
    format!("GET /api/secret HTTP/1.1\r\nHost: public.test\r\nX-Case: {id}s\r\n\r\n")
}

/// Upgrades on routes that allow none, one with a request in its would-be tunnel.
pub(super) fn upgrades(b: &mut Builder) {
    // Upgrades on routes that allow none (issue 20, item 4): the Upgrade
    // header never reaches the upstream, and a tunnelled tokenless request
    // behind it is answered as a request of its own or not at all.
    b.push(
        "WebSocket handshake on a public route",
        "GET /public/ws HTTP/1.1",
        &[
            "Host: public.test",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ],
        "",
        OK,
    );
    b.push(
        "h2c upgrade on a public route",
        "GET /public/h2c HTTP/1.1",
        &[
            "Host: public.test",
            "Upgrade: h2c",
            "Connection: Upgrade, HTTP2-Settings",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        ],
        "",
        OK,
    );
    b.verbatim(
        "WebSocket handshake then a tokenless /api/secret in the would-be tunnel",
        |id| {
            format!(
                "GET /public/ws HTTP/1.1\r\nHost: public.test\r\nX-Case: {id}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n{}",
                smuggled(id)
            )
        },
        ANY,
        true,
    );
}

/// Conflicting framing with a tokenless `/api/secret` in the body; pipelining.
pub(super) fn smuggling(b: &mut Builder) {
    // Smuggling: conflicting framing, a tokenless `/api/secret` in the body.
    let head =
        |id: &str| format!("POST /public/a HTTP/1.1\r\nHost: public.test\r\nX-Case: {id}\r\n");
    let zero_then = |id: &str| format!("0\r\n\r\n{}", smuggled(id));
    b.verbatim(
        "CL + TE: chunked (CL.TE)",
        |id| {
            let body = zero_then(id);
            format!(
                "{}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
                head(id),
                body.len()
            )
        },
        ANY,
        true,
    );
    b.verbatim(
        "TE: chunked + CL: 4 (TE.CL)",
        |id| {
            let inner = smuggled(id);
            let chunked = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
            format!(
                "{}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunked}",
                head(id)
            )
        },
        ANY,
        true,
    );
    b.verbatim(
        "two different Content-Length",
        |id| {
            let inner = smuggled(id);
            format!(
                "{}Content-Length: 0\r\nContent-Length: {}\r\n\r\n{inner}",
                head(id),
                inner.len()
            )
        },
        ANY,
        true,
    );
    for (name, te) in [
        (
            "Transfer-Encoding: xchunked + CL",
            "Transfer-Encoding: xchunked",
        ),
        (
            "TE with a space before the colon + CL",
            "Transfer-Encoding : chunked",
        ),
        (
            "TE: chunked, identity + CL",
            "Transfer-Encoding: chunked, identity",
        ),
        (
            "TE: chunked twice + CL",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        ),
    ] {
        b.verbatim(
            name,
            |id| {
                let body = zero_then(id);
                format!(
                    "{}Content-Length: {}\r\n{te}\r\n\r\n{body}",
                    head(id),
                    body.len()
                )
            },
            ANY,
            true,
        );
    }
    b.verbatim(
        "pipelined: public then tokenless /api/secret",
        |id| {
            format!(
                "GET /public/a HTTP/1.1\r\nHost: public.test\r\nX-Case: {id}\r\n\r\n{}",
                smuggled(id)
            )
        },
        OK,
        true,
    );
}

/// Oversized request line and headers.
pub(super) fn oversized(b: &mut Builder) {
    // Oversized request line and headers.
    let long = format!("GET /public/{} HTTP/1.1", "a".repeat(128 * 1024));
    b.push(
        "128 KiB request line",
        &long,
        &["Host: public.test"],
        "",
        TOO_LARGE,
    );
    let big = format!("X-Big: {}", "b".repeat(128 * 1024));
    b.push(
        "128 KiB header",
        "GET /public/a HTTP/1.1",
        &["Host: public.test", &big],
        "",
        ANY,
    );
    let huge = format!("X-Huge: {}", "h".repeat(2 * 1024 * 1024));
    b.push(
        "2 MiB header",
        "GET /public/a HTTP/1.1",
        &["Host: public.test", &huge],
        "",
        TOO_LARGE,
    );
    let many: Vec<String> = (0..2000).map(|i| format!("X-H{i}: v")).collect();
    let mut h: Vec<&str> = vec!["Host: public.test"];
    h.extend(many.iter().map(String::as_str));
    b.push("2000 headers", "GET /public/a HTTP/1.1", &h, "", TOO_LARGE);
}

/// Odd request lines and an obs-fold header carrying a token.
pub(super) fn odd_lines(b: &mut Builder, forged_bearer: &str) {
    // Odd request lines.
    b.push(
        "CONNECT admin.local:80",
        "CONNECT admin.local:80 HTTP/1.1",
        &["Host: admin.local:80"],
        "",
        ANY,
    );
    b.push(
        "OPTIONS *",
        "OPTIONS * HTTP/1.1",
        &["Host: public.test"],
        "",
        ANY,
    );
    b.push(
        "double space in request line",
        "GET  /api/secret HTTP/1.1",
        &["Host: public.test"],
        "",
        ANY,
    );
    b.push(
        "obs-fold header carrying a token",
        "GET /api/secret HTTP/1.1",
        &[
            "Host: public.test",
            "X-Foo: a",
            &format!(" {forged_bearer}"),
        ],
        "",
        ANY,
    );
}
