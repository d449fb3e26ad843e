//! The claim gate every kind applies to a verified identity document (JWT
//! claims or a userinfo answer): required claims → policy → header
//! injection, in that order; the first failure answers.

use crate::errors::{Failure, FailureClass};
use crate::inject::{InjectError, Injector};
use crate::policy::Policy;
use crate::Reason;
use gatehouse_config::ConfigError;
use http::{HeaderName, HeaderValue};
use serde_json::Value;

use super::Voice;

/// Compiled `required_claims` and `policy` (injection is per kind: the
/// userinfo kind picks a header map per region).
pub struct ClaimGate {
    required: Vec<String>,
    policy: Policy,
    voice: Voice,
}

impl ClaimGate {
    /// Compiles the gate of the section at `path`.
    pub fn compile(
        path: &str,
        required: &[String],
        policy: &[crate::policy::GroupConfig],
        voice: Voice,
    ) -> Result<Self, Vec<ConfigError>> {
        let mut errs = Vec::new();
        for (i, c) in required.iter().enumerate() {
            if c.is_empty() {
                errs.push(ConfigError::new(
                    format!("{path}.required_claims[{i}]"),
                    "must not be empty",
                ));
            }
        }
        let policy = Policy::compile(&format!("{path}.policy"), policy).map_err(|e| vec![e]);
        match policy {
            Ok(policy) if errs.is_empty() => Ok(Self {
                required: required.to_vec(),
                policy,
                voice,
            }),
            Ok(_) => Err(errs),
            Err(e) => {
                errs.extend(e);
                Err(errs)
            }
        }
    }

    /// Required claims, then the policy, then `injector` over `doc`: the
    /// headers to set, or why the identity is refused.
    pub fn admit(
        &self,
        doc: &Value,
        injector: &Injector,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
        let v = &self.voice;
        let missing = |c: &str, class| {
            Failure::new(
                Reason::MissingClaim,
                class,
                v.claims_code,
                format!("{} has no {c} claim", v.subject),
            )
        };
        if let Some(c) = self
            .required
            .iter()
            .find(|c| doc.get(c.as_str()).is_none_or(Value::is_null))
        {
            return Err(missing(c, v.required_class));
        }
        if let Err(f) = self.policy.evaluate(doc) {
            return Err(Failure::new(
                Reason::PolicyDenied,
                FailureClass::InsufficientScope,
                v.claims_code,
                f.description,
            ));
        }
        injector.apply(doc).map_err(|e| match e {
            InjectError::Missing(c) => missing(&c, FailureClass::InsufficientScope),
            InjectError::InvalidValue(h) => Failure::new(
                Reason::InvalidHeaderValue,
                v.bad_value_class,
                v.bad_value_code,
                format!(
                    "the {} value for {h} is not a valid header value",
                    v.subject
                ),
            ),
        })
    }
}
