//! Upstream clusters at run time: peers with a health state, a selection that
//! skips unhealthy and already-failed peers, and the work done off the request
//! path — re-resolving host names and active health checks — by tasks the
//! upstream owns (aborted when it is dropped, e.g. after a reload).

use crate::metrics::UpstreamMetrics;
use arc_swap::ArcSwap;
use gatehouse_config::{split_host_port, ConfigError, HealthCheckConfig, UpstreamConfig};
use pingora::upstreams::peer::HttpPeer;
use prometheus::IntGauge;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Longest wait for one DNS lookup of a peer name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

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

/// One address of an upstream.
pub struct Peer {
    /// The address.
    pub addr: SocketAddr,
    /// The prebuilt Pingora peer.
    pub http: HttpPeer,
    health: Mutex<PeerHealth>,
    gauge: IntGauge,
}

impl Peer {
    fn health(&self) -> std::sync::MutexGuard<'_, PeerHealth> {
        // The state stays consistent whatever panicked while holding it.
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut PeerHealth)) {
        let mut h = self.health();
        f(&mut h);
        self.gauge.set(i64::from(h.available(Instant::now())));
    }

    /// True when the peer may be chosen now.
    pub fn available(&self, now: Instant) -> bool {
        let h = self.health();
        let ok = h.available(now);
        // A cool-down that ended puts the peer back in rotation.
        if ok && self.gauge.get() == 0 {
            self.gauge.set(1);
        }
        ok
    }

    /// Records a failed connection attempt.
    pub fn connect_failed(&self, p: PassivePolicy) {
        self.update(|h| h.connect_failed(Instant::now(), p));
    }

    /// Records a successful connection.
    pub fn connected(&self) {
        // Read first: the common case (no failure streak) takes no write.
        let clean = {
            let h = self.health();
            h.failures == 0 && h.down_until.is_none()
        };
        if !clean {
            self.update(PeerHealth::connected);
        }
    }

    fn probed(&self, ok: bool, p: ProbePolicy) {
        self.update(|h| h.probed(ok, p));
    }
}

/// How a peer entry of the config is resolved.
#[derive(Debug, Clone)]
struct Entry {
    host: String,
    port: u16,
    literal: bool,
}

/// The addresses of every `peers` entry, resolved once (at load).
pub struct Resolved {
    by_entry: Vec<Vec<SocketAddr>>,
    sni_default: Option<String>,
}

fn entries(name: &str, cfg: &UpstreamConfig) -> Result<Vec<Entry>, ConfigError> {
    cfg.peers
        .iter()
        .enumerate()
        .map(|(i, peer)| {
            let path = format!("upstreams.{name}.peers[{i}]");
            let (host, port) = split_host_port(peer).map_err(|m| ConfigError::new(&path, m))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Ok(Entry {
                host: host.to_string(),
                port,
                literal: host.parse::<std::net::IpAddr>().is_ok(),
            })
        })
        .collect()
}

async fn lookup(e: &Entry) -> Result<Vec<SocketAddr>, String> {
    let found: Vec<SocketAddr> = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((e.host.as_str(), e.port)),
    )
    .await
    .map_err(|_| format!("no answer within {}s", RESOLVE_TIMEOUT.as_secs()))?
    .map_err(|err| err.to_string())?
    .collect();
    if found.is_empty() {
        return Err("resolved to no address".to_string());
    }
    Ok(found)
}

/// Resolves every peer entry (a config error names the entry at fault).
pub async fn resolve(name: &str, cfg: &UpstreamConfig) -> Result<Resolved, ConfigError> {
    let mut by_entry = Vec::with_capacity(cfg.peers.len());
    let mut sni_default = None;
    for (i, e) in entries(name, cfg)?.iter().enumerate() {
        let path = format!("upstreams.{name}.peers[{i}]");
        let peer = &cfg.peers[i];
        if !e.literal && sni_default.is_none() {
            sni_default = Some(e.host.clone());
        }
        let found = lookup(e)
            .await
            .map_err(|m| ConfigError::new(&path, format!("cannot resolve \"{peer}\": {m}")))?;
        by_entry.push(found);
    }
    Ok(Resolved {
        by_entry,
        sni_default,
    })
}

/// The distinct addresses of `by_entry`, in config order.
fn union(by_entry: &[Vec<SocketAddr>]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in by_entry.iter().flatten() {
        if !out.contains(a) {
            out.push(*a);
        }
    }
    out
}

/// What the background tasks share with the request path.
struct Shared {
    name: String,
    cfg: UpstreamConfig,
    sni: String,
    peers: ArcSwap<Vec<Arc<Peer>>>,
    next: AtomicUsize,
    passive: PassivePolicy,
    metrics: UpstreamMetrics,
    resolve_now: Notify,
}

impl Shared {
    fn new_peer(&self, addr: SocketAddr) -> Arc<Peer> {
        let cfg = &self.cfg;
        let mut p = HttpPeer::new(addr, cfg.tls, self.sni.clone());
        p.options.connection_timeout = Some(cfg.connect_timeout.get());
        p.options.total_connection_timeout = Some(cfg.connect_timeout.get() * 2);
        p.options.read_timeout = Some(cfg.read_timeout.get());
        p.options.write_timeout = Some(cfg.write_timeout.get());
        p.options.idle_timeout = Some(cfg.idle_timeout.get());
        p.options.verify_cert = cfg.verify_cert;
        p.options.verify_hostname = cfg.verify_cert;
        let gauge = self.metrics.peer_gauge(&addr);
        gauge.set(1);
        Arc::new(Peer {
            addr,
            http: p,
            health: Mutex::new(PeerHealth::default()),
            gauge,
        })
    }

    /// Publishes `addrs`, keeping the peers (and their health) of addresses
    /// that stay.
    fn set_addrs(&self, addrs: &[SocketAddr]) {
        let current = self.peers.load();
        if current.len() == addrs.len() && current.iter().zip(addrs).all(|(p, a)| p.addr == *a) {
            return;
        }
        let next: Vec<Arc<Peer>> = addrs
            .iter()
            .map(|a| match current.iter().find(|p| p.addr == *a) {
                Some(p) => p.clone(),
                None => self.new_peer(*a),
            })
            .collect();
        for gone in current.iter().filter(|p| !addrs.contains(&p.addr)) {
            self.metrics.forget_peer(&gone.addr);
        }
        let old: Vec<String> = current.iter().map(|p| p.addr.to_string()).collect();
        let new: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        tracing::info!(upstream = %self.name, from = %old.join(","), to = %new.join(","), "upstream addresses changed");
        self.peers.store(Arc::new(next));
    }
}

/// An upstream ready to serve: its peers, their health and its background
/// tasks (started by [`CompiledUpstream::start`], aborted on drop).
pub struct CompiledUpstream {
    /// Upstream name.
    pub name: String,
    /// The section it was built from (for carry-over on reload).
    pub config: UpstreamConfig,
    shared: Arc<Shared>,
    resolved: Vec<Vec<SocketAddr>>,
    tasks: Mutex<Option<Vec<JoinHandle<()>>>>,
}

impl Drop for CompiledUpstream {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner());
        for t in tasks.iter().flatten() {
            t.abort();
        }
    }
}

impl CompiledUpstream {
    /// Builds the upstream from its resolved addresses (creates its metric
    /// series; call once the whole configuration is known to be good).
    pub fn new(
        name: &str,
        cfg: &UpstreamConfig,
        resolved: Resolved,
        metrics: UpstreamMetrics,
    ) -> Self {
        let sni = cfg.sni.clone().or(resolved.sni_default).unwrap_or_default();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            cfg: cfg.clone(),
            sni,
            peers: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            passive: PassivePolicy {
                unhealthy_after: cfg.unhealthy_after,
                cooldown: cfg.cooldown.get(),
            },
            metrics,
            resolve_now: Notify::new(),
        });
        let addrs = union(&resolved.by_entry);
        shared.peers.store(Arc::new(
            addrs.iter().map(|a| shared.new_peer(*a)).collect(),
        ));
        Self {
            name: name.to_string(),
            config: cfg.clone(),
            shared,
            resolved: resolved.by_entry,
            tasks: Mutex::new(None),
        }
    }

    /// The addresses now in use.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.shared.peers.load().iter().map(|p| p.addr).collect()
    }

    /// The peers now in use.
    pub fn peers(&self) -> Arc<Vec<Arc<Peer>>> {
        self.shared.peers.load_full()
    }

    /// The peer for the next attempt: round-robin over available peers,
    /// skipping the addresses in `failed` (see [`pick`]).
    pub fn select(&self, failed: &[SocketAddr]) -> Option<Arc<Peer>> {
        let peers = self.shared.peers.load();
        let start = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let i = pick(
            peers.len(),
            start,
            |i| failed.contains(&peers[i].addr),
            |i| peers[i].available(now),
        )?;
        peers.get(i).cloned()
    }

    /// Records a failed connection to `peer`; true when the request may be
    /// tried again (`attempts_failed` connect failures so far, this one
    /// included).
    pub fn connect_failed(&self, peer: Option<&Peer>, attempts_failed: usize) -> bool {
        self.shared.metrics.connect_failures.inc();
        if let Some(p) = peer {
            p.connect_failed(self.shared.passive);
        }
        let retry = attempts_failed <= self.config.retries as usize;
        if retry {
            self.shared.metrics.retries.inc();
        }
        retry
    }

    /// Asks the resolver task (if any) to resolve the names again now.
    pub fn resolve_soon(&self) {
        self.shared.resolve_now.notify_one();
    }

    /// Starts the background tasks (once; later calls do nothing): the
    /// resolver when a peer is a host name, the active checker when
    /// configured. Must run inside a Tokio runtime that outlives the call.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if tasks.is_some() {
            return;
        }
        let mut started = Vec::new();
        let entries = entries(&self.name, &self.config).unwrap_or_default();
        if entries.iter().any(|e| !e.literal) {
            started.push(tokio::spawn(resolve_loop(
                self.shared.clone(),
                entries,
                self.resolved.clone(),
            )));
        }
        if let Some(hc) = self.config.health_check.clone() {
            started.push(tokio::spawn(check_loop(self.shared.clone(), hc)));
        }
        *tasks = Some(started);
    }
}

async fn resolve_loop(shared: Arc<Shared>, entries: Vec<Entry>, mut last: Vec<Vec<SocketAddr>>) {
    let interval = shared.cfg.resolve_interval.get();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.resolve_now.notified() => {}
        }
        let mut ok = true;
        for (i, e) in entries.iter().enumerate() {
            if e.literal {
                continue;
            }
            match lookup(e).await {
                Ok(found) => {
                    if let Some(slot) = last.get_mut(i) {
                        *slot = found;
                    }
                }
                Err(m) => {
                    ok = false;
                    tracing::warn!(upstream = %shared.name, peer = %shared.cfg.peers.get(i).map_or("", String::as_str), "cannot resolve ({m}); keeping the last good addresses");
                }
            }
        }
        shared.metrics.resolved(ok);
        shared.set_addrs(&union(&last));
    }
}

/// One active check: GET `url` answered 2xx or 3xx within the client's timeout.
async fn probe(client: &reqwest::Client, url: &str) -> bool {
    match client.get(url).send().await {
        Ok(r) => r.status().is_success() || r.status().is_redirection(),
        Err(_) => false,
    }
}

fn probe_client(
    cfg: &UpstreamConfig,
    hc: &HealthCheckConfig,
    tls_name: Option<(&str, SocketAddr)>,
) -> Option<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(hc.timeout.get())
        .connect_timeout(hc.timeout.get().min(cfg.connect_timeout.get()))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .danger_accept_invalid_certs(!cfg.verify_cert);
    if let Some((name, addr)) = tls_name {
        b = b.resolve(name, addr);
    }
    match b.build() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("cannot build the health-check client: {e}");
            None
        }
    }
}

async fn check_loop(shared: Arc<Shared>, hc: HealthCheckConfig) {
    let policy = ProbePolicy {
        healthy_threshold: hc.healthy_threshold,
        unhealthy_threshold: hc.unhealthy_threshold,
    };
    let plain = probe_client(&shared.cfg, &hc, None);
    let mut tls_clients: Vec<(SocketAddr, reqwest::Client)> = Vec::new();
    let mut ticker = tokio::time::interval(hc.interval.get());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let peers = shared.peers.load_full();
        let mut set = tokio::task::JoinSet::new();
        for p in peers.iter() {
            let (client, url) = if shared.cfg.tls && !shared.sni.is_empty() {
                let c = match tls_clients.iter().find(|(a, _)| *a == p.addr) {
                    Some((_, c)) => Some(c.clone()),
                    None => {
                        let c = probe_client(&shared.cfg, &hc, Some((&shared.sni, p.addr)));
                        if let Some(c) = &c {
                            tls_clients.push((p.addr, c.clone()));
                        }
                        c
                    }
                };
                (
                    c,
                    format!("https://{}:{}{}", shared.sni, p.addr.port(), hc.path),
                )
            } else {
                let scheme = if shared.cfg.tls { "https" } else { "http" };
                (plain.clone(), format!("{scheme}://{}{}", p.addr, hc.path))
            };
            let Some(client) = client else { continue };
            let p = p.clone();
            set.spawn(async move {
                let ok = probe(&client, &url).await;
                (p, ok)
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok((p, ok)) = r {
                let before = p.health().available(Instant::now());
                p.probed(ok, policy);
                let after = p.health().available(Instant::now());
                if before != after {
                    tracing::warn!(upstream = %shared.name, peer = %p.addr, healthy = after, "active health check changed the peer's state");
                }
            }
        }
        tls_clients.retain(|(a, _)| peers.iter().any(|p| p.addr == *a));
    }
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

    fn upstream(peers: &[&str], retries: u32) -> CompiledUpstream {
        let cfg: UpstreamConfig = toml::from_str(&format!(
            "peers = {peers:?}\nretries = {retries}\nunhealthy_after = 1"
        ))
        .unwrap();
        let by_entry = peers.iter().map(|p| vec![p.parse().unwrap()]).collect();
        let m = crate::metrics::Metrics::new().unwrap();
        CompiledUpstream::new(
            "u",
            &cfg,
            Resolved {
                by_entry,
                sni_default: None,
            },
            m.upstream("u"),
        )
    }

    #[test]
    fn select_skips_failed_and_unhealthy_peers_and_counts_retries() {
        let u = upstream(&["127.0.0.1:1", "127.0.0.1:2"], 1);
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let first = u.select(&[]).unwrap();
        assert_eq!(first.addr, a);
        assert!(u.connect_failed(Some(&first), 1), "one retry allowed");
        assert_eq!(u.select(&[a]).unwrap().addr, b);
        // a is now unhealthy (unhealthy_after = 1): every new request gets b.
        for _ in 0..4 {
            assert_eq!(u.select(&[]).unwrap().addr, b);
        }
        assert!(!u.connect_failed(None, 2), "no second retry");
        first.connected();
        let picks: Vec<SocketAddr> = (0..4).map(|_| u.select(&[]).unwrap().addr).collect();
        assert!(picks.contains(&a) && picks.contains(&b), "{picks:?}");
    }

    #[test]
    fn new_addresses_keep_the_health_of_those_that_stay() {
        let u = upstream(&["127.0.0.1:1", "127.0.0.1:2"], 1);
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:3".parse().unwrap();
        let pa = u.peers()[0].clone();
        pa.connect_failed(u.shared.passive);
        u.shared.set_addrs(&[a, c]);
        assert_eq!(u.addrs(), vec![a, c]);
        assert!(Arc::ptr_eq(&u.peers()[0], &pa));
        assert!(!u.peers()[0].available(Instant::now()), "health kept");
        assert!(u.peers()[1].available(Instant::now()));
    }

    #[test]
    fn union_keeps_config_order_without_duplicates() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "[::1]:1".parse().unwrap();
        assert_eq!(union(&[vec![a, b], vec![a], vec![b]]), vec![a, b]);
    }
}
