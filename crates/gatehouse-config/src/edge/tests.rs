#![allow(clippy::unwrap_used)]
use crate::Config;

const BASE: &str = r#"
[server]
listen = ["127.0.0.1:8080"]

[upstreams.orders]
peers = ["127.0.0.1:9000"]

[[routes]]
name = "orders"
path_prefix = "/v1/orders"
methods = ["GET", "POST", "OPTIONS"]
upstream = "orders"
"#;

/// Every error (path: message) of `BASE` plus `extra` appended to the route.
fn errors(extra: &str) -> Vec<String> {
    match Config::from_toml_str(&format!("{BASE}{extra}")) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn one_error(extra: &str, path: &str, words: &str) {
    let errs = errors(extra);
    assert!(
        errs.iter().any(|e| e.contains(path) && e.contains(words)),
        "expected `{path}` … `{words}` in {errs:#?}"
    );
}

#[test]
fn the_contract_form_parses() {
    let text = format!(
        "{BASE}{}",
        r#"rewrite_prefix = "/internal/orders"
[routes.cors]
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_methods = ["GET", "POST"]
allow_headers = ["authorization", "content-type"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = "10m"
[routes.request_headers]
set = { "X-Env" = "prod" }
remove = ["X-Debug"]
[routes.response_headers]
set = { "Strict-Transport-Security" = "max-age=31536000" }
remove = ["Server", "X-Powered-By"]
"#
    );
    let c = Config::from_toml_str(&text).unwrap();
    let r = &c.routes[0];
    let cors = r.cors.as_ref().unwrap();
    assert!(cors.allow_credentials);
    assert_eq!(cors.max_age.unwrap().get().as_secs(), 600);
    assert_eq!(r.rewrite_prefix.as_deref(), Some("/internal/orders"));
    assert_eq!(r.request_headers.as_ref().unwrap().set["X-Env"], "prod");
    assert_eq!(r.response_headers.as_ref().unwrap().remove.len(), 2);
}

#[test]
fn origins_are_origins() {
    let cors = |origins: &str, creds: bool| {
        format!("[routes.cors]\nallow_origins = {origins}\nallow_credentials = {creds}\n")
    };
    one_error(
        &cors(r#"["*"]"#, true),
        "routes[0].cors.allow_origins[0]",
        "allow_credentials",
    );
    assert!(errors(&cors(r#"["*"]"#, false)).is_empty());
    one_error(
        &cors(r#"["*", "https://a.example.com"]"#, false),
        "allow_origins[0]",
        "only origin",
    );
    one_error(
        &cors("[]", false),
        "routes[0].cors.allow_origins",
        "at least one",
    );
    for bad in [
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://App.example.com",
        "ftp://app.example.com",
        "https://app.example.com:0",
        "https://app.example.com:99999",
        "https://*",
        "https://a.*.example.com",
        "https://**.example.com",
        "https://user@app.example.com",
        "null",
        "https://app.example.com?x",
    ] {
        one_error(
            &cors(&format!("[\"{bad}\"]"), false),
            "allow_origins[0]",
            "not an origin",
        );
    }
    for good in [
        "https://*.example.com",
        "http://127.0.0.1:8080",
        "https://[::1]:8443",
    ] {
        assert!(
            errors(&cors(&format!("[\"{good}\"]"), true)).is_empty(),
            "{good}"
        );
    }
    one_error(
        &cors(
            r#"["https://a.example.com", "https://a.example.com"]"#,
            false,
        ),
        "allow_origins[1]",
        "twice",
    );
}

#[test]
fn methods_headers_and_age_are_checked() {
    let with = |body: &str| {
        format!("[routes.cors]\nallow_origins = [\"https://a.example.com\"]\n{body}\n")
    };
    one_error(
        &with(r#"allow_methods = ["get"]"#),
        "allow_methods[0]",
        "not a method",
    );
    one_error(
        &with(r#"allow_methods = ["OPTIONS"]"#),
        "allow_methods[0]",
        "not a method",
    );
    one_error(
        &with(r#"allow_methods = ["PUT"]"#),
        "allow_methods[0]",
        "route's methods",
    );
    one_error(&with("allow_methods = []"), "cors.allow_methods", "empty");
    one_error(
        &with(r#"allow_headers = ["*"]"#),
        "allow_headers[0]",
        "Authorization",
    );
    one_error(
        &with(r#"allow_headers = ["bad header"]"#),
        "allow_headers[0]",
        "header name",
    );
    one_error(
        &with(r#"expose_headers = ["a", "A"]"#),
        "expose_headers[1]",
        "twice",
    );
    one_error(&with(r#"max_age = "25h""#), "cors.max_age", "24h");
    one_error(
        &with(r#"allow_origin = ["x"]"#),
        "routes[0].cors",
        "allow_origin",
    );
}

#[test]
fn rewrite_prefixes_are_plain_paths() {
    for good in [
        "",
        "/",
        "/internal/orders",
        "/internal/orders/",
        "/a~b/c-d_e/v1.2",
    ] {
        assert!(
            errors(&format!("rewrite_prefix = \"{good}\"\n")).is_empty(),
            "{good}"
        );
    }
    for bad in [
        "internal",
        "//internal",
        "/a//b",
        "/a/../b",
        "/a/./b",
        "/a./b",
        "/a/%2F/b",
        "/a;b",
        "/a?b",
        "/a#b",
        "/a b",
        "/a\\\\b",
    ] {
        one_error(
            &format!("rewrite_prefix = \"{bad}\"\n"),
            "routes[0].rewrite_prefix",
            "plain segments",
        );
    }
}

#[test]
fn header_rules_never_touch_what_gatehouse_owns() {
    let req = |body: &str| format!("[routes.request_headers]\n{body}\n");
    let resp = |body: &str| format!("[routes.response_headers]\n{body}\n");
    for name in [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "X-Request-Id",
        "X_Request_Id",
    ] {
        one_error(
            &req(&format!("remove = [\"{name}\"]")),
            "request_headers.remove[0]",
            "",
        );
        one_error(
            &resp(&format!("set = {{ \"{name}\" = \"x\" }}")),
            "response_headers.set",
            "",
        );
    }
    for name in [
        "X-Forwarded-For",
        "X-Real-IP",
        "Forwarded",
        "X-Forwarded-Proto",
        "X.Real.IP",
    ] {
        one_error(
            &req(&format!("set = {{ \"{name}\" = \"1.2.3.4\" }}")),
            "request_headers.set",
            "",
        );
    }
    one_error(
        &resp(r#"set = { "Access-Control-Allow-Origin" = "*" }"#),
        "response_headers.set",
        "[routes.cors]",
    );
    one_error(
        &req(r#"set = { "X_Env" = "prod" }"#),
        "request_headers.set",
        "letters, digits",
    );
    one_error(
        &req(r#"set = { "X-Env" = "a\nb" }"#),
        "request_headers.set",
        "header value",
    );
    one_error(
        &req(r#"set = { "X-Env" = " a" }"#),
        "request_headers.set",
        "header value",
    );
    one_error(
        &req(r#"set = { "X-Env" = "prod" }
remove = ["x-env"]"#),
        "request_headers.remove[0]",
        "same header",
    );
    // Response rules may set what a response carries.
    assert!(errors(&resp(
        r#"set = { "Strict-Transport-Security" = "max-age=31536000" }
remove = ["Server", "X-Powered-By"]"#
    ))
    .is_empty());
}
