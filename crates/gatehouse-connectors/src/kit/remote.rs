//! What every remote-answer kind (`oidc_userinfo`, introspection) shares:
//! the meaning of an identity provider's answer, and how answers are
//! cached (the in-process [`super::answer_cache`] and the shared
//! [`super::answer_l2`]).

use crate::errors::IdpRefusal;
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
