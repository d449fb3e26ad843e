//! Runs a real Redis (Debian `redis-server`) on a free loopback port, without
//! persistence, for the shared-cache tests. It can be stopped and started
//! again on the same port (an outage), and queried with `redis-cli`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::net::free_addr;

/// How long a start waits for `PING` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A Redis server; dropping it stops the process.
pub struct RedisServer {
    child: Option<Child>,
    addr: SocketAddr,
    password: Option<String>,
    /// TLS certificate and key (`--tls-port` instead of `--port`).
    tls: Option<crate::CertFiles>,
    dir: tempfile::TempDir,
}

fn bin(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/bin").join(name)).filter(|p| p.is_file()))
}

impl RedisServer {
    /// Starts Redis on a free loopback port (`requirepass` when `password`).
    pub fn start(password: Option<&str>) -> anyhow::Result<Self> {
        let mut r = Self {
            child: None,
            addr: free_addr(),
            password: password.map(str::to_string),
            tls: None,
            dir: tempfile::tempdir()?,
        };
        r.resume()?;
        Ok(r)
    }

    /// Starts Redis speaking only TLS (`rediss://`) with `cert` (its chain
    /// must verify for `127.0.0.1`), without client certificates.
    pub fn start_tls(password: Option<&str>, cert: crate::CertFiles) -> anyhow::Result<Self> {
        let mut r = Self {
            child: None,
            addr: free_addr(),
            password: password.map(str::to_string),
            tls: Some(cert),
            dir: tempfile::tempdir()?,
        };
        r.resume()?;
        Ok(r)
    }

    /// `redis://127.0.0.1:PORT/0` (`rediss://` with TLS; no credentials).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{}/0", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server (an outage); [`RedisServer::resume`] starts it again,
    /// empty, on the same port.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let Some(server) = bin("redis-server") else {
            bail!("redis-server is not installed: run scripts/install-deps.sh (or `apt-get install redis-server`)");
        };
        let port = self.addr.port().to_string();
        let mut args = vec!["--bind".to_string(), "127.0.0.1".into()];
        match &self.tls {
            Some(c) => args.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port,
                "--tls-cert-file".into(),
                c.cert.display().to_string(),
                "--tls-key-file".into(),
                c.key.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]),
            None => args.extend(["--port".into(), port]),
        }
        args.extend([
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.path().display().to_string(),
            "--loglevel".into(),
            "warning".into(),
        ]);
        if let Some(p) = &self.password {
            args.extend(["--requirepass".to_string(), p.clone()]);
        }
        let child = Command::new(server)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("redis-server on {} did not answer PING", self.addr)
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else {
            return false;
        };
        if self.tls.is_some() {
            // Accepting connections is enough: PING would need a TLS client here.
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let cmd = match &self.password {
            Some(p) => format!("AUTH {p}\r\nPING\r\n"),
            None => "PING\r\n".to_string(),
        };
        if s.write_all(cmd.as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while !got.windows(5).any(|w| w == b"+PONG") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    /// Runs `redis-cli` against it with `args`; its standard output.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let cli = bin("redis-cli").context("redis-cli is not installed (package redis-tools)")?;
        let mut cmd = Command::new(cli);
        cmd.args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()]);
        if let Some(p) = &self.password {
            cmd.env("REDISCLI_AUTH", p);
        }
        let out = cmd.args(args).output().context("running redis-cli")?;
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
