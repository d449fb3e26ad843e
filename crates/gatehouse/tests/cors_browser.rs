//! End-to-end in a real browser (issue 26): headless Debian `chromium`,
//! driven by `chromedriver`, loads a page from one origin (a testkit
//! `PageSite`) and `fetch()`es a route of the real binary on another origin
//! with a bearer token, a `jwt` connector in front of the echo upstream and
//! the route's `[routes.cors]` section. What the page could see is the
//! assertion: the browser, not the test, enforces CORS.
//!
//! - (a) the listed origin with a valid token: the `Authorization` header
//!   forces a preflight, Gatehouse answers it, the page reads 200 and the
//!   echo body;
//! - (b) an unlisted origin: `fetch()` rejects (a CORS failure);
//! - (c) the listed origin with a token signed by the wrong key: the page
//!   reads 401 and the exposed `WWW-Authenticate`.
//!
//! No preflight ever reaches the upstream, and only (a)'s request does.
//! Needs `chromium` and `chromium-driver` (`make deps`): without them the
//! test fails, it never skips.
#![allow(clippy::unwrap_used)]

mod common;

use common::BIN;
use gatehouse_testkit::raw::{raw_exchange, RawOptions};
use gatehouse_testkit::tokens::claims;
use gatehouse_testkit::{
    jwks, Browser, ConfigBuilder, Credentials, EchoUpstream, Gatehouse, MockIdp, MockResponse,
    PageFetch, PageSite, TestKey,
};
use std::time::Instant;

const ISS: &str = "https://idp.test";
const AUD: &str = "orders-api";
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The page both sites serve; the `data:` icon spares a `/favicon.ico` request.
const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\">\
                    <link rel=\"icon\" href=\"data:,\"><title>CORS test page</title></head>\
                    <body>Gatehouse CORS test page</body></html>";

fn config(echo: &EchoUpstream, idp: &MockIdp, allowed_origin: &str) -> String {
    let head = ConfigBuilder::new().upstream("echo", echo.addr()).render();
    format!(
        r#"
{head}
[connectors.corp_jwt]
kind = "jwt"
jwks_url = "{jwks}"
algorithms = ["RS256"]
issuers = ["{ISS}"]
audiences = ["{AUD}"]

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "echo"
connectors = ["corp_jwt"]
[routes.cors]
allow_origins = ["{allowed_origin}"]
allow_methods = ["GET", "POST"]
allow_headers = ["authorization", "content-type"]
expose_headers = ["x-request-id", "www-authenticate"]
allow_credentials = true
max_age = "10m"
"#,
        jwks = idp.url(JWKS_PATH)
    )
}

/// A raw request to Gatehouse and what it answered (status, headers, body),
/// for assertions on the preflight and for failure messages.
fn exchange(gh: &Gatehouse, request: &str) -> String {
    match raw_exchange(gh.listen_addr(), request.as_bytes(), &RawOptions::default()) {
        Ok(out) => match out.responses.first() {
            Some(r) => format!(
                "{} {:?} body={:?}",
                r.status,
                r.headers,
                r.body_text().chars().take(300).collect::<String>()
            ),
            None => format!("no response ({})", out.summary()),
        },
        Err(e) => format!("exchange failed: {e}"),
    }
}

/// The preflight a browser sends before a `GET /orders/7` with an
/// `Authorization` header from `origin`.
fn preflight_request(gh: &Gatehouse, origin: &str) -> String {
    format!(
        "OPTIONS /orders/7 HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: GET\r\n\
         Access-Control-Request-Headers: authorization\r\nConnection: close\r\n\r\n",
        gh.listen_addr()
    )
}

/// What the browser console said and what Gatehouse answers to the same
/// preflight and request: the context of a failed browser assertion.
fn explain(browser: &Browser, gh: &Gatehouse, origin: &str, auth: &str) -> String {
    let actual = exchange(
        gh,
        &format!(
            "GET /orders/7 HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\nAuthorization: {auth}\r\n\
             Connection: close\r\n\r\n",
            gh.listen_addr()
        ),
    );
    format!(
        "\nbrowser console: {:#?}\nGatehouse preflight answer: {}\nGatehouse answer to the request: {actual}",
        browser.console().unwrap_or_default(),
        exchange(gh, &preflight_request(gh, origin))
    )
}

fn header<'a>(answer: &'a gatehouse_testkit::raw::RawResponse, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_page_on_a_listed_origin_reads_the_route_and_others_are_refused_by_the_browser() {
    let started = Instant::now();
    let (echo, idp) = (EchoUpstream::start(), MockIdp::start());
    let (key, wrong_key) = (TestKey::rsa(1), TestKey::rsa(2));
    idp.route(
        "GET",
        JWKS_PATH,
        MockResponse::json(200, jwks(&[(&key, "k1")])),
    );
    let (allowed, unlisted) = (PageSite::start(PAGE), PageSite::start(PAGE));
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, &allowed.origin())).unwrap();
    let browser = Browser::start().unwrap();
    let target = gh.url("/orders/7");
    let valid = format!(
        "Bearer {}",
        key.mint(&claims("alice", ISS, AUD, 600), Some("k1"))
    );
    let forged = format!(
        "Bearer {}",
        wrong_key.mint(&claims("alice", ISS, AUD, 600), Some("k1"))
    );

    // Gatehouse's own answer to the preflight the browser is about to send.
    let request = preflight_request(&gh, &allowed.origin());
    let out = raw_exchange(gh.listen_addr(), request.as_bytes(), &RawOptions::default()).unwrap();
    let answer = out.responses.first().expect("an answer to the preflight");
    println!("preflight: {} {:?}", answer.status, answer.headers);
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(
        header(answer, "access-control-allow-origin"),
        Some(allowed.origin().as_str())
    );
    assert_eq!(
        header(answer, "access-control-allow-credentials"),
        Some("true")
    );
    let methods = header(answer, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.to_ascii_uppercase().contains("GET"), "{answer:?}");
    let headers = header(answer, "access-control-allow-headers").unwrap_or_default();
    assert!(
        headers.to_ascii_lowercase().contains("authorization"),
        "{answer:?}"
    );
    assert_eq!(echo.requests(), 0, "the preflight reached the upstream");

    let fetch = |site: &PageSite, auth: &str| -> PageFetch {
        browser
            .fetch_from_page(
                &site.url(),
                &target,
                &[("Authorization", auth)],
                "GET",
                Credentials::Include,
            )
            .unwrap()
    };

    // (a) The listed origin, a valid token: preflight, then the request.
    let a = fetch(&allowed, &valid);
    let echo_json = format!("<echo JSON, {} bytes>", a.body.len());
    println!(
        "browser case (a): {:?}",
        PageFetch {
            body: echo_json,
            ..a.clone()
        }
    );
    let why = || explain(&browser, &gh, &allowed.origin(), &valid);
    assert!(a.ok_network, "fetch() rejected: {a:?}{}", why());
    assert_eq!(a.status, 200, "{a:?}{}", why());
    let echoed: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(echoed["path"], "/orders/7", "{a:?}");
    assert_eq!(echoed["method"], "GET", "{a:?}");
    assert_eq!(echo.requests(), 1);

    // (b) An unlisted origin (another port): the browser refuses the answer.
    let b = fetch(&unlisted, &valid);
    println!("browser case (b): {b:?}");
    let console = browser.console().unwrap_or_default();
    println!("browser case (b) console: {console:?}");
    let refused = exchange(&gh, &preflight_request(&gh, &unlisted.origin()));
    println!("preflight from the unlisted origin: {refused}");
    assert!(
        !b.ok_network,
        "an unlisted origin read the answer: {b:?}{}",
        explain(&browser, &gh, &unlisted.origin(), &valid)
    );
    assert_eq!(b.error.as_deref(), Some("TypeError: Failed to fetch"));
    assert_eq!(
        echo.requests(),
        1,
        "a refused preflight must keep the request from the upstream"
    );

    // (c) The listed origin, a token signed by another key: a readable 401.
    let c = fetch(&allowed, &forged);
    println!("browser case (c): {c:?}");
    let why = || explain(&browser, &gh, &allowed.origin(), &forged);
    assert!(c.ok_network, "fetch() rejected: {c:?}{}", why());
    assert_eq!(c.status, 401, "{c:?}{}", why());
    let challenge = c.www_authenticate.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate not readable by the page: {c:?}{}",
        why()
    );
    assert_eq!(echo.requests(), 1, "a denied request reached the upstream");

    let methods: Vec<String> = echo.recorded().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["GET"], "only (a)'s request reaches the upstream");
    println!("browser cases took {:?}", started.elapsed());
}
