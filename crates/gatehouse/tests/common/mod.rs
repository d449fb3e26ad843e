//! Shared helpers for the end-to-end tests.
#![allow(dead_code, clippy::unwrap_used)]

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

/// A minimal config: one public route `/public` (and `/` 404s) to `echo`.
pub(crate) fn public_config(echo: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = ["${{LISTEN}}"]
admin_listen = "${{ADMIN}}"
threads = 1
grace_period = "3s"
access_log = true

[upstreams.echo]
peers = ["{echo}"]
connect_timeout = "500ms"
read_timeout = "5s"

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"
{extra}
"#
    )
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

/// Polls `f` until it returns true or `timeout` passes.
pub(crate) async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
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
