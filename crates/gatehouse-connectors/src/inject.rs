//! Identity headers for the upstream, computed from verified claims (JWT) or
//! a userinfo document (OIDC). One implementation for every connector.

use crate::claims::{render, ClaimPath};
use gatehouse_config::ConfigError;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One mapping as written in the config: a claim name / JSONPath, or a table.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum InjectSource {
    /// `"X-User-Id" = "sub"`.
    Claim(String),
    /// `"X-User-Id" = { claim = "sub", required = true }`.
    Detailed {
        /// Claim name or JSONPath.
        claim: String,
        /// Deny the request when the claim is absent (default: omit the header).
        #[serde(default)]
        required: bool,
    },
}

/// The `inject_headers` table as written in the config.
pub type InjectConfig = BTreeMap<String, InjectSource>;

/// A compiled mapping.
#[derive(Debug, Clone)]
pub struct InjectRule {
    /// Upstream header.
    pub header: HeaderName,
    /// Where the value comes from.
    pub source: ClaimPath,
    /// Deny when absent.
    pub required: bool,
}

/// Why injection refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectError {
    /// A `required` claim is absent.
    Missing(String),
    /// A value contains CR, LF, NUL or another byte not allowed in a header.
    InvalidValue(String),
}

/// Compiled `inject_headers`.
#[derive(Debug, Clone, Default)]
pub struct Injector {
    rules: Vec<InjectRule>,
    headers: Vec<HeaderName>,
}

/// Headers an identity must never be injected into (hop-by-hop or framing).
const FORBIDDEN: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

impl Injector {
    /// Compiles the table found at `path` (e.g. `connectors.corp.inject_headers`).
    pub fn compile(path: &str, cfg: &InjectConfig) -> Result<Self, ConfigError> {
        let mut rules = Vec::with_capacity(cfg.len());
        for (name, src) in cfg {
            let p = format!("{path}.{name}");
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::new(&p, format!("\"{name}\" is not a valid header name"))
            })?;
            if FORBIDDEN.contains(&header.as_str()) {
                return Err(ConfigError::new(
                    &p,
                    format!("\"{name}\" cannot be injected"),
                ));
            }
            let (claim, required) = match src {
                InjectSource::Claim(c) => (c.as_str(), false),
                InjectSource::Detailed { claim, required } => (claim.as_str(), *required),
            };
            let source = ClaimPath::parse(&p, claim)?;
            if rules.iter().any(|r: &InjectRule| r.header == header) {
                return Err(ConfigError::new(
                    &p,
                    format!("header \"{name}\" is mapped twice (names are case-insensitive)"),
                ));
            }
            rules.push(InjectRule {
                header,
                source,
                required,
            });
        }
        let headers = rules.iter().map(|r| r.header.clone()).collect();
        Ok(Self { rules, headers })
    }

    /// True when there is nothing to inject.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every header this injector may set (for stripping client copies).
    pub fn headers(&self) -> &[HeaderName] {
        &self.headers
    }

    /// The mappings.
    pub fn rules(&self) -> &[InjectRule] {
        &self.rules
    }

    /// Computes the header values from `doc`.
    pub fn apply(&self, doc: &Value) -> Result<Vec<(HeaderName, HeaderValue)>, InjectError> {
        let mut out = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let text = match r.source.first(doc).and_then(render) {
                Some(t) => t,
                None if r.required => {
                    return Err(InjectError::Missing(r.source.as_str().to_string()))
                }
                None => continue,
            };
            // UTF-8 is forwarded as bytes (obs-text); control bytes never are.
            let value = HeaderValue::from_bytes(text.as_bytes())
                .ok()
                .filter(|_| !text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0))
                .ok_or_else(|| InjectError::InvalidValue(r.header.to_string()))?;
            out.push((r.header.clone(), value));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn injector(t: &str) -> Result<Injector, ConfigError> {
        let cfg: InjectConfig = toml::from_str(t).unwrap();
        Injector::compile("c.inject_headers", &cfg)
    }

    #[test]
    fn injects_rendered_values_and_skips_absent() {
        let inj = injector("\"X-User-Id\" = \"sub\"\n\"X-Region\" = \"$.org.region\"\n\"X-Groups\" = \"groups\"\n\"X-Missing\" = \"nope\"").unwrap();
        let out = inj
            .apply(&json!({"sub": "u1", "org": {"region": "eu"}, "groups": ["a", "b"]}))
            .unwrap();
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [("x-groups", "a,b"), ("x-region", "eu"), ("x-user-id", "u1")]
        );
        assert_eq!(
            inj.headers().len(),
            4,
            "absent claims still name a header to strip"
        );
    }

    #[test]
    fn required_missing_denies() {
        let inj = injector("\"X-Tenant\" = { claim = \"tenant\", required = true }").unwrap();
        assert_eq!(
            inj.apply(&json!({})),
            Err(InjectError::Missing("tenant".into()))
        );
    }

    #[test]
    fn crlf_and_nul_never_forwarded() {
        let inj = injector("\"X-Name\" = \"name\"").unwrap();
        for bad in ["a\r\nX-Admin: 1", "a\nb", "a\u{0}b"] {
            assert_eq!(
                inj.apply(&json!({"name": bad})),
                Err(InjectError::InvalidValue("x-name".into())),
                "{bad:?}"
            );
        }
        let out = inj.apply(&json!({"name": "Claes Rosenlöf"})).unwrap();
        assert_eq!(
            out[0].1.as_bytes(),
            "Claes Rosenlöf".as_bytes(),
            "UTF-8 forwarded as-is"
        );
    }

    #[test]
    fn config_errors_have_paths() {
        let e = injector("\"Bad Header\" = \"sub\"").unwrap_err();
        assert_eq!(e.path, "c.inject_headers.Bad Header");
        let e = injector("\"X-A\" = \"$..[\"").unwrap_err();
        assert_eq!(e.path, "c.inject_headers.X-A");
        let e = injector("\"Host\" = \"sub\"").unwrap_err();
        assert!(e.message.contains("cannot be injected"));
        let e = injector("\"X-A\" = \"sub\"\n\"x-a\" = \"sub\"").unwrap_err();
        assert!(e.message.contains("mapped twice"));
    }
}
