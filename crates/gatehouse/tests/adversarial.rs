//! Adversarial end-to-end suite (issue 10, item 8): hostile requests over
//! raw sockets against the real binary, on the config of the issue — a
//! public catch-all `/`, a JWT-protected `/api`, a JWT-protected
//! `POST/PUT/DELETE /orders` and a JWT-protected `host = "admin.local"`.
//!
//! The recording upstream keeps what it received; the suite fails if any
//! tokenless request reaches it as a protected resource under ANY reading
//! (RFC 3986 normalisation, slash merging, `;` stripping, backslash as
//! slash, repeated decoding, upper-cased method, Host or absolute-form
//! authority), if a client-sent identity or client-address header reaches
//! it, on an unexpected status, on a 5xx, or on a panic. A real NGINX
//! (`merge_slashes on`) is the upstream of a second pass over the path
//! cases: it must never answer "PROTECTED" to a tokenless request.
//!
//! On failure the table (request → status → what the upstream saw) is
//! printed. `cargo nextest run -p gatehouse --test adversarial`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "adversarial/cases.rs"]
mod cases;
#[path = "adversarial/check.rs"]
mod check;
#[path = "adversarial/readings.rs"]
mod readings;

use gatehouse_testkit::raw::{raw_exchange, RawOptions, RawOutcome};
use gatehouse_testkit::tokens::{claims, unsigned_none_token, TestKey};
use gatehouse_testkit::{jwks, ConfigBuilder, EchoUpstream, Gatehouse, Nginx};
use std::net::SocketAddr;

/// The `gatehouse` binary Cargo built for these tests.
const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

const ISS: &str = "https://idp.test";
const AUD: &str = "api";

/// The config of the issue, every route to `upstream`.
fn config(upstream: SocketAddr, key: &TestKey) -> String {
    let keys = jwks(&[(key, "k1")]).to_string();
    let head = ConfigBuilder::new()
        .upstream_with(
            "up",
            upstream,
            "connect_timeout = \"2s\"\nread_timeout = \"10s\"",
        )
        .render();
    format!(
        r#"
{head}
[connectors.jwt]
kind = "jwt"
jwks = '{keys}'
algorithms = ["RS256"]
issuers = ["{ISS}"]
audiences = ["{AUD}"]
token_sources = [{{ header = "Authorization" }}, {{ cookie = "at" }}, {{ query = "access_token" }}]

[connectors.jwt.inject_headers]
"X-User-Id" = "sub"
"X-User-Roles" = "$.roles"

[[routes]]
name = "public"
path_prefix = "/"
upstream = "up"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "up"
connectors = ["jwt"]

[[routes]]
name = "orders-write"
path_prefix = "/orders"
methods = ["POST", "PUT", "DELETE"]
upstream = "up"
connectors = ["jwt"]

[[routes]]
name = "admin"
host = "admin.local"
path_prefix = "/"
upstream = "up"
connectors = ["jwt"]
"#
    )
}

fn tokens(key: &TestKey) -> cases::Tokens {
    let mut c = claims(check::GENUINE_SUB, ISS, AUD, 3600);
    c["roles"] = serde_json::json!(["reader"]);
    let mut forged = claims("admin", ISS, AUD, 3600);
    forged["roles"] = serde_json::json!(["admin"]);
    cases::Tokens {
        valid: key.mint(&c, Some("k1")),
        forged: unsigned_none_token(&forged),
    }
}

fn exchange(addr: SocketAddr, case: &cases::Case) -> Result<RawOutcome, String> {
    let opts = RawOptions {
        follow_up: case.follow_up.then(cases::sentinel),
        ..RawOptions::default()
    };
    raw_exchange(addr, &case.bytes, &opts).map_err(|e| e.to_string())
}

/// Panic lines in the log, and an exit (a crash) as one more entry.
fn panics(gh: &mut Gatehouse) -> Vec<String> {
    let mut out: Vec<String> = gh
        .logs()
        .lines()
        .filter(|l| l.contains("panicked"))
        .map(str::to_string)
        .collect();
    if !gh.is_running() {
        out.push("gatehouse exited during the suite".to_string());
    }
    out
}

/// Sends `cases` to a fresh Gatehouse in front of the recording upstream
/// and fails with the table if any case fails.
fn run_against_echo(cases: &[cases::Case], key: &TestKey) {
    let echo = EchoUpstream::start();
    let mut gh = Gatehouse::start(BIN, &config(echo.addr(), key)).expect("starting gatehouse");
    let outcomes: Vec<_> = cases
        .iter()
        .map(|c| exchange(gh.listen_addr(), c))
        .collect();
    let rows = check::judge(cases, &outcomes, &echo.recorded());
    let failed = rows.iter().filter(|r| !r.problems.is_empty()).count();
    let panics = panics(&mut gh);
    let table = check::table(&rows);
    println!("{table}");
    assert!(
        failed == 0 && panics.is_empty(),
        "{failed} of {} adversarial cases failed; panics: {panics:?}\n{table}",
        cases.len()
    );
}

#[test]
fn hostile_requests_never_reach_a_protected_resource_without_a_token() {
    let key = TestKey::rsa(1);
    let all = cases::all(&tokens(&key));
    let main: Vec<_> = all.into_iter().filter(|c| !c.carriers).collect();
    assert!(main.len() >= 40, "the suite must send at least 40 requests");
    run_against_echo(&main, &key);
}

/// Issue item 4: a valid token next to a forged one in a second carrier
/// (cookie, `Authorization`, query) is a 400, never "first wins".
#[test]
fn token_carriers_are_unambiguous() {
    let key = TestKey::rsa(1);
    let all = cases::all(&tokens(&key));
    let carriers: Vec<_> = all.into_iter().filter(|c| c.carriers).collect();
    assert_eq!(carriers.len(), 4);
    run_against_echo(&carriers, &key);
}

/// NGINX as the upstream: `/api/` and host `admin.local` answer
/// "PROTECTED", `/` answers "public <request_uri>".
const NGINX_SERVER: &str = r#"
        server_name _;
        merge_slashes on;
        location = /api { return 200 "PROTECTED $request_uri"; }
        location /api/ { return 200 "PROTECTED $request_uri"; }
        location /orders/ {
            if ($request_method ~ ^(POST|PUT|DELETE)$) { return 200 "PROTECTED $request_uri"; }
            return 200 "public $request_uri";
        }
        location / {
            if ($host = admin.local) { return 200 "PROTECTED host $request_uri"; }
            return 200 "public $request_uri";
        }
"#;

#[test]
fn nginx_upstream_never_serves_protected_to_a_tokenless_request() {
    let nginx = Nginx::start(NGINX_SERVER).expect("NGINX is part of this suite (CI installs it)");
    let key = TestKey::rsa(1);
    let mut gh = Gatehouse::start(BIN, &config(nginx.addr(), &key)).expect("starting gatehouse");
    let all = cases::all(&tokens(&key));
    let subset: Vec<_> = all.iter().filter(|c| c.nginx || !c.authorized).collect();
    let mut failures = Vec::new();
    let mut table = String::new();
    let mut seen_public = false;
    for c in &subset {
        let out = exchange(gh.listen_addr(), c);
        let bodies: Vec<String> = match &out {
            Ok(o) => o
                .responses
                .iter()
                .map(|r| format!("{} {}", r.status, r.body_text()))
                .collect(),
            Err(e) => vec![format!("error: {e}")],
        };
        let protected = bodies.iter().any(|b| b.contains("PROTECTED"));
        let server_error = out
            .as_ref()
            .map(|o| o.responses.iter().any(|r| r.status >= 500))
            .unwrap_or(true);
        seen_public |= bodies.iter().any(|b| b.starts_with("200 public"));
        let mark = if protected || server_error {
            "FAIL"
        } else {
            "ok"
        };
        let line = format!(
            "{mark:<4} {:<4} {:<44} {}\n",
            c.id,
            check::show_request(&c.bytes),
            bodies.join(" || ").escape_debug()
        );
        if mark == "FAIL" {
            failures.push(line.clone());
        }
        table.push_str(&line);
    }
    println!("{table}");
    assert!(
        seen_public,
        "no request reached NGINX at all:\n{table}\n{}",
        nginx.error_log()
    );
    let panics = panics(&mut gh);
    assert!(
        failures.is_empty() && panics.is_empty(),
        "{} of {} requests reached NGINX's protected locations without a token (or got a 5xx); panics: {panics:?}\n{table}",
        failures.len(),
        subset.len()
    );
}
