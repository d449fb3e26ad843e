//! ES512 (P-521) with real keys generated at test time: JWKS and PEM keys,
//! the family/curve discipline, signatures of the wrong form, the allow-list.

use super::*;
use crate::jwt::es512::pem_block;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P521_SHA512_ASN1_SIGNING};

/// `token` with its signature replaced by `sig` (raw bytes).
fn with_signature(token: &str, sig: &[u8]) -> String {
    let (message, _) = token.rsplit_once('.').unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn pem_keys(keys: &[(&str, &str)], algs: &str) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|(kid, pem)| format!("{{ kid = \"{kid}\", pem = '''{pem}''' }}"))
        .collect();
    format!(
        "public_keys = [{}]\nalgorithms = [{algs}]\nissuers = [\"{ISS}\"]\naudiences = [\"{AUD}\"]\n",
        list.join(", ")
    )
}

#[tokio::test]
async fn a_jwks_p521_key_verifies_es512() {
    let key = TestKey::p521();
    let b = build(&inline(&[(&key, "k1")], "\"ES512\"", ""))
        .await
        .unwrap();
    assert_allowed(&check(&*b.c, &key.mint(&good(), Some("k1"))).await);
    assert_allowed(&check(&*b.c, &key.mint(&good(), None)).await);
    // Signed by another P-521 key under the same kid.
    assert_reason(
        &check(&*b.c, &TestKey::p521().mint(&good(), Some("k1"))).await,
        Reason::BadSignature,
        401,
    );
    // The JWK without its `alg` works too; so does a set that mixes curves.
    let mut jwk = key.jwk("k1");
    jwk.as_object_mut().unwrap().remove("alg");
    let ec = TestKey::ec256(1);
    let doc = json!({"keys": [ec.jwk("p256"), jwk]});
    let b = build(&format!(
        "jwks = '''{doc}'''\nalgorithms = [\"ES256\", \"ES512\"]\nissuers = [\"{ISS}\"]\naudiences = [\"{AUD}\"]\n"
    ))
    .await
    .unwrap();
    assert_allowed(&check(&*b.c, &key.mint(&good(), Some("k1"))).await);
    assert_allowed(&check(&*b.c, &key.mint(&good(), None)).await);
    assert_allowed(&check(&*b.c, &ec.mint(&good(), Some("p256"))).await);
    assert_allowed(&check(&*b.c, &ec.mint(&good(), None)).await);
}

#[tokio::test]
async fn a_pem_p521_key_verifies_es512() {
    let key = TestKey::p521();
    let ec = TestKey::ec256(1);
    let b = build(&pem_keys(
        &[
            ("k1", key.public_pem().unwrap()),
            ("p256", ec.public_pem().unwrap()),
        ],
        "\"ES512\", \"ES256\"",
    ))
    .await
    .unwrap();
    assert_allowed(&check(&*b.c, &key.mint(&good(), Some("k1"))).await);
    assert_allowed(&check(&*b.c, &key.mint(&good(), None)).await);
    assert_allowed(&check(&*b.c, &ec.mint(&good(), None)).await);
    assert_reason(
        &check(&*b.c, &TestKey::p521().mint(&good(), None)).await,
        Reason::BadSignature,
        401,
    );
}

#[tokio::test]
async fn keys_of_other_curves_never_verify_es512_and_p521_keys_only_verify_es512() {
    let p521 = TestKey::p521();
    let p256 = TestKey::ec256(1);
    // Only a P-256 key (JWKS), both algorithms allowed: no key fits an ES512 token.
    let b = build(&inline(&[(&p256, "k1")], "\"ES256\", \"ES512\"", ""))
        .await
        .unwrap();
    for t in [
        p521.mint(&good(), Some("k1")),
        p521.mint(&good(), None),
        // An ES512 header over a P-256 signature.
        p256.mint_with_header(&json!({"alg": "ES512", "kid": "k1"}), &good()),
    ] {
        assert_reason(&check(&*b.c, &t).await, Reason::UnknownKey, 401);
    }
    // The same with the P-256 key as a PEM (its curve is read from the PEM).
    let b = build(&pem_keys(
        &[("k1", p256.public_pem().unwrap())],
        "\"ES256\", \"ES512\"",
    ))
    .await
    .unwrap();
    assert_reason(
        &check(&*b.c, &p521.mint(&good(), Some("k1"))).await,
        Reason::UnknownKey,
        401,
    );
    // Only a P-521 key: an ES256 or ES384 token finds no key.
    for keys in [
        inline(&[(&p521, "k1")], "\"ES256\", \"ES384\", \"ES512\"", ""),
        pem_keys(
            &[("k1", p521.public_pem().unwrap())],
            "\"ES256\", \"ES384\", \"ES512\"",
        ),
    ] {
        let b = build(&keys).await.unwrap();
        for t in [
            p256.mint(&good(), Some("k1")),
            TestKey::ec384().mint(&good(), Some("k1")),
        ] {
            assert_reason(&check(&*b.c, &t).await, Reason::UnknownKey, 401);
        }
        assert_allowed(&check(&*b.c, &p521.mint(&good(), Some("k1"))).await);
    }
    // The key set itself: a P-521 key fits ES512 only, a P-256 key never ES512.
    let (set, skipped) =
        parse_jwks(jwks(&[(&p521, "a"), (&p256, "b")]).to_string().as_bytes()).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let fits = |kid: &str| -> Vec<Alg> {
        let k = set
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .unwrap();
        Alg::ALL.into_iter().filter(|a| k.fits(*a)).collect()
    };
    assert_eq!(fits("a"), [Alg::ES512]);
    assert_eq!(fits("b"), [Alg::ES256]);
    let pem = key_from_pem(None, p521.public_pem().unwrap().as_bytes()).unwrap();
    assert_eq!(
        Alg::ALL
            .into_iter()
            .filter(|a| pem.fits(*a))
            .collect::<Vec<_>>(),
        [Alg::ES512]
    );
    // `verify` refuses an algorithm the key does not fit, whatever the signature.
    let t = p521.mint(&good(), None);
    let (message, sig) = t.rsplit_once('.').unwrap();
    assert!(pem.verify(Alg::ES512, sig, message.as_bytes()));
    assert!(!pem.verify(Alg::ES384, sig, message.as_bytes()));
}

#[tokio::test]
async fn es512_signatures_of_the_wrong_form_are_bad_signatures() {
    let key = TestKey::p521();
    let b = build(&inline(&[(&key, "k1")], "\"ES512\"", ""))
        .await
        .unwrap();
    let t = key.mint(&good(), Some("k1"));
    let sig = URL_SAFE_NO_PAD
        .decode(t.rsplit_once('.').unwrap().1)
        .unwrap();
    assert_eq!(sig.len(), 132);
    // The same message signed in ASN.1 DER form (what a non-JWS signer emits).
    let pkcs8 = pem_block(key.private_pem().unwrap(), "PRIVATE KEY").unwrap();
    let der_signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P521_SHA512_ASN1_SIGNING, &pkcs8).unwrap();
    let message = t.rsplit_once('.').unwrap().0;
    let der = der_signer
        .sign(&SystemRandom::new(), message.as_bytes())
        .unwrap();
    assert_eq!(der.as_ref()[0], 0x30, "a DER SEQUENCE");
    let mut long = sig.clone();
    long.push(0);
    let mut flipped = sig.clone();
    flipped[10] ^= 1;
    let mut zero_r = sig.clone();
    zero_r[..66].fill(0);
    for (what, token) in [
        ("131 bytes", with_signature(&t, &sig[..131])),
        ("133 bytes", with_signature(&t, &long)),
        ("DER", with_signature(&t, der.as_ref())),
        ("64 bytes", with_signature(&t, &sig[..64])),
        ("flipped bit", with_signature(&t, &flipped)),
        ("r = 0", with_signature(&t, &zero_r)),
        ("all 0xff", with_signature(&t, &[0xff; 132])),
        ("empty", format!("{message}.")),
        ("not base64url", format!("{message}.{}", "*".repeat(176))),
        ("padded", format!("{t}==")),
    ] {
        let v = check(&*b.c, &token).await;
        let r = denied(&v).unwrap_or_else(|| panic!("{what}: allowed"));
        assert_eq!(
            (r.reason, r.status.as_u16()),
            (Reason::BadSignature, 401),
            "{what}"
        );
    }
    assert_allowed(&check(&*b.c, &t).await);
}

#[tokio::test]
async fn es512_must_be_in_the_allow_list() {
    let key = TestKey::p521();
    let rsa = TestKey::rsa(1);
    let b = build(&inline(&[(&key, "k1"), (&rsa, "r1")], "\"RS256\"", ""))
        .await
        .unwrap();
    let v = check(&*b.c, &key.mint(&good(), Some("k1"))).await;
    assert_reason(&v, Reason::AlgorithmNotAllowed, 401);
    assert_eq!(
        metric(
            &b.metrics,
            "gatehouse_jwt_validations_total",
            &[("reason", "algorithm_not_allowed")]
        ),
        1.0
    );
    // Case matters, as for every alg.
    let lower = key.mint_with_header(&json!({"alg": "es512", "kid": "k1"}), &good());
    let b = build(&inline(&[(&key, "k1")], "\"ES512\"", ""))
        .await
        .unwrap();
    assert_reason(
        &check(&*b.c, &lower).await,
        Reason::AlgorithmNotAllowed,
        401,
    );
    // `es512` in the config is not an algorithm either.
    let e = build(&inline(&[(&key, "k1")], "\"es512\"", ""))
        .await
        .err()
        .unwrap();
    assert_eq!(e.path, "connectors.t.algorithms[0]");
    assert!(
        e.message.contains("ES512"),
        "the supported list names ES512: {e}"
    );
}

#[tokio::test]
async fn broken_p521_jwks_keys_are_skipped_with_a_reason() {
    let good_key = TestKey::p521();
    let jwk = good_key.jwk("ok");
    let x = jwk["x"].as_str().unwrap().to_string();
    let y = jwk["y"].as_str().unwrap().to_string();
    let raw_y = URL_SAFE_NO_PAD.decode(&y).unwrap();
    let mut off_curve = raw_y.clone();
    off_curve[65] ^= 1;
    let short = URL_SAFE_NO_PAD.encode(&raw_y[1..]);
    let long = URL_SAFE_NO_PAD.encode([&raw_y[..], &[0]].concat());
    let p521 = |kid: &str, x: &str, y: &str| json!({"kty": "EC", "crv": "P-521", "kid": kid, "x": x, "y": y, "alg": "ES512"});
    let mut p256_as_es512 = TestKey::ec256(1).jwk("p256-es512");
    p256_as_es512["alg"] = json!("ES512");
    let mut p521_as_es256 = good_key.jwk("p521-es256");
    p521_as_es256["alg"] = json!("ES256");
    let doc = json!({"keys": [
        p521("short-y", &x, &short),
        p521("long-y", &x, &long),
        p521("off-curve", &x, &URL_SAFE_NO_PAD.encode(&off_curve)),
        p521("bad-b64", "!!!", &y),
        p521("padded", &format!("{x}=="), &y),
        p521("zero", &URL_SAFE_NO_PAD.encode([0u8; 66]), &URL_SAFE_NO_PAD.encode([0u8; 66])),
        p256_as_es512,
        p521_as_es256,
        jwk,
    ]});
    let (set, skipped) = parse_jwks(doc.to_string().as_bytes()).unwrap();
    assert_eq!(
        set.keys
            .iter()
            .map(|k| k.kid.as_deref())
            .collect::<Vec<_>>(),
        [Some("ok")]
    );
    assert_eq!(skipped.len(), 8, "{skipped:#?}");
    for (kid, why) in [
        ("short-y", "P-521 y is 65 bytes; it must be 66"),
        ("long-y", "P-521 y is 67 bytes; it must be 66"),
        ("off-curve", "not a valid P-521 public key"),
        ("bad-b64", "P-521 x is not base64url"),
        ("padded", "P-521 x is not base64url"),
        ("zero", "not a valid P-521 public key"),
        ("p256-es512", "alg ES512 does not fit the key's curve"),
        ("p521-es256", "alg ES256 does not fit the key's curve"),
    ] {
        assert!(
            skipped
                .iter()
                .any(|s| s.starts_with(&format!("key \"{kid}\": ")) && s.contains(why)),
            "{kid}: {why} not in {skipped:#?}"
        );
    }
    // The connector serves the good key and refuses a set with none.
    let b = build(&format!(
        "jwks = '''{doc}'''\nalgorithms = [\"ES512\"]\nissuers = [\"{ISS}\"]\naudiences = [\"{AUD}\"]\n"
    ))
    .await
    .unwrap();
    assert_allowed(&check(&*b.c, &good_key.mint(&good(), Some("ok"))).await);
    let only_bad = json!({"keys": [p521("off-curve", &x, &URL_SAFE_NO_PAD.encode(&off_curve))]});
    let e = build(&format!(
        "jwks = '''{only_bad}'''\nalgorithms = [\"ES512\"]\n"
    ))
    .await
    .err()
    .unwrap();
    assert_eq!(e.path, "connectors.t.jwks");
}

#[tokio::test]
async fn a_broken_p521_pem_is_a_config_error_naming_the_key() {
    let key = TestKey::p521();
    let der = pem_block(key.public_pem().unwrap(), "PUBLIC KEY").unwrap();
    let mut off_curve = der.clone();
    let last = off_curve.len() - 1;
    off_curve[last] ^= 1;
    let truncated = der[..der.len() - 1].to_vec();
    for (what, der) in [("off the curve", off_curve), ("truncated", truncated)] {
        let pem = gatehouse_testkit::tokens::pem("PUBLIC KEY", &der);
        let e = build(&pem_keys(
            &[
                ("good", TestKey::ec256(1).public_pem().unwrap()),
                ("bad", &pem),
            ],
            "\"ES256\", \"ES512\"",
        ))
        .await
        .err()
        .unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(e.path, "connectors.t.public_keys[1]", "{what}");
        assert!(e.message.contains("P-521"), "{what}: {e}");
    }
    // A private key is refused as before (PKCS#8 and SEC1).
    for private in [key.private_pem().unwrap(), key.sec1_pem().unwrap()] {
        let e = build(&pem_keys(&[("k", private)], "\"ES512\""))
            .await
            .err()
            .unwrap();
        assert_eq!(e.path, "connectors.t.public_keys[0]");
        assert!(e.message.contains("private key"), "{e}");
    }
}
