#![allow(clippy::unwrap_used)]
use super::*;
use gatehouse_config::HumanDuration;

fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
    CorsPolicy::new(
        &CorsConfig {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: Some(vec!["GET".into(), "POST".into()]),
            allow_headers: vec!["Authorization".into(), "content-type".into()],
            expose_headers: vec!["X-Request-Id".into()],
            allow_credentials: credentials,
            max_age: Some(HumanDuration::from_secs(600)),
        },
        None,
    )
}

fn req(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn get<'a>(out: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    out.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.to_str().unwrap())
}

#[test]
fn exact_and_one_label_wildcards() {
    let p = policy(
        &[
            "https://app.example.com",
            "https://*.example.net",
            "http://127.0.0.1:8080",
        ],
        true,
    );
    let ok = |o: &str| p.allowed_origin(&req(&[("origin", o)])).is_some();
    assert!(ok("https://app.example.com"));
    assert!(ok("https://a.example.net"));
    assert!(ok("https://a-1.example.net"));
    assert!(ok("http://127.0.0.1:8080"));
    for bad in [
        "https://app.example.com:443", // not how a browser serializes it
        "http://app.example.com",      // other scheme
        "https://APP.example.com",     // not a serialized origin
        "https://app.example.com/",    // a path
        "https://app.example.com.evil.com",
        "https://evilapp.example.com",
        "https://example.net", // the wildcard needs a label
        "https://.example.net",
        "https://a.b.example.net", // one label only
        "https://-a.example.net",
        "https://a_b.example.net",
        "https://a.example.net:8443", // other port
        "https://a.example.netx",
        "http://a.example.net",
        "https://user@a.example.net",
        "null",
        "http://127.0.0.1:80801",
        "http://127.0.0.1",
        "",
    ] {
        assert!(!ok(bad), "{bad} must not be allowed");
    }
    // Two Origin fields: not one origin.
    let two = req(&[
        ("origin", "https://app.example.com"),
        ("origin", "https://app.example.com"),
    ]);
    assert!(p.allowed_origin(&two).is_none());
    // The allowed origin is echoed byte for byte.
    assert_eq!(
        p.allowed_origin(&req(&[("origin", "https://a.example.net")]))
            .unwrap(),
        "https://a.example.net"
    );
}

#[test]
fn wildcard_with_port() {
    let p = policy(&["https://*.example.com:8443"], false);
    let ok = |o: &str| p.allowed_origin(&req(&[("origin", o)])).is_some();
    assert!(ok("https://a.example.com:8443"));
    assert!(!ok("https://a.example.com"));
    assert!(!ok("https://a.example.com:844"));
}

#[test]
fn any_origin_without_credentials_is_a_star_and_no_vary() {
    let p = policy(&["*"], false);
    let o = p
        .allowed_origin(&req(&[("origin", "https://whoever.test")]))
        .unwrap();
    assert_eq!(o, "*");
    let out = p.answer_headers(Some(&o));
    assert_eq!(get(&out, "access-control-allow-origin"), Some("*"));
    assert_eq!(get(&out, "vary"), None);
    assert_eq!(get(&out, "access-control-allow-credentials"), None);
}

#[test]
fn preflight_allowed_lists_the_policy() {
    let p = policy(&["https://app.example.com"], true);
    let out = p
        .preflight(&req(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "Authorization, content-type",
            ),
        ]))
        .unwrap();
    assert_eq!(
        get(&out, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(get(&out, "access-control-allow-credentials"), Some("true"));
    assert_eq!(get(&out, "access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        get(&out, "access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(get(&out, "access-control-max-age"), Some("600"));
    assert!(get(&out, "vary").unwrap().contains("Origin"));
}

#[test]
fn preflight_refusals_say_which_part() {
    let p = policy(&["https://app.example.com"], true);
    let ask = |o: &str, m: &str, h: &str| {
        let mut pairs = vec![("origin", o), ("access-control-request-method", m)];
        if !h.is_empty() {
            pairs.push(("access-control-request-headers", h));
        }
        p.preflight(&req(&pairs))
    };
    assert_eq!(
        ask("https://other.example.com", "GET", "").unwrap_err(),
        PreflightRefusal::Origin
    );
    assert_eq!(
        ask("https://app.example.com", "DELETE", "").unwrap_err(),
        PreflightRefusal::Method
    );
    // Methods are case-sensitive (browsers upper-case the standard ones).
    assert_eq!(
        ask("https://app.example.com", "post", "").unwrap_err(),
        PreflightRefusal::Method
    );
    assert_eq!(
        ask("https://app.example.com", "GET", "authorization, x-user-id").unwrap_err(),
        PreflightRefusal::Header
    );
    let many = vec!["authorization"; MAX_REQUESTED_HEADERS + 1].join(",");
    assert_eq!(
        ask("https://app.example.com", "GET", &many).unwrap_err(),
        PreflightRefusal::Header
    );
    // Empty list members are ignored, names compare case-insensitively.
    assert!(ask("https://app.example.com", "GET", " ,AUTHORIZATION,, ").is_ok());
    // Two request-method fields: not a preflight that can be allowed.
    let two = req(&[
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "GET"),
        ("access-control-request-method", "POST"),
    ]);
    assert_eq!(p.preflight(&two).unwrap_err(), PreflightRefusal::Method);
}

#[test]
fn what_counts_as_a_preflight() {
    let h = req(&[
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "PUT"),
    ]);
    assert_eq!(
        CorsPolicy::preflight_method(&Method::OPTIONS, &h),
        Some(Method::PUT)
    );
    assert_eq!(CorsPolicy::preflight_method(&Method::GET, &h), None);
    let no_origin = req(&[("access-control-request-method", "PUT")]);
    assert_eq!(
        CorsPolicy::preflight_method(&Method::OPTIONS, &no_origin),
        None
    );
    let no_method = req(&[("origin", "https://app.example.com")]);
    assert_eq!(
        CorsPolicy::preflight_method(&Method::OPTIONS, &no_method),
        None
    );
}

#[test]
fn answers_to_listed_and_unlisted_origins() {
    let p = policy(&["https://app.example.com"], true);
    let o = HeaderValue::from_static("https://app.example.com");
    let out = p.answer_headers(Some(&o));
    assert_eq!(
        get(&out, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(get(&out, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        get(&out, "access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(get(&out, "vary"), Some("Origin"));
    let none = p.answer_headers(None);
    assert_eq!(
        none.len(),
        1,
        "only Vary for an origin not allowed: {none:?}"
    );
}

#[test]
fn default_methods_follow_the_route() {
    let c = CorsConfig {
        allow_origins: vec!["https://a.example.com".into()],
        allow_methods: None,
        allow_headers: vec![],
        expose_headers: vec![],
        allow_credentials: false,
        max_age: None,
    };
    let p = CorsPolicy::new(&c, Some(&["PUT".to_string(), "OPTIONS".to_string()]));
    let out = p
        .preflight(&req(&[
            ("origin", "https://a.example.com"),
            ("access-control-request-method", "PUT"),
        ]))
        .unwrap();
    assert_eq!(get(&out, "access-control-allow-methods"), Some("PUT"));
    assert_eq!(get(&out, "access-control-max-age"), None);
    let p = CorsPolicy::new(&c, None);
    let out = p
        .preflight(&req(&[
            ("origin", "https://a.example.com"),
            ("access-control-request-method", "POST"),
        ]))
        .unwrap();
    assert_eq!(
        get(&out, "access-control-allow-methods"),
        Some("GET, HEAD, POST")
    );
}

#[test]
fn cors_response_headers_are_recognised() {
    assert!(is_cors_response_header(
        &header::ACCESS_CONTROL_ALLOW_ORIGIN
    ));
    assert!(is_cors_response_header(&HeaderName::from_static(
        "access-control-allow-private-network"
    )));
    assert!(!is_cors_response_header(&header::VARY));
}
