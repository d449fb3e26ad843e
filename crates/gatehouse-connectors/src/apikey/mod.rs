//! `kind = "api_key"`: API keys the way API management does them — hashed
//! in a keys file that reloads, each with a consumer, a plan, a status, an
//! optional expiry and attributes; optionally signed (Mashery
//! `apiKeyAndSecret_SHA256`); read from a header, a query parameter, a
//! cookie, or a claim an earlier step of the route verified.
//!
//! Check order: intake (one carrier; the signature likewise) → lookup by
//! SHA-256 → signature → status and expiry → required claims, policy and
//! `inject_headers` over the key's document. The key and the signature never
//! reach the upstream.

pub mod keys;
pub mod settings;
pub mod signature;

use crate::errors::{Failure, FailureClass};
use crate::kit::{self, clock, Common, CommonSettings, KindDefaults, Problems, Voice};
use crate::outbound::LazyFamilies;
use crate::token::{find_token, strip_carriers, Intake, TokenSource, TokenSourceConfig};
use crate::{BuildContext, Connector, ConnectorFactory, Denial, Reason, RequestView, Verdict};
use async_trait::async_trait;
use gatehouse_config::{deserialize_section, ConfigError, ConfigErrors};
use http::{HeaderName, StatusCode};
use keys::{KeyEntry, KeyStore, Status};
use serde_json::Value;
use settings::{ApiKeySettings, KeySourceConfig, SignatureAlgorithm};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Mashery's code for an unknown key or a wrong signature.
pub const NOT_AUTHORIZED: &str = "ERR_403_NOT_AUTHORIZED";
/// Mashery's code for a disabled, waiting or expired key.
pub const DEVELOPER_INACTIVE: &str = "ERR_403_DEVELOPER_INACTIVE";

const VOICE: Voice = Voice {
    subject: "API key",
    missing_code: NOT_AUTHORIZED,
    token_code: NOT_AUTHORIZED,
    claims_code: NOT_AUTHORIZED,
    required_class: FailureClass::Forbidden,
    bad_value_class: FailureClass::Forbidden,
    bad_value_code: NOT_AUTHORIZED,
};

/// Longest `max_skew`.
const MAX_SKEW_SECS: u64 = 3600;

/// The Mashery answer of an `api_key` failure.
fn mashery_answer(f: &Failure) -> Option<(&'static str, &'static str)> {
    Some(if f.legacy_code == DEVELOPER_INACTIVE {
        (DEVELOPER_INACTIVE, "Forbidden: Account Inactive")
    } else {
        (NOT_AUTHORIZED, "Forbidden: Not Authorized")
    })
}

/// Where a key is read, compiled.
#[derive(Debug, Clone)]
struct Sources {
    /// Headers, query parameters and cookies (stripped before proxying).
    carriers: Vec<TokenSource>,
    /// Members of the document an earlier step verified.
    claims: Vec<String>,
}

/// The signature rule, compiled.
#[derive(Debug, Clone)]
struct SignatureRule {
    carrier: TokenSource,
    algorithm: SignatureAlgorithm,
    skew: i64,
}

/// Builds `api_key` connectors; owns their metric family.
#[derive(Default)]
pub struct ApiKeyFactory {
    families: LazyFamilies<prometheus::IntGaugeVec>,
}

/// An `api_key` connector instance.
pub struct ApiKeyConnector {
    name: String,
    common: Common,
    sources: Sources,
    signature: Option<SignatureRule>,
    store: KeyStore,
    injected: Vec<HeaderName>,
    /// Lines of keys without a secret, on a signed connector.
    unsigned: Vec<usize>,
    keys_file: String,
}

fn refusal(reason: Reason, class: FailureClass, code: &'static str, what: &str) -> Failure {
    Failure::new(reason, class, code, what)
}

impl ApiKeyConnector {
    fn deny(&self, f: Failure, req: &RequestView<'_>) -> Verdict {
        tracing::debug!(connector = %self.name, reason = %f.reason, "{}", f.description);
        Verdict::Deny(self.common.errors.deny(f, req.request_id))
    }

    /// The key of the request, from its one carrier or claim.
    fn intake<'r>(&self, req: &RequestView<'r>) -> Result<Cow<'r, str>, Failure> {
        let mut found: Option<Cow<'r, str>> = None;
        let ambiguous = |why: String| {
            refusal(
                Reason::AmbiguousToken,
                FailureClass::InvalidRequest,
                NOT_AUTHORIZED,
                &format!("{why}; send the API key once"),
            )
        };
        if !self.sources.carriers.is_empty() {
            match find_token(&self.sources.carriers, req) {
                Intake::Found(k, _) => found = Some(k),
                Intake::Missing => {}
                Intake::Malformed(why) => {
                    return Err(refusal(
                        Reason::Malformed,
                        FailureClass::Forbidden,
                        NOT_AUTHORIZED,
                        why,
                    ))
                }
                Intake::Ambiguous(why) => return Err(ambiguous(why.to_string())),
            }
        }
        for claim in &self.sources.claims {
            let Some(v) = req.verified.and_then(|d| d.get(claim.as_str())) else {
                continue;
            };
            let Value::String(s) = v else {
                return Err(refusal(
                    Reason::Malformed,
                    FailureClass::Forbidden,
                    NOT_AUTHORIZED,
                    &format!("the {claim} claim is not a string"),
                ));
            };
            if found.is_some() {
                return Err(ambiguous(format!(
                    "an API key in the {claim} claim and in the request"
                )));
            }
            found = Some(Cow::Owned(s.clone()));
        }
        let key = found.ok_or_else(|| {
            refusal(
                Reason::MissingToken,
                FailureClass::NoCredential,
                NOT_AUTHORIZED,
                "no API key",
            )
        })?;
        if key.is_empty() {
            return Err(refusal(
                Reason::Malformed,
                FailureClass::Forbidden,
                NOT_AUTHORIZED,
                "empty API key",
            ));
        }
        if key.len() > self.common.max_token {
            return Err(refusal(
                Reason::TokenTooLarge,
                FailureClass::Forbidden,
                NOT_AUTHORIZED,
                &format!("an API key must have 1 to {} bytes", self.common.max_token),
            ));
        }
        Ok(key)
    }

    /// The signature rule's verdict on `entry` for this request.
    fn check_signature(
        &self,
        rule: &SignatureRule,
        key: &str,
        entry: &KeyEntry,
        req: &RequestView<'_>,
    ) -> Result<(), Failure> {
        let bad = |what: &str| {
            refusal(
                Reason::BadSignature,
                FailureClass::Forbidden,
                NOT_AUTHORIZED,
                what,
            )
        };
        let sig = match find_token(std::slice::from_ref(&rule.carrier), req) {
            Intake::Found(s, _) => s,
            Intake::Missing => return Err(bad("no signature")),
            Intake::Malformed(why) => return Err(bad(why)),
            Intake::Ambiguous(why) => {
                return Err(refusal(
                    Reason::AmbiguousToken,
                    FailureClass::InvalidRequest,
                    NOT_AUTHORIZED,
                    &format!("{why}; send the signature once"),
                ))
            }
        };
        let Some(secret) = &entry.secret else {
            return Err(bad("this key has no shared secret"));
        };
        let now = clock::now() as i64;
        signature::verify(rule.algorithm, key.as_bytes(), secret, &sig, now, rule.skew)
            .map(|_| ())
            .map_err(|_| bad("the signature is wrong or outside the allowed time skew"))
    }

    /// Status and expiry of a known key.
    fn check_active(entry: &KeyEntry, now: SystemTime) -> Result<(), Failure> {
        if entry.status != Status::Active {
            return Err(refusal(
                Reason::KeyInactive,
                FailureClass::Forbidden,
                DEVELOPER_INACTIVE,
                "the API key is not active",
            ));
        }
        if entry.expires.is_some_and(|e| e <= now) {
            return Err(refusal(
                Reason::Expired,
                FailureClass::Forbidden,
                DEVELOPER_INACTIVE,
                "the API key has expired",
            ));
        }
        Ok(())
    }

    /// Number of keys loaded.
    pub fn key_count(&self) -> usize {
        self.store.len()
    }
}

#[async_trait]
impl Connector for ApiKeyConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "api_key"
    }

    fn injected_headers(&self) -> &[HeaderName] {
        &self.injected
    }

    fn token_sources(&self) -> &[TokenSource] {
        &self.sources.carriers
    }

    fn forwards_token(&self) -> bool {
        false
    }

    fn warnings(&self) -> Vec<String> {
        if self.unsigned.is_empty() {
            return Vec::new();
        }
        let n = self.unsigned.len();
        let lines: Vec<String> = self
            .unsigned
            .iter()
            .take(10)
            .map(|l| l.to_string())
            .collect();
        vec![format!(
            "connector {}: {n} key{} of {} without a secret_file can never pass its signature check (line{} {}{})",
            self.name,
            if n == 1 { "" } else { "s" },
            self.keys_file,
            if n == 1 { "" } else { "s" },
            lines.join(", "),
            if n > 10 { ", …" } else { "" }
        )]
    }

    fn reads_verified(&self) -> bool {
        !self.sources.claims.is_empty()
    }

    fn refuse(&self, f: Failure, req: &RequestView<'_>) -> Denial {
        self.common.errors.deny(f, req.request_id)
    }

    async fn check(&self, req: &RequestView<'_>) -> Verdict {
        let key = match self.intake(req) {
            Ok(k) => k,
            Err(f) => return self.deny(f, req),
        };
        let Some(entry) = self.store.find(key.as_bytes()) else {
            let f = refusal(
                Reason::UnknownKey,
                FailureClass::Forbidden,
                NOT_AUTHORIZED,
                "unknown API key",
            );
            return self.deny(f, req);
        };
        // The signature before the status: without the secret, nobody
        // learns whether a signed key is active.
        if let Some(rule) = &self.signature {
            if let Err(f) = self.check_signature(rule, &key, entry, req) {
                return self.deny(f, req);
            }
        }
        if let Err(f) = Self::check_active(entry, SystemTime::now()) {
            return self.deny(f, req);
        }
        let set = match self.common.gate.admit(&entry.doc, &self.common.injector) {
            Ok(s) => s,
            Err(f) => return self.deny(f, req),
        };
        let mut edits = strip_carriers(&self.sources.carriers, req, false);
        if let Some(rule) = &self.signature {
            edits.merge(strip_carriers(
                std::slice::from_ref(&rule.carrier),
                req,
                false,
            ));
        }
        edits.set.extend(set);
        edits
            .set
            .extend(self.common.injector.certificate(req.peer_cert));
        edits.verified = Some(entry.doc.clone());
        Verdict::Allow(edits)
    }
}

/// Compiles `key_sources` (default: the `X-Api-Key` header).
fn compile_sources(path: &str, cfgs: &[KeySourceConfig]) -> Result<Sources, ConfigError> {
    let path = format!("{path}.key_sources");
    if cfgs.is_empty() {
        let default = TokenSourceConfig {
            header: Some("X-Api-Key".into()),
            scheme: None,
            cookie: None,
            query: None,
        };
        return Ok(Sources {
            carriers: TokenSource::compile_all(&path, &[default])?,
            claims: Vec::new(),
        });
    }
    let mut carriers = Vec::new();
    let mut claims: Vec<String> = Vec::new();
    for (i, c) in cfgs.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let set = [&c.header, &c.query, &c.cookie, &c.claim]
            .iter()
            .filter(|x| x.is_some())
            .count();
        if set != 1 {
            return Err(ConfigError::new(
                at,
                "set exactly one of header, query, cookie, claim",
            ));
        }
        if let Some(claim) = &c.claim {
            if claim.is_empty() || claims.contains(claim) {
                return Err(ConfigError::new(
                    at,
                    "a claim must be named, and named once",
                ));
            }
            claims.push(claim.clone());
        } else {
            carriers.push(TokenSourceConfig {
                header: c.header.clone(),
                // The whole header value is the key, whatever the header.
                scheme: c.header.as_ref().map(|_| String::new()),
                cookie: c.cookie.clone(),
                query: c.query.clone(),
            });
        }
    }
    let carriers = if carriers.is_empty() {
        Vec::new()
    } else {
        TokenSource::compile_all(&path, &carriers)?
    };
    Ok(Sources { carriers, claims })
}

fn compile_signature(
    path: &str,
    s: &settings::SignatureConfig,
) -> Result<SignatureRule, ConfigError> {
    let skew = s.max_skew.get().as_secs();
    if skew > MAX_SKEW_SECS {
        return Err(ConfigError::new(
            format!("{path}.signature.max_skew"),
            format!("at most {MAX_SKEW_SECS} seconds (1h)"),
        ));
    }
    if s.query.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.signature.query"),
            "must not be empty",
        ));
    }
    Ok(SignatureRule {
        carrier: TokenSource::Query(s.query.clone()),
        algorithm: s.algorithm,
        skew: skew as i64,
    })
}

/// Reads the section's `keys_file` setting without building anything.
fn keys_file_of(settings: &toml::Table) -> Option<PathBuf> {
    settings
        .get("keys_file")
        .and_then(toml::Value::as_str)
        .map(PathBuf::from)
}

#[async_trait]
impl ConnectorFactory for ApiKeyFactory {
    fn kind(&self) -> &'static str {
        "api_key"
    }

    fn settings_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        kit::with_common::<ApiKeySettings>(generator)
    }

    fn source_files(&self, settings: &toml::Table) -> Vec<PathBuf> {
        let Some(file) = keys_file_of(settings) else {
            return Vec::new();
        };
        let mut v = keys::secret_files(&file);
        v.insert(0, file);
        v
    }

    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities {
            decides_offline: true,
        }
    }

    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConfigErrors> {
        let path = ctx.path.as_str();
        let (common, rest) = CommonSettings::split(path, ctx.settings.clone())?;
        let s: ApiKeySettings = deserialize_section(path, rest)?;
        let mut p = Problems::new();
        if !common.token_sources.is_empty() {
            p.push(ConfigError::new(
                format!("{path}.token_sources"),
                "an api_key connector reads its key from key_sources",
            ));
        }
        let defaults = KindDefaults {
            voice: VOICE,
            min_token_size: 16,
            mashery_status: StatusCode::FORBIDDEN,
        };
        let common = p
            .check_all(Common::compile(&ctx.name, path, &common, defaults))
            .map(|mut c| {
                c.errors = c.errors.clone().for_keys(mashery_answer);
                c
            });
        let sources = p.check(compile_sources(path, &s.key_sources));
        let signature = match &s.signature {
            Some(sig) => p.check(compile_signature(path, sig)).map(Some),
            None => Some(None),
        };
        let started = std::time::Instant::now();
        let store = match KeyStore::load(Path::new(&s.keys_file)) {
            Ok(store) => Some(store),
            Err(e) => {
                for msg in e.0 {
                    p.push(ConfigError::new(format!("{path}.keys_file"), msg));
                }
                None
            }
        };
        // Keys without a secret can never pass a signed connector (they are
        // refused per request); a keys file shared with an unsigned
        // connector may hold such keys, so this is a warning for `check`.
        let unsigned = match (&store, &signature) {
            (Some(store), Some(Some(_))) => store.lines_without_secret(),
            _ => Vec::new(),
        };
        let gauge = p.check(self.families.get(path, || {
            let g = prometheus::IntGaugeVec::new(
                prometheus::Opts::new(
                    "gatehouse_api_keys",
                    "API keys loaded from the keys file, by connector.",
                ),
                &["connector"],
            )?;
            ctx.metrics.register(Box::new(g.clone()))?;
            Ok(g)
        }));
        let (common, sources, signature, store, gauge) = p.finish(
            common
                .zip(sources)
                .zip(signature)
                .zip(store)
                .zip(gauge)
                .map(|((((a, b), c), d), e)| (a, b, c, d, e)),
        )?;
        gauge
            .with_label_values(&[ctx.name.as_str()])
            .set(store.len() as i64);
        tracing::info!(
            connector = %ctx.name,
            keys = store.len(),
            ms = started.elapsed().as_millis() as u64,
            "keys file loaded"
        );
        let injected = common.injector.headers().to_vec();
        Ok(Arc::new(ApiKeyConnector {
            name: ctx.name.clone(),
            common,
            sources,
            signature,
            store,
            injected,
            unsigned,
            keys_file: s.keys_file,
        }))
    }
}

#[cfg(test)]
mod tests;
