//! Mashery signed keys: `sig` = hex digest of key ‖ secret ‖ Unix time in
//! seconds (decimal), accepted when the time is within the skew of now.
//!
//! The signing time is not sent, so every second of the window is tried,
//! nearest to now first (one digest each; 601 at most for 5 minutes). A
//! signature stays valid for its whole window: it can be replayed within it
//! (docs/security.md).

use super::settings::SignatureAlgorithm;
use md5::Md5;
use sha2::{Digest, Sha256};

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigError {
    /// Not hex of the algorithm's length.
    Malformed,
    /// No second of the window gives this signature (a wrong secret or key,
    /// or a time outside the skew).
    NoMatch,
}

/// Checks `sig` (hex, either case) for `key` and `secret` at `now` (Unix
/// seconds), allowing `skew` seconds either way. On success, the offset of
/// the signing time from `now`.
pub fn verify(
    alg: SignatureAlgorithm,
    key: &[u8],
    secret: &[u8],
    sig: &str,
    now: i64,
    skew: i64,
) -> Result<i64, SigError> {
    match alg {
        SignatureAlgorithm::Sha256 => search::<Sha256, 32>(key, secret, sig, now, skew),
        SignatureAlgorithm::Md5 => search::<Md5, 16>(key, secret, sig, now, skew),
    }
}

/// The signature of `key` and `secret` at `time` (for tests and clients).
pub fn sign(alg: SignatureAlgorithm, key: &[u8], secret: &[u8], time: i64) -> String {
    match alg {
        SignatureAlgorithm::Sha256 => hex::encode(at::<Sha256>(prefix(key, secret), time)),
        SignatureAlgorithm::Md5 => hex::encode(at::<Md5>(prefix(key, secret), time)),
    }
}

fn prefix<D: Digest>(key: &[u8], secret: &[u8]) -> D {
    let mut d = D::new();
    d.update(key);
    d.update(secret);
    d
}

fn at<D: Digest + Clone>(prefix: D, time: i64) -> Vec<u8> {
    let mut d = prefix;
    d.update(time.to_string().as_bytes());
    d.finalize().to_vec()
}

fn search<D: Digest + Clone, const N: usize>(
    key: &[u8],
    secret: &[u8],
    sig: &str,
    now: i64,
    skew: i64,
) -> Result<i64, SigError> {
    let mut want = [0u8; N];
    hex::decode_to_slice(sig, &mut want).map_err(|_| SigError::Malformed)?;
    let base: D = prefix(key, secret);
    let mut digits = itoa_buf();
    for off in offsets(skew) {
        let mut d = base.clone();
        d.update(format_i64(&mut digits, now.saturating_add(off)));
        let got = d.finalize();
        if aws_lc_rs::constant_time::verify_slices_are_equal(&got, &want).is_ok() {
            return Ok(off);
        }
    }
    Err(SigError::NoMatch)
}

/// 0, -1, +1, -2, +2, … ±skew.
fn offsets(skew: i64) -> impl Iterator<Item = i64> {
    std::iter::once(0).chain((1..=skew.max(0)).flat_map(|i| [-i, i]))
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

/// Decimal digits of `v` (with a `-` when negative) in `buf`.
fn format_i64(buf: &mut [u8; 20], v: i64) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const T: i64 = 1_796_000_000;

    #[test]
    fn a_signature_verifies_within_the_skew_and_not_outside() {
        for alg in [SignatureAlgorithm::Sha256, SignatureAlgorithm::Md5] {
            let sig = sign(alg, b"k3y", b"s3cret", T);
            assert_eq!(verify(alg, b"k3y", b"s3cret", &sig, T, 300), Ok(0));
            assert_eq!(verify(alg, b"k3y", b"s3cret", &sig, T + 300, 300), Ok(-300));
            assert_eq!(verify(alg, b"k3y", b"s3cret", &sig, T - 300, 300), Ok(300));
            let upper = sig.to_uppercase();
            assert_eq!(verify(alg, b"k3y", b"s3cret", &upper, T + 1, 300), Ok(-1));
            assert_eq!(
                verify(alg, b"k3y", b"s3cret", &sig, T + 301, 300),
                Err(SigError::NoMatch)
            );
            assert_eq!(
                verify(alg, b"k3y", b"other", &sig, T, 300),
                Err(SigError::NoMatch)
            );
            assert_eq!(
                verify(alg, b"k3x", b"s3cret", &sig, T, 300),
                Err(SigError::NoMatch)
            );
            assert_eq!(
                verify(alg, b"k3y", b"s3cret", &sig[1..], T, 300),
                Err(SigError::Malformed)
            );
        }
    }

    #[test]
    fn the_digest_is_of_key_secret_and_decimal_seconds() {
        // An independent computation of the documented formula.
        let want = hex::encode(Sha256::digest(b"abcsecret1796000000"));
        assert_eq!(sign(SignatureAlgorithm::Sha256, b"abc", b"secret", T), want);
        let mut b = itoa_buf();
        assert_eq!(format_i64(&mut b, -42), b"-42");
        assert_eq!(format_i64(&mut b, 0), b"0");
        assert_eq!(
            format_i64(&mut b, i64::MIN),
            i64::MIN.to_string().as_bytes()
        );
    }

    proptest! {
        #[test]
        fn any_text_as_a_signature_is_refused_without_panicking(sig in ".{0,80}", now in any::<i64>()) {
            let r = verify(SignatureAlgorithm::Sha256, b"k", b"s", &sig, now, 2);
            prop_assert!(r.is_err());
        }

        #[test]
        fn offsets_cover_the_window_once(skew in 0i64..50) {
            let mut v: Vec<i64> = offsets(skew).collect();
            prop_assert_eq!(v.len() as i64, 2 * skew + 1);
            v.sort_unstable();
            prop_assert_eq!(v, (-skew..=skew).collect::<Vec<_>>());
        }
    }
}
