//! End-to-end: the `oidc_userinfo` connector in the real binary, against
//! several testkit IdPs (one per region), each knowing different tokens.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "userinfo/support.rs"]
mod support;

use common::*;
use gatehouse_testkit::{eventually, EchoUpstream, Gatehouse, MockIdp, MockResponse};
use serde_json::json;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn region_header_selects_the_endpoint_and_default_catches_the_rest() {
    let (echo, fr, us, def) = (
        EchoUpstream::start(),
        idp("fr", &["tfr"]),
        idp("us", &["tus"]),
        idp("default", &["tdef"]),
    );
    let gh = Gatehouse::start(BIN, &config(&echo, &fr, &us, Some(&def), "")).unwrap();

    let e = echoed(call(&gh, "tfr", Some("FR")).await).await;
    assert_eq!(
        (fr.calls(UI), us.calls(UI), def.calls(UI)),
        (1, 0, 0),
        "only the FR IdP was called"
    );
    // FR's own header map: X-Unit-Id, no X-User-Email.
    assert_eq!(header_values(&e, "x-unit-id"), ["u-7"]);
    assert_eq!(header_values(&e, "x-user-id"), ["user-tfr"]);
    assert!(header_values(&e, "x-user-email").is_empty());
    assert!(
        header_values(&e, "authorization").is_empty(),
        "Authorization is not forwarded by default"
    );

    let e = echoed(call(&gh, "tus", Some("US")).await).await;
    assert_eq!(
        header_values(&e, "x-user-email"),
        ["tus@example.com"],
        "flat map for US"
    );
    assert_eq!(us.calls(UI), 1);

    // Unknown and absent regions go to the default; region matching is exact
    // ("fr" is not "FR": the default answers, from its cache for this token).
    echoed(call(&gh, "tdef", Some("DE")).await).await;
    assert_eq!(call(&gh, "tdef2", None).await.status(), 401);
    echoed(call(&gh, "tdef", Some("fr")).await).await;
    assert_eq!(def.calls(UI), 2);
    assert_eq!(fr.calls(UI), 1);
    assert_eq!(
        gh.metric(
            "gatehouse_userinfo_requests_total",
            &[("connector", "geo"), ("endpoint", "FR"), ("result", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        gh.metric(
            "gatehouse_userinfo_requests_total",
            &[("endpoint", "default"), ("result", "rejected")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn without_a_default_an_unusable_region_is_denied_with_the_reason() {
    let (echo, fr, us) = (
        EchoUpstream::start(),
        idp("fr", &["tfr"]),
        idp("us", &["tus"]),
    );
    let gh = Gatehouse::start(
        BIN,
        &config(&echo, &fr, &us, None, "region_match = \"case_insensitive\""),
    )
    .unwrap();
    echoed(call(&gh, "tfr", Some("fr")).await).await;
    let r = call(&gh, "tfr", Some("JP")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        gh.metric(
            "gatehouse_rejections_total",
            &[("connector", "geo"), ("reason", "no_userinfo_endpoint")]
        ),
        Some(1.0)
    );
    assert_eq!(call(&gh, "tfr", None).await.status(), 400);
    assert_eq!(fr.calls(UI) + us.calls(UI), 1);
}

#[tokio::test]
async fn post_reaches_the_idp_as_post_with_the_token() {
    let (echo, fr, us) = (
        EchoUpstream::start(),
        idp("fr", &["tfr"]),
        idp("us", &["tus"]),
    );
    let cfg = config(&echo, &fr, &us, None, "post_token_in_body = true")
        .replace("method = \"GET\"", "method = \"POST\"");
    let gh = Gatehouse::start(BIN, &cfg).unwrap();
    echoed(call(&gh, "tfr", Some("FR")).await).await;
    let reqs = fr.requests(UI);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer tfr"));
    assert_eq!(reqs[0].form_param("access_token").as_deref(), Some("tfr"));
}

#[tokio::test]
async fn cache_hits_make_no_idp_call_and_rejections_are_negatively_cached() {
    let (echo, fr, us) = (
        EchoUpstream::start(),
        idp("fr", &["tfr"]),
        idp("us", &["tus"]),
    );
    let gh = Gatehouse::start(BIN, &config(&echo, &fr, &us, None, "")).unwrap();
    for _ in 0..20 {
        echoed(call(&gh, "tfr", Some("FR")).await).await;
    }
    assert_eq!(fr.calls(UI), 1);
    assert_eq!(
        gh.metric(
            "gatehouse_userinfo_cache_requests_total",
            &[("result", "hit")]
        ),
        Some(19.0)
    );
    for _ in 0..5 {
        assert_eq!(call(&gh, "bogus", Some("FR")).await.status(), 401);
    }
    assert_eq!(
        fr.calls(UI),
        2,
        "one call for the rejected token, then the negative cache"
    );
    assert_eq!(
        gh.metric(
            "gatehouse_userinfo_cache_requests_total",
            &[("result", "negative_hit")]
        ),
        Some(4.0)
    );
    // The same token is a different cache key at another endpoint.
    assert_eq!(call(&gh, "tfr", Some("US")).await.status(), 401);
    assert_eq!(us.calls(UI), 1);

    // Load: 1000 requests over 10 distinct valid tokens cost exactly 10 IdP calls.
    let known: Vec<String> = (0..10).map(|i| format!("load{i}")).collect();
    let load_idp = MockIdp::start();
    let k2 = known.clone();
    load_idp.route_fn("GET", UI, move |req| {
        let t = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        if k2.iter().any(|k| k == t) {
            MockResponse::json(200, json!({"sub": t}))
        } else {
            MockResponse::status(401)
        }
    });
    drop(gh);
    let gh = Gatehouse::start(BIN, &config(&echo, &fr, &us, Some(&load_idp), "")).unwrap();
    let cl = client();
    for i in 0..1000 {
        let r = cl
            .get(gh.url("/api/load"))
            .bearer_auth(&known[i % 10])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        load_idp.calls(UI),
        10,
        "IdP calls per 1000 requests with 10 distinct tokens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_new_tokens_make_exactly_one_idp_call() {
    let (echo, fr, us) = (
        EchoUpstream::start(),
        idp("fr", &["tfr"]),
        idp("us", &["tus"]),
    );
    fr.set_delay(Some(Duration::from_millis(500)));
    let gh = Gatehouse::start(BIN, &config(&echo, &fr, &us, None, "")).unwrap();
    let cl = client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (cl, url) = (cl.clone(), gh.url("/api/x"));
        tasks.spawn(async move {
            cl.get(url)
                .bearer_auth("tfr")
                .header("x-region", "FR")
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 200);
    }
    assert_eq!(
        fr.calls(UI),
        1,
        "single-flight: one IdP call for 200 concurrent requests"
    );
}

#[tokio::test]
async fn idp_rejection_is_passed_through_with_its_challenge() {
    let (echo, fr, us) = (
        EchoUpstream::start(),
        idp("fr", &["tfr"]),
        idp("us", &["tus"]),
    );
    let extra = "error_metadata_location = \"response_payload\"\nerror_payload_location = \"$.errorMessage\"";
    let gh = Gatehouse::start(BIN, &config(&echo, &fr, &us, None, extra)).unwrap();
    let r = call(&gh, "nope", Some("FR")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"unknown token\""
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error_description"], "token unknown here");
    drop(gh);

    // Mashery style: the IdP status and <h1>text</h1>.
    let gh = Gatehouse::start(
        BIN,
        &config(
            &echo,
            &fr,
            &us,
            None,
            &format!("{extra}\nerror_style = \"mashery\""),
        ),
    )
    .unwrap();
    let r = call(&gh, "nope2", Some("FR")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), "<h1>token unknown here</h1>");
    drop(gh);

    // Without passthrough: Gatehouse's own RFC 6750 answer.
    let gh = Gatehouse::start(
        BIN,
        &config(&echo, &fr, &us, None, "idp_error_passthrough = false"),
    )
    .unwrap();
    let r = call(&gh, "nope3", Some("FR")).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer realm=\"geo\", error=\"invalid_token\""));
}

#[tokio::test]
async fn idp_down_gives_503_and_stale_if_error_serves_the_cached_answer() {
    let (echo, fr, us) = (
        EchoUpstream::start(),
        idp("fr", &["tfr", "tfr2"]),
        idp("us", &["tus"]),
    );
    let gh = Gatehouse::start(
        BIN,
        &config(
            &echo,
            &fr,
            &us,
            None,
            "cache_ttl = \"1s\"\nstale_if_error = \"5m\"\ntimeout = \"3s\"",
        ),
    )
    .unwrap();
    echoed(call(&gh, "tfr", Some("FR")).await).await;
    fr.set_down(true);
    // Served from the fresh entry, then (once it expired, the IdP down) from
    // the stale one.
    let stale = eventually(Duration::from_secs(10), async || {
        let e = echoed(call(&gh, "tfr", Some("FR")).await).await;
        assert_eq!(header_values(&e, "x-user-id"), ["user-tfr"]);
        gh.metric(
            "gatehouse_userinfo_cache_requests_total",
            &[("result", "stale")],
        ) == Some(1.0)
    })
    .await;
    assert!(
        stale,
        "the stale answer serves once the fresh entry expired"
    );
    assert_eq!(
        gh.metric(
            "gatehouse_userinfo_cache_requests_total",
            &[("result", "stale")]
        ),
        Some(1.0)
    );
    // A token never seen: 503 with Retry-After, not a 401.
    let r = call(&gh, "tfr2", Some("FR")).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(!r.headers().contains_key("www-authenticate"));
    assert_eq!(
        gh.metric(
            "gatehouse_rejections_total",
            &[("connector", "geo"), ("reason", "idp_unavailable")]
        ),
        Some(1.0)
    );
    drop(gh);

    // Without stale_if_error, an expired entry + IdP down = 503.
    let gh = Gatehouse::start(
        BIN,
        &config(
            &echo,
            &fr,
            &us,
            None,
            "cache_ttl = \"1s\"\ntimeout = \"3s\"",
        ),
    )
    .unwrap();
    fr.set_down(false);
    echoed(call(&gh, "tfr", Some("FR")).await).await;
    fr.set_down(true);
    // Served fresh until its TTL; then the IdP is asked and is down.
    let mut last = 200;
    let expired = eventually(Duration::from_secs(10), async || {
        last = call(&gh, "tfr", Some("FR")).await.status().as_u16();
        last != 200
    })
    .await;
    assert!(expired, "still served after the TTL");
    assert_eq!(last, 503);
}

#[tokio::test]
async fn spoofed_identity_headers_are_stripped() {
    let (echo, fr, us) = (
        EchoUpstream::start(),
        idp("fr", &["tfr"]),
        idp("us", &["tus"]),
    );
    let gh = Gatehouse::start(BIN, &config(&echo, &fr, &us, None, "")).unwrap();
    let r = client()
        .get(gh.url("/api/x"))
        .bearer_auth("tus")
        .header("x-region", "US")
        .header("x-unit-id", "spoofed")
        .header("x-user-email", "ceo@example.com")
        .send()
        .await
        .unwrap();
    let e = echoed(r).await;
    assert!(
        header_values(&e, "x-unit-id").is_empty(),
        "FR-only header stripped on a US request too"
    );
    assert_eq!(header_values(&e, "x-user-email"), ["tus@example.com"]);
}

#[test]
fn lowercase_method_and_eleven_endpoints_are_refused_by_check() {
    let (echo, fr, us) = (EchoUpstream::start(), idp("fr", &[]), idp("us", &[]));
    let good = config(&echo, &fr, &us, Some(&fr), "");
    assert!(check_config(&good).0);
    let (ok, err) = check_config(&good.replace("method = \"GET\"", "method = \"get\""));
    assert!(!ok);
    assert!(
        err.contains("connectors.geo.method: must be exactly \"GET\" or \"POST\""),
        "{err}"
    );
    // FR + US + default + 8 = 11.
    let many: String = (0..8)
        .map(|i| format!("R{i} = \"{}\"\n", fr.url(UI)))
        .collect();
    let (ok, err) = check_config(&good.replace(
        "[connectors.geo.endpoints]\n",
        &format!("[connectors.geo.endpoints]\n{many}"),
    ));
    assert!(!ok);
    assert!(
        err.contains(
            "connectors.geo.endpoints: 11 userinfo endpoints (default included); at most 10"
        ),
        "{err}"
    );
    let ten: String = (0..7)
        .map(|i| format!("R{i} = \"{}\"\n", fr.url(UI)))
        .collect();
    assert!(
        check_config(&good.replace(
            "[connectors.geo.endpoints]\n",
            &format!("[connectors.geo.endpoints]\n{ten}")
        ))
        .0,
        "10 in all is fine"
    );
}

#[tokio::test]
async fn reload_changing_one_region_keeps_other_connectors_warm() {
    let (echo, fr, us) = (
        EchoUpstream::start(),
        idp("fr", &["tfr"]),
        idp("us", &["tus"]),
    );
    let fr2 = idp("fr", &["tfr"]);
    let other = idp("other", &["tother"]);
    let second = |fr_url: &str| {
        config(&echo, &fr, &us, None, "").replace(&fr.url(UI), fr_url)
            + &format!(
                "\n[connectors.side]\nkind = \"oidc_userinfo\"\ndefault_endpoint = \"{}\"\n\n[[routes]]\nname = \"side\"\npath_prefix = \"/side\"\nupstream = \"echo\"\nconnectors = [\"side\"]\n",
                other.url(UI)
            )
    };
    let gh = Gatehouse::start(BIN, &second(&fr.url(UI))).unwrap();
    let side = || client().get(gh.url("/side")).bearer_auth("tother").send();
    assert_eq!(side().await.unwrap().status(), 200);
    assert_eq!(other.calls(UI), 1);
    gh.write_config(&second(&fr2.url(UI))).unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || gh
            .metric("gatehouse_config_generation", &[])
            == Some(2.0))
        .await
    );
    assert_eq!(side().await.unwrap().status(), 200);
    assert_eq!(other.calls(UI), 1, "the unchanged connector kept its cache");
    echoed(call(&gh, "tfr", Some("FR")).await).await;
    assert_eq!(
        (fr.calls(UI), fr2.calls(UI)),
        (0, 1),
        "the changed region uses its new URL"
    );
}

#[tokio::test]
async fn own_answers_to_idp_rejections_carry_each_request_id_on_negative_hits() {
    let (echo, fr, us) = (
        EchoUpstream::start(),
        idp("fr", &["tfr"]),
        idp("us", &["tus"]),
    );
    let extra = "idp_error_passthrough = false\n[connectors.geo.custom_error]\nstatus = 401\nbody = \"{reason}:{request_id}\"";
    let gh = Gatehouse::start(BIN, &config(&echo, &fr, &us, None, extra)).unwrap();
    for id in ["first-id", "second-id"] {
        let r = client()
            .get(gh.url("/api/x"))
            .bearer_auth("unknown")
            .header("x-region", "FR")
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.text().await.unwrap(), format!("idp_rejected:{id}"));
    }
    assert_eq!(
        fr.calls(UI),
        1,
        "the second answer came from the negative cache"
    );
}

#[tokio::test]
async fn two_authorization_headers_are_400_and_reach_neither_idp_nor_upstream() {
    let (echo, fr, us) = (EchoUpstream::start(), idp("fr", &["tfr"]), idp("us", &[]));
    let gh = Gatehouse::start(BIN, &config(&echo, &fr, &us, Some(&fr), "")).unwrap();
    let r = client()
        .get(gh.url("/api/x"))
        .header("authorization", "Bearer tfr")
        .header("authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );
    assert_eq!((fr.total_calls(), echo.requests()), (0, 0));
    assert_eq!(
        gh.metric(
            "gatehouse_rejections_total",
            &[("connector", "geo"), ("reason", "ambiguous_token")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn stale_if_error_never_serves_past_the_token_exp() {
    use base64::Engine;
    let (echo, fr, us) = (EchoUpstream::start(), MockIdp::start(), idp("us", &[]));
    fr.route(
        "GET",
        UI,
        MockResponse::json(200, json!({"sub": "jwt-user"})),
    );
    let gh = Gatehouse::start(
        BIN,
        &config(
            &echo,
            &fr,
            &us,
            None,
            "cache_ttl = \"1h\"\nstale_if_error = \"1h\"\ntimeout = \"3s\"",
        ),
    )
    .unwrap();
    // A JWT-shaped access token that expires in 2 s (the IdP vouches for it).
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let exp = gatehouse_testkit::tokens::now() + 2;
    let t = format!(
        "{}.{}.sig",
        b64(json!({"alg": "RS256"})),
        b64(json!({"sub": "jwt-user", "exp": exp}))
    );
    echoed(call(&gh, &t, Some("FR")).await).await;
    fr.set_down(true);
    // Served from the cache until exp; after it, the IdP's outage shows
    // (503), the cached answer is not served stale.
    let mut last = 200;
    let turned = eventually(Duration::from_secs(20), async || {
        last = call(&gh, &t, Some("FR")).await.status().as_u16();
        last != 200
    })
    .await;
    assert!(turned, "still served after exp");
    assert_eq!(last, 503);
    assert!(gatehouse_testkit::tokens::now() >= exp);
    assert_eq!(
        gh.metric(
            "gatehouse_userinfo_cache_requests_total",
            &[("result", "stale")]
        )
        .unwrap_or(0.0),
        0.0
    );
}
