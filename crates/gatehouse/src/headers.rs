//! Which client headers reach the upstream: identity headers only Gatehouse
//! sets, client-address headers the upstream can trust.
//!
//! - Every header name any connector of the snapshot can inject, and every
//!   name in `server.strip_headers`, is removed from every request on every
//!   route (public routes included), names compared case-insensitively with
//!   `_` and `-` as equal.
//! - Names containing `_` are dropped unless `server.underscores_in_headers`
//!   (CGI, WSGI and PHP read `X_User_Id` as `X-User-Id`).
//! - `X-HTTP-Method-Override` and its variants are removed unless
//!   `server.method_override_headers`.
//! - `X-Forwarded-For` is the client address; `X-Real-IP`, `Forwarded`,
//!   `X-Forwarded-Host` and `X-Forwarded-Port` are removed; unless the peer is
//!   in `server.trusted_proxies`, whose chain is kept and appended to.

use gatehouse_config::{
    parse_trusted_proxy, ServerConfig, CLIENT_ADDRESS_HEADERS, METHOD_OVERRIDE_HEADERS,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The compiled header rules of one snapshot.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    /// Lower-case names with `_` written as `-`.
    strip: Vec<String>,
    underscores: bool,
    trusted: Vec<ipnet::IpNet>,
}

/// True when `name` equals `normalised` (lower case, `-` for `_`) once its
/// own `_` are read as `-`. Header names from `http` are lower case.
fn same_name(name: &str, normalised: &str) -> bool {
    name.len() == normalised.len()
        && name
            .bytes()
            .zip(normalised.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// `ip` as a header value: formatted on the stack, then one allocation.
fn address_value(ip: IpAddr) -> HeaderValue {
    use std::io::Write;
    // The longest text form of an address (IPv4-mapped IPv6) is 45 bytes.
    let mut buf = [0u8; 48];
    let mut rest = &mut buf[..];
    let written = write!(rest, "{ip}").is_ok();
    let len = 48 - rest.len();
    written
        .then(|| HeaderValue::from_bytes(&buf[..len]).ok())
        .flatten()
        .unwrap_or(HeaderValue::from_static("unknown"))
}

fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

impl HeaderRules {
    /// Compiles the rules from `[server]` and the names connectors inject.
    /// `trusted_proxies` entries were validated with the config.
    pub fn new<'a>(
        server: &ServerConfig,
        injected: impl IntoIterator<Item = &'a HeaderName>,
    ) -> Self {
        let mut strip: Vec<String> = Vec::new();
        let names = injected
            .into_iter()
            .map(|h| normalise(h.as_str()))
            .chain(server.strip_headers.iter().map(|h| normalise(h)))
            .chain(
                METHOD_OVERRIDE_HEADERS
                    .iter()
                    .filter(|_| !server.method_override_headers)
                    .map(|h| normalise(h)),
            );
        for n in names {
            if !strip.contains(&n) {
                strip.push(n);
            }
        }
        Self {
            strip,
            underscores: server.underscores_in_headers,
            trusted: server
                .trusted_proxies
                .iter()
                .filter_map(|p| parse_trusted_proxy(p).ok())
                .collect(),
        }
    }

    /// True when requests from `peer` keep their forwarding headers.
    pub fn is_trusted(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted.iter().any(|n| n.contains(&ip)))
    }

    /// True when a client header of this name never reaches the upstream.
    pub fn strips(&self, name: &str, trusted_peer: bool) -> bool {
        (!self.underscores && name.contains('_'))
            || self.strip.iter().any(|s| same_name(name, s))
            || (!trusted_peer
                && CLIENT_ADDRESS_HEADERS
                    .iter()
                    .chain(&[X_FORWARDED_FOR, X_FORWARDED_PROTO])
                    .any(|s| same_name(name, s)))
    }

    /// The names in `headers` to remove (no allocation when there are none).
    pub fn to_remove(&self, headers: &HeaderMap, trusted_peer: bool) -> Vec<HeaderName> {
        let mut out = Vec::new();
        for name in headers.keys() {
            if self.strips(name.as_str(), trusted_peer) {
                out.push(name.clone());
            }
        }
        out
    }

    /// The `X-Forwarded-For` to send: the client address, appended to the
    /// received chain when the peer is trusted.
    pub fn forwarded_for(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        trusted_peer: bool,
    ) -> HeaderValue {
        if trusted_peer {
            let chain: Vec<&str> = headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            if let Some(v) = (!chain.is_empty())
                .then(|| HeaderValue::try_from(format!("{}, {peer}", chain.join(", "))).ok())
                .flatten()
            {
                return v;
            }
        }
        address_value(peer)
    }

    /// The `X-Forwarded-Proto` a trusted peer sent, kept as it is.
    pub fn trusted_proto<'h>(
        &self,
        headers: &'h HeaderMap,
        trusted_peer: bool,
    ) -> Option<&'h HeaderValue> {
        trusted_peer
            .then(|| headers.get(X_FORWARDED_PROTO))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn server(extra: &str) -> ServerConfig {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\n{extra}\n[upstreams.u]\npeers = [\"127.0.0.1:2\"]\n"
        );
        gatehouse_config::Config::from_toml_str(&text)
            .unwrap()
            .server
    }

    #[test]
    fn injected_and_configured_names_are_stripped_in_every_spelling() {
        let injected = [HeaderName::from_static("x-user-id")];
        let r = HeaderRules::new(&server("strip_headers = [\"X_Tenant\"]"), &injected);
        for n in [
            "x-user-id",
            "X-User-Id",
            "x_user_id",
            "X_USER-ID",
            "x-tenant",
            "x_tenant",
        ] {
            assert!(r.strips(n, false), "{n}");
            assert!(r.strips(n, true), "{n}");
        }
        for n in ["x-user-ids", "x-user", "accept", "x-userid"] {
            assert!(!r.strips(n, false), "{n}");
        }
    }

    #[test]
    fn method_overrides_removed_unless_allowed() {
        let r = HeaderRules::new(&server(""), []);
        assert!(r.strips("x-http-method-override", false));
        assert!(r.strips("x-method-override", true));
        let r = HeaderRules::new(&server("method_override_headers = true"), []);
        assert!(!r.strips("x-http-method-override", false));
    }

    #[test]
    fn underscores_dropped_unless_allowed() {
        let r = HeaderRules::new(&server(""), []);
        assert!(r.strips("x_custom", false));
        assert!(!r.strips("x-custom", false));
        let r = HeaderRules::new(&server("underscores_in_headers = true"), []);
        assert!(!r.strips("x_custom", false));
        // ... but an underscore spelling of a protected name still goes.
        assert!(r.strips("x_real_ip", false));
    }

    #[test]
    fn client_address_headers_depend_on_the_peer() {
        let r = HeaderRules::new(&server("trusted_proxies = [\"10.0.0.0/8\"]"), []);
        let lb: IpAddr = "10.1.2.3".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(r.is_trusted(Some(lb)));
        assert!(!r.is_trusted(Some(other)));
        assert!(!r.is_trusted(None));
        for n in [
            "x-real-ip",
            "forwarded",
            "x-forwarded-host",
            "x-forwarded-port",
            "x-forwarded-for",
        ] {
            assert!(r.strips(n, false), "{n}");
            assert!(!r.strips(n, true), "{n}");
        }
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("7.7.7.7"));
        assert_eq!(r.forwarded_for(&h, other, false), "192.0.2.1");
        assert_eq!(r.forwarded_for(&h, lb, true), "6.6.6.6, 7.7.7.7, 10.1.2.3");
        assert_eq!(r.forwarded_for(&HeaderMap::new(), lb, true), "10.1.2.3");
        // The longest address texts fit the stack buffer.
        for ip in [
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "1:2:3:4:5:6:7:8",
        ] {
            let v: IpAddr = ip.parse().unwrap();
            assert_eq!(address_value(v), v.to_string().as_str(), "{ip}");
        }
    }
}
