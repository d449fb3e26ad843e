//! End-to-end: start-up, `check`, shutdown, logging.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::{eventually, http_get_blocking, ConfigBuilder, EchoUpstream, Gatehouse};
use std::process::Command;
use std::time::{Duration, Instant};

/// The shared test config with a grace period far above the time bounds
/// asserted below, so "exits early" cannot be confused with "grace ran out".
fn long_grace(echo: std::net::SocketAddr) -> String {
    with_public_route(public_head(echo).grace_period("30s"), "")
}

/// The shared head with fixed addresses, for `gatehouse check` (nothing
/// substitutes placeholders there).
fn unplaced_head() -> ConfigBuilder {
    public_head("127.0.0.1:9".parse().unwrap())
        .listen("127.0.0.1:1")
        .admin("127.0.0.1:2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let echo = EchoUpstream::start();
    let mut gh = Gatehouse::start(BIN, &long_grace(echo.addr())).unwrap();
    let url = gh.url("/public/slow");
    let inflight = tokio::spawn(async move {
        client()
            .get(url)
            .header("x-echo-delay-ms", "1200")
            .send()
            .await
    });
    assert!(
        eventually(Duration::from_secs(5), async || echo.requests() == 1).await,
        "request reached the upstream"
    );

    let t0 = Instant::now();
    gh.sigterm();
    // Draining: readiness fails (the admin listener keeps answering), new connections are refused.
    let not_ready = eventually(Duration::from_secs(2), async || {
        matches!(http_get_blocking(gh.admin_addr(), "/readyz"), Ok((503, _)))
    })
    .await;
    assert!(not_ready, "/readyz answers 503 while draining");
    // Readiness turns 503 first (load balancers stop routing), then the
    // listeners close: a connection opened in between is still served.
    let refused = eventually(Duration::from_secs(3), async || {
        client().get(gh.url("/public/new")).send().await.is_err()
    })
    .await;
    assert!(refused, "no new connections while draining");

    let resp = inflight
        .await
        .unwrap()
        .expect("in-flight request completed");
    assert_eq!(resp.status(), 200);
    let status = gh.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "exit code 0, got {status:?}");
    // Exits once drained, well before the grace period.
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn sigterm_when_idle_exits_promptly() {
    let echo = EchoUpstream::start();
    let mut gh = Gatehouse::start(BIN, &long_grace(echo.addr())).unwrap();
    let t0 = Instant::now();
    gh.sigterm();
    let status = gh.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success());
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "idle drain took {:?}",
        t0.elapsed()
    );
}

#[test]
fn bad_config_at_start_exits_1_with_the_key_path() {
    let mut gh = Gatehouse::spawn_unchecked(
        BIN,
        &public_config("127.0.0.1:9".parse().unwrap(), "")
            .replace("read_timeout = \"5s\"", "read_timeout = 5"),
    )
    .unwrap();
    let status = gh.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(
        gh.logs().contains("upstreams.echo.read_timeout"),
        "{}",
        gh.logs()
    );
}

#[test]
fn taken_port_at_start_exits_1_naming_the_listener() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = with_public_route(
        public_head("127.0.0.1:9".parse().unwrap()).listen(taken.local_addr().unwrap()),
        "",
    );
    let mut gh = Gatehouse::spawn_unchecked(BIN, &cfg).unwrap();
    let status = gh.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(gh.logs().contains("server.listen[0]"), "{}", gh.logs());
}

#[test]
fn check_accepts_every_shipped_config() {
    // configs/tls.toml points at certificates this script generates
    // (configs/certs/, git-ignored); paths are relative to the repository root.
    let gen = Command::new(repo_root().join("scripts/gen-example-certs.sh"))
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let mut n = 0;
    for entry in std::fs::read_dir(repo_root().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .current_dir(repo_root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} refused:\n{}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(": OK") && stdout.contains("routes:"),
            "{stdout}"
        );
    }
    assert!(n >= 1, "configs/ holds example configs");
}

#[test]
fn check_refuses_a_bad_config_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = with_public_route(
        unplaced_head(),
        "[[routes]]\nname = \"x\"\npath_prefix = \"/x\"\nupstream = \"ecoh\"\nconnectors = [\"nope\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 errors"), "{err}");
    assert!(
        err.contains("routes[1].upstream: no upstream named \"ecoh\" (known: echo)"),
        "{err}"
    );
    assert!(
        err.contains("routes[1].connectors[0]: no connector named \"nope\""),
        "{err}"
    );
}

#[test]
fn unknown_connector_kind_lists_known_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kind.toml");
    let text = with_public_route(unplaced_head(), "[connectors.c]\nkind = \"jtw\"\n");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connectors.c.kind: unknown connector kind \"jtw\" (known: "),
        "{err}"
    );
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("gatehouse "));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("check") && help.contains("Examples:") && help.contains("SIGHUP"),
        "{help}"
    );
}

#[tokio::test]
async fn json_access_log_never_contains_credentials_or_query() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start_with_args(
        BIN,
        &public_config(echo.addr(), ""),
        &["--log-format", "json"],
    )
    .unwrap();
    client()
        .get(gh.url("/public/logme?access_token=SECRET-QUERY-TOKEN"))
        .header("authorization", "Bearer SECRET-HEADER-TOKEN")
        .header("cookie", "session=SECRET-COOKIE")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert!(gh.wait_for_log("/public/logme", Duration::from_secs(5)));
    let logs = gh.logs();
    let line = logs.lines().find(|l| l.contains("/public/logme")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["status"], 200);
    assert_eq!(v["route"], "public");
    assert!(
        !logs.contains("SECRET"),
        "credentials leaked into logs:\n{logs}"
    );
}
