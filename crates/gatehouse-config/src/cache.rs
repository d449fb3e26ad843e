//! `[caches.NAME]`: shared caches connectors can use as an L2 behind their
//! in-process cache (`shared_cache = "NAME"` in a connector section).

use crate::{ConfigError, HumanDuration};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// What backs a shared cache.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// A standalone Redis (or Valkey) server, `redis://` or `rediss://` (TLS).
    Redis,
}

/// `[caches.NAME]`.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// `"redis"`.
    pub kind: CacheKind,
    /// `redis://[user@]host:port/db`, or `rediss://` for TLS. Put the password
    /// in `password_file`, not here.
    pub url: String,
    /// File holding the password (AUTH); the username comes from the URL.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM CAs that a `rediss://` server certificate must chain to (default:
    /// the system's roots).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Longest wait for any one Redis answer; a slower answer is a miss.
    #[serde(default = "d_timeout")]
    pub timeout: HumanDuration,
    /// Longest wait for the connection to Redis to be made (in the background).
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Prefix of every key Gatehouse writes.
    #[serde(default = "d_prefix")]
    pub key_prefix: String,
    /// File holding a 256-bit key (32 raw bytes, 64 hex digits or base64):
    /// values are sealed with AES-256-GCM and keys derived with HMAC-SHA-256.
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
    /// Fleet single flight: the first replica to miss takes a short lock and
    /// the others wait (up to `lock_wait`) for its answer in the cache.
    #[serde(default = "yes")]
    pub single_flight: bool,
    /// Longest a replica waits for another replica's answer before asking
    /// the identity provider itself.
    #[serde(default = "d_lock_wait")]
    pub lock_wait: HumanDuration,
    /// Consecutive failures (errors, timeouts) that open the circuit breaker.
    #[serde(default = "d_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker skips Redis before trying again.
    #[serde(default = "d_breaker_cooldown")]
    pub breaker_cooldown: HumanDuration,
}

fn yes() -> bool {
    true
}
fn d_timeout() -> HumanDuration {
    HumanDuration::from_millis(20)
}
fn d_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn d_prefix() -> String {
    "gatehouse:".to_string()
}
fn d_lock_wait() -> HumanDuration {
    HumanDuration::from_millis(500)
}
fn d_breaker_failures() -> u32 {
    5
}
fn d_breaker_cooldown() -> HumanDuration {
    HumanDuration::from_secs(5)
}

impl CacheConfig {
    /// The files the section makes Gatehouse read (fingerprinted and watched).
    pub fn files(&self) -> Vec<PathBuf> {
        self.password_file
            .iter()
            .chain(self.tls_ca_file.iter())
            .chain(self.encryption_key_file.iter())
            .cloned()
            .collect()
    }

    /// Checks the section at `path` (`caches.NAME`), pushing every error.
    pub fn validate(&self, path: &str, errs: &mut Vec<ConfigError>) {
        let at = |k: &str| format!("{path}.{k}");
        let scheme_ok = ["redis://", "rediss://"]
            .iter()
            .any(|s| self.url.len() > s.len() && self.url[..s.len()].eq_ignore_ascii_case(s));
        if !scheme_ok {
            errs.push(ConfigError::new(
                at("url"),
                "must be redis://host:port[/db] or rediss://host:port[/db] (TLS)",
            ));
        }
        let bounded = |k: &str, d: Duration, lo: Duration, hi: Duration, errs: &mut Vec<_>| {
            if d < lo || d > hi {
                errs.push(ConfigError::new(
                    at(k),
                    format!(
                        "must be between {} and {}",
                        humantime::format_duration(lo),
                        humantime::format_duration(hi)
                    ),
                ));
            }
        };
        let ms = Duration::from_millis;
        bounded("timeout", self.timeout.get(), ms(1), ms(5_000), errs);
        bounded(
            "connect_timeout",
            self.connect_timeout.get(),
            ms(10),
            ms(60_000),
            errs,
        );
        bounded("lock_wait", self.lock_wait.get(), ms(0), ms(10_000), errs);
        bounded(
            "breaker_cooldown",
            self.breaker_cooldown.get(),
            ms(100),
            ms(600_000),
            errs,
        );
        if !(1..=1000).contains(&self.breaker_failures) {
            errs.push(ConfigError::new(
                at("breaker_failures"),
                "must be between 1 and 1000",
            ));
        }
        if self.key_prefix.len() > 64
            || self
                .key_prefix
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ')
        {
            errs.push(ConfigError::new(
                at("key_prefix"),
                "at most 64 bytes, without spaces or control characters",
            ));
        }
    }
}
