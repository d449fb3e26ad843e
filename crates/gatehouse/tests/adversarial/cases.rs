//! The hostile requests, as raw bytes. Every request carries `X-Case: <id>`
//! so the upstream's records can be attributed to it (smuggled requests
//! carry `<id>s`).

/// Expected first-response statuses; `0` means "connection closed without a
/// response"; an empty list means "anything but a 5xx" (only the invariants
/// are checked).
pub(crate) type Expect = &'static [u16];

/// Refused by Gatehouse itself.
pub(crate) const BAD: Expect = &[400];
/// Refused by the HTTP parser: a 400 or a closed connection.
pub(crate) const REFUSED: Expect = &[400, 0];
/// Routed to a protected route and denied for lack of a token.
pub(crate) const UNAUTH: Expect = &[401];
/// Either refused or normalised onto a protected route and denied.
pub(crate) const BAD_OR_UNAUTH: Expect = &[400, 401];
/// Proxied (public).
pub(crate) const OK: Expect = &[200];
/// Only the invariants matter (Pingora decides).
pub(crate) const ANY: Expect = &[];
/// A conflicting absolute-form authority and `Host` may also be refused.
pub(crate) const UNAUTH_OR_BAD: Expect = &[400, 401];
/// Public, or refused as conflicting.
pub(crate) const OK_OR_BAD: Expect = &[200, 400];
/// Too large: 400, 413, 414, 431 or a closed connection.
pub(crate) const TOO_LARGE: Expect = &[400, 413, 414, 431, 0];

/// One hostile request.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// `c01`, `c02`, ... (also sent as `X-Case`).
    pub id: String,
    /// What it tries.
    pub name: String,
    /// The bytes written on the socket.
    pub bytes: Vec<u8>,
    /// Allowed statuses of the first response.
    pub expect: Expect,
    /// Carries a valid token (may legitimately reach protected resources).
    pub authorized: bool,
    /// Write a sentinel request after the first response and read to EOF
    /// (pipelining and smuggling).
    pub follow_up: bool,
    /// Also sent through Gatehouse → NGINX.
    pub nginx: bool,
    /// Two token carriers (a valid and a forged one): judged by their own test.
    pub carriers: bool,
}

/// Tokens the cases use.
pub(crate) struct Tokens {
    /// Validly signed, accepted by the JWT connector.
    pub valid: String,
    /// `alg: none`, claims `sub: admin`.
    pub forged: String,
}

/// Sentinel written after smuggling attempts: answered last, closes.
pub(crate) fn sentinel() -> Vec<u8> {
    b"GET /public/sentinel HTTP/1.1\r\nHost: public.test\r\nX-Case: sentinel\r\nConnection: close\r\n\r\n"
        .to_vec()
}

struct Builder {
    cases: Vec<Case>,
}

impl Builder {
    fn next_id(&self) -> String {
        format!("c{:02}", self.cases.len() + 1)
    }

    /// A full request: `line`, then `headers` (each without CRLF), then
    /// `X-Case`, `Connection: close` unless `follow_up`, then `body`.
    fn push(
        &mut self,
        name: &str,
        line: &str,
        headers: &[&str],
        body: &str,
        expect: Expect,
    ) -> &mut Case {
        let id = self.next_id();
        let mut s = format!("{line}\r\n");
        for h in headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str(&format!("X-Case: {id}\r\nConnection: close\r\n\r\n{body}"));
        self.cases.push(Case {
            id,
            name: name.to_string(),
            bytes: s.into_bytes(),
            expect,
            authorized: false,
            follow_up: false,
            nginx: false,
            carriers: false,
        });
        self.cases.last_mut().unwrap_or_else(|| unreachable!())
    }

    /// `GET {target}` with `Host: public.test`, tokenless, also via NGINX.
    fn path(&mut self, target: &str, expect: Expect) {
        let line = format!("GET {target} HTTP/1.1");
        let name = format!("path {}", target.escape_debug());
        self.push(&name, &line, &["Host: public.test"], "", expect)
            .nginx = true;
    }

    /// A request with a valid token and a second, forged carrier: 400.
    fn two_carriers(&mut self, name: &str, line: &str, h1: &str, h2: &str) {
        let mut headers = vec!["Host: public.test", h1];
        if !h2.is_empty() {
            headers.push(h2);
        }
        let c = self.push(name, line, &headers, "", BAD);
        c.authorized = true;
        c.carriers = true;
    }

    /// A request whose bytes `make(id)` gives whole (nothing is added).
    fn verbatim(
        &mut self,
        name: &str,
        make: impl Fn(&str) -> String,
        expect: Expect,
        follow_up: bool,
    ) {
        let id = self.next_id();
        self.cases.push(Case {
            name: name.to_string(),
            bytes: make(&id).into_bytes(),
            id,
            expect,
            authorized: false,
            follow_up,
            nginx: false,
            carriers: false,
        });
    }
}

/// A request smuggled in a body: complete, tokenless, for `/api/secret`.
fn smuggled(id: &str) -> String {
    format!("GET /api/secret HTTP/1.1\r\nHost: public.test\r\nX-Case: {id}s\r\n\r\n")
}

/// Every hostile request (and a few controls that must behave normally).
pub(crate) fn all(t: &Tokens) -> Vec<Case> {
    let mut b = Builder { cases: Vec::new() };
    let bearer = format!("Authorization: Bearer {}", t.valid);
    let forged_bearer = format!("Authorization: Bearer {}", t.forged);

    // Controls: the suite can tell protected from public.
    b.path("/public/ok", OK);
    b.path("/api/secret", UNAUTH);
    b.path("/apix/secret", OK);
    b.push(
        "control: valid token",
        "GET /api/secret HTTP/1.1",
        &["Host: public.test", &bearer],
        "",
        OK,
    )
    .authorized = true;

    // Encodings and double encodings.
    b.path("/%61pi/secret", UNAUTH);
    b.path("/%61%70%69/secret", UNAUTH);
    b.path("/%2561pi/secret", BAD);
    b.path("/api%2fsecret", BAD);
    b.path("/api%2Fsecret", BAD);
    b.path("/api%252fsecret", BAD);
    b.path("/api%5csecret", BAD);
    b.path("/x/%2e%2e/api/secret", BAD_OR_UNAUTH);
    b.path("/x/%252e%252e/api/secret", BAD);
    b.path("/%2e%2e/api/secret", BAD_OR_UNAUTH);
    // Dot segments.
    b.path("/x/../api/secret", BAD_OR_UNAUTH);
    b.path("/x/..%2fapi/secret", BAD);
    b.path("/x/..;/api/secret", BAD);
    b.path("/x/..\\api/secret", REFUSED);
    b.path("/./api/secret", BAD_OR_UNAUTH);
    b.path("/./api", BAD_OR_UNAUTH);
    // Repeated slashes.
    b.path("//api/secret", UNAUTH);
    b.path("///api/secret", UNAUTH);
    b.path("/api//secret", UNAUTH);
    // `;` path parameters.
    b.path("/api;x=1/secret", BAD);
    b.path("/api;/secret", BAD);
    b.path("/api;jsessionid=1", BAD);
    // `%3B`: one decoding hop (NGINX `proxy_pass http://up/;`) makes it a
    // parameter Tomcat and Jetty strip (issue 20, item 2).
    b.path("/public/..%3B/api/secret", BAD);
    b.path("/api%3B/secret", BAD);
    b.path("/api%3b/secret", BAD);
    b.path("/api%3Bx=1", BAD);
    // Trailing dots and spaces: Windows serves `/api./secret` as
    // `/api/secret` (issue 20, item 3).
    b.path("/api./secret", BAD);
    b.path("/api%2e/secret", BAD);
    b.path("/api%2E%2E%2E/secret", BAD);
    b.path("/api%20/secret", BAD);
    b.path("/api.%20/secret", BAD);
    b.path("/api /secret", REFUSED);
    // Backslashes.
    b.path("/\\api/secret", REFUSED);
    b.path("/api\\secret", REFUSED);
    // NUL and control bytes, raw and encoded.
    b.path("/api/secret%00", BAD);
    b.path("/public/%00/../../api/secret", BAD);
    b.path("/api%0a/secret", BAD);
    b.path("/public%0d%0aX-User-Id:%20admin", BAD);
    b.path("/api\0/secret", REFUSED);
    b.path("/api\x01/secret", REFUSED);
    b.path("/api\x7f/secret", REFUSED);
    b.path("/public?x=/../api/secret", OK);

    // Methods.
    for m in ["post", "Post", "dElEtE", "put"] {
        let line = format!("{m} /orders/1 HTTP/1.1");
        b.push(
            &format!("method {m}"),
            &line,
            &["Host: public.test", "Content-Length: 0"],
            "",
            BAD,
        );
    }
    b.push(
        "control: POST /orders/1",
        "POST /orders/1 HTTP/1.1",
        &["Host: public.test", "Content-Length: 0"],
        "",
        UNAUTH,
    );
    b.push(
        "control: GET /orders/1 is public",
        "GET /orders/1 HTTP/1.1",
        &["Host: public.test"],
        "",
        OK,
    );
    b.push(
        "POST /%6frders/1",
        "POST /%6frders/1 HTTP/1.1",
        &["Host: public.test", "Content-Length: 0"],
        "",
        UNAUTH,
    );
    b.push(
        "POST //orders/1",
        "POST //orders/1 HTTP/1.1",
        &["Host: public.test", "Content-Length: 0"],
        "",
        UNAUTH,
    );

    // Method-override headers: a framework would serve these as writes.
    for h in [
        "X-HTTP-Method-Override: DELETE",
        "X-HTTP-Method: PUT",
        "X-Method-Override: delete",
        "X_HTTP_Method_Override: POST",
    ] {
        b.push(
            &format!("GET /orders/1 + {h}"),
            "GET /orders/1 HTTP/1.1",
            &["Host: public.test", h],
            "",
            OK,
        );
    }

    // Absolute-form targets and Host variants.
    let admin = "GET http://admin.local/secret HTTP/1.1";
    // RFC 9112 §3.2: an HTTP/1.1 request without `Host` is a 400 even in
    // absolute-form; reading the authority and denying (401) is safe too.
    b.push("absolute-form, no Host", admin, &[], "", UNAUTH_OR_BAD);
    b.push(
        "absolute-form, same Host",
        admin,
        &["Host: admin.local"],
        "",
        UNAUTH,
    );
    b.push(
        "absolute-form, conflicting Host",
        admin,
        &["Host: public.test"],
        "",
        UNAUTH_OR_BAD,
    );
    b.push(
        "absolute-form upper-case, trailing dot",
        "GET HTTP://ADMIN.LOCAL./secret HTTP/1.1",
        &["Host: ADMIN.LOCAL."],
        "",
        UNAUTH,
    );
    b.push(
        "absolute-form upper-case, conflicting Host",
        "GET HTTP://ADMIN.LOCAL./secret HTTP/1.1",
        &["Host: public.test"],
        "",
        UNAUTH_OR_BAD,
    );
    b.push(
        "absolute-form with port",
        "GET http://admin.local:80/secret HTTP/1.1",
        &["Host: admin.local:80"],
        "",
        UNAUTH,
    );
    b.push(
        "public absolute-form, Host admin.local",
        "GET http://public.test/x HTTP/1.1",
        &["Host: admin.local"],
        "",
        OK_OR_BAD,
    );
    for h in [
        "admin.local.",
        "ADMIN.LOCAL",
        "admin.local:80",
        "Admin.Local.:8080",
    ] {
        b.push(
            &format!("Host {h}"),
            "GET /secret HTTP/1.1",
            &[&format!("Host: {h}")],
            "",
            UNAUTH,
        );
    }
    b.push(
        "two Host (public first)",
        "GET /secret HTTP/1.1",
        &["Host: public.test", "Host: admin.local"],
        "",
        BAD,
    );
    b.push(
        "two Host (admin first)",
        "GET /secret HTTP/1.1",
        &["Host: admin.local", "Host: public.test"],
        "",
        BAD,
    );
    b.push("empty Host", "GET /secret HTTP/1.1", &["Host:"], "", ANY);
    b.push(
        "HTTP/1.1 without Host",
        "GET /secret HTTP/1.1",
        &[],
        "",
        BAD,
    );
    b.push(
        "Host with userinfo",
        "GET /secret HTTP/1.1",
        &["Host: public.test@admin.local"],
        "",
        BAD_OR_UNAUTH,
    );

    // Identity headers a client must never set, in every spelling PHP, CGI
    // and lighttpd fold to the same name (issue 20, item 1).
    let spoofs: [&[&str]; 8] = [
        &["X-User-Id: admin"],
        &["X_User_Id: admin"],
        &["X-User-Roles: admin", "x_user_roles: admin"],
        &["X.User.Id: admin"],
        &["X.User.Roles: admin"],
        &["X~User~Id: admin", "X+User+Id: admin"],
        &["X-User.Id: admin", "x.user_roles: admin"],
        &["X.HTTP.Method.Override: DELETE", "X.Real.IP: 6.6.6.6"],
    ];
    for s in spoofs {
        let mut h = vec!["Host: public.test"];
        h.extend_from_slice(s);
        b.push(
            &format!("public route + {}", s.join(" + ")),
            "GET /public/me HTTP/1.1",
            &h,
            "",
            OK,
        );
    }
    b.push(
        "JWT route + valid token + X_User_Id: admin",
        "GET /api/me HTTP/1.1",
        &[
            "Host: public.test",
            &bearer,
            "X_User_Id: admin",
            "X-User-Roles: admin",
        ],
        "",
        OK,
    )
    .authorized = true;

    b.push(
        "JWT route + valid token without admin + X.User.Roles: admin",
        "GET /api/me HTTP/1.1",
        &[
            "Host: public.test",
            &bearer,
            "X.User.Roles: admin",
            "X.User.Id: admin",
        ],
        "",
        OK,
    )
    .authorized = true;

    // Duplicate token carriers: never "first wins" (issue item 4; their own
    // test, `token_carriers_are_unambiguous`).
    let dup_cookie = format!("Cookie: at={}; at={}", t.valid, t.forged);
    b.two_carriers("two token cookies", "GET /api/me HTTP/1.1", &dup_cookie, "");
    let (c1, c2) = (
        format!("Cookie: at={}", t.valid),
        format!("Cookie: at={}", t.forged),
    );
    b.two_carriers("two Cookie headers", "GET /api/me HTTP/1.1", &c1, &c2);
    b.two_carriers(
        "two Authorization headers",
        "GET /api/me HTTP/1.1",
        &bearer,
        &forged_bearer,
    );
    let q = format!("GET /api/me?access_token={} HTTP/1.1", t.forged);
    b.two_carriers("header token + query token", &q, &bearer, "");
    let q = format!("GET /api/me?access%5Ftoken={} HTTP/1.1", t.forged);
    b.push(
        "encoded query token name, forged",
        &q,
        &["Host: public.test"],
        "",
        UNAUTH,
    );
    let forged_cookie = format!("Cookie: at={}", t.forged);
    b.push(
        "forged alg:none cookie",
        "GET /api/me HTTP/1.1",
        &["Host: public.test", &forged_cookie],
        "",
        UNAUTH,
    );

    // Client-address, scheme and path-override headers (issue 20, items 5
    // and 6).
    let addr_spoofs: [&[&str]; 20] = [
        &["X-Forwarded-For: 6.6.6.6"],
        &["X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 7.7.7.7"],
        &["X-Real-IP: 6.6.6.6"],
        &["Forwarded: for=6.6.6.6;host=evil.example"],
        &["X-Forwarded-Host: evil.example", "X-Forwarded-Port: 6666"],
        &["X_Forwarded_For: 6.6.6.6", "X_Real_IP: 6.6.6.6"],
        &["X-Client-IP: 6.6.6.6", "Client-IP: 6.6.6.6"],
        &["True-Client-IP: 6.6.6.6", "CF-Connecting-IP: 6.6.6.6"],
        &["Fastly-Client-IP: 6.6.6.6", "X-Cluster-Client-IP: 6.6.6.6"],
        &["X-Forwarded: for=6.6.6.6", "Forwarded-For: 6.6.6.6"],
        &["X-Original-Forwarded-For: 6.6.6.6"],
        &["X-Forwarded-Ssl: evil", "X-Forwarded-Scheme: evil"],
        &["X-Forwarded-Proto: evil", "X-Url-Scheme: evil"],
        &[
            "X-Original-URL: /api/secret?evil",
            "X-Rewrite-URL: /api/secret?evil",
        ],
        &["X-Forwarded-Prefix: /evil"],
        &["X.Client.IP: 6.6.6.6", "True.Client.IP: 6.6.6.6"],
        &["X-Original-Url: /api/secret?evil"],
        &[
            "X-Forwarded-Client-Cert: Hash=evil;Subject=\"CN=admin\"",
            "X-Scheme: evil",
        ],
        &[
            "X-Original-URI: /api/secret?evil",
            "X-Forwarded-Uri: /api/secret?evil",
        ],
        &[
            "X-Original-Host: evil.example",
            "X-Envoy-Original-Path: /api/secret?evil",
        ],
    ];
    for s in addr_spoofs {
        let mut h = vec!["Host: public.test"];
        h.extend_from_slice(s);
        b.push(
            &format!("public route + {}", s.join(" + ")),
            "GET /public/ip HTTP/1.1",
            &h,
            "",
            OK,
        );
    }

    // Upgrades on routes that allow none (issue 20, item 4): the Upgrade
    // header never reaches the upstream, and a tunnelled tokenless request
    // behind it is answered as a request of its own or not at all.
    b.push(
        "WebSocket handshake on a public route",
        "GET /public/ws HTTP/1.1",
        &[
            "Host: public.test",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ],
        "",
        OK,
    );
    b.push(
        "h2c upgrade on a public route",
        "GET /public/h2c HTTP/1.1",
        &[
            "Host: public.test",
            "Upgrade: h2c",
            "Connection: Upgrade, HTTP2-Settings",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        ],
        "",
        OK,
    );
    b.verbatim(
        "WebSocket handshake then a tokenless /api/secret in the would-be tunnel",
        |id| {
            format!(
                "GET /public/ws HTTP/1.1\r\nHost: public.test\r\nX-Case: {id}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n{}",
                smuggled(id)
            )
        },
        ANY,
        true,
    );

    // Smuggling: conflicting framing, a tokenless `/api/secret` in the body.
    let head =
        |id: &str| format!("POST /public/a HTTP/1.1\r\nHost: public.test\r\nX-Case: {id}\r\n");
    let zero_then = |id: &str| format!("0\r\n\r\n{}", smuggled(id));
    b.verbatim(
        "CL + TE: chunked (CL.TE)",
        |id| {
            let body = zero_then(id);
            format!(
                "{}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
                head(id),
                body.len()
            )
        },
        ANY,
        true,
    );
    b.verbatim(
        "TE: chunked + CL: 4 (TE.CL)",
        |id| {
            let inner = smuggled(id);
            let chunked = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
            format!(
                "{}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunked}",
                head(id)
            )
        },
        ANY,
        true,
    );
    b.verbatim(
        "two different Content-Length",
        |id| {
            let inner = smuggled(id);
            format!(
                "{}Content-Length: 0\r\nContent-Length: {}\r\n\r\n{inner}",
                head(id),
                inner.len()
            )
        },
        ANY,
        true,
    );
    for (name, te) in [
        (
            "Transfer-Encoding: xchunked + CL",
            "Transfer-Encoding: xchunked",
        ),
        (
            "TE with a space before the colon + CL",
            "Transfer-Encoding : chunked",
        ),
        (
            "TE: chunked, identity + CL",
            "Transfer-Encoding: chunked, identity",
        ),
        (
            "TE: chunked twice + CL",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        ),
    ] {
        b.verbatim(
            name,
            |id| {
                let body = zero_then(id);
                format!(
                    "{}Content-Length: {}\r\n{te}\r\n\r\n{body}",
                    head(id),
                    body.len()
                )
            },
            ANY,
            true,
        );
    }
    b.verbatim(
        "pipelined: public then tokenless /api/secret",
        |id| {
            format!(
                "GET /public/a HTTP/1.1\r\nHost: public.test\r\nX-Case: {id}\r\n\r\n{}",
                smuggled(id)
            )
        },
        OK,
        true,
    );

    // Oversized request line and headers.
    let long = format!("GET /public/{} HTTP/1.1", "a".repeat(128 * 1024));
    b.push(
        "128 KiB request line",
        &long,
        &["Host: public.test"],
        "",
        TOO_LARGE,
    );
    let big = format!("X-Big: {}", "b".repeat(128 * 1024));
    b.push(
        "128 KiB header",
        "GET /public/a HTTP/1.1",
        &["Host: public.test", &big],
        "",
        ANY,
    );
    let huge = format!("X-Huge: {}", "h".repeat(2 * 1024 * 1024));
    b.push(
        "2 MiB header",
        "GET /public/a HTTP/1.1",
        &["Host: public.test", &huge],
        "",
        TOO_LARGE,
    );
    let many: Vec<String> = (0..2000).map(|i| format!("X-H{i}: v")).collect();
    let mut h: Vec<&str> = vec!["Host: public.test"];
    h.extend(many.iter().map(String::as_str));
    b.push("2000 headers", "GET /public/a HTTP/1.1", &h, "", TOO_LARGE);

    // Odd request lines.
    b.push(
        "CONNECT admin.local:80",
        "CONNECT admin.local:80 HTTP/1.1",
        &["Host: admin.local:80"],
        "",
        ANY,
    );
    b.push(
        "OPTIONS *",
        "OPTIONS * HTTP/1.1",
        &["Host: public.test"],
        "",
        ANY,
    );
    b.push(
        "double space in request line",
        "GET  /api/secret HTTP/1.1",
        &["Host: public.test"],
        "",
        ANY,
    );
    b.push(
        "obs-fold header carrying a token",
        "GET /api/secret HTTP/1.1",
        &[
            "Host: public.test",
            "X-Foo: a",
            &format!(" {forged_bearer}"),
        ],
        "",
        ANY,
    );

    b.cases
}
