//! The Gatehouse configuration: one TOML file, parsed into typed sections and
//! validated with errors that name the exact key at fault
//! (`routes[2].upstream: no upstream named "ordrs" (known: orders, users)`).
//!
//! This crate knows the shape of `[server]`, `[upstreams.*]`, `[[routes]]` and
//! the envelope of `[connectors.*]` (a `kind` plus kind-specific settings).
//! Kind-specific settings are deserialized by the connector that owns the kind,
//! through [`deserialize_section`], so their errors carry the same paths.
//!
//! ```
//! let cfg = gatehouse_config::Config::from_toml_str(r#"
//! [server]
//! listen = ["127.0.0.1:8080"]
//! [upstreams.app]
//! peers = ["127.0.0.1:9000"]
//! [[routes]]
//! name = "app"
//! path_prefix = "/"
//! upstream = "app"
//! "#).unwrap();
//! assert_eq!(cfg.routes[0].upstream, "app");
//! ```

mod cache;
mod duration;
mod error;
pub mod limits;
mod request;
mod steps;

pub use cache::{CacheConfig, CacheKind};
pub use duration::HumanDuration;
pub use error::{ConfigError, ConfigErrors};
pub use request::{
    is_header_name, parse_trusted_proxy, EncodedSlashes, PathParameters, TrailingDots, Upgrade,
    CLIENT_ADDRESS_HEADERS, METHOD_OVERRIDE_HEADERS, PATH_OVERRIDE_HEADERS,
};
pub use steps::Step;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;

/// HTTP methods accepted in `routes[].methods` (exact, upper case, as RFC 9110 spells them).
pub const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, threads, shutdown and logging.
    pub server: ServerConfig,
    /// Named upstream clusters.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Named connector instances (`kind` plus settings).
    #[serde(default)]
    pub connectors: BTreeMap<String, ConnectorConfig>,
    /// Named shared caches (`[caches.NAME]`), used by connectors as an L2.
    #[serde(default)]
    pub caches: BTreeMap<String, CacheConfig>,
    /// Routes, matched by host, longest path prefix and method.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Plain-HTTP proxy listeners (`host:port`). May be empty when
    /// `[[server.tls]]` listeners exist; at least one listener is required.
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// TLS listeners (`[[server.tls]]`), each with its certificates chosen by SNI.
    #[serde(default)]
    pub tls: Vec<TlsListenerConfig>,
    /// Admin listener serving `/metrics`, `/healthz` and `/readyz`.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// Worker threads of the proxy service (default: the number of CPUs).
    #[serde(default)]
    pub threads: Option<usize>,
    /// How long in-flight requests may take to finish after `SIGTERM`.
    #[serde(default = "default_grace_period")]
    pub grace_period: HumanDuration,
    /// Let idle worker threads steal work from busy ones. Off by default:
    /// one runtime per thread measured 9-19% more requests per second on the
    /// proxy path (docs/performance.md).
    #[serde(default)]
    pub work_stealing: bool,
    /// Write one access-log line per request.
    #[serde(default)]
    pub access_log: bool,
    /// Accept HTTP/2 over cleartext (h2c, prior knowledge) on the listeners.
    #[serde(default)]
    pub h2c: bool,
    /// Idle upstream connections kept for reuse, per worker thread.
    #[serde(default = "default_pool_size")]
    pub upstream_keepalive_pool_size: usize,
    /// `%2F` / `%5C` in a path: `"reject"` (400, default) or `"keep"` (opaque data).
    #[serde(default)]
    pub encoded_slashes: EncodedSlashes,
    /// Path parameters (`;…`, and their escape `%3B`): `"reject"` (400,
    /// default) or `"strip"`.
    #[serde(default)]
    pub path_parameters: PathParameters,
    /// A path segment ending in `.` or a space (raw or encoded), other than
    /// `.` and `..`: `"reject"` (400, default; Windows servers drop them and
    /// serve `/api./x` as `/api/x`) or `"allow"`.
    #[serde(default)]
    pub trailing_dots_and_spaces: TrailingDots,
    /// Drop client headers whose names hold a character outside
    /// `[A-Za-z0-9-]` (`_` too unless `underscores_in_headers`), as NGINX's
    /// `ignore_invalid_headers` does (default true). Identity, address and
    /// override headers are removed in every spelling either way.
    #[serde(default = "default_true")]
    pub ignore_invalid_headers: bool,
    /// Extra client header names removed from every request on every route
    /// (compared case-insensitively, `_` and `-` as equal), beside every header
    /// any connector can inject.
    #[serde(default)]
    pub strip_headers: Vec<String>,
    /// Forward client headers whose names contain `_` (default false: they are
    /// dropped, as NGINX does, since CGI/WSGI/PHP read `X_User` as `X-User`).
    #[serde(default)]
    pub underscores_in_headers: bool,
    /// Forward `X-HTTP-Method-Override` and its variants (default false: they
    /// are removed, so the method that was routed is the method served).
    #[serde(default)]
    pub method_override_headers: bool,
    /// Forward `X-Original-URL` and `X-Rewrite-URL` (default false: they are
    /// removed from every request, trusted proxies' included, since Symfony
    /// and Zend route by them instead of the path Gatehouse routed).
    #[serde(default)]
    pub path_override_headers: bool,
    /// Peers (CIDRs or addresses) whose `X-Forwarded-For` chain and the
    /// other client-address and scheme headers ([`CLIENT_ADDRESS_HEADERS`],
    /// `X-Forwarded-Proto`) are kept; from any other peer they are replaced
    /// or removed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// HTTP/1.1 keep-alive: how long a connection may sit idle between
    /// requests (and pause inside the next request head) before it is closed.
    #[serde(default = "limits::default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// The first request head of a connection: the longest pause between
    /// reads of it (and, on `h2c` listeners, the wait for the first bytes).
    #[serde(default = "limits::default_request_header_timeout")]
    pub request_header_timeout: HumanDuration,
    /// HTTP/1.x: the longest wait for each read of a request body.
    #[serde(default = "limits::default_request_body_timeout")]
    pub request_body_timeout: HumanDuration,
    /// The longest wait for each write to a client (a client that does not
    /// read its response is closed).
    #[serde(default = "limits::default_response_write_timeout")]
    pub response_write_timeout: HumanDuration,
    /// HTTP/1.x: minimum bytes per second a client must read a response at
    /// (each write's timeout is its size ÷ this rate, at least 1 s; it then
    /// replaces `response_write_timeout`). `0` (default): off.
    #[serde(default)]
    pub response_min_send_rate: u64,
    /// HTTP/2: close a connection without open streams after this long.
    #[serde(default = "limits::default_h2_idle_timeout")]
    pub h2_idle_timeout: HumanDuration,
    /// HTTP/2: `SETTINGS_MAX_CONCURRENT_STREAMS` announced to clients.
    #[serde(default = "limits::default_h2_max_concurrent_streams")]
    pub h2_max_concurrent_streams: u32,
    /// Largest request head (request line and every header, as HTTP/1.1
    /// spells them) accepted; larger ones are refused with 431.
    #[serde(default = "limits::default_max_request_header_bytes")]
    pub max_request_header_bytes: usize,
    /// Open client connections per process; over it a new connection is
    /// closed at once. Default: derived from the descriptor limit.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Read buffer of each plain-TCP client connection, in bytes (TLS
    /// listeners keep Pingora's 64 KiB). `0` (default): reads go straight
    /// into the request's own buffers, so an idle connection holds none.
    /// Read at start-up only.
    #[serde(default)]
    pub read_buffer_bytes: usize,
    /// HTTP/2: response bytes buffered per stream for a client that does
    /// not read (flow-control window exhausted); past it the upstream read
    /// waits. Read at start-up only.
    #[serde(default = "limits::default_h2_max_send_buffer_bytes")]
    pub h2_max_send_buffer_bytes: usize,
}

/// One `[[server.tls]]` entry: TLS listeners sharing certificates and settings.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerConfig {
    /// Addresses (`host:port`) to terminate TLS on, at least one.
    pub listen: Vec<SocketAddr>,
    /// Certificate chains and keys (PEM), chosen by SNI from each
    /// certificate's DNS names (`*.example.com` wildcards included); the
    /// first is the default for unknown names and clients without SNI.
    /// Re-read on every reload.
    pub certificates: Vec<CertificateConfig>,
    /// Lowest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// PEM file of the CAs client certificates must chain to; asks clients
    /// for a certificate (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<std::path::PathBuf>,
    /// With `client_ca_file`: `"require"` (default; a client without a valid
    /// certificate fails the handshake) or `"optional"` (a client may send
    /// none; one it sends must be valid).
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// The leaf certificate first, then intermediates.
    pub cert_file: std::path::PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: std::path::PathBuf,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// Whether a client certificate is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No (valid) certificate, no handshake.
    Require,
    /// A client may send no certificate; one it sends must be valid.
    Optional,
}

impl ServerConfig {
    /// Every proxy listener address, plain then TLS.
    pub fn all_listen(&self) -> impl Iterator<Item = &SocketAddr> {
        self.listen
            .iter()
            .chain(self.tls.iter().flat_map(|t| t.listen.iter()))
    }
}

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

/// `[connectors.NAME]`: the kind, and the kind's own settings (kept as TOML
/// until the connector's builder reads them with [`deserialize_section`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorConfig {
    /// The connector kind, e.g. `jwt` or `oidc_userinfo`.
    pub kind: String,
    /// Every other key of the section.
    pub settings: toml::Table,
}

impl schemars::JsonSchema for ConnectorConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConnectorConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "A connector: `kind` plus the kind's settings.",
            "required": ["kind"],
            "properties": { "kind": { "type": "string" } }
        })
    }
}

impl<'de> Deserialize<'de> for ConnectorConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut settings = toml::Table::deserialize(d)?;
        match settings.remove("kind") {
            Some(toml::Value::String(kind)) => Ok(Self { kind, settings }),
            Some(other) => Err(D::Error::custom(format!(
                "`kind` must be a string, found {}",
                other.type_str()
            ))),
            None => Err(D::Error::custom(
                "missing key `kind` (the connector kind, e.g. kind = \"jwt\")",
            )),
        }
    }
}

impl RouteConfig {
    /// Every connector name of the route, in chain order (groups flattened).
    pub fn connector_names(&self) -> impl Iterator<Item = &str> {
        self.connectors
            .iter()
            .flat_map(|s| s.members().iter().map(String::as_str))
    }
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name, used in logs and metric labels.
    pub name: String,
    /// Path prefix, matched on whole segments (`/orders` matches `/orders`
    /// and `/orders/7`, not `/orders-old`); the longest prefix wins.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Host to match: exact (`api.example.com`) or wildcard (`*.example.com`);
    /// case-insensitive, port ignored. Absent: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Methods to match (absent: all).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Name of the upstream to proxy to.
    pub upstream: String,
    /// Steps run in order; every step must allow. A step is a connector name
    /// or an any-of group `{ any = ["a", "b"] }` (the first member that
    /// allows wins). Empty: a public route.
    #[serde(default)]
    pub connectors: Vec<Step>,
    /// Match `path_prefix` ignoring ASCII case, for upstreams that route
    /// paths case-insensitively: IIS and ASP.NET Core, Express and Koa by
    /// default (`/API/secret` is their `/api/secret`). The path is forwarded
    /// unchanged.
    #[serde(default)]
    pub path_case_insensitive: bool,
    /// Protocol upgrades tunnelled on this route (`["websocket"]`); empty by
    /// default: an `Upgrade` header is removed and the request proxied as a
    /// plain one. An allowed upgrade runs the connectors first and opens
    /// the tunnel only on a `101` that completes the client's handshake.
    #[serde(default)]
    pub upgrades: Vec<Upgrade>,
}

fn default_true() -> bool {
    true
}
fn default_grace_period() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_pool_size() -> usize {
    128
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
fn default_prefix() -> String {
    "/".to_string()
}

/// Deserializes `value` into `T`, reporting any error with its full key path
/// below `prefix` (for example `connectors.corp.jwks_refresh`).
pub fn deserialize_section<T: DeserializeOwned>(
    prefix: &str,
    value: toml::Table,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." {
            prefix.to_string()
        } else if prefix.is_empty() {
            inner
        } else {
            format!("{prefix}.{inner}")
        };
        ConfigError::new(path, clean_message(&e.inner().to_string()))
    })
}

/// The message of a toml/serde error without toml's source snippet.
fn clean_message(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with("-->"))
        .filter(|l| !l.chars().next().is_some_and(|c| c.is_ascii_digit()) || !l.contains('|'))
        .filter(|l| !l.starts_with("TOML parse error"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&text)
    }

    /// Parses and validates configuration text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let mut err =
                ConfigError::new("", format!("invalid TOML: {}", clean_message(e.message())));
            err.line = e.span().map(|s| line_of(text, s.start));
            err
        })?;
        let mut track = serde_path_to_error::Track::new();
        let cfg = Config::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
            .map_err(|e| {
                let p = track.path().to_string();
                let mut err = ConfigError::new(
                    if p == "." { String::new() } else { p },
                    clean_message(e.message()),
                );
                err.line = e.span().map(|s| line_of(text, s.start));
                err
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Cross-checks the sections: names, references, duplicates, limits.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        for (name, c) in &self.caches {
            c.validate(&format!("caches.{name}"), &mut errs);
        }
        let s = &self.server;
        if s.listen.is_empty() && s.tls.is_empty() {
            errs.push(ConfigError::new(
                "server.listen",
                "at least one listener is required (server.listen or [[server.tls]])",
            ));
        }
        let mut seen: Vec<(SocketAddr, String)> = Vec::new();
        let keyed = s
            .listen
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("server.listen[{i}]"), a))
            .chain(s.tls.iter().enumerate().flat_map(|(t, l)| {
                l.listen
                    .iter()
                    .enumerate()
                    .map(move |(i, a)| (format!("server.tls[{t}].listen[{i}]"), a))
            }));
        for (path, a) in keyed {
            if let Some((_, first)) = seen.iter().find(|(b, _)| b == a) {
                errs.push(ConfigError::new(
                    &path,
                    format!("{a} is listed twice (also {first})"),
                ));
            }
            if s.admin_listen == Some(*a) {
                errs.push(ConfigError::new(
                    "server.admin_listen",
                    format!("{a} is also a proxy listener ({path})"),
                ));
            }
            seen.push((*a, path));
        }
        for (t, l) in s.tls.iter().enumerate() {
            let p = format!("server.tls[{t}]");
            if l.min_version == TlsVersion::Tls13 {
                // Pingora 0.9's rustls listener always enables TLS 1.2 and a
                // ClientHello does not show which versions a client offers to
                // the certificate resolver: "1.3" could not be enforced, and a
                // setting that is silently not enforced is worse than none.
                errs.push(ConfigError::new(
                    format!("{p}.min_version"),
                    "\"1.3\" cannot be enforced yet (Pingora 0.9's rustls listeners always accept TLS 1.2); use \"1.2\"",
                ));
            }
            if l.listen.is_empty() {
                errs.push(ConfigError::new(
                    format!("{p}.listen"),
                    "at least one address is required",
                ));
            }
            if l.certificates.is_empty() {
                errs.push(ConfigError::new(
                    format!("{p}.certificates"),
                    "at least one certificate (cert_file, key_file) is required",
                ));
            }
            if l.client_auth.is_some() && l.client_ca_file.is_none() {
                errs.push(ConfigError::new(
                    format!("{p}.client_auth"),
                    "needs client_ca_file (the CAs client certificates must chain to)",
                ));
            }
        }
        if let Some(t) = s.threads {
            if t == 0 || t > 1024 {
                errs.push(ConfigError::new(
                    "server.threads",
                    format!("must be between 1 and 1024, got {t}"),
                ));
            }
        }
        request::validate(&s.strip_headers, &s.trusted_proxies, &mut errs);
        limits::validate(s, &mut errs);
        if s.upstream_keepalive_pool_size > 1_000_000 {
            errs.push(ConfigError::new(
                "server.upstream_keepalive_pool_size",
                "must be at most 1000000",
            ));
        }

        for (name, up) in &self.upstreams {
            let p = format!("upstreams.{name}");
            check_name(&p, name, &mut errs);
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
            validate_resilience(&p, up, &mut errs);
        }

        for (name, c) in &self.connectors {
            let p = format!("connectors.{name}");
            check_name(&p, name, &mut errs);
            if c.kind.trim().is_empty() {
                errs.push(ConfigError::new(format!("{p}.kind"), "must not be empty"));
            }
        }

        let mut seen_names: HashMap<&str, usize> = HashMap::new();
        // (host pattern, path prefix, sorted methods) → first route with it.
        type RouteKey<'a> = (Option<String>, &'a str, Option<Vec<String>>);
        let mut seen_keys: HashMap<RouteKey<'_>, usize> = HashMap::new();
        for (i, r) in self.routes.iter().enumerate() {
            let p = format!("routes[{i}]");
            if r.name.is_empty() {
                errs.push(ConfigError::new(format!("{p}.name"), "must not be empty"));
            } else if let Some(first) = seen_names.insert(&r.name, i) {
                errs.push(ConfigError::new(
                    format!("{p}.name"),
                    format!("duplicate route name \"{}\" (also routes[{first}])", r.name),
                ));
                seen_names.insert(&r.name, first);
            }
            if !r.path_prefix.starts_with('/') {
                errs.push(ConfigError::new(
                    format!("{p}.path_prefix"),
                    format!("must start with '/', got \"{}\"", r.path_prefix),
                ));
            } else if r.path_prefix.contains(['?', '#'])
                || r.path_prefix
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                errs.push(ConfigError::new(
                    format!("{p}.path_prefix"),
                    "must be a plain path (no query, fragment, spaces or control characters)",
                ));
            }
            if let Some(h) = &r.host {
                if let Err(m) = check_host_pattern(h) {
                    errs.push(ConfigError::new(format!("{p}.host"), m));
                }
            }
            if let Some(ms) = &r.methods {
                if ms.is_empty() {
                    errs.push(ConfigError::new(
                        format!("{p}.methods"),
                        "must not be empty (omit it to match every method)",
                    ));
                }
                for (j, m) in ms.iter().enumerate() {
                    if !KNOWN_METHODS.contains(&m.as_str()) {
                        errs.push(ConfigError::new(
                            format!("{p}.methods[{j}]"),
                            format!(
                                "unknown method \"{m}\" (known: {}; methods are case-sensitive)",
                                KNOWN_METHODS.join(", ")
                            ),
                        ));
                    }
                }
            }
            if !self.upstreams.contains_key(&r.upstream) {
                errs.push(ConfigError::new(
                    format!("{p}.upstream"),
                    format!(
                        "no upstream named \"{}\" (known: {})",
                        r.upstream,
                        known(self.upstreams.keys())
                    ),
                ));
            }
            steps::validate(&p, &r.connectors, &self.connectors, &mut errs);
            let mut methods = r.methods.clone();
            if let Some(m) = methods.as_mut() {
                m.sort();
                m.dedup();
            }
            let key = (
                r.host.as_ref().map(|h| normalize_host_pattern(h)),
                r.path_prefix.as_str(),
                methods,
            );
            if let Some(first) = seen_keys.get(&key) {
                errs.push(ConfigError::new(
                    format!("{p}.path_prefix"),
                    format!("routes[{first}] already matches the same host, path prefix and methods; this route could never be chosen"),
                ));
            } else {
                seen_keys.insert(key, i);
            }
        }

        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
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

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none defined".to_string()
    } else {
        v.join(", ")
    }
}

fn check_name(path: &str, name: &str, errs: &mut Vec<ConfigError>) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        errs.push(ConfigError::new(
            path,
            format!("invalid name \"{name}\": use 1-64 characters from A-Z a-z 0-9 _ -"),
        ));
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

/// Lower-cases a host pattern and drops a `:port` suffix.
pub fn normalize_host_pattern(h: &str) -> String {
    let h = h.trim().to_ascii_lowercase();
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host.to_string()
        }
        _ => h,
    }
}

fn check_host_pattern(h: &str) -> Result<(), String> {
    let n = normalize_host_pattern(h);
    let body = n.strip_prefix("*.").unwrap_or(&n);
    if body.is_empty()
        || body.contains('*')
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        || body.starts_with('.')
        || body.ends_with('.')
    {
        return Err(format!(
            "invalid host \"{h}\": use an exact name (api.example.com) or a wildcard (*.example.com)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
