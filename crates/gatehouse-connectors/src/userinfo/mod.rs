//! `kind = "oidc_userinfo"`: validates a bearer token (opaque access token or
//! ID token) by calling the identity provider's userinfo endpoint — chosen
//! per request among up to ten regional endpoints by a request header — and
//! enriches the upstream request from the userinfo JSON.
//!
//! Flow: token intake → endpoint selection → cache (fresh hit, negative hit,
//! or stale-if-error) → one IdP call per (endpoint, token) at a time
//! (single-flight) → 200 + JSON object = valid → required claims → policy →
//! header injection (per-region map or the flat one).

mod settings;

pub use settings::{ErrorMetadataLocation, RegionMatch, UserinfoSettings};

use crate::claims::{render, ClaimPath};
use crate::errors::{ErrorResponder, ErrorStyle, Failure, FailureClass};
use crate::inject::{InjectError, Injector};
use crate::limits::{self, at_most};
use crate::outbound::{client, parse_url, read_limited, LazyFamilies};
use crate::policy::Policy;
use crate::token::{find_token, Intake, TokenSource};
use crate::{
    BuildContext, Connector, ConnectorFactory, Denial, HeaderEdits, Reason, Rejection, RequestView,
    Verdict,
};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use gatehouse_config::{deserialize_section, ConfigError};
use http::{HeaderName, HeaderValue, StatusCode};
use moka::sync::Cache;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;

/// Most userinfo endpoints one connector may have (default included).
pub const MAX_ENDPOINTS: usize = 10;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Builds `oidc_userinfo` connectors; owns their metric families.
#[derive(Default)]
pub struct UserinfoFactory {
    families: LazyFamilies<Families>,
}

#[derive(Clone)]
struct Families {
    requests: IntCounterVec,
    duration: HistogramVec,
    cache: IntCounterVec,
    inflight: IntGaugeVec,
}

impl Families {
    fn new(r: &prometheus::Registry) -> prometheus::Result<Self> {
        let f = Self {
            requests: IntCounterVec::new(
                Opts::new("gatehouse_userinfo_requests_total", "Userinfo calls, by connector, endpoint (region key or default) and result (ok/rejected/error)."),
                &["connector", "endpoint", "result"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new("gatehouse_userinfo_duration_seconds", "Userinfo call latency, by connector and endpoint.").buckets(LATENCY_BUCKETS.to_vec()),
                &["connector", "endpoint"],
            )?,
            cache: IntCounterVec::new(
                Opts::new("gatehouse_userinfo_cache_requests_total", "Userinfo cache lookups, by connector and result (hit/miss/negative_hit/stale)."),
                &["connector", "result"],
            )?,
            inflight: IntGaugeVec::new(Opts::new("gatehouse_userinfo_inflight", "Userinfo calls in flight, by connector."), &["connector"])?,
        };
        r.register(Box::new(f.requests.clone()))?;
        r.register(Box::new(f.duration.clone()))?;
        r.register(Box::new(f.cache.clone()))?;
        r.register(Box::new(f.inflight.clone()))?;
        Ok(f)
    }
}

struct Endpoint {
    label: String,
    url: reqwest::Url,
    injector: Injector,
    ok: IntCounter,
    rejected: IntCounter,
    error: IntCounter,
    duration: Histogram,
}

/// What one IdP answer means (cached per endpoint and token).
#[derive(Debug, Clone)]
enum Outcome {
    /// Valid: the header edits to apply.
    Valid(Vec<(HeaderName, HeaderValue)>),
    /// Valid token, refused by required claims, policy or injection.
    Denied(Failure),
    /// The IdP rejected the token (negatively cached).
    Rejected(IdpRejection),
    /// The IdP could not answer (not cached).
    Unavailable(String),
}

/// How an IdP rejection is answered.
#[derive(Debug, Clone)]
enum IdpRejection {
    /// The IdP's status and challenge, relayed as they are.
    Relay(Denial),
    /// Gatehouse's own answer, rendered per request (it may carry the request id).
    Own(Failure),
}

struct Entry {
    outcome: Outcome,
    fresh_until: Instant,
    keep_until: Instant,
}

struct KeepUntil;

impl moka::Expiry<(u8, [u8; 32]), Arc<Entry>> for KeepUntil {
    fn expire_after_create(
        &self,
        _k: &(u8, [u8; 32]),
        v: &Arc<Entry>,
        now: Instant,
    ) -> Option<Duration> {
        Some(v.keep_until.saturating_duration_since(now))
    }
}

type Key = (u8, [u8; 32]);

/// An `oidc_userinfo` connector instance.
pub struct UserinfoConnector {
    name: String,
    method: reqwest::Method,
    post_body: bool,
    region_header: Option<HeaderName>,
    region_ci: bool,
    by_region: HashMap<String, usize>,
    default: Option<usize>,
    endpoints: Vec<Endpoint>,
    client: reqwest::Client,
    max_body: usize,
    cache: Option<Cache<Key, Arc<Entry>>>,
    cache_ttl: Duration,
    negative_ttl: Duration,
    stale: Option<Duration>,
    inflight_calls: Mutex<HashMap<Key, Arc<OnceCell<Outcome>>>>,
    required_claims: Vec<String>,
    policy: Policy,
    injected: Vec<HeaderName>,
    forward: bool,
    passthrough: bool,
    meta_location: Option<ErrorMetadataLocation>,
    meta_header: Option<HeaderName>,
    meta_path: Option<ClaimPath>,
    idp_error_status: StatusCode,
    style: ErrorStyle,
    realm: String,
    sources: Vec<TokenSource>,
    max_token: usize,
    errors: ErrorResponder,
    hit: IntCounter,
    miss: IntCounter,
    negative_hit: IntCounter,
    stale_hit: IntCounter,
    inflight: IntGauge,
}

fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The `exp` of a JWT-shaped token, read without verification (only used to
/// cap how long an answer is cached and served stale).
fn unverified_exp(token: &str) -> Option<f64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_f64()
}

/// How long an answer stays fresh, and how long it is kept (served stale
/// while the IdP fails), from now: `ttl`, plus `stale` for valid answers,
/// neither past the token's `exp` (seconds left until it, possibly negative
/// or huge). `None`: not cached.
fn cache_window(
    ttl: Duration,
    stale: Option<Duration>,
    exp_in: Option<f64>,
) -> Option<(Duration, Duration)> {
    let until_exp = exp_in.map(|left| {
        if left.is_nan() || left <= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(left).unwrap_or(Duration::MAX)
        }
    });
    let fresh = until_exp.map_or(ttl, |e| ttl.min(e));
    if fresh.is_zero() {
        return None;
    }
    let keep = fresh.saturating_add(stale.unwrap_or(Duration::ZERO));
    Some((fresh, until_exp.map_or(keep, |e| keep.min(e))))
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl UserinfoConnector {
    fn select(&self, req: &RequestView<'_>) -> Option<usize> {
        let region = self
            .region_header
            .as_ref()
            .and_then(|h| req.headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let found = region.and_then(|r| {
            if self.region_ci {
                self.by_region.get(&r.to_ascii_lowercase()).copied()
            } else {
                self.by_region.get(r).copied()
            }
        });
        found.or(self.default)
    }

    fn unavailable(&self, why: &str) -> Failure {
        Failure::new(
            Reason::IdpUnavailable,
            FailureClass::Unavailable,
            "TargetEndpointError",
            format!("identity provider unavailable: {why}"),
        )
    }

    /// Builds the response relaying an IdP rejection.
    fn idp_rejection(
        &self,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> IdpRejection {
        let default = format!(
            "Error Response retrieved from UserInfo endpoint. Response Code - {}",
            status.as_u16()
        );
        let text = match self.meta_location {
            Some(ErrorMetadataLocation::ResponseHeaders) => self
                .meta_header
                .as_ref()
                .and_then(|h| headers.get(h.as_str()))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or(default),
            Some(ErrorMetadataLocation::ResponsePayload) => match &self.meta_path {
                Some(p) => serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| p.first(&v).and_then(render))
                    .unwrap_or(default),
                None if !body.is_empty() => String::from_utf8_lossy(body).into_owned(),
                None => default,
            },
            None => default,
        };
        if !self.passthrough {
            return IdpRejection::Own(Failure::new(
                Reason::IdpRejected,
                FailureClass::InvalidToken,
                "TargetEndpointError",
                "the identity provider rejected the token",
            ));
        }
        let challenge = headers
            .get("www-authenticate")
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
        let mut out_headers = Vec::new();
        if let Some(c) = challenge {
            out_headers.push((http::header::WWW_AUTHENTICATE, c));
        }
        let failure = Failure::new(
            Reason::IdpRejected,
            FailureClass::InvalidToken,
            "TargetEndpointError",
            format!(
                "the identity provider rejected the token (status {})",
                status.as_u16()
            ),
        );
        let rejection = match self.style {
            ErrorStyle::Mashery => Rejection {
                status,
                reason: Reason::IdpRejected,
                headers: out_headers,
                content_type: HeaderValue::from_static("text/html; charset=utf-8"),
                body: Bytes::from(format!("<h1>{}</h1>", html_escape(&text))),
            },
            ErrorStyle::Rfc6750 => {
                if out_headers.is_empty() && status == StatusCode::UNAUTHORIZED {
                    let mut r = Rejection::bearer(
                        status,
                        Reason::IdpRejected,
                        &self.realm,
                        "invalid_token",
                        "the identity provider rejected the token",
                    );
                    out_headers = std::mem::take(&mut r.headers);
                }
                let error = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| "invalid_token".to_string());
                Rejection {
                    status,
                    reason: Reason::IdpRejected,
                    headers: out_headers,
                    content_type: HeaderValue::from_static("application/json"),
                    body: Bytes::from(
                        serde_json::json!({"error": error, "error_description": text}).to_string(),
                    ),
                }
            }
        };
        IdpRejection::Relay(Denial::new(failure, rejection))
    }

    /// Judges a valid userinfo document.
    fn judge(&self, ep: &Endpoint, doc: &Value) -> Outcome {
        for c in &self.required_claims {
            if doc.get(c).is_none_or(Value::is_null) {
                return Outcome::Denied(Failure::new(
                    Reason::MissingClaim,
                    FailureClass::InsufficientScope,
                    "PolicyFailure",
                    format!("userinfo has no {c} claim"),
                ));
            }
        }
        if let Err(f) = self.policy.evaluate(doc) {
            return Outcome::Denied(Failure::new(
                Reason::PolicyDenied,
                FailureClass::InsufficientScope,
                "PolicyFailure",
                f.description,
            ));
        }
        match ep.injector.apply(doc) {
            Ok(edits) => Outcome::Valid(edits),
            Err(InjectError::Missing(c)) => Outcome::Denied(Failure::new(
                Reason::MissingClaim,
                FailureClass::InsufficientScope,
                "PolicyFailure",
                format!("userinfo has no {c} claim"),
            )),
            Err(InjectError::InvalidValue(h)) => Outcome::Denied(Failure::new(
                Reason::InvalidHeaderValue,
                FailureClass::InsufficientScope,
                "PolicyFailure",
                format!("userinfo value for {h} is not a valid header value"),
            )),
        }
    }

    /// One call to the IdP.
    async fn call(&self, idx: usize, token: &str) -> Outcome {
        let ep = &self.endpoints[idx];
        self.inflight.inc();
        let start = Instant::now();
        let mut rb = self
            .client
            .request(self.method.clone(), ep.url.clone())
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::ACCEPT, "application/json");
        if self.post_body {
            rb = rb
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(format!("access_token={}", form_encode(token)));
        }
        let result = rb.send().await;
        let outcome = match result {
            Err(e) => Outcome::Unavailable(if e.is_timeout() {
                "timed out".into()
            } else {
                "unreachable".into()
            }),
            Ok(mut resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = read_limited(&mut resp, self.max_body).await;
                match (status.as_u16(), body) {
                    (_, Err(e)) => Outcome::Unavailable(e),
                    (200, Ok(body)) => {
                        let ct = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_ascii_lowercase();
                        if ct.starts_with("application/jwt") {
                            Outcome::Unavailable(
                                "signed (application/jwt) userinfo answers are not supported"
                                    .into(),
                            )
                        } else if !(ct.starts_with("application/json") || ct.contains("+json")) {
                            Outcome::Unavailable("userinfo answer is not JSON".into())
                        } else {
                            match serde_json::from_slice::<Value>(&body) {
                                Ok(doc) if doc.is_object() => self.judge(ep, &doc),
                                _ => Outcome::Unavailable(
                                    "userinfo answer is not a JSON object".into(),
                                ),
                            }
                        }
                    }
                    (400..=499, Ok(body)) => Outcome::Rejected(self.idp_rejection(
                        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::UNAUTHORIZED),
                        &headers,
                        &body,
                    )),
                    (300..=399, Ok(_)) => {
                        Outcome::Unavailable(crate::outbound::redirect_refused(status, &headers))
                    }
                    (s, Ok(_)) => Outcome::Unavailable(format!("answered {s}")),
                }
            }
        };
        ep.duration.observe(start.elapsed().as_secs_f64());
        match &outcome {
            Outcome::Valid(_) | Outcome::Denied(_) => ep.ok.inc(),
            Outcome::Rejected(_) => ep.rejected.inc(),
            Outcome::Unavailable(why) => {
                ep.error.inc();
                tracing::warn!(connector = %self.name, endpoint = %ep.label, "userinfo call failed: {why}");
            }
        }
        self.inflight.dec();
        outcome
    }

    /// Calls the IdP once for all concurrent requests with the same key, and
    /// caches what can be cached.
    async fn fetch(&self, key: Key, idx: usize, token: &str) -> Outcome {
        let cell = {
            let mut m = self
                .inflight_calls
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            m.entry(key)
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        let outcome = cell
            .get_or_init(|| async {
                let o = self.call(idx, token).await;
                self.store(key, token, &o);
                o
            })
            .await
            .clone();
        let mut m = self
            .inflight_calls
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if m.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            m.remove(&key);
        }
        outcome
    }

    fn store(&self, key: Key, token: &str, o: &Outcome) {
        let Some(cache) = &self.cache else { return };
        let ttl = match o {
            Outcome::Valid(_) | Outcome::Denied(_) => self.cache_ttl,
            Outcome::Rejected(_) => self.negative_ttl,
            Outcome::Unavailable(_) => return,
        };
        let now = Instant::now();
        let stale = match o {
            Outcome::Valid(_) => self.stale,
            _ => None,
        };
        let exp_in = unverified_exp(token).map(|e| e - unix_now_f64());
        let Some((fresh, keep)) = cache_window(ttl, stale, exp_in) else {
            return;
        };
        let (Some(fresh_until), Some(keep_until)) = (now.checked_add(fresh), now.checked_add(keep))
        else {
            return;
        };
        cache.insert(
            key,
            Arc::new(Entry {
                outcome: o.clone(),
                fresh_until,
                keep_until,
            }),
        );
    }

    fn answer(&self, o: &Outcome, req: &RequestView<'_>) -> Verdict {
        match o {
            Outcome::Valid(edits) => {
                let mut e = HeaderEdits::none();
                if !self.forward {
                    e.remove.push(http::header::AUTHORIZATION);
                }
                e.set.extend(edits.iter().cloned());
                Verdict::Allow(e)
            }
            Outcome::Denied(f) => Verdict::Deny(self.errors.deny(f.clone(), req.request_id)),
            Outcome::Rejected(IdpRejection::Relay(r)) => Verdict::Deny(r.clone()),
            Outcome::Rejected(IdpRejection::Own(f)) => {
                Verdict::Deny(self.errors.deny(f.clone(), req.request_id))
            }
            Outcome::Unavailable(why) => {
                let mut d = self.errors.deny(self.unavailable(why), req.request_id);
                if self.style == ErrorStyle::Rfc6750
                    && d.rejection.status == StatusCode::SERVICE_UNAVAILABLE
                {
                    d.rejection.status = self.idp_error_status;
                }
                Verdict::Deny(d)
            }
        }
    }
}

#[async_trait]
impl Connector for UserinfoConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "oidc_userinfo"
    }

    fn injected_headers(&self) -> &[HeaderName] {
        &self.injected
    }

    async fn check(&self, req: &RequestView<'_>) -> Verdict {
        let token = match find_token(&self.sources, req) {
            Intake::Found(t, _) => t,
            Intake::Missing => {
                let f = Failure::new(
                    Reason::MissingToken,
                    FailureClass::NoCredential,
                    "InvalidAuthorizationHeaderValue",
                    "no bearer token",
                );
                return Verdict::Deny(self.errors.deny(f, req.request_id));
            }
            Intake::Malformed(why) => {
                let f = Failure::new(
                    Reason::Malformed,
                    FailureClass::InvalidToken,
                    "InvalidAuthorizationHeaderValue",
                    why,
                );
                return Verdict::Deny(self.errors.deny(f, req.request_id));
            }
            Intake::Ambiguous(why) => {
                let f = Failure::new(
                    Reason::AmbiguousToken,
                    FailureClass::InvalidRequest,
                    "InvalidAuthorizationHeaderValue",
                    format!("{why}; send the token once"),
                );
                return Verdict::Deny(self.errors.deny(f, req.request_id));
            }
        };
        let token: &str = &token;
        if token.len() > self.max_token {
            let f = Failure::new(
                Reason::TokenTooLarge,
                FailureClass::InvalidToken,
                "InvalidAuthorizationHeaderValue",
                format!("token larger than {} bytes", self.max_token),
            );
            return Verdict::Deny(self.errors.deny(f, req.request_id));
        }
        let Some(idx) = self.select(req) else {
            let f = Failure::new(
                Reason::NoUserinfoEndpoint,
                FailureClass::InvalidRequest,
                "DefaultUserInfoURINotPresent",
                "no userinfo endpoint for this region",
            );
            return Verdict::Deny(self.errors.deny(f, req.request_id));
        };
        let key: Key = (idx as u8, Sha256::digest(token.as_bytes()).into());
        let mut stale = None;
        if let Some(e) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            if Instant::now() < e.fresh_until {
                match e.outcome {
                    Outcome::Rejected(_) => self.negative_hit.inc(),
                    _ => self.hit.inc(),
                }
                return self.answer(&e.outcome, req);
            }
            stale = Some(e);
        }
        self.miss.inc();
        let outcome = self.fetch(key, idx, token).await;
        if let (Outcome::Unavailable(_), Some(e)) = (&outcome, stale) {
            // keep_until never passes the token's exp; checked here too, as
            // the cache may evict lazily.
            if matches!(e.outcome, Outcome::Valid(_)) && Instant::now() < e.keep_until {
                self.stale_hit.inc();
                return self.answer(&e.outcome, req);
            }
        }
        self.answer(&outcome, req)
    }
}

fn config_err(path: &str, key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("{path}.{key}"), msg)
}

#[async_trait]
impl ConnectorFactory for UserinfoFactory {
    fn kind(&self) -> &'static str {
        "oidc_userinfo"
    }

    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities {
            decides_offline: false,
        }
    }

    fn settings_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<UserinfoSettings>()
    }

    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConfigError> {
        let path = ctx.path.as_str();
        let s: UserinfoSettings = deserialize_section(path, ctx.settings.clone())?;
        let method = match s.method.as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            other => return Err(config_err(path, "method", format!("must be exactly \"GET\" or \"POST\" (methods are case-sensitive), got \"{other}\""))),
        };
        if s.post_token_in_body && method != reqwest::Method::POST {
            return Err(config_err(
                path,
                "post_token_in_body",
                "only applies with method = \"POST\"",
            ));
        }
        let total = s.endpoints.len() + usize::from(s.default_endpoint.is_some());
        if total == 0 {
            return Err(ConfigError::new(
                path,
                "give `default_endpoint` and/or `endpoints`",
            ));
        }
        if total > MAX_ENDPOINTS {
            return Err(config_err(path, "endpoints", format!("{total} userinfo endpoints (default included); at most {MAX_ENDPOINTS} are allowed")));
        }
        let region_header = match &s.region_header {
            Some(h) => Some(HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                config_err(
                    path,
                    "region_header",
                    format!("\"{h}\" is not a valid header name"),
                )
            })?),
            None if !s.endpoints.is_empty() => {
                return Err(config_err(
                    path,
                    "region_header",
                    "required when `endpoints` are given",
                ))
            }
            None => None,
        };
        let region_ci = s.region_match == RegionMatch::CaseInsensitive;
        for r in s.region_inject_headers.keys() {
            if !s.endpoints.contains_key(r) {
                return Err(config_err(
                    path,
                    &format!("region_inject_headers.{r}"),
                    format!(
                        "no endpoint for region \"{r}\" (known: {})",
                        s.endpoints.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        let flat = Injector::compile(&format!("{path}.inject_headers"), &s.inject_headers)?;

        let f = self.families.get(path, || Families::new(&ctx.metrics))?;
        let name = ctx.name.clone();
        let endpoint = |label: &str, url: reqwest::Url, injector: Injector| Endpoint {
            ok: f.requests.with_label_values(&[&name, label, "ok"]),
            rejected: f.requests.with_label_values(&[&name, label, "rejected"]),
            error: f.requests.with_label_values(&[&name, label, "error"]),
            duration: f.duration.with_label_values(&[&name, label]),
            label: label.to_string(),
            url,
            injector,
        };

        let mut endpoints = Vec::new();
        let mut by_region = HashMap::new();
        let mut injected: Vec<HeaderName> = flat.headers().to_vec();
        for (region, url) in &s.endpoints {
            if region.is_empty() || region == "default" {
                return Err(config_err(
                    path,
                    &format!("endpoints.{region}"),
                    "region codes must be non-empty and not \"default\"",
                ));
            }
            let url = parse_url(path, &format!("endpoints.{region}"), url)?;
            let injector = match s.region_inject_headers.get(region) {
                Some(m) => Injector::compile(&format!("{path}.region_inject_headers.{region}"), m)?,
                None => flat.clone(),
            };
            for h in injector.headers() {
                if !injected.contains(h) {
                    injected.push(h.clone());
                }
            }
            let k = if region_ci {
                region.to_ascii_lowercase()
            } else {
                region.clone()
            };
            if by_region.insert(k, endpoints.len()).is_some() {
                return Err(config_err(
                    path,
                    &format!("endpoints.{region}"),
                    "two regions differ only in case, but region_match = \"case_insensitive\"",
                ));
            }
            endpoints.push(endpoint(region, url, injector));
        }
        let default = match &s.default_endpoint {
            Some(u) => {
                endpoints.push(endpoint(
                    "default",
                    parse_url(path, "default_endpoint", u)?,
                    flat.clone(),
                ));
                Some(endpoints.len() - 1)
            }
            None => None,
        };

        let timeout = at_most(path, "timeout", s.timeout.get(), limits::MAX_IDP_TIMEOUT)?;
        let client = client(path, timeout, s.http_proxy.as_deref())?;
        let cache_ttl = at_most(
            path,
            "cache_ttl",
            s.cache_ttl.get(),
            limits::MAX_USERINFO_CACHE,
        )?;
        let negative_ttl = at_most(
            path,
            "negative_cache_ttl",
            s.negative_cache_ttl.get(),
            limits::MAX_USERINFO_CACHE,
        )?;
        let stale = match s.stale_if_error {
            Some(d) => Some(at_most(
                path,
                "stale_if_error",
                d.get(),
                limits::MAX_USERINFO_CACHE,
            )?),
            None => None,
        };

        let meta_header = match &s.error_header_name {
            Some(h) => Some(HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                config_err(
                    path,
                    "error_header_name",
                    format!("\"{h}\" is not a valid header name"),
                )
            })?),
            None => None,
        };
        let meta_path = match &s.error_payload_location {
            Some(p) if !p.is_empty() => Some(ClaimPath::parse(
                &format!("{path}.error_payload_location"),
                p,
            )?),
            _ => None,
        };
        let idp_error_status = StatusCode::from_u16(s.status_on_idp_error)
            .ok()
            .filter(|c| c.is_client_error() || c.is_server_error())
            .ok_or_else(|| {
                config_err(path, "status_on_idp_error", "must be a 4xx or 5xx status")
            })?;
        let realm = s.realm.clone().unwrap_or_else(|| name.clone());
        let mashery_status = if s.enable_error_set {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        let errors = ErrorResponder::new(
            path,
            &realm,
            s.error_style,
            s.custom_error.as_ref(),
            mashery_status,
        )?;
        let policy = Policy::compile(&format!("{path}.policy"), &s.policy)?;
        if s.max_token_size < 16 || s.max_token_size > 1024 * 1024 {
            return Err(config_err(
                path,
                "max_token_size",
                "must be between 16 and 1048576 bytes",
            ));
        }
        if s.max_response_bytes == 0 || s.max_response_bytes > 16 * 1024 * 1024 {
            return Err(config_err(
                path,
                "max_response_bytes",
                "must be between 1 and 16777216",
            ));
        }
        let cache = (s.cache_size > 0).then(|| {
            Cache::builder()
                .max_capacity(s.cache_size)
                .expire_after(KeepUntil)
                .build()
        });

        Ok(Arc::new(UserinfoConnector {
            hit: f.cache.with_label_values(&[&name, "hit"]),
            miss: f.cache.with_label_values(&[&name, "miss"]),
            negative_hit: f.cache.with_label_values(&[&name, "negative_hit"]),
            stale_hit: f.cache.with_label_values(&[&name, "stale"]),
            inflight: f.inflight.with_label_values(&[&name]),
            name,
            method,
            post_body: s.post_token_in_body,
            region_header,
            region_ci,
            by_region,
            default,
            endpoints,
            client,
            max_body: s.max_response_bytes,
            cache,
            cache_ttl,
            negative_ttl,
            stale,
            inflight_calls: Mutex::new(HashMap::new()),
            required_claims: s.required_claims,
            policy,
            injected,
            forward: s.forward_authorization,
            passthrough: s.idp_error_passthrough,
            meta_location: s.error_metadata_location,
            meta_header,
            meta_path,
            idp_error_status,
            style: s.error_style,
            realm,
            sources: vec![TokenSource::bearer()],
            max_token: s.max_token_size,
            errors,
        }))
    }
}

#[cfg(test)]
mod tests;
