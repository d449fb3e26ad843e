//! `kind = "api_key"` settings, as written in the config.

use gatehouse_config::HumanDuration;
use serde::Deserialize;

/// One place an API key is read: exactly one of `header`, `query`,
/// `cookie`, or `claim` (the verified document of an earlier step).
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySourceConfig {
    /// Request header whose whole value is the key.
    #[serde(default)]
    pub header: Option<String>,
    /// Query parameter (always removed before proxying).
    #[serde(default)]
    pub query: Option<String>,
    /// Cookie.
    #[serde(default)]
    pub cookie: Option<String>,
    /// A top-level member of the identity an earlier step of the route
    /// verified (a JWT claim such as `client_id`, a userinfo member).
    #[serde(default)]
    pub claim: Option<String>,
}

/// The digest of a signed key.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureAlgorithm {
    /// Hex SHA-256 (Mashery `apiKeyAndSecret_SHA256`).
    #[default]
    Sha256,
    /// Hex MD5 (Mashery `apiKeyAndSecret_MD5`; for migrations only).
    Md5,
}

/// `signature`: Mashery signed keys. The signature is the hex digest of the
/// key, the key's shared secret and the Unix time in seconds, concatenated.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// Query parameter carrying the signature (default `sig`).
    #[serde(default = "d_sig")]
    pub query: String,
    /// Digest algorithm (default `sha256`).
    #[serde(default)]
    pub algorithm: SignatureAlgorithm,
    /// How far the signing time may be from Gatehouse's clock, either way
    /// (default 5 minutes, at most 1 hour).
    #[serde(default = "d_skew")]
    pub max_skew: HumanDuration,
}

fn d_sig() -> String {
    "sig".into()
}

fn d_skew() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// `[connectors.NAME]` with `kind = "api_key"`: the kind's own keys (the
/// shared `inject_headers`, `policy`, `required_claims`, `realm`,
/// `error_style`, `custom_error` and `max_token_size` are
/// [`crate::kit::CommonSettings`]; `token_sources` is refused: keys are read
/// from `key_sources`).
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// Where the key is read, in order (default: the `X-Api-Key` header). A
    /// key in two of them is refused (400).
    #[serde(default)]
    pub key_sources: Vec<KeySourceConfig>,
    /// The consumers' keys, hashed (TOML, `[[keys]]`); re-read when it
    /// changes and on reload.
    pub keys_file: String,
    /// Signed keys: every request also carries a fresh signature.
    #[serde(default)]
    pub signature: Option<SignatureConfig>,
}
