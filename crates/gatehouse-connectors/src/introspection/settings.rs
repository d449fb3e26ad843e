//! `kind = "oauth2_introspection"` settings, as written in the config.

use gatehouse_config::HumanDuration;
use serde::Deserialize;

/// How Gatehouse authenticates to the introspection endpoint (RFC 7662 §2.1
/// leaves it to the server; these are the two of RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the form-encoded client id and secret (default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// `[connectors.NAME]` with `kind = "oauth2_introspection"`: the kind's own
/// keys (the shared ones are [`crate::kit::CommonSettings`]).
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionSettings {
    /// The introspection endpoint (`https://…`; `http` for loopback tests).
    pub endpoint: String,
    /// Gatehouse's client id at the authorization server.
    pub client_id: String,
    /// File holding the client secret (re-read with the other key files).
    pub client_secret_file: String,
    /// How the client authenticates.
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// `token_type_hint` sent with the token.
    #[serde(default)]
    pub token_type_hint: Option<String>,
    /// Accepted `iss` of an active token (empty: any).
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Accepted audiences of an active token (empty: any).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Clock leeway for the answer's `exp` and `nbf` (at most 5m).
    #[serde(default = "d_leeway")]
    pub leeway: HumanDuration,
    /// Timeout of one call.
    #[serde(default = "d_timeout")]
    pub timeout: HumanDuration,
    /// Largest answer read.
    #[serde(default = "d_max_body")]
    pub max_response_bytes: usize,
    /// How long an active answer is cached (capped by its `exp`).
    #[serde(default = "d_cache_ttl")]
    pub cache_ttl: HumanDuration,
    /// How long an inactive answer is cached.
    #[serde(default = "d_negative_ttl")]
    pub negative_cache_ttl: HumanDuration,
    /// Serve a cached answer up to this long past its TTL while the endpoint fails.
    #[serde(default)]
    pub stale_if_error: Option<HumanDuration>,
    /// Capacity of the cache of active answers (0 disables caching).
    #[serde(default = "d_cache_size")]
    pub cache_size: u64,
    /// Capacity of the separate cache of inactive answers (default a tenth).
    #[serde(default)]
    pub negative_cache_size: Option<u64>,
    /// Calls running at once; more wait (default 64).
    #[serde(default = "d_max_inflight")]
    pub max_inflight: usize,
    /// Calls waiting for a slot; more are answered as an unavailable IdP.
    #[serde(default = "d_max_queued")]
    pub max_queued: usize,
    /// New calls started per second (0: no bound).
    #[serde(default)]
    pub max_calls_per_second: u32,
    /// A `[caches.NAME]` used as a shared L2 behind the in-process cache.
    #[serde(default)]
    pub shared_cache: Option<String>,
    /// Refuse a token whose answer has no `cnf."x5t#S256"` matching the
    /// connection's client certificate (RFC 8705 §3.2).
    #[serde(default)]
    pub require_certificate_binding: bool,
    /// Keep `Authorization` on the upstream request (default false).
    #[serde(default)]
    pub forward_authorization: bool,
}

fn d_leeway() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn d_timeout() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn d_max_body() -> usize {
    64 * 1024
}
fn d_cache_ttl() -> HumanDuration {
    HumanDuration::from_secs(120)
}
fn d_negative_ttl() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn d_cache_size() -> u64 {
    100_000
}
fn d_max_inflight() -> usize {
    64
}
fn d_max_queued() -> usize {
    256
}
