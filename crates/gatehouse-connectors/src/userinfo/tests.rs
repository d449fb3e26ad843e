use super::*;
use crate::kit::answer_cache::{cache_window, unverified_exp};
use crate::outbound::form_encode;
use crate::Rejection;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_config::ConfigError;
use gatehouse_testkit::{MockIdp, MockResponse};
use http::{HeaderMap, HeaderValue, Method, Uri};
use std::time::Duration;

async fn build_all(body: &str) -> Result<Arc<dyn Connector>, ConfigErrors> {
    let settings: toml::Table = toml::from_str(body).expect("test TOML");
    UserinfoFactory::default()
        .build(BuildContext {
            name: "u".into(),
            path: "connectors.u".into(),
            settings,
            metrics: prometheus::Registry::new(),
            shared_caches: Default::default(),
        })
        .await
}

/// The first error (sections report every error; most tests break one key).
async fn build(body: &str) -> Result<Arc<dyn Connector>, ConfigError> {
    build_all(body).await.map_err(|mut e| e.0.remove(0))
}

#[tokio::test]
async fn every_error_of_a_section_is_reported() {
    let body = "method = \"PUT\"\nstatus_on_idp_error = 200\nmax_token_size = 1\ndefault_endpoint = \"ftp://x\"\ninject_headers = { \"Host\" = \"sub\" }\n";
    let errs = build_all(body).await.err().expect("refused");
    let mut paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "connectors.u.default_endpoint",
            "connectors.u.inject_headers.Host",
            "connectors.u.max_token_size",
            "connectors.u.method",
            "connectors.u.status_on_idp_error",
        ],
        "{errs}"
    );
}

#[tokio::test]
async fn config_errors_name_their_keys() {
    let base = "region_header = \"X-Region\"\ndefault_endpoint = \"http://127.0.0.1:1/ui\"\n[endpoints]\nFR = \"http://127.0.0.1:2/ui\"\n";
    assert!(build(base).await.is_ok());
    for (body, path) in [
        (format!("method = \"get\"\n{base}"), "connectors.u.method"),
        (format!("method = \"PUT\"\n{base}"), "connectors.u.method"),
        (
            format!("post_token_in_body = true\n{base}"),
            "connectors.u.post_token_in_body",
        ),
        (
            base.replace("region_header = \"X-Region\"\n", ""),
            "connectors.u.region_header",
        ),
        (
            base.replace("http://127.0.0.1:2/ui", "ftp://x/ui"),
            "connectors.u.endpoints.FR",
        ),
        (
            base.replace("http://127.0.0.1:1/ui", "not a url"),
            "connectors.u.default_endpoint",
        ),
        (
            format!("{base}[region_inject_headers.DE]\n\"X-A\" = \"sub\"\n"),
            "connectors.u.region_inject_headers.DE",
        ),
        (
            format!("{base}[region_inject_headers.FR]\n\"X-A\" = \"$[\"\n"),
            "connectors.u.region_inject_headers.FR.X-A",
        ),
        (
            format!("error_payload_location = \"$[\"\n{base}"),
            "connectors.u.error_payload_location",
        ),
        (
            format!("status_on_idp_error = 200\n{base}"),
            "connectors.u.status_on_idp_error",
        ),
        (
            format!("cache_tll = \"1m\"\n{base}"),
            "connectors.u.cache_tll",
        ),
        (
            format!("region_match = \"case_insensitive\"\n{base}fr = \"http://127.0.0.1:3/ui\"\n"),
            "connectors.u.endpoints.fr",
        ),
    ] {
        let e = build(&body)
            .await
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{body}"));
        assert_eq!(e.path, path, "{e}");
    }
    let e = build("method = \"GET\"").await.err().unwrap();
    assert!(e.message.contains("default_endpoint"), "{e}");
}

#[test]
fn helpers() {
    assert_eq!(form_encode("a.b-c_d~e+f/g="), "a.b-c_d~e%2Bf%2Fg%3D");
    let t = format!("x.{}.y", URL_SAFE_NO_PAD.encode("{\"exp\":12345}"));
    assert_eq!(unverified_exp(&t), Some(12345.0));
    assert_eq!(unverified_exp("opaque-token"), None);
}

async fn check(c: &dyn Connector, headers: &[(&str, &str)]) -> Verdict {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (m, u) = (Method::GET, Uri::from_static("/"));
    c.check(&RequestView {
        method: &m,
        uri: &u,
        headers: &h,
        client: None,
        request_id: "rid",
        peer_cert: None,
        verified: None,
    })
    .await
}

fn rejection(v: &Verdict) -> &Rejection {
    match v {
        Verdict::Deny(d) => &d.rejection,
        Verdict::Allow(e) => panic!("expected a denial, got {e:?}"),
    }
}

#[tokio::test]
async fn durations_are_bounded() {
    let base = "default_endpoint = \"http://127.0.0.1:1/ui\"\n";
    assert!(build(&format!(
        "{base}cache_ttl = \"1d\"\nnegative_cache_ttl = \"1d\"\nstale_if_error = \"1d\"\ntimeout = \"5m\""
    ))
    .await
    .is_ok());
    for (extra, path) in [
        ("cache_ttl = \"25h\"", "connectors.u.cache_ttl"),
        (
            "negative_cache_ttl = \"2d\"",
            "connectors.u.negative_cache_ttl",
        ),
        (
            "stale_if_error = \"100000000000y\"",
            "connectors.u.stale_if_error",
        ),
        ("timeout = \"6m\"", "connectors.u.timeout"),
    ] {
        let e = build(&format!("{base}{extra}"))
            .await
            .err()
            .unwrap_or_else(|| panic!("accepted {extra}"));
        assert_eq!(e.path, path, "{e}");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_400_and_the_idp_is_not_called() {
    let idp = MockIdp::start();
    idp.route(
        "GET",
        "/ui",
        MockResponse::json(200, serde_json::json!({"sub": "u"})),
    );
    let c = build(&format!("default_endpoint = \"{}\"", idp.url("/ui")))
        .await
        .unwrap();
    for hs in [
        &[("authorization", "Bearer a"), ("authorization", "Bearer b")][..],
        &[("authorization", "Bearer a, Bearer b")][..],
    ] {
        let v = check(&*c, hs).await;
        let r = rejection(&v);
        assert_eq!((r.status.as_u16(), r.reason), (400, Reason::AmbiguousToken));
        let challenge = r
            .headers
            .iter()
            .find(|(n, _)| n == http::header::WWW_AUTHENTICATE)
            .map(|(_, v)| v.to_str().unwrap())
            .unwrap();
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{challenge}"
        );
    }
    assert_eq!(idp.total_calls(), 0);
    assert!(matches!(
        check(&*c, &[("authorization", "Bearer a")]).await,
        Verdict::Allow(_)
    ));
}

#[tokio::test]
async fn an_idp_redirect_is_an_idp_error_and_is_not_followed() {
    let idp = MockIdp::start();
    idp.route(
        "GET",
        "/moved",
        MockResponse::json(200, serde_json::json!({"sub": "u"})),
    );
    for status in [301, 302, 307, 308] {
        idp.route(
            "GET",
            "/ui",
            MockResponse::status(status).with_header("location", idp.url("/moved")),
        );
        let c = build(&format!("default_endpoint = \"{}\"", idp.url("/ui")))
            .await
            .unwrap();
        let v = check(&*c, &[("authorization", "Bearer tok")]).await;
        let r = rejection(&v);
        assert_eq!((r.status.as_u16(), r.reason), (503, Reason::IdpUnavailable));
    }
    assert_eq!(idp.calls("/ui"), 4);
    assert_eq!(idp.calls("/moved"), 0, "a redirect was followed");
}

#[test]
fn stale_answers_never_outlive_the_token_exp() {
    let m = Duration::from_secs(60);
    // No exp (opaque token): ttl fresh, ttl + stale kept.
    assert_eq!(cache_window(m, Some(m), None), Some((m, 2 * m)));
    assert_eq!(cache_window(m, None, None), Some((m, m)));
    // exp in 30 s: fresh 30 s, kept 30 s, not 30 s + stale.
    let e = Duration::from_secs(30);
    assert_eq!(cache_window(m, Some(m), Some(30.0)), Some((e, e)));
    // exp in 90 s: fresh 60 s, kept until exp.
    assert_eq!(
        cache_window(m, Some(m), Some(90.0)),
        Some((m, Duration::from_secs(90)))
    );
    // Past, NaN-ish or absurd exp: never panics.
    assert_eq!(cache_window(m, Some(m), Some(-5.0)), None);
    assert_eq!(cache_window(m, Some(m), Some(f64::NAN)), None);
    assert_eq!(cache_window(m, Some(m), Some(1e300)), Some((m, 2 * m)));
    assert_eq!(
        cache_window(Duration::MAX, Some(Duration::MAX), None),
        Some((Duration::MAX, Duration::MAX))
    );
}

#[tokio::test]
async fn a_cookie_token_is_sent_as_bearer_and_removed_upstream() {
    let idp = MockIdp::start();
    idp.route(
        "GET",
        "/ui",
        MockResponse::json(200, serde_json::json!({"sub": "u"})),
    );
    let c = build(&format!(
        "default_endpoint = \"{}\"\ntoken_sources = [{{ cookie = \"session\" }}]\ninject_headers = {{ \"X-User\" = \"sub\" }}",
        idp.url("/ui")
    ))
    .await
    .unwrap();
    let v = check(&*c, &[("cookie", "theme=dark; session=opaque-1")]).await;
    let Verdict::Allow(e) = v else {
        panic!("expected allow, got {v:?}")
    };
    assert_eq!(
        idp.requests("/ui")[0].header("authorization"),
        Some("Bearer opaque-1")
    );
    assert!(
        e.set
            .iter()
            .any(|(n, v)| n == http::header::COOKIE && v == "theme=dark"),
        "the token cookie must be removed, the rest kept: {e:?}"
    );
    assert!(
        e.set.iter().any(|(n, v)| n == "x-user" && v == "u"),
        "{e:?}"
    );
    // No cookie: the Authorization header is not a source any more.
    let v = check(&*c, &[("authorization", "Bearer opaque-1")]).await;
    assert_eq!(rejection(&v).reason, Reason::MissingToken);
}

#[tokio::test]
async fn the_upstream_reads_the_region_that_was_used() {
    let idp = MockIdp::start();
    for p in ["/fr", "/us"] {
        idp.route(
            "GET",
            p,
            MockResponse::json(200, serde_json::json!({"sub": "u"})),
        );
    }
    let c = build(&format!(
        "region_header = \"X-Region\"\ndefault_endpoint = \"{}\"\nendpoints = {{ FR = \"{}\" }}",
        idp.url("/us"),
        idp.url("/fr")
    ))
    .await
    .unwrap();
    let region_edits = |v: &Verdict| -> (Vec<String>, Vec<String>) {
        let Verdict::Allow(e) = v else {
            panic!("expected allow, got {v:?}")
        };
        (
            e.remove
                .iter()
                .filter(|n| *n != http::header::AUTHORIZATION)
                .map(|n| n.to_string())
                .collect(),
            e.set
                .iter()
                .filter(|(n, _)| n == "x-region")
                .map(|(_, v)| v.to_str().unwrap().to_string())
                .collect(),
        )
    };
    let bearer = ("authorization", "Bearer opaque-token-1");
    let v = check(&*c, &[bearer, ("x-region", "FR")]).await;
    assert_eq!(
        region_edits(&v),
        (vec!["x-region".into()], vec!["FR".into()])
    );
    // Not a region code (exact match): the default endpoint answered, so
    // the upstream gets no region header at all.
    let v = check(&*c, &[bearer, ("x-region", "fr"), ("x_region", "")]).await;
    assert!(matches!(v, Verdict::Deny(_)), "two spellings: {v:?}");
    let v = check(&*c, &[bearer, ("x-region", "fr")]).await;
    assert_eq!(region_edits(&v), (vec!["x-region".into()], vec![]));
    assert_eq!(idp.calls("/fr"), 1);
    assert_eq!(idp.calls("/us"), 1);
    // Twice, as a list, or in two spellings: 400 before the IdP is asked.
    for twice in [
        &[bearer, ("x-region", "FR"), ("x-region", "US")][..],
        &[bearer, ("x-region", "FR, US")][..],
        &[bearer, ("x-region", "FR"), ("x_region", "US")][..],
        &[bearer, ("x-region", "FR"), ("X.Region", "FR")][..],
    ] {
        let v = check(&*c, twice).await;
        let r = rejection(&v);
        assert_eq!(
            (r.status.as_u16(), r.reason),
            (400, Reason::AmbiguousRegion),
            "{twice:?}"
        );
    }
    assert_eq!(idp.calls("/fr") + idp.calls("/us"), 2, "the IdP was asked");
}

#[tokio::test]
async fn a_userinfo_answer_without_a_string_sub_is_an_idp_error_and_not_cached() {
    let idp = MockIdp::start();
    for (p, body) in [
        ("/empty", serde_json::json!({})),
        ("/numeric", serde_json::json!({"sub": 7, "email": "a@b"})),
    ] {
        idp.route("GET", p, MockResponse::json(200, body));
        let c = build(&format!(
            "default_endpoint = \"{}\"\ninject_headers = {{ \"X-Email\" = \"email\" }}",
            idp.url(p)
        ))
        .await
        .unwrap();
        for _ in 0..2 {
            let v = check(&*c, &[("authorization", "Bearer opaque-token-1")]).await;
            let r = rejection(&v);
            assert_eq!(
                (r.status.as_u16(), r.reason),
                (503, Reason::IdpUnavailable),
                "{p}"
            );
        }
        assert_eq!(idp.calls(p), 2, "{p}: an answer without sub was cached");
    }
}
