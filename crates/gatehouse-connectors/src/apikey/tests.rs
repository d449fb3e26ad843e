#![allow(clippy::unwrap_used)]

use super::keys::{hash_line, KeyStore};
use super::settings::SignatureAlgorithm;
use super::*;
use http::{HeaderMap, HeaderValue, Method, Uri};
use std::path::Path;

/// A directory of its own per test, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("gh-apikey-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn write(&self, name: &str, body: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn build(section: &str) -> Result<Arc<dyn Connector>, ConfigErrors> {
    let settings: toml::Table = toml::from_str(section).unwrap();
    ApiKeyFactory::default()
        .build(BuildContext {
            name: "keys".into(),
            path: "connectors.keys".into(),
            settings,
            metrics: prometheus::Registry::new(),
            shared_caches: Default::default(),
        })
        .await
}

async fn check(
    c: &dyn Connector,
    uri: &str,
    headers: &[(&str, &str)],
    verified: Option<&Value>,
) -> Verdict {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let m = Method::GET;
    let u: Uri = uri.parse().unwrap();
    c.check(&RequestView {
        method: &m,
        uri: &u,
        headers: &h,
        client: None,
        request_id: "rid",
        peer_cert: None,
        verified,
    })
    .await
}

fn denied(v: &Verdict) -> (u16, Reason, String, Option<String>) {
    match v {
        Verdict::Deny(d) => (
            d.rejection.status.as_u16(),
            d.failure.reason,
            String::from_utf8_lossy(&d.rejection.body).into_owned(),
            d.rejection
                .headers
                .iter()
                .find(|(n, _)| n == "x-mashery-error-code")
                .map(|(_, v)| v.to_str().unwrap().to_string()),
        ),
        Verdict::Allow(_) => panic!("allowed"),
    }
}

fn allowed(v: Verdict) -> crate::HeaderEdits {
    match v {
        Verdict::Allow(e) => e,
        Verdict::Deny(d) => panic!("denied: {:?}", d.failure),
    }
}

const KEYS: &str = r#"
[[keys]]
{acme}
consumer = "acme"
plan = "gold"
attributes = { tier = "partner" }

[[keys]]
{off}
consumer = "offco"
plan = "free"
status = "disabled"

[[keys]]
{old}
consumer = "oldco"
expires = "2001-01-01T00:00:00Z"

[[keys]]
{later}
consumer = "later"
expires = "2999-01-01T00:00:00Z"
"#;

fn keys_file(d: &Dir) -> String {
    let body = KEYS
        .replace("{acme}", &hash_line("acme-key-0123456789"))
        .replace("{off}", &hash_line("off-key-0123456789"))
        .replace("{old}", &hash_line("old-key-0123456789"))
        .replace("{later}", &hash_line("later-key-0123456789"));
    d.write("keys.toml", &body)
}

#[tokio::test]
async fn keys_from_a_header_or_the_query_are_found_by_hash_and_stripped() {
    let d = Dir::new("basic");
    let f = keys_file(&d);
    let c = build(&format!(
        "keys_file = {f:?}\nkey_sources = [{{ header = \"X-Api-Key\" }}, {{ query = \"api_key\" }}]\n\
         [inject_headers]\n\"X-Consumer-Id\" = \"$.consumer\"\n\"X-Plan\" = \"$.plan\"\n\"X-Tier\" = \"$.attributes.tier\"\n"
    ))
    .await
    .unwrap();
    let e = allowed(
        check(
            c.as_ref(),
            "/a",
            &[("x-api-key", "acme-key-0123456789")],
            None,
        )
        .await,
    );
    let set: Vec<(String, String)> = e
        .set
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    assert!(
        set.contains(&("x-consumer-id".into(), "acme".into())),
        "{set:?}"
    );
    assert!(set.contains(&("x-plan".into(), "gold".into())), "{set:?}");
    assert!(
        set.contains(&("x-tier".into(), "partner".into())),
        "{set:?}"
    );
    assert!(e.remove.iter().any(|n| n == "x-api-key"), "{:?}", e.remove);
    assert_eq!(e.verified.as_deref().unwrap()["consumer"], "acme");
    assert!(e.verified.as_deref().unwrap().get("sha256").is_none());

    let e = allowed(check(c.as_ref(), "/a?x=1&api_key=acme-key-0123456789", &[], None).await);
    assert!(e.remove_query_params.contains(&"api_key".to_string()));
    let e = allowed(check(c.as_ref(), "/a?API%5FKEY=acme-key-0123456789", &[], None).await);
    assert!(e.remove_query_params.contains(&"api_key".to_string()));

    let (s, r, body, _) = denied(
        &check(
            c.as_ref(),
            "/a",
            &[("x-api-key", "nope-nope-nope-nope")],
            None,
        )
        .await,
    );
    assert_eq!((s, r), (403, Reason::UnknownKey), "{body}");
    assert!(body.contains("access_denied"), "{body}");
    let (s, r, _, _) = denied(&check(c.as_ref(), "/a", &[], None).await);
    assert_eq!((s, r), (401, Reason::MissingToken));
    match check(c.as_ref(), "/a", &[], None).await {
        Verdict::Deny(d) => assert!(
            !d.rejection
                .headers
                .iter()
                .any(|(n, _)| n == "www-authenticate"),
            "an API key refusal has no Bearer challenge"
        ),
        Verdict::Allow(_) => unreachable!(),
    }
}

#[tokio::test]
async fn two_carriers_or_duplicate_parameters_are_refused_with_400() {
    let d = Dir::new("dup");
    let f = keys_file(&d);
    let c = build(&format!(
        "keys_file = {f:?}\nkey_sources = [{{ header = \"X-Api-Key\" }}, {{ query = \"api_key\" }}]\n"
    ))
    .await
    .unwrap();
    let k = "acme-key-0123456789";
    for (uri, headers) in [
        (format!("/a?api_key={k}"), vec![("x-api-key", k)]),
        (format!("/a?api_key={k}&api_key={k}"), vec![]),
        (format!("/a?api_key={k}&Api.Key=other"), vec![]),
        ("/a".to_string(), vec![("x-api-key", k), ("x-api-key", k)]),
        ("/a".to_string(), vec![("x-api-key", k), ("x_api_key", k)]),
    ] {
        let (s, r, _, _) = denied(&check(c.as_ref(), &uri, &headers, None).await);
        assert_eq!((s, r), (400, Reason::AmbiguousToken), "{uri} {headers:?}");
    }
}

#[tokio::test]
async fn disabled_and_expired_keys_are_account_inactive_in_both_styles() {
    let d = Dir::new("inactive");
    let f = keys_file(&d);
    for style in ["rfc6750", "mashery"] {
        let c = build(&format!("keys_file = {f:?}\nerror_style = \"{style}\"\n"))
            .await
            .unwrap();
        for (key, reason) in [
            ("off-key-0123456789", Reason::KeyInactive),
            ("old-key-0123456789", Reason::Expired),
        ] {
            let (s, r, body, code) =
                denied(&check(c.as_ref(), "/", &[("x-api-key", key)], None).await);
            assert_eq!((s, r), (403, reason), "{style} {key}");
            if style == "mashery" {
                assert_eq!(code.as_deref(), Some(DEVELOPER_INACTIVE));
                assert!(body.contains("Account Inactive"), "{body}");
            }
        }
        allowed(
            check(
                c.as_ref(),
                "/",
                &[("x-api-key", "later-key-0123456789")],
                None,
            )
            .await,
        );
        let (_, _, body, code) = denied(
            &check(
                c.as_ref(),
                "/",
                &[("x-api-key", "unknown-0123456789")],
                None,
            )
            .await,
        );
        if style == "mashery" {
            assert_eq!(code.as_deref(), Some(NOT_AUTHORIZED));
            assert!(body.contains("Not Authorized"), "{body}");
        }
    }
}

#[tokio::test]
async fn signed_keys_verify_within_the_skew_and_the_signature_is_stripped() {
    let d = Dir::new("signed");
    let secret = d.write("acme.secret", "s3cret-value\n");
    let keys = d.write(
        "keys.toml",
        &format!(
            "[[keys]]\n{}\nconsumer = \"acme\"\nsecret_file = {secret:?}\n",
            hash_line("acme-key-0123456789")
        ),
    );
    let c = build(&format!(
        "keys_file = {keys:?}\nkey_sources = [{{ query = \"api_key\" }}]\nsignature = {{ query = \"sig\", max_skew = \"5m\" }}\n"
    ))
    .await
    .unwrap();
    let now = clock::now() as i64;
    let sig = |t: i64, secret: &[u8]| {
        signature::sign(
            SignatureAlgorithm::Sha256,
            b"acme-key-0123456789",
            secret,
            t,
        )
    };
    let uri = |s: &str| format!("/a?api_key=acme-key-0123456789&sig={s}");
    let e = allowed(check(c.as_ref(), &uri(&sig(now, b"s3cret-value")), &[], None).await);
    assert!(e.remove_query_params.contains(&"sig".to_string()));
    assert!(e.remove_query_params.contains(&"api_key".to_string()));
    allowed(
        check(
            c.as_ref(),
            &uri(&sig(now - 240, b"s3cret-value")),
            &[],
            None,
        )
        .await,
    );
    for bad in [
        sig(now - 900, b"s3cret-value"),
        sig(now + 900, b"s3cret-value"),
        sig(now, b"wrong"),
        "zz".to_string(),
    ] {
        let (s, r, _, _) = denied(&check(c.as_ref(), &uri(&bad), &[], None).await);
        assert_eq!((s, r), (403, Reason::BadSignature), "{bad}");
    }
    let (s, r, _, _) =
        denied(&check(c.as_ref(), "/a?api_key=acme-key-0123456789", &[], None).await);
    assert_eq!((s, r), (403, Reason::BadSignature));
    let two = format!(
        "{}&SIG={}",
        uri(&sig(now, b"s3cret-value")),
        sig(now, b"s3cret-value")
    );
    let (s, r, _, _) = denied(&check(c.as_ref(), &two, &[], None).await);
    assert_eq!((s, r), (400, Reason::AmbiguousToken));
}

#[tokio::test]
async fn a_key_can_come_from_a_claim_an_earlier_step_verified() {
    let d = Dir::new("claim");
    let f = keys_file(&d);
    let c = build(&format!(
        "keys_file = {f:?}\nkey_sources = [{{ claim = \"client_id\" }}]\n"
    ))
    .await
    .unwrap();
    let doc = serde_json::json!({"sub": "u", "client_id": "acme-key-0123456789"});
    let e = allowed(check(c.as_ref(), "/", &[], Some(&doc)).await);
    assert_eq!(e.verified.as_deref().unwrap()["plan"], "gold");
    let unknown = serde_json::json!({"client_id": "nope-0123456789"});
    assert_eq!(
        denied(&check(c.as_ref(), "/", &[], Some(&unknown)).await).1,
        Reason::UnknownKey
    );
    let none = serde_json::json!({"sub": "u"});
    assert_eq!(
        denied(&check(c.as_ref(), "/", &[], Some(&none)).await).1,
        Reason::MissingToken
    );
    assert_eq!(
        denied(&check(c.as_ref(), "/", &[], None).await).1,
        Reason::MissingToken
    );
    let number = serde_json::json!({"client_id": 7});
    assert_eq!(
        denied(&check(c.as_ref(), "/", &[], Some(&number)).await).1,
        Reason::Malformed
    );
    // A header is not a source of this connector: it is ignored, not read.
    let e = allowed(
        check(
            c.as_ref(),
            "/",
            &[("x-api-key", "off-key-0123456789")],
            Some(&doc),
        )
        .await,
    );
    assert_eq!(e.verified.as_deref().unwrap()["consumer"], "acme");
}

#[tokio::test]
async fn policy_and_required_claims_apply_to_the_key_document() {
    let d = Dir::new("policy");
    let f = keys_file(&d);
    let c = build(&format!(
        "keys_file = {f:?}\nrequired_claims = [\"plan\"]\n[[policy]]\nany = [{{ claim = \"plan\", op = \"equals\", values = [\"gold\"] }}]\n"
    ))
    .await;
    let c = match c {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    };
    allowed(
        check(
            c.as_ref(),
            "/",
            &[("x-api-key", "acme-key-0123456789")],
            None,
        )
        .await,
    );
    // "later" has no plan: required claim missing; 403 (a key is no token).
    let (s, r, _, _) = denied(
        &check(
            c.as_ref(),
            "/",
            &[("x-api-key", "later-key-0123456789")],
            None,
        )
        .await,
    );
    assert_eq!((s, r), (403, Reason::MissingClaim));
}

#[tokio::test]
async fn broken_keys_files_are_refused_with_every_line_named() {
    let d = Dir::new("broken");
    let good = hash_line("a-key-0123456789");
    let f = d.write(
        "keys.toml",
        &format!(
            "[[keys]]\n{good}\nconsumer = \"a\"\n\n[[keys]]\nsha256 = \"xyz\"\nconsumer = \"b\"\n\n[[keys]]\n{good}\nconsumer = \"c\"\nstatus = \"paused\"\nexpires = \"tomorrow\"\nsecret_file = \"/nonexistent/secret\"\n"
        ),
    );
    let errs = build(&format!("keys_file = {f:?}\n")).await.err().unwrap();
    let all: Vec<String> = errs
        .0
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect();
    let text = all.join("\n");
    assert!(
        text.contains("keys.toml:5: sha256 must be 64 hexadecimal digits"),
        "{text}"
    );
    assert!(text.contains("keys.toml:9: status \"paused\""), "{text}");
    assert!(text.contains("keys.toml:9: expires \"tomorrow\""), "{text}");
    assert!(
        text.contains("keys.toml:9: secret_file: cannot read /nonexistent/secret"),
        "{text}"
    );
    assert!(
        text.contains("keys.toml:9: the same key (sha256) as the entry at line 1"),
        "{text}"
    );
    assert!(
        all.iter()
            .all(|l| l.starts_with("connectors.keys.keys_file: ")),
        "{text}"
    );

    let f = d.write("syntax.toml", "[[keys]]\nsha256 = \"ab\nconsumer = 1\n");
    let errs = build(&format!("keys_file = {f:?}\n")).await.err().unwrap();
    assert!(
        errs.0[0]
            .message
            .contains("syntax.toml: TOML parse error at line 2"),
        "{:?}",
        errs.0
    );

    let errs = build("keys_file = \"/nonexistent/keys.toml\"\n")
        .await
        .err()
        .unwrap();
    assert!(
        errs.0[0]
            .message
            .contains("cannot read /nonexistent/keys.toml"),
        "{:?}",
        errs.0
    );
}

#[tokio::test]
async fn signed_connectors_warn_of_keys_without_a_secret_and_bad_settings_are_refused() {
    let d = Dir::new("settings");
    let f = keys_file(&d);
    let c = build(&format!(
        "keys_file = {f:?}\nsignature = {{ query = \"sig\" }}\n"
    ))
    .await
    .unwrap();
    let w = c.warnings().join("\n");
    assert!(
        w.contains("4 keys of") && w.contains("can never pass"),
        "{w}"
    );
    assert!(build(&format!("keys_file = {f:?}\n"))
        .await
        .unwrap()
        .warnings()
        .is_empty());
    for (extra, path) in [
        (
            "signature = { max_skew = \"2h\" }",
            "connectors.keys.signature.max_skew",
        ),
        (
            "key_sources = [{ header = \"X-A\", query = \"a\" }]",
            "connectors.keys.key_sources[0]",
        ),
        (
            "key_sources = [{ query = \"a\" }, { query = \"A\" }]",
            "connectors.keys.key_sources[1]",
        ),
        (
            "token_sources = [{ header = \"X-A\" }]",
            "connectors.keys.token_sources",
        ),
    ] {
        let errs = build(&format!("keys_file = {f:?}\n{extra}\n"))
            .await
            .err()
            .unwrap();
        assert!(
            errs.0.iter().any(|e| e.path == path),
            "{extra}: {:?}",
            errs.0
        );
    }
}

#[test]
fn a_hundred_thousand_keys_load_and_each_is_found() {
    let mut text = String::new();
    for i in 0..100_000 {
        text.push_str(&format!(
            "[[keys]]\n{}\nconsumer = \"c{i}\"\nplan = \"p{}\"\n\n",
            hash_line(&format!("key-{i}")),
            i % 7
        ));
    }
    let store = KeyStore::parse(Path::new("k.toml"), &text, &|_| Err("none".into())).unwrap();
    assert_eq!(store.len(), 100_000);
    assert_eq!(store.find(b"key-99999").unwrap().doc["consumer"], "c99999");
    assert!(store.find(b"key-100000").is_none());
}
