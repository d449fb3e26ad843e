//! Runs a real lighttpd serving CGI programs as an upstream, for tests that
//! must see how a CGI application (PHP in particular) reads the headers
//! Gatehouse forwards.
//!
//! CGI turns every request header `Name` into an environment variable
//! `HTTP_NAME`: lighttpd upper-cases the name and replaces every character
//! that is not an ASCII letter or digit with `_`. So `X.User.Id`, `X_User_Id`,
//! `x~user~id` and `X-User-Id` all become the same `HTTP_X_USER_ID`, and a
//! client-sent `X.User.Id: admin` can pass, to the application, for the
//! `X-User-Id` a proxy sets. [`CgiUpstream`] lets a test see exactly that.
//!
//! [`CgiUpstream::start`] writes a configuration and two CGI programs into a
//! fresh temporary directory (document root, pid file, logs, upload dir and
//! `php.ini` all live there), starts `lighttpd -D -f lighttpd.conf` in the
//! foreground (dropping the handle kills it) on a free `127.0.0.1` port, and
//! waits until the port accepts:
//!
//! - `/env.php`, run by `php-cgi` as a CGI interpreter, answers `200` with a
//!   JSON object: every `$_SERVER` entry whose key starts with `HTTP_`, plus
//!   `REQUEST_URI`, `PATH_INFO`, `SCRIPT_NAME`, `REQUEST_METHOD` and
//!   `QUERY_STRING` (read it with [`php_server_vars`]).
//! - `/env.sh`, run by `/bin/sh`, answers `200` `text/plain` with the
//!   environment lighttpd gave it, one `VAR=value` per line, read from
//!   `/proc/$$/environ` so that duplicate variables are all shown, in order
//!   (read it with [`cgi_env_vars`]).
//!
//! Every path is routed to one of them with `mod_rewrite` (so a proxy in
//! front can forward `/api/secret` and still get the dump); `REQUEST_URI` is
//! the original request target, `PATH_INFO` the original path (decoded and
//! normalised by lighttpd) and `QUERY_STRING` the original query. With
//! [`CgiScript::Php`] (what [`CgiUpstream::start`] uses) every path goes to
//! `env.php`, except `/env.sh`, `/env.sh/…` and `/sh/…`, which go to `env.sh`
//! (for `/sh/rest`, `PATH_INFO` is `/rest`). With [`CgiScript::Sh`] every
//! path goes to `env.sh`.
//!
//! lighttpd's header parsing is left as permissive as it goes:
//! `server.http-parseopts = ("header-strict" => "disable")`.
//!
//! # What was observed (lighttpd 1.4.69, PHP 8.2 `php-cgi`, Debian 12)
//!
//! Requests sent directly to lighttpd (no proxy in front):
//!
//! - `X.User.Id: admin`, `X_User_Id: admin`, `x~user~id: admin` and
//!   `X-User-Id: admin` each reach PHP as `HTTP_X_USER_ID=admin` (and `env.sh`
//!   shows `HTTP_X_USER_ID=admin`); so do other token characters
//!   (`X|U`, `X+U`, `X!U`, `X#U`, `X$U`, `X%U`, `X&U`, `X*U`, `X^U`, `` X`U ``,
//!   `X'U` all give `HTTP_X_U`). With `header-strict` disabled a name byte
//!   of 0x80 or more is accepted as well (`HTTP_X_U`; the default strict parsing
//!   answers `400`). Names with separators (space, tab, `@`, `(`, `{`, `/`,
//!   `"`, `=`) are answered `400 Bad Request` by lighttpd in both modes.
//! - Several names that map to the same variable (`X.User.Id: a1`,
//!   `X-User-Id: a3`, `X_User_Id: a2`, `x~user~id: a4`) are all passed:
//!   the CGI environment holds one `HTTP_X_USER_ID` per header, in request
//!   order (`env.sh` lists all four), and PHP's `$_SERVER` keeps the *last*
//!   one (`a4` here; with only `X-User-Id: a3` then `X.User.Id: a1`, PHP sees
//!   `a1`). The same name repeated (`X-User-Id: a3`, `X-User-Id: a5`) is
//!   joined by lighttpd into one `HTTP_X_USER_ID=a3, a5`.
//! - A `Proxy` header never reaches the environment (lighttpd drops it:
//!   "httpoxy"), nor does a header with an empty value.
//! - lighttpd sets `REDIRECT_STATUS=200` for CGI, and the generated `php.ini`
//!   (passed to PHP as `PHPRC`, which therefore shows in `env.sh`'s dump) also
//!   sets `cgi.force_redirect = 0`. lighttpd runs as whoever starts it:
//!   as root it starts without complaint and stays root, and so do the CGI
//!   programs. `server.username` is deliberately not set: with
//!   `server.username = "www-data"` lighttpd drops to that user and then
//!   exits at start, unable to open its error log in the owner-only
//!   temporary directory ("Permission denied").
//!
//! The binaries are `lighttpd` (on `PATH`, or `/usr/sbin/lighttpd`) and
//! `php-cgi` (on `PATH`, or `/usr/bin/php-cgi`): Debian's `lighttpd` and
//! `php-cgi`, installed by `scripts/install-deps.sh`.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::net::free_addr;

/// How long [`CgiUpstream::start`] waits for the port to accept.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The PHP program: the `HTTP_*` entries of `$_SERVER` and the request's
/// URI, path, script, method and query, as JSON. Invalid UTF-8 in a header
/// value is replaced by U+FFFD rather than failing the whole dump.
const ENV_PHP: &str = r#"<?php
$out = [];
foreach ($_SERVER as $k => $v) {
    if (strncmp($k, 'HTTP_', 5) === 0) {
        $out[$k] = $v;
    }
}
foreach (['REQUEST_URI', 'PATH_INFO', 'SCRIPT_NAME', 'REQUEST_METHOD', 'QUERY_STRING'] as $k) {
    $out[$k] = $_SERVER[$k] ?? null;
}
header('Content-Type: application/json');
echo json_encode($out, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_FORCE_OBJECT);
"#;

/// The shell program: the environment it was started with, one variable a
/// line. `/proc/$$/environ` is the shell's own environment as lighttpd passed
/// it, duplicates included (`env` would show the shell's de-duplicated copy).
const ENV_SH: &str = "#!/bin/sh\n\
printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
if [ -r /proc/$$/environ ]; then tr '\\000' '\\n' < /proc/$$/environ; else env; fi\n";

/// The `php.ini` PHP runs with (instead of the system's): no redirect check,
/// errors to the log rather than into the dump.
const PHP_INI: &str = "cgi.force_redirect = 0\n\
display_errors = Off\n\
log_errors = On\n\
expose_php = Off\n\
variables_order = \"EGPCS\"\n";

/// Which CGI program answers the paths that do not name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgiScript {
    /// `env.php` (JSON of PHP's `$_SERVER`); `/env.sh…` and `/sh/…` still
    /// reach `env.sh`.
    Php,
    /// `env.sh` (the raw CGI environment) for every path.
    Sh,
}

/// A running lighttpd with the two CGI programs; dropping it stops the
/// process.
pub struct CgiUpstream {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// Finds `name` on `PATH`, else in one of `fallbacks`.
fn find_bin(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        fallbacks
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    })
}

/// Where the `lighttpd` binary is, if installed.
pub fn lighttpd_bin() -> Option<PathBuf> {
    find_bin("lighttpd", &["/usr/sbin", "/usr/local/sbin"])
}

/// Where the `php-cgi` binary is, if installed.
pub fn php_cgi_bin() -> Option<PathBuf> {
    find_bin("php-cgi", &["/usr/bin", "/usr/local/bin"])
}

impl CgiUpstream {
    /// Starts lighttpd with every path routed to `env.php`, except `/env.sh…`
    /// and `/sh/…` (routed to `env.sh`).
    ///
    /// Fails with an explanation when lighttpd or php-cgi is not installed
    /// (`scripts/install-deps.sh` installs Debian's `lighttpd` and `php-cgi`).
    pub fn start() -> anyhow::Result<CgiUpstream> {
        Self::start_with(CgiScript::Php)
    }

    /// Starts lighttpd with the paths that do not name a CGI program routed
    /// to `default`.
    pub fn start_with(default: CgiScript) -> anyhow::Result<CgiUpstream> {
        let (Some(lighttpd), Some(php)) = (lighttpd_bin(), php_cgi_bin()) else {
            bail!(
                "lighttpd and php-cgi are needed (looked on PATH, in /usr/sbin and /usr/bin; \
                 found lighttpd: {:?}, php-cgi: {:?}): run scripts/install-deps.sh (or \
                 `apt-get install lighttpd php-cgi`)",
                lighttpd_bin(),
                php_cgi_bin()
            );
        };
        // The free port is picked before lighttpd binds it: if another
        // process took it in between, try again on another one.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(&lighttpd, &php, default) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    continue
                }
                other => return other,
            }
        }
    }

    fn start_once(lighttpd: &Path, php: &Path, default: CgiScript) -> anyhow::Result<CgiUpstream> {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-cgi-")
            .tempdir()
            .context("creating the lighttpd directory")?;
        let www = dir.path().join("www");
        let upload = dir.path().join("upload");
        fs::create_dir(&www).context("creating the document root")?;
        fs::create_dir(&upload).context("creating the upload directory")?;
        fs::write(www.join("env.php"), ENV_PHP).context("writing env.php")?;
        fs::write(www.join("env.sh"), ENV_SH).context("writing env.sh")?;
        fs::write(dir.path().join("php.ini"), PHP_INI).context("writing php.ini")?;
        let addr = free_addr();
        let conf_path = dir.path().join("lighttpd.conf");
        fs::write(&conf_path, config(dir.path(), addr, php, default))
            .context("writing lighttpd.conf")?;
        // Messages printed before the error log is open (a failed bind, a
        // config error) go to stderr.
        let stderr =
            fs::File::create(dir.path().join("stderr.log")).context("creating stderr.log")?;
        let child = Command::new(lighttpd)
            .arg("-D")
            .arg("-f")
            .arg(&conf_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", lighttpd.display()))?;
        let mut server = CgiUpstream { child, addr, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!(
                    "lighttpd exited at start ({status}); logs:\n{}",
                    server.error_log()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "lighttpd did not accept on {addr} within {START_TIMEOUT:?}; logs:\n{}",
                    server.error_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address lighttpd listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The path that reaches `env.sh` for `path` (which must start with `/`)
    /// when the default program is PHP: `/sh{path}`, whose `PATH_INFO` is
    /// `path`. With [`CgiScript::Sh`] every path reaches `env.sh` anyway.
    pub fn sh_path(path: &str) -> String {
        format!("/sh{path}")
    }

    /// The temporary directory (config, document root, logs, pid file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What lighttpd logged so far: its stderr, its error log (which also
    /// holds what the CGI programs and PHP wrote to stderr) and its access
    /// log, each under a heading.
    pub fn error_log(&self) -> String {
        let mut out = String::new();
        for name in ["stderr.log", "error.log", "access.log"] {
            let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            if !text.is_empty() {
                out.push_str(&format!("--- {name}\n{text}"));
            }
        }
        out
    }
}

fn config(dir: &Path, addr: SocketAddr, php: &Path, default: CgiScript) -> String {
    let d = dir.display();
    let php = php.display();
    let port = addr.port();
    // Rewritten URLs keep REQUEST_URI as the client sent it; the original
    // path becomes PATH_INFO of the program, the original query its query.
    let rewrite = match default {
        CgiScript::Php => {
            r#"    "^/env\.sh(?:[/?].*)?$" => "$0",
    "^/sh(/[^?]*)?(?:\?(.*))?$" => "/env.sh$1?$2",
    "^([^?]*)(?:\?(.*))?$" => "/env.php$1?$2","#
        }
        CgiScript::Sh => {
            r#"    "^/env\.sh(?:[/?].*)?$" => "$0",
    "^([^?]*)(?:\?(.*))?$" => "/env.sh$1?$2","#
        }
    };
    format!(
        r#"server.modules = ("mod_rewrite", "mod_setenv", "mod_cgi", "mod_accesslog")
server.bind = "127.0.0.1"
server.port = {port}
server.document-root = "{d}/www"
server.pid-file = "{d}/lighttpd.pid"
server.errorlog = "{d}/error.log"
server.upload-dirs = ("{d}/upload")
server.http-parseopts = ("header-strict" => "disable")
accesslog.filename = "{d}/access.log"
setenv.set-environment = ("PHPRC" => "{d}/php.ini")
url.rewrite-once = (
{rewrite}
)
cgi.assign = (".php" => "{php}", ".sh" => "/bin/sh")
"#
    )
}

/// Parses the body of an `env.php` answer into its JSON object.
pub fn php_server_vars(body: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => bail!("env.php answered JSON that is not an object: {other}"),
        Err(e) => bail!("env.php answered something that is not JSON ({e}): {body:?}"),
    }
}

/// Parses the body of an `env.sh` answer into `(name, value)` pairs, in
/// order, duplicates kept (lines without `=` are skipped).
pub fn cgi_env_vars(body: &str) -> Vec<(String, String)> {
    body.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Drop for CgiUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for CgiUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CgiUpstream")
            .field("addr", &self.addr)
            .finish()
    }
}
