//! Smoke test of the `gatehouse-devkit` binary: echo upstream, demo IdP
//! (JWKS, userinfo) and the demo tokens it writes.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gatehouse_testkit::http_get_blocking;
use gatehouse_testkit::tokens::now;
use gatehouse_testkit::{eventually_blocking, free_addr, TestKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

/// Kills the devkit when the test ends, however it ends.
struct Devkit(Child);

impl Drop for Devkit {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_200(addr: std::net::SocketAddr, path: &str) -> String {
    let mut answer = None;
    let answered = eventually_blocking(Duration::from_secs(20), || {
        answer = match http_get_blocking(addr, path) {
            Ok((200, body)) => Some(body),
            _ => None,
        };
        answer.is_some()
    });
    assert!(answered, "{path} on {addr} never answered 200");
    answer.unwrap_or_default()
}

/// Sends a GET with an optional bearer token; returns status, headers, body.
fn get(url: &str, bearer: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    })
}

fn decode(token: &str, jwks: &Value, iss: &str) -> jsonwebtoken::errors::Result<Value> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let header = jsonwebtoken::decode_header(token)?;
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&["demo-api"]);
    v.set_issuer(&[iss]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &v).map(|d| d.claims)
}

#[test]
fn devkit_serves_echo_idp_and_writes_tokens() {
    let echo = free_addr();
    let idp = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let child = Command::new(env!("CARGO_BIN_EXE_gatehouse-devkit"))
        .arg("--echo")
        .arg(echo.to_string())
        .arg("--idp")
        .arg(idp.to_string())
        .arg("--tokens-dir")
        .arg(&tokens)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Devkit(child);

    // Echo upstream.
    let body = wait_200(echo, "/hello?x=1");
    let echoed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["path"], "/hello", "{echoed}");

    // JWKS: the demo key under kid demo-1, same as TestKey::rsa(1).
    let jwks: Value = serde_json::from_str(&wait_200(idp, "/.well-known/jwks.json")).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["kid"], "demo-1");
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["n"], TestKey::rsa(1).jwk("demo-1")["n"]);

    // Tokens: all present (written before the JWKS is served), 3-part JWTs.
    let read = |name: &str| std::fs::read_to_string(tokens.join(name)).unwrap();
    for name in ["reader.jwt", "admin.jwt", "expired.jwt", "tampered.jwt"] {
        let t = read(name);
        assert_eq!(t.split('.').count(), 3, "{name}: {t}");
        assert!(t.split('.').all(|p| !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')));
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.kid.as_deref(), Some("demo-1"), "{name}");
    }
    let iss = format!("http://{idp}");
    let reader = decode(&read("reader.jwt"), &jwks, &iss).unwrap();
    assert_eq!(reader["sub"], "demo-user");
    assert_eq!(reader["roles"], serde_json::json!(["reader"]));
    assert_eq!(reader["email"], "demo@example.com");
    assert_eq!(reader["org"]["region"], "eu");
    let exp = reader["exp"].as_i64().unwrap();
    assert!((exp - now() - 12 * 3600).abs() < 120, "exp {exp}");
    let admin = decode(&read("admin.jwt"), &jwks, &iss).unwrap();
    assert_eq!(admin["sub"], "demo-admin");
    assert_eq!(admin["roles"], serde_json::json!(["admin", "reader"]));
    let expired = decode(&read("expired.jwt"), &jwks, &iss).unwrap_err();
    assert_eq!(*expired.kind(), ErrorKind::ExpiredSignature);
    let tampered = decode(&read("tampered.jwt"), &jwks, &iss).unwrap_err();
    assert_eq!(*tampered.kind(), ErrorKind::InvalidSignature);

    // Userinfo placeholders.
    for (path, region) in [("/userinfo", "us"), ("/eu/userinfo", "eu")] {
        let url = format!("http://{idp}{path}");
        let (status, _, body) = get(&url, Some("demo-opaque-token"));
        assert_eq!(status, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["sub"], "demo-user");
        assert_eq!(v["email"], "demo@example.com");
        assert_eq!(v["region"], region);
        for bearer in [None, Some("wrong")] {
            let (status, headers, body) = get(&url, bearer);
            assert_eq!(status, 401, "{path}");
            assert_eq!(
                headers.get("www-authenticate").unwrap(),
                "Bearer error=\"invalid_token\""
            );
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"], "invalid_token");
        }
    }
}

#[test]
fn devkit_without_services_fails() {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse-devkit"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no service selected"), "{err}");
}

#[test]
fn tokens_dir_requires_idp() {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse-devkit"))
        .args(["--tokens-dir", "/nonexistent/never-written"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!std::path::Path::new("/nonexistent/never-written").exists());
}
