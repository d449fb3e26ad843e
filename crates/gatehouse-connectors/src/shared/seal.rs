//! What Redis holds, made unreadable and unforgeable with a 256-bit key:
//! values sealed with AES-256-GCM (the Redis key as associated data, so a
//! value cannot be moved to another key), and Redis keys derived with
//! HMAC-SHA-256 (a key reveals nothing, not even a token's plain SHA-256).
//! Two sub-keys are derived from the file's key, one per use.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;

/// Format byte of a sealed value.
const SEALED: u8 = 1;
/// Format byte of a plain value (no `encryption_key_file`).
const PLAIN: u8 = 0;

/// Why a key file is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must hold a 256-bit key: 32 raw bytes, 64 hex digits or 44 base64 characters")]
pub struct BadKey;

/// Reads a 256-bit key from a file's bytes: 32 raw bytes, or (surrounding
/// white space ignored) 64 hex digits or standard base64 of 32 bytes.
pub fn parse_key(bytes: &[u8]) -> Result<[u8; 32], BadKey> {
    if bytes.len() == 32 {
        return bytes.try_into().map_err(|_| BadKey);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| BadKey)?.trim();
    let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| BadKey)?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| BadKey)?
    };
    decoded.as_slice().try_into().map_err(|_| BadKey)
}

/// Seals and opens values, and derives Redis keys; plain without a key.
pub struct Seal {
    keys: Option<(LessSafeKey, hmac::Key)>,
    rng: SystemRandom,
}

impl Seal {
    /// A seal with `key`, or a plain pass-through without one.
    pub fn new(key: Option<[u8; 32]>) -> Self {
        let keys = key.map(|k| {
            let root = hmac::Key::new(hmac::HMAC_SHA256, &k);
            let sub = |label: &[u8]| hmac::sign(&root, label);
            let enc = sub(b"gatehouse shared cache: values");
            let id = sub(b"gatehouse shared cache: keys");
            // AES_256_GCM takes exactly 32 bytes; an HMAC-SHA-256 tag is 32 bytes.
            let aead = UnboundKey::new(&AES_256_GCM, enc.as_ref())
                .map(LessSafeKey::new)
                .ok();
            (aead, hmac::Key::new(hmac::HMAC_SHA256, id.as_ref()))
        });
        let keys = keys.and_then(|(a, h)| a.map(|a| (a, h)));
        Self {
            keys,
            rng: SystemRandom::new(),
        }
    }

    /// 128 random bits, hex (fleet lock values).
    pub fn random_id(&self) -> String {
        let mut b = [0u8; 16];
        // A failing system RNG leaves zeros: the lock still works, only a
        // late release of an expired lock could then free another's.
        let _ = self.rng.fill(&mut b);
        hex(&b)
    }

    /// True when values are encrypted.
    pub fn encrypts(&self) -> bool {
        self.keys.is_some()
    }

    /// The Redis key part naming `material` (hex): HMAC-SHA-256 with a key,
    /// else the material as given (already a SHA-256).
    pub fn key_id(&self, material: &[u8]) -> String {
        match &self.keys {
            Some((_, id)) => hex(hmac::sign(id, material).as_ref()),
            None => hex(material),
        }
    }

    /// `value` as stored under `redis_key`.
    pub fn seal(&self, redis_key: &str, value: &[u8]) -> Option<Vec<u8>> {
        let Some((aead, _)) = &self.keys else {
            let mut out = Vec::with_capacity(1 + value.len());
            out.push(PLAIN);
            out.extend_from_slice(value);
            return Some(out);
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut body = value.to_vec();
        aead.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(redis_key.as_bytes()),
            &mut body,
        )
        .ok()?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(SEALED);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Some(out)
    }

    /// The value stored under `redis_key`, or `None` when it is not one this
    /// seal wrote (garbage, another key, a plain value while encrypting, a
    /// sealed one while not).
    pub fn open(&self, redis_key: &str, stored: &[u8]) -> Option<Vec<u8>> {
        let (&format, rest) = stored.split_first()?;
        match (&self.keys, format) {
            (None, PLAIN) => Some(rest.to_vec()),
            (Some((aead, _)), SEALED) if rest.len() > NONCE_LEN => {
                let (nonce, body) = rest.split_at(NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
                let mut body = body.to_vec();
                let plain = aead
                    .open_in_place(nonce, Aad::from(redis_key.as_bytes()), &mut body)
                    .ok()?;
                Some(plain.to_vec())
            }
            _ => None,
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_in_three_forms() {
        let raw = [7u8; 32];
        assert_eq!(parse_key(&raw), Ok(raw));
        let hexed = format!("{}\n", "07".repeat(32));
        assert_eq!(parse_key(hexed.as_bytes()), Ok(raw));
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(parse_key(format!("  {b64}\n").as_bytes()), Ok(raw));
        for bad in [
            &b"short"[..],
            &[0u8; 31],
            &[0u8; 33],
            "zz".repeat(32).as_bytes(),
        ] {
            assert_eq!(parse_key(bad), Err(BadKey), "{bad:?}");
        }
    }

    #[test]
    fn sealed_values_open_only_under_their_key_with_their_seal() {
        let s = Seal::new(Some([1; 32]));
        let v = s.seal("k1", b"{\"email\":\"a@b\"}").unwrap();
        assert!(!v.windows(5).any(|w| w == b"email"), "not readable");
        assert_eq!(s.open("k1", &v).unwrap(), b"{\"email\":\"a@b\"}");
        assert_eq!(s.open("k2", &v), None, "moved to another key");
        assert_eq!(
            Seal::new(Some([2; 32])).open("k1", &v),
            None,
            "another key file"
        );
        let mut flipped = v.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(s.open("k1", &flipped), None, "tampered");
        let plain = Seal::new(None);
        assert_eq!(
            s.open("k1", &plain.seal("k1", b"x").unwrap()),
            None,
            "a forged plain value"
        );
        assert_eq!(plain.open("k1", &v), None);
        for garbage in [&b""[..], &[1], &[1; 12], &[9, 9, 9]] {
            assert_eq!(s.open("k1", garbage), None);
            assert!(plain.open("k1", garbage).is_none() || garbage.first() == Some(&PLAIN));
        }
    }

    #[test]
    fn key_ids_are_keyed_when_encrypting() {
        let material = [3u8; 32];
        assert_eq!(Seal::new(None).key_id(&material), "03".repeat(32));
        let a = Seal::new(Some([1; 32])).key_id(&material);
        assert_ne!(a, "03".repeat(32));
        assert_eq!(a.len(), 64);
        assert_ne!(a, Seal::new(Some([2; 32])).key_id(&material));
    }
}
