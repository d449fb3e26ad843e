//! Tests of the test keys and token minting.
#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_testkit::tokens::{claims, now, unsigned_none_token};
use gatehouse_testkit::{jwks, TestKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

fn verify_with_jwk(key: &TestKey, token: &str) -> Value {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk("k")).unwrap();
    let mut v = Validation::new(key.alg());
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &v)
        .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg()))
        .claims
}

fn part(token: &str, i: usize) -> Value {
    let raw = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(i).unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn every_family_and_algorithm_verifies() {
    let secret = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let keys = [
        TestKey::rsa(1),
        TestKey::rsa(2).with_alg(Algorithm::RS384),
        TestKey::rsa(3).with_alg(Algorithm::RS512),
        TestKey::rsa(1).with_alg(Algorithm::PS256),
        TestKey::rsa(1).with_alg(Algorithm::PS384),
        TestKey::rsa(1).with_alg(Algorithm::PS512),
        TestKey::ec256(1),
        TestKey::ec256(2),
        TestKey::ec384(),
        TestKey::ed25519(),
        TestKey::hmac(secret),
        TestKey::hmac(secret).with_alg(Algorithm::HS384),
        TestKey::hmac(secret).with_alg(Algorithm::HS512),
    ];
    for key in &keys {
        let c = claims("alice", "https://iss", "api", 60);
        let t = key.mint(&c, Some("k"));
        let h = part(&t, 0);
        assert_eq!(h["alg"], format!("{:?}", key.alg()));
        assert_eq!(h["kid"], "k");
        assert_eq!(h["typ"], "JWT");
        assert_eq!(verify_with_jwk(key, &t), c);
        // Also through a hand-built header.
        let t = key.mint_with_header(&json!({"alg": format!("{:?}", key.alg())}), &c);
        assert_eq!(verify_with_jwk(key, &t), c);
    }
}

#[test]
fn defaults_and_pems() {
    assert_eq!(TestKey::rsa(1).alg(), Algorithm::RS256);
    assert_eq!(TestKey::ec256(1).alg(), Algorithm::ES256);
    assert_eq!(TestKey::ec384().alg(), Algorithm::ES384);
    assert_eq!(TestKey::ed25519().alg(), Algorithm::EdDSA);
    assert_eq!(TestKey::hmac(b"s").alg(), Algorithm::HS256);
    assert!(TestKey::hmac(b"s").private_pem().is_none());
    assert!(TestKey::hmac(b"s").public_pem().is_none());
    for n in 1..=3 {
        let k = TestKey::rsa(n);
        assert!(k.private_pem().unwrap().contains("BEGIN PRIVATE KEY"));
        assert!(k.public_pem().unwrap().contains("BEGIN PUBLIC KEY"));
        DecodingKey::from_rsa_pem(k.public_pem().unwrap().as_bytes()).unwrap();
    }
    for k in [TestKey::ec256(1), TestKey::ec256(2), TestKey::ec384()] {
        assert!(k.private_pem().unwrap().contains("BEGIN PRIVATE KEY"));
        DecodingKey::from_ec_pem(k.public_pem().unwrap().as_bytes()).unwrap();
    }
    DecodingKey::from_ed_pem(TestKey::ed25519().public_pem().unwrap().as_bytes()).unwrap();

    // A token signed with one key verifies against that key's PEM, not another's.
    let t = TestKey::rsa(2).mint(&json!({"exp": now() + 60}), None);
    let v = Validation::new(Algorithm::RS256);
    let pem = |n| DecodingKey::from_rsa_pem(TestKey::rsa(n).public_pem().unwrap().as_bytes());
    assert!(jsonwebtoken::decode::<Value>(&t, &pem(2).unwrap(), &v).is_ok());
    assert!(jsonwebtoken::decode::<Value>(&t, &pem(1).unwrap(), &v).is_err());
    assert!(jsonwebtoken::decode::<Value>(&t, &pem(3).unwrap(), &v).is_err());
}

#[test]
fn keys_are_distinct() {
    let ns: Vec<Value> = (1..=3)
        .map(|n| TestKey::rsa(n).jwk("k")["n"].clone())
        .collect();
    assert_ne!(ns[0], ns[1]);
    assert_ne!(ns[1], ns[2]);
    assert_ne!(ns[0], ns[2]);
    assert_ne!(
        TestKey::ec256(1).jwk("k")["x"],
        TestKey::ec256(2).jwk("k")["x"]
    );
}

#[test]
fn jwks_are_public_and_labelled() {
    let rsa = TestKey::rsa(1).with_alg(Algorithm::PS256);
    let ec = TestKey::ec384();
    let ed = TestKey::ed25519();
    let set = jwks(&[(&rsa, "r"), (&ec, "e"), (&ed, "d")]);
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    for (k, kid, kty, alg) in [
        (&keys[0], "r", "RSA", "PS256"),
        (&keys[1], "e", "EC", "ES384"),
        (&keys[2], "d", "OKP", "EdDSA"),
    ] {
        assert_eq!(k["kid"], kid);
        assert_eq!(k["kty"], kty);
        assert_eq!(k["alg"], alg);
        assert_eq!(k["use"], "sig");
        assert!(k.get("d").is_none(), "no private part: {k}");
    }
    assert_eq!(keys[1]["crv"], "P-384");
    assert_eq!(keys[2]["crv"], "Ed25519");
    // The whole set parses as a jsonwebtoken JwkSet.
    let parsed: jsonwebtoken::jwk::JwkSet = serde_json::from_value(set).unwrap();
    assert!(parsed.find("e").is_some());

    let h = TestKey::hmac(b"secret").with_alg(Algorithm::HS384).jwk("h");
    assert_eq!(
        h,
        json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(b"secret"), "kid": "h", "use": "sig", "alg": "HS384"})
    );
}

#[test]
fn claims_helper() {
    let before = now();
    let c = claims("s", "i", "a", 300);
    let iat = c["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= now());
    assert_eq!(c["nbf"], c["iat"]);
    assert_eq!(c["exp"].as_i64().unwrap(), iat + 300);
    assert_eq!(
        (c["sub"].as_str(), c["iss"].as_str(), c["aud"].as_str()),
        (Some("s"), Some("i"), Some("a"))
    );
}

#[test]
fn odd_headers_are_kept_verbatim() {
    let key = TestKey::rsa(1);
    let header = json!({"alg": "RS256", "kid": "k", "crit": ["exp"], "x-extra": 1});
    let t = key.mint_with_header(&header, &json!({"sub": "s"}));
    assert_eq!(part(&t, 0), header);
    assert_eq!(part(&t, 1), json!({"sub": "s"}));
    // A lying alg text: signed with RS256 all the same.
    let t = key.mint_with_header(&json!({"alg": "HS256"}), &json!({}));
    assert_eq!(part(&t, 0)["alg"], "HS256");
    let msg = t.rsplit_once('.').unwrap().0;
    let sig = t.rsplit('.').next().unwrap();
    let dk = DecodingKey::from_rsa_pem(key.public_pem().unwrap().as_bytes()).unwrap();
    assert!(jsonwebtoken::crypto::verify(sig, msg.as_bytes(), &dk, Algorithm::RS256).unwrap());
}

#[test]
fn none_token_shape() {
    let t = unsigned_none_token(&json!({"sub": "s"}));
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2], "");
    assert_eq!(part(&t, 0), json!({"alg": "none", "typ": "JWT"}));
    assert_eq!(part(&t, 1), json!({"sub": "s"}));
}
