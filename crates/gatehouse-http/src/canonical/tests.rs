#![allow(clippy::unwrap_used)]
use super::*;
use proptest::prelude::*;

const STRICT: PathRules = PathRules {
    encoded_slashes: EncodedSlashes::Reject,
    path_parameters: PathParameters::Reject,
    trailing_dots: TrailingDots::Reject,
};
const LAX: PathRules = PathRules {
    encoded_slashes: EncodedSlashes::Keep,
    path_parameters: PathParameters::Strip,
    trailing_dots: TrailingDots::Allow,
};

fn canon(p: &str) -> Result<String, Refusal> {
    canonical_path(p.as_bytes(), STRICT).map(|c| c.into_owned())
}

#[test]
fn canonical_paths_stay_borrowed() {
    for p in [
        "/",
        "/api",
        "/api/secret",
        "/a/b/",
        "/.well-known/x",
        "/a/..b",
        "/e2e~x",
    ] {
        assert!(
            matches!(canonical_path(p.as_bytes(), STRICT), Ok(Cow::Borrowed(_))),
            "{p}"
        );
    }
}

#[test]
fn normalisation() {
    let cases = [
        ("/%61pi/secret", "/api/secret"),
        ("//api/secret", "/api/secret"),
        ("/api//secret//", "/api/secret/"),
        ("/x/../api/secret", "/api/secret"),
        ("/x/%2e%2E/api/secret", "/api/secret"),
        ("/x/.%2e/api", "/api"),
        ("/./api", "/api"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/..", "/"),
        ("/../../api", "/api"),
        ("/a/%7e/%7Euser", "/a/~/~user"),
        ("/a%3ab", "/a%3Ab"),
        ("/a%3Ab", "/a%3Ab"),
        ("/a b", "/a%20b"),
        ("/a\"<>{}|^`", "/a%22%3C%3E%7B%7D%7C%5E%60"),
        ("/caf\u{e9}", "/caf%C3%A9"),
        ("/%41PI", "/API"),
        ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
    ];
    for (input, want) in cases {
        assert_eq!(canon(input).as_deref(), Ok(want), "{input}");
    }
}

#[test]
fn refusals() {
    let cases = [
        ("/api%2fsecret", Refusal::EncodedSlash),
        ("/api%2Fsecret", Refusal::EncodedSlash),
        ("/x/..%2fapi/secret", Refusal::EncodedSlash),
        ("/api%5csecret", Refusal::EncodedSlash),
        ("/x/..\\api/secret", Refusal::Backslash),
        ("/\\api", Refusal::Backslash),
        ("/api%00", Refusal::ControlByte),
        ("/api%0a", Refusal::ControlByte),
        ("/api%7F", Refusal::ControlByte),
        ("/api\u{1}", Refusal::ControlByte),
        ("/api%", Refusal::BadEscape),
        ("/api%4", Refusal::BadEscape),
        ("/api%zz", Refusal::BadEscape),
        ("/%2561pi/secret", Refusal::DoubleEncoding),
        ("/api%252fsecret", Refusal::DoubleEncoding),
        ("/%25%36%31pi", Refusal::DoubleEncoding),
        ("/api;x=1/secret", Refusal::PathParameter),
        ("/x/..;/api/secret", Refusal::PathParameter),
        ("/api;", Refusal::PathParameter),
        ("/api%3B/secret", Refusal::PathParameter),
        ("/public/..%3B/api/secret", Refusal::PathParameter),
        ("/api%3bx", Refusal::PathParameter),
        ("/api./secret", Refusal::TrailingDot),
        ("/api%2e/secret", Refusal::TrailingDot),
        ("/api%2E", Refusal::TrailingDot),
        ("/api%20/secret", Refusal::TrailingDot),
        ("/api /secret", Refusal::TrailingDot),
        ("/api.%20./secret", Refusal::TrailingDot),
        ("/a/..%2e", Refusal::TrailingDot),
        ("/a/...", Refusal::TrailingDot),
        ("/api::$INDEX_ALLOCATION/secret", Refusal::StreamName),
        ("/api:$i30:$INDEX_ALLOCATION/secret", Refusal::StreamName),
        ("/secret.aspx::$DATA", Refusal::StreamName),
        ("/api%3A%3A%24DATA/x", Refusal::StreamName),
        ("/api:%24DATA", Refusal::StreamName),
        ("api", Refusal::InvalidTarget),
    ];
    for (input, want) in cases {
        assert_eq!(canon(input), Err(want), "{input}");
    }
    // A lone encoded percent is data, not double encoding.
    assert_eq!(canon("/100%25").as_deref(), Ok("/100%25"));
    assert_eq!(canon("/100%25x").as_deref(), Ok("/100%25x"));
}

#[test]
fn lax_rules_keep_slashes_opaque_and_strip_parameters() {
    let c = |p: &str| canonical_path(p.as_bytes(), LAX).map(|c| c.into_owned());
    assert_eq!(c("/api%2fsecret").as_deref(), Ok("/api%2Fsecret"));
    assert_eq!(c("/a/..%2f..").as_deref(), Ok("/a/..%2F.."));
    assert_eq!(c("/api;x=1/secret").as_deref(), Ok("/api/secret"));
    assert_eq!(c("/x/..;/api/secret").as_deref(), Ok("/api/secret"));
    assert_eq!(c("/a;jsessionid=1").as_deref(), Ok("/a"));
    assert_eq!(c("/a\\b"), Err(Refusal::Backslash));
    // `%3B` is stripped like `;`: one decoding hop must not make it a parameter.
    assert_eq!(c("/api%3Bx=1/secret").as_deref(), Ok("/api/secret"));
    assert_eq!(c("/public/..%3b/api/secret").as_deref(), Ok("/api/secret"));
    // Trailing dots and spaces allowed: kept as they are.
    assert_eq!(c("/api./secret").as_deref(), Ok("/api./secret"));
    assert_eq!(c("/api%20").as_deref(), Ok("/api%20"));
}

#[test]
fn dot_segments_and_inner_dots_still_pass() {
    for (input, want) in [
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/.well-known/x", "/.well-known/x"),
        ("/a.b/c", "/a.b/c"),
        ("/a/..b", "/a/..b"),
        ("/a%20b", "/a%20b"),
        ("/a:b/c$d", "/a:b/c$d"),
        ("/a%3Ab%24c", "/a%3Ab%24c"),
    ] {
        assert_eq!(canon(input).as_deref(), Ok(want), "{input}");
    }
}

#[test]
fn targets() {
    let t = split_target(b"/a/b?x=1#frag").unwrap();
    assert_eq!(
        (t.authority, t.path, t.query),
        (None, &b"/a/b"[..], Some(&b"x=1"[..]))
    );
    let t = split_target(b"HTTP://Admin.Local:8080/secret?q").unwrap();
    assert_eq!(t.authority, Some(&b"Admin.Local:8080"[..]));
    assert_eq!(t.path, b"/secret");
    let t = split_target(b"https://admin.local").unwrap();
    assert_eq!(
        (t.authority, t.path),
        (Some(&b"admin.local"[..]), &b"/"[..])
    );
    let t = split_target(b"http://admin.local?x").unwrap();
    assert_eq!((t.path, t.query), (&b"/"[..], Some(&b"x"[..])));
    for bad in [&b"*"[..], b"admin.local:443", b"ftp://x/", b"", b"api/x"] {
        assert_eq!(split_target(bad), Err(Refusal::InvalidTarget), "{bad:?}");
    }
}

#[test]
fn queries() {
    assert!(matches!(
        canonical_query(b"a=1&b=%2F"),
        Ok(Cow::Borrowed("a=1&b=%2F"))
    ));
    assert_eq!(canonical_query(b"a=b c").unwrap(), "a=b%20c");
    assert_eq!(canonical_query(b"a=\xc3\xa9").unwrap(), "a=%C3%A9");
    assert_eq!(canonical_query(b"a=\x00"), Err(Refusal::ControlByte));
}

#[test]
fn methods() {
    for m in ["GET", "POST", "PROPFIND", "M-SEARCH"] {
        assert!(
            check_method(&Method::from_bytes(m.as_bytes()).unwrap()).is_ok(),
            "{m}"
        );
    }
    for m in ["post", "Post", "dElEtE", "get", "purge"] {
        assert_eq!(
            check_method(&Method::from_bytes(m.as_bytes()).unwrap()),
            Err(Refusal::InvalidMethod),
            "{m}"
        );
    }
}

#[test]
fn hosts() {
    let h = |s: &str| canonical_host(s.as_bytes()).map(|h| (h.name.into_owned(), h.port));
    assert_eq!(h("admin.local"), Ok(("admin.local".into(), None)));
    assert_eq!(h("ADMIN.Local."), Ok(("admin.local".into(), None)));
    assert_eq!(
        h("admin.local.:8080"),
        Ok(("admin.local".into(), Some(8080)))
    );
    assert_eq!(h("admin.local:"), Ok(("admin.local".into(), None)));
    assert_eq!(h("[::1]:80"), Ok(("[::1]".into(), Some(80))));
    assert_eq!(h("10.0.0.1"), Ok(("10.0.0.1".into(), None)));
    for bad in [
        "",
        ".",
        "admin.local..",
        "user@admin.local",
        "admin.local:99999",
        "admin.local:8o",
        "admin local",
        "[::1",
        "[]",
        "a..b",
        ".a",
        "admin.local:80:80",
        "adm\u{e9}n",
    ] {
        assert_eq!(
            canonical_host(bad.as_bytes()).map(|_| ()),
            Err(Refusal::InvalidHost),
            "{bad:?}"
        );
    }
    assert!(matches!(
        canonical_host(b"api.example.com").unwrap().name,
        Cow::Borrowed(_)
    ));
    assert_eq!(
        canonical_host(b"Admin.Local.:81").unwrap().header_value(),
        "admin.local:81"
    );
}

/// Reads a path the way a lenient upstream might: decode every escape once.
fn decode_all(p: &str) -> Vec<u8> {
    let b = p.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn path_strategy() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop_oneof![
        Just(b"/".to_vec()),
        Just(b"//".to_vec()),
        Just(b".".to_vec()),
        Just(b"..".to_vec()),
        Just(b"%2e".to_vec()),
        Just(b"%2E".to_vec()),
        Just(b"%2f".to_vec()),
        Just(b"%5C".to_vec()),
        Just(b"%25".to_vec()),
        Just(b"%61".to_vec()),
        Just(b"%3b".to_vec()),
        Just(b";".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"api".to_vec()),
        Just(b"API".to_vec()),
        Just(b"%".to_vec()),
        "[a-zA-Z0-9~:@!$&'()*+,=_-]{1,3}".prop_map(String::into_bytes),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(atom, 0..12).prop_map(|parts| {
        let mut p = b"/".to_vec();
        for a in parts {
            p.extend(a);
        }
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn canonical_form_is_a_fixed_point_and_clean(raw in path_strategy(), lax in any::<bool>()) {
        let rules = if lax { LAX } else { STRICT };
        if let Ok(c) = canonical_path(&raw, rules) {
            let again = canonical_path(c.as_bytes(), rules).unwrap();
            prop_assert_eq!(&again, &c, "idempotent");
            prop_assert!(c.starts_with('/'));
            prop_assert!(!c.contains("//"), "{}", c);
            prop_assert!(!c.contains("/./") && !c.ends_with("/."), "{}", c);
            prop_assert!(!c.contains("/../") && !c.ends_with("/.."), "{}", c);
            prop_assert!(c.bytes().all(|b| b.is_ascii_graphic()), "{}", c);
            prop_assert!(!c.contains('\\'));
            if !lax {
                prop_assert!(!c.contains(';'));
            }
            // Every escape is upper-case hex of a byte that is not unreserved.
            let b = c.as_bytes();
            for (i, _) in c.match_indices('%') {
                let (h, l) = (b[i + 1], b[i + 2]);
                prop_assert!(h.is_ascii_digit() || h.is_ascii_uppercase());
                prop_assert!(l.is_ascii_digit() || l.is_ascii_uppercase());
                let v = (hex_val(h).unwrap() << 4) | hex_val(l).unwrap();
                prop_assert!(!is_unreserved(v), "{}", c);
                prop_assert!(v >= 0x20 && v != 0x7f);
            }
            // A second decoding cannot reveal dot segments, slashes or escapes.
            if !lax {
                let dec = decode_all(&c);
                prop_assert!(!dec.contains(&b'\\'));
                prop_assert_eq!(dec.iter().filter(|&&x| x == b'/').count(), c.matches('/').count());
                prop_assert!(!dec.windows(3).any(|w| w[0] == b'%' && hex_val(w[1]).is_some() && hex_val(w[2]).is_some()));
            }
        }
    }

    #[test]
    fn hosts_are_idempotent(raw in "[a-zA-Z0-9.:_\\-\\[\\]]{0,20}") {
        if let Ok(h) = canonical_host(raw.as_bytes()) {
            let v = h.header_value();
            let again = canonical_host(v.as_bytes()).unwrap();
            prop_assert_eq!(again.header_value(), v.clone());
            prop_assert!(!h.name.ends_with('.') || h.name.len() == 1);
            prop_assert!(!h.name.bytes().any(|b| b.is_ascii_uppercase()));
        }
    }
}
