//! End-to-end: protocol upgrades (issue 20, item 4) against a real
//! WebSocket echo server and against upstreams that lie about the upgrade.
//!
//! A tunnel is opened only on a route with `upgrades = ["websocket"]`, only
//! after the connectors allowed the handshake, and only when the upstream's
//! `101` completes it; everywhere else the `Upgrade` header is removed, and
//! a `101` that does not match closes the connection so nothing the client
//! sends after it reaches the upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use gatehouse_testkit::raw::{raw_exchange, RawOptions};
use gatehouse_testkit::tokens::claims;
use gatehouse_testkit::websocket::{ws_connect, LiarMode, WsEcho, WsRefused};
use gatehouse_testkit::{jwks, ConfigBuilder, Gatehouse, TestKey};
use std::net::SocketAddr;

const ISS: &str = "https://idp.test";
const AUD: &str = "api";

struct World {
    echo: WsEcho,
    bare: WsEcho,
    wrong: WsEcho,
    key: TestKey,
    gh: Gatehouse,
}

fn config(echo: SocketAddr, bare: SocketAddr, wrong: SocketAddr, key: &TestKey) -> String {
    let keys = jwks(&[(key, "k1")]).to_string();
    let head = ConfigBuilder::new()
        .upstream("echo", echo)
        .upstream("bare", bare)
        .upstream("wrong", wrong)
        .render();
    format!(
        r#"
{head}
[connectors.jwt]
kind = "jwt"
jwks = '{keys}'
algorithms = ["RS256"]
issuers = ["{ISS}"]
audiences = ["{AUD}"]
[connectors.jwt.inject_headers]
"X-User-Id" = "sub"

[[routes]]
name = "ws"
path_prefix = "/ws"
upstream = "echo"
connectors = ["jwt"]
upgrades = ["websocket"]

[[routes]]
name = "plain"
path_prefix = "/plain"
upstream = "echo"

[[routes]]
name = "bare"
path_prefix = "/bare"
upstream = "bare"
connectors = ["jwt"]
upgrades = ["websocket"]

[[routes]]
name = "wrong"
path_prefix = "/wrong"
upstream = "wrong"
upgrades = ["websocket"]
"#
    )
}

fn world() -> World {
    let echo = WsEcho::start().unwrap();
    let bare = WsEcho::start_liar(LiarMode::BareSwitch).unwrap();
    let wrong = WsEcho::start_liar(LiarMode::WrongAccept).unwrap();
    let key = TestKey::rsa(1);
    let gh = Gatehouse::start(BIN, &config(echo.addr(), bare.addr(), wrong.addr(), &key)).unwrap();
    World {
        echo,
        bare,
        wrong,
        key,
        gh,
    }
}

fn upgrades(gh: &Gatehouse, result: &str) -> f64 {
    gh.metric("gatehouse_upgrades_total", &[("result", result)])
        .unwrap_or(0.0)
}

fn refused_status(err: &anyhow::Error) -> u16 {
    err.downcast_ref::<WsRefused>()
        .unwrap_or_else(|| panic!("not an HTTP refusal: {err:#}"))
        .status
}

#[test]
fn a_websocket_opens_only_after_the_connectors_and_carries_the_verified_identity() {
    let w = world();
    // No token: refused before anything reaches the upstream.
    let Err(err) = ws_connect(w.gh.listen_addr(), "/ws/chat", &[("X-User-Id", "admin")]) else {
        panic!("a tokenless handshake must be refused");
    };
    assert_eq!(refused_status(&err), 401);
    assert!(w.echo.handshakes().is_empty(), "{:?}", w.echo.handshakes());

    // A valid token: the tunnel opens, with the verified subject only.
    let token = w.key.mint(&claims("alice", ISS, AUD, 600), Some("k1"));
    let bearer = format!("Bearer {token}");
    let mut ws = ws_connect(
        w.gh.listen_addr(),
        "/ws/chat",
        &[
            ("Authorization", &bearer),
            ("X-User-Id", "admin"),
            ("X.User.Id", "admin"),
            ("X-Client-IP", "6.6.6.6"),
        ],
    )
    .unwrap();
    assert_eq!(ws.status(), 101);
    ws.send_text("hello through the tunnel").unwrap();
    assert_eq!(ws.recv_text().unwrap(), "hello through the tunnel");
    ws.close().unwrap();
    let hs = w.echo.handshakes();
    assert_eq!(hs.len(), 1, "{hs:?}");
    assert_eq!(hs[0].status, 101);
    assert_eq!(hs[0].header_all("x-user-id"), ["alice"], "{hs:?}");
    assert!(hs[0].header("x.user.id").is_none(), "{hs:?}");
    assert!(hs[0].header("x-client-ip").is_none(), "{hs:?}");
    assert_eq!(upgrades(&w.gh, "tunnelled"), 1.0);
}

#[test]
fn routes_without_upgrades_proxy_the_handshake_as_a_plain_request() {
    let w = world();
    let Err(err) = ws_connect(w.gh.listen_addr(), "/plain/chat", &[]) else {
        panic!("no tunnel on a route without upgrades");
    };
    assert_ne!(refused_status(&err), 101);
    let hs = w.echo.handshakes();
    assert_eq!(hs.len(), 1, "the request itself is proxied: {hs:?}");
    assert!(hs[0].header("upgrade").is_none(), "{hs:?}");
    assert_ne!(hs[0].status, 101);
    assert_eq!(upgrades(&w.gh, "stripped"), 1.0);
    assert_eq!(upgrades(&w.gh, "tunnelled"), 0.0);

    // An incomplete handshake on a route that allows upgrades: 400.
    let out = raw_exchange(
        w.gh.listen_addr(),
        b"GET /wrong/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        &RawOptions::default(),
    )
    .unwrap();
    assert_eq!(out.first_status(), Some(400), "{}", out.summary());
    assert!(out.responses[0].body_text().contains("invalid_upgrade"));
}

/// The handshake, then a tokenless request with a forged identity written
/// right behind it, as if the tunnel were already open.
fn handshake_then_smuggled(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\
         GET /api/secret HTTP/1.1\r\nHost: x\r\nX-User-Id: admin\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn a_101_that_does_not_complete_the_handshake_closes_the_connection() {
    let w = world();
    let token = w.key.mint(&claims("alice", ISS, AUD, 600), Some("k1"));
    let auth = format!("Authorization: Bearer {token}\r\n");
    for (name, liar, path, extra) in [
        ("bare 101", &w.bare, "/bare/chat", auth.as_str()),
        ("wrong accept", &w.wrong, "/wrong/chat", ""),
    ] {
        // A request written after the answer: read to EOF, it must go unanswered.
        let opts = RawOptions {
            follow_up: Some(b"GET /plain/after HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            ..RawOptions::default()
        };
        let out = raw_exchange(
            w.gh.listen_addr(),
            &handshake_then_smuggled(path, extra),
            &opts,
        )
        .unwrap();
        assert_eq!(out.first_status(), Some(502), "{name}: {}", out.summary());
        assert_eq!(out.responses.len(), 1, "{name}: {}", out.summary());
        assert!(out.closed && !out.timed_out, "{name}: {}", out.summary());
        assert!(
            w.echo.handshakes().is_empty(),
            "{name}: a request after the 101 was served"
        );
        assert_eq!(liar.handshakes().len(), 1, "{name}");
        let raw = String::from_utf8_lossy(&liar.raw_received()).into_owned();
        assert!(
            !raw.contains("/api/secret") && !raw.contains("admin"),
            "{name}: bytes after the 101 reached the upstream: {raw:?}"
        );
    }
    assert_eq!(upgrades(&w.gh, "bad_handshake"), 2.0);
    assert_eq!(upgrades(&w.gh, "tunnelled"), 0.0);
}
