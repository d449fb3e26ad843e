//! Verification keys: parsed once (from a JWKS, PEM files or a secret) into
//! `jsonwebtoken` decoding keys tagged with what they may verify.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// The key family an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// RSA (RS*, PS*).
    Rsa,
    /// ECDSA (ES*).
    Ec,
    /// EdDSA (Ed25519).
    Ed,
    /// HMAC (HS*).
    Hmac,
    /// An algorithm this build does not know; no key ever has this family.
    Unsupported,
}

/// The family of `alg`.
pub fn family_of(alg: Algorithm) -> Family {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 => Family::Ec,
        EdDSA => Family::Ed,
        HS256 | HS384 | HS512 => Family::Hmac,
        _ => Family::Unsupported,
    }
}

/// The curve an ECDSA algorithm needs.
fn curve_of(alg: Algorithm) -> Option<EllipticCurve> {
    match alg {
        Algorithm::ES256 => Some(EllipticCurve::P256),
        Algorithm::ES384 => Some(EllipticCurve::P384),
        _ => None,
    }
}

/// One usable verification key.
pub struct VerifyKey {
    /// `kid`, when the key has one.
    pub kid: Option<String>,
    /// Family: a key only ever verifies algorithms of its family.
    pub family: Family,
    /// The JWK's `alg`, when it pins one.
    pub alg: Option<Algorithm>,
    /// EC curve, when known.
    pub curve: Option<EllipticCurve>,
    /// Stable identity of the key material (for cache invalidation).
    pub fingerprint: u64,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyKey {
    /// True when this key may verify a token signed with `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.family == family_of(alg)
            && self.alg.is_none_or(|a| a == alg)
            && match (self.curve.as_ref(), curve_of(alg)) {
                (Some(have), Some(want)) => *have == want,
                _ => true,
            }
    }
}

/// An immutable set of keys.
#[derive(Debug, Default)]
pub struct KeySet {
    /// The keys, in source order.
    pub keys: Vec<VerifyKey>,
}

fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// Parses a JWKS document. Keys that cannot be used for signatures (`use =
/// "enc"`, unknown `kty`, unsupported curves, broken members) are skipped and
/// described in the second element, not treated as errors.
pub fn parse_jwks(bytes: &[u8]) -> Result<(KeySet, Vec<String>), String> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let Some(items) = doc.get("keys").and_then(|k| k.as_array()) else {
        return Err("JWKS has no \"keys\" array".into());
    };
    let mut keys = Vec::with_capacity(items.len());
    let mut skipped = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let label = item
            .get("kid")
            .and_then(|k| k.as_str())
            .map_or_else(|| format!("#{i}"), |k| format!("\"{k}\""));
        let jwk: Jwk = match serde_json::from_value(item.clone()) {
            Ok(j) => j,
            Err(e) => {
                skipped.push(format!("key {label}: unsupported or invalid ({e})"));
                continue;
            }
        };
        match key_from_jwk(&jwk, item) {
            Ok(k) => keys.push(k),
            Err(why) => skipped.push(format!("key {label}: {why}")),
        }
    }
    Ok((KeySet { keys }, skipped))
}

fn key_from_jwk(jwk: &Jwk, raw: &serde_json::Value) -> Result<VerifyKey, String> {
    if let Some(u) = &jwk.common.public_key_use {
        if *u != PublicKeyUse::Signature {
            return Err("not a signature key (use != \"sig\")".into());
        }
    }
    let alg = match raw.get("alg").and_then(|a| a.as_str()) {
        None => None,
        Some(a) => Some(
            a.parse::<Algorithm>()
                .map_err(|_| format!("unsupported alg \"{a}\""))?,
        ),
    };
    let (family, curve) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Family::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 | EllipticCurve::P384 => (Family::Ec, Some(p.curve.clone())),
            _ => return Err("unsupported EC curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => (Family::Ed, None),
            _ => return Err("unsupported OKP curve".into()),
        },
        AlgorithmParameters::OctetKey(_) => (Family::Hmac, None),
        _ => return Err("unsupported kty".into()),
    };
    if let Some(a) = alg {
        if family_of(a) != family {
            return Err(format!("alg {a:?} does not fit the key type"));
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key material ({e})"))?;
    // Public members only (never a private or secret member in a fingerprint input we log).
    let material = serde_json::to_vec(&jwk.algorithm).unwrap_or_default();
    Ok(VerifyKey {
        kid: jwk.common.key_id.clone(),
        family,
        alg,
        curve,
        fingerprint: fingerprint(&[
            jwk.common.key_id.as_deref().unwrap_or("").as_bytes(),
            &material,
        ]),
        key,
    })
}

/// Builds a key from a public-key PEM (RSA, EC or Ed25519, detected).
pub fn key_from_pem(kid: Option<String>, pem: &[u8]) -> Result<VerifyKey, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "PEM is not text".to_string())?;
    if text.contains("PRIVATE KEY") {
        return Err("this is a private key; give the public key".into());
    }
    let (family, key) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        (Family::Rsa, k)
    } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        (Family::Ec, k)
    } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        (Family::Ed, k)
    } else {
        return Err("not an RSA, EC or Ed25519 public key in PEM form".into());
    };
    Ok(VerifyKey {
        fingerprint: fingerprint(&[kid.as_deref().unwrap_or("").as_bytes(), pem]),
        kid,
        family,
        alg: None,
        curve: None,
        key,
    })
}

/// Builds an HMAC key.
pub fn key_from_secret(secret: &[u8]) -> VerifyKey {
    VerifyKey {
        kid: None,
        family: Family::Hmac,
        alg: None,
        curve: None,
        fingerprint: fingerprint(&[b"hmac", &secret.len().to_le_bytes()]),
        key: DecodingKey::from_secret(secret),
    }
}

impl KeySet {
    /// Keys that may verify a token with this `alg` and `kid`.
    pub fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys.iter().filter(move |k| {
            k.fits(alg) && (kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        })
    }

    /// True when a key with this `kid` exists (whatever its type).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Fingerprints of every key.
    pub fn fingerprints(&self) -> Vec<u64> {
        self.keys.iter().map(|k| k.fingerprint).collect()
    }
}
