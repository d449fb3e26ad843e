// The hello proxy, compiled once per engine version: `pingora` names the version the including file
// chose. It only picks the upstream — no filters, no headers, no logging — so what it costs per request
// is the engine's HTTP/1 request cycle, Tokio and the allocator.
//
//   hello-pingora-0_X LISTEN UPSTREAM [THREADS]      e.g. 127.0.0.1:8080 127.0.0.1:9000 1
//
// SIGINT stops it at once (Pingora's fast shutdown), which callgrind needs to write its counts.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;

struct Hello {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Hello {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} LISTEN UPSTREAM [THREADS]", args[0]);
        std::process::exit(2);
    }
    let upstream: SocketAddr = args[2].parse().expect("UPSTREAM is host:port");
    let threads = args.get(3).map_or(1, |t| t.parse().expect("THREADS is a number"));
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, Hello { upstream });
    service.add_tcp(&args[1]);
    server.add_service(service);
    server.run_forever();
}
