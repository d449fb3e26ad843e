//! `jwks_parse`: JWKS documents (`jwt::parse_jwks`) and PEM public keys
//! (`jwt::key_from_pem`, the connector's own reader: RSA, EC P-256/P-384/P-521,
//! Ed25519).
//!
//! Input starting with `-----BEGIN` is parsed as PEM, anything else as a JWKS.
//! Every key that parses is then used to verify a fixed token for every
//! algorithm it claims to fit, so hostile key material (tiny RSA moduli,
//! points off the curve, empty `k`, P-521 coordinates of any length) reaches
//! the crypto code (jsonwebtoken's, and aws-lc-rs directly for ES512).
//!
//! Asserts: no panic; a key only fits algorithms of its own family (and of its
//! pinned `alg`); a P-521 key fits ES512 only and ES512 only P-521 keys;
//! `candidates` only yields fitting keys; a kid lookup agrees with `has_kid`;
//! no fixed signature verifies under a fuzzed key.

#![no_main]

use gatehouse_connectors::jwt::{key_from_pem, parse_jwks, Alg, Family, KeyMaterial, KeySet};
use libfuzzer_sys::fuzz_target;

/// A message and signatures that no key should accept (random bytes; the
/// second has the 132-byte length of an ES512 signature).
const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0";
const SIGNATURES: [&str; 2] = [
    "c2lnbmF0dXJlLXRoYXQtbm8ta2V5LW1hZGUtMDEyMzQ1Njc4OWFiY2RlZg",
    "ZXM1MTItc2lnbmF0dXJlLXRoYXQtbm8ta2V5LW1hZGUtMDEyMzQ1Njc4OWFiY2RlZmVzNTEyLXNpZ25hdHVyZS10aGF0LW5vLWtleS1tYWRlLTAxMjM0NTY3ODlhYmNkZWZlczUxMi1zaWduYXR1cmUtdGhhdC1uby1rZXktbWFkZS0w",
];

/// The key family an algorithm needs (as documented on `jwt::Family`).
fn family(alg: Alg) -> Family {
    use Alg::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 | ES512 => Family::Ec,
        EdDSA => Family::Ed,
        HS256 | HS384 | HS512 => Family::Hmac,
    }
}

fn exercise(set: &KeySet) {
    for alg in Alg::ALL {
        for k in set.candidates(alg, None) {
            assert!(k.fits(alg), "candidate that does not fit {alg}");
            assert_eq!(
                k.family,
                family(alg),
                "key of family {:?} offered for {alg}",
                k.family
            );
            if let Some(pinned) = k.alg {
                assert_eq!(pinned, alg, "key pinned to {pinned} offered for {alg}");
            }
            assert_eq!(
                matches!(k.key, KeyMaterial::P521(_)),
                alg == Alg::ES512,
                "P-521 keys verify ES512 and only ES512 (key {k:?}, alg {alg})"
            );
            for sig in SIGNATURES {
                assert!(
                    !k.verify(alg, sig, MESSAGE),
                    "a fixed random signature verified under {alg}"
                );
            }
        }
    }
    for k in &set.keys {
        if let Some(kid) = k.kid.as_deref() {
            assert!(set.has_kid(kid));
            for alg in Alg::ALL {
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
        // The connector's own PEM reader (RSA, P-521, other EC, Ed25519).
        match key_from_pem(Some("k".into()), data) {
            Ok(key) => exercise(&KeySet { keys: vec![key] }),
            Err(e) => assert!(!e.to_string().is_empty()),
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
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
