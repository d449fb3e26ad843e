//! Runs a real NGINX as an upstream, for tests that must see how a common
//! server reads what Gatehouse forwards.
//!
//! [`Nginx::start`] writes `nginx.conf` into a fresh temporary directory
//! (which is also NGINX's prefix: pid file, logs and temp paths live there),
//! starts `nginx` in the foreground (`daemon off`, `master_process off`: one
//! process, so dropping the handle stops everything), and waits until its
//! port accepts. The binary is `nginx` on `PATH` or `/usr/sbin/nginx`
//! (Debian's `nginx-light`, installed by `scripts/install-deps.sh`).

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::net::free_addr;

/// How long [`Nginx::start`] waits for the port to accept.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running NGINX; dropping it stops the process.
pub struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// Where the `nginx` binary is, if installed.
pub fn nginx_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        [
            "/usr/sbin/nginx",
            "/usr/local/sbin/nginx",
            "/usr/local/nginx/sbin/nginx",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    })
}

impl Nginx {
    /// Starts NGINX with `server_body` as the body of its only `server {}`
    /// block; the `listen` directive (a free loopback port) is added here.
    ///
    /// Fails with an explanation when NGINX is not installed
    /// (`scripts/install-deps.sh` installs Debian's `nginx-light`).
    pub fn start(server_body: &str) -> anyhow::Result<Nginx> {
        let Some(bin) = nginx_bin() else {
            bail!(
                "nginx is not installed (looked on PATH and in /usr/sbin): run \
                 scripts/install-deps.sh (or `apt-get install nginx-light`)"
            );
        };
        // The free port is picked before NGINX binds it: if another process
        // took it in between, try again on another one.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(&bin, server_body) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    continue
                }
                other => return other,
            }
        }
    }

    fn start_once(bin: &Path, server_body: &str) -> anyhow::Result<Nginx> {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-nginx-")
            .tempdir()
            .context("creating the NGINX prefix directory")?;
        let addr = free_addr();
        let conf = config(dir.path(), addr, server_body);
        let conf_path = dir.path().join("nginx.conf");
        fs::write(&conf_path, conf).context("writing nginx.conf")?;
        let error_log = dir.path().join("error.log");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut nginx = Nginx { child, addr, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                bail!(
                    "nginx exited at start ({status}); error.log:\n{}",
                    nginx.error_log()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx did not accept on {addr} within {START_TIMEOUT:?}; error.log:\n{}",
                    nginx.error_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address NGINX listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The prefix directory (config, logs, pid file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

fn config(dir: &Path, addr: SocketAddr, server_body: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/plain;
    server {{
        listen {addr};
        {server_body}
    }}
}}
"#
    )
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Nginx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nginx").field("addr", &self.addr).finish()
    }
}
