//! `kind = "oidc_userinfo"`: validates a bearer token (opaque access token or
//! ID token) by calling the identity provider's userinfo endpoint — chosen
//! per request among up to ten regional endpoints by a request header — and
//! enriches the upstream request from the userinfo JSON.
//!
//! Flow: token intake → endpoint selection → cache (fresh hit, negative hit,
//! or stale-if-error) → one IdP call per (endpoint, token) at a time
//! (single-flight) → [`classify`] the answer → 200 + JSON object = valid →
//! claim gate (required claims → policy → header injection, per-region map or
//! the flat one).
//!
//! With `shared_cache`, a miss asks the shared cache (L2, `shared.rs`) before
//! the IdP, and replicas take a short lock so one of them asks the IdP.
//!
//! Files: `settings.rs` (the kind's keys), `rules.rs` (compiled), `classify.rs`
//! (the pure decision), `client.rs` (the call), `cache.rs`, `shared.rs`,
//! `metrics.rs`.

mod classify;
mod client;
mod metrics;
mod rules;
mod settings;

pub use crate::kit::answer_l2::{decode as decode_shared_entry, Found as SharedEntry, Lifetimes};
pub use classify::{classify, Answer};
pub use client::CallError;
pub use rules::{ErrorText, Rules};
pub use settings::{ErrorMetadataLocation, RegionMatch, UserinfoSettings};

use crate::errors::{Failure, FailureClass};
use crate::kit::answer_cache::{Admitted, AnswerCache, IdpRejection, Lookup, Outcome, Resolved};
use crate::kit::answer_flow::{self, L2Counters, RemoteCall};
use crate::kit::answer_l2::{self as shared, L2Kind};
use crate::kit::limiter::CallLimiter;
use crate::kit::{self, Common, CommonSettings, KindDefaults, Problems, Voice};
use crate::outbound::{client as http_client, LazyFamilies};
use crate::token::carrier_edits;
use crate::{BuildContext, Connector, ConnectorFactory, Reason, RequestView, Verdict};
use async_trait::async_trait;
use client::IdpClient;
use gatehouse_config::{deserialize_section, ConfigErrors};
use http::{HeaderName, StatusCode};
use metrics::{ConnectorMetrics, EndpointMetrics, Families};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;

/// Most userinfo endpoints one connector may have (default included).
pub const MAX_ENDPOINTS: usize = 10;

/// How the kit words this kind's failures.
const VOICE: Voice = Voice {
    subject: "userinfo",
    missing_code: "InvalidAuthorizationHeaderValue",
    token_code: "InvalidAuthorizationHeaderValue",
    required_class: FailureClass::InsufficientScope,
    claims_code: "PolicyFailure",
    bad_value_class: FailureClass::InsufficientScope,
    bad_value_code: "PolicyFailure",
};

/// Settings of a section that shape an answer or the verdict on it.
const FINGERPRINTED: &[&str] = &[
    "method",
    "post_token_in_body",
    "max_response_bytes",
    "error_metadata_location",
    "error_header_name",
    "error_payload_location",
    "required_claims",
    "policy",
    "inject_headers",
    "region_inject_headers",
];

/// Format of stored entries (part of the fingerprint).
const FORMAT: &str = "gatehouse userinfo v1";

/// How userinfo answers are keyed and stored in a shared cache.
const L2_KIND: L2Kind = L2Kind {
    format: FORMAT,
    fingerprinted: FINGERPRINTED,
    prefix: "ui",
};

/// An IdP answer about the IdP's state (408, 429), not the token: never cached.
fn transient(answer: &Answer) -> bool {
    matches!(answer, Answer::Rejected(r) if shared::transient_refusal(r.status))
}

/// Builds `oidc_userinfo` connectors; owns their metric families.
#[derive(Default)]
pub struct UserinfoFactory {
    families: LazyFamilies<Families>,
}

/// An `oidc_userinfo` connector instance.
pub struct UserinfoConnector {
    name: String,
    common: Common,
    rules: Rules,
    client: IdpClient,
    cache: AnswerCache,
    limiter: CallLimiter,
    l2: Option<shared::L2>,
    endpoints: Vec<EndpointMetrics>,
    m: ConnectorMetrics,
}

/// A gauge raised while held (lowered on drop, also on cancellation).
struct GaugeHold<'a>(&'a prometheus::IntGauge);

impl<'a> GaugeHold<'a> {
    fn new(g: &'a prometheus::IntGauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for GaugeHold<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl UserinfoConnector {
    fn unavailable(why: &str) -> Failure {
        Failure::new(
            Reason::IdpUnavailable,
            FailureClass::Unavailable,
            "TargetEndpointError",
            format!("identity provider unavailable: {why}"),
        )
    }

    /// What an answer from endpoint `idx` means for this connector.
    fn judge_answer(&self, idx: usize, answer: Answer) -> Outcome {
        match answer {
            Answer::Identity(doc) => {
                match self
                    .common
                    .gate
                    .admit(&doc, &self.rules.endpoints[idx].injector)
                {
                    Ok(edits) => Outcome::Valid(Admitted {
                        edits,
                        doc: Arc::new(doc),
                    }),
                    Err(f) => Outcome::Denied(f),
                }
            }
            Answer::Rejected(r) if self.rules.passthrough => {
                Outcome::Rejected(IdpRejection::Relay(self.common.errors.relay(&r)))
            }
            Answer::Rejected(_) => Outcome::Rejected(IdpRejection::Own(Failure::new(
                Reason::IdpRejected,
                FailureClass::InvalidToken,
                "TargetEndpointError",
                "the identity provider rejected the token",
            ))),
            Answer::Unavailable(why) => Outcome::Unavailable(why),
        }
    }

    /// A missed key resolved through the kit's remote-answer flow (shared
    /// cache, fleet lock, IdP call).
    async fn resolve(&self, idx: usize, token: &str, hash: &[u8; 32]) -> Resolved {
        let m = L2Counters {
            hit: &self.m.l2_hit,
            miss: &self.m.l2_miss,
            waited: &self.m.l2_waited,
        };
        answer_flow::resolve(self, &self.cache, self.l2.as_ref(), m, idx, token, hash).await
    }

    /// One call to the IdP, classified, with its metrics — if the bounds on
    /// calls allow one now (else the IdP counts as unavailable).
    async fn call_idp(&self, idx: usize, token: &str) -> Answer {
        let (ep, m) = (&self.rules.endpoints[idx], &self.endpoints[idx]);
        let slot = {
            let _waiting = GaugeHold::new(&self.m.waiting);
            self.limiter.acquire(self.rules.call.timeout).await
        };
        let _slot = match slot {
            Ok(s) => s,
            Err(o) => {
                self.m.refused[o as usize].inc();
                return Answer::Unavailable(o.describe().to_string());
            }
        };
        // Counted down also when the request goes away mid-call.
        let _inflight = GaugeHold::new(&self.m.inflight);
        let start = Instant::now();
        let answer = match self.client.call(&ep.url, token).await {
            Ok(r) => classify(r.status, &r.headers, &r.body, &self.rules.error_text),
            Err(e) => Answer::Unavailable(e.to_string()),
        };
        m.duration.observe(start.elapsed().as_secs_f64());
        match &answer {
            Answer::Identity(_) => m.ok.inc(),
            Answer::Rejected(_) => m.rejected.inc(),
            Answer::Unavailable(why) => {
                m.error.inc();
                tracing::warn!(connector = %self.name, endpoint = %ep.label, "userinfo call failed: {why}");
            }
        }
        answer
    }

    /// The verdict for outcome `o` of a token read from token source
    /// `source` and judged by endpoint `idx`. Certificate headers are
    /// computed here, per request: the cached outcome is per token.
    fn answer(&self, o: &Outcome, req: &RequestView<'_>, (source, idx): (usize, usize)) -> Verdict {
        let errors = &self.common.errors;
        match o {
            Outcome::Valid(admitted) => {
                let mut e = carrier_edits(&self.common.sources[source], req, self.rules.forward);
                e.set.extend(admitted.edits.iter().cloned());
                e.verified = Some(admitted.doc.clone());
                let injector = &self.rules.endpoints[idx].injector;
                e.set.extend(injector.certificate(req.peer_cert));
                e.merge(self.rules.region_edits(idx, req));
                Verdict::Allow(e)
            }
            Outcome::Denied(f) => Verdict::Deny(errors.deny(f.clone(), req.request_id)),
            Outcome::Rejected(IdpRejection::Relay(r)) => Verdict::Deny(r.clone()),
            Outcome::Rejected(IdpRejection::Own(f)) => {
                Verdict::Deny(errors.deny(f.clone(), req.request_id))
            }
            Outcome::Unavailable(why) => {
                let mut d = errors.deny(Self::unavailable(why), req.request_id);
                if errors.style() == crate::errors::ErrorStyle::Rfc6750
                    && d.rejection.status == StatusCode::SERVICE_UNAVAILABLE
                {
                    d.rejection.status = self.rules.idp_error_status;
                }
                Verdict::Deny(d)
            }
        }
    }
}

#[async_trait]
impl RemoteCall for UserinfoConnector {
    async fn call(&self, idx: usize, token: &str) -> Answer {
        self.call_idp(idx, token).await
    }

    fn judge(&self, idx: usize, answer: Answer) -> Outcome {
        self.judge_answer(idx, answer)
    }

    fn transient(&self, answer: &Answer) -> bool {
        transient(answer)
    }

    fn call_timeout(&self) -> std::time::Duration {
        self.rules.call.timeout
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
        &self.rules.injected
    }

    fn calls_out(&self) -> bool {
        true
    }

    fn token_sources(&self) -> &[crate::token::TokenSource] {
        &self.common.sources
    }

    fn forwards_token(&self) -> bool {
        self.rules.forward
    }

    async fn check(&self, req: &RequestView<'_>) -> Verdict {
        let errors = &self.common.errors;
        let (token, source) = match self.common.intake(req) {
            Ok(t) => t,
            Err(f) => return Verdict::Deny(errors.deny(f, req.request_id)),
        };
        let token: &str = &token;
        let Ok(selected) = self.rules.select(req) else {
            let f = Failure::new(
                Reason::AmbiguousRegion,
                FailureClass::InvalidRequest,
                "InvalidRegionHeader",
                "the region header must be sent once, with one value",
            );
            return Verdict::Deny(errors.deny(f, req.request_id));
        };
        let Some(idx) = selected else {
            let f = Failure::new(
                Reason::NoUserinfoEndpoint,
                FailureClass::InvalidRequest,
                "DefaultUserInfoURINotPresent",
                "no userinfo endpoint for this region",
            );
            return Verdict::Deny(errors.deny(f, req.request_id));
        };
        let key = (idx as u8, Sha256::digest(token.as_bytes()).into());
        let stale = match self.cache.lookup(&key) {
            Lookup::Fresh(e) => {
                match e.outcome {
                    Outcome::Rejected(_) => self.m.negative_hit.inc(),
                    _ => self.m.hit.inc(),
                }
                return self.answer(&e.outcome, req, (source, idx));
            }
            Lookup::Stale(e) => Some(e),
            Lookup::Miss => None,
        };
        self.m.miss.inc();
        let resolved = self
            .cache
            .single_flight(key, token, self.resolve(idx, token, &key.1))
            .await;
        let outcome = resolved.outcome;
        if let (Outcome::Unavailable(_), Some(e)) = (&outcome, stale.or(resolved.stale)) {
            // keep_until never passes the token's exp; checked here too, as
            // the cache may evict lazily.
            if matches!(e.outcome, Outcome::Valid(_)) && Instant::now() < e.keep_until {
                self.m.stale_hit.inc();
                return self.answer(&e.outcome, req, (source, idx));
            }
        }
        self.answer(&outcome, req, (source, idx))
    }
}

#[async_trait]
impl ConnectorFactory for UserinfoFactory {
    fn kind(&self) -> &'static str {
        "oidc_userinfo"
    }

    fn settings_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        kit::with_common::<UserinfoSettings>(generator)
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
        let s: UserinfoSettings = deserialize_section(path, rest)?;
        let mut p = Problems::new();
        let defaults = KindDefaults {
            voice: VOICE,
            min_token_size: 16,
            mashery_status: if s.enable_error_set {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            },
        };
        let common = p.check_all(Common::compile(&ctx.name, path, &common, defaults));
        let flat = common
            .as_ref()
            .map(|c| c.injector.clone())
            .unwrap_or_default();
        let rules = p.check_all(Rules::compile(path, &s, &flat));
        let client = rules
            .as_ref()
            .and_then(|r| p.check(http_client(path, r.call.timeout, s.http_proxy.as_deref())));
        let f = p.check(self.families.get(path, || Families::new(&ctx.metrics)));
        let shared = match &s.shared_cache {
            Some(n) => match ctx.shared_caches.get(n) {
                Some(c) => Some(c.clone()),
                None => {
                    let known: Vec<&str> = ctx.shared_caches.keys().map(String::as_str).collect();
                    p.push(gatehouse_config::ConfigError::new(
                        format!("{path}.shared_cache"),
                        format!(
                            "no [caches.{n}] (known: {})",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                    None
                }
            },
            None => None,
        };
        let (common, rules, client, f) = p.finish(
            common
                .zip(rules)
                .zip(client)
                .zip(f)
                .map(|(((a, b), c), d)| (a, b, c, d)),
        )?;
        let name = ctx.name.clone();
        Ok(Arc::new(UserinfoConnector {
            endpoints: rules
                .endpoints
                .iter()
                .map(|e| f.endpoint(&name, &e.label))
                .collect(),
            m: f.connector(&name),
            client: IdpClient::new(client, &rules.call),
            cache: AnswerCache::new(&rules.cache),
            limiter: CallLimiter::new(rules.call.limits),
            // `cache_size = 0` disables caching, the shared cache included.
            l2: shared.filter(|_| rules.cache.size > 0).map(|c| {
                let urls: Vec<&str> = rules.endpoints.iter().map(|e| e.url.as_str()).collect();
                let own = Lifetimes {
                    ttl: rules.cache.ttl,
                    negative_ttl: rules.cache.negative_ttl,
                    stale: rules.cache.stale.unwrap_or_default(),
                };
                shared::L2::new(L2_KIND, c, own, &ctx.settings, &urls)
            }),
            name,
            common,
            rules,
        }))
    }
}

#[cfg(test)]
mod tests;
