//! A compiled configuration: everything the hot path needs, decided at load.

use crate::edge::RouteEdge;
use crate::metrics::{ConnectorMetrics, Metrics, RouteMetrics};
use crate::upstream;
use crate::watched_files::{self, FileStates};
use gatehouse_config::{Config, ConfigError, ConfigErrors, ConnectorConfig};
use gatehouse_connectors::shared::SharedCaches;
use gatehouse_connectors::{Connector, Registry, Step};
use gatehouse_http::canonical::{canonical_path, PathRules};
use gatehouse_http::headers::HeaderRules;
use gatehouse_http::router::Router;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One immutable, fully compiled configuration.
pub struct Snapshot {
    /// 1 for the configuration loaded at start, +1 per successful reload.
    pub generation: u64,
    /// The configuration it was compiled from.
    pub config: Config,
    /// The routing table (indexes into `routes`).
    pub router: Router,
    /// Compiled routes, in config order.
    pub routes: Vec<CompiledRoute>,
    /// Metrics of requests that matched no route (`route="_none"`).
    pub unmatched: RouteMetrics,
    /// Built connectors by name, with the section they were built from.
    pub connectors: BTreeMap<String, BuiltConnector>,
    /// Resolved upstreams by name.
    pub upstreams: BTreeMap<String, Arc<CompiledUpstream>>,
    /// How paths are put in canonical form.
    pub path_rules: PathRules,
    /// Which client headers reach the upstream.
    pub headers: HeaderRules,
    /// Certificates of each `[[server.tls]]` entry, in config order
    /// (read by the listeners' certificate resolvers at every handshake).
    pub tls: Vec<Arc<crate::certs::CompiledTls>>,
    /// Shared caches by name, with the section and files they came from.
    pub caches: BTreeMap<String, BuiltCache>,
    /// Request limits by name (carried over with their counts while their
    /// section and store are unchanged).
    pub limits: BTreeMap<String, Arc<CompiledLimit>>,
}

/// A shared cache and what it was built from (carried over on reload, with
/// its connection, while both are unchanged).
pub struct BuiltCache {
    /// The section.
    pub config: gatehouse_config::CacheConfig,
    /// Its files, fingerprinted before it was built.
    pub files: FileStates,
    /// The cache.
    pub cache: Arc<gatehouse_connectors::shared::SharedCache>,
}

/// A connector instance and the section it came from (for carry-over).
pub struct BuiltConnector {
    /// The section.
    pub config: ConnectorConfig,
    /// The files the section makes the connector read, fingerprinted just
    /// before it was built (part of its identity on reload).
    pub files: FileStates,
    /// The instance.
    pub connector: Arc<dyn Connector>,
    /// Its metric handles.
    pub metrics: ConnectorMetrics,
}

/// A route ready to serve.
pub struct CompiledRoute {
    /// Route name.
    pub name: String,
    /// Where it proxies to.
    pub upstream: Arc<CompiledUpstream>,
    /// Its steps, in order (a step of several members is an any-of group).
    pub chain: Vec<Step>,
    /// Metric handles of each step's members.
    pub chain_metrics: Vec<Vec<ConnectorMetrics>>,
    /// Metric handles.
    pub metrics: RouteMetrics,
    /// Protocol upgrades the route tunnels (`upgrades`).
    pub upgrades: Vec<gatehouse_config::Upgrade>,
    /// A connector of the chain may call out (an identity provider): the
    /// chain runs while the client is watched, and stops if it goes away.
    pub watch_client: bool,
    /// Its request limits, in order (checked after the chain allowed).
    pub limits: Vec<Arc<CompiledLimit>>,
    /// CORS, path rewrite and header rules.
    pub edge: RouteEdge,
}

pub use crate::meter::CompiledLimit;
pub use crate::upstream::CompiledUpstream;

/// Compiles `config`: resolves upstreams, builds (or carries over) connectors,
/// builds the router and resolves metric handles. `previous` is the snapshot
/// now serving; connectors whose section and files (see [`watched_files`]) are
/// unchanged are reused with their warm caches.
pub async fn compile(
    config: Config,
    registry: &Registry,
    metrics: &Metrics,
    previous: Option<&Snapshot>,
    generation: u64,
) -> Result<Snapshot, ConfigErrors> {
    let mut errs = Vec::new();

    // An upstream whose section is unchanged is carried over with its peers'
    // health and its background tasks (asked to resolve its names again now);
    // the others are resolved here and built once the whole config is good.
    let mut carried = BTreeMap::new();
    let mut resolved = BTreeMap::new();
    for (name, cfg) in &config.upstreams {
        if let Some(u) = previous
            .and_then(|p| p.upstreams.get(name))
            .filter(|u| u.config == *cfg)
        {
            carried.insert(name.clone(), u.clone());
            continue;
        }
        match upstream::resolve(name, cfg).await {
            Ok(r) => {
                resolved.insert(name.clone(), r);
            }
            Err(e) => errs.push(e),
        }
    }

    // Re-read on every load: a bad certificate refuses the whole reload.
    let tls = match crate::certs::load_all(&config.server.tls) {
        Ok(t) => t,
        Err(e) => {
            errs.extend(e);
            Vec::new()
        }
    };

    // Shared caches keep their connection across reloads that keep their
    // section and files.
    let mut caches = BTreeMap::new();
    for (name, cfg) in &config.caches {
        let files = watched_files::fingerprint_all(
            &cfg.files()
                .iter()
                .map(|p| watched_files::absolute(p))
                .collect::<Vec<_>>(),
        );
        let reused = previous
            .and_then(|p| p.caches.get(name))
            .filter(|b| b.config == *cfg && b.files == files && watched_files::all_readable(&files))
            .map(|b| b.cache.clone());
        let built = match reused {
            Some(c) => Ok(c),
            None => registry.build_cache(name, cfg, &metrics.registry),
        };
        match built {
            Ok(cache) => {
                caches.insert(
                    name.clone(),
                    BuiltCache {
                        config: cfg.clone(),
                        files,
                        cache,
                    },
                );
            }
            Err(e) => errs.extend(e.0),
        }
    }
    let shared: SharedCaches = Arc::new(
        caches
            .iter()
            .map(|(n, b)| (n.clone(), b.cache.clone()))
            .collect(),
    );
    // A connector naming a shared cache is carried over only with that cache.
    let same_cache = |cfg: &ConnectorConfig| {
        let Some(n) = registry.shared_cache_of(cfg) else {
            return true;
        };
        let old = previous.and_then(|p| p.caches.get(&n)).map(|b| &b.cache);
        matches!((old, shared.get(&n)), (Some(a), Some(b)) if Arc::ptr_eq(a, b))
    };

    let mut connectors = BTreeMap::new();
    for (name, cfg) in &config.connectors {
        // Carried over only when the section and the content of every file
        // it names (keys) are unchanged; fingerprinted before any build.
        let files = watched_files::fingerprint_all(&watched_files::connector_files(registry, cfg));
        let reused = previous
            .and_then(|p| p.connectors.get(name))
            .filter(|b| b.config == *cfg && b.files == files && watched_files::all_readable(&files))
            .filter(|_| same_cache(cfg))
            .map(|b| b.connector.clone());
        let built = match reused {
            Some(c) => Ok(c),
            None => registry.build(name, cfg, &metrics.registry, &shared).await,
        };
        match built {
            Ok(connector) => {
                connectors.insert(
                    name.clone(),
                    BuiltConnector {
                        config: cfg.clone(),
                        files,
                        connector,
                        metrics: metrics.connector(name),
                    },
                );
            }
            Err(e) => errs.extend(e.0),
        }
    }
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }

    let mut limits = BTreeMap::new();
    for (name, cfg) in &config.limits {
        let store = cfg.store.as_ref().and_then(|n| shared.get(n)).cloned();
        // Carried over, counts and all, while its section and store are the same.
        let reused = previous
            .and_then(|p| p.limits.get(name))
            .filter(|l| l.config == *cfg && l.same_store(store.as_ref()))
            .cloned();
        let limit = reused
            .unwrap_or_else(|| Arc::new(CompiledLimit::new(name, cfg, store, metrics.limit(name))));
        limits.insert(name.clone(), limit);
    }

    let path_rules = PathRules {
        encoded_slashes: config.server.encoded_slashes,
        path_parameters: config.server.path_parameters,
        trailing_dots: config.server.trailing_dots_and_spaces,
    };
    for (i, r) in config.routes.iter().enumerate() {
        let rules = path_rules;
        match canonical_path(r.path_prefix.as_bytes(), rules) {
            Ok(c) if c == r.path_prefix.as_str() => {}
            Ok(c) => errs.push(ConfigError::new(
                format!("routes[{i}].path_prefix"),
                format!(
                    "\"{}\" is not in canonical form, so no request could match it; write \"{c}\"",
                    r.path_prefix
                ),
            )),
            Err(e) => errs.push(ConfigError::new(
                format!("routes[{i}].path_prefix"),
                format!("\"{}\" can never match: {}", r.path_prefix, e.description()),
            )),
        }
    }
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }

    let mut upstreams = carried;
    for u in upstreams.values() {
        u.resolve_soon();
    }
    for (name, r) in resolved {
        let cfg = &config.upstreams[&name];
        let u = CompiledUpstream::new(&name, cfg, r, metrics.upstream(&name));
        upstreams.insert(name, Arc::new(u));
    }

    let headers = HeaderRules::new(
        &config.server,
        connectors
            .values()
            .flat_map(|b| b.connector.injected_headers()),
    );
    let mut routes = Vec::with_capacity(config.routes.len());
    for (ri, r) in config.routes.iter().enumerate() {
        // validate() guarantees the references exist.
        let member = |c: &String| connectors.get(c);
        let steps: Option<Vec<Vec<&BuiltConnector>>> = r
            .connectors
            .iter()
            .map(|s| s.members().iter().map(member).collect())
            .collect();
        let (Some(upstream), Some(steps)) = (upstreams.get(&r.upstream).cloned(), steps) else {
            return Err(
                ConfigError::new(format!("routes.{}", r.name), "dangling reference").into(),
            );
        };
        if let Some(first) = steps.first() {
            if let Some((i, b)) = first
                .iter()
                .enumerate()
                .find(|(_, b)| b.connector.reads_verified())
            {
                let at = if first.len() > 1 {
                    format!("routes[{ri}].connectors[0].any[{i}]")
                } else {
                    format!("routes[{ri}].connectors[0]")
                };
                return Err(ConfigError::new(
                    at,
                    format!(
                        "connector {} reads its key from a claim an earlier step verifies, \
                         but it is in the route's first step; put a jwt or oidc_userinfo step before it",
                        b.connector.name()
                    ),
                )
                .into());
            }
        }
        for (j, n) in r.limits.iter().enumerate() {
            let Some(gatehouse_config::LimitKey::Header(h)) = config.limits.get(n).map(|l| &l.key)
            else {
                continue;
            };
            let injected = steps.iter().flatten().any(|b| {
                b.connector
                    .injected_headers()
                    .iter()
                    .any(|i| i.as_str().eq_ignore_ascii_case(h))
            });
            if !injected {
                return Err(ConfigError::new(
                    format!("routes[{ri}].limits[{j}]"),
                    format!(
                        "limit {n} counts by header {h}, which no connector of route {} injects (a client-sent copy is never counted)",
                        r.name
                    ),
                )
                .into());
            }
        }
        let names: Vec<&str> = r.connector_names().collect();
        let groups: Vec<&str> = r
            .connectors
            .iter()
            .filter(|s| s.is_group())
            .flat_map(|s| s.members().iter().map(String::as_str))
            .collect();
        let edge = RouteEdge::compile(ri, r, &headers)?;
        routes.push(CompiledRoute {
            name: r.name.clone(),
            edge,
            upstream,
            chain_metrics: steps
                .iter()
                .map(|s| s.iter().map(|b| b.metrics.clone()).collect())
                .collect(),
            chain: steps
                .iter()
                .map(|s| Step::any(s.iter().map(|b| b.connector.clone()).collect()))
                .collect(),
            metrics: metrics.route(&r.name, &names, &groups),
            upgrades: r.upgrades.clone(),
            watch_client: steps.iter().flatten().any(|b| b.connector.calls_out()),
            limits: r
                .limits
                .iter()
                .filter_map(|n| limits.get(n).cloned())
                .collect(),
        });
    }

    if let Some(prev) = previous {
        // A set, not a scan per old route: a reload stays linear in the routes.
        let kept: std::collections::HashSet<&str> =
            config.routes.iter().map(|r| r.name.as_str()).collect();
        for old in &prev.config.routes {
            if !kept.contains(old.name.as_str()) {
                metrics.forget_route(&old.name, old.connector_names());
            }
        }
        for (name, old) in &prev.upstreams {
            match upstreams.get(name) {
                None => metrics.forget_upstream(name, &old.addrs()),
                Some(new) if !Arc::ptr_eq(new, old) => {
                    let now = new.addrs();
                    let gone: Vec<_> = old
                        .addrs()
                        .into_iter()
                        .filter(|a| !now.contains(a))
                        .collect();
                    let m = metrics.upstream(name);
                    for a in gone {
                        m.forget_peer(&a);
                    }
                }
                Some(_) => {}
            }
        }
        for old in prev.connectors.keys() {
            if !connectors.contains_key(old) {
                metrics.forget_connector(old);
            }
        }
        for old in prev.limits.keys() {
            if !limits.contains_key(old) {
                metrics.forget_limit(old);
            }
        }
    }

    Ok(Snapshot {
        generation,
        path_rules,
        headers,
        router: Router::new(&config.routes),
        routes,
        unmatched: metrics.route("_none", &[], &[]),
        connectors,
        upstreams,
        tls,
        caches,
        limits,
        config,
    })
}

impl Snapshot {
    /// Starts the background work of its upstreams (re-resolution, active
    /// checks); carried-over upstreams are already running. Call once the
    /// snapshot is about to serve, inside the long-lived runtime.
    pub fn start_background(&self) {
        for u in self.upstreams.values() {
            u.start();
        }
    }

    /// A one-screen, human summary (used by `gatehouse check`).
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let c = &self.config;
        let mut s = String::new();
        let listen: Vec<String> = c.server.listen.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(
            s,
            "listeners: {}  admin: {}  threads: {}  grace period: {}",
            listen.join(", "),
            c.server
                .admin_listen
                .map_or("off".to_string(), |a| a.to_string()),
            c.server
                .threads
                .map_or("auto".to_string(), |t| t.to_string()),
            c.server.grace_period
        );
        for (t, (l, compiled)) in c.server.tls.iter().zip(&self.tls).enumerate() {
            let listen: Vec<String> = l.listen.iter().map(|a| a.to_string()).collect();
            let _ = writeln!(s, "tls[{t}]: {}", listen.join(", "));
            for cert in &compiled.certs.certs {
                let _ = writeln!(
                    s,
                    "  {}  names: {}  expires in {} days",
                    cert.cert_file.display(),
                    cert.names.join(", "),
                    (cert.not_after - crate::certs::unix_now()) / 86400
                );
            }
        }
        if !c.caches.is_empty() {
            let _ = writeln!(s, "caches:");
        }
        for (name, cache) in &c.caches {
            // Credentials in a URL are never printed.
            let url = match cache.url.split_once("://") {
                Some((scheme, rest)) => match rest.rsplit_once('@') {
                    Some((_, host)) => format!("{scheme}://…@{host}"),
                    None => cache.url.clone(),
                },
                None => cache.url.clone(),
            };
            let _ = writeln!(
                s,
                "  {name:<16} {url}  (timeout {}, {}, single flight {})",
                cache.timeout,
                if cache.encryption_key_file.is_some() {
                    "encrypted"
                } else {
                    "NOT encrypted"
                },
                if cache.single_flight { "on" } else { "off" },
            );
        }
        let _ = writeln!(s, "upstreams:");
        for (name, u) in &self.upstreams {
            let cfg = &c.upstreams[name];
            let addrs: Vec<String> = u.addrs().iter().map(|a| a.to_string()).collect();
            let _ = writeln!(
                s,
                "  {name:<16} {} -> {}  ({}, connect {}, read {})",
                cfg.peers.join(", "),
                addrs.join(", "),
                if cfg.tls { "https" } else { "http" },
                cfg.connect_timeout,
                cfg.read_timeout
            );
        }
        let _ = writeln!(s, "connectors:");
        if self.connectors.is_empty() {
            let _ = writeln!(s, "  (none)");
        }
        for (name, b) in &self.connectors {
            let _ = writeln!(s, "  {name:<16} kind={}", b.config.kind);
        }
        let _ = writeln!(s, "routes:");
        for r in &c.routes {
            let chain = if r.connectors.is_empty() {
                "public".to_string()
            } else {
                let steps: Vec<String> = r.connectors.iter().map(|s| s.to_string()).collect();
                steps.join(" -> ")
            };
            let _ = writeln!(
                s,
                "  {:<16} {}{} {} -> {}{}  [{}]{}",
                r.name,
                r.host.as_deref().unwrap_or("*"),
                r.path_prefix,
                r.methods
                    .as_ref()
                    .map_or("ANY".to_string(), |m| m.join(",")),
                r.upstream,
                r.rewrite_prefix.as_ref().map_or(String::new(), |p| format!(
                    " as {}",
                    if p.is_empty() { "/" } else { p }
                )),
                chain,
                crate::edge::summary(r)
            );
        }
        s
    }
}

#[cfg(test)]
mod tests;
