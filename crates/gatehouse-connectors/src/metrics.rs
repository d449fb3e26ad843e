//! Metric helpers shared by connectors and the proxy.

use crate::Reason;
use prometheus::{IntCounter, IntCounterVec};
use std::sync::OnceLock;

/// Counters of one family whose last label is a [`Reason`]: the other label
/// values are fixed at construction, and each reason's counter is resolved on
/// its first use, then reused (no family lookup on the hot path, and no series
/// for reasons that never happen).
pub struct ReasonCounters {
    family: IntCounterVec,
    labels: Vec<String>,
    by_reason: [OnceLock<IntCounter>; Reason::ALL.len()],
}

impl ReasonCounters {
    /// Counters of `family` with the leading label values `labels`.
    pub fn new(family: IntCounterVec, labels: &[&str]) -> Self {
        Self {
            family,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            by_reason: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Counts one `reason`.
    pub fn inc(&self, reason: Reason) {
        self.by_reason[reason.index()]
            .get_or_init(|| {
                let mut values: Vec<&str> = self.labels.iter().map(String::as_str).collect();
                values.push(reason.as_str());
                self.family.with_label_values(&values)
            })
            .inc();
    }
}
