//! End-to-end: the `jwt` connector in the real binary, keys served by the
//! testkit IdP, tokens signed with real keys.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::*;
use gatehouse_testkit::tokens::{claims, exp_in, now, time_until_past, TestKey};
use gatehouse_testkit::{
    eventually, jwks, ConfigBuilder, EchoUpstream, Gatehouse, MockIdp, MockResponse,
};
use serde_json::json;
use std::time::Duration;

const ISS: &str = "https://idp.test";
const AUD: &str = "orders-api";
const JWKS_PATH: &str = "/.well-known/jwks.json";

fn serve_keys(idp: &MockIdp, keys: &[(&TestKey, &str)]) {
    idp.route("GET", JWKS_PATH, MockResponse::json(200, jwks(keys)));
}

fn config(echo: &EchoUpstream, idp: &MockIdp, extra: &str) -> String {
    let head = ConfigBuilder::new().upstream("echo", echo.addr()).render();
    format!(
        r#"
{head}
[connectors.corp]
kind = "jwt"
jwks_url = "{jwks}"
algorithms = ["RS256", "ES256"]
issuers = ["{ISS}"]
audiences = ["{AUD}"]
{extra}

[connectors.corp.inject_headers]
"X-User-Id" = "sub"
"X-Org-Region" = "$.org.region"

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "echo"
connectors = ["corp"]

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"
"#,
        jwks = idp.url(JWKS_PATH)
    )
}

fn token(key: &TestKey, kid: &str, sub: &str) -> String {
    let mut c = claims(sub, ISS, AUD, 600);
    c["org"] = json!({"region": "eu"});
    key.mint(&c, Some(kid))
}

async fn get(gh: &Gatehouse, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = client().get(gh.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn valid_token_passes_with_identity_headers_and_spoofs_are_stripped() {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::rsa(1));
    serve_keys(&idp, &[(&key, "k1")]);
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, "")).unwrap();
    let t = token(&key, "k1", "alice");
    let resp = client()
        .get(gh.url("/orders/1"))
        .bearer_auth(&t)
        .header("x-user-id", "root")
        .header("X-Org-Region", "us")
        .send()
        .await
        .unwrap();
    let e = echoed(resp).await;
    assert_eq!(
        header_values(&e, "x-user-id"),
        ["alice"],
        "spoofed value replaced"
    );
    assert_eq!(header_values(&e, "x-org-region"), ["eu"]);
    assert_eq!(
        header_values(&e, "authorization"),
        [format!("Bearer {t}").as_str()],
        "forwarded by default"
    );

    // A token without the claim: the header is omitted, the client's copy still removed.
    let mut c = claims("bob", ISS, AUD, 600);
    c.as_object_mut().unwrap().remove("org");
    let resp = client()
        .get(gh.url("/orders/2"))
        .bearer_auth(key.mint(&c, Some("k1")))
        .header("x-org-region", "us")
        .send()
        .await
        .unwrap();
    let e = echoed(resp).await;
    assert!(header_values(&e, "x-org-region").is_empty(), "{e}");

    // No token, tampered token: 401 with RFC 6750 challenges; nothing reaches the upstream.
    let before = echo.requests();
    let r = get(&gh, "/orders/1", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"corp\"");
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"sub": "admin", "iss": ISS, "aud": AUD, "exp": now() + 600}).to_string());
    parts[1] = &forged;
    let r = get(&gh, "/orders/1", Some(&parts.join("."))).await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(echo.requests(), before);
    assert_eq!(
        gh.metric(
            "gatehouse_rejections_total",
            &[
                ("route", "orders"),
                ("connector", "corp"),
                ("reason", "bad_signature")
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn key_rotation_is_picked_up_without_restart() {
    let (echo, idp) = (EchoUpstream::start(), MockIdp::start());
    let (k1, k2) = (TestKey::rsa(1), TestKey::rsa(2));
    serve_keys(&idp, &[(&k1, "k1")]);
    let gh = Gatehouse::start(
        BIN,
        &config(&echo, &idp, "jwks_min_refetch_interval = \"0s\""),
    )
    .unwrap();
    let t1 = token(&k1, "k1", "alice");
    assert_eq!(get(&gh, "/orders", Some(&t1)).await.status(), 200);

    // The IdP rotates: k2 in, k1 out.
    serve_keys(&idp, &[(&k2, "k2")]);
    let t2 = token(&k2, "k2", "alice");
    assert_eq!(
        get(&gh, "/orders", Some(&t2)).await.status(),
        200,
        "unknown kid triggers a refetch"
    );
    // k1 left the key set: its cached verification is gone too.
    let r = get(&gh, "/orders", Some(&t1)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        gh.metric(
            "gatehouse_jwt_validations_total",
            &[("connector", "corp"), ("reason", "unknown_key")]
        ),
        Some(1.0)
    );
    assert!(
        gh.metric(
            "gatehouse_jwks_fetches_total",
            &[("connector", "corp"), ("result", "success")]
        )
        .unwrap()
            >= 2.0
    );
}

#[tokio::test]
async fn jwks_server_down_stale_keys_keep_working() {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::ec256(1));
    serve_keys(&idp, &[(&key, "e1")]);
    let gh = Gatehouse::start(
        BIN,
        &config(&echo, &idp, "jwks_refresh = \"1s\"\njwks_timeout = \"3s\""),
    )
    .unwrap();
    idp.set_down(true);
    let failed = eventually(Duration::from_secs(10), async || {
        gh.metric(
            "gatehouse_jwks_fetches_total",
            &[("connector", "corp"), ("result", "failure")],
        )
        .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    assert!(
        failed,
        "the background refresh failed while the IdP was down"
    );
    // A token never seen before (no cache) still verifies with the last good keys.
    assert_eq!(
        get(&gh, "/orders", Some(&token(&key, "e1", "carol")))
            .await
            .status(),
        200
    );
    assert_eq!(
        gh.metric("gatehouse_jwks_keys", &[("connector", "corp")]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_costs_at_most_one_fetch_per_interval() {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::rsa(1));
    serve_keys(&idp, &[(&key, "k1")]);
    let gh = Gatehouse::start(
        BIN,
        &config(&echo, &idp, "jwks_min_refetch_interval = \"30s\""),
    )
    .unwrap();
    let at_start = idp.calls(JWKS_PATH);
    let cl = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let (cl, url, t) = (
            cl.clone(),
            gh.url("/orders"),
            token(&key, &format!("garbage-{i}"), "mallory"),
        );
        tasks.spawn(async move {
            cl.get(url)
                .bearer_auth(t)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        if tasks.len() >= 50 {
            assert_eq!(tasks.join_next().await.unwrap().unwrap().unwrap(), 401);
        }
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 401);
    }
    let fetched = idp.calls(JWKS_PATH) - at_start;
    assert!(fetched <= 1, "{fetched} JWKS fetches for 1000 unknown kids");
    assert_eq!(
        gh.metric(
            "gatehouse_rejections_total",
            &[("connector", "corp"), ("reason", "unknown_key")]
        ),
        Some(1000.0)
    );
}

#[tokio::test]
async fn query_token_is_stripped_and_carrier_removed_when_not_forwarded() {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::rsa(1));
    serve_keys(&idp, &[(&key, "k1")]);
    let extra = "forward_authorization = false\ntoken_sources = [{ header = \"Authorization\" }, { query = \"access_token\" }]";
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, extra)).unwrap();
    let t = token(&key, "k1", "dave");
    let e = echoed(
        client()
            .get(gh.url(&format!("/orders/q?x=1&access_token={t}&y=2")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["query"], "x=1&y=2");
    assert_eq!(header_values(&e, "x-user-id"), ["dave"]);
    let e = echoed(get(&gh, "/orders/h", Some(&t)).await).await;
    assert!(
        header_values(&e, "authorization").is_empty(),
        "Authorization removed: {e}"
    );
}

#[tokio::test]
async fn custom_error_body_and_mashery_style() {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::rsa(1));
    serve_keys(&idp, &[(&key, "k1")]);
    let custom = "[connectors.corp.custom_error]\nstatus = 418\ncontent_type = \"application/xml\"\nbody = \"<error reason='{reason}' request='{request_id}'/>\"";
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, custom)).unwrap();
    let r = client()
        .get(gh.url("/orders"))
        .header("x-request-id", "rid-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(r.headers()["content-type"], "application/xml");
    assert_eq!(
        r.text().await.unwrap(),
        "<error reason='missing_token' request='rid-42'/>"
    );
    drop(gh);

    let gh = Gatehouse::start(BIN, &config(&echo, &idp, "error_style = \"mashery\"")).unwrap();
    let mut c = claims("erin", ISS, AUD, 600);
    c["exp"] = json!(now() - 3600);
    c["iat"] = json!(now() - 7200);
    c["nbf"] = json!(now() - 7200);
    let r = get(&gh, "/orders", Some(&key.mint(&c, Some("k1")))).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["x-mashery-error-code"],
        "ERR_403_NOT_AUTHORIZED"
    );
    assert_eq!(r.headers()["x-mashery-error-detail"], "TokenExpired");
}

#[tokio::test]
async fn cache_hits_show_in_metrics_and_expired_tokens_fail_on_a_hit() {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::rsa(1));
    serve_keys(&idp, &[(&key, "k1")]);
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, "leeway = \"0s\"")).unwrap();
    let mut c = claims("frank", ISS, AUD, 0);
    let exp = exp_in(6);
    c["exp"] = json!(exp);
    let t = key.mint(&c, Some("k1"));
    for _ in 0..5 {
        assert_eq!(get(&gh, "/orders", Some(&t)).await.status(), 200);
    }
    assert_eq!(
        gh.metric(
            "gatehouse_token_cache_requests_total",
            &[("connector", "corp"), ("result", "miss")]
        ),
        Some(1.0)
    );
    assert_eq!(
        gh.metric(
            "gatehouse_token_cache_requests_total",
            &[("connector", "corp"), ("result", "hit")]
        ),
        Some(4.0)
    );
    let gauge = eventually(Duration::from_secs(3), async || {
        gh.metric("gatehouse_token_cache_entries", &[("connector", "corp")]) == Some(1.0)
    })
    .await;
    assert!(gauge, "cache size gauge follows the cache");
    tokio::time::sleep(time_until_past(exp)).await;
    let r = get(&gh, "/orders", Some(&t)).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("expired"));
    assert_eq!(
        gh.metric(
            "gatehouse_rejections_total",
            &[("connector", "corp"), ("reason", "expired")]
        ),
        Some(1.0)
    );
}

/// Config for the intake tests: header, cookie and query sources.
fn three_sources(echo: &EchoUpstream, idp: &MockIdp) -> String {
    config(
        echo,
        idp,
        "token_sources = [{ header = \"Authorization\" }, { cookie = \"at\" }, { query = \"access_token\" }]",
    )
}

#[tokio::test]
async fn two_token_carriers_are_400_and_nothing_reaches_the_upstream() {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::rsa(1));
    serve_keys(&idp, &[(&key, "k1")]);
    let gh = Gatehouse::start(BIN, &three_sources(&echo, &idp)).unwrap();
    let t = token(&key, "k1", "alice");
    let mut c = claims("admin", ISS, AUD, 600);
    c["org"] = json!({"region": "eu"});
    let forged = gatehouse_testkit::tokens::unsigned_none_token(&c);
    let before = echo.requests();
    let requests = [
        // Two cookies with the token's name, in one header and in two.
        client()
            .get(gh.url("/orders/1"))
            .header("cookie", format!("at={t}; at={forged}")),
        client()
            .get(gh.url("/orders/1"))
            .header("cookie", format!("at={t}"))
            .header("cookie", format!("at={forged}")),
        // Two Authorization headers.
        client()
            .get(gh.url("/orders/1"))
            .header("authorization", format!("Bearer {t}"))
            .header("authorization", format!("Bearer {forged}")),
        // A header and a query token; a cookie and a query token.
        client()
            .get(gh.url(&format!("/orders/1?access_token={forged}")))
            .bearer_auth(&t),
        client()
            .get(gh.url(&format!("/orders/1?access%5Ftoken={forged}")))
            .header("cookie", format!("at={t}")),
    ];
    let n = requests.len();
    for rb in requests {
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 400);
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{challenge}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
    assert_eq!(echo.requests(), before, "the upstream got a request");
    assert_eq!(
        gh.metric(
            "gatehouse_rejections_total",
            &[("connector", "corp"), ("reason", "ambiguous_token")]
        ),
        Some(n as f64)
    );
    // One carrier, percent-encoded name: it is the access_token carrier.
    let r = client()
        .get(gh.url(&format!("/orders/1?access%5Ftoken={t}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(header_values(&e, "x-user-id"), ["alice"]);
    assert!(
        e["query"].is_null() || e["query"] == "",
        "the encoded carrier is stripped too: {e}"
    );
    // One cookie: fine.
    let r = client()
        .get(gh.url("/orders/1"))
        .header("cookie", format!("x=1; at={t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn time_claims_of_any_size_never_panic_and_far_future_exp_is_cached() {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::rsa(1));
    serve_keys(&idp, &[(&key, "k1")]);
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, "")).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims("alice", ISS, AUD, 600);
        f(&mut c);
        key.mint(&c, Some("k1"))
    };
    let far = with(&|c| c["exp"] = json!(1e20));
    for _ in 0..2 {
        assert_eq!(get(&gh, "/orders/1", Some(&far)).await.status(), 200);
    }
    assert_eq!(
        gh.metric(
            "gatehouse_token_cache_requests_total",
            &[("connector", "corp"), ("result", "hit")]
        ),
        Some(1.0),
        "the far-future token is cached"
    );
    let max = with(&|c| c["exp"] = json!(u64::MAX));
    assert_eq!(get(&gh, "/orders/1", Some(&max)).await.status(), 200);
    let max_f = with(&|c| c["exp"] = json!(f64::MAX));
    assert_eq!(get(&gh, "/orders/1", Some(&max_f)).await.status(), 200);
    for (t, reason) in [
        (with(&|c| c["nbf"] = json!(1e20)), "not_yet_valid"),
        (
            with(&|c| {
                c["exp"] = json!(-1e300);
                c["iat"] = json!(-1e301);
            }),
            "expired",
        ),
        (
            with(&|c| {
                c["exp"] = json!(i64::MIN);
                c.as_object_mut().unwrap().remove("iat");
            }),
            "expired",
        ),
        // iat after a hugely negative exp.
        (with(&|c| c["exp"] = json!(-1e300)), "malformed"),
        (
            with(&|c| {
                c["iat"] = json!(1e20);
                c["exp"] = json!(1e21);
            }),
            "issued_in_future",
        ),
    ] {
        let r = get(&gh, "/orders/1", Some(&t)).await;
        assert_eq!(r.status(), 401, "{reason}");
        let n = gh.metric(
            "gatehouse_rejections_total",
            &[("connector", "corp"), ("reason", reason)],
        );
        assert!(n.unwrap_or(0.0) >= 1.0, "{reason}: {n:?}");
    }
    // Still serving, and no panic was logged.
    assert_eq!(get(&gh, "/orders/1", Some(&far)).await.status(), 200);
    let logs = gh.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn unbounded_leeway_and_token_age_are_refused_by_check() {
    let (echo, idp) = (EchoUpstream::start(), MockIdp::start());
    let good = config(&echo, &idp, "leeway = \"5m\"\nmax_token_age = \"30d\"");
    let (ok, err) = check_config(&good);
    assert!(ok, "{err}");
    for (extra, want) in [
        (
            "leeway = \"6m\"",
            "connectors.corp.leeway: 6m is more than the allowed 5m",
        ),
        (
            "max_token_age = \"31days\"",
            "connectors.corp.max_token_age: 31d is more than the allowed 30d",
        ),
        ("jwks_max_stale = \"1y\"", "connectors.corp.jwks_max_stale:"),
    ] {
        let (ok, err) = check_config(&config(&echo, &idp, extra));
        assert!(!ok, "{extra} accepted");
        assert!(err.contains(want), "{extra}: {err}");
    }
}
