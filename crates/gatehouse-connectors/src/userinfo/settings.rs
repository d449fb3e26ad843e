//! `kind = "oidc_userinfo"` settings, as written in the config.

use crate::inject::InjectConfig;
use gatehouse_config::HumanDuration;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Region matching.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionMatch {
    /// Exact, case-sensitive (default).
    #[default]
    Exact,
    /// ASCII case-insensitive.
    CaseInsensitive,
}

/// Where the IdP's error text is read (the original's `error_metadata_location`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorMetadataLocation {
    /// A response header (`error_header_name`).
    ResponseHeaders,
    /// The response body (`error_payload_location` JSONPath, or the whole body).
    ResponsePayload,
}

/// `[connectors.NAME]` with `kind = "oidc_userinfo"`: the kind's own keys
/// (the shared ones — `inject_headers`, `policy`, `required_claims`,
/// `token_sources`, `max_token_size`, `realm`, `error_style`, `custom_error`
/// — are [`crate::kit::CommonSettings`]).
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserinfoSettings {
    /// `GET` or `POST`, exactly.
    #[serde(default = "d_method")]
    pub method: String,
    /// POST only: also send the token as the form field `access_token`.
    #[serde(default)]
    pub post_token_in_body: bool,
    /// Request header carrying the region code.
    #[serde(default)]
    pub region_header: Option<String>,
    /// Region matching.
    #[serde(default)]
    pub region_match: RegionMatch,
    /// Region code → userinfo URL.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// Userinfo URL when the region is absent or unknown.
    #[serde(default)]
    pub default_endpoint: Option<String>,
    /// Timeout of one userinfo call.
    #[serde(default = "d_timeout")]
    pub timeout: HumanDuration,
    /// Largest userinfo answer accepted.
    #[serde(default = "d_max_body")]
    pub max_response_bytes: usize,
    /// Outbound proxy (`http://host:port`).
    #[serde(default)]
    pub http_proxy: Option<String>,
    /// How long a valid answer is cached.
    #[serde(default = "d_cache_ttl")]
    pub cache_ttl: HumanDuration,
    /// How long an IdP rejection (401/403) is cached.
    #[serde(default = "d_negative_ttl")]
    pub negative_cache_ttl: HumanDuration,
    /// Serve a cached answer up to this long past its TTL while the IdP fails.
    #[serde(default)]
    pub stale_if_error: Option<HumanDuration>,
    /// Cache capacity (0 disables caching) of valid answers.
    #[serde(default = "d_cache_size")]
    pub cache_size: u64,
    /// Capacity of the separate cache of IdP rejections (default: a tenth of
    /// `cache_size`): a flood of rejected tokens can evict only rejections,
    /// never a valid answer.
    #[serde(default)]
    pub negative_cache_size: Option<u64>,
    /// Userinfo calls running at once; more wait (default 64).
    #[serde(default = "d_max_inflight")]
    pub max_inflight: usize,
    /// Calls waiting for a slot (at most `timeout` each); more are answered
    /// at once as an unavailable IdP, 503 with `Retry-After` (default 256).
    #[serde(default = "d_max_queued")]
    pub max_queued: usize,
    /// New userinfo calls started per second (0, the default: no rate bound).
    #[serde(default)]
    pub max_calls_per_second: u32,
    /// A `[caches.NAME]` used as a shared L2 behind the in-process cache.
    #[serde(default)]
    pub shared_cache: Option<String>,
    /// Per-region header maps, replacing `inject_headers` for that region.
    #[serde(default)]
    pub region_inject_headers: BTreeMap<String, InjectConfig>,
    /// Keep `Authorization` on the upstream request (default false).
    #[serde(default)]
    pub forward_authorization: bool,
    /// Relay the IdP's status and challenge when it rejects a token.
    #[serde(default = "yes")]
    pub idp_error_passthrough: bool,
    /// Where the IdP's error text is read.
    #[serde(default)]
    pub error_metadata_location: Option<ErrorMetadataLocation>,
    /// IdP response header holding the error text.
    #[serde(default)]
    pub error_header_name: Option<String>,
    /// JSONPath into the IdP's error body.
    #[serde(default)]
    pub error_payload_location: Option<String>,
    /// Status when the IdP is unreachable, times out or answers 5xx.
    #[serde(default = "d_idp_error_status")]
    pub status_on_idp_error: u16,
    /// Mashery style: connector-made errors are 403 `ERR_403_NOT_AUTHORIZED` instead of 401.
    #[serde(default)]
    pub enable_error_set: bool,
}

fn yes() -> bool {
    true
}
fn d_method() -> String {
    "GET".into()
}
fn d_timeout() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn d_max_body() -> usize {
    64 * 1024
}
fn d_cache_ttl() -> HumanDuration {
    HumanDuration::from_secs(300)
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
fn d_idp_error_status() -> u16 {
    503
}
