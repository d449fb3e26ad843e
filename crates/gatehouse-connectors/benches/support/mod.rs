//! Helpers shared by the benchmarks (a module, not a bench target).

use gatehouse_connectors::{Connector, RequestView, Verdict};
use http::{HeaderMap, HeaderValue, Method, Uri};

/// Request headers carrying `token` as a bearer token.
pub(crate) fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a valid header value"),
    );
    h
}

/// The request every benchmark checks: `GET /orders/1`, no client address,
/// no client certificate.
pub(crate) struct Request {
    method: Method,
    uri: Uri,
}

impl Request {
    pub(crate) fn get() -> Self {
        Self {
            method: Method::GET,
            uri: Uri::from_static("/orders/1"),
        }
    }

    /// The connector's view of this request with `headers`.
    pub(crate) fn view<'a>(&'a self, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            method: &self.method,
            uri: &self.uri,
            headers,
            client: None,
            request_id: "r",
            peer_cert: None,
            verified: None,
        }
    }
}

/// Checks `GET /orders/1` with `headers` and asserts the connector allows it.
pub(crate) async fn allow(c: &dyn Connector, headers: &HeaderMap) {
    let req = Request::get();
    let v = c.check(&req.view(headers)).await;
    assert!(matches!(v, Verdict::Allow(_)), "refused: {v:?}");
}
