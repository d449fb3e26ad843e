//! The key store of one JWT connector: the current key set, how it is
//! (re)loaded, and the guards that keep an identity provider from being
//! flooded (single-flight, rate-limited refetch on unknown `kid`) or a
//! transient outage from denying good tokens (stale keys keep serving).

use super::keys::{parse_jwks, KeySet};
use arc_swap::ArcSwapOption;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Fixed keys (inline JWKS, PEM files, secret): loaded once.
    Static,
    /// A JWKS over HTTP(S).
    Url {
        /// The URL.
        url: reqwest::Url,
        /// The client (pooled, with timeout and optional proxy).
        client: reqwest::Client,
    },
    /// A JWKS file, re-read on every refresh.
    File(PathBuf),
}

/// Result of one load attempt.
#[derive(Debug)]
pub(super) struct Loaded {
    /// The keys.
    pub keys: KeySet,
    /// Keys skipped, with why.
    pub skipped: Vec<String>,
    /// `Cache-Control: max-age`, when the server sent one.
    pub max_age: Option<Duration>,
}

/// Store tuning.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Background refresh period.
    pub refresh: Duration,
    /// Least time between two fetches triggered by unknown `kid`s.
    pub min_refetch_interval: Duration,
    /// How long keys keep serving after the last successful fetch.
    pub max_stale: Duration,
}

/// Called after every fetch attempt with (success, key count).
pub(super) type FetchObserver = Arc<dyn Fn(bool, usize) + Send + Sync>;

/// The key store.
pub struct KeyStore {
    source: KeySource,
    settings: StoreSettings,
    current: ArcSwapOption<KeySet>,
    /// Unix seconds of the last successful load (0 = never).
    last_success: AtomicU64,
    /// Incremented after every fetch attempt.
    attempts: AtomicU64,
    /// Single-flight guard and time of the last on-demand fetch.
    refetch: Mutex<Option<Instant>>,
    observer: FetchObserver,
    /// Called with the fingerprints of keys that disappeared.
    on_removed: Arc<dyn Fn(Vec<u64>) + Send + Sync>,
    /// Held (write) while a key set is swapped in and removed keys are
    /// purged, and (read) while a verified token is cached: a token verified
    /// with a key is either cached before that key's purge (and purged with
    /// it) or not cached at all.
    purge: std::sync::RwLock<()>,
    name: String,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn parse_max_age(v: &str) -> Option<Duration> {
    v.split(',')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|s| s.trim_matches('"').parse().ok())
        .map(Duration::from_secs)
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// No answer.
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// A redirect (never followed).
    #[error("{0}")]
    Redirect(String),
    /// Another non-2xx answer.
    #[error("answered {0}")]
    Status(reqwest::StatusCode),
    /// The body was too large or broke off.
    #[error(transparent)]
    Body(#[from] crate::outbound::BodyError),
    /// The file could not be read.
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    /// The reading task failed.
    #[error("reading the JWKS file failed: {0}")]
    Task(String),
    /// The document is not a usable JWKS.
    #[error(transparent)]
    Keys(#[from] super::keys::KeyError),
}

/// Fetches a JWKS with a size limit.
pub(super) async fn fetch_url(
    client: &reqwest::Client,
    url: &reqwest::Url,
) -> Result<Loaded, JwksError> {
    let mut resp = client
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await?;
    if resp.status().is_redirection() {
        return Err(JwksError::Redirect(crate::outbound::redirect_refused(
            resp.status(),
            resp.headers(),
        )));
    }
    if !resp.status().is_success() {
        return Err(JwksError::Status(resp.status()));
    }
    let max_age = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_max_age);
    let body = crate::outbound::read_limited(&mut resp, MAX_JWKS_BYTES).await?;
    let (keys, skipped) = parse_jwks(&body)?;
    Ok(Loaded {
        keys,
        skipped,
        max_age,
    })
}

impl KeyStore {
    /// A store; call [`KeyStore::load`] or [`KeyStore::set`] to fill it.
    pub fn new(
        name: &str,
        source: KeySource,
        settings: StoreSettings,
        observer: FetchObserver,
        on_removed: Arc<dyn Fn(Vec<u64>) + Send + Sync>,
    ) -> Self {
        Self {
            source,
            settings,
            current: ArcSwapOption::empty(),
            last_success: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            refetch: Mutex::new(None),
            observer,
            on_removed,
            purge: std::sync::RwLock::new(()),
            name: name.to_string(),
        }
    }

    /// True when keys come from a URL or file (so they can change).
    pub fn is_dynamic(&self) -> bool {
        !matches!(self.source, KeySource::Static)
    }

    /// Installs a key set.
    pub fn set(&self, keys: KeySet) {
        let _purging = self.purge.write().unwrap_or_else(|e| e.into_inner());
        let old = self.current.swap(Some(Arc::new(keys)));
        self.last_success.store(unix_now(), Ordering::SeqCst);
        if let (Some(old), Some(new)) = (old, self.current.load_full()) {
            let now = new.fingerprints();
            let removed: Vec<u64> = old
                .fingerprints()
                .into_iter()
                .filter(|f| !now.contains(f))
                .collect();
            if !removed.is_empty() {
                (self.on_removed)(removed);
            }
        }
    }

    /// Runs `insert` (which caches a token verified with the key
    /// `fingerprint`) only if that key is still in the current set, atomically
    /// with respect to [`KeyStore::set`]'s purge of removed keys. Returns
    /// whether `insert` ran.
    pub fn insert_if_current(&self, fingerprint: u64, insert: impl FnOnce()) -> bool {
        let _guard = self.purge.read().unwrap_or_else(|e| e.into_inner());
        let current = self
            .current
            .load()
            .as_ref()
            .is_some_and(|k| k.keys.iter().any(|k| k.fingerprint == fingerprint));
        if current {
            insert();
        }
        current
    }

    /// The keys, unless none were ever loaded or they are older than `max_stale`.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        let keys = self.current.load_full()?;
        if self.is_dynamic() && self.age().is_some_and(|a| a > self.settings.max_stale) {
            return None;
        }
        Some(keys)
    }

    /// Time since the last successful load.
    pub fn age(&self) -> Option<Duration> {
        match self.last_success.load(Ordering::SeqCst) {
            0 => None,
            t => Some(Duration::from_secs(unix_now().saturating_sub(t))),
        }
    }

    /// One load from the source; on success the keys are installed.
    pub async fn load(&self) -> Result<Option<Duration>, JwksError> {
        let result = match &self.source {
            KeySource::Static => return Ok(None),
            KeySource::Url { url, client } => fetch_url(client, url).await,
            KeySource::File(path) => {
                // Bounded read: the file is never loaded whole when too large.
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    crate::files::read_file_limited(&path, MAX_JWKS_BYTES as u64)
                })
                .await
                .map_err(|e| JwksError::Task(e.to_string()))
                .and_then(|r| r.map_err(JwksError::from))
                .and_then(|b| {
                    parse_jwks(&b)
                        .map(|(keys, skipped)| Loaded {
                            keys,
                            skipped,
                            max_age: None,
                        })
                        .map_err(JwksError::from)
                })
            }
        };
        self.attempts.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok(l) => {
                for s in &l.skipped {
                    tracing::info!(connector = %self.name, "JWKS {s}; skipped");
                }
                let n = l.keys.keys.len();
                (self.observer)(true, n);
                if n == 0 {
                    tracing::warn!(connector = %self.name, "JWKS holds no usable signature key");
                }
                self.set(l.keys);
                Ok(l.max_age)
            }
            Err(e) => {
                (self.observer)(
                    false,
                    self.current.load().as_ref().map_or(0, |k| k.keys.len()),
                );
                tracing::warn!(connector = %self.name, "JWKS fetch failed: {e}; serving the last good keys");
                Err(e)
            }
        }
    }

    /// Fetches again because a token names an unknown `kid`: at most one
    /// fetch at a time (others wait for it) and at most one per
    /// `min_refetch_interval`. Returns true when the keys changed.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        if !self.is_dynamic() {
            return false;
        }
        let before = self.attempts.load(Ordering::SeqCst);
        let mut last = self.refetch.lock().await;
        if self.attempts.load(Ordering::SeqCst) != before {
            // Someone fetched while we waited: use their result.
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.settings.min_refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.load().await.is_ok()
    }

    /// Background refresh: every `refresh` (or sooner if the server's
    /// `max-age` says so, never more often than `min_refetch_interval`),
    /// with exponential backoff after failures.
    pub async fn refresh_loop(self: Arc<Self>, first_delay: Duration) {
        let mut delay = first_delay;
        let mut backoff = Duration::from_secs(1);
        loop {
            tokio::time::sleep(delay).await;
            delay = match self.load().await {
                Ok(max_age) => {
                    backoff = Duration::from_secs(1);
                    // Not `clamp`: it panics when the config's minimum
                    // exceeds the refresh period.
                    max_age.map_or(self.settings.refresh, |m| {
                        m.max(self.settings.min_refetch_interval)
                            .min(self.settings.refresh)
                    })
                }
                Err(_) => {
                    let d = backoff.min(self.settings.refresh);
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                    d
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_parsing() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_max_age("no-cache"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
