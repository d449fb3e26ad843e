//! Shared-cache metric families and the handles of one cache.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The families, registered once per registry.
#[derive(Clone)]
pub struct Families {
    requests: IntCounterVec,
    duration: HistogramVec,
    breaker: IntGaugeVec,
}

impl Families {
    /// Creates and registers the families in `r`.
    pub fn new(r: &prometheus::Registry) -> prometheus::Result<Self> {
        let f = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "gatehouse_shared_cache_requests_total",
                    "Shared-cache (Redis) operations, by cache, op (get/set/lock) and result \
                     (hit/miss/garbage for get; ok; acquired/held/released for lock; error/timeout/skipped).",
                ),
                &["cache", "op", "result"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "gatehouse_shared_cache_duration_seconds",
                    "Shared-cache operation latency (bounded by the cache's timeout), by cache and op.",
                )
                .buckets(BUCKETS.to_vec()),
                &["cache", "op"],
            )?,
            breaker: IntGaugeVec::new(
                Opts::new(
                    "gatehouse_shared_cache_breaker_open",
                    "1 while the cache's circuit breaker skips Redis after repeated failures.",
                ),
                &["cache"],
            )?,
        };
        r.register(Box::new(f.requests.clone()))?;
        r.register(Box::new(f.duration.clone()))?;
        r.register(Box::new(f.breaker.clone()))?;
        Ok(f)
    }

    /// The handles of cache `name`.
    pub fn cache(&self, name: &str) -> Handles {
        let op = |op: &str, results: &[&str]| OpHandles {
            by_result: results
                .iter()
                .map(|r| {
                    (
                        r.to_string(),
                        self.requests.with_label_values(&[name, op, r]),
                    )
                })
                .collect(),
            duration: self.duration.with_label_values(&[name, op]),
        };
        const COMMON: [&str; 3] = ["error", "timeout", "skipped"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            extra.iter().copied().chain(COMMON).collect()
        };
        let breaker = self.breaker.with_label_values(&[name]);
        breaker.set(0);
        Handles {
            get: op("get", &with(&["hit", "miss", "garbage"])),
            set: op("set", &with(&["ok"])),
            lock: op("lock", &with(&["acquired", "held", "released"])),
            limit: op("limit", &with(&["ok"])),
            breaker,
        }
    }
}

/// One operation's counters and latency.
pub struct OpHandles {
    by_result: Vec<(String, IntCounter)>,
    /// Latency.
    pub duration: Histogram,
}

impl OpHandles {
    /// Counts one operation ending with `result` (one of the op's labels).
    pub fn count(&self, result: &str) {
        if let Some((_, c)) = self.by_result.iter().find(|(r, _)| r == result) {
            c.inc();
        }
    }
}

/// The handles of one cache.
pub struct Handles {
    /// `GET` (bounded `GETRANGE`).
    pub get: OpHandles,
    /// `SET … PX`.
    pub set: OpHandles,
    /// `SET … NX PX` (fleet single flight).
    pub lock: OpHandles,
    /// The request-limit script (`[limits.NAME] store`).
    pub limit: OpHandles,
    /// Breaker state.
    pub breaker: IntGauge,
}
