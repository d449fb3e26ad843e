//! The connector kit: what every connector kind shares, written once.
//!
//! # Where a new kind goes
//!
//! A kind is one folder beside `jwt/` and `userinfo/`, split by job:
//!
//! | file | job |
//! |---|---|
//! | `settings.rs` | the kind's own keys (`#[serde(deny_unknown_fields)]`), without the common ones |
//! | `rules.rs` | settings compiled into runtime rules, reporting **every** error ([`Problems`]) |
//! | a pure decision | e.g. `verify(token, &KeySet, &Rules, now)` or `classify(status, headers, body)`: no I/O, unit-testable |
//! | a thin fetch layer | JWKS loading, the IdP client: sends, reads bounded, returns what came back |
//! | `cache.rs`, `metrics.rs` | its cache and its metric families |
//! | `mod.rs` | the `Connector` (intake → cache → decision → gate) and its `ConnectorFactory` |
//!
//! and one line in [`crate::Registry::builtin`]. The proxy crate never names a
//! kind: the factory gives its JSON Schema ([`with_common`]) and
//! [`crate::Capabilities`] through the registry.
//!
//! The kit gives each kind, from the section's common keys
//! ([`CommonSettings`], split off with [`CommonSettings::split`] before the
//! kind's strict deserialize): token intake with its size limit
//! ([`Common::intake`]), the claim gate — required claims → policy →
//! injection ([`ClaimGate`]) —, the error responder (RFC 6750, custom or
//! Mashery, and the relay of an identity provider's own rejection), and one
//! [`clock`].

pub mod answer_cache;
pub mod answer_flow;
pub mod answer_l2;
pub mod clock;
mod common;
mod gate;
pub mod limiter;
mod problems;
pub mod remote;

pub use common::{Common, CommonSettings, KindDefaults, COMMON_KEYS, MAX_TOKEN_SIZE};
pub use gate::ClaimGate;
pub use problems::Problems;

use crate::errors::FailureClass;
use serde_json::Value;

/// The payload of a JWT-shaped token, base64url-decoded, **unverified**:
/// only for decisions that never allow (skipping an any-of member, capping a
/// cache lifetime). `None` for anything else (opaque tokens, bad base64).
pub fn unverified_payload(token: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
}

/// How a kind words the failures the kit produces for it (the legacy codes
/// are the original product's error names, shown in `mashery` style).
#[derive(Debug, Clone, Copy)]
pub struct Voice {
    /// What the identity document is called in descriptions ("token",
    /// "userinfo").
    pub subject: &'static str,
    /// Legacy code when there is no token.
    pub missing_code: &'static str,
    /// Legacy code for a malformed, ambiguous or oversized token.
    pub token_code: &'static str,
    /// Legacy code for required-claim, policy and injection refusals.
    pub claims_code: &'static str,
    /// Class of a missing `required_claims` entry (a JWT without a required
    /// claim is an invalid token, 401; a userinfo answer without one is a
    /// valid identity without the rights, 403).
    pub required_class: FailureClass,
    /// Class of "a value to inject is not a valid header value".
    pub bad_value_class: FailureClass,
    /// Its legacy code.
    pub bad_value_code: &'static str,
}

/// The JSON Schema of a kind's section: its own settings `S` plus the
/// [`CommonSettings`], as one object (both are strict, so `allOf` would
/// refuse every key). Registers `S` in `generator` and returns a reference.
pub fn with_common<S: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    let kind = generator.subschema_for::<S>();
    let common = generator.subschema_for::<CommonSettings>();
    let name = |s: &schemars::Schema| {
        s.get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .map(str::to_string)
    };
    let (Some(kind_name), Some(common_name)) = (name(&kind), name(&common)) else {
        return kind;
    };
    let defs = generator.definitions_mut();
    let Some(common_def) = defs.get(&common_name).cloned() else {
        return kind;
    };
    if let Some(Value::Object(k)) = defs.get_mut(&kind_name) {
        if let Some(Value::Object(cp)) = common_def.get("properties") {
            let props = k
                .entry("properties")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(p) = props {
                for (key, v) in cp {
                    p.entry(key.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    kind
}
