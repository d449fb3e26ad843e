//! Test tokens: fixed, generated test keys (RSA 2048, P-256, P-384, Ed25519,
//! HMAC), JWKS documents for them, and minting of signed JWTs — including odd
//! headers for negative tests. The keys are test fixtures only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

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
}

/// A signing key for tests.
#[derive(Clone)]
pub struct TestKey {
    material: Material,
    alg: Algorithm,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestKey({:?})", self.alg)
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

    /// An HMAC secret, HS256.
    pub fn hmac(secret: &[u8]) -> Self {
        Self {
            material: Material::Secret(secret.to_vec()),
            alg: Algorithm::HS256,
        }
    }

    /// The same key used with another algorithm of its family.
    pub fn with_alg(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }

    /// The signing algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The private key PEM (not for HMAC).
    pub fn private_pem(&self) -> Option<&'static str> {
        match &self.material {
            Material::Pem { private, .. } => Some(private),
            Material::Secret(_) => None,
        }
    }

    /// The public key PEM (SubjectPublicKeyInfo; not for HMAC).
    pub fn public_pem(&self) -> Option<&'static str> {
        match &self.material {
            Material::Pem { public, .. } => Some(public),
            Material::Secret(_) => None,
        }
    }

    fn encoding_key(&self) -> EncodingKey {
        match &self.material {
            Material::Secret(s) => EncodingKey::from_secret(s),
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
        obj.insert("alg".into(), json!(format!("{:?}", self.alg)));
        v
    }

    /// A signed JWT with header `{alg, typ: "JWT", kid?}`.
    pub fn mint(&self, claims: &Value, kid: Option<&str>) -> String {
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
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding_key(), self.alg)
            .expect("signing");
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
    fn odd_headers_and_none() {
        let k = TestKey::rsa(1);
        let t = k.mint_with_header(&json!({"alg": "RS256", "crit": ["x"]}), &json!({"a": 1}));
        assert_eq!(t.split('.').count(), 3);
        assert!(unsigned_none_token(&json!({})).ends_with('.'));
    }
}
