//! End-to-end: ES512 (P-521) in the real binary — keys served by the testkit
//! IdP, tokens signed by the testkit and by `gatehouse token mint --alg
//! ES512`, including an already expired one (`--exp=-5m`).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::tokens::{claims, TestKey};
use gatehouse_testkit::{jwks, ConfigBuilder, EchoUpstream, Gatehouse, MockIdp, MockResponse};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const ISS: &str = "https://idp.test";
const AUD: &str = "orders-api";
const JWKS_PATH: &str = "/.well-known/jwks.json";

fn config(echo: &EchoUpstream, idp: &MockIdp) -> String {
    let head = ConfigBuilder::new().upstream("echo", echo.addr()).render();
    format!(
        r#"
{head}
[connectors.corp]
kind = "jwt"
jwks_url = "{jwks}"
algorithms = ["ES512", "RS256"]
issuers = ["{ISS}"]
audiences = ["{AUD}"]

[connectors.corp.inject_headers]
"X-User-Id" = "sub"

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "echo"
connectors = ["corp"]
"#,
        jwks = idp.url(JWKS_PATH)
    )
}

async fn get(gh: &Gatehouse, token: &str) -> reqwest::Response {
    client()
        .get(gh.url("/orders/1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn rejections(gh: &Gatehouse, reason: &str) -> f64 {
    gh.metric(
        "gatehouse_rejections_total",
        &[("connector", "corp"), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn es512_tokens_verify_against_a_p521_jwks() {
    let (echo, idp) = (EchoUpstream::start(), MockIdp::start());
    let (key, rsa) = (TestKey::p521(), TestKey::rsa(1));
    idp.route(
        "GET",
        JWKS_PATH,
        MockResponse::json(200, jwks(&[(&rsa, "r1"), (&key, "p521")])),
    );
    let gh = Gatehouse::start(BIN, &config(&echo, &idp)).unwrap();

    let t = key.mint(&claims("alice", ISS, AUD, 600), Some("p521"));
    let e = echoed(get(&gh, &t).await).await;
    assert_eq!(header_values(&e, "x-user-id"), ["alice"]);
    // Without kid, the P-521 key is the only one that fits ES512.
    let t = key.mint(&claims("bob", ISS, AUD, 600), None);
    assert_eq!(
        header_values(&echoed(get(&gh, &t).await).await, "x-user-id"),
        ["bob"]
    );
    // The RSA key still serves RS256 next to it.
    let t = rsa.mint(&claims("carol", ISS, AUD, 600), Some("r1"));
    assert_eq!(get(&gh, &t).await.status(), 200);

    // Another P-521 key under the same kid: the signature does not verify.
    let forged = TestKey::p521().mint(&claims("mallory", ISS, AUD, 600), Some("p521"));
    let r = get(&gh, &forged).await;
    assert_eq!(r.status(), 401);
    assert_eq!(rejections(&gh, "bad_signature"), 1.0);
    // An ES512 header claiming the RSA key's kid: no key fits.
    let r = get(&gh, &key.mint(&claims("x", ISS, AUD, 600), Some("r1"))).await;
    assert_eq!(r.status(), 401);
    assert_eq!(rejections(&gh, "unknown_key"), 1.0);
    assert_eq!(
        gh.metric(
            "gatehouse_jwt_validations_total",
            &[("connector", "corp"), ("result", "valid")]
        ),
        Some(3.0)
    );
}

fn gatehouse(args: &[&str]) -> String {
    let o = Command::new(BIN).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn mint(key: &Path, exp: &[&str]) -> String {
    let mut args = vec![
        "token",
        "mint",
        "--alg",
        "ES512",
        "--key",
        key.to_str().unwrap(),
        "--kid",
        "p521",
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--sub",
        "dave",
    ];
    args.extend_from_slice(exp);
    gatehouse(&args)
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn token_mint_es512_and_an_already_expired_token() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::p521();
    let (pkcs8, sec1, public) = (
        dir.path().join("p521.pem"),
        dir.path().join("p521.sec1.pem"),
        dir.path().join("p521.pub.pem"),
    );
    std::fs::write(&pkcs8, key.private_pem().unwrap()).unwrap();
    std::fs::write(&sec1, key.sec1_pem().unwrap()).unwrap();
    std::fs::write(&public, key.public_pem().unwrap()).unwrap();

    // The IdP serves the JWKS `gatehouse jwks from-pem` builds from the public PEM.
    let doc: Value = serde_json::from_str(&gatehouse(&[
        "jwks",
        "from-pem",
        public.to_str().unwrap(),
        "--kid",
        "p521",
    ]))
    .unwrap();
    assert_eq!(doc["keys"][0]["crv"], "P-521");
    assert_eq!(doc["keys"][0]["alg"], "ES512");
    assert_eq!(doc["keys"][0]["x"], key.jwk("p521")["x"]);
    let (echo, idp) = (EchoUpstream::start(), MockIdp::start());
    idp.route("GET", JWKS_PATH, MockResponse::json(200, doc));
    let gh = Gatehouse::start(BIN, &config(&echo, &idp)).unwrap();

    // Valid tokens, from the PKCS#8 and the SEC1 key.
    for k in [&pkcs8, &sec1] {
        let t = mint(k, &["--exp", "10m"]);
        let e = echoed(get(&gh, &t).await).await;
        assert_eq!(header_values(&e, "x-user-id"), ["dave"]);
    }

    // Expired 5 minutes ago, both spellings; iat = nbf = exp.
    let now = gatehouse_testkit::tokens::now();
    for exp in [&["--exp=-5m"][..], &["--exp", "-5m"][..]] {
        let t = mint(&pkcs8, exp);
        let c = claims_of(&t);
        let e = c["exp"].as_i64().unwrap();
        assert!((now - 300 - 5..=now - 300 + 5).contains(&e), "{exp:?}: {c}");
        assert_eq!((c["iat"].as_i64(), c["nbf"].as_i64()), (Some(e), Some(e)));
        let r = get(&gh, &t).await;
        assert_eq!(r.status(), 401, "{exp:?}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.contains("expired"), "{challenge}");
    }
    assert_eq!(rejections(&gh, "expired"), 2.0);
    assert_eq!(rejections(&gh, "bad_signature"), 0.0);
}
