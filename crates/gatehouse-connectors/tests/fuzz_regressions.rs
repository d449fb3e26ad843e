//! Regression tests for inputs the fuzz targets of `fuzz/` found (see
//! fuzz/README.md, "Crashes found"). Each test replays the minimal input
//! through the same public API the target calls.

use gatehouse_connectors::token::{find_token, Intake, TokenSource, TokenSourceConfig};
use gatehouse_connectors::RequestView;
use http::{HeaderMap, HeaderValue, Method, Uri};

/// `token_intake`, crash-af29f8a0…: `Cookie: at="` (and `at=""`) gave
/// `Found("")`: the quotes were trimmed after the emptiness check, so an empty
/// token reached the verifier (or the userinfo endpoint) as if one was sent.
#[test]
fn quoted_empty_cookie_is_not_a_token() {
    let cfg = TokenSourceConfig {
        header: None,
        scheme: None,
        cookie: Some("at".into()),
        query: None,
    };
    let sources = TokenSource::compile_all("fuzz", &[cfg]).unwrap();
    let (method, uri) = (Method::GET, Uri::from_static("/"));
    for cookie in ["at=\"", "at=\"\"", "x=1; at=\"\"; y=2"] {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, HeaderValue::from_static(cookie));
        let req = RequestView {
            method: &method,
            uri: &uri,
            headers: &headers,
            client: None,
            request_id: "",
            peer_cert: None,
            verified: None,
        };
        if let Intake::Found(token, _) = find_token(&sources, &req) {
            assert!(!token.is_empty(), "{cookie:?}: empty token found");
        }
    }
}

/// `token_intake`, crash-4ab8d2c4…: `Cookie: d` (an item without `=`)
/// panicked with "attempt to subtract with overflow" in `cookie_items`: the
/// value's offset was taken from a literal `""` outside the header text.
#[test]
fn cookie_item_without_equals_does_not_panic() {
    let cfg = TokenSourceConfig {
        header: None,
        scheme: None,
        cookie: Some("at".into()),
        query: None,
    };
    let sources = TokenSource::compile_all("fuzz", &[cfg]).unwrap();
    let (method, uri) = (Method::GET, Uri::from_static("/"));
    for cookie in ["d", "x=1; d; at=a.b.c", "at"] {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, HeaderValue::from_static(cookie));
        let req = RequestView {
            method: &method,
            uri: &uri,
            headers: &headers,
            client: None,
            request_id: "",
            peer_cert: None,
            verified: None,
        };
        let _ = find_token(&sources, &req);
    }
}
