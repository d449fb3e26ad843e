//! Request ids and the query parameters a connector asks to remove.

use super::MAX_REQUEST_ID_LEN;
use http::HeaderValue;

pub(super) fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_REQUEST_ID_LEN && b.iter().all(|c| c.is_ascii_graphic())
}

/// A fresh request id (a v4 UUID) in one allocation that its clones — the
/// upstream request's header, the response's — share.
pub(super) fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf))
        .unwrap_or(HeaderValue::from_static("unknown"))
}

pub(super) fn remove_query_params(uri: &http::Uri, names: &[String]) -> Option<http::Uri> {
    let query = uri.query()?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            !names
                .iter()
                .any(|n| gatehouse_connectors::token::query_pair_matches(kv, n))
        })
        .collect();
    let pq = if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    pq.parse().ok()
}
