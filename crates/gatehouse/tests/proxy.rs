//! End-to-end: the real binary proxying to the testkit echo upstream.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::{eventually, free_addr, EchoUpstream, Gatehouse};

#[tokio::test]
async fn proxies_with_headers_preserved_and_forwarding_headers_added() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &public_config(echo.addr(), "")).unwrap();
    let resp = client()
        .post(gh.url("/public/items/7?x=1&y=two"))
        .header("x-custom", "a")
        .header("x-custom", "b")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body("hello body")
        .send()
        .await
        .unwrap();
    let rid = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id returned")
        .to_str()
        .unwrap()
        .to_string();
    let e = echoed(resp).await;
    assert_eq!(e["method"], "POST");
    assert_eq!(e["path"], "/public/items/7");
    assert_eq!(e["query"], "x=1&y=two");
    assert_eq!(e["body"], "hello body");
    assert_eq!(header_values(&e, "x-custom"), ["a", "b"]);
    assert_eq!(
        header_values(&e, "x-forwarded-for"),
        ["127.0.0.1"],
        "a client's X-Forwarded-For is replaced by its address (no trusted proxies)"
    );
    assert_eq!(
        header_values(&e, "x-forwarded-proto"),
        ["http"],
        "client-supplied proto is not trusted"
    );
    assert_eq!(header_values(&e, "x-request-id"), [rid.as_str()]);
    assert_eq!(rid.len(), 36, "generated ids are UUIDs: {rid}");
}

#[tokio::test]
async fn client_request_id_is_kept_and_returned() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &public_config(echo.addr(), "")).unwrap();
    let resp = client()
        .get(gh.url("/public"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
    let e = echoed(resp).await;
    assert_eq!(header_values(&e, "x-request-id"), ["req-abc-123"]);

    // An unusable id (spaces) is replaced by a generated one.
    let resp = client()
        .get(gh.url("/public"))
        .header("x-request-id", "has spaces")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "has spaces");
    assert_eq!(id.len(), 36);
    let e = echoed(resp).await;
    assert_eq!(header_values(&e, "x-request-id"), [id.as_str()]);

    // Two ids: the first is kept, and the upstream sees only that one.
    let resp = client()
        .get(gh.url("/public"))
        .header("x-request-id", "first-id")
        .header("x-request-id", "second-id")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "first-id");
    let e = echoed(resp).await;
    assert_eq!(header_values(&e, "x-request-id"), ["first-id"]);
}

#[tokio::test]
async fn unmatched_request_gets_404_json() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &public_config(echo.addr(), "")).unwrap();
    for path in ["/", "/publicity", "/other/public"] {
        let resp = client().get(gh.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert!(resp.headers().contains_key("x-request-id"));
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "no_route");
    }
    assert_eq!(echo.requests(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn dead_upstream_gives_502_json() {
    let echo = EchoUpstream::start();
    let dead = free_addr();
    let config = with_public_route(
        public_head(echo.addr()).upstream("dead", dead),
        "\n[[routes]]\nname = \"dead\"\npath_prefix = \"/dead\"\nupstream = \"dead\"\n",
    );
    let gh = Gatehouse::start(BIN, &config).unwrap();
    let resp = client().get(gh.url("/dead/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");
    // Request metrics are recorded after the response is sent: wait for them.
    let counted = eventually(std::time::Duration::from_secs(5), async || {
        gh.metric(
            "gatehouse_requests_total",
            &[("route", "dead"), ("status_class", "5xx")],
        ) == Some(1.0)
    })
    .await;
    assert!(counted, "the 502 is counted under route=dead, 5xx");
}

#[tokio::test]
async fn slow_upstream_gives_504_json() {
    let echo = EchoUpstream::start();
    let config = with_public_route(
        public_head(echo.addr()).upstream_with("slow", echo.addr(), "read_timeout = \"300ms\""),
        "\n[[routes]]\nname = \"slow\"\npath_prefix = \"/slow\"\nupstream = \"slow\"\n",
    );
    let gh = Gatehouse::start(BIN, &config).unwrap();
    let started = std::time::Instant::now();
    let resp = client()
        .get(gh.url("/slow/x"))
        .header("x-echo-delay-ms", "30000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "timed out by the read timeout"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "upstream_timeout");
}

/// Sends one raw HTTP/1.1 request and returns the whole response text.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn dot_segments_are_removed_and_the_canonical_path_is_forwarded() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &public_config(echo.addr(), "")).unwrap();
    // reqwest would normalize "..": send the raw request line ourselves.
    let out = raw(
        gh.listen_addr(),
        b"GET /x/%2e%2e//%70ublic/./a%3a%7e?q=%2f HTTP/1.1\r\nHost: X\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    let e: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(e["path"], "/public/a%3A~", "routed and forwarded path");
    assert_eq!(e["query"], "q=%2f", "the query is forwarded as it came");
    assert_eq!(header_values(&e, "host"), ["x"], "canonical host upstream");
    // Leaving the prefix with dots lands where the dots lead.
    let out = raw(
        gh.listen_addr(),
        b"GET /public/%2e%2e/admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    let out = raw(
        gh.listen_addr(),
        b"GET /public%2fx HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("invalid_path"), "{out}");
    assert_eq!(echo.requests(), 1);
}

#[tokio::test]
async fn host_and_method_routing_and_round_robin() {
    let (a, b, c) = (
        EchoUpstream::start(),
        EchoUpstream::start(),
        EchoUpstream::start(),
    );
    let extra = r#"
[[routes]]
name = "api-writes"
host = "api.example.com"
path_prefix = "/public"
methods = ["POST"]
upstream = "api"

[[routes]]
name = "spread"
path_prefix = "/spread"
upstream = "pair"
"#;
    let echo = EchoUpstream::start();
    let head = public_head(echo.addr())
        .upstream_peers("pair", &[a.addr(), b.addr()], "")
        .upstream("api", c.addr());
    let gh = Gatehouse::start(BIN, &with_public_route(head, extra)).unwrap();
    let cl = client();
    cl.post(gh.url("/public/x"))
        .header("host", "API.example.com:8080")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(c.requests(), 1, "host + method route");
    cl.get(gh.url("/public/x"))
        .header("host", "api.example.com")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(
        echo.requests(),
        1,
        "GET falls through to the hostless route"
    );
    for _ in 0..10 {
        cl.get(gh.url("/spread"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
    assert_eq!(
        (a.requests(), b.requests()),
        (5, 5),
        "round-robin over both peers"
    );
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &public_config(echo.addr(), "")).unwrap();
    let before = gh
        .metric(
            "gatehouse_requests_total",
            &[("route", "public"), ("status_class", "2xx")],
        )
        .unwrap_or(0.0);
    let cl = client();
    for _ in 0..7 {
        cl.get(gh.url("/public/m"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
    cl.get(gh.url("/none")).send().await.unwrap();
    let m = |name: &str, labels: &[(&str, &str)]| gh.metric(name, labels);
    // Request metrics are recorded after the response is sent: wait for the last one.
    let recorded = eventually(std::time::Duration::from_secs(5), async || {
        m(
            "gatehouse_requests_total",
            &[("route", "_none"), ("status_class", "4xx")],
        ) == Some(1.0)
            && m(
                "gatehouse_request_duration_seconds_count",
                &[("route", "public")],
            ) == Some(7.0)
    })
    .await;
    assert!(recorded, "the 8 requests are recorded");
    assert_eq!(
        m(
            "gatehouse_requests_total",
            &[("route", "public"), ("status_class", "2xx")]
        ),
        Some(before + 7.0)
    );
    assert_eq!(
        m(
            "gatehouse_requests_total",
            &[("route", "_none"), ("status_class", "4xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            "gatehouse_request_duration_seconds_count",
            &[("route", "public")]
        ),
        Some(7.0)
    );
    assert_eq!(
        m(
            "gatehouse_upstream_duration_seconds_count",
            &[("route", "public")]
        ),
        Some(7.0)
    );
    assert_eq!(m("gatehouse_config_generation", &[]), Some(1.0));
    assert_eq!(
        m("gatehouse_config_reloads_total", &[("result", "success")]),
        Some(1.0)
    );
    assert!(
        m(
            "gatehouse_config_last_reload_success_timestamp_seconds",
            &[]
        )
        .unwrap()
            > 1.7e9
    );
    assert!(m("process_resident_memory_bytes", &[]).unwrap() > 0.0);
    let text = gh.metrics().unwrap();
    assert!(
        text.contains("le=\"1e-5\"") || text.contains("le=\"0.00001\""),
        "10µs bucket exists"
    );
}
