//! End-to-end: upstreams that survive a dead peer — retries on connect
//! failure, passive and active health, a peer that comes back, names
//! re-resolved off the request path.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::{eventually, free_addr, ConfigBuilder, EchoUpstream, Gatehouse};
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn config(peers: &[String], extra: &str) -> String {
    let head = ConfigBuilder::new().upstream_peers(
        "app",
        peers,
        &format!("connect_timeout = \"500ms\"\nread_timeout = \"5s\"\n{extra}"),
    );
    format!(
        "{}[[routes]]\nname = \"app\"\npath_prefix = \"/\"\nupstream = \"app\"\n",
        head.render()
    )
}

fn healthy(gh: &Gatehouse, peer: SocketAddr) -> Option<f64> {
    gh.metric(
        "gatehouse_upstream_peer_healthy",
        &[("upstream", "app"), ("peer", &peer.to_string())],
    )
}

fn counter(gh: &Gatehouse, name: &str) -> f64 {
    gh.metric(name, &[("upstream", "app")]).unwrap_or(-1.0)
}

/// Sends `n` GETs on fresh connections; returns how many were not 200.
async fn failures(gh: &Gatehouse, n: usize) -> usize {
    let c = client();
    let mut bad = 0;
    for i in 0..n {
        let r = c.get(gh.url(&format!("/r/{i}"))).send().await.unwrap();
        if r.status() != 200 {
            bad += 1;
        }
    }
    bad
}

#[tokio::test]
async fn a_peer_refusing_connections_costs_no_request_and_is_skipped() {
    let echo = EchoUpstream::start();
    // Bound, then closed: connections to it are refused.
    let dead = free_addr();
    let peers = [dead.to_string(), echo.addr().to_string()];
    let gh = Gatehouse::start(
        BIN,
        &config(
            &peers,
            "retries = 1\nunhealthy_after = 3\ncooldown = \"1h\"",
        ),
    )
    .unwrap();
    assert_eq!(healthy(&gh, dead), Some(1.0), "in rotation at start");

    assert_eq!(failures(&gh, 200).await, 0, "{}", gh.logs());
    assert_eq!(echo.requests(), 200, "every request reached the live peer");
    assert!(counter(&gh, "gatehouse_upstream_retries_total") > 0.0);
    // Three failures took it out; skipped since (the cool-down is long).
    assert_eq!(
        counter(&gh, "gatehouse_upstream_connect_failures_total"),
        3.0
    );
    assert_eq!(counter(&gh, "gatehouse_upstream_retries_total"), 3.0);
    assert_eq!(healthy(&gh, dead), Some(0.0));
    assert_eq!(healthy(&gh, echo.addr()), Some(1.0));
}

#[tokio::test]
async fn a_peer_that_comes_back_receives_traffic_again() {
    let echo = EchoUpstream::start();
    let dead = free_addr();
    let peers = [dead.to_string(), echo.addr().to_string()];
    let gh = Gatehouse::start(
        BIN,
        &config(&peers, "unhealthy_after = 1\ncooldown = \"200ms\""),
    )
    .unwrap();
    assert_eq!(failures(&gh, 20).await, 0, "{}", gh.logs());
    assert!(counter(&gh, "gatehouse_upstream_connect_failures_total") >= 1.0);

    let back = EchoUpstream::start_on(dead).unwrap();
    let c = client();
    let reached = eventually(WAIT, async || {
        let r = c.get(gh.url("/again")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        back.requests() > 0
    })
    .await;
    assert!(reached, "the returning peer got no request: {}", gh.logs());
    assert!(
        eventually(WAIT, async || {
            let _ = c.get(gh.url("/again")).send().await;
            healthy(&gh, dead) == Some(1.0)
        })
        .await
    );
    // Back in the round-robin: both peers share new requests.
    let (b0, e0) = (back.requests(), echo.requests());
    assert_eq!(failures(&gh, 20).await, 0);
    assert!(back.requests() - b0 >= 5, "{}", back.requests() - b0);
    assert!(echo.requests() - e0 >= 5);
}

#[tokio::test]
async fn without_retries_a_connect_failure_is_a_502() {
    let dead = free_addr();
    let gh = Gatehouse::start(BIN, &config(&[dead.to_string()], "retries = 0")).unwrap();
    let r = client().get(gh.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(counter(&gh, "gatehouse_upstream_retries_total"), 0.0);
    assert_eq!(
        counter(&gh, "gatehouse_upstream_connect_failures_total"),
        1.0
    );
}

#[tokio::test]
async fn every_peer_down_is_still_tried() {
    let dead = free_addr();
    let gh = Gatehouse::start(
        BIN,
        &config(
            &[dead.to_string()],
            "unhealthy_after = 1\ncooldown = \"1h\"",
        ),
    )
    .unwrap();
    let c = client();
    assert_eq!(c.get(gh.url("/x")).send().await.unwrap().status(), 502);
    assert_eq!(healthy(&gh, dead), Some(0.0));
    // The only peer is down; it is still tried, and serves once it is back.
    let _back = EchoUpstream::start_on(dead).unwrap();
    assert_eq!(c.get(gh.url("/x")).send().await.unwrap().status(), 200);
    assert_eq!(healthy(&gh, dead), Some(1.0));
}

#[tokio::test]
async fn active_checks_take_a_peer_out_and_bring_it_back() {
    let echo = EchoUpstream::start();
    let dead = free_addr();
    let peers = [dead.to_string(), echo.addr().to_string()];
    let extra = r#"retries = 0
unhealthy_after = 100
[upstreams.app.health_check]
path = "/healthz"
interval = "100ms"
timeout = "100ms"
healthy_threshold = 1
unhealthy_threshold = 1
"#;
    let gh = Gatehouse::start(BIN, &config(&peers, extra)).unwrap();
    assert!(
        eventually(WAIT, async || healthy(&gh, dead) == Some(0.0)).await,
        "{}",
        gh.logs()
    );
    // No retries: only the checks keep requests away from the dead peer.
    assert_eq!(failures(&gh, 50).await, 0, "{}", gh.logs());
    assert_eq!(
        counter(&gh, "gatehouse_upstream_connect_failures_total"),
        0.0
    );
    let back = EchoUpstream::start_on(dead).unwrap();
    assert!(eventually(WAIT, async || healthy(&gh, dead) == Some(1.0)).await);
    assert!(
        back.recorded().iter().any(|r| r.target == "/healthz"),
        "checked with GET /healthz"
    );
    let before = back.requests();
    assert_eq!(failures(&gh, 20).await, 0);
    assert!(back.requests() - before >= 10, "traffic again");
}

#[tokio::test]
async fn names_are_re_resolved_while_serving() {
    let echo = EchoUpstream::start();
    let name = format!("localhost:{}", echo.addr().port());
    let gh = Gatehouse::start(
        BIN,
        &config(&[name], "resolve_interval = \"100ms\"\nretries = 1"),
    )
    .unwrap();
    let resolved = || {
        gh.metric(
            "gatehouse_upstream_resolutions_total",
            &[("upstream", "app"), ("result", "success")],
        )
        .unwrap_or(0.0)
    };
    assert!(
        eventually(WAIT, async || resolved() >= 3.0).await,
        "{}",
        gh.logs()
    );
    assert_eq!(failures(&gh, 20).await, 0, "{}", gh.logs());
    let n = resolved();
    assert!(eventually(WAIT, async || resolved() >= n + 2.0).await);
    assert_eq!(failures(&gh, 20).await, 0);
    assert_eq!(healthy(&gh, echo.addr()), Some(1.0));
}

#[tokio::test]
async fn an_unchanged_upstream_keeps_its_peer_health_across_a_reload() {
    let echo = EchoUpstream::start();
    let dead = free_addr();
    let peers = [dead.to_string(), echo.addr().to_string()];
    let extra = "unhealthy_after = 1\ncooldown = \"1h\"";
    let gh = Gatehouse::start(BIN, &config(&peers, extra)).unwrap();
    assert_eq!(failures(&gh, 4).await, 0);
    assert_eq!(healthy(&gh, dead), Some(0.0));
    let reloads = || {
        gh.metric("gatehouse_config_reloads_total", &[("result", "success")])
            .unwrap_or(0.0)
    };
    let before = reloads();
    // Same upstream, one more route.
    let cfg = format!(
        "{}\n[[routes]]\nname = \"other\"\npath_prefix = \"/other\"\nupstream = \"app\"\n",
        config(&peers, extra)
    );
    gh.write_config(&cfg).unwrap();
    gh.sighup();
    assert!(eventually(WAIT, async || reloads() > before).await);
    assert_eq!(healthy(&gh, dead), Some(0.0), "health carried over");
    assert_eq!(failures(&gh, 10).await, 0);
    assert_eq!(
        counter(&gh, "gatehouse_upstream_connect_failures_total"),
        1.0,
        "the dead peer stayed skipped"
    );
}
