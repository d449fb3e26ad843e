//! End-to-end: which client headers reach the upstream. Identity headers only
//! Gatehouse sets (on every route, public ones included), client-address
//! headers replaced unless the peer is a trusted proxy, `_` names dropped.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::{EchoUpstream, Gatehouse};

/// A public route beside a JWT connector that injects `X-User-Id` (used by no
/// route here: its names are stripped everywhere all the same).
fn config(echo: std::net::SocketAddr, server_extra: &str) -> String {
    format!(
        r#"
[server]
listen = ["${{LISTEN}}"]
admin_listen = "${{ADMIN}}"
threads = 1
{server_extra}

[upstreams.echo]
peers = ["{echo}"]

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
    let names: Vec<&String> = e["headers"].as_object().unwrap().keys().collect();
    for gone in [
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
    ] {
        assert!(
            !names.iter().any(|n| n.eq_ignore_ascii_case(gone)),
            "{gone} reached the upstream: {names:?}"
        );
    }
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
