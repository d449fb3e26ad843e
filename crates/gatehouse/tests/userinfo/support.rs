//! The fixtures of the `oidc_userinfo` end-to-end tests: regional IdPs that
//! know a few tokens, the config with one `geo` connector, one call.

use crate::common::client;
use gatehouse_testkit::{ConfigBuilder, EchoUpstream, Gatehouse, MockIdp, MockResponse};
use serde_json::json;

pub(crate) const UI: &str = "/userinfo";

/// An IdP that knows `tokens` (token → subject) and rejects the rest.
pub(crate) fn idp(region: &'static str, tokens: &[&'static str]) -> MockIdp {
    let idp = MockIdp::start();
    let known: Vec<&'static str> = tokens.to_vec();
    let handler = move |req: &gatehouse_testkit::RecordedRequest| {
        let token = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        if known.contains(&token) {
            MockResponse::json(
                200,
                json!({"sub": format!("user-{token}"), "email": format!("{token}@example.com"), "region": region, "org": {"unit": "u-7"}}),
            )
        } else {
            MockResponse::json(
                401,
                json!({"error": "invalid_token", "errorMessage": "token unknown here"}),
            )
            .with_header(
                "WWW-Authenticate",
                "Bearer error=\"invalid_token\", error_description=\"unknown token\"",
            )
        }
    };
    idp.route_fn("GET", UI, handler.clone());
    idp.route_fn("POST", UI, handler);
    idp
}

pub(crate) fn config(
    echo: &EchoUpstream,
    fr: &MockIdp,
    us: &MockIdp,
    default: Option<&MockIdp>,
    extra: &str,
) -> String {
    let default = default
        .map(|d| format!("default_endpoint = \"{}\"", d.url(UI)))
        .unwrap_or_default();
    let head = ConfigBuilder::new()
        .upstream_with("echo", echo.addr(), "connect_timeout = \"5s\"")
        .render();
    format!(
        r#"
{head}
[connectors.geo]
kind = "oidc_userinfo"
method = "GET"
region_header = "X-Region"
{default}
{extra}

[connectors.geo.endpoints]
FR = "{fr}"
US = "{us}"

[connectors.geo.inject_headers]
"X-User-Email" = "$.email"
"X-User-Id" = "sub"

[connectors.geo.region_inject_headers.FR]
"X-User-Id" = "sub"
"X-Unit-Id" = "$.org.unit"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "echo"
connectors = ["geo"]
"#,
        fr = fr.url(UI),
        us = us.url(UI)
    )
}

pub(crate) async fn call(gh: &Gatehouse, token: &str, region: Option<&str>) -> reqwest::Response {
    let mut r = client().get(gh.url("/api/x")).bearer_auth(token);
    if let Some(reg) = region {
        r = r.header("x-region", reg);
    }
    r.send().await.unwrap()
}
