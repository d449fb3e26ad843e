use super::*;
use crate::{HeaderEdits, Rejection};
use gatehouse_testkit::jwks;
use gatehouse_testkit::tokens::{
    claims, exp_in, now, time_until_past, unsigned_none_token, TestKey,
};
use http::{HeaderMap, Method, Uri};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

const ISS: &str = "https://idp.test";
const AUD: &str = "api";

struct Built {
    c: Arc<dyn Connector>,
    metrics: prometheus::Registry,
}

async fn build(body: &str) -> Result<Built, ConfigError> {
    let settings: toml::Table = toml::from_str(body).expect("test TOML");
    let metrics = prometheus::Registry::new();
    let c = JwtFactory::default()
        .build(BuildContext {
            name: "t".into(),
            path: "connectors.t".into(),
            settings,
            metrics: metrics.clone(),
            shared_caches: Default::default(),
        })
        .await
        .map_err(|mut e| e.0.remove(0))?;
    Ok(Built { c, metrics })
}

fn inline(keys: &[(&TestKey, &str)], algs: &str, extra: &str) -> String {
    format!("jwks = '''{}'''\nalgorithms = [{algs}]\nissuers = [\"{ISS}\"]\naudiences = [\"{AUD}\"]\n{extra}", jwks(keys))
}

async fn check_with(c: &dyn Connector, headers: HeaderMap, uri: &str) -> Verdict {
    let (m, u) = (Method::GET, uri.parse::<Uri>().unwrap());
    c.check(&RequestView {
        method: &m,
        uri: &u,
        headers: &headers,
        client: None,
        request_id: "rid",
        peer_cert: None,
        verified: None,
    })
    .await
}

async fn check(c: &dyn Connector, token: &str) -> Verdict {
    let mut h = HeaderMap::new();
    h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    check_with(c, h, "/").await
}

fn denied(v: &Verdict) -> Option<&Rejection> {
    match v {
        Verdict::Deny(d) => {
            assert_eq!(d.failure.reason, d.rejection.reason, "{d:?}");
            Some(&d.rejection)
        }
        Verdict::Allow(_) => None,
    }
}

#[track_caller]
fn assert_reason(v: &Verdict, reason: Reason, status: u16) {
    let r = denied(v).unwrap_or_else(|| panic!("expected a denial ({reason}), got {v:?}"));
    assert_eq!((r.reason, r.status.as_u16()), (reason, status), "{r:?}");
}

#[track_caller]
fn assert_allowed(v: &Verdict) -> &HeaderEdits {
    match v {
        Verdict::Allow(e) => e,
        Verdict::Deny(d) => panic!(
            "expected allow, got {} {}: {}",
            d.rejection.status, d.rejection.reason, d.failure.description
        ),
    }
}

fn metric(r: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    r.gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })
        .map(|m| {
            if m.get_counter().is_some() {
                m.get_counter().value()
            } else {
                m.get_gauge().value()
            }
        })
        .sum()
}

fn good() -> Value {
    claims("user-1", ISS, AUD, 600)
}

#[tokio::test]
async fn identity_headers_and_carriers() {
    let k = TestKey::rsa(1);
    let extra = "forward_authorization = false\nforward_claims_header = \"X-Jwt-Claims\"\n[inject_headers]\n\"X-User-Id\" = \"sub\"\n\"X-Region\" = \"$.org.region\"\n\"X-Roles\" = \"roles\"\n\"X-Tenant\" = { claim = \"tenant\", required = true }";
    let b = build(&inline(&[(&k, "k1")], "\"RS256\"", extra))
        .await
        .unwrap();
    let names: Vec<&str> = b.c.injected_headers().iter().map(|h| h.as_str()).collect();
    assert_eq!(
        names,
        [
            "x-region",
            "x-roles",
            "x-tenant",
            "x-user-id",
            "x-jwt-claims"
        ]
    );
    let mut c = good();
    c["org"] = json!({"region": "eu"});
    c["roles"] = json!(["a", "b"]);
    c["tenant"] = json!(7);
    let v = check(&*b.c, &k.mint(&c, Some("k1"))).await;
    let e = assert_allowed(&v);
    let get = |n: &str| {
        e.set
            .iter()
            .find(|(h, _)| h == n)
            .map(|(_, v)| v.to_str().unwrap().to_string())
    };
    assert_eq!(get("x-user-id").as_deref(), Some("user-1"));
    assert_eq!(get("x-region").as_deref(), Some("eu"));
    assert_eq!(get("x-roles").as_deref(), Some("a,b"));
    assert_eq!(get("x-tenant").as_deref(), Some("7"));
    let forwarded: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(get("x-jwt-claims").unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(forwarded["sub"], "user-1");
    assert_eq!(e.remove, [http::header::AUTHORIZATION]);

    c["sub"] = json!("evil\r\nX-Admin: yes");
    assert_reason(
        &check(&*b.c, &k.mint(&c, Some("k1"))).await,
        Reason::InvalidHeaderValue,
        401,
    );
    c["sub"] = json!("ok");
    c.as_object_mut().unwrap().remove("tenant");
    assert_reason(
        &check(&*b.c, &k.mint(&c, Some("k1"))).await,
        Reason::MissingClaim,
        403,
    );

    // A query-parameter token is always stripped from the URI.
    let b = build(&inline(
        &[(&k, "k1")],
        "\"RS256\"",
        "token_sources = [{ query = \"access_token\" }]",
    ))
    .await
    .unwrap();
    let t = k.mint(&good(), Some("k1"));
    let v = check_with(&*b.c, HeaderMap::new(), &format!("/x?a=1&access_token={t}")).await;
    assert_eq!(assert_allowed(&v).remove_query_params, ["access_token"]);
}

#[tokio::test]
async fn cache_hits_rechecks_time_and_counts() {
    let k = TestKey::rsa(1);
    let b = build(&inline(&[(&k, "k1")], "\"RS256\"", "leeway = \"0s\""))
        .await
        .unwrap();
    let mut c = good();
    let exp = exp_in(4);
    c["exp"] = json!(exp);
    let t = k.mint(&c, Some("k1"));
    assert_allowed(&check(&*b.c, &t).await);
    assert_allowed(&check(&*b.c, &t).await);
    assert_eq!(
        metric(
            &b.metrics,
            "gatehouse_token_cache_requests_total",
            &[("result", "hit")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &b.metrics,
            "gatehouse_token_cache_requests_total",
            &[("result", "miss")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &b.metrics,
            "gatehouse_jwt_validations_total",
            &[("result", "valid")]
        ),
        2.0
    );
    tokio::time::sleep(time_until_past(exp)).await;
    assert_reason(&check(&*b.c, &t).await, Reason::Expired, 401);
    assert_eq!(
        metric(
            &b.metrics,
            "gatehouse_jwt_validations_total",
            &[("result", "invalid"), ("reason", "expired")]
        ),
        1.0
    );
}

#[tokio::test]
async fn error_styles() {
    let k = TestKey::rsa(1);
    let custom = "[custom_error]\nstatus = 403\ncontent_type = \"application/problem+json\"\nbody = '{\"code\":\"{reason}\",\"id\":\"{request_id}\"}'";
    let b = build(&inline(&[(&k, "k1")], "\"RS256\"", custom))
        .await
        .unwrap();
    let v = check_with(&*b.c, HeaderMap::new(), "/").await;
    let r = denied(&v).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.body, "{\"code\":\"missing_token\",\"id\":\"rid\"}");
    let b = build(&inline(
        &[(&k, "k1")],
        "\"RS256\"",
        "error_style = \"mashery\"",
    ))
    .await
    .unwrap();
    let mut c = good();
    c["exp"] = json!(now() - 3600);
    c["iat"] = json!(now() - 7200);
    c["nbf"] = json!(now() - 7200);
    let v = check(&*b.c, &k.mint(&c, Some("k1"))).await;
    let r = denied(&v).unwrap();
    assert_eq!(r.status, 403);
    assert!(r
        .headers
        .iter()
        .any(|(n, v)| n == "x-mashery-error-code" && v == "ERR_403_NOT_AUTHORIZED"));
    assert!(r
        .headers
        .iter()
        .any(|(n, v)| n == "x-mashery-error-detail" && v == "TokenExpired"));
}

#[tokio::test]
async fn key_source_config_errors() {
    let e = build("algorithms = [\"RS256\"]").await.err().unwrap();
    assert!(e.message.contains("exactly one key source"), "{e}");
    let e = build("jwks = 'nope'\nalgorithms = [\"RS256\"]")
        .await
        .err()
        .unwrap();
    assert_eq!(e.path, "connectors.t.jwks");
    let e = build("jwks_url = \"ftp://x/jwks\"\nalgorithms = [\"RS256\"]")
        .await
        .err()
        .unwrap();
    assert_eq!(e.path, "connectors.t.jwks_url");
    let e = build("secret = \"short\"\nalgorithms = [\"HS256\"]")
        .await
        .err()
        .unwrap();
    assert!(e.message.contains("at least 32"), "{e}");
    let e = build("jwks_url = \"http://127.0.0.1:9/jwks\"\njwks_timeout = \"200ms\"\njwks_required_at_load = true\nalgorithms = [\"RS256\"]").await.err().unwrap();
    assert_eq!(e.path, "connectors.t.jwks_url");
    let e =
        build("jwks_url = \"http://127.0.0.1:9/jwks\"\nalgorithms = [\"RS256\"]\nleewy = \"1s\"")
            .await
            .err()
            .unwrap();
    assert_eq!(e.path, "connectors.t.leewy");
    // Keys unavailable at load (not required): builds, and denies with 503 until keys arrive.
    let b = build("jwks_url = \"http://127.0.0.1:9/jwks\"\njwks_timeout = \"200ms\"\nalgorithms = [\"RS256\"]").await.unwrap();
    let k = TestKey::rsa(1);
    let v = check(&*b.c, &k.mint(&good(), Some("k1"))).await;
    assert_reason(&v, Reason::KeysUnavailable, 503);
    assert!(denied(&v)
        .unwrap()
        .headers
        .iter()
        .any(|(n, _)| n == "retry-after"));
}

#[test]
fn jwks_parsing_skips_unusable_keys() {
    let rsa = TestKey::rsa(1);
    let mut doc = jwks(&[(&rsa, "good")]);
    doc["keys"].as_array_mut().unwrap().push(
        json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": rsa.jwk("x")["n"], "e": "AQAB"}),
    );
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "XYZ", "kid": "odd"}));
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "EC", "crv": "P-256", "kid": "broken", "x": "!!", "y": "??"}));
    let (set, skipped) = parse_jwks(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0].kid.as_deref(), Some("good"));
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(parse_jwks(b"{}").is_err());
    assert!(parse_jwks(b"[").is_err());
}

mod binding;
mod claims;
mod es512;
mod hardening;
mod signatures;
mod token_type;

#[tokio::test]
async fn every_error_of_a_section_is_reported() {
    let body = "jwks_url = \"ftp://idp/jwks\"\nalgorithms = [\"RS256\", \"XX999\", \"none\"]\nleeway = \"1h\"\nmax_token_size = 10\nforward_claims_header = \"bad header\"\ninject_headers = { \"Content-Length\" = \"sub\" }\nrequired_claims = [\"\"]\n";
    let settings: toml::Table = toml::from_str(body).unwrap();
    let errs = JwtFactory::default()
        .build(BuildContext {
            name: "t".into(),
            path: "connectors.t".into(),
            settings,
            metrics: prometheus::Registry::new(),
            shared_caches: Default::default(),
        })
        .await
        .err()
        .expect("refused");
    let mut paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "connectors.t.algorithms[1]",
            "connectors.t.algorithms[2]",
            "connectors.t.forward_claims_header",
            "connectors.t.inject_headers.Content-Length",
            "connectors.t.leeway",
            "connectors.t.max_token_size",
            "connectors.t.required_claims[0]",
        ],
        "{errs}"
    );
}

#[test]
fn source_files_are_found_beside_common_keys() {
    let body = "algorithms = [\"HS256\"]\nsecret_file = \"/run/secrets/hs\"\nrealm = \"api\"\ninject_headers = { \"X-User\" = \"sub\" }\n[[policy]]\nany = [{ claim = \"sub\", op = \"exists\" }]\n";
    let settings: toml::Table = toml::from_str(body).unwrap();
    assert_eq!(
        JwtFactory::default().source_files(&settings),
        [std::path::PathBuf::from("/run/secrets/hs")]
    );
}
