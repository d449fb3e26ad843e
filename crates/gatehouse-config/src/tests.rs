#![allow(clippy::unwrap_used)]
use super::*;

const BASE: &str = r#"
[server]
listen = ["127.0.0.1:8080"]
admin_listen = "127.0.0.1:9091"

[upstreams.orders]
peers = ["127.0.0.1:9000"]

[upstreams.users]
peers = ["localhost:9001", "[::1]:9002"]
connect_timeout = "250ms"

[connectors.corp]
kind = "jwt"
jwks_url = "https://idp.example/jwks.json"

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "orders"
connectors = ["corp"]

[[routes]]
name = "users"
path_prefix = "/users"
host = "API.example.com:443"
methods = ["GET", "HEAD"]
upstream = "users"
"#;

fn err_of(text: &str) -> ConfigError {
    Config::from_toml_str(text)
        .unwrap_err()
        .first()
        .unwrap()
        .clone()
}

#[test]
fn parses_a_full_config_with_defaults() {
    let c = Config::from_toml_str(BASE).unwrap();
    assert_eq!(c.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
    assert_eq!(
        c.server.grace_period.get(),
        std::time::Duration::from_secs(10)
    );
    assert!(!c.server.work_stealing);
    assert_eq!(
        c.upstreams["users"].connect_timeout.get(),
        std::time::Duration::from_millis(250)
    );
    assert_eq!(
        c.upstreams["orders"].read_timeout.get(),
        std::time::Duration::from_secs(30)
    );
    assert_eq!(c.connectors["corp"].kind, "jwt");
    assert_eq!(
        c.connectors["corp"]
            .settings
            .get("jwks_url")
            .and_then(|v| v.as_str()),
        Some("https://idp.example/jwks.json")
    );
    assert!(!c.connectors["corp"].settings.contains_key("kind"));
    assert_eq!(
        c.routes[1].methods.as_deref(),
        Some(&["GET".to_string(), "HEAD".to_string()][..])
    );
}

#[test]
fn syntax_error_reports_line() {
    let e = err_of("[server]\nlisten = [\"127.0.0.1:8080\"\n");
    assert!(e.message.starts_with("invalid TOML"), "{e}");
    assert!(e.line.is_some(), "{e:?}");
}

#[test]
fn unknown_key_is_refused_with_its_path() {
    let e = err_of(&BASE.replace(
        "upstream = \"users\"",
        "upstream = \"users\"\nupstrem = \"x\"",
    ));
    assert_eq!(e.path, "routes[1].upstrem", "{e}");
    assert!(e.message.contains("unknown field"), "{e}");
    assert!(e.line.is_some());

    let e = err_of(&BASE.replace("[server]\n", "[server]\nlisten_addr = 1\n"));
    assert_eq!(e.path, "server.listen_addr", "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = err_of(&BASE.replace("connect_timeout = \"250ms\"", "connect_timeout = 250"));
    assert_eq!(e.path, "upstreams.users.connect_timeout", "{e}");
    assert!(e.message.contains("no unit"), "{e}");

    let e = err_of(&BASE.replace("listen = [\"127.0.0.1:8080\"]", "listen = [\"nowhere\"]"));
    assert_eq!(e.path, "server.listen[0]", "{e}");
}

#[test]
fn missing_required_key() {
    let e = err_of(&BASE.replace("upstream = \"orders\"\n", ""));
    assert_eq!(e.path, "routes[0]", "{e}");
    assert!(e.message.contains("missing field `upstream`"), "{e}");
}

#[test]
fn connector_needs_a_kind() {
    let e = err_of(&BASE.replace("kind = \"jwt\"\n", ""));
    assert_eq!(e.path, "connectors.corp", "{e}");
    assert!(e.message.contains("missing key `kind`"), "{e}");
}

#[test]
fn unknown_upstream_reference_lists_known_ones() {
    let e = err_of(&BASE.replace("upstream = \"orders\"", "upstream = \"ordrs\""));
    assert_eq!(
        e.to_string(),
        "routes[0].upstream: no upstream named \"ordrs\" (known: orders, users)"
    );
}

#[test]
fn unknown_connector_reference() {
    let e = err_of(&BASE.replace("connectors = [\"corp\"]", "connectors = [\"crop\"]"));
    assert_eq!(e.path, "routes[0].connectors[0]");
    assert!(e.message.contains("known: corp"), "{e}");
}

#[test]
fn duplicate_route_name() {
    let e = err_of(&BASE.replace("name = \"users\"", "name = \"orders\""));
    assert_eq!(e.path, "routes[1].name");
    assert!(
        e.message
            .contains("duplicate route name \"orders\" (also routes[0])"),
        "{e}"
    );
}

#[test]
fn shadowed_route_is_refused() {
    let text = format!(
        "{BASE}\n[[routes]]\nname = \"again\"\npath_prefix = \"/orders\"\nupstream = \"users\"\n"
    );
    let e = err_of(&text);
    assert_eq!(e.path, "routes[2].path_prefix");
    assert!(e.message.contains("routes[0]"), "{e}");
}

#[test]
fn at_least_one_listener() {
    let e = err_of(&BASE.replace("listen = [\"127.0.0.1:8080\"]", "listen = []"));
    assert_eq!(e.path, "server.listen");
}

#[test]
fn bad_prefix_host_and_method() {
    let e = err_of(&BASE.replace("path_prefix = \"/orders\"", "path_prefix = \"orders\""));
    assert_eq!(e.path, "routes[0].path_prefix");
    let e = err_of(&BASE.replace("API.example.com:443", "api.*.com"));
    assert_eq!(e.path, "routes[1].host");
    let e = err_of(&BASE.replace("\"GET\", \"HEAD\"", "\"GET\", \"get\""));
    assert_eq!(e.path, "routes[1].methods[1]");
    assert!(e.message.contains("case-sensitive"));
}

#[test]
fn bad_peer_and_names() {
    let e = err_of(&BASE.replace("\"127.0.0.1:9000\"", "\"127.0.0.1\""));
    assert_eq!(e.path, "upstreams.orders.peers[0]");
    let e = err_of(&BASE.replace(
        "[upstreams.orders]\npeers = [\"127.0.0.1:9000\"]",
        "[upstreams.orders]\npeers = []",
    ));
    assert_eq!(e.path, "upstreams.orders.peers");
    let e = err_of(
        &BASE
            .replace("[connectors.corp]", "[connectors.\"co rp\"]")
            .replace("[\"corp\"]", "[\"co rp\"]"),
    );
    assert_eq!(e.path, "connectors.co rp");
}

#[test]
fn reports_every_problem_at_once() {
    let text = BASE
        .replace("upstream = \"orders\"", "upstream = \"ordrs\"")
        .replace("connectors = [\"corp\"]", "connectors = [\"crop\"]");
    let errs = Config::from_toml_str(&text).unwrap_err();
    assert_eq!(errs.0.len(), 2, "{errs}");
}

#[test]
fn section_deserializer_prefixes_paths() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct S {
        refresh: HumanDuration,
        nested: Option<N>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct N {
        n: u32,
    }
    let t: toml::Table = toml::from_str("refresh = \"1m\"\nnested = { n = \"x\" }").unwrap();
    let e = deserialize_section::<S>("connectors.corp", t).unwrap_err();
    assert_eq!(e.path, "connectors.corp.nested.n", "{e}");
    let t: toml::Table = toml::from_str("refresh = \"1m\"\nbogus = 1").unwrap();
    let e = deserialize_section::<S>("connectors.corp", t).unwrap_err();
    assert_eq!(e.path, "connectors.corp.bogus", "{e}");
}

#[test]
fn host_normalization() {
    assert_eq!(
        normalize_host_pattern("API.Example.com:443"),
        "api.example.com"
    );
    assert_eq!(normalize_host_pattern("*.Example.com"), "*.example.com");
}

#[test]
fn upstream_resilience_defaults() {
    let c = Config::from_toml_str(BASE).unwrap();
    let u = &c.upstreams["orders"];
    assert_eq!(u.retries, 1);
    assert_eq!(u.unhealthy_after, 3);
    assert_eq!(u.cooldown.get(), std::time::Duration::from_secs(10));
    assert_eq!(u.resolve_interval.get(), std::time::Duration::from_secs(30));
    assert!(u.health_check.is_none());
    let text = BASE.replace(
        "[upstreams.users]",
        "[upstreams.orders.health_check]\npath = \"/healthz\"\n\n[upstreams.users]",
    );
    let c = Config::from_toml_str(&text).unwrap();
    let h = c.upstreams["orders"].health_check.clone().unwrap();
    assert_eq!(h.path, "/healthz");
    assert_eq!(h.interval.get(), std::time::Duration::from_secs(5));
    assert_eq!(h.timeout.get(), std::time::Duration::from_secs(1));
    assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (2, 3));
}

#[test]
fn upstream_resilience_keys_are_bounded_with_paths() {
    let with = |extra: &str| {
        BASE.replace(
            "peers = [\"127.0.0.1:9000\"]",
            &format!("peers = [\"127.0.0.1:9000\"]\n{extra}"),
        )
    };
    for (extra, path) in [
        ("retries = 6", "upstreams.orders.retries"),
        ("unhealthy_after = 0", "upstreams.orders.unhealthy_after"),
        ("cooldown = \"10ms\"", "upstreams.orders.cooldown"),
        (
            "resolve_interval = \"2h\"",
            "upstreams.orders.resolve_interval",
        ),
        (
            "health_check = { path = \"health\" }",
            "upstreams.orders.health_check.path",
        ),
        (
            "health_check = { interval = \"1s\", timeout = \"2s\" }",
            "upstreams.orders.health_check.timeout",
        ),
        (
            "health_check = { healthy_threshold = 0 }",
            "upstreams.orders.health_check.healthy_threshold",
        ),
        (
            "health_check = { unhealthy_threshold = 101 }",
            "upstreams.orders.health_check.unhealthy_threshold",
        ),
        (
            "health_check = { interval = \"1ms\" }",
            "upstreams.orders.health_check.interval",
        ),
        ("retries = -1", "upstreams.orders.retries"),
        (
            "health_check = { bogus = 1 }",
            "upstreams.orders.health_check.bogus",
        ),
    ] {
        let e = err_of(&with(extra));
        assert_eq!(e.path, path, "{extra}: {e}");
    }
    assert!(Config::from_toml_str(&with("retries = 0")).is_ok());
    assert!(Config::from_toml_str(&with("retries = 5")).is_ok());
}

#[test]
fn socket_buffers_are_bounded_and_optional() {
    let c = Config::from_toml_str(BASE).unwrap();
    assert_eq!(c.server.send_buffer_bytes, None);
    assert_eq!(c.upstreams["orders"].receive_buffer_bytes, None);
    let ok = BASE
        .replace(
            "admin_listen = \"127.0.0.1:9091\"\n",
            "admin_listen = \"127.0.0.1:9091\"\nsend_buffer_bytes = 65536\n",
        )
        .replace(
            "peers = [\"127.0.0.1:9000\"]\n",
            "peers = [\"127.0.0.1:9000\"]\nreceive_buffer_bytes = 16384\n",
        );
    let c = Config::from_toml_str(&ok).unwrap();
    assert_eq!(c.server.send_buffer_bytes, Some(65536));
    assert_eq!(c.upstreams["orders"].receive_buffer_bytes, Some(16384));
    let e = err_of(&ok.replace("send_buffer_bytes = 65536", "send_buffer_bytes = 100"));
    assert_eq!(e.path, "server.send_buffer_bytes");
    let e = err_of(&ok.replace("receive_buffer_bytes = 16384", "receive_buffer_bytes = 0"));
    assert_eq!(e.path, "upstreams.orders.receive_buffer_bytes");
}
