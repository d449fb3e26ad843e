//! A route's path rewrite (`rewrite_prefix`) and header rules
//! (`[routes.request_headers]`, `[routes.response_headers]`), compiled.
//!
//! The rewrite works on the canonical path, on whole segments: the matched
//! `path_prefix` is replaced, the rest of the path (which starts at a
//! segment boundary) and the query are kept. The prefix was checked to be
//! plain segments, so a canonical path stays canonical: no `..`, `//` or
//! encoded slash can appear that was not already refused.
//!
//! Header rules match names as CGI and PHP fold them (letters and digits,
//! case-insensitively): `remove = ["X-Debug"]` also removes a client's
//! `X_Debug`, and `set` first removes every alias of the name, so no
//! spelling of a client's copy survives next to the configured one.

use crate::headers::fold;
use gatehouse_config::HeaderRulesConfig;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::HashSet;

/// `path_prefix` → `rewrite_prefix`.
#[derive(Debug, Clone)]
pub struct PrefixRewrite {
    /// The route's prefix without a trailing `/`.
    from: String,
    /// The replacement without a trailing `/` (`""`: strip).
    to: String,
    case_insensitive: bool,
}

impl PrefixRewrite {
    /// Compiles a validated `rewrite_prefix` for a route's `path_prefix`.
    pub fn new(path_prefix: &str, rewrite_prefix: &str, case_insensitive: bool) -> Self {
        Self {
            from: path_prefix.trim_end_matches('/').to_string(),
            to: rewrite_prefix.trim_end_matches('/').to_string(),
            case_insensitive,
        }
    }

    /// The rewritten path, or `None` when `path` is not under the prefix
    /// (it always is for a request the route matched).
    pub fn apply(&self, path: &str) -> Option<String> {
        let head = path.get(..self.from.len())?;
        let same = if self.case_insensitive {
            head.eq_ignore_ascii_case(&self.from)
        } else {
            head == self.from
        };
        let rest = &path[self.from.len()..];
        if !same || !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let mut out = String::with_capacity(self.to.len() + rest.len() + 1);
        out.push_str(&self.to);
        out.push_str(rest);
        if out.is_empty() {
            out.push('/');
        }
        Some(out)
    }
}

/// One table of header rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct HeaderEdit {
    set: Vec<(HeaderName, HeaderValue)>,
    /// Folded names of every header the rules set or remove.
    touched: HashSet<String>,
}

impl HeaderEdit {
    /// Compiles a validated table.
    pub fn new(c: &HeaderRulesConfig) -> Self {
        let set = c
            .set
            .iter()
            .filter_map(|(n, v)| {
                Some((
                    HeaderName::from_bytes(n.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        let touched = c.set.keys().chain(&c.remove).map(|n| fold(n)).collect();
        Self { set, touched }
    }

    /// True when the table changes nothing.
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty()
    }

    /// The names present in `headers` to remove first: every spelling of a
    /// name the rules set or remove.
    pub fn to_remove(&self, headers: &HeaderMap) -> Vec<HeaderName> {
        if self.touched.is_empty() {
            return Vec::new();
        }
        headers
            .keys()
            .filter(|n| self.touched.contains(&fold(n.as_str())))
            .cloned()
            .collect()
    }

    /// The headers to set, after [`Self::to_remove`]'s are removed.
    pub fn to_set(&self) -> &[(HeaderName, HeaderValue)] {
        &self.set
    }

    /// Applies the rules to a header map.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for n in self.to_remove(headers) {
            headers.remove(&n);
        }
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests;
