//! A real browser for end-to-end tests: headless Debian `chromium` driven
//! by `chromedriver` over W3C WebDriver, and [`PageSite`], a one-page HTTP
//! server that gives the browser an origin to run scripts from.
//!
//! [`Browser::start`] starts `chromedriver` on a free loopback port (it only
//! accepts local connections by default) in its own process group, waits
//! until its `/status` reports `ready` and opens a session running
//! `chromium --headless=new --no-sandbox` with a fresh profile in a
//! temporary directory. Dropping the handle deletes the session and kills the
//! process group (chromedriver and the browser it started).
//!
//! WebDriver is spoken by a small blocking HTTP/1.1 client (usable in and
//! out of an async runtime); every call is bounded by a timeout. Without the
//! binaries [`Browser::start`] fails, it never skips: `make deps` installs
//! Debian's `chromium` and `chromium-driver`.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hyper::body::Incoming;
use hyper::Request;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::net::free_addr;
use crate::server::{self, Handler, HandlerFuture, ServerHandle};
use crate::wait::eventually_blocking;

/// How long [`Browser::start`] waits for chromedriver's `/status` to report ready.
const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound of the `POST /session` call (chromium starts within it).
const NEW_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// Script timeout set on the session: the longest a [`Browser::run_async`]
/// script may take before WebDriver reports `script timeout`.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Page-load timeout set on the session, for [`Browser::goto`].
pub const PAGE_LOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound of the quick WebDriver calls (status, session delete).
const SHORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Margin added to the session timeouts for the HTTP call that waits on them.
const CALL_MARGIN: Duration = Duration::from_secs(10);

/// Bytes of chromedriver's logs included in errors.
const LOG_TAIL_BYTES: usize = 4096;

/// What to do when a binary is missing.
const INSTALL_HINT: &str = "install chromium and chromium-driver (make deps): \
                            scripts/install-deps.sh runs `apt-get install chromium chromium-driver`";

/// A headless chromium driven through chromedriver; dropping it deletes the
/// session and kills chromedriver and the browser.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    /// The WebDriver session id (empty until the session exists).
    session: String,
    /// Browser profile (`--user-data-dir`) and chromedriver's logs.
    dir: tempfile::TempDir,
}

/// Whether a page's `fetch()` sends credentials (cookies, HTTP auth) to the
/// target: its `credentials` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// `credentials: "include"`: the response must then carry
    /// `Access-Control-Allow-Credentials: true` and an exact
    /// `Access-Control-Allow-Origin` for the page to read it.
    Include,
    /// `credentials: "omit"`.
    Omit,
}

impl Credentials {
    fn as_js(self) -> &'static str {
        match self {
            Credentials::Include => "include",
            Credentials::Omit => "omit",
        }
    }
}

/// What a page's `fetch()` saw (see [`Browser::fetch_from_page`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PageFetch {
    /// `false` when `fetch()` rejected (a network error, which is how the
    /// browser reports a CORS failure: the page learns nothing more).
    pub ok_network: bool,
    /// The response status (0 when `fetch()` rejected).
    pub status: u16,
    /// The response body as text (empty when `fetch()` rejected).
    pub body: String,
    /// `WWW-Authenticate` as the page could read it: `None` when absent or
    /// not exposed to the page (`Access-Control-Expose-Headers`).
    pub www_authenticate: Option<String>,
    /// The rejection message (`TypeError: Failed to fetch`) when `fetch()`
    /// rejected.
    pub error: Option<String>,
}

/// Runs inside the page: arguments are the target URL, the method, the
/// headers object and the credentials mode; the last one is WebDriver's
/// callback.
const FETCH_SCRIPT: &str = r#"
const [url, method, headers, credentials, done] = arguments;
fetch(url, { method, headers, mode: "cors", credentials, cache: "no-store" })
  .then(async (r) => {
    let body = "";
    try { body = await r.text(); } catch (e) { body = "<body unreadable: " + e + ">"; }
    done({ ok_network: true, status: r.status, body,
           www_authenticate: r.headers.get("www-authenticate"), error: null });
  })
  .catch((e) => done({ ok_network: false, status: 0, body: "",
                       www_authenticate: null, error: String(e) }));
"#;

/// `name` on `PATH`, else the first of `fallbacks` that exists.
fn find_binary(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| fallbacks.iter().map(PathBuf::from).find(|p| p.is_file()))
}

/// Where `chromedriver` is, if installed.
pub fn chromedriver_bin() -> Option<PathBuf> {
    find_binary(
        "chromedriver",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    )
}

/// Where `chromium` is, if installed (Debian's `/usr/bin/chromium` launcher
/// first, then the browser binary itself in `/usr/lib/chromium`).
pub fn chromium_bin() -> Option<PathBuf> {
    Some(PathBuf::from("/usr/bin/chromium"))
        .filter(|p| p.is_file())
        .or_else(|| find_binary("chromium", &["/usr/lib/chromium/chromium"]))
}

impl Browser {
    /// Starts chromedriver and a headless chromium session.
    ///
    /// Fails (with the install hint) when `chromium` or `chromedriver` is
    /// missing, and with chromedriver's log when it does not come up.
    pub fn start() -> anyhow::Result<Browser> {
        let (Some(driver), Some(chromium)) = (chromedriver_bin(), chromium_bin()) else {
            bail!(
                "chromedriver or chromium not found on PATH or in /usr/bin, \
                 /usr/lib/chromium: {INSTALL_HINT}"
            );
        };
        // The free port is picked before chromedriver binds it: if another
        // process took it in between, try again on another one.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(&driver, &chromium) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("port not available") => {
                    continue
                }
                other => return other,
            }
        }
    }

    fn start_once(driver_bin: &Path, chromium: &Path) -> anyhow::Result<Browser> {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-browser-")
            .tempdir()
            .context("creating the browser's temporary directory")?;
        let addr = free_addr();
        let output = fs::File::create(dir.path().join("chromedriver.out"))
            .context("creating chromedriver's output file")?;
        let driver = Command::new(driver_bin)
            .arg(format!("--port={}", addr.port()))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(output.try_clone().context("duplicating a file handle")?)
            .stderr(output)
            // Its own process group: Drop kills chromedriver and chromium together.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", driver_bin.display()))?;
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            dir,
        };

        let mut exited = None;
        let ready = eventually_blocking(DRIVER_READY_TIMEOUT, || {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                exited = Some(status);
                return true;
            }
            matches!(
                http_json(addr, "GET", "/status", None, SHORT_TIMEOUT),
                Ok((200, v)) if v["value"]["ready"] == json!(true)
            )
        });
        if let Some(status) = exited {
            bail!(
                "chromedriver exited at start ({status}):\n{}",
                browser.logs()
            );
        }
        if !ready {
            bail!(
                "chromedriver on {addr} not ready within {DRIVER_READY_TIMEOUT:?}:\n{}",
                browser.logs()
            );
        }

        let profile = browser.dir.path().join("profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            // Console messages (CORS failures are explained there), for
            // `Browser::console`.
            "goog:loggingPrefs": { "browser": "ALL" },
            "timeouts": {
                "script": SCRIPT_TIMEOUT.as_millis() as u64,
                "pageLoad": PAGE_LOAD_TIMEOUT.as_millis() as u64,
                "implicit": 0,
            },
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless=new",
                    // We run as root in containers: the sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-extensions",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let value = browser
            .call("POST", "/session", Some(&capabilities), NEW_SESSION_TIMEOUT)
            .with_context(|| format!("creating a chromium session:\n{}", browser.logs()))?;
        browser.session = value["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no sessionId in the new-session answer: {value}"))?
            .to_owned();
        Ok(browser)
    }

    /// chromedriver's output and the tail of its log (for error messages).
    pub fn logs(&self) -> String {
        let out = tail_file(&self.dir.path().join("chromedriver.out"));
        let log = tail_file(&self.dir.path().join("chromedriver.log"));
        format!("--- chromedriver output ---\n{out}\n--- chromedriver.log (tail) ---\n{log}")
    }

    /// Navigates to `url` and waits until the page has loaded (WebDriver's
    /// `normal` page-load strategy), within [`PAGE_LOAD_TIMEOUT`].
    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.session_call(
            "POST",
            "/url",
            Some(&json!({ "url": url })),
            PAGE_LOAD_TIMEOUT + CALL_MARGIN,
        )
        .with_context(|| format!("navigating to {url}"))?;
        Ok(())
    }

    /// Runs `script` in the current page as an asynchronous WebDriver script
    /// (`execute/async`): `arguments[0..n]` are `args`, and the script ends by
    /// calling the last argument with its result, which is returned. Fails
    /// with WebDriver's `script timeout` after [`SCRIPT_TIMEOUT`].
    pub fn run_async(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.session_call(
            "POST",
            "/execute/async",
            Some(&json!({ "script": script, "args": args })),
            SCRIPT_TIMEOUT + CALL_MARGIN,
        )
    }

    /// Navigates to `page_url`, then runs `fetch(target_url, {method,
    /// headers, mode: "cors", credentials})` inside that page and returns
    /// what the page could see of the outcome.
    pub fn fetch_from_page(
        &self,
        page_url: &str,
        target_url: &str,
        headers: &[(&str, &str)],
        method: &str,
        credentials: Credentials,
    ) -> anyhow::Result<PageFetch> {
        self.goto(page_url)?;
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), json!(v)))
            .collect();
        let args = vec![
            json!(target_url),
            json!(method),
            json!(headers),
            json!(credentials.as_js()),
        ];
        let value = self
            .run_async(FETCH_SCRIPT, args)
            .with_context(|| format!("fetch({target_url}) from {page_url}"))?;
        serde_json::from_value(value.clone())
            .with_context(|| format!("unexpected fetch script result: {value}"))
    }

    /// The browser console messages logged since the last call (chromedriver's
    /// `se/log` extension), e.g. the reason a CORS check failed: `LEVEL
    /// message` each.
    pub fn console(&self) -> anyhow::Result<Vec<String>> {
        let v = self.session_call(
            "POST",
            "/se/log",
            Some(&json!({ "type": "browser" })),
            SHORT_TIMEOUT,
        )?;
        let entries = v.as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(entries
            .iter()
            .map(|e| {
                let level = e["level"].as_str().unwrap_or("?");
                format!("{level} {}", e["message"].as_str().unwrap_or_default())
            })
            .collect())
    }

    /// A WebDriver command on the session (`path` is relative to
    /// `/session/{id}`).
    fn session_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body, timeout)
    }

    /// A WebDriver command: its `value`, or (on a 4xx/5xx answer) an error
    /// with WebDriver's error code and message.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let (status, mut v) = http_json(self.addr, method, path, body, timeout)
            .with_context(|| format!("WebDriver {method} {path}"))?;
        let value = v["value"].take();
        if status >= 400 {
            bail!(
                "WebDriver {method} {path} answered {status}: {}: {}",
                value["error"].as_str().unwrap_or("unknown error"),
                value["message"].as_str().unwrap_or_default()
            );
        }
        Ok(value)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = http_json(self.addr, "DELETE", &path, None, SHORT_TIMEOUT);
        }
        // chromedriver runs in its own process group (pgid = its pid): kill
        // the group, which holds the browser processes it started.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if std::env::var_os("GATEHOUSE_KEEP_LOGS").is_some() {
            eprintln!("===== browser logs =====\n{}\n=====", self.logs());
        }
    }
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver", &self.addr)
            .field("session", &self.session)
            .finish()
    }
}

/// Last [`LOG_TAIL_BYTES`] of a file, lossily decoded (empty if unreadable).
fn tail_file(path: &Path) -> String {
    let data = fs::read(path).unwrap_or_default();
    let start = data.len().saturating_sub(LOG_TAIL_BYTES);
    String::from_utf8_lossy(&data[start..]).into_owned()
}

/// One blocking HTTP/1.1 exchange with a JSON body (`Connection: close`),
/// bounded by `timeout` as a whole: the status and the JSON answer.
/// chromedriver frames its answers with `Content-Length`.
fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> anyhow::Result<(u16, Value)> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout.min(SHORT_TIMEOUT))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_write_timeout(Some(SHORT_TIMEOUT))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;

    let (mut buf, mut chunk) = (Vec::new(), [0u8; 16 * 1024]);
    let (status, raw) = loop {
        if let Some(done) = complete_response(&buf, false)? {
            break done;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("no complete answer from {addr} within {timeout:?}");
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream
            .read(&mut chunk)
            .with_context(|| format!("reading from {addr} (bounded by {timeout:?})"))?;
        if n == 0 {
            break complete_response(&buf, true)?
                .ok_or_else(|| anyhow!("{addr} closed the connection mid-answer"))?;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok((status, Value::Null));
    }
    let value = serde_json::from_slice(&raw).with_context(|| {
        format!(
            "non-JSON answer ({status}): {}",
            String::from_utf8_lossy(&raw)
        )
    })?;
    Ok((status, value))
}

/// The status and body once `buf` holds a complete response (`eof`: the
/// peer closed, so a body without a length ends here).
fn complete_response(buf: &[u8], eof: bool) -> anyhow::Result<Option<(u16, Vec<u8>)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("malformed status line {status_line:?}"))?;
    let mut length = None;
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        match name.trim() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "transfer-encoding" => bail!("unsupported transfer-encoding:{value}"),
            _ => {}
        }
    }
    let body = &buf[end + 4..];
    match length {
        Some(len) if body.len() >= len => Ok(Some((status, body[..len].to_vec()))),
        Some(len) if eof => bail!("truncated answer: {} of {len} bytes", body.len()),
        None if eof => Ok(Some((status, body.to_vec()))),
        _ => Ok(None),
    }
}

/// A one-page site on `127.0.0.1:PORT`: `GET /` answers the given HTML,
/// everything else (`/favicon.ico` …) `404`. Its origin is what a page loaded
/// from it sends as `Origin`. Dropping it stops the server.
pub struct PageSite {
    server: ServerHandle,
}

struct PageState {
    html: String,
}

impl PageSite {
    /// Starts the site on a random loopback port.
    ///
    /// Panics if the server cannot be started (it binds port 0, so this
    /// should not happen).
    pub fn start(html: &str) -> PageSite {
        let state = Arc::new(PageState {
            html: html.to_owned(),
        });
        let server = server::spawn_server("page", server::loopback_any(), state)
            .expect("starting page site");
        PageSite { server }
    }

    /// The address the site listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The site's origin: `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The page's URL: `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("{}/", self.origin())
    }
}

impl std::fmt::Debug for PageSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageSite")
            .field("origin", &self.origin())
            .finish()
    }
}

impl Handler for PageState {
    fn handle(self: Arc<Self>, req: Request<Incoming>) -> HandlerFuture {
        Box::pin(async move {
            let (status, content_type, body) = if req.uri().path() == "/" {
                (200, "text/html; charset=utf-8", self.html.clone())
            } else {
                (404, "text/plain; charset=utf-8", "not found\n".to_owned())
            };
            let headers = [
                ("content-type".to_owned(), content_type.to_owned()),
                ("cache-control".to_owned(), "no-store".to_owned()),
            ];
            Ok(server::build_response(status, &headers, body.into_bytes()))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn response_framing() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let done = Some((200, b"{}".to_vec()));
        assert_eq!(complete_response(raw, false).unwrap(), done);
        assert_eq!(complete_response(&raw[..39], false).unwrap(), None);
        assert!(complete_response(&raw[..39], true).is_err());
        let until_close = b"HTTP/1.1 200 OK\r\n\r\n{}";
        assert_eq!(complete_response(until_close, false).unwrap(), None);
        assert_eq!(complete_response(until_close, true).unwrap(), done);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(complete_response(chunked, false).is_err());
    }
}
