//! The `oauth2_introspection` connector and its factory: token intake →
//! answer cache → (shared cache, fleet lock) → one POST to the
//! introspection endpoint → [`super::classify`] → exp/nbf/iss/aud →
//! certificate binding → the claim gate. The flow between cache and IdP is
//! the kit's ([`crate::kit::answer_flow`]); this file is what is particular
//! to introspection.

use super::settings::{AuthMethod, IntrospectionSettings};
use super::{check_active, classify, ActiveChecks};
use crate::errors::{Failure, FailureClass};
use crate::kit::answer_cache::{Admitted, AnswerCache, IdpRejection, Lookup, Outcome};
use crate::kit::answer_flow::{self, L2Counters, RemoteCall};
use crate::kit::answer_l2::{L2Kind, Lifetimes, L2};
use crate::kit::limiter::{CallLimiter, Limits};
use crate::kit::remote::{check_call_bounds, Answer, CacheRules};
use crate::kit::{self, clock, Common, CommonSettings, KindDefaults, Problems, Voice};
use crate::limits::{at_most, MAX_IDP_TIMEOUT, MAX_LEEWAY, MAX_USERINFO_CACHE};
use crate::outbound::{client as http_client, form_encode, parse_url, read_limited, LazyFamilies};
use crate::token::carrier_edits;
use crate::{BuildContext, Connector, ConnectorFactory, Reason, RequestView, Verdict};
use async_trait::async_trait;
use base64::Engine;
use gatehouse_config::{deserialize_section, ConfigError, ConfigErrors};
use http::{HeaderName, StatusCode};
use prometheus::{IntCounter, IntCounterVec, Opts};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VOICE: Voice = Voice {
    subject: "introspection answer",
    missing_code: "InvalidAuthorizationHeaderValue",
    token_code: "InvalidAuthorizationHeaderValue",
    required_class: FailureClass::InsufficientScope,
    claims_code: "PolicyFailure",
    bad_value_class: FailureClass::InsufficientScope,
    bad_value_code: "PolicyFailure",
};

/// How introspection answers are keyed and stored in a shared cache.
const L2_KIND: L2Kind = L2Kind {
    format: "gatehouse introspection v1",
    fingerprinted: &[
        "client_id",
        "token_type_hint",
        "max_response_bytes",
        "issuers",
        "audiences",
        "leeway",
        "require_certificate_binding",
        "required_claims",
        "policy",
        "inject_headers",
    ],
    prefix: "in",
};

/// The metric families, registered once per registry.
#[derive(Clone)]
struct Families {
    requests: IntCounterVec,
    cache: IntCounterVec,
}

impl Families {
    fn new(r: &prometheus::Registry) -> prometheus::Result<Self> {
        let f = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "gatehouse_introspection_requests_total",
                    "Introspection calls, by connector and result (active, inactive, error).",
                ),
                &["connector", "result"],
            )?,
            cache: IntCounterVec::new(
                Opts::new(
                    "gatehouse_introspection_cache_requests_total",
                    "Introspection answer cache lookups, by connector and result (hit/miss/negative_hit/stale; with a shared cache, misses go on as l2_hit/l2_miss/l2_waited).",
                ),
                &["connector", "result"],
            )?,
        };
        r.register(Box::new(f.requests.clone()))?;
        r.register(Box::new(f.cache.clone()))?;
        Ok(f)
    }
}

struct Handles {
    active: IntCounter,
    inactive: IntCounter,
    error: IntCounter,
    hit: IntCounter,
    miss: IntCounter,
    negative_hit: IntCounter,
    stale: IntCounter,
    l2_hit: IntCounter,
    l2_miss: IntCounter,
    l2_waited: IntCounter,
}

impl Handles {
    fn new(f: &Families, name: &str) -> Self {
        let r = |v: &IntCounterVec, result: &str| v.with_label_values(&[name, result]);
        Self {
            active: r(&f.requests, "active"),
            inactive: r(&f.requests, "inactive"),
            error: r(&f.requests, "error"),
            hit: r(&f.cache, "hit"),
            miss: r(&f.cache, "miss"),
            negative_hit: r(&f.cache, "negative_hit"),
            stale: r(&f.cache, "stale"),
            l2_hit: r(&f.cache, "l2_hit"),
            l2_miss: r(&f.cache, "l2_miss"),
            l2_waited: r(&f.cache, "l2_waited"),
        }
    }
}

/// Builds `oauth2_introspection` connectors; owns their metric families.
#[derive(Default)]
pub struct IntrospectionFactory {
    families: LazyFamilies<Families>,
}

/// How Gatehouse presents itself to the endpoint.
struct ClientAuth {
    method: AuthMethod,
    id: String,
    secret: String,
}

/// An `oauth2_introspection` connector instance.
pub struct IntrospectionConnector {
    name: String,
    common: Common,
    url: reqwest::Url,
    http: reqwest::Client,
    auth: ClientAuth,
    hint: Option<String>,
    checks: ActiveChecks,
    binding: bool,
    forward: bool,
    max_body: usize,
    timeout: Duration,
    cache: AnswerCache,
    limiter: CallLimiter,
    l2: Option<L2>,
    m: Handles,
}

impl IntrospectionConnector {
    fn unavailable(why: &str) -> Failure {
        Failure::new(
            Reason::IdpUnavailable,
            FailureClass::Unavailable,
            "TargetEndpointError",
            format!("introspection unavailable: {why}"),
        )
    }

    /// One POST to the endpoint: the token only in the form body.
    async fn post(&self, token: &str) -> Answer {
        let mut body = format!("token={}", form_encode(token));
        if let Some(h) = &self.hint {
            body.push_str(&format!("&token_type_hint={}", form_encode(h)));
        }
        let mut rb = self
            .http
            .post(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        match self.auth.method {
            AuthMethod::ClientSecretBasic => {
                let pair = format!(
                    "{}:{}",
                    form_encode(&self.auth.id),
                    form_encode(&self.auth.secret)
                );
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
                rb = rb.header(http::header::AUTHORIZATION, format!("Basic {b64}"));
            }
            AuthMethod::ClientSecretPost => {
                body.push_str(&format!(
                    "&client_id={}&client_secret={}",
                    form_encode(&self.auth.id),
                    form_encode(&self.auth.secret)
                ));
            }
        }
        let mut resp = match rb.body(body).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Answer::Unavailable("timed out".into()),
            Err(_) => return Answer::Unavailable("unreachable".into()),
        };
        let (status, headers) = (resp.status(), resp.headers().clone());
        match read_limited(&mut resp, self.max_body).await {
            Ok(b) => classify(status, &headers, &b),
            Err(e) => Answer::Unavailable(e.to_string()),
        }
    }

    /// The verdict for a (possibly cached) outcome; times and the
    /// certificate binding are checked on every use, not only when the
    /// answer came (a cached answer outlives nothing: its `exp` is re-read).
    fn answer(&self, o: &Outcome, req: &RequestView<'_>, source: usize) -> Verdict {
        let errors = &self.common.errors;
        let deny = |f: Failure| Verdict::Deny(errors.deny(f, req.request_id));
        match o {
            Outcome::Valid(a) => {
                if let Err(f) = check_active(&a.doc, &self.checks, clock::now()) {
                    return deny(f);
                }
                if self.binding {
                    let bound = crate::jwt::verify::confirmation_thumbprint(&a.doc);
                    let peer = req.peer_cert.map(|c| c.thumbprint.as_str());
                    if let Err(f) = crate::jwt::verify::check_binding(bound, peer) {
                        return deny(f);
                    }
                }
                let mut e = carrier_edits(&self.common.sources[source], req, self.forward);
                e.set.extend(a.edits.iter().cloned());
                e.set
                    .extend(self.common.injector.certificate(req.peer_cert));
                e.verified = Some(a.doc.clone());
                Verdict::Allow(e)
            }
            Outcome::Denied(f) | Outcome::Rejected(IdpRejection::Own(f)) => deny(f.clone()),
            Outcome::Rejected(IdpRejection::Relay(d)) => Verdict::Deny(d.clone()),
            Outcome::Unavailable(why) => deny(Self::unavailable(why)),
        }
    }
}

#[async_trait]
impl RemoteCall for IntrospectionConnector {
    async fn call(&self, _idx: usize, token: &str) -> Answer {
        let slot = self.limiter.acquire(self.timeout).await;
        let _slot = match slot {
            Ok(s) => s,
            Err(o) => return Answer::Unavailable(o.describe().to_string()),
        };
        let answer = self.post(token).await;
        match &answer {
            Answer::Identity(_) => self.m.active.inc(),
            Answer::Rejected(_) => self.m.inactive.inc(),
            Answer::Unavailable(why) => {
                self.m.error.inc();
                tracing::warn!(connector = %self.name, "introspection failed: {why}");
            }
        }
        answer
    }

    fn judge(&self, _idx: usize, answer: Answer) -> Outcome {
        match answer {
            Answer::Identity(doc) => {
                if let Err(f) = check_active(&doc, &self.checks, clock::now()) {
                    return Outcome::Denied(f);
                }
                match self.common.gate.admit(&doc, &self.common.injector) {
                    Ok(edits) => Outcome::Valid(Admitted {
                        edits,
                        doc: Arc::new(doc),
                    }),
                    Err(f) => Outcome::Denied(f),
                }
            }
            Answer::Rejected(r) => Outcome::Rejected(IdpRejection::Own(Failure::new(
                Reason::IdpRejected,
                FailureClass::InvalidToken,
                "InvalidToken",
                r.text,
            ))),
            Answer::Unavailable(why) => Outcome::Unavailable(why),
        }
    }

    fn transient(&self, _answer: &Answer) -> bool {
        false
    }

    fn call_timeout(&self) -> Duration {
        self.timeout
    }
}

#[async_trait]
impl Connector for IntrospectionConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "oauth2_introspection"
    }

    fn injected_headers(&self) -> &[HeaderName] {
        self.common.injector.headers()
    }

    fn calls_out(&self) -> bool {
        true
    }

    fn token_sources(&self) -> &[crate::token::TokenSource] {
        &self.common.sources
    }

    fn forwards_token(&self) -> bool {
        self.forward
    }

    fn needs_client_certificate(&self) -> bool {
        self.binding
    }

    async fn check(&self, req: &RequestView<'_>) -> Verdict {
        let errors = &self.common.errors;
        let (token, source) = match self.common.intake(req) {
            Ok(t) => t,
            Err(f) => return Verdict::Deny(errors.deny(f, req.request_id)),
        };
        let token: &str = &token;
        if self.binding && req.peer_cert.is_none() {
            if let Err(f) = crate::jwt::verify::check_binding(None, None) {
                return Verdict::Deny(errors.deny(f, req.request_id));
            }
        }
        let key = (0u8, Sha256::digest(token.as_bytes()).into());
        let stale = match self.cache.lookup(&key) {
            Lookup::Fresh(e) => {
                match e.outcome {
                    Outcome::Rejected(_) => self.m.negative_hit.inc(),
                    _ => self.m.hit.inc(),
                }
                return self.answer(&e.outcome, req, source);
            }
            Lookup::Stale(e) => Some(e),
            Lookup::Miss => None,
        };
        self.m.miss.inc();
        let counters = L2Counters {
            hit: &self.m.l2_hit,
            miss: &self.m.l2_miss,
            waited: &self.m.l2_waited,
        };
        let resolved = self
            .cache
            .single_flight(
                key,
                token,
                answer_flow::resolve(
                    self,
                    &self.cache,
                    self.l2.as_ref(),
                    counters,
                    0,
                    token,
                    &key.1,
                ),
            )
            .await;
        if let (Outcome::Unavailable(_), Some(e)) = (&resolved.outcome, stale.or(resolved.stale)) {
            if matches!(e.outcome, Outcome::Valid(_)) && Instant::now() < e.keep_until {
                self.m.stale.inc();
                return self.answer(&e.outcome, req, source);
            }
        }
        self.answer(&resolved.outcome, req, source)
    }
}

fn secret_path(settings: &toml::Table) -> Option<PathBuf> {
    settings
        .get("client_secret_file")
        .and_then(toml::Value::as_str)
        .map(PathBuf::from)
}

#[async_trait]
impl ConnectorFactory for IntrospectionFactory {
    fn kind(&self) -> &'static str {
        "oauth2_introspection"
    }

    fn settings_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        kit::with_common::<IntrospectionSettings>(generator)
    }

    fn source_files(&self, settings: &toml::Table) -> Vec<PathBuf> {
        secret_path(settings).into_iter().collect()
    }

    fn shared_cache(&self, settings: &toml::Table) -> Option<String> {
        settings
            .get("shared_cache")
            .and_then(toml::Value::as_str)
            .map(str::to_string)
    }

    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConfigErrors> {
        let path = ctx.path.as_str();
        let (common, rest) = CommonSettings::split(path, ctx.settings.clone())?;
        let s: IntrospectionSettings = deserialize_section(path, rest)?;
        let mut p = Problems::new();
        let defaults = KindDefaults {
            voice: VOICE,
            min_token_size: 16,
            mashery_status: StatusCode::UNAUTHORIZED,
        };
        let common = p.check_all(Common::compile(&ctx.name, path, &common, defaults));
        let url = p.check(parse_url(path, "endpoint", &s.endpoint));
        let secret = match crate::files::read_file(std::path::Path::new(&s.client_secret_file)) {
            Ok(b) => {
                let text = String::from_utf8_lossy(&b)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if text.is_empty() {
                    p.push(ConfigError::new(
                        format!("{path}.client_secret_file"),
                        format!("{} is empty", s.client_secret_file),
                    ));
                    None
                } else {
                    Some(text)
                }
            }
            Err(e) => {
                p.push(ConfigError::new(
                    format!("{path}.client_secret_file"),
                    e.to_string(),
                ));
                None
            }
        };
        if s.client_id.is_empty() {
            p.push(ConfigError::new(
                format!("{path}.client_id"),
                "must not be empty",
            ));
        }
        let leeway = p.check(at_most(path, "leeway", s.leeway.get(), MAX_LEEWAY));
        let timeout = p.check(at_most(path, "timeout", s.timeout.get(), MAX_IDP_TIMEOUT));
        let ttl = p.check(at_most(
            path,
            "cache_ttl",
            s.cache_ttl.get(),
            MAX_USERINFO_CACHE,
        ));
        let negative_ttl = p.check(at_most(
            path,
            "negative_cache_ttl",
            s.negative_cache_ttl.get(),
            MAX_USERINFO_CACHE,
        ));
        let stale = match s.stale_if_error {
            Some(d) => p
                .check(at_most(path, "stale_if_error", d.get(), MAX_USERINFO_CACHE))
                .map(Some),
            None => Some(None),
        };
        for e in check_call_bounds(path, s.max_inflight, s.max_queued, s.max_response_bytes) {
            p.push(e);
        }
        let shared = match &s.shared_cache {
            Some(n) => match ctx.shared_caches.get(n) {
                Some(c) => Some(Some(c.clone())),
                None => {
                    p.push(ConfigError::new(
                        format!("{path}.shared_cache"),
                        format!("no [caches.{n}]"),
                    ));
                    None
                }
            },
            None => Some(None),
        };
        let http = timeout.and_then(|t| p.check(http_client(path, t, None)));
        let f = p.check(self.families.get(path, || Families::new(&ctx.metrics)));
        let parts = (|| {
            Some((
                common?,
                url?,
                secret?,
                leeway?,
                timeout?,
                ttl?,
                negative_ttl?,
                stale?,
                shared?,
                http?,
                f?,
            ))
        })();
        let (common, url, secret, leeway, timeout, ttl, negative_ttl, stale, shared, http, f) =
            p.finish(parts)?;
        let rules = CacheRules {
            size: s.cache_size,
            negative_size: s
                .negative_cache_size
                .unwrap_or((s.cache_size / 10).max(u64::from(s.cache_size > 0))),
            ttl,
            negative_ttl,
            stale,
        };
        let l2 = shared.filter(|_| rules.size > 0).map(|c| {
            let own = Lifetimes {
                ttl,
                negative_ttl,
                stale: stale.unwrap_or_default(),
            };
            L2::new(L2_KIND, c, own, &ctx.settings, &[url.as_str()])
        });
        Ok(Arc::new(IntrospectionConnector {
            m: Handles::new(&f, &ctx.name),
            name: ctx.name.clone(),
            common,
            url,
            http,
            auth: ClientAuth {
                method: s.auth_method,
                id: s.client_id.clone(),
                secret,
            },
            hint: s.token_type_hint.clone(),
            checks: ActiveChecks {
                issuers: s.issuers.clone(),
                audiences: s.audiences.clone(),
                leeway: leeway.as_secs_f64(),
            },
            binding: s.require_certificate_binding,
            forward: s.forward_authorization,
            max_body: s.max_response_bytes,
            timeout,
            cache: AnswerCache::new(&rules),
            limiter: CallLimiter::new(Limits {
                max_inflight: s.max_inflight,
                max_queued: s.max_queued,
                max_per_second: s.max_calls_per_second,
            }),
            l2,
        }))
    }
}
