//! Claims: time claims at their boundaries, issuer, audience and required
//! claims, a policy denial.

use super::*;

#[tokio::test]
async fn time_claims_at_their_boundaries() {
    let k = TestKey::rsa(1);
    let b = build(&inline(
        &[(&k, "k1")],
        "\"RS256\"",
        "leeway = \"30s\"\ntoken_cache_size = 0",
    ))
    .await
    .unwrap();
    let n = now();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good();
        c["iat"] = json!(n - 100);
        c["nbf"] = json!(n - 100);
        f(&mut c);
        k.mint(&c, Some("k1"))
    };
    assert_reason(
        &check(&*b.c, &with(&|c| c["exp"] = json!(n - 31))).await,
        Reason::Expired,
        401,
    );
    assert_allowed(&check(&*b.c, &with(&|c| c["exp"] = json!(n - 25))).await);
    assert_reason(
        &check(&*b.c, &with(&|c| c["nbf"] = json!(n + 35))).await,
        Reason::NotYetValid,
        401,
    );
    assert_allowed(&check(&*b.c, &with(&|c| c["nbf"] = json!(n + 25))).await);
    assert_reason(
        &check(
            &*b.c,
            &with(&|c| {
                c["iat"] = json!(n + 40);
                c["nbf"] = json!(n)
            }),
        )
        .await,
        Reason::IssuedInFuture,
        401,
    );
    assert_allowed(&check(&*b.c, &with(&|c| c["iat"] = json!(n + 20))).await);
    assert_reason(
        &check(
            &*b.c,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        )
        .await,
        Reason::MissingClaim,
        401,
    );
    assert_reason(
        &check(&*b.c, &with(&|c| c["exp"] = json!("soon"))).await,
        Reason::Malformed,
        401,
    );

    // exp optional; max_token_age from iat.
    let b = build(&inline(
        &[(&k, "k1")],
        "\"RS256\"",
        "leeway = \"0s\"\nrequire_exp = false\nmax_token_age = \"5m\"\ntoken_cache_size = 0",
    ))
    .await
    .unwrap();
    assert_allowed(
        &check(
            &*b.c,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
                c["iat"] = json!(n - 200)
            }),
        )
        .await,
    );
    assert_reason(
        &check(
            &*b.c,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
                c["iat"] = json!(n - 301);
                c["nbf"] = json!(n - 301)
            }),
        )
        .await,
        Reason::TooOld,
        401,
    );
    assert_reason(
        &check(
            &*b.c,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
        )
        .await,
        Reason::MissingClaim,
        401,
    );
}

#[tokio::test]
async fn issuer_audience_and_required_claims() {
    let k = TestKey::rsa(1);
    let b = build(&inline(
        &[(&k, "k1")],
        "\"RS256\"",
        "required_claims = [\"tenant\"]\ntoken_cache_size = 0",
    ))
    .await
    .unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good();
        c["tenant"] = json!("t1");
        f(&mut c);
        k.mint(&c, Some("k1"))
    };
    assert_allowed(&check(&*b.c, &with(&|_| {})).await);
    assert_allowed(&check(&*b.c, &with(&|c| c["aud"] = json!(["other", AUD]))).await);
    assert_reason(
        &check(&*b.c, &with(&|c| c["aud"] = json!(["other", "x"]))).await,
        Reason::AudienceNotAllowed,
        401,
    );
    assert_reason(
        &check(&*b.c, &with(&|c| c["aud"] = json!("other"))).await,
        Reason::AudienceNotAllowed,
        401,
    );
    assert_reason(
        &check(
            &*b.c,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        )
        .await,
        Reason::AudienceNotAllowed,
        401,
    );
    assert_reason(
        &check(&*b.c, &with(&|c| c["iss"] = json!("https://evil.test"))).await,
        Reason::IssuerNotAllowed,
        401,
    );
    assert_reason(
        &check(&*b.c, &with(&|c| c["iss"] = json!("https://IDP.test"))).await,
        Reason::IssuerNotAllowed,
        401,
    );
    assert_reason(
        &check(
            &*b.c,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("tenant");
            }),
        )
        .await,
        Reason::MissingClaim,
        401,
    );
}

#[tokio::test]
async fn policy_denial_is_403_insufficient_scope() {
    let k = TestKey::rsa(1);
    let extra = "[[policy]]\nany = [{ claim = \"roles\", op = \"contains_any\", values = [\"admin\"] }, { claim = \"scope\", op = \"contains_all\", values = [\"a\", \"b\"] }]";
    let b = build(&inline(&[(&k, "k1")], "\"RS256\"", extra))
        .await
        .unwrap();
    let mut c = good();
    c["roles"] = json!(["reader"]);
    let v = check(&*b.c, &k.mint(&c, Some("k1"))).await;
    assert_reason(&v, Reason::PolicyDenied, 403);
    assert!(denied(&v).unwrap().headers[0]
        .1
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    c["scope"] = json!("b a c");
    assert_allowed(&check(&*b.c, &k.mint(&c, Some("k1"))).await);
    let e = build(&inline(
        &[(&k, "k1")],
        "\"RS256\"",
        "[[policy]]\nany = [{ claim = \"$[\", op = \"exists\" }]",
    ))
    .await
    .err()
    .unwrap();
    assert_eq!(e.path, "connectors.t.policy[0].any[0].claim");
}
