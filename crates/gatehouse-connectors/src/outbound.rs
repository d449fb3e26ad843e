//! What connectors share for talking to identity providers: URL checks,
//! pooled HTTP clients, size-limited bodies, and metric families created once
//! per process.

use gatehouse_config::ConfigError;
use std::sync::Mutex;
use std::time::Duration;

/// Parses an IdP URL found at `path.key`: `https`, or `http` (with a warning
/// unless the host is loopback).
pub fn parse_url(path: &str, key: &str, text: &str) -> Result<reqwest::Url, ConfigError> {
    let err = |m: String| ConfigError::new(format!("{path}.{key}"), m);
    let url = reqwest::Url::parse(text).map_err(|e| err(format!("invalid URL \"{text}\": {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = url.host_str().is_some_and(|h| {
                h == "localhost"
                    || h.trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
            if !loopback {
                tracing::warn!("{path}.{key} uses plain http to a non-loopback host; traffic can be read and changed in transit");
            }
        }
        other => return Err(err(format!("scheme \"{other}\" is not http or https"))),
    }
    Ok(url)
}

/// Idle connections an outbound client keeps per host.
pub const MAX_IDLE_PER_HOST: usize = 16;

/// A pooled HTTP client (rustls) with one timeout for connect and the whole
/// exchange and an optional outbound proxy (found at `path.http_proxy`).
/// It never follows a redirect: a 3xx is the answer, which callers treat as
/// a failure (a redirect could lead to another host or from https to http).
pub fn client(
    path: &str,
    timeout: Duration,
    proxy: Option<&str>,
) -> Result<reqwest::Client, ConfigError> {
    let policy = reqwest::redirect::Policy::none();
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(policy)
        .pool_idle_timeout(Duration::from_secs(90))
        // Idle connections kept per host: calls beyond it (a burst) close
        // theirs when done instead of pooling them for 90 s.
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")));
    if let Some(p) = proxy {
        let proxy = reqwest::Proxy::all(p).map_err(|e| {
            ConfigError::new(format!("{path}.http_proxy"), format!("invalid proxy: {e}"))
        })?;
        b = b.proxy(proxy);
    }
    b.build()
        .map_err(|e| ConfigError::new(path, format!("HTTP client: {e}")))
}

/// The error for a 3xx answer: redirects are never followed (another host,
/// or https → http, must not be reachable through the configured URL).
pub fn redirect_refused(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> String {
    let location: String = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("nowhere")
        .chars()
        .take(200)
        .collect();
    format!(
        "answered {} (redirect to {location}); redirects are not followed: configure the final URL",
        status.as_u16()
    )
}

/// Why a response body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More than the limit (announced or sent).
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed while reading.
    #[error("reading failed: {0}")]
    Read(#[from] reqwest::Error),
}

impl From<BodyError> for String {
    fn from(e: BodyError) -> String {
        e.to_string()
    }
}

/// Reads a response body, refusing more than `max` bytes (whatever
/// `Content-Length` claims).
pub async fn read_limited(resp: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Metric families a factory registers once, on its first build, in the
/// registry that build is given.
pub struct LazyFamilies<F>(Mutex<Option<F>>);

impl<F> Default for LazyFamilies<F> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<F: Clone> LazyFamilies<F> {
    /// The families, created with `make` the first time.
    pub fn get(
        &self,
        path: &str,
        make: impl FnOnce() -> prometheus::Result<F>,
    ) -> Result<F, ConfigError> {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = guard.as_ref() {
            return Ok(f.clone());
        }
        let f = make().map_err(|e| ConfigError::new(path, format!("metrics: {e}")))?;
        *guard = Some(f.clone());
        Ok(f)
    }
}
/// `application/x-www-form-urlencoded` value encoding (unreserved kept):
/// form bodies to identity providers, and client credentials in HTTP Basic
/// (RFC 6749 §2.3.1).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
