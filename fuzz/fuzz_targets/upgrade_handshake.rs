//! `upgrade_handshake`: the protocol-upgrade rules (`gatehouse_http::upgrade`):
//! what a request's `Upgrade` header gets on a route, and whether an
//! upstream's `101` completes the handshake. From the `gatehouse-http` crate,
//! so the fuzz build does not link Pingora.
//!
//! Input: byte 0 holds flags (bit 0: the route allows `websocket`, bit 1:
//! HTTP/1.0 instead of 1.1, bit 2: `POST` instead of `GET`); the rest is two
//! header blocks separated by a blank line (request headers, then the 101's
//! headers), `name: value` lines.
//!
//! Asserts: no panic; a request without `Upgrade` is `None`; a tunnel is only
//! offered on an allowing route, for HTTP/1.1 `GET` with exactly one
//! `Upgrade: websocket`; its accept value is the RFC 6455 digest of the key;
//! a `101` completes only when it carries exactly that accept value.

#![no_main]

use gatehouse_config::Upgrade;
use gatehouse_http::upgrade::{classify, completes, websocket_accept, Ask};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Version};
use libfuzzer_sys::fuzz_target;

fn headers(block: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in block.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        h.append(n, v);
    }
    h
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let allowed: &[Upgrade] = if flags & 1 == 1 { &[Upgrade::Websocket] } else { &[] };
    let version = if flags & 2 == 2 { Version::HTTP_10 } else { Version::HTTP_11 };
    let method = if flags & 4 == 4 { Method::POST } else { Method::GET };
    let split = rest.windows(2).position(|w| w == b"\n\n");
    let (req, resp) = match split {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &b""[..]),
    };
    let req = headers(req);
    let resp = headers(resp);
    match classify(version, &method, &req, allowed) {
        Ask::None => assert!(!req.contains_key(header::UPGRADE)),
        Ask::Strip | Ask::Refuse(_) => {}
        Ask::Websocket { accept } => {
            assert!(!allowed.is_empty() && version == Version::HTTP_11 && method == Method::GET);
            assert_eq!(req.get_all(header::UPGRADE).iter().count(), 1);
            let key = req.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes().trim_ascii());
            assert_eq!(Some(accept.clone()), key.map(websocket_accept));
            if completes(&resp, &accept) {
                let got: Vec<_> = resp.get_all(header::SEC_WEBSOCKET_ACCEPT).iter().collect();
                assert_eq!(got.len(), 1);
                assert_eq!(got[0].as_bytes().trim_ascii(), accept.as_bytes());
            }
        }
    }
});
