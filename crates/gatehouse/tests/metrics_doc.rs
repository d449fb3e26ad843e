//! The metric families Gatehouse exports and the table in
//! docs/operations.md are the same set (issue 22): the binary runs with
//! every feature that has metrics switched on — a TLS listener, `h2c`, an
//! upstream with an active health check, `jwt` connectors in an any-of
//! group, an `oidc_userinfo` connector with a Redis shared cache, a
//! WebSocket route — serves a few requests of each kind, and every family on
//! its `/metrics` must have a row in the table, and every row a family.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::{
    eventually, metric_families, ConfigBuilder, EchoUpstream, Gatehouse, MockIdp, MockResponse,
    RedisServer, TestCa, TestKey,
};
use serde_json::json;
use std::collections::BTreeSet;

/// The family names of the table under "## Metrics" (first column).
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let section = doc.split("\n## Metrics").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("gatehouse_"))
        .map(str::to_owned)
        .collect()
}

/// The Gatehouse families of a `/metrics` text.
fn exported(text: &str) -> BTreeSet<String> {
    metric_families(text)
        .into_iter()
        .filter(|n| n.starts_with("gatehouse_"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exported_metric_family_is_in_the_operations_table_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca").unwrap();
    let api = ca.server("api", &["api.test"]).unwrap();
    let secret = dir.path().join("hs.key");
    std::fs::write(&secret, "a-secret-of-at-least-32-bytes-for-hs256!").unwrap();
    let keys = dir.path().join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\n{}\nconsumer = \"c\"\n",
            gatehouse_connectors::apikey::keys::hash_line("k")
        ),
    )
    .unwrap();
    let cache_key = dir.path().join("cache.key");
    std::fs::write(&cache_key, format!("{}\n", "5a".repeat(32))).unwrap();
    let redis = RedisServer::start(None).unwrap();
    let echo = EchoUpstream::start();
    let idp = MockIdp::start();
    idp.route_fn(
        "GET",
        "/ui",
        |req: &gatehouse_testkit::RecordedRequest| match req.header("authorization") {
            Some("Bearer good") => MockResponse::json(200, json!({"sub": "alice"})),
            _ => MockResponse::json(401, json!({"error": "invalid_token"})),
        },
    );
    idp.route("GET", "/jwks", MockResponse::json(200, json!({"keys": []})));
    let head = ConfigBuilder::new()
        .server_line("h2c = true")
        .server_section(format!(
            "[[server.tls]]\nlisten = [\"${{TLS_LISTEN}}\"]\n\
             certificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]",
            api.cert.display(),
            api.key.display()
        ))
        .upstream_with(
            "echo",
            echo.addr(),
            "\n[upstreams.echo.health_check]\npath = \"/health\"\ninterval = \"1s\"",
        )
        .render();
    let config = format!(
        r#"
{head}
[caches.l2]
kind = "redis"
url = "{redis}"
encryption_key_file = "{cache_key}"

[connectors.hs]
kind = "jwt"
algorithms = ["HS256"]
secret_file = "{secret}"

[connectors.remote]
kind = "jwt"
algorithms = ["RS256"]
jwks_url = "{jwks}"

[connectors.keys]
kind = "api_key"
keys_file = "{keys}"

[connectors.m2m]
kind = "oauth2_introspection"
endpoint = "{introspect}"
client_id = "gatehouse"
client_secret_file = "{secret}"

[connectors.ui]
kind = "oidc_userinfo"
default_endpoint = "{ui}"
shared_cache = "l2"

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"

[[routes]]
name = "either"
path_prefix = "/either"
upstream = "echo"
connectors = [{{ any = ["hs", "remote"] }}]

[[routes]]
name = "ui"
path_prefix = "/ui"
upstream = "echo"
connectors = ["ui"]

[limits.per_consumer]
key = "consumer"
quota = "1000/day"
store = "l2"

[[routes]]
name = "keys"
path_prefix = "/keys"
upstream = "echo"
connectors = ["keys"]
limits = ["per_consumer"]
"#,
        keys = keys.display(),
        introspect = idp.url("/introspect"),
        redis = redis.url(),
        cache_key = cache_key.display(),
        secret = secret.display(),
        jwks = idp.url("/jwks"),
        ui = idp.url("/ui"),
    );
    let gh = Gatehouse::start(BIN, &config).unwrap();
    let hs = TestKey::hmac(b"a-secret-of-at-least-32-bytes-for-hs256!")
        .mint(&json!({"sub": "bob", "exp": 4_000_000_000u64}), None);
    let c = client();
    for (path, token) in [
        ("/public/x", None),
        ("/either/x", Some(hs.as_str())),
        ("/either/x", Some("not-a-token")),
        ("/ui/x", Some("good")),
        ("/ui/x", Some("good")),
        ("/ui/x", Some("bad")),
        ("/nowhere", None),
    ] {
        let mut r = c.get(gh.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap();
    }
    let tls = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca.cert_path()).unwrap()).unwrap(),
        )
        .resolve("api.test", gh.tls_listen_addr())
        .build()
        .unwrap();
    let url = format!(
        "https://api.test:{}/public/tls",
        gh.tls_listen_addr().port()
    );
    assert_eq!(tls.get(url).send().await.unwrap().status(), 200);
    assert!(
        eventually(std::time::Duration::from_secs(10), async || {
            gh.metrics()
                .is_ok_and(|m| m.contains("gatehouse_upstream_peer_healthy"))
        })
        .await
    );

    let text = gh.metrics().unwrap();
    let exported = exported(&text);
    let documented = documented();
    let undocumented: Vec<_> = exported.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&exported).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "exported but not in docs/operations.md's table: {undocumented:?}\n\
         in the table but not exported with every feature on: {missing:?}"
    );
}
