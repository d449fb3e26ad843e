//! `gatehouse-devkit`: runs the Gatehouse test services standalone, for demos
//! and manual testing.
//!
//! ```text
//! gatehouse-devkit --echo 127.0.0.1:9000
//! ```
//!
//! Each service is enabled by its own flag; the process runs until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use gatehouse_testkit::EchoUpstream;

/// Runs Gatehouse test services (echo upstream, ...) until interrupted.
#[derive(Debug, Parser)]
#[command(name = "gatehouse-devkit", version, about)]
struct Cli {
    /// Start the echo upstream on this address (e.g. 127.0.0.1:9000).
    #[arg(long, value_name = "ADDR")]
    echo: Option<SocketAddr>,
}

/// Keeps the started services alive until shutdown.
#[derive(Default)]
struct Services {
    echo: Option<EchoUpstream>,
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
        Ok(services)
    }

    fn is_empty(&self) -> bool {
        self.echo.is_none()
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
