//! Settings every kind shares, compiled once: token intake and its size
//! limit, the claim gate and header injection, and how refusals look.

use super::{ClaimGate, Problems, Voice};
use crate::errors::{CustomErrorConfig, ErrorResponder, ErrorStyle, Failure, FailureClass};
use crate::inject::{InjectConfig, Injector};
use crate::policy::GroupConfig;
use crate::token::{find_token, Intake, TokenSource, TokenSourceConfig};
use crate::{Reason, RequestView};
use gatehouse_config::{deserialize_section, ConfigError, ConfigErrors};
use http::StatusCode;
use serde::Deserialize;
use std::borrow::Cow;

/// Largest `max_token_size` any kind accepts.
pub const MAX_TOKEN_SIZE: usize = 1024 * 1024;

/// The keys of [`CommonSettings`], taken out of a section before the kind's
/// own (strict) deserialize, so an unknown key is still an error.
pub const COMMON_KEYS: &[&str] = &[
    "required_claims",
    "policy",
    "inject_headers",
    "token_sources",
    "max_token_size",
    "realm",
    "error_style",
    "custom_error",
];

/// The settings every kind shares, as written in the config.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommonSettings {
    /// Claims the identity (JWT claims, userinfo answer) must contain.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claim policy: an AND of OR-groups.
    #[serde(default)]
    pub policy: Vec<GroupConfig>,
    /// Upstream headers from the identity.
    #[serde(default)]
    pub inject_headers: InjectConfig,
    /// Where the token is looked for, in order (default: `Authorization: Bearer`).
    #[serde(default)]
    pub token_sources: Vec<TokenSourceConfig>,
    /// Longest token accepted, in bytes.
    #[serde(default = "d_max_token")]
    pub max_token_size: usize,
    /// Realm in `WWW-Authenticate` (default: the connector name).
    #[serde(default)]
    pub realm: Option<String>,
    /// `rfc6750` (default) or `mashery`.
    #[serde(default)]
    pub error_style: ErrorStyle,
    /// Custom error response for connector-made errors.
    #[serde(default)]
    pub custom_error: Option<CustomErrorConfig>,
}

fn d_max_token() -> usize {
    8 * 1024
}

impl CommonSettings {
    /// Splits `section` (at `path`) into the common settings and the rest,
    /// which the kind deserializes strictly.
    pub fn split(
        path: &str,
        mut section: toml::Table,
    ) -> Result<(CommonSettings, toml::Table), ConfigError> {
        let mut common = toml::Table::new();
        for k in COMMON_KEYS {
            if let Some(v) = section.remove(*k) {
                common.insert((*k).to_string(), v);
            }
        }
        Ok((deserialize_section(path, common)?, section))
    }
}

/// What a kind decides about the common settings.
#[derive(Debug, Clone, Copy)]
pub struct KindDefaults {
    /// How the kind words its failures.
    pub voice: Voice,
    /// Smallest `max_token_size` that makes sense for the kind.
    pub min_token_size: usize,
    /// Status of connector-made errors in `mashery` style (401 or 403).
    pub mashery_status: StatusCode,
}

/// The common settings, compiled.
pub struct Common {
    /// Where tokens are read.
    pub sources: Vec<TokenSource>,
    /// Longest token accepted.
    pub max_token: usize,
    /// Required claims and policy.
    pub gate: ClaimGate,
    /// The flat `inject_headers` map.
    pub injector: Injector,
    /// How refusals are rendered.
    pub errors: ErrorResponder,
    voice: Voice,
}

impl Common {
    /// Compiles `s` (of the connector `name`, section `path`), reporting
    /// every error.
    pub fn compile(
        name: &str,
        path: &str,
        s: &CommonSettings,
        kind: KindDefaults,
    ) -> Result<Self, ConfigErrors> {
        let mut p = Problems::new();
        let sources = p.check(TokenSource::compile_all(
            &format!("{path}.token_sources"),
            &s.token_sources,
        ));
        if s.max_token_size < kind.min_token_size || s.max_token_size > MAX_TOKEN_SIZE {
            p.push(ConfigError::new(
                format!("{path}.max_token_size"),
                format!(
                    "must be between {} and {MAX_TOKEN_SIZE} bytes",
                    kind.min_token_size
                ),
            ));
        }
        let gate = match ClaimGate::compile(path, &s.required_claims, &s.policy, kind.voice) {
            Ok(g) => Some(g),
            Err(errs) => {
                errs.into_iter().for_each(|e| p.push(e));
                None
            }
        };
        let injector = p.check(Injector::compile(
            &format!("{path}.inject_headers"),
            &s.inject_headers,
        ));
        let realm = s.realm.clone().unwrap_or_else(|| name.to_string());
        let errors = p.check(ErrorResponder::new(
            path,
            &realm,
            s.error_style,
            s.custom_error.as_ref(),
            kind.mashery_status,
        ));
        let all = (|| {
            Some(Common {
                sources: sources?,
                max_token: s.max_token_size,
                gate: gate?,
                injector: injector?,
                errors: errors?,
                voice: kind.voice,
            })
        })();
        p.finish(all)
    }

    /// The request's token and the index of the source it came from, or why
    /// there is none (missing, malformed, ambiguous, too large).
    pub fn intake<'r>(&self, req: &RequestView<'r>) -> Result<(Cow<'r, str>, usize), Failure> {
        let v = &self.voice;
        let (token, source) = match find_token(&self.sources, req) {
            Intake::Found(t, i) => (t, i),
            Intake::Missing => {
                return Err(Failure::new(
                    Reason::MissingToken,
                    FailureClass::NoCredential,
                    v.missing_code,
                    "no bearer token",
                ))
            }
            Intake::Malformed(why) => {
                return Err(Failure::new(
                    Reason::Malformed,
                    FailureClass::InvalidToken,
                    v.token_code,
                    why,
                ))
            }
            Intake::Ambiguous(why) => {
                return Err(Failure::new(
                    Reason::AmbiguousToken,
                    FailureClass::InvalidRequest,
                    v.token_code,
                    format!("{why}; send the token once"),
                ))
            }
        };
        if token.len() > self.max_token {
            return Err(Failure::new(
                Reason::TokenTooLarge,
                FailureClass::InvalidToken,
                v.token_code,
                format!("token larger than {} bytes", self.max_token),
            ));
        }
        Ok((token, source))
    }
}
