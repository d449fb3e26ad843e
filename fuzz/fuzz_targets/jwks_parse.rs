//! `jwks_parse`: JWKS documents (`jwt::parse_jwks`) and PEM public keys (the
//! connector's `key_from_pem` is private; PEM input goes through the same
//! `jsonwebtoken` decoders, in the same order).
//!
//! Input starting with `-----BEGIN` is parsed as PEM, anything else as a JWKS.
//! Every key that parses is then used to verify a fixed token for every
//! algorithm it claims to fit, so hostile key material (tiny RSA moduli,
//! points off the curve, empty `k`) reaches the crypto code.
//!
//! Asserts: no panic; a key only fits algorithms of its own family (and of its
//! pinned `alg`); `candidates` only yields fitting keys; a kid lookup agrees
//! with `has_kid`; no fixed signature verifies under a fuzzed key.

#![no_main]

use gatehouse_connectors::jwt::{parse_jwks, Family, KeySet};
use jsonwebtoken::{Algorithm, DecodingKey};
use libfuzzer_sys::fuzz_target;

const ALGS: [Algorithm; 12] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
];

/// A message and a signature that no key should accept (random bytes).
const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0";
const SIGNATURE: &str = "c2lnbmF0dXJlLXRoYXQtbm8ta2V5LW1hZGUtMDEyMzQ1Njc4OWFiY2RlZg";

/// The key family an algorithm needs (as documented on `jwt::Family`).
fn family(alg: Algorithm) -> Family {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 => Family::Ec,
        EdDSA => Family::Ed,
        HS256 | HS384 | HS512 => Family::Hmac,
        _ => Family::Unsupported,
    }
}

fn exercise(set: &KeySet) {
    for alg in ALGS {
        for k in set.candidates(alg, None) {
            assert!(k.fits(alg), "candidate that does not fit {alg:?}");
            assert_eq!(
                k.family,
                family(alg),
                "key of family {:?} offered for {alg:?}",
                k.family
            );
            if let Some(pinned) = k.alg {
                assert_eq!(pinned, alg, "key pinned to {pinned:?} offered for {alg:?}");
            }
            let ok = jsonwebtoken::crypto::verify(SIGNATURE, MESSAGE, &k.key, alg);
            assert!(
                !matches!(ok, Ok(true)),
                "a fixed random signature verified under {alg:?}"
            );
        }
    }
    for k in &set.keys {
        if let Some(kid) = k.kid.as_deref() {
            assert!(set.has_kid(kid));
            for alg in ALGS {
                if k.fits(alg) {
                    assert!(
                        set.candidates(alg, Some(kid))
                            .any(|c| c.kid.as_deref() == Some(kid)),
                        "key {kid:?} fits {alg:?} but is not a candidate for its own kid"
                    );
                }
            }
        }
    }
    assert_eq!(set.fingerprints().len(), set.keys.len());
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"-----BEGIN") {
        // The connector's PEM detection order: RSA, EC, Ed25519.
        for key in [
            DecodingKey::from_rsa_pem(data).map(|k| (k, Algorithm::RS256)),
            DecodingKey::from_ec_pem(data).map(|k| (k, Algorithm::ES256)),
            DecodingKey::from_ed_pem(data).map(|k| (k, Algorithm::EdDSA)),
        ]
        .into_iter()
        .flatten()
        {
            let _ = jsonwebtoken::crypto::verify(SIGNATURE, MESSAGE, &key.0, key.1);
        }
        return;
    }
    match parse_jwks(data) {
        Ok((set, skipped)) => {
            exercise(&set);
            // Messages describe skipped keys; they must stay bounded by the input.
            for s in &skipped {
                assert!(
                    s.len() < 4096 + data.len() * 2,
                    "skip message grows beyond the input"
                );
            }
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
