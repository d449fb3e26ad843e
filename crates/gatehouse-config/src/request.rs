//! `[server]` settings that decide how a request is put in canonical form and
//! which client headers reach the upstream (docs/security.md explains each).

use crate::ConfigError;
use serde::Deserialize;

/// What to do with a percent-encoded `/` or `\` (`%2F`, `%5C`) in a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EncodedSlashes {
    /// Refuse the request with 400 (default): an upstream that decodes them
    /// would see a different path than the one that was routed.
    #[default]
    Reject,
    /// Keep them encoded, as opaque data inside one segment (never decoded,
    /// hex upper-cased). Only safe when every upstream behind Gatehouse also
    /// keeps them opaque.
    Keep,
}

/// What to do with path parameters (`;…` inside a path segment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PathParameters {
    /// Refuse a path with a raw `;` with 400 (default): Tomcat and Spring strip
    /// them before routing, other servers keep them as part of the segment.
    #[default]
    Reject,
    /// Remove every `;…` up to the end of its segment, for routing and in the
    /// path sent upstream (`/a;jsessionid=1/b` is routed and forwarded as `/a/b`).
    Strip,
}

/// What to do with a path segment ending in `.` or a space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrailingDots {
    /// Refuse with 400 (default): Windows path handling (IIS, ASP.NET on
    /// Windows) drops trailing dots and spaces, so `/api./x` is its `/api/x`.
    #[default]
    Reject,
    /// Route and forward such segments as they are.
    Allow,
}

/// A protocol a route may upgrade a connection to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Upgrade {
    /// RFC 6455 WebSocket (`Upgrade: websocket`, HTTP/1.1 `GET`).
    Websocket,
}

/// Client-sent headers that describe the client's address, scheme or the
/// original request, removed unless the peer is a trusted proxy; each is
/// matched in every spelling (names compared on their letters and digits
/// only). `X-Forwarded-For` and `X-Forwarded-Proto` are not in the list:
/// Gatehouse always sets them.
pub const CLIENT_ADDRESS_HEADERS: &[&str] = &[
    "x-real-ip",
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-protocol",
    "x-url-scheme",
    "front-end-https",
    "x-forwarded",
    "forwarded-for",
    "x-original-forwarded-for",
    "x-client-ip",
    "true-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-proxyuser-ip",
    "wl-proxy-client-ip",
    "proxy-client-ip",
    "x-scheme",
    "x-arr-ssl",
    "x-original-host",
    "x-host",
    "x-forwarded-server",
    "x-forwarded-by",
    // Envoy/Istio: the client certificate a front proxy verified.
    "x-forwarded-client-cert",
];

/// Path-override headers (Symfony ≤ 3.4 and Zend Framework route by
/// `X-Original-URL`/`X-Rewrite-URL`; others carry an original path that
/// applications and auth middlewares read as the request's), removed from
/// every request unless `server.path_override_headers` is on.
pub const PATH_OVERRIDE_HEADERS: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-envoy-original-path",
];

/// Method-override headers (read by Rails, Express, Symfony, ASP.NET and
/// others to turn a `POST` into another method), removed unless
/// `server.method_override_headers` is on: a route that limits methods
/// would otherwise be matched with one method and served with another.
pub const METHOD_OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Parses one `server.trusted_proxies` entry: a CIDR (`10.0.0.0/8`) or a
/// single address (`192.0.2.7`, taken as `/32` or `/128`).
pub fn parse_trusted_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let t = s.trim();
    if let Ok(net) = t.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    t.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| {
            format!("\"{s}\" is not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)")
        })
}

/// True for a valid HTTP header name (RFC 9110 token).
pub fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks `server.strip_headers` and `server.trusted_proxies`.
pub(crate) fn validate(
    strip_headers: &[String],
    trusted_proxies: &[String],
    errs: &mut Vec<ConfigError>,
) {
    for (i, h) in strip_headers.iter().enumerate() {
        if !is_header_name(h) {
            errs.push(ConfigError::new(
                format!("server.strip_headers[{i}]"),
                format!("\"{h}\" is not a valid header name"),
            ));
        }
    }
    for (i, p) in trusted_proxies.iter().enumerate() {
        if let Err(m) = parse_trusted_proxy(p) {
            errs.push(ConfigError::new(format!("server.trusted_proxies[{i}]"), m));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn trusted_proxies_parse() {
        assert_eq!(
            parse_trusted_proxy("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_trusted_proxy("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            parse_trusted_proxy("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(parse_trusted_proxy("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxy("example.com").is_err());
    }

    #[test]
    fn header_names() {
        assert!(is_header_name("X-User-Id"));
        assert!(is_header_name("x_user_id"));
        assert!(!is_header_name("X User"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("X:Y"));
    }
}
