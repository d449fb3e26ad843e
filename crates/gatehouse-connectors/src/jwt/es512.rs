//! ES512 (ECDSA on P-521 with SHA-512, RFC 7518 §3.4), verified through
//! aws-lc-rs directly: `jsonwebtoken` 11 has no ES512.
//!
//! A P-521 public key comes from a JWK (`crv = "P-521"`, 66-byte `x` and `y`)
//! or from a SubjectPublicKeyInfo PEM; it is parsed and checked (on the curve)
//! once, when the key set is built. A JWS signature is the fixed 132-byte
//! `r || s`; anything else (another length, an ASN.1/DER signature) does not
//! verify.

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P521_SHA512_FIXED};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

/// Bytes of one P-521 coordinate, and of `r` and of `s` (⌈521 / 8⌉).
pub const COORDINATE_LEN: usize = 66;
/// Bytes of an ES512 JWS signature: `r || s` (RFC 7518 §3.4).
pub const SIGNATURE_LEN: usize = 2 * COORDINATE_LEN;
/// Bytes of an uncompressed SEC1 point: `0x04 || x || y`.
pub const POINT_LEN: usize = 1 + 2 * COORDINATE_LEN;

/// DER of the named-curve OID secp521r1 (1.3.132.0.35), as it appears in a
/// SubjectPublicKeyInfo's AlgorithmIdentifier.
pub(crate) const OID_P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
/// prime256v1 / P-256 (1.2.840.10045.3.1.7).
pub(crate) const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1 / P-384 (1.3.132.0.34).
pub(crate) const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Why P-521 key material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum P521Error {
    /// A JWK coordinate is not base64url.
    #[error("P-521 {0} is not base64url")]
    Base64(&'static str),
    /// A JWK coordinate has the wrong length.
    #[error("P-521 {coordinate} is {len} bytes; it must be 66")]
    CoordinateLength {
        /// `x` or `y`.
        coordinate: &'static str,
        /// The decoded length.
        len: usize,
    },
    /// The point is not on the curve, or the encoding is not a P-521 key.
    #[error("not a valid P-521 public key (point not on the curve, or malformed)")]
    Invalid,
}

/// A P-521 public key, parsed and validated once.
#[derive(Clone)]
pub struct P521Key {
    key: ParsedPublicKey,
    point: Box<[u8]>,
}

impl std::fmt::Debug for P521Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("P521Key")
    }
}

impl P521Key {
    /// From the uncompressed SEC1 point `0x04 || x || y` (133 bytes).
    pub fn from_point(point: &[u8]) -> Result<Self, P521Error> {
        if point.len() != POINT_LEN || point[0] != 0x04 {
            return Err(P521Error::Invalid);
        }
        let key = ParsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, point)
            .map_err(|_| P521Error::Invalid)?;
        Ok(Self {
            key,
            point: point.into(),
        })
    }

    /// From 66-byte big-endian coordinates.
    pub fn from_coordinates(x: &[u8], y: &[u8]) -> Result<Self, P521Error> {
        for (coordinate, c) in [("x", x), ("y", y)] {
            if c.len() != COORDINATE_LEN {
                return Err(P521Error::CoordinateLength {
                    coordinate,
                    len: c.len(),
                });
            }
        }
        let mut point = Vec::with_capacity(POINT_LEN);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Self::from_point(&point)
    }

    /// From a JWK's base64url `x` and `y` members.
    pub fn from_jwk(x: &str, y: &str) -> Result<Self, P521Error> {
        let x = URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|_| P521Error::Base64("x"))?;
        let y = URL_SAFE_NO_PAD
            .decode(y)
            .map_err(|_| P521Error::Base64("y"))?;
        Self::from_coordinates(&x, &y)
    }

    /// From a DER SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`) whose
    /// curve is P-521.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, P521Error> {
        if spki_curve_oid(der) != Some(OID_P521) {
            return Err(P521Error::Invalid);
        }
        let key =
            ParsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, der).map_err(|_| P521Error::Invalid)?;
        // aws-lc re-encodes the key canonically (uncompressed point last).
        let canonical =
            aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(&key)
                .map_err(|_| P521Error::Invalid)?;
        let der = canonical.as_ref();
        let point = der
            .len()
            .checked_sub(POINT_LEN)
            .map(|at| &der[at..])
            .filter(|p| p[0] == 0x04)
            .ok_or(P521Error::Invalid)?;
        Ok(Self {
            point: point.into(),
            key,
        })
    }

    /// The uncompressed SEC1 point `0x04 || x || y`.
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// The 66-byte `x` and `y` coordinates.
    pub fn coordinates(&self) -> (&[u8], &[u8]) {
        let xy = &self.point[1..];
        xy.split_at(COORDINATE_LEN)
    }

    /// True when `signature` (raw bytes) is a valid fixed-length ES512
    /// signature of `message` under this key.
    pub fn verify_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == SIGNATURE_LEN && self.key.verify_sig(message, signature).is_ok()
    }

    /// True when `signature` (the JWS third part, base64url) verifies.
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        // A 132-byte signature is exactly 176 base64url characters.
        if signature.len() != 176 {
            return false;
        }
        match URL_SAFE_NO_PAD.decode(signature) {
            Ok(raw) => self.verify_raw(message, &raw),
            Err(_) => false,
        }
    }
}

/// The named-curve OID of an EC SubjectPublicKeyInfo (the DER TLV of the
/// AlgorithmIdentifier's parameters), when it is P-256, P-384 or P-521.
pub(crate) fn spki_curve_oid(der: &[u8]) -> Option<&'static [u8]> {
    // The AlgorithmIdentifier comes first: the OID sits in the first few dozen bytes.
    let head = &der[..der.len().min(32)];
    [OID_P521, OID_P384, OID_P256]
        .into_iter()
        .find(|oid| head.windows(oid.len()).any(|w| w == *oid))
}

/// The DER body of the first PEM block labelled `label` (e.g. `PUBLIC KEY`).
/// `None` when there is no such block or its body is not base64.
pub fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let len = text.get(start..)?.find(&end)?;
    let body: String = text
        .get(start..start + len)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P521_SHA512_FIXED_SIGNING};

    fn pair() -> EcdsaKeyPair {
        EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING).unwrap()
    }

    #[test]
    fn point_jwk_and_spki_forms_agree_and_verify() {
        let kp = pair();
        let point = kp.public_key().as_ref().to_vec();
        assert_eq!(point.len(), POINT_LEN);
        let sig = kp.sign(&SystemRandom::new(), b"message").unwrap();
        let sig = URL_SAFE_NO_PAD.encode(sig.as_ref());
        let from_point = P521Key::from_point(&point).unwrap();
        let (x, y) = from_point.coordinates();
        let from_jwk =
            P521Key::from_jwk(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y)).unwrap();
        let spki: PublicKeyX509Der = kp.public_key().as_der().unwrap();
        let from_spki = P521Key::from_spki_der(spki.as_ref()).unwrap();
        assert_eq!(from_spki.point(), &point[..]);
        for k in [&from_point, &from_jwk, &from_spki] {
            assert!(k.verify(b"message", &sig));
            assert!(!k.verify(b"messagf", &sig));
        }
        // Another key does not verify.
        assert!(!P521Key::from_point(pair().public_key().as_ref())
            .unwrap()
            .verify(b"message", &sig));
    }

    #[test]
    fn bad_material_is_refused_without_panic() {
        let kp = pair();
        let point = kp.public_key().as_ref().to_vec();
        let (x, y) = (&point[1..67], &point[67..]);
        assert_eq!(
            P521Key::from_coordinates(&x[1..], y).err(),
            Some(P521Error::CoordinateLength {
                coordinate: "x",
                len: 65
            })
        );
        let mut long_y = y.to_vec();
        long_y.push(0);
        assert!(matches!(
            P521Key::from_coordinates(x, &long_y),
            Err(P521Error::CoordinateLength {
                coordinate: "y",
                len: 67
            })
        ));
        // Off the curve: y + 1.
        let mut off = y.to_vec();
        off[65] ^= 1;
        assert_eq!(
            P521Key::from_coordinates(x, &off).err(),
            Some(P521Error::Invalid)
        );
        // Coordinates ≥ p, all zero, all 0xff.
        assert!(P521Key::from_coordinates(&[0xff; 66], &[0xff; 66]).is_err());
        assert!(P521Key::from_coordinates(&[0; 66], &[0; 66]).is_err());
        assert_eq!(
            P521Key::from_jwk("!!", "AA").err(),
            Some(P521Error::Base64("x"))
        );
        assert_eq!(
            P521Key::from_jwk("AA", "A").err(),
            Some(P521Error::Base64("y"))
        );
        assert!(P521Key::from_point(&[]).is_err());
        assert!(P521Key::from_point(&point[..100]).is_err());
        // Compressed or hybrid prefix in the 133-byte form.
        let mut p = point.clone();
        p[0] = 0x02;
        assert!(P521Key::from_point(&p).is_err());
        // SPKI: truncated, garbage, and a P-256 key.
        let spki: PublicKeyX509Der = kp.public_key().as_der().unwrap();
        let der = spki.as_ref();
        assert!(P521Key::from_spki_der(&der[..der.len() - 1]).is_err());
        assert!(P521Key::from_spki_der(&[0x30, 0x00]).is_err());
        assert!(P521Key::from_spki_der(&[]).is_err());
        let p256 =
            EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p256_spki: PublicKeyX509Der = p256.public_key().as_der().unwrap();
        assert_eq!(spki_curve_oid(p256_spki.as_ref()), Some(OID_P256));
        assert!(P521Key::from_spki_der(p256_spki.as_ref()).is_err());
    }

    #[test]
    fn only_the_fixed_132_byte_signature_verifies() {
        let kp = pair();
        let key = P521Key::from_point(kp.public_key().as_ref()).unwrap();
        let sig = kp
            .sign(&SystemRandom::new(), b"m")
            .unwrap()
            .as_ref()
            .to_vec();
        assert_eq!(sig.len(), SIGNATURE_LEN);
        assert!(key.verify_raw(b"m", &sig));
        assert!(!key.verify_raw(b"m", &sig[..131]));
        let mut long = sig.clone();
        long.push(0);
        assert!(!key.verify_raw(b"m", &long));
        assert!(!key.verify_raw(b"m", &[]));
        // The same signature in ASN.1 DER form.
        let der = EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1_SIGNING,
            kp.to_pkcs8v1().unwrap().as_ref(),
        )
        .unwrap()
        .sign(&SystemRandom::new(), b"m")
        .unwrap();
        assert!(!key.verify_raw(b"m", der.as_ref()));
        assert!(!key.verify(b"m", &URL_SAFE_NO_PAD.encode(der.as_ref())));
        // base64url text: padding, bad characters, wrong length.
        let b64 = URL_SAFE_NO_PAD.encode(&sig);
        assert!(key.verify(b"m", &b64));
        assert!(!key.verify(b"m", &format!("{b64}==")));
        assert!(!key.verify(b"m", &format!("{}*", &b64[..175])));
        assert!(!key.verify(b"m", ""));
        assert!(!key.verify(b"m", &"A".repeat(176)));
    }

    #[test]
    fn pem_blocks() {
        let text = "junk\n-----BEGIN PUBLIC KEY-----\nAAEC\nAw==\n-----END PUBLIC KEY-----\n";
        assert_eq!(pem_block(text, "PUBLIC KEY"), Some(vec![0, 1, 2, 3]));
        assert_eq!(pem_block(text, "PRIVATE KEY"), None);
        assert_eq!(
            pem_block(
                "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----",
                "PUBLIC KEY"
            ),
            None
        );
        assert_eq!(
            pem_block("-----BEGIN PUBLIC KEY-----\nAAEC", "PUBLIC KEY"),
            None
        );
    }
}
