//! Request limits (`[limits.NAME]`, listed by routes): GCRA rates and UTC
//! calendar quotas, counted per verified identity (or trusted client
//! address) after the route's connectors allowed. Counts live in this
//! replica (`meter::local`) or, with `store`, in Redis for the whole fleet
//! (`meter::shared`: one script, one round trip, exact).

mod local;
mod shared;

use gatehouse_config::meter::{LimitErrorStyle, Numbers, OnStoreError, QuotaPeriod};
use gatehouse_config::{LimitConfig, LimitKey};
use gatehouse_connectors::shared::SharedCache;
use gatehouse_http::meter::{Gcra, Period, Usage};
use http::{HeaderName, HeaderValue};
use prometheus::IntCounter;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use gatehouse_config::meter::UsageHeaders;

/// The numbers of a limit, compiled: GCRA and the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The rate.
    pub rate: Option<Gcra>,
    /// The quota: (requests, period).
    pub quota: Option<(u64, Period)>,
}

impl Plan {
    fn of(n: Numbers) -> Self {
        Self {
            rate: n.rate.map(|(r, burst)| Gcra::new(r.count, r.period, burst)),
            quota: n.quota.map(|q| {
                (
                    q.count,
                    match q.period {
                        QuotaPeriod::Hour => Period::Hour,
                        QuotaPeriod::Day => Period::Day,
                        QuotaPeriod::Month => Period::Month,
                    },
                )
            }),
        }
    }
}

/// Why a request was limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Over the rate.
    Rate,
    /// Over the quota of the period.
    Quota,
}

/// One limit's decision for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Counted and let through.
    Allowed(Usage),
    /// Refused; retry after this many seconds.
    Limited(Over, u64, Usage),
    /// The shared store failed and `on_store_error = "deny"`.
    StoreDown,
    /// No key for this request (e.g. no consumer in the identity): not counted.
    Unkeyed,
}

/// What a store answered for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    rate_ok: bool,
    quota_ok: bool,
    /// Stored theoretical arrival time after the check (µs).
    tat_us: u64,
    /// Requests counted in the quota period (after the check).
    used: u64,
}

/// Counters of one limit.
#[derive(Clone)]
pub struct LimitMetrics {
    /// Allowed requests.
    pub allowed: IntCounter,
    /// Refused over the rate.
    pub over_rate: IntCounter,
    /// Refused over the quota.
    pub over_quota: IntCounter,
    /// Shared-store failures (each then handled by `on_store_error`).
    pub store_errors: IntCounter,
}

/// A `[limits.NAME]`, ready to count.
pub struct CompiledLimit {
    /// Its name (metric label, usage header names).
    pub name: String,
    /// The section it was built from (a reload that keeps it keeps the counts).
    pub config: LimitConfig,
    default: Plan,
    plans: HashMap<String, Plan>,
    /// `RateLimit-Policy` values of the default numbers and of each plan
    /// (they only change with the config).
    policy: Option<HeaderValue>,
    plan_policies: HashMap<String, HeaderValue>,
    local: local::Local,
    store: Option<Arc<SharedCache>>,
    m: LimitMetrics,
}

/// What identifies a request for the limits: the verified identity, the
/// headers the connectors set, the trusted client address.
pub struct Subject<'a> {
    /// The identity the connectors verified (the last allowing step's).
    pub identity: Option<&'a Value>,
    /// Headers the connectors set.
    pub injected: &'a [(HeaderName, HeaderValue)],
    /// The client address Gatehouse trusts.
    pub client: Option<IpAddr>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl CompiledLimit {
    /// Builds limit `name`; `store` is its `[caches.NAME]` when it has one.
    pub fn new(
        name: &str,
        config: &LimitConfig,
        store: Option<Arc<SharedCache>>,
        m: LimitMetrics,
    ) -> Self {
        let mut errs = Vec::new();
        let default = Plan::of(config.numbers.parse("", &mut errs));
        let plans: HashMap<String, Plan> = config
            .plans
            .iter()
            .map(|(k, n)| (k.clone(), Plan::of(n.parse("", &mut errs))))
            .collect();
        let policy_of = |p: &Plan| {
            let u = Usage {
                rate: p.rate.map(|g| (g.count, g.period, 0, 0)),
                quota: p.quota.map(|(q, period)| (q, 0, period, 0, 0)),
            };
            gatehouse_http::meter::ietf_headers(&[(name, u)])
                .and_then(|(policy, _)| HeaderValue::from_str(&policy).ok())
        };
        let plan_policies = plans
            .iter()
            .filter_map(|(k, p)| Some((k.clone(), policy_of(p)?)))
            .collect();
        Self {
            name: name.to_string(),
            config: config.clone(),
            policy: policy_of(&default),
            plan_policies,
            default,
            plans,
            local: local::Local::new(config.max_keys),
            store,
            m,
        }
    }

    /// The key of `s` for this limit (`None`: nothing to count by).
    fn key_of(&self, s: &Subject<'_>) -> Option<String> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match &self.config.key {
            LimitKey::Consumer => s.identity?.get("consumer").and_then(text),
            LimitKey::Claim(c) => s.identity?.get(c.as_str()).and_then(text),
            LimitKey::Header(h) => s
                .injected
                .iter()
                .rev()
                .find(|(n, _)| n.as_str().eq_ignore_ascii_case(h))
                .and_then(|(_, v)| v.to_str().ok().map(str::to_string)),
            LimitKey::ClientIp => s.client.map(|ip| ip.to_string()),
        }
    }

    /// The plan of `s` (its numbers; the default when it names none known).
    fn plan_of(&self, s: &Subject<'_>) -> (&str, Plan) {
        let named = s
            .identity
            .and_then(|d| d.get(self.config.plan_claim.as_str()))
            .and_then(Value::as_str);
        match named.and_then(|p| self.plans.get_key_value(p)) {
            Some((k, p)) => (k.as_str(), *p),
            None => ("", self.default),
        }
    }

    /// The `RateLimit-Policy` value of the numbers that apply to `s`.
    pub fn ietf_policy(&self, s: &Subject<'_>) -> Option<&HeaderValue> {
        match self.plan_of(s).0 {
            "" => self.policy.as_ref(),
            plan => self.plan_policies.get(plan),
        }
    }

    /// True when this limit counts by the client address.
    pub fn by_client_address(&self) -> bool {
        self.config.key == LimitKey::ClientIp
    }

    /// Counts the request of `s`.
    pub async fn check(&self, s: &Subject<'_>) -> Decision {
        let Some(key) = self.key_of(s) else {
            return Decision::Unkeyed;
        };
        let (plan_name, plan) = self.plan_of(s);
        let now = now_us();
        let counted = match &self.store {
            Some(store) => {
                match shared::check(store, &self.name, plan_name, &key, &plan, now).await {
                    Ok(c) => c,
                    Err(()) => {
                        self.m.store_errors.inc();
                        match self.config.on_store_error {
                            OnStoreError::Local => self.local.check(plan_name, &key, &plan, now),
                            OnStoreError::Allow => {
                                self.m.allowed.inc();
                                return Decision::Allowed(Usage::default());
                            }
                            OnStoreError::Deny => return Decision::StoreDown,
                        }
                    }
                }
            }
            None => self.local.check(plan_name, &key, &plan, now),
        };
        self.judge(&plan, counted, now)
    }

    fn judge(&self, plan: &Plan, c: Counted, now: u64) -> Decision {
        let now_s = now / 1_000_000;
        let usage = Usage {
            rate: plan.rate.map(|g| {
                let remaining = g.remaining(c.tat_us, now);
                let full = c.tat_us.saturating_sub(now).div_ceil(1_000_000);
                (g.count, g.period, remaining, full)
            }),
            quota: plan.quota.map(|(q, p)| {
                let (_, end) = p.bounds(now_s);
                (q, c.used.min(q), p, end, now_s)
            }),
        };
        if !c.rate_ok {
            self.m.over_rate.inc();
            let retry = plan
                .rate
                .map(|g| {
                    c.tat_us
                        .saturating_sub(now)
                        .saturating_sub(g.tolerance_us)
                        .div_ceil(1_000_000)
                        .max(1)
                })
                .unwrap_or(1);
            return Decision::Limited(Over::Rate, retry, usage);
        }
        if !c.quota_ok {
            self.m.over_quota.inc();
            let retry = plan
                .quota
                .map(|(_, p)| p.bounds(now_s).1.saturating_sub(now_s).max(1))
                .unwrap_or(1);
            return Decision::Limited(Over::Quota, retry, usage);
        }
        self.m.allowed.inc();
        Decision::Allowed(usage)
    }

    /// True when this limit counts in `store` (the same shared cache).
    pub fn same_store(&self, store: Option<&Arc<SharedCache>>) -> bool {
        match (&self.store, store) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Keys this replica counts now (its local store).
    pub fn local_keys(&self) -> u64 {
        self.local.len()
    }

    /// How a refusal of this limit looks.
    pub fn error_style(&self) -> LimitErrorStyle {
        self.config.error_style
    }
}

/// The client address Gatehouse trusts: the peer, or — when the peer is a
/// trusted proxy — the nearest untrusted address of its `X-Forwarded-For`.
pub fn trusted_client(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    is_trusted: impl Fn(Option<IpAddr>) -> bool,
) -> Option<IpAddr> {
    let peer = peer?;
    if !is_trusted(Some(peer)) {
        return Some(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(v) = v.to_str() else { return Some(peer) };
        for part in v.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => chain.push(ip),
                // An unparsable entry: nothing left of it can be trusted.
                Err(_) => chain.clear(),
            }
        }
    }
    Some(
        chain
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(Some(*ip)))
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests;
