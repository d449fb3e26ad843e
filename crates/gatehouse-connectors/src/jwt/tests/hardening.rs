//! Hostile input for the `jwt` connector: time claims of any magnitude,
//! config bounds, ambiguous carriers, redirects, and the key-removal purge.

use super::*;
use crate::jwt::cache::{bounded_secs, MAX_CACHE_TTL};
use crate::jwt::verify::ago;
use crate::kit::clock;
use gatehouse_testkit::{MockIdp, MockResponse};
use jsonwebtoken::EncodingKey;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn hs_config(extra: &str) -> String {
    format!("secret = \"{SECRET}\"\nalgorithms = [\"HS256\"]\nissuers = [\"{ISS}\"]\naudiences = [\"{AUD}\"]\n{extra}")
}

/// An HS256 token whose payload is `payload` verbatim (any JSON text, even
/// numbers `serde_json::Value` cannot hold).
fn raw_token(payload: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(payload);
    let msg = format!("{h}.{p}");
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{msg}.{sig}")
}

fn payload(times: &str) -> String {
    format!(r#"{{"sub":"u","iss":"{ISS}","aud":"{AUD}"{times}}}"#)
}

async fn build_jwt(body: &str) -> Result<Arc<JwtConnector>, ConfigError> {
    let settings: toml::Table = toml::from_str(body).expect("test TOML");
    JwtFactory::default()
        .build_jwt(BuildContext {
            name: "t".into(),
            path: "connectors.t".into(),
            settings,
            metrics: prometheus::Registry::new(),
            shared_caches: Default::default(),
        })
        .await
        .map_err(|mut e| e.0.remove(0))
}

#[tokio::test]
async fn time_claims_of_any_magnitude_never_panic() {
    let c = build_jwt(&hs_config("max_token_age = \"30d\""))
        .await
        .unwrap();
    let n = now();
    let iat = format!(r#","iat":{n}"#);
    // (time claims, expected reason or None for allowed)
    let cases: Vec<(String, Option<Reason>)> = vec![
        (format!(r#","exp":1e20{iat}"#), None),
        (format!(r#","exp":1.7976931348623157e308{iat}"#), None),
        (format!(r#","exp":18446744073709551615{iat}"#), None),
        (format!(r#","exp":9223372036854775808{iat}"#), None),
        (format!(r#","exp":{n}.5{iat}"#), None),
        (
            r#","exp":-1e300,"iat":-1e301"#.to_string(),
            Some(Reason::Expired),
        ),
        (
            r#","exp":-9223372036854775809,"iat":-1e301"#.to_string(),
            Some(Reason::Expired),
        ),
        (format!(r#","exp":-1e300{iat}"#), Some(Reason::Malformed)),
        (
            format!(r#","exp":1e20,"nbf":1e20{iat}"#),
            Some(Reason::NotYetValid),
        ),
        (format!(r#","exp":1e20,"nbf":-1e300{iat}"#), None),
        (
            r#","exp":1e21,"iat":1e20"#.to_string(),
            Some(Reason::IssuedInFuture),
        ),
        (
            r#","exp":1e20,"iat":1e21"#.to_string(),
            Some(Reason::Malformed),
        ),
        (
            r#","exp":1e20,"iat":-1e300"#.to_string(),
            Some(Reason::TooOld),
        ),
        (r#","exp":1e400"#.to_string(), Some(Reason::Malformed)),
        (r#","exp":"1e20""#.to_string(), Some(Reason::Malformed)),
        (
            r#","exp":1e20,"iat":null"#.to_string(),
            Some(Reason::MissingClaim),
        ),
    ];
    for (times, want) in cases {
        let t = raw_token(&payload(&times));
        let v = check(&*c, &t).await;
        match want {
            None => {
                assert_allowed(&v);
                // Cached, with a bounded lifetime; the hit is allowed too.
                let key: [u8; 32] = Sha256::digest(t.as_bytes()).into();
                let e = c.cache.as_ref().unwrap().get(&key).expect(&times);
                assert!(e.ttl <= MAX_CACHE_TTL, "{times}: {:?}", e.ttl);
                assert_allowed(&check(&*c, &t).await);
            }
            Some(r) => assert_reason(&v, r, 401),
        }
    }
    // The far-future token's entry lives MAX_CACHE_TTL, no more.
    let t = raw_token(&payload(&format!(r#","exp":1e20{iat}"#)));
    let key: [u8; 32] = Sha256::digest(t.as_bytes()).into();
    assert_eq!(
        c.cache.as_ref().unwrap().get(&key).unwrap().ttl,
        MAX_CACHE_TTL
    );
    assert_eq!(bounded_secs(f64::NAN, MAX_CACHE_TTL), Duration::ZERO);
    assert_eq!(bounded_secs(f64::INFINITY, MAX_CACHE_TTL), MAX_CACHE_TTL);
    assert_eq!(bounded_secs(-1e300, MAX_CACHE_TTL), Duration::ZERO);
    assert_eq!(bounded_secs(1e300, MAX_CACHE_TTL), MAX_CACHE_TTL);
    assert!(!ago(f64::NAN).is_empty() && !ago(1e300).is_empty() && !ago(-1e300).is_empty());
}

#[tokio::test]
async fn durations_feeding_time_arithmetic_are_bounded() {
    assert!(build_jwt(&hs_config(
        "leeway = \"5m\"\nmax_token_age = \"30d\"\njwks_max_stale = \"30d\""
    ))
    .await
    .is_ok());
    for (extra, path) in [
        ("leeway = \"301s\"", "connectors.t.leeway"),
        ("leeway = \"100000000000y\"", "connectors.t.leeway"),
        ("max_token_age = \"31d\"", "connectors.t.max_token_age"),
        ("max_token_age = \"0s\"", "connectors.t.max_token_age"),
        ("jwks_max_stale = \"31d\"", "connectors.t.jwks_max_stale"),
        ("jwks_refresh = \"2d\"", "connectors.t.jwks_refresh"),
        (
            "jwks_min_refetch_interval = \"2d\"",
            "connectors.t.jwks_min_refetch_interval",
        ),
        ("jwks_timeout = \"1h\"", "connectors.t.jwks_timeout"),
    ] {
        let e = build_jwt(&hs_config(extra))
            .await
            .err()
            .unwrap_or_else(|| panic!("accepted {extra}"));
        assert_eq!(e.path, path, "{e}");
    }
}

#[tokio::test]
async fn two_carriers_are_400_invalid_request() {
    let b = build(&hs_config(
        "token_sources = [{ header = \"Authorization\" }, { cookie = \"at\" }, { query = \"access_token\" }]",
    ))
    .await
    .unwrap();
    let t = raw_token(&payload(&format!(r#","exp":{}"#, exp_in(600))));
    let forged = unsigned_none_token(&good());
    let cases: Vec<(Vec<(&str, String)>, String)> = vec![
        (
            vec![
                ("authorization", format!("Bearer {t}")),
                ("authorization", format!("Bearer {forged}")),
            ],
            "/".into(),
        ),
        (vec![("cookie", format!("at={t}; at={forged}"))], "/".into()),
        (
            vec![
                ("cookie", format!("at={t}")),
                ("cookie", format!("at={forged}")),
            ],
            "/".into(),
        ),
        (
            vec![("authorization", format!("Bearer {t}"))],
            format!("/?access_token={forged}"),
        ),
        (
            vec![("cookie", format!("at={t}"))],
            format!("/?access_token={t}"),
        ),
        (
            vec![],
            format!("/?access_token={t}&access%5Ftoken={forged}"),
        ),
    ];
    for (hs, uri) in cases {
        let mut h = HeaderMap::new();
        for (k, v) in &hs {
            h.append(*k, v.parse().unwrap());
        }
        let v = check_with(&*b.c, h, &uri).await;
        assert_reason(&v, Reason::AmbiguousToken, 400);
        let r = denied(&v).unwrap();
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
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
    // One carrier, even percent-encoded, is fine.
    let e = assert_allowed(
        &check_with(&*b.c, HeaderMap::new(), &format!("/?access%5Ftoken={t}")).await,
    )
    .clone();
    assert_eq!(e.remove_query_params, ["access_token"]);
    assert_eq!(
        metric(
            &b.metrics,
            "gatehouse_jwt_validations_total",
            &[("reason", "ambiguous_token")]
        ),
        6.0
    );
}

#[tokio::test]
async fn jwks_redirects_are_not_followed() {
    let idp = MockIdp::start();
    let key = TestKey::rsa(1);
    idp.route(
        "GET",
        "/moved",
        MockResponse::json(200, jwks(&[(&key, "k1")])),
    );
    idp.route(
        "GET",
        "/jwks",
        MockResponse::status(302).with_header("location", idp.url("/moved")),
    );
    let body = format!(
        "jwks_url = \"{}\"\nalgorithms = [\"RS256\"]\njwks_required_at_load = true\n",
        idp.url("/jwks")
    );
    let e = build_jwt(&body)
        .await
        .err()
        .expect("a redirect is a failed fetch");
    assert_eq!(e.path, "connectors.t.jwks_url");
    assert!(e.message.contains("redirect"), "{e}");
    assert_eq!(idp.calls("/jwks"), 1);
    assert_eq!(idp.calls("/moved"), 0, "the redirect was followed");
    // Without jwks_required_at_load: no keys, 503 keys_unavailable.
    let c = build_jwt(&body.replace("jwks_required_at_load = true\n", ""))
        .await
        .unwrap();
    let t = key.mint(&good(), Some("k1"));
    assert_reason(&check(&*c, &t).await, Reason::KeysUnavailable, 503);
    assert_eq!(idp.calls("/moved"), 0);
}

/// A token verified with a key just before that key leaves the key set must
/// not be cached after the purge of that key's entries. The interleaving is
/// forced step by step: verify → key removed (purge) → cache insert.
#[tokio::test]
async fn a_verification_in_flight_cannot_undo_a_key_purge() {
    let (k1, k2) = (TestKey::rsa(1), TestKey::rsa(2));
    let c = build_jwt(&inline(&[(&k1, "k1")], "\"RS256\"", ""))
        .await
        .unwrap();
    let t = k1.mint(&good(), Some("k1"));
    let key: [u8; 32] = Sha256::digest(t.as_bytes()).into();
    let cache = c.cache.clone().unwrap();

    // 1. Verification completes with k1 (not cached yet).
    let v = c.check_uncached(&t, clock::now()).await.unwrap();
    // 2. k1 is removed from the key set; its cached tokens are purged.
    let (k2_set, _) = parse_jwks(jwks(&[(&k2, "k2")]).to_string().as_bytes()).unwrap();
    c.store.set(k2_set);
    // 3. The in-flight request now tries to cache its result: refused.
    c.cache_verified(key, v);
    cache.run_pending_tasks();
    assert!(cache.get(&key).is_none(), "cached after its key's purge");
    assert_reason(&check(&*c, &t).await, Reason::UnknownKey, 401);

    // The other order: cached first, then the key goes: purged.
    let c = build_jwt(&inline(&[(&k1, "k1")], "\"RS256\"", ""))
        .await
        .unwrap();
    let v = c.check_uncached(&t, clock::now()).await.unwrap();
    c.cache_verified(key, v);
    assert!(c.cache.as_ref().unwrap().get(&key).is_some());
    let (k2_set, _) = parse_jwks(jwks(&[(&k2, "k2")]).to_string().as_bytes()).unwrap();
    c.store.set(k2_set);
    assert!(c.cache.as_ref().unwrap().get(&key).is_none());
    assert_reason(&check(&*c, &t).await, Reason::UnknownKey, 401);
}
