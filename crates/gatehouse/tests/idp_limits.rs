//! End-to-end: the bounds on identity-provider calls a client without a
//! valid token can cause (issue 27, items 4 and 5). Every new opaque token is
//! a cache miss; the userinfo connector runs at most `max_inflight` calls,
//! lets at most `max_queued` wait, and answers the rest at once as an
//! unavailable IdP (503 with `Retry-After`) without calling it.
//!
//! The IdP here is a raw listener that holds every call until the test
//! releases it, so each step waits for a state (calls held, a gauge), never
//! for a duration.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::{eventually, ConfigBuilder, EchoUpstream, Gatehouse};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An IdP that accepts calls and holds them until [`HoldingIdp::release`];
/// after that it answers at once. Every answer is a valid identity.
struct HoldingIdp {
    addr: SocketAddr,
    state: Arc<Mutex<(Vec<TcpStream>, bool, usize)>>,
}

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"sub\":\"alice\"}\n";

impl HoldingIdp {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<(Vec<TcpStream>, bool, usize)>> = Arc::default();
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                // Read the request head (small GET), then hold or answer.
                let mut buf = [0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let mut st = s.lock().unwrap();
                st.2 += 1;
                if st.1 {
                    let _ = conn.write_all(ANSWER);
                } else {
                    st.0.push(conn);
                }
            }
        });
        Self { addr, state }
    }

    /// Calls received so far.
    fn calls(&self) -> usize {
        self.state.lock().unwrap().2
    }

    /// Held calls whose connection Gatehouse has closed (read at EOF).
    fn abandoned(&self) -> usize {
        let st = self.state.lock().unwrap();
        st.0.iter()
            .filter(|c| {
                let _ = c.set_nonblocking(true);
                let mut b = [0u8; 1];
                let eof = matches!((&**c).read(&mut b), Ok(0));
                let _ = c.set_nonblocking(false);
                eof
            })
            .count()
    }

    /// Answers every held call, and every later one at once.
    fn release(&self) {
        let mut st = self.state.lock().unwrap();
        st.1 = true;
        for mut c in st.0.drain(..) {
            let _ = c.write_all(ANSWER);
        }
    }
}

fn config(echo: &EchoUpstream, idp: &HoldingIdp, extra: &str) -> String {
    let head = ConfigBuilder::new()
        .threads(2)
        .upstream("echo", echo.addr())
        .render();
    format!(
        r#"
{head}
[connectors.ui]
kind = "oidc_userinfo"
default_endpoint = "http://{idp}/userinfo"
timeout = "30s"
{extra}

[[routes]]
name = "api"
path_prefix = "/"
upstream = "echo"
connectors = ["ui"]
"#,
        idp = idp.addr,
    )
}

fn gauge(gh: &Gatehouse, name: &str) -> f64 {
    gh.metric(name, &[("connector", "ui")]).unwrap_or(0.0)
}

fn refused(gh: &Gatehouse, reason: &str) -> f64 {
    gh.metric(
        "gatehouse_userinfo_calls_refused_total",
        &[("connector", "ui"), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_tokens_beyond_the_call_bounds_get_503_without_an_idp_call() {
    let echo = EchoUpstream::start();
    let idp = HoldingIdp::start();
    let gh = Gatehouse::start(
        BIN,
        &config(&echo, &idp, "max_inflight = 2\nmax_queued = 1"),
    )
    .unwrap();
    let get = |token: &'static str| {
        let url = gh.url("/x");
        tokio::spawn(async move {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let wait = Duration::from_secs(20);

    // Two calls run (held by the IdP) ...
    let running = [get("token-1"), get("token-2")];
    assert!(
        eventually(wait, async || idp.calls() == 2
            && gauge(&gh, "gatehouse_userinfo_inflight") == 2.0)
        .await
    );
    // ... one waits for a slot ...
    let queued = get("token-3");
    assert!(
        eventually(wait, async || gauge(
            &gh,
            "gatehouse_userinfo_calls_waiting"
        ) == 1.0)
        .await
    );
    // ... and the next new tokens are answered at once, without a call.
    for t in ["token-4", "token-5"] {
        let resp = client()
            .get(gh.url("/x"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503, "{t}");
        assert!(resp.headers().contains_key("retry-after"), "{t}");
    }
    assert_eq!(refused(&gh, "queue"), 2.0);
    assert_eq!(idp.calls(), 2);

    // The IdP answers: the running calls and the waiting one complete.
    idp.release();
    for h in running {
        assert_eq!(h.await.unwrap(), 200);
    }
    assert_eq!(queued.await.unwrap(), 200);
    assert_eq!(idp.calls(), 3);
    assert!(
        eventually(wait, async || gauge(&gh, "gatehouse_userinfo_inflight")
            == 0.0
            && gauge(&gh, "gatehouse_userinfo_calls_waiting") == 0.0)
        .await
    );
}

#[tokio::test]
async fn new_calls_per_second_are_bounded() {
    let echo = EchoUpstream::start();
    let idp = HoldingIdp::start();
    idp.release();
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, "max_calls_per_second = 1")).unwrap();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let resp = client()
            .get(gh.url("/x"))
            .bearer_auth(format!("rate-token-{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let limited = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + limited, 10, "{statuses:?}");
    assert!(
        limited >= 1,
        "ten new tokens in a row passed a one-per-second bound: {statuses:?}"
    );
    assert_eq!(refused(&gh, "rate"), limited as f64);
    assert_eq!(idp.calls(), ok, "a refused call reached the IdP");
}

/// Issue 27, item 4: a client that goes away while its token is being
/// checked cancels the identity-provider call (it used to run on to the
/// connector's `timeout`).
#[tokio::test]
async fn a_client_that_goes_away_cancels_its_idp_call() {
    let echo = EchoUpstream::start();
    let idp = HoldingIdp::start();
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, "")).unwrap();
    let wait = Duration::from_secs(20);
    let mut client = TcpStream::connect(gh.listen_addr()).unwrap();
    client
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer gone-token\r\n\r\n")
        .unwrap();
    assert!(
        eventually(wait, async || idp.calls() == 1
            && gauge(&gh, "gatehouse_userinfo_inflight") == 1.0)
        .await
    );
    drop(client);
    assert!(
        eventually(wait, async || idp.abandoned() == 1
            && gauge(&gh, "gatehouse_userinfo_inflight") == 0.0)
        .await,
        "the IdP call outlived its client (the connector timeout is 30 s)"
    );
    assert_eq!(
        gh.metric("gatehouse_abandoned_checks_total", &[]),
        Some(1.0)
    );
    // A client that stays gets its answer as before.
    idp.release();
    let resp = client_ok(&gh).await;
    assert_eq!(resp, 200);
}

async fn client_ok(gh: &Gatehouse) -> u16 {
    client()
        .get(gh.url("/x"))
        .bearer_auth("stays-token")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
