//! Shared helpers for the end-to-end tests.
#![allow(dead_code, clippy::unwrap_used)]

use gatehouse_testkit::ConfigBuilder;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `gatehouse` binary Cargo built for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// The repository root (this package lives in `crates/gatehouse`).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/gatehouse sits two levels below the repository root")
        .to_path_buf()
}

/// The head of the shared test config: access log on, a 3 s grace period,
/// the `echo` upstream with short timeouts. Add server lines to it, render
/// it and append [`PUBLIC_ROUTE`] (what [`public_config`] does).
pub(crate) fn public_head(echo: SocketAddr) -> ConfigBuilder {
    ConfigBuilder::new()
        .grace_period("3s")
        .server_line("access_log = true")
        .upstream_with(
            "echo",
            echo,
            "connect_timeout = \"500ms\"\nread_timeout = \"5s\"",
        )
}

/// The route of [`public_config`]: `/public` to `echo` (and `/` 404s).
pub(crate) const PUBLIC_ROUTE: &str =
    "[[routes]]\nname = \"public\"\npath_prefix = \"/public\"\nupstream = \"echo\"\n";

/// A minimal config: one public route `/public` (and `/` 404s) to `echo`.
pub(crate) fn public_config(echo: SocketAddr, extra: &str) -> String {
    with_public_route(public_head(echo), extra)
}

/// [`public_config`] with `lines` added to its `[server]` table.
pub(crate) fn public_config_with_server(echo: SocketAddr, lines: impl Into<String>) -> String {
    with_public_route(public_head(echo).server_line(lines), "")
}

/// `head` rendered, then [`PUBLIC_ROUTE`] and `extra`.
pub(crate) fn with_public_route(head: ConfigBuilder, extra: &str) -> String {
    format!("{}{PUBLIC_ROUTE}{extra}\n", head.render())
}

/// An HTTP client that never reuses connections across tests and has a timeout.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The echo upstream's view of a proxied request.
pub(crate) async fn echoed(resp: reqwest::Response) -> serde_json::Value {
    assert_eq!(resp.status(), 200, "expected a proxied 200");
    resp.json().await.unwrap()
}

/// Values of a header as the echo upstream received it.
pub(crate) fn header_values<'a>(echo: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default()
}

/// Runs `gatehouse check -c` on `text` (placeholders replaced with fixed
/// addresses): whether it passed, and its stderr.
pub(crate) fn check_config(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        text.replace("${LISTEN}", "127.0.0.1:1")
            .replace("${ADMIN}", "127.0.0.1:2"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The DER of the first certificate of a PEM file.
pub(crate) fn der_of(pem_path: &Path) -> Vec<u8> {
    use base64::Engine;
    let text = std::fs::read_to_string(pem_path).unwrap();
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}
