//! Process-wide state shared by the proxy, the admin listener and the reloader.

use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The serving snapshot plus lifecycle flags and counters.
pub struct State {
    current: ArcSwap<Snapshot>,
    /// Metric families and registry.
    pub metrics: Metrics,
    shutting_down: AtomicBool,
    listening: AtomicBool,
    signals: AtomicBool,
    inflight: AtomicUsize,
}

impl State {
    /// State serving `initial`.
    pub fn new(initial: Snapshot, metrics: Metrics) -> Self {
        metrics.generation.set(initial.generation as i64);
        Self {
            current: ArcSwap::from_pointee(initial),
            metrics,
            shutting_down: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            signals: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
        }
    }

    /// The snapshot now serving (one atomic load and reference-count bump).
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Atomically replaces the serving snapshot; in-flight requests keep theirs.
    pub fn swap(&self, next: Snapshot) {
        let generation = next.generation as i64;
        self.current.store(Arc::new(next));
        // Published only once the new snapshot serves, so a scraper that sees
        // the new generation can rely on it.
        self.metrics.generation.set(generation);
    }

    /// Marks the process as draining (`/readyz` answers 503).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Records that every proxy listener accepts connections.
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::SeqCst);
    }

    /// Records that the shutdown signal handlers are installed.
    pub fn set_signals_installed(&self) {
        self.signals.store(true, Ordering::SeqCst);
    }

    /// True once every proxy listener accepts connections and `SIGTERM` /
    /// `SIGINT` are handled (before that, a signal would kill the process
    /// instead of draining it, so the process does not report ready).
    pub fn is_started(&self) -> bool {
        self.listening.load(Ordering::SeqCst) && self.signals.load(Ordering::SeqCst)
    }

    /// True once draining started.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Counts a request in.
    pub fn request_started(&self) {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        self.metrics.inflight.inc();
    }

    /// Counts a request out.
    pub fn request_finished(&self) {
        self.inflight.fetch_sub(1, Ordering::SeqCst);
        self.metrics.inflight.dec();
    }

    /// Requests being processed now.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }
}
