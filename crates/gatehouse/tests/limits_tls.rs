//! End-to-end: TLS listeners under hostile clients (issue 27). Before a
//! handshake, Pingora waited 60 s for it and did not count it against
//! `max_connections`; now a client must send its whole `ClientHello` within
//! `request_header_timeout`, and a full process drops a new TLS connection
//! before any TLS work.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "limits/support.rs"]
mod support;

use common::*;
use gatehouse_testkit::{CertFiles, ConfigBuilder, EchoUpstream, Gatehouse, TestCa};
use std::io::Write;
use std::time::Duration;
use support::*;

struct Tls {
    _dir: tempfile::TempDir,
    ca: TestCa,
    cert: CertFiles,
}

fn tls() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca").unwrap();
    let cert = ca.server("api", &["api.test"]).unwrap();
    Tls {
        _dir: dir,
        ca,
        cert,
    }
}

fn start(t: &Tls, echo: &EchoUpstream, server_lines: &str) -> Gatehouse {
    let section = format!(
        "[[server.tls]]\nlisten = [\"${{TLS_LISTEN}}\"]\ncertificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]",
        t.cert.cert.display(),
        t.cert.key.display()
    );
    let head = ConfigBuilder::new()
        .server_line(server_lines)
        .server_section(section)
        .upstream("echo", echo.addr())
        .render();
    let config = format!("{head}{PUBLIC_ROUTE}");
    Gatehouse::start(BIN, &config).unwrap()
}

async fn https_status(t: &Tls, gh: &Gatehouse) -> Result<u16, reqwest::Error> {
    let pem = std::fs::read(t.ca.cert_path()).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("api.test", gh.tls_listen_addr())
        .build()
        .unwrap();
    let url = format!("https://api.test:{}/public/x", gh.tls_listen_addr().port());
    client.get(url).send().await.map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_tls_clients_are_closed_at_the_head_deadline() {
    let t = tls();
    let echo = EchoUpstream::start();
    let gh = start(&t, &echo, "request_header_timeout = \"1s\"");
    let addr = gh.tls_listen_addr();
    let (silent, trickled) = tokio::task::spawn_blocking(move || {
        let mut silent = connect(addr);
        // The first bytes of a TLS record header, then nothing.
        let mut trickled = connect(addr);
        trickled.write_all(&[0x16, 0x03, 0x01]).unwrap();
        (wait_closed(&mut silent), wait_closed(&mut trickled))
    })
    .await
    .unwrap();
    for (what, (closed, got)) in [("silent", silent), ("trickled", trickled)] {
        let took = closed.unwrap_or_else(|| panic!("{what}: still open after {CLOSE_BOUND:?}"));
        eprintln!("{what} TLS client closed after {took:?}");
        // Pingora's own bound is 60 s.
        assert!(took < Duration::from_secs(5), "{what}: {took:?}");
        assert!(got.is_empty(), "{what}: {got:?}");
    }
    assert_eq!(metric(&gh, "gatehouse_request_heads_timed_out_total"), 2.0);
    // A real client still gets through.
    assert_eq!(https_status(&t, &gh).await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_process_drops_new_tls_connections_before_the_handshake() {
    let t = tls();
    let echo = EchoUpstream::start();
    let gh = start(&t, &echo, "max_connections = 2");
    let mut held: Vec<_> = (0..2).map(|_| connect(gh.listen_addr())).collect();
    assert!(wait_metric(&gh, "gatehouse_connections_open", 2.0));
    // Dropped at accept, before a ClientHello: not after a handshake.
    let addr = gh.tls_listen_addr();
    let (closed, got) = tokio::task::spawn_blocking(move || wait_closed(&mut connect(addr)))
        .await
        .unwrap();
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(5)),
        "{closed:?}"
    );
    assert!(got.is_empty());
    let refused = https_status(&t, &gh).await;
    assert!(refused.is_err(), "{refused:?}");
    // reqwest may try its connection more than once.
    assert!(metric(&gh, "gatehouse_connections_refused_total") >= 2.0);
    assert_eq!(echo.requests(), 0);
    drop(held.pop());
    assert!(wait_metric(&gh, "gatehouse_connections_open", 1.0));
    assert_eq!(https_status(&t, &gh).await.unwrap(), 200);
}
