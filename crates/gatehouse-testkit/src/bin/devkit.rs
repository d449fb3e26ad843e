//! `gatehouse-devkit`: runs the Gatehouse test services standalone, for demos
//! and manual testing.
//!
//! ```text
//! gatehouse-devkit --echo 127.0.0.1:9000 --idp 127.0.0.1:9100 --tokens-dir .gatehouse-run/tokens
//! ```
//!
//! `--idp` serves a demo identity provider: a JWKS at `/.well-known/jwks.json`
//! (test key `demo-1`) and userinfo endpoints at `/userinfo` and
//! `/eu/userinfo` (token `demo-opaque-token`). `--tokens-dir` writes demo
//! JWTs signed with that key: `reader.jwt`, `admin.jwt`, `expired.jwt`,
//! `tampered.jwt`.
//!
//! Each service is enabled by its own flag; the process runs until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use gatehouse_testkit::tokens::{b64url, claims, now, TestKey};
use gatehouse_testkit::{jwks, EchoUpstream, MockIdp, MockResponse};
use serde_json::json;
use std::path::PathBuf;

/// Runs Gatehouse test services (echo upstream, ...) until interrupted.
#[derive(Debug, Parser)]
#[command(name = "gatehouse-devkit", version, about)]
struct Cli {
    /// Start the echo upstream on this address (e.g. 127.0.0.1:9000).
    #[arg(long, value_name = "ADDR")]
    echo: Option<SocketAddr>,
    /// Start the demo identity provider on this address (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    idp: Option<SocketAddr>,
    /// Write demo tokens (issued by the --idp address) into this directory.
    #[arg(long, value_name = "DIR", requires = "idp")]
    tokens_dir: Option<PathBuf>,
}

/// Keeps the started services alive until shutdown.
#[derive(Default)]
struct Services {
    echo: Option<EchoUpstream>,
    idp: Option<MockIdp>,
}

/// The demo audience.
const DEMO_AUDIENCE: &str = "demo-api";
/// The `kid` of the demo signing key.
const DEMO_KID: &str = "demo-1";

fn userinfo(
    region: &'static str,
) -> impl Fn(&gatehouse_testkit::RecordedRequest) -> MockResponse + Send + Sync + 'static {
    move |req| {
        if req.header("authorization") == Some("Bearer demo-opaque-token") {
            MockResponse::json(
                200,
                json!({"sub": "demo-user", "email": "demo@example.com", "region": region}),
            )
        } else {
            MockResponse::json(401, json!({"error": "invalid_token"}))
                .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
        }
    }
}

fn write_tokens(dir: &std::path::Path, issuer: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = TestKey::rsa(1);
    let twelve_hours = 12 * 3600;
    let mut reader = claims("demo-user", issuer, DEMO_AUDIENCE, twelve_hours);
    reader["roles"] = json!(["reader"]);
    reader["email"] = json!("demo@example.com");
    reader["org"] = json!({"region": "eu"});
    let mut admin = claims("demo-admin", issuer, DEMO_AUDIENCE, twelve_hours);
    admin["roles"] = json!(["admin", "reader"]);
    let mut expired = reader.clone();
    expired["iat"] = json!(now() - 7200);
    expired["nbf"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let good = key.mint(&reader, Some(DEMO_KID));
    // Same signature, altered payload: well-formed but forged.
    let mut forged = reader.clone();
    forged["roles"] = json!(["admin"]);
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64url(forged.to_string()), parts[2]);
    for (name, token) in [
        ("reader.jwt", good.clone()),
        ("admin.jwt", key.mint(&admin, Some(DEMO_KID))),
        ("expired.jwt", key.mint(&expired, Some(DEMO_KID))),
        ("tampered.jwt", tampered),
    ] {
        std::fs::write(dir.join(name), token).with_context(|| format!("writing {name}"))?;
    }
    println!("demo tokens written to {}", dir.display());
    Ok(())
}

impl Services {
    fn start(cli: &Cli) -> anyhow::Result<Services> {
        let mut services = Services::default();
        if let Some(addr) = cli.echo {
            let echo = EchoUpstream::start_on(addr)
                .with_context(|| format!("starting echo upstream on {addr}"))?;
            println!("echo upstream listening on http://{}", echo.addr());
            services.echo = Some(echo);
        }
        if let Some(addr) = cli.idp {
            let idp =
                MockIdp::start_on(addr).with_context(|| format!("starting demo IdP on {addr}"))?;
            let addr = idp.addr();
            // Tokens first: once the JWKS answers, the tokens are on disk.
            if let Some(dir) = &cli.tokens_dir {
                write_tokens(dir, &format!("http://{addr}"))?;
            }
            idp.route_fn("GET", "/userinfo", userinfo("us"));
            idp.route_fn("GET", "/eu/userinfo", userinfo("eu"));
            idp.route(
                "GET",
                "/.well-known/jwks.json",
                MockResponse::json(200, jwks(&[(&TestKey::rsa(1), DEMO_KID)])),
            );
            println!("demo IdP listening on http://{addr} (JWKS at /.well-known/jwks.json, userinfo at /userinfo and /eu/userinfo)");
            services.idp = Some(idp);
        }
        Ok(services)
    }

    fn is_empty(&self) -> bool {
        self.echo.is_none() && self.idp.is_none()
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let services = Services::start(&cli)?;
    if services.is_empty() {
        anyhow::bail!("no service selected; pass e.g. --echo 127.0.0.1:9000 (see --help)");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building signal runtime")?;
    rt.block_on(wait_for_shutdown())?;
    eprintln!("shutting down");
    drop(services);
    Ok(())
}

#[cfg(unix)]
async fn wait_for_shutdown() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_shutdown() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}
