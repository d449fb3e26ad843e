//! `[limits.NAME]`: request rates (GCRA) and calendar quotas keyed on a
//! verified identity or the trusted client address, checked on the routes
//! that list them after their connectors allowed.

use crate::{check_name, known, CacheConfig, CacheKind, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a limit counts by.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
pub enum LimitKey {
    /// The `consumer` of the identity the route's connectors verified (an
    /// `api_key` entry).
    Consumer,
    /// The address Gatehouse trusts for the client (`trusted_proxies`).
    ClientIp,
    /// A header a step of the route injected (client copies are stripped).
    Header(String),
    /// A top-level member of the verified identity (a JWT claim).
    Claim(String),
}

impl<'de> Deserialize<'de> for LimitKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Table(BTreeMap<String, String>),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "consumer" => Ok(LimitKey::Consumer),
            Raw::Word(w) if w == "client_ip" => Ok(LimitKey::ClientIp),
            Raw::Word(w) => Err(D::Error::custom(format!(
                "\"{w}\" is not a key: use \"consumer\", \"client_ip\", {{ header = \"…\" }} or {{ claim = \"…\" }}"
            ))),
            Raw::Table(t) if t.len() == 1 => {
                let (k, v) = t.into_iter().next().ok_or_else(|| D::Error::custom("empty"))?;
                if v.is_empty() {
                    return Err(D::Error::custom(format!("{k} must not be empty")));
                }
                match k.as_str() {
                    "header" => Ok(LimitKey::Header(v)),
                    "claim" => Ok(LimitKey::Claim(v)),
                    _ => Err(D::Error::custom(format!(
                        "unknown key source `{k}`: use header or claim"
                    ))),
                }
            }
            Raw::Table(_) => Err(D::Error::custom(
                "a key table has exactly one of header, claim",
            )),
        }
    }
}

/// `on_store_error`: what a request gets when the shared store fails.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Count in this replica until the store answers again (default).
    #[default]
    Local,
    /// Let the request through uncounted.
    Allow,
    /// Refuse it (503).
    Deny,
}

/// Usage headers on answers.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageHeaders {
    /// `RateLimit-Policy` and `RateLimit` (IETF httpapi draft).
    #[default]
    Ietf,
    /// Mashery's `X-Plan-Qps-*` and `X-Plan-Quota-*`.
    Mashery,
    /// None.
    None,
}

/// How a refusal looks.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitErrorStyle {
    /// 429 with `Retry-After` and a JSON body.
    #[default]
    Default,
    /// 403 with `X-Mashery-Error-Code` (`ERR_403_DEVELOPER_OVER_QPS` /
    /// `ERR_403_DEVELOPER_OVER_RATE`).
    Mashery,
}

/// Numbers of a limit (the default, or a plan's).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitNumbers {
    /// `"N/s"`, `"N/min"` or `"N/h"` (GCRA).
    #[serde(default)]
    pub rate: Option<String>,
    /// Requests allowed at once above the steady rate (default: the rate's N).
    #[serde(default)]
    pub burst: Option<u32>,
    /// `"N/hour"`, `"N/day"` or `"N/month"`: calendar periods in UTC.
    #[serde(default)]
    pub quota: Option<String>,
}

/// `[limits.NAME]` as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// What is counted: `"consumer"`, `"client_ip"`, `{ header = … }`, `{ claim = … }`.
    pub key: LimitKey,
    /// The default numbers.
    #[serde(flatten)]
    pub numbers: LimitNumbers,
    /// A `[caches.NAME]` of kind `redis`: counts shared by every replica.
    /// Absent: this replica counts alone.
    #[serde(default)]
    pub store: Option<String>,
    /// When the shared store fails.
    #[serde(default)]
    pub on_store_error: OnStoreError,
    /// Usage headers on every answer of the route.
    #[serde(default)]
    pub headers: UsageHeaders,
    /// How a refusal looks.
    #[serde(default)]
    pub error_style: LimitErrorStyle,
    /// The member of the verified identity naming the plan (default `plan`).
    #[serde(default = "d_plan_claim")]
    pub plan_claim: String,
    /// Numbers per plan (the plan read from `plan_claim`).
    #[serde(default)]
    pub plans: BTreeMap<String, LimitNumbers>,
    /// Most keys a replica keeps counts for (the least recently used are
    /// dropped past it).
    #[serde(default = "d_max_keys")]
    pub max_keys: u64,
}

fn d_plan_claim() -> String {
    "plan".into()
}

fn d_max_keys() -> u64 {
    100_000
}

/// A rate: `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests.
    pub count: u32,
    /// Per this long.
    pub period: Duration,
}

/// A quota's calendar period (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// Clock hours.
    Hour,
    /// Calendar days.
    Day,
    /// Calendar months.
    Month,
}

impl QuotaPeriod {
    /// `hour`, `day`, `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Hour => "hour",
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
        }
    }
}

/// A quota: `count` requests per calendar `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests.
    pub count: u64,
    /// Per this period.
    pub period: QuotaPeriod,
}

/// Numbers, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Numbers {
    /// The rate and its burst.
    pub rate: Option<(Rate, u32)>,
    /// The quota.
    pub quota: Option<Quota>,
}

fn split_count(s: &str) -> Option<(u64, &str)> {
    let (n, unit) = s.trim().split_once('/')?;
    let n: u64 = n.trim().replace('_', "").parse().ok()?;
    Some((n, unit.trim()))
}

/// Parses `"N/s"`, `"N/min"`, `"N/h"`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let bad = || format!("\"{s}\" is not a rate: use \"N/s\", \"N/min\" or \"N/h\" with N ≥ 1");
    let (n, unit) = split_count(s).ok_or_else(bad)?;
    let period = match unit {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    let count = u32::try_from(n)
        .ok()
        .filter(|n| (1..=1_000_000).contains(n));
    let count = count.ok_or_else(|| format!("{s}: N must be between 1 and 1000000"))?;
    Ok(Rate { count, period })
}

/// Parses `"N/hour"`, `"N/day"`, `"N/month"`.
pub fn parse_quota(s: &str) -> Result<Quota, String> {
    let bad =
        || format!("\"{s}\" is not a quota: use \"N/hour\", \"N/day\" or \"N/month\" with N ≥ 1");
    let (count, unit) = split_count(s).ok_or_else(bad)?;
    let period = match unit {
        "hour" | "h" => QuotaPeriod::Hour,
        "day" | "d" => QuotaPeriod::Day,
        "month" => QuotaPeriod::Month,
        _ => return Err(bad()),
    };
    if count == 0 || count > 1_000_000_000_000 {
        return Err(format!("{s}: N must be between 1 and 10^12"));
    }
    Ok(Quota { count, period })
}

impl LimitNumbers {
    /// Parses the numbers at `path`, reporting every error.
    pub fn parse(&self, path: &str, errs: &mut Vec<ConfigError>) -> Numbers {
        let rate = self.rate.as_deref().and_then(|r| match parse_rate(r) {
            Ok(r) => Some(r),
            Err(m) => {
                errs.push(ConfigError::new(format!("{path}.rate"), m));
                None
            }
        });
        let quota = self.quota.as_deref().and_then(|q| match parse_quota(q) {
            Ok(q) => Some(q),
            Err(m) => {
                errs.push(ConfigError::new(format!("{path}.quota"), m));
                None
            }
        });
        if let Some(b) = self.burst {
            if self.rate.is_none() {
                errs.push(ConfigError::new(
                    format!("{path}.burst"),
                    "a burst needs a rate",
                ));
            } else if !(1..=1_000_000).contains(&b) {
                errs.push(ConfigError::new(
                    format!("{path}.burst"),
                    format!("must be between 1 and 1000000, got {b}"),
                ));
            }
        }
        Numbers {
            rate: rate.map(|r| (r, self.burst.unwrap_or(r.count).max(1))),
            quota,
        }
    }
}

impl LimitConfig {
    /// Checks the section (at `limits.NAME`) against the caches.
    pub(crate) fn validate(
        &self,
        name: &str,
        caches: &BTreeMap<String, CacheConfig>,
        errs: &mut Vec<ConfigError>,
    ) {
        let p = format!("limits.{name}");
        check_name(&p, name, errs);
        let n = self.numbers.parse(&p, errs);
        let _ = n;
        if self.numbers.rate.is_none() && self.numbers.quota.is_none() {
            errs.push(ConfigError::new(&p, "set a rate, a quota, or both"));
        }
        for (plan, nums) in &self.plans {
            let pp = format!("{p}.plans.{plan}");
            nums.parse(&pp, errs);
            if nums.rate.is_none() && nums.quota.is_none() {
                errs.push(ConfigError::new(pp, "set a rate, a quota, or both"));
            }
        }
        if let Some(s) = &self.store {
            match caches.get(s) {
                Some(c) if c.kind == CacheKind::Redis => {}
                Some(_) => errs.push(ConfigError::new(
                    format!("{p}.store"),
                    format!("[caches.{s}] is not of kind \"redis\""),
                )),
                None => errs.push(ConfigError::new(
                    format!("{p}.store"),
                    format!("no [caches.{s}] (known: {})", known(caches.keys())),
                )),
            }
        }
        if !(100..=10_000_000).contains(&self.max_keys) {
            errs.push(ConfigError::new(
                format!("{p}.max_keys"),
                format!("must be between 100 and 10000000, got {}", self.max_keys),
            ));
        }
        if self.plan_claim.is_empty() {
            errs.push(ConfigError::new(
                format!("{p}.plan_claim"),
                "must not be empty",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rates_and_quotas_parse_and_refuse_nonsense() {
        assert_eq!(
            parse_rate("10/s").unwrap(),
            Rate {
                count: 10,
                period: Duration::from_secs(1)
            }
        );
        assert_eq!(
            parse_rate(" 600 / min ").unwrap().period,
            Duration::from_secs(60)
        );
        assert_eq!(parse_quota("100_000/day").unwrap().count, 100_000);
        assert_eq!(parse_quota("5/month").unwrap().period, QuotaPeriod::Month);
        for bad in ["10", "0/s", "10/fortnight", "-1/s", "x/s", "2000000/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        for bad in ["10/s", "0/day", "10/week"] {
            assert!(parse_quota(bad).is_err(), "{bad}");
        }
    }
}
