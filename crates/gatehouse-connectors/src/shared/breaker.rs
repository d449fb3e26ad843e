//! A circuit breaker in front of Redis: after `threshold` consecutive
//! failures, Redis is skipped for `cooldown`; then requests try again (the
//! first failure re-opens it, the first success closes it).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The breaker; lock-free.
pub(super) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    /// Nanoseconds since `epoch` until which Redis is skipped (0: closed).
    open_until: AtomicU64,
    epoch: Instant,
}

impl Breaker {
    /// A closed breaker.
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// True while Redis is to be skipped.
    pub(super) fn is_open(&self) -> bool {
        self.now() < self.open_until.load(Ordering::Relaxed)
    }

    /// Records a success: closes the breaker. Returns true if it was open
    /// or half-open (state changed).
    pub(super) fn success(&self) -> bool {
        let was = self.failures.swap(0, Ordering::Relaxed) >= self.threshold;
        self.open_until.store(0, Ordering::Relaxed);
        was
    }

    /// Records a failure. Returns true when this failure opened the breaker.
    pub(super) fn failure(&self) -> bool {
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n >= self.threshold {
            let until = self
                .now()
                .saturating_add(u64::try_from(self.cooldown.as_nanos()).unwrap_or(u64::MAX));
            self.open_until.store(until, Ordering::Relaxed);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_on_success() {
        let b = Breaker::new(3, Duration::from_secs(3600));
        assert!(!b.failure() && !b.failure());
        assert!(!b.is_open());
        assert!(!b.success(), "closing a closed breaker changes nothing");
        assert!(!b.failure() && !b.failure(), "a success resets the count");
        assert!(b.failure(), "the third consecutive failure opens it");
        assert!(b.is_open());
        assert!(b.success());
        assert!(!b.is_open());
    }

    #[test]
    fn half_open_after_the_cooldown_and_one_failure_reopens() {
        let b = Breaker::new(2, Duration::ZERO);
        b.failure();
        assert!(b.failure());
        assert!(!b.is_open(), "a zero cooldown has passed: half-open");
        assert!(b.failure(), "one failure while half-open re-opens it");
    }
}
