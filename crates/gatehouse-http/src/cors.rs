//! A route's CORS policy (`[routes.cors]`), compiled: which origins may call
//! it, what a preflight may ask for, and the headers its answers carry.
//!
//! Gatehouse answers a preflight itself, before any connector runs (a
//! browser never sends the token on one), and adds the CORS headers to every
//! answer of the route to an allowed origin — refusals included, so the page
//! can read a 401 and its challenge. The upstream's own `Access-Control-*`
//! headers are replaced on such routes: two answers to one question break
//! browsers, and the policy is the gateway's.

use gatehouse_config::{CorsConfig, KNOWN_METHODS};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use std::collections::HashSet;

/// At most this many names in one `Access-Control-Request-Headers`.
const MAX_REQUESTED_HEADERS: usize = 64;

/// `scheme://*.suffix[:port]`, split.
#[derive(Debug, Clone)]
struct Wildcard {
    /// `https://`
    scheme: String,
    /// `.example.com`
    suffix: String,
    /// `:8443` or empty.
    port: String,
}

impl Wildcard {
    /// True when `origin` is the scheme, one DNS label, the suffix and the port.
    fn covers(&self, origin: &str) -> bool {
        let Some(rest) = origin.strip_prefix(self.scheme.as_str()) else {
            return false;
        };
        let Some(rest) = rest.strip_suffix(self.port.as_str()) else {
            return false;
        };
        let Some(label) = rest.strip_suffix(self.suffix.as_str()) else {
            return false;
        };
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }
}

/// Why a preflight got no allow headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightRefusal {
    /// The `Origin` is not allowed (or is not one origin).
    Origin,
    /// `Access-Control-Request-Method` is not allowed.
    Method,
    /// A name of `Access-Control-Request-Headers` is not allowed.
    Header,
}

impl PreflightRefusal {
    /// The error description Gatehouse answers with.
    pub fn description(self) -> &'static str {
        match self {
            Self::Origin => "CORS preflight refused: this origin may not call the route",
            Self::Method => "CORS preflight refused: the requested method is not allowed",
            Self::Header => "CORS preflight refused: a requested header is not allowed",
        }
    }
}

/// The compiled policy of one route.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    /// `"*"`: every origin (never with credentials).
    any: bool,
    exact: HashSet<String>,
    wildcards: Vec<Wildcard>,
    methods: Vec<Method>,
    /// Lower-cased.
    headers: HashSet<String>,
    credentials: bool,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

/// `Vary` on a preflight's answer.
const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

fn joined(items: impl Iterator<Item = String>) -> Option<HeaderValue> {
    let s = items.collect::<Vec<_>>().join(", ");
    (!s.is_empty())
        .then(|| HeaderValue::from_str(&s).ok())
        .flatten()
}

impl CorsPolicy {
    /// Compiles a validated `[routes.cors]`; `route_methods` is the route's
    /// `methods` (the default of `allow_methods`).
    pub fn new(c: &CorsConfig, route_methods: Option<&[String]>) -> Self {
        let mut exact = HashSet::new();
        let mut wildcards = Vec::new();
        for o in &c.allow_origins {
            if o == "*" {
                continue;
            }
            match o.split_once("://*") {
                Some((scheme, rest)) => {
                    let (suffix, port) = match rest.rfind(':') {
                        Some(i) => (&rest[..i], &rest[i..]),
                        None => (rest, ""),
                    };
                    wildcards.push(Wildcard {
                        scheme: format!("{scheme}://"),
                        suffix: suffix.to_string(),
                        port: port.to_string(),
                    });
                }
                None => {
                    exact.insert(o.clone());
                }
            }
        }
        let default = ["GET", "HEAD", "POST"].map(String::from);
        let names: Vec<String> = match (&c.allow_methods, route_methods) {
            (Some(m), _) => m.clone(),
            (None, Some(m)) => m
                .iter()
                .filter(|m| !matches!(m.as_str(), "OPTIONS" | "CONNECT" | "TRACE"))
                .cloned()
                .collect(),
            (None, None) => default.to_vec(),
        };
        let methods: Vec<Method> = names
            .iter()
            .filter(|m| KNOWN_METHODS.contains(&m.as_str()))
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        Self {
            any: c.allow_origins.iter().any(|o| o == "*"),
            exact,
            wildcards,
            allow_methods: joined(methods.iter().map(|m| m.to_string()))
                .unwrap_or(HeaderValue::from_static("GET, HEAD, POST")),
            methods,
            headers: c
                .allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            credentials: c.allow_credentials,
            allow_headers: joined(c.allow_headers.iter().map(|h| h.to_ascii_lowercase())),
            expose: joined(c.expose_headers.iter().map(|h| h.to_ascii_lowercase())),
            max_age: c.max_age.map(|d| HeaderValue::from(d.get().as_secs())),
        }
    }

    /// The method a preflight asks for, when the request is one: `OPTIONS`
    /// with an `Origin` and one `Access-Control-Request-Method` naming a
    /// method (routes are matched with it).
    pub fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<Method> {
        if method != Method::OPTIONS || !headers.contains_key(header::ORIGIN) {
            return None;
        }
        let mut asked = headers
            .get_all(header::ACCESS_CONTROL_REQUEST_METHOD)
            .iter();
        match (asked.next(), asked.next()) {
            (Some(m), None) => Method::from_bytes(m.as_bytes()).ok(),
            _ => None,
        }
    }

    /// The `Access-Control-Allow-Origin` value for the request's `Origin`,
    /// when it is allowed: the origin itself (or `*` for a route that allows
    /// any origin without credentials). Several `Origin` fields, or one that
    /// is not exactly a listed origin or covered by a wildcard, get `None`.
    pub fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let mut all = headers.get_all(header::ORIGIN).iter();
        let (Some(origin), None) = (all.next(), all.next()) else {
            return None;
        };
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin.to_str().ok()?;
        (self.exact.contains(text) || self.wildcards.iter().any(|w| w.covers(text)))
            .then(|| origin.clone())
    }

    /// The answer to a preflight: the headers of a `204`, or why it is
    /// refused.
    pub fn preflight(
        &self,
        headers: &HeaderMap,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, PreflightRefusal> {
        let origin = self
            .allowed_origin(headers)
            .ok_or(PreflightRefusal::Origin)?;
        Self::preflight_method(&Method::OPTIONS, headers)
            .filter(|m| self.methods.contains(m))
            .ok_or(PreflightRefusal::Method)?;
        let mut count = 0;
        for value in headers.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            let text = value.to_str().map_err(|_| PreflightRefusal::Header)?;
            for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                count += 1;
                if count > MAX_REQUESTED_HEADERS
                    || !self.headers.contains(&name.to_ascii_lowercase())
                {
                    return Err(PreflightRefusal::Header);
                }
            }
        }
        let mut out = Vec::with_capacity(6);
        out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin));
        if self.credentials {
            out.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        out.push((
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        ));
        if let Some(h) = &self.allow_headers {
            out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
        }
        if let Some(a) = &self.max_age {
            out.push((header::ACCESS_CONTROL_MAX_AGE, a.clone()));
        }
        out.push((header::VARY, HeaderValue::from_static(PREFLIGHT_VARY)));
        Ok(out)
    }

    /// The headers every other answer of the route carries for an allowed
    /// origin (`origin` from [`Self::allowed_origin`]); with `None`, only
    /// `Vary: Origin` (the answer depends on it).
    pub fn answer_headers(&self, origin: Option<&HeaderValue>) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(4);
        if let Some(o) = origin {
            out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone()));
            if self.credentials {
                out.push((
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                ));
            }
            if let Some(e) = &self.expose {
                out.push((header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone()));
            }
        }
        if !self.any {
            out.push((header::VARY, HeaderValue::from_static("Origin")));
        }
        out
    }

    /// The `Vary` of a refused preflight.
    pub fn preflight_vary() -> (HeaderName, HeaderValue) {
        (header::VARY, HeaderValue::from_static(PREFLIGHT_VARY))
    }
}

/// True for a CORS response header (`Access-Control-*`): on a route with a
/// policy, the upstream's are dropped so only Gatehouse's reach the browser.
pub fn is_cors_response_header(name: &HeaderName) -> bool {
    name.as_str().starts_with("access-control-")
}

#[cfg(test)]
mod tests;
