//! Userinfo answers in a shared cache (`shared_cache = "NAME"`), the L2
//! behind the in-process cache: what the IdP said (the identity document or
//! its refusal) and until when, keyed by the token's SHA-256, the endpoint
//! and a fingerprint of every setting that shapes the answer or the verdict
//! (endpoint URL, method, error text, required claims, policy, header
//! maps). A changed policy therefore never meets an old entry, and every
//! hit is judged again by this connector's gate.

use super::classify::Answer;
use crate::errors::IdpRefusal;
use crate::shared::{Lock, SharedCache};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Settings of a section that shape an answer or the verdict on it.
const FINGERPRINTED: &[&str] = &[
    "method",
    "post_token_in_body",
    "max_response_bytes",
    "error_metadata_location",
    "error_header_name",
    "error_payload_location",
    "required_claims",
    "policy",
    "inject_headers",
    "region_inject_headers",
];

/// Format of stored entries (part of the fingerprint).
const FORMAT: &str = "gatehouse userinfo v1";

#[derive(Serialize, Deserialize)]
struct Stored {
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

/// What a value read from Redis means at `now` (Unix milliseconds):
/// anything that is not an entry this format wrote is a miss.
pub fn decode(bytes: &[u8], now: u64) -> Found {
    let Ok(s) = serde_json::from_slice::<Stored>(bytes) else {
        return Found::Miss;
    };
    let left = |until: u64| Duration::from_millis(until.saturating_sub(now));
    let answer = match s.answer {
        StoredAnswer::Identity(doc @ Value::Object(_)) => Answer::Identity(doc),
        StoredAnswer::Identity(_) => return Found::Miss,
        StoredAnswer::Rejected {
            status,
            challenge,
            error,
            text,
        } => {
            let Some(status) = http::StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_client_error())
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
    /// Key namespace per endpoint (`ui:<fingerprint>`).
    namespaces: Vec<String>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl L2 {
    /// The L2 of a connector whose section is `settings` and whose endpoints
    /// call `urls`.
    pub fn new(cache: Arc<SharedCache>, settings: &toml::Table, urls: &[&str]) -> Self {
        let shaping: toml::Table = settings
            .iter()
            .filter(|(k, _)| FINGERPRINTED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let shaping = toml::to_string(&shaping).unwrap_or_default();
        let namespaces = urls
            .iter()
            .map(|url| {
                let mut h = Sha256::new();
                for part in [FORMAT, url, &shaping] {
                    h.update((part.len() as u64).to_be_bytes());
                    h.update(part.as_bytes());
                }
                let d = h.finalize();
                let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("ui:{hex}")
            })
            .collect();
        Self { cache, namespaces }
    }

    fn key(&self, idx: usize, token_hash: &[u8; 32]) -> String {
        let ns = self.namespaces.get(idx).map_or("ui:?", String::as_str);
        self.cache.key(ns, token_hash)
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
        decode(&bytes, unix_ms())
    }

    /// Releases the fleet lock this replica took for (`idx`, token), in the
    /// background.
    pub fn unlock(&self, idx: usize, token_hash: &[u8; 32]) {
        let (cache, key) = (self.cache.clone(), self.key(idx, token_hash));
        tokio::spawn(async move { cache.unlock(&key).await });
    }

    /// Stores `answer` for (`idx`, token), fresh and kept for `window` from
    /// now, in the background; then releases the fleet lock when `locked`.
    pub fn store(
        &self,
        idx: usize,
        token_hash: &[u8; 32],
        answer: &Answer,
        window: (Duration, Duration),
        locked: bool,
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
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let stored = Stored {
            fresh: now.saturating_add(ms(window.0)),
            keep: now.saturating_add(ms(window.1)),
            answer,
        };
        let Ok(bytes) = serde_json::to_vec(&stored) else {
            return;
        };
        let (cache, key) = (self.cache.clone(), self.key(idx, token_hash));
        tokio::spawn(async move {
            cache.put(&key, &bytes, window.1).await;
            if locked {
                cache.unlock(&key).await;
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
            if let Found::Fresh(a, w) = self.lookup(idx, token_hash).await {
                return Some((a, w));
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
        serde_json::to_vec(&json!({"fresh": fresh, "keep": keep, "answer": answer})).unwrap()
    }

    #[test]
    fn entries_are_fresh_then_stale_then_gone() {
        let id = json!({"identity": {"sub": "u1"}});
        let e = entry(id.clone(), 2_000, 5_000);
        assert!(
            matches!(decode(&e, 1_000), Found::Fresh(Answer::Identity(_), (f, k))
            if f == Duration::from_secs(1) && k == Duration::from_secs(4))
        );
        assert!(matches!(decode(&e, 3_000), Found::Stale(_, k) if k == Duration::from_secs(2)));
        assert!(matches!(decode(&e, 5_000), Found::Miss));
        let rejected = entry(
            json!({"rejected": {"status": 401, "challenge": "Bearer", "error": null, "text": "no"}}),
            2_000,
            9_000,
        );
        assert!(matches!(
            decode(&rejected, 1_000),
            Found::Fresh(Answer::Rejected(_), _)
        ));
        assert!(
            matches!(decode(&rejected, 3_000), Found::Miss),
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
            br#"{"fresh": -1, "keep": 1e99, "answer": {"identity": {}}}"#.to_vec(),
        ];
        for b in bad {
            assert!(
                matches!(decode(&b, 1), Found::Miss),
                "{}",
                String::from_utf8_lossy(&b)
            );
        }
    }
}
