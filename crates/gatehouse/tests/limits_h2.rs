//! End-to-end: HTTP/2 under hostile clients (issue 27) — streams whose
//! client never reads hold a bounded buffer each (RSS from `/proc`), and a
//! control-frame flood closes its connection while an ordinary client is
//! untouched.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "limits/support.rs"]
mod support;

use common::*;
use gatehouse_testkit::{eventually_blocking, EchoUpstream, Gatehouse};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

/// One HTTP/2 frame: 9-byte header and payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The client connection preface, then a SETTINGS frame of `settings`.
fn preface(settings: &[u8]) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, settings));
    out
}

/// An echo upstream and Gatehouse in front of it on an `h2c` listener,
/// proxying at most `cap` streams of a connection at once, waiting at most
/// `write_timeout` for a place.
fn h2c_with_cap(cap: u32, write_timeout: &str) -> (EchoUpstream, Gatehouse) {
    let echo = EchoUpstream::start();
    let server = format!(
        "h2c = true\nh2_max_proxied_streams = {cap}\nresponse_write_timeout = \"{write_timeout}\""
    );
    let gh = Gatehouse::start(BIN, &public_config_with_server(echo.addr(), server)).unwrap();
    (echo, gh)
}

/// A HEADERS frame ending its stream: GET `path` (`:method GET`, `:scheme
/// http`, `:path` and `:authority` as literals).
fn h2_get(stream: u32, path: &str) -> Vec<u8> {
    let authority = b"gh.test";
    let mut block = vec![0x82, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, authority.len() as u8]);
    block.extend_from_slice(authority);
    h2_frame(0x1, 0x5, stream, &block)
}

/// The next frame from the server (kind, stream, payload), answering its
/// SETTINGS; `None` once the connection ends.
fn next_h2_frame(s: &mut TcpStream) -> Option<(u8, u32, Vec<u8>)> {
    loop {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).ok()?;
        if (head[3], head[4]) == (0x4, 0) {
            s.write_all(&h2_frame(0x4, 0x1, 0, &[])).ok()?;
            continue;
        }
        return Some((head[3], stream, payload));
    }
}

/// Reads HTTP/2 frames until `want` response HEADERS frames arrived;
/// answers the server's SETTINGS.
fn read_h2_headers(s: &mut TcpStream, want: usize) {
    let mut got = 0;
    while got < want {
        let (kind, _, payload) = next_h2_frame(s).expect("the connection stayed open");
        match kind {
            0x1 => got += 1,
            0x7 => panic!("GOAWAY: {payload:?}"),
            _ => {}
        }
    }
}

/// Samples RSS until it stops moving (four samples 250 ms apart within
/// 64 KiB of each other), at most 15 s; the last sample.
fn settled_rss_kib(pid: u32) -> u64 {
    let mut samples = vec![rss_kib(pid)];
    let deadline = Instant::now() + CLOSE_BOUND;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        samples.push(rss_kib(pid));
        let last = &samples[samples.len().saturating_sub(4)..];
        if last.len() == 4 && last.iter().max().unwrap() - last.iter().min().unwrap() <= 64 {
            break;
        }
    }
    *samples.last().unwrap()
}

/// KiB of RSS each of 40 stalled HTTP/2 streams holds, each asking for a
/// 2 MB answer. `wide`: the client grants 16 MiB windows and then never
/// reads its socket (the `h2` send buffer fills); otherwise it grants a
/// window of 0 (nothing can be sent; Pingora's pipeline fills).
fn stalled_h2_stream_kib(wide: bool) -> u64 {
    let echo = EchoUpstream::start();
    // Every stream is proxied at once: the cost of one is measured.
    let server = "h2c = true\nh2_max_proxied_streams = 100";
    let gh = Gatehouse::start(BIN, &public_config_with_server(echo.addr(), server)).unwrap();
    let pid = gh.pid();
    let streams = 40u32;
    // Warm up the upstream pool and allocator with one full answer.
    let mut warm = connect(gh.listen_addr());
    warm.write_all(&get("/public/big?echo_pad=2000000"))
        .unwrap();
    assert_eq!(read_response(&mut warm).0, 200);
    drop(warm);
    let rss0 = settled_rss_kib(pid);

    let mut s = connect(gh.listen_addr());
    let mut out = if wide {
        // SETTINGS_INITIAL_WINDOW_SIZE = 16 MiB, the connection's window 1 GiB.
        let mut out = preface(&[0, 4, 1, 0, 0, 0]);
        out.extend(h2_frame(0x8, 0, 0, &0x4000_0000u32.to_be_bytes()));
        out
    } else {
        // SETTINGS_INITIAL_WINDOW_SIZE = 0: no stream may be sent any DATA.
        preface(&[0, 4, 0, 0, 0, 0])
    };
    for i in 0..streams {
        out.extend(h2_get(2 * i + 1, "/public/big?echo_pad=2000000"));
    }
    s.write_all(&out).unwrap();
    if !wide {
        read_h2_headers(&mut s, streams as usize);
    }
    // Every stream and the warm-up request reached the upstream.
    let forwarded = streams as usize + 1;
    assert!(eventually_blocking(CLOSE_BOUND, || echo.requests() >= forwarded));
    let grown = settled_rss_kib(pid).saturating_sub(rss0);
    let per_stream = grown / u64::from(streams);
    eprintln!(
        "{streams} stalled HTTP/2 streams (wide windows: {wide}) of 2 MB answers: RSS grew {grown} KiB, {per_stream} KiB per stream"
    );
    per_stream
}

/// A client that grants wide windows and stops reading: each stream holds
/// `h2_max_send_buffer_bytes` (64 KiB) in the `h2` crate plus Pingora's
/// pipeline (~450 KiB: four 64 KiB chunks queued between the upstream
/// reader and the client writer, the chunks in hand), not the `h2` default
/// of 400 KiB on top (876 KiB per stream measured with it).
#[test]
fn stalled_http2_streams_with_wide_windows_hold_a_bounded_buffer_each() {
    let per_stream = stalled_h2_stream_kib(true);
    assert!(per_stream < 640, "{per_stream} KiB held per stalled stream");
}

/// A client that grants no window at all: the upstream read pauses once
/// Pingora's pipeline is full (the issue measured ~475 KB per stream).
#[test]
fn stalled_http2_streams_without_window_hold_a_bounded_buffer_each() {
    let per_stream = stalled_h2_stream_kib(false);
    assert!(per_stream < 640, "{per_stream} KiB held per stalled stream");
}

/// 100 000 PINGs were answered in full before; now the connection is
/// closed once its cheap frames pass the budget (1 000 plus allowances),
/// while an ordinary HTTP/2 client making 300 requests on one connection is
/// untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_control_frame_flood_closes_the_connection() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &public_config_with_server(echo.addr(), "h2c = true")).unwrap();
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..300 {
        let r = h2c.get(gh.url("/public/ok")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let addr = gh.listen_addr();
    let (closed, answered) = tokio::task::spawn_blocking(move || {
        let mut s = connect(addr);
        let mut out = preface(&[]);
        for i in 0..5_000u64 {
            out.extend(h2_frame(0x6, 0, 0, &i.to_be_bytes()));
        }
        // The server closes mid-way: the rest may not be written.
        let _ = s.write_all(&out);
        let (closed, got) = wait_closed(&mut s);
        (closed, got.len())
    })
    .await
    .unwrap();
    assert!(closed.is_some(), "the flooding connection is still open");
    // Each PING ACK is 17 bytes: far fewer than 5 000 were answered.
    assert!(answered < 2_000 * 17, "{answered} bytes answered");
    assert_eq!(metric(&gh, "gatehouse_h2_floods_total"), 1.0);
    let r = h2c.get(gh.url("/public/ok")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "the ordinary client's connection still serves"
    );
}

/// Reads HTTP/2 frames until stream 1 gets a HEADERS frame (its status
/// byte, from an indexed `:status`) or a RST_STREAM, or the connection
/// ends; answers the server's SETTINGS. `None`: the connection ended first.
fn stream_one_outcome(s: &mut TcpStream) -> Option<String> {
    loop {
        let (kind, stream, payload) = next_h2_frame(s)?;
        match (kind, stream) {
            (0x1, 1) => return Some(format!("HEADERS {:02x?}", &payload[..payload.len().min(4)])),
            (0x3, 1) => return Some(format!("RST_STREAM {payload:?}")),
            (0x7, _) => return Some(format!("GOAWAY {payload:?}")),
            _ => {}
        }
    }
}

/// An HTTP/2 request body that stops arriving (10 of 1 000 bytes, then
/// nothing) does not hold its stream, its upstream connection and its
/// buffers for ever: Pingora has no per-stream read timeout, so the
/// upstream's `read_timeout` (5 s here: the upstream waits for the rest of
/// the body and answers nothing) ends the request with a 504.
#[test]
fn a_stalled_http2_request_body_is_ended_by_the_upstream_read_timeout() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &public_config_with_server(echo.addr(), "h2c = true")).unwrap();
    let mut s = connect(gh.listen_addr());
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = preface(&[]);
    let path = b"/public/upload";
    let authority = b"gh.test";
    // :method POST (indexed 3), :scheme http, :path, :authority, content-length 1000.
    let mut block = vec![0x83, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path);
    block.extend_from_slice(&[0x01, authority.len() as u8]);
    block.extend_from_slice(authority);
    block.extend_from_slice(&[0x0f, 0x0d, 4]);
    block.extend_from_slice(b"1000");
    out.extend(h2_frame(0x1, 0x4, 1, &block));
    out.extend(h2_frame(0x0, 0x0, 1, &[b'x'; 10]));
    let start = Instant::now();
    s.write_all(&out).unwrap();
    let outcome = stream_one_outcome(&mut s);
    let took = start.elapsed();
    eprintln!("stalled HTTP/2 body: {outcome:?} after {took:?}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(15),
        "{outcome:?} after {took:?}"
    );
    let outcome = outcome.expect("the stream was answered or reset");
    // :status 504 is not in the static table: a literal, so any HEADERS or a reset.
    assert!(
        outcome.starts_with("HEADERS") || outcome.starts_with("RST_STREAM"),
        "{outcome}"
    );
}

/// One connection asking for ten large answers it never reads (window 0):
/// only `h2_max_proxied_streams` (4) reach the upstream and hold buffers;
/// the other six wait for a place, their requests unread. Another
/// connection has places of its own.
#[test]
fn one_http2_connection_proxies_at_most_h2_max_proxied_streams_at_once() {
    let (echo, gh) = h2c_with_cap(4, "60s");
    let mut s = connect(gh.listen_addr());
    let mut out = preface(&[0, 4, 0, 0, 0, 0]);
    for i in 0..10 {
        out.extend(h2_get(2 * i + 1, "/public/big?echo_pad=2000000"));
    }
    s.write_all(&out).unwrap();
    read_h2_headers(&mut s, 4);
    assert!(
        wait_metric(&gh, "gatehouse_h2_streams_waited_total", 6.0),
        "waited: {}",
        metric(&gh, "gatehouse_h2_streams_waited_total")
    );
    // Six streams are waiting, so only four requests went upstream.
    assert_eq!(echo.requests(), 4);

    let mut other = connect(gh.listen_addr());
    let mut out = preface(&[]);
    out.extend(h2_get(1, "/public/other"));
    other.write_all(&out).unwrap();
    read_h2_headers(&mut other, 1);
    assert_eq!(echo.requests(), 5);
    assert_eq!(metric(&gh, "gatehouse_h2_streams_refused_total"), 0.0);
}

/// A stream that finds every place of its connection taken for its whole
/// wait (`response_write_timeout`, 1 s) is answered 503 with
/// `Retry-After`, and never reaches the upstream; the stream holding the
/// place is answered normally.
#[test]
fn a_stream_that_finds_no_place_in_time_is_answered_503() {
    let (echo, gh) = h2c_with_cap(1, "1s");
    let mut s = connect(gh.listen_addr());
    let mut out = preface(&[]);
    // The upstream answers stream 1 after 4 s (its read_timeout is 5 s).
    out.extend(h2_get(1, "/public/slow?echo_delay_ms=4000"));
    s.write_all(&out).unwrap();
    assert!(eventually_blocking(CLOSE_BOUND, || echo.requests() == 1));
    let start = Instant::now();
    s.write_all(&h2_get(3, "/public/waits")).unwrap();
    let mut body3 = Vec::new();
    let mut order = Vec::new();
    while order.len() < 2 {
        let (kind, stream, payload) = next_h2_frame(&mut s).expect("the connection stayed open");
        match kind {
            0x0 if stream == 3 => body3.extend_from_slice(&payload),
            0x1 => order.push((stream, start.elapsed())),
            0x3 | 0x7 => panic!("reset or GOAWAY on stream {stream}: {payload:?}"),
            _ => {}
        }
    }
    eprintln!("answers: {order:?}");
    // Stream 3 was answered first, after its wait, while stream 1 was
    // still waiting for its upstream.
    assert_eq!(order[0].0, 3, "{order:?}");
    assert!(order[0].1 >= Duration::from_millis(900), "{order:?}");
    assert_eq!(order[1].0, 1, "{order:?}");
    let body = String::from_utf8_lossy(&body3);
    assert!(body.contains("too_many_streams"), "{body}");
    assert_eq!(metric(&gh, "gatehouse_h2_streams_refused_total"), 1.0);
    assert_eq!(echo.requests(), 1, "the refused stream never went upstream");
}

/// A stream that waits for a place and is reset by its client stops
/// waiting at once (its request ends, nothing goes upstream): resetting
/// streams and opening new ones cannot pile up waiters.
#[test]
fn a_waiting_stream_reset_by_its_client_stops_waiting() {
    let (echo, gh) = h2c_with_cap(1, "60s");
    let mut s = connect(gh.listen_addr());
    let mut out = preface(&[]);
    // Stream 1 holds the only place for 4.5 s (the upstream's delay).
    out.extend(h2_get(1, "/public/slow?echo_delay_ms=4500"));
    out.extend(h2_get(3, "/public/waits"));
    s.write_all(&out).unwrap();
    assert!(wait_metric(&gh, "gatehouse_h2_streams_waited_total", 1.0));
    assert_eq!(metric(&gh, "gatehouse_inflight_requests"), 2.0);
    // RST_STREAM (CANCEL) on the waiting stream.
    let reset = Instant::now();
    s.write_all(&h2_frame(0x3, 0, 3, &8u32.to_be_bytes()))
        .unwrap();
    assert!(wait_metric(&gh, "gatehouse_inflight_requests", 1.0));
    let took = reset.elapsed();
    // Without the watch the waiter would end only when stream 1 does (4.5 s).
    assert!(took < Duration::from_millis(3500), "{took:?}");
    assert_eq!(echo.requests(), 1, "the reset stream never went upstream");
}

/// A stream that waited (watched for a reset meanwhile) is proxied
/// normally once a place comes free.
#[test]
fn a_waiting_stream_is_proxied_once_a_place_comes_free() {
    let (echo, gh) = h2c_with_cap(1, "60s");
    let mut s = connect(gh.listen_addr());
    let mut out = preface(&[]);
    out.extend(h2_get(1, "/public/first?echo_delay_ms=300"));
    out.extend(h2_get(3, "/public/second"));
    s.write_all(&out).unwrap();
    let mut ended = Vec::new();
    while ended.len() < 2 {
        let (kind, stream, payload) = next_h2_frame(&mut s).expect("the connection stayed open");
        match kind {
            0x1 => ended.push(stream),
            0x3 | 0x7 => panic!("reset or GOAWAY on stream {stream}: {payload:?}"),
            _ => {}
        }
    }
    assert_eq!(ended, vec![1, 3], "stream 3 waited for stream 1's place");
    assert!(wait_metric(&gh, "gatehouse_h2_streams_waited_total", 1.0));
    assert!(eventually_blocking(CLOSE_BOUND, || echo.requests() == 2));
    assert_eq!(metric(&gh, "gatehouse_h2_streams_refused_total"), 0.0);
}
