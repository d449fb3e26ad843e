//! What every remote-answer kind (`oidc_userinfo`, introspection) shares:
//! the meaning of an identity provider's answer, and how answers are
//! cached (the in-process [`super::answer_cache`] and the shared
//! [`super::answer_l2`]).

use crate::errors::IdpRefusal;
use gatehouse_config::ConfigError;
use serde_json::Value;
use std::time::Duration;

/// The meaning of one answer of an identity provider (userinfo,
/// introspection).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The token is valid; this is the identity document.
    Identity(Value),
    /// 4xx: the IdP rejected the token.
    Rejected(IdpRefusal),
    /// The IdP could not answer usefully (5xx, 3xx, not JSON, …); the text
    /// says why (for logs and the client).
    Unavailable(String),
}

/// How long answers are kept.
pub struct CacheRules {
    /// Capacity of valid answers (0: no cache).
    pub size: u64,
    /// Capacity of IdP rejections, kept apart.
    pub negative_size: u64,
    /// Fresh lifetime of a valid answer (or a gate refusal).
    pub ttl: Duration,
    /// Fresh lifetime of an IdP rejection.
    pub negative_ttl: Duration,
    /// How long past `ttl` a valid answer may serve while the IdP fails.
    pub stale: Option<Duration>,
}

/// The bounds every remote kind puts on its calls (section at `path`):
/// `max_inflight` 1–10 000, `max_queued` ≤ 10⁶, `max_response_bytes`
/// 1–16 MiB; every violation, with its path.
pub fn check_call_bounds(
    path: &str,
    max_inflight: usize,
    max_queued: usize,
    max_response_bytes: usize,
) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    if max_inflight == 0 || max_inflight > 10_000 {
        errs.push(ConfigError::new(
            format!("{path}.max_inflight"),
            "must be between 1 and 10000",
        ));
    }
    if max_queued > 1_000_000 {
        errs.push(ConfigError::new(
            format!("{path}.max_queued"),
            "must be at most 1000000",
        ));
    }
    if max_response_bytes == 0 || max_response_bytes > 16 * 1024 * 1024 {
        errs.push(ConfigError::new(
            format!("{path}.max_response_bytes"),
            "must be between 1 and 16777216",
        ));
    }
    errs
}
