//! The dashboard and alert rules only name metrics that a running Gatehouse
//! really exports (after some traffic through both connector kinds).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::tokens::{claims, TestKey};
use gatehouse_testkit::{
    jwks, metric_families, ConfigBuilder, EchoUpstream, Gatehouse, MockIdp, MockResponse,
};
use serde_json::json;
use std::collections::BTreeSet;

fn referenced_metrics() -> BTreeSet<String> {
    let root = repo_root().join("deploy");
    let mut names = BTreeSet::new();
    for f in ["grafana/gatehouse-dashboard.json", "prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(['g', 'p']) {
            let tail = &rest[i..];
            let boundary = i == 0
                || !rest.as_bytes()[i - 1].is_ascii_alphanumeric()
                    && rest.as_bytes()[i - 1] != b'_';
            if boundary && (tail.starts_with("gatehouse_") || tail.starts_with("process_")) {
                let end = tail
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(tail.len());
                names.insert(tail[..end].to_string());
                rest = &tail[end..];
            } else {
                rest = &tail[1..];
            }
        }
    }
    names
}

#[tokio::test]
async fn every_metric_in_the_dashboard_and_alerts_exists() {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::rsa(1));
    idp.route(
        "GET",
        "/jwks",
        MockResponse::json(200, jwks(&[(&key, "k1")])),
    );
    idp.route(
        "GET",
        "/userinfo",
        MockResponse::json(200, json!({"sub": "u1", "email": "u1@example.com"})),
    );
    // A TLS listener, so the TLS families are exported too.
    let certs = tempfile::tempdir().unwrap();
    let ca = gatehouse_testkit::TestCa::new(certs.path(), "ca").unwrap();
    let api = ca.server("api", &["api.test"]).unwrap();
    let head = ConfigBuilder::new()
        .server_section(format!(
            "[[server.tls]]\nlisten = [\"${{TLS_LISTEN}}\"]\n\
             certificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]",
            api.cert.display(),
            api.key.display()
        ))
        .upstream("echo", echo.addr())
        .render();
    let cfg = format!(
        r#"
{head}
[connectors.corp]
kind = "jwt"
jwks_url = "{jwks}"
algorithms = ["RS256"]

[caches.l2]
kind = "redis"
url = "redis://127.0.0.1:9/0"
timeout = "5ms"

[connectors.geo]
kind = "oidc_userinfo"
region_header = "X-Region"
default_endpoint = "{ui}"
shared_cache = "l2"

[connectors.geo.endpoints]
EU = "{ui}"

[limits.per_sub]
key = {{ claim = "sub" }}
quota = "1000/day"

[[routes]]
name = "jwt"
path_prefix = "/jwt"
upstream = "echo"
connectors = ["corp"]
limits = ["per_sub"]

[[routes]]
name = "ui"
path_prefix = "/ui"
upstream = "echo"
connectors = ["geo"]
"#,
        jwks = idp.url("/jwks"),
        ui = idp.url("/userinfo"),
    );
    let gh = Gatehouse::start(BIN, &cfg).unwrap();
    let cl = client();
    let t = key.mint(&claims("u1", "i", "a", 600), Some("k1"));
    for _ in 0..2 {
        assert_eq!(
            cl.get(gh.url("/jwt"))
                .bearer_auth(&t)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            cl.get(gh.url("/ui"))
                .bearer_auth("opaque")
                .header("x-region", "EU")
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(cl.get(gh.url("/jwt")).send().await.unwrap().status(), 401);
    assert_eq!(
        cl.get(gh.url("/nowhere")).send().await.unwrap().status(),
        404
    );

    let tls = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let resp = tls
        .get(format!("https://{}/nowhere", gh.tls_listen_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let families = metric_families(&gh.metrics().unwrap());
    let referenced = referenced_metrics();
    assert!(
        referenced.len() >= 15,
        "the dashboard and rules name metrics: {referenced:?}"
    );
    let missing: Vec<&String> = referenced
        .iter()
        .filter(|n| {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            !families.contains(n.as_str()) && !families.contains(base)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "named in deploy/ but not exported: {missing:?}\nexported: {families:?}"
    );
}
