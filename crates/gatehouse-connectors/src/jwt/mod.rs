//! `kind = "jwt"`: validates JSON Web Tokens against keys from a JWKS (URL,
//! file or inline), PEM public keys or an HMAC secret; checks time claims,
//! issuer, audience, required claims and a claim policy; injects identity
//! headers; caches verified tokens.
//!
//! Check order, on a cache miss: token intake → size → structure (three
//! base64url JSON parts) → `alg` allow-list → key selection (`kid`, key type
//! fitting `alg`; one rate-limited JWKS refetch for an unknown `kid`) →
//! signature → `exp`, `nbf`, `iat`, `max_token_age` → `iss` → `aud` →
//! required claims → policy → header injection. On a cache hit only the
//! time checks run again.

mod alg;
pub mod es512;
mod keys;
mod settings;
mod store;

pub use alg::{Alg, UnknownAlg};
pub use keys::{key_from_pem, parse_jwks, Family, KeyMaterial, KeySet, VerifyKey};
pub use settings::{JwtSettings, PemKeyConfig, SecretEncoding};
pub use store::{KeySource, KeyStore, StoreSettings, MAX_JWKS_BYTES};

use crate::errors::{ErrorResponder, Failure, FailureClass};
use crate::inject::{InjectError, Injector};
use crate::limits::{self, at_most};
use crate::metrics::ReasonCounters;
use crate::outbound::{client, parse_url, LazyFamilies};
use crate::policy::Policy;
use crate::token::{carrier_edits, find_token, Intake, TokenSource};
use crate::{BuildContext, Connector, ConnectorFactory, Denial, Reason, RequestView, Verdict};
use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use gatehouse_config::{deserialize_section, ConfigError, ConfigErrors};
use http::{HeaderName, HeaderValue, StatusCode};
use moka::sync::Cache;
use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Algorithms a connector may allow.
pub const SUPPORTED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "HS256", "HS384", "HS512",
];

/// Longest a verified token stays cached when it has no `exp`.
const NO_EXP_CACHE_TTL: Duration = Duration::from_secs(300);
/// Longest a verified token stays cached at all.
const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// Builds `jwt` connectors; owns the JWT metric families.
#[derive(Default)]
pub struct JwtFactory {
    families: LazyFamilies<Families>,
}

#[derive(Clone)]
struct Families {
    validations: IntCounterVec,
    cache_requests: IntCounterVec,
    cache_entries: IntGaugeVec,
    fetches: IntCounterVec,
    keys: IntGaugeVec,
    age: GaugeVec,
}

impl Families {
    fn new(r: &prometheus::Registry) -> prometheus::Result<Self> {
        let f = Self {
            validations: IntCounterVec::new(
                Opts::new(
                    "gatehouse_jwt_validations_total",
                    "JWT checks, by connector, result (valid/invalid) and reason.",
                ),
                &["connector", "result", "reason"],
            )?,
            cache_requests: IntCounterVec::new(
                Opts::new(
                    "gatehouse_token_cache_requests_total",
                    "Verified-token cache lookups, by connector and result (hit/miss).",
                ),
                &["connector", "result"],
            )?,
            cache_entries: IntGaugeVec::new(
                Opts::new(
                    "gatehouse_token_cache_entries",
                    "Verified tokens cached, by connector.",
                ),
                &["connector"],
            )?,
            fetches: IntCounterVec::new(
                Opts::new(
                    "gatehouse_jwks_fetches_total",
                    "JWKS loads, by connector and result (success/failure).",
                ),
                &["connector", "result"],
            )?,
            keys: IntGaugeVec::new(
                Opts::new(
                    "gatehouse_jwks_keys",
                    "Usable keys in the current key set, by connector.",
                ),
                &["connector"],
            )?,
            age: GaugeVec::new(
                Opts::new(
                    "gatehouse_jwks_age_seconds",
                    "Seconds since the key set was last loaded successfully, by connector.",
                ),
                &["connector"],
            )?,
        };
        r.register(Box::new(f.validations.clone()))?;
        r.register(Box::new(f.cache_requests.clone()))?;
        r.register(Box::new(f.cache_entries.clone()))?;
        r.register(Box::new(f.fetches.clone()))?;
        r.register(Box::new(f.keys.clone()))?;
        r.register(Box::new(f.age.clone()))?;
        Ok(f)
    }
}

struct Handles {
    valid: IntCounter,
    invalid: ReasonCounters,
    hit: IntCounter,
    miss: IntCounter,
}

/// Aborts a background task when dropped (a replaced connector stops its refresher).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a successful verification produced (cached per token).
#[derive(Debug)]
struct Verified {
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    edits: Vec<(HeaderName, HeaderValue)>,
    key: u64,
    ttl: Duration,
}

struct TtlExpiry;

impl moka::Expiry<[u8; 32], Arc<Verified>> for TtlExpiry {
    fn expire_after_create(
        &self,
        _k: &[u8; 32],
        v: &Arc<Verified>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// A `jwt` connector instance.
pub struct JwtConnector {
    name: String,
    algorithms: Vec<Alg>,
    store: Arc<KeyStore>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: f64,
    require_exp: bool,
    max_age: Option<f64>,
    required_claims: Vec<String>,
    policy: Policy,
    injector: Injector,
    claims_header: Option<HeaderName>,
    forward: bool,
    sources: Vec<TokenSource>,
    max_token: usize,
    cache: Option<Cache<[u8; 32], Arc<Verified>>>,
    errors: ErrorResponder,
    injected: Vec<HeaderName>,
    m: Handles,
    _tasks: Vec<AbortOnDrop>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn invalid(reason: Reason, code: &'static str, d: impl Into<String>) -> Failure {
    Failure::new(reason, FailureClass::InvalidToken, code, d)
}

/// Two carriers of a token: 400 `invalid_request`.
pub(crate) fn ambiguous(why: &'static str) -> Failure {
    Failure::new(
        Reason::AmbiguousToken,
        FailureClass::InvalidRequest,
        "InvalidJWTToken",
        format!("{why}; send the token once"),
    )
}

/// Seconds (from claims, possibly huge, negative or fractional) as a
/// duration no longer than `cap`: never panics.
fn bounded_secs(secs: f64, cap: Duration) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
}

fn b64_json(part: &str, what: &str) -> Result<Value, Failure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| {
            invalid(
                Reason::Malformed,
                "InvalidJWTToken",
                format!("{what} is not base64url"),
            )
        })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
        invalid(
            Reason::Malformed,
            "InvalidJWTToken",
            format!("{what} is not JSON"),
        )
    })?;
    if !v.is_object() {
        return Err(invalid(
            Reason::Malformed,
            "InvalidJWTToken",
            format!("{what} is not a JSON object"),
        ));
    }
    Ok(v)
}

/// The `iss` of an unverified payload: `None` when the payload does not
/// decode (the full check reports it), `Some(None)` when it has no string `iss`.
fn unverified_issuer(payload: &str) -> Option<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<Value>,
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let p: Iss = serde_json::from_slice(&bytes).ok()?;
    Some(match p.iss {
        Some(Value::String(s)) => Some(s),
        _ => None,
    })
}

fn numeric(claims: &Value, name: &str, code: &'static str) -> Result<Option<f64>, Failure> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(Reason::Malformed, code, format!("{name} is not a number"))),
        Some(_) => Err(invalid(
            Reason::Malformed,
            code,
            format!("{name} is not a number"),
        )),
    }
}

fn ago(secs: f64) -> String {
    // `as` saturates (NaN → 0); the text is capped at a readable length.
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    humantime::format_duration(Duration::from_secs((secs as u64).min(MAX_AGO_SECS))).to_string()
}

/// Longest span `ago` spells out (about 1000 years).
const MAX_AGO_SECS: u64 = 1000 * 365 * 24 * 3600;

impl JwtConnector {
    /// Time checks (also re-run on every cache hit).
    fn check_times(
        &self,
        exp: Option<f64>,
        nbf: Option<f64>,
        iat: Option<f64>,
        now: f64,
    ) -> Result<(), Failure> {
        let l = self.leeway;
        match exp {
            Some(exp) if now >= exp + l => {
                return Err(invalid(
                    Reason::Expired,
                    "TokenExpired",
                    format!("token expired {} ago", ago(now - exp)),
                ))
            }
            None if self.require_exp => {
                return Err(invalid(
                    Reason::MissingClaim,
                    "ExpIsNonNumeric",
                    "token has no exp claim",
                ))
            }
            _ => {}
        }
        if let Some(nbf) = nbf {
            if now + l < nbf {
                return Err(invalid(
                    Reason::NotYetValid,
                    "TokenNotAllowedBeforeNbf",
                    format!("token not valid for another {}", ago(nbf - now)),
                ));
            }
        }
        if let Some(iat) = iat {
            if iat > now + l {
                return Err(invalid(
                    Reason::IssuedInFuture,
                    "IatGreaterThanCurrentTime",
                    "token issued in the future",
                ));
            }
        }
        if let Some(max) = self.max_age {
            let Some(iat) = iat else {
                return Err(invalid(
                    Reason::MissingClaim,
                    "TokenExpiryOverrideOrIatIsNonNumeric",
                    "token has no iat claim (max_token_age needs one)",
                ));
            };
            if now >= iat + max + l {
                return Err(invalid(
                    Reason::TooOld,
                    "TokenExpired",
                    format!(
                        "token older than the allowed age by {}",
                        ago(now - iat - max)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The full check of a token not in the cache.
    async fn verify(&self, token: &str, now: f64) -> Result<Verified, Failure> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid(
                Reason::Malformed,
                "InvalidJWTToken",
                "token must have three dot-separated parts",
            ));
        };
        let header = b64_json(h, "token header")?;
        let Some(alg_name) = header.get("alg").and_then(Value::as_str) else {
            return Err(invalid(
                Reason::Malformed,
                "AlgorithmNotSupported",
                "token header has no alg",
            ));
        };
        let alg = alg_name
            .parse::<Alg>()
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| {
                invalid(
                    Reason::AlgorithmNotAllowed,
                    "AlgorithmNotSupported",
                    "token algorithm is not allowed",
                )
            })?;
        if header.get("crit").is_some() {
            return Err(invalid(
                Reason::Malformed,
                "InvalidJWTToken",
                "token header has unsupported critical parameters",
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => {
                return Err(invalid(
                    Reason::Malformed,
                    "InvalidJWTToken",
                    "token kid is not a string",
                ))
            }
        };
        let claims = b64_json(p, "token payload")?;

        let unavailable = || {
            Failure::new(
                Reason::KeysUnavailable,
                FailureClass::Unavailable,
                "JsonWebKeyNotAvailable",
                "signing keys are not available",
            )
        };
        let mut keys = self.store.keys().ok_or_else(unavailable)?;
        if let Some(k) = kid {
            if !keys.has_kid(k) && self.store.refetch_for_unknown_kid().await {
                keys = self.store.keys().ok_or_else(unavailable)?;
            }
            if !keys.has_kid(k) && keys.keys.iter().all(|key| key.kid.is_some()) {
                return Err(invalid(
                    Reason::UnknownKey,
                    "JsonWebKeyNotAvailable",
                    "no key with the token's kid",
                ));
            }
        }
        let message = &token.as_bytes()[..h.len() + 1 + p.len()];
        let mut tried = 0;
        let mut verified_by = None;
        for key in keys.candidates(alg, kid) {
            tried += 1;
            if key.verify(alg, sig, message) {
                verified_by = Some(key.fingerprint);
                break;
            }
        }
        let Some(key) = verified_by else {
            return Err(if tried == 0 {
                invalid(
                    Reason::UnknownKey,
                    "SignatureInstanceAlgorithmUnavailable",
                    "no key fits the token's algorithm",
                )
            } else {
                invalid(
                    Reason::BadSignature,
                    "InvalidSignature",
                    "signature does not verify",
                )
            });
        };

        let exp = numeric(&claims, "exp", "ExpIsNonNumeric")?;
        let nbf = numeric(&claims, "nbf", "NbfIsNonNumeric")?;
        let iat = numeric(&claims, "iat", "IatIsNonNumeric")?;
        if let (Some(i), Some(e)) = (iat, exp) {
            if i > e {
                return Err(invalid(
                    Reason::Malformed,
                    "IatGreaterThanExpTime",
                    "token iat is after its exp",
                ));
            }
        }
        self.check_times(exp, nbf, iat, now)?;

        if !self.issuers.is_empty() {
            match claims.get("iss") {
                None => {
                    return Err(invalid(
                        Reason::IssuerNotAllowed,
                        "IssNotConfiguredInJWTToken",
                        "token has no iss claim",
                    ))
                }
                Some(Value::String(iss)) if self.issuers.iter().any(|i| i == iss) => {}
                Some(Value::String(_)) => {
                    return Err(invalid(
                        Reason::IssuerNotAllowed,
                        "IssNotAuthorized",
                        "token issuer is not allowed",
                    ))
                }
                Some(_) => {
                    return Err(invalid(
                        Reason::IssuerNotAllowed,
                        "InvalidIssWithMultipleValues",
                        "token iss is not a string",
                    ))
                }
            }
        }
        if !self.audiences.is_empty() {
            let ok = match claims.get("aud") {
                None => {
                    return Err(invalid(
                        Reason::AudienceNotAllowed,
                        "AudNotConfiguredInJWTToken",
                        "token has no aud claim",
                    ))
                }
                Some(Value::String(a)) => self.audiences.contains(a),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| self.audiences.iter().any(|w| w == a)),
                Some(_) => false,
            };
            if !ok {
                return Err(invalid(
                    Reason::AudienceNotAllowed,
                    "AudIsNotAuthorized",
                    "token audience is not allowed",
                ));
            }
        }
        for c in &self.required_claims {
            if claims.get(c).is_none_or(Value::is_null) {
                return Err(invalid(
                    Reason::MissingClaim,
                    "NonStandardClaimIsNotAuthorized",
                    format!("token has no {c} claim"),
                ));
            }
        }
        if let Err(f) = self.policy.evaluate(&claims) {
            return Err(Failure::new(
                Reason::PolicyDenied,
                FailureClass::InsufficientScope,
                "NonStandardClaimIsNotAuthorized",
                f.description,
            ));
        }
        let mut edits = self.injector.apply(&claims).map_err(|e| match e {
            InjectError::Missing(c) => Failure::new(
                Reason::MissingClaim,
                FailureClass::InsufficientScope,
                "NonStandardClaimIsNotAuthorized",
                format!("token has no {c} claim"),
            ),
            InjectError::InvalidValue(h) => Failure::new(
                Reason::InvalidHeaderValue,
                FailureClass::InvalidToken,
                "InvalidJWTToken",
                format!("claim for {h} is not a valid header value"),
            ),
        })?;
        if let Some(hn) = &self.claims_header {
            if let Ok(v) = HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(claims.to_string())) {
                edits.push((hn.clone(), v));
            }
        }

        // Claims can hold any JSON number (1e20, -1e300): saturate, never panic.
        let mut ttl = exp.map_or(NO_EXP_CACHE_TTL, |e| {
            bounded_secs(e + self.leeway - now, MAX_CACHE_TTL)
        });
        if let (Some(max), Some(i)) = (self.max_age, iat) {
            ttl = ttl.min(bounded_secs(i + max + self.leeway - now, MAX_CACHE_TTL));
        }
        Ok(Verified {
            exp,
            nbf,
            iat,
            edits,
            key,
            ttl: ttl.min(MAX_CACHE_TTL),
        })
    }

    /// Caches a verified token, unless its key was removed from the key set
    /// since it was verified (the purge of that key must not be undone).
    fn cache_verified(&self, key: [u8; 32], v: Verified) -> Arc<Verified> {
        let v = Arc::new(v);
        if let Some(c) = &self.cache {
            self.store
                .insert_if_current(v.key, || c.insert(key, v.clone()));
        }
        v
    }

    fn deny(&self, f: Failure, req: &RequestView<'_>) -> Verdict {
        self.m.invalid.inc(f.reason);
        tracing::debug!(connector = %self.name, reason = %f.reason, "{}", f.description);
        Verdict::Deny(self.errors.deny(f, req.request_id))
    }

    /// The current key set (for tools and tests).
    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.store
    }
}

#[async_trait]
impl Connector for JwtConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "jwt"
    }

    fn injected_headers(&self) -> &[HeaderName] {
        &self.injected
    }

    /// In an any-of group, a token whose unverified `iss` is not among
    /// `issuers` is not this connector's: refused without key lookup or
    /// signature check (not counted as a validation).
    fn precheck(&self, req: &RequestView<'_>) -> Option<Denial> {
        if self.issuers.is_empty() {
            return None;
        }
        let Intake::Found(token, _) = find_token(&self.sources, req) else {
            return None;
        };
        if token.len() > self.max_token {
            return None;
        }
        let iss = unverified_issuer(token.split('.').nth(1)?)?;
        if iss.is_some_and(|i| self.issuers.contains(&i)) {
            return None;
        }
        Some(self.errors.deny(
            invalid(
                Reason::IssuerNotAllowed,
                "IssNotAuthorized",
                "token issuer is not among this connector's issuers",
            ),
            req.request_id,
        ))
    }

    async fn check(&self, req: &RequestView<'_>) -> Verdict {
        let (token, source) = match find_token(&self.sources, req) {
            Intake::Found(t, i) => (t, i),
            Intake::Missing => {
                return self.deny(
                    Failure::new(
                        Reason::MissingToken,
                        FailureClass::NoCredential,
                        "JWTTokenNotFound",
                        "no bearer token",
                    ),
                    req,
                )
            }
            Intake::Malformed(why) => {
                return self.deny(invalid(Reason::Malformed, "InvalidJWTToken", why), req)
            }
            Intake::Ambiguous(why) => return self.deny(ambiguous(why), req),
        };
        let token: &str = &token;
        if token.len() > self.max_token {
            return self.deny(
                invalid(
                    Reason::TokenTooLarge,
                    "InvalidJWTToken",
                    format!("token larger than {} bytes", self.max_token),
                ),
                req,
            );
        }
        let now = now_secs();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let verified = match self.cache.as_ref().and_then(|c| c.get(&key)) {
            Some(v) => {
                self.m.hit.inc();
                if let Err(f) = self.check_times(v.exp, v.nbf, v.iat, now) {
                    if let Some(c) = &self.cache {
                        c.invalidate(&key);
                    }
                    return self.deny(f, req);
                }
                v
            }
            None => {
                if self.cache.is_some() {
                    self.m.miss.inc();
                }
                match self.verify(token, now).await {
                    Ok(v) => self.cache_verified(key, v),
                    Err(f) => return self.deny(f, req),
                }
            }
        };
        self.m.valid.inc();
        let mut edits = carrier_edits(&self.sources[source], req, self.forward);
        edits.set.extend(verified.edits.iter().cloned());
        Verdict::Allow(edits)
    }
}

fn config_err(path: &str, key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("{path}.{key}"), msg)
}

#[async_trait]
impl ConnectorFactory for JwtFactory {
    fn kind(&self) -> &'static str {
        "jwt"
    }

    fn source_files(&self, settings: &toml::Table) -> Vec<std::path::PathBuf> {
        deserialize_section::<JwtSettings>("", settings.clone())
            .map(|s| s.source_files())
            .unwrap_or_default()
    }

    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities {
            decides_offline: true,
        }
    }

    fn settings_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<JwtSettings>()
    }

    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConfigErrors> {
        let c: Arc<dyn Connector> = self.build_jwt(ctx).await?;
        Ok(c)
    }
}

impl JwtFactory {
    /// Builds a connector (with its concrete type, for tests).
    pub(crate) async fn build_jwt(
        &self,
        ctx: BuildContext,
    ) -> Result<Arc<JwtConnector>, ConfigError> {
        let path = ctx.path.as_str();
        let s: JwtSettings = deserialize_section(path, ctx.settings.clone())?;

        // Algorithms.
        if s.algorithms.is_empty() {
            return Err(config_err(
                path,
                "algorithms",
                "list at least one algorithm (e.g. [\"RS256\"])",
            ));
        }
        let mut algorithms = Vec::new();
        for (i, a) in s.algorithms.iter().enumerate() {
            if a.eq_ignore_ascii_case("none") {
                return Err(config_err(
                    path,
                    &format!("algorithms[{i}]"),
                    "\"none\" can never be allowed",
                ));
            }
            let alg = SUPPORTED_ALGORITHMS
                .contains(&a.as_str())
                .then(|| a.parse::<Alg>().ok())
                .flatten()
                .ok_or_else(|| {
                    config_err(
                        path,
                        &format!("algorithms[{i}]"),
                        format!(
                            "unsupported algorithm \"{a}\" (supported: {})",
                            SUPPORTED_ALGORITHMS.join(", ")
                        ),
                    )
                })?;
            algorithms.push(alg);
        }
        let hmac = algorithms
            .iter()
            .any(|a| keys::family_of(*a) == Family::Hmac);
        let asym = algorithms
            .iter()
            .any(|a| matches!(keys::family_of(*a), Family::Rsa | Family::Ec | Family::Ed));
        if hmac && asym {
            return Err(config_err(
                path,
                "algorithms",
                "HMAC (HS*) and public-key algorithms cannot be mixed in one connector",
            ));
        }

        // Key sources.
        let jwks_sources = [
            s.jwks_url.is_some(),
            s.jwks_file.is_some(),
            s.jwks.is_some(),
            !s.public_keys.is_empty(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let secret_sources = [s.secret.is_some(), s.secret_file.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if hmac {
            if jwks_sources > 0 {
                return Err(config_err(path, "algorithms", "HS* algorithms verify with `secret` or `secret_file`, not with JWKS or public keys"));
            }
            if secret_sources != 1 {
                return Err(ConfigError::new(
                    path,
                    "give exactly one of `secret` or `secret_file` for HS* algorithms",
                ));
            }
        } else {
            if secret_sources > 0 {
                return Err(config_err(
                    path,
                    if s.secret.is_some() {
                        "secret"
                    } else {
                        "secret_file"
                    },
                    "a secret only verifies HS* algorithms",
                ));
            }
            if jwks_sources != 1 {
                return Err(ConfigError::new(
                    path,
                    "give exactly one key source: `jwks_url`, `jwks_file`, `jwks` or `public_keys`",
                ));
            }
        }

        let handles_f = self.families.get(path, || Families::new(&ctx.metrics))?;
        let validations_f = handles_f.validations.clone();
        let name = ctx.name.clone();
        let fetches_ok = handles_f.fetches.with_label_values(&[&name, "success"]);
        let fetches_err = handles_f.fetches.with_label_values(&[&name, "failure"]);
        let keys_gauge = handles_f.keys.with_label_values(&[&name]);
        let age_gauge: Gauge = handles_f.age.with_label_values(&[&name]);

        // Verified-token cache.
        let cache = (s.token_cache_size > 0).then(|| {
            Cache::builder()
                .max_capacity(s.token_cache_size)
                .expire_after(TtlExpiry)
                .support_invalidation_closures()
                .build()
        });

        let leeway = at_most(path, "leeway", s.leeway.get(), limits::MAX_LEEWAY)?;
        let max_age = match s.max_token_age {
            None => None,
            Some(d) if d.get().is_zero() => {
                return Err(config_err(path, "max_token_age", "must be more than 0s"))
            }
            Some(d) => Some(at_most(
                path,
                "max_token_age",
                d.get(),
                limits::MAX_TOKEN_AGE,
            )?),
        };
        let settings = StoreSettings {
            refresh: at_most(
                path,
                "jwks_refresh",
                s.jwks_refresh.get(),
                limits::MAX_JWKS_REFRESH,
            )?
            .max(Duration::from_secs(1)),
            min_refetch_interval: at_most(
                path,
                "jwks_min_refetch_interval",
                s.jwks_min_refetch_interval.get(),
                limits::MAX_JWKS_REFRESH,
            )?,
            max_stale: at_most(
                path,
                "jwks_max_stale",
                s.jwks_max_stale.get(),
                limits::MAX_JWKS_STALE,
            )?,
        };
        let jwks_timeout = at_most(
            path,
            "jwks_timeout",
            s.jwks_timeout.get(),
            limits::MAX_IDP_TIMEOUT,
        )?;
        let source = match (&s.jwks_url, &s.jwks_file) {
            (Some(u), _) => {
                let url = parse_url(path, "jwks_url", u)?;
                let client = client(path, jwks_timeout, s.http_proxy.as_deref())?;
                KeySource::Url { url, client }
            }
            (None, Some(f)) => KeySource::File(f.clone()),
            _ => KeySource::Static,
        };
        let kg = keys_gauge.clone();
        let observer: store::FetchObserver = Arc::new(move |ok, n| {
            if ok { &fetches_ok } else { &fetches_err }.inc();
            kg.set(n as i64);
        });
        let cache_for_removal = cache.clone();
        let cname = name.clone();
        let on_removed: Arc<dyn Fn(Vec<u64>) + Send + Sync> = Arc::new(move |removed: Vec<u64>| {
            tracing::info!(connector = %cname, removed = removed.len(), "keys removed from the key set; their cached tokens are dropped");
            if let Some(c) = &cache_for_removal {
                let _ =
                    c.invalidate_entries_if(move |_, v: &Arc<Verified>| removed.contains(&v.key));
            }
        });
        let store = Arc::new(KeyStore::new(
            &name,
            source,
            settings.clone(),
            observer,
            on_removed,
        ));

        // Static keys.
        if let Some(text) = &s.jwks {
            let (set, skipped) =
                parse_jwks(text.as_bytes()).map_err(|e| config_err(path, "jwks", e))?;
            for sk in skipped {
                tracing::info!("{path}.jwks: {sk}; skipped");
            }
            if set.keys.is_empty() {
                return Err(config_err(path, "jwks", "no usable signature key"));
            }
            keys_gauge.set(set.keys.len() as i64);
            store.set(set);
        }
        if !s.public_keys.is_empty() {
            let mut set = KeySet::default();
            for (i, pk) in s.public_keys.iter().enumerate() {
                let p = format!("public_keys[{i}]");
                let pem = match (&pk.pem_file, &pk.pem) {
                    (Some(f), None) => crate::files::read_file(f)
                        .map_err(|e| config_err(path, &format!("{p}.pem_file"), e))?,
                    (None, Some(t)) => t.clone().into_bytes(),
                    _ => return Err(config_err(path, &p, "give exactly one of pem_file or pem")),
                };
                set.keys.push(
                    keys::key_from_pem(pk.kid.clone(), &pem)
                        .map_err(|e| config_err(path, &p, e))?,
                );
            }
            keys_gauge.set(set.keys.len() as i64);
            store.set(set);
        }
        if hmac {
            let (raw, key) = match (&s.secret, &s.secret_file) {
                (Some(t), _) => (t.clone().into_bytes(), "secret"),
                (_, Some(f)) => (
                    crate::files::read_file(f).map_err(|e| config_err(path, "secret_file", e))?,
                    "secret_file",
                ),
                (None, None) => {
                    return Err(ConfigError::new(
                        path,
                        "give exactly one of `secret` or `secret_file` for HS* algorithms",
                    ))
                }
            };
            let secret = match s.secret_encoding {
                SecretEncoding::Utf8 => {
                    let mut r = raw;
                    while r.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        r.pop();
                    }
                    r
                }
                SecretEncoding::Base64 => {
                    let t = String::from_utf8_lossy(&raw).trim().to_string();
                    STANDARD
                        .decode(&t)
                        .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
                        .map_err(|_| config_err(path, key, "not valid base64"))?
                }
            };
            let need = algorithms
                .iter()
                .map(|a| match a {
                    Alg::HS384 => 48,
                    Alg::HS512 => 64,
                    _ => 32,
                })
                .max()
                .unwrap_or(32);
            if secret.len() < need {
                return Err(config_err(path, key, format!("secret is {} bytes; the allowed algorithms need at least {need} (RFC 7518 §3.2)", secret.len())));
            }
            keys_gauge.set(1);
            store.set(KeySet {
                keys: vec![keys::key_from_secret(&secret)],
            });
        }

        // Claims, policy, injection, intake, errors.
        let policy = Policy::compile(&format!("{path}.policy"), &s.policy)?;
        let injector = Injector::compile(&format!("{path}.inject_headers"), &s.inject_headers)?;
        let claims_header = match &s.forward_claims_header {
            None => None,
            Some(h) => Some(HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                config_err(
                    path,
                    "forward_claims_header",
                    format!("\"{h}\" is not a valid header name"),
                )
            })?),
        };
        let sources = TokenSource::compile_all(&format!("{path}.token_sources"), &s.token_sources)?;
        if s.max_token_size < 64 || s.max_token_size > 1024 * 1024 {
            return Err(config_err(
                path,
                "max_token_size",
                "must be between 64 and 1048576 bytes",
            ));
        }
        for (i, c) in s.required_claims.iter().enumerate() {
            if c.is_empty() {
                return Err(config_err(
                    path,
                    &format!("required_claims[{i}]"),
                    "must not be empty",
                ));
            }
        }
        let realm = s.realm.clone().unwrap_or_else(|| name.clone());
        let errors = ErrorResponder::new(
            path,
            &realm,
            s.error_style,
            s.custom_error.as_ref(),
            StatusCode::FORBIDDEN,
        )?;
        let mut injected = injector.headers().to_vec();
        if let Some(h) = &claims_header {
            injected.push(h.clone());
        }

        // Initial fetch and background refresh.
        let mut tasks = Vec::new();
        if store.is_dynamic() {
            let loaded = match store.load().await {
                Ok(_)
                    if s.jwks_file.is_some() && store.keys().is_none_or(|k| k.keys.is_empty()) =>
                {
                    Err("no usable signature key".to_string())
                }
                other => other.map(|_| ()),
            };
            if let Err(e) = loaded {
                let key = if s.jwks_url.is_some() {
                    "jwks_url"
                } else {
                    "jwks_file"
                };
                // A local file is configuration, not a network dependency: a
                // missing or broken one refuses the load (and a reload keeps
                // the previous keys).
                if s.jwks_required_at_load || s.jwks_file.is_some() {
                    return Err(config_err(
                        path,
                        key,
                        if s.jwks_file.is_some() {
                            format!("cannot load keys: {e}")
                        } else {
                            format!("cannot load keys: {e} (jwks_required_at_load = true)")
                        },
                    ));
                }
                tracing::warn!("{path}: cannot load keys yet ({e}); requests are refused with keys_unavailable until keys arrive");
            }
            let first = if store.keys().is_some() {
                settings.refresh
            } else {
                Duration::from_secs(1)
            };
            tasks.push(AbortOnDrop(tokio::spawn(store.clone().refresh_loop(first))));
        }
        let entries = handles_f.cache_entries.with_label_values(&[&name]);
        // Maintenance, once a second: cache housekeeping and the gauges that
        // are read, not counted (kept off the request path).
        let (st, cache_m) = (store.clone(), cache.clone());
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if st.is_dynamic() {
                    if let Some(a) = st.age() {
                        age_gauge.set(a.as_secs_f64());
                    }
                }
                if let Some(c) = &cache_m {
                    c.run_pending_tasks();
                    entries.set(c.entry_count() as i64);
                }
            }
        })));

        let m = Handles {
            valid: validations_f.with_label_values(&[&name, "valid", "none"]),
            invalid: ReasonCounters::new(validations_f, &[&name, "invalid"]),
            hit: handles_f.cache_requests.with_label_values(&[&name, "hit"]),
            miss: handles_f.cache_requests.with_label_values(&[&name, "miss"]),
        };
        Ok(Arc::new(JwtConnector {
            name,
            algorithms,
            store,
            issuers: s.issuers,
            audiences: s.audiences,
            leeway: leeway.as_secs_f64(),
            require_exp: s.require_exp,
            max_age: max_age.map(|d| d.as_secs_f64()),
            required_claims: s.required_claims,
            policy,
            injector,
            claims_header,
            forward: s.forward_authorization,
            sources,
            max_token: s.max_token_size,
            cache,
            errors,
            injected,
            m,
            _tasks: tasks,
        }))
    }
}

#[cfg(test)]
mod tests;
