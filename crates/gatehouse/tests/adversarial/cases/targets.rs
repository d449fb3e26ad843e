//! Hostile request targets: controls, encodings, dot segments, slashes,
//! parameters, trailing dots, backslashes, control bytes; methods and
//! method overrides; absolute-form targets and `Host` variants.

use super::*;

/// Controls, then paths that must not reach `/api` without a token.
pub(super) fn paths(b: &mut Builder, bearer: &str) {
    // Controls: the suite can tell protected from public.
    b.path("/public/ok", OK);
    b.path("/api/secret", UNAUTH);
    b.path("/apix/secret", OK);
    b.push(
        "control: valid token",
        "GET /api/secret HTTP/1.1",
        &["Host: public.test", bearer],
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
}

/// Methods in odd spellings and method-override headers.
pub(super) fn methods(b: &mut Builder) {
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
}

/// Absolute-form targets and `Host` variants.
pub(super) fn authorities(b: &mut Builder) {
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
}
