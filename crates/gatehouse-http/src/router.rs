//! Route matching: host (exact, then `*.suffix`, then any), longest
//! whole-segment path prefix, method. Built once per config; lookups are
//! hash lookups — one per host candidate (the host, then each of its
//! `.suffix`es) and per path candidate (the path, then each prefix ending at
//! or just before a `/`) — so their cost does not grow with the number of
//! routes, and a lookup allocates only for a host or case-insensitive path
//! with upper-case letters.

use gatehouse_config::{normalize_host_pattern, RouteConfig};
use http::Method;
use std::borrow::Cow;
use std::collections::HashMap;

#[derive(Debug)]
struct Entry {
    methods: Option<Vec<Method>>,
    route: usize,
    /// Order among entries of the same prefix length: routes with a method
    /// list first, then config order.
    rank: (bool, usize),
}

/// The routes of one host pattern, by prefix.
#[derive(Debug, Default)]
struct Group {
    /// Case-sensitive prefixes.
    exact: HashMap<String, Vec<Entry>>,
    /// Case-insensitive prefixes, lower-cased (ASCII).
    folded: HashMap<String, Vec<Entry>>,
}

/// A compiled routing table.
#[derive(Debug, Default)]
pub struct Router {
    /// Exact hosts (lower case, no port).
    hosts: HashMap<String, Group>,
    /// `*.example.com` patterns, keyed `.example.com`.
    suffixes: HashMap<String, Group>,
    /// Routes without a host.
    any: Option<Group>,
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// The lengths of the prefixes of `path` that can cover it on whole
/// segments, longest first: the path itself, then for each `/` (right to
/// left) the prefix ending with it and the one ending just before it.
fn candidate_lengths(path: &str) -> impl Iterator<Item = usize> + '_ {
    let b = path.as_bytes();
    let slashes = b
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, c)| **c == b'/')
        .flat_map(|(i, _)| [i + 1, i]);
    std::iter::once(b.len())
        .chain(slashes)
        .filter(|n| *n > 0)
        .scan(usize::MAX, |last, n| {
            let fresh = n < *last;
            *last = n.min(*last);
            Some(fresh.then_some(n))
        })
        .flatten()
}

impl Group {
    fn insert(&mut self, prefix: &str, case_insensitive: bool, entry: Entry) {
        let (map, key) = if case_insensitive {
            (&mut self.folded, prefix.to_ascii_lowercase())
        } else {
            (&mut self.exact, prefix.to_string())
        };
        let list = map.entry(key).or_default();
        list.push(entry);
        list.sort_by_key(|e| e.rank);
    }

    /// The route of the longest prefix covering `path` whose method list
    /// (if any) has `method`.
    fn find(&self, path: &str, method: &Method) -> Option<usize> {
        let folded = (!self.folded.is_empty()).then(|| lower(path));
        let ok = |e: &&Entry| e.methods.as_ref().is_none_or(|ms| ms.contains(method));
        let best = |exact: Option<&Vec<Entry>>, folded: Option<&Vec<Entry>>| {
            exact
                .into_iter()
                .chain(folded)
                .flatten()
                .filter(ok)
                .min_by_key(|e| e.rank)
                .map(|e| e.route)
        };
        for n in candidate_lengths(path) {
            let folded = folded.as_ref().and_then(|f| self.folded.get(&f[..n]));
            if let Some(route) = best(self.exact.get(&path[..n]), folded) {
                return Some(route);
            }
        }
        // `/` covers every path, even one that does not start with `/` (for
        // one that does, it was the last candidate above).
        if path.starts_with('/') {
            return None;
        }
        best(self.exact.get("/"), self.folded.get("/"))
    }
}

/// Drops a `:port` suffix (keeps IPv6 literals intact).
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

impl Router {
    /// Builds the table; route indexes are positions in `routes`.
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut r = Router::default();
        for (i, route) in routes.iter().enumerate() {
            let group = match route.host.as_deref().map(normalize_host_pattern) {
                None => r.any.get_or_insert_with(Group::default),
                Some(h) => match h.strip_prefix('*') {
                    Some(suffix) => r.suffixes.entry(suffix.to_string()).or_default(),
                    None => r.hosts.entry(h).or_default(),
                },
            };
            let methods: Option<Vec<Method>> = route.methods.as_ref().map(|ms| {
                ms.iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect()
            });
            let entry = Entry {
                rank: (methods.is_none(), i),
                methods,
                route: i,
            };
            group.insert(&route.path_prefix, route.path_case_insensitive, entry);
        }
        r
    }

    /// Finds the route for a request. The most specific host group that has
    /// a matching route wins (the exact host, then the longest matching
    /// `*.suffix`, then routes without a host); within it, the longest prefix.
    pub fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Option<usize> {
        if let Some(h) = host.map(host_without_port).map(lower) {
            if let Some(found) = self
                .hosts
                .get(h.as_ref())
                .and_then(|g| g.find(path, method))
            {
                return Some(found);
            }
            if !self.suffixes.is_empty() {
                // `.example.com` covers `a.example.com`, not `.example.com` itself.
                for (i, _) in h.match_indices('.').filter(|(i, _)| *i > 0) {
                    let found = self
                        .suffixes
                        .get(&h[i..])
                        .and_then(|g| g.find(path, method));
                    if found.is_some() {
                        return found;
                    }
                }
            }
        }
        self.any.as_ref().and_then(|g| g.find(path, method))
    }
}

#[cfg(test)]
mod tests;
