//! Signatures and token shape: every algorithm with real keys, wrong keys
//! and tampered payloads, algorithm confusion, `none`, malformed tokens.

use super::*;

#[tokio::test]
async fn every_algorithm_with_real_keys() {
    let cases: Vec<(TestKey, &str)> = vec![
        (TestKey::rsa(1), "\"RS256\""),
        (TestKey::rsa(1).with_alg(Algorithm::RS384), "\"RS384\""),
        (TestKey::rsa(1).with_alg(Algorithm::RS512), "\"RS512\""),
        (TestKey::rsa(2).with_alg(Algorithm::PS256), "\"PS256\""),
        (TestKey::rsa(2).with_alg(Algorithm::PS512), "\"PS512\""),
        (TestKey::ec256(1), "\"ES256\""),
        (TestKey::ec384(), "\"ES384\""),
        (TestKey::ed25519(), "\"EdDSA\""),
    ];
    for (key, alg) in &cases {
        let b = build(&inline(&[(key, "k1")], alg, "")).await.unwrap();
        assert_allowed(&check(&*b.c, &key.mint(&good(), Some("k1"))).await);
        // Without kid: keys whose type fits the alg are tried.
        assert_allowed(&check(&*b.c, &key.mint(&good(), None)).await);
    }
    for (alg, len) in [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ] {
        let secret = "s".repeat(len);
        let key = TestKey::hmac(secret.as_bytes()).with_alg(alg);
        let b = build(&format!(
            "secret = \"{secret}\"\nalgorithms = [\"{alg:?}\"]\n"
        ))
        .await
        .unwrap();
        assert_allowed(&check(&*b.c, &key.mint(&good(), None)).await);
        let other = TestKey::hmac("x".repeat(len).as_bytes()).with_alg(alg);
        assert_reason(
            &check(&*b.c, &other.mint(&good(), None)).await,
            Reason::BadSignature,
            401,
        );
    }
}

#[tokio::test]
async fn wrong_key_and_tampered_payload_fail_the_signature() {
    let (k1, k2) = (TestKey::rsa(1), TestKey::rsa(2));
    let b = build(&inline(&[(&k1, "k1")], "\"RS256\"", ""))
        .await
        .unwrap();
    // Signed by k2 but claims kid k1.
    assert_reason(
        &check(&*b.c, &k2.mint(&good(), Some("k1"))).await,
        Reason::BadSignature,
        401,
    );
    let t = k1.mint(&good(), Some("k1"));
    let mut parts: Vec<String> = t.split('.').map(String::from).collect();
    let mut c = good();
    c["sub"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
    assert_reason(
        &check(&*b.c, &parts.join(".")).await,
        Reason::BadSignature,
        401,
    );
}

#[tokio::test]
async fn algorithm_confusion_is_impossible() {
    let rsa = TestKey::rsa(1);
    let b = build(&inline(&[(&rsa, "k1")], "\"RS256\"", ""))
        .await
        .unwrap();
    // HS256 signed with the RSA public key (PEM text) as the secret.
    let forged = TestKey::hmac(rsa.public_pem().unwrap().as_bytes()).mint(&good(), Some("k1"));
    assert_reason(
        &check(&*b.c, &forged).await,
        Reason::AlgorithmNotAllowed,
        401,
    );
    // The same with PEM public keys configured.
    let pem = format!(
        "public_keys = [{{ kid = \"k1\", pem = '''{}''' }}]\nalgorithms = [\"RS256\"]\n",
        rsa.public_pem().unwrap()
    );
    let b = build(&pem).await.unwrap();
    assert_allowed(&check(&*b.c, &rsa.mint(&good(), Some("k1"))).await);
    assert_reason(
        &check(&*b.c, &forged).await,
        Reason::AlgorithmNotAllowed,
        401,
    );
    // ES256 token presented to a key set holding only an RSA key, both allowed.
    let ec = TestKey::ec256(1);
    let b = build(&inline(&[(&rsa, "k1")], "\"RS256\", \"ES256\"", ""))
        .await
        .unwrap();
    assert_reason(
        &check(&*b.c, &ec.mint(&good(), Some("k1"))).await,
        Reason::UnknownKey,
        401,
    );
    // Mixing HMAC and public-key algorithms is a config error.
    let e = build(&inline(&[(&rsa, "k1")], "\"RS256\", \"HS256\"", ""))
        .await
        .err()
        .unwrap();
    assert_eq!(e.path, "connectors.t.algorithms");
    // A secret with RS algorithms is refused.
    let e = build("secret = \"0123456789abcdef0123456789abcdef\"\nalgorithms = [\"RS256\"]")
        .await
        .err()
        .unwrap();
    assert_eq!(e.path, "connectors.t.secret");
}

#[tokio::test]
async fn none_is_never_allowed() {
    let e = build(&inline(&[(&TestKey::rsa(1), "k1")], "\"none\"", ""))
        .await
        .err()
        .unwrap();
    assert_eq!(e.path, "connectors.t.algorithms[0]");
    let e = build(&inline(&[(&TestKey::rsa(1), "k1")], "\"ES256K\"", ""))
        .await
        .err()
        .unwrap();
    assert!(e.message.contains("unsupported algorithm"), "{e}");
    let b = build(&inline(&[(&TestKey::rsa(1), "k1")], "\"RS256\"", ""))
        .await
        .unwrap();
    assert_reason(
        &check(&*b.c, &unsigned_none_token(&good())).await,
        Reason::AlgorithmNotAllowed,
        401,
    );
}

#[tokio::test]
async fn malformed_tokens_get_401_with_a_reason() {
    let k = TestKey::rsa(1);
    let b = build(&inline(&[(&k, "k1")], "\"RS256\"", ""))
        .await
        .unwrap();
    let t = k.mint(&good(), Some("k1"));
    let p: Vec<&str> = t.split('.').collect();
    let bad_json = URL_SAFE_NO_PAD.encode("{not json");
    let no_alg = URL_SAFE_NO_PAD.encode("{\"typ\":\"JWT\"}");
    for (token, reason) in [
        ("abc".to_string(), Reason::Malformed),
        (format!("{}.{}", p[0], p[1]), Reason::Malformed),
        (format!("{t}.extra"), Reason::Malformed),
        (format!("!!!.{}.{}", p[1], p[2]), Reason::Malformed),
        (format!("{bad_json}.{}.{}", p[1], p[2]), Reason::Malformed),
        (format!("{}.{bad_json}.{}", p[0], p[2]), Reason::Malformed),
        (format!("{no_alg}.{}.{}", p[0], p[2]), Reason::Malformed),
        (
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("x".repeat(9000)),
                p[1],
                p[2]
            ),
            Reason::TokenTooLarge,
        ),
    ] {
        let v = check(&*b.c, &token).await;
        assert_reason(&v, reason, 401);
        let r = denied(&v).unwrap();
        let challenge = r
            .headers
            .iter()
            .find(|(n, _)| n == "www-authenticate")
            .unwrap()
            .1
            .to_str()
            .unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(
            !challenge.contains(&token[..3.min(token.len())]) || token.len() < 4,
            "description never echoes the token"
        );
    }
    // A crit header we do not understand.
    let crit = k.mint_with_header(
        &json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]}),
        &good(),
    );
    assert_reason(&check(&*b.c, &crit).await, Reason::Malformed, 401);
    // No token at all: bare challenge.
    let v = check_with(&*b.c, HeaderMap::new(), "/").await;
    assert_reason(&v, Reason::MissingToken, 401);
    assert_eq!(denied(&v).unwrap().headers[0].1, "Bearer realm=\"t\"");
}
