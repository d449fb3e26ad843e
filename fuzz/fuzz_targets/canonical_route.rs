//! `canonical_route`: the request canonicaliser (`gatehouse_http::canonical`)
//! with the router (`gatehouse_http::router::Router`), from the
//! `gatehouse-http` crate (no Pingora in the fuzz build).
//!
//! Input: byte 0 holds flags (bit 0: `encoded_slashes = "keep"`, bit 1:
//! `path_parameters = "strip"`, bit 2: `trailing_dots_and_spaces = "allow"`,
//! bits 3-7: the method, from a list with case variants), the rest is
//! `<request target>\n<Host header>` (no `\n`: no Host).
//!
//! Asserts: no panic; `canonical_path` is idempotent and its output starts with
//! `/` and never contains `//`, `/./`, `/../` (nor ends in `/.` or `/..`), a
//! `%XX` of an unreserved character, lower-case hex in an escape, a control
//! byte or a raw `\`, and (unless allowed) no segment other than `.`/`..`
//! ends in `.` or an encoded space, and no `%3B` survives; the route of the canonical path is the route of its
//! canonical form; `canonical_query` is idempotent; a canonical host is lower
//! case, without trailing dot, and canonicalises to itself; a refused method
//! has a lower-case letter.

#![no_main]

use gatehouse_config::{EncodedSlashes, PathParameters, RouteConfig, TrailingDots};
use gatehouse_http::canonical::{canonical_host, canonical_path, canonical_query, canonicalise, PathRules, RawRequest, Refusal};
use gatehouse_http::router::Router;
use http::Method;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

const ROUTES: &str = r#"
[[routes]]
name = "public"
path_prefix = "/"
upstream = "app"
[[routes]]
name = "api"
path_prefix = "/api"
upstream = "app"
connectors = ["jwt"]
[[routes]]
name = "orders-write"
path_prefix = "/orders"
methods = ["POST", "PUT", "DELETE"]
upstream = "app"
connectors = ["jwt"]
[[routes]]
name = "admin"
host = "admin.local"
upstream = "app"
connectors = ["jwt"]
[[routes]]
name = "wild"
host = "*.example.com"
path_prefix = "/x/"
upstream = "app"
[[routes]]
name = "iis"
path_prefix = "/IIS/Admin"
path_case_insensitive = true
upstream = "app"
connectors = ["jwt"]
"#;

#[derive(serde::Deserialize)]
struct Routes {
    routes: Vec<RouteConfig>,
}

static ROUTER: LazyLock<Router> = LazyLock::new(|| {
    let r: Routes = toml::from_str(ROUTES).expect("fixture routes");
    Router::new(&r.routes)
});

static METHODS: LazyLock<Vec<Method>> = LazyLock::new(|| {
    ["GET", "POST", "post", "DELETE", "dElEtE", "PUT", "PATCH", "Get"]
        .iter()
        .map(|m| Method::from_bytes(m.as_bytes()).expect("fixture method"))
        .collect()
});

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn assert_canonical_shape(c: &str, raw: &[u8]) {
    let b = c.as_bytes();
    assert_eq!(b.first(), Some(&b'/'), "{raw:?} -> {c:?}: no leading slash");
    for bad in ["//", "/./", "/../"] {
        assert!(!c.contains(bad), "{raw:?} -> {c:?}: contains {bad}");
    }
    assert!(!c.ends_with("/.") && !c.ends_with("/.."), "{raw:?} -> {c:?}: dot segment at the end");
    assert!(!b.iter().any(|&x| x < 0x20 || x == 0x7f || x == b'\\'), "{raw:?} -> {c:?}: control byte or backslash");
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (h, l) = (b.get(i + 1).copied(), b.get(i + 2).copied());
            let (Some(h), Some(l)) = (h, l) else { panic!("{raw:?} -> {c:?}: truncated escape") };
            let (Some(hv), Some(lv)) = (hex(h), hex(l)) else { panic!("{raw:?} -> {c:?}: bad escape") };
            assert!(!h.is_ascii_lowercase() && !l.is_ascii_lowercase(), "{raw:?} -> {c:?}: lower-case hex");
            assert!(!is_unreserved(hv << 4 | lv), "{raw:?} -> {c:?}: encoded unreserved character");
            i += 3;
        } else {
            i += 1;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let rules = PathRules {
        encoded_slashes: if flags & 1 == 1 { EncodedSlashes::Keep } else { EncodedSlashes::Reject },
        path_parameters: if flags & 2 == 2 { PathParameters::Strip } else { PathParameters::Reject },
        trailing_dots: if flags & 4 == 4 { TrailingDots::Allow } else { TrailingDots::Reject },
    };
    let method = &METHODS[usize::from(flags >> 3) % METHODS.len()];
    let (target, host) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };

    // The path alone.
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if let Ok(c) = canonical_path(path, rules) {
        assert_canonical_shape(&c, path);
        assert!(!c.contains("%3B"), "{path:?} -> {c:?}: an escaped ';' survived");
        if rules.trailing_dots == TrailingDots::Reject {
            for seg in c.split('/') {
                assert!(
                    !(seg.ends_with('.') || seg.ends_with("%20")),
                    "{path:?} -> {c:?}: segment {seg:?} ends in a dot or a space"
                );
            }
        }
        let again = canonical_path(c.as_bytes(), rules).unwrap_or_else(|e| panic!("{path:?} -> {c:?} refused on the second pass: {e:?}"));
        assert_eq!(again, c, "{path:?}: not idempotent");
        for h in [None, Some("admin.local"), Some("a.example.com")] {
            assert_eq!(ROUTER.find(h, &c, method), ROUTER.find(h, &again, method), "{c:?}: route changes");
        }
    }

    // The whole request.
    let raw = RawRequest { method, target, uri_authority: None, needs_host: true };
    match canonicalise(raw, host.into_iter(), rules) {
        Ok(req) => {
            assert!(!method.as_str().bytes().any(|b| b.is_ascii_lowercase()), "method {method} accepted");
            assert_canonical_shape(&req.path, target);
            if let Some(q) = &req.query {
                let again = canonical_query(q.as_bytes()).expect("canonical query refused on the second pass");
                assert_eq!(&again, q, "query not idempotent");
            }
            if let Some(h) = &req.host {
                assert!(!h.name.bytes().any(|b| b.is_ascii_uppercase()), "host {:?} not lower case", h.name);
                assert!(!h.name.ends_with('.'), "host {:?} has a trailing dot", h.name);
                let spelled = h.header_value();
                let again = canonical_host(spelled.as_bytes()).expect("canonical host refused on the second pass");
                assert_eq!(&again, h, "host not idempotent");
            }
            let _ = ROUTER.find(req.host.as_ref().map(|h| h.name.as_ref()), &req.path, method);
        }
        Err(Refusal::InvalidMethod) => {
            assert!(method.as_str().bytes().any(|b| b.is_ascii_lowercase()), "method {method} refused");
        }
        Err(_) => {}
    }
});
