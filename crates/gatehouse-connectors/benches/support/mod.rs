//! Helpers shared by the benchmarks (a module, not a bench target).

use http::{HeaderMap, HeaderValue};

/// Request headers carrying `token` as a bearer token.
pub fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a valid header value"),
    );
    h
}
