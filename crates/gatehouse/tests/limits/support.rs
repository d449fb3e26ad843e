//! Raw-socket helpers shared by the limits end-to-end tests.
#![allow(dead_code, clippy::unwrap_used)]

use gatehouse_testkit::{eventually_blocking, Gatehouse};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Upper bound for "the server closed it": far above every timeout used here.
pub(crate) const CLOSE_BOUND: Duration = Duration::from_secs(15);

pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(CLOSE_BOUND)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until the server closes (EOF or reset): the time it took, or
/// `None` if the connection was still open after [`CLOSE_BOUND`].
/// Whatever the server sent is returned too.
pub(crate) fn wait_closed(s: &mut TcpStream) -> (Option<Duration>, Vec<u8>) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (Some(t0.elapsed()), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (None, got)
            }
            Err(_) => return (Some(t0.elapsed()), got),
        }
    }
}

/// Reads one response with a `Content-Length` body; returns its head and status.
pub(crate) fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while got.len() < end + 4 + len {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "closed inside a response body");
                got.extend_from_slice(&buf[..n]);
            }
            let status = head[9..12].parse().unwrap();
            return (status, head);
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

pub(crate) fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: gh.test\r\n\r\n").into_bytes()
}

pub(crate) fn metric(gh: &Gatehouse, name: &str) -> f64 {
    gh.metric(name, &[]).unwrap_or(-1.0)
}

/// Waits up to [`CLOSE_BOUND`] for the metric `name` to read `want`.
pub(crate) fn wait_metric(gh: &Gatehouse, name: &str, want: f64) -> bool {
    eventually_blocking(CLOSE_BOUND, || metric(gh, name) == want)
}

/// Resident set size of `pid` in KiB (`VmRSS` of /proc/PID/status).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}
