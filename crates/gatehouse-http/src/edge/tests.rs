#![allow(clippy::unwrap_used)]
use super::*;
use crate::canonical::{canonical_path, PathRules};
use gatehouse_config::check_rewrite_prefix;
use gatehouse_config::{EncodedSlashes, PathParameters, TrailingDots};
use proptest::prelude::*;

#[test]
fn prefix_rewrites_on_whole_segments() {
    let r = PrefixRewrite::new("/v1/orders", "/internal/orders", false);
    assert_eq!(r.apply("/v1/orders").unwrap(), "/internal/orders");
    assert_eq!(r.apply("/v1/orders/").unwrap(), "/internal/orders/");
    assert_eq!(r.apply("/v1/orders/7").unwrap(), "/internal/orders/7");
    assert_eq!(r.apply("/v1/orders-old"), None);
    assert_eq!(r.apply("/v1/Orders/7"), None);
    assert_eq!(r.apply("/v1"), None);

    let strip = PrefixRewrite::new("/v1/orders", "", false);
    assert_eq!(strip.apply("/v1/orders").unwrap(), "/");
    assert_eq!(strip.apply("/v1/orders/7").unwrap(), "/7");

    // A prefix written with a trailing slash, and a root route.
    let slash = PrefixRewrite::new("/static/", "/assets/", false);
    assert_eq!(slash.apply("/static/app.js").unwrap(), "/assets/app.js");
    let root = PrefixRewrite::new("/", "/api", false);
    assert_eq!(root.apply("/x/y").unwrap(), "/api/x/y");
    assert_eq!(root.apply("/").unwrap(), "/api/");

    // A case-insensitive route rewrites whatever case matched.
    let ci = PrefixRewrite::new("/API", "/internal", true);
    assert_eq!(ci.apply("/api/x").unwrap(), "/internal/x");
}

#[test]
fn header_rules_match_every_spelling() {
    let c = HeaderRulesConfig {
        set: [("X-Env".to_string(), "prod".to_string())].into(),
        remove: vec!["X-Debug".into()],
    };
    let e = HeaderEdit::new(&c);
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("x-env", "dev"),
        ("x_env", "dev"),
        ("x-debug", "1"),
        ("x.debug", "1"),
        ("x-debugger", "kept"),
        ("accept", "*/*"),
    ] {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_static(v),
        );
    }
    e.apply(&mut h);
    let mut names: Vec<_> = h.keys().map(|n| n.as_str().to_string()).collect();
    names.sort();
    assert_eq!(names, ["accept", "x-debugger", "x-env"]);
    assert_eq!(h.get_all("x-env").iter().count(), 1);
    assert_eq!(h["x-env"], "prod");
    assert!(!e.is_empty());
    assert!(HeaderEdit::new(&HeaderRulesConfig::default()).is_empty());
}

const RULES: [PathRules; 2] = [
    PathRules {
        encoded_slashes: EncodedSlashes::Reject,
        path_parameters: PathParameters::Reject,
        trailing_dots: TrailingDots::Reject,
    },
    PathRules {
        encoded_slashes: EncodedSlashes::Keep,
        path_parameters: PathParameters::Strip,
        trailing_dots: TrailingDots::Allow,
    },
];

fn raw_path() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop_oneof![
        Just(b"/".to_vec()),
        Just(b"//".to_vec()),
        Just(b".".to_vec()),
        Just(b"..".to_vec()),
        Just(b"%2e".to_vec()),
        Just(b"%2f".to_vec()),
        Just(b"%5C".to_vec()),
        Just(b"%25".to_vec()),
        Just(b"%3b".to_vec()),
        Just(b";".to_vec()),
        "[a-zA-Z0-9~:@!$&'()*+,=_-]{1,3}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(atom, 0..12).prop_map(|parts| {
        let mut p = b"/".to_vec();
        p.extend(parts.concat());
        p
    })
}

fn rewrite_prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("/".to_string()),
        prop::collection::vec("[a-zA-Z0-9._~!$&'()*+,=:@-]{1,6}", 1..4)
            .prop_map(|segs| format!("/{}", segs.join("/"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// A canonical path rewritten with any valid prefix, at any segment
    /// boundary, is canonical again: no `..`, `//` or encoded slash appears
    /// that the canonical path did not already have.
    #[test]
    fn a_rewrite_keeps_the_path_canonical(
        raw in raw_path(),
        to in rewrite_prefix(),
        cut in 0usize..8,
        lax in any::<bool>(),
        trailing in any::<bool>(),
    ) {
        prop_assume!(check_rewrite_prefix(&to).is_ok());
        let rules = RULES[usize::from(lax)];
        let Ok(canon) = canonical_path(&raw, rules) else { return Ok(()) };
        // The route's prefix: the first `cut` segments of the path.
        let ends: Vec<usize> = canon
            .match_indices('/')
            .map(|(i, _)| i)
            .chain([canon.len()])
            .skip(1)
            .collect();
        let end = ends[cut.min(ends.len() - 1)];
        let mut from = canon[..end].to_string();
        if from.is_empty() || cut == 7 { from = "/".to_string() }
        if trailing && !from.ends_with('/') && end < canon.len() { from.push('/') }
        let out = PrefixRewrite::new(&from, &to, false).apply(&canon).unwrap();
        let again = canonical_path(out.as_bytes(), rules).unwrap();
        prop_assert_eq!(&again, &out, "not canonical: {} (from {}, {} -> {})", out, canon, from, to);
        prop_assert!(out.starts_with('/'));
        prop_assert!(!out.contains("//"), "{}", out);
        prop_assert!(!out.contains("/../") && !out.ends_with("/.."), "{}", out);
        let slashes = |s: &str| s.matches("%2F").count() + s.matches("%5C").count();
        prop_assert!(slashes(&out) <= slashes(&canon), "{} from {}", out, canon);
    }
}
