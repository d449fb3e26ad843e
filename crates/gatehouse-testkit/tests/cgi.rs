//! Tests of the lighttpd + CGI upstream on its own (no proxy in front): what
//! lighttpd and PHP make of header names that differ only in punctuation.
#![allow(clippy::unwrap_used)]

use gatehouse_testkit::raw::{raw_exchange, RawOptions, RawResponse};
use gatehouse_testkit::{cgi_env_vars, php_server_vars, CgiScript, CgiUpstream};

/// Sends `GET {target}` with `headers` (raw lines, exactly as written).
fn get(cgi: &CgiUpstream, target: &str, headers: &[&str]) -> RawResponse {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    let out = raw_exchange(cgi.addr(), req.as_bytes(), &RawOptions::default()).unwrap();
    assert_eq!(
        out.responses.len(),
        1,
        "{target} {headers:?}: {out:?}\n{}",
        cgi.error_log()
    );
    out.responses.into_iter().next().unwrap()
}

fn php(
    cgi: &CgiUpstream,
    target: &str,
    headers: &[&str],
) -> serde_json::Map<String, serde_json::Value> {
    let resp = get(cgi, target, headers);
    assert_eq!(
        resp.status,
        200,
        "{}\n{}",
        resp.body_text(),
        cgi.error_log()
    );
    php_server_vars(&resp.body_text()).unwrap()
}

fn sh(cgi: &CgiUpstream, target: &str, headers: &[&str]) -> Vec<(String, String)> {
    let resp = get(cgi, target, headers);
    assert_eq!(
        resp.status,
        200,
        "{}\n{}",
        resp.body_text(),
        cgi.error_log()
    );
    cgi_env_vars(&resp.body_text())
}

fn values<'a>(env: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    env.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn php_sees_dotted_name_as_x_user_id_with_original_request_uri() {
    let cgi = CgiUpstream::start().unwrap();
    let v = php(&cgi, "/api/secret?a=b", &["X.User.Id: admin"]);
    assert_eq!(v["HTTP_X_USER_ID"], "admin", "{v:?}");
    assert_eq!(v["REQUEST_URI"], "/api/secret?a=b");
    assert_eq!(v["PATH_INFO"], "/api/secret");
    assert_eq!(v["QUERY_STRING"], "a=b");
    assert_eq!(v["SCRIPT_NAME"], "/env.php");
    assert_eq!(v["REQUEST_METHOD"], "GET");
    assert_eq!(v["HTTP_HOST"], "127.0.0.1");
    // Only HTTP_* plus the five request variables.
    for k in v.keys() {
        assert!(
            k.starts_with("HTTP_")
                || [
                    "REQUEST_URI",
                    "PATH_INFO",
                    "SCRIPT_NAME",
                    "REQUEST_METHOD",
                    "QUERY_STRING"
                ]
                .contains(&k.as_str()),
            "{k}"
        );
    }
}

#[test]
fn every_spelling_of_the_name_reaches_php_as_the_same_variable() {
    let cgi = CgiUpstream::start().unwrap();
    for name in [
        "X.User.Id",
        "X_User_Id",
        "x~user~id",
        "X-User-Id",
        "x-user-id",
    ] {
        let v = php(&cgi, "/anything", &[&format!("{name}: admin")]);
        assert_eq!(v["HTTP_X_USER_ID"], "admin", "{name}: {v:?}");
    }
}

#[test]
fn colliding_names_all_reach_the_environment_and_php_keeps_the_last() {
    let cgi = CgiUpstream::start().unwrap();
    let headers = [
        "X.User.Id: a1",
        "X-User-Id: a3",
        "X_User_Id: a2",
        "x~user~id: a4",
    ];
    let v = php(&cgi, "/x", &headers);
    assert_eq!(v["HTTP_X_USER_ID"], "a4", "{v:?}");
    let env = sh(&cgi, "/sh/x", &headers);
    assert_eq!(
        values(&env, "HTTP_X_USER_ID"),
        ["a1", "a3", "a2", "a4"],
        "{env:?}"
    );
    // The same name twice is joined by lighttpd.
    let v = php(&cgi, "/x", &["X-User-Id: a3", "X-User-Id: a5"]);
    assert_eq!(v["HTTP_X_USER_ID"], "a3, a5", "{v:?}");
}

#[test]
fn sh_dump_shows_the_cgi_environment() {
    let cgi = CgiUpstream::start().unwrap();
    let env = sh(&cgi, "/sh/api/secret?q=1", &["X.User.Id: admin"]);
    assert_eq!(values(&env, "HTTP_X_USER_ID"), ["admin"], "{env:?}");
    assert_eq!(values(&env, "REQUEST_URI"), ["/sh/api/secret?q=1"]);
    assert_eq!(values(&env, "PATH_INFO"), ["/api/secret"]);
    assert_eq!(values(&env, "QUERY_STRING"), ["q=1"]);
    assert_eq!(values(&env, "SCRIPT_NAME"), ["/env.sh"]);
    assert_eq!(values(&env, "GATEWAY_INTERFACE"), ["CGI/1.1"]);
    // /env.sh itself works too.
    let env = sh(&cgi, "/env.sh", &["X_User_Id: u"]);
    assert_eq!(values(&env, "HTTP_X_USER_ID"), ["u"], "{env:?}");
}

#[test]
fn sh_mode_routes_every_path_to_the_shell_dump() {
    let cgi = CgiUpstream::start_with(CgiScript::Sh).unwrap();
    let env = sh(&cgi, "/api/secret?z=2", &["x~user~id: admin"]);
    assert_eq!(values(&env, "HTTP_X_USER_ID"), ["admin"], "{env:?}");
    assert_eq!(values(&env, "REQUEST_URI"), ["/api/secret?z=2"]);
    assert_eq!(values(&env, "PATH_INFO"), ["/api/secret"]);
    assert_eq!(values(&env, "QUERY_STRING"), ["z=2"]);
}

#[test]
fn proxy_header_and_separator_names_do_not_reach_php() {
    let cgi = CgiUpstream::start().unwrap();
    let v = php(&cgi, "/x", &["Proxy: evil"]);
    assert!(!v.contains_key("HTTP_PROXY"), "{v:?}");
    let env = sh(&cgi, "/sh/x", &["Proxy: evil", "X-Empty:", "X-Full: f"]);
    assert!(values(&env, "HTTP_PROXY").is_empty(), "{env:?}");
    assert!(values(&env, "HTTP_X_EMPTY").is_empty(), "{env:?}");
    assert_eq!(values(&env, "HTTP_X_FULL"), ["f"], "{env:?}");
    // A name with a separator is refused by lighttpd itself.
    assert_eq!(get(&cgi, "/x", &["X@User: a"]).status, 400);
    assert_eq!(get(&cgi, "/x", &["X User: a"]).status, 400);
}

#[test]
fn post_and_root_path_reach_php() {
    let cgi = CgiUpstream::start().unwrap();
    let v = php(&cgi, "/", &[]);
    assert_eq!(v["REQUEST_URI"], "/");
    let req = "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX.User.Id: p\r\n\
               Connection: close\r\n\r\nabc";
    let out = raw_exchange(cgi.addr(), req.as_bytes(), &RawOptions::default()).unwrap();
    assert_eq!(out.first_status(), Some(200), "{out:?}");
    let v = php_server_vars(&out.responses[0].body_text()).unwrap();
    assert_eq!(v["REQUEST_METHOD"], "POST");
    assert_eq!(v["REQUEST_URI"], "/submit");
    assert_eq!(v["HTTP_X_USER_ID"], "p");
}

#[test]
fn php_server_vars_rejects_non_objects() {
    assert!(php_server_vars("[1]").is_err());
    assert!(php_server_vars("<html>").is_err());
    assert_eq!(
        cgi_env_vars("A=1\nB=x=y\nnoequals\n"),
        vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "x=y".to_string())
        ]
    );
}
