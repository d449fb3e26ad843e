//! End-to-end: `gatehouse token mint|inspect` and `gatehouse jwks from-pem`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{repo_root, BIN};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn keys() -> PathBuf {
    repo_root().join("crates/gatehouse-testkit/keys")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn mint(extra: &[&str]) -> String {
    let key = keys().join("rsa-1.pem");
    let mut args = vec![
        "token",
        "mint",
        "--key",
        key.to_str().unwrap(),
        "--kid",
        "k1",
        "--iss",
        "https://idp.test",
        "--sub",
        "alice",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(&o).trim().to_string()
}

/// A config whose route `orders` trusts rsa-1 as `k1`, via a JWKS made by `jwks from-pem`.
fn config(dir: &Path) -> PathBuf {
    let o = run(&[
        "jwks",
        "from-pem",
        keys().join("rsa-1.pub.pem").to_str().unwrap(),
        "--kid",
        "k1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let jwks: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "k1");
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert!(jwks["keys"][0].get("d").is_none(), "no private member");
    std::fs::write(dir.join("jwks.json"), &o.stdout).unwrap();
    let cfg = format!(
        r#"
[server]
listen = ["127.0.0.1:1"]

[upstreams.orders]
peers = ["127.0.0.1:9"]

[connectors.corp]
kind = "jwt"
jwks_file = "{}"
algorithms = ["RS256"]
issuers = ["https://idp.test"]
audiences = ["orders-api"]
leeway = "0s"

[connectors.corp.inject_headers]
"X-User-Id" = "sub"

[[connectors.corp.policy]]
any = [{{ claim = "roles", op = "contains_any", values = ["reader"] }}]

[[connectors.corp.policy]]
any = [{{ claim = "tier", op = "equals", values = ["gold"] }}]

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "orders"
connectors = ["corp"]
"#,
        dir.join("jwks.json").display()
    );
    let path = dir.join("gatehouse.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn inspect(cfg: &Path, token: &str) -> (Option<i32>, String) {
    let o = run(&[
        "token",
        "inspect",
        token,
        "--config",
        cfg.to_str().unwrap(),
        "--route",
        "orders",
    ]);
    (
        o.status.code(),
        format!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr)),
    )
}

#[test]
fn mint_and_inspect_without_a_config() {
    let t = mint(&[
        "--aud",
        "a1",
        "--aud",
        "a2",
        "--claim",
        "roles=[\"x\",\"y\"]",
        "--claim",
        "tier=gold",
        "--exp",
        // mint and inspect read the clock separately; the half minute keeps
        // "in 10m" true across a second boundary between them.
        "10m 30s",
    ]);
    let o = run(&["token", "inspect", &t]);
    assert!(o.status.success());
    let out = stdout(&o);
    for needle in [
        "\"alg\": \"RS256\"",
        "\"kid\": \"k1\"",
        "\"a2\"",
        "\"tier\": \"gold\"",
        "exp ",
        "(in 10m",
        "signature: not verified",
    ] {
        assert!(out.contains(needle), "{needle} missing in:\n{out}");
    }
    let o = run(&["token", "inspect", "not-a-token"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a JWT"));
}

#[test]
fn inspect_explains_why_a_route_accepts_or_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let base = [
        "--aud",
        "orders-api",
        "--claim",
        "roles=[\"reader\"]",
        "--claim",
        "tier=gold",
    ];

    let (code, out) = inspect(&cfg, &mint(&base));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("corp (jwt): ACCEPTED") && out.contains("sets x-user-id: alice"),
        "{out}"
    );

    let (code, out) = inspect(&cfg, &mint(&[&base[..], &["--exp", "0s"]].concat()));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("REJECTED: token expired") && out.contains("reason expired"),
        "{out}"
    );

    let secret = "s".repeat(32);
    let o = run(&[
        "token",
        "mint",
        "--alg",
        "HS256",
        "--secret",
        &secret,
        "--kid",
        "k1",
        "--aud",
        "orders-api",
    ]);
    let hs = stdout(&o).trim().to_string();
    let (code, out) = inspect(&cfg, &hs);
    assert_eq!(code, Some(2));
    assert!(
        out.contains("token algorithm is not allowed")
            && out.contains("reason algorithm_not_allowed"),
        "{out}"
    );

    let other = run(&[
        "token",
        "mint",
        "--key",
        keys().join("rsa-2.pem").to_str().unwrap(),
        "--kid",
        "k9",
        "--iss",
        "https://idp.test",
        "--aud",
        "orders-api",
    ]);
    let (code, out) = inspect(&cfg, stdout(&other).trim());
    assert_eq!(code, Some(2));
    assert!(
        out.contains("no key with the token's kid") && out.contains("reason unknown_key"),
        "{out}"
    );

    let (code, out) = inspect(
        &cfg,
        &mint(&[
            "--aud",
            "billing-api",
            "--claim",
            "roles=[\"reader\"]",
            "--claim",
            "tier=gold",
        ]),
    );
    assert_eq!(code, Some(2));
    assert!(out.contains("token audience is not allowed"), "{out}");

    let (code, out) = inspect(
        &cfg,
        &mint(&[
            "--aud",
            "orders-api",
            "--claim",
            "roles=[\"reader\"]",
            "--claim",
            "tier=silver",
        ]),
    );
    assert_eq!(code, Some(2));
    assert!(
        out.contains("policy group 2 not satisfied (claims: tier)") && out.contains("status 403"),
        "{out}"
    );

    let o = run(&[
        "token",
        "inspect",
        &mint(&base),
        "--config",
        cfg.to_str().unwrap(),
        "--route",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no route named \"nope\" (known: orders)"));
}

fn schema() -> serde_json::Value {
    let o = run(&["schema"]);
    assert!(o.status.success());
    serde_json::from_slice(&o.stdout).expect("schema is JSON")
}

#[test]
fn every_shipped_config_validates_against_the_schema_and_typos_do_not() {
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let dir = repo_root().join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        let doc: serde_json::Value =
            toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
    assert!(n >= 4);
    let bad: serde_json::Value = toml::from_str(
        "[server]\nlisten = [\"127.0.0.1:1\"]\n[connectors.c]\nkind = \"jwt\"\nalgorithms = [\"RS256\"]\njwks_url = \"https://x/\"\nleewy = \"1s\"\n",
    )
    .unwrap();
    assert!(
        !validator.is_valid(&bad),
        "a typo in a connector key is caught by the schema"
    );
    let bad: serde_json::Value =
        toml::from_str("[server]\nlisten = [\"127.0.0.1:1\"]\ngrace_period = \"10\"\n").unwrap();
    assert!(
        !validator.is_valid(&bad),
        "a duration without unit is caught"
    );
    let bad: serde_json::Value =
        toml::from_str("[server]\nlisten = [\"127.0.0.1:1\"]\n[connectors.c]\nkind = \"jtw\"\n")
            .unwrap();
    assert!(!validator.is_valid(&bad), "an unknown kind is caught");
}
