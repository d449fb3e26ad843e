//! End-to-end against a live CGI stack (issue 20): lighttpd running PHP
//! (`php-cgi`) and a shell CGI program behind Gatehouse. CGI and PHP fold
//! every punctuation character of a header name into `_`, so a client's
//! `X.User.Id: admin` is the application's `HTTP_X_USER_ID` — the identity
//! header Gatehouse sets. The application must read only what Gatehouse
//! verified, over HTTP/1.1 and HTTP/2 alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use gatehouse_testkit::cgi::{cgi_env_vars, php_server_vars, CgiUpstream};
use gatehouse_testkit::tokens::claims;
use gatehouse_testkit::{jwks, ConfigBuilder, Gatehouse, TestKey};
use serde_json::{Map, Value};

const ISS: &str = "https://idp.test";
const AUD: &str = "api";

/// A public catch-all and a JWT-protected `/api`, both to the CGI upstream.
fn config(upstream: std::net::SocketAddr, key: &TestKey) -> String {
    let keys = jwks(&[(key, "k1")]).to_string();
    let head = ConfigBuilder::new()
        .server_line("h2c = true")
        .upstream("cgi", upstream)
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
[connectors.jwt.inject_headers]
"X-User-Id" = "sub"
"X-User-Roles" = "$.roles"

[[routes]]
name = "public"
path_prefix = "/"
upstream = "cgi"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "cgi"
connectors = ["jwt"]
"#
    )
}

/// Spellings of protected names that CGI folds into the real ones.
const FORGED: [(&str, &str); 9] = [
    ("X.User.Id", "admin"),
    ("x~user~roles", "admin"),
    ("X_User_Id", "admin"),
    ("X-User.Roles", "admin"),
    ("X.Real.IP", "6.6.6.6"),
    ("X.Client.IP", "6.6.6.6"),
    ("X.HTTP.Method.Override", "DELETE"),
    ("X.Original.URL", "/api/secret"),
    ("X.Forwarded.For", "6.6.6.6"),
];

/// What PHP must never see from the client.
const PROTECTED_VARS: [&str; 7] = [
    "HTTP_X_USER_ROLES",
    "HTTP_X_REAL_IP",
    "HTTP_X_CLIENT_IP",
    "HTTP_X_HTTP_METHOD_OVERRIDE",
    "HTTP_X_ORIGINAL_URL",
    "HTTP_X_USER_ID",
    "HTTP_X_FORWARDED_FOR",
];

async fn php_vars(client: &reqwest::Client, url: &str, token: Option<&str>) -> Map<String, Value> {
    let mut req = client.get(url);
    for (n, v) in FORGED {
        req = req.header(n, v);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    php_server_vars(&resp.text().await.unwrap()).unwrap()
}

fn clients() -> [(&'static str, reqwest::Client); 2] {
    [
        ("HTTP/1.1", client()),
        (
            "HTTP/2",
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap(),
        ),
    ]
}

#[tokio::test]
async fn php_reads_only_the_identity_gatehouse_verified() {
    let cgi = CgiUpstream::start().expect("lighttpd and php-cgi are part of make test");
    let key = TestKey::rsa(1);
    let gh = Gatehouse::start(BIN, &config(cgi.addr(), &key)).unwrap();
    // A valid token without a `roles` claim: no X-User-Roles is injected.
    let token = key.mint(&claims("alice", ISS, AUD, 600), Some("k1"));
    for (version, c) in clients() {
        // Public route: none of the forged names reaches PHP in any form.
        let vars = php_vars(&c, &gh.url("/public/me"), None).await;
        for v in PROTECTED_VARS {
            let seen = vars.get(v).and_then(Value::as_str);
            let allowed = v == "HTTP_X_FORWARDED_FOR" && seen == Some("127.0.0.1");
            assert!(
                seen.is_none() || allowed,
                "{version}: PHP saw {v}={seen:?}: {vars:?}"
            );
        }
        // Protected route: the verified subject, and no forged roles.
        let vars = php_vars(&c, &gh.url("/api/me"), Some(&token)).await;
        assert_eq!(vars["HTTP_X_USER_ID"], "alice", "{version}: {vars:?}");
        assert!(
            !vars.contains_key("HTTP_X_USER_ROLES"),
            "{version}: {vars:?}"
        );
        assert_eq!(
            vars["HTTP_X_FORWARDED_FOR"], "127.0.0.1",
            "{version}: {vars:?}"
        );
        assert_eq!(vars["REQUEST_URI"], "/api/me", "{version}: {vars:?}");

        // The raw CGI environment keeps every duplicate: none is forged.
        let mut req = c.get(gh.url(&CgiUpstream::sh_path("/me")));
        for (n, v) in FORGED {
            req = req.header(n, v);
        }
        let body = req.send().await.unwrap().text().await.unwrap();
        let env = cgi_env_vars(&body);
        assert!(env.iter().any(|(k, _)| k == "REQUEST_URI"), "{body}");
        for (k, v) in &env {
            assert!(
                !PROTECTED_VARS.contains(&k.as_str())
                    || (k == "HTTP_X_FORWARDED_FOR" && v == "127.0.0.1"),
                "{version}: the CGI environment holds {k}={v}"
            );
        }
    }
}

#[tokio::test]
async fn paths_one_decoding_or_a_windows_trim_away_from_a_protected_one_are_refused() {
    let cgi = CgiUpstream::start().expect("lighttpd and php-cgi are part of make test");
    let key = TestKey::rsa(1);
    let gh = Gatehouse::start(BIN, &config(cgi.addr(), &key)).unwrap();
    for (version, c) in clients() {
        for path in [
            "/api%3B/secret",
            "/api%3b/secret",
            "/public/..%3B/api/secret",
            "/api./secret",
            "/api%2e/secret",
            "/api%20/secret",
            "/api.%20/secret",
        ] {
            let resp = c.get(gh.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 400, "{version} {path}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "invalid_path", "{version} {path}");
        }
        // The control: a public path reaches PHP, a protected one needs a token.
        let resp = c.get(gh.url("/public/a.b")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{version}");
        let vars = php_server_vars(&resp.text().await.unwrap()).unwrap();
        assert_eq!(vars["REQUEST_URI"], "/public/a.b");
        assert_eq!(
            c.get(gh.url("/api/secret")).send().await.unwrap().status(),
            401
        );
    }
}
