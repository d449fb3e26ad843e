//! Tests of the process helpers against a fake `gatehouse` binary (a shell
//! script whose path is passed to [`Gatehouse`] like the real binary's).
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use gatehouse_testkit::Gatehouse;

/// Fake binary: prints its arguments and config, then exits with status 3.
fn fake_bin() -> PathBuf {
    static BIN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = BIN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake-gatehouse");
        std::fs::write(
            &path,
            "#!/bin/sh\necho \"args: $*\"\ncat \"$3\"\necho \"log level $RUST_LOG\" >&2\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    });
    path.clone()
}

#[test]
fn start_failure_reports_logs() {
    let err = Gatehouse::start_with_args(
        fake_bin(),
        "listen = \"${LISTEN}\"",
        &["--log-format", "json"],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("exited before becoming ready"), "{err}");
    assert!(err.contains("args: run --config"), "{err}");
    assert!(err.contains("--log-format json"), "{err}");
    assert!(err.contains("listen = \"127.0.0.1:"), "{err}");
    assert!(err.contains("log level"), "{err}");
}

#[test]
fn spawn_unchecked_and_accessors() {
    let mut gh =
        Gatehouse::spawn_unchecked(fake_bin(), "a = \"${LISTEN}\"\nb = \"${ADMIN}\"\n").unwrap();
    assert!(gh.pid() > 0);
    assert_ne!(gh.listen_addr(), gh.admin_addr());
    assert!(gh.listen_addr().ip().is_loopback());
    assert_eq!(gh.url("/p"), format!("http://{}/p", gh.listen_addr()));
    assert_eq!(gh.admin_url("/m"), format!("http://{}/m", gh.admin_addr()));
    assert_eq!(gh.config_path(), gh.dir().join("gatehouse.toml"));
    let status = gh.wait_exit(Duration::from_secs(5)).expect("fake exits");
    assert_eq!(status.code(), Some(3));
    assert!(gh.wait_for_log("args: run --config", Duration::from_secs(1)));
    assert!(!gh.wait_for_log("never printed", Duration::from_millis(100)));
    let logs = gh.logs();
    assert!(
        logs.contains(&format!("b = \"{}\"", gh.admin_addr())),
        "{logs}"
    );

    gh.write_config("c = \"${ADMIN}\"").unwrap();
    let written = std::fs::read_to_string(gh.config_path()).unwrap();
    assert_eq!(written, format!("c = \"{}\"", gh.admin_addr()));
    // Metrics on a dead process is an error / None, not a panic.
    assert!(gh.metrics().is_err());
    assert_eq!(gh.metric("x", &[]), None);
}
