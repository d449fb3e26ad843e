//! Assembling and running the server: initial load, background runtime
//! (admin listener, reload triggers), the Pingora proxy service, signals.

use crate::admin;
use crate::metrics::Metrics;
use crate::proxy::GatehouseProxy;
use crate::reload::{initial_load, Reloader};
use crate::state::State;
use anyhow::Context;
use async_trait::async_trait;
use gatehouse_connectors::Registry;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the drain watcher checks for in-flight requests after `SIGTERM`.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Minimum time between `SIGTERM` and exit, so connections accepted just
/// before the listeners closed get their request read.
const DRAIN_MIN: Duration = Duration::from_millis(250);

/// Our signal handling for Pingora: `SIGTERM` = graceful (drain, exit as soon
/// as nothing is in flight or the grace period ends), `SIGINT` = fast,
/// `SIGQUIT` = graceful too (binary upgrades are not supported yet).
struct Signals {
    state: Arc<State>,
    grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        self.state.set_signals_installed();
        let graceful = tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM received: draining"); true }
            _ = quit.recv() => { tracing::info!("SIGQUIT received: draining (binary upgrade is not supported)"); true }
            _ = int.recv() => { tracing::info!("SIGINT received: exiting now"); false }
        };
        if !graceful {
            return ShutdownSignal::FastShutdown;
        }
        self.state.begin_shutdown();
        let state = self.state.clone();
        let grace = self.grace;
        std::thread::spawn(move || {
            let start = Instant::now();
            std::thread::sleep(DRAIN_MIN);
            while start.elapsed() < grace + DRAIN_MIN {
                if state.inflight() == 0 {
                    tracing::info!(
                        after_ms = start.elapsed().as_millis() as u64,
                        "drained, exiting"
                    );
                    std::process::exit(0);
                }
                std::thread::sleep(DRAIN_POLL);
            }
            tracing::warn!(
                inflight = state.inflight(),
                "grace period over, exiting with requests in flight"
            );
        });
        ShutdownSignal::GracefulTerminate
    }
}

/// The proxy service: Pingora's `HttpProxy` with our HTTP/2 settings, behind
/// the connection cap and HTTP/1 timeouts of [`crate::limits::Gate`].
fn proxy_service(
    server: &Server,
    state: &Arc<State>,
    cfg: &gatehouse_config::ServerConfig,
    fd_limit: Option<u64>,
) -> Service<crate::limits::Gate<GatehouseProxy>> {
    let mut options = HttpServerOptions::default();
    options.h2c = cfg.h2c;
    options.h2_idle_timeout = Some(cfg.h2_idle_timeout.get());
    let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
    h2.max_concurrent_streams(cfg.h2_max_concurrent_streams);
    // Pingora waits for send capacity before each write of a response body,
    // so this is the most one stalled stream buffers: the upstream read
    // pauses behind it (the `h2` default is 400 KiB per stream).
    h2.max_send_buffer_size(cfg.h2_max_send_buffer_bytes);
    // Pingora's default decoded header-list cap is 64 KiB; never below the
    // head limit, so larger heads reach our 431.
    let list = cfg.max_request_header_bytes.max(64 * 1024);
    h2.max_header_list_size(u32::try_from(list).unwrap_or(u32::MAX));
    let mut proxy = HttpProxy::new(
        GatehouseProxy {
            state: state.clone(),
            streams: Arc::default(),
        },
        server.configuration.clone(),
    );
    proxy.server_options = Some(options);
    proxy.h2_options = Some(h2);
    proxy.handle_init_modules();
    if let (Some(n), Some(limit)) = (cfg.max_connections, fd_limit) {
        if (n as u64).saturating_mul(2) + gatehouse_config::limits::RESERVED_FDS > limit {
            tracing::warn!(
                max_connections = n,
                fd_limit = limit,
                "server.max_connections may need more file descriptors than the limit allows (two per proxied connection)"
            );
        }
    }
    let gate = crate::limits::Gate::new(proxy, state.clone(), fd_limit, cfg.h2c);
    tracing::info!(
        max_connections = gate.cap(),
        derived = cfg.max_connections.is_none(),
        "client connections per process: at most {}",
        gate.cap()
    );
    Service::new("gatehouse".to_string(), gate)
}

/// Runs Gatehouse with the config at `path` until a shutdown signal.
/// Returns an error (for exit code 1) when the initial configuration or a
/// listener cannot be set up.
pub fn run(path: PathBuf, registry: Registry) -> anyhow::Result<()> {
    let fd_limit = crate::limits::raise_fd_limit().map(|l| l.soft);
    let metrics = Metrics::new().context("creating metrics")?;
    let bg = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gatehouse-bg")
        .enable_all()
        .build()
        .context("starting the background runtime")?;

    let (snapshot, bytes) = bg
        .block_on(initial_load(&path, &registry, &metrics))
        .map_err(|errs| anyhow::anyhow!("{}: configuration refused:\n{errs}", path.display()))?;
    let server_cfg = snapshot.config.server.clone();
    tracing::info!(
        generation = 1,
        routes = snapshot.routes.len(),
        connectors = snapshot.connectors.len(),
        "configuration loaded from {}",
        path.display()
    );
    let state = Arc::new(State::new(snapshot, metrics));

    if let Some(addr) = server_cfg.admin_listen {
        let listener = bg
            .block_on(admin::bind(addr))
            .with_context(|| format!("server.admin_listen: cannot listen on {addr}"))?;
        bg.spawn(admin::serve(listener, state.clone()));
        tracing::info!("admin listener on http://{addr} (/metrics /healthz /readyz)");
    }
    // Fail early, with the key's name, if a proxy listener is taken.
    for (i, addr) in server_cfg.listen.iter().enumerate() {
        std::net::TcpListener::bind(addr)
            .with_context(|| format!("server.listen[{i}]: cannot listen on {addr}"))?;
    }
    for (t, l) in server_cfg.tls.iter().enumerate() {
        for (i, addr) in l.listen.iter().enumerate() {
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("server.tls[{t}].listen[{i}]: cannot listen on {addr}"))?;
        }
    }

    // Ready only once Pingora has bound every proxy listener.
    {
        let (state, addrs) = (
            state.clone(),
            server_cfg.all_listen().copied().collect::<Vec<_>>(),
        );
        bg.spawn(async move {
            loop {
                let mut all = true;
                for a in &addrs {
                    let probe = if a.ip().is_unspecified() {
                        let lo: std::net::IpAddr = if a.is_ipv4() {
                            std::net::Ipv4Addr::LOCALHOST.into()
                        } else {
                            std::net::Ipv6Addr::LOCALHOST.into()
                        };
                        std::net::SocketAddr::new(lo, a.port())
                    } else {
                        *a
                    };
                    all &= tokio::net::TcpStream::connect(probe).await.is_ok();
                }
                if all {
                    state.set_listening();
                    tracing::info!("ready: every proxy listener accepts connections");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    let reloader = Arc::new(Reloader::new(path.clone(), registry, state.clone(), bytes));
    bg.spawn(reloader.clone().watch_sighup());
    {
        // The watcher lives in the reloader, which re-arms it when the set of
        // key files changes.
        let _guard = bg.enter();
        if let Err(e) = reloader.clone().watch_file() {
            tracing::warn!(
                "cannot watch {} for changes ({e}); reload with SIGHUP",
                path.display()
            );
        }
    }

    let grace = server_cfg.grace_period.get();
    let conf = ServerConf {
        threads: server_cfg
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        work_stealing: server_cfg.work_stealing,
        grace_period_seconds: Some(grace.as_secs() + u64::from(grace.subsec_nanos() > 0)),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: server_cfg.upstream_keepalive_pool_size,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = proxy_service(&server, &state, &server_cfg, fd_limit);
    for addr in &server_cfg.listen {
        // Pingora gives every accepted connection a 64 KiB read buffer;
        // with `read_buffer_bytes = 0` an idle connection holds none.
        let buffers =
            L4BufferSettings::new(server_cfg.read_buffer_bytes, DEFAULT_L4_WRITE_BUFFER_SIZE);
        service.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(buffers));
        tracing::info!("proxy listener on http://{addr}");
    }
    let initial_tls = state.current().tls.clone();
    if !server_cfg.tls.is_empty() {
        // The connection cap and the ClientHello deadline, before any TLS work.
        if let Some(gate) = service.app_logic().map(|g| g.tls_gate(fd_limit)) {
            service.endpoints().set_pre_tls_callback(Arc::new(gate));
        }
    }
    for (t, (l, initial)) in server_cfg.tls.iter().zip(initial_tls).enumerate() {
        for addr in &l.listen {
            let settings = crate::tls::settings(&state, t, initial.clone())?;
            // `read_buffer_bytes` applies to TLS listeners too: rustls reads
            // whole records through its own buffer.
            let buffers =
                L4BufferSettings::new(server_cfg.read_buffer_bytes, DEFAULT_L4_WRITE_BUFFER_SIZE);
            service.add_listener(
                ListenerConfig::tcp(addr.to_string())
                    .tls(settings)
                    .l4_buffer(buffers),
            );
            tracing::info!("proxy listener on https://{addr} (server.tls[{t}], h2 and http/1.1)");
        }
    }
    server.add_service(service);
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals { state, grace }),
    });
    tracing::info!("stopped");
    std::process::exit(0)
}
