#![allow(clippy::unwrap_used)]
use super::*;
use serde_json::json;

fn metrics() -> LimitMetrics {
    LimitMetrics {
        allowed: IntCounter::new("a", "a").unwrap(),
        over_rate: IntCounter::new("r", "r").unwrap(),
        over_quota: IntCounter::new("q", "q").unwrap(),
        store_errors: IntCounter::new("e", "e").unwrap(),
    }
}

fn limit(section: &str) -> CompiledLimit {
    let cfg: LimitConfig = toml::from_str(section).unwrap();
    CompiledLimit::new("t", &cfg, None, metrics())
}

fn subject(doc: &Value) -> Subject<'_> {
    Subject {
        identity: Some(doc),
        injected: &[],
        client: None,
    }
}

#[tokio::test]
async fn a_quota_counts_each_consumer_apart_and_refuses_past_it() {
    let l = limit("key = \"consumer\"\nquota = \"3/day\"\n");
    let (a, b) = (json!({"consumer": "a"}), json!({"consumer": "b"}));
    for _ in 0..3 {
        assert!(matches!(l.check(&subject(&a)).await, Decision::Allowed(_)));
    }
    match l.check(&subject(&a)).await {
        Decision::Limited(Over::Quota, retry, u) => {
            assert!((1..=86_400).contains(&retry), "{retry}");
            assert_eq!(u.quota.unwrap().1, 3);
        }
        d => panic!("{d:?}"),
    }
    assert!(matches!(l.check(&subject(&b)).await, Decision::Allowed(_)));
    assert_eq!(l.m.allowed.get(), 4);
    assert_eq!(l.m.over_quota.get(), 1);
    // No consumer in the identity: not counted, not refused.
    assert_eq!(
        l.check(&subject(&json!({"sub": "x"}))).await,
        Decision::Unkeyed
    );
}

#[tokio::test]
async fn a_rate_allows_its_burst_then_refuses_with_retry_after() {
    let l = limit("key = { claim = \"sub\" }\nrate = \"1/min\"\nburst = 2\n");
    let a = json!({"sub": "alice"});
    assert!(matches!(l.check(&subject(&a)).await, Decision::Allowed(_)));
    assert!(matches!(l.check(&subject(&a)).await, Decision::Allowed(_)));
    match l.check(&subject(&a)).await {
        Decision::Limited(Over::Rate, retry, _) => assert!((59..=60).contains(&retry), "{retry}"),
        d => panic!("{d:?}"),
    }
}

#[tokio::test]
async fn plans_take_their_own_numbers() {
    let l = limit("key = \"consumer\"\nquota = \"1/day\"\n[plans.gold]\nquota = \"3/day\"\n");
    let gold = json!({"consumer": "g", "plan": "gold"});
    let free = json!({"consumer": "f", "plan": "free"});
    for _ in 0..3 {
        assert!(matches!(
            l.check(&subject(&gold)).await,
            Decision::Allowed(_)
        ));
    }
    assert!(matches!(
        l.check(&subject(&gold)).await,
        Decision::Limited(..)
    ));
    assert!(matches!(
        l.check(&subject(&free)).await,
        Decision::Allowed(_)
    ));
    assert!(matches!(
        l.check(&subject(&free)).await,
        Decision::Limited(..)
    ));
}

#[tokio::test]
async fn the_local_store_is_bounded() {
    let l = limit("key = { claim = \"sub\" }\nquota = \"5/hour\"\nmax_keys = 100\n");
    for i in 0..2000 {
        let d = json!({ "sub": format!("random-{i}") });
        l.check(&subject(&d)).await;
    }
    assert!(l.local_keys() <= 110, "{}", l.local_keys());
}

#[test]
fn the_trusted_client_address() {
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    let client: IpAddr = "203.0.113.9".parse().unwrap();
    let trusted = |ip: Option<IpAddr>| ip.is_some_and(|i| i.to_string().starts_with("10."));
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-forwarded-for",
        "198.51.100.1, 203.0.113.9, 10.0.0.2".parse().unwrap(),
    );
    assert_eq!(trusted_client(Some(proxy), &h, trusted), Some(client));
    // An untrusted peer's X-Forwarded-For is ignored.
    assert_eq!(trusted_client(Some(client), &h, trusted), Some(client));
    h.insert("x-forwarded-for", "garbage".parse().unwrap());
    assert_eq!(trusted_client(Some(proxy), &h, trusted), Some(proxy));
}
