//! Adversarial end-to-end suite for issue 26 (`[routes.cors]`,
//! `rewrite_prefix`, request/response header rules): hostile bytes against
//! the real binary, judged by what a different parser downstream reads —
//! the echo upstream's record, NGINX's `$uri`/`$request_uri`, PHP's
//! `$_SERVER` and the raw CGI environment — over HTTP/1.1 and h2c. Every
//! assertion states the safe behaviour: a bypass makes it fail.
//! `cargo nextest run -p gatehouse --test adversarial_edge`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use gatehouse_testkit::cgi::{cgi_env_vars, php_server_vars, CgiUpstream};
use gatehouse_testkit::raw::{raw_exchange, RawOptions, RawOutcome, RawResponse};
use gatehouse_testkit::tokens::claims;
use gatehouse_testkit::{free_addr, jwks, ConfigBuilder, EchoUpstream, Gatehouse, Nginx, TestKey};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISS: &str = "https://idp.test";
const AUD: &str = "api";
const APP: &str = "https://app.example.com";
const ACAO: &str = "access-control-allow-origin";

/// The `jwt` connector (injects `X-User-Id`) and a token it accepts.
fn jwt() -> (String, String) {
    let key = TestKey::rsa(1);
    let keys = jwks(&[(&key, "k1")]).to_string();
    let section = format!(
        "[connectors.jwt]\nkind = \"jwt\"\njwks = '{keys}'\nalgorithms = [\"RS256\"]\n\
         issuers = [\"{ISS}\"]\naudiences = [\"{AUD}\"]\n\
         inject_headers = {{ \"X-User-Id\" = \"sub\" }}\n"
    );
    let token = key.mint(&claims("alice", ISS, AUD, 600), Some("k1"));
    (section, token)
}

/// `head`, the `jwt` connector, then `spec`: one route a line (`name | path_prefix |
/// upstream | key = value ; …`) or a table (`[t] ; key = value`), `{APP}` replaced.
fn config(head: ConfigBuilder, spec: &str) -> String {
    let mut out = format!("{}\n{}\n", head.render(), jwt().0);
    for line in spec.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [name, prefix, upstream, extra] = f[..] {
            let r = format!("name = \"{name}\" ; path_prefix = \"{prefix}\"");
            let r = format!("[[routes]] ; {r} ; upstream = \"{upstream}\" ; {extra}");
            out.push_str(&r.replace(" ; ", "\n"));
        } else {
            out.push_str(&line.replace(" ; ", "\n"));
        }
        out.push('\n');
    }
    out.replace("{APP}", APP)
}

fn h2() -> reqwest::Client {
    let b = reqwest::Client::builder().http2_prior_knowledge();
    b.timeout(Duration::from_secs(10)).build().unwrap()
}

async fn send(rq: RequestBuilder) -> (u16, HeaderMap, String) {
    let r = rq.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

fn hv(hs: &HeaderMap, name: &str) -> Vec<String> {
    let all = hs.get_all(name).iter();
    all.map(|v| v.to_str().unwrap().to_string()).collect()
}

fn raw(gh: &Gatehouse, req: &[u8]) -> RawOutcome {
    raw_exchange(gh.listen_addr(), req, &RawOptions::default()).unwrap()
}

/// `METHOD target HTTP/1.1`, `Host`, `extra` header lines, `Connection: close`.
fn req(method: &str, target: &str, host: &str, extra: &str) -> Vec<u8> {
    let head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}");
    format!("{head}Connection: close\r\n\r\n").into_bytes()
}

fn rh<'a>(r: &'a RawResponse, name: &str) -> Vec<&'a str> {
    let named = |h: &&(String, String)| h.0.eq_ignore_ascii_case(name);
    let all = r.headers.iter().filter(named);
    all.map(|h| h.1.as_str()).collect()
}

fn no_panic(gh: &Gatehouse) {
    let logs = gh.logs();
    assert!(!logs.contains("panicked"), "gatehouse panicked:\n{logs}");
}

/// `orders` (CORS) and `dav` (no CORS) share a prefix; `hosted`: a host route.
const CORS_ROUTES: &str = r#"
orders | /v1/orders | echo | methods = ["GET", "POST"] ; path_case_insensitive = true ; connectors = ["jwt"] ; cors = { allow_origins = ["{APP}", "https://*.example.net"], allow_headers = ["authorization", "content-type"], allow_credentials = true }
dav | /v1/orders | echo | methods = ["OPTIONS", "PUT"] ; connectors = ["jwt"]
hosted | /v1/orders | echo | host = "api.example.com" ; methods = ["DELETE"] ; connectors = ["jwt"] ; cors = { allow_origins = ["https://other.example.org"] }
"#;

fn cors_world() -> (EchoUpstream, Gatehouse, String) {
    let echo = EchoUpstream::start();
    let head = public_head(echo.addr()).server_line("h2c = true");
    let gh = Gatehouse::start(BIN, &config(head, CORS_ROUTES)).unwrap();
    (echo, gh, jwt().1)
}

/// `statuses | method | target | header ; header | Host | body | h2`: sent
/// raw, and over h2c when marked `h2` (`APP`, `TOKEN`, `MANY` = 65 names,
/// `LONG` = 4000 bytes, `OBS` = bytes 0xff 0xfe substituted).
const PREFLIGHTS: &str = "
204 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: POST | | | h2
204 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET ; Authorization: Bearer TOKEN | | | h2
204 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET ; Content-Length: 5 | | hello | h2
204,100 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET ; Expect: 100-continue ; Content-Length: 10 | | |
204 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET ; Upgrade: websocket ; Connection: Upgrade | | |
204 | OPTIONS | /V1/ORDERS/7 | Origin: APP ; Access-Control-Request-Method: GET | | | h2
204 | OPTIONS | http://localhost/v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET | | |
401 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: PUT | | | h2
401 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET ; Access-Control-Request-Method: GET | | | h2
401 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET, POST | | | h2
401,403 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: get | | | h2
401 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: | | |
401 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: CONNECT | | | h2
401 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: LONG | | | h2
401 | OPTIONS | /v1/orders/7 | Access-Control-Request-Method: GET | | | h2
401 | OPTIONS | /v1/orders/7 | Origin: APP | | | h2
401 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: PUT ; X-HTTP-Method-Override: GET | | | h2
403 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET ; Access-Control-Request-Headers: MANY | | | h2
403 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET ; Access-Control-Request-Headers: x-user-id | | | h2
400,403 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET ; Access-Control-Request-Headers: OBS | | |
204 | OPTIONS | /v1/orders/7 | Origin: https://other.example.org ; Access-Control-Request-Method: DELETE | API.Example.Com. | |
403 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: DELETE | api.example.com | |
204 | OPTIONS | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET | api.example.com | |
404 | OPTIONS | /v1/orders/../../admin | Origin: APP ; Access-Control-Request-Method: GET | | |
400 | OPTIONS | * | Origin: APP ; Access-Control-Request-Method: GET | | |
400 | options | /v1/orders/7 | Origin: APP ; Access-Control-Request-Method: GET | | |
";

/// Origins never granted (`SP`: a space, `EMPTY`: an empty value).
const BAD_ORIGINS: &str = r"https://APP.EXAMPLE.COM HTTPS://app.example.com https://app.example.com.
https://app.example.com:443 https://app.example.com/ https://app.example.com.evil.com
https://evil.com/https://app.example.com http://app.example.com https://user@app.example.com
https://app.example.com@evil.com null * EMPTY https://app.example.com,SPhttps://evil.com
https://app.example.com,https://evil.com https://evil.comSPhttps://app.example.com https://a.b.example.net
https://.example.net https://example.net https://-a.example.net https://a-.example.net https://A.example.net
https://a_b.example.net https://a%2eb.example.net https://a.example.net. https://a.example.net:8443
https://a.example.net: http://a.example.net https://evil.com#.example.net https://evil.com?.example.net
https://evil.com/.example.net https://evil.com\.example.net https://a.example.net.evil.com https://other.example.org
https://app.example.comSP.evil.com https://xn--app.example.com https://app%2eexample.com";

#[tokio::test]
async fn preflights_stay_at_the_gateway_and_only_listed_origins_are_echoed() {
    let (echo, gh, tok) = cors_world();
    let many: Vec<String> = (0..65).map(|i| format!("h{i}")).collect();
    for line in PREFLIGHTS.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        let ok: Vec<u16> = f[0].split(',').map(|s| s.parse().unwrap()).collect();
        let fields = f[3].replace("APP", APP).replace("TOKEN", &tok);
        let fields = fields.replace("MANY", &many.join(","));
        let fields = fields.replace("LONG", &"A".repeat(4000));
        let host = [f[4], "localhost"].into_iter().find(|h| !h.is_empty());
        let extra: String = fields.split(" ; ").map(|x| format!("{x}\r\n")).collect();
        let mut bytes = req(f[1], f[2], host.unwrap(), &extra);
        bytes.extend_from_slice(f[5].as_bytes());
        if let Some(i) = bytes.windows(3).position(|w| w == b"OBS") {
            bytes.splice(i..i + 3, [0xff, 0xfe]);
        }
        let out = raw(&gh, &bytes);
        let status = out.first_status().unwrap_or(0);
        assert!(ok.contains(&status), "{line}: {} {out:?}", out.summary());
        if status == 204 {
            assert_eq!(rh(&out.responses[0], ACAO).len(), 1, "{line}");
        }
        if f[6] == "h2" {
            let mut rq = h2().request(f[1].parse().unwrap(), gh.url(f[2]));
            for (n, v) in fields.split(" ; ").filter_map(|x| x.split_once(':')) {
                rq = rq.header(n, v.trim());
            }
            let (status, _, _) = send(rq.body(f[5].to_string())).await;
            assert!(ok.contains(&status), "h2 {line}: {status}");
        }
    }
    // A chunked body smuggling a second request is never read as one.
    let opts = RawOptions {
        follow_up: Some(req("GET", "/v1/orders/2", "localhost", "")),
        ..RawOptions::default()
    };
    let smuggle = format!("OPTIONS /v1/orders/7 HTTP/1.1\r\nHost: localhost\r\nOrigin: {APP}\r\nAccess-Control-Request-Method: GET\r\nTransfer-Encoding: chunked\r\n\r\n2d\r\nGET /v1/orders/1 HTTP/1.1\r\nHost: localhost\r\n\r\n\r\n0\r\n\r\n");
    let out = raw_exchange(gh.listen_addr(), smuggle.as_bytes(), &opts).unwrap();
    assert_eq!(out.first_status(), Some(204), "{out:?}");
    let all_safe = out.responses.iter().all(|r| r.status != 200);
    assert!(all_safe, "{}", out.summary());
    let seen = echo.recorded();
    assert!(seen.is_empty(), "forwarded: {seen:?}");
    // Control: a real OPTIONS with a token is dav's, and is proxied.
    let rq = client().request(Method::OPTIONS, gh.url("/v1/orders/7"));
    assert_eq!(send(rq.bearer_auth(&tok)).await.0, 200);
    assert_eq!(echo.recorded()[0].method, "OPTIONS");
    // Origins: echoed only when listed.
    let get = |c: reqwest::Client, origins: &[&str]| {
        let mut rq = c.get(gh.url("/v1/orders/7")).bearer_auth(&tok);
        for o in origins {
            rq = rq.header("origin", *o);
        }
        send(rq)
    };
    let good = "https://shop.example.net https://xn--80ak6aa92e.example.net";
    for origin in good.split(' ').chain([APP]) {
        assert_eq!(hv(&get(client(), &[origin]).await.1, ACAO), [origin]);
    }
    for origin in BAD_ORIGINS.split_whitespace() {
        let origin = origin.replace("SP", " ").replace("EMPTY", "");
        let (status, hs, _) = get(client(), &[&origin]).await;
        assert_eq!(status, 200, "{origin}");
        let granted = hv(&hs, ACAO).len() + hv(&hs, "access-control-allow-credentials").len();
        assert_eq!(granted, 0, "{origin:?} was granted: {hs:?}");
        assert!(hv(&hs, "vary").iter().any(|v| v.contains("Origin")));
        let pf = client().request(Method::OPTIONS, gh.url("/v1/orders/7"));
        let pf = pf.header("origin", &origin);
        let (status, hs, _) = send(pf.header("access-control-request-method", "GET")).await;
        let grant = (status, hv(&hs, ACAO).len());
        assert_eq!(grant, (403, 0), "{origin:?}");
    }
    // Two Origin fields, in either order, over HTTP/1.1 and h2: no grant.
    let auth = format!("Authorization: Bearer {tok}\r\n");
    let evil = "https://evil.com";
    for (a, b) in [(APP, evil), (evil, APP), (APP, APP)] {
        let two = format!("Origin: {a}\r\nOrigin: {b}\r\n");
        let one = req("GET", "/v1/orders/7", "x", &format!("{two}{auth}"));
        let out = raw(&gh, &one);
        let r = &out.responses[0];
        assert_eq!((r.status, rh(r, ACAO).len()), (200, 0), "{a} {b}: {r:?}");
        let pf = format!("{two}Access-Control-Request-Method: GET\r\n");
        let out = raw(&gh, &req("OPTIONS", "/v1/orders/7", "x", &pf));
        assert_eq!(out.first_status(), Some(403), "{a} {b}");
        let (_, hs, _) = get(h2(), &[a, b]).await;
        assert!(hv(&hs, ACAO).is_empty(), "h2 {a} {b}");
    }
    no_panic(&gh);
}

const NGINX_BODY: &str = r#"
location /internal/resp/ { add_header X_Powered_By "PHP/5.6" always; add_header x-powered-by "PHP/5.6" always; add_header ACCESS-CONTROL-ALLOW-CREDENTIALS "true" always; add_header Access-Control-Allow-Origin "https://evil.example.com" always; add_header access-control-expose-headers "set-cookie" always; add_header Strict-Transport-Security "max-age=0" always; add_header Vary "Accept-Encoding" always; return 200 "resp\n"; }
location / { default_type text/plain; return 200 "uri=$uri raw=$request_uri\n"; }
"#;

const REWRITE_ROUTES: &str = r#"
orders | /v1/orders | nginx | rewrite_prefix = "/internal/orders" ; connectors = ["jwt"]
ci | /ci/orders | nginx | path_case_insensitive = true ; rewrite_prefix = "/internal/ci/"
hosted | / | nginx | host = "api.example.com" ; rewrite_prefix = "/internal/host"
public | /public | nginx |
resp | /resp | nginx | rewrite_prefix = "/internal/resp" ; cors = { allow_origins = ["{APP}"] } ; response_headers = { set = { "Strict-Transport-Security" = "max-age=31536000" }, remove = ["X-Powered-By"] }
"#;

fn rewrite_world() -> (Nginx, Gatehouse, String) {
    let nginx = Nginx::start(NGINX_BODY).expect("nginx-light is part of make test");
    let head = ConfigBuilder::new().server_line("h2c = true");
    let head = head.upstream("nginx", nginx.addr());
    let gh = Gatehouse::start(BIN, &config(head, REWRITE_ROUTES)).unwrap();
    (nginx, gh, jwt().1)
}

/// What NGINX read for an answered request: `$uri` and `$request_uri` stay
/// inside the rewrite of a route that could take it (`/internal/orders`
/// only with a token), and `$request_uri` is canonical.
fn judge(what: &str, body: &str, authed: bool) {
    let Some(rest) = body.trim().strip_prefix("uri=") else {
        return;
    };
    let (uri, raw) = rest.split_once(" raw=").unwrap();
    let path = raw.split('?').next().unwrap();
    let mut inside = vec!["/internal/ci", "/internal/host", "/internal/resp"];
    inside.extend(
        ["/public"]
            .into_iter()
            .chain(authed.then_some("/internal/orders")),
    );
    let under = |x: &str, p: &str| x == p || x.starts_with(&format!("{p}/"));
    let ok = inside.iter().any(|p| under(uri, p) && under(path, p));
    assert!(ok, "{what}: NGINX read uri={uri} raw={raw}");
    for bad in ["/../", "/./", "//", "%2F", "%2f", "%5C", ";", "\\"] {
        let canonical = !path.contains(bad) && !path.ends_with("/..");
        assert!(canonical, "{what}: raw={raw}");
    }
}

const TARGETS: &str = r"/v1/orders/7 /v1/orders /v1/orders/ /v1/orders/x/.. /v1/orders/..
/v1/orders/..%2f..%2finternal/admin /v1/orders/%2e%2e/%2e%2e/internal/admin /v1/orders/.%2e/resp
/v1/orders/%2E%2E/%2e%2E/internal/resp/x /v1/orders//..//x /v1/orders/x/..;/y /v1/orders;x/y /v1/orders%3B/y
/v1/orders%2fx /v1/orders%2F..%2Fx /v1/orders./x /v1/orders%2e/x /v1/orders%20/x /v1/orders::$DATA/x /v1/orders/x%00
/v1/orders/%252e%252e/x /v1/orders/%5c..%5cx /v1/orders/\..\x /v1/orders/... /v1/orders/x.
/v1/orders/%C0%AE%C0%AE/%C0%AE%C0%AE/internal/admin /v1/orders/x?a=/../../internal/admin
/v1/orders/x#/../../../internal/admin //v1/orders/x ///v1//orders///x /public/../v1/orders/x
/public/%2e%2e/v1/orders/x /public/..%2fv1/orders/x /v1/ORDERS/x /V1/orders/x /v1/ordersX/7 /CI/ORDERS/x /Ci/Orders
/ci/orders/../../internal/orders/x /ci/ordersX/x /ci/orders/%2e%2e/%2e%2e/internal/orders
/CI/ORDERS%2F..%2F..%2Finternal/orders /resp/../v1/orders/x /v1/orders/%7e/%41 /internal/orders/x
http://localhost/v1/orders/x http://localhost/v1/orders/../../internal/orders
http://api.example.com/../internal/orders HTTP://API.EXAMPLE.COM./x https://api.example.com:99/x?y
http://user@localhost/v1/orders/x * /v1/orders/x/%2e /v1/orders/x/%2e%2e%2f /v1/orders/%2e%2e%5c
/v1/orders/x%3A%24DATA /v1/orders/x%09 /v1/orders/%ZZ /v1/orders/%u002e%u002e /ci/orders/..%00/x /v1/orders?x=1#y";

#[tokio::test]
async fn rewrites_never_leave_their_prefix_and_response_rules_hold() {
    let (_nginx, gh, tok) = rewrite_world();
    let auth = format!("Authorization: Bearer {tok}\r\n");
    let mut judged = 0;
    let hosts = "localhost API.Example.Com. localhost api.example.com".split(' ');
    for target in TARGETS.split_whitespace() {
        for (i, host) in hosts.clone().enumerate() {
            let authed = i >= 2;
            let extra = if authed { auth.as_str() } else { "" };
            let out = raw(&gh, &req("GET", target, host, extra));
            let what = format!("{target} (Host {host}, token {authed})");
            let r = out.responses.first().expect(&what);
            assert!(r.status < 500, "{what}: {}", r.status);
            if r.status == 200 {
                judge(&what, &r.body_text(), authed);
                judged += 1;
            }
        }
    }
    assert!(judged >= 40, "only {judged} answers reached NGINX");
    // Case is kept after a case-insensitive prefix; h2 :path variants.
    let (_, _, body) = send(client().get(gh.url("/CI/ORDERS/AbC"))).await;
    assert_eq!(body.trim(), "uri=/internal/ci/AbC raw=/internal/ci/AbC");
    let paths = "/v1/orders/7 //v1/orders/x /v1/orders/%2e%2e/%2e%2e/internal/x \
                 /ci/orders/%2e%2e/x /v1/orders;x /v1/orders/%2F";
    for path in paths.split_whitespace() {
        for authed in [false, true] {
            let rq = h2().get(gh.url(path));
            let rq = if authed { rq.bearer_auth(&tok) } else { rq };
            let (status, _, body) = send(rq).await;
            assert!(status < 500, "h2 {path}");
            if status == 200 {
                judge(&format!("h2 {path}"), &body, authed);
            }
        }
    }
    // Response rules and the CORS policy replace every upstream spelling.
    for c in [client(), h2()] {
        let (status, hs, _) = send(c.get(gh.url("/resp/x")).header("origin", APP)).await;
        assert_eq!(status, 200);
        let names = "x-powered-by x_powered_by access-control-allow-origin \
                     access-control-allow-credentials access-control-expose-headers \
                     strict-transport-security";
        let one = |n: &str| hv(&hs, n).join(" | ");
        let got: Vec<String> = names.split_whitespace().map(one).collect();
        let want = format!(";;{APP};;;max-age=31536000");
        assert_eq!(got.join(";"), want, "{hs:?}");
        assert!(one("vary").contains("Origin"), "{hs:?}");
        let evil = c
            .get(gh.url("/resp/x"))
            .header("origin", "https://evil.example.com");
        let (_, hs, _) = send(evil).await;
        assert!(hv(&hs, ACAO).is_empty(), "{hs:?}");
    }
    no_panic(&gh);
}

/// An HTTP/1.1 upstream that records each request head (`target host=…`),
/// answers the first request of a connection (keep-alive) and closes the
/// connection, unanswered, on the second — what an upstream whose
/// keep-alive timeout races a reuse does. Pingora then retries the
/// (idempotent) request on a new connection.
fn flaky_upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (addr, s) = (l.local_addr().unwrap(), Arc::clone(&seen));
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let s = s.clone();
            std::thread::spawn(move || serve_flaky(conn, &s));
        }
    });
    (addr, seen)
}

fn serve_flaky(mut c: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    for n in 1.. {
        let mut head = String::new();
        while r.read_line(&mut head).unwrap_or(0) > 2 {}
        let Some(target) = head.split(' ').nth(1) else {
            return;
        };
        let mut host = head.lines().filter_map(|l| l.split_once(": "));
        let host = host.rfind(|h| h.0.eq_ignore_ascii_case("host"));
        let line = format!("{target} host={}", host.map_or("", |h| h.1));
        seen.lock().unwrap().push(line);
        if n == 2 {
            return;
        }
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
}

const RETRY_ROUTES: &str = r#"
orders | /v1/orders | flaky | rewrite_prefix = "/internal/orders"
admin | /admin | flaky | connectors = ["jwt"]
"#;

#[tokio::test]
async fn a_retried_request_keeps_its_canonical_rewritten_target_and_host() {
    let (up, seen) = flaky_upstream();
    let head = ConfigBuilder::new().upstream("flaky", up);
    let gh = Gatehouse::start(BIN, &config(head, RETRY_ROUTES)).unwrap();
    let first = raw(&gh, &req("GET", "/v1/orders/1", "localhost", ""));
    assert_eq!(first.first_status(), Some(200), "{first:?}");
    // Each later request reuses the pooled connection, which the upstream
    // drops: Pingora retries it on a new one (and pools that one).
    let later = "/v1/orders/x/../2 LOCALHOST. /admin/%2e%2e/v1/orders/3 h";
    let later: Vec<&str> = later.split(' ').collect();
    for pair in later.chunks(2) {
        let (target, host) = (pair[0], pair[1]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let out = raw(&gh, &req("GET", target, host, ""));
        assert_eq!(out.first_status(), Some(200), "{target}: {out:?}");
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 4, "no retry happened: {seen:?}");
    for s in &seen {
        let ok = s.starts_with("/internal/orders/") && !s.ends_with("host=LOCALHOST.");
        assert!(ok, "the upstream read `{s}` (all: {seen:?})");
    }
    no_panic(&gh);
}

const SPELLINGS: &str = "X-Env:dev1 X_Env:dev2 X.Env:dev3 x~env:dev4 X-ENV:dev5 X|Env:dev6 X+Env:dev7 X!Env:dev8
X-Debug:1 X_Debug:1 x.debug:1 X'Debug:1 X`Debug:1 X^Debug:1 X#Debug:1 X$Debug:1 X*Debug:1 X%Debug:1 X&Debug:1
x--debug:1 -X-Debug-:1";

fn spelled(rq: RequestBuilder) -> RequestBuilder {
    let pairs = SPELLINGS
        .split_whitespace()
        .filter_map(|nv| nv.split_once(':'));
    pairs.fold(rq, |rq, (n, v)| rq.header(n, v))
}

const RULE_ROUTES: &str = r#"
php | /p | cgi | rewrite_prefix = "/internal/php" ; request_headers = { set = { "X-Env" = "prod" }, remove = ["X-Debug"] }
sh | /sh | cgi | request_headers = { set = { "X-Env" = "prod" }, remove = ["X-Debug"] }
"#;

#[tokio::test]
async fn header_rules_hold_in_every_spelling_php_reads() {
    let cgi = CgiUpstream::start().expect("lighttpd and php-cgi are part of make test");
    let permissive = "underscores_in_headers = true\nignore_invalid_headers = false";
    for server in [permissive, ""] {
        let head = ConfigBuilder::new().server_line(format!("h2c = true\n{server}"));
        let head = head.upstream("cgi", cgi.addr());
        let gh = Gatehouse::start(BIN, &config(head, RULE_ROUTES)).unwrap();
        for (version, c) in [("HTTP/1.1", client()), ("HTTP/2", h2())] {
            for path in "/p/me /p /p/%C0%AE%C0%AE/x /p/a/%2e%2e/b /P/../p/x".split(' ') {
                let (status, _, body) = send(spelled(c.get(gh.url(path)))).await;
                let what = format!("{server} {version} {path}: {body}");
                assert!(status == 200 || (path != "/p/me" && status < 500), "{what}");
                if status != 200 {
                    continue;
                }
                let vars = php_server_vars(&body).unwrap();
                assert_eq!(vars["HTTP_X_ENV"], "prod", "{what}");
                assert!(!vars.contains_key("HTTP_X_DEBUG"), "{what}");
                for k in ["REQUEST_URI", "PATH_INFO"] {
                    let v = vars[k].as_str().unwrap_or("/internal/php");
                    assert!(v.starts_with("/internal/php"), "{k}: {what}");
                }
            }
            let (_, _, body) = send(spelled(c.get(gh.url("/sh/me")))).await;
            let env = cgi_env_vars(&body);
            let of = |k: &str| env.iter().filter(|(n, _)| n == k).count();
            let prod = env.contains(&("HTTP_X_ENV".into(), "prod".into()));
            let counts = (prod, of("HTTP_X_ENV"), of("HTTP_X_DEBUG"));
            assert_eq!(counts, (true, 1, 0), "{server} {version}: {env:?}");
        }
        // Name bytes lighttpd folds to `_` (0x80 and up, spaces): refused,
        // or never read as the rule's header.
        let names: [&[u8]; 5] = [b"X\xe9Env", b"X\x80Env", b"X Env", b"X-Env ", b"\tX-Env"];
        for name in names {
            let head = &b"GET /sh/me HTTP/1.1\r\nHost: localhost\r\n"[..];
            let tail = b": dev\r\nConnection: close\r\n\r\n";
            let out = raw(&gh, &[head, name, tail].concat());
            if let Some(r) = out.responses.first().filter(|r| r.status == 200) {
                let env = cgi_env_vars(&r.body_text());
                let forged = env.iter().any(|(k, v)| k == "HTTP_X_ENV" && v != "prod");
                assert!(!forged, "{server} {name:?}: {env:?}");
            }
        }
        no_panic(&gh);
    }
}

const ANSWER_ROUTES: &str = r#"
limited | /limited | echo | limits = ["one"] ; cors = { allow_origins = ["{APP}"], allow_credentials = true }
down | /down | dead | cors = { allow_origins = ["{APP}"], allow_credentials = true }
slow | /slow | slow | cors = { allow_origins = ["{APP}"], allow_credentials = true }
body | /body | echo | upgrades = ["websocket"] ; cors = { allow_origins = ["{APP}"], allow_credentials = true }
[limits.one] ; key = "client_ip" ; quota = "1/day"
"#;

#[tokio::test]
async fn gatehouse_answers_of_a_cors_route_carry_its_headers() {
    let echo = EchoUpstream::start();
    let head = public_head(echo.addr()).server_line("request_body_timeout = \"1s\"");
    let head = head.upstream("dead", free_addr());
    let head = head.upstream_with("slow", echo.addr(), "read_timeout = \"300ms\"");
    let gh = Gatehouse::start(BIN, &config(head, ANSWER_ROUTES)).unwrap();
    let c = client();
    let at = |m: Method, path: &str| c.request(m, gh.url(path)).header("origin", APP);
    let get = |path: &str| at(Method::GET, path);
    // Preflights are not counted by the route's limits.
    for _ in 0..3 {
        let pf = at(Method::OPTIONS, "/limited");
        let pf = pf.header("access-control-request-method", "GET");
        assert_eq!(send(pf).await.0, 204);
    }
    let upgrade = at(Method::POST, "/body").header("upgrade", "websocket");
    let upgrade = upgrade.header("connection", "upgrade");
    let answers = [
        send(get("/limited")).await,
        send(get("/limited")).await,
        send(get("/down")).await,
        send(get("/slow").header("x-echo-delay-ms", "1500")).await,
        send(upgrade).await,
    ];
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [200, 429, 502, 504, 400]);
    for (status, hs, _) in &answers {
        assert_eq!(hv(hs, ACAO), [APP], "{status}: {hs:?}");
        let acac = hv(hs, "access-control-allow-credentials").join(",");
        let vary = hv(hs, "vary").join(",").contains("Origin");
        assert_eq!((acac.as_str(), vary), ("true", true), "{status}");
    }
    // 408: the body never arrives.
    let head = format!("Origin: {APP}\r\nContent-Length: 10\r\n");
    let post = [req("POST", "/body", "x", &head), b"ab".to_vec()];
    let out = raw(&gh, &post.concat());
    let r = out.responses.first().expect("an answer");
    assert_eq!((r.status, rh(r, ACAO)), (408, vec![APP]), "{r:?}");
    no_panic(&gh);
}

/// Names no request rule may set or remove (`X-Tenant` is in `strip_headers`).
const REQUEST_REFUSED: &str = "x-user-id X-USER-ID X.User.Id X_User_Id X-Tenant X-Real-IP Forwarded X-Forwarded-Host
X-Forwarded-Proto X-Forwarded-For X-HTTP-Method-Override X-Original-URL Host Content-Length Transfer-Encoding
Connection X-Request-Id Upgrade TE Proxy-Connection";
/// Names no response rule may set or remove.
const RESPONSE_REFUSED: &str = "Access-Control-Allow-Origin access-control-allow-credentials
Access-Control-Expose-Headers Transfer-Encoding Content-Length X-Request-Id Connection";
/// Other settings `check` refuses (` || ` separates them).
const REFUSED: &str = r#"rewrite_prefix = "/a//b" || rewrite_prefix = "/a%2fb" || rewrite_prefix = "/a;b"
rewrite_prefix = "a" || rewrite_prefix = "/a/." || rewrite_prefix = "/a/.." || rewrite_prefix = "/a\\b"
rewrite_prefix = "/a?b" || rewrite_prefix = "/a#b" || rewrite_prefix = "/a b" || rewrite_prefix = "/a./b"
cors = { allow_origins = ["https://*.com"] } || cors = { allow_origins = ["https://App.example.com"] }
cors = { allow_origins = ["null"] } || cors = { allow_origins = ["https://app.example.com/"] }
cors = { allow_origins = ["*", "https://a.example.com"] } || cors = { allow_origins = ["https://*.*.example.com"] }
cors = { allow_origins = ["https://a.example.com"], allow_headers = ["*"] }
cors = { allow_origins = ["https://a.example.com"], allow_methods = ["OPTIONS"] }
cors = { allow_origins = ["*"], allow_credentials = true } || cors = { allow_origins = ["https://a.example.com:"] }"#;

fn rules_config(echo: &EchoUpstream, extra: &str) -> String {
    let head = public_head(echo.addr()).server_line("strip_headers = [\"X-Tenant\"]");
    let route = format!("pub | /pub | echo | {extra}");
    config(head, &route.replace('\n', " ; "))
}

#[tokio::test]
async fn rules_never_name_identity_headers_in_check_or_reload() {
    let echo = EchoUpstream::start();
    let tables = [("request", REQUEST_REFUSED), ("response", RESPONSE_REFUSED)];
    for (table, names) in tables {
        for name in names.split_whitespace() {
            let set = format!("set = {{ \"{name}\" = \"admin\" }}");
            for rule in [set, format!("remove = [\"{name}\"]")] {
                let rules = format!("[routes.{table}_headers]\n{rule}");
                let (ok, out) = check_config(&rules_config(&echo, &rules));
                assert!(!ok, "check accepted {table} {rule}: {out}");
            }
        }
    }
    for bad in REFUSED.lines().flat_map(|l| l.split(" || ")) {
        let (ok, out) = check_config(&rules_config(&echo, bad));
        assert!(!ok, "check accepted {bad}: {out}");
    }
    // A reload that would let a public route forge X-User-Id is refused.
    let set = |n: &str| format!("[routes.request_headers]\nset = {{ \"{n}\" = \"admin\" }}");
    let gh = Gatehouse::start(BIN, &rules_config(&echo, &set("X-Env"))).unwrap();
    let forged = rules_config(&echo, &set("X-User-Id"));
    gh.write_config(&forged).unwrap();
    let refused = gh.wait_for_log("request_headers.set", Duration::from_secs(10));
    assert!(refused, "{}", gh.logs());
    let rq = client().get(gh.url("/pub")).header("X-User-Id", "admin");
    let e = echoed(rq.header("X_User_Id", "admin").send().await.unwrap()).await;
    assert!(header_values(&e, "x-user-id").is_empty(), "{e}");
    assert_eq!(header_values(&e, "x-env"), ["admin"], "{e}");
    no_panic(&gh);
}
