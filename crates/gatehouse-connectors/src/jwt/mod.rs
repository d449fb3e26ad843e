//! `kind = "jwt"`: validates JSON Web Tokens against keys from a JWKS (URL,
//! file or inline), PEM public keys or an HMAC secret; checks time claims,
//! issuer, audience, required claims and a claim policy; injects identity
//! headers; caches verified tokens.
//!
//! Check order, on a cache miss: token intake → size → [`verify`] (structure
//! → `alg` allow-list → key selection, with one rate-limited JWKS refetch for
//! an unknown `kid` → signature → `exp`, `nbf`, `iat`, `max_token_age` →
//! `iss` → `aud`) → claim gate (required claims → policy → header
//! injection). On a cache hit only the time checks run again.
//!
//! Files: `settings.rs` (the kind's keys), `rules.rs` and `keyplan.rs`
//! (compiled), `verify.rs` (the pure decision), `alg.rs`, `keys.rs` and
//! `es512.rs` (algorithms and key material), `store.rs` (JWKS fetch and
//! refresh), `cache.rs`, `metrics.rs`.

mod alg;
mod cache;
pub mod es512;
mod keyplan;
mod keys;
mod metrics;
mod rules;
mod settings;
mod store;
pub mod verify;

pub use alg::{Alg, UnknownAlg};
pub use keys::{key_from_pem, parse_jwks, Family, KeyError, KeyMaterial, KeySet, VerifyKey};
pub use rules::Rules;
pub use settings::{JwtSettings, PemKeyConfig, SecretEncoding, TokenCachePolicy};
pub use store::{JwksError, KeySource, KeyStore, StoreSettings, MAX_JWKS_BYTES};

use crate::errors::Failure;
use crate::errors::FailureClass;
use crate::kit::{self, clock, Common, CommonSettings, KindDefaults, Problems, Voice};
use crate::outbound::LazyFamilies;
use crate::token::{carrier_edits, find_token, Intake};
use crate::{BuildContext, Connector, ConnectorFactory, Denial, Reason, RequestView, Verdict};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_config::{deserialize_section, ConfigError, ConfigErrors};
use http::{HeaderName, HeaderValue, StatusCode};
use keyplan::KeyPlan;
use metrics::{Families, Handles};
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use verify::{invalid, keys_unavailable};

/// Algorithms a connector may allow.
pub const SUPPORTED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "HS256", "HS384", "HS512",
];

/// How the kit words this kind's failures.
const VOICE: Voice = Voice {
    subject: "token",
    missing_code: "JWTTokenNotFound",
    token_code: "InvalidJWTToken",
    required_class: FailureClass::InvalidToken,
    claims_code: "NonStandardClaimIsNotAuthorized",
    bad_value_class: FailureClass::InvalidToken,
    bad_value_code: "InvalidJWTToken",
};

/// Builds `jwt` connectors; owns the JWT metric families.
#[derive(Default)]
pub struct JwtFactory {
    families: LazyFamilies<Families>,
}

/// Aborts a background task when dropped (a replaced connector stops its refresher).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A `jwt` connector instance.
pub struct JwtConnector {
    name: String,
    rules: Rules,
    common: Common,
    store: Arc<KeyStore>,
    claims_header: Option<HeaderName>,
    forward: bool,
    cache: Option<Cache<[u8; 32], Arc<cache::Entry>>>,
    injected: Vec<HeaderName>,
    m: Handles,
    _tasks: Vec<AbortOnDrop>,
}

impl JwtConnector {
    /// The full check of a token not in the cache: [`verify`] against the
    /// current keys (refetched once, rate-limited, for an unknown `kid`),
    /// then the claim gate.
    async fn check_uncached(&self, token: &str, now: f64) -> Result<cache::Entry, Failure> {
        let parsed = verify::parse(token, &self.rules)?;
        let mut keys = self.store.keys().ok_or_else(keys_unavailable)?;
        if let Some(k) = parsed.kid.as_deref() {
            if !keys.has_kid(k) && self.store.refetch_for_unknown_kid().await {
                keys = self.store.keys().ok_or_else(keys_unavailable)?;
            }
        }
        let v = verify::verify_parsed(parsed, &keys, &self.rules, now)?;
        let mut edits = self.common.gate.admit(&v.claims, &self.common.injector)?;
        if let Some(hn) = &self.claims_header {
            if let Ok(h) = HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(v.claims.to_string())) {
                edits.push((hn.clone(), h));
            }
        }
        let bound_to = match self.rules.require_binding {
            true => verify::confirmation_thumbprint(&v.claims).map(Box::from),
            false => None,
        };
        Ok(cache::Entry {
            times: v.times,
            edits,
            claims: Arc::new(v.claims),
            key: v.key,
            bound_to,
            ttl: cache::ttl(v.times, self.rules.leeway, self.rules.max_age, now),
        })
    }

    /// Caches a verified token, unless its key was removed from the key set
    /// since it was verified (the purge of that key must not be undone).
    fn cache_verified(&self, key: [u8; 32], v: cache::Entry) -> Arc<cache::Entry> {
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
        Verdict::Deny(self.common.errors.deny(f, req.request_id))
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

    fn needs_client_certificate(&self) -> bool {
        self.rules.require_binding
    }

    fn token_sources(&self) -> &[crate::token::TokenSource] {
        &self.common.sources
    }

    fn forwards_token(&self) -> bool {
        self.forward
    }

    fn warnings(&self) -> Vec<String> {
        let narrow = !self.rules.token_types.is_empty()
            && self
                .rules
                .token_types
                .iter()
                .all(|t| !t.eq_ignore_ascii_case("JWT"));
        let mut out = Vec::new();
        if self.rules.audiences.is_empty() && !narrow {
            out.push(format!(
                "connectors.{}: a jwt connector with neither `audiences` nor `token_types` \
                 narrower than the default accepts any JWT its keys signed, for any audience \
                 (RFC 8725 §3.11): set `audiences`, or `token_types = [\"at+jwt\", \
                 \"application/at+jwt\"]`",
                self.name
            ));
        }
        if self.rules.accept_id_tokens {
            out.push(format!(
                "connectors.{}: accept_id_tokens = true: ID tokens (made for a client, not an \
                 API) pass as access tokens",
                self.name
            ));
        }
        out
    }

    /// In an any-of group, a token whose unverified `iss` is not among
    /// `issuers` is not this connector's: refused without key lookup or
    /// signature check (not counted as a validation).
    fn precheck(&self, req: &RequestView<'_>) -> Option<Failure> {
        if self.rules.issuers.is_empty() {
            return None;
        }
        let Intake::Found(token, _) = find_token(&self.common.sources, req) else {
            return None;
        };
        if token.len() > self.common.max_token {
            return None;
        }
        let iss = verify::unverified_issuer(&token)?;
        if iss.is_some_and(|i| self.rules.issuers.contains(&i)) {
            return None;
        }
        Some(invalid(
            Reason::IssuerNotAllowed,
            "IssNotAuthorized",
            "token issuer is not among this connector's issuers",
        ))
    }

    fn refuse(&self, f: Failure, req: &RequestView<'_>) -> Denial {
        self.common.errors.deny(f, req.request_id)
    }

    async fn check(&self, req: &RequestView<'_>) -> Verdict {
        let (token, source) = match self.common.intake(req) {
            Ok(t) => t,
            Err(f) => return self.deny(f, req),
        };
        let token: &str = &token;
        let peer = req.peer_cert.map(|c| c.thumbprint.as_str());
        if self.rules.require_binding && peer.is_none() {
            // No certificate on this connection: refused before any key work.
            if let Err(f) = verify::check_binding(None, None) {
                return self.deny(f, req);
            }
        }
        let now = clock::now();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let verified = match self.cache.as_ref().and_then(|c| c.get(&key)) {
            Some(v) => {
                self.m.hit.inc();
                if let Err(f) = verify::check_times(&self.rules, v.times, now) {
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
                match self.check_uncached(token, now).await {
                    Ok(v) => self.cache_verified(key, v),
                    Err(f) => return self.deny(f, req),
                }
            }
        };
        if self.rules.require_binding {
            // Checked on cache hits too: the cache key is the token alone.
            if let Err(f) = verify::check_binding(verified.bound_to.as_deref(), peer) {
                return self.deny(f, req);
            }
        }
        self.m.valid.inc();
        let mut edits = carrier_edits(&self.common.sources[source], req, self.forward);
        edits.set.extend(verified.edits.iter().cloned());
        edits
            .set
            .extend(self.common.injector.certificate(req.peer_cert));
        edits.verified = Some(verified.claims.clone());
        Verdict::Allow(edits)
    }
}

#[async_trait]
impl ConnectorFactory for JwtFactory {
    fn kind(&self) -> &'static str {
        "jwt"
    }

    fn source_files(&self, settings: &toml::Table) -> Vec<std::path::PathBuf> {
        CommonSettings::split("", settings.clone())
            .ok()
            .and_then(|(_, rest)| deserialize_section::<JwtSettings>("", rest).ok())
            .map(|s| s.source_files())
            .unwrap_or_default()
    }

    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities {
            decides_offline: true,
        }
    }

    fn settings_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        kit::with_common::<JwtSettings>(generator)
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
    ) -> Result<Arc<JwtConnector>, ConfigErrors> {
        let path = ctx.path.as_str();
        let (common, rest) = CommonSettings::split(path, ctx.settings.clone())?;
        let s: JwtSettings = deserialize_section(path, rest)?;
        let mut p = Problems::new();
        let defaults = KindDefaults {
            voice: VOICE,
            min_token_size: 64,
            mashery_status: StatusCode::FORBIDDEN,
        };
        let common = p.check_all(Common::compile(&ctx.name, path, &common, defaults));
        let rules = p.check_all(Rules::compile(path, &s));
        let plan = rules
            .as_ref()
            .and_then(|r| p.check_all(KeyPlan::compile(path, &s, r)));
        let claims_header = match &s.forward_claims_header {
            None => Some(None),
            Some(h) => p
                .check(HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                    ConfigError::new(
                        format!("{path}.forward_claims_header"),
                        format!("\"{h}\" is not a valid header name"),
                    )
                }))
                .map(Some),
        };
        let f = p.check(self.families.get(path, || Families::new(&ctx.metrics)));
        let (((common, rules), (plan, claims_header)), f) =
            p.finish(common.zip(rules).zip(plan.zip(claims_header)).zip(f))?;
        self.assemble(&ctx.name, path, &s, common, rules, plan, claims_header, f)
            .await
            .map_err(ConfigErrors::from)
    }

    /// Starts the key store (first load, refresher, maintenance) and puts the
    /// connector together.
    #[allow(clippy::too_many_arguments)]
    async fn assemble(
        &self,
        name: &str,
        path: &str,
        s: &JwtSettings,
        common: Common,
        rules: Rules,
        plan: KeyPlan,
        claims_header: Option<HeaderName>,
        f: Families,
    ) -> Result<Arc<JwtConnector>, ConfigError> {
        let fetches_ok = f.fetches.with_label_values(&[name, "success"]);
        let fetches_err = f.fetches.with_label_values(&[name, "failure"]);
        let keys_gauge = f.keys.with_label_values(&[name]);
        let age_gauge = f.age.with_label_values(&[name]);
        let cache = cache::new(s.token_cache_size, s.token_cache_policy);

        let kg = keys_gauge.clone();
        let observer: store::FetchObserver = Arc::new(move |ok, n| {
            if ok { &fetches_ok } else { &fetches_err }.inc();
            kg.set(n as i64);
        });
        let cache_for_removal = cache.clone();
        let cname = name.to_string();
        let on_removed: Arc<dyn Fn(Vec<u64>) + Send + Sync> = Arc::new(move |removed: Vec<u64>| {
            tracing::info!(connector = %cname, removed = removed.len(), "keys removed from the key set; their cached tokens are dropped");
            if let Some(c) = &cache_for_removal {
                let _ = c.invalidate_entries_if(move |_, v: &Arc<cache::Entry>| {
                    removed.contains(&v.key)
                });
            }
        });
        let refresh = plan.settings.refresh;
        let store = Arc::new(KeyStore::new(
            name,
            plan.source,
            plan.settings,
            observer,
            on_removed,
        ));
        if let Some(set) = plan.initial {
            keys_gauge.set(set.keys.len() as i64);
            store.set(set);
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
                other => other.map(|_| ()).map_err(|e| e.to_string()),
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
                    return Err(ConfigError::new(
                        format!("{path}.{key}"),
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
                refresh
            } else {
                Duration::from_secs(1)
            };
            tasks.push(AbortOnDrop(tokio::spawn(store.clone().refresh_loop(first))));
        }
        let entries = f.cache_entries.with_label_values(&[name]);
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

        let mut injected = common.injector.headers().to_vec();
        if let Some(h) = &claims_header {
            injected.push(h.clone());
        }
        Ok(Arc::new(JwtConnector {
            name: name.to_string(),
            rules,
            common,
            store,
            claims_header,
            forward: s.forward_authorization,
            cache,
            injected,
            m: f.handles(name),
            _tasks: tasks,
        }))
    }
}

#[cfg(test)]
mod tests;
