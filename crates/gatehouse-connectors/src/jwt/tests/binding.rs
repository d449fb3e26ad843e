//! RFC 8705 certificate-bound tokens (`require_certificate_binding`) and
//! client-certificate headers, without a TLS listener: the connection's
//! certificate is given to the connector as the proxy gives it.

use super::*;
use crate::PeerCertificate;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn cert(thumbprint: &str) -> PeerCertificate {
    PeerCertificate {
        thumbprint: thumbprint.into(),
        subject: "CN=svc-a,O=Example".into(),
        sans: vec!["svc-a.test".into()],
    }
}

fn key() -> TestKey {
    TestKey::hmac(SECRET.as_bytes())
}

async fn bound_connector(extra: &str) -> Built {
    build(&format!(
        "secret = \"{SECRET}\"\nalgorithms = [\"HS256\"]\nissuers = [\"{ISS}\"]\naudiences = [\"{AUD}\"]\n\
         require_certificate_binding = true\n{extra}"
    ))
    .await
    .unwrap()
}

fn bound_token(thumbprint: Option<&str>) -> String {
    let mut c = good();
    if let Some(t) = thumbprint {
        c["cnf"] = json!({ "x5t#S256": t });
    }
    key().mint(&c, None)
}

async fn check_on(c: &dyn Connector, token: &str, peer: Option<&PeerCertificate>) -> Verdict {
    let (m, u) = (Method::GET, Uri::from_static("/"));
    let mut h = HeaderMap::new();
    h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    c.check(&RequestView {
        method: &m,
        uri: &u,
        headers: &h,
        client: None,
        request_id: "rid",
        peer_cert: peer,
        verified: None,
    })
    .await
}

#[tokio::test]
async fn a_bound_token_passes_only_with_its_certificate() {
    let b = bound_connector("").await;
    let (mine, other) = (cert("thumb-A"), cert("thumb-B"));
    let t = bound_token(Some("thumb-A"));
    assert_allowed(&check_on(&*b.c, &t, Some(&mine)).await);
    for peer in [Some(&other), None] {
        let v = check_on(&*b.c, &t, peer).await;
        assert_reason(&v, Reason::CertificateMismatch, 401);
        let www = denied(&v).unwrap().headers[0]
            .1
            .to_str()
            .unwrap()
            .to_string();
        assert!(www.contains("invalid_token"), "{www}");
    }
    // An unbound token is refused even with a certificate.
    let v = check_on(&*b.c, &bound_token(None), Some(&mine)).await;
    assert_reason(&v, Reason::CertificateMismatch, 401);
    // A cnf that is not a string never matches.
    let mut c = good();
    c["cnf"] = json!({ "x5t#S256": ["thumb-A"] });
    let v = check_on(&*b.c, &key().mint(&c, None), Some(&mine)).await;
    assert_reason(&v, Reason::CertificateMismatch, 401);
}

#[tokio::test]
async fn the_binding_is_checked_on_cache_hits() {
    let b = bound_connector("").await;
    let t = bound_token(Some("thumb-A"));
    assert_allowed(&check_on(&*b.c, &t, Some(&cert("thumb-A"))).await);
    let hits = metric(
        &b.metrics,
        "gatehouse_token_cache_requests_total",
        &[("result", "hit")],
    );
    // Same token, now cached, on a connection with another certificate.
    let v = check_on(&*b.c, &t, Some(&cert("thumb-B"))).await;
    assert_reason(&v, Reason::CertificateMismatch, 401);
    assert_eq!(
        metric(
            &b.metrics,
            "gatehouse_token_cache_requests_total",
            &[("result", "hit")]
        ),
        hits + 1.0,
        "the refusal came from a cache hit"
    );
    // And the right certificate still passes afterwards.
    assert_allowed(&check_on(&*b.c, &t, Some(&cert("thumb-A"))).await);
}

#[tokio::test]
async fn without_binding_cnf_is_ignored_and_no_certificate_is_needed() {
    let b = build(&format!(
        "secret = \"{SECRET}\"\nalgorithms = [\"HS256\"]\nissuers = [\"{ISS}\"]\naudiences = [\"{AUD}\"]"
    ))
    .await
    .unwrap();
    assert!(!b.c.needs_client_certificate());
    assert_allowed(&check_on(&*b.c, &bound_token(Some("thumb-A")), None).await);
    assert!(bound_connector("").await.c.needs_client_certificate());
}

#[tokio::test]
async fn a_missing_token_is_still_reported_as_missing() {
    let b = bound_connector("").await;
    let (m, u, h) = (Method::GET, Uri::from_static("/"), HeaderMap::new());
    let v =
        b.c.check(&RequestView {
            method: &m,
            uri: &u,
            headers: &h,
            client: None,
            request_id: "rid",
            peer_cert: None,
            verified: None,
        })
        .await;
    assert_reason(&v, Reason::MissingToken, 401);
}

#[tokio::test]
async fn certificate_headers_are_injected_per_connection() {
    let b = bound_connector(
        "[inject_headers]\n\"X-User\" = \"sub\"\n\"X-Client-Subject\" = { certificate = \"subject\" }\n\
         \"X-Client-Thumbprint\" = { certificate = \"thumbprint\" }\n\"X-Client-San\" = { certificate = \"san\" }",
    )
    .await;
    let names: Vec<&str> = b.c.injected_headers().iter().map(|h| h.as_str()).collect();
    for h in ["x-client-subject", "x-client-thumbprint", "x-client-san"] {
        assert!(
            names.contains(&h),
            "{h} is stripped from clients: {names:?}"
        );
    }
    let t = bound_token(Some("thumb-A"));
    for _ in 0..2 {
        // The second pass is a cache hit: certificate headers still come from the connection.
        let v = check_on(&*b.c, &t, Some(&cert("thumb-A"))).await;
        let set: Vec<(String, String)> = assert_allowed(&v)
            .set
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        for want in [
            ("x-user", "user-1"),
            ("x-client-subject", "CN=svc-a,O=Example"),
            ("x-client-thumbprint", "thumb-A"),
            ("x-client-san", "svc-a.test"),
        ] {
            assert!(
                set.contains(&(want.0.to_string(), want.1.to_string())),
                "{want:?} in {set:?}"
            );
        }
    }
}
