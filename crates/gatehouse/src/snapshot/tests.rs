//! Snapshot compilation tests.
#![allow(clippy::unwrap_used)]
use super::*;
use std::path::Path;

fn hs_config(secret: &Path) -> Config {
    Config::from_toml_str(&format!(
        r#"
[server]
listen = ["127.0.0.1:1"]
[upstreams.u]
peers = ["127.0.0.1:1"]
[connectors.hs]
kind = "jwt"
algorithms = ["HS256"]
secret_file = "{}"
[[routes]]
name = "r"
upstream = "u"
connectors = ["hs"]
"#,
        secret.display()
    ))
    .unwrap()
}

async fn compile(
    secret: &Path,
    registry: &Registry,
    metrics: &Metrics,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, ConfigErrors> {
    super::compile(hs_config(secret), registry, metrics, previous, 2).await
}

fn conn(s: &Snapshot) -> Arc<dyn Connector> {
    s.connectors["hs"].connector.clone()
}

/// What `SIGHUP` runs: a compile against the serving snapshot.
#[tokio::test]
async fn compile_carries_a_connector_over_only_while_its_files_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hs.key");
    std::fs::write(&secret, [b'a'; 32]).unwrap();
    let (r, m) = (Registry::builtin(), Metrics::new().unwrap());
    let first = compile(&secret, &r, &m, None).await.unwrap();
    assert_eq!(
        first.connectors["hs"].files.keys().collect::<Vec<_>>(),
        [&secret],
        "the secret file is recorded"
    );

    let same = compile(&secret, &r, &m, Some(&first)).await.unwrap();
    assert!(
        Arc::ptr_eq(&conn(&first), &conn(&same)),
        "unchanged: carried over"
    );

    std::fs::write(&secret, [b'b'; 32]).unwrap();
    let rotated = compile(&secret, &r, &m, Some(&same)).await.unwrap();
    assert!(
        !Arc::ptr_eq(&conn(&same), &conn(&rotated)),
        "changed: rebuilt"
    );

    std::fs::write(&secret, b"short").unwrap();
    let err = compile(&secret, &r, &m, Some(&rotated))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("connectors.hs.secret_file: secret is 5 bytes"),
        "{err}"
    );

    std::fs::remove_file(&secret).unwrap();
    let err = compile(&secret, &r, &m, Some(&rotated))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("connectors.hs.secret_file: cannot read"),
        "{err}"
    );
}
