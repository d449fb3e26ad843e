//! Remote answers (userinfo, introspection) in a shared cache (`shared_cache = "NAME"`), the L2
//! behind the in-process cache: what the IdP said (the identity document or
//! its refusal) and until when, keyed by the token's SHA-256, the endpoint
//! and a fingerprint of every setting that shapes the answer or the verdict
//! (endpoint URL, method, error text, required claims, policy, header
//! maps). A changed policy therefore never meets an old entry, and every
//! hit is judged again by this connector's gate.

use super::remote::Answer;
use crate::errors::IdpRefusal;
use crate::shared::{hex, millis, Lock, LockToken, SharedCache};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a kind stores in the shared cache under: its entry format, the
/// settings of its section that shape an answer or the verdict on it (part
/// of the key, so a changed policy never meets an old entry), and the key
/// namespace prefix.
#[derive(Debug, Clone, Copy)]
pub struct L2Kind {
    /// Format of stored entries (part of the fingerprint).
    pub format: &'static str,
    /// Keys of the section fingerprinted into the key.
    pub fingerprinted: &'static [&'static str],
    /// Namespace prefix of the keys (`ui`).
    pub prefix: &'static str,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    /// Written at (Unix milliseconds).
    written: u64,
    /// Fresh until (Unix milliseconds).
    fresh: u64,
    /// Kept for stale-if-error until (Unix milliseconds).
    keep: u64,
    answer: StoredAnswer,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredAnswer {
    Identity(Value),
    Rejected {
        status: u16,
        challenge: Option<String>,
        error: Option<String>,
        text: String,
    },
}

/// What the shared cache holds for a key.
pub enum Found {
    /// Fresh: the answer, and how long it stays fresh and kept from now.
    Fresh(Answer, (Duration, Duration)),
    /// Past its freshness: a valid answer usable while the IdP fails, for
    /// this long from now.
    Stale(Answer, Duration),
    /// Nothing usable.
    Miss,
    /// Redis did not answer (the request goes on without it).
    Unavailable,
}

/// How long the reading connector itself keeps answers: an entry written by
/// another replica (or under other settings) is never fresh or kept longer
/// than the reader's own `cache_ttl` / `negative_cache_ttl` /
/// `stale_if_error` allow, counted from when it was written.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Fresh lifetime of a valid answer.
    pub ttl: Duration,
    /// Fresh lifetime of a rejection.
    pub negative_ttl: Duration,
    /// Stale-if-error lifetime past `ttl` (zero: none).
    pub stale: Duration,
}

/// IdP statuses about the IdP's state, not the token (rate limit, timeout):
/// never cached, never shared.
pub fn transient_refusal(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429)
}

/// What a value read from Redis means at `now` (Unix milliseconds) for a
/// connector keeping answers for `own`: anything that is not an entry this
/// format wrote is a miss.
pub fn decode(bytes: &[u8], now: u64, own: Lifetimes) -> Found {
    let Ok(mut s) = serde_json::from_slice::<Stored>(bytes) else {
        return Found::Miss;
    };
    // A write time in the future (clock skew, forgery) counts as now.
    let written = s.written.min(now);
    let left = |until: u64| Duration::from_millis(until.saturating_sub(now));
    let answer = match s.answer {
        // Entries written before `sub` was required are misses, not identities.
        StoredAnswer::Identity(doc @ Value::Object(_))
            if doc.get("sub").is_some_and(Value::is_string) =>
        {
            Answer::Identity(doc)
        }
        StoredAnswer::Identity(_) => return Found::Miss,
        StoredAnswer::Rejected {
            status,
            challenge,
            error,
            text,
        } => {
            let Some(status) = http::StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_client_error() && !transient_refusal(*s))
            else {
                return Found::Miss;
            };
            Answer::Rejected(IdpRefusal {
                status,
                challenge: challenge.and_then(|c| http::HeaderValue::from_str(&c).ok()),
                error,
                text,
            })
        }
    };
    let valid = matches!(answer, Answer::Identity(_));
    let own_fresh = written.saturating_add(millis(if valid { own.ttl } else { own.negative_ttl }));
    s.fresh = s.fresh.min(own_fresh);
    s.keep = match valid {
        true => s.keep.min(own_fresh.saturating_add(millis(own.stale))),
        false => s.fresh,
    };
    if now < s.fresh {
        Found::Fresh(answer, (left(s.fresh), left(s.keep.max(s.fresh))))
    } else if now < s.keep && matches!(answer, Answer::Identity(_)) {
        Found::Stale(answer, left(s.keep))
    } else {
        Found::Miss
    }
}

/// One connector's view of a shared cache.
pub struct L2 {
    cache: Arc<SharedCache>,
    own: Lifetimes,
    /// Key namespace per endpoint (`ui:<fingerprint>`).
    namespaces: Vec<String>,
    prefix: &'static str,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

impl L2 {
    /// The L2 of a connector whose section is `settings` and whose endpoints
    /// call `urls`.
    pub fn new(
        kind: L2Kind,
        cache: Arc<SharedCache>,
        own: Lifetimes,
        settings: &toml::Table,
        urls: &[&str],
    ) -> Self {
        let shaping: toml::Table = settings
            .iter()
            .filter(|(k, _)| kind.fingerprinted.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let shaping = toml::to_string(&shaping).unwrap_or_default();
        let namespaces = urls
            .iter()
            .map(|url| {
                let mut h = Sha256::new();
                for part in [kind.format, url, &shaping] {
                    h.update((part.len() as u64).to_be_bytes());
                    h.update(part.as_bytes());
                }
                let d = h.finalize();
                format!("{}:{}", kind.prefix, hex(&d[..16]))
            })
            .collect();
        Self {
            cache,
            own,
            namespaces,
            prefix: kind.prefix,
        }
    }

    fn key(&self, idx: usize, token_hash: &[u8; 32]) -> String {
        match self.namespaces.get(idx) {
            Some(ns) => self.cache.key(ns, token_hash),
            None => self.cache.key(&format!("{}:?", self.prefix), token_hash),
        }
    }

    /// Fleet single flight: how long to wait for another replica's answer.
    pub fn single_flight(&self) -> Option<Duration> {
        self.cache.single_flight()
    }

    /// What is stored for (`idx`, token).
    pub async fn lookup(&self, idx: usize, token_hash: &[u8; 32]) -> Found {
        let bytes = match self.cache.get(&self.key(idx, token_hash)).await {
            Ok(Some(b)) => b,
            Ok(None) => return Found::Miss,
            Err(_) => return Found::Unavailable,
        };
        decode(&bytes, unix_ms(), self.own)
    }

    /// Releases the fleet lock this replica took for (`idx`, token), in the
    /// background.
    pub fn unlock(&self, idx: usize, token_hash: &[u8; 32], lock: LockToken) {
        let (cache, key) = (self.cache.clone(), self.key(idx, token_hash));
        tokio::spawn(async move { cache.unlock(&key, &lock).await });
    }

    /// How long a fleet lock must last for an IdP call of `idp_timeout`:
    /// the call, then the store and the release (each up to the Redis
    /// timeout), and a margin.
    pub fn lock_ttl(&self, idp_timeout: Duration) -> Duration {
        idp_timeout + self.cache.timeout() * 2 + Duration::from_millis(250)
    }

    /// Stores `answer` for (`idx`, token), fresh and kept for `window` from
    /// now, in the background; then releases the fleet lock `locked` (if this
    /// replica holds it).
    pub fn store(
        &self,
        idx: usize,
        token_hash: &[u8; 32],
        answer: &Answer,
        window: (Duration, Duration),
        locked: Option<LockToken>,
    ) {
        let answer = match answer {
            Answer::Identity(doc) => StoredAnswer::Identity(doc.clone()),
            Answer::Rejected(r) => StoredAnswer::Rejected {
                status: r.status.as_u16(),
                challenge: r
                    .challenge
                    .as_ref()
                    .and_then(|c| c.to_str().ok())
                    .map(str::to_string),
                error: r.error.clone(),
                text: r.text.clone(),
            },
            Answer::Unavailable(_) => return,
        };
        let now = unix_ms();
        let stored = Stored {
            written: now,
            fresh: now.saturating_add(millis(window.0)),
            keep: now.saturating_add(millis(window.1)),
            answer,
        };
        let Ok(bytes) = serde_json::to_vec(&stored) else {
            return;
        };
        // What could not be read back whole (GETRANGE cut) is not written.
        if bytes.len() + crate::shared::SEAL_OVERHEAD > crate::shared::MAX_VALUE_BYTES {
            if let Some(lock) = locked {
                self.unlock(idx, token_hash, lock);
            }
            return;
        }
        let (cache, key) = (self.cache.clone(), self.key(idx, token_hash));
        tokio::spawn(async move {
            cache.put(&key, &bytes, window.1).await;
            if let Some(lock) = locked {
                cache.unlock(&key, &lock).await;
            }
        });
    }

    /// Takes the fleet lock for (`idx`, token) for `ttl`.
    pub async fn lock(&self, idx: usize, token_hash: &[u8; 32], ttl: Duration) -> Lock {
        self.cache.lock(&self.key(idx, token_hash), ttl).await
    }

    /// Waits up to `wait` for another replica to store a fresh answer; gives
    /// up early when the lock is released without one (that replica got no
    /// usable answer, or what it stored cannot be read here).
    pub async fn wait_fresh(
        &self,
        idx: usize,
        token_hash: &[u8; 32],
        wait: Duration,
    ) -> Option<(Answer, (Duration, Duration))> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(2);
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(25));
            match self.lookup(idx, token_hash).await {
                Found::Fresh(a, w) => return Some((a, w)),
                // Redis is failing: no more round trips for this request.
                Found::Unavailable => return None,
                Found::Stale(..) | Found::Miss => {}
            }
            if self.cache.locked(&self.key(idx, token_hash)).await != Some(true) {
                // Released: the holder stores before it releases, so one last look.
                return match self.lookup(idx, token_hash).await {
                    Found::Fresh(a, w) => Some((a, w)),
                    _ => None,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(answer: Value, fresh: u64, keep: u64) -> Vec<u8> {
        serde_json::to_vec(&json!({"written": 0, "fresh": fresh, "keep": keep, "answer": answer}))
            .unwrap()
    }

    const LONG: Lifetimes = Lifetimes {
        ttl: Duration::from_secs(3600),
        negative_ttl: Duration::from_secs(3600),
        stale: Duration::from_secs(3600),
    };

    #[test]
    fn entries_are_fresh_then_stale_then_gone() {
        let id = json!({"identity": {"sub": "u1"}});
        let e = entry(id.clone(), 2_000, 5_000);
        assert!(
            matches!(decode(&e, 1_000, LONG), Found::Fresh(Answer::Identity(_), (f, k))
            if f == Duration::from_secs(1) && k == Duration::from_secs(4))
        );
        assert!(
            matches!(decode(&e, 3_000, LONG), Found::Stale(_, k) if k == Duration::from_secs(2))
        );
        assert!(matches!(decode(&e, 5_000, LONG), Found::Miss));
        let rejected = entry(
            json!({"rejected": {"status": 401, "challenge": "Bearer", "error": null, "text": "no"}}),
            2_000,
            9_000,
        );
        assert!(matches!(
            decode(&rejected, 1_000, LONG),
            Found::Fresh(Answer::Rejected(_), _)
        ));
        assert!(
            matches!(decode(&rejected, 3_000, LONG), Found::Miss),
            "rejections are never stale"
        );
    }

    #[test]
    fn anything_else_is_a_miss() {
        let bad = [
            b"".to_vec(),
            b"garbage".to_vec(),
            entry(json!({"identity": "not an object"}), 9, 9),
            entry(json!({"identity": ["x"]}), 9, 9),
            entry(
                json!({"rejected": {"status": 200, "challenge": null, "error": null, "text": ""}}),
                9,
                9,
            ),
            entry(
                json!({"rejected": {"status": 503, "challenge": null, "error": null, "text": ""}}),
                9,
                9,
            ),
            entry(
                json!({"rejected": {"status": 70000, "challenge": null, "error": null, "text": ""}}),
                9,
                9,
            ),
            entry(json!({"other": 1}), 9, 9),
            entry(
                json!({"rejected": {"status": 429, "challenge": null, "error": null, "text": ""}}),
                9,
                9,
            ),
            entry(
                json!({"rejected": {"status": 408, "challenge": null, "error": null, "text": ""}}),
                9,
                9,
            ),
            br#"{"fresh": -1, "keep": 1e99, "answer": {"identity": {}}}"#.to_vec(),
            // Written before `sub` was required (issue 21): not an identity.
            entry(json!({"identity": {}}), 3_600_000, 3_600_000),
            entry(json!({"identity": {"sub": 1}}), 3_600_000, 3_600_000),
        ];
        for b in bad {
            assert!(
                matches!(decode(&b, 1, LONG), Found::Miss),
                "{}",
                String::from_utf8_lossy(&b)
            );
        }
    }

    #[test]
    fn the_readers_own_lifetimes_cap_what_another_replica_wrote() {
        // Written at 0 for an hour, fresh, plus an hour stale.
        let e = entry(json!({"identity": {"sub": "u1"}}), 3_600_000, 7_200_000);
        let own = Lifetimes {
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            stale: Duration::ZERO,
        };
        assert!(matches!(decode(&e, 10_000, own), Found::Fresh(_, (f, k))
            if f == Duration::from_secs(20) && k == Duration::from_secs(20)));
        assert!(
            matches!(decode(&e, 31_000, own), Found::Miss),
            "no stale without stale_if_error"
        );
        let own = Lifetimes {
            stale: Duration::from_secs(60),
            ..own
        };
        assert!(
            matches!(decode(&e, 31_000, own), Found::Stale(_, k) if k == Duration::from_secs(59))
        );
        // A write time in the future counts as now.
        let future = serde_json::to_vec(
            &json!({"written": 9_000_000, "fresh": 9_999_999, "keep": 9_999_999,
            "answer": {"identity": {"sub": "u1"}}}),
        )
        .unwrap();
        assert!(
            matches!(decode(&future, 1_000, own), Found::Fresh(_, (f, _)) if f == Duration::from_secs(30))
        );
    }
}
