//! Running the real `gatehouse` binary as a child process.
//!
//! [`Gatehouse::start`] takes the path of the binary — end-to-end tests pass
//! `env!("CARGO_BIN_EXE_gatehouse")`, which Cargo defines for the integration
//! tests of the package that owns the binary and builds before them — writes
//! a config file into a fresh temporary directory (substituting the
//! `${LISTEN}`, `${TLS_LISTEN}` and `${ADMIN}` placeholders with free
//! loopback addresses), spawns the binary and waits until its admin `/readyz`
//! endpoint answers `200` and its proxy listeners accept.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::http_client::{http_get_blocking, lossy};
use crate::metrics::scrape_metric;
use crate::net::free_addr;
use crate::wait::eventually_blocking;

/// How long [`Gatehouse::start`] waits for `/readyz`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Interval between readiness and log polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Bytes of each log included in start-failure errors.
const LOG_TAIL_BYTES: usize = 4096;

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
    tls_listen: SocketAddr,
    admin: SocketAddr,
    /// Probe `listen` for readiness (unless the config uses only `${TLS_LISTEN}`).
    probe_plain: bool,
    /// Probe `tls_listen` for readiness (the config uses `${TLS_LISTEN}`).
    probe_tls: bool,
}

impl Gatehouse {
    /// Starts the binary `bin` with `config` (placeholders `${LISTEN}` and
    /// `${ADMIN}` are replaced) and waits until `GET /readyz` on the admin
    /// address returns 200.
    pub fn start(bin: impl AsRef<Path>, config: &str) -> anyhow::Result<Gatehouse> {
        Self::start_with_args(bin, config, &[])
    }

    /// Like [`Gatehouse::start`], appending `extra_args` after
    /// `run --config <path>`.
    ///
    /// The listener ports are picked free but bound only by the child; when
    /// another process took one in between, the start is retried on new ports
    /// (at most three attempts).
    pub fn start_with_args(
        bin: impl AsRef<Path>,
        config: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Gatehouse> {
        let bin = bin.as_ref();
        let mut attempt = 1;
        loop {
            let mut gh = Self::spawn_with_args(bin, config, extra_args)?;
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
    pub fn spawn_unchecked(bin: impl AsRef<Path>, config: &str) -> anyhow::Result<Gatehouse> {
        Self::spawn_with_args(bin.as_ref(), config, &[])
    }

    /// Like [`Gatehouse::spawn_unchecked`], appending `extra_args`.
    pub fn spawn_unchecked_with_args(
        bin: impl AsRef<Path>,
        config: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Gatehouse> {
        Self::spawn_with_args(bin.as_ref(), config, extra_args)
    }

    fn spawn_with_args(bin: &Path, config: &str, extra_args: &[&str]) -> anyhow::Result<Gatehouse> {
        let listen = free_addr();
        let mut admin = free_addr();
        while admin == listen {
            admin = free_addr();
        }
        let mut tls_listen = free_addr();
        while tls_listen == listen || tls_listen == admin {
            tls_listen = free_addr();
        }
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-test-")
            .tempdir()
            .context("creating temp dir")?;
        let config_path = dir.path().join("gatehouse.toml");
        fs::write(
            &config_path,
            substitute(config, listen, admin).replace("${TLS_LISTEN}", &tls_listen.to_string()),
        )
        .with_context(|| format!("writing {}", config_path.display()))?;
        let stdout = fs::File::create(dir.path().join("stdout.log"))?;
        let stderr = fs::File::create(dir.path().join("stderr.log"))?;

        let mut cmd = Command::new(bin);
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
            tls_listen,
            admin,
            probe_tls: config.contains("${TLS_LISTEN}"),
            probe_plain: config.contains("${LISTEN}") || !config.contains("${TLS_LISTEN}"),
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
                    let probe = |a: &SocketAddr| {
                        TcpStream::connect_timeout(a, Duration::from_millis(500)).map_err(|e| {
                            format!("/readyz is 200 but the proxy listener {a} refuses: {e}")
                        })
                    };
                    let plain = if self.probe_plain {
                        probe(&self.listen).map(drop)
                    } else {
                        Ok(())
                    };
                    let tls = if self.probe_tls {
                        probe(&self.tls_listen).map(drop)
                    } else {
                        Ok(())
                    };
                    match plain.and(tls) {
                        Ok(()) => return Ok(()),
                        Err(e) => last_err = e,
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

    /// The TLS proxy listener address (`${TLS_LISTEN}`).
    pub fn tls_listen_addr(&self) -> SocketAddr {
        self.tls_listen
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

    /// Atomically replaces the config file (placeholders, `${TLS_LISTEN}`
    /// included, substituted with the same addresses as at start). Send [`Gatehouse::sighup`] or rely on the
    /// file watcher to apply it.
    pub fn write_config(&self, config: &str) -> anyhow::Result<()> {
        let text = substitute(config, self.listen, self.admin)
            .replace("${TLS_LISTEN}", &self.tls_listen.to_string());
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
    /// `name` carrying all `labels`; see [`crate::parse_metric`].
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        scrape_metric(self.admin, name, labels)
    }

    /// Polls the logs until they contain `needle` or `timeout` passes.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        eventually_blocking(timeout, || self.logs().contains(needle))
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

    #[test]
    fn substitute_placeholders() {
        let l: SocketAddr = "127.0.0.1:1111".parse().unwrap();
        let a: SocketAddr = "127.0.0.1:2222".parse().unwrap();
        assert_eq!(
            substitute("listen = \"${LISTEN}\"\nadmin = \"${ADMIN}\"", l, a),
            "listen = \"127.0.0.1:1111\"\nadmin = \"127.0.0.1:2222\""
        );
    }
}
