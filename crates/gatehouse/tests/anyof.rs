//! End-to-end: any-of steps. One route accepts tokens from two identity
//! providers (`{ any = ["corp", "partner"] }`), each with its own keys and
//! issuer, served by two testkit IdPs; a second step follows the group.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::tokens::{claims, TestKey};
use gatehouse_testkit::{jwks, ConfigBuilder, EchoUpstream, Gatehouse, MockIdp, MockResponse};
use std::process::Command;

const CORP: &str = "https://corp.test";
const PARTNER: &str = "https://partner.test";
const AUD: &str = "api";
const JWKS: &str = "/jwks.json";

fn config(echo: &EchoUpstream, corp: &MockIdp, partner: &MockIdp) -> String {
    let head = ConfigBuilder::new().upstream("echo", echo.addr()).render();
    format!(
        r#"
{head}
[connectors.corp]
kind = "jwt"
jwks_url = "{corp_jwks}"
algorithms = ["RS256"]
issuers = ["{CORP}"]
audiences = ["{AUD}"]
inject_headers = {{ "X-User-Id" = "sub" }}

[connectors.partner]
kind = "jwt"
jwks_url = "{partner_jwks}"
algorithms = ["ES256"]
issuers = ["{PARTNER}"]
audiences = ["{AUD}"]
inject_headers = {{ "X-Partner-Id" = "sub" }}

[connectors.tier]
kind = "jwt"
jwks_url = "{partner_jwks}"
algorithms = ["ES256"]
issuers = ["{PARTNER}"]
policy = [{{ any = [{{ claim = "tier", op = "equals", values = ["gold"] }}] }}]

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "echo"
connectors = [{{ any = ["corp", "partner"] }}]

[[routes]]
name = "gold"
path_prefix = "/gold"
upstream = "echo"
connectors = [{{ any = ["corp", "partner"] }}, "tier"]
"#,
        corp_jwks = corp.url(JWKS),
        partner_jwks = partner.url(JWKS),
    )
}

struct World {
    echo: EchoUpstream,
    _idps: (MockIdp, MockIdp),
    gh: Gatehouse,
    corp: TestKey,
    partner: TestKey,
}

fn world() -> World {
    let (echo, corp_idp, partner_idp) = (EchoUpstream::start(), MockIdp::start(), MockIdp::start());
    let (corp, partner) = (TestKey::rsa(1), TestKey::ec256(1));
    corp_idp.route("GET", JWKS, MockResponse::json(200, jwks(&[(&corp, "c1")])));
    partner_idp.route(
        "GET",
        JWKS,
        MockResponse::json(200, jwks(&[(&partner, "p1")])),
    );
    let gh = Gatehouse::start(BIN, &config(&echo, &corp_idp, &partner_idp)).unwrap();
    World {
        echo,
        _idps: (corp_idp, partner_idp),
        gh,
        corp,
        partner,
    }
}

async fn send(gh: &Gatehouse, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = client()
        .get(gh.url(path))
        .header("x-user-id", "spoofed")
        .header("x-partner-id", "spoofed");
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

async fn refusal(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        status,
        challenge,
        body["error_description"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn either_provider_passes_with_only_its_own_headers() {
    let w = world();
    let corp_token = w.corp.mint(&claims("alice", CORP, AUD, 600), Some("c1"));
    let e = echoed(send(&w.gh, "/api/1", Some(&corp_token)).await).await;
    assert_eq!(header_values(&e, "x-user-id"), ["alice"]);
    assert!(header_values(&e, "x-partner-id").is_empty(), "{e}");

    let partner_token = w
        .partner
        .mint(&claims("bob", PARTNER, AUD, 600), Some("p1"));
    let e = echoed(send(&w.gh, "/api/1", Some(&partner_token)).await).await;
    assert_eq!(header_values(&e, "x-partner-id"), ["bob"]);
    assert!(
        header_values(&e, "x-user-id").is_empty(),
        "the client's copy of a header only another member injects is stripped: {e}"
    );

    let allowed = |who: &str| {
        w.gh.metric(
            "gatehouse_group_allows_total",
            &[("route", "api"), ("connector", who)],
        )
    };
    assert_eq!(allowed("corp"), Some(1.0));
    assert_eq!(allowed("partner"), Some(1.0));
    // The partner token was skipped by corp's issuer precheck: not a corp validation.
    let corp_invalid = w.gh.metric(
        "gatehouse_jwt_validations_total",
        &[
            ("connector", "corp"),
            ("result", "invalid"),
            ("reason", "issuer_not_allowed"),
        ],
    );
    assert_eq!(corp_invalid.unwrap_or(0.0), 0.0);
}

#[tokio::test]
async fn the_most_specific_refusal_answers() {
    let w = world();
    // A corp token whose signature does not verify: corp's bad signature, not
    // partner's "issuer not allowed".
    let good = w.corp.mint(&claims("alice", CORP, AUD, 600), Some("c1"));
    let forged = {
        let other = TestKey::rsa(2).mint(&claims("alice", CORP, AUD, 600), Some("c1"));
        let sig = other.rsplit('.').next().unwrap().to_string();
        let mut parts: Vec<&str> = good.split('.').collect();
        parts[2] = &sig;
        parts.join(".")
    };
    let (status, challenge, why) = refusal(send(&w.gh, "/api/x", Some(&forged)).await).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("realm=\"corp\""), "{challenge}");
    assert!(why.contains("signature"), "{why}");

    // An expired partner token: partner's expiry.
    let mut c = claims("bob", PARTNER, AUD, 600);
    let now = c["iat"].as_i64().unwrap();
    c["exp"] = serde_json::json!(now - 600);
    c["iat"] = serde_json::json!(now - 1200);
    c["nbf"] = c["iat"].clone();
    let expired = w.partner.mint(&c, Some("p1"));
    let (status, challenge, why) = refusal(send(&w.gh, "/api/x", Some(&expired)).await).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("realm=\"partner\""), "{challenge}");
    assert!(why.contains("expired"), "{why}");

    // A third issuer: nobody's token.
    let stranger = w
        .corp
        .mint(&claims("eve", "https://evil.test", AUD, 600), Some("c1"));
    let (status, _, why) = refusal(send(&w.gh, "/api/x", Some(&stranger)).await).await;
    assert_eq!(status, 401);
    assert!(why.contains("issuer"), "{why}");

    // No token: the bare challenge of the first member.
    let (status, challenge, _) = refusal(send(&w.gh, "/api/x", None).await).await;
    assert_eq!((status, challenge.as_str()), (401, "Bearer realm=\"corp\""));

    let rejected = |who: &str, reason: &str| {
        w.gh.metric(
            "gatehouse_rejections_total",
            &[("route", "api"), ("connector", who), ("reason", reason)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(rejected("corp", "bad_signature"), 1.0);
    assert_eq!(rejected("partner", "expired"), 1.0);
}

#[tokio::test]
async fn a_group_is_one_step_of_a_chain() {
    let w = world();
    let mut gold = claims("bob", PARTNER, AUD, 600);
    gold["tier"] = serde_json::json!("gold");
    let t = w.partner.mint(&gold, Some("p1"));
    let e = echoed(send(&w.gh, "/gold/1", Some(&t)).await).await;
    assert_eq!(header_values(&e, "x-partner-id"), ["bob"]);

    // Passes the group (corp) but not the next step.
    let corp_token = w.corp.mint(&claims("alice", CORP, AUD, 600), Some("c1"));
    let r = send(&w.gh, "/gold/1", Some(&corp_token)).await;
    assert_eq!(r.status(), 401, "tier refuses a corp token");
    assert_eq!(
        w.gh.metric(
            "gatehouse_rejections_total",
            &[
                ("route", "gold"),
                ("connector", "tier"),
                ("reason", "algorithm_not_allowed")
            ],
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn check_prints_groups_and_inspect_explains_each_member() {
    let w = world();
    let cfg = w.gh.config_path().to_str().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["check", "--config", &cfg])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("[any(corp | partner) -> tier]"), "{text}");

    let partner_token = w
        .partner
        .mint(&claims("bob", PARTNER, AUD, 600), Some("p1"));
    let out = Command::new(BIN)
        .args([
            "token",
            "inspect",
            "--config",
            &cfg,
            "--route",
            "api",
            &partner_token,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1. any(corp | partner)"), "{text}");
    assert!(
        text.contains("corp (jwt): REJECTED: token issuer is not among"),
        "{text}"
    );
    assert!(text.contains("partner (jwt): ACCEPTED"), "{text}");
    assert!(text.contains("sets x-partner-id: bob"), "{text}");
}

#[tokio::test]
async fn a_token_claiming_another_issuer_never_passes() {
    let w = world();
    let before = w.echo.requests();
    // Partner's issuer, corp's key (RS256, kid of corp): corp skips it by its
    // `iss`, partner refuses its algorithm; nothing reaches the upstream.
    let cross = w
        .corp
        .mint(&claims("mallory", PARTNER, AUD, 600), Some("c1"));
    // Corp's issuer, partner's key and kid.
    let cross2 = w
        .partner
        .mint(&claims("mallory", CORP, AUD, 600), Some("p1"));
    // Corp's issuer, unsigned (`alg: none`).
    let none = gatehouse_testkit::tokens::unsigned_none_token(&claims("mallory", CORP, AUD, 600));
    for t in [&cross, &cross2, &none] {
        let r = send(&w.gh, "/api/x", Some(t)).await;
        assert_eq!(r.status(), 401, "{t}");
    }
    assert_eq!(
        w.echo.requests(),
        before,
        "a refused request reached the upstream"
    );
}
