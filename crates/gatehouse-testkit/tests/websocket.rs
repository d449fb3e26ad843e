//! Tests of the WebSocket echo upstream, the lying upstreams and the client.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use gatehouse_testkit::raw::{raw_exchange, RawOptions};
use gatehouse_testkit::websocket::WRONG_ACCEPT;
use gatehouse_testkit::{ws_connect, LiarMode, WsEcho, WsRefused};

const HANDSHAKE: &str = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                         Sec-WebSocket-Version: 13\r\nX-User-Id: client\r\n\r\n";

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads exactly `n` bytes.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Reads a response head (up to and including the blank line).
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[test]
fn echo_echoes_and_records_the_handshake() {
    let ws = WsEcho::start().unwrap();
    let mut c = ws_connect(
        ws.addr(),
        "/ws/chat?room=1",
        &[("X-User-Id", "client"), ("Authorization", "Bearer t")],
    )
    .unwrap();
    assert_eq!(c.status(), 101);
    assert_eq!(c.header("upgrade"), Some("websocket"));
    c.send_text("hello").unwrap();
    assert_eq!(c.recv_text().unwrap(), "hello");
    c.send_binary(&[0, 1, 2, 255]).unwrap();
    assert_eq!(c.recv_binary().unwrap(), [0, 1, 2, 255]);
    c.close().unwrap();

    let hs = ws.handshakes();
    assert_eq!(hs.len(), 1, "{hs:?}");
    assert_eq!(hs[0].method, "GET");
    assert_eq!(hs[0].path, "/ws/chat?room=1");
    assert_eq!(hs[0].status, 101);
    assert_eq!(hs[0].header("X-User-Id"), Some("client"));
    assert_eq!(hs[0].header("authorization"), Some("Bearer t"));
    assert_eq!(hs[0].header("Sec-WebSocket-Version"), Some("13"));
    assert!(ws.raw_received().is_empty());
}

#[test]
fn echo_records_header_names_as_sent_and_duplicates() {
    let ws = WsEcho::start().unwrap();
    let mut s = connect(ws.addr());
    let req = HANDSHAKE.replace(
        "X-User-Id: client\r\n",
        "X.User.Id: dotted\r\nX-User-Id: one\r\nX-User-Id: two\r\n",
    );
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    // The RFC 6455 example key and its accept value.
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    let hs = &ws.handshakes()[0];
    assert_eq!(hs.header("X.User.Id"), Some("dotted"));
    assert_eq!(hs.header_all("x-user-id"), ["one", "two"]);
    assert!(hs.headers.iter().any(|(n, _)| n == "X.User.Id"));
}

#[test]
fn echo_offers_the_first_subprotocol_and_serves_several_clients() {
    let ws = WsEcho::start().unwrap();
    let mut a = ws_connect(ws.addr(), "/a", &[("Sec-WebSocket-Protocol", "chat, v2")]).unwrap();
    let mut b = ws_connect(ws.addr(), "/b", &[]).unwrap();
    assert_eq!(a.header("sec-websocket-protocol"), Some("chat"));
    b.send_text("from b").unwrap();
    a.send_text("from a").unwrap();
    assert_eq!(a.recv_text().unwrap(), "from a");
    assert_eq!(b.recv_text().unwrap(), "from b");
    let mut paths: Vec<String> = ws.handshakes().into_iter().map(|h| h.path).collect();
    paths.sort();
    assert_eq!(paths, ["/a", "/b"]);
}

#[test]
fn echo_refuses_what_is_not_a_websocket_handshake() {
    let ws = WsEcho::start().unwrap();
    let out = raw_exchange(
        ws.addr(),
        b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n",
        &RawOptions::default(),
    )
    .unwrap();
    assert_eq!(out.first_status(), Some(400), "{out:?}");
    let err = ws_connect(ws.addr(), "/v", &[("Sec-WebSocket-Version", "12")]).unwrap_err();
    let refused = err.downcast_ref::<WsRefused>().unwrap();
    assert_eq!(refused.status, 426);
    let hs = ws.handshakes();
    assert_eq!(hs.len(), 2);
    assert_eq!((hs[0].path.as_str(), hs[0].status), ("/plain", 400));
    assert_eq!((hs[1].path.as_str(), hs[1].status), ("/v", 426));
}

#[test]
fn ws_connect_reports_a_refusal_with_status_and_body() {
    let echo = gatehouse_testkit::EchoUpstream::start();
    let err = ws_connect(echo.addr(), "/nope", &[]).unwrap_err();
    let refused = err.downcast_ref::<WsRefused>().unwrap();
    assert_eq!(refused.status, 200, "{refused:?}");
}

#[test]
fn bare_switch_answers_a_bare_101_then_echoes_and_records_raw_bytes() {
    let ws = WsEcho::start_liar(LiarMode::BareSwitch).unwrap();
    assert_eq!(ws.liar_mode(), Some(LiarMode::BareSwitch));
    let mut s = connect(ws.addr());
    s.write_all(HANDSHAKE.as_bytes()).unwrap();
    assert_eq!(
        read_head(&mut s),
        "HTTP/1.1 101 Switching Protocols\r\n\r\n"
    );
    let smuggled = b"GET /api/secret HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(smuggled).unwrap();
    assert_eq!(read_n(&mut s, smuggled.len()), smuggled);
    assert_eq!(ws.raw_received(), smuggled);
    let hs = ws.handshakes();
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0].path, "/ws");
    assert_eq!(hs[0].header("x-user-id"), Some("client"));

    // Bytes sent along with the head are echoed and recorded too; any
    // request gets the 101.
    let mut s = connect(ws.addr());
    s.write_all(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\nGET /api/secret HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_head(&mut s),
        "HTTP/1.1 101 Switching Protocols\r\n\r\n"
    );
    assert_eq!(read_head(&mut s), "GET /api/secret HTTP/1.1\r\n\r\n");
    let raw = ws.raw_received();
    assert!(
        raw.ends_with(b"GET /api/secret HTTP/1.1\r\n\r\n"),
        "{raw:?}"
    );
    assert_eq!(ws.handshakes()[1].path, "/plain");
}

#[test]
fn wrong_accept_answers_101_with_a_wrong_accept_then_echoes() {
    let ws = WsEcho::start_liar(LiarMode::WrongAccept).unwrap();
    let mut s = connect(ws.addr());
    s.write_all(HANDSHAKE.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: Upgrade\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nSec-WebSocket-Accept: {WRONG_ACCEPT}\r\n")));
    assert_ne!(WRONG_ACCEPT, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    s.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut s, 4), b"ping");
    assert_eq!(ws.raw_received(), b"ping");
}

#[test]
fn ws_connect_rejects_both_liars() {
    for mode in [LiarMode::BareSwitch, LiarMode::WrongAccept] {
        let ws = WsEcho::start_liar(mode).unwrap();
        let err = ws_connect(ws.addr(), "/ws", &[]).unwrap_err();
        assert!(
            err.downcast_ref::<WsRefused>().is_none(),
            "{mode:?}: {err:#}"
        );
        assert_eq!(ws.handshakes().len(), 1, "{mode:?}");
    }
}
