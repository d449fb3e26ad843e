//! Where a bearer token is found in a request: a header (with or without a
//! scheme), a cookie, or a query parameter.
//!
//! Intake is strict: a token must have exactly one carrier. Every configured
//! source is looked at, and two carriers — two credential headers, two
//! cookies with the token's name, two query parameters, or a token in two
//! different sources — are [`Intake::Ambiguous`], never "first wins": a
//! reader downstream that picks another copy than the one Gatehouse checked
//! would see an unverified token.
//!
//! Names are compared the way the most lenient reader downstream would (see
//! [`name_matches`]): cookie and query parameter names after percent-decoding
//! and ASCII case folding, with ` `, `+`, `.` and `[` counted as `_`
//! (`access%5Ftoken`, `ACCESS_TOKEN` and `access.token` are all the
//! `access_token` carrier). Values: a `+` is *not* a space (RFC 3986, not
//! HTML forms); query values are percent-decoded; cookie values are taken as
//! they are (RFC 6265), without one pair of surrounding double quotes.

use crate::{HeaderEdits, RequestView};
use gatehouse_config::ConfigError;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::borrow::Cow;

/// One source as written in the config: exactly one of `header`, `cookie`, `query`.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSourceConfig {
    /// Header name.
    #[serde(default)]
    pub header: Option<String>,
    /// Scheme expected before the token in the header (`Bearer`); empty = the
    /// whole value is the token. Default `Bearer` for `Authorization`, none otherwise.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Cookie name.
    #[serde(default)]
    pub cookie: Option<String>,
    /// Query parameter name.
    #[serde(default)]
    pub query: Option<String>,
}

/// A compiled source.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// A header, with an optional scheme (compared case-insensitively).
    Header {
        /// Header name.
        name: HeaderName,
        /// Scheme, e.g. `Bearer`.
        scheme: Option<String>,
    },
    /// A cookie.
    Cookie(String),
    /// A query parameter (always removed before proxying).
    Query(String),
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Header {
                name,
                scheme: Some(s),
            } => write!(f, "header {name} ({s})"),
            TokenSource::Header { name, scheme: None } => write!(f, "header {name}"),
            TokenSource::Cookie(c) => write!(f, "cookie {c}"),
            TokenSource::Query(q) => write!(f, "query parameter {q}"),
        }
    }
}

impl TokenSource {
    /// `Authorization: Bearer <token>`.
    pub fn bearer() -> Self {
        TokenSource::Header {
            name: http::header::AUTHORIZATION,
            scheme: Some("Bearer".into()),
        }
    }

    /// Compiles the list at `path`; an empty list means the default (bearer).
    /// Two sources naming the same carrier are refused (they would make every
    /// request that uses it ambiguous).
    pub fn compile_all(path: &str, cfgs: &[TokenSourceConfig]) -> Result<Vec<Self>, ConfigError> {
        if cfgs.is_empty() {
            return Ok(vec![Self::bearer()]);
        }
        let mut out: Vec<Self> = Vec::with_capacity(cfgs.len());
        for (i, c) in cfgs.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let s = Self::compile(&p, c)?;
            if out.iter().any(|o| o.same_carrier(&s)) {
                return Err(ConfigError::new(
                    p,
                    "this carrier is already listed (a token must have one carrier)",
                ));
            }
            out.push(s);
        }
        Ok(out)
    }

    /// True when `self` and `other` read the same carrier (header names
    /// compared folded, see [`header_folds_to`]; cookie and query names with
    /// [`name_matches`]), whatever their schemes.
    pub fn same_carrier(&self, other: &Self) -> bool {
        match (self, other) {
            (TokenSource::Header { name: a, .. }, TokenSource::Header { name: b, .. }) => {
                header_folds_to(a.as_str(), b.as_str())
            }
            (TokenSource::Cookie(a), TokenSource::Cookie(b))
            | (TokenSource::Query(a), TokenSource::Query(b)) => name_matches(a, b),
            _ => false,
        }
    }

    fn compile(path: &str, c: &TokenSourceConfig) -> Result<Self, ConfigError> {
        match (&c.header, &c.cookie, &c.query) {
            (Some(h), None, None) => {
                let name = HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                    ConfigError::new(
                        format!("{path}.header"),
                        format!("\"{h}\" is not a valid header name"),
                    )
                })?;
                if !h.bytes().any(|b| b.is_ascii_alphanumeric()) {
                    return Err(ConfigError::new(
                        format!("{path}.header"),
                        format!(
                            "\"{h}\" has no letter or digit (header names are compared on those)"
                        ),
                    ));
                }
                let scheme = match &c.scheme {
                    Some(s) if s.is_empty() => None,
                    Some(s) => Some(s.clone()),
                    None if name == http::header::AUTHORIZATION => Some("Bearer".into()),
                    None => None,
                };
                Ok(TokenSource::Header { name, scheme })
            }
            (None, Some(c2), None) if c.scheme.is_none() => {
                if c2.is_empty() || !c2.bytes().all(is_tchar) {
                    return Err(ConfigError::new(
                        format!("{path}.cookie"),
                        format!("\"{c2}\" is not a cookie name (letters, digits and !#$&'*+-.^_`|~ only; no %)"),
                    ));
                }
                Ok(TokenSource::Cookie(c2.clone()))
            }
            (None, None, Some(q)) if c.scheme.is_none() => {
                if q.is_empty() || !q.bytes().all(is_unreserved) {
                    return Err(ConfigError::new(
                        format!("{path}.query"),
                        format!(
                            "\"{q}\" is not a plain parameter name (letters, digits and -._~ only)"
                        ),
                    ));
                }
                Ok(TokenSource::Query(q.clone()))
            }
            _ => Err(ConfigError::new(
                path,
                "give exactly one of header (with an optional scheme), cookie or query",
            )),
        }
    }
}

/// RFC 9110 `tchar` (the characters of a cookie name), without `%`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b)
}

/// RFC 3986 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// True when header name `a` is `b` as CGI, WSGI, PHP and lighttpd read
/// names: on their ASCII letters (case folded) and digits alone, so
/// `X_Auth_Token`, `X.Auth.Token` and `x-auth-token` are one name.
pub fn header_folds_to(a: &str, b: &str) -> bool {
    folded_header_name(a).eq(folded_header_name(b))
}

/// A header name as CGI, WSGI, PHP and lighttpd compare it (defined with the
/// proxy's header rules in `gatehouse-http`, so both read names alike).
pub use gatehouse_http::headers::folded_header_name;

/// The names in `headers` that are `name` folded (see [`header_folds_to`]).
pub fn header_spellings(name: &HeaderName, headers: &http::HeaderMap) -> Vec<HeaderName> {
    let mut out = vec![name.clone()];
    for n in headers.keys() {
        if header_folds_to(n.as_str(), name.as_str()) && !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

/// Decodes `%XX` escapes (RFC 3986). `+` stays a `+`. `None` when an escape
/// is malformed or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (hi, lo) = (b.get(i + 1).copied()?, b.get(i + 2).copied()?);
            out.push((hex(hi)? * 16 + hex(lo)?) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// True when a raw (still percent-encoded) cookie or query parameter name is
/// the configured `name` as the most lenient reader would see it. PHP
/// (`php_register_variable_ex`) decodes the name (`+` is a space), cuts it
/// at a NUL, drops leading spaces, reads `name[…]` as an array called
/// `name`, and turns ` `, `.` and an unclosed `[` into `_`; frameworks fold
/// ASCII case. So `+access_token`, `%20access_token`, `access_token%00x`,
/// `access_token[]`, `ACCESS.TOKEN` and `access+token` are all
/// `access_token`; `access-token` is not (no reader folds `-` in a query).
pub fn name_matches(raw: &str, name: &str) -> bool {
    let decoded = decode_lenient(raw.as_bytes());
    let cut = decoded.split(|&b| b == 0).next().unwrap_or_default();
    let start = cut.iter().position(|&b| b != b' ').unwrap_or(cut.len());
    let trimmed = &cut[start..];
    // `name[…]…`: an array called `name` (a `[` without `]` is folded below).
    let base = match trimmed.iter().position(|&b| b == b'[') {
        Some(open) if trimmed[open..].contains(&b']') => &trimmed[..open],
        _ => trimmed,
    };
    let fold = |b: u8| match b {
        b' ' | b'.' | b'[' => b'_',
        b => b.to_ascii_lowercase(),
    };
    !base.is_empty() && base.iter().map(|&b| fold(b)).eq(name.bytes().map(fold))
}

/// Percent-decodes `raw` as a form decoder does (`+` is a space); a
/// malformed escape is kept as it is, as PHP keeps it.
fn decode_lenient(raw: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => match (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// True when one raw query pair (`name=value`, split on `&`) carries the
/// configured parameter `name`: its name matches (see [`name_matches`]), or
/// a `;`-separated part of it does (`x=1;access_token=…`, which readers that
/// also split on `;` see as a parameter). The proxy removes every such pair
/// before the request goes upstream.
pub fn query_pair_matches(raw_pair: &str, name: &str) -> bool {
    raw_pair
        .split(';')
        .any(|seg| name_matches(seg.split_once('=').map_or(seg, |(k, _)| k), name))
}

/// What token intake found.
#[derive(Debug, PartialEq, Eq)]
pub enum Intake<'a> {
    /// A token (percent-decoded when it came from the query), and the index
    /// of the source it came from.
    Found(Cow<'a, str>, usize),
    /// No source holds a token.
    Missing,
    /// A source holds something that is not one token (the text says what).
    Malformed(&'static str),
    /// More than one carrier holds a token (the text says which kind).
    Ambiguous(&'static str),
}

/// What one source holds.
enum One<'a> {
    Absent,
    Found(Cow<'a, str>),
    Malformed(&'static str),
    Ambiguous(&'static str),
}

fn from_header<'a>(name: &HeaderName, scheme: Option<&str>, req: &RequestView<'a>) -> One<'a> {
    // The configured spelling and its twins (`X_Auth_Token` beside
    // `X-Auth-Token`): one carrier, read by CGI/WSGI/PHP as one name.
    let headers: &'a http::HeaderMap = req.headers;
    let mut values = headers
        .iter()
        .filter(|(n, _)| header_folds_to(n.as_str(), name.as_str()))
        .map(|(_, v)| v);
    let Some(v) = values.next() else {
        return One::Absent;
    };
    if values.next().is_some() {
        return One::Ambiguous("more than one credential header");
    }
    let Ok(text) = v.to_str() else {
        return One::Malformed("credential header is not ASCII");
    };
    if text.contains(',') {
        // A comma-separated list is the same as several headers (RFC 9110 §5.3).
        return One::Ambiguous("more than one credential in the header");
    }
    let text = text.trim();
    let token = match scheme {
        Some(sch) => {
            let Some((given, rest)) = text.split_once([' ', '\t']) else {
                if text.eq_ignore_ascii_case(sch) {
                    return One::Malformed("empty token");
                }
                return One::Absent;
            };
            if !given.eq_ignore_ascii_case(sch) {
                // Another scheme (e.g. Basic): not ours.
                return One::Absent;
            }
            rest.trim()
        }
        None => text,
    };
    if token.is_empty() {
        return One::Malformed("empty token");
    }
    if token.contains([' ', '\t']) {
        return One::Malformed("more than one token");
    }
    One::Found(Cow::Borrowed(token))
}

/// Splits one `Cookie` header on `;` and, as RFC 2965 readers do, on `,`
/// (a cookie value never holds either, RFC 6265): `(name, value)` pairs,
/// trimmed, with the value's range in `text`.
fn cookie_items(text: &str) -> impl Iterator<Item = (&str, std::ops::Range<usize>)> {
    let base = text.as_ptr() as usize;
    text.split([';', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(move |p| {
            // No `=`: an empty value at the end of `p` (inside `text`, so the
            // offset below is in range; a literal "" lies elsewhere in memory).
            let (k, v) = p.split_once('=').unwrap_or((p, &p[p.len()..]));
            let v = v.trim();
            let start = (v.as_ptr() as usize).saturating_sub(base);
            (k, start..start + v.len())
        })
}

fn from_cookie<'a>(name: &str, req: &RequestView<'a>) -> One<'a> {
    let mut found = One::Absent;
    for hv in req.headers.get_all(http::header::COOKIE) {
        // Not UTF-8: searched anyway (replacement characters never form a
        // token), so a carrier cannot hide behind a stray byte.
        let text = String::from_utf8_lossy(hv.as_bytes());
        for (k, range) in cookie_items(&text) {
            if !name_matches(k, name) {
                continue;
            }
            if !matches!(found, One::Absent) {
                return One::Ambiguous("more than one token cookie");
            }
            let raw = &text[range.clone()];
            let (inner, off) = match raw.strip_prefix('"') {
                Some(rest) => match rest.strip_suffix('"') {
                    Some(inner) => (inner, 1),
                    None => return One::Malformed("token cookie has an unbalanced quote"),
                },
                None => (raw, 0),
            };
            found = if inner.is_empty() {
                One::Malformed("empty token")
            } else if inner
                .bytes()
                .any(|b| !b.is_ascii_graphic() || b == b'"' || b == b'\\')
            {
                One::Malformed("token cookie holds characters a cookie value cannot")
            } else {
                let r = range.start + off..range.start + off + inner.len();
                match &text {
                    Cow::Borrowed(t) => {
                        let t: &'a str = t;
                        One::Found(Cow::Borrowed(&t[r]))
                    }
                    Cow::Owned(t) => One::Found(Cow::Owned(t[r].to_string())),
                }
            };
        }
    }
    found
}

fn from_query<'a>(name: &str, req: &RequestView<'a>) -> One<'a> {
    let Some(q) = req.uri.query() else {
        return One::Absent;
    };
    let mut found = One::Absent;
    for pair in q.split('&') {
        let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
        if !name_matches(k, name) {
            if query_pair_matches(pair, name) {
                return One::Ambiguous("token parameter hidden after ';'");
            }
            continue;
        }
        if !matches!(found, One::Absent) {
            return One::Ambiguous("more than one token parameter");
        }
        found = match percent_decode(val) {
            None => One::Malformed("token parameter is not valid percent-encoded UTF-8"),
            Some(v) if v.is_empty() => One::Malformed("empty token"),
            Some(v) if v.contains(|c: char| c.is_whitespace() || c.is_control()) => {
                One::Malformed("more than one token")
            }
            Some(v) => One::Found(v),
        };
    }
    found
}

/// Finds the token in `req`. Every source is looked at: a token in two of
/// them, or twice in one, is [`Intake::Ambiguous`].
pub fn find_token<'a>(sources: &[TokenSource], req: &RequestView<'a>) -> Intake<'a> {
    let mut result = Intake::Missing;
    for (i, s) in sources.iter().enumerate() {
        let one = match s {
            TokenSource::Header { name, scheme } => from_header(name, scheme.as_deref(), req),
            TokenSource::Cookie(name) => from_cookie(name, req),
            TokenSource::Query(name) => from_query(name, req),
        };
        let this = match one {
            One::Absent => continue,
            One::Ambiguous(why) => return Intake::Ambiguous(why),
            One::Malformed(why) => Intake::Malformed(why),
            One::Found(t) => Intake::Found(t, i),
        };
        if result != Intake::Missing {
            return Intake::Ambiguous("token in more than one place");
        }
        result = this;
    }
    result
}

/// Edits that remove the token's carrier before proxying. With
/// `forward == true` only a query parameter is removed (tokens in URLs end
/// up in upstream access logs). A header carrier is removed in every
/// spelling the request holds (`X_Auth_Token` beside `X-Auth-Token`).
pub fn carrier_edits(source: &TokenSource, req: &RequestView<'_>, forward: bool) -> HeaderEdits {
    strip_carriers(std::slice::from_ref(source), req, forward)
}

/// [`carrier_edits`] for every source of `sources`.
pub fn strip_carriers(
    sources: &[TokenSource],
    req: &RequestView<'_>,
    forward: bool,
) -> HeaderEdits {
    let mut e = HeaderEdits::none();
    for source in sources {
        match source {
            TokenSource::Query(name) => e.remove_query_params.push(name.clone()),
            _ if forward => {}
            TokenSource::Header { name, .. } => {
                for n in header_spellings(name, req.headers) {
                    if !e.remove.contains(&n) {
                        e.remove.push(n);
                    }
                }
            }
            TokenSource::Cookie(name) => e.remove_cookies.push(name.clone()),
        }
    }
    if !e.remove_cookies.is_empty() {
        e.settle_cookies(req.headers);
    }
    e
}

/// The `Cookie` header of `headers` without the cookies `names` (compared
/// with [`name_matches`]): `Some(None)` when none is left (remove the
/// header), `Some(Some(v))` for the rest, `None` when nothing changes.
pub(crate) fn cookie_without(
    headers: &http::HeaderMap,
    names: &[String],
) -> Option<Option<HeaderValue>> {
    let is_ours = |item: &str| {
        let item = item.trim();
        let k = item.split_once('=').map_or(item, |(k, _)| k);
        names.iter().any(|n| name_matches(k, n))
    };
    let mut cookies = headers.get_all(http::header::COOKIE).iter().peekable();
    cookies.peek()?;
    let kept: Vec<String> = cookies
        .filter_map(|v| v.to_str().ok())
        .flat_map(|t| t.split(';'))
        .filter_map(|seg| {
            let rest: Vec<&str> = seg
                .split(',')
                .filter(|it| !it.trim().is_empty() && !is_ours(it))
                .map(str::trim)
                .collect();
            (!rest.is_empty()).then(|| rest.join(", "))
        })
        .collect();
    if kept.is_empty() {
        return Some(None);
    }
    Some(HeaderValue::from_str(&kept.join("; ")).ok())
}

/// Whether a group's carriers hold more than one token: the carriers of
/// `sources` (the union of an any-of group's members' sources; one carrier
/// read with two schemes counts once) are each looked at, and a token (or
/// something malformed) in two of them, or twice in one, is
/// [`Intake::Ambiguous`]. Any other answer is [`Intake::Missing`]: finding
/// the token is each member's job.
pub fn union_intake<'a>(sources: &[TokenSource], req: &RequestView<'a>) -> Intake<'a> {
    let mut occupied = 0;
    for (i, s) in sources.iter().enumerate() {
        if sources[..i].iter().any(|o| o.same_carrier(s)) {
            continue;
        }
        let mut here = false;
        for v in sources[i..].iter().filter(|o| o.same_carrier(s)) {
            let one = match v {
                TokenSource::Header { name, scheme } => from_header(name, scheme.as_deref(), req),
                TokenSource::Cookie(name) => from_cookie(name, req),
                TokenSource::Query(name) => from_query(name, req),
            };
            match one {
                One::Absent => {}
                One::Ambiguous(why) => return Intake::Ambiguous(why),
                One::Found(_) | One::Malformed(_) => here = true,
            }
        }
        if here {
            occupied += 1;
            if occupied > 1 {
                return Intake::Ambiguous(
                    "token in the carriers of more than one member of an any-of group",
                );
            }
        }
    }
    Intake::Missing
}

#[cfg(test)]
mod tests;
