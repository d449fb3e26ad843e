//! `[upstreams.NAME]`: peers, timeouts, retries, passive and active health;
//! their own checks ([`UpstreamConfig::validate`]).

use crate::{check_name, default_true, ConfigError, HumanDuration};
use serde::Deserialize;

/// `[upstreams.NAME]`.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` addresses, resolved when the config loads; requests are
    /// spread round-robin over every resolved address.
    pub peers: Vec<String>,
    /// Speak TLS to the peers.
    #[serde(default)]
    pub tls: bool,
    /// TLS server name; defaults to the host of the first peer.
    #[serde(default)]
    pub sni: Option<String>,
    /// Verify the peer certificate (TLS only).
    #[serde(default = "default_true")]
    pub verify_cert: bool,
    /// TCP (and TLS) connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Longest wait for each read from the upstream.
    #[serde(default = "default_io_timeout")]
    pub read_timeout: HumanDuration,
    /// Longest wait for each write to the upstream.
    #[serde(default = "default_io_timeout")]
    pub write_timeout: HumanDuration,
    /// How long an idle pooled connection is kept.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// How many times a request whose connection to a peer failed is tried
    /// again on another peer (connect failures only: never once bytes were
    /// sent upstream). 0 to 5.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Consecutive connect failures after which a peer is skipped for
    /// `cooldown` (passive health). 1 to 100.
    #[serde(default = "default_unhealthy_after")]
    pub unhealthy_after: u32,
    /// How long a peer marked unhealthy by connect failures is skipped before
    /// it is tried again.
    #[serde(default = "default_cooldown")]
    pub cooldown: HumanDuration,
    /// How often host names in `peers` are resolved again (off the request
    /// path; the last good addresses are kept when DNS fails). IP literals
    /// are never re-resolved.
    #[serde(default = "default_resolve_interval")]
    pub resolve_interval: HumanDuration,
    /// Optional active health checks (HTTP GET to every peer).
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    /// Kernel receive buffer (`SO_RCVBUF`) of each connection to a peer, in
    /// bytes. Unset (default): the kernel's autotuning. Smaller values bound
    /// what a response to a client that stopped reading holds (below 64 KiB
    /// also Gatehouse's own read-ahead), at the cost of throughput on links
    /// with a large bandwidth-delay product (at most this much in flight per
    /// round trip).
    #[serde(default)]
    pub receive_buffer_bytes: Option<usize>,
}

/// `[upstreams.NAME.health_check]`: an HTTP GET to every peer on an interval;
/// a 2xx or 3xx answer within `timeout` is a success.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Path (and optional query) requested, starting with `/`.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Time between two checks of a peer.
    #[serde(default = "default_health_interval")]
    pub interval: HumanDuration,
    /// Longest wait for a check's answer (at most `interval`).
    #[serde(default = "default_connect_timeout")]
    pub timeout: HumanDuration,
    /// Consecutive successes that bring an unhealthy peer back. 1 to 100.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures that take a healthy peer out. 1 to 100.
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
}

impl UpstreamConfig {
    /// Checks `[upstreams.NAME]` on its own (`p` is `upstreams.NAME`).
    pub(crate) fn validate(&self, name: &str, errs: &mut Vec<ConfigError>) {
        let (p, up) = (format!("upstreams.{name}"), self);
        check_name(&p, name, errs);
        if up.peers.is_empty() {
            errs.push(ConfigError::new(
                format!("{p}.peers"),
                "at least one peer (host:port) is required",
            ));
        }
        for (i, peer) in up.peers.iter().enumerate() {
            if let Err(m) = split_host_port(peer) {
                errs.push(ConfigError::new(format!("{p}.peers[{i}]"), m));
            }
        }
        for (key, d) in [
            ("connect_timeout", up.connect_timeout),
            ("read_timeout", up.read_timeout),
            ("write_timeout", up.write_timeout),
        ] {
            if d.get().is_zero() {
                errs.push(ConfigError::new(
                    format!("{p}.{key}"),
                    "must be greater than zero",
                ));
            }
        }
        if let Some(n) = up.receive_buffer_bytes {
            crate::limits::check_socket_buffer(&format!("{p}.receive_buffer_bytes"), n, errs);
        }
        validate_resilience(&p, up, errs);
    }
}

/// Upper bound of `upstreams.*.retries`.
pub const MAX_RETRIES: u32 = 5;
/// Shortest `resolve_interval`, health check `interval` and `cooldown`.
pub const MIN_UPSTREAM_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// Longest `resolve_interval`, health check `interval` and `cooldown`.
pub const MAX_UPSTREAM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

fn validate_resilience(p: &str, up: &UpstreamConfig, errs: &mut Vec<ConfigError>) {
    let mut count = |key: &str, v: u32, min: u32, max: u32| {
        if v < min || v > max {
            errs.push(ConfigError::new(
                format!("{p}.{key}"),
                format!("must be between {min} and {max}, got {v}"),
            ));
        }
    };
    count("retries", up.retries, 0, MAX_RETRIES);
    count("unhealthy_after", up.unhealthy_after, 1, 100);
    if let Some(h) = &up.health_check {
        count(
            "health_check.healthy_threshold",
            h.healthy_threshold,
            1,
            100,
        );
        count(
            "health_check.unhealthy_threshold",
            h.unhealthy_threshold,
            1,
            100,
        );
    }
    let mut span = |key: &str, d: HumanDuration| {
        if d.get() < MIN_UPSTREAM_INTERVAL || d.get() > MAX_UPSTREAM_INTERVAL {
            errs.push(ConfigError::new(
                format!("{p}.{key}"),
                format!("must be between 100ms and 1h, got {d}"),
            ));
        }
    };
    span("cooldown", up.cooldown);
    span("resolve_interval", up.resolve_interval);
    if let Some(h) = &up.health_check {
        span("health_check.interval", h.interval);
        if h.timeout.get().is_zero() || h.timeout > h.interval {
            errs.push(ConfigError::new(
                format!("{p}.health_check.timeout"),
                format!(
                    "must be greater than zero and at most health_check.interval ({}), got {}",
                    h.interval, h.timeout
                ),
            ));
        }
        let path_ok = h.path.starts_with('/')
            && h.path.len() <= 1024
            && !h.path.contains('#')
            && h.path.bytes().all(|b| b.is_ascii_graphic());
        if !path_ok {
            errs.push(ConfigError::new(
                format!("{p}.health_check.path"),
                format!(
                    "must start with '/' and hold only visible ASCII characters (no '#', at most 1024), got {:?}",
                    h.path
                ),
            ));
        }
    }
}

/// Splits `host:port` (IPv6 as `[::1]:80`), checking both parts.
pub fn split_host_port(s: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("\"{s}\" is not host:port (IPv6 as [::1]:8080)"))?;
        (h, p)
    } else {
        s.rsplit_once(':')
            .ok_or_else(|| format!("\"{s}\" is not host:port (the port is required)"))?
    };
    if host.is_empty() {
        return Err(format!("\"{s}\" has an empty host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("\"{s}\" has an invalid port \"{port}\""))?;
    if port == 0 {
        return Err(format!("\"{s}\" has port 0"));
    }
    Ok((host, port))
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_io_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_retries() -> u32 {
    1
}
fn default_unhealthy_after() -> u32 {
    3
}
fn default_cooldown() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_resolve_interval() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_health_path() -> String {
    "/".to_string()
}
fn default_health_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_healthy_threshold() -> u32 {
    2
}
fn default_unhealthy_threshold() -> u32 {
    3
}
