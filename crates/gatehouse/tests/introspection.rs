//! End-to-end: the `oauth2_introspection` connector (RFC 7662) in the real
//! binary against an introspection endpoint on the testkit IdP that checks
//! the client's authentication and that the token comes only in the form
//! body: active, inactive, expired and wrong-audience tokens, policy over
//! `scope`, the answer cache and its negative side, one call for 200
//! concurrent requests, cached answers while the endpoint fails, and a wrong
//! client secret that is a 503 (never a 401 for the caller).
#![allow(clippy::unwrap_used)]

mod common;

use common::{client, echoed, header_values, BIN};
use gatehouse_testkit::{
    ConfigBuilder, EchoUpstream, Gatehouse, MockIdp, MockResponse, RecordedRequest,
};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &str = "introspection-client-secret";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The endpoint: Basic `gatehouse:SECRET` (form-encoded, RFC 6749 §2.3.1),
/// the token in the form body and nowhere else; answers by token prefix.
fn endpoint(idp: &MockIdp) {
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("gatehouse:{SECRET}"))
    );
    idp.route_fn("POST", "/introspect", move |req: &RecordedRequest| {
        if req.header("authorization") != Some(basic.as_str()) {
            return MockResponse::json(401, json!({"error": "invalid_client"}));
        }
        let (Some(token), None) = (req.form_param("token"), req.query.as_deref()) else {
            return MockResponse::json(400, json!({"error": "invalid_request"}));
        };
        assert_eq!(req.form_param("token_type_hint").as_deref(), Some("access_token"));
        let base = |aud: &str, exp: u64| {
            json!({"active": true, "sub": "svc-1", "client_id": "billing", "scope": "orders:read orders:write",
                   "iss": "https://idp.test", "aud": aud, "exp": exp})
        };
        let body = match token.split('-').next().unwrap_or("") {
            "active" => base("api", now() + 600),
            "reader" => {
                let mut b = base("api", now() + 600);
                b["scope"] = json!("orders:read");
                b
            }
            "expired" => base("api", now() - 600),
            "otheraud" => base("other", now() + 600),
            _ => json!({"active": false}),
        };
        MockResponse::json(200, body)
    });
}

fn config(echo: &EchoUpstream, idp: &MockIdp, secret_file: &std::path::Path) -> String {
    let head = ConfigBuilder::new().upstream("echo", echo.addr()).render();
    format!(
        r#"
{head}
[connectors.m2m]
kind = "oauth2_introspection"
endpoint = "{url}"
client_id = "gatehouse"
client_secret_file = "{secret}"
token_type_hint = "access_token"
issuers = ["https://idp.test"]
audiences = ["api"]
cache_ttl = "2m"
negative_cache_ttl = "1m"
stale_if_error = "5m"
timeout = "2s"

[connectors.m2m.inject_headers]
"X-Client-Id" = "$.client_id"
"X-Scope" = "$.scope"

[[connectors.m2m.policy]]
any = [{{ claim = "scope", op = "contains_any", values = ["orders:write"] }}]

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "echo"
connectors = ["m2m"]
"#,
        url = idp.url("/introspect"),
        secret = secret_file.display()
    )
}

async fn get(gh: &Gatehouse, token: &str) -> reqwest::Response {
    client()
        .get(gh.url("/api/x"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    idp: MockIdp,
    _echo: EchoUpstream,
    gh: Gatehouse,
}

fn start(secret: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("introspect.secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let idp = MockIdp::start();
    endpoint(&idp);
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, &file)).unwrap();
    Setup {
        _dir: dir,
        idp,
        _echo: echo,
        gh,
    }
}

#[tokio::test]
async fn active_tokens_pass_and_every_other_answer_is_refused() {
    let s = start(SECRET);
    let e = echoed(get(&s.gh, "active-token-0123456789").await).await;
    assert_eq!(header_values(&e, "x-client-id"), ["billing"]);
    assert_eq!(header_values(&e, "x-scope"), ["orders:read orders:write"]);
    assert!(header_values(&e, "authorization").is_empty(), "{e}");
    for (token, status) in [
        ("inactive-token-0123456789", 401),
        ("expired-token-0123456789", 401),
        ("otheraud-token-0123456789", 401),
        ("reader-token-0123456789", 403),
    ] {
        let r = get(&s.gh, token).await;
        assert_eq!(r.status(), status, "{token}");
        if status == 401 {
            let c = r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(c.contains("invalid_token"), "{token}: {c}");
        }
    }
    // The token went only in the form body of a POST.
    for req in s.idp.requests("/introspect") {
        assert_eq!(req.method, "POST");
        assert!(req.query.is_none());
        assert!(req.header("authorization").unwrap().starts_with("Basic "));
    }
}

#[tokio::test]
async fn answers_are_cached_and_one_call_serves_200_concurrent_requests() {
    let s = start(SECRET);
    for _ in 0..3 {
        assert_eq!(get(&s.gh, "active-cached-0123456789").await.status(), 200);
        assert_eq!(get(&s.gh, "inactive-cached-0123456789").await.status(), 401);
    }
    assert_eq!(
        s.idp.calls("/introspect"),
        2,
        "one call per token, positive and negative"
    );
    s.idp.set_delay(Some(Duration::from_millis(300)));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let url = s.gh.url("/api/x");
        set.spawn(async move {
            client()
                .get(url)
                .bearer_auth("active-burst-0123456789")
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(st) = set.join_next().await {
        assert_eq!(st.unwrap(), 200);
    }
    assert_eq!(
        s.idp.calls("/introspect"),
        3,
        "200 concurrent requests, one call"
    );
}

#[tokio::test]
async fn a_failing_endpoint_keeps_cached_answers_and_a_wrong_secret_is_503() {
    let s = start(SECRET);
    assert_eq!(get(&s.gh, "active-stale-0123456789").await.status(), 200);
    s.idp.set_down(true);
    assert_eq!(
        get(&s.gh, "active-stale-0123456789").await.status(),
        200,
        "cached"
    );
    // New token: the endpoint is down → 503, never 401.
    let r = get(&s.gh, "active-new-0123456789").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    s.idp.set_down(false);

    let wrong = start("not-the-secret");
    let r = get(&wrong.gh, "active-token-0123456789").await;
    assert_eq!(
        r.status(),
        503,
        "the IdP refusing Gatehouse is not the caller's fault"
    );
    assert!(
        wrong
            .gh
            .wait_for_log("client credentials", Duration::from_secs(10)),
        "the log names the client credentials"
    );
}

#[tokio::test]
async fn three_replicas_sharing_redis_ask_once_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("introspect.secret");
    std::fs::write(&file, SECRET).unwrap();
    let redis = gatehouse_testkit::RedisServer::start(None).unwrap();
    let idp = MockIdp::start();
    endpoint(&idp);
    let echo = EchoUpstream::start();
    let cfg = config(&echo, &idp, &file).replace(
        "timeout = \"2s\"\n",
        &format!(
            "timeout = \"2s\"\nshared_cache = \"l2\"\n\n[caches.l2]\nkind = \"redis\"\nurl = \"{}\"\ntimeout = \"1s\"\n",
            redis.url()
        ),
    );
    let fleet: Vec<Gatehouse> = (0..3)
        .map(|_| Gatehouse::start(BIN, &cfg).unwrap())
        .collect();
    for (i, token) in ["active-l2-a-0123456789", "inactive-l2-b-0123456789"]
        .iter()
        .enumerate()
    {
        let want = if i == 0 { 200 } else { 401 };
        assert_eq!(get(&fleet[0], token).await.status(), want, "{token}");
        // The first replica stores the answer in Redis after answering (in
        // the background): wait for that state before asking the others.
        let stored = |gh: &Gatehouse| {
            gh.metric(
                "gatehouse_shared_cache_requests_total",
                &[("cache", "l2"), ("op", "set"), ("result", "ok")],
            )
            .unwrap_or(0.0)
        };
        assert!(
            gatehouse_testkit::eventually(Duration::from_secs(10), async || stored(&fleet[0])
                >= (i + 1) as f64)
            .await,
            "the answer never reached Redis"
        );
        for gh in &fleet[1..] {
            assert_eq!(get(gh, token).await.status(), want, "{token}");
        }
    }
    assert_eq!(
        idp.calls("/introspect"),
        2,
        "one call per token for the whole fleet"
    );
}

/// RFC 8705 §3.2: with `require_certificate_binding`, an active answer's
/// `cnf."x5t#S256"` must be the thumbprint of the connection's client
/// certificate.
#[tokio::test]
async fn a_bound_token_passes_only_with_its_certificate() {
    use base64::Engine;
    use gatehouse_testkit::{CertFiles, TestCa};
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca").unwrap();
    let server = ca.server("api", &["api.test"]).unwrap();
    let clients = TestCa::new(dir.path(), "clients").unwrap();
    let (alice, bob) = (
        clients.client("alice", "alice").unwrap(),
        clients.client("bob", "bob").unwrap(),
    );
    let thumb = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(common::der_of(&alice.cert)));
    let idp = MockIdp::start();
    let t = thumb.clone();
    idp.route_fn("POST", "/introspect", move |_req: &RecordedRequest| {
        MockResponse::json(
            200,
            json!({"active": true, "sub": "svc", "client_id": "billing", "scope": "orders:write",
                   "iss": "https://idp.test", "aud": "api", "exp": now() + 600, "cnf": {"x5t#S256": t}}),
        )
    });
    let secret = dir.path().join("introspect.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let echo = EchoUpstream::start();
    // A TLS listener asking for (not requiring) client certificates, after the [server] keys.
    let tls = format!(
        "[[server.tls]]\nlisten = [\"${{TLS_LISTEN}}\"]\ncertificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]\nclient_ca_file = \"{}\"\nclient_auth = \"optional\"\n\n[upstreams.echo]",
        server.cert.display(),
        server.key.display(),
        clients.cert_path().display()
    );
    let cfg = config(&echo, &idp, &secret)
        .replacen("[upstreams.echo]", &tls, 1)
        .replace(
            "timeout = \"2s\"\n",
            "timeout = \"2s\"\nrequire_certificate_binding = true\n",
        );
    let gh = Gatehouse::start(BIN, &cfg).unwrap();
    let tls_client = |id: Option<&CertFiles>| {
        let pem = std::fs::read(ca.cert_path()).unwrap();
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .resolve("api.test", gh.tls_listen_addr());
        if let Some(id) = id {
            let mut both = std::fs::read(&id.cert).unwrap();
            both.extend(std::fs::read(&id.key).unwrap());
            b = b.identity(reqwest::Identity::from_pem(&both).unwrap());
        }
        b.build().unwrap()
    };
    let url = format!("https://api.test:{}/api/x", gh.tls_listen_addr().port());
    let status = |id: Option<&CertFiles>| {
        let c = tls_client(id);
        let url = url.clone();
        async move {
            c.get(url)
                .bearer_auth("bound-token-0123456789")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(Some(&alice)).await, 200, "its certificate");
    assert_eq!(status(Some(&bob)).await, 401, "another certificate");
    assert_eq!(status(None).await, 401, "no certificate");
}

/// Past `cache_ttl`, with the endpoint down, an active answer is served
/// stale (within `stale_if_error`) — every request answered 200 until the
/// stale path is seen taken.
#[tokio::test]
async fn stale_answers_serve_while_the_endpoint_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("introspect.secret");
    std::fs::write(&file, SECRET).unwrap();
    let idp = MockIdp::start();
    endpoint(&idp);
    let echo = EchoUpstream::start();
    let cfg = config(&echo, &idp, &file).replace("cache_ttl = \"2m\"", "cache_ttl = \"1s\"");
    let gh = Gatehouse::start(BIN, &cfg).unwrap();
    assert_eq!(get(&gh, "active-stale-0123456789").await.status(), 200);
    idp.set_down(true);
    let stale = |gh: &Gatehouse| {
        gh.metric(
            "gatehouse_introspection_cache_requests_total",
            &[("connector", "m2m"), ("result", "stale")],
        )
        .unwrap_or(0.0)
    };
    assert!(
        gatehouse_testkit::eventually(Duration::from_secs(15), async || {
            assert_eq!(get(&gh, "active-stale-0123456789").await.status(), 200);
            stale(&gh) >= 1.0
        })
        .await,
        "the stale answer was never used"
    );
}
