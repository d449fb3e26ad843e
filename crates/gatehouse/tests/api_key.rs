//! End-to-end: the `api_key` connector in the real binary, in front of the
//! testkit echo upstream — keys from a header and the query, stripped before
//! the upstream; consumer and plan injected; disabled, expired, unknown and
//! doubled keys; Mashery signed keys inside and outside the skew; a keys file
//! rotated under a running Gatehouse; a key carried in a verified JWT claim;
//! and `gatehouse keys add` / `keys hash` against a running Gatehouse.
#![allow(clippy::unwrap_used)]

mod common;

use common::{client, echoed, header_values, BIN};
use gatehouse_connectors::apikey::keys::hash_line;
use gatehouse_connectors::apikey::settings::SignatureAlgorithm;
use gatehouse_connectors::apikey::signature::sign;
use gatehouse_testkit::tokens::claims;
use gatehouse_testkit::{eventually, ConfigBuilder, EchoUpstream, Gatehouse, TestKey};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(20);
const HS: &[u8] = b"api-key-test-hmac-secret-0123456789abcdef";
const ACME: &str = "acme-0123456789abcdef";
const OFF: &str = "off-0123456789abcdef";
const OLD: &str = "old-0123456789abcdef";
const SIGNED: &str = "signed-0123456789abcdef";
const SECRET: &str = "shared-secret-value";

fn keys_file(dir: &Path, extra: &str) -> String {
    let secret = dir.join("signed.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    format!(
        "[[keys]]\n{}\nconsumer = \"acme\"\nplan = \"gold\"\n\n\
         [[keys]]\n{}\nconsumer = \"offco\"\nstatus = \"disabled\"\n\n\
         [[keys]]\n{}\nconsumer = \"oldco\"\nexpires = \"2001-01-01T00:00:00Z\"\n\n\
         [[keys]]\n{}\nconsumer = \"signer\"\nplan = \"silver\"\nsecret_file = {:?}\n\n{extra}",
        hash_line(ACME),
        hash_line(OFF),
        hash_line(OLD),
        hash_line(SIGNED),
        secret.display().to_string()
    )
}

/// Replaces `path` at once, as an operator's tooling would.
fn write_atomic(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config(echo: &EchoUpstream, keys: &Path) -> String {
    let keys = keys.display();
    let head = ConfigBuilder::new()
        .grace_period("2s")
        .upstream("echo", echo.addr())
        .render();
    format!(
        r#"
{head}
[connectors.keys]
kind = "api_key"
key_sources = [{{ header = "X-Api-Key" }}, {{ query = "api_key" }}]
keys_file = "{keys}"
[connectors.keys.inject_headers]
"X-Consumer-Id" = "$.consumer"
"X-Plan" = "$.plan"

[connectors.signed]
kind = "api_key"
key_sources = [{{ query = "api_key" }}]
keys_file = "{keys}"
signature = {{ query = "sig", algorithm = "sha256", max_skew = "5m" }}
error_style = "mashery"
[connectors.signed.inject_headers]
"X-Consumer-Id" = "$.consumer"

[connectors.corp_jwt]
kind = "jwt"
algorithms = ["HS256"]
secret_file = "{hs}"
issuers = ["https://idp.test"]
audiences = ["api"]

[connectors.keys_in_token]
kind = "api_key"
key_sources = [{{ claim = "client_id" }}]
keys_file = "{keys}"
[connectors.keys_in_token.inject_headers]
"X-Plan" = "$.plan"

[[routes]]
name = "keys"
path_prefix = "/keys"
upstream = "echo"
connectors = ["keys"]

[[routes]]
name = "signed"
path_prefix = "/signed"
upstream = "echo"
connectors = ["signed"]

[[routes]]
name = "bound"
path_prefix = "/bound"
upstream = "echo"
connectors = ["corp_jwt", "keys_in_token"]
"#,
        hs = keys.to_string().replace("keys.toml", "hs.key"),
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    keys: std::path::PathBuf,
    _echo: EchoUpstream,
    gh: Gatehouse,
}

fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    std::fs::write(&keys, keys_file(dir.path(), "")).unwrap();
    std::fs::write(dir.path().join("hs.key"), HS).unwrap();
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &config(&echo, &keys)).unwrap();
    Setup {
        _dir: dir,
        keys,
        _echo: echo,
        gh,
    }
}

async fn get(gh: &Gatehouse, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = client().get(gh.url(path));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

async fn status(gh: &Gatehouse, path: &str, headers: &[(&str, &str)]) -> u16 {
    get(gh, path, headers).await.status().as_u16()
}

#[tokio::test]
async fn keys_are_checked_stripped_and_their_consumer_injected() {
    let s = start();
    let gh = &s.gh;
    // Header: the key never reaches the upstream; a forged identity header is replaced.
    let e = echoed(
        get(
            gh,
            "/keys/a",
            &[
                ("x-api-key", ACME),
                ("x-consumer-id", "forged"),
                ("x-plan", "forged"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(header_values(&e, "x-consumer-id"), ["acme"]);
    assert_eq!(header_values(&e, "x-plan"), ["gold"]);
    assert!(header_values(&e, "x-api-key").is_empty(), "{e}");
    // Query, with another parameter kept; a percent-encoded name is the same carrier.
    let e = echoed(get(gh, &format!("/keys/a?x=1&api_key={ACME}"), &[]).await).await;
    assert_eq!(e["query"], "x=1", "{e}");
    let e = echoed(get(gh, &format!("/keys/a?API%5Fkey={ACME}&y=2"), &[]).await).await;
    assert_eq!(e["query"], "y=2", "{e}");
    assert!(!e.to_string().contains(ACME), "{e}");

    assert_eq!(status(gh, "/keys/a", &[]).await, 401);
    assert_eq!(
        status(gh, "/keys/a", &[("x-api-key", "unknown-0123456789")]).await,
        403
    );
    assert_eq!(status(gh, "/keys/a", &[("x-api-key", OFF)]).await, 403);
    assert_eq!(status(gh, "/keys/a", &[("x-api-key", OLD)]).await, 403);
    // Two carriers, two parameters, a key in a path parameter or the path: never read.
    assert_eq!(
        status(
            gh,
            &format!("/keys/a?api_key={ACME}"),
            &[("x-api-key", ACME)]
        )
        .await,
        400
    );
    assert_eq!(
        status(gh, &format!("/keys/a?api_key={ACME}&api_key={OFF}"), &[]).await,
        400
    );
    assert_eq!(
        status(gh, &format!("/keys/a?api_key={ACME}&api.key={ACME}"), &[]).await,
        400
    );
    // (a `;` path parameter is refused by the canonical request, before any connector)
    assert_eq!(
        status(gh, &format!("/keys/a;api_key={ACME}"), &[]).await,
        400
    );
    assert_eq!(status(gh, &format!("/keys/{ACME}"), &[]).await, 401);
    // Rejections are counted by bounded reason, never by key or consumer.
    let m = gh.metrics().unwrap();
    assert!(m.contains("reason=\"key_inactive\""), "{m}");
    assert!(
        !m.contains(ACME) && !m.contains("offco"),
        "a key or consumer became a label"
    );
    assert_eq!(
        gh.metric("gatehouse_api_keys", &[("connector", "keys")]),
        Some(4.0)
    );
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn signed_keys_are_accepted_within_the_skew_only() {
    let s = start();
    let gh = &s.gh;
    let url = |sig: &str| format!("/signed/a?api_key={SIGNED}&sig={sig}");
    let sig = |t: i64, secret: &str| {
        sign(
            SignatureAlgorithm::Sha256,
            SIGNED.as_bytes(),
            secret.as_bytes(),
            t,
        )
    };
    let e = echoed(get(gh, &url(&sig(now(), SECRET)), &[]).await).await;
    assert_eq!(header_values(&e, "x-consumer-id"), ["signer"]);
    assert_eq!(e["query"], serde_json::Value::Null, "{e}");
    assert_eq!(status(gh, &url(&sig(now() - 200, SECRET)), &[]).await, 200);
    for bad in [
        sig(now() - 600, SECRET),
        sig(now() + 600, SECRET),
        sig(now(), "wrong"),
    ] {
        let r = get(gh, &url(&bad), &[]).await;
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers()["x-mashery-error-code"],
            "ERR_403_NOT_AUTHORIZED"
        );
    }
    // No signature, and a key without a secret on a signed connector.
    assert_eq!(
        status(gh, &format!("/signed/a?api_key={SIGNED}"), &[]).await,
        403
    );
    let r = get(
        gh,
        &format!("/signed/a?api_key={ACME}&sig={}", sig(now(), SECRET)),
        &[],
    )
    .await;
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_rotated_keys_file_applies_without_a_restart() {
    let s = start();
    let gh = &s.gh;
    assert_eq!(status(gh, "/keys/a", &[("x-api-key", ACME)]).await, 200);
    const NEW: &str = "new-0123456789abcdef";
    let dir = s.keys.parent().unwrap();
    let rotated = keys_file(
        dir,
        &format!("[[keys]]\n{}\nconsumer = \"newco\"\n", hash_line(NEW)),
    )
    .replace(&hash_line(ACME), &hash_line("retired-0123456789"));
    write_atomic(&s.keys, &rotated);
    assert!(
        eventually(WAIT, async || status(gh, "/keys/a", &[("x-api-key", NEW)])
            .await
            == 200)
        .await,
        "the new key was never accepted"
    );
    assert_eq!(status(gh, "/keys/a", &[("x-api-key", ACME)]).await, 403);
    // A broken file is refused; the keys in force keep serving.
    let failures = gh
        .metric("gatehouse_config_reloads_total", &[("result", "failure")])
        .unwrap_or(0.0);
    write_atomic(&s.keys, "[[keys]]\nsha256 = \"nothex\"\nconsumer = \"x\"\n");
    assert!(
        eventually(WAIT, async || {
            gh.metric("gatehouse_config_reloads_total", &[("result", "failure")])
                .unwrap_or(0.0)
                > failures
        })
        .await
    );
    assert_eq!(status(gh, "/keys/a", &[("x-api-key", NEW)]).await, 200);
}

#[tokio::test]
async fn a_key_in_a_verified_jwt_claim_is_checked_after_the_token() {
    let s = start();
    let gh = &s.gh;
    let key = TestKey::hmac(HS);
    let token = |client_id: Option<&str>| {
        let mut c = claims("alice", "https://idp.test", "api", 600);
        if let Some(id) = client_id {
            c["client_id"] = serde_json::json!(id);
        }
        format!("Bearer {}", key.mint(&c, None))
    };
    let e = echoed(get(gh, "/bound/a", &[("authorization", &token(Some(ACME)))]).await).await;
    assert_eq!(header_values(&e, "x-plan"), ["gold"]);
    assert_eq!(
        status(
            gh,
            "/bound/a",
            &[("authorization", &token(Some("nope-0123456789")))]
        )
        .await,
        403
    );
    assert_eq!(
        status(gh, "/bound/a", &[("authorization", &token(Some(OFF)))]).await,
        403
    );
    assert_eq!(
        status(gh, "/bound/a", &[("authorization", &token(None))]).await,
        401
    );
    // The key as a header does not stand in for the claim.
    assert_eq!(
        status(
            gh,
            "/bound/a",
            &[("authorization", &token(None)), ("x-api-key", ACME)]
        )
        .await,
        401
    );
    // `token inspect --route` shows the flow: what the JWT step hands on, what the key step did.
    let t = token(Some(ACME));
    let raw = t.strip_prefix("Bearer ").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["token", "inspect", raw, "--route", "bound", "--config"])
        .arg(gh.config_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("hands on to later steps: {") && text.contains("client_id"),
        "{text}"
    );
    assert!(
        text.contains("keys_in_token") && text.contains("sets x-plan: gold"),
        "{text}"
    );
    // A token that fails verification never reaches the key step.
    let forged = TestKey::hmac(b"another-secret-0123456789abcdef-xyz");
    let mut c = claims("alice", "https://idp.test", "api", 600);
    c["client_id"] = serde_json::json!(ACME);
    let bad = format!("Bearer {}", forged.mint(&c, None));
    assert_eq!(
        status(gh, "/bound/a", &[("authorization", &bad)]).await,
        401
    );
}

#[test]
fn check_refuses_a_claim_source_in_the_first_step() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    std::fs::write(&keys, keys_file(dir.path(), "")).unwrap();
    std::fs::write(dir.path().join("hs.key"), HS).unwrap();
    let echo = EchoUpstream::start();
    let cfg = config(&echo, &keys)
        .replace(
            "connectors = [\"corp_jwt\", \"keys_in_token\"]",
            "connectors = [\"keys_in_token\"]",
        )
        .replace("${LISTEN}", "127.0.0.1:18080")
        .replace("${ADMIN}", "127.0.0.1:18081");
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("routes[2].connectors[0]") && err.contains("reads its key from a claim"),
        "{err}"
    );
}

#[tokio::test]
async fn keys_add_makes_a_key_a_running_gatehouse_accepts() {
    let s = start();
    let gh = &s.gh;
    let out = std::process::Command::new(BIN)
        .args([
            "keys",
            "add",
            "--consumer",
            "cli-co",
            "--plan",
            "bronze",
            "--file",
        ])
        .arg(&s.keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.trim().strip_prefix("key: ").unwrap().to_string();
    assert!(!std::fs::read_to_string(&s.keys).unwrap().contains(&key));
    assert!(
        eventually(WAIT, async || status(gh, "/keys/a", &[("x-api-key", &key)])
            .await
            == 200)
        .await,
        "the added key was never accepted"
    );
    let e = echoed(get(gh, "/keys/a", &[("x-api-key", &key)]).await).await;
    assert_eq!(header_values(&e, "x-plan"), ["bronze"]);
    let hash = std::process::Command::new(BIN)
        .args(["keys", "hash", &key])
        .output()
        .unwrap();
    let line = String::from_utf8(hash.stdout).unwrap();
    assert_eq!(line.trim(), hash_line(&key));
    assert!(std::fs::read_to_string(&s.keys)
        .unwrap()
        .contains(line.trim()));
}
