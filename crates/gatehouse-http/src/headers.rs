//! Which client headers reach the upstream: identity headers only Gatehouse
//! sets, client-address headers the upstream can trust.
//!
//! - Names with a character outside `[A-Za-z0-9-]` are dropped (NGINX's
//!   `ignore_invalid_headers`), `_` included unless
//!   `server.underscores_in_headers`: PHP reads `X.User.Id` as `X_User_Id`,
//!   CGI servers and lighttpd fold every punctuation character to `_`.
//! - Every protected name is matched on its letters and digits alone (ASCII
//!   case-insensitively), so no spelling survives even where a setting keeps
//!   odd names: `X.User.Id`, `x_user_id` and `X-User--Id` are all
//!   `X-User-Id`. Protected: every header name any connector of the snapshot
//!   can inject, every name in `server.strip_headers`, the method-override
//!   headers (unless `server.method_override_headers`) and the path-override
//!   headers (unless `server.path_override_headers`) — removed from every
//!   request on every route, public routes included.
//! - `X-Forwarded-For` is the client address and `X-Forwarded-Proto` the
//!   scheme; every other client-address and scheme header
//!   ([`CLIENT_ADDRESS_HEADERS`]) is removed — unless the peer is in
//!   `server.trusted_proxies`, whose headers are kept and whose
//!   `X-Forwarded-For` chain is appended to.

use gatehouse_config::{
    parse_trusted_proxy, ServerConfig, CLIENT_ADDRESS_HEADERS, METHOD_OVERRIDE_HEADERS,
    PATH_OVERRIDE_HEADERS,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
use std::collections::HashSet;

/// The sets of folded names: built from the config, only read per request,
/// so a fixed-seed fast hasher (no attacker can insert into them).
type NameSet = HashSet<Box<[u8]>, foldhash::fast::FixedState>;
use std::net::IpAddr;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// Why a client header was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A character outside `[A-Za-z0-9-]` (`_` unless allowed).
    InvalidName = 0,
    /// An identity, certificate, override or configured name, in any spelling.
    Protected = 1,
    /// A client-address or scheme header from a peer that is not trusted.
    ClientAddress = 2,
}

/// Label values of `gatehouse_request_headers_dropped_total`, indexed by [`Dropped`].
pub const DROP_REASONS: [&str; 3] = ["invalid_name", "protected", "client_address"];

/// The compiled header rules of one snapshot.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    /// Protected names, folded (see [`fold`]).
    strip: NameSet,
    /// Client-address and scheme names, folded.
    address: NameSet,
    underscores: bool,
    drop_invalid: bool,
    trusted: Vec<ipnet::IpNet>,
}

/// A header name as CGI, WSGI, PHP and lighttpd compare it: its ASCII
/// letters (lower-cased) and digits, every other byte left out. The one
/// definition for the header rules here and the token carriers of
/// `gatehouse-connectors` (which re-exports it).
pub fn folded_header_name(name: &str) -> impl Iterator<Item = u8> + '_ {
    name.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
}

/// A name as every folding parser downstream reads it: its ASCII letters
/// (lower case) and digits, every other character left out.
pub fn fold(name: &str) -> String {
    folded_header_name(name).map(char::from).collect()
}

/// Folded names up to this length are folded on the stack.
const STACK_FOLD: usize = 64;

/// `name` folded (see [`fold`]), on the stack when it is short (the common
/// case: no allocation per header).
fn fold_bytes<'b>(name: &str, buf: &'b mut [u8; STACK_FOLD]) -> Cow<'b, [u8]> {
    let mut n = 0;
    for b in folded_header_name(name) {
        if n == STACK_FOLD {
            return Cow::Owned(fold(name).into_bytes());
        }
        buf[n] = b;
        n += 1;
    }
    Cow::Borrowed(&buf[..n])
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

fn push_folded<'a>(out: &mut NameSet, names: impl IntoIterator<Item = &'a str>) {
    out.extend(
        names
            .into_iter()
            .map(fold)
            .filter(|n| !n.is_empty())
            .map(|n| n.into_bytes().into_boxed_slice()),
    );
}

impl HeaderRules {
    /// Compiles the rules from `[server]` and the names connectors inject.
    /// `trusted_proxies` entries were validated with the config.
    pub fn new<'a>(
        server: &ServerConfig,
        injected: impl IntoIterator<Item = &'a HeaderName>,
    ) -> Self {
        let mut strip = NameSet::default();
        push_folded(&mut strip, injected.into_iter().map(HeaderName::as_str));
        push_folded(&mut strip, server.strip_headers.iter().map(String::as_str));
        if !server.method_override_headers {
            push_folded(&mut strip, METHOD_OVERRIDE_HEADERS.iter().copied());
        }
        if !server.path_override_headers {
            push_folded(&mut strip, PATH_OVERRIDE_HEADERS.iter().copied());
        }
        let mut address = NameSet::default();
        push_folded(
            &mut address,
            CLIENT_ADDRESS_HEADERS
                .iter()
                .copied()
                .chain([X_FORWARDED_FOR, X_FORWARDED_PROTO]),
        );
        Self {
            strip,
            address,
            underscores: server.underscores_in_headers,
            drop_invalid: server.ignore_invalid_headers,
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

    /// Why a client header of this name never reaches the upstream, if it
    /// does not.
    pub fn drops(&self, name: &str, trusted_peer: bool) -> Option<Dropped> {
        let invalid = name.bytes().any(|b| match b {
            b'_' => !self.underscores,
            _ => self.drop_invalid && !(b.is_ascii_alphanumeric() || b == b'-'),
        });
        if invalid {
            return Some(Dropped::InvalidName);
        }
        let mut buf = [0u8; STACK_FOLD];
        let folded = fold_bytes(name, &mut buf);
        if self.strip.contains(folded.as_ref()) {
            Some(Dropped::Protected)
        } else if !trusted_peer && self.address.contains(folded.as_ref()) {
            Some(Dropped::ClientAddress)
        } else {
            None
        }
    }

    /// True when a client header of this name never reaches the upstream.
    pub fn strips(&self, name: &str, trusted_peer: bool) -> bool {
        self.drops(name, trusted_peer).is_some()
    }

    /// The names in `headers` to remove, with why (no allocation when there
    /// are none).
    pub fn to_remove(&self, headers: &HeaderMap, trusted_peer: bool) -> Vec<(HeaderName, Dropped)> {
        let mut out = Vec::new();
        for name in headers.keys() {
            if let Some(why) = self.drops(name.as_str(), trusted_peer) {
                out.push((name.clone(), why));
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
        for n in ["x-user-ids", "x-user", "accept", "x-tenants"] {
            assert!(!r.strips(n, false), "{n}");
        }
        // Every punctuation spelling is the same name to PHP and CGI.
        let odd = HeaderRules::new(
            &server("ignore_invalid_headers = false\nunderscores_in_headers = true"),
            &injected,
        );
        for n in [
            "x.user.id",
            "x~user~id",
            "x-user--id",
            "x+user-id",
            "xuserid",
            "x_user.id",
        ] {
            assert_eq!(odd.drops(n, true), Some(Dropped::Protected), "{n}");
            assert!(r.drops(n, true).is_some(), "{n}");
        }
        assert_eq!(odd.drops("x.custom", false), None);
    }

    #[test]
    fn method_overrides_removed_unless_allowed() {
        let r = HeaderRules::new(&server(""), []);
        assert!(r.strips("x-http-method-override", false));
        assert!(r.strips("x-method-override", true));
        assert!(r.strips("x-original-url", true));
        assert!(r.strips("x-rewrite-url", true));
        let r = HeaderRules::new(&server("path_override_headers = true"), []);
        assert!(!r.strips("x-original-url", false));
        let r = HeaderRules::new(&server("method_override_headers = true"), []);
        assert!(!r.strips("x-http-method-override", false));
    }

    #[test]
    fn invalid_names_dropped_like_nginx() {
        let r = HeaderRules::new(&server(""), []);
        for n in [
            "x.custom", "x~a", "x+a", "x!a", "x'a", "x*a", "x|a", "x^a", "x#a", "x$a",
        ] {
            assert_eq!(r.drops(n, true), Some(Dropped::InvalidName), "{n}");
        }
        for n in ["x-custom", "accept", "x-1", "content-type"] {
            assert_eq!(r.drops(n, false), None, "{n}");
        }
        let keep = HeaderRules::new(&server("ignore_invalid_headers = false"), []);
        assert_eq!(keep.drops("x.custom", false), None);
        // Underscores have their own setting.
        assert_eq!(keep.drops("x_custom", false), Some(Dropped::InvalidName));
        assert_eq!(fold("X-User_Id.2"), "xuserid2");
        // Names longer than the stack buffer fold the same way.
        let long = format!("x-{}", "a".repeat(100));
        let r = HeaderRules::new(&server(&format!("strip_headers = [\"{long}\"]")), []);
        assert_eq!(
            r.drops(&long.replace('-', "_"), false),
            Some(Dropped::InvalidName)
        );
        let keep = HeaderRules::new(
            &server(&format!(
                "strip_headers = [\"{long}\"]\nignore_invalid_headers = false"
            )),
            [],
        );
        assert_eq!(
            keep.drops(&long.replace('-', "."), false),
            Some(Dropped::Protected)
        );
        assert_eq!(keep.drops(&long[..90], false), None);
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
            "x-forwarded-proto",
            "x-client-ip",
            "true-client-ip",
            "client-ip",
            "cf-connecting-ip",
            "fastly-client-ip",
            "x-cluster-client-ip",
            "x-forwarded",
            "forwarded-for",
            "x-original-forwarded-for",
            "x-forwarded-ssl",
            "x-forwarded-scheme",
            "x-forwarded-prefix",
        ] {
            assert_eq!(r.drops(n, false), Some(Dropped::ClientAddress), "{n}");
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
