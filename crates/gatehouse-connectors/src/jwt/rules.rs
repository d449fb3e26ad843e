//! `jwt` settings compiled into the rules [`super::verify`] applies, with
//! every error of the section reported at once.

use super::keys::{self, Family};
use super::settings::JwtSettings;
use super::{Alg, SUPPORTED_ALGORITHMS};
use crate::kit::Problems;
use crate::limits::{self, at_most};
use gatehouse_config::{ConfigError, ConfigErrors};

/// What a token must satisfy (besides its signature and the claim gate).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Allowed algorithms (never `none`; HMAC and public-key never mixed).
    pub algorithms: Vec<Alg>,
    /// Allowed issuers (empty: not checked).
    pub issuers: Vec<String>,
    /// Allowed audiences (empty: not checked).
    pub audiences: Vec<String>,
    /// Clock skew tolerated, in seconds.
    pub leeway: f64,
    /// Refuse tokens without `exp`.
    pub require_exp: bool,
    /// Oldest `iat` accepted, in seconds before now.
    pub max_age: Option<f64>,
    /// Tokens must be bound to the connection's client certificate (RFC 8705).
    pub require_binding: bool,
    /// Accepted `typ` values (compared ASCII case-insensitively).
    pub token_types: Vec<String>,
    /// Accept ID tokens as access tokens.
    pub accept_id_tokens: bool,
}

impl Rules {
    /// True when the algorithms are HMAC ones (keys are a secret).
    pub fn hmac(&self) -> bool {
        self.algorithms
            .iter()
            .any(|a| keys::family_of(*a) == Family::Hmac)
    }

    /// Compiles the rules of the section at `path`.
    pub fn compile(path: &str, s: &JwtSettings) -> Result<Self, ConfigErrors> {
        let mut p = Problems::new();
        let at = |k: &str| format!("{path}.{k}");
        if s.algorithms.is_empty() {
            p.push(ConfigError::new(
                at("algorithms"),
                "list at least one algorithm (e.g. [\"RS256\"])",
            ));
        }
        let mut algorithms = Vec::new();
        for (i, a) in s.algorithms.iter().enumerate() {
            if a.eq_ignore_ascii_case("none") {
                p.push(ConfigError::new(
                    at(&format!("algorithms[{i}]")),
                    "\"none\" can never be allowed",
                ));
                continue;
            }
            match SUPPORTED_ALGORITHMS
                .contains(&a.as_str())
                .then(|| a.parse::<Alg>().ok())
                .flatten()
            {
                Some(alg) => algorithms.push(alg),
                None => p.push(ConfigError::new(
                    at(&format!("algorithms[{i}]")),
                    format!(
                        "unsupported algorithm \"{a}\" (supported: {})",
                        SUPPORTED_ALGORITHMS.join(", ")
                    ),
                )),
            }
        }
        let hmac = algorithms
            .iter()
            .any(|a| keys::family_of(*a) == Family::Hmac);
        let asym = algorithms
            .iter()
            .any(|a| matches!(keys::family_of(*a), Family::Rsa | Family::Ec | Family::Ed));
        if hmac && asym {
            p.push(ConfigError::new(
                at("algorithms"),
                "HMAC (HS*) and public-key algorithms cannot be mixed in one connector",
            ));
        }
        let leeway = p.check(at_most(path, "leeway", s.leeway.get(), limits::MAX_LEEWAY));
        let max_age = match s.max_token_age {
            None => Some(None),
            Some(d) if d.get().is_zero() => {
                p.push(ConfigError::new(
                    at("max_token_age"),
                    "must be more than 0s",
                ));
                None
            }
            Some(d) => p
                .check(at_most(
                    path,
                    "max_token_age",
                    d.get(),
                    limits::MAX_TOKEN_AGE,
                ))
                .map(Some),
        };
        if s.token_types.is_empty() {
            p.push(ConfigError::new(
                at("token_types"),
                "list at least one token type (default [\"at+jwt\", \"application/at+jwt\", \"JWT\"])",
            ));
        }
        for (i, t) in s.token_types.iter().enumerate() {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                p.push(ConfigError::new(
                    at(&format!("token_types[{i}]")),
                    format!("\"{t}\" is not a media type (printable ASCII, no spaces)"),
                ));
            }
        }
        let rules = (|| {
            Some(Rules {
                algorithms,
                issuers: s.issuers.clone(),
                audiences: s.audiences.clone(),
                leeway: leeway?.as_secs_f64(),
                require_exp: s.require_exp,
                require_binding: s.require_certificate_binding,
                token_types: s.token_types.clone(),
                accept_id_tokens: s.accept_id_tokens,
                max_age: max_age?.map(|d| d.as_secs_f64()),
            })
        })();
        p.finish(rules)
    }
}
