//! `kind = "jwt"` settings, as written in the config.

use gatehouse_config::HumanDuration;
use serde::Deserialize;
use std::path::PathBuf;

/// A PEM public key with an optional `kid`.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PemKeyConfig {
    /// Key id matched against the token's `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// Path of a PEM file (SubjectPublicKeyInfo or PKCS#1 RSA).
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
    /// The PEM text inline.
    #[serde(default)]
    pub pem: Option<String>,
}

/// How `secret` / `secret_file` is encoded.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretEncoding {
    /// The bytes of the text.
    #[default]
    Utf8,
    /// Standard or URL-safe base64.
    Base64,
}

/// `token_cache_policy`: eviction (and admission) of the verified-token
/// cache once it holds `token_cache_size` tokens. The default, `lru`, is what
/// `benches/churn.rs` measured (docs/performance.md, "Token churn"): when
/// users rotate tokens against a cache smaller than the population, TinyLFU
/// kept the dead tokens of formerly busy users and refused new ones (up to
/// 3.3× the signature checks of LRU); LRU's worst case was 1.3× TinyLFU's,
/// on a stable population with a cache of a tenth of it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
pub enum TokenCachePolicy {
    /// `"tinylfu"`: least recently used out, but a new token is admitted only
    /// when it has been seen more often than the token it would evict
    /// (frequency-based admission).
    #[serde(rename = "tinylfu")]
    TinyLfu,
    /// `"lru"` (default): every verified token is admitted; the least
    /// recently used one is evicted.
    #[default]
    #[serde(rename = "lru")]
    Lru,
}

/// `[connectors.NAME]` with `kind = "jwt"`: the kind's own keys (the shared
/// ones — `inject_headers`, `policy`, `required_claims`, `token_sources`,
/// `max_token_size`, `realm`, `error_style`, `custom_error` — are
/// [`crate::kit::CommonSettings`]).
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// JWKS URL (http or https).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// JWKS file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Inline JWKS JSON.
    #[serde(default)]
    pub jwks: Option<String>,
    /// PEM public keys.
    #[serde(default)]
    pub public_keys: Vec<PemKeyConfig>,
    /// HMAC secret (HS* only).
    #[serde(default)]
    pub secret: Option<String>,
    /// HMAC secret file (HS* only).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Encoding of the secret.
    #[serde(default)]
    pub secret_encoding: SecretEncoding,
    /// JWKS refresh period.
    #[serde(default = "d_refresh")]
    pub jwks_refresh: HumanDuration,
    /// Least time between refetches on unknown `kid`.
    #[serde(default = "d_refetch")]
    pub jwks_min_refetch_interval: HumanDuration,
    /// How long the last good keys keep serving when fetches fail.
    #[serde(default = "d_stale")]
    pub jwks_max_stale: HumanDuration,
    /// Refuse the configuration when keys cannot be fetched at load.
    #[serde(default)]
    pub jwks_required_at_load: bool,
    /// Timeout of one JWKS request.
    #[serde(default = "d_timeout")]
    pub jwks_timeout: HumanDuration,
    /// Outbound proxy for the JWKS fetch (`http://host:port`).
    #[serde(default)]
    pub http_proxy: Option<String>,
    /// Allowed algorithms (required).
    pub algorithms: Vec<String>,
    /// Allowed issuers (empty: not checked).
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Allowed audiences (empty: not checked).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf`, `iat`.
    #[serde(default = "d_leeway")]
    pub leeway: HumanDuration,
    /// Require an `exp` claim.
    #[serde(default = "yes")]
    pub require_exp: bool,
    /// Maximum age from `iat` (the original's `token_expiry_override`).
    #[serde(default)]
    pub max_token_age: Option<HumanDuration>,
    /// Header receiving base64url(claims JSON).
    #[serde(default)]
    pub forward_claims_header: Option<String>,
    /// Keep the token's carrier on the upstream request.
    #[serde(default = "yes")]
    pub forward_authorization: bool,
    /// Verified-token cache capacity (0 disables the cache).
    #[serde(default = "d_cache")]
    pub token_cache_size: u64,
    /// Which verified token a full cache gives up for a new one: `"lru"`
    /// (default) or `"tinylfu"` (see [`TokenCachePolicy`]).
    #[serde(default)]
    pub token_cache_policy: TokenCachePolicy,
    /// Token types (`typ` of the JOSE header) accepted, compared ASCII
    /// case-insensitively; a token without `typ` is accepted. Default
    /// `["at+jwt", "application/at+jwt", "JWT"]` (RFC 9068 access tokens,
    /// and plain JWTs).
    #[serde(default = "d_token_types")]
    pub token_types: Vec<String>,
    /// Accept ID tokens (a token with `nonce`, `at_hash` or `c_hash`) as
    /// access tokens (default false: refused with `id_token`).
    #[serde(default)]
    pub accept_id_tokens: bool,
    /// RFC 8705: the token's `cnf."x5t#S256"` must be the thumbprint of the
    /// client certificate verified on the connection (mutual TLS listener).
    #[serde(default)]
    pub require_certificate_binding: bool,
}

impl JwtSettings {
    /// The files these settings make the connector read: `secret_file`,
    /// `jwks_file` and every `public_keys[].pem_file`, as written.
    pub fn source_files(&self) -> Vec<PathBuf> {
        let pems = self.public_keys.iter().filter_map(|k| k.pem_file.clone());
        self.secret_file
            .iter()
            .chain(self.jwks_file.iter())
            .cloned()
            .chain(pems)
            .collect()
    }
}

/// The default `token_types`.
pub(super) const DEFAULT_TOKEN_TYPES: [&str; 3] = ["at+jwt", "application/at+jwt", "JWT"];

fn d_token_types() -> Vec<String> {
    DEFAULT_TOKEN_TYPES.iter().map(|t| t.to_string()).collect()
}

fn yes() -> bool {
    true
}
fn d_refresh() -> HumanDuration {
    HumanDuration::from_secs(15 * 60)
}
fn d_refetch() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn d_stale() -> HumanDuration {
    HumanDuration::from_secs(24 * 3600)
}
fn d_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn d_leeway() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn d_cache() -> u64 {
    100_000
}

#[cfg(test)]
mod tests {
    use super::super::JwtFactory;
    use super::*;
    use crate::{BuildContext, ConnectorFactory};
    use gatehouse_config::ConfigError;

    async fn build(extra: &str) -> Result<(), ConfigError> {
        let body = format!(
            "secret = \"0123456789abcdef0123456789abcdef\"\nalgorithms = [\"HS256\"]\naudiences = [\"api\"]\n{extra}"
        );
        JwtFactory::default()
            .build(BuildContext {
                name: "t".into(),
                path: "connectors.t".into(),
                settings: toml::from_str(&body).expect("test TOML"),
                metrics: prometheus::Registry::new(),
                shared_caches: Default::default(),
            })
            .await
            .map(drop)
            .map_err(|mut e| e.0.remove(0))
    }

    #[tokio::test]
    async fn token_cache_policy_values() {
        for v in ["tinylfu", "lru"] {
            build(&format!("token_cache_policy = \"{v}\""))
                .await
                .unwrap_or_else(|e| panic!("{v}: {e}"));
        }
        build("").await.expect("no token_cache_policy");
        let parse = |v: &str| {
            toml::from_str::<toml::Table>(&format!("algorithms = []\n{v}"))
                .map(|t| toml::Value::Table(t).try_into::<JwtSettings>())
                .expect("test TOML")
                .map(|s| s.token_cache_policy)
        };
        assert_eq!(parse("").ok(), Some(TokenCachePolicy::default()));
        assert_eq!(
            parse("token_cache_policy = \"tinylfu\"").ok(),
            Some(TokenCachePolicy::TinyLfu)
        );
        assert_eq!(
            parse("token_cache_policy = \"lru\"").ok(),
            Some(TokenCachePolicy::Lru)
        );
        for bad in ["\"lfu\"", "\"LRU\"", "\"\"", "1"] {
            let e = build(&format!("token_cache_policy = {bad}"))
                .await
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.path, "connectors.t.token_cache_policy", "{e}");
        }
        let e = build("token_cache_policy = \"lfu\"")
            .await
            .expect_err("refused");
        assert!(
            e.message.contains("tinylfu") && e.message.contains("lru"),
            "{e}"
        );
    }
}
