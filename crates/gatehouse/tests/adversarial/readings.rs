//! "Readings": the ways a downstream server may interpret the request that
//! Gatehouse forwarded. Each is a small pure function; [`path_readings`]
//! applies them in every combination (to a fixed point), so a request is
//! judged protected if ANY server reading it ANY of these ways would serve
//! the protected resource.
//!
//! - `decode`: percent-decode everything once (WSGI decodes `%2F`); applied
//!   repeatedly this is double (triple, ...) decoding.
//! - `unreserved`: RFC 3986 §6.2.2.2, decode only unreserved characters.
//! - `dots`: RFC 3986 §5.2.4 remove dot segments.
//! - `merge`: merge repeated slashes (NGINX `merge_slashes`, Python).
//! - `params`: strip `;params` from every segment (Tomcat / Servlet).
//! - `backslash`: `\` read as `/` (IIS, some frameworks).
//! - `windows`: trailing dots and spaces of a segment dropped (Windows path
//!   handling: IIS, ASP.NET on Windows).
//!
//! Methods are also read upper-cased (Django, Werkzeug), hosts lower-cased,
//! without port, trailing dot or userinfo, from `Host` or from the
//! absolute-form / authority-form target.

use std::collections::BTreeMap;

/// Above this many variants the closure stops (pathological inputs only).
const MAX_VARIANTS: usize = 2048;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_with(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let c = h * 16 + l;
                if keep(c) {
                    out.push(c);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-decodes every `%XX` once (invalid escapes are kept).
pub(crate) fn percent_decode(s: &str) -> String {
    decode_with(s, |_| true)
}

/// Decodes only unreserved characters (`ALPHA / DIGIT / - . _ ~`).
pub(crate) fn decode_unreserved(s: &str) -> String {
    decode_with(s, |c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
}

/// RFC 3986 §5.2.4 `remove_dot_segments`.
pub(crate) fn remove_dot_segments(path: &str) -> String {
    let mut input = path.to_string();
    let mut out = String::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_string();
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_string();
        } else if input.starts_with("/./") {
            input = input[2..].to_string();
        } else if input == "/." {
            input = "/".to_string();
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." {
                "/".to_string()
            } else {
                input[3..].to_string()
            };
            match out.rfind('/') {
                Some(i) => out.truncate(i),
                None => out.clear(),
            }
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input = input[end..].to_string();
        }
    }
    out
}

/// Merges runs of `/` into one.
pub(crate) fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Removes `;params` from every segment (`/a;x=1/b;` → `/a/b`).
pub(crate) fn strip_params(path: &str) -> String {
    path.split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads `\` as `/`.
pub(crate) fn backslash_as_slash(path: &str) -> String {
    path.replace('\\', "/")
}

/// Splits a request target into (authority, path). Origin-form has no
/// authority; absolute-form (`scheme://authority/path`) and authority-form
/// (`host:port`, CONNECT) have one. The query and fragment are dropped.
pub(crate) fn split_target(target: &str) -> (Option<String>, String) {
    let no_frag = target.split('#').next().unwrap_or("");
    let (authority, rest) = match no_frag.find("://") {
        Some(i)
            if no_frag[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            let after = &no_frag[i + 3..];
            let end = after.find(['/', '?']).unwrap_or(after.len());
            (Some(after[..end].to_string()), &after[end..])
        }
        _ if !no_frag.starts_with('/') && no_frag != "*" => (Some(no_frag.to_string()), ""),
        _ => (None, no_frag),
    };
    let path = rest.split('?').next().unwrap_or("");
    (authority, path.to_string())
}

/// A host as a router would compare it: userinfo, port and trailing dots
/// removed, lower-cased.
pub(crate) fn host_reading(host: &str) -> String {
    let h = host.trim();
    let h = h.rsplit_once('@').map_or(h, |(_, h)| h);
    let h = if h.starts_with('[') {
        h.split_inclusive(']').next().unwrap_or(h)
    } else {
        match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        }
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Drops trailing dots and spaces of every segment but `.` and `..`.
pub(crate) fn windows_trim(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg == "." || seg == ".." {
                seg
            } else {
                seg.trim_end_matches(['.', ' '])
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

type Transform = (&'static str, fn(&str) -> String);

const TRANSFORMS: [Transform; 7] = [
    ("decode", percent_decode),
    ("unreserved", decode_unreserved),
    ("dots", remove_dot_segments),
    ("merge", merge_slashes),
    ("params", strip_params),
    ("backslash", backslash_as_slash),
    ("windows", windows_trim),
];

/// Every reading of `path`: variant → the transforms that produced it
/// (shortest chain found first; `as-sent` for the path itself).
pub(crate) fn path_readings(path: &str) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    seen.insert(path.to_string(), "as-sent".to_string());
    let mut frontier = vec![path.to_string()];
    while let Some(p) = frontier.pop() {
        if seen.len() >= MAX_VARIANTS {
            break;
        }
        let how = seen.get(&p).cloned().unwrap_or_default();
        for (name, f) in TRANSFORMS {
            let mut v = f(&p);
            if !v.starts_with('/') {
                v.insert(0, '/');
            }
            if !seen.contains_key(&v) {
                let chain = if how == "as-sent" {
                    name.to_string()
                } else {
                    format!("{how}+{name}")
                };
                seen.insert(v.clone(), chain);
                frontier.push(v);
            }
        }
    }
    seen
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

/// The protected resources of the adversarial config, under one reading.
pub(crate) fn protected_by(method: &str, path: &str, host: Option<&str>) -> Option<&'static str> {
    if under(path, "/api") {
        return Some("/api route");
    }
    if under(path, "/orders") && ["POST", "PUT", "DELETE"].contains(&method) {
        return Some("/orders write route");
    }
    if host == Some("admin.local") {
        return Some("admin.local host route");
    }
    None
}

/// Every way the recorded request reads as a protected resource, as
/// human-readable explanations (empty: no reading reaches one).
pub(crate) fn protected_readings(method: &str, target: &str, hosts: &[&str]) -> Vec<String> {
    let (authority, path) = split_target(target);
    let mut host_set: Vec<String> = hosts.iter().map(|h| host_reading(h)).collect();
    if let Some(a) = &authority {
        host_set.push(host_reading(a));
    }
    let mut found = Vec::new();
    for h in &host_set {
        if let Some(what) = protected_by("GET", "/", Some(h)) {
            found.push(format!("{what} via host {h:?}"));
            break;
        }
    }
    let methods = [method.to_string(), method.to_ascii_uppercase()];
    for (variant, how) in path_readings(&path) {
        for (i, m) in methods.iter().enumerate() {
            if let Some(what) = protected_by(m, &variant, None) {
                let mcase = if i == 1 && m != method {
                    " + method upper-cased"
                } else {
                    ""
                };
                found.push(format!("{what} via {how}{mcase} → {m} {variant}"));
                break;
            }
        }
        if found.len() >= 3 {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms() {
        assert_eq!(percent_decode("/%61pi%2fx%zz%2"), "/api/x%zz%2");
        assert_eq!(decode_unreserved("/%61pi%2fx"), "/api%2fx");
        assert_eq!(remove_dot_segments("/x/../api/secret"), "/api/secret");
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("/../api"), "/api");
        assert_eq!(merge_slashes("//api///x"), "/api/x");
        assert_eq!(strip_params("/x/..;/api;x=1/secret"), "/x/../api/secret");
        assert_eq!(backslash_as_slash("/x/..\\api"), "/x/../api");
        assert_eq!(host_reading("ADMIN.local.:80"), "admin.local");
        assert_eq!(host_reading("u@admin.local"), "admin.local");
        assert_eq!(
            split_target("http://admin.local:80/secret?q=1"),
            (Some("admin.local:80".into()), "/secret".into())
        );
        assert_eq!(split_target("/a?b"), (None, "/a".into()));
        assert_eq!(
            split_target("admin.local:443"),
            (Some("admin.local:443".into()), String::new())
        );
    }

    #[test]
    fn readings_find_the_issue_examples() {
        for p in [
            "/%61pi/secret",
            "/%2561pi/secret",
            "//api/secret",
            "/api;x=1/secret",
            "/api%2fsecret",
            "/api%252fsecret",
            "/x/..%2fapi/secret",
            "/x/..;/api/secret",
            "/x/..\\api/secret",
            "/x/%252e%252e/api/secret",
            "/./api",
        ] {
            assert!(
                !protected_readings("GET", p, &["public.test"]).is_empty(),
                "{p}"
            );
        }
        assert!(!protected_readings("post", "/orders/1", &[]).is_empty());
        assert!(!protected_readings("GET", "/x", &["Admin.Local."]).is_empty());
        assert!(!protected_readings("GET", "http://admin.local/x", &[]).is_empty());
        for p in [
            "/public/x",
            "/apix/secret",
            "/public?x=/../api/secret",
            "/orders/1",
        ] {
            assert!(
                protected_readings("GET", p, &["public.test"]).is_empty(),
                "{p}"
            );
        }
    }
}
