//! Issue 21: only access tokens pass — `typ` against `token_types`, and ID
//! tokens refused unless `accept_id_tokens`.

use super::*;

fn key() -> TestKey {
    TestKey::rsa(1)
}

fn config(extra: &str) -> String {
    inline(&[(&key(), "k1")], "\"RS256\"", extra)
}

fn with_typ(typ: Option<&str>, claims: &Value) -> String {
    let mut h = json!({"alg": "RS256", "kid": "k1"});
    if let Some(t) = typ {
        h["typ"] = json!(t);
    }
    key().mint_with_header(&h, claims)
}

#[tokio::test]
async fn only_access_token_types_pass_by_default() {
    let b = build(&config("")).await.unwrap();
    for ok in [
        None,
        Some("at+jwt"),
        Some("application/at+JWT"),
        Some("JWT"),
        Some("jwt"),
    ] {
        assert_allowed(&check(&*b.c, &with_typ(ok, &good())).await);
    }
    for bad in ["logout+jwt", "dpop+jwt", "secevent+jwt", "id_token", ""] {
        assert_reason(
            &check(&*b.c, &with_typ(Some(bad), &good())).await,
            Reason::TokenTypeNotAllowed,
            401,
        );
    }
    // A typ that is not a string is no accepted type either.
    let t = key().mint_with_header(&json!({"alg": "RS256", "kid": "k1", "typ": 1}), &good());
    assert_reason(&check(&*b.c, &t).await, Reason::TokenTypeNotAllowed, 401);
}

#[tokio::test]
async fn token_types_narrow_what_passes() {
    let b = build(&config("token_types = [\"at+jwt\"]")).await.unwrap();
    assert_allowed(&check(&*b.c, &with_typ(Some("AT+JWT"), &good())).await);
    assert_allowed(&check(&*b.c, &with_typ(None, &good())).await);
    assert_reason(
        &check(&*b.c, &with_typ(Some("JWT"), &good())).await,
        Reason::TokenTypeNotAllowed,
        401,
    );
    let e = build(&config("token_types = []")).await.err().unwrap();
    assert_eq!(e.path, "connectors.t.token_types");
    let e = build(&config("token_types = [\"at jwt\"]"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.path, "connectors.t.token_types[0]");
}

#[tokio::test]
async fn id_tokens_are_refused_unless_accepted() {
    let b = build(&config("")).await.unwrap();
    for claim in ["nonce", "at_hash", "c_hash"] {
        let mut c = good();
        c[claim] = json!("x");
        let t = with_typ(Some("JWT"), &c);
        assert_reason(&check(&*b.c, &t).await, Reason::IdToken, 401);
        let open = build(&config("accept_id_tokens = true")).await.unwrap();
        assert_allowed(&check(&*open.c, &t).await);
    }
}

#[tokio::test]
async fn check_warns_about_a_connector_that_takes_any_jwt() {
    let no_aud = format!(
        "jwks = '''{}'''\nalgorithms = [\"RS256\"]\n",
        jwks(&[(&key(), "k1")])
    );
    let b = build(&no_aud).await.unwrap();
    let w = b.c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("neither `audiences` nor `token_types`"),
        "{}",
        w[0]
    );
    let narrow = format!("{no_aud}token_types = [\"at+jwt\", \"application/at+jwt\"]\n");
    assert!(build(&narrow).await.unwrap().c.warnings().is_empty());
    assert!(build(&config("")).await.unwrap().c.warnings().is_empty());
    let w = build(&config("accept_id_tokens = true"))
        .await
        .unwrap()
        .c
        .warnings();
    assert!(w[0].contains("accept_id_tokens"), "{w:?}");
}
