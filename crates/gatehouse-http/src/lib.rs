//! Gatehouse's request semantics, free of Pingora and of any async runtime:
//! what a request means and where it goes, decided by pure functions of the
//! request and the configuration.
//!
//! - [`canonical`]: the one form of method, path, query and host that is both
//!   routed and sent upstream.
//! - [`router`]: route matching on the canonical request.
//! - [`headers`]: which client headers reach the upstream (identity and
//!   client-address rules, `X-Forwarded-For`).
//! - [`cors`]: a route's CORS policy (preflights answered before the
//!   connectors, the headers of every answer to an allowed origin).
//! - [`edge`]: a route's path rewrite and request/response header rules.
//! - [`upgrade`]: the WebSocket handshake checks of a route that allows it.
//! - [`health`]: a peer's passive and active health state machine, and the
//!   choice of the peer for the next attempt.
//!
//! The proxy (`crates/gatehouse`) applies them to Pingora sessions; the fuzz
//! targets (`fuzz/`) call them directly.

pub mod canonical;
pub mod cors;
pub mod edge;
pub mod headers;
pub mod health;
pub mod meter;
pub mod router;
pub mod upgrade;
