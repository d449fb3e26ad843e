//! End-to-end: request limits (`[limits.NAME]`) in the real binary — a quota
//! per consumer (two consumers never share a count), plan numbers, a rate's
//! GCRA bound over a measured window, IETF and Mashery usage headers and
//! Mashery's refusal byte for byte, and fleet-exact counts in a real
//! `redis-server` shared by three Gatehouse processes, with `on_store_error`
//! honoured when Redis stops.
#![allow(clippy::unwrap_used)]

mod common;

use common::{client, BIN};
use gatehouse_connectors::apikey::keys::hash_line;
use gatehouse_testkit::{eventually, ConfigBuilder, EchoUpstream, Gatehouse, RedisServer};
use std::path::Path;
use std::time::Instant;

const GOLD: &str = "gold-key-0123456789abcdef";
const FREE: &str = "free-key-0123456789abcdef";
const OTHER: &str = "other-key-0123456789abcde";

fn keys(dir: &Path) -> String {
    let p = dir.join("keys.toml");
    std::fs::write(
        &p,
        format!(
            "[[keys]]\n{}\nconsumer = \"goldco\"\nplan = \"gold\"\n\n[[keys]]\n{}\nconsumer = \"freeco\"\nplan = \"free\"\n\n[[keys]]\n{}\nconsumer = \"otherco\"\nplan = \"free\"\n",
            hash_line(GOLD),
            hash_line(FREE),
            hash_line(OTHER)
        ),
    )
    .unwrap();
    p.display().to_string()
}

fn config(echo: &EchoUpstream, keys: &str, limits: &str, caches: &str) -> String {
    let head = ConfigBuilder::new().upstream("echo", echo.addr()).render();
    format!(
        r#"
{head}
{caches}

[connectors.keys]
kind = "api_key"
keys_file = "{keys}"

{limits}

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "echo"
connectors = ["keys"]
limits = ["per_consumer"]
"#
    )
}

async fn get(gh: &Gatehouse, key: &str) -> reqwest::Response {
    client()
        .get(gh.url("/api/x"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

/// Parses an IETF `RateLimit` field (`"n";r=R;t=T, …`) into (name, r, t).
fn parse_ratelimit(v: &str) -> Vec<(String, u64, u64)> {
    v.split(',')
        .map(|item| {
            let mut parts = item.trim().split(';');
            let name = parts.next().unwrap().trim_matches('"').to_string();
            let (mut r, mut t) = (None, None);
            for p in parts {
                let (k, val) = p.split_once('=').unwrap();
                match k {
                    "r" => r = Some(val.parse().unwrap()),
                    "t" => t = Some(val.parse().unwrap()),
                    _ => panic!("unknown parameter {k} in {v}"),
                }
            }
            (name, r.unwrap(), t.unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_quota_per_consumer_with_plans_and_ietf_headers() {
    let dir = tempfile::tempdir().unwrap();
    let echo = EchoUpstream::start();
    let limits = "[limits.per_consumer]\nkey = \"consumer\"\nquota = \"3/day\"\n[limits.per_consumer.plans.gold]\nquota = \"5/day\"\n";
    let gh = Gatehouse::start(BIN, &config(&echo, &keys(dir.path()), limits, "")).unwrap();
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = get(&gh, FREE).await;
        statuses.push(r.status().as_u16());
        let policy = r.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(policy, "\"per_consumer-quota\";q=3;w=86400");
        let rl = parse_ratelimit(r.headers()["ratelimit"].to_str().unwrap());
        assert_eq!(rl[0].0, "per_consumer-quota");
        assert_eq!(
            rl[0].1,
            2u64.saturating_sub(i),
            "remaining after request {i}"
        );
        assert!(rl[0].2 <= 86_400);
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(retry, rl[0].2.max(1));
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // Another consumer of the same plan has its own count; gold has its plan's.
    assert_eq!(get(&gh, OTHER).await.status(), 200);
    let gold: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(get(&gh, GOLD).await.status().as_u16());
        }
        v
    };
    assert_eq!(gold, [200, 200, 200, 200, 200, 429]);
    // A reload that keeps the limit keeps its counts (another route added).
    let generation = gh.metric("gatehouse_config_generation", &[]).unwrap();
    let reloaded = config(&echo, &keys(dir.path()), limits, "")
        + "\n[[routes]]\nname = \"extra\"\npath_prefix = \"/extra\"\nupstream = \"echo\"\n";
    gh.write_config(&reloaded).unwrap();
    gh.sighup();
    assert!(
        eventually(std::time::Duration::from_secs(20), async || {
            gh.metric("gatehouse_config_generation", &[]) > Some(generation)
        })
        .await,
        "the reload never happened"
    );
    assert_eq!(
        get(&gh, FREE).await.status(),
        429,
        "the count survived the reload"
    );
    // No key: the connector refuses first, nothing is counted.
    let r = client().get(gh.url("/api/x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("ratelimit").is_none());
    assert_eq!(
        gh.metric(
            "gatehouse_limit_requests_total",
            &[("limit", "per_consumer"), ("result", "over_quota")]
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn a_rate_stays_within_its_gcra_bound_and_mashery_answers_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let echo = EchoUpstream::start();
    let limits = "[limits.per_consumer]\nkey = \"consumer\"\nrate = \"10/s\"\nburst = 10\nheaders = \"mashery\"\nerror_style = \"mashery\"\n";
    let gh = Gatehouse::start(BIN, &config(&echo, &keys(dir.path()), limits, "")).unwrap();
    let start = Instant::now();
    let (mut allowed, mut sent) = (0u64, 0u64);
    let mut refusal = None;
    while start.elapsed().as_millis() < 1500 {
        let r = get(&gh, FREE).await;
        sent += 1;
        match r.status().as_u16() {
            200 => {
                allowed += 1;
                assert_eq!(r.headers()["x-plan-qps-allotted"], "10");
            }
            403 => {
                if refusal.is_none() {
                    let h = r.headers().clone();
                    refusal = Some((h, r.bytes().await.unwrap()));
                }
            }
            s => panic!("status {s}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // GCRA: at most the burst plus one request per interval of the window.
    let bound = 10 + (10.0 * elapsed).ceil() as u64 + 1;
    assert!(
        allowed <= bound,
        "{allowed} allowed in {elapsed:.2} s (bound {bound}), {sent} sent"
    );
    assert!(allowed >= 10.min(sent), "{allowed} allowed of {sent}");
    let (h, body) = refusal.expect("the rate refused some of the requests");
    assert_eq!(h["x-mashery-error-code"], "ERR_403_DEVELOPER_OVER_QPS");
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        &body[..],
        b"Forbidden: Account Over Queries Per Second Limit\n"
    );
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, 1);
    assert_eq!(h["x-plan-qps-allotted"], "10");
    assert_eq!(h["x-plan-qps-current"], "10");
}

#[tokio::test]
async fn three_replicas_share_one_exact_quota_in_redis_and_survive_its_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(None).unwrap();
    let echo = EchoUpstream::start();
    let caches = format!(
        "[caches.shared]\nkind = \"redis\"\nurl = \"{}\"\ntimeout = \"500ms\"\nbreaker_cooldown = \"300ms\"\n",
        redis.url()
    );
    let limits = "[limits.per_consumer]\nkey = \"consumer\"\nquota = \"300/day\"\nstore = \"shared\"\non_store_error = \"local\"\nheaders = \"mashery\"\nerror_style = \"mashery\"\n";
    let keys = keys(dir.path());
    let fleet: Vec<Gatehouse> = (0..3)
        .map(|_| Gatehouse::start(BIN, &config(&echo, &keys, limits, &caches)).unwrap())
        .collect();
    // 600 requests, round-robin over the three, 20 at a time.
    let mut allowed = 0;
    let mut over = 0;
    for batch in 0..30 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..20 {
            let url = fleet[(batch * 20 + i) % 3].url("/api/x");
            set.spawn(async move {
                client()
                    .get(url)
                    .header("x-api-key", FREE)
                    .send()
                    .await
                    .unwrap()
            });
        }
        while let Some(r) = set.join_next().await {
            let r = r.unwrap();
            match r.status().as_u16() {
                200 => allowed += 1,
                403 => {
                    assert_eq!(
                        r.headers()["x-mashery-error-code"],
                        "ERR_403_DEVELOPER_OVER_RATE"
                    );
                    assert_eq!(r.headers()["x-plan-quota-allotted"], "300");
                    assert_eq!(r.headers()["x-plan-quota-current"], "300");
                    assert!(r.headers()["x-plan-quota-reset"]
                        .to_str()
                        .unwrap()
                        .ends_with("12:00:00 AM GMT"));
                    assert_eq!(
                        &r.bytes().await.unwrap()[..],
                        b"Forbidden: Account Over Rate Limit\n"
                    );
                    over += 1;
                }
                s => panic!("status {s}"),
            }
        }
    }
    assert_eq!((allowed, over), (300, 300), "fleet-exact quota");
    // Another consumer counts apart.
    assert_eq!(get(&fleet[0], OTHER).await.status(), 200);
    // Redis goes away: on_store_error = "local" — every request answered, none failed.
    redis.stop();
    let mut failed = 0;
    for i in 0..30 {
        let s = get(&fleet[i % 3], GOLD).await.status().as_u16();
        if s != 200 {
            failed += 1;
        }
    }
    assert_eq!(failed, 0, "requests failed while Redis was down");
    let errors: f64 = fleet
        .iter()
        .map(|g| {
            g.metric(
                "gatehouse_limit_store_errors_total",
                &[("limit", "per_consumer")],
            )
            .unwrap_or(0.0)
        })
        .sum();
    assert!(errors >= 1.0, "store errors counted: {errors}");
}

#[tokio::test]
async fn on_store_error_allow_and_deny_when_redis_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(None).unwrap();
    let url = redis.url();
    redis.stop();
    let echo = EchoUpstream::start();
    let keys = keys(dir.path());
    let caches = format!(
        "[caches.shared]\nkind = \"redis\"\nurl = \"{url}\"\ntimeout = \"200ms\"\nbreaker_cooldown = \"300ms\"\n"
    );
    for (mode, want) in [("allow", 200), ("deny", 503)] {
        let limits = format!(
            "[limits.per_consumer]\nkey = \"consumer\"\nquota = \"2/day\"\nstore = \"shared\"\non_store_error = \"{mode}\"\n"
        );
        let gh = Gatehouse::start(BIN, &config(&echo, &keys, &limits, &caches)).unwrap();
        for i in 0..5 {
            let r = get(&gh, FREE).await;
            assert_eq!(r.status().as_u16(), want, "{mode}, request {i}");
            if want == 503 {
                assert_eq!(r.headers()["retry-after"], "1");
            }
        }
        assert_eq!(
            gh.metric(
                "gatehouse_limit_store_errors_total",
                &[("limit", "per_consumer")]
            ),
            Some(5.0),
            "{mode}"
        );
    }
}
