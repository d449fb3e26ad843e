//! `oidc_userinfo` metric families and the handles one connector uses.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The families, registered once per registry.
#[derive(Clone)]
pub(super) struct Families {
    requests: IntCounterVec,
    duration: HistogramVec,
    cache: IntCounterVec,
    inflight: IntGaugeVec,
    waiting: IntGaugeVec,
    overload: IntCounterVec,
}

impl Families {
    /// Creates and registers the families in `r`.
    pub(super) fn new(r: &prometheus::Registry) -> prometheus::Result<Self> {
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
                Opts::new("gatehouse_userinfo_cache_requests_total", "Userinfo cache lookups, by connector and result (hit/miss/negative_hit/stale; with a shared cache, misses go on as l2_hit/l2_miss/l2_waited)."),
                &["connector", "result"],
            )?,
            inflight: IntGaugeVec::new(Opts::new("gatehouse_userinfo_inflight", "Userinfo calls in flight, by connector."), &["connector"])?,
            waiting: IntGaugeVec::new(Opts::new("gatehouse_userinfo_calls_waiting", "Userinfo calls waiting for a slot (max_inflight reached), by connector."), &["connector"])?,
            overload: IntCounterVec::new(
                Opts::new("gatehouse_userinfo_calls_refused_total", "Userinfo calls not made because a bound was reached, by connector and reason (queue: max_inflight running and max_queued waiting; wait: no slot within timeout; rate: max_calls_per_second)."),
                &["connector", "reason"],
            )?,
        };
        r.register(Box::new(f.requests.clone()))?;
        r.register(Box::new(f.duration.clone()))?;
        r.register(Box::new(f.cache.clone()))?;
        r.register(Box::new(f.inflight.clone()))?;
        r.register(Box::new(f.waiting.clone()))?;
        r.register(Box::new(f.overload.clone()))?;
        Ok(f)
    }

    /// The handles of one endpoint of connector `name`.
    pub(super) fn endpoint(&self, name: &str, label: &str) -> EndpointMetrics {
        EndpointMetrics {
            ok: self.requests.with_label_values(&[name, label, "ok"]),
            rejected: self.requests.with_label_values(&[name, label, "rejected"]),
            error: self.requests.with_label_values(&[name, label, "error"]),
            duration: self.duration.with_label_values(&[name, label]),
        }
    }

    /// The cache and in-flight handles of connector `name`.
    pub(super) fn connector(&self, name: &str) -> ConnectorMetrics {
        ConnectorMetrics {
            hit: self.cache.with_label_values(&[name, "hit"]),
            miss: self.cache.with_label_values(&[name, "miss"]),
            negative_hit: self.cache.with_label_values(&[name, "negative_hit"]),
            stale_hit: self.cache.with_label_values(&[name, "stale"]),
            l2_hit: self.cache.with_label_values(&[name, "l2_hit"]),
            l2_miss: self.cache.with_label_values(&[name, "l2_miss"]),
            l2_waited: self.cache.with_label_values(&[name, "l2_waited"]),
            inflight: self.inflight.with_label_values(&[name]),
            waiting: self.waiting.with_label_values(&[name]),
            refused: ["queue", "wait", "rate"].map(|r| self.overload.with_label_values(&[name, r])),
        }
    }
}

/// Calls to one endpoint.
pub(super) struct EndpointMetrics {
    /// Answered 200 (valid, whatever the gate then decided).
    pub ok: IntCounter,
    /// Answered 4xx.
    pub rejected: IntCounter,
    /// No usable answer.
    pub error: IntCounter,
    /// Latency.
    pub duration: Histogram,
}

/// Cache lookups and calls in flight of one connector.
pub(super) struct ConnectorMetrics {
    /// Fresh hits of valid answers.
    pub hit: IntCounter,
    /// Misses (an IdP call follows).
    pub miss: IntCounter,
    /// Fresh hits of IdP rejections.
    pub negative_hit: IntCounter,
    /// Stale answers served while the IdP failed.
    pub stale_hit: IntCounter,
    /// Misses answered by the shared cache.
    pub l2_hit: IntCounter,
    /// Misses the shared cache could not answer either.
    pub l2_miss: IntCounter,
    /// Answers another replica fetched while this one waited on the lock.
    pub l2_waited: IntCounter,
    /// Calls in flight.
    pub inflight: IntGauge,
    /// Calls waiting for a slot.
    pub waiting: IntGauge,
    /// Calls refused, by [`crate::kit::limiter::Overload`] (queue, wait, rate).
    pub refused: [IntCounter; 3],
}
