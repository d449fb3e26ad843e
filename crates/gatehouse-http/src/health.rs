//! Peer health and peer choice: the pure part of an upstream cluster. The
//! clock is passed in and nothing here locks, spawns or connects; the
//! proxy's upstreams (peers with a Pingora `HttpPeer`, DNS re-resolution,
//! active checks) hold a [`PeerHealth`] per peer and choose with [`pick`].

use std::time::{Duration, Instant};

/// Passive-health settings of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassivePolicy {
    /// Consecutive connect failures that take a peer out.
    pub unhealthy_after: u32,
    /// How long a peer taken out is skipped.
    pub cooldown: Duration,
}

/// Active-check thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePolicy {
    /// Consecutive successes that bring a peer back.
    pub healthy_threshold: u32,
    /// Consecutive failures that take a peer out.
    pub unhealthy_threshold: u32,
}

/// The health of one peer: a pure state machine (the clock is passed in).
///
/// A peer is *available* unless an active check marked it down, or its
/// consecutive connect failures reached the threshold less than a cool-down
/// ago. When the cool-down ends the peer is tried again; one more failure
/// takes it out for another cool-down, one success resets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerHealth {
    failures: u32,
    down_until: Option<Instant>,
    probe_down: bool,
    probe_streak: u32,
}

impl PeerHealth {
    /// True when the peer may be chosen at `now`.
    pub fn available(&self, now: Instant) -> bool {
        !self.probe_down && self.down_until.is_none_or(|t| now >= t)
    }

    /// Records a failed connection attempt.
    pub fn connect_failed(&mut self, now: Instant, p: PassivePolicy) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= p.unhealthy_after && self.down_until.is_none_or(|t| now >= t) {
            self.down_until = Some(now + p.cooldown);
        }
    }

    /// True when there is no connect-failure streak nor cool-down to end (a
    /// success would change nothing).
    pub fn is_clean(&self) -> bool {
        self.failures == 0 && self.down_until.is_none()
    }

    /// Records a successful connection: the failure streak ends.
    pub fn connected(&mut self) {
        self.failures = 0;
        self.down_until = None;
    }

    /// Records the result of an active check.
    pub fn probed(&mut self, ok: bool, p: ProbePolicy) {
        if ok != self.probe_down {
            // The verdict stands.
            self.probe_streak = 0;
            return;
        }
        self.probe_streak = self.probe_streak.saturating_add(1);
        if self.probe_down && self.probe_streak >= p.healthy_threshold {
            self.probe_down = false;
            self.probe_streak = 0;
            self.connected();
        } else if !self.probe_down && self.probe_streak >= p.unhealthy_threshold {
            self.probe_down = true;
            self.probe_streak = 0;
        }
    }
}

/// Index of the peer to use among `n`, starting the round-robin at `start`:
/// the first available one not `tried`; else the first not `tried` (every
/// peer being down never refuses a request by itself); else (every peer
/// tried) the one at `start`.
pub fn pick(
    n: usize,
    start: usize,
    tried: impl Fn(usize) -> bool,
    available: impl Fn(usize) -> bool,
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let mut fallback = None;
    for k in 0..n {
        let i = (start + k) % n;
        if tried(i) {
            continue;
        }
        if available(i) {
            return Some(i);
        }
        fallback.get_or_insert(i);
    }
    Some(fallback.unwrap_or(start % n))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const P: PassivePolicy = PassivePolicy {
        unhealthy_after: 3,
        cooldown: Duration::from_secs(10),
    };

    #[test]
    fn passive_health_takes_a_peer_out_after_the_threshold_and_back_after_the_cooldown() {
        let t0 = Instant::now();
        let mut h = PeerHealth::default();
        assert!(h.available(t0));
        h.connect_failed(t0, P);
        h.connect_failed(t0, P);
        assert!(h.available(t0), "below the threshold");
        h.connect_failed(t0, P);
        assert!(!h.available(t0), "at the threshold");
        assert!(!h.available(t0 + Duration::from_secs(9)));
        let t1 = t0 + Duration::from_secs(10);
        assert!(h.available(t1), "tried again after the cool-down");
        // One more failure after the cool-down: out again at once.
        h.connect_failed(t1, P);
        assert!(!h.available(t1));
        assert!(h.available(t1 + Duration::from_secs(10)));
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let t0 = Instant::now();
        let mut h = PeerHealth::default();
        h.connect_failed(t0, P);
        h.connect_failed(t0, P);
        h.connected();
        h.connect_failed(t0, P);
        h.connect_failed(t0, P);
        assert!(h.available(t0), "the streak restarted");
        h.connect_failed(t0, P);
        h.connected();
        assert!(h.available(t0), "a success ends a cool-down");
    }

    #[test]
    fn clean_until_a_failure_and_again_after_a_success() {
        let t0 = Instant::now();
        let mut h = PeerHealth::default();
        assert!(h.is_clean());
        h.connect_failed(t0, P);
        assert!(!h.is_clean(), "a streak to end");
        h.connected();
        assert!(h.is_clean());
    }

    #[test]
    fn failures_during_a_cooldown_do_not_extend_it() {
        let t0 = Instant::now();
        let mut h = PeerHealth::default();
        for _ in 0..3 {
            h.connect_failed(t0, P);
        }
        h.connect_failed(t0 + Duration::from_secs(5), P);
        assert!(h.available(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn active_checks_use_their_thresholds() {
        let pp = ProbePolicy {
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        };
        let t = Instant::now();
        let mut h = PeerHealth::default();
        h.probed(false, pp);
        h.probed(false, pp);
        h.probed(true, pp);
        h.probed(false, pp);
        h.probed(false, pp);
        assert!(h.available(t), "the streak was broken");
        h.probed(false, pp);
        assert!(!h.available(t));
        h.probed(true, pp);
        assert!(!h.available(t));
        h.probed(false, pp);
        h.probed(true, pp);
        assert!(!h.available(t), "the streak was broken");
        h.probed(true, pp);
        assert!(h.available(t));
        // Back by checks: passive failures start from zero.
        h.connect_failed(t, P);
        assert!(h.available(t));
    }

    #[test]
    fn pick_round_robins_over_available_untried_peers() {
        let all = |_| true;
        let none = |_| false;
        let picks: Vec<usize> = (0..6).map(|s| pick(3, s, none, all).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        // Peer 1 down: skipped.
        let up = |i| i != 1;
        let picks: Vec<usize> = (0..6).map(|s| pick(3, s, none, up).unwrap()).collect();
        assert_eq!(picks, [0, 2, 2, 0, 2, 2]);
        // Peer 0 failed for this request: another one.
        assert_eq!(pick(3, 0, |i| i == 0, all), Some(1));
        assert_eq!(pick(3, 0, |i| i == 0, up), Some(2));
        assert_eq!(pick(0, 0, none, all), None);
    }

    #[test]
    fn pick_never_refuses_because_of_health_alone() {
        let down = |_| false;
        assert_eq!(pick(2, 0, |_| false, down), Some(0));
        assert_eq!(pick(2, 1, |_| false, down), Some(1));
        // An untried down peer is preferred to a tried one.
        assert_eq!(pick(2, 0, |i| i == 0, down), Some(1));
        // Everything tried: still one (the round-robin's).
        assert_eq!(pick(2, 1, |_| true, |_| true), Some(1));
    }
}
