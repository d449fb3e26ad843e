//! The canonical request: the one form of method, path and host that is both
//! routed and sent upstream, so that no parser behind Gatehouse can read the
//! bytes differently from the router that authorised them.
//!
//! - Path (RFC 3986 §6.2.2): percent-encoded unreserved characters decoded,
//!   the hex of every other escape upper-cased, dot segments removed (§5.2.4,
//!   `%2e` forms included), repeated slashes merged, characters outside
//!   `pchar` percent-encoded. Refused: `%2F`/`%5C` (unless
//!   [`EncodedSlashes::Keep`]), a raw `\`, raw or encoded control bytes,
//!   malformed escapes, double encoding (`%25` that decodes to another
//!   escape), `;` path parameters and their escape `%3B` (unless
//!   [`PathParameters::Strip`], which strips both: one decoding hop behind
//!   Gatehouse would turn `%3B` into a parameter Tomcat and Jetty strip),
//!   and a segment ending in `.` or a space, raw or encoded, other than
//!   `.`/`..`, or naming an NTFS stream (`x::$DATA`), raw or encoded (unless
//!   [`TrailingDots::Allow`]: Windows drops them, so `/api./x` and
//!   `/api::$INDEX_ALLOCATION/x` are its `/api/x`).
//! - Method: a case-sensitive token; any method with a lower-case letter is
//!   refused (every registered method is upper case; `post` is read as `POST`
//!   by Django and Werkzeug).
//! - Host: the absolute-form authority wins over `Host` (RFC 9112 §3.2.2);
//!   lower-cased, without a trailing dot, the port split off; an HTTP/1.1
//!   request without `Host`, or with two, is refused.
//!
//! The functions here are pure and allocation-free when the request is
//! already canonical (the common case).

use gatehouse_config::{EncodedSlashes, PathParameters, TrailingDots};
use http::Method;
use std::borrow::Cow;

/// Why a request cannot be put in canonical form (always answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an origin-form or absolute-form (http/https) target.
    InvalidTarget,
    /// `%2F` or `%5C` in the path.
    EncodedSlash,
    /// A raw `\` in the path.
    Backslash,
    /// A raw or percent-encoded control byte (NUL, CR, LF, DEL, …).
    ControlByte,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// `%25` whose decoding forms another escape (`%2561`).
    DoubleEncoding,
    /// A `;` path parameter, or its escape `%3B`.
    PathParameter,
    /// A segment ending in `.` or a space (other than `.` and `..`).
    TrailingDot,
    /// A segment naming an NTFS stream (`:$DATA`, `::$INDEX_ALLOCATION`).
    StreamName,
    /// A method with lower-case letters.
    InvalidMethod,
    /// HTTP/1.1 without a `Host` header.
    MissingHost,
    /// More than one `Host` header.
    DuplicateHost,
    /// A `Host` or authority that is not a host name or address.
    InvalidHost,
}

impl Refusal {
    /// The `error` field of the JSON answer.
    pub fn error(self) -> &'static str {
        match self {
            Refusal::InvalidMethod => "invalid_method",
            Refusal::MissingHost | Refusal::DuplicateHost | Refusal::InvalidHost => "invalid_host",
            _ => "invalid_path",
        }
    }

    /// The `error_description` field of the JSON answer.
    pub fn description(self) -> &'static str {
        match self {
            Refusal::InvalidTarget => {
                "the request target must be an absolute path or an http(s) URL"
            }
            Refusal::EncodedSlash => "the path contains an encoded slash or backslash (%2F, %5C)",
            Refusal::Backslash => "the path contains a backslash",
            Refusal::ControlByte => "the request target contains a control character",
            Refusal::BadEscape => "the path contains a malformed percent-escape",
            Refusal::DoubleEncoding => "the path contains a double percent-encoding (%25XX)",
            Refusal::PathParameter => "the path contains a ';' path parameter (or its escape %3B)",
            Refusal::TrailingDot => {
                "a path segment ends in a dot or a space, which Windows servers drop"
            }
            Refusal::StreamName => {
                "a path segment names an NTFS stream (:$), which Windows servers strip"
            }
            Refusal::InvalidMethod => "methods are case-sensitive upper-case tokens",
            Refusal::MissingHost => "an HTTP/1.1 request needs a Host header",
            Refusal::DuplicateHost => "the request has more than one Host header",
            Refusal::InvalidHost => "the host is not a valid host name or address",
        }
    }
}

/// The server-wide rules for paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathRules {
    /// What `%2F`/`%5C` do.
    pub encoded_slashes: EncodedSlashes,
    /// What `;` (and `%3B`) does.
    pub path_parameters: PathParameters,
    /// What a segment ending in `.` or a space does.
    pub trailing_dots: TrailingDots,
}

/// A request target split into its parts (bytes as received).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The authority of an absolute-form target.
    pub authority: Option<&'a [u8]>,
    /// The path, starting with `/`.
    pub path: &'a [u8],
    /// The query, without `?`.
    pub query: Option<&'a [u8]>,
}

/// Splits an origin-form (`/p?q`) or absolute-form (`http://a/p?q`) target.
/// A fragment is dropped.
pub fn split_target(raw: &[u8]) -> Result<Target<'_>, Refusal> {
    let raw = match raw.iter().position(|&b| b == b'#') {
        Some(i) => &raw[..i],
        None => raw,
    };
    let (authority, rest) = if raw.first() == Some(&b'/') {
        (None, raw)
    } else {
        let after = strip_prefix_ci(raw, b"http://")
            .or_else(|| strip_prefix_ci(raw, b"https://"))
            .ok_or(Refusal::InvalidTarget)?;
        let end = after
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(after.len());
        (Some(&after[..end]), &after[end..])
    };
    let (path, query) = match rest.iter().position(|&b| b == b'?') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    if path.first() != Some(&b'/') {
        return Err(Refusal::InvalidTarget);
    }
    Ok(Target {
        authority,
        path,
        query,
    })
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters kept as they are in a canonical path segment: `pchar` without
/// `%` and `;` (both handled on their own).
fn is_plain_pchar(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// True when `path` is already canonical, so it can be used as it is.
fn is_canonical(path: &[u8]) -> bool {
    path.first() == Some(&b'/')
        && !has_empty_inner_segment(path)
        && path[1..].split(|&b| b == b'/').all(|seg| {
            seg.last() != Some(&b'.')
                && !seg.windows(2).any(|w| w == b":$")
                && seg.iter().all(|&b| is_plain_pchar(b))
        })
}

/// True when a canonical segment holds `:` followed by `$`, escaped or not
/// (`%3A`, `%24`): an NTFS stream name (`x::$DATA`) that Windows strips.
fn names_ntfs_stream(seg: &str) -> bool {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let colon = if b[i] == b':' {
            Some(1)
        } else if b[i..].starts_with(b"%3A") {
            Some(3)
        } else {
            None
        };
        if let Some(n) = colon {
            let rest = &b[i + n..];
            if rest.starts_with(b"$") || rest.starts_with(b"%24") {
                return true;
            }
            i += n;
        } else {
            i += 1;
        }
    }
    false
}

/// `//` anywhere (an empty segment that is not the trailing one).
fn has_empty_inner_segment(path: &[u8]) -> bool {
    path.windows(2).any(|w| w == b"//")
}

/// One segment, normalised: escapes decoded or upper-cased, characters
/// outside `pchar` escaped, parameters stripped or refused.
fn normalise_segment(raw: &[u8], rules: PathRules, out: &mut String) -> Result<(), Refusal> {
    let mut i = 0;
    // Decoded `%` seen: check the decoded segment for a second escape level.
    let mut decoded_percent = false;
    // Where a stripped `;` parameter began: what follows is validated like
    // the rest of the segment, then dropped.
    let mut param_at: Option<usize> = None;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    raw.get(i + 1).copied().and_then(hex_val),
                    raw.get(i + 2).copied().and_then(hex_val),
                ) else {
                    return Err(Refusal::BadEscape);
                };
                let v = (h << 4) | l;
                if v == b';' {
                    match rules.path_parameters {
                        PathParameters::Reject => return Err(Refusal::PathParameter),
                        PathParameters::Strip => {
                            param_at.get_or_insert(out.len());
                            i += 3;
                            continue;
                        }
                    }
                }
                if is_unreserved(v) {
                    out.push(char::from(v));
                } else if v == b'/' || v == b'\\' {
                    match rules.encoded_slashes {
                        EncodedSlashes::Reject => return Err(Refusal::EncodedSlash),
                        EncodedSlashes::Keep => push_escaped(out, v),
                    }
                } else if v < 0x20 || v == 0x7f {
                    return Err(Refusal::ControlByte);
                } else {
                    decoded_percent |= v == b'%';
                    push_escaped(out, v);
                }
                i += 3;
                continue;
            }
            b';' => match rules.path_parameters {
                PathParameters::Reject => return Err(Refusal::PathParameter),
                PathParameters::Strip => {
                    param_at.get_or_insert(out.len());
                }
            },
            b'\\' => return Err(Refusal::Backslash),
            _ if b < 0x20 || b == 0x7f => return Err(Refusal::ControlByte),
            _ if is_plain_pchar(b) => out.push(char::from(b)),
            _ => push_escaped(out, b),
        }
        i += 1;
    }
    if let Some(at) = param_at {
        out.truncate(at);
    }
    if decoded_percent && has_second_level_escape(raw) {
        return Err(Refusal::DoubleEncoding);
    }
    let ends_badly = out.ends_with('.') || out.ends_with("%20");
    if rules.trailing_dots == TrailingDots::Reject {
        if ends_badly && out != "." && out != ".." {
            return Err(Refusal::TrailingDot);
        }
        if names_ntfs_stream(out) {
            return Err(Refusal::StreamName);
        }
    }
    Ok(())
}

/// Decodes `raw` once and reports whether the result still holds an escape.
fn has_second_level_escape(raw: &[u8]) -> bool {
    let mut dec = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            if let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex_val),
                raw.get(i + 2).copied().and_then(hex_val),
            ) {
                dec.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        dec.push(raw[i]);
        i += 1;
    }
    dec.windows(3)
        .any(|w| w[0] == b'%' && hex_val(w[1]).is_some() && hex_val(w[2]).is_some())
}

/// The canonical form of a path (starting with `/`).
pub fn canonical_path(path: &[u8], rules: PathRules) -> Result<Cow<'_, str>, Refusal> {
    if is_canonical(path) {
        // Only ASCII bytes passed is_canonical.
        return std::str::from_utf8(path)
            .map(Cow::Borrowed)
            .map_err(|_| Refusal::InvalidTarget);
    }
    if path.first() != Some(&b'/') {
        return Err(Refusal::InvalidTarget);
    }
    let mut segs: Vec<String> = Vec::new();
    let mut trailing = false;
    let mut raw_segs = path[1..].split(|&b| b == b'/').peekable();
    while let Some(raw) = raw_segs.next() {
        let last = raw_segs.peek().is_none();
        let mut seg = String::with_capacity(raw.len());
        normalise_segment(raw, rules, &mut seg)?;
        match seg.as_str() {
            "" | "." => trailing = last,
            ".." => {
                segs.pop();
                trailing = last;
            }
            _ => {
                segs.push(seg);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segs.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// The query as it may be sent upstream: control bytes refused, bytes that a
/// URI cannot hold (non-ASCII, space, `"<>\^`{|}`) percent-encoded; escapes
/// are left as they are (the query is data for the upstream, not routed).
pub fn canonical_query(query: &[u8]) -> Result<Cow<'_, str>, Refusal> {
    let plain = |b: u8| b.is_ascii_graphic() && !b"\"<>\\^`{|}#".contains(&b);
    if query.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(Refusal::ControlByte);
    }
    if query.iter().all(|&b| plain(b)) {
        return std::str::from_utf8(query)
            .map(Cow::Borrowed)
            .map_err(|_| Refusal::InvalidTarget);
    }
    let mut out = String::with_capacity(query.len() + 8);
    for &b in query {
        if plain(b) {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
    }
    Ok(Cow::Owned(out))
}

/// Refuses a method with lower-case letters (`post`, `Post`, `dElEtE`).
pub fn check_method(method: &Method) -> Result<(), Refusal> {
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        Err(Refusal::InvalidMethod)
    } else {
        Ok(())
    }
}

/// A host in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host<'a> {
    /// Lower case, no trailing dot, no port (IPv6 in brackets).
    pub name: Cow<'a, str>,
    /// The port, when one was given.
    pub port: Option<u16>,
}

impl Host<'_> {
    /// True when `raw` spells exactly [`Self::header_value`].
    pub fn is_spelled(&self, raw: &[u8]) -> bool {
        let Some(rest) = raw.strip_prefix(self.name.as_bytes()) else {
            return false;
        };
        match self.port {
            None => rest.is_empty(),
            Some(p) => {
                let mut buf = [0u8; 6];
                let mut i = buf.len();
                let mut n = p;
                loop {
                    i -= 1;
                    buf[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                i -= 1;
                buf[i] = b':';
                rest == &buf[i..]
            }
        }
    }

    /// `name[:port]`, the value sent upstream as `Host`.
    pub fn header_value(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// Canonicalises a `Host` value or an authority: `name[:port]`, with `name`
/// a registered name or IPv4 address (letters, digits, `-`, `.`, `_`) or an
/// IPv6 literal in brackets. User information (`user@`) is refused.
pub fn canonical_host(raw: &[u8]) -> Result<Host<'_>, Refusal> {
    let (name, port) = if raw.first() == Some(&b'[') {
        let end = raw
            .iter()
            .position(|&b| b == b']')
            .ok_or(Refusal::InvalidHost)?;
        let inner = &raw[1..end];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(Refusal::InvalidHost);
        }
        (&raw[..=end], &raw[end + 1..])
    } else {
        match raw.iter().position(|&b| b == b':') {
            Some(i) => (&raw[..i], &raw[i..]),
            None => (raw, &raw[raw.len()..]),
        }
    };
    let port = match port {
        [] | [b':'] => None,
        [b':', digits @ ..] => {
            if digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
                return Err(Refusal::InvalidHost);
            }
            let p: u32 = digits
                .iter()
                .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'));
            Some(u16::try_from(p).map_err(|_| Refusal::InvalidHost)?)
        }
        _ => return Err(Refusal::InvalidHost),
    };
    let name = if name.first() == Some(&b'[') {
        name
    } else {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty()
            || name.len() > 253
            || name.starts_with(b".")
            || name.ends_with(b".")
            || name.windows(2).any(|w| w == b"..")
            || !name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(Refusal::InvalidHost);
        }
        name
    };
    let text = std::str::from_utf8(name).map_err(|_| Refusal::InvalidHost)?;
    let name = if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    };
    Ok(Host { name, port })
}

/// A request in canonical form, borrowing from the request where it can.
#[derive(Debug)]
pub struct CanonicalRequest<'a> {
    /// The canonical path: routed, and sent upstream.
    pub path: Cow<'a, str>,
    /// The query as sent upstream.
    pub query: Option<Cow<'a, str>>,
    /// The host the request is for (absolute-form authority, else `Host`).
    pub host: Option<Host<'a>>,
    /// The upstream request target must be rewritten (the received one is
    /// not canonical, or is in absolute form).
    pub rewrite_target: bool,
    /// The upstream `Host` must be set to [`Host::header_value`].
    pub rewrite_host: bool,
}

impl CanonicalRequest<'_> {
    /// The origin-form target sent upstream (`path?query`).
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.to_string(),
        }
    }
}

/// What [`canonicalise`] reads from a request.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The request target as received (origin- or absolute-form).
    pub target: &'a [u8],
    /// The URI's authority (HTTP/2 `:authority`), when the parser kept one.
    pub uri_authority: Option<&'a str>,
    /// HTTP/1.1 or later needs a host.
    pub needs_host: bool,
}

/// Puts a request in canonical form, or says why it cannot be.
pub fn canonicalise<'a>(
    raw: RawRequest<'a>,
    mut host_headers: impl Iterator<Item = &'a [u8]>,
    rules: PathRules,
) -> Result<CanonicalRequest<'a>, Refusal> {
    check_method(raw.method)?;
    let target = split_target(raw.target)?;
    let path = canonical_path(target.path, rules)?;
    let query = target.query.map(canonical_query).transpose()?;
    let host_header = host_headers.next();
    if host_headers.next().is_some() {
        return Err(Refusal::DuplicateHost);
    }
    if raw.needs_host && host_header.is_none() && raw.uri_authority.is_none() {
        return Err(Refusal::MissingHost);
    }
    let header_host = match host_header {
        Some(h) if h.is_empty() && raw.needs_host => return Err(Refusal::MissingHost),
        Some([]) => None,
        Some(h) => Some(canonical_host(h)?),
        None => None,
    };
    let authority = target
        .authority
        .or(raw.uri_authority.map(str::as_bytes))
        .map(canonical_host)
        .transpose()?;
    let host = authority.or(header_host);
    let rewrite_host = host
        .as_ref()
        .is_some_and(|h| host_header.is_none_or(|raw| !h.is_spelled(raw)));
    let rewrite_target = target.authority.is_some()
        || matches!(path, Cow::Owned(_))
        || matches!(query, Some(Cow::Owned(_)));
    Ok(CanonicalRequest {
        path,
        query,
        host,
        rewrite_target,
        rewrite_host,
    })
}

#[cfg(test)]
mod tests;
