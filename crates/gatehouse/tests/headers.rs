//! End-to-end: which client headers reach the upstream. Identity headers only
//! Gatehouse sets (on every route, public ones included), client-address
//! headers replaced unless the peer is a trusted proxy, `_` names dropped.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::{ConfigBuilder, EchoUpstream, Gatehouse};

/// A public route beside a JWT connector that injects `X-User-Id` (used by no
/// route here: its names are stripped everywhere all the same).
fn config(echo: std::net::SocketAddr, server_extra: &str) -> String {
    let head = ConfigBuilder::new()
        .server_line(server_extra)
        .upstream("echo", echo)
        .render();
    format!(
        r#"
{head}
[connectors.corp]
kind = "jwt"
secret = "0123456789abcdef0123456789abcdef"
algorithms = ["HS256"]
[connectors.corp.inject_headers]
"X-User-Id" = "sub"
"X-User-Roles" = "roles"

[[routes]]
name = "public"
path_prefix = "/"
upstream = "echo"
"#
    )
}

/// Fails unless none of `gone` is among the headers the echo upstream got.
fn assert_not_forwarded(e: &serde_json::Value, gone: &[&str]) {
    let names: Vec<&String> = e["headers"].as_object().unwrap().keys().collect();
    for g in gone {
        assert!(
            !names.iter().any(|n| n.eq_ignore_ascii_case(g)),
            "{g} reached the upstream: {names:?}"
        );
    }
}

#[tokio::test]
async fn identity_and_address_headers_from_clients_never_reach_the_upstream() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &config(echo.addr(), "strip_headers = [\"X-Tenant\"]")).unwrap();
    let resp = client()
        .get(gh.url("/anything"))
        .header("x-user-id", "admin")
        .header("x_user_roles", "admin")
        .header("X-USER_ID", "admin")
        .header("x-tenant", "acme")
        .header("x_tenant", "acme")
        .header("x_custom", "dropped")
        .header("x-custom", "kept")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-port", "1")
        .header("x-forwarded-proto", "https")
        .header("x-http-method-override", "DELETE")
        .send()
        .await
        .unwrap();
    let e = echoed(resp).await;
    assert_not_forwarded(
        &e,
        &[
            "x-user-id",
            "x_user_roles",
            "x-user_id",
            "x-tenant",
            "x_tenant",
            "x_custom",
            "x-real-ip",
            "forwarded",
            "x-forwarded-host",
            "x-forwarded-port",
            "x-http-method-override",
        ],
    );
    assert_eq!(header_values(&e, "x-custom"), ["kept"]);
    assert_eq!(header_values(&e, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header_values(&e, "x-forwarded-proto"), ["http"]);
}

#[tokio::test]
async fn a_trusted_proxy_keeps_its_chain_and_underscores_can_be_allowed() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(
        BIN,
        &config(
            echo.addr(),
            "trusted_proxies = [\"127.0.0.0/8\"]\nunderscores_in_headers = true",
        ),
    )
    .unwrap();
    let resp = client()
        .get(gh.url("/anything"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-real-ip", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x_custom", "kept")
        .header("x_user_id", "admin")
        .send()
        .await
        .unwrap();
    let e = echoed(resp).await;
    assert_eq!(
        header_values(&e, "x-forwarded-for"),
        ["203.0.113.9, 127.0.0.1"]
    );
    assert_eq!(header_values(&e, "x-real-ip"), ["203.0.113.9"]);
    assert_eq!(header_values(&e, "x-forwarded-proto"), ["https"]);
    assert_eq!(header_values(&e, "x_custom"), ["kept"]);
    assert!(
        header_values(&e, "x_user_id").is_empty(),
        "an injected name in any spelling is still stripped"
    );
}

#[tokio::test]
async fn bad_header_settings_are_refused_with_their_path() {
    let echo = EchoUpstream::start();
    let Err(err) = Gatehouse::start(
        BIN,
        &config(
            echo.addr(),
            "trusted_proxies = [\"10.0.0.0/33\"]\nstrip_headers = [\"bad name\"]",
        ),
    ) else {
        panic!("a bad trusted_proxies entry was accepted");
    };
    let err = err.to_string();
    assert!(err.contains("server.trusted_proxies[0]"), "{err}");
    assert!(err.contains("server.strip_headers[0]"), "{err}");
}

/// Issue 20, item 1: names outside `[A-Za-z0-9-]` are dropped (PHP reads
/// `X.User.Id` as `X_User_Id`), counted; with `ignore_invalid_headers =
/// false` odd names pass but protected names go in every spelling.
#[tokio::test]
async fn invalid_header_names_are_dropped_and_protected_names_fold_every_punctuation() {
    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(BIN, &config(echo.addr(), "")).unwrap();
    let resp = client()
        .get(gh.url("/anything"))
        .header("x.custom", "dropped")
        .header("x.user.id", "admin")
        .header("x~user~roles", "admin")
        .header("x-client-ip", "6.6.6.6")
        .header("x-original-url", "/api/secret")
        .header("x-ok", "kept")
        .send()
        .await
        .unwrap();
    let e = echoed(resp).await;
    assert_not_forwarded(
        &e,
        &[
            "x.custom",
            "x.user.id",
            "x~user~roles",
            "x-client-ip",
            "x-original-url",
        ],
    );
    assert_eq!(header_values(&e, "x-ok"), ["kept"]);
    let dropped = |reason| {
        gh.metric(
            "gatehouse_request_headers_dropped_total",
            &[("reason", reason)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(dropped("invalid_name"), 3.0);
    assert_eq!(dropped("protected"), 1.0, "x-original-url");
    assert_eq!(dropped("client_address"), 1.0, "x-client-ip");

    let echo = EchoUpstream::start();
    let gh = Gatehouse::start(
        BIN,
        &config(
            echo.addr(),
            "ignore_invalid_headers = false\nunderscores_in_headers = true",
        ),
    )
    .unwrap();
    let resp = client()
        .get(gh.url("/anything"))
        .header("x.custom", "kept")
        .header("x.user.id", "admin")
        .header("x_user.roles", "admin")
        .header("x-user--id", "admin")
        .header("X.Real.IP", "6.6.6.6")
        .header("x.http.method.override", "DELETE")
        .send()
        .await
        .unwrap();
    let e = echoed(resp).await;
    assert_eq!(header_values(&e, "x.custom"), ["kept"]);
    assert_not_forwarded(
        &e,
        &[
            "x.user.id",
            "x_user.roles",
            "x-user--id",
            "x.real.ip",
            "x.http.method.override",
        ],
    );
}

/// Issue 20, item 6: an unparsable upstream answer is logged with its status
/// line only — never the rest of its bytes, which may echo credentials.
#[tokio::test]
async fn an_unparsable_upstream_answer_is_logged_without_its_bytes() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nX-Echo-Authorization: Bearer SECRET-TOKEN-BYTES\r\nbroken header line\r\n\r\n",
            );
        }
    });
    let gh = Gatehouse::start(BIN, &config(addr, "")).unwrap();
    let resp = client()
        .get(gh.url("/anything"))
        .header("authorization", "Bearer SECRET-TOKEN-BYTES")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert!(
        gh.wait_for_log(
            "status line: HTTP/1.1 200 OK",
            std::time::Duration::from_secs(10)
        ),
        "{}",
        gh.logs()
    );
    let logs = gh.logs();
    assert!(!logs.contains("SECRET-TOKEN-BYTES"), "{logs}");
    assert!(!logs.contains("X-Echo-Authorization"), "{logs}");
}

/// Issue 20, item 5: `check` names a public route that shares an upstream
/// with protected routes under its prefix.
#[test]
fn check_warns_about_a_public_catch_all_beside_protected_routes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    let mut cfg = config("127.0.0.1:9".parse().unwrap(), "")
        .replace("${LISTEN}", "127.0.0.1:0")
        .replace("${ADMIN}", "127.0.0.1:1");
    cfg.push_str(
        "\n[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nconnectors = [\"corp\"]\n",
    );
    std::fs::write(&path, &cfg).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "warning: routes[0] (\"public\", /) is public and sends to upstream \"echo\""
        ) && text.contains("\"api\" (/api)")
            && text.contains("Public routes beside protected ones"),
        "{text}"
    );
}
