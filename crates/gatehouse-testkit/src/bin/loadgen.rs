//! `gatehouse-loadgen`: an open-loop (fixed-rate) HTTP/1.1 load generator for
//! `benches/latency.sh`, free of coordinated omission, in the manner of wrk2.
//!
//! ```text
//! gatehouse-loadgen --url http://127.0.0.1:8080/public --rate 10000 --duration 10 \
//!     --connections 32 [--header 'Authorization: Bearer …']... [--timeout-ms 2000]
//! ```
//!
//! A minimal HTTP/1.1 client (one prebuilt `GET`, responses framed by
//! `Content-Length` or chunked encoding) keeps the generator's own cost per
//! request close to wrk's, so that it is not the bottleneck on a small machine.
//!
//! Request `i` is *scheduled* at `start + i / rate`. A pacer thread releases
//! one permit per scheduled time (it sleeps with the operating system's
//! microsecond timer, not tokio's millisecond wheel); each of the keep-alive
//! connections takes the next released request when it is free. The latency of
//! a request is its completion time minus its *scheduled* time, so the time a
//! request waited for a free connection behind a slow answer counts, as it
//! would for a user arriving at that moment.
//!
//! Prints one human line on stderr and one JSON line on stdout: requests
//! scheduled, sent, completed (an answer was read), errors (non-2xx answers,
//! I/O errors and timeouts), the achieved rate, and p50, p90, p99, p99.9 and
//! max of the latency in milliseconds (nearest rank over every completed
//! request; no histogram rounding), and the pacer's own lateness (the floor of
//! what the generator can measure).
//!
//! Bounded: only `127.0.0.1` is a valid host; the rate, the duration, the
//! number of connections, each request (`--timeout-ms`, which also bounds a
//! connect) and the whole run (duration + timeout + 5 s) are bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use clap::Parser;
use http::{HeaderName, HeaderValue, Uri};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Upper bounds of the arguments.
const MAX_RATE: f64 = 1_000_000.0;
const MAX_DURATION_S: f64 = 3600.0;
const MAX_CONNECTIONS: usize = 1024;
const MAX_REQUESTS: u64 = 20_000_000;

/// Open-loop HTTP/1.1 load at a fixed rate against 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "gatehouse-loadgen", version, about)]
struct Cli {
    /// Target URL: http://127.0.0.1:PORT/PATH (loopback only).
    #[arg(long)]
    url: String,
    /// Requests per second (scheduled, whatever the answers do).
    #[arg(long)]
    rate: f64,
    /// Seconds over which requests are scheduled.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Extra request header, `Name: value`; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Bound of one request (and of one connect), in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// What the connections count, shared.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    completed: AtomicU64,
    non_2xx: AtomicU64,
    io_errors: AtomicU64,
    timeouts: AtomicU64,
    /// Nanoseconds since start of the last completion.
    last_done_ns: AtomicU64,
}

/// The request every connection sends, as bytes, built once.
struct Target {
    port: u16,
    request: Vec<u8>,
}

impl Target {
    fn parse(cli: &Cli) -> anyhow::Result<Self> {
        let uri: Uri = cli.url.parse().context("--url")?;
        if uri.scheme_str() != Some("http") {
            bail!("--url: only http:// is supported");
        }
        if uri.host() != Some("127.0.0.1") {
            bail!("--url: the host must be 127.0.0.1");
        }
        let port = uri.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n").into_bytes();
        for h in &cli.headers {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?}: expected `Name: value`"))?;
            // Validated as HTTP tokens and values (no CR/LF can slip into the request).
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("--header {h:?}"))?;
            let value =
                HeaderValue::from_str(value.trim()).with_context(|| format!("--header {h:?}"))?;
            request.extend_from_slice(name.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        Ok(Self { port, request })
    }
}

/// One keep-alive HTTP/1.1 connection: a socket and its read buffer.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

async fn connect(port: u16, timeout: Duration) -> anyhow::Result<Conn> {
    let fut = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        anyhow::Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        })
    };
    tokio::time::timeout(timeout, fut)
        .await
        .context("connect timed out")?
}

/// A complete response at the start of `buf`: its status, its length in bytes
/// and whether the server closes the connection after it. `Ok(None)`: not
/// complete yet.
fn parse_response(buf: &[u8]) -> anyhow::Result<Option<(u16, usize, bool)>> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            bail!("response head over 64 KiB");
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let (mut length, mut chunked, mut close) = (None, false, status_line.starts_with("HTTP/1.0"));
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let body_start = head_end + 4;
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some((status, body_start, close)));
    }
    if chunked {
        return Ok(chunked_end(buf, body_start)?.map(|end| (status, end, close)));
    }
    let Some(length) = length else {
        bail!("response without Content-Length or chunked body");
    };
    Ok((buf.len() >= body_start + length).then_some((status, body_start + length, close)))
}

/// The end of a chunked body starting at `pos`, if all of it is in `buf`.
fn chunked_end(buf: &[u8], mut pos: usize) -> anyhow::Result<Option<usize>> {
    loop {
        let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&buf[pos..pos + eol])?;
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16)
                .context("bad chunk size")?;
        pos += eol + 2;
        if size == 0 {
            // Trailers (none expected), then the final CRLF.
            loop {
                let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        pos += size + 2;
    }
}

/// Outcome of one request.
enum Outcome {
    /// Status, and whether the connection can carry the next request.
    Answered(u16, bool),
    Io,
    Timeout,
}

async fn send(conn: &mut Conn, request: &[u8], timeout: Duration) -> Outcome {
    let fut = async {
        conn.stream.write_all(request).await?;
        loop {
            if let Some((status, len, close)) = parse_response(&conn.buf)? {
                let _ = conn.buf.split_to(len);
                return anyhow::Ok((status, !close));
            }
            if conn.buf.capacity() - conn.buf.len() < 4096 {
                conn.buf.reserve(16 * 1024);
            }
            if conn.stream.read_buf(&mut conn.buf).await? == 0 {
                bail!("connection closed before a complete response");
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok((status, keep))) => Outcome::Answered(status, keep),
        Ok(Err(_)) => Outcome::Io,
        Err(_) => Outcome::Timeout,
    }
}

/// Shared state of one run.
struct Run {
    start: Instant,
    rate: f64,
    total: u64,
    timeout: Duration,
    next: AtomicU64,
    permits: Semaphore,
    counts: Counts,
    target: Target,
}

impl Run {
    fn scheduled(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }
}

/// One keep-alive connection: takes the next released request when free.
async fn connection(run: Arc<Run>, mut sender: Option<Conn>) -> Vec<u64> {
    let mut latencies = Vec::new();
    loop {
        let Ok(permit) = run.permits.acquire().await else {
            break;
        };
        permit.forget();
        let i = run.next.fetch_add(1, Ordering::Relaxed);
        if i >= run.total {
            break;
        }
        let scheduled = run.scheduled(i);
        if sender.is_none() {
            match connect(run.target.port, run.timeout).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    run.counts.io_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        run.counts.sent.fetch_add(1, Ordering::Relaxed);
        let outcome = send(s, &run.target.request, run.timeout).await;
        let done = Instant::now();
        match outcome {
            Outcome::Answered(status, keep) => {
                if !keep {
                    sender = None;
                }
                latencies.push(done.saturating_duration_since(scheduled).as_nanos() as u64);
                run.counts.completed.fetch_add(1, Ordering::Relaxed);
                run.counts.last_done_ns.fetch_max(
                    done.duration_since(run.start).as_nanos() as u64,
                    Ordering::Relaxed,
                );
                if !(200..300).contains(&status) {
                    run.counts.non_2xx.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outcome::Io => {
                run.counts.io_errors.fetch_add(1, Ordering::Relaxed);
                sender = None;
            }
            Outcome::Timeout => {
                run.counts.timeouts.fetch_add(1, Ordering::Relaxed);
                sender = None;
            }
        }
    }
    latencies
}

/// Releases one permit per scheduled time on a plain thread (microsecond
/// sleeps), then one per connection to stop them. Returns how late each
/// release was (nanoseconds), per batch.
fn pace(run: Arc<Run>, connections: usize) -> Vec<u64> {
    let mut lags = Vec::new();
    let mut released = 0u64;
    while released < run.total {
        let due = run.scheduled(released);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
            continue;
        }
        // Every request whose time has come, at once (the pacer may wake late).
        let elapsed = now.duration_since(run.start).as_secs_f64();
        let upto = ((elapsed * run.rate).floor() as u64 + 1).clamp(released + 1, run.total);
        lags.push(now.duration_since(due).as_nanos() as u64);
        run.permits.add_permits((upto - released) as usize);
        released = upto;
    }
    run.permits.add_permits(connections);
    lags
}

/// CPU seconds this process has used (user + system, all threads), from
/// `/proc/self/stat` at the usual 100 ticks per second; `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
fn pct_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !(cli.rate > 0.0 && cli.rate <= MAX_RATE) {
        bail!("--rate must be in (0, {MAX_RATE}]");
    }
    if !(cli.duration > 0.0 && cli.duration <= MAX_DURATION_S) {
        bail!("--duration must be in (0, {MAX_DURATION_S}] seconds");
    }
    if cli.connections == 0 || cli.connections > MAX_CONNECTIONS {
        bail!("--connections must be in 1..={MAX_CONNECTIONS}");
    }
    if cli.timeout_ms == 0 || cli.timeout_ms > 60_000 {
        bail!("--timeout-ms must be in 1..=60000");
    }
    let total = (cli.rate * cli.duration).round() as u64;
    if total == 0 || total > MAX_REQUESTS {
        bail!("rate x duration must schedule between 1 and {MAX_REQUESTS} requests");
    }
    let target = Target::parse(&cli)?;
    let timeout = Duration::from_millis(cli.timeout_ms);
    let deadline = Duration::from_secs_f64(cli.duration) + timeout + Duration::from_secs(5);

    let cpu_before = cpu_seconds();
    let wall_before = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lags = Arc::new(Mutex::new(Vec::new()));
    let (run, latencies, finished) = rt.block_on(async {
        // Connect first (not timed), so the schedule starts on warm connections.
        let mut senders = Vec::new();
        for _ in 0..cli.connections {
            senders.push(connect(target.port, timeout).await?);
        }
        let run = Arc::new(Run {
            start: Instant::now() + Duration::from_millis(10),
            rate: cli.rate,
            total,
            timeout,
            next: AtomicU64::new(0),
            permits: Semaphore::new(0),
            counts: Counts::default(),
            target,
        });
        let tasks: Vec<_> = senders
            .into_iter()
            .map(|s| tokio::spawn(connection(run.clone(), Some(s))))
            .collect();
        let pacer_run = run.clone();
        let pacer_lags = lags.clone();
        let conns = cli.connections;
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || {
                let l = pace(pacer_run, conns);
                if let Ok(mut g) = pacer_lags.lock() {
                    *g = l;
                }
            })
            .context("pacer thread")?;
        let mut all = Vec::with_capacity(total as usize);
        let collect = async {
            for t in tasks {
                if let Ok(v) = t.await {
                    all.extend(v);
                }
            }
        };
        let finished = tokio::time::timeout(deadline, collect).await.is_ok();
        anyhow::Ok((run, all, finished))
    })?;
    // The connection tasks are dropped with the runtime if the run hit its bound.
    drop(rt);

    let cpu_pct = match (cpu_before, cpu_seconds()) {
        (Some(a), Some(b)) => 100.0 * (b - a) / wall_before.elapsed().as_secs_f64(),
        _ => -1.0,
    };
    let mut lat = latencies;
    lat.sort_unstable();
    let mut lag = lags.lock().map(|g| g.clone()).unwrap_or_default();
    lag.sort_unstable();
    let c = &run.counts;
    let completed = c.completed.load(Ordering::Relaxed);
    let non_2xx = c.non_2xx.load(Ordering::Relaxed);
    let io = c.io_errors.load(Ordering::Relaxed);
    let timeouts = c.timeouts.load(Ordering::Relaxed);
    let sent = c.sent.load(Ordering::Relaxed);
    let span = c.last_done_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let achieved = if span > 0.0 {
        completed as f64 / span
    } else {
        0.0
    };
    let errors = non_2xx + io + timeouts;
    let out = json!({
        "url": cli.url,
        "rate": cli.rate,
        "duration_s": cli.duration,
        "connections": cli.connections,
        "scheduled": total,
        "sent": sent,
        "completed": completed,
        "errors": errors,
        "non_2xx": non_2xx,
        "io_errors": io,
        "timeouts": timeouts,
        "finished_in_bound": finished,
        "achieved_rps": round3(achieved),
        "p50_ms": round3(pct_ms(&lat, 50.0)),
        "p90_ms": round3(pct_ms(&lat, 90.0)),
        "p99_ms": round3(pct_ms(&lat, 99.0)),
        "p999_ms": round3(pct_ms(&lat, 99.9)),
        "max_ms": round3(pct_ms(&lat, 100.0)),
        "pacer_lag_p50_ms": round3(pct_ms(&lag, 50.0)),
        "pacer_lag_p99_ms": round3(pct_ms(&lag, 99.0)),
        "generator_cpu_pct": cpu_pct.round(),
    });
    eprintln!(
        "{} at {} req/s for {} s over {} connections: sent {sent}, completed {completed}, errors {errors} \
         (non-2xx {non_2xx}, io {io}, timeouts {timeouts}), achieved {achieved:.0} req/s, latency ms \
         p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} (pacer lag p99 {:.3}, generator CPU {cpu_pct:.0} %)",
        cli.url,
        cli.rate,
        cli.duration,
        cli.connections,
        pct_ms(&lat, 50.0),
        pct_ms(&lat, 90.0),
        pct_ms(&lat, 99.0),
        pct_ms(&lat, 99.9),
        pct_ms(&lat, 100.0),
        pct_ms(&lag, 99.0),
    );
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{chunked_end, parse_response};

    #[test]
    fn content_length_framing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nHTTP/1.1";
        assert_eq!(parse_response(r).ok().flatten(), Some((200, 41, false)));
        assert_eq!(parse_response(&r[..40]).ok().flatten(), None);
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nCont").ok().flatten(),
            None
        );
    }

    #[test]
    fn status_close_and_no_body() {
        let r = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nConnection: close\r\n\r\n";
        assert_eq!(parse_response(r).ok().flatten(), Some((401, r.len(), true)));
        let r = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            parse_response(r).ok().flatten(),
            Some((204, r.len(), false))
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\nbody").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_framing() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let body = b"3\r\nok\n\r\na;x=y\r\n0123456789\r\n0\r\n\r\n";
        let whole = [&head[..], &body[..]].concat();
        assert_eq!(
            parse_response(&whole).ok().flatten(),
            Some((200, whole.len(), false))
        );
        for cut in head.len()..whole.len() {
            assert_eq!(
                parse_response(&whole[..cut]).ok().flatten(),
                None,
                "cut at {cut}"
            );
        }
        assert!(chunked_end(b"zz\r\n", 0).is_err());
    }
}
