//! End-to-end: a route's CORS policy (preflights answered before the
//! connectors, CORS headers on every answer to an allowed origin, refusals
//! included), `rewrite_prefix` and the request/response header rules,
//! against the echo upstream (what was forwarded) and a real NGINX (what an
//! upstream reads, and response headers to replace). Issue 26.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use gatehouse_testkit::tokens::claims;
use gatehouse_testkit::{jwks, EchoUpstream, Gatehouse, Nginx, TestKey};
use reqwest::header::HeaderMap;
use reqwest::Method;

const ISS: &str = "https://idp.test";
const AUD: &str = "api";
const APP: &str = "https://app.example.com";

/// NGINX answers with what it read of the request, and sends headers a
/// response rule or the CORS policy replaces.
const NGINX_BODY: &str = r#"
location / {
    add_header Access-Control-Allow-Origin "*" always;
    add_header X-Powered-By "PHP/5.6" always;
    default_type text/plain;
    return 200 "uri=$uri raw=$request_uri env=$http_x_env debug=$http_x_debug\n";
}
"#;

fn config(echo: &EchoUpstream, nginx: &Nginx, key: &TestKey) -> String {
    let keys = jwks(&[(key, "k1")]).to_string();
    let head = public_head(echo.addr())
        .server_line("underscores_in_headers = true")
        .upstream("nginx", nginx.addr())
        .render();
    format!(
        r#"{head}
[connectors.jwt]
kind = "jwt"
jwks = '{keys}'
algorithms = ["RS256"]
issuers = ["{ISS}"]
audiences = ["{AUD}"]
[connectors.jwt.inject_headers]
"X-User-Id" = "sub"

[[routes]]
name = "orders"
path_prefix = "/v1/orders"
upstream = "echo"
connectors = ["jwt"]
rewrite_prefix = "/internal/orders"
[routes.cors]
allow_origins = ["{APP}", "https://*.example.net"]
allow_methods = ["GET", "POST"]
allow_headers = ["authorization", "content-type"]
expose_headers = ["x-request-id", "www-authenticate"]
allow_credentials = true
max_age = "10m"
[routes.request_headers]
set = {{ "X-Env" = "prod" }}
remove = ["X-Debug"]
[routes.response_headers]
set = {{ "Strict-Transport-Security" = "max-age=31536000", "Vary" = "Accept-Encoding" }}

[[routes]]
name = "legacy"
path_prefix = "/legacy/"
upstream = "nginx"
rewrite_prefix = ""
[routes.cors]
allow_origins = ["{APP}"]
[routes.request_headers]
set = {{ "X-Env" = "prod" }}
remove = ["X-Debug"]
[routes.response_headers]
remove = ["Server", "X-Powered-By"]

[[routes]]
name = "plain"
path_prefix = "/plain"
upstream = "echo"
connectors = ["jwt"]
"#
    )
}

struct World {
    echo: EchoUpstream,
    _nginx: Nginx,
    gh: Gatehouse,
    token: String,
    bad_token: String,
}

fn world() -> World {
    let echo = EchoUpstream::start();
    let nginx = Nginx::start(NGINX_BODY).expect("nginx-light is part of make test");
    let key = TestKey::rsa(1);
    let gh = Gatehouse::start(BIN, &config(&echo, &nginx, &key)).unwrap();
    let token = key.mint(&claims("alice", ISS, AUD, 600), Some("k1"));
    let bad_token = TestKey::rsa(2).mint(&claims("mallory", ISS, AUD, 600), Some("k1"));
    World {
        echo,
        _nginx: nginx,
        gh,
        token,
        bad_token,
    }
}

/// Every value of `name`, joined as one comma list.
fn all(headers: &HeaderMap, name: &str) -> String {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.join(", ")
}

fn h<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

async fn preflight(
    w: &World,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> reqwest::Response {
    let mut req = client()
        .request(Method::OPTIONS, w.gh.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(hs) = headers {
        req = req.header("access-control-request-headers", hs);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn preflights_are_answered_before_the_connectors() {
    let w = world();
    let r = preflight(
        &w,
        "/v1/orders/7",
        APP,
        "POST",
        Some("authorization,content-type"),
    )
    .await;
    assert_eq!(r.status(), 204);
    let hs = r.headers();
    assert_eq!(h(hs, "access-control-allow-origin"), Some(APP));
    assert_eq!(h(hs, "access-control-allow-credentials"), Some("true"));
    assert_eq!(h(hs, "access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        h(hs, "access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(h(hs, "access-control-max-age"), Some("600"));
    assert!(h(hs, "vary").unwrap().contains("Origin"));
    assert!(h(hs, "x-request-id").is_some());
    // The route's response rules apply to Gatehouse's own answers too.
    assert_eq!(h(hs, "strict-transport-security"), Some("max-age=31536000"));
    // A wildcard origin of one label.
    let r = preflight(&w, "/v1/orders", "https://shop.example.net", "GET", None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        h(r.headers(), "access-control-allow-origin"),
        Some("https://shop.example.net")
    );

    // Refused: no allow header, a reason, and never the upstream.
    for (origin, method, headers, why) in [
        ("https://evil.example.com", "GET", None, "origin"),
        ("https://a.b.example.net", "GET", None, "origin"),
        ("null", "GET", None, "origin"),
        (APP, "DELETE", None, "method"),
        (APP, "GET", Some("authorization, x-user-id"), "header"),
    ] {
        let r = preflight(&w, "/v1/orders/7", origin, method, headers).await;
        assert_eq!(r.status(), 403, "{origin} {method} {headers:?}");
        assert!(h(r.headers(), "access-control-allow-origin").is_none());
        assert!(h(r.headers(), "access-control-allow-methods").is_none());
        let body = r.text().await.unwrap();
        assert!(
            body.contains("cors_refused") && body.contains(why),
            "{body}"
        );
    }
    // A route without a policy: a preflight is a request like any other
    // (the connector refuses it, as before).
    let r = preflight(&w, "/plain/7", APP, "GET", Some("authorization")).await;
    assert_eq!(r.status(), 401);
    assert!(h(r.headers(), "access-control-allow-origin").is_none());
    assert_eq!(w.echo.requests(), 0, "{:?}", w.echo.recorded());
}

#[tokio::test]
async fn answers_to_allowed_origins_carry_cors_headers_refusals_included() {
    let w = world();
    let c = client();
    // Allowed origin, valid token: proxied, with the CORS headers.
    let r = c
        .get(w.gh.url("/v1/orders/7?q=1"))
        .header("origin", APP)
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hs = r.headers().clone();
    assert_eq!(h(&hs, "access-control-allow-origin"), Some(APP));
    assert_eq!(h(&hs, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        h(&hs, "access-control-expose-headers"),
        Some("x-request-id, www-authenticate")
    );
    // The route's own `Vary` rule does not drop the policy's `Vary: Origin`.
    assert_eq!(all(&hs, "vary"), "Accept-Encoding, Origin");
    assert_eq!(
        h(&hs, "strict-transport-security"),
        Some("max-age=31536000")
    );

    // Allowed origin, bad token: the page can read the 401 and its challenge.
    let r = c
        .get(w.gh.url("/v1/orders/7"))
        .header("origin", APP)
        .bearer_auth(&w.bad_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(h(r.headers(), "access-control-allow-origin"), Some(APP));
    assert!(h(r.headers(), "www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        h(r.headers(), "strict-transport-security"),
        Some("max-age=31536000")
    );

    // An origin not allowed: no CORS grant, but Vary says the answer
    // depends on Origin (a cache must not serve it to an allowed one).
    let r = c
        .get(w.gh.url("/v1/orders/7"))
        .header("origin", "https://evil.example.com")
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(h(r.headers(), "access-control-allow-origin").is_none());
    assert_eq!(all(r.headers(), "vary"), "Accept-Encoding, Origin");

    // The upstream's own CORS grant (NGINX: `*`) is replaced by the policy's.
    let r = c
        .get(w.gh.url("/legacy/x"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        h(r.headers(), "access-control-allow-origin").is_none(),
        "{:?}",
        r.headers()
    );
    let r = c
        .get(w.gh.url("/legacy/x"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()
            .get_all("access-control-allow-origin")
            .iter()
            .count(),
        1
    );
    assert_eq!(h(r.headers(), "access-control-allow-origin"), Some(APP));
    // Response rules removed what NGINX says about itself.
    assert!(h(r.headers(), "server").is_none(), "{:?}", r.headers());
    assert!(
        h(r.headers(), "x-powered-by").is_none(),
        "{:?}",
        r.headers()
    );
}

#[tokio::test]
async fn rewrites_and_request_rules_reach_the_upstream() {
    let w = world();
    let c = client();
    for (path, forwarded) in [
        ("/v1/orders", "/internal/orders"),
        ("/v1/orders/", "/internal/orders/"),
        ("/v1/orders/7?q=a%20b&x", "/internal/orders/7?q=a%20b&x"),
        // Canonicalised first, then rewritten: the result is canonical.
        ("/v1/orders/a/../7", "/internal/orders/7"),
        ("/v1/orders/%37", "/internal/orders/7"),
        ("/v1/x/../orders/7", "/internal/orders/7"),
    ] {
        let before = w.echo.requests();
        let r = c
            .get(w.gh.url(path))
            .bearer_auth(&w.token)
            .header("X-Env", "dev")
            .header("X_Env", "dev")
            .header("x-debug", "1")
            .header("X.Debug", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let rec = w.echo.recorded().into_iter().nth(before).unwrap();
        assert_eq!(rec.target, forwarded, "{path}");
        assert_eq!(rec.header_values("x-env"), ["prod"], "{path}: {rec:?}");
        assert!(rec.header_values("x_env").is_empty(), "{rec:?}");
        assert!(rec.header_values("x-debug").is_empty(), "{rec:?}");
        assert!(rec.header_values("x.debug").is_empty(), "{rec:?}");
        assert_eq!(rec.header_values("x-user-id"), ["alice"]);
    }
    // Paths outside the prefix, or trying to climb out of it, are not
    // this route's (or are refused), and never become /internal/...
    for path in [
        "/v1/ordersX/7",
        "/v1/orders/..%2f..%2fadmin",
        "/v1/orders/%2e%2e/%2e%2e/admin",
    ] {
        let before = w.echo.requests();
        let r = c
            .get(w.gh.url(path))
            .bearer_auth(&w.token)
            .send()
            .await
            .unwrap();
        if w.echo.requests() > before {
            let rec = w.echo.recorded().into_iter().nth(before).unwrap();
            assert!(
                !rec.target.starts_with("/internal/orders/..") && !rec.target.contains("//"),
                "{path} -> {}",
                rec.target
            );
        } else {
            assert!(
                r.status() == 400 || r.status() == 404,
                "{path}: {}",
                r.status()
            );
        }
    }

    // NGINX reads the stripped path, and the rules' headers in every
    // spelling (underscores_in_headers is on in this config).
    let body = c
        .get(w.gh.url("/legacy/a/b?c=d"))
        .header("X-Env", "dev")
        .header("X_Env", "dev")
        .header("X_Debug", "1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body.trim(), "uri=/a/b raw=/a/b?c=d env=prod debug=");
}

#[test]
fn check_refuses_rules_on_identity_headers() {
    let echo = EchoUpstream::start();
    let key = TestKey::rsa(1);
    let keys = jwks(&[(&key, "k1")]).to_string();
    let base = format!(
        r#"{}
[connectors.jwt]
kind = "jwt"
jwks = '{keys}'
algorithms = ["RS256"]
issuers = ["{ISS}"]
audiences = ["{AUD}"]
[connectors.jwt.inject_headers]
"X-User-Id" = "sub"

[[routes]]
name = "r"
path_prefix = "/r"
upstream = "echo"
"#,
        public_head(echo.addr()).render()
    );
    for (rule, path) in [
        (
            "[routes.request_headers]\nset = { \"X-User-Id\" = \"admin\" }",
            "routes[0].request_headers.set.\"X-User-Id\"",
        ),
        // The same name as CGI folds it.
        (
            "[routes.request_headers]\nremove = [\"X.User.Id\"]",
            "routes[0].request_headers.remove[0]",
        ),
        (
            "[routes.request_headers]\nset = { \"X-Forwarded-For\" = \"1.2.3.4\" }",
            "routes[0].request_headers.set.\"X-Forwarded-For\"",
        ),
        (
            "[routes.cors]\nallow_origins = [\"*\"]\nallow_credentials = true",
            "routes[0].cors.allow_origins[0]",
        ),
        ("rewrite_prefix = \"/a/../b\"", "routes[0].rewrite_prefix"),
    ] {
        let (ok, out) = check_config(&format!("{base}{rule}\n"));
        assert!(!ok, "{rule} accepted");
        assert!(out.contains(path), "{rule}: {out}");
    }
    let (ok, out) = check_config(&format!(
        "{base}[routes.request_headers]\nset = {{ \"X-Env\" = \"prod\" }}\n"
    ));
    assert!(ok, "{out}");
}
