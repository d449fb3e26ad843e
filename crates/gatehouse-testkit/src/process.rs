//! Running the real `gatehouse` binary as a child process.
//!
//! [`Gatehouse::start`] writes a config file into a fresh temporary
//! directory (substituting the `${LISTEN}` and `${ADMIN}` placeholders with
//! free loopback addresses), spawns the binary and waits until its admin
//! `/readyz` endpoint answers `200` and its proxy listener accepts.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::net::free_addr;

/// How long [`Gatehouse::start`] waits for `/readyz`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Interval between readiness and log polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Bytes of each log included in start-failure errors.
const LOG_TAIL_BYTES: usize = 4096;

/// Path of the `gatehouse` binary under test.
///
/// Uses `GATEHOUSE_BIN` if set; otherwise derives `target/<profile>/gatehouse`
/// from the location of the running test executable
/// (`target/<profile>/deps/<test>`).
///
/// # Panics
///
/// Panics if the binary does not exist (run `cargo build --bins` first).
pub fn gatehouse_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("GATEHOUSE_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.exists(),
            "GATEHOUSE_BIN={} does not exist",
            bin.display()
        );
        return bin;
    }
    let exe = std::env::current_exe().expect("locating the current executable");
    let mut dir = exe
        .parent()
        .expect("current executable has a parent directory")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join(format!("gatehouse{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "gatehouse binary not found at {}; run `cargo build --bins` first \
         (or set GATEHOUSE_BIN)",
        bin.display()
    );
    bin
}

/// Minimal blocking HTTP/1.0 `GET` over a `std::net::TcpStream`.
///
/// Works inside and outside an async runtime. Returns the status code and
/// the body as (lossy) UTF-8. Handles `content-length`, `chunked` and
/// read-until-close bodies.
pub fn http_get_blocking(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("sending request to {addr}"))?;

    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(done) = parse_http_response(&buf)? {
            return Ok(done);
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !buf.is_empty() => 0,
            Err(e) => return Err(e).with_context(|| format!("reading response from {addr}")),
        };
        if n == 0 {
            // EOF: the body is whatever we have (read-until-close).
            return finish_at_eof(&buf);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Head {
    status: u16,
    body_start: usize,
    content_length: Option<usize>,
    chunked: bool,
}

fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        bail!("malformed status line: {status_line:?}");
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("malformed status line: {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some(Head {
        status,
        body_start: end + 4,
        content_length,
        chunked,
    }))
}

/// Returns the complete response if `buf` holds all of it.
fn parse_http_response(buf: &[u8]) -> anyhow::Result<Option<(u16, String)>> {
    let Some(head) = parse_head(buf)? else {
        return Ok(None);
    };
    let body = &buf[head.body_start..];
    if head.chunked {
        return Ok(decode_chunked(body)?.map(|b| (head.status, lossy(&b))));
    }
    if let Some(len) = head.content_length {
        if body.len() >= len {
            return Ok(Some((head.status, lossy(&body[..len]))));
        }
    }
    // 1xx/204/304 have no body.
    if matches!(head.status, 100..=199 | 204 | 304) {
        return Ok(Some((head.status, String::new())));
    }
    Ok(None)
}

fn finish_at_eof(buf: &[u8]) -> anyhow::Result<(u16, String)> {
    let head = parse_head(buf)?.ok_or_else(|| {
        anyhow!(
            "connection closed before a complete response head ({} bytes received)",
            buf.len()
        )
    })?;
    let body = &buf[head.body_start..];
    if head.chunked {
        let decoded =
            decode_chunked(body)?.ok_or_else(|| anyhow!("truncated chunked response body"))?;
        return Ok((head.status, lossy(&decoded)));
    }
    if let Some(len) = head.content_length {
        if body.len() < len {
            bail!("truncated response body: {} of {len} bytes", body.len());
        }
        return Ok((head.status, lossy(&body[..len])));
    }
    Ok((head.status, lossy(body)))
}

/// Decodes a chunked body; `None` if incomplete.
fn decode_chunked(mut body: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = String::from_utf8_lossy(&body[..line_end]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_hex:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if body.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses a Prometheus text exposition and returns the value of the samples
/// named exactly `name` whose labels include every pair in `labels` (other
/// labels are allowed). Several matching samples are summed; `None` if no
/// sample matches.
pub fn parse_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total: Option<f64> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        if sample.name != name {
            continue;
        }
        let all_match = labels
            .iter()
            .all(|(k, v)| sample.labels.iter().any(|(sk, sv)| sk == k && sv == v));
        if all_match {
            total = Some(total.unwrap_or(0.0) + sample.value);
        }
    }
    total
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name,
        labels,
        value: parse_value(value)?,
    })
}

/// Parses `k="v",k2="v2"}` and returns the labels and the text after `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => {
                    let (_, escaped) = chars.next()?;
                    value.push(match escaped {
                        'n' => '\n',
                        other => other,
                    });
                }
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// Last `max` bytes of a file, lossily decoded (empty if unreadable).
fn tail_file(path: &Path, max: usize) -> String {
    let data = fs::read(path).unwrap_or_default();
    let start = data.len().saturating_sub(max);
    lossy(&data[start..])
}

/// A running `gatehouse` child process with its temporary directory
/// (config file and logs). Dropping it kills the process.
pub struct Gatehouse {
    child: Child,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    listen: SocketAddr,
    admin: SocketAddr,
}

impl Gatehouse {
    /// Starts gatehouse with `config` (placeholders `${LISTEN}` and `${ADMIN}`
    /// are replaced) and waits until `GET /readyz` on the admin address
    /// returns 200.
    pub fn start(config: &str) -> anyhow::Result<Gatehouse> {
        Self::start_with_args(config, &[])
    }

    /// Like [`Gatehouse::start`], appending `extra_args` after
    /// `run --config <path>`.
    ///
    /// The listener ports are picked free but bound only by the child; when
    /// another process took one in between, the start is retried on new ports
    /// (at most three attempts).
    pub fn start_with_args(config: &str, extra_args: &[&str]) -> anyhow::Result<Gatehouse> {
        let mut attempt = 1;
        loop {
            let mut gh = Self::spawn_with_args(config, extra_args)?;
            match gh.wait_ready(READY_TIMEOUT) {
                Ok(()) => return Ok(gh),
                Err(_) if attempt < 3 && gh.lost_port_race() => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// True when the process exited because a listener address was in use.
    fn lost_port_race(&mut self) -> bool {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            return false;
        }
        let logs = self.logs();
        logs.contains("cannot listen on") && logs.contains("in use")
    }

    /// Spawns gatehouse without waiting for readiness (for tests expecting a
    /// start failure).
    pub fn spawn_unchecked(config: &str) -> anyhow::Result<Gatehouse> {
        Self::spawn_with_args(config, &[])
    }

    /// Like [`Gatehouse::spawn_unchecked`], appending `extra_args`.
    pub fn spawn_unchecked_with_args(
        config: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Gatehouse> {
        Self::spawn_with_args(config, extra_args)
    }

    fn spawn_with_args(config: &str, extra_args: &[&str]) -> anyhow::Result<Gatehouse> {
        let bin = gatehouse_bin();
        let listen = free_addr();
        let mut admin = free_addr();
        while admin == listen {
            admin = free_addr();
        }
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-test-")
            .tempdir()
            .context("creating temp dir")?;
        let config_path = dir.path().join("gatehouse.toml");
        fs::write(&config_path, substitute(config, listen, admin))
            .with_context(|| format!("writing {}", config_path.display()))?;
        let stdout = fs::File::create(dir.path().join("stdout.log"))?;
        let stderr = fs::File::create(dir.path().join("stderr.log"))?;

        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(extra_args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        Ok(Gatehouse {
            child,
            dir,
            config_path,
            listen,
            admin,
        })
    }

    /// Polls `GET /readyz` until it answers 200 and the proxy listener
    /// accepts connections, the process exits, or `timeout` passes.
    ///
    /// `/readyz` can answer before the proxy listener is bound, hence the
    /// extra TCP probe of [`Gatehouse::listen_addr`].
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last_err;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "gatehouse exited before becoming ready ({status})\n{}",
                    self.log_tails()
                );
            }
            match http_get_blocking(self.admin, "/readyz") {
                Ok((200, _)) => {
                    match TcpStream::connect_timeout(&self.listen, Duration::from_millis(500)) {
                        Ok(_) => return Ok(()),
                        Err(e) => {
                            last_err = format!(
                                "/readyz is 200 but the proxy listener {} refuses: {e}",
                                self.listen
                            )
                        }
                    }
                }
                Ok((code, body)) => last_err = format!("/readyz returned {code}: {body}"),
                Err(e) => last_err = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                bail!(
                    "gatehouse not ready after {timeout:?} (last: {last_err})\n{}",
                    self.log_tails()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn log_tails(&self) -> String {
        format!(
            "--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            tail_file(&self.dir.path().join("stdout.log"), LOG_TAIL_BYTES),
            tail_file(&self.dir.path().join("stderr.log"), LOG_TAIL_BYTES),
        )
    }

    /// The proxy listener address (`${LISTEN}`).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The admin listener address (`${ADMIN}`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// `http://LISTEN{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listen, path)
    }

    /// `http://ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Path of the config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temporary directory holding the config and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process id of the child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Atomically replaces the config file (placeholders substituted with the
    /// same addresses as at start). Send [`Gatehouse::sighup`] or rely on the
    /// file watcher to apply it.
    pub fn write_config(&self, config: &str) -> anyhow::Result<()> {
        let text = substitute(config, self.listen, self.admin);
        let mut tmp = tempfile::NamedTempFile::new_in(self.dir.path())
            .context("creating temporary config file")?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.config_path)
            .map_err(|e| anyhow!("replacing {}: {}", self.config_path.display(), e.error))?;
        Ok(())
    }

    /// Sends `SIGHUP` (config reload). Failures are reported on stderr.
    pub fn sighup(&self) {
        self.signal("-HUP");
    }

    /// Sends `SIGTERM` (graceful shutdown). Failures are reported on stderr.
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().to_string();
        match Command::new("kill").args([sig, &pid]).status() {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("testkit: `kill {sig} {pid}` failed: {s}"),
            Err(e) => eprintln!("testkit: running `kill {sig} {pid}`: {e}"),
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => {}
                Err(_) => return None,
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the child process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// stdout followed by stderr of the child so far.
    pub fn logs(&self) -> String {
        let mut out = lossy(&fs::read(self.dir.path().join("stdout.log")).unwrap_or_default());
        out.push_str(&lossy(
            &fs::read(self.dir.path().join("stderr.log")).unwrap_or_default(),
        ));
        out
    }

    /// Body of `GET /metrics` on the admin listener.
    pub fn metrics(&self) -> anyhow::Result<String> {
        let (status, body) = http_get_blocking(self.admin, "/metrics")?;
        if status != 200 {
            bail!("/metrics returned {status}: {body}");
        }
        Ok(body)
    }

    /// Scrapes `/metrics` and returns the (summed) value of the samples named
    /// `name` carrying all `labels`; see [`parse_metric`].
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        parse_metric(&self.metrics().ok()?, name, labels)
    }

    /// Polls the logs until they contain `needle` or `timeout` passes.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("pid", &self.child.id())
            .field("listen", &self.listen)
            .field("admin", &self.admin)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::env::var_os("GATEHOUSE_KEEP_LOGS").is_some() {
            eprintln!(
                "===== gatehouse logs ({}) =====\n{}\n===== end of gatehouse logs =====",
                self.dir.path().display(),
                self.logs()
            );
        }
    }
}

fn substitute(config: &str, listen: SocketAddr, admin: SocketAddr) -> String {
    config
        .replace("${LISTEN}", &listen.to_string())
        .replace("${ADMIN}", &admin.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SAMPLE: &str = r#"# HELP gatehouse_requests_total Requests.
# TYPE gatehouse_requests_total counter
gatehouse_requests_total{route="api",status="200"} 5
gatehouse_requests_total{route="api",status="401"} 2
gatehouse_requests_total{route="web",status="200"} 7
gatehouse_requests_total_extra{route="api"} 100
gatehouse_up 1
gatehouse_latency_seconds_bucket{route="api",le="0.005"} 3
gatehouse_latency_seconds_bucket{route="api",le="+Inf"} 9
gatehouse_latency_seconds_sum{route="api"} 1e-05
weird{msg="a,b=\"c\"}",route="x"} 4 1700000000000
escaped{path="C:\\dir"} 2.5
"#;

    #[test]
    fn exact_labels() {
        let v = parse_metric(
            SAMPLE,
            "gatehouse_requests_total",
            &[("route", "api"), ("status", "200")],
        );
        assert_eq!(v, Some(5.0));
        // Order independent.
        let v = parse_metric(
            SAMPLE,
            "gatehouse_requests_total",
            &[("status", "401"), ("route", "api")],
        );
        assert_eq!(v, Some(2.0));
    }

    #[test]
    fn partial_labels_sum() {
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total", &[("route", "api")]),
            Some(7.0)
        );
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total", &[]),
            Some(14.0)
        );
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total", &[("status", "200")]),
            Some(12.0)
        );
    }

    #[test]
    fn name_must_match_exactly() {
        assert_eq!(parse_metric(SAMPLE, "gatehouse_requests", &[]), None);
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total_extra", &[]),
            Some(100.0)
        );
    }

    #[test]
    fn no_match_is_none() {
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total", &[("route", "nope")]),
            None
        );
        assert_eq!(parse_metric("", "x", &[]), None);
        assert_eq!(
            parse_metric("# HELP x y\n# TYPE x counter\n", "x", &[]),
            None
        );
    }

    #[test]
    fn unlabelled_and_exponent_values() {
        assert_eq!(parse_metric(SAMPLE, "gatehouse_up", &[]), Some(1.0));
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_latency_seconds_sum", &[("route", "api")]),
            Some(1e-05)
        );
    }

    #[test]
    fn inf_bucket_label() {
        assert_eq!(
            parse_metric(
                SAMPLE,
                "gatehouse_latency_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(9.0)
        );
        assert_eq!(
            parse_metric(
                SAMPLE,
                "gatehouse_latency_seconds_bucket",
                &[("le", "0.005")]
            ),
            Some(3.0)
        );
    }

    #[test]
    fn tricky_label_values_and_timestamp() {
        assert_eq!(
            parse_metric(SAMPLE, "weird", &[("msg", "a,b=\"c\"}"), ("route", "x")]),
            Some(4.0)
        );
        assert_eq!(parse_metric(SAMPLE, "weird", &[("route", "x")]), Some(4.0));
        assert_eq!(
            parse_metric(SAMPLE, "escaped", &[("path", "C:\\dir")]),
            Some(2.5)
        );
    }

    #[test]
    fn inf_values() {
        let text = "a +Inf\nb -Inf\nc NaN\n";
        assert_eq!(parse_metric(text, "a", &[]), Some(f64::INFINITY));
        assert_eq!(parse_metric(text, "b", &[]), Some(f64::NEG_INFINITY));
        assert!(parse_metric(text, "c", &[]).unwrap().is_nan());
    }

    #[test]
    fn substitute_placeholders() {
        let l: SocketAddr = "127.0.0.1:1111".parse().unwrap();
        let a: SocketAddr = "127.0.0.1:2222".parse().unwrap();
        assert_eq!(
            substitute("listen = \"${LISTEN}\"\nadmin = \"${ADMIN}\"", l, a),
            "listen = \"127.0.0.1:1111\"\nadmin = \"127.0.0.1:2222\""
        );
    }

    #[test]
    fn http_response_parsing() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello extra";
        assert_eq!(
            parse_http_response(raw).unwrap(),
            Some((200, "hello".to_owned()))
        );
        let partial = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(parse_http_response(partial).unwrap(), None);
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_response(chunked).unwrap(),
            Some((503, "abcde".to_owned()))
        );
        let until_close = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_http_response(until_close).unwrap(), None);
        assert_eq!(
            finish_at_eof(until_close).unwrap(),
            (404, "nope".to_owned())
        );
        assert!(finish_at_eof(b"HTTP/1.1 200").is_err());
        assert!(parse_http_response(b"garbage\r\n\r\n").is_err());
    }
}
