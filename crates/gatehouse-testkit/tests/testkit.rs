//! Tests of the testkit servers themselves.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gatehouse_testkit::http_get_blocking;
use gatehouse_testkit::{eventually, free_addr, EchoUpstream, MockIdp, MockResponse};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn echo_reflects_request() {
    let echo = EchoUpstream::start();
    let resp = client()
        .post(format!("http://{}/x/y?a=1&b=two", echo.addr()))
        .header("x-multi", "v1")
        .header("X-Multi", "v2")
        .header("x-single", "s")
        .body("hello body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/x/y");
    assert_eq!(v["query"], "a=1&b=two");
    assert_eq!(v["headers"]["x-multi"], json!(["v1", "v2"]));
    assert_eq!(v["headers"]["x-single"], json!(["s"]));
    assert_eq!(v["body"], "hello body");
    assert_eq!(echo.requests(), 1);
}

#[tokio::test]
async fn echo_without_query_and_keepalive() {
    let echo = EchoUpstream::start();
    let c = client();
    for i in 0..3 {
        let v: Value = c
            .get(echo.url(&format!("/n/{i}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], format!("/n/{i}"));
        assert!(v["query"].is_null());
        assert_eq!(v["body"], "");
    }
    assert_eq!(echo.requests(), 3);
}

#[tokio::test]
async fn echo_delay_header_and_query() {
    let echo = EchoUpstream::start();
    let c = client();
    let t = Instant::now();
    let resp = c
        .get(echo.url("/slow"))
        .header("x-echo-delay-ms", "300")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    let t = Instant::now();
    let resp = c
        .get(echo.url("/slow?x=1&echo_delay_ms=200"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    // A short client timeout trips on a long delay.
    let err = c
        .get(echo.url("/slow"))
        .header("x-echo-delay-ms", "1500")
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[tokio::test]
async fn echo_status_header() {
    let echo = EchoUpstream::start();
    let resp = client()
        .get(echo.url("/s"))
        .header("x-echo-status", "503")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["path"], "/s");
    assert_eq!(v["headers"]["x-echo-status"], json!(["503"]));
}

#[test]
fn echo_from_sync_test_and_start_on() {
    let addr = free_addr();
    assert!(addr.ip().is_loopback());
    let echo = EchoUpstream::start_on(addr).unwrap();
    assert_eq!(echo.addr(), addr);
    let (status, body) = http_get_blocking(addr, "/sync?q=1").unwrap();
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "/sync");
    assert_eq!(v["query"], "q=1");
    // Address already in use -> error, not panic.
    assert!(EchoUpstream::start_on(addr).is_err());
    drop(echo);
    // After drop the port no longer answers.
    assert!(http_get_blocking(addr, "/").is_err());
}

#[tokio::test]
async fn idp_fixed_route_and_recording() {
    let idp = MockIdp::start();
    idp.route(
        "POST",
        "/introspect",
        MockResponse::json(200, json!({"active": true, "sub": "alice"}))
            .with_header("x-idp", "yes"),
    );
    let resp = client()
        .post(idp.url("/introspect?trace=1"))
        .header("authorization", "Basic abc")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=tok%2B1&hint=access_token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-idp"], "yes");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({"active": true, "sub": "alice"}));

    assert_eq!(idp.calls("/introspect"), 1);
    assert_eq!(idp.total_calls(), 1);
    let reqs = idp.requests("/introspect");
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/introspect");
    assert_eq!(r.query.as_deref(), Some("trace=1"));
    assert_eq!(r.header("Authorization"), Some("Basic abc"));
    assert_eq!(r.body, b"token=tok%2B1&hint=access_token");
    assert_eq!(r.form_param("token").as_deref(), Some("tok+1"));

    // Method match is exact and case-sensitive.
    let resp = client().get(idp.url("/introspect")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client()
        .request(
            reqwest::Method::from_bytes(b"post").unwrap(),
            idp.url("/introspect"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(idp.calls("/introspect"), 3);

    // Replacing a route.
    idp.route("POST", "/introspect", MockResponse::text(401, "nope"));
    let resp = client().post(idp.url("/introspect")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.text().await.unwrap(), "nope");

    idp.reset_counters();
    assert_eq!(idp.calls("/introspect"), 0);
    assert_eq!(idp.total_calls(), 0);
    assert!(idp.requests("/introspect").is_empty());
}

#[tokio::test]
async fn idp_route_fn_and_unknown() {
    let idp = MockIdp::start();
    idp.route_fn("GET", "/userinfo", |req| {
        match req.header("authorization") {
            Some("Bearer good") => MockResponse::json(200, json!({"sub": "bob"})),
            _ => MockResponse::status(401).with_header("www-authenticate", "Bearer"),
        }
    });
    let c = client();
    let ok = c
        .get(idp.url("/userinfo"))
        .bearer_auth("good")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["sub"], "bob");
    let bad = c
        .get(idp.url("/userinfo"))
        .bearer_auth("bad")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(bad.headers()["www-authenticate"], "Bearer");
    assert!(bad.bytes().await.unwrap().is_empty());

    let unknown = c.get(idp.url("/nope?x=1")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap(),
        json!({"error": "not_found"})
    );

    assert_eq!(idp.calls("/userinfo"), 2);
    assert_eq!(idp.calls("/nope"), 1);
    assert_eq!(idp.calls("/never"), 0);
    assert_eq!(idp.total_calls(), 3);
    let reqs = idp.requests("/userinfo");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer good"));
    assert_eq!(reqs[1].header("authorization"), Some("Bearer bad"));
}

#[tokio::test]
async fn idp_delays() {
    let idp = MockIdp::start();
    idp.route("GET", "/jwks", MockResponse::json(200, json!({"keys": []})));
    idp.route(
        "GET",
        "/slow",
        MockResponse::status(204).with_delay(Duration::from_millis(250)),
    );
    let c = client();

    let t = Instant::now();
    assert_eq!(c.get(idp.url("/slow")).send().await.unwrap().status(), 204);
    assert!(t.elapsed() >= Duration::from_millis(250));

    idp.set_delay(Some(Duration::from_millis(300)));
    let t = Instant::now();
    assert_eq!(c.get(idp.url("/jwks")).send().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    // The request is counted while still in progress.
    idp.set_delay(Some(Duration::from_secs(2)));
    let url = idp.url("/jwks");
    let in_flight = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    eventually(Duration::from_secs(5), async || idp.calls("/jwks") >= 2).await;
    assert_eq!(idp.calls("/jwks"), 2);
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);

    idp.set_delay(None);
    let t = Instant::now();
    assert_eq!(c.get(idp.url("/jwks")).send().await.unwrap().status(), 200);
    assert!(t.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn idp_down_and_recover() {
    let idp = MockIdp::start();
    idp.route("GET", "/health", MockResponse::text(200, "ok"));
    let c = client();
    // Establish a keep-alive connection first.
    assert_eq!(
        c.get(idp.url("/health")).send().await.unwrap().status(),
        200
    );

    idp.set_down(true);
    for _ in 0..3 {
        let err = c.get(idp.url("/health")).send().await;
        assert!(err.is_err(), "expected failure while down: {err:?}");
    }
    // Fresh connections fail too.
    let err = client().get(idp.url("/health")).send().await;
    assert!(err.is_err());
    let (addr, path) = (idp.addr(), "/health");
    let blocking = tokio::task::spawn_blocking(move || http_get_blocking(addr, path))
        .await
        .unwrap();
    assert!(blocking.is_err());

    idp.set_down(false);
    let resp = c.get(idp.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert!(idp.calls("/health") >= 2);
}

#[test]
fn idp_from_sync_test() {
    let idp = MockIdp::start();
    idp.route("GET", "/x", MockResponse::text(201, "made"));
    let (status, body) = http_get_blocking(idp.addr(), "/x").unwrap();
    assert_eq!((status, body.as_str()), (201, "made"));
    assert!(idp.url("/x").starts_with("http://127.0.0.1:"));
    assert_eq!(idp.calls("/x"), 1);
}
