//! Test tokens: fixed, generated test keys (RSA 2048, P-256, P-384, Ed25519,
//! HMAC), P-521 keys generated at run time (ES512, signed with aws-lc-rs since
//! `jsonwebtoken` has no ES512), JWKS documents for them, and minting of signed
//! JWTs — including odd headers for negative tests. The keys are test fixtures
//! only.

use aws_lc_rs::encoding::{AsDer, EcPrivateKeyRfc5915Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P521_SHA512_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::Arc;

const RSA: [(&str, &str); 3] = [
    (
        include_str!("../keys/rsa-1.pem"),
        include_str!("../keys/rsa-1.pub.pem"),
    ),
    (
        include_str!("../keys/rsa-2.pem"),
        include_str!("../keys/rsa-2.pub.pem"),
    ),
    (
        include_str!("../keys/rsa-3.pem"),
        include_str!("../keys/rsa-3.pub.pem"),
    ),
];
const EC256: [(&str, &str); 2] = [
    (
        include_str!("../keys/ec256-1.pem"),
        include_str!("../keys/ec256-1.pub.pem"),
    ),
    (
        include_str!("../keys/ec256-2.pem"),
        include_str!("../keys/ec256-2.pub.pem"),
    ),
];
const EC384: (&str, &str) = (
    include_str!("../keys/ec384-1.pem"),
    include_str!("../keys/ec384-1.pub.pem"),
);
const ED25519: (&str, &str) = (
    include_str!("../keys/ed25519-1.pem"),
    include_str!("../keys/ed25519-1.pub.pem"),
);

#[derive(Clone)]
enum Material {
    Pem {
        private: &'static str,
        public: &'static str,
    },
    Secret(Vec<u8>),
    P521(Arc<P521>),
}

/// A generated P-521 key pair and its PEM forms.
struct P521 {
    pair: EcdsaKeyPair,
    pkcs8_pem: String,
    sec1_pem: String,
    public_pem: String,
}

/// PEM text for `der` under `label` (64-character lines).
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A signing key for tests.
#[derive(Clone)]
pub struct TestKey {
    material: Material,
    alg: Algorithm,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestKey({})", self.alg_name())
    }
}

/// Base64url without padding.
pub fn b64url(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

impl TestKey {
    /// RSA 2048 key number `n` (1..=3), RS256.
    pub fn rsa(n: usize) -> Self {
        let (private, public) = RSA[n - 1];
        Self {
            material: Material::Pem { private, public },
            alg: Algorithm::RS256,
        }
    }

    /// P-256 key number `n` (1..=2), ES256.
    pub fn ec256(n: usize) -> Self {
        let (private, public) = EC256[n - 1];
        Self {
            material: Material::Pem { private, public },
            alg: Algorithm::ES256,
        }
    }

    /// The P-384 key, ES384.
    pub fn ec384() -> Self {
        Self {
            material: Material::Pem {
                private: EC384.0,
                public: EC384.1,
            },
            alg: Algorithm::ES384,
        }
    }

    /// The Ed25519 key, EdDSA.
    pub fn ed25519() -> Self {
        Self {
            material: Material::Pem {
                private: ED25519.0,
                public: ED25519.1,
            },
            alg: Algorithm::EdDSA,
        }
    }

    /// A new P-521 key, generated now, ES512. Each call makes another key;
    /// clones share it.
    pub fn p521() -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING)
            .expect("generating a P-521 key");
        let pkcs8 = pair.to_pkcs8v1().expect("P-521 key as PKCS#8");
        let sec1: EcPrivateKeyRfc5915Der = pair.private_key().as_der().expect("P-521 key as SEC1");
        let spki: PublicKeyX509Der = pair
            .public_key()
            .as_der()
            .expect("P-521 public key as SPKI");
        Self {
            material: Material::P521(Arc::new(P521 {
                pkcs8_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
                sec1_pem: pem("EC PRIVATE KEY", sec1.as_ref()),
                public_pem: pem("PUBLIC KEY", spki.as_ref()),
                pair,
            })),
            // Not used for P-521 keys (`jsonwebtoken` has no ES512).
            alg: Algorithm::ES384,
        }
    }

    /// An HMAC secret, HS256.
    pub fn hmac(secret: &[u8]) -> Self {
        Self {
            material: Material::Secret(secret.to_vec()),
            alg: Algorithm::HS256,
        }
    }

    /// The same key used with another algorithm of its family.
    ///
    /// # Panics
    /// For a P-521 key (it only signs ES512).
    pub fn with_alg(mut self, alg: Algorithm) -> Self {
        assert!(
            !matches!(self.material, Material::P521(_)),
            "a P-521 test key only signs ES512"
        );
        self.alg = alg;
        self
    }

    /// The signing algorithm.
    ///
    /// # Panics
    /// For a P-521 key: `jsonwebtoken` has no ES512 (use [`TestKey::alg_name`]).
    pub fn alg(&self) -> Algorithm {
        assert!(
            !matches!(self.material, Material::P521(_)),
            "ES512 is not a jsonwebtoken Algorithm; use alg_name()"
        );
        self.alg
    }

    /// The signing algorithm's name, as in the token header (`"ES512"` for P-521).
    pub fn alg_name(&self) -> String {
        match &self.material {
            Material::P521(_) => "ES512".to_string(),
            _ => format!("{:?}", self.alg),
        }
    }

    /// The private key PEM (PKCS#8; not for HMAC).
    pub fn private_pem(&self) -> Option<&str> {
        match &self.material {
            Material::Pem { private, .. } => Some(private),
            Material::P521(k) => Some(&k.pkcs8_pem),
            Material::Secret(_) => None,
        }
    }

    /// The private key as a SEC1 `EC PRIVATE KEY` PEM (P-521 keys only).
    pub fn sec1_pem(&self) -> Option<&str> {
        match &self.material {
            Material::P521(k) => Some(&k.sec1_pem),
            _ => None,
        }
    }

    /// The public key PEM (SubjectPublicKeyInfo; not for HMAC).
    pub fn public_pem(&self) -> Option<&str> {
        match &self.material {
            Material::Pem { public, .. } => Some(public),
            Material::P521(k) => Some(&k.public_pem),
            Material::Secret(_) => None,
        }
    }

    fn encoding_key(&self) -> EncodingKey {
        match &self.material {
            Material::Secret(s) => EncodingKey::from_secret(s),
            Material::P521(_) => unreachable!("P-521 keys sign with aws-lc-rs"),
            Material::Pem { private, .. } => {
                let pem = private.as_bytes();
                match self.alg {
                    Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
                    Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
                    _ => EncodingKey::from_rsa_pem(pem),
                }
                .expect("test key PEM loads")
            }
        }
    }

    /// The public JWK, with `kid`, `use` and `alg`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut v = match &self.material {
            Material::Secret(s) => json!({ "kty": "oct", "k": b64url(s) }),
            Material::P521(k) => {
                let point = k.pair.public_key().as_ref();
                json!({
                    "kty": "EC",
                    "crv": "P-521",
                    "x": b64url(&point[1..67]),
                    "y": b64url(&point[67..]),
                })
            }
            Material::Pem { .. } => {
                let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.encoding_key(), self.alg)
                    .expect("JWK from test key");
                serde_json::to_value(jwk).expect("JWK serializes")
            }
        };
        let obj = v.as_object_mut().expect("JWK is an object");
        obj.retain(|_, val| !val.is_null());
        obj.insert("kid".into(), json!(kid));
        obj.insert("use".into(), json!("sig"));
        obj.insert("alg".into(), json!(self.alg_name()));
        v
    }

    /// A signed JWT with header `{alg, typ: "JWT", kid?}`.
    pub fn mint(&self, claims: &Value, kid: Option<&str>) -> String {
        if let Material::P521(_) = &self.material {
            let mut h = json!({"alg": "ES512", "typ": "JWT"});
            if let Some(k) = kid {
                h["kid"] = json!(k);
            }
            return self.mint_with_header(&h, claims);
        }
        let mut h = Header::new(self.alg);
        h.typ = Some("JWT".into());
        h.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&h, claims, &self.encoding_key()).expect("minting a test token")
    }

    /// A JWT with exactly this header JSON, signed with this key's algorithm.
    pub fn mint_with_header(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            b64url(header.to_string()),
            b64url(claims.to_string())
        );
        let sig = match &self.material {
            Material::P521(k) => b64url(
                k.pair
                    .sign(&SystemRandom::new(), message.as_bytes())
                    .expect("signing with P-521"),
            ),
            _ => jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding_key(), self.alg)
                .expect("signing"),
        };
        format!("{message}.{sig}")
    }
}

/// A JWKS document for these keys.
pub fn jwks(keys: &[(&TestKey, &str)]) -> Value {
    json!({ "keys": keys.iter().map(|(k, kid)| k.jwk(kid)).collect::<Vec<_>>() })
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    now_f64() as i64
}

fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An `exp` (whole Unix seconds) at least `secs` seconds from now.
///
/// `now() + n` can be only a few milliseconds more than `n - 1` seconds away
/// when it runs just before a second boundary; tests that need a token to
/// stay valid for a while use this instead.
pub fn exp_in(secs: u64) -> i64 {
    (now_f64() + secs as f64).ceil() as i64
}

/// How long until the Unix time `t` is at least 100 ms in the past.
pub fn time_until_past(t: i64) -> std::time::Duration {
    std::time::Duration::from_secs_f64((t as f64 + 0.1 - now_f64()).max(0.0))
}

/// Typical claims valid for `ttl_secs` from now.
pub fn claims(sub: &str, iss: &str, aud: &str, ttl_secs: i64) -> Value {
    let n = now();
    json!({ "sub": sub, "iss": iss, "aud": aud, "iat": n, "nbf": n, "exp": n + ttl_secs })
}

/// `alg: none` with an empty signature.
pub fn unsigned_none_token(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(json!({"alg": "none", "typ": "JWT"}).to_string()),
        b64url(claims.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn every_key_mints_verifiable_tokens() {
        for key in [
            TestKey::rsa(1),
            TestKey::rsa(2).with_alg(Algorithm::PS256),
            TestKey::ec256(1),
            TestKey::ec384(),
            TestKey::ed25519(),
            TestKey::hmac(&[7u8; 32]).with_alg(Algorithm::HS512),
        ] {
            let c = claims("s", "i", "a", 60);
            let t = key.mint(&c, Some("k"));
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk("k")).unwrap();
            let mut v = Validation::new(key.alg());
            v.set_audience(&["a"]);
            let d = jsonwebtoken::decode::<Value>(&t, &DecodingKey::from_jwk(&jwk).unwrap(), &v)
                .unwrap();
            assert_eq!(d.claims["sub"], "s", "{key:?}");
        }
        assert_ne!(TestKey::rsa(1).jwk("k")["n"], TestKey::rsa(2).jwk("k")["n"]);
        assert!(
            DecodingKey::from_rsa_pem(TestKey::rsa(3).public_pem().unwrap().as_bytes()).is_ok()
        );
        assert!(
            DecodingKey::from_ec_pem(TestKey::ec256(2).public_pem().unwrap().as_bytes()).is_ok()
        );
        assert!(
            DecodingKey::from_ed_pem(TestKey::ed25519().public_pem().unwrap().as_bytes()).is_ok()
        );
    }

    #[test]
    fn p521_keys_mint_es512_tokens_that_verify() {
        use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P521_SHA512_FIXED};
        let key = TestKey::p521();
        assert_eq!(key.alg_name(), "ES512");
        let t = key.mint(&claims("s", "i", "a", 60), Some("k"));
        let parts: Vec<&str> = t.split('.').collect();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES512", "typ": "JWT", "kid": "k"}));
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 132, "fixed r||s");
        let jwk = key.jwk("k");
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str()),
            (Some("EC"), Some("P-521"))
        );
        assert_eq!(jwk["alg"], "ES512");
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        assert_eq!((x.len(), y.len()), (66, 66));
        let point = [&[4u8][..], &x, &y].concat();
        let message = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, &point)
            .verify(message.as_bytes(), &sig)
            .unwrap();
        assert!(key
            .private_pem()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(key
            .sec1_pem()
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(key
            .public_pem()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
        // Clones share the key; a new key differs.
        assert_eq!(key.clone().jwk("k"), jwk);
        assert_ne!(TestKey::p521().jwk("k")["x"], jwk["x"]);
    }

    #[test]
    fn odd_headers_and_none() {
        let k = TestKey::rsa(1);
        let t = k.mint_with_header(&json!({"alg": "RS256", "crit": ["x"]}), &json!({"a": 1}));
        assert_eq!(t.split('.').count(), 3);
        assert!(unsigned_none_token(&json!({})).ends_with('.'));
    }
}
