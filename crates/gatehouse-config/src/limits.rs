//! `[server]` limits against hostile clients: idle and slow-client timeouts,
//! HTTP/2 settings, the request head size and the connection cap — their
//! defaults (next to NGINX's and Envoy's in docs/configuration.md) and checks.

use crate::{ConfigError, HumanDuration, ServerConfig};
use std::time::Duration;

/// Default `server.idle_timeout`: NGINX's `keepalive_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: HumanDuration = HumanDuration::from_secs(75);
/// Default `server.request_header_timeout`: NGINX's `client_header_timeout`.
pub const DEFAULT_REQUEST_HEADER_TIMEOUT: HumanDuration = HumanDuration::from_secs(60);
/// Default `server.request_body_timeout`: NGINX's `client_body_timeout`.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: HumanDuration = HumanDuration::from_secs(60);
/// Default `server.response_write_timeout`: NGINX's `send_timeout`.
pub const DEFAULT_RESPONSE_WRITE_TIMEOUT: HumanDuration = HumanDuration::from_secs(60);
/// Default `server.h2_idle_timeout`: NGINX's `keepalive_timeout` (which
/// also closes idle HTTP/2 connections since 1.19.7).
pub const DEFAULT_H2_IDLE_TIMEOUT: HumanDuration = HumanDuration::from_secs(75);
/// Default `server.h2_max_concurrent_streams`: Pingora's own default
/// (NGINX: 128; Envoy's edge recommendation: 100).
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Default `server.h2_max_proxied_streams`: a connection's streams hold at
/// most 32 × ~0.5 MiB of response buffers for a client that stops reading.
pub const DEFAULT_H2_MAX_PROXIED_STREAMS: u32 = 32;
/// Default `server.max_request_header_bytes`: NGINX refuses heads above
/// 4 × 8 KiB (`large_client_header_buffers`).
pub const DEFAULT_MAX_REQUEST_HEADER_BYTES: usize = 32 * 1024;
/// Default `server.h2_max_send_buffer_bytes`: four 16 KiB frames (the `h2`
/// crate's own default is 400 KiB per stream).
pub const DEFAULT_H2_MAX_SEND_BUFFER_BYTES: usize = 64 * 1024;
/// Pingora refuses HTTP/1 request heads above 1 MiB on its own.
pub const ENGINE_MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Default ceiling of `server.max_connections` when it is derived from the
/// descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Descriptors kept out of the derived connection cap for listeners, the
/// admin listener, logs, watched files and identity-provider calls.
pub const RESERVED_FDS: u64 = 256;

pub(crate) fn default_idle_timeout() -> HumanDuration {
    DEFAULT_IDLE_TIMEOUT
}
pub(crate) fn default_request_header_timeout() -> HumanDuration {
    DEFAULT_REQUEST_HEADER_TIMEOUT
}
pub(crate) fn default_request_body_timeout() -> HumanDuration {
    DEFAULT_REQUEST_BODY_TIMEOUT
}
pub(crate) fn default_response_write_timeout() -> HumanDuration {
    DEFAULT_RESPONSE_WRITE_TIMEOUT
}
pub(crate) fn default_h2_idle_timeout() -> HumanDuration {
    DEFAULT_H2_IDLE_TIMEOUT
}
pub(crate) fn default_h2_max_concurrent_streams() -> u32 {
    DEFAULT_H2_MAX_CONCURRENT_STREAMS
}
pub(crate) fn default_h2_max_proxied_streams() -> u32 {
    DEFAULT_H2_MAX_PROXIED_STREAMS
}
pub(crate) fn default_h2_max_send_buffer_bytes() -> usize {
    DEFAULT_H2_MAX_SEND_BUFFER_BYTES
}
pub(crate) fn default_max_request_header_bytes() -> usize {
    DEFAULT_MAX_REQUEST_HEADER_BYTES
}

/// Whole seconds, rounded up: Pingora takes HTTP/1 keep-alive and head
/// timeouts in seconds, and `0` would mean "forever".
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The connection cap when `server.max_connections` is not set: half of
/// what the descriptor limit leaves after [`RESERVED_FDS`] (a proxied
/// connection may hold an upstream connection too), at most
/// [`DEFAULT_MAX_CONNECTIONS`], at least 1.
pub fn derived_max_connections(fd_limit: u64) -> usize {
    let by_fds = fd_limit.saturating_sub(RESERVED_FDS) / 2;
    usize::try_from(by_fds)
        .unwrap_or(usize::MAX)
        .clamp(1, DEFAULT_MAX_CONNECTIONS)
}

pub(crate) fn validate(s: &ServerConfig, errs: &mut Vec<ConfigError>) {
    let hour = Duration::from_secs(3600);
    for (key, d, min) in [
        ("idle_timeout", s.idle_timeout, Duration::from_secs(1)),
        (
            "request_header_timeout",
            s.request_header_timeout,
            Duration::from_secs(1),
        ),
        (
            "request_body_timeout",
            s.request_body_timeout,
            Duration::from_millis(1),
        ),
        (
            "response_write_timeout",
            s.response_write_timeout,
            Duration::from_millis(1),
        ),
        ("h2_idle_timeout", s.h2_idle_timeout, Duration::from_secs(1)),
    ] {
        if d.get() < min || d.get() > hour {
            errs.push(ConfigError::new(
                format!("server.{key}"),
                format!("must be between {} and 1h, got {d}", HumanDuration(min)),
            ));
        }
    }
    for (key, n) in [
        ("h2_max_concurrent_streams", s.h2_max_concurrent_streams),
        ("h2_max_proxied_streams", s.h2_max_proxied_streams),
    ] {
        if n == 0 || n > 10_000 {
            errs.push(ConfigError::new(
                format!("server.{key}"),
                format!("must be between 1 and 10000, got {n}"),
            ));
        }
    }
    if !(1024..=ENGINE_MAX_HEADER_BYTES).contains(&s.max_request_header_bytes) {
        errs.push(ConfigError::new(
            "server.max_request_header_bytes",
            format!(
                "must be between 1024 and {ENGINE_MAX_HEADER_BYTES} (Pingora's own limit), got {}",
                s.max_request_header_bytes
            ),
        ));
    }
    if let Some(n) = s.send_buffer_bytes {
        check_socket_buffer("server.send_buffer_bytes", n, errs);
    }
    if s.read_buffer_bytes > 1024 * 1024 {
        errs.push(ConfigError::new(
            "server.read_buffer_bytes",
            format!("must be at most 1048576, got {}", s.read_buffer_bytes),
        ));
    }
    if !(16 * 1024..=16 * 1024 * 1024).contains(&s.h2_max_send_buffer_bytes) {
        errs.push(ConfigError::new(
            "server.h2_max_send_buffer_bytes",
            format!(
                "must be between 16384 and 16777216, got {}",
                s.h2_max_send_buffer_bytes
            ),
        ));
    }
    if let Some(n) = s.max_connections {
        if n == 0 || n > 1_000_000 {
            errs.push(ConfigError::new(
                "server.max_connections",
                format!("must be between 1 and 1000000, got {n}"),
            ));
        }
    }
    if s.response_min_send_rate > 1 << 30 {
        errs.push(ConfigError::new(
            "server.response_min_send_rate",
            "must be at most 1073741824 (bytes per second)",
        ));
    }
}

/// Bounds of a kernel socket buffer setting (`SO_SNDBUF`, `SO_RCVBUF`).
pub const SOCKET_BUFFER_BYTES: std::ops::RangeInclusive<usize> = 4096..=64 * 1024 * 1024;

/// Refuses a socket buffer size outside [`SOCKET_BUFFER_BYTES`].
pub fn check_socket_buffer(path: &str, n: usize, errs: &mut Vec<ConfigError>) {
    if !SOCKET_BUFFER_BYTES.contains(&n) {
        errs.push(ConfigError::new(
            path,
            format!("must be between 4096 and 67108864, got {n}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Config;

    fn server(extra: &str) -> Result<Config, crate::ConfigErrors> {
        Config::from_toml_str(&format!(
            "[server]\nlisten = [\"127.0.0.1:8080\"]\n{extra}\n"
        ))
    }

    #[test]
    fn defaults() {
        let s = server("").unwrap().server;
        assert_eq!(s.idle_timeout.get(), Duration::from_secs(75));
        assert_eq!(s.request_header_timeout.get(), Duration::from_secs(60));
        assert_eq!(s.request_body_timeout.get(), Duration::from_secs(60));
        assert_eq!(s.response_write_timeout.get(), Duration::from_secs(60));
        assert_eq!(s.response_min_send_rate, 0);
        assert_eq!(s.h2_idle_timeout.get(), Duration::from_secs(75));
        assert_eq!(s.h2_max_concurrent_streams, 100);
        assert_eq!(s.h2_max_proxied_streams, 32);
        assert_eq!(s.max_request_header_bytes, 32 * 1024);
        assert_eq!(s.max_connections, None);
    }

    #[test]
    fn bounds_are_checked_with_their_key() {
        for (extra, key) in [
            ("idle_timeout = \"500ms\"", "server.idle_timeout"),
            (
                "request_header_timeout = \"2h\"",
                "server.request_header_timeout",
            ),
            (
                "request_body_timeout = \"0s\"",
                "server.request_body_timeout",
            ),
            (
                "h2_max_concurrent_streams = 0",
                "server.h2_max_concurrent_streams",
            ),
            (
                "max_request_header_bytes = 2000000",
                "server.max_request_header_bytes",
            ),
            (
                "max_request_header_bytes = 100",
                "server.max_request_header_bytes",
            ),
            ("max_connections = 0", "server.max_connections"),
            (
                "h2_max_proxied_streams = 0",
                "server.h2_max_proxied_streams",
            ),
        ] {
            let e = server(extra).unwrap_err();
            assert_eq!(e.first().unwrap().path, key, "{extra}: {e}");
        }
        let s = server("idle_timeout = \"1500ms\"\nmax_connections = 5")
            .unwrap()
            .server;
        assert_eq!(whole_seconds(s.idle_timeout.get()), 2);
        assert_eq!(s.max_connections, Some(5));
    }

    #[test]
    fn derived_cap_follows_the_descriptor_limit() {
        assert_eq!(derived_max_connections(1024), 384);
        assert_eq!(derived_max_connections(1 << 20), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(derived_max_connections(10), 1);
    }
}
