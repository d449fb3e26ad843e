//! Upstream clusters at run time: peers with a health state, a selection that
//! skips unhealthy and already-failed peers, and the work done off the request
//! path — re-resolving host names and active health checks — by tasks the
//! upstream owns (aborted when it is dropped, e.g. after a reload). The
//! health state machine and the choice of a peer are pure code
//! ([`gatehouse_http::health`]); this module gives them Pingora peers, a
//! clock, metrics and Tokio tasks.

use crate::metrics::UpstreamMetrics;
use arc_swap::ArcSwap;
use gatehouse_config::{split_host_port, ConfigError, HealthCheckConfig, UpstreamConfig};
use gatehouse_http::health::{pick, PassivePolicy, PeerHealth, ProbePolicy};
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
        let clean = self.health().is_clean();
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
        p.options.tcp_recv_buf = cfg.receive_buffer_bytes;
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
