//! Shared caches (`[caches.NAME] kind = "redis"`): an L2 behind a
//! connector's in-process cache, shared by every replica. Redis is an
//! optimisation, never a dependency: every operation is bounded by the
//! cache's `timeout`, failures open a circuit breaker, and whatever goes
//! wrong (down, slow, garbage, a value sealed with another key) is a miss.
//!
//! `seal.rs` (AES-256-GCM values, HMAC-derived keys), `breaker.rs`,
//! `metrics.rs`. Connectors decide what to store (`userinfo` stores the
//! IdP's answer, re-judged on every hit).

mod breaker;
mod metrics;
mod seal;

pub use metrics::Families;
pub use redis::Script;
pub use seal::{hex, parse_key, BadKey, Seal};

use crate::files::read_file_limited;
use breaker::Breaker;
use gatehouse_config::{CacheConfig, ConfigError, ConfigErrors};
use metrics::{Handles, OpHandles};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisResult};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shared caches of a configuration, by name.
pub type SharedCaches = Arc<BTreeMap<String, Arc<SharedCache>>>;

/// Largest value read back from Redis (a userinfo answer is at most 1 MiB;
/// longer values are cut by `GETRANGE` and fail to open: a miss).
pub const MAX_VALUE_BYTES: usize = 1024 * 1024 + 64;

/// `d` in whole milliseconds, saturating (Redis `PX`, stored times).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The Redis key of the fleet lock of `key`.
fn lock_key(key: &str) -> String {
    format!("{key}:lock")
}

/// Bytes sealing adds to a value (format byte, nonce, tag).
pub const SEAL_OVERHEAD: usize = 1 + 12 + 16;

/// Longest secret file (password) read.
const MAX_SECRET_FILE: u64 = 4096;

/// Redis did not answer usefully (error, timeout, breaker open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Proof of holding a fleet lock: the random value it was set to, so only
/// its holder releases it (an expired lock another replica took is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(String);

/// Compare-and-delete: releases a lock only if it still holds this value.
const RELEASE: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// The result of taking the fleet lock for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// This replica holds it: ask the IdP and store the answer.
    Acquired(LockToken),
    /// Another replica holds it: wait for its answer.
    Held,
    /// Redis did not answer: ask the IdP.
    Unavailable,
}

/// One `[caches.NAME]`: a lazily connected, self-healing Redis connection.
pub struct SharedCache {
    name: String,
    conn: ConnectionManager,
    timeout: Duration,
    prefix: String,
    seal: Seal,
    single_flight: bool,
    lock_wait: Duration,
    breaker: Breaker,
    m: Handles,
    /// When the last "not a value this cache wrote" warning was logged
    /// (seconds since start): at most one a minute.
    garbage_warned: std::sync::atomic::AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SharedCache {
    /// Builds cache `name` from `cfg` (reading its files) without
    /// connecting: the connection is made on first use and re-made after
    /// failures, in the background of requests that never wait longer than
    /// `timeout`. Needs a Tokio runtime.
    pub fn build(name: &str, cfg: &CacheConfig, families: &Families) -> Result<Self, ConfigErrors> {
        let path = format!("caches.{name}");
        let at = |k: &str| format!("{path}.{k}");
        let mut errs = Vec::new();
        let read = |k: &str, p: &std::path::Path, errs: &mut Vec<ConfigError>| {
            read_file_limited(p, MAX_SECRET_FILE)
                .map_err(|e| errs.push(ConfigError::new(at(k), e.to_string())))
                .ok()
        };
        let info = cfg
            .url
            .as_str()
            .into_connection_info()
            .map_err(|_| {
                errs.push(ConfigError::new(
                    at("url"),
                    "not a valid Redis URL (redis://[user@]host:port[/db] or rediss://…)",
                ))
            })
            .ok();
        let password = cfg
            .password_file
            .as_ref()
            .and_then(|p| read("password_file", p, &mut errs))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .trim_end_matches(['\r', '\n'])
                    .to_string()
            });
        let ca = cfg.tls_ca_file.as_ref().and_then(|p| {
            read_file_limited(p, crate::files::MAX_FILE_BYTES)
                .map_err(|e| errs.push(ConfigError::new(at("tls_ca_file"), e.to_string())))
                .ok()
        });
        let key = match &cfg.encryption_key_file {
            Some(p) => read("encryption_key_file", p, &mut errs).and_then(|b| {
                parse_key(&b)
                    .map_err(|e| {
                        errs.push(ConfigError::new(
                            at("encryption_key_file"),
                            format!("{}: {e}", p.display()),
                        ))
                    })
                    .ok()
            }),
            None => None,
        };
        let (Some(mut info), true) = (info, errs.is_empty()) else {
            return Err(ConfigErrors(errs));
        };
        if let Some(pw) = password {
            info = info
                .clone()
                .set_redis_settings(info.redis_settings().clone().set_password(pw));
        }
        let client = match ca {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| ConfigError::new(at("url"), format!("cannot use it: {}", e.category())))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout.get()))
            .set_response_timeout(Some(cfg.timeout.get()))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, manager).map_err(|e| {
            ConfigError::new(&path, format!("cannot create the client: {}", e.category()))
        })?;
        Ok(Self {
            name: name.to_string(),
            conn,
            timeout: cfg.timeout.get(),
            prefix: cfg.key_prefix.clone(),
            seal: Seal::new(key),
            single_flight: cfg.single_flight,
            lock_wait: cfg.lock_wait.get(),
            breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_cooldown.get()),
            m: families.cache(name),
            garbage_warned: std::sync::atomic::AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The longest wait for one Redis answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True when values are encrypted (`encryption_key_file`).
    pub fn encrypts(&self) -> bool {
        self.seal.encrypts()
    }

    /// Whether replicas take a lock so that one asks the IdP, and how long
    /// the others wait for its answer.
    pub fn single_flight(&self) -> Option<Duration> {
        self.single_flight.then_some(self.lock_wait)
    }

    /// The Redis key of `material` (a SHA-256) in `namespace`: keyed with
    /// HMAC when encrypting, so keys reveal nothing about tokens.
    pub fn key(&self, namespace: &str, material: &[u8]) -> String {
        format!("{}{namespace}:{}", self.prefix, self.seal.key_id(material))
    }

    /// The value under `key`: `Ok(None)` when there is none or it is not a
    /// value this cache wrote, `Err(Unavailable)` when Redis failed, was too
    /// slow or is skipped by the breaker.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        let mut conn = self.conn.clone();
        let fut = async move {
            redis::cmd("GETRANGE")
                .arg(key)
                .arg(0)
                .arg(MAX_VALUE_BYTES - 1)
                .query_async::<Vec<u8>>(&mut conn)
                .await
        };
        let stored = self.run(&self.m.get, fut).await.ok_or(Unavailable)?;
        if stored.is_empty() {
            self.m.get.count("miss");
            return Ok(None);
        }
        match self.seal.open(key, &stored) {
            Some(v) => {
                self.m.get.count("hit");
                Ok(Some(v))
            }
            None => {
                self.m.get.count("garbage");
                use std::sync::atomic::Ordering;
                let now = self.started.elapsed().as_secs() + 60;
                let last = self.garbage_warned.load(Ordering::Relaxed);
                if now >= last + 60
                    && self
                        .garbage_warned
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(cache = %self.name, "a value in Redis is not one this cache wrote (another encryption key, or tampered); ignored (logged at most once a minute; see gatehouse_shared_cache_requests_total{{result=\"garbage\"}})");
                }
                Ok(None)
            }
        }
    }

    /// Stores `value` under `key` for `ttl` (at least 1 ms).
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        let Some(sealed) = self.seal.seal(key, value) else {
            return;
        };
        let ms = millis(ttl).max(1);
        let mut conn = self.conn.clone();
        let fut = async move {
            redis::cmd("SET")
                .arg(key)
                .arg(sealed)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut conn)
                .await
        };
        if self.run(&self.m.set, fut).await.is_some() {
            self.m.set.count("ok");
        }
    }

    /// Takes the fleet lock of `key` for `ttl` (`SET NX PX`).
    pub async fn lock(&self, key: &str, ttl: Duration) -> Lock {
        let ms = millis(ttl).max(1);
        let lock_key = lock_key(key);
        let token = LockToken(self.seal.random_id());
        let value = token.0.clone();
        let mut conn = self.conn.clone();
        let fut = async move {
            redis::cmd("SET")
                .arg(&lock_key)
                .arg(value)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async::<Option<String>>(&mut conn)
                .await
        };
        match self.run(&self.m.lock, fut).await {
            Some(Some(_)) => {
                self.m.lock.count("acquired");
                Lock::Acquired(token)
            }
            Some(None) => {
                self.m.lock.count("held");
                Lock::Held
            }
            None => Lock::Unavailable,
        }
    }

    /// Releases the fleet lock of `key` that `token` proves this replica
    /// holds (its holder is done, with or without an answer stored).
    pub async fn unlock(&self, key: &str, token: &LockToken) {
        let lock_key = lock_key(key);
        let value = token.0.clone();
        let mut conn = self.conn.clone();
        let fut = async move {
            redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(&lock_key)
                .arg(value)
                .query_async::<i64>(&mut conn)
                .await
        };
        if self.run(&self.m.lock, fut).await.is_some() {
            self.m.lock.count("released");
        }
    }

    /// Runs `script` (one round trip: `EVALSHA`, loading it once with
    /// `EVAL` when Redis does not know it) on `keys` with integer `args`,
    /// for request limits; `Err(Unavailable)` when Redis failed, was too
    /// slow or is skipped by the breaker.
    pub async fn eval_ints(
        &self,
        script: &Script,
        keys: &[String],
        args: &[i64],
    ) -> Result<Vec<i64>, Unavailable> {
        let mut conn = self.conn.clone();
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(*a);
        }
        let fut = async move { inv.invoke_async::<Vec<i64>>(&mut conn).await };
        let out = self.run(&self.m.limit, fut).await.ok_or(Unavailable)?;
        self.m.limit.count("ok");
        Ok(out)
    }

    /// The Redis key of a request-limit counter: this cache's prefix, then
    /// `namespace`, then an id of `material` (keyed with HMAC when the cache
    /// encrypts, so a consumer or claim value is not readable in Redis).
    pub fn limit_key(&self, namespace: &str, material: &[u8]) -> String {
        self.key(namespace, material)
    }

    /// Whether the fleet lock of `key` is still held (`None`: no answer).
    pub async fn locked(&self, key: &str) -> Option<bool> {
        let lock_key = lock_key(key);
        let mut conn = self.conn.clone();
        let fut = async move {
            redis::cmd("EXISTS")
                .arg(&lock_key)
                .query_async::<i64>(&mut conn)
                .await
        };
        self.run(&self.m.lock, fut).await.map(|n| n > 0)
    }

    /// Runs one Redis operation: skipped while the breaker is open, bounded
    /// by `timeout`, counted and timed.
    async fn run<T>(&self, op: &OpHandles, fut: impl Future<Output = RedisResult<T>>) -> Option<T> {
        if self.breaker.is_open() {
            op.count("skipped");
            return None;
        }
        let start = Instant::now();
        let r = tokio::time::timeout(self.timeout, fut).await;
        op.duration.observe(start.elapsed().as_secs_f64());
        let why = match r {
            Ok(Ok(v)) => {
                if self.breaker.success() {
                    self.m.breaker.set(0);
                    tracing::info!(cache = %self.name, "Redis answers again; circuit breaker closed");
                }
                return Some(v);
            }
            Ok(Err(e)) => {
                op.count("error");
                e.category().to_string()
            }
            Err(_) => {
                op.count("timeout");
                format!("no answer within {:?}", self.timeout)
            }
        };
        if self.breaker.failure() {
            self.m.breaker.set(1);
            tracing::warn!(cache = %self.name, "Redis failing ({why}); circuit breaker open, using the local cache and the IdP");
        }
        None
    }
}
