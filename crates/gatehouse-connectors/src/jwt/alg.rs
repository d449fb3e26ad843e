//! The JWS algorithms the `jwt` connector knows: `jsonwebtoken`'s, plus
//! `ES512` (ECDSA P-521 with SHA-512), which `jsonwebtoken` 11 lacks and
//! which is verified through aws-lc-rs directly (see `es512.rs`).

use super::keys::Family;
use jsonwebtoken::jwk::EllipticCurve;
use jsonwebtoken::Algorithm;
use std::fmt;
use std::str::FromStr;

/// A JWS `alg` this build can verify (RFC 7518 §3.1 names; `none` is not one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// ECDSA P-521 with SHA-512.
    ES512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// EdDSA (Ed25519).
    EdDSA,
}

/// An `alg` name that is not one of [`Alg`] (matching is case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown JWS algorithm")]
pub struct UnknownAlg;

impl Alg {
    /// Every algorithm, in the order the docs list them.
    pub const ALL: [Alg; 13] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::EdDSA,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    /// The registered name (the token header's `alg`).
    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// The key family that verifies this algorithm.
    pub fn family(self) -> Family {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                Family::Rsa
            }
            Alg::ES256 | Alg::ES384 | Alg::ES512 => Family::Ec,
            Alg::EdDSA => Family::Ed,
            Alg::HS256 | Alg::HS384 | Alg::HS512 => Family::Hmac,
        }
    }

    /// The curve an ECDSA algorithm needs (RFC 7518 §3.4), `None` otherwise.
    pub fn curve(self) -> Option<EllipticCurve> {
        match self {
            Alg::ES256 => Some(EllipticCurve::P256),
            Alg::ES384 => Some(EllipticCurve::P384),
            Alg::ES512 => Some(EllipticCurve::P521),
            _ => None,
        }
    }

    /// The `jsonwebtoken` algorithm, for everything but `ES512`.
    pub fn jsonwebtoken(self) -> Option<Algorithm> {
        Some(match self {
            Alg::HS256 => Algorithm::HS256,
            Alg::HS384 => Algorithm::HS384,
            Alg::HS512 => Algorithm::HS512,
            Alg::ES256 => Algorithm::ES256,
            Alg::ES384 => Algorithm::ES384,
            Alg::ES512 => return None,
            Alg::RS256 => Algorithm::RS256,
            Alg::RS384 => Algorithm::RS384,
            Alg::RS512 => Algorithm::RS512,
            Alg::PS256 => Algorithm::PS256,
            Alg::PS384 => Algorithm::PS384,
            Alg::PS512 => Algorithm::PS512,
            Alg::EdDSA => Algorithm::EdDSA,
        })
    }
}

impl FromStr for Alg {
    type Err = UnknownAlg;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Alg::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or(UnknownAlg)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_jsonwebtoken() {
        for a in Alg::ALL {
            assert_eq!(a.name().parse::<Alg>(), Ok(a));
            assert_eq!(a.to_string(), a.name());
            match a.jsonwebtoken() {
                Some(j) => {
                    assert_eq!(format!("{j:?}"), a.name());
                    assert_eq!(a.name().parse::<Algorithm>().ok(), Some(j));
                }
                None => assert_eq!(a, Alg::ES512),
            }
        }
        for bad in ["none", "es512", "ES 512", "", "ES521", "HS1024"] {
            assert_eq!(bad.parse::<Alg>(), Err(UnknownAlg), "{bad}");
        }
    }

    #[test]
    fn families_and_curves() {
        assert_eq!(Alg::ES512.family(), Family::Ec);
        assert_eq!(Alg::ES512.curve(), Some(EllipticCurve::P521));
        assert_eq!(Alg::ES256.curve(), Some(EllipticCurve::P256));
        assert_eq!(Alg::RS256.curve(), None);
        assert_eq!(Alg::EdDSA.family(), Family::Ed);
        assert_eq!(Alg::HS384.family(), Family::Hmac);
    }
}
