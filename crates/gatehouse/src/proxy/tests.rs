//! Unit tests of the proxy's helpers.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn query_names_compare_decoded() {
    let u: http::Uri = "/a?access%5Ftoken=x&b=1".parse().unwrap();
    let out = remove_query_params(&u, &["access_token".to_string()]).unwrap();
    assert_eq!(out.to_string(), "/a?b=1");
    let u: http::Uri = "/a?x=1;access_token=y&ACCESS.TOKEN=z&access_token_b=2"
        .parse()
        .unwrap();
    let out = remove_query_params(&u, &["access_token".to_string()]).unwrap();
    assert_eq!(out.to_string(), "/a?access_token_b=2");
}

#[test]
fn query_params_are_removed_by_name() {
    let u: http::Uri = "/a?access_token=x&b=1&access_token_b=2".parse().unwrap();
    let out = remove_query_params(&u, &["access_token".to_string()]).unwrap();
    assert_eq!(out.to_string(), "/a?b=1&access_token_b=2");
    let u: http::Uri = "/a?access_token=x".parse().unwrap();
    assert_eq!(
        remove_query_params(&u, &["access_token".to_string()])
            .unwrap()
            .to_string(),
        "/a"
    );
}

#[test]
fn logged_errors_keep_only_the_status_line_of_upstream_bytes() {
    let bytes = b"HTTP/1.1 200 OK\r\nX-Echo-Authorization: Bearer SECRET\r\n\r\n";
    let e = Error::explain(InvalidHTTPHeader, format!("buf: {}", bytes.escape_ascii())).into_up();
    let text = loggable(&e);
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
    assert!(!text.contains("X-Echo"), "{text}");
    let long = Error::explain(InternalError, "é".repeat(1000));
    assert!(loggable(&long).len() <= 512);
}

#[test]
fn request_ids() {
    assert!(valid_request_id(&HeaderValue::from_static("abc-123")));
    assert!(!valid_request_id(&HeaderValue::from_static("has space")));
    assert!(!valid_request_id(
        &HeaderValue::from_str(&"x".repeat(200)).unwrap()
    ));
    let id = new_request_id();
    assert_eq!(id.len(), 36);
    assert!(valid_request_id(&id));
    assert_ne!(id, new_request_id());
}

/// The context lives inside Pingora's boxed per-request future, which
/// is copied once per keep-alive request: keep it small.
#[test]
fn context_stays_small() {
    let size = size_of::<Ctx>();
    assert!(size <= 512, "Ctx grew to {size} bytes");
}
