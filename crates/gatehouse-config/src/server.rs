//! `[server]`: listeners (plain and `[[server.tls]]`), threads, shutdown,
//! logging and the request rules; its own checks ([`ServerConfig::validate`]).

use crate::{default_true, limits, request, ConfigError, HumanDuration, TrailingDots};
use crate::{EncodedSlashes, PathParameters};
use serde::Deserialize;
use std::net::SocketAddr;

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
    /// Idle upstream connections kept for reuse (all upstreams together).
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
    /// other client-address and scheme headers ([`CLIENT_ADDRESS_HEADERS`](crate::CLIENT_ADDRESS_HEADERS),
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
    /// HTTP/2: streams of one connection proxied at once (each holding an
    /// upstream request and up to ~0.5 MiB of response buffers); further
    /// streams wait for a place, at most `response_write_timeout`, then 503.
    #[serde(default = "limits::default_h2_max_proxied_streams")]
    pub h2_max_proxied_streams: u32,
    /// Largest request head (request line and every header, as HTTP/1.1
    /// spells them) accepted; larger ones are refused with 431.
    #[serde(default = "limits::default_max_request_header_bytes")]
    pub max_request_header_bytes: usize,
    /// Open client connections per process; over it a new connection is
    /// closed at once. Default: derived from the descriptor limit.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Read buffer of each client connection, plain TCP and TLS, in bytes
    /// (Pingora's default: 64 KiB). `0` (default): reads go straight
    /// into the request's own buffers, so an idle connection holds none.
    /// Read at start-up only.
    #[serde(default)]
    pub read_buffer_bytes: usize,
    /// HTTP/2: response bytes buffered per stream for a client that does
    /// not read (flow-control window exhausted); past it the upstream read
    /// waits. Read at start-up only.
    #[serde(default = "limits::default_h2_max_send_buffer_bytes")]
    pub h2_max_send_buffer_bytes: usize,
    /// Kernel send buffer (`SO_SNDBUF`) of each client connection, in
    /// bytes. Unset (default): the kernel's autotuning (up to
    /// `net.ipv4.tcp_wmem`'s maximum, 4 MiB on Linux), which a client that
    /// stops reading fills. Applies to connections accepted after a reload.
    #[serde(default)]
    pub send_buffer_bytes: Option<usize>,
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

impl ServerConfig {
    /// Checks `[server]` on its own: listeners, TLS entries, threads, the
    /// request rules and the limits against hostile clients.
    pub(crate) fn validate(&self, errs: &mut Vec<ConfigError>) {
        let s = self;
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
        request::validate(&s.strip_headers, &s.trusted_proxies, errs);
        limits::validate(s, errs);
        if s.upstream_keepalive_pool_size > 1_000_000 {
            errs.push(ConfigError::new(
                "server.upstream_keepalive_pool_size",
                "must be at most 1000000",
            ));
        }
    }
}

fn default_grace_period() -> HumanDuration {
    HumanDuration::from_secs(10)
}
/// Pingora's default is 128: HTTP/2 clients with 320 streams in flight then
/// opened a new upstream connection for one request in three (benches/
/// instructions_h2.sh: 30 229 connections in 5 s, 17.7 µs of system CPU per
/// request instead of 9.2 with 512).
fn default_pool_size() -> usize {
    512
}
