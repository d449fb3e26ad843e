//! Adversarial end-to-end suite, issue 21: what the upstream reads is what
//! Gatehouse verified. The real binary between a recording (echo) upstream,
//! inline JWKS and a scripted userinfo IdP, with `underscores_in_headers =
//! true` (the setting under which CGI/WSGI/PHP twins reach the upstream):
//!
//! 1. an any-of group reads the union of its members' carriers;
//! 2. claim arrays are rendered unambiguously (`,` and `%` escaped);
//! 3. the region header the upstream reads is the region that was used;
//! 4. claim values with spaces or tabs at the edges are refused;
//! 5. only access tokens pass (`typ`, ID tokens);
//! 6. a userinfo answer without `sub` is no identity;
//! 7. `_` twins of a token header are carriers;
//!
//! and the other carriers a client can use beside the verified one: the
//! RFC 6750 query parameter (removed) and form body (forwarded, documented).
//! `cargo nextest run -p gatehouse --test adversarial_trust`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::tokens::{claims, TestKey};
use gatehouse_testkit::{jwks, ConfigBuilder, EchoUpstream, Gatehouse, MockIdp, MockResponse};
use serde_json::{json, Value};
use std::process::Command;

const ISS: &str = "https://idp.test";
const AUD: &str = "api";

fn config(echo: &EchoUpstream, idp: &MockIdp, key: &TestKey) -> String {
    let keys = jwks(&[(key, "k1")]).to_string();
    let jwt = |name: &str, extra: &str| {
        format!(
            "[connectors.{name}]\nkind = \"jwt\"\njwks = '{keys}'\nalgorithms = [\"RS256\"]\n\
             issuers = [\"{ISS}\"]\n{extra}\n"
        )
    };
    let connectors = [
        jwt(
            "ga",
            &format!("audiences = [\"{AUD}\"]\ntoken_sources = [{{ cookie = \"at\" }}]\ninject_headers = {{ \"X-User-Id\" = \"sub\" }}"),
        ),
        jwt(
            "gb",
            &format!("audiences = [\"{AUD}\"]\nforward_authorization = false\ninject_headers = {{ \"X-User-Id\" = \"sub\" }}"),
        ),
        jwt(
            "claims",
            &format!("audiences = [\"{AUD}\"]\ninject_headers = {{ \"X-User-Id\" = \"sub\", \"X-User-Groups\" = \"groups\", \"X-User-Org\" = \"org\" }}\npolicy = [{{ any = [{{ claim = \"groups\", op = \"contains_any\", values = [\"admin\"], effect = \"deny\" }}, {{ claim = \"sub\", op = \"exists\" }}] }}]"),
        ),
        jwt("noaud", "inject_headers = { \"X-User-Id\" = \"sub\" }"),
        jwt(
            "twin",
            &format!("audiences = [\"{AUD}\"]\nforward_authorization = false\ntoken_sources = [{{ header = \"X-Auth-Token\" }}]\ninject_headers = {{ \"X-User-Id\" = \"sub\" }}"),
        ),
    ]
    .concat();
    let head = ConfigBuilder::new()
        .server_line("underscores_in_headers = true")
        .upstream("echo", echo.addr())
        .render();
    format!(
        r#"
{head}
{connectors}
[connectors.ui]
kind = "oidc_userinfo"
region_header = "X-Region"
default_endpoint = "{us}"
endpoints = {{ FR = "{fr}" }}
cache_ttl = "1s"
inject_headers = {{ "X-User-Id" = "sub", "X-User-Groups" = "groups" }}

[connectors.nosub]
kind = "oidc_userinfo"
default_endpoint = "{nosub}"
inject_headers = {{ "X-Email" = "email" }}

[[routes]]
name = "group"
path_prefix = "/group"
upstream = "echo"
connectors = [{{ any = ["ga", "gb"] }}]

[[routes]]
name = "claims"
path_prefix = "/claims"
upstream = "echo"
connectors = ["claims"]

[[routes]]
name = "noaud"
path_prefix = "/noaud"
upstream = "echo"
connectors = ["noaud"]

[[routes]]
name = "twin"
path_prefix = "/twin"
upstream = "echo"
connectors = ["twin"]

[[routes]]
name = "ui"
path_prefix = "/ui"
upstream = "echo"
connectors = ["ui"]

[[routes]]
name = "nosub"
path_prefix = "/nosub"
upstream = "echo"
connectors = ["nosub"]
"#,
        us = idp.url("/us"),
        fr = idp.url("/fr"),
        nosub = idp.url("/nosub"),
    )
}

struct World {
    echo: EchoUpstream,
    idp: MockIdp,
    gh: Gatehouse,
    key: TestKey,
}

fn world() -> World {
    let (echo, idp, key) = (EchoUpstream::start(), MockIdp::start(), TestKey::rsa(1));
    for (path, region) in [("/us", "us"), ("/fr", "fr")] {
        idp.route(
            "GET",
            path,
            MockResponse::json(
                200,
                json!({"sub": format!("user-{region}"), "groups": ["readers,admins"]}),
            ),
        );
    }
    idp.route("GET", "/nosub", MockResponse::json(200, json!({})));
    let gh = Gatehouse::start(BIN, &config(&echo, &idp, &key)).unwrap();
    World { echo, idp, gh, key }
}

impl World {
    fn token(&self, sub: &str, extra: Value) -> String {
        let mut c = claims(sub, ISS, AUD, 600);
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        self.key.mint(&c, Some("k1"))
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut r = client().get(self.gh.url(path));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().await.unwrap()
    }
}

/// Status and `error` of a refusal.
async fn refused(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().unwrap_or("").to_string())
}

fn rejections(w: &World, route: &str, reason: &str) -> f64 {
    let mut total = 0.0;
    for c in ["ga", "gb", "claims", "noaud", "twin", "ui", "nosub"] {
        total +=
            w.gh.metric(
                "gatehouse_rejections_total",
                &[("route", route), ("connector", c), ("reason", reason)],
            )
            .unwrap_or(0.0);
    }
    total
}

#[tokio::test]
async fn a_token_in_two_carriers_of_an_any_of_group_is_refused() {
    let w = world();
    let bob = w.token("bob", json!({}));
    let forged = gatehouse_testkit::tokens::unsigned_none_token(&claims("admin", ISS, AUD, 600));
    let before = w.echo.requests();
    // A valid bearer token for `gb` and a forged `at` cookie for `ga`; then
    // a valid cookie and a forged bearer token.
    for (auth, cookie) in [
        (format!("Bearer {bob}"), format!("at={forged}")),
        (format!("Bearer {forged}"), format!("at={bob}")),
    ] {
        let r = w
            .get("/group/x", &[("authorization", &auth), ("cookie", &cookie)])
            .await;
        assert_eq!(refused(r).await, (400, "invalid_request".into()), "{auth}");
    }
    assert_eq!(
        w.echo.requests(),
        before,
        "an ambiguous request went upstream"
    );
    assert_eq!(rejections(&w, "group", "ambiguous_token"), 2.0);
}

#[tokio::test]
async fn the_carriers_of_group_members_that_do_not_forward_them_are_removed() {
    let w = world();
    let bob = w.token("bob", json!({}));
    // `ga` allows on its cookie; `gb` (forward_authorization = false) reads
    // Authorization: whatever is there goes, though it is no bearer token.
    let e = echoed(
        w.get(
            "/group/x",
            &[
                ("authorization", "Basic YWRtaW46YWRtaW4="),
                ("cookie", &format!("theme=dark; at={bob}")),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(header_values(&e, "x-user-id"), ["bob"]);
    assert!(header_values(&e, "authorization").is_empty(), "{e}");
    assert_eq!(
        header_values(&e, "cookie"),
        [format!("theme=dark; at={bob}").as_str()],
        "ga forwards its own carrier"
    );
    // `gb` allows; its header goes (forward_authorization = false), the
    // unrelated cookie stays.
    let e = echoed(
        w.get(
            "/group/x",
            &[
                ("authorization", &format!("Bearer {bob}")),
                ("cookie", "theme=dark"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(header_values(&e, "x-user-id"), ["bob"]);
    assert!(header_values(&e, "authorization").is_empty(), "{e}");
    assert_eq!(header_values(&e, "cookie"), ["theme=dark"]);
}

#[tokio::test]
async fn check_names_the_carriers_of_a_group_and_warns_about_any_jwt() {
    let w = world();
    let out = Command::new(BIN)
        .args(["check", "--config", w.gh.config_path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("reads the token from one of: cookie at, header authorization (Bearer)"),
        "{text}"
    );
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("neither `audiences` nor `token_types`"))
        .collect();
    assert_eq!(warned.len(), 1, "{text}");
    assert!(warned[0].contains("connectors.noaud"), "{text}");
}

#[tokio::test]
async fn claim_arrays_reach_the_upstream_as_the_elements_that_were_checked() {
    let w = world();
    let one = w.token("bob", json!({"groups": ["readers,admins"]}));
    let two = w.token("bob", json!({"groups": ["readers", "admins"]}));
    let got = |e: &Value| header_values(e, "x-user-groups").join("|");
    let e1 = echoed(
        w.get("/claims/x", &[("authorization", &format!("Bearer {one}"))])
            .await,
    )
    .await;
    let e2 = echoed(
        w.get("/claims/x", &[("authorization", &format!("Bearer {two}"))])
            .await,
    )
    .await;
    assert_eq!(got(&e1), "readers%2Cadmins");
    assert_eq!(got(&e2), "readers,admins");
    // Objects too, and `%`.
    let t = w.token(
        "bob",
        json!({"groups": ["50%", {"a": 1, "b": 2}], "org": {"id": 1, "tier": "gold"}}),
    );
    let e = echoed(
        w.get("/claims/x", &[("authorization", &format!("Bearer {t}"))])
            .await,
    )
    .await;
    assert_eq!(got(&e), "50%25,{\"a\":1%2C\"b\":2}");
    assert_eq!(
        header_values(&e, "x-user-org"),
        ["{\"id\":1%2C\"tier\":\"gold\"}"]
    );
    // The policy reads the elements the upstream decodes: `x,admin` is one
    // element (not `admin`, which the policy denies), and the upstream
    // reads `desk` and `x,admin`.
    let t = w.token("bob", json!({"groups": ["desk", "x,admin"]}));
    let e = echoed(
        w.get("/claims/x", &[("authorization", &format!("Bearer {t}"))])
            .await,
    )
    .await;
    assert_eq!(got(&e), "desk,x%2Cadmin");
    let t = w.token("bob", json!({"groups": ["desk", "admin"]}));
    let r = w
        .get("/claims/x", &[("authorization", &format!("Bearer {t}"))])
        .await;
    assert_eq!(refused(r).await, (403, "insufficient_scope".into()));
}

#[tokio::test]
async fn claim_values_with_spaces_or_tabs_at_the_edges_are_refused() {
    let w = world();
    let before = w.echo.requests();
    for (sub, groups) in [
        (" admin ", json!(["a"])),
        ("admin\t", json!(["a"])),
        ("bob", json!(["readers", " admin"])),
    ] {
        let t = w.token(sub, json!({ "groups": groups }));
        let r = w
            .get("/claims/x", &[("authorization", &format!("Bearer {t}"))])
            .await;
        assert_eq!(
            refused(r).await,
            (401, "invalid_token".into()),
            "{sub:?} {groups}"
        );
    }
    assert_eq!(w.echo.requests(), before);
    assert_eq!(rejections(&w, "claims", "invalid_header_value"), 3.0);
    // Inside a value they are data.
    let t = w.token("Doe, John", json!({"groups": ["a b"]}));
    let e = echoed(
        w.get("/claims/x", &[("authorization", &format!("Bearer {t}"))])
            .await,
    )
    .await;
    assert_eq!(header_values(&e, "x-user-id"), ["Doe, John"]);
}

#[tokio::test]
async fn only_access_tokens_pass_a_jwt_route() {
    let w = world();
    let before = w.echo.requests();
    // The IdP's ID token (same keys, same issuer, audience = a client).
    let mut id = claims("bob", ISS, "spa-client", 600);
    id["nonce"] = json!("n-0S6_WzA2Mj");
    id["at_hash"] = json!("77QmUPtjPfzWtF2AnpK9RQ");
    let id_token = w.key.mint(&id, Some("k1"));
    let r = w
        .get(
            "/noaud/x",
            &[("authorization", &format!("Bearer {id_token}"))],
        )
        .await;
    assert_eq!(refused(r).await, (401, "invalid_token".into()));
    assert_eq!(rejections(&w, "noaud", "id_token"), 1.0);
    // A logout token and a DPoP proof signed by the same keys.
    for typ in ["logout+jwt", "dpop+jwt", "secevent+jwt"] {
        let t = w.key.mint_with_header(
            &json!({"alg": "RS256", "kid": "k1", "typ": typ}),
            &claims("bob", ISS, AUD, 600),
        );
        let r = w
            .get("/noaud/x", &[("authorization", &format!("Bearer {t}"))])
            .await;
        assert_eq!(refused(r).await, (401, "invalid_token".into()), "{typ}");
    }
    assert_eq!(rejections(&w, "noaud", "token_type_not_allowed"), 3.0);
    assert_eq!(w.echo.requests(), before);
    // An RFC 9068 access token passes.
    let t = w.key.mint_with_header(
        &json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}),
        &claims("bob", ISS, AUD, 600),
    );
    let e = echoed(
        w.get("/noaud/x", &[("authorization", &format!("Bearer {t}"))])
            .await,
    )
    .await;
    assert_eq!(header_values(&e, "x-user-id"), ["bob"]);
}

#[tokio::test]
async fn the_upstream_reads_the_region_that_was_used() {
    let w = world();
    let bearer = ("authorization", "Bearer opaque-userinfo-token-1");
    // Two region headers: refused before the IdP is asked.
    let r = client()
        .get(w.gh.url("/ui/x"))
        .header(bearer.0, bearer.1)
        .header("x-region", "FR")
        .header("x-region", "US")
        .send()
        .await
        .unwrap();
    assert_eq!(refused(r).await, (400, "invalid_request".into()));
    let r = w
        .get("/ui/x", &[bearer, ("x-region", "FR"), ("x_region", "US")])
        .await;
    assert_eq!(refused(r).await, (400, "invalid_request".into()));
    assert_eq!(w.idp.calls("/fr") + w.idp.calls("/us"), 0);
    // `fr` is no region code: the default endpoint validated the token, and
    // the upstream gets no region header.
    let e = echoed(w.get("/ui/x", &[bearer, ("x-region", "fr")]).await).await;
    assert_eq!(header_values(&e, "x-user-id"), ["user-us"]);
    assert!(header_values(&e, "x-region").is_empty(), "{e}");
    // `FR` is: the upstream reads the region's code as configured.
    let e = echoed(w.get("/ui/x", &[bearer, ("x-region", " FR ")]).await).await;
    assert_eq!(header_values(&e, "x-user-id"), ["user-fr"]);
    assert_eq!(header_values(&e, "x-region"), ["FR"]);
    // Userinfo arrays are rendered like claims.
    assert_eq!(header_values(&e, "x-user-groups"), ["readers%2Cadmins"]);
    // A route the userinfo connector did not allow (a JWT route): the
    // client's region never reaches the upstream.
    let bob = w.token("bob", json!({}));
    let auth = format!("Bearer {bob}");
    let e = echoed(
        w.get("/claims/x", &[("authorization", &auth), ("x-region", "FR")])
            .await,
    )
    .await;
    assert_eq!(header_values(&e, "x-user-id"), ["bob"]);
    assert!(header_values(&e, "x-region").is_empty(), "{e}");
}

#[tokio::test]
async fn a_userinfo_answer_without_sub_is_no_identity() {
    let w = world();
    let before = w.echo.requests();
    for _ in 0..2 {
        let r = w
            .get(
                "/nosub/x",
                &[("authorization", "Bearer opaque-userinfo-token-2")],
            )
            .await;
        assert_eq!(refused(r).await, (503, "temporarily_unavailable".into()));
    }
    assert_eq!(w.idp.calls("/nosub"), 2, "an answer without sub was cached");
    assert_eq!(w.echo.requests(), before);
}

#[tokio::test]
async fn underscore_twins_of_a_token_header_are_carriers() {
    let w = world();
    let bob = w.token("bob", json!({}));
    let forged = gatehouse_testkit::tokens::unsigned_none_token(&claims("admin", ISS, AUD, 600));
    let r = w
        .get(
            "/twin/x",
            &[("x-auth-token", &bob), ("x_auth_token", &forged)],
        )
        .await;
    assert_eq!(refused(r).await, (400, "invalid_request".into()));
    assert_eq!(rejections(&w, "twin", "ambiguous_token"), 1.0);
    // The twin alone is the carrier, verified, and removed like the header.
    for name in ["x_auth_token", "X_Auth_Token", "x-auth-token"] {
        let e = echoed(w.get("/twin/x", &[(name, &bob)]).await).await;
        assert_eq!(header_values(&e, "x-user-id"), ["bob"], "{name}");
        let names: Vec<&String> = e["headers"].as_object().unwrap().keys().collect();
        assert!(
            !names.iter().any(|n| n.replace('_', "-") == "x-auth-token"),
            "{name}: {names:?}"
        );
    }
}

#[tokio::test]
async fn other_carriers_beside_the_verified_one() {
    let w = world();
    let bob = w.token("bob", json!({}));
    let forged = gatehouse_testkit::tokens::unsigned_none_token(&claims("admin", ISS, AUD, 600));
    // A header-only route: the RFC 6750 query parameter is removed (in every
    // spelling a lenient reader folds to it), other parameters stay.
    let r = client()
        .get(w.gh.url(&format!(
            "/claims/x?a=1&access_token={forged}&ACCESS.TOKEN={forged}&+access_token={forged}\
             &%20access_token={forged}&access_token%00x={forged}&access_token[]={forged}&b=2"
        )))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    let e = echoed(r).await;
    assert_eq!(e["query"], "a=1&b=2", "{e}");
    assert_eq!(header_values(&e, "x-user-id"), ["bob"]);
    // A form body `access_token` is forwarded as sent: Gatehouse never reads
    // request bodies (docs/security.md, "What the upstream can trust").
    let r = client()
        .post(w.gh.url("/claims/x"))
        .bearer_auth(&bob)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={forged}"))
        .send()
        .await
        .unwrap();
    let e = echoed(r).await;
    assert_eq!(e["body"], format!("access_token={forged}"));
    assert_eq!(header_values(&e, "x-user-id"), ["bob"]);
}
