//! End-to-end: mutual TLS (`client_ca_file`, `client_auth`), RFC 8705
//! certificate-bound tokens (`require_certificate_binding`) and client
//! certificate headers, with certificates made by the test (`openssl` CLI),
//! real TLS handshakes and real HS256 tokens.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::*;
use gatehouse_testkit::tokens::{claims, TestKey};
use gatehouse_testkit::{eventually, CertFiles, ConfigBuilder, EchoUpstream, Gatehouse, TestCa};
use sha2::{Digest, Sha256};
use std::time::Duration;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const SPIFFE: &str = "spiffe://example.test/ns/a/sa/alice";

struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
    server: CertFiles,
    clients_ca: TestCa,
    alice: CertFiles,
    bob: CertFiles,
    mallory: CertFiles,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca").unwrap();
    let server = ca.server("api", &["api.test"]).unwrap();
    let clients_ca = TestCa::new(dir.path(), "clients").unwrap();
    let alice = clients_ca
        .client_with_sans(
            "alice",
            "alice",
            &["DNS:alice.test", &format!("URI:{SPIFFE}")],
        )
        .unwrap();
    let bob = clients_ca.client("bob", "bob").unwrap();
    // Signed by a CA Gatehouse does not trust.
    let rogue = TestCa::new(dir.path(), "rogue").unwrap();
    let mallory = rogue.client("mallory", "alice").unwrap();
    Pki {
        dir,
        ca,
        server,
        clients_ca,
        alice,
        bob,
        mallory,
    }
}

/// `x5t#S256` of a certificate file: base64url(SHA-256(DER)).
fn thumbprint(c: &CertFiles) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(der_of(&c.cert)))
}

fn config(p: &Pki, echo: std::net::SocketAddr, client_auth: &str) -> String {
    let secret = p.dir.path().join("hs.key");
    std::fs::write(&secret, SECRET).unwrap();
    let tls = format!(
        "[[server.tls]]\nlisten = [\"${{TLS_LISTEN}}\"]\n\
         certificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]\n\
         client_ca_file = \"{}\"\nclient_auth = \"{client_auth}\"",
        p.server.cert.display(),
        p.server.key.display(),
        p.clients_ca.cert_path().display(),
    );
    let head = ConfigBuilder::new()
        .without_listen()
        .grace_period("2s")
        .server_section(tls)
        .upstream("echo", echo)
        .render();
    format!(
        r#"
{head}
[connectors.bound]
kind = "jwt"
algorithms = ["HS256"]
secret_file = "{}"
require_certificate_binding = true

[connectors.bound.inject_headers]
"X-User" = "sub"
"X-Client-Subject" = {{ certificate = "subject" }}
"X-Client-San" = {{ certificate = "san" }}
"X-Client-Thumbprint" = {{ certificate = "thumbprint" }}

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"

[[routes]]
name = "bound"
path_prefix = "/bound"
upstream = "echo"
connectors = ["bound"]
"#,
        secret.display()
    )
}

/// A client trusting the server CA, presenting `identity` (if any).
fn client(p: &Pki, gh: &Gatehouse, identity: Option<&CertFiles>, http2: bool) -> reqwest::Client {
    let pem = std::fs::read(p.ca.cert_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("api.test", gh.tls_listen_addr());
    if let Some(id) = identity {
        let mut both = std::fs::read(&id.cert).unwrap();
        both.extend(std::fs::read(&id.key).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&both).unwrap());
    }
    b = if http2 {
        b.http2_prior_knowledge()
    } else {
        b.http1_only()
    };
    b.build().unwrap()
}

fn url(gh: &Gatehouse, path: &str) -> String {
    format!("https://api.test:{}{path}", gh.tls_listen_addr().port())
}

fn bound_token(thumb: &str) -> String {
    let mut c = claims("user-1", "https://idp.test", "api", 600);
    c["cnf"] = serde_json::json!({ "x5t#S256": thumb });
    TestKey::hmac(SECRET).mint(&c, None)
}

async fn get(
    c: &reqwest::Client,
    gh: &Gatehouse,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut r = c
        .get(url(gh, path))
        .header("X-Client-Subject", "CN=admin")
        .header("X-Client-Thumbprint", "forged");
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

#[track_caller]
fn assert_certificate_refusal(resp: &reqwest::Response) {
    assert_eq!(resp.status(), 401);
    let www = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.contains("error=\"invalid_token\""), "{www}");
}

#[tokio::test]
async fn required_client_auth_refuses_connections_without_a_trusted_certificate() {
    let p = pki();
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &config(&p, echo.addr(), "require")).unwrap();
    for (who, id) in [("no certificate", None), ("untrusted CA", Some(&p.mallory))] {
        let r = client(&p, &gh, id, false)
            .get(url(&gh, "/public"))
            .send()
            .await;
        assert!(r.is_err(), "{who}: {r:?}");
    }
    let ok = get(&client(&p, &gh, Some(&p.bob), false), &gh, "/public", None).await;
    let echo = echoed(ok).await;
    // Certificate headers are identity headers: a client's copies never pass,
    // not even on a public route.
    assert!(
        header_values(&echo, "x-client-subject").is_empty(),
        "{echo}"
    );
    assert!(header_values(&echo, "x-client-thumbprint").is_empty());
}

#[tokio::test]
async fn a_certificate_bound_token_passes_only_with_its_certificate() {
    let p = pki();
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &config(&p, echo.addr(), "optional")).unwrap();
    let token = bound_token(&thumbprint(&p.alice));
    for http2 in [false, true] {
        let alice = client(&p, &gh, Some(&p.alice), http2);
        let echo = echoed(get(&alice, &gh, "/bound", Some(&token)).await).await;
        assert_eq!(header_values(&echo, "x-user"), ["user-1"], "{echo}");
        assert_eq!(header_values(&echo, "x-client-subject"), ["CN=alice"]);
        assert_eq!(
            header_values(&echo, "x-client-san"),
            [format!("alice.test,{SPIFFE}").as_str()]
        );
        assert_eq!(
            header_values(&echo, "x-client-thumbprint"),
            [thumbprint(&p.alice).as_str()]
        );
    }
    // The token is in the verified-token cache now: another certificate, no
    // certificate, and a certificate from an untrusted CA are still refused.
    let bob = client(&p, &gh, Some(&p.bob), false);
    assert_certificate_refusal(&get(&bob, &gh, "/bound", Some(&token)).await);
    let none = client(&p, &gh, None, false);
    assert_certificate_refusal(&get(&none, &gh, "/bound", Some(&token)).await);
    let r = client(&p, &gh, Some(&p.mallory), false)
        .get(url(&gh, "/bound"))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(
        r.is_err(),
        "an untrusted certificate fails the handshake: {r:?}"
    );
    // Bob's own bound token passes with Bob's certificate.
    let bobs = bound_token(&thumbprint(&p.bob));
    echoed(get(&bob, &gh, "/bound", Some(&bobs)).await).await;
    // Optional client auth: a client without a certificate still reaches public routes.
    echoed(get(&none, &gh, "/public", None).await).await;
    assert!(
        gh.metric(
            "gatehouse_token_cache_requests_total",
            &[("connector", "bound"), ("result", "hit")]
        )
        .unwrap_or(0.0)
            >= 2.0,
        "refusals came from cache hits"
    );
    assert!(
        gh.metric(
            "gatehouse_jwt_validations_total",
            &[
                ("connector", "bound"),
                ("result", "invalid"),
                ("reason", "certificate_mismatch")
            ]
        )
        .unwrap_or(0.0)
            >= 2.0
    );
}

#[test]
fn check_warns_when_binding_has_no_client_certificates_to_bind_to() {
    let p = pki();
    let cfg = config(&p, "127.0.0.1:9".parse().unwrap(), "optional")
        .replace(
            &format!(
                "client_ca_file = \"{}\"\n",
                p.clients_ca.cert_path().display()
            ),
            "",
        )
        .replace("client_auth = \"optional\"\n", "")
        .replace("${TLS_LISTEN}", "127.0.0.1:2")
        .replace("${ADMIN}", "127.0.0.1:3");
    let path = p.dir.path().join("g.toml");
    std::fs::write(&path, &cfg).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("warning: connectors.bound needs a client certificate"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rotated_client_ca_applies_to_new_handshakes_without_a_restart() {
    let p = pki();
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &config(&p, echo.addr(), "require")).unwrap();
    let next_ca = TestCa::new(p.dir.path(), "clients-next").unwrap();
    let carol = next_ca.client("carol", "carol").unwrap();
    let passes = async |id: &CertFiles| {
        client(&p, &gh, Some(id), false)
            .get(url(&gh, "/public"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    assert!(!passes(&carol).await, "the next CA is not trusted yet");
    let bob_before = client(&p, &gh, Some(&p.bob), false);
    echoed(get(&bob_before, &gh, "/public", None).await).await;
    // Rotation, step 1: trust both CAs (a bundle), then step 2: only the new one.
    let ca_file = p.clients_ca.cert_path();
    let old_pem = std::fs::read_to_string(&ca_file).unwrap();
    let next_pem = std::fs::read_to_string(next_ca.cert_path()).unwrap();
    std::fs::write(&ca_file, format!("{old_pem}{next_pem}")).unwrap();
    gh.sighup();
    assert!(
        eventually(Duration::from_secs(10), async || passes(&carol).await).await,
        "the bundle is trusted after the reload\n{}",
        gh.logs()
    );
    assert!(passes(&p.bob).await, "both CAs during the overlap");
    std::fs::write(&ca_file, &next_pem).unwrap();
    gh.sighup();
    assert!(
        eventually(Duration::from_secs(10), async || !passes(&p.bob).await).await,
        "the retired CA is refused for new handshakes\n{}",
        gh.logs()
    );
    assert!(passes(&carol).await);
    // A connection opened before the rotation keeps its session…
    echoed(get(&bob_before, &gh, "/public", None).await).await;
    // …but a new connection that resumes that TLS session (the client kept its
    // ticket) carries a certificate the serving CA no longer accepts: refused.
    let close = bob_before
        .get(url(&gh, "/public"))
        .header("Connection", "close")
        .send()
        .await
        .unwrap();
    assert_eq!(close.status(), 200);
    let resumed = bob_before.get(url(&gh, "/public")).send().await;
    match resumed {
        Ok(r) => {
            assert_eq!(r.status(), 403, "a resumed session of a retired CA");
            let body = r.text().await.unwrap();
            assert!(body.contains("client_certificate_refused"), "{body}");
        }
        Err(e) => panic!("expected a resumed session answered 403, got {e}"),
    }
}
