//! End-to-end: the shared userinfo cache (`[caches.NAME] kind = "redis"`)
//! with a real `redis-server`, three real Gatehouse processes and one
//! testkit IdP: a fleet that asks the IdP once per token, a fleet-wide single
//! flight, a Redis outage that costs no request, a policy change that never
//! reuses an old entry, and values unreadable in Redis with a key.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::{
    eventually, ConfigBuilder, EchoUpstream, Gatehouse, MockIdp, MockResponse, RedisServer, TestCa,
};
use serde_json::json;
use std::time::Duration;

/// An IdP that knows every token starting with `tok-`, at `/ui` and `/ui-local`.
fn idp() -> MockIdp {
    let idp = MockIdp::start();
    let handler = |req: &gatehouse_testkit::RecordedRequest| {
        let token = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        if token.starts_with("tok-") {
            MockResponse::json(
                200,
                json!({"sub": format!("user-{token}"), "email": format!("{token}@example.com")}),
            )
        } else {
            MockResponse::json(401, json!({"error": "invalid_token"}))
        }
    };
    idp.route_fn("GET", "/ui", handler);
    idp.route_fn("GET", "/ui-local", handler);
    idp
}

struct Fleet {
    _dir: tempfile::TempDir,
    redis: RedisServer,
    idp: MockIdp,
    echo: EchoUpstream,
    key_file: std::path::PathBuf,
    password_file: std::path::PathBuf,
}

fn fleet(password: Option<&str>) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("cache.key");
    std::fs::write(&key_file, format!("{}\n", "5a".repeat(32))).unwrap();
    let password_file = dir.path().join("redis.pw");
    std::fs::write(&password_file, format!("{}\n", password.unwrap_or(""))).unwrap();
    Fleet {
        redis: RedisServer::start(password).unwrap(),
        idp: idp(),
        echo: EchoUpstream::start(),
        key_file,
        password_file,
        _dir: dir,
    }
}

/// Two userinfo routes on the same IdP: `/s` with the shared cache `l2`,
/// `/l` without. `cache` is added to `[caches.l2]`, `policy` to the shared
/// connector.
fn config(f: &Fleet, cache: &str, policy: &str) -> String {
    let head = ConfigBuilder::new()
        .upstream("echo", f.echo.addr())
        .render();
    format!(
        r#"
{head}
[caches.l2]
kind = "redis"
url = "{redis}"
timeout = "1s"
lock_wait = "3s"
breaker_cooldown = "300ms"
{cache}

[connectors.shared]
kind = "oidc_userinfo"
default_endpoint = "{ui}"
shared_cache = "l2"
{policy}

[connectors.shared.inject_headers]
"X-User-Email" = "$.email"

[connectors.local]
kind = "oidc_userinfo"
default_endpoint = "{ui_local}"

[[routes]]
name = "s"
path_prefix = "/s"
upstream = "echo"
connectors = ["shared"]

[[routes]]
name = "l"
path_prefix = "/l"
upstream = "echo"
connectors = ["local"]
"#,
        redis = f.redis.url(),
        ui = f.idp.url("/ui"),
        ui_local = f.idp.url("/ui-local"),
    )
}

fn start(n: usize, cfg: &str) -> Vec<Gatehouse> {
    (0..n)
        .map(|_| Gatehouse::start(BIN, cfg).unwrap())
        .collect()
}

async fn get(gh: &Gatehouse, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(gh.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn metric(gh: &Gatehouse, name: &str, labels: &[(&str, &str)]) -> f64 {
    gh.metric(name, labels).unwrap_or(0.0)
}

fn sum(fleet: &[Gatehouse], name: &str, labels: &[(&str, &str)]) -> f64 {
    fleet.iter().map(|g| metric(g, name, labels)).sum()
}

#[tokio::test]
async fn three_replicas_ask_the_idp_once_per_token() {
    let f = fleet(None);
    let ghs = start(3, &config(&f, "", ""));
    // 1 000 requests over 100 tokens, spread over the three replicas, 10 at a time.
    for (path, idp_path, want) in [("/s", "/ui", 100), ("/l", "/ui-local", 300)] {
        for batch in (0..1000).collect::<Vec<usize>>().chunks(10) {
            let reqs = batch
                .iter()
                .map(|&i| (ghs[i % 3].url(path), format!("tok-{:03}", i % 100)))
                .collect();
            for s in concurrently(reqs).await {
                assert_eq!(s, 200);
            }
        }
        assert_eq!(
            f.idp.calls(idp_path),
            want,
            "{path}: IdP calls for 100 tokens on 3 replicas"
        );
    }
    let labels = [("connector", "shared"), ("result", "l2_hit")];
    assert_eq!(
        sum(&ghs, "gatehouse_userinfo_cache_requests_total", &labels),
        200.0
    );
    assert!(
        sum(
            &ghs,
            "gatehouse_shared_cache_requests_total",
            &[("op", "get"), ("result", "hit")]
        ) >= 200.0
    );
}

/// Sends every (url, token) at once; their statuses.
async fn concurrently(reqs: Vec<(String, String)>) -> Vec<reqwest::StatusCode> {
    let mut set = tokio::task::JoinSet::new();
    for (url, token) in reqs {
        set.spawn(async move {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    set.join_all().await
}

#[tokio::test]
async fn a_burst_of_one_new_token_on_three_replicas_makes_one_idp_call() {
    let f = fleet(None);
    // A slow IdP, so the replicas' first requests arrive while the first call is in flight.
    f.idp.set_delay(Some(Duration::from_millis(1000)));
    for (cache, token) in [("", "tok-burst"), ("single_flight = false", "tok-burst-2")] {
        let ghs = start(3, &config(&f, cache, ""));
        f.idp.reset_counters();
        let reqs = (0..15)
            .map(|i| (ghs[i % 3].url("/s"), token.to_string()))
            .collect();
        for s in concurrently(reqs).await {
            assert_eq!(s, 200);
        }
        let from_redis = sum(
            &ghs,
            "gatehouse_userinfo_cache_requests_total",
            &[("result", "l2_waited")],
        ) + sum(
            &ghs,
            "gatehouse_userinfo_cache_requests_total",
            &[("result", "l2_hit")],
        );
        if cache.is_empty() {
            assert_eq!(f.idp.calls("/ui"), 1, "the lock holder alone asks the IdP");
            assert_eq!(
                from_redis, 2.0,
                "the two other replicas got its answer from Redis"
            );
        } else {
            // Without the lock every replica that misses before the first answer is
            // stored asks too (3 when they arrive together; benches/shared_cache.sh).
            assert!(f.idp.calls("/ui") >= 2, "{}", f.idp.calls("/ui"));
        }
    }
}

#[tokio::test]
async fn a_redis_outage_costs_no_request_and_the_shared_cache_comes_back() {
    let mut f = fleet(Some("s3cret"));
    let cfg = config(
        &f,
        &format!("password_file = \"{}\"", f.password_file.display()),
        "",
    );
    let ghs = start(2, &cfg);
    // Shared while Redis is up: the second replica does not call the IdP.
    assert_eq!(get(&ghs[0], "/s", "tok-a").await.status(), 200);
    assert_eq!(get(&ghs[1], "/s", "tok-a").await.status(), 200);
    assert_eq!(f.idp.calls("/ui"), 1, "{}", ghs[1].logs());

    f.redis.stop();
    for i in 0..40 {
        let r = get(&ghs[i % 2], "/s", &format!("tok-down-{i}")).await;
        assert_eq!(r.status(), 200, "request {i} during the outage");
    }
    assert_eq!(
        f.idp.calls("/ui"),
        41,
        "IdP calls resume: one per new token"
    );
    assert!(
        eventually(Duration::from_secs(5), async || {
            metric(
                &ghs[0],
                "gatehouse_shared_cache_breaker_open",
                &[("cache", "l2")],
            ) == 1.0
        })
        .await,
        "the breaker opened after repeated failures"
    );
    let ready = reqwest::get(format!("http://{}/readyz", ghs[0].admin_addr()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "/readyz does not depend on Redis");

    f.redis.resume().unwrap();
    // Back: once the breaker lets requests through again, a token fetched by
    // one replica is served to the other from Redis.
    let mut n = 0;
    assert!(
        eventually(Duration::from_secs(15), async || {
            n += 1;
            let token = format!("tok-back-{n}");
            let before = f.idp.calls("/ui");
            let a = get(&ghs[0], "/s", &token).await.status() == 200;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let b = get(&ghs[1], "/s", &token).await.status() == 200;
            a && b && f.idp.calls("/ui") == before + 1
        })
        .await,
        "Redis is used again after it comes back\n{}",
        ghs[1].logs()
    );
    assert_eq!(
        metric(
            &ghs[1],
            "gatehouse_shared_cache_breaker_open",
            &[("cache", "l2")]
        ),
        0.0
    );
}

#[tokio::test]
async fn a_policy_change_never_reuses_old_entries() {
    let f = fleet(None);
    let policy = "required_claims = [\"email\"]";
    let ghs = start(2, &config(&f, "", policy));
    assert_eq!(get(&ghs[0], "/s", "tok-p").await.status(), 200);
    assert_eq!(get(&ghs[1], "/s", "tok-p").await.status(), 200);
    assert_eq!(f.idp.calls("/ui"), 1, "same policy: shared");
    // Replica 0 reloads with another policy: its entries are keyed anew.
    let before = metric(&ghs[0], "gatehouse_config_generation", &[]);
    ghs[0]
        .write_config(&config(&f, "", "required_claims = [\"sub\"]"))
        .unwrap();
    ghs[0].sighup();
    assert!(
        eventually(Duration::from_secs(10), async || {
            metric(&ghs[0], "gatehouse_config_generation", &[]) > before
        })
        .await
    );
    assert_eq!(get(&ghs[0], "/s", "tok-p").await.status(), 200);
    assert_eq!(f.idp.calls("/ui"), 2, "a changed policy asks the IdP again");
    assert_eq!(get(&ghs[1], "/s", "tok-p").await.status(), 200);
    assert_eq!(
        f.idp.calls("/ui"),
        2,
        "the unchanged replica still hits its cache"
    );
}

#[tokio::test]
async fn values_and_keys_are_unreadable_in_redis_with_an_encryption_key() {
    let f = fleet(None);
    let plain = Gatehouse::start(BIN, &config(&f, "key_prefix = \"plain:\"", "")).unwrap();
    let sealed_cfg = config(
        &f,
        &format!(
            "key_prefix = \"sealed:\"\nencryption_key_file = \"{}\"",
            f.key_file.display()
        ),
        "",
    );
    let sealed = Gatehouse::start(BIN, &sealed_cfg).unwrap();
    assert_eq!(get(&plain, "/s", "tok-secret").await.status(), 200);
    assert_eq!(get(&sealed, "/s", "tok-secret").await.status(), 200);
    let keys = |pattern: &str| -> Vec<String> {
        let out = f.redis.cli(&["--scan", "--pattern", pattern]).unwrap();
        out.lines()
            .filter(|k| !k.ends_with(":lock"))
            .map(str::to_string)
            .collect()
    };
    let (mut p, mut s) = (Vec::new(), Vec::new());
    assert!(
        eventually(Duration::from_secs(5), async || {
            p = keys("plain:*");
            s = keys("sealed:*");
            !p.is_empty() && !s.is_empty()
        })
        .await
    );
    let value = |k: &str| f.redis.cli(&["GET", k]).unwrap();
    // Without a key, Redis holds the identity (what the key is for)…
    assert!(
        value(&p[0]).contains("tok-secret@example.com"),
        "{}",
        value(&p[0])
    );
    // …with one, neither the identity nor the token's plain SHA-256.
    let v = value(&s[0]);
    assert!(!v.contains("example.com") && !v.contains("user-tok"), "{v}");
    assert!(!v.contains("tok-secret"));
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(b"tok-secret")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        p[0].ends_with(&digest),
        "plain keys use the token's SHA-256: {}",
        p[0]
    );
    assert!(!s[0].contains(&digest), "sealed keys are HMACs: {}", s[0]);
    // A value tampered with in Redis is a miss, never an identity.
    f.redis.cli(&["SET", &s[0], "garbage"]).unwrap();
    let second = Gatehouse::start(BIN, &sealed_cfg).unwrap();
    let before = f.idp.calls("/ui");
    let r = get(&second, "/s", "tok-secret").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        f.idp.calls("/ui"),
        before + 1,
        "the tampered entry was not used"
    );
    assert_eq!(
        metric(
            &second,
            "gatehouse_shared_cache_requests_total",
            &[("op", "get"), ("result", "garbage")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_tls_redis_with_a_password_is_shared() {
    let mut f = fleet(Some("s3cret"));
    let ca = TestCa::new(f._dir.path(), "redis-ca").unwrap();
    let cert = ca
        .server_with_sans("redis", "redis", &["DNS:localhost", "IP:127.0.0.1"])
        .unwrap();
    f.redis = RedisServer::start_tls(Some("s3cret"), cert).unwrap();
    assert!(f.redis.url().starts_with("rediss://"));
    let cache = format!(
        "password_file = \"{}\"\ntls_ca_file = \"{}\"",
        f.password_file.display(),
        ca.cert_path().display()
    );
    let ghs = start(2, &config(&f, &cache, ""));
    assert_eq!(get(&ghs[0], "/s", "tok-tls").await.status(), 200);
    assert_eq!(get(&ghs[1], "/s", "tok-tls").await.status(), 200);
    assert_eq!(f.idp.calls("/ui"), 1, "shared over TLS\n{}", ghs[1].logs());
    assert_eq!(
        metric(
            &ghs[1],
            "gatehouse_userinfo_cache_requests_total",
            &[("result", "l2_hit")]
        ),
        1.0
    );
}

/// Ids of the clients connected to Redis (`CLIENT LIST`), without redis-cli itself.
fn client_ids(r: &RedisServer) -> Vec<String> {
    r.cli(&["CLIENT", "LIST"])
        .unwrap()
        .lines()
        .filter(|l| !l.contains("cmd=client"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_reload_that_keeps_the_cache_section_keeps_its_connection() {
    let f = fleet(None);
    let cfg = config(&f, "", "");
    let gh = Gatehouse::start(BIN, &cfg).unwrap();
    assert_eq!(get(&gh, "/s", "tok-r1").await.status(), 200);
    let before = client_ids(&f.redis);
    assert_eq!(
        before.len(),
        1,
        "one connection per cache and process: {before:?}"
    );
    let reload = async |text: &str| {
        let g = metric(&gh, "gatehouse_config_generation", &[]);
        gh.write_config(text).unwrap();
        gh.sighup();
        assert!(
            eventually(Duration::from_secs(10), async || {
                metric(&gh, "gatehouse_config_generation", &[]) > g
            })
            .await,
            "{}",
            gh.logs()
        );
    };
    // A new route; the cache section is unchanged.
    reload(&format!(
        "{cfg}\n[[routes]]\nname = \"x\"\npath_prefix = \"/x\"\nupstream = \"echo\"\n"
    ))
    .await;
    assert_eq!(get(&gh, "/s", "tok-r2").await.status(), 200);
    assert_eq!(
        client_ids(&f.redis),
        before,
        "the same connection serves on"
    );
    // A changed cache section: a new client, a new connection.
    reload(&config(&f, "connect_timeout = \"2s\"", "")).await;
    assert_eq!(get(&gh, "/s", "tok-r3").await.status(), 200);
    let after = client_ids(&f.redis);
    assert!(
        after.iter().any(|id| !before.contains(id)),
        "{before:?} → {after:?}"
    );
}
