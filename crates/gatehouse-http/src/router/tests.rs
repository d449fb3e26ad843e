//! Router tests: behaviour, the readings proptest, and a differential proptest
//! against the linear reference the indexed router replaced.
#![allow(clippy::unwrap_used)]
use super::*;

fn route(name: &str, prefix: &str, host: Option<&str>, methods: Option<&[&str]>) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        path_prefix: prefix.into(),
        host: host.map(Into::into),
        methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
        upstream: "u".into(),
        connectors: vec![],
        path_case_insensitive: false,
        upgrades: Vec::new(),
        limits: Vec::new(),
        cors: None,
        rewrite_prefix: None,
        request_headers: None,
        response_headers: None,
    }
}

fn table() -> (Vec<RouteConfig>, Router) {
    let routes = vec![
        route("root", "/", None, None),
        route("orders", "/orders", None, None),
        route("orders-items", "/orders/items", None, None),
        route("orders-write", "/orders", None, Some(&["POST", "PUT"])),
        route("api-orders", "/orders", Some("api.example.com"), None),
        route("wild", "/", Some("*.example.com"), None),
        route("deep-wild", "/", Some("*.eu.example.com"), None),
        route("slash", "/static/", None, None),
    ];
    let r = Router::new(&routes);
    (routes, r)
}

fn name<'a>(
    routes: &'a [RouteConfig],
    r: &Router,
    host: Option<&str>,
    path: &str,
    m: Method,
) -> Option<&'a str> {
    r.find(host, path, &m).map(|i| routes[i].name.as_str())
}

#[test]
fn longest_prefix_wins() {
    let (routes, r) = table();
    assert_eq!(
        name(&routes, &r, None, "/orders/items/7", Method::GET),
        Some("orders-items")
    );
    assert_eq!(
        name(&routes, &r, None, "/orders/7", Method::GET),
        Some("orders")
    );
    assert_eq!(
        name(&routes, &r, None, "/orders", Method::GET),
        Some("orders")
    );
    assert_eq!(name(&routes, &r, None, "/other", Method::GET), Some("root"));
}

#[test]
fn prefixes_match_whole_segments() {
    let (routes, r) = table();
    assert_eq!(
        name(&routes, &r, None, "/orders-old", Method::GET),
        Some("root")
    );
    assert_eq!(
        name(&routes, &r, None, "/ordersx/1", Method::GET),
        Some("root")
    );
    assert_eq!(
        name(&routes, &r, None, "/static/a.css", Method::GET),
        Some("slash")
    );
    assert_eq!(
        name(&routes, &r, None, "/static", Method::GET),
        Some("root")
    );
}

#[test]
fn method_specific_route_beats_generic_with_same_prefix() {
    let (routes, r) = table();
    assert_eq!(
        name(&routes, &r, None, "/orders/1", Method::POST),
        Some("orders-write")
    );
    assert_eq!(
        name(&routes, &r, None, "/orders/1", Method::DELETE),
        Some("orders")
    );
}

#[test]
fn exact_host_then_wildcard_then_any() {
    let (routes, r) = table();
    assert_eq!(
        name(
            &routes,
            &r,
            Some("API.Example.com:8443"),
            "/orders/1",
            Method::GET
        ),
        Some("api-orders")
    );
    // Exact host group has no route for /x: fall through to the wildcard.
    assert_eq!(
        name(&routes, &r, Some("api.example.com"), "/x", Method::GET),
        Some("wild")
    );
    assert_eq!(
        name(
            &routes,
            &r,
            Some("shop.example.com"),
            "/orders",
            Method::GET
        ),
        Some("wild")
    );
    assert_eq!(
        name(&routes, &r, Some("a.eu.example.com"), "/", Method::GET),
        Some("deep-wild")
    );
    // The bare domain does not match *.example.com.
    assert_eq!(
        name(&routes, &r, Some("example.com"), "/orders", Method::GET),
        Some("orders")
    );
    assert_eq!(
        name(&routes, &r, None, "/orders", Method::GET),
        Some("orders")
    );
}

#[test]
fn no_route() {
    let routes = vec![route("only", "/only", Some("a.test"), Some(&["GET"]))];
    let r = Router::new(&routes);
    assert_eq!(r.find(Some("a.test"), "/only", &Method::POST), None);
    assert_eq!(r.find(Some("b.test"), "/only", &Method::GET), None);
    assert_eq!(r.find(None, "/only", &Method::GET), None);
    assert_eq!(r.find(Some("a.test"), "/only/x", &Method::GET), Some(0));
}

#[test]
fn host_port_stripping() {
    assert_eq!(host_without_port("a.test:80"), "a.test");
    assert_eq!(host_without_port("[::1]:80"), "[::1]");
    assert_eq!(host_without_port("a.test"), "a.test");
}

#[test]
fn case_insensitive_prefix_is_opt_in() {
    let mut ci = route("api", "/api", None, None);
    ci.path_case_insensitive = true;
    let routes = vec![
        route("root", "/", None, None),
        ci,
        route("adm", "/Admin", None, None),
    ];
    let r = Router::new(&routes);
    assert_eq!(
        name(&routes, &r, None, "/API/secret", Method::GET),
        Some("api")
    );
    assert_eq!(name(&routes, &r, None, "/aPi", Method::GET), Some("api"));
    assert_eq!(name(&routes, &r, None, "/apix", Method::GET), Some("root"));
    assert_eq!(
        name(&routes, &r, None, "/admin/x", Method::GET),
        Some("root")
    );
    assert_eq!(
        name(&routes, &r, None, "/Admin/x", Method::GET),
        Some("adm")
    );
}

mod readings {
    //! A request never matches a route that its canonical form does not
    //! match, and the route of the canonical form is the route under the
    //! readings upstream servers apply (decode once, backslash as slash,
    //! dot-segment removal, slash merging, `;` stripping).
    use super::*;
    use crate::canonical::{canonical_path, PathRules};
    use gatehouse_config::{EncodedSlashes, PathParameters, TrailingDots};
    use proptest::prelude::*;

    /// Decode every escape once, `\` as `/`, strip `;…` per segment,
    /// remove dot segments, merge slashes.
    fn lenient(raw: &[u8]) -> String {
        let mut dec = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if raw[i] == b'%' && i + 2 < raw.len() {
                if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                    dec.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            dec.push(if raw[i] == b'\\' { b'/' } else { raw[i] });
            i += 1;
        }
        for b in &mut dec {
            if *b == b'\\' {
                *b = b'/';
            }
        }
        let text = String::from_utf8_lossy(&dec).into_owned();
        let mut out: Vec<&str> = Vec::new();
        let segs: Vec<&str> = text.split('/').collect();
        let mut trailing = false;
        for (j, seg) in segs.iter().enumerate().skip(1) {
            let seg = seg.split(';').next().unwrap_or("");
            // Windows drops trailing dots and spaces of a segment.
            let seg = if seg == "." || seg == ".." {
                seg
            } else {
                seg.trim_end_matches(['.', ' '])
            };
            let last = j == segs.len() - 1;
            match seg {
                "" | "." => trailing = last,
                ".." => {
                    out.pop();
                    trailing = last;
                }
                s => {
                    out.push(s);
                    trailing = false;
                }
            }
        }
        let mut p = String::new();
        for s in &out {
            p.push('/');
            p.push_str(s);
        }
        if trailing || out.is_empty() {
            p.push('/');
        }
        p
    }

    fn raw_path() -> impl Strategy<Value = Vec<u8>> {
        let atom = prop_oneof![
            Just(&b"/"[..]),
            Just(&b"//"[..]),
            Just(&b"."[..]),
            Just(&b".."[..]),
            Just(&b"%2e"[..]),
            Just(&b"%2f"[..]),
            Just(&b"%5c"[..]),
            Just(&b"\\"[..]),
            Just(&b";x=1"[..]),
            Just(&b"%3b"[..]),
            Just(&b"%3B"[..]),
            Just(&b" "[..]),
            Just(&b"%61"[..]),
            Just(&b"%25"[..]),
            Just(&b"%70"[..]),
            Just(&b"api"[..]),
            Just(&b"orders"[..]),
            Just(&b"a"[..]),
            Just(&b"pi"[..]),
            Just(&b"secret"[..]),
            Just(&b"%20"[..]),
        ];
        prop::collection::vec(atom, 0..10).prop_map(|v| {
            let mut p = b"/".to_vec();
            for a in v {
                p.extend_from_slice(a);
            }
            p
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
        #[test]
        fn canonical_route_is_the_route_of_every_reading(raw in raw_path(), strip in any::<bool>()) {
            let routes = vec![
                route("public", "/", None, None),
                route("api", "/api", None, None),
                route("orders", "/orders", None, None),
                route("a-api", "/a/api", None, None),
            ];
            let r = Router::new(&routes);
            let rules = PathRules {
                encoded_slashes: EncodedSlashes::Reject,
                path_parameters: if strip { PathParameters::Strip } else { PathParameters::Reject },
                trailing_dots: TrailingDots::Reject,
            };
            if let Ok(c) = canonical_path(&raw, rules) {
                let routed = r.find(None, &c, &Method::GET);
                prop_assert_eq!(routed, r.find(None, &lenient(c.as_bytes()), &Method::GET), "canonical {} read leniently", c);
                prop_assert_eq!(routed, r.find(None, &lenient(&raw), &Method::GET), "raw {} read leniently", String::from_utf8_lossy(&raw));
                let twice = canonical_path(c.as_bytes(), rules).unwrap();
                prop_assert_eq!(routed, r.find(None, &twice, &Method::GET));
            }
        }
    }
}

mod differential {
    //! The indexed router answers exactly as the linear scan it replaced:
    //! exact hosts, then suffixes longest first, then any host; in a group,
    //! entries by prefix length, method-listed first, then config order.
    use super::*;
    use proptest::prelude::*;

    fn reference(
        routes: &[RouteConfig],
        host: Option<&str>,
        path: &str,
        m: &Method,
    ) -> Option<usize> {
        fn covers(prefix: &str, path: &str, ci: bool) -> bool {
            if prefix == "/" {
                return true;
            }
            let (p, b) = (prefix.as_bytes(), path.as_bytes());
            if b.len() < p.len() {
                return false;
            }
            let (head, rest) = b.split_at(p.len());
            let same = if ci {
                head.eq_ignore_ascii_case(p)
            } else {
                head == p
            };
            same && (rest.is_empty() || p.ends_with(b"/") || rest.starts_with(b"/"))
        }
        let host = host.map(host_without_port);
        // (group order key, prefix length desc, methods first, config order)
        let mut candidates: Vec<((u8, usize), usize, bool, usize)> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let group = match r.host.as_deref().map(normalize_host_pattern) {
                None => Some((2, 0)),
                Some(h) => match (h.strip_prefix('*'), host) {
                    (Some(s), Some(req)) => (req.len() > s.len()
                        && req.is_char_boundary(req.len() - s.len())
                        && req[req.len() - s.len()..].eq_ignore_ascii_case(s))
                    .then_some((1, usize::MAX - s.len())),
                    (None, Some(req)) => h.eq_ignore_ascii_case(req).then_some((0, 0)),
                    _ => None,
                },
            };
            let Some(g) = group else { continue };
            let method_ok = r
                .methods
                .as_ref()
                .is_none_or(|ms| ms.iter().any(|x| x == m.as_str()));
            if covers(&r.path_prefix, path, r.path_case_insensitive) && method_ok {
                candidates.push((g, usize::MAX - r.path_prefix.len(), r.methods.is_none(), i));
            }
        }
        candidates.into_iter().min().map(|c| c.3)
    }

    fn routes() -> impl Strategy<Value = Vec<RouteConfig>> {
        let host = prop::sample::select(vec![
            None,
            Some("api.example.com"),
            Some("API.example.com"),
            Some("*.example.com"),
            Some("*.eu.example.com"),
            Some("other.test:8443"),
        ]);
        let prefix = prop::sample::select(vec![
            "/", "/a", "/a/", "/a/b", "/A", "/b", "/a/b/c", "/static/",
        ]);
        let methods =
            prop::sample::select(vec![None, Some(vec!["GET"]), Some(vec!["POST", "PUT"])]);
        prop::collection::vec((host, prefix, methods, any::<bool>()), 0..12).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (h, p, m, ci))| {
                    let mut r = route(&format!("r{i}"), p, h, None);
                    r.methods = m.map(|ms| ms.iter().map(|s| s.to_string()).collect());
                    r.path_case_insensitive = ci;
                    r
                })
                .collect()
        })
    }

    fn request() -> impl Strategy<Value = (Option<&'static str>, String, Method)> {
        let host = prop::sample::select(vec![
            None,
            Some("api.example.com"),
            Some("API.Example.com:8080"),
            Some("x.example.com"),
            Some("x.eu.example.com"),
            Some("eu.example.com"),
            Some("example.com"),
            Some(".example.com"),
            Some("other.test"),
        ]);
        let seg = prop::sample::select(vec!["a", "A", "b", "c", "static", ""]);
        let path = prop::collection::vec(seg, 0..5).prop_map(|s| format!("/{}", s.join("/")));
        let method = prop::sample::select(vec![Method::GET, Method::POST, Method::DELETE]);
        (host, path, method)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
        #[test]
        fn indexed_router_answers_as_the_linear_scan(table in routes(), reqs in prop::collection::vec(request(), 1..8)) {
            let r = Router::new(&table);
            for (host, path, m) in reqs {
                prop_assert_eq!(r.find(host, &path, &m), reference(&table, host, &path, &m), "{:?} {} {}", host, path, m);
            }
        }
    }
}
