//! Bounds on the calls a connector makes to a remote service (an identity
//! provider): how many run at once, how many may wait for a slot, and how
//! many may start per second. A client without a valid token can make every
//! request a cache miss (a new random token each time); without these
//! bounds each one would be an outbound call.
//!
//! Over a bound the call is not made and the caller answers as for an
//! unavailable IdP (503 with `Retry-After`; a stale answer may still serve).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The configured bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls running at once (at least 1).
    pub max_inflight: usize,
    /// Calls waiting for a slot; more are refused at once.
    pub max_queued: usize,
    /// Calls started per second (a token bucket as deep as one second);
    /// 0: no rate bound.
    pub max_per_second: u32,
}

/// Why a call was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// `max_inflight` calls run and `max_queued` wait.
    Queue,
    /// No slot freed within the wait bound.
    Wait,
    /// `max_per_second` calls started in the last second.
    Rate,
}

impl Overload {
    /// Why, in words (the IdP-unavailable description).
    pub fn describe(self) -> &'static str {
        match self {
            Overload::Queue => "too many identity-provider calls are running and waiting",
            Overload::Wait => "no identity-provider call slot freed in time",
            Overload::Rate => "too many new identity-provider calls per second",
        }
    }
}

/// A token bucket refilled at `rate` per second, `rate` deep.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The limiter of one connector.
#[derive(Debug)]
pub struct CallLimiter {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_queued: usize,
    bucket: Option<Mutex<Bucket>>,
}

/// A slot: the call may run while it is held.
#[derive(Debug)]
pub struct Slot<'a>(#[allow(dead_code)] SemaphorePermit<'a>);

/// Counts a waiter while it waits (also when the waiting request goes away).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CallLimiter {
    /// A limiter with these bounds.
    pub fn new(limits: Limits) -> Self {
        let rate = f64::from(limits.max_per_second);
        Self {
            slots: Semaphore::new(limits.max_inflight.max(1)),
            waiting: AtomicUsize::new(0),
            max_queued: limits.max_queued,
            bucket: (limits.max_per_second > 0).then(|| {
                Mutex::new(Bucket {
                    rate,
                    tokens: rate,
                    at: Instant::now(),
                })
            }),
        }
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// A slot for one call: at once if one is free, else after waiting at
    /// most `wait` among at most `max_queued` waiters.
    pub async fn acquire(&self, wait: Duration) -> Result<Slot<'_>, Overload> {
        if let Some(b) = &self.bucket {
            let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
            if !b.take(Instant::now()) {
                return Err(Overload::Rate);
            }
        }
        if let Ok(p) = self.slots.try_acquire() {
            return Ok(Slot(p));
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.max_queued {
            return Err(Overload::Queue);
        }
        match tokio::time::timeout(wait, self.slots.acquire()).await {
            Ok(Ok(p)) => Ok(Slot(p)),
            _ => Err(Overload::Wait),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limiter(max_inflight: usize, max_queued: usize, max_per_second: u32) -> CallLimiter {
        CallLimiter::new(Limits {
            max_inflight,
            max_queued,
            max_per_second,
        })
    }

    #[tokio::test]
    async fn slots_then_a_bounded_queue_then_refusal() {
        let l = limiter(2, 1, 0);
        let a = l.acquire(Duration::from_secs(5)).await.unwrap();
        let _b = l.acquire(Duration::from_secs(5)).await.unwrap();
        // The third waits (the queue holds one) ...
        let waiter = l.acquire(Duration::from_secs(30));
        tokio::pin!(waiter);
        assert!(futures_poll_once(&mut waiter).await.is_none());
        assert_eq!(l.waiting(), 1);
        // ... the fourth is refused at once.
        assert_eq!(
            l.acquire(Duration::from_secs(5)).await.unwrap_err(),
            Overload::Queue
        );
        assert_eq!(l.waiting(), 1);
        // A slot frees: the waiter gets it.
        drop(a);
        assert!(waiter.await.is_ok());
        assert_eq!(l.waiting(), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_leaves_the_queue() {
        let l = limiter(1, 4, 0);
        let _a = l.acquire(Duration::from_secs(5)).await.unwrap();
        {
            let w = l.acquire(Duration::from_secs(30));
            tokio::pin!(w);
            assert!(futures_poll_once(&mut w).await.is_none());
            assert_eq!(l.waiting(), 1);
        }
        assert_eq!(l.waiting(), 0);
    }

    #[tokio::test]
    async fn waiting_is_bounded_in_time() {
        let l = limiter(1, 4, 0);
        let _a = l.acquire(Duration::from_secs(5)).await.unwrap();
        // The slot is never freed: the wait ends with its bound (a short one,
        // so the test does not depend on how long it takes).
        assert_eq!(
            l.acquire(Duration::from_millis(20)).await.unwrap_err(),
            Overload::Wait
        );
        assert_eq!(l.waiting(), 0);
    }

    #[test]
    fn the_rate_bucket_refills_per_second() {
        let start = Instant::now();
        let mut b = Bucket {
            rate: 3.0,
            tokens: 3.0,
            at: start,
        };
        assert!((0..3).all(|_| b.take(start)));
        assert!(!b.take(start));
        assert!(b.take(start + Duration::from_millis(340)));
        assert!(!b.take(start + Duration::from_millis(340)));
        // Never deeper than one second of calls.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take(later)));
        assert!(!b.take(later));
    }

    #[tokio::test]
    async fn the_rate_bound_refuses_before_taking_a_slot() {
        let l = limiter(8, 8, 2);
        let _a = l.acquire(Duration::from_secs(1)).await.unwrap();
        let _b = l.acquire(Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            l.acquire(Duration::from_secs(1)).await.unwrap_err(),
            Overload::Rate
        );
    }

    /// Polls `f` once: `Some` if it completed.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        use std::task::Poll;
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }
}
