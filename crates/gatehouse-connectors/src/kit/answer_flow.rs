//! How a remote kind resolves a token its in-process cache missed: from
//! the shared cache when it has the answer (or another replica is fetching
//! it — the fleet lock), else from the identity provider, storing the
//! answer for the other replicas. Written once for every remote kind; a
//! kind supplies the call and the judgement ([`RemoteCall`]).

use super::answer_cache::{AnswerCache, Entry, Outcome, Resolved};
use super::answer_l2::{Found, L2};
use super::remote::Answer;
use crate::shared::Lock;
use async_trait::async_trait;
use prometheus::IntCounter;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a remote kind supplies to [`resolve`].
#[async_trait]
pub trait RemoteCall: Sync {
    /// One call to the identity provider (endpoint `idx`) about `token`,
    /// bounded and counted by the kind.
    async fn call(&self, idx: usize, token: &str) -> Answer;
    /// What an answer from endpoint `idx` means for this connector.
    fn judge(&self, idx: usize, answer: Answer) -> Outcome;
    /// True for an answer about the IdP's state, not the token (408, 429):
    /// never cached, never shared.
    fn transient(&self, answer: &Answer) -> bool;
    /// The timeout of one call (the fleet lock outlives it).
    fn call_timeout(&self) -> Duration;
}

/// Counters of the shared-cache path (`l2_hit`, `l2_miss`, `l2_waited`).
pub struct L2Counters<'a> {
    /// Answered from the shared cache.
    pub hit: &'a IntCounter,
    /// Not in the shared cache.
    pub miss: &'a IntCounter,
    /// Answered from the shared cache after waiting for another replica.
    pub waited: &'a IntCounter,
}

/// A key the in-process `cache` missed, resolved for endpoint `idx` and
/// `token` (whose SHA-256 is `hash`).
pub async fn resolve<K: RemoteCall + ?Sized>(
    k: &K,
    cache: &AnswerCache,
    l2: Option<&L2>,
    m: L2Counters<'_>,
    idx: usize,
    token: &str,
    hash: &[u8; 32],
) -> Resolved {
    let Some(l2) = l2 else {
        let answer = k.call(idx, token).await;
        let store = !k.transient(&answer);
        return Resolved::fresh(k.judge(idx, answer), store);
    };
    let mut stale = None;
    let mut reachable = true;
    match l2.lookup(idx, hash).await {
        Found::Fresh(answer, window) => {
            m.hit.inc();
            return judged_l2(k, idx, answer, window);
        }
        Found::Stale(answer, keep) => {
            // Never past the token's exp (nor this connector's windows,
            // which decode applied).
            let keep = cache
                .window(true, token)
                .map_or(Duration::ZERO, |w| keep.min(w.1));
            let outcome = k.judge(idx, answer);
            let now = Instant::now();
            if matches!(outcome, Outcome::Valid(_)) && !keep.is_zero() {
                stale = now.checked_add(keep).map(|keep_until| {
                    Arc::new(Entry {
                        outcome,
                        fresh_until: now,
                        keep_until,
                    })
                });
            }
        }
        Found::Miss => {}
        // No second Redis round trip for this request: at most one timeout.
        Found::Unavailable => reachable = false,
    }
    m.miss.inc();
    let mut locked = None;
    if let Some(wait) = l2.single_flight().filter(|_| reachable) {
        // The lock outlives one IdP call and the store; its holder stores
        // the answer, then releases it.
        let ttl = l2.lock_ttl(k.call_timeout());
        match l2.lock(idx, hash, ttl).await {
            Lock::Held => {
                if let Some((answer, window)) = l2.wait_fresh(idx, hash, wait).await {
                    m.waited.inc();
                    return judged_l2(k, idx, answer, window);
                }
            }
            Lock::Acquired(token) => locked = Some(token),
            Lock::Unavailable => {}
        }
    }
    let answer = k.call(idx, token).await;
    let valid = matches!(answer, Answer::Identity(_));
    let transient = k.transient(&answer);
    match cache.window(valid, token) {
        // Only valid answers are served stale; a refusal is kept while fresh.
        Some(w) if !matches!(answer, Answer::Unavailable(_)) && !transient => {
            let w = if valid { w } else { (w.0, w.0) };
            l2.store(idx, hash, &answer, w, locked);
        }
        _ => {
            if let Some(token) = locked {
                l2.unlock(idx, hash, token);
            }
        }
    }
    Resolved {
        outcome: k.judge(idx, answer),
        window: None,
        stale,
        store: !transient,
    }
}

/// An answer found in the shared cache, judged here, with what is left of
/// its lifetime.
fn judged_l2<K: RemoteCall + ?Sized>(
    k: &K,
    idx: usize,
    answer: Answer,
    window: (Duration, Duration),
) -> Resolved {
    Resolved {
        outcome: k.judge(idx, answer),
        window: Some(window),
        stale: None,
        store: true,
    }
}
