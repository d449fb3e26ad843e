use super::*;
use http::{HeaderMap, Method, Uri};

fn view<'a>(m: &'a Method, u: &'a Uri, h: &'a HeaderMap) -> RequestView<'a> {
    RequestView {
        method: m,
        uri: u,
        headers: h,
        client: None,
        request_id: "",
        peer_cert: None,
        verified: None,
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

fn found(t: &str, i: usize) -> Intake<'_> {
    Intake::Found(Cow::Borrowed(t), i)
}

fn src(header: Option<&str>, cookie: Option<&str>, query: Option<&str>) -> TokenSourceConfig {
    TokenSourceConfig {
        header: header.map(str::to_string),
        scheme: None,
        cookie: cookie.map(str::to_string),
        query: query.map(str::to_string),
    }
}

/// Runs intake over `sources` for a request with `uri` and `h`.
fn intake(sources: &[TokenSource], uri: &str, h: &HeaderMap) -> Intake<'static> {
    let (m, u) = (Method::GET, uri.parse::<Uri>().unwrap());
    match find_token(sources, &view(&m, &u, h)) {
        Intake::Found(t, i) => Intake::Found(Cow::Owned(t.into_owned()), i),
        Intake::Missing => Intake::Missing,
        Intake::Malformed(w) => Intake::Malformed(w),
        Intake::Ambiguous(w) => Intake::Ambiguous(w),
    }
}

fn is_ambiguous(i: &Intake<'_>) -> bool {
    matches!(i, Intake::Ambiguous(_))
}

#[test]
fn bearer_header() {
    let s = [TokenSource::bearer()];
    let h = headers(&[("authorization", "bearer abc.def.ghi")]);
    assert_eq!(intake(&s, "/", &h), found("abc.def.ghi", 0));
    let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(intake(&s, "/", &h), Intake::Missing);
    let h = headers(&[("authorization", "Bearer ")]);
    assert_eq!(intake(&s, "/", &h), Intake::Malformed("empty token"));
    let h = headers(&[("authorization", "Bearer a b")]);
    assert_eq!(
        intake(&s, "/", &h),
        Intake::Malformed("more than one token")
    );
    let h = HeaderMap::new();
    assert_eq!(intake(&s, "/", &h), Intake::Missing);
}

#[test]
fn two_credential_headers_are_ambiguous() {
    let s = [TokenSource::bearer()];
    for pairs in [
        &[("authorization", "Bearer a"), ("authorization", "Bearer b")][..],
        &[("authorization", "Bearer a"), ("authorization", "Basic b")][..],
        &[("authorization", "Bearer a, Bearer b")][..],
        &[("authorization", "Bearer a,b")][..],
    ] {
        let h = headers(pairs);
        assert!(is_ambiguous(&intake(&s, "/", &h)), "{pairs:?}");
    }
}

#[test]
fn two_token_cookies_are_ambiguous() {
    let s = TokenSource::compile_all("p", &[src(None, Some("at"), None)]).unwrap();
    let h = headers(&[("cookie", "a=1; at=c.c.c; b=2")]);
    assert_eq!(intake(&s, "/", &h), found("c.c.c", 0));
    let h = headers(&[("cookie", "at=\"q.q.q\"")]);
    assert_eq!(intake(&s, "/", &h), found("q.q.q", 0));
    for cookies in [
        &[("cookie", "at=a.a.a; at=b.b.b")][..],
        &[("cookie", "at=a.a.a"), ("cookie", "at=b.b.b")][..],
        &[("cookie", "x=1, at=b.b.b; at=a.a.a")][..],
        &[("cookie", "at=a.a.a; AT=b.b.b")][..],
        &[("cookie", "at=a.a.a; a%74=b.b.b")][..],
        &[("cookie", "at=a.a.a; at=")][..],
    ] {
        let h = headers(cookies);
        assert!(is_ambiguous(&intake(&s, "/", &h)), "{cookies:?}");
    }
    for (cookie, why) in [
        ("at=\"a.a.a", "token cookie has an unbalanced quote"),
        ("at=", "empty token"),
        (
            "at=a\\b",
            "token cookie holds characters a cookie value cannot",
        ),
    ] {
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_str(cookie).unwrap());
        assert_eq!(intake(&s, "/", &h), Intake::Malformed(why), "{cookie}");
    }
    // A header that is not UTF-8 is still searched.
    let mut h = HeaderMap::new();
    h.append(
        "cookie",
        HeaderValue::from_bytes(b"x=\xff; at=a.a.a; at=b.b.b").unwrap(),
    );
    assert!(is_ambiguous(&intake(&s, "/", &h)));
    let mut h = HeaderMap::new();
    h.append(
        "cookie",
        HeaderValue::from_bytes(b"x=\xff; at=a.a.a").unwrap(),
    );
    assert_eq!(intake(&s, "/", &h), found("a.a.a", 0));
}

#[test]
fn query_names_and_values_are_percent_decoded() {
    let s = TokenSource::compile_all("p", &[src(None, None, Some("access_token"))]).unwrap();
    let h = HeaderMap::new();
    assert_eq!(intake(&s, "/?access_token=a.b.c", &h), found("a.b.c", 0));
    assert_eq!(intake(&s, "/?access%5Ftoken=a.b.c", &h), found("a.b.c", 0));
    assert_eq!(
        intake(&s, "/?x=1&access%5ftoken=a%2Eb.c", &h),
        found("a.b.c", 0)
    );
    assert_eq!(intake(&s, "/?ACCESS_TOKEN=a.b.c", &h), found("a.b.c", 0));
    // Names as PHP reads them; `+` in a value stays a `+`.
    assert_eq!(intake(&s, "/?access+token=a.b.c", &h), found("a.b.c", 0));
    assert_eq!(intake(&s, "/?access.token=a.b.c", &h), found("a.b.c", 0));
    assert_eq!(intake(&s, "/?access%20token=a.b.c", &h), found("a.b.c", 0));
    assert_eq!(intake(&s, "/?accesstoken=a.b.c", &h), Intake::Missing);
    assert_eq!(intake(&s, "/?access_token=a+b", &h), found("a+b", 0));
    for q in [
        "/?access_token=a.a.a&access%5Ftoken=b.b.b",
        "/?access_token=a.a.a&access_token=b.b.b",
        "/?x=1;access_token=b.b.b&access_token=a.a.a",
        "/?x=1;access_token=b.b.b",
        "/?access_token=a.a.a&access.token=b.b.b",
        "/?access_token=a.a.a&access+token=b.b.b",
    ] {
        assert!(is_ambiguous(&intake(&s, q, &h)), "{q}");
    }
    for (q, why) in [
        ("/?access_token=", "empty token"),
        ("/?access_token", "empty token"),
        (
            "/?access_token=%zz",
            "token parameter is not valid percent-encoded UTF-8",
        ),
        (
            "/?access_token=%FF",
            "token parameter is not valid percent-encoded UTF-8",
        ),
        ("/?access_token=a%20b", "more than one token"),
    ] {
        assert_eq!(intake(&s, q, &h), Intake::Malformed(why), "{q}");
    }
    // A malformed escape in a name matches nothing.
    assert_eq!(intake(&s, "/?access%5token=a", &h), Intake::Missing);
}

#[test]
fn name_matching_helpers() {
    assert!(name_matches("access_token", "access_token"));
    assert!(name_matches("access%5Ftoken", "access_token"));
    assert!(name_matches("%61ccess_token", "access_token"));
    assert!(name_matches("Access_Token", "access_token"));
    // PHP cuts a name at NUL, drops leading spaces (`+` is one) and reads
    // `name[...]` as an array called `name`.
    assert!(name_matches("access%5Ftoken%00", "access_token"));
    assert!(name_matches("access_token%00junk", "access_token"));
    assert!(name_matches("+access_token", "access_token"));
    assert!(name_matches("%20access_token", "access_token"));
    assert!(name_matches("access_token[]", "access_token"));
    assert!(name_matches("access_token[x]", "access_token"));
    assert!(!name_matches("%00access_token", "access_token"));
    assert!(!name_matches("x[access_token]", "access_token"));
    assert!(name_matches("access+token", "access_token"));
    assert!(name_matches("access[token", "access_token"));
    assert!(!name_matches("access-token", "access_token"));
    assert!(!name_matches("access_toke", "access_token"));
    assert!(!name_matches("access%2", "access_token"));
    assert!(query_pair_matches("access%5Ftoken=x", "access_token"));
    assert!(query_pair_matches("access_token", "access_token"));
    assert!(query_pair_matches("x=1;access_token=y", "access_token"));
    assert!(!query_pair_matches("x=access_token", "access_token"));
    assert_eq!(percent_decode("a%41%2b+").as_deref(), Some("aA++"));
    assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    assert_eq!(percent_decode("%C3"), None);
    assert_eq!(percent_decode("%"), None);
}

#[test]
fn a_token_in_two_sources_is_ambiguous() {
    let cfg = [
        src(Some("X-Token"), None, None),
        src(None, Some("at"), None),
        src(None, None, Some("access_token")),
    ];
    let s = TokenSource::compile_all("c.token_sources", &cfg).unwrap();
    let h = headers(&[("cookie", "a=1; at=c.c.c; b=2")]);
    assert_eq!(intake(&s, "/a?x=1", &h), found("c.c.c", 1));
    assert!(is_ambiguous(&intake(&s, "/a?access_token=q.q.q", &h)));
    let h = headers(&[("x-token", "h.h.h"), ("cookie", "at=c.c.c")]);
    assert!(is_ambiguous(&intake(&s, "/", &h)));
    let h = headers(&[("x-token", "h.h.h")]);
    assert_eq!(intake(&s, "/", &h), found("h.h.h", 0));
    assert!(is_ambiguous(&intake(&s, "/?access_token=q", &h)));
    // A malformed carrier next to a good one is still two carriers.
    let h = headers(&[("x-token", "h.h.h")]);
    assert!(is_ambiguous(&intake(&s, "/?access_token=", &h)));
    let h = HeaderMap::new();
    assert_eq!(intake(&s, "/?access_token=q.q.q", &h), found("q.q.q", 2));
    // Another scheme in Authorization is not a carrier.
    let s = TokenSource::compile_all(
        "p",
        &[
            TokenSourceConfig {
                header: Some("Authorization".into()),
                ..src(None, None, None)
            },
            src(None, Some("at"), None),
        ],
    )
    .unwrap();
    let h = headers(&[("authorization", "Basic dXNlcjpwYXNz"), ("cookie", "at=c")]);
    assert_eq!(intake(&s, "/", &h), found("c", 1));
}

#[test]
fn carrier_edits_remove_the_carrier() {
    let cfg = [
        src(Some("X-Token"), None, None),
        src(None, Some("at"), None),
        src(None, None, Some("access_token")),
    ];
    let s = TokenSource::compile_all("c.token_sources", &cfg).unwrap();
    let (m, u) = (Method::GET, Uri::from_static("/a?access_token=q"));
    let h = headers(&[("cookie", "a=1; at=c.c.c; b=2")]);
    let e = carrier_edits(&s[1], &view(&m, &u, &h), false);
    assert_eq!(e.set[0].1, "a=1; b=2");
    assert!(carrier_edits(&s[1], &view(&m, &u, &h), true).is_empty());
    let h = headers(&[("cookie", "x=1, AT=c.c.c; b=2")]);
    let e = carrier_edits(&s[1], &view(&m, &u, &h), false);
    assert_eq!(e.set[0].1, "x=1; b=2");
    let h = headers(&[("cookie", "at=c.c.c")]);
    let e = carrier_edits(&s[1], &view(&m, &u, &h), false);
    assert_eq!(e.remove, [http::header::COOKIE]);
    assert_eq!(
        carrier_edits(&s[2], &view(&m, &u, &h), true).remove_query_params,
        ["access_token"]
    );
    assert_eq!(
        carrier_edits(&s[0], &view(&m, &u, &h), false).remove,
        [HeaderName::from_static("x-token")]
    );
}

#[test]
fn source_config_errors() {
    let bad = src(Some("a"), Some("b"), None);
    assert_eq!(
        TokenSource::compile_all("p", &[bad]).unwrap_err().path,
        "p[0]"
    );
    let bad = src(Some("bad header"), None, None);
    assert_eq!(
        TokenSource::compile_all("p", &[bad]).unwrap_err().path,
        "p[0].header"
    );
    for (c, q, path) in [
        (Some("a%74"), None, "p[0].cookie"),
        (Some(""), None, "p[0].cookie"),
        (Some("a b"), None, "p[0].cookie"),
        (None, Some("access token"), "p[0].query"),
        (None, Some("a+b"), "p[0].query"),
        (None, Some("a%5Fb"), "p[0].query"),
    ] {
        assert_eq!(
            TokenSource::compile_all("p", &[src(None, c, q)])
                .unwrap_err()
                .path,
            path
        );
    }
    let dup = [src(None, None, Some("t")), src(None, None, Some("T"))];
    assert_eq!(
        TokenSource::compile_all("p", &dup).unwrap_err().path,
        "p[1]"
    );
    let dup = [src(Some("X-T"), None, None), src(Some("x-t"), None, None)];
    assert_eq!(
        TokenSource::compile_all("p", &dup).unwrap_err().path,
        "p[1]"
    );
}

#[test]
fn underscore_and_dot_twins_of_a_token_header_are_the_same_carrier() {
    // Issue 21: CGI, WSGI and PHP read `X_Auth_Token` as `X-Auth-Token`.
    let s = TokenSource::compile_all("p", &[src(Some("X-Auth-Token"), None, None)]).unwrap();
    for twin in ["x_auth_token", "x.auth.token", "xauthtoken", "x-auth_token"] {
        let mut h = headers(&[("x-auth-token", "good.good.good")]);
        h.append(
            HeaderName::from_bytes(twin.as_bytes()).unwrap(),
            HeaderValue::from_static("forged.forged.forged"),
        );
        assert!(is_ambiguous(&intake(&s, "/", &h)), "{twin}");
        // The twin alone is the carrier (and is what the upstream would read).
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_bytes(twin.as_bytes()).unwrap(),
            HeaderValue::from_static("t.t.t"),
        );
        assert_eq!(intake(&s, "/", &h), found("t.t.t", 0), "{twin}");
    }
    let h = headers(&[("x-auth-tokens", "t.t.t")]);
    assert_eq!(intake(&s, "/", &h), Intake::Missing, "another name");
    // Twins listed in the config are one carrier, listed twice.
    let e = TokenSource::compile_all(
        "p",
        &[
            src(Some("X-Auth-Token"), None, None),
            src(Some("X_AUTH_TOKEN"), None, None),
        ],
    )
    .unwrap_err();
    assert_eq!(e.path, "p[1]");
    assert!(TokenSource::compile_all("p", &[src(Some("-"), None, None)]).is_err());
}

#[test]
fn every_spelling_of_a_stripped_header_carrier_is_removed() {
    let s = TokenSource::compile_all("p", &[src(Some("X-Auth-Token"), None, None)]).unwrap();
    let mut h = headers(&[("x-auth-token", "t.t.t")]);
    h.append("x_auth_token", HeaderValue::from_static("u"));
    h.append("x.auth.token", HeaderValue::from_static("v"));
    let (m, u) = (Method::GET, Uri::from_static("/"));
    let e = carrier_edits(&s[0], &view(&m, &u, &h), false);
    let mut removed: Vec<&str> = e.remove.iter().map(HeaderName::as_str).collect();
    removed.sort_unstable();
    assert_eq!(removed, ["x-auth-token", "x.auth.token", "x_auth_token"]);
    assert!(carrier_edits(&s[0], &view(&m, &u, &h), true).is_empty());
}

#[test]
fn a_groups_union_finds_tokens_in_two_members_carriers() {
    let cookie = TokenSource::compile_all("p", &[src(None, Some("at"), None)]).unwrap();
    let union: Vec<TokenSource> = cookie
        .iter()
        .cloned()
        .chain([TokenSource::bearer()])
        .collect();
    let (m, u) = (Method::GET, Uri::from_static("/"));
    let h = headers(&[("authorization", "Bearer b.b.b"), ("cookie", "at=forged")]);
    assert!(is_ambiguous(&union_intake(&union, &view(&m, &u, &h))));
    let h = headers(&[("authorization", "Bearer b.b.b"), ("cookie", "theme=dark")]);
    assert_eq!(union_intake(&union, &view(&m, &u, &h)), Intake::Missing);
    let h = headers(&[("authorization", "Basic dXNlcjpwYXNz"), ("cookie", "at=c")]);
    assert_eq!(
        union_intake(&union, &view(&m, &u, &h)),
        Intake::Missing,
        "another scheme is not a carrier"
    );
    // One header read bare by one member and with `Bearer` by another is
    // one carrier.
    let bare = TokenSource::Header {
        name: http::header::AUTHORIZATION,
        scheme: None,
    };
    let union = [TokenSource::bearer(), bare];
    let h = headers(&[("authorization", "Bearer b.b.b")]);
    assert_eq!(union_intake(&union, &view(&m, &u, &h)), Intake::Missing);
}

#[test]
fn stripping_two_cookie_carriers_removes_both() {
    let s = TokenSource::compile_all(
        "p",
        &[src(None, Some("at"), None), src(None, Some("sid"), None)],
    )
    .unwrap();
    let h = headers(&[("cookie", "at=a; theme=dark; sid=s")]);
    let (m, u) = (Method::GET, Uri::from_static("/"));
    let req = view(&m, &u, &h);
    // Made apart and merged, as a chain does.
    let mut e = carrier_edits(&s[0], &req, false);
    e.merge(carrier_edits(&s[1], &req, false));
    e.settle_cookies(&h);
    let cookies: Vec<&HeaderValue> = e
        .set
        .iter()
        .filter(|(n, _)| n == http::header::COOKIE)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(cookies, [&HeaderValue::from_static("theme=dark")]);
}
