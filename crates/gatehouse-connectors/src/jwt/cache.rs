//! The verified-token cache: SHA-256 of the token → what its full check
//! produced, for at most its remaining lifetime (1 h at most).

use super::verify::Times;
use http::{HeaderName, HeaderValue};
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

/// A cache of `capacity` verified tokens (`None` when 0: no cache).
pub(super) fn new(capacity: u64) -> Option<Cache<[u8; 32], Arc<Entry>>> {
    (capacity > 0).then(|| {
        Cache::builder()
            .max_capacity(capacity)
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
