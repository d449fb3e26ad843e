//! Hostile headers: identity headers in every spelling, duplicate token
//! carriers, client-address, scheme and path-override headers.

use super::*;

/// Identity headers a client sets, on public and JWT routes.
pub(super) fn identities(b: &mut Builder, bearer: &str) {
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
            bearer,
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
            bearer,
            "X.User.Roles: admin",
            "X.User.Id: admin",
        ],
        "",
        OK,
    )
    .authorized = true;
}

/// Duplicate token carriers, a forged token, an encoded query name.
pub(super) fn carriers(b: &mut Builder, t: &Tokens, bearer: &str, forged_bearer: &str) {
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
        bearer,
        forged_bearer,
    );
    let q = format!("GET /api/me?access_token={} HTTP/1.1", t.forged);
    b.two_carriers("header token + query token", &q, bearer, "");
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
}

/// Client-address, scheme and path-override headers.
pub(super) fn addresses(b: &mut Builder) {
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
}
