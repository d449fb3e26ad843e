//! The answer cache of remote kinds: fresh, negative and stale-if-error
//! entries per (endpoint, token hash), and one IdP call per key at a time.
//!
//! Valid answers and IdP rejections live in two caches of their own sizes,
//! so a flood of rejected (random) tokens evicts only rejections, never a
//! valid answer. The single-flight table holds an entry only while a call
//! runs: it is removed when the call ends and when the last request waiting
//! on it goes away.

use super::remote::CacheRules;
use crate::errors::Failure;
use crate::kit::clock;
use crate::Denial;
use http::{HeaderName, HeaderValue};
use moka::sync::Cache;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// What one IdP answer means, after the claim gate (cached per endpoint and
/// token).
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Valid: the header edits to apply and the identity document.
    Valid(Admitted),
    /// Valid token, refused by required claims, policy or injection.
    Denied(Failure),
    /// The IdP rejected the token (negatively cached).
    Rejected(IdpRejection),
    /// The IdP could not answer (not cached).
    Unavailable(String),
}

/// A valid answer that passed the claim gate.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Header edits from the claim gate.
    pub edits: Vec<(HeaderName, HeaderValue)>,
    /// The userinfo document, handed to the route's later steps.
    pub doc: Arc<Value>,
}

/// How an IdP rejection is answered.
#[derive(Debug, Clone)]
pub enum IdpRejection {
    /// The IdP's status and challenge, relayed as they are.
    Relay(Denial),
    /// Gatehouse's own answer, rendered per request (it may carry the request id).
    Own(Failure),
}

/// What one resolution of a missed key produced: the outcome, how long it
/// may be cached when that is already decided (an answer from the shared
/// cache keeps its remaining lifetime), and a stale entry to fall back on.
#[derive(Clone)]
pub struct Resolved {
    /// The outcome.
    pub outcome: Outcome,
    /// (fresh, kept) from now; `None`: computed from the TTLs and the token.
    pub window: Option<(Duration, Duration)>,
    /// A valid answer past its freshness, usable while the IdP fails.
    pub stale: Option<Arc<Entry>>,
    /// Whether the outcome may be cached (an IdP 408/429 is about the IdP,
    /// not the token, and is not).
    pub store: bool,
}

impl Resolved {
    /// An outcome the IdP just gave (`store`: whether it may be cached).
    pub fn fresh(outcome: Outcome, store: bool) -> Self {
        Self {
            outcome,
            window: None,
            stale: None,
            store,
        }
    }
}

/// A cached outcome and how long it may serve.
pub struct Entry {
    /// The outcome.
    pub outcome: Outcome,
    /// Served as a hit until then.
    pub fresh_until: Instant,
    /// Kept (served only while the IdP fails) until then.
    pub keep_until: Instant,
}

struct KeepUntil;

impl moka::Expiry<Key, Arc<Entry>> for KeepUntil {
    fn expire_after_create(&self, _k: &Key, v: &Arc<Entry>, now: Instant) -> Option<Duration> {
        Some(v.keep_until.saturating_duration_since(now))
    }
}

/// (endpoint index, SHA-256 of the token).
pub type Key = (u8, [u8; 32]);

/// What the cache holds for a key.
pub enum Lookup {
    /// A fresh entry: answer from it.
    Fresh(Arc<Entry>),
    /// Past its freshness, kept for stale-if-error.
    Stale(Arc<Entry>),
    /// Nothing.
    Miss,
}

/// The caches and the single-flight table.
pub struct AnswerCache {
    cache: Option<Cache<Key, Arc<Entry>>>,
    negative: Option<Cache<Key, Arc<Entry>>>,
    ttl: Duration,
    negative_ttl: Duration,
    stale: Option<Duration>,
    inflight: Mutex<HashMap<Key, Arc<OnceCell<Resolved>>>>,
}

impl AnswerCache {
    /// A cache following `rules` (none when the size is 0).
    pub fn new(rules: &CacheRules) -> Self {
        let build = |size: u64| {
            (size > 0).then(|| {
                Cache::builder()
                    .max_capacity(size)
                    .expire_after(KeepUntil)
                    .build()
            })
        };
        Self {
            cache: build(rules.size),
            negative: build(rules.negative_size).filter(|_| rules.size > 0),
            ttl: rules.ttl,
            negative_ttl: rules.negative_ttl,
            stale: rules.stale,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// What is cached for `key` now.
    pub fn lookup(&self, key: &Key) -> Lookup {
        let found = self
            .cache
            .as_ref()
            .and_then(|c| c.get(key))
            .or_else(|| self.negative.as_ref().and_then(|c| c.get(key)));
        match found {
            Some(e) if Instant::now() < e.fresh_until => Lookup::Fresh(e),
            Some(e) => Lookup::Stale(e),
            None => Lookup::Miss,
        }
    }

    /// Runs `call` once for all concurrent requests with the same key, and
    /// caches what can be cached (`token` bounds the lifetime by its `exp`).
    pub async fn single_flight<F>(&self, key: Key, token: &str, call: F) -> Resolved
    where
        F: Future<Output = Resolved>,
    {
        // Holds this request's only reference to the entry; on drop — when
        // the call is over, or when the request goes away mid-call — the
        // entry leaves the table unless another request still waits on it.
        let done = Leave {
            table: &self.inflight,
            key,
            cell: {
                let mut m = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                m.entry(key)
                    .or_insert_with(|| Arc::new(OnceCell::new()))
                    .clone()
            },
        };
        done.cell
            .get_or_init(|| async {
                let r = call.await;
                self.store(key, token, &r);
                r
            })
            .await
            .clone()
    }

    /// Calls in progress (entries of the single-flight table).
    #[cfg(test)]
    pub fn inflight_len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// How long an answer may be cached (fresh, kept) from now: a valid one
    /// (`valid`) for the TTL plus stale-if-error, a rejection for the
    /// negative TTL, neither past the token's `exp`. `None`: not at all.
    pub fn window(&self, valid: bool, token: &str) -> Option<(Duration, Duration)> {
        let (ttl, stale) = match valid {
            true => (self.ttl, self.stale),
            false => (self.negative_ttl, None),
        };
        let exp_in = unverified_exp(token).map(|e| e - clock::now());
        cache_window(ttl, stale, exp_in)
    }

    fn store(&self, key: Key, token: &str, r: &Resolved) {
        let o = &r.outcome;
        let valid = match o {
            Outcome::Valid(_) | Outcome::Denied(_) => true,
            Outcome::Rejected(_) => false,
            Outcome::Unavailable(_) => return,
        };
        let target = if valid { &self.cache } else { &self.negative };
        let Some(cache) = target.as_ref().filter(|_| r.store) else {
            return;
        };
        let now = Instant::now();
        // Stale-if-error only for valid answers (a gate refusal is not served stale).
        let computed = self.window(valid, token).map(|(f, k)| {
            if matches!(o, Outcome::Valid(_)) {
                (f, k)
            } else {
                (f, f)
            }
        });
        // An answer from the shared cache keeps what is left of its lifetime.
        let window = match (r.window, computed) {
            (Some((f, k)), Some((cf, ck))) => Some((f.min(cf), k.min(ck))),
            (_, c) => c,
        };
        let Some((fresh, keep)) = window.filter(|(f, _)| !f.is_zero()) else {
            return;
        };
        let (Some(fresh_until), Some(keep_until)) = (now.checked_add(fresh), now.checked_add(keep))
        else {
            return;
        };
        cache.insert(
            key,
            Arc::new(Entry {
                outcome: o.clone(),
                fresh_until,
                keep_until,
            }),
        );
    }
}

/// One request's hold on a single-flight entry: on drop, the entry leaves
/// the table if its call is over or nobody else waits on it.
struct Leave<'a> {
    table: &'a Mutex<HashMap<Key, Arc<OnceCell<Resolved>>>>,
    key: Key,
    cell: Arc<OnceCell<Resolved>>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut m = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let ours = m.get(&self.key).is_some_and(|c| Arc::ptr_eq(c, &self.cell));
        // Two holders: the table and this request. Others cloned it under the
        // same lock, so the count is exact here.
        let alone = Arc::strong_count(&self.cell) <= 2;
        if ours && (self.cell.initialized() || alone) {
            m.remove(&self.key);
        }
    }
}

/// The `exp` of a JWT-shaped token, read without verification (only used to
/// cap how long an answer is cached and served stale).
pub fn unverified_exp(token: &str) -> Option<f64> {
    let bytes = crate::kit::unverified_payload(token)?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_f64()
}

/// How long an answer stays fresh, and how long it is kept (served stale
/// while the IdP fails), from now: `ttl`, plus `stale` for valid answers,
/// neither past the token's `exp` (seconds left until it, possibly negative
/// or huge). `None`: not cached.
pub fn cache_window(
    ttl: Duration,
    stale: Option<Duration>,
    exp_in: Option<f64>,
) -> Option<(Duration, Duration)> {
    let until_exp = exp_in.map(|left| {
        if left.is_nan() || left <= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(left).unwrap_or(Duration::MAX)
        }
    });
    let fresh = until_exp.map_or(ttl, |e| ttl.min(e));
    if fresh.is_zero() {
        return None;
    }
    let keep = fresh.saturating_add(stale.unwrap_or(Duration::ZERO));
    Some((fresh, until_exp.map_or(keep, |e| keep.min(e))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::errors::{Failure, FailureClass};
    use crate::Reason;

    fn rules(size: u64, negative_size: u64) -> CacheRules {
        CacheRules {
            size,
            negative_size,
            ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(300),
            stale: None,
        }
    }

    fn key(i: u32) -> Key {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&i.to_be_bytes());
        (0, h)
    }

    fn rejected() -> Resolved {
        let f = Failure::new(
            Reason::IdpRejected,
            FailureClass::InvalidToken,
            "x",
            "rejected",
        );
        Resolved::fresh(Outcome::Rejected(IdpRejection::Own(f)), true)
    }

    #[tokio::test]
    async fn a_flood_of_rejected_tokens_never_evicts_valid_answers() {
        let c = AnswerCache::new(&rules(100, 10));
        for i in 0..100 {
            c.single_flight(key(i), "opaque", async {
                Resolved::fresh(
                    Outcome::Valid(Admitted {
                        edits: Vec::new(),
                        doc: Default::default(),
                    }),
                    true,
                )
            })
            .await;
        }
        for i in 1_000..21_000 {
            c.single_flight(key(i), "opaque", async { rejected() })
                .await;
        }
        for cache in [&c.cache, &c.negative] {
            cache.as_ref().unwrap().run_pending_tasks();
        }
        let valid = (0..100)
            .filter(|&i| matches!(c.lookup(&key(i)), Lookup::Fresh(e) if matches!(e.outcome, Outcome::Valid(_))))
            .count();
        assert_eq!(valid, 100, "valid answers were evicted by rejections");
        assert!(c.negative.as_ref().unwrap().entry_count() <= 10);
        // The newest rejections are still answered from the negative cache.
        assert_eq!(c.inflight_len(), 0);
    }

    #[tokio::test]
    async fn a_call_abandoned_by_its_only_request_leaves_the_table() {
        let c = AnswerCache::new(&rules(100, 10));
        let mut pending =
            Box::pin(c.single_flight(key(1), "opaque", std::future::pending::<Resolved>()));
        let polled = std::future::poll_fn(|cx| {
            let _ = pending.as_mut().poll(cx);
            std::task::Poll::Ready(())
        });
        polled.await;
        assert_eq!(c.inflight_len(), 1);
        drop(pending);
        assert_eq!(c.inflight_len(), 0, "the abandoned call's entry stayed");
    }

    #[tokio::test]
    async fn another_waiter_takes_over_an_abandoned_call() {
        let c = Arc::new(AnswerCache::new(&rules(100, 10)));
        let mut first =
            Box::pin(c.single_flight(key(1), "opaque", std::future::pending::<Resolved>()));
        std::future::poll_fn(|cx| {
            let _ = first.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        let c2 = c.clone();
        let second = tokio::spawn(async move {
            c2.single_flight(key(1), "opaque", async {
                Resolved::fresh(
                    Outcome::Valid(Admitted {
                        edits: Vec::new(),
                        doc: Default::default(),
                    }),
                    true,
                )
            })
            .await
        });
        // Wait until the second request holds the entry too, then abandon the first.
        while Arc::strong_count(&c.inflight.lock().unwrap()[&key(1)]) < 3 {
            tokio::task::yield_now().await;
        }
        drop(first);
        assert_eq!(c.inflight_len(), 1, "the second request still needs it");
        let r = second.await.unwrap();
        assert!(matches!(r.outcome, Outcome::Valid(_)));
        assert_eq!(c.inflight_len(), 0);
    }
}
