//! The connector chain inside the real proxy, with connectors defined here
//! only: Gatehouse is started in-process (its own Pingora server and
//! listeners on loopback) with a registry that knows the test kinds.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use gatehouse_config::{deserialize_section, ConfigErrors};
use gatehouse_connectors::{
    BuildContext, Connector, ConnectorFactory, Denial, HeaderEdits, Reason, Registry, Rejection,
    RequestView, Verdict,
};
use gatehouse_testkit::{
    eventually, eventually_blocking, free_addr, http_get_blocking, scrape_metric, ConfigBuilder,
    EchoUpstream,
};
use http::{HeaderName, HeaderValue, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

static BUILDS: AtomicUsize = AtomicUsize::new(0);

/// Allows requests carrying `x-pass: yes`, injecting `x-user-id` from `x-user`.
struct Gate {
    name: String,
    realm: String,
    injected: Vec<HeaderName>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GateSettings {
    realm: String,
}

#[async_trait]
impl Connector for Gate {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &str {
        "test_gate"
    }
    async fn check(&self, req: &RequestView<'_>) -> Verdict {
        if req.headers.get("x-pass").is_none_or(|v| v != "yes") {
            return Verdict::Deny(Denial::from(Rejection::bearer(
                StatusCode::UNAUTHORIZED,
                Reason::MissingToken,
                &self.realm,
                "",
                "no pass",
            )));
        }
        let mut edits = HeaderEdits::none();
        if let Some(u) = req.headers.get("x-user") {
            edits
                .set
                .push((HeaderName::from_static("x-user-id"), u.clone()));
        }
        edits.remove.push(HeaderName::from_static("x-pass"));
        Verdict::Allow(edits)
    }
    fn injected_headers(&self) -> &[HeaderName] {
        &self.injected
    }
}

struct GateFactory;

#[async_trait]
impl ConnectorFactory for GateFactory {
    fn kind(&self) -> &'static str {
        "test_gate"
    }
    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConfigErrors> {
        let s: GateSettings = deserialize_section(&ctx.path, ctx.settings)?;
        BUILDS.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(Gate {
            name: ctx.name,
            realm: s.realm,
            injected: vec![HeaderName::from_static("x-user-id")],
        }))
    }
}

/// Denies writes with 403 and tags allowed requests.
struct ReadOnly(String);

#[async_trait]
impl Connector for ReadOnly {
    fn name(&self) -> &str {
        &self.0
    }
    fn kind(&self) -> &str {
        "test_readonly"
    }
    async fn check(&self, req: &RequestView<'_>) -> Verdict {
        if req.method == http::Method::GET {
            Verdict::Allow(HeaderEdits {
                set: vec![(
                    HeaderName::from_static("x-readonly"),
                    HeaderValue::from_static("checked"),
                )],
                ..Default::default()
            })
        } else {
            Verdict::Deny(Denial::from(Rejection::json(
                StatusCode::FORBIDDEN,
                Reason::PolicyDenied,
                "insufficient_scope",
                "read only",
            )))
        }
    }
}

struct ReadOnlyFactory;

#[async_trait]
impl ConnectorFactory for ReadOnlyFactory {
    fn kind(&self) -> &'static str {
        "test_readonly"
    }
    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConfigErrors> {
        Ok(Arc::new(ReadOnly(ctx.name)))
    }
}

struct Running {
    listen: SocketAddr,
    admin: SocketAddr,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    echo: SocketAddr,
    realm: &str,
    extra_route: &str,
) -> String {
    let head = ConfigBuilder::new()
        .listen(listen)
        .admin(admin)
        .upstream("echo", echo)
        .render();
    format!(
        r#"
{head}
[connectors.gate]
kind = "test_gate"
realm = "{realm}"

[connectors.ro]
kind = "test_readonly"

[[routes]]
name = "guarded"
path_prefix = "/guarded"
upstream = "echo"
connectors = ["gate", "ro"]
{extra_route}
"#
    )
}

/// Replaces the config the way editors and Kubernetes do (write aside, then
/// rename), so the watcher never reads a half-written file.
fn replace_file(path: &std::path::Path, text: String) -> std::io::Result<()> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn start(echo: SocketAddr) -> Running {
    let (listen, admin) = (free_addr(), free_addr());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, config(listen, admin, echo, "test", "")).unwrap();
    let mut registry = Registry::builtin();
    registry
        .register(Arc::new(GateFactory))
        .register(Arc::new(ReadOnlyFactory));
    let p = path.clone();
    std::thread::spawn(move || gatehouse::server::run(p, registry));
    let ready = eventually_blocking(Duration::from_secs(10), || {
        matches!(http_get_blocking(admin, "/readyz"), Ok((200, _)))
    });
    assert!(ready, "in-process gatehouse did not become ready");
    Running {
        listen,
        admin,
        path,
        _dir: dir,
    }
}

/// One test, sequential steps: the server runs in this process until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_denies_allows_edits_strips_and_survives_reload() {
    let echo = EchoUpstream::start();
    let gh = start(echo.addr());
    let cl = reqwest::Client::new();
    let url = format!("http://{}/guarded/x", gh.listen);

    // 1. First connector denies: early 401 with the challenge; upstream untouched.
    let r = cl.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"test\"");
    assert!(r.headers().contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error_description"], "no pass");
    assert_eq!(echo.requests(), 0);
    assert_eq!(
        scrape_metric(
            gh.admin,
            "gatehouse_rejections_total",
            &[
                ("route", "guarded"),
                ("connector", "gate"),
                ("reason", "missing_token")
            ]
        ),
        Some(1.0)
    );

    // 2. Both allow: edits from both applied, spoofed identity header replaced, x-pass removed.
    let r = cl
        .get(&url)
        .header("x-pass", "yes")
        .header("x-user", "alice")
        .header("x-user-id", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["headers"]["x-user-id"], serde_json::json!(["alice"]));
    assert_eq!(e["headers"]["x-readonly"], serde_json::json!(["checked"]));
    assert!(e["headers"].get("x-pass").is_none());

    // 3. Allowed without an identity: the client's copy is still stripped.
    let r = cl
        .get(&url)
        .header("x-pass", "yes")
        .header("x-user-id", "root")
        .send()
        .await
        .unwrap();
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(
        e["headers"].get("x-user-id").is_none(),
        "spoofed x-user-id reached upstream: {e}"
    );

    // 4. Second connector denies: 403, later metrics per connector and reason.
    let r = cl
        .post(&url)
        .header("x-pass", "yes")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        scrape_metric(
            gh.admin,
            "gatehouse_rejections_total",
            &[("connector", "ro"), ("reason", "policy_denied")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape_metric(
            gh.admin,
            "gatehouse_connector_duration_seconds_count",
            &[("connector", "gate"), ("result", "allow")]
        ),
        Some(3.0)
    );
    assert_eq!(
        scrape_metric(
            gh.admin,
            "gatehouse_connector_duration_seconds_count",
            &[("connector", "ro"), ("result", "deny")]
        ),
        Some(1.0)
    );
    assert_eq!(echo.requests(), 2);

    // 5. An early answer to a request with an unread body never lets that body
    //    be parsed as the next request on the connection.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(gh.listen).await.unwrap();
        s.write_all(b"POST /guarded/x HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\nGET /guarded/smuggled HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 401"), "{out}");
        assert_eq!(
            out.matches("HTTP/1.1").count(),
            1,
            "exactly one response: {out}"
        );
    }

    // 6. Reload with an unchanged connector section: the instance is carried over.
    let builds = BUILDS.load(Ordering::SeqCst);
    let extra = "[[routes]]\nname = \"open\"\npath_prefix = \"/open\"\nupstream = \"echo\"\n";
    replace_file(
        &gh.path,
        config(gh.listen, gh.admin, echo.addr(), "test", extra),
    )
    .unwrap();
    let reloaded = eventually(Duration::from_secs(5), async || {
        scrape_metric(gh.admin, "gatehouse_config_generation", &[]) == Some(2.0)
    })
    .await;
    assert!(reloaded);
    assert_eq!(
        BUILDS.load(Ordering::SeqCst),
        builds,
        "unchanged connector was not rebuilt"
    );
    assert_eq!(
        cl.get(format!("http://{}/open", gh.listen))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // 7. A changed section is rebuilt, and its new settings serve.
    replace_file(
        &gh.path,
        config(gh.listen, gh.admin, echo.addr(), "changed", extra),
    )
    .unwrap();
    let rebuilt = eventually(Duration::from_secs(5), async || {
        scrape_metric(gh.admin, "gatehouse_config_generation", &[]) == Some(3.0)
    })
    .await;
    assert!(rebuilt);
    assert_eq!(BUILDS.load(Ordering::SeqCst), builds + 1);
    let r = cl.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"changed\"");

    // 8. A bad setting for the test kind is refused with its path; old config keeps serving.
    replace_file(
        &gh.path,
        config(gh.listen, gh.admin, echo.addr(), "x\"\nrealmm = \"y", extra),
    )
    .unwrap();
    let failed = eventually(Duration::from_secs(5), async || {
        scrape_metric(
            gh.admin,
            "gatehouse_config_reloads_total",
            &[("result", "failure")],
        ) == Some(1.0)
    })
    .await;
    assert!(failed);
    let r = cl.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"changed\"");
}
