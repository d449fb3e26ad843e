//! Criterion micro-benchmarks of the connector hot path: a cached JWT check,
//! uncached verification per algorithm, policy evaluation, header injection.
//! Run with `make bench` (or `cargo bench -p gatehouse-connectors --bench connectors`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use gatehouse_connectors::inject::{InjectConfig, Injector};
use gatehouse_connectors::jwt::JwtFactory;
use gatehouse_connectors::policy::{GroupConfig, Policy};
use gatehouse_connectors::{
    run_chain, BuildContext, ChainOutcome, Connector, ConnectorFactory, Step,
};
use gatehouse_testkit::jwks;
use gatehouse_testkit::tokens::{claims, TestKey};
use http::HeaderValue;
use serde_json::json;
use std::sync::Arc;
use support::{allow, bearer, Request};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn connector(
    rt: &tokio::runtime::Runtime,
    key: &TestKey,
    alg: &str,
    cache: u64,
) -> Arc<dyn Connector> {
    let body = format!(
        "jwks = '''{}'''\nalgorithms = [\"{alg}\"]\nissuers = [\"https://idp.test\"]\naudiences = [\"api\"]\ntoken_cache_size = {cache}\n[inject_headers]\n\"X-User-Id\" = \"sub\"\n\"X-Org-Region\" = \"$.org.region\"",
        jwks(&[(key, "k1")])
    );
    let settings: toml::Table = toml::from_str(&body).unwrap();
    rt.block_on(JwtFactory::default().build(BuildContext {
        name: "bench".into(),
        path: "connectors.bench".into(),
        settings,
        metrics: prometheus::Registry::new(),
        shared_caches: Default::default(),
    }))
    .unwrap()
}

fn token(key: &TestKey) -> String {
    let mut c = claims("user-1", "https://idp.test", "api", 3600);
    c["org"] = json!({"region": "eu"});
    key.mint(&c, Some("k1"))
}

fn jwt(c: &mut Criterion) {
    let rt = rt();
    let rsa = TestKey::rsa(1);
    let cached = connector(&rt, &rsa, "RS256", 100_000);
    let h = bearer(&token(&rsa));
    rt.block_on(allow(&*cached, &h));
    c.bench_function("jwt/cached_hit_rs256", |b| {
        b.to_async(&rt).iter(|| allow(&*cached, &h))
    });

    for (name, key, alg) in [
        ("jwt/uncached_rs256", TestKey::rsa(1), "RS256"),
        ("jwt/uncached_es256", TestKey::ec256(1), "ES256"),
        ("jwt/uncached_es512", TestKey::p521(), "ES512"),
        ("jwt/uncached_eddsa", TestKey::ed25519(), "EdDSA"),
    ] {
        let uncached = connector(&rt, &key, alg, 0);
        let h = bearer(&token(&key));
        c.bench_function(name, |b| b.to_async(&rt).iter(|| allow(&*uncached, &h)));
    }
}

fn policy_and_injection(c: &mut Criterion) {
    #[derive(serde::Deserialize)]
    struct W {
        policy: Vec<GroupConfig>,
    }
    let w: W = toml::from_str(
        "[[policy]]\nany = [{ claim = \"roles\", op = \"contains_any\", values = [\"admin\", \"writer\"] }, { claim = \"scope\", op = \"contains_all\", values = [\"orders:read\", \"orders:write\"] }]\n\
         [[policy]]\nany = [{ claim = \"$.org.tier\", op = \"equals\", values = [\"gold\"], case_sensitive = false }]",
    )
    .unwrap();
    let policy = Policy::compile("p", &w.policy).unwrap();
    let doc = json!({"sub": "u1", "roles": ["reader"], "scope": "orders:read orders:write", "org": {"tier": "Gold", "region": "eu"}});
    c.bench_function("policy/two_groups", |b| {
        b.iter(|| policy.evaluate(&doc).unwrap())
    });

    let cfg: InjectConfig = toml::from_str(
        "\"X-User-Id\" = \"sub\"\n\"X-Region\" = \"$.org.region\"\n\"X-Roles\" = \"roles\"",
    )
    .unwrap();
    let inj = Injector::compile("i", &cfg).unwrap();
    c.bench_function("inject/three_headers", |b| {
        b.iter_batched(|| (), |_| inj.apply(&doc).unwrap(), BatchSize::SmallInput)
    });
}

fn userinfo_warm(c: &mut Criterion) {
    use gatehouse_connectors::userinfo::UserinfoFactory;
    use gatehouse_testkit::{MockIdp, MockResponse};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let idp = MockIdp::start();
    idp.route(
        "GET",
        "/userinfo",
        MockResponse::json(200, json!({"sub": "u1", "email": "u1@example.com"})),
    );
    let body = format!(
        "region_header = \"X-Region\"\ndefault_endpoint = \"{}\"\n[endpoints]\nFR = \"{}\"\n[inject_headers]\n\"X-User-Email\" = \"$.email\"",
        idp.url("/userinfo"),
        idp.url("/userinfo")
    );
    let settings: toml::Table = toml::from_str(&body).unwrap();
    let conn = rt
        .block_on(UserinfoFactory::default().build(BuildContext {
            name: "bench".into(),
            path: "connectors.bench".into(),
            settings,
            metrics: prometheus::Registry::new(),
            shared_caches: Default::default(),
        }))
        .unwrap();
    let mut h = bearer("opaque-token-123");
    h.insert("x-region", HeaderValue::from_static("FR"));
    rt.block_on(allow(&*conn, &h));
    c.bench_function("userinfo/warm_cache_hit", |b| {
        b.to_async(&rt).iter(|| allow(&*conn, &h))
    });
    assert_eq!(idp.calls("/userinfo"), 1, "the loop ran on the cache");
}

/// A connector for issuer `iss` with its own key.
fn issuer_connector(
    rt: &tokio::runtime::Runtime,
    key: &TestKey,
    alg: &str,
    iss: &str,
) -> Arc<dyn Connector> {
    let body = format!(
        "jwks = '''{}'''\nalgorithms = [\"{alg}\"]\nissuers = [\"{iss}\"]\naudiences = [\"api\"]\n[inject_headers]\n\"X-User-Id\" = \"sub\"",
        jwks(&[(key, "k1")])
    );
    let settings: toml::Table = toml::from_str(&body).unwrap();
    rt.block_on(JwtFactory::default().build(BuildContext {
        name: iss.into(),
        path: "connectors.bench".into(),
        settings,
        metrics: prometheus::Registry::new(),
        shared_caches: Default::default(),
    }))
    .unwrap()
}

/// Any-of groups: what a member costs when it is skipped (the token's
/// unverified `iss` is another issuer's), alone and inside a group whose
/// second member allows from its cache, against that member alone.
fn any_of(c: &mut Criterion) {
    let rt = rt();
    let (corp_key, partner_key) = (TestKey::rsa(1), TestKey::ec256(1));
    let corp = issuer_connector(&rt, &corp_key, "RS256", "https://corp.test");
    let partner = issuer_connector(&rt, &partner_key, "ES256", "https://partner.test");
    let t = partner_key.mint(
        &claims("user-1", "https://partner.test", "api", 3600),
        Some("k1"),
    );
    let h = bearer(&t);
    let req = Request::get();
    let view = req.view(&h);
    assert!(
        corp.precheck(&view).is_some(),
        "corp must skip a partner token"
    );
    c.bench_function("anyof/skip_other_issuer", |b| {
        b.iter(|| corp.precheck(&view).is_some())
    });
    let alone = [Step::one(partner.clone())];
    let group = [Step::any(vec![corp.clone(), partner.clone()])];
    let allowed = |o: ChainOutcome| assert!(matches!(o, ChainOutcome::Allow(_)));
    allowed(rt.block_on(run_chain(&alone, &view, |_, _, _, _| {})));
    c.bench_function("anyof/partner_alone_cached", |b| {
        b.to_async(&rt)
            .iter(|| async { allowed(run_chain(&alone, &view, |_, _, _, _| {}).await) })
    });
    c.bench_function("anyof/group_corp_skipped_partner_cached", |b| {
        b.to_async(&rt)
            .iter(|| async { allowed(run_chain(&group, &view, |_, _, _, _| {}).await) })
    });
}

criterion_group!(benches, jwt, policy_and_injection, userinfo_warm, any_of);
criterion_main!(benches);
