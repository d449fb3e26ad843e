//! Protocol upgrades: off unless a route allows them (`upgrades =
//! ["websocket"]`), and then a tunnel only for a complete RFC 6455 handshake
//! the upstream answers correctly.
//!
//! Behind an upgrade the connection is a byte tunnel: nothing in it is
//! routed, authenticated or header-filtered again. So a client may not open
//! one where the route did not ask for it (the `Upgrade` header is removed
//! and the request proxied as a plain one, as NGINX does by default), and an
//! upstream's `101` opens it only when it echoes `Upgrade: websocket` and the
//! `Sec-WebSocket-Accept` computed from the client's key — a bare `101` from
//! an upstream that does not speak WebSocket would otherwise turn the rest
//! of the connection into unauthenticated requests to it.

use base64::Engine;
use gatehouse_config::Upgrade;
use http::{header, HeaderMap, HeaderValue, Method, Version};
use sha1::{Digest, Sha1};

/// RFC 6455 §1.3: the GUID appended to the client's key.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What to do with a request's `Upgrade` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// No `Upgrade` header.
    None,
    /// The route does not allow this upgrade: remove `Upgrade`, proxy the
    /// request as a plain one.
    Strip,
    /// The route allows WebSocket but the handshake is incomplete or
    /// malformed: answer 400 with this description.
    Refuse(&'static str),
    /// A complete WebSocket handshake: tunnel if the upstream's `101` carries
    /// this `Sec-WebSocket-Accept`.
    Websocket {
        /// The accept value the client will check.
        accept: HeaderValue,
    },
}

/// True when one of the comma-separated tokens of the `name` headers equals
/// `token` (ASCII case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The single value of header `name`, if there is exactly one.
fn single(headers: &HeaderMap, name: header::HeaderName) -> Option<&HeaderValue> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// The `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn websocket_accept(key: &[u8]) -> HeaderValue {
    let mut h = Sha1::new();
    h.update(key);
    h.update(WEBSOCKET_GUID);
    let text = base64::engine::general_purpose::STANDARD.encode(h.finalize());
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
}

/// Decides what a request's `Upgrade` header gets on a route that allows
/// `allowed`.
pub fn classify(
    version: Version,
    method: &Method,
    headers: &HeaderMap,
    allowed: &[Upgrade],
) -> Ask {
    if !headers.contains_key(header::UPGRADE) {
        return Ask::None;
    }
    let wants_websocket = single(headers, header::UPGRADE)
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
    if !wants_websocket || !allowed.contains(&Upgrade::Websocket) || version != Version::HTTP_11 {
        return Ask::Strip;
    }
    if method != Method::GET {
        return Ask::Refuse("a WebSocket handshake is a GET request");
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Ask::Refuse("a WebSocket handshake needs `Connection: Upgrade`");
    }
    if single(headers, header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        return Ask::Refuse("a WebSocket handshake needs `Sec-WebSocket-Version: 13`");
    }
    let key = single(headers, header::SEC_WEBSOCKET_KEY)
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k)
                .is_ok_and(|d| d.len() == 16)
        });
    match key {
        Some(k) => Ask::Websocket {
            accept: websocket_accept(k),
        },
        None => {
            Ask::Refuse("a WebSocket handshake needs one `Sec-WebSocket-Key` of 16 base64 bytes")
        }
    }
}

/// True when the upstream's `101` completes the handshake whose accept value
/// is `accept`: one `Upgrade: websocket`, `Connection: upgrade`, and exactly
/// that `Sec-WebSocket-Accept`.
pub fn completes(resp: &HeaderMap, accept: &HeaderValue) -> bool {
    single(resp, header::UPGRADE)
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"))
        && has_token(resp, header::CONNECTION, "upgrade")
        && single(resp, header::SEC_WEBSOCKET_ACCEPT)
            .is_some_and(|v| v.as_bytes().trim_ascii() == accept.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn handshake() -> Vec<(&'static str, &'static str)> {
        vec![
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", KEY),
        ]
    }

    #[test]
    fn rfc6455_example_accept() {
        // RFC 6455 §1.3's worked example.
        assert_eq!(
            websocket_accept(KEY.as_bytes()),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrades_only_where_allowed() {
        let ws = [Upgrade::Websocket];
        let h = req(&handshake());
        let v11 = Version::HTTP_11;
        assert_eq!(
            classify(v11, &Method::GET, &HeaderMap::new(), &ws),
            Ask::None
        );
        assert_eq!(classify(v11, &Method::GET, &h, &[]), Ask::Strip);
        assert_eq!(
            classify(Version::HTTP_10, &Method::GET, &h, &ws),
            Ask::Strip
        );
        let Ask::Websocket { accept } = classify(v11, &Method::GET, &h, &ws) else {
            panic!("a complete handshake tunnels");
        };
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        // Other protocols are never tunnelled.
        let mut other = handshake();
        other[0] = ("upgrade", "h2c");
        assert_eq!(classify(v11, &Method::GET, &req(&other), &ws), Ask::Strip);
        let mut two = handshake();
        two.push(("upgrade", "websocket"));
        assert_eq!(classify(v11, &Method::GET, &req(&two), &ws), Ask::Strip);
    }

    #[test]
    fn incomplete_handshakes_refused() {
        let ws = [Upgrade::Websocket];
        let v11 = Version::HTTP_11;
        assert!(matches!(
            classify(v11, &Method::POST, &req(&handshake()), &ws),
            Ask::Refuse(_)
        ));
        for drop in 1..4 {
            let mut h = handshake();
            h.remove(drop);
            assert!(
                matches!(classify(v11, &Method::GET, &req(&h), &ws), Ask::Refuse(_)),
                "{drop}"
            );
        }
        let mut bad_key = handshake();
        bad_key[3] = ("sec-websocket-key", "c2hvcnQ=");
        assert!(matches!(
            classify(v11, &Method::GET, &req(&bad_key), &ws),
            Ask::Refuse(_)
        ));
        let mut v8 = handshake();
        v8[2] = ("sec-websocket-version", "8");
        assert!(matches!(
            classify(v11, &Method::GET, &req(&v8), &ws),
            Ask::Refuse(_)
        ));
    }

    #[test]
    fn only_a_matching_101_completes() {
        let accept = websocket_accept(KEY.as_bytes());
        let good = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ];
        assert!(completes(&req(&good), &accept));
        assert!(!completes(&HeaderMap::new(), &accept), "a bare 101");
        for i in 0..3 {
            let mut h = good.to_vec();
            h.remove(i);
            assert!(!completes(&req(&h), &accept), "{i}");
        }
        let mut wrong = good.to_vec();
        wrong[2] = ("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(!completes(&req(&wrong), &accept));
    }
}
