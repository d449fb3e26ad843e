//! Identity headers for the upstream, computed from verified claims (JWT) or
//! a userinfo document (OIDC), and from the client certificate of a mutual
//! TLS connection. One implementation for every connector.

use crate::claims::{has_edge_whitespace, render, ClaimPath};
use crate::PeerCertificate;
use gatehouse_config::ConfigError;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One mapping as written in the config: a claim name / JSONPath, or a table.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
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
    /// `"X-Client-Thumbprint" = { certificate = "thumbprint" }`: from the
    /// client certificate verified on the connection (omitted without one).
    Certificate {
        /// `subject`, `san` or `thumbprint`.
        certificate: CertField,
    },
}

/// What of the client certificate a header carries.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertField {
    /// The subject DN, RFC 4514 form (`CN=svc,O=Example`).
    Subject,
    /// The DNS, email and URI subjectAltNames, comma-separated (inside a
    /// name, `%` is sent as `%25` and `,` as `%2C`).
    San,
    /// base64url SHA-256 of the certificate (RFC 8705 `x5t#S256`).
    Thumbprint,
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
    /// A value contains CR, LF, NUL or another byte not allowed in a header,
    /// or starts or ends (or, for an array, one of its elements does) with a
    /// space or a tab.
    InvalidValue(String),
}

/// Compiled `inject_headers`.
#[derive(Debug, Clone, Default)]
pub struct Injector {
    rules: Vec<InjectRule>,
    certificate: Vec<(HeaderName, CertField)>,
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
        let mut certificate = Vec::new();
        let mut headers: Vec<HeaderName> = Vec::with_capacity(cfg.len());
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
            if headers.contains(&header) {
                return Err(ConfigError::new(
                    &p,
                    format!("header \"{name}\" is mapped twice (names are case-insensitive)"),
                ));
            }
            headers.push(header.clone());
            let (claim, required) = match src {
                InjectSource::Claim(c) => (c.as_str(), false),
                InjectSource::Detailed { claim, required } => (claim.as_str(), *required),
                InjectSource::Certificate { certificate: f } => {
                    certificate.push((header, *f));
                    continue;
                }
            };
            let source = ClaimPath::parse(&p, claim)?;
            rules.push(InjectRule {
                header,
                source,
                required,
            });
        }
        Ok(Self {
            rules,
            certificate,
            headers,
        })
    }

    /// True when there is nothing to inject.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every header this injector may set (for stripping client copies).
    pub fn headers(&self) -> &[HeaderName] {
        &self.headers
    }

    /// The claim mappings.
    pub fn rules(&self) -> &[InjectRule] {
        &self.rules
    }

    /// The headers taken from the client certificate, computed per request
    /// (never cached with a token: one token may arrive on connections with
    /// different certificates). Nothing without a certificate; a value that
    /// is not a valid header value (control bytes) is left out.
    pub fn certificate(&self, peer: Option<&PeerCertificate>) -> Vec<(HeaderName, HeaderValue)> {
        let Some(peer) = peer.filter(|_| !self.certificate.is_empty()) else {
            return Vec::new();
        };
        self.certificate
            .iter()
            .filter_map(|(h, f)| {
                let text = match f {
                    CertField::Subject => peer.subject.clone(),
                    CertField::Thumbprint => peer.thumbprint.clone(),
                    CertField::San => peer
                        .sans
                        .iter()
                        .map(|s| s.replace('%', "%25").replace(',', "%2C"))
                        .collect::<Vec<_>>()
                        .join(","),
                };
                let ok = !text.is_empty() && !text.bytes().any(|b| b.is_ascii_control());
                let value = HeaderValue::from_bytes(text.as_bytes())
                    .ok()
                    .filter(|_| ok)?;
                Some((h.clone(), value))
            })
            .collect()
    }

    /// Computes the header values from `doc`.
    pub fn apply(&self, doc: &Value) -> Result<Vec<(HeaderName, HeaderValue)>, InjectError> {
        let mut out = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let found = r.source.first(doc);
            let text = match found.and_then(render) {
                Some(_) if found.is_some_and(has_edge_whitespace) => {
                    // RFC 9110 §5.5 readers trim it: refused like control bytes.
                    return Err(InjectError::InvalidValue(r.header.to_string()));
                }
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
        for bad in [
            json!(" admin "),
            json!("admin\t"),
            json!(["desk", " admin"]),
        ] {
            assert_eq!(
                inj.apply(&json!({ "name": bad })),
                Err(InjectError::InvalidValue("x-name".into())),
                "{bad}: readers trim spaces and tabs at the edges"
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
        let e = injector("\"X-A\" = \"sub\"\n\"x-a\" = { certificate = \"san\" }").unwrap_err();
        assert!(e.message.contains("mapped twice"));
        for bad in [
            "\"X-A\" = { certificate = \"issuer\" }",
            "\"X-A\" = { claim = \"sub\", certificate = \"san\" }",
        ] {
            assert!(toml::from_str::<InjectConfig>(bad).is_err(), "{bad}");
        }
    }

    fn peer() -> PeerCertificate {
        PeerCertificate {
            thumbprint: "abc-_1".into(),
            subject: "CN=svc,O=Example".into(),
            sans: vec!["svc.test".into(), "spiffe://t/ns/a,b%2C".into()],
        }
    }

    #[test]
    fn certificate_headers_come_from_the_connection_not_the_claims() {
        let inj = injector(
            "\"X-Sub\" = \"sub\"\n\"X-Cert-Subject\" = { certificate = \"subject\" }\n\"X-Cert-San\" = { certificate = \"san\" }\n\"X-Cert-Thumb\" = { certificate = \"thumbprint\" }",
        )
        .unwrap();
        assert_eq!(
            inj.headers().len(),
            4,
            "every header is stripped from clients"
        );
        let claims = inj
            .apply(&json!({"sub": "u1", "x-cert-subject": "forged"}))
            .unwrap();
        assert_eq!(claims.len(), 1, "claims never fill certificate headers");
        let got: Vec<(String, String)> = inj
            .certificate(Some(&peer()))
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "x-cert-san".to_string(),
                    "svc.test,spiffe://t/ns/a%2Cb%252C".to_string()
                ),
                ("x-cert-subject".into(), "CN=svc,O=Example".into()),
                ("x-cert-thumb".into(), "abc-_1".into()),
            ]
        );
        assert!(inj.certificate(None).is_empty());
        let mut bad = peer();
        bad.subject = "CN=a\r\nX-Admin: 1".into();
        bad.sans.clear();
        let got = inj.certificate(Some(&bad));
        assert_eq!(
            got.len(),
            1,
            "control bytes and empty SANs are left out: {got:?}"
        );
        assert_eq!(got[0].0.as_str(), "x-cert-thumb");
    }
}
