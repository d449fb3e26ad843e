//! Prometheus metric families (created once, at start-up) and the
//! pre-resolved per-route / per-connector handles the hot path uses.

use gatehouse_connectors::metrics::ReasonCounters;
use gatehouse_connectors::Reason;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};
use std::time::Duration;

/// Latency buckets from 10 µs to 10 s (1-2.5-5 per decade).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status classes used as the `status_class` label, indexed by [`status_class_index`].
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Index into [`STATUS_CLASSES`] for a status code (0 = no response written).
pub fn status_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// Every Gatehouse-level metric family, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    /// The registry served on `/metrics`.
    pub registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    connector_duration: HistogramVec,
    rejections: IntCounterVec,
    group_allows: IntCounterVec,
    /// `gatehouse_config_reloads_total{result}`.
    pub reloads: IntCounterVec,
    /// `gatehouse_config_generation`.
    pub generation: IntGauge,
    /// `gatehouse_config_last_reload_success_timestamp_seconds`.
    pub last_reload_success: Gauge,
    /// `gatehouse_inflight_requests`.
    pub inflight: IntGauge,
    peer_healthy: IntGaugeVec,
    upstream_retries: IntCounterVec,
    upstream_connect_failures: IntCounterVec,
    upstream_resolutions: IntCounterVec,
    /// `gatehouse_tls_handshakes_total{result, version}`.
    pub tls_handshakes: IntCounterVec,
    /// `gatehouse_tls_client_hellos_total`: ClientHellos that reached certificate selection.
    pub tls_client_hellos: IntCounter,
    /// `gatehouse_tls_certificate_expiry_seconds{file}` (set when scraped).
    pub tls_cert_expiry: GaugeVec,
    /// `gatehouse_request_headers_dropped_total{reason}`, indexed by
    /// [`gatehouse_http::headers::Dropped`].
    pub headers_dropped: [IntCounter; 3],
    /// `gatehouse_upgrades_total{result}`, indexed by [`UpgradeResult`].
    pub upgrades: [IntCounter; 3],
    /// `gatehouse_connections_open`: client connections open now (after the
    /// TLS handshake), counted against `server.max_connections`.
    pub connections_open: IntGauge,
    /// `gatehouse_connections_refused_total`: connections closed at accept
    /// because `server.max_connections` were open.
    pub connections_refused: IntCounter,
    /// `gatehouse_request_heads_refused_total`: requests refused with 431
    /// (head larger than `server.max_request_header_bytes`).
    pub request_heads_refused: IntCounter,
    /// `gatehouse_abandoned_checks_total`: connector chains stopped (their
    /// identity-provider calls cancelled) because the client went away.
    pub abandoned_checks: IntCounter,
    /// `gatehouse_request_heads_timed_out_total`: HTTP/1 connections closed
    /// because a request head was not complete in time.
    pub heads_timed_out: IntCounter,
    /// `gatehouse_h2_floods_total`: HTTP/2 connections closed for sending
    /// more control frames than their budget.
    pub h2_floods: IntCounter,
    /// `gatehouse_h2_streams_waited_total`: HTTP/2 streams that waited for
    /// a place because `server.h2_max_proxied_streams` of their connection
    /// were being proxied.
    pub h2_streams_waited: IntCounter,
    /// `gatehouse_h2_streams_refused_total`: HTTP/2 streams answered 503
    /// because no place came free within their wait.
    pub h2_streams_refused: IntCounter,
    limit_requests: IntCounterVec,
    limit_store_errors: IntCounterVec,
}

/// What became of a request that asked for a protocol upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeResult {
    /// The route allows it and the upstream completed the handshake.
    Tunnelled = 0,
    /// The route does not allow it: `Upgrade` removed, proxied as a plain request.
    Stripped = 1,
    /// The upstream's `101` did not complete the client's handshake (or came
    /// for a request that was not an allowed upgrade): connection closed.
    BadHandshake = 2,
}

/// Label values of `gatehouse_upgrades_total`, indexed by [`UpgradeResult`].
pub const UPGRADE_RESULTS: [&str; 3] = ["tunnelled", "stripped", "bad_handshake"];

/// A counter family with one label, registered in `registry`, resolved for
/// each of `values` (indexed like them).
fn counter_set<const N: usize>(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: [&str; N],
) -> prometheus::Result<[IntCounter; N]> {
    let family = IntCounterVec::new(Opts::new(name, help), &[label])?;
    registry.register(Box::new(family.clone()))?;
    Ok(values.map(|v| family.with_label_values(&[v])))
}

fn hist(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
}

impl Metrics {
    /// Creates and registers every family (and the process collector).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "gatehouse_requests_total",
                    "Requests answered, by route and status class.",
                ),
                &["route", "status_class"],
            )?,
            request_duration: hist(
                "gatehouse_request_duration_seconds",
                "Time from request start to the end of the response, by route.",
                &["route"],
            )?,
            upstream_duration: hist(
                "gatehouse_upstream_duration_seconds",
                "Time from choosing an upstream peer to its response header, by route.",
                &["route"],
            )?,
            connector_duration: hist(
                "gatehouse_connector_duration_seconds",
                "Time spent in each connector's check, by connector and result.",
                &["connector", "result"],
            )?,
            rejections: IntCounterVec::new(
                Opts::new(
                    "gatehouse_rejections_total",
                    "Requests refused by a connector, by route, connector and reason.",
                ),
                &["route", "connector", "reason"],
            )?,
            group_allows: IntCounterVec::new(
                Opts::new(
                    "gatehouse_group_allows_total",
                    "Requests an any-of group let through, by route and the member that allowed.",
                ),
                &["route", "connector"],
            )?,
            reloads: IntCounterVec::new(
                Opts::new(
                    "gatehouse_config_reloads_total",
                    "Configuration loads and reloads, by result.",
                ),
                &["result"],
            )?,
            generation: IntGauge::new(
                "gatehouse_config_generation",
                "Generation of the configuration now serving (1 = loaded at start).",
            )?,
            last_reload_success: Gauge::new(
                "gatehouse_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load.",
            )?,
            inflight: IntGauge::new(
                "gatehouse_inflight_requests",
                "Requests being processed now.",
            )?,
            peer_healthy: IntGaugeVec::new(
                Opts::new(
                    "gatehouse_upstream_peer_healthy",
                    "1 when an upstream peer (address) is in rotation, 0 while it is skipped as unhealthy.",
                ),
                &["upstream", "peer"],
            )?,
            upstream_retries: IntCounterVec::new(
                Opts::new(
                    "gatehouse_upstream_retries_total",
                    "Requests tried again on another peer after a connect failure, by upstream.",
                ),
                &["upstream"],
            )?,
            upstream_connect_failures: IntCounterVec::new(
                Opts::new(
                    "gatehouse_upstream_connect_failures_total",
                    "Failed connection attempts to upstream peers, by upstream.",
                ),
                &["upstream"],
            )?,
            upstream_resolutions: IntCounterVec::new(
                Opts::new(
                    "gatehouse_upstream_resolutions_total",
                    "Background re-resolutions of upstream peer names, by upstream and result (failure keeps the last good addresses).",
                ),
                &["upstream", "result"],
            )?,
            tls_handshakes: IntCounterVec::new(
                Opts::new(
                    "gatehouse_tls_handshakes_total",
                    "TLS handshakes on the TLS listeners, by result (success) and TLS version.",
                ),
                &["result", "version"],
            )?,
            tls_client_hellos: IntCounter::new(
                "gatehouse_tls_client_hellos_total",
                "TLS ClientHellos that reached certificate selection (minus successful and refused handshakes: handshakes that failed later).",
            )?,
            tls_cert_expiry: GaugeVec::new(
                Opts::new(
                    "gatehouse_tls_certificate_expiry_seconds",
                    "Seconds until the notAfter of each serving TLS certificate, by certificate file (negative: expired).",
                ),
                &["file"],
            )?,
            headers_dropped: counter_set(
                &registry,
                "gatehouse_request_headers_dropped_total",
                "Client request headers not forwarded, by reason: invalid_name (a character outside [A-Za-z0-9-], `_` unless allowed), protected (an identity, certificate or override header in any spelling), client_address (address and scheme headers from an untrusted peer).",
                "reason",
                gatehouse_http::headers::DROP_REASONS,
            )?,
            upgrades: counter_set(
                &registry,
                "gatehouse_upgrades_total",
                "Requests asking for a protocol upgrade, by result: tunnelled, stripped (the route does not allow it), bad_handshake (the upstream's 101 did not complete the handshake; closed).",
                "result",
                UPGRADE_RESULTS,
            )?,
            connections_open: IntGauge::new(
                "gatehouse_connections_open",
                "Client connections open now (counted after the TLS handshake), against server.max_connections.",
            )?,
            connections_refused: IntCounter::new(
                "gatehouse_connections_refused_total",
                "Client connections closed at once because server.max_connections were open.",
            )?,
            request_heads_refused: IntCounter::new(
                "gatehouse_request_heads_refused_total",
                "Requests refused with 431: the request head was larger than server.max_request_header_bytes.",
            )?,
            h2_floods: IntCounter::new(
                "gatehouse_h2_floods_total",
                "HTTP/2 connections closed because they sent more control frames (PING, SETTINGS, WINDOW_UPDATE, PRIORITY, RST_STREAM, empty DATA, unknown types) than their budget.",
            )?,
            h2_streams_waited: IntCounter::new(
                "gatehouse_h2_streams_waited_total",
                "HTTP/2 streams that waited for a place because server.h2_max_proxied_streams streams of their connection were being proxied.",
            )?,
            h2_streams_refused: IntCounter::new(
                "gatehouse_h2_streams_refused_total",
                "HTTP/2 streams answered 503 because no place of their connection came free within response_write_timeout.",
            )?,
            heads_timed_out: IntCounter::new(
                "gatehouse_request_heads_timed_out_total",
                "HTTP/1 connections closed because the first request did not start or complete its head within request_header_timeout, or a later head that started was not complete within idle_timeout.",
            )?,
            abandoned_checks: IntCounter::new(
                "gatehouse_abandoned_checks_total",
                "Connector chains that could call an identity provider, stopped because the client went away (the call is cancelled).",
            )?,
            limit_requests: IntCounterVec::new(
                Opts::new(
                    "gatehouse_limit_requests_total",
                    "Requests counted by a [limits.NAME], by result: allowed, over_rate, over_quota.",
                ),
                &["limit", "result"],
            )?,
            limit_store_errors: IntCounterVec::new(
                Opts::new(
                    "gatehouse_limit_store_errors_total",
                    "Checks of a limit whose shared store (Redis) failed or was skipped by its breaker; each was then handled by on_store_error.",
                ),
                &["limit"],
            )?,
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.limit_requests.clone()))?;
        r.register(Box::new(m.limit_store_errors.clone()))?;
        r.register(Box::new(m.connections_open.clone()))?;
        r.register(Box::new(m.connections_refused.clone()))?;
        r.register(Box::new(m.request_heads_refused.clone()))?;
        r.register(Box::new(m.heads_timed_out.clone()))?;
        r.register(Box::new(m.h2_floods.clone()))?;
        r.register(Box::new(m.h2_streams_waited.clone()))?;
        r.register(Box::new(m.h2_streams_refused.clone()))?;
        r.register(Box::new(m.abandoned_checks.clone()))?;
        r.register(Box::new(m.requests.clone()))?;
        r.register(Box::new(m.request_duration.clone()))?;
        r.register(Box::new(m.upstream_duration.clone()))?;
        r.register(Box::new(m.connector_duration.clone()))?;
        r.register(Box::new(m.rejections.clone()))?;
        r.register(Box::new(m.group_allows.clone()))?;
        r.register(Box::new(m.reloads.clone()))?;
        r.register(Box::new(m.generation.clone()))?;
        r.register(Box::new(m.last_reload_success.clone()))?;
        r.register(Box::new(m.inflight.clone()))?;
        r.register(Box::new(m.peer_healthy.clone()))?;
        r.register(Box::new(m.upstream_retries.clone()))?;
        r.register(Box::new(m.upstream_connect_failures.clone()))?;
        r.register(Box::new(m.upstream_resolutions.clone()))?;
        r.register(Box::new(m.tls_handshakes.clone()))?;
        r.register(Box::new(m.tls_client_hellos.clone()))?;
        r.register(Box::new(m.tls_cert_expiry.clone()))?;
        let info = IntGaugeVec::new(
            Opts::new("gatehouse_build_info", "Build information."),
            &["version"],
        )?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        r.register(Box::new(info))?;
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        for result in ["success", "failure"] {
            m.reloads.with_label_values(&[result]);
        }
        Ok(m)
    }

    /// The counters of limit `name`.
    pub fn limit(&self, name: &str) -> crate::meter::LimitMetrics {
        crate::meter::LimitMetrics {
            allowed: self.limit_requests.with_label_values(&[name, "allowed"]),
            over_rate: self.limit_requests.with_label_values(&[name, "over_rate"]),
            over_quota: self.limit_requests.with_label_values(&[name, "over_quota"]),
            store_errors: self.limit_store_errors.with_label_values(&[name]),
        }
    }

    /// Drops the series of a limit no configuration has any more.
    pub fn forget_limit(&self, name: &str) {
        for r in ["allowed", "over_rate", "over_quota"] {
            let _ = self.limit_requests.remove_label_values(&[name, r]);
        }
        let _ = self.limit_store_errors.remove_label_values(&[name]);
    }

    /// Resolves the handles of one route (done when a config is compiled):
    /// `connectors` are its connector names in chain order (groups
    /// flattened), `grouped` those that are members of an any-of group.
    pub fn route(&self, route: &str, connectors: &[&str], grouped: &[&str]) -> RouteMetrics {
        RouteMetrics {
            name: route.to_string(),
            by_class: STATUS_CLASSES.map(|c| self.requests.with_label_values(&[route, c])),
            duration: self.request_duration.with_label_values(&[route]),
            upstream: self.upstream_duration.with_label_values(&[route]),
            rejections: connectors
                .iter()
                .map(|c| {
                    (
                        c.to_string(),
                        ReasonCounters::new(self.rejections.clone(), &[route, c]),
                    )
                })
                .collect(),
            group_allows: grouped
                .iter()
                .map(|c| {
                    (
                        c.to_string(),
                        self.group_allows.with_label_values(&[route, c]),
                    )
                })
                .collect(),
        }
    }

    /// Resolves the handles of one connector.
    pub fn connector(&self, name: &str) -> ConnectorMetrics {
        ConnectorMetrics {
            allow: self.connector_duration.with_label_values(&[name, "allow"]),
            deny: self.connector_duration.with_label_values(&[name, "deny"]),
        }
    }

    /// Drops the series of a route that left the configuration.
    pub fn forget_route<'a>(&self, route: &str, connectors: impl Iterator<Item = &'a str>) {
        for c in STATUS_CLASSES {
            let _ = self.requests.remove_label_values(&[route, c]);
        }
        let _ = self.request_duration.remove_label_values(&[route]);
        let _ = self.upstream_duration.remove_label_values(&[route]);
        for c in connectors {
            let _ = self.group_allows.remove_label_values(&[route, c]);
            for r in Reason::ALL {
                let _ = self.rejections.remove_label_values(&[route, c, r.as_str()]);
            }
        }
    }

    /// Resolves the handles of one upstream.
    pub fn upstream(&self, name: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            name: name.to_string(),
            peer_healthy: self.peer_healthy.clone(),
            retries: self.upstream_retries.with_label_values(&[name]),
            connect_failures: self.upstream_connect_failures.with_label_values(&[name]),
            resolved_ok: self
                .upstream_resolutions
                .with_label_values(&[name, "success"]),
            resolved_failure: self
                .upstream_resolutions
                .with_label_values(&[name, "failure"]),
        }
    }

    /// Drops the series of an upstream that left the configuration.
    pub fn forget_upstream(&self, name: &str, peers: &[std::net::SocketAddr]) {
        let _ = self.upstream_retries.remove_label_values(&[name]);
        let _ = self.upstream_connect_failures.remove_label_values(&[name]);
        for r in ["success", "failure"] {
            let _ = self.upstream_resolutions.remove_label_values(&[name, r]);
        }
        for p in peers {
            let _ = self
                .peer_healthy
                .remove_label_values(&[name, &p.to_string()]);
        }
    }

    /// Drops the series of a connector that left the configuration.
    pub fn forget_connector(&self, name: &str) {
        let _ = self
            .connector_duration
            .remove_label_values(&[name, "allow"]);
        let _ = self.connector_duration.remove_label_values(&[name, "deny"]);
    }
}

/// Handles for one route.
pub struct RouteMetrics {
    /// Route name (label value).
    pub name: String,
    by_class: [IntCounter; 6],
    duration: Histogram,
    upstream: Histogram,
    rejections: Vec<(String, ReasonCounters)>,
    group_allows: Vec<(String, IntCounter)>,
}

impl RouteMetrics {
    /// Records one finished request.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        self.by_class[status_class_index(status)].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Records the upstream's time to response header.
    pub fn observe_upstream(&self, elapsed: Duration) {
        self.upstream.observe(elapsed.as_secs_f64());
    }

    /// Counts a rejection answered by `connector`.
    pub fn reject(&self, connector: &str, reason: Reason) {
        if let Some((_, h)) = self.rejections.iter().find(|(n, _)| n == connector) {
            h.inc(reason);
        }
    }

    /// Counts a request an any-of group let through because of `connector`.
    pub fn group_allow(&self, connector: &str) {
        if let Some((_, h)) = self.group_allows.iter().find(|(n, _)| n == connector) {
            h.inc();
        }
    }
}

/// Handles for one connector.
#[derive(Clone)]
pub struct ConnectorMetrics {
    allow: Histogram,
    deny: Histogram,
}

impl ConnectorMetrics {
    /// Records one check.
    pub fn observe(&self, allowed: bool, elapsed: Duration) {
        if allowed { &self.allow } else { &self.deny }.observe(elapsed.as_secs_f64());
    }
}

/// Handles for one upstream.
#[derive(Clone)]
pub struct UpstreamMetrics {
    name: String,
    peer_healthy: IntGaugeVec,
    /// `gatehouse_upstream_retries_total{upstream}`.
    pub retries: IntCounter,
    /// `gatehouse_upstream_connect_failures_total{upstream}`.
    pub connect_failures: IntCounter,
    resolved_ok: IntCounter,
    resolved_failure: IntCounter,
}

impl UpstreamMetrics {
    /// The health gauge of one peer (the label is its address, which comes
    /// from the config or from DNS answers for a configured name).
    pub fn peer_gauge(&self, addr: &std::net::SocketAddr) -> IntGauge {
        self.peer_healthy
            .with_label_values(&[self.name.as_str(), &addr.to_string()])
    }

    /// Drops the health series of a peer address that left the upstream.
    pub fn forget_peer(&self, addr: &std::net::SocketAddr) {
        let _ = self
            .peer_healthy
            .remove_label_values(&[self.name.as_str(), &addr.to_string()]);
    }

    /// Counts one background re-resolution.
    pub fn resolved(&self, ok: bool) {
        if ok {
            &self.resolved_ok
        } else {
            &self.resolved_failure
        }
        .inc();
    }
}
