//! What a route does at the edge besides its connectors: `[routes.cors]`
//! (answered before any connector runs), `rewrite_prefix`, and the
//! `[routes.request_headers]` / `[routes.response_headers]` rules.
//!
//! Header rules can never set, keep or remove a header whose meaning only
//! Gatehouse gives: framing and hop-by-hop fields, `Host`, `X-Request-Id`,
//! the client-address and scheme headers, and (checked when the snapshot is
//! built, since only then are they known) every name a connector injects.

use crate::{is_header_name, ConfigError, HumanDuration, CLIENT_ADDRESS_HEADERS, KNOWN_METHODS};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// `[routes.cors]`: the route's CORS policy.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the route: exact (`https://app.example.com`,
    /// with a port if not the scheme's default), one-label wildcards
    /// (`https://*.example.com` covers `https://a.example.com`, not
    /// `https://a.b.example.com` nor `https://example.com`), or `"*"` alone
    /// (any origin; refused with `allow_credentials`).
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for. Absent: the route's `methods`, else
    /// `GET`, `HEAD` and `POST`.
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    /// Request headers a preflight may ask for (case-insensitive), e.g.
    /// `authorization`, `content-type`. `*` is refused: spell them out
    /// (browsers never let `*` cover `Authorization`).
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers the page may read beyond the CORS-safelisted ones
    /// (e.g. `x-request-id`, `www-authenticate`).
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Let the page send cookies and HTTP authentication and read the answer
    /// (`Access-Control-Allow-Credentials: true`).
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight's answer
    /// (`Access-Control-Max-Age`, at most 24 h; browsers cap it lower).
    /// Absent: no header (browsers keep it 5 s).
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
}

/// `[routes.request_headers]` / `[routes.response_headers]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderRulesConfig {
    /// Headers set (replacing any of the same name) on every request sent
    /// upstream, or every response sent to the client.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Headers removed.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Longest `rewrite_prefix`, header value, and number of rules per table.
const MAX_REWRITE_PREFIX: usize = 1024;
const MAX_VALUE: usize = 8192;
const MAX_RULES: usize = 256;
/// `max_age`'s ceiling (Firefox's; Chromium caps at 2 h).
pub const MAX_CORS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Names a header rule never touches, on requests and responses: framing,
/// hop-by-hop, `Host` and Gatehouse's request id.
const FRAMING: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "host",
    "x-request-id",
];

/// Request names only Gatehouse writes: the client address and scheme.
const REQUEST_ONLY_GATEHOUSE: &[&str] = &["x-forwarded-for", "x-forwarded-proto"];

/// Its letters and digits, lower-cased: the name as CGI/PHP fold it.
fn folded(name: &str) -> String {
    name.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect()
}

fn in_list(name: &str, list: &[&str]) -> bool {
    let f = folded(name);
    list.iter().any(|n| folded(n) == f)
}

/// Why `name` cannot be in a header rule, if it cannot.
fn refused_name(name: &str, request: bool) -> Option<String> {
    if !is_header_name(name) || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Some(format!(
            "\"{name}\" is not a header name Gatehouse forwards (letters, digits and '-' only)"
        ));
    }
    if in_list(name, FRAMING) {
        return Some(format!(
            "\"{name}\" is framing, hop-by-hop or Gatehouse's own; a rule cannot change it"
        ));
    }
    if request && (in_list(name, REQUEST_ONLY_GATEHOUSE) || in_list(name, CLIENT_ADDRESS_HEADERS)) {
        return Some(format!(
            "\"{name}\" is a client-address or scheme header: only Gatehouse writes it (server.trusted_proxies)"
        ));
    }
    if !request && folded(name).starts_with("accesscontrol") {
        return Some(format!(
            "\"{name}\" is a CORS header: configure it in [routes.cors]"
        ));
    }
    None
}

/// Checks one header-rule table at `path` (`routes[i].request_headers`).
fn validate_rules(
    path: &str,
    rules: &HeaderRulesConfig,
    request: bool,
    errs: &mut Vec<ConfigError>,
) {
    if rules.set.len() + rules.remove.len() > MAX_RULES {
        errs.push(ConfigError::new(
            path,
            format!("at most {MAX_RULES} rules per table"),
        ));
    }
    // Folded name → where it first appears: `X-Env` and `x_env` are one
    // name to a CGI upstream.
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut check_name = |at: String, name: &str, errs: &mut Vec<ConfigError>| {
        if let Some(why) = refused_name(name, request) {
            errs.push(ConfigError::new(at, why));
        } else if let Some(first) = seen.insert(folded(name), at.clone()) {
            errs.push(ConfigError::new(
                at,
                format!("\"{name}\" is the same header as {first} (names compare case- and punctuation-insensitively)"),
            ));
        }
    };
    for (name, value) in &rules.set {
        let at = format!("{path}.set.\"{name}\"");
        check_name(at.clone(), name, errs);
        if value.len() > MAX_VALUE
            || value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
            || value.starts_with([' ', '\t'])
            || value.ends_with([' ', '\t'])
        {
            errs.push(ConfigError::new(
                at,
                format!("must be a header value: visible characters, no control characters or edge spaces, at most {MAX_VALUE} bytes"),
            ));
        }
    }
    for (j, name) in rules.remove.iter().enumerate() {
        check_name(format!("{path}.remove[{j}]"), name, errs);
    }
}

/// True for a serialized origin's host: lower-case DNS labels or an IPv4
/// address, or a bracketed IPv6 literal.
fn origin_host_ok(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Checks an `allow_origins` entry: `scheme://host[:port]`, lower case, with
/// at most a leading `*.` label.
pub fn check_origin_pattern(o: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "\"{o}\" is not an origin: write scheme://host[:port] in lower case with no path \
             (https://app.example.com, https://*.example.com, http://127.0.0.1:8080), or \"*\""
        )
    };
    let (scheme, rest) = o.split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    if let Some(p) = port {
        if p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.starts_with('0')
            || p.parse::<u32>().map_or(true, |n| n > 65535)
        {
            return Err(bad());
        }
    }
    let body = host.strip_prefix("*.").unwrap_or(host);
    if !origin_host_ok(body) {
        return Err(bad());
    }
    if host.starts_with("*.") && (body.starts_with('[') || !body.contains('.')) {
        return Err(format!(
            "\"{o}\": a wildcard covers one label under a domain of at least two labels (https://*.example.com)"
        ));
    }
    Ok(())
}

fn validate_cors(
    p: &str,
    c: &CorsConfig,
    route_methods: Option<&Vec<String>>,
    errs: &mut Vec<ConfigError>,
) {
    let p = format!("{p}.cors");
    if c.allow_origins.is_empty() {
        errs.push(ConfigError::new(
            format!("{p}.allow_origins"),
            "must list at least one origin (or \"*\")",
        ));
    }
    let any = c.allow_origins.iter().any(|o| o == "*");
    for (j, o) in c.allow_origins.iter().enumerate() {
        let at = format!("{p}.allow_origins[{j}]");
        if o == "*" {
            if c.allow_credentials {
                errs.push(ConfigError::new(
                    at,
                    "\"*\" cannot be used with allow_credentials = true: list the origins (browsers refuse a wildcard with credentials)",
                ));
            } else if c.allow_origins.len() > 1 {
                errs.push(ConfigError::new(at, "\"*\" must be the only origin"));
            }
        } else if let Err(m) = check_origin_pattern(o) {
            errs.push(ConfigError::new(at, m));
        } else if !any && c.allow_origins[..j].contains(o) {
            errs.push(ConfigError::new(at, format!("\"{o}\" is listed twice")));
        }
    }
    if let Some(ms) = &c.allow_methods {
        if ms.is_empty() {
            errs.push(ConfigError::new(
                format!("{p}.allow_methods"),
                "must not be empty (omit it for the route's methods)",
            ));
        }
        for (j, m) in ms.iter().enumerate() {
            let at = format!("{p}.allow_methods[{j}]");
            if !KNOWN_METHODS.contains(&m.as_str())
                || m == "OPTIONS"
                || m == "CONNECT"
                || m == "TRACE"
            {
                errs.push(ConfigError::new(
                    at,
                    format!("\"{m}\" is not a method a page can ask for (GET, HEAD, POST, PUT, DELETE, PATCH; upper case)"),
                ));
            } else if route_methods.is_some_and(|rm| !rm.contains(m)) {
                errs.push(ConfigError::new(
                    at,
                    format!("\"{m}\" is not one of the route's methods: the preflight would be allowed and the request refused"),
                ));
            }
        }
    }
    for (field, list) in [
        ("allow_headers", &c.allow_headers),
        ("expose_headers", &c.expose_headers),
    ] {
        for (j, h) in list.iter().enumerate() {
            let at = format!("{p}.{field}[{j}]");
            if h == "*" {
                errs.push(ConfigError::new(
                    at,
                    "\"*\" is not accepted: list the header names (a wildcard never covers Authorization in browsers)",
                ));
            } else if !is_header_name(h) {
                errs.push(ConfigError::new(
                    at,
                    format!("\"{h}\" is not a header name"),
                ));
            } else if list[..j].iter().any(|x| x.eq_ignore_ascii_case(h)) {
                errs.push(ConfigError::new(at, format!("\"{h}\" is listed twice")));
            }
        }
    }
    if let Some(age) = c.max_age {
        if age.get() > MAX_CORS_MAX_AGE {
            errs.push(ConfigError::new(
                format!("{p}.max_age"),
                "must be at most 24h (browsers cap it lower: Chromium at 2h)",
            ));
        }
    }
}

/// The edge settings of one route, checked at `p` (`routes[i]`).
pub(crate) fn validate(p: &str, r: &crate::RouteConfig, errs: &mut Vec<ConfigError>) {
    if let Some(c) = &r.cors {
        validate_cors(p, c, r.methods.as_ref(), errs);
    }
    if let Some(rw) = &r.rewrite_prefix {
        if let Err(m) = check_rewrite_prefix(rw) {
            errs.push(ConfigError::new(format!("{p}.rewrite_prefix"), m));
        }
    }
    if let Some(h) = &r.request_headers {
        validate_rules(&format!("{p}.request_headers"), h, true, errs);
    }
    if let Some(h) = &r.response_headers {
        validate_rules(&format!("{p}.response_headers"), h, false, errs);
    }
}

/// Checks a `rewrite_prefix`: `""` (strip the matched prefix) or a plain
/// absolute path of whole segments — no empty segment, none ending in `.`
/// (`.` and `..` included: a Windows upstream drops trailing dots),
/// no percent-encoding, query, fragment, backslash or control character —
/// so that a canonical path stays canonical once rewritten.
pub fn check_rewrite_prefix(rw: &str) -> Result<(), String> {
    if rw.is_empty() {
        return Ok(());
    }
    let body = rw.strip_suffix('/').unwrap_or(rw);
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&b);
    if rw.len() > MAX_REWRITE_PREFIX
        || !rw.starts_with('/')
        || body.split('/').skip(1).any(|seg| {
            seg.is_empty() || seg.ends_with('.') || seg.contains(":$") || !seg.bytes().all(plain)
        })
    {
        return Err(format!(
            "\"{rw}\" must be \"\" or an absolute path of plain segments (/internal/orders): \
             no empty segment or one ending in '.' ('..' included), no '%', ';', '?', '#', '\\\\' or spaces, at most {MAX_REWRITE_PREFIX} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
