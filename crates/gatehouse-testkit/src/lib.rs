//! Test support for Gatehouse.
//!
//! This crate provides the moving parts the end-to-end tests (and the demo
//! tooling) need around the real proxy:
//!
//! - [`EchoUpstream`]: an HTTP upstream that answers every request with a
//!   JSON description of what it received (method, path, query, headers,
//!   body), with header/query controls for latency and status codes.
//! - [`MockIdp`]: a programmable HTTP mock used as a fake identity provider;
//!   routes return canned or computed [`MockResponse`]s, every request is
//!   recorded as a [`RecordedRequest`], and the server can be slowed down or
//!   taken "down" to exercise failure handling.
//! - [`Gatehouse`]: runs the real `gatehouse` binary (the caller passes its
//!   path: `env!("CARGO_BIN_EXE_gatehouse")` in the end-to-end tests of
//!   `crates/gatehouse/tests/`) with a generated config in a temporary
//!   directory, waits for readiness, and offers helpers for signals, logs and
//!   Prometheus metrics.
//! - [`http_get_blocking`]: a minimal blocking HTTP/1.0 `GET`, usable inside
//!   and outside an async runtime.
//! - [`ConfigBuilder`]: renders the `[server]` table and `[upstreams.NAME]`
//!   sections a test config starts with (the caller appends connectors and
//!   routes).
//! - [`eventually`] and [`eventually_blocking`]: wait for a state (poll a
//!   condition until it holds or a deadline passes) instead of sleeping.
//! - [`parse_metric`]: reads one sample (summed over matching label sets)
//!   from a Prometheus text exposition; [`scrape_metric`] scrapes an admin
//!   listener first, [`metric_families`] lists the families.
//! - [`free_addr`]: picks a free loopback address.
//! - [`raw::raw_exchange`]: writes hostile bytes verbatim on a raw socket and
//!   reads the responses back.
//! - [`Nginx`]: a real NGINX (Debian `nginx-light`) as an upstream.
//! - [`RedisServer`]: a real Redis (Debian `redis-server`), stoppable and
//!   restartable on its port, for the shared-cache tests.
//! - [`CgiUpstream`]: a real lighttpd (Debian `lighttpd`) running CGI
//!   programs, `php-cgi` (Debian `php-cgi`) among them, that answer with the
//!   CGI environment a request produced (`HTTP_*` variables, `REQUEST_URI`),
//!   read with [`php_server_vars`] and [`cgi_env_vars`].
//! - [`WsEcho`]: a WebSocket echo upstream that records each handshake
//!   ([`WsHandshake`]), or a lying one that answers `101` without a valid
//!   WebSocket handshake and records the raw bytes that follow
//!   ([`LiarMode`]); [`ws_connect`] is a blocking client ([`WsClient`]).
//! - [`Browser`]: a real headless chromium (Debian `chromium`) driven by
//!   `chromedriver` (Debian `chromium-driver`) over WebDriver, to run
//!   `fetch()` from a page served by a [`PageSite`] on another origin and
//!   read what the page saw ([`PageFetch`]).
//!
//! All servers listen on `127.0.0.1` only. Each one runs on its own
//! dedicated tokio runtime in a background thread, so it can be used from
//! plain `#[test]` functions as well as from `#[tokio::test]` ones; dropping
//! the handle stops the server.

pub mod browser;
pub mod certs;
pub mod cgi;
pub mod config;
pub mod echo;
pub mod http_client;
pub mod idp;
pub mod metrics;
pub mod net;
pub mod nginx;
pub mod process;
pub mod raw;
pub mod redis;
mod server;
pub mod tokens;
pub mod wait;
pub mod websocket;

pub use browser::{Browser, Credentials, PageFetch, PageSite};
pub use certs::{CertFiles, TestCa};
pub use cgi::{cgi_env_vars, php_server_vars, CgiScript, CgiUpstream};
pub use config::ConfigBuilder;
pub use echo::{EchoRecord, EchoUpstream};
pub use http_client::http_get_blocking;
pub use idp::{MockIdp, MockResponse, RecordedRequest};
pub use metrics::{metric_families, parse_metric, scrape_metric};
pub use net::free_addr;
pub use nginx::Nginx;
pub use process::Gatehouse;
pub use redis::RedisServer;
pub use tokens::{jwks, TestKey};
pub use wait::{eventually, eventually_blocking};
pub use websocket::{ws_connect, LiarMode, WsClient, WsEcho, WsHandshake, WsRefused};
