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

/// `oauth2_introspection` with a warm cache, next to `userinfo/warm_cache_hit`:
/// the two remote kinds share the kit's cache path.
fn introspection_warm(c: &mut Criterion) {
    use gatehouse_connectors::introspection::IntrospectionFactory;
    use gatehouse_testkit::{MockIdp, MockResponse};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let idp = MockIdp::start();
    idp.route(
        "POST",
        "/introspect",
        MockResponse::json(
            200,
            json!({"active": true, "sub": "svc", "client_id": "billing", "exp": 4_000_000_000u64}),
        ),
    );
    let dir = std::env::temp_dir().join(format!("gh-bench-introspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "bench-secret").unwrap();
    let body = format!(
        "endpoint = \"{}\"\nclient_id = \"gatehouse\"\nclient_secret_file = {:?}\n[inject_headers]\n\"X-Client-Id\" = \"$.client_id\"",
        idp.url("/introspect"),
        secret.display().to_string()
    );
    let settings: toml::Table = toml::from_str(&body).unwrap();
    let conn = rt
        .block_on(IntrospectionFactory::default().build(BuildContext {
            name: "bench".into(),
            path: "connectors.bench".into(),
            settings,
            metrics: prometheus::Registry::new(),
            shared_caches: Default::default(),
        }))
        .unwrap();
    let h = bearer("opaque-token-123");
    rt.block_on(allow(&*conn, &h));
    c.bench_function("introspection/warm_cache_hit", |b| {
        b.to_async(&rt).iter(|| allow(&*conn, &h))
    });
    assert_eq!(idp.calls("/introspect"), 1, "the loop ran on the cache");
    let _ = std::fs::remove_dir_all(&dir);
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

/// `api_key`: the check of a known key among 10⁵ (SHA-256 of the key, one hash-map lookup,
/// injection of consumer and plan) and the load of a 10⁵-key file (what a reload costs).
fn api_key(c: &mut Criterion) {
    use gatehouse_connectors::apikey::keys::{hash_line, KeyStore};
    use gatehouse_connectors::apikey::ApiKeyFactory;
    const N: usize = 100_000;
    let mut text = String::with_capacity(N * 120);
    for i in 0..N {
        text.push_str(&format!(
            "[[keys]]\n{}\nconsumer = \"consumer-{i}\"\nplan = \"plan-{}\"\n\n",
            hash_line(&format!("bench-key-{i:08}")),
            i % 5
        ));
    }
    let dir = std::env::temp_dir().join(format!("gh-bench-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.toml");
    std::fs::write(&file, &text).unwrap();
    let rt = rt();
    let body = format!(
        "keys_file = {:?}\n[inject_headers]\n\"X-Consumer-Id\" = \"$.consumer\"\n\"X-Plan\" = \"$.plan\"\n",
        file.display().to_string()
    );
    let settings: toml::Table = toml::from_str(&body).unwrap();
    let keys = rt
        .block_on(ApiKeyFactory::default().build(BuildContext {
            name: "bench".into(),
            path: "connectors.bench".into(),
            settings,
            metrics: prometheus::Registry::new(),
            shared_caches: Default::default(),
        }))
        .unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_static("bench-key-00054321"));
    rt.block_on(allow(&*keys, &h));
    c.bench_function("api_key/check_known_key_of_100k", |b| {
        b.to_async(&rt).iter(|| allow(&*keys, &h))
    });
    let mut g = c.benchmark_group("api_key");
    g.sample_size(10);
    g.bench_function("load_100k_keys", |b| {
        b.iter(|| KeyStore::load(&file).unwrap().len())
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(
    benches,
    jwt,
    policy_and_injection,
    userinfo_warm,
    introspection_warm,
    any_of,
    api_key
);
criterion_main!(benches);
