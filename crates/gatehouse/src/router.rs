//! Route matching: host (exact, then `*.suffix`, then any), longest
//! whole-segment path prefix, method. Built once per config; lookups do not
//! allocate.

use gatehouse_config::{normalize_host_pattern, RouteConfig};
use http::Method;

#[derive(Debug, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
    Any,
}

#[derive(Debug)]
struct Entry {
    prefix: String,
    /// Compare the prefix ignoring ASCII case.
    case_insensitive: bool,
    methods: Option<Vec<Method>>,
    route: usize,
}

#[derive(Debug)]
struct Group {
    host: HostMatch,
    /// Longest prefix first.
    entries: Vec<Entry>,
}

/// A compiled routing table.
#[derive(Debug, Default)]
pub struct Router {
    /// Exact hosts, then suffixes (longest first), then the any-host group.
    groups: Vec<Group>,
}

/// True when `prefix` covers `path` on whole segments.
fn prefix_matches(prefix: &str, path: &str, case_insensitive: bool) -> bool {
    if prefix == "/" {
        return true;
    }
    let (p, b) = (prefix.as_bytes(), path.as_bytes());
    if b.len() < p.len() {
        return false;
    }
    let (head, rest) = b.split_at(p.len());
    let same = if case_insensitive {
        head.eq_ignore_ascii_case(p)
    } else {
        head == p
    };
    same && (rest.is_empty() || p.ends_with(b"/") || rest.starts_with(b"/"))
}

/// Drops a `:port` suffix (keeps IPv6 literals intact).
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

impl Router {
    /// Builds the table; route indexes are positions in `routes`.
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let host = match r.host.as_deref().map(normalize_host_pattern) {
                None => HostMatch::Any,
                Some(h) => match h.strip_prefix('*') {
                    Some(suffix) => HostMatch::Suffix(suffix.to_string()),
                    None => HostMatch::Exact(h),
                },
            };
            let entry = Entry {
                prefix: r.path_prefix.clone(),
                case_insensitive: r.path_case_insensitive,
                methods: r.methods.as_ref().map(|ms| {
                    ms.iter()
                        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                        .collect()
                }),
                route: i,
            };
            match groups.iter_mut().find(|g| g.host == host) {
                Some(g) => g.entries.push(entry),
                None => groups.push(Group {
                    host,
                    entries: vec![entry],
                }),
            }
        }
        for g in &mut groups {
            // Longest prefix first; among equals, routes with a method list first.
            g.entries.sort_by(|a, b| {
                b.prefix
                    .len()
                    .cmp(&a.prefix.len())
                    .then(b.methods.is_some().cmp(&a.methods.is_some()))
            });
        }
        groups.sort_by_key(|g| match &g.host {
            HostMatch::Exact(_) => (0, 0),
            HostMatch::Suffix(s) => (1, usize::MAX - s.len()),
            HostMatch::Any => (2, 0),
        });
        Self { groups }
    }

    /// Finds the route for a request. The most specific host group that has
    /// a matching route wins; within it, the longest prefix.
    pub fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Option<usize> {
        let host = host.map(host_without_port);
        for g in &self.groups {
            let host_ok = match (&g.host, host) {
                (HostMatch::Any, _) => true,
                (HostMatch::Exact(h), Some(req)) => h.eq_ignore_ascii_case(req),
                (HostMatch::Suffix(s), Some(req)) => {
                    req.len() > s.len()
                        && req.is_char_boundary(req.len() - s.len())
                        && req[req.len() - s.len()..].eq_ignore_ascii_case(s)
                }
                _ => false,
            };
            if !host_ok {
                continue;
            }
            let found = g.entries.iter().find(|e| {
                prefix_matches(&e.prefix, path, e.case_insensitive)
                    && e.methods.as_ref().is_none_or(|ms| ms.contains(method))
            });
            if let Some(e) = found {
                return Some(e.route);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn route(
        name: &str,
        prefix: &str,
        host: Option<&str>,
        methods: Option<&[&str]>,
    ) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            path_prefix: prefix.into(),
            host: host.map(Into::into),
            methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
            upstream: "u".into(),
            connectors: vec![],
            path_case_insensitive: false,
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
        use gatehouse_config::{EncodedSlashes, PathParameters};
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
}
