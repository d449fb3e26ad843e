//! `jwt` metric families and the handles one connector uses.

use crate::metrics::ReasonCounters;
use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts};

/// The families, registered once per registry.
#[derive(Clone)]
pub(super) struct Families {
    pub(super) validations: IntCounterVec,
    pub(super) cache_requests: IntCounterVec,
    pub(super) cache_entries: IntGaugeVec,
    pub(super) fetches: IntCounterVec,
    pub(super) keys: IntGaugeVec,
    pub(super) age: GaugeVec,
}

impl Families {
    /// Creates and registers the families in `r`.
    pub(super) fn new(r: &prometheus::Registry) -> prometheus::Result<Self> {
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

    /// The request-path handles of connector `name`.
    pub(super) fn handles(&self, name: &str) -> Handles {
        Handles {
            valid: self.validations.with_label_values(&[name, "valid", "none"]),
            invalid: ReasonCounters::new(self.validations.clone(), &[name, "invalid"]),
            hit: self.cache_requests.with_label_values(&[name, "hit"]),
            miss: self.cache_requests.with_label_values(&[name, "miss"]),
        }
    }
}

/// Request-path handles of one connector.
pub(super) struct Handles {
    /// Valid tokens.
    pub valid: IntCounter,
    /// Refusals, by reason.
    pub invalid: ReasonCounters,
    /// Cache hits.
    pub hit: IntCounter,
    /// Cache misses.
    pub miss: IntCounter,
}
