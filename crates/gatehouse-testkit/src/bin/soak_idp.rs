//! `gatehouse-soak-idp`: a mock identity provider whose faults can be switched
//! at run time over HTTP, for `benches/soak.sh`.
//!
//! ```text
//! gatehouse-soak-idp --listen 127.0.0.1:9100 [--rotated]
//! ```
//!
//! Serves:
//! - `GET /.well-known/jwks.json`: the test key `rsa-1` as kid `k1`; after a
//!   rotation (or with `--rotated`) also `rsa-2` as kid `k2`.
//! - `GET /userinfo`: any `Authorization: Bearer <token>` is answered 200
//!   `{"sub": <token>, "email": "soak@example.com"}`; no bearer token → 401.
//!
//! Control (loopback only, like every testkit server):
//! - `POST /_control/rotate`: start serving `k2` next to `k1`.
//! - `POST /_control/userinfo?delay_ms=N&status=S`: delay every userinfo answer
//!   by N ms; with S ≠ 0, answer S (`{"error":"server_error"}`) instead.
//!   `delay_ms=0&status=0` restores normal service.
//! - `GET /_control/state`: the current settings as JSON.
//!
//! "Down" (connection refused) is not a mode: the soak script stops the
//! process and starts it again on the same port (`--rotated` keeps the keys).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gatehouse_testkit::{jwks, MockIdp, MockResponse, RecordedRequest, TestKey};
use serde_json::json;

/// A mock IdP (JWKS + userinfo) with run-time fault controls.
#[derive(Debug, Parser)]
#[command(name = "gatehouse-soak-idp", version, about)]
struct Cli {
    /// Address to listen on (loopback).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Serve the rotated JWKS (k1 and k2) from the start.
    #[arg(long)]
    rotated: bool,
}

/// Fault settings shared by the handlers.
#[derive(Default)]
struct Controls {
    rotated: AtomicBool,
    delay_ms: AtomicU64,
    status: AtomicU16,
}

/// Value of query parameter `name` in `query` (no decoding: digits only).
fn param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
    })
}

fn state(c: &Controls) -> MockResponse {
    MockResponse::json(
        200,
        json!({
            "rotated": c.rotated.load(Ordering::SeqCst),
            "delay_ms": c.delay_ms.load(Ordering::SeqCst),
            "status": c.status.load(Ordering::SeqCst),
        }),
    )
}

fn userinfo(c: &Controls, req: &RecordedRequest) -> MockResponse {
    let delay = Duration::from_millis(c.delay_ms.load(Ordering::SeqCst));
    let status = c.status.load(Ordering::SeqCst);
    let token = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty());
    let resp = match (status, token) {
        (s, _) if s != 0 => MockResponse::json(s, json!({"error": "server_error"})),
        (_, Some(t)) => MockResponse::json(200, json!({"sub": t, "email": "soak@example.com"})),
        (_, None) => MockResponse::json(401, json!({"error": "invalid_token"}))
            .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\""),
    };
    resp.with_delay(delay)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let controls = Arc::new(Controls::default());
    controls.rotated.store(cli.rotated, Ordering::SeqCst);
    // Everything slow (key parsing) before listening; until the routes are in place the server is
    // "down" (connections closed), so a restart never answers 404 to a client that raced it.
    let (k1, k2) = (TestKey::rsa(1), TestKey::rsa(2));
    let one = MockResponse::json(200, jwks(&[(&k1, "k1")]));
    let both = MockResponse::json(200, jwks(&[(&k1, "k1"), (&k2, "k2")]));
    let idp = MockIdp::start_down_on(cli.listen)
        .with_context(|| format!("starting soak IdP on {}", cli.listen))?;
    let c = Arc::clone(&controls);
    idp.route_fn("GET", "/.well-known/jwks.json", move |_| {
        if c.rotated.load(Ordering::SeqCst) {
            both.clone()
        } else {
            one.clone()
        }
    });
    let c = Arc::clone(&controls);
    idp.route_fn("GET", "/userinfo", move |req| userinfo(&c, req));
    let c = Arc::clone(&controls);
    idp.route_fn("POST", "/_control/rotate", move |_| {
        c.rotated.store(true, Ordering::SeqCst);
        state(&c)
    });
    let c = Arc::clone(&controls);
    idp.route_fn("POST", "/_control/userinfo", move |req| {
        let q = req.query.as_deref();
        let delay = param(q, "delay_ms").and_then(|v| v.parse::<u64>().ok());
        let status = param(q, "status").and_then(|v| v.parse::<u16>().ok());
        match (delay, status) {
            (Some(d), Some(s)) if s == 0 || (100..=599).contains(&s) => {
                c.delay_ms.store(d, Ordering::SeqCst);
                c.status.store(s, Ordering::SeqCst);
                state(&c)
            }
            _ => MockResponse::json(400, json!({"error": "need delay_ms=N&status=S"})),
        }
    });
    let c = Arc::clone(&controls);
    idp.route_fn("GET", "/_control/state", move |_| state(&c));
    idp.set_down(false);
    println!("soak IdP listening on http://{}", idp.addr());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building signal runtime")?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    drop(idp);
    Ok(())
}
