//! Counts kept by this replica: a bounded map (least recently used keys go
//! first past `max_keys`, so keys an attacker can vary cannot grow it),
//! one small lock per key.

use super::{Counted, Plan};
use moka::sync::Cache;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct State {
    /// GCRA theoretical arrival time (µs); 0: none.
    tat_us: u64,
    /// Start (Unix s) of the quota period `used` counts in.
    period_start: u64,
    used: u64,
}

/// The local store of one limit.
pub(crate) struct Local {
    map: Cache<String, Arc<Mutex<State>>>,
}

impl Local {
    pub(crate) fn new(max_keys: u64) -> Self {
        Self {
            map: Cache::builder().max_capacity(max_keys).build(),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }

    /// Checks and, when both allow, counts one request of `key`.
    pub(crate) fn check(&self, _plan: &str, key: &str, plan: &Plan, now: u64) -> Counted {
        let entry = self
            .map
            .get_with_by_ref(key, || Arc::new(Mutex::new(State::default())));
        let mut st = entry.lock().unwrap_or_else(|e| e.into_inner());
        let now_s = now / 1_000_000;
        let rate = plan
            .rate
            .map(|g| g.check((st.tat_us > 0).then_some(st.tat_us), now));
        let rate_ok = rate.is_none_or(|r| r.allowed);
        let mut used = 0;
        let mut quota_ok = true;
        if let Some((q, period)) = plan.quota {
            let (start, _) = period.bounds(now_s);
            if st.period_start != start {
                st.period_start = start;
                st.used = 0;
            }
            used = st.used;
            quota_ok = used < q;
        }
        let mut tat_us = st.tat_us.max(now);
        if rate_ok && quota_ok {
            if let Some(r) = rate {
                st.tat_us = r.tat_us;
                tat_us = r.tat_us;
            }
            if plan.quota.is_some() {
                st.used += 1;
                used = st.used;
            }
        }
        Counted {
            rate_ok,
            quota_ok,
            tat_us,
            used,
        }
    }
}
