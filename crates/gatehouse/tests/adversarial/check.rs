//! Judging what happened: statuses, and what the upstream recorded under
//! every reading (see `readings.rs`). Produces one row per case; the table
//! is printed when anything fails.

use super::cases::Case;
use super::readings::protected_readings;
use gatehouse_testkit::raw::RawOutcome;
use gatehouse_testkit::EchoRecord;
use std::fmt::Write as _;

/// Header names connectors of the adversarial config inject.
pub(crate) const IDENTITY: [&str; 2] = ["x-user-id", "x-user-roles"];
/// Client-address, scheme and path-override headers a client must not set.
pub(crate) const ADDRESS: [&str; 29] = [
    "x-real-ip",
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-for",
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
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "x-original-url",
    "x-rewrite-url",
    "x-url-scheme",
    "front-end-https",
    "x-forwarded-protocol",
    "x-forwarded-client-cert",
    "x-scheme",
    "x-original-uri",
    "x-forwarded-uri",
    "x-original-host",
    "x-envoy-original-path",
];
/// Headers frameworks read as the real method (Rails, Laravel, Symfony,
/// Express `method-override`, ASP.NET, Spring's `HiddenHttpMethodFilter`).
pub(crate) const METHOD_OVERRIDE: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
/// Values only a spoofing client sends.
const SPOOF_MARKERS: [&str; 4] = ["admin", "6.6.6.6", "evil", "6666"];
/// The genuine subject of the valid token.
pub(crate) const GENUINE_SUB: &str = "alice";

/// One line of the table.
pub(crate) struct Row {
    pub id: String,
    pub name: String,
    pub request: String,
    pub status: String,
    pub upstream: Vec<String>,
    pub problems: Vec<String>,
}

/// A name as PHP, CGI and lighttpd compare it: letters and digits only,
/// lower-cased (`X.User.Id`, `x_user_id` and `X-User-Id` are one name).
fn norm(name: &str) -> String {
    name.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect()
}

/// True when `name` is one of `list` under [`norm`].
fn one_of(list: &[&str], name: &str) -> bool {
    let n = norm(name);
    list.iter().any(|l| norm(l) == n)
}

/// Printable form of raw bytes: the first line escaped, and the size.
pub(crate) fn show_request(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let first = text.split("\r\n").next().unwrap_or("");
    let escaped: String = first.escape_debug().collect();
    let mut s: String = escaped.chars().take(60).collect();
    if s.len() < escaped.len() {
        s.push('…');
    }
    format!("{s} [{} B]", bytes.len())
}

fn show_record(r: &EchoRecord) -> String {
    let hosts = r.header_values("host").join(",");
    let mut s = format!("{} {} host={hosts:?}", r.method, r.target.escape_debug());
    for (n, v) in &r.headers {
        if one_of(&IDENTITY, n) || one_of(&ADDRESS, n) || one_of(&["upgrade"], n) {
            let _ = write!(s, " {n}={v:?}");
        }
    }
    s
}

/// The invariants for one upstream record; `authorized`: the request that
/// produced it carried a valid token.
pub(crate) fn record_problems(r: &EchoRecord, authorized: bool) -> Vec<String> {
    let mut out = Vec::new();
    if !authorized {
        let hosts = r.header_values("host");
        for why in protected_readings(&r.method, &r.target, &hosts) {
            out.push(format!("TOKENLESS REACHED {why}"));
        }
        // A method-override header read as the method.
        for (n, v) in &r.headers {
            if one_of(&METHOD_OVERRIDE, n) {
                for why in protected_readings(v.trim(), &r.target, &hosts) {
                    out.push(format!("TOKENLESS REACHED {why} (method from {n}: {v:?})"));
                }
            }
        }
    }
    for (n, v) in &r.headers {
        if one_of(&IDENTITY, n) {
            if n.bytes().any(|b| !(b.is_ascii_alphanumeric() || b == b'-')) {
                out.push(format!(
                    "identity header variant {n}={v:?} reached the upstream"
                ));
            } else if !authorized {
                out.push(format!(
                    "identity header {n}={v:?} reached the upstream without a token"
                ));
            } else if norm(n) == "xuserid" && v != GENUINE_SUB {
                out.push(format!("{n}={v:?} is not the token's subject"));
            } else if SPOOF_MARKERS.iter().any(|m| v.contains(m)) {
                out.push(format!("client-sent {n}={v:?} reached the upstream"));
            }
        }
        if one_of(&ADDRESS, n) && SPOOF_MARKERS.iter().any(|m| v.contains(m)) {
            out.push(format!("client-sent {n}={v:?} reached the upstream"));
        }
        if one_of(&METHOD_OVERRIDE, n) {
            out.push(format!("method override {n}={v:?} reached the upstream"));
        }
        if n.bytes().any(|b| !(b.is_ascii_alphanumeric() || b == b'-')) {
            out.push(format!(
                "header name {n:?} outside [A-Za-z0-9-] reached the upstream"
            ));
        }
        if norm(n) == "upgrade" {
            out.push(format!(
                "Upgrade: {v:?} reached the upstream on a route that allows no upgrade"
            ));
        }
    }
    let xff = r.header_values("x-forwarded-for").join(",");
    let first = xff.split(',').next().unwrap_or("").trim();
    if first != "127.0.0.1" {
        out.push(format!(
            "X-Forwarded-For {xff:?} does not start with the client address"
        ));
    }
    out
}

/// The `error` of one of Gatehouse's JSON error bodies.
fn error_code(r: &gatehouse_testkit::raw::RawResponse) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v.get("error")?.as_str().map(str::to_string)
}

/// Judges every case; `records` is everything the upstream received.
pub(crate) fn judge(
    cases: &[Case],
    outcomes: &[Result<RawOutcome, String>],
    records: &[EchoRecord],
) -> Vec<Row> {
    let mut rows: Vec<Row> = cases
        .iter()
        .zip(outcomes)
        .map(|(c, o)| {
            let mut problems = Vec::new();
            let status = match o {
                Ok(o) => {
                    let first = o.first_status().unwrap_or(0);
                    if !c.expect.is_empty() && !c.expect.contains(&first) {
                        problems.push(format!(
                            "status {first}, expected one of {:?} (0 = closed)",
                            c.expect
                        ));
                    }
                    for r in &o.responses {
                        if r.status >= 500 {
                            problems.push(format!("5xx answer {}: {}", r.status, r.body_text()));
                        }
                    }
                    match o.responses.first().and_then(error_code) {
                        Some(code) => format!("{} ({code})", o.summary()),
                        None => o.summary(),
                    }
                }
                Err(e) => {
                    problems.push(format!("exchange failed: {e}"));
                    "error".to_string()
                }
            };
            Row {
                id: c.id.clone(),
                name: c.name.clone(),
                request: show_request(&c.bytes),
                status,
                upstream: Vec::new(),
                problems,
            }
        })
        .collect();
    let mut unattributed = Row {
        id: "??".into(),
        name: "upstream records without a known X-Case".into(),
        request: String::new(),
        status: String::new(),
        upstream: Vec::new(),
        problems: Vec::new(),
    };
    for r in records {
        let tag = r
            .header_values("x-case")
            .first()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let base = tag.strip_suffix('s').unwrap_or(&tag);
        let idx = cases.iter().position(|c| c.id == base);
        // Smuggled requests (`cNNs`) and the sentinel carry no token.
        let authorized = idx.is_some_and(|i| cases[i].authorized) && base == tag;
        let mut problems = record_problems(r, authorized);
        let row = match idx {
            Some(i) => &mut rows[i],
            None if tag == "sentinel" => {
                // Only the invariants; the sentinel itself is public.
                if !problems.is_empty() {
                    unattributed.upstream.push(show_record(r));
                    unattributed.problems.append(&mut problems);
                }
                continue;
            }
            None => &mut unattributed,
        };
        let prefix = if base == tag { "" } else { "[smuggled] " };
        row.upstream.push(format!("{prefix}{}", show_record(r)));
        row.problems.append(&mut problems);
    }
    for (row, c) in rows.iter_mut().zip(cases) {
        if c.expect == super::cases::OK && row.upstream.is_empty() && row.status.starts_with("200")
        {
            row.problems
                .push("control: a public request did not reach the upstream".into());
        }
    }
    if !unattributed.upstream.is_empty() || !unattributed.problems.is_empty() {
        rows.push(unattributed);
    }
    rows
}

/// The table: every row, failing rows marked `FAIL`.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<4} {:<4} {:<44} {:<26} upstream saw / problems",
        "", "id", "case", "status"
    );
    for r in rows {
        let mark = if r.problems.is_empty() { "ok" } else { "FAIL" };
        let seen = if r.upstream.is_empty() {
            "-".to_string()
        } else {
            r.upstream.join(" || ")
        };
        let _ = writeln!(
            s,
            "{mark:<4} {:<4} {:<44} {:<26} {seen}",
            r.id, r.name, r.status
        );
        let _ = writeln!(s, "          bytes: {}", r.request);
        for p in &r.problems {
            let _ = writeln!(s, "          !! {p}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(method: &str, target: &str, headers: &[(&str, &str)]) -> EchoRecord {
        EchoRecord {
            method: method.into(),
            target: target.into(),
            version: "HTTP/1.1".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn each_invariant_can_fail() {
        let xff = ("x-forwarded-for", "127.0.0.1");
        let host = ("host", "public.test");
        assert!(record_problems(&rec("GET", "/public", &[host, xff]), false).is_empty());
        for (r, authorized) in [
            (rec("GET", "//api/x", &[host, xff]), false),
            (
                rec(
                    "GET",
                    "/orders/1",
                    &[host, xff, ("x-http-method-override", "DELETE")],
                ),
                false,
            ),
            (rec("GET", "/x", &[("host", "Admin.Local."), xff]), false),
            (rec("GET", "/x", &[host, xff, ("x_user_id", "alice")]), true),
            (rec("GET", "/x", &[host, xff, ("x-user-id", "admin")]), true),
            (
                rec("GET", "/x", &[host, xff, ("x-user-id", "alice")]),
                false,
            ),
            (
                rec(
                    "GET",
                    "/x",
                    &[host, ("x-forwarded-for", "6.6.6.6, 127.0.0.1")],
                ),
                false,
            ),
            (
                rec("GET", "/x", &[host, xff, ("x-real-ip", "6.6.6.6")]),
                false,
            ),
            (rec("GET", "/x", &[host]), false),
        ] {
            assert!(!record_problems(&r, authorized).is_empty(), "{r:?}");
        }
    }
}
