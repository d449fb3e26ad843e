//! The verified-token cache: SHA-256 of the token → what its full check
//! produced, for at most its remaining lifetime (1 h at most).

use super::settings::TokenCachePolicy;
use super::verify::Times;
use http::{HeaderName, HeaderValue};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a verified token stays cached when it has no `exp`.
pub(super) const NO_EXP_CACHE_TTL: Duration = Duration::from_secs(300);
/// Longest a verified token stays cached at all.
pub(super) const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// What a successful check produced (cached per token).
#[derive(Debug)]
pub(super) struct Entry {
    /// Time claims, re-checked on every hit.
    pub times: Times,
    /// Header edits from the claim gate (and the claims header).
    pub edits: Vec<(HeaderName, HeaderValue)>,
    /// The verified claims, handed to the route's later steps.
    pub claims: Arc<serde_json::Value>,
    /// Fingerprint of the verifying key (its removal purges the entry).
    pub key: u64,
    /// The token's `cnf."x5t#S256"`, kept when binding is required and
    /// compared with the connection's certificate on every hit.
    pub bound_to: Option<Box<str>>,
    /// Lifetime in the cache.
    pub ttl: Duration,
}

struct TtlExpiry;

impl moka::Expiry<[u8; 32], Arc<Entry>> for TtlExpiry {
    fn expire_after_create(
        &self,
        _k: &[u8; 32],
        v: &Arc<Entry>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// A cache of `capacity` verified tokens evicted by `policy` (`None` when 0:
/// no cache).
pub(super) fn new(capacity: u64, policy: TokenCachePolicy) -> Option<Cache<[u8; 32], Arc<Entry>>> {
    let policy = match policy {
        TokenCachePolicy::TinyLfu => EvictionPolicy::tiny_lfu(),
        TokenCachePolicy::Lru => EvictionPolicy::lru(),
    };
    (capacity > 0).then(|| {
        Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(policy)
            .expire_after(TtlExpiry)
            .support_invalidation_closures()
            .build()
    })
}

/// Seconds (from claims, possibly huge, negative or fractional) as a
/// duration no longer than `cap`: never panics.
pub(super) fn bounded_secs(secs: f64, cap: Duration) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
}

/// How long a token verified at `now` may stay cached: until `exp` (plus
/// leeway), and `iat + max_age`, never more than [`MAX_CACHE_TTL`].
pub(super) fn ttl(times: Times, leeway: f64, max_age: Option<f64>, now: f64) -> Duration {
    // Claims can hold any JSON number (1e20, -1e300): saturate, never panic.
    let mut ttl = times.exp.map_or(NO_EXP_CACHE_TTL, |e| {
        bounded_secs(e + leeway - now, MAX_CACHE_TTL)
    });
    if let (Some(max), Some(i)) = (max_age, times.iat) {
        ttl = ttl.min(bounded_secs(i + max + leeway - now, MAX_CACHE_TTL));
    }
    ttl.min(MAX_CACHE_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Arc<Entry> {
        Arc::new(Entry {
            times: Times {
                exp: None,
                nbf: None,
                iat: None,
            },
            edits: Vec::new(),
            claims: Arc::new(serde_json::Value::Null),
            key: 0,
            bound_to: None,
            ttl: MAX_CACHE_TTL,
        })
    }

    /// A full cache of one token, read often, then a new token: LRU admits
    /// the new one, TinyLFU keeps the frequent one.
    fn survivor(policy: TokenCachePolicy) -> ([bool; 2], u64) {
        let c = new(1, policy).expect("a cache");
        let (old, new_key) = ([1u8; 32], [2u8; 32]);
        c.insert(old, entry());
        for _ in 0..8 {
            assert!(c.get(&old).is_some());
        }
        c.run_pending_tasks();
        c.insert(new_key, entry());
        c.run_pending_tasks();
        (
            [c.contains_key(&old), c.contains_key(&new_key)],
            c.entry_count(),
        )
    }

    #[test]
    fn both_policies_reach_moka() {
        assert_eq!(survivor(TokenCachePolicy::Lru), ([false, true], 1));
        assert_eq!(survivor(TokenCachePolicy::TinyLfu), ([true, false], 1));
        assert!(new(0, TokenCachePolicy::Lru).is_none());
    }
}
