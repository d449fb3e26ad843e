//! End-to-end: key files (`secret_file`, `pem_file`, `jwks_file`) are part of
//! a connector's identity. Rotating one rebuilds the connector on `SIGHUP` or
//! by the file watch alone; a broken one refuses the reload and the old keys
//! keep serving; an unchanged one lets the connector (and its cache) carry
//! over. Key files live in their own directory, apart from the config, so the
//! watch of key-file directories is what sees them.
#![allow(clippy::unwrap_used)]

use gatehouse_testkit::tokens::claims;
use gatehouse_testkit::{eventually, jwks, ConfigBuilder, EchoUpstream, Gatehouse, TestKey};
use std::path::Path;
use std::time::Duration;

/// The `gatehouse` binary Cargo built for these tests.
const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

const OLD_SECRET: &[u8] = b"old-secret-0123456789abcdef-0123456789";
const NEW_SECRET: &[u8] = b"new-secret-0123456789abcdef-0123456789";
/// Upper bound for any awaited state (never a timing assumption).
const WAIT: Duration = Duration::from_secs(20);

fn config(echo: &EchoUpstream, connector: &str) -> String {
    let head = ConfigBuilder::new()
        .grace_period("2s")
        .upstream("echo", echo.addr())
        .render();
    format!(
        r#"
{head}
[connectors.keys]
kind = "jwt"
{connector}

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "echo"
connectors = ["keys"]
"#
    )
}

fn hs_config(echo: &EchoUpstream, secret: &Path) -> String {
    config(
        echo,
        &format!(
            "algorithms = [\"HS256\"]\nsecret_file = \"{}\"",
            secret.display()
        ),
    )
}

/// Replaces `path` atomically (write a temporary file, rename), as secret
/// managers and `kubectl` do, so no reader ever sees a partial file.
fn write_atomic(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn token(key: &TestKey, kid: Option<&str>) -> String {
    key.mint(&claims("alice", "https://idp.test", "api", 600), kid)
}

async fn status(gh: &Gatehouse, token: &str) -> u16 {
    reqwest::Client::new()
        .get(gh.url("/api/x"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn metric(gh: &Gatehouse, name: &str, labels: &[(&str, &str)]) -> f64 {
    gh.metric(name, labels).unwrap_or(0.0)
}

fn reloads(gh: &Gatehouse, result: &str) -> f64 {
    metric(gh, "gatehouse_config_reloads_total", &[("result", result)])
}

fn generation(gh: &Gatehouse) -> f64 {
    metric(gh, "gatehouse_config_generation", &[])
}

#[tokio::test]
async fn rotated_secret_file_applies_on_sighup() {
    let keys = tempfile::tempdir().unwrap();
    let secret = keys.path().join("hs.key");
    std::fs::write(&secret, OLD_SECRET).unwrap();
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &hs_config(&echo, &secret)).unwrap();
    let (old, new) = (
        token(&TestKey::hmac(OLD_SECRET), None),
        token(&TestKey::hmac(NEW_SECRET), None),
    );
    assert_eq!(status(&gh, &old).await, 200);
    assert_eq!(status(&gh, &new).await, 401);

    write_atomic(
        &secret,
        format!("{}\n", String::from_utf8_lossy(NEW_SECRET)).as_bytes(),
    );
    gh.sighup();
    // The file watch may apply it first; either way the revoked secret must
    // stop working and the new one must work.
    let rotated = eventually(WAIT, async || status(&gh, &old).await == 401).await;
    assert!(rotated, "old secret still accepted; logs:\n{}", gh.logs());
    assert_eq!(status(&gh, &new).await, 200);
    assert!(generation(&gh) >= 2.0);
    assert_eq!(reloads(&gh, "failure"), 0.0, "{}", gh.logs());
}

#[tokio::test]
async fn rotated_secret_file_applies_by_the_file_watch_alone() {
    let keys = tempfile::tempdir().unwrap();
    let secret = keys.path().join("hs.key");
    std::fs::write(&secret, OLD_SECRET).unwrap();
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &hs_config(&echo, &secret)).unwrap();
    let (old, new) = (
        token(&TestKey::hmac(OLD_SECRET), None),
        token(&TestKey::hmac(NEW_SECRET), None),
    );
    assert_eq!(status(&gh, &old).await, 200);

    write_atomic(&secret, NEW_SECRET);
    let reloaded = eventually(WAIT, async || generation(&gh) == 2.0).await;
    assert!(
        reloaded,
        "no reload after the key file changed; logs:\n{}",
        gh.logs()
    );
    // The generation is published after the swap: the new keys serve now.
    assert_eq!(status(&gh, &old).await, 401);
    assert_eq!(status(&gh, &new).await, 200);
    assert!(gh.logs().contains("file_change"), "{}", gh.logs());
    assert_eq!(reloads(&gh, "failure"), 0.0);
}

#[tokio::test]
async fn rotated_pem_file_applies_and_a_garbage_pem_is_refused() {
    let keys = tempfile::tempdir().unwrap();
    let pem = keys.path().join("signer.pem");
    let (k1, k2) = (TestKey::rsa(1), TestKey::rsa(2));
    std::fs::write(&pem, k1.public_pem().unwrap()).unwrap();
    let echo = EchoUpstream::start();
    let connector = format!(
        "algorithms = [\"RS256\"]\n[[connectors.keys.public_keys]]\nkid = \"signer\"\npem_file = \"{}\"",
        pem.display()
    );
    let gh = Gatehouse::start(BIN, &config(&echo, &connector)).unwrap();
    let (old, new) = (token(&k1, Some("signer")), token(&k2, Some("signer")));
    assert_eq!(status(&gh, &old).await, 200);
    assert_eq!(status(&gh, &new).await, 401);

    write_atomic(&pem, k2.public_pem().unwrap().as_bytes());
    gh.sighup();
    let rotated = eventually(WAIT, async || status(&gh, &old).await == 401).await;
    assert!(rotated, "old key still accepted; logs:\n{}", gh.logs());
    assert_eq!(status(&gh, &new).await, 200);
    assert_eq!(reloads(&gh, "failure"), 0.0, "{}", gh.logs());

    // A PEM file replaced by garbage: refused, the current key keeps serving.
    let generation_before = generation(&gh);
    write_atomic(
        &pem,
        b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
    );
    let refused = eventually(WAIT, async || reloads(&gh, "failure") == 1.0).await;
    assert!(refused, "garbage PEM not refused; logs:\n{}", gh.logs());
    assert!(
        gh.logs().contains("connectors.keys.public_keys[0]"),
        "{}",
        gh.logs()
    );
    assert_eq!(generation(&gh), generation_before);
    assert_eq!(status(&gh, &new).await, 200);
}

#[tokio::test]
async fn broken_secret_file_refuses_the_reload_and_old_keys_keep_serving() {
    let keys = tempfile::tempdir().unwrap();
    let secret = keys.path().join("hs.key");
    std::fs::write(&secret, OLD_SECRET).unwrap();
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &hs_config(&echo, &secret)).unwrap();
    let old = token(&TestKey::hmac(OLD_SECRET), None);
    assert_eq!(status(&gh, &old).await, 200);

    // Too short (the file watch tries it).
    write_atomic(&secret, b"short\n");
    let refused = eventually(WAIT, async || reloads(&gh, "failure") == 1.0).await;
    assert!(refused, "short secret not refused; logs:\n{}", gh.logs());
    assert!(
        gh.logs()
            .contains("connectors.keys.secret_file: secret is 5 bytes"),
        "path-qualified error; logs:\n{}",
        gh.logs()
    );
    assert_eq!(generation(&gh), 1.0);
    assert_eq!(status(&gh, &old).await, 200, "old keys keep serving");

    // SIGHUP retries the same broken file: one more failure, nothing changes.
    gh.sighup();
    let counted = eventually(WAIT, async || reloads(&gh, "failure") == 2.0).await;
    assert!(counted, "SIGHUP reload not counted; logs:\n{}", gh.logs());
    assert_eq!(status(&gh, &old).await, 200);

    // Larger than the 1 MiB read limit.
    write_atomic(&secret, &vec![b'a'; 2 * 1024 * 1024]);
    let refused = eventually(WAIT, async || reloads(&gh, "failure") == 3.0).await;
    assert!(refused, "oversized file not refused; logs:\n{}", gh.logs());
    assert!(
        gh.logs().contains("is larger than 1048576 bytes"),
        "{}",
        gh.logs()
    );

    // Removed.
    std::fs::remove_file(&secret).unwrap();
    let refused = eventually(WAIT, async || reloads(&gh, "failure") == 4.0).await;
    assert!(refused, "missing file not refused; logs:\n{}", gh.logs());
    assert!(
        gh.logs()
            .contains("connectors.keys.secret_file: cannot read"),
        "{}",
        gh.logs()
    );
    assert_eq!(generation(&gh), 1.0);
    assert_eq!(status(&gh, &old).await, 200);

    // A good secret again: applied by the watch.
    write_atomic(&secret, NEW_SECRET);
    let applied = eventually(WAIT, async || generation(&gh) == 2.0).await;
    assert!(applied, "fixed key file not applied; logs:\n{}", gh.logs());
    assert_eq!(status(&gh, &old).await, 401);
    assert_eq!(
        status(&gh, &token(&TestKey::hmac(NEW_SECRET), None)).await,
        200
    );
    assert_eq!(reloads(&gh, "failure"), 4.0);
}

#[tokio::test]
async fn unchanged_key_file_carries_the_connector_over_on_sighup() {
    let keys = tempfile::tempdir().unwrap();
    let secret = keys.path().join("hs.key");
    std::fs::write(&secret, OLD_SECRET).unwrap();
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &hs_config(&echo, &secret)).unwrap();
    let old = token(&TestKey::hmac(OLD_SECRET), None);
    let cache = |r: &'static str| {
        metric(
            &gh,
            "gatehouse_token_cache_requests_total",
            &[("connector", "keys"), ("result", r)],
        )
    };
    assert_eq!(status(&gh, &old).await, 200);
    assert_eq!((cache("miss"), cache("hit")), (1.0, 0.0));

    gh.sighup();
    let reloaded = eventually(WAIT, async || generation(&gh) == 2.0).await;
    assert!(reloaded, "SIGHUP reload; logs:\n{}", gh.logs());
    assert!(
        gh.logs().contains("connectors_kept=1"),
        "connector carried over; logs:\n{}",
        gh.logs()
    );
    // Carried over with its warm cache: the same token is a cache hit.
    assert_eq!(status(&gh, &old).await, 200);
    assert_eq!((cache("miss"), cache("hit")), (1.0, 1.0));
}

#[tokio::test]
async fn rotated_jwks_file_applies_by_the_file_watch_and_garbage_is_refused() {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("jwks.json");
    let (k1, k2) = (TestKey::rsa(1), TestKey::rsa(2));
    std::fs::write(&file, jwks(&[(&k1, "one")]).to_string()).unwrap();
    let echo = EchoUpstream::start();
    let connector = format!(
        "algorithms = [\"RS256\"]\njwks_file = \"{}\"",
        file.display()
    );
    let gh = Gatehouse::start(BIN, &config(&echo, &connector)).unwrap();
    let (old, new) = (token(&k1, Some("one")), token(&k2, Some("two")));
    assert_eq!(status(&gh, &old).await, 200);

    write_atomic(&file, jwks(&[(&k2, "two")]).to_string().as_bytes());
    let reloaded = eventually(WAIT, async || generation(&gh) == 2.0).await;
    assert!(
        reloaded,
        "no reload after the JWKS file changed; logs:\n{}",
        gh.logs()
    );
    assert_eq!(status(&gh, &old).await, 401);
    assert_eq!(status(&gh, &new).await, 200);

    write_atomic(&file, b"{ not json");
    let refused = eventually(WAIT, async || reloads(&gh, "failure") == 1.0).await;
    assert!(refused, "garbage JWKS not refused; logs:\n{}", gh.logs());
    assert!(
        gh.logs().contains("connectors.keys.jwks_file"),
        "{}",
        gh.logs()
    );
    assert_eq!(generation(&gh), 2.0);
    assert_eq!(
        status(&gh, &new).await,
        200,
        "the last good keys keep serving"
    );
}
