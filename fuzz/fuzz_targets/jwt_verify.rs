//! `jwt_verify`: the JWT connector end to end — token intake, structure,
//! `alg` allow-list, key selection, signature, time claims, issuer, audience,
//! required claims, policy, header injection and the verified-token cache.
//!
//! Two connectors are built once from inline config: `hs` (HS256 with a fixed
//! secret, cached, policy and injection) and `pk` (RS256/PS256/ES256/ES384/EdDSA
//! from an inline JWKS, `max_token_age`, Mashery errors).
//!
//! Input: byte 0 picks the mode (`% 4`), the rest is its data.
//! - 0: `Authorization: Bearer <data>` to `hs`;
//! - 1: `Authorization: Bearer <data>` to `pk`;
//! - 2: `<header JSON>\n<claims JSON>`, base64url-encoded and HS256-signed with
//!   the secret by this harness, to `hs` (reaches the claim checks);
//! - 3: the same, ES256-signed with the P-256 test key, to `pk`.
//!
//! Asserts: no panic; an `Allow` only for a token whose `alg` is allowed, whose
//! signature verifies with a configured key, whose `exp` (if any) has not passed,
//! whose `iss`/`aud` are allowed, and whose injected header values carry no
//! CR/LF/NUL.

#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_config::ConnectorConfig;
use gatehouse_connectors::jwt::{parse_jwks, Alg, KeyMaterial};
use gatehouse_connectors::{Connector, Registry, RequestView, Verdict};
use http::{HeaderMap, HeaderValue, Method, Uri};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &str = "gatehouse-fuzz-hs256-secret-0123456789";
const JWKS: &str = include_str!("../seeds/jwks.json");
const EC_PRIVATE: &str = include_str!("../../crates/gatehouse-testkit/keys/ec256-1.pem");
const LEEWAY: f64 = 30.0;

const HS: &str = r#"
kind = "jwt"
algorithms = ["HS256"]
secret = "gatehouse-fuzz-hs256-secret-0123456789"
issuers = ["https://idp.fuzz"]
audiences = ["api"]
leeway = "30s"
required_claims = ["sub"]
token_cache_size = 64
forward_claims_header = "X-Claims"
[inject_headers]
"X-User-Id" = "sub"
"X-Org-Region" = "$.org.region"
"X-Roles" = "$.roles"
"X-Tenant" = { claim = "tenant", required = true }
[[policy]]
any = [
  { claim = "roles", op = "contains_any", values = ["admin"] },
  { claim = "scope", op = "contains_any", values = ["orders:read"] },
]
[[policy]]
any = [ { claim = "$.org.tier", op = "equals", values = ["gold"], case_sensitive = false } ]
[[policy]]
any = [ { claim = "$.roles[?@ == 'banned']", op = "matches", effect = "deny" } ]
"#;

const PK: &str = r#"
kind = "jwt"
algorithms = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
issuers = ["https://idp.fuzz"]
audiences = ["api"]
leeway = "30s"
require_exp = false
max_token_age = "7d"
token_cache_size = 0
error_style = "mashery"
[inject_headers]
"X-User-Email" = "$.email"
"X-Sub" = "sub"
"#;

struct Fixture {
    rt: tokio::runtime::Runtime,
    hs: Arc<dyn Connector>,
    pk: Arc<dyn Connector>,
    hs_keys: Vec<(Algorithm, DecodingKey)>,
    pk_keys: Vec<(Algorithm, DecodingKey)>,
    ec_signer: EncodingKey,
    hs_signer: EncodingKey,
}

fn build(
    rt: &tokio::runtime::Runtime,
    name: &str,
    toml_text: &str,
    jwks: Option<&str>,
) -> Arc<dyn Connector> {
    let mut cfg: ConnectorConfig = toml::from_str(toml_text).expect("fixture connector TOML");
    if let Some(j) = jwks {
        cfg.settings
            .insert("jwks".into(), toml::Value::String(j.into()));
    }
    let registry = Registry::builtin();
    let metrics = prometheus::Registry::new();
    rt.block_on(registry.build(name, &cfg, &metrics, &Default::default()))
        .unwrap_or_else(|e| panic!("fixture connector {name}: {e}"))
}

/// `GATEHOUSE_FUZZ_SKIP_KNOWN=1` skips inputs of crashes already known and fixed
/// elsewhere (fuzz/README.md), to fuzz past them on older code.
static SKIP_KNOWN: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("GATEHOUSE_FUZZ_SKIP_KNOWN").is_some());

/// A time claim large enough to overflow a `Duration` (the known cache-TTL panic).
fn huge_time_claim(claims: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(claims) else {
        return false;
    };
    ["exp", "nbf", "iat"].iter().any(|k| {
        v.get(k)
            .and_then(Value::as_f64)
            .is_some_and(|x| x.abs() > 1e18)
    })
}

static FIX: LazyLock<Fixture> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let hs = build(&rt, "hs", HS, None);
    let pk = build(&rt, "pk", PK, Some(JWKS));
    let (set, _) = parse_jwks(JWKS.as_bytes()).expect("fixture JWKS");
    let mut pk_keys = Vec::new();
    for (alg, jwt_alg) in [
        (Alg::RS256, Algorithm::RS256),
        (Alg::PS256, Algorithm::PS256),
        (Alg::ES256, Algorithm::ES256),
        (Alg::ES384, Algorithm::ES384),
        (Alg::EdDSA, Algorithm::EdDSA),
    ] {
        for k in set.candidates(alg, None) {
            if let KeyMaterial::Jwt(d) = &k.key {
                pk_keys.push((jwt_alg, d.clone()));
            }
        }
    }
    Fixture {
        rt,
        hs,
        pk,
        hs_keys: vec![(
            Algorithm::HS256,
            DecodingKey::from_secret(SECRET.as_bytes()),
        )],
        pk_keys,
        ec_signer: EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("fixture EC key"),
        hs_signer: EncodingKey::from_secret(SECRET.as_bytes()),
    }
});

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn b64_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An independent check of what an `Allow` implies.
fn assert_allow_is_sound(token: &str, keys: &[(Algorithm, DecodingKey)], before: f64) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "allowed a token without three parts: {token:?}"
    );
    let header = b64_json(parts[0]).expect("allowed a token whose header is not base64url JSON");
    let alg: Algorithm = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .expect("allowed a token without a known alg");
    let message = &token.as_bytes()[..parts[0].len() + 1 + parts[1].len()];
    let verified = keys.iter().filter(|(a, _)| *a == alg).any(|(_, k)| {
        matches!(
            jsonwebtoken::crypto::verify(parts[2], message, k, alg),
            Ok(true)
        )
    });
    assert!(
        verified,
        "allowed a token no configured key verifies (alg {alg:?})"
    );
    let claims = b64_json(parts[1]).expect("allowed a token whose claims are not base64url JSON");
    if let Some(exp) = claims.get("exp").and_then(Value::as_f64) {
        assert!(
            exp + LEEWAY > before,
            "allowed an expired token (exp {exp}, now {before})"
        );
    }
    assert_eq!(
        claims.get("iss").and_then(Value::as_str),
        Some("https://idp.fuzz"),
        "issuer"
    );
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == "api",
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some("api")),
        _ => false,
    };
    assert!(aud_ok, "allowed a token without the audience");
}

fn signed(header: &[u8], claims: &[u8], key: &EncodingKey, alg: Algorithm) -> Option<String> {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).ok()?;
    Some(format!("{message}.{sig}"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fix = &*FIX;
    let mode = mode % 4;
    let token = match mode {
        0 | 1 => match std::str::from_utf8(rest) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        },
        _ => {
            let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let (h, c) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
            let made = if mode == 2 {
                signed(h, c, &fix.hs_signer, Algorithm::HS256)
            } else {
                signed(h, c, &fix.ec_signer, Algorithm::ES256)
            };
            if *SKIP_KNOWN && huge_time_claim(c) {
                return; // exp 1e20: known, fixed by the conn branch (see fuzz/README.md)
            }
            match made {
                Some(t) => t,
                None => return,
            }
        }
    };
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    let method = Method::GET;
    let uri = Uri::from_static("/orders/1");
    let req = RequestView {
        method: &method,
        uri: &uri,
        headers: &headers,
        client: None,
        request_id: "fuzz",
        peer_cert: None,
        verified: None,
    };
    let (connector, keys) = if mode % 2 == 0 {
        (&fix.hs, &fix.hs_keys)
    } else {
        (&fix.pk, &fix.pk_keys)
    };
    let before = now();
    match fix.rt.block_on(connector.check(&req)) {
        Verdict::Allow(edits) => {
            assert_allow_is_sound(token.trim(), keys, before);
            for (name, v) in &edits.set {
                assert!(
                    !v.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
                    "header {name} carries CR/LF/NUL"
                );
            }
        }
        Verdict::Deny(d) => {
            let r = &d.rejection;
            assert!(
                r.status.is_client_error() || r.status.is_server_error(),
                "deny with status {}",
                r.status
            );
            assert_eq!(r.reason, d.failure.reason, "typed failure and response disagree");
        }
    }
});
