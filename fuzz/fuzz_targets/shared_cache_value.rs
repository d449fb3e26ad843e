//! `shared_cache_value`: what Redis answers for a shared-cache key, as the
//! userinfo connector reads it: `Seal::open` (plain and AES-256-GCM sealed
//! values) then `userinfo::decode_shared_entry` (the stored answer and its
//! times), at a fuzzed "now", for a reader with fixed lifetimes.
//!
//! Asserts: no panic; a sealed seal never opens a value it did not write
//! (the fixed key below never sealed anything the fuzzer can produce); an
//! entry is fresh only before its `fresh` time, and a stale one is always a
//! valid identity.

#![no_main]

use gatehouse_connectors::shared::Seal;
use gatehouse_connectors::userinfo::{decode_shared_entry, Answer, Lifetimes, SharedEntry};
use std::time::Duration;

/// The reader's own lifetimes: 5 min fresh, 10 s negative, 1 h stale.
const LIFETIMES: Lifetimes = Lifetimes {
    ttl: Duration::from_secs(300),
    negative_ttl: Duration::from_secs(10),
    stale: Duration::from_secs(3600),
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (now, stored) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (0, data),
    };
    let plain = Seal::new(None);
    let sealed = Seal::new(Some([0x42; 32]));
    assert!(
        sealed.open("k", stored).is_none(),
        "a value this seal never wrote opened"
    );
    if let Some(value) = plain.open("k", stored) {
        match decode_shared_entry(&value, now, LIFETIMES) {
            SharedEntry::Fresh(_, (fresh, keep)) => {
                assert!(keep >= fresh);
                assert!(fresh <= LIFETIMES.ttl, "never fresher than the reader's own TTL");
                assert!(keep <= LIFETIMES.ttl + LIFETIMES.stale);
            }
            SharedEntry::Stale(answer, _) => assert!(matches!(answer, Answer::Identity(_))),
            SharedEntry::Miss | SharedEntry::Unavailable => {}
        }
    }
});
