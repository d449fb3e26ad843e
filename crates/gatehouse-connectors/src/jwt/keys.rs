//! Verification keys: parsed once (from a JWKS, PEM files or a secret) into
//! `jsonwebtoken` decoding keys, or P-521 keys for ES512 (aws-lc-rs), tagged
//! with what they may verify.

use super::alg::Alg;
use super::es512::{self, P521Key};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::DecodingKey;
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
}

/// The family of `alg`.
pub(super) fn family_of(alg: Alg) -> Family {
    alg.family()
}

/// The key itself.
#[derive(Clone)]
pub enum KeyMaterial {
    /// A `jsonwebtoken` key: every algorithm but ES512.
    Jwt(DecodingKey),
    /// A P-521 public key: ES512 only (verified with aws-lc-rs).
    P521(P521Key),
}

/// One usable verification key.
pub struct VerifyKey {
    /// `kid`, when the key has one.
    pub kid: Option<String>,
    /// Family: a key only ever verifies algorithms of its family.
    pub family: Family,
    /// The JWK's `alg`, when it pins one.
    pub alg: Option<Alg>,
    /// EC curve, when known.
    pub curve: Option<EllipticCurve>,
    /// Stable identity of the key material (for cache invalidation).
    pub fingerprint: u64,
    /// The key.
    pub key: KeyMaterial,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .field("curve", &self.curve)
            .finish()
    }
}

impl VerifyKey {
    /// True when this key may verify a token signed with `alg`: same family,
    /// the pinned `alg` (if any), the same curve (when known), and a P-521
    /// key for ES512 and for nothing else.
    pub fn fits(&self, alg: Alg) -> bool {
        self.family == alg.family()
            && self.alg.is_none_or(|a| a == alg)
            && match (self.curve.as_ref(), alg.curve()) {
                (Some(have), Some(want)) => *have == want,
                _ => true,
            }
            && matches!(self.key, KeyMaterial::P521(_)) == (alg == Alg::ES512)
    }

    /// True when `signature` (the token's third part, base64url) is a valid
    /// signature of `message` (`header.payload`) under this key with `alg`.
    /// Never panics; a key that does not fit `alg` verifies nothing.
    pub fn verify(&self, alg: Alg, signature: &str, message: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match (&self.key, alg.jsonwebtoken()) {
            (KeyMaterial::Jwt(k), Some(a)) => {
                matches!(
                    jsonwebtoken::crypto::verify(signature, message, k, a),
                    Ok(true)
                )
            }
            (KeyMaterial::P521(k), None) => k.verify(message, signature),
            _ => false,
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

/// Why a JWKS document or a key was not usable.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The document is not JSON.
    #[error("JWKS is not JSON: {0}")]
    NotJson(String),
    /// No `keys` member.
    #[error("JWKS has no \"keys\" array")]
    NoKeys,
    /// `use` is not `sig`.
    #[error("not a signature key (use != \"sig\")")]
    NotSignature,
    /// An `alg` this build does not know.
    #[error("unsupported alg \"{0}\"")]
    UnsupportedAlg(String),
    /// An EC curve other than P-256, P-384, P-521.
    #[error("unsupported EC curve")]
    EcCurve,
    /// An OKP curve other than Ed25519.
    #[error("unsupported OKP curve")]
    OkpCurve,
    /// A `kty` this build does not know.
    #[error("unsupported kty")]
    Kty,
    /// The JWK's `alg` needs another key type.
    #[error("alg {0} does not fit the key type")]
    AlgFamily(Alg),
    /// The JWK's `alg` needs another curve.
    #[error("alg {0} does not fit the key's curve")]
    AlgCurve(Alg),
    /// The key material does not parse.
    #[error("unusable key material ({0})")]
    Material(String),
    /// A P-521 key that does not parse.
    #[error(transparent)]
    P521(#[from] es512::P521Error),
    /// A PEM that is not UTF-8.
    #[error("PEM is not text")]
    PemNotText,
    /// A private key where a public one is needed.
    #[error("this is a private key; give the public key")]
    Private,
    /// A PEM of another kind.
    #[error("not an RSA, EC (P-256, P-384, P-521) or Ed25519 public key in PEM form")]
    PemKind,
}

impl From<KeyError> for String {
    fn from(e: KeyError) -> String {
        e.to_string()
    }
}

/// Parses a JWKS document. Keys that cannot be used for signatures (`use =
/// "enc"`, unknown `kty`, unsupported curves, broken members) are skipped and
/// described in the second element, not treated as errors.
pub fn parse_jwks(bytes: &[u8]) -> Result<(KeySet, Vec<String>), KeyError> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| KeyError::NotJson(e.to_string()))?;
    let Some(items) = doc.get("keys").and_then(|k| k.as_array()) else {
        return Err(KeyError::NoKeys);
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

fn key_from_jwk(jwk: &Jwk, raw: &serde_json::Value) -> Result<VerifyKey, KeyError> {
    if let Some(u) = &jwk.common.public_key_use {
        if *u != PublicKeyUse::Signature {
            return Err(KeyError::NotSignature);
        }
    }
    let alg = match raw.get("alg").and_then(|a| a.as_str()) {
        None => None,
        Some(a) => Some(
            a.parse::<Alg>()
                .map_err(|_| KeyError::UnsupportedAlg(a.to_string()))?,
        ),
    };
    let mut p521 = None;
    let (family, curve) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Family::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 | EllipticCurve::P384 => (Family::Ec, Some(p.curve.clone())),
            EllipticCurve::P521 => {
                p521 = Some(P521Key::from_jwk(&p.x, &p.y)?);
                (Family::Ec, Some(EllipticCurve::P521))
            }
            _ => return Err(KeyError::EcCurve),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => (Family::Ed, None),
            _ => return Err(KeyError::OkpCurve),
        },
        AlgorithmParameters::OctetKey(_) => (Family::Hmac, None),
        _ => return Err(KeyError::Kty),
    };
    if let Some(a) = alg {
        if a.family() != family {
            return Err(KeyError::AlgFamily(a));
        }
        if let (Some(want), Some(have)) = (a.curve(), curve.as_ref()) {
            if want != *have {
                return Err(KeyError::AlgCurve(a));
            }
        }
    }
    let key = match p521 {
        Some(k) => KeyMaterial::P521(k),
        None => KeyMaterial::Jwt(
            DecodingKey::from_jwk(jwk).map_err(|e| KeyError::Material(e.to_string()))?,
        ),
    };
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

/// Builds a key from a public-key PEM (RSA, EC P-256/P-384/P-521 or
/// Ed25519, detected).
pub fn key_from_pem(kid: Option<String>, pem: &[u8]) -> Result<VerifyKey, KeyError> {
    let text = std::str::from_utf8(pem).map_err(|_| KeyError::PemNotText)?;
    if text.contains("PRIVATE KEY") {
        return Err(KeyError::Private);
    }
    // The curve of an EC SubjectPublicKeyInfo, read from its AlgorithmIdentifier.
    let spki = es512::pem_block(text, "PUBLIC KEY");
    let curve_oid = spki.as_deref().and_then(es512::spki_curve_oid);
    let (family, curve, key) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        (Family::Rsa, None, KeyMaterial::Jwt(k))
    } else if let (Some(der), Some(es512::OID_P521)) = (spki.as_deref(), curve_oid) {
        let k = P521Key::from_spki_der(der)?;
        (Family::Ec, Some(EllipticCurve::P521), KeyMaterial::P521(k))
    } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        let curve = match curve_oid {
            Some(es512::OID_P256) => Some(EllipticCurve::P256),
            Some(es512::OID_P384) => Some(EllipticCurve::P384),
            _ => None,
        };
        (Family::Ec, curve, KeyMaterial::Jwt(k))
    } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        (Family::Ed, None, KeyMaterial::Jwt(k))
    } else {
        return Err(KeyError::PemKind);
    };
    Ok(VerifyKey {
        fingerprint: fingerprint(&[kid.as_deref().unwrap_or("").as_bytes(), pem]),
        kid,
        family,
        alg: None,
        curve,
        key,
    })
}

/// Builds an HMAC key.
pub(super) fn key_from_secret(secret: &[u8]) -> VerifyKey {
    VerifyKey {
        kid: None,
        family: Family::Hmac,
        alg: None,
        curve: None,
        fingerprint: fingerprint(&[b"hmac", &secret.len().to_le_bytes()]),
        key: KeyMaterial::Jwt(DecodingKey::from_secret(secret)),
    }
}

impl KeySet {
    /// Keys that may verify a token with this `alg` and `kid`.
    pub fn candidates<'a>(
        &'a self,
        alg: Alg,
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
