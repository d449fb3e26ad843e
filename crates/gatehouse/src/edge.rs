//! A route's edge settings compiled for the hot path: its CORS policy,
//! path rewrite and header rules (`gatehouse_http::cors`, `::edge`), and
//! the check that no header rule names a header only connectors may set.

use gatehouse_config::{ConfigError, HeaderRulesConfig, RouteConfig};
use gatehouse_http::cors::CorsPolicy;
use gatehouse_http::edge::{HeaderEdit, PrefixRewrite};
use gatehouse_http::headers::{Dropped, HeaderRules};

/// The edge settings of one route.
#[derive(Debug, Clone, Default)]
pub struct RouteEdge {
    /// `[routes.cors]`.
    pub cors: Option<CorsPolicy>,
    /// `rewrite_prefix`.
    pub rewrite: Option<PrefixRewrite>,
    /// `[routes.request_headers]`.
    pub request: HeaderEdit,
    /// `[routes.response_headers]`.
    pub response: HeaderEdit,
}

impl RouteEdge {
    /// Compiles route `ri`'s settings. `headers` are the snapshot's header
    /// rules: a request rule naming a header they protect (one a connector
    /// injects, or `server.strip_headers`, or an override header) is refused,
    /// in any spelling — identity headers come only from connectors.
    pub fn compile(ri: usize, r: &RouteConfig, headers: &HeaderRules) -> Result<Self, ConfigError> {
        if let Some(rules) = &r.request_headers {
            check_protected(ri, rules, headers)?;
        }
        Ok(Self {
            cors: r
                .cors
                .as_ref()
                .map(|c| CorsPolicy::new(c, r.methods.as_deref())),
            rewrite: r
                .rewrite_prefix
                .as_deref()
                .map(|to| PrefixRewrite::new(&r.path_prefix, to, r.path_case_insensitive)),
            request: r
                .request_headers
                .as_ref()
                .map(HeaderEdit::new)
                .unwrap_or_default(),
            response: r
                .response_headers
                .as_ref()
                .map(HeaderEdit::new)
                .unwrap_or_default(),
        })
    }
}

fn check_protected(
    ri: usize,
    rules: &HeaderRulesConfig,
    headers: &HeaderRules,
) -> Result<(), ConfigError> {
    let named = rules.set.keys().map(|n| (format!("set.\"{n}\""), n)).chain(
        rules
            .remove
            .iter()
            .enumerate()
            .map(|(j, n)| (format!("remove[{j}]"), n)),
    );
    for (at, name) in named {
        if headers.drops(name, false) == Some(Dropped::Protected) {
            return Err(ConfigError::new(
                format!("routes[{ri}].request_headers.{at}"),
                format!(
                    "\"{name}\" is an identity header (a connector injects it, or server.strip_headers \
                     or an override rule protects it): only connectors set it, no rule may set or remove it"
                ),
            ));
        }
    }
    Ok(())
}

/// What `gatehouse check` prints after a route's chain: its CORS origins and
/// header rules, if any.
pub fn summary(r: &RouteConfig) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &r.cors {
        parts.push(format!("cors: {}", c.allow_origins.join(" ")));
    }
    let count =
        |h: &Option<HeaderRulesConfig>| h.as_ref().map_or(0, |h| h.set.len() + h.remove.len());
    if r.request_headers.is_some() {
        parts.push(format!(
            "{} request header rules",
            count(&r.request_headers)
        ));
    }
    if r.response_headers.is_some() {
        parts.push(format!(
            "{} response header rules",
            count(&r.response_headers)
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("  ({})", parts.join("; "))
    }
}
