//! `[[routes]]`: what a route matches and where it sends; the checks of
//! the route list against the upstreams and connectors ([`validate`]).

use crate::{
    edge, known, steps, ConfigError, ConnectorConfig, CorsConfig, HeaderRulesConfig, Step, Upgrade,
    UpstreamConfig,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// HTTP methods accepted in `routes[].methods` (exact, upper case, as RFC 9110 spells them).
pub const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

impl RouteConfig {
    /// Every connector name of the route, in chain order (groups flattened).
    pub fn connector_names(&self) -> impl Iterator<Item = &str> {
        self.connectors
            .iter()
            .flat_map(|s| s.members().iter().map(String::as_str))
    }
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name, used in logs and metric labels.
    pub name: String,
    /// Path prefix, matched on whole segments (`/orders` matches `/orders`
    /// and `/orders/7`, not `/orders-old`); the longest prefix wins.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Host to match: exact (`api.example.com`) or wildcard (`*.example.com`);
    /// case-insensitive, port ignored. Absent: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Methods to match (absent: all).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Name of the upstream to proxy to.
    pub upstream: String,
    /// Steps run in order; every step must allow. A step is a connector name
    /// or an any-of group `{ any = ["a", "b"] }` (the first member that
    /// allows wins). Empty: a public route.
    #[serde(default)]
    pub connectors: Vec<Step>,
    /// Match `path_prefix` ignoring ASCII case, for upstreams that route
    /// paths case-insensitively: IIS and ASP.NET Core, Express and Koa by
    /// default (`/API/secret` is their `/api/secret`). The path is forwarded
    /// unchanged.
    #[serde(default)]
    pub path_case_insensitive: bool,
    /// Protocol upgrades tunnelled on this route (`["websocket"]`); empty by
    /// default: an `Upgrade` header is removed and the request proxied as a
    /// plain one. An allowed upgrade runs the connectors first and opens
    /// the tunnel only on a `101` that completes the client's handshake.
    #[serde(default)]
    pub upgrades: Vec<Upgrade>,
    /// `[limits.NAME]` checked, in order, after the connectors allowed (an
    /// unauthenticated request is never counted).
    #[serde(default)]
    pub limits: Vec<String>,
    /// CORS policy: preflights are answered by Gatehouse before any
    /// connector runs; answers to allowed origins carry the CORS headers,
    /// refusals included. Absent: no CORS handling (preflights are requests
    /// like any other).
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    /// Replaces the matched `path_prefix` of the canonical path on whole
    /// segments before the request goes upstream (`""` strips it); the query
    /// is kept. Applied after routing and after the connectors allowed.
    #[serde(default)]
    pub rewrite_prefix: Option<String>,
    /// Headers set on or removed from the request sent upstream (never an
    /// identity, client-address, certificate, framing or `Host` header).
    #[serde(default)]
    pub request_headers: Option<HeaderRulesConfig>,
    /// Headers set on or removed from every answer of the route, Gatehouse's
    /// own refusals included.
    #[serde(default)]
    pub response_headers: Option<HeaderRulesConfig>,
}

/// Checks every route: names, prefixes, hosts, methods, references to
/// upstreams and connectors, and routes that could never be chosen.
pub(crate) fn validate(
    routes: &[RouteConfig],
    upstreams: &BTreeMap<String, UpstreamConfig>,
    connectors: &BTreeMap<String, ConnectorConfig>,
    errs: &mut Vec<ConfigError>,
) {
    let mut seen_names: HashMap<&str, usize> = HashMap::new();
    // (host pattern, path prefix, sorted methods) → first route with it.
    type RouteKey<'a> = (Option<String>, &'a str, Option<Vec<String>>);
    let mut seen_keys: HashMap<RouteKey<'_>, usize> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        if r.name.is_empty() {
            errs.push(ConfigError::new(format!("{p}.name"), "must not be empty"));
        } else if let Some(first) = seen_names.insert(&r.name, i) {
            errs.push(ConfigError::new(
                format!("{p}.name"),
                format!("duplicate route name \"{}\" (also routes[{first}])", r.name),
            ));
            seen_names.insert(&r.name, first);
        }
        if !r.path_prefix.starts_with('/') {
            errs.push(ConfigError::new(
                format!("{p}.path_prefix"),
                format!("must start with '/', got \"{}\"", r.path_prefix),
            ));
        } else if r.path_prefix.contains(['?', '#'])
            || r.path_prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            errs.push(ConfigError::new(
                format!("{p}.path_prefix"),
                "must be a plain path (no query, fragment, spaces or control characters)",
            ));
        }
        if let Some(h) = &r.host {
            if let Err(m) = check_host_pattern(h) {
                errs.push(ConfigError::new(format!("{p}.host"), m));
            }
        }
        if let Some(ms) = &r.methods {
            if ms.is_empty() {
                errs.push(ConfigError::new(
                    format!("{p}.methods"),
                    "must not be empty (omit it to match every method)",
                ));
            }
            for (j, m) in ms.iter().enumerate() {
                if !KNOWN_METHODS.contains(&m.as_str()) {
                    errs.push(ConfigError::new(
                        format!("{p}.methods[{j}]"),
                        format!(
                            "unknown method \"{m}\" (known: {}; methods are case-sensitive)",
                            KNOWN_METHODS.join(", ")
                        ),
                    ));
                }
            }
        }
        if !upstreams.contains_key(&r.upstream) {
            errs.push(ConfigError::new(
                format!("{p}.upstream"),
                format!(
                    "no upstream named \"{}\" (known: {})",
                    r.upstream,
                    known(upstreams.keys())
                ),
            ));
        }
        steps::validate(&p, &r.connectors, connectors, errs);
        edge::validate(&p, r, errs);
        let mut methods = r.methods.clone();
        if let Some(m) = methods.as_mut() {
            m.sort();
            m.dedup();
        }
        let key = (
            r.host.as_ref().map(|h| normalize_host_pattern(h)),
            r.path_prefix.as_str(),
            methods,
        );
        if let Some(first) = seen_keys.get(&key) {
            errs.push(ConfigError::new(
                    format!("{p}.path_prefix"),
                    format!("routes[{first}] already matches the same host, path prefix and methods; this route could never be chosen"),
                ));
        } else {
            seen_keys.insert(key, i);
        }
    }
}

/// Lower-cases a host pattern and drops a `:port` suffix.
pub fn normalize_host_pattern(h: &str) -> String {
    let h = h.trim().to_ascii_lowercase();
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host.to_string()
        }
        _ => h,
    }
}

fn check_host_pattern(h: &str) -> Result<(), String> {
    let n = normalize_host_pattern(h);
    let body = n.strip_prefix("*.").unwrap_or(&n);
    if body.is_empty()
        || body.contains('*')
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        || body.starts_with('.')
        || body.ends_with('.')
    {
        return Err(format!(
            "invalid host \"{h}\": use an exact name (api.example.com) or a wildcard (*.example.com)"
        ));
    }
    Ok(())
}

fn default_prefix() -> String {
    "/".to_string()
}
