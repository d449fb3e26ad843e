//! Where a bearer token is found in a request: a header (with or without a
//! scheme), a cookie, or a query parameter — tried in the configured order.

use crate::{HeaderEdits, RequestView};
use gatehouse_config::ConfigError;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;

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

impl TokenSource {
    /// `Authorization: Bearer <token>`.
    pub fn bearer() -> Self {
        TokenSource::Header {
            name: http::header::AUTHORIZATION,
            scheme: Some("Bearer".into()),
        }
    }

    /// Compiles the list at `path`; an empty list means the default (bearer).
    pub fn compile_all(path: &str, cfgs: &[TokenSourceConfig]) -> Result<Vec<Self>, ConfigError> {
        if cfgs.is_empty() {
            return Ok(vec![Self::bearer()]);
        }
        cfgs.iter()
            .enumerate()
            .map(|(i, c)| Self::compile(&format!("{path}[{i}]"), c))
            .collect()
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
                let scheme = match &c.scheme {
                    Some(s) if s.is_empty() => None,
                    Some(s) => Some(s.clone()),
                    None if name == http::header::AUTHORIZATION => Some("Bearer".into()),
                    None => None,
                };
                Ok(TokenSource::Header { name, scheme })
            }
            (None, Some(c2), None) if c.scheme.is_none() && !c2.is_empty() => {
                Ok(TokenSource::Cookie(c2.clone()))
            }
            (None, None, Some(q)) if c.scheme.is_none() && !q.is_empty() => {
                Ok(TokenSource::Query(q.clone()))
            }
            _ => Err(ConfigError::new(
                path,
                "give exactly one of header (with an optional scheme), cookie or query",
            )),
        }
    }
}

/// What token intake found.
#[derive(Debug, PartialEq, Eq)]
pub enum Intake<'a> {
    /// A token, and the index of the source it came from.
    Found(&'a str, usize),
    /// No source holds a token.
    Missing,
    /// A source holds something that is not one token (the text says what).
    Malformed(&'static str),
}

/// Finds the token in `req`, trying `sources` in order.
pub fn find_token<'a>(sources: &[TokenSource], req: &RequestView<'a>) -> Intake<'a> {
    for (i, s) in sources.iter().enumerate() {
        match s {
            TokenSource::Header { name, scheme } => {
                let mut values = req.headers.get_all(name).iter();
                let Some(v) = values.next() else { continue };
                if values.next().is_some() {
                    return Intake::Malformed("more than one credential header");
                }
                let Ok(text) = v.to_str() else {
                    return Intake::Malformed("credential header is not ASCII");
                };
                let token = match scheme {
                    Some(sch) => {
                        let Some((given, rest)) = text.trim().split_once(' ') else {
                            if text.trim().eq_ignore_ascii_case(sch) {
                                return Intake::Malformed("empty token");
                            }
                            continue;
                        };
                        if !given.eq_ignore_ascii_case(sch) {
                            // Another scheme (e.g. Basic): not ours.
                            continue;
                        }
                        rest.trim()
                    }
                    None => text.trim(),
                };
                if token.is_empty() {
                    return Intake::Malformed("empty token");
                }
                if token.contains([' ', '\t', ',']) {
                    return Intake::Malformed("more than one token");
                }
                return Intake::Found(token, i);
            }
            TokenSource::Cookie(name) => {
                for v in req.headers.get_all(http::header::COOKIE) {
                    let Ok(text) = v.to_str() else { continue };
                    for pair in text.split(';') {
                        if let Some((k, val)) = pair.trim().split_once('=') {
                            if k == name && !val.is_empty() {
                                return Intake::Found(val.trim_matches('"'), i);
                            }
                        }
                    }
                }
            }
            TokenSource::Query(name) => {
                let Some(q) = req.uri.query() else { continue };
                for pair in q.split('&') {
                    let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
                    if k == name {
                        if val.is_empty() {
                            return Intake::Malformed("empty token");
                        }
                        return Intake::Found(val, i);
                    }
                }
            }
        }
    }
    Intake::Missing
}

/// Edits that remove the token's carrier before proxying. With
/// `forward == true` only a query parameter is removed (tokens in URLs end
/// up in upstream access logs).
pub fn carrier_edits(source: &TokenSource, req: &RequestView<'_>, forward: bool) -> HeaderEdits {
    let mut e = HeaderEdits::none();
    match source {
        TokenSource::Query(name) => e.remove_query_params.push(name.clone()),
        _ if forward => {}
        TokenSource::Header { name, .. } => e.remove.push(name.clone()),
        TokenSource::Cookie(name) => {
            let kept: Vec<String> = req
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|t| t.split(';'))
                .map(str::trim)
                .filter(|p| !p.is_empty() && p.split_once('=').is_none_or(|(k, _)| k != name))
                .map(str::to_string)
                .collect();
            if kept.is_empty() {
                e.remove.push(http::header::COOKIE);
            } else if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                e.set.push((http::header::COOKIE, v));
            }
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method, Uri};

    fn view<'a>(m: &'a Method, u: &'a Uri, h: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            method: m,
            uri: u,
            headers: h,
            client: None,
            request_id: "",
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn bearer_header() {
        let (m, u) = (Method::GET, Uri::from_static("/"));
        let s = [TokenSource::bearer()];
        let h = headers(&[("authorization", "bearer abc.def.ghi")]);
        assert_eq!(
            find_token(&s, &view(&m, &u, &h)),
            Intake::Found("abc.def.ghi", 0)
        );
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(find_token(&s, &view(&m, &u, &h)), Intake::Missing);
        let h = headers(&[("authorization", "Bearer ")]);
        assert_eq!(
            find_token(&s, &view(&m, &u, &h)),
            Intake::Malformed("empty token")
        );
        let h = headers(&[("authorization", "Bearer a b")]);
        assert_eq!(
            find_token(&s, &view(&m, &u, &h)),
            Intake::Malformed("more than one token")
        );
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(
            find_token(&s, &view(&m, &u, &h)),
            Intake::Malformed("more than one credential header")
        );
        let h = HeaderMap::new();
        assert_eq!(find_token(&s, &view(&m, &u, &h)), Intake::Missing);
    }

    #[test]
    fn configured_order_cookie_query_header() {
        let cfg: Vec<TokenSourceConfig> = vec![
            TokenSourceConfig {
                header: Some("X-Token".into()),
                scheme: None,
                cookie: None,
                query: None,
            },
            TokenSourceConfig {
                header: None,
                scheme: None,
                cookie: Some("at".into()),
                query: None,
            },
            TokenSourceConfig {
                header: None,
                scheme: None,
                cookie: None,
                query: Some("access_token".into()),
            },
        ];
        let s = TokenSource::compile_all("c.token_sources", &cfg).unwrap();
        let m = Method::GET;
        let u = Uri::from_static("/a?x=1&access_token=q.q.q");
        let h = headers(&[("cookie", "a=1; at=c.c.c; b=2")]);
        assert_eq!(find_token(&s, &view(&m, &u, &h)), Intake::Found("c.c.c", 1));
        let h = headers(&[("x-token", "h.h.h"), ("cookie", "at=c.c.c")]);
        assert_eq!(find_token(&s, &view(&m, &u, &h)), Intake::Found("h.h.h", 0));
        let h = HeaderMap::new();
        assert_eq!(find_token(&s, &view(&m, &u, &h)), Intake::Found("q.q.q", 2));

        let h = headers(&[("cookie", "a=1; at=c.c.c; b=2")]);
        let e = carrier_edits(&s[1], &view(&m, &u, &h), false);
        assert_eq!(e.set[0].1, "a=1; b=2");
        assert!(carrier_edits(&s[1], &view(&m, &u, &h), true).is_empty());
        assert_eq!(
            carrier_edits(&s[2], &view(&m, &u, &h), true).remove_query_params,
            ["access_token"]
        );
        assert_eq!(
            carrier_edits(&s[0], &view(&m, &u, &h), false).remove,
            [HeaderName::from_static("x-token")]
        );
    }

    #[test]
    fn source_config_errors() {
        let bad = TokenSourceConfig {
            header: Some("a".into()),
            scheme: None,
            cookie: Some("b".into()),
            query: None,
        };
        assert_eq!(
            TokenSource::compile_all("p", &[bad]).unwrap_err().path,
            "p[0]"
        );
        let bad = TokenSourceConfig {
            header: Some("bad header".into()),
            scheme: None,
            cookie: None,
            query: None,
        };
        assert_eq!(
            TokenSource::compile_all("p", &[bad]).unwrap_err().path,
            "p[0].header"
        );
    }
}
