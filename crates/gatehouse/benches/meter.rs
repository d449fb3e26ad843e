//! What a request limit costs per request (issue 24): one local check of a
//! hot key (GCRA and a daily quota, the consumer read from the verified
//! identity), the same over 100 000 keys in turn (the bounded map at its
//! size), and the usage values rendered for the response headers.
//!
//! `cargo bench -p gatehouse --bench meter`
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse::meter::{CompiledLimit, Decision, LimitMetrics, Subject};
use gatehouse_config::LimitConfig;
use prometheus::IntCounter;
use serde_json::{json, Value};
use std::hint::black_box;

fn limit(max_keys: u64) -> CompiledLimit {
    let cfg: LimitConfig = toml::from_str(&format!(
        "key = \"consumer\"\nrate = \"1000000/s\"\nburst = 1000000\nquota = \"1000000000000/day\"\nmax_keys = {max_keys}\n"
    ))
    .unwrap();
    let c = |n: &str| IntCounter::new(n, n).unwrap();
    CompiledLimit::new(
        "bench",
        &cfg,
        None,
        LimitMetrics {
            allowed: c("a"),
            over_rate: c("r"),
            over_quota: c("q"),
            store_errors: c("e"),
        },
    )
}

fn subject(doc: &Value) -> Subject<'_> {
    Subject {
        identity: Some(doc),
        injected: &[],
        client: None,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hot = limit(100_000);
    let doc = json!({"consumer": "acme", "plan": "gold"});
    c.bench_function("meter/local_check_hot_key", |b| {
        // Allowed or over the rate (criterion outruns 10⁶/s): the same work.
        b.iter(|| rt.block_on(hot.check(black_box(&subject(&doc)))))
    });
    let many = limit(100_000);
    let docs: Vec<Value> = (0..100_000)
        .map(|i| json!({ "consumer": format!("consumer-{i}") }))
        .collect();
    let mut i = 0;
    c.bench_function("meter/local_check_100k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            rt.block_on(many.check(black_box(&subject(&docs[i]))))
        })
    });
    let fresh = limit(100);
    let usage = match rt.block_on(fresh.check(&subject(&doc))) {
        Decision::Allowed(u) => u,
        d => panic!("{d:?}"),
    };
    c.bench_function("meter/ietf_ratelimit_value", |b| {
        b.iter(|| gatehouse_http::meter::ietf_limit(black_box(&[("bench", usage)])))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
