//! RFC 7662 token introspection (`kind = "oauth2_introspection"`), built on
//! the remote-answer kit (`kit::answer_cache`, `kit::answer_l2`,
//! `kit::answer_flow`): what an introspection endpoint's answer means
//! ([`classify`]), the checks on an active token's answer ([`check_active`]),
//! and the connector ([`IntrospectionFactory`]).

mod connector;
pub mod settings;

pub use connector::{IntrospectionConnector, IntrospectionFactory};

use crate::errors::{Failure, FailureClass, IdpRefusal};
use crate::kit::remote::Answer;
use crate::Reason;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

/// What the introspection endpoint said, as the kit's [`Answer`]:
/// `active: true` → the answer is the identity (checked further by
/// [`check_active`]); `active: false` → a rejection of the token (401
/// `invalid_token` for the caller); anything else (a 401 or 403 for
/// Gatehouse's own client credentials, 5xx, a redirect, not JSON, no
/// boolean `active`) → the IdP is unavailable: a caller's token is never
/// refused because the IdP refused Gatehouse.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Answer {
    match status.as_u16() {
        200 => {}
        401 | 403 => {
            return Answer::Unavailable(format!(
                "the introspection endpoint refused Gatehouse's client credentials (status {}): check client_id and client_secret_file",
                status.as_u16()
            ))
        }
        s => return Answer::Unavailable(format!("introspection answered status {s}")),
    }
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json") || ct.contains("+json")
        });
    if !json {
        return Answer::Unavailable("introspection answer is not JSON".into());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(doc) => match doc.get("active") {
            Some(Value::Bool(true)) => Answer::Identity(doc),
            Some(Value::Bool(false)) => Answer::Rejected(IdpRefusal {
                status: StatusCode::UNAUTHORIZED,
                challenge: None,
                error: Some("invalid_token".into()),
                text: "the token is not active".into(),
            }),
            _ => Answer::Unavailable("introspection answer has no boolean active".into()),
        },
        Err(_) => Answer::Unavailable("introspection answer is not JSON".into()),
    }
}

/// What an active token's answer must also satisfy.
#[derive(Debug, Clone, Default)]
pub struct ActiveChecks {
    /// Accepted `iss` values (empty: any).
    pub issuers: Vec<String>,
    /// Accepted audiences; one of the answer's `aud` (string or array) must
    /// be among them (empty: any).
    pub audiences: Vec<String>,
    /// Clock leeway for `exp` and `nbf`, seconds.
    pub leeway: f64,
}

fn refused(reason: Reason, what: &str) -> Failure {
    Failure::new(reason, FailureClass::InvalidToken, "InvalidToken", what)
}

/// Checks an active token's answer at `now` (Unix seconds): `exp` and `nbf`
/// (RFC 7662 §2.2), `iss` and `aud` when configured. A failure is a 401
/// `invalid_token`.
pub fn check_active(doc: &Value, checks: &ActiveChecks, now: f64) -> Result<(), Failure> {
    let num = |k: &str| doc.get(k).and_then(Value::as_f64);
    if let Some(exp) = num("exp") {
        if now > exp + checks.leeway {
            return Err(refused(Reason::Expired, "the token has expired"));
        }
    }
    if let Some(nbf) = num("nbf") {
        if now + checks.leeway < nbf {
            return Err(refused(Reason::NotYetValid, "the token is not valid yet"));
        }
    }
    if !checks.issuers.is_empty() {
        let iss = doc.get("iss").and_then(Value::as_str);
        if !iss.is_some_and(|i| checks.issuers.iter().any(|a| a == i)) {
            return Err(refused(
                Reason::IssuerNotAllowed,
                "the token's issuer is not among this connector's issuers",
            ));
        }
    }
    if !checks.audiences.is_empty() {
        let ok = match doc.get("aud") {
            Some(Value::String(a)) => checks.audiences.contains(a),
            Some(Value::Array(v)) => v
                .iter()
                .filter_map(Value::as_str)
                .any(|a| checks.audiences.iter().any(|c| c == a)),
            _ => false,
        };
        if !ok {
            return Err(refused(
                Reason::AudienceNotAllowed,
                "no audience of the token is accepted",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        h
    }

    #[test]
    fn active_inactive_and_everything_else() {
        let ok = classify(
            StatusCode::OK,
            &json_headers(),
            br#"{"active":true,"sub":"m2m"}"#,
        );
        assert!(matches!(ok, Answer::Identity(ref d) if d["sub"] == "m2m"));
        let off = classify(StatusCode::OK, &json_headers(), br#"{"active":false}"#);
        assert!(matches!(off, Answer::Rejected(ref r) if r.status == StatusCode::UNAUTHORIZED));
        for (status, body) in [
            (StatusCode::OK, &br#"{"active":"true"}"#[..]),
            (StatusCode::OK, &b"not json"[..]),
            (
                StatusCode::UNAUTHORIZED,
                &br#"{"error":"invalid_client"}"#[..],
            ),
            (StatusCode::FOUND, &b""[..]),
            (StatusCode::BAD_GATEWAY, &b""[..]),
        ] {
            assert!(
                matches!(
                    classify(status, &json_headers(), body),
                    Answer::Unavailable(_)
                ),
                "{status} {body:?}"
            );
        }
        let why = match classify(StatusCode::UNAUTHORIZED, &json_headers(), b"{}") {
            Answer::Unavailable(w) => w,
            a => panic!("{a:?}"),
        };
        assert!(why.contains("client credentials"), "{why}");
        assert!(matches!(
            classify(StatusCode::OK, &HeaderMap::new(), br#"{"active":true}"#),
            Answer::Unavailable(_)
        ));
    }

    #[test]
    fn an_active_answer_is_checked_for_times_issuer_and_audience() {
        let c = ActiveChecks {
            issuers: vec!["https://idp".into()],
            audiences: vec!["api".into()],
            leeway: 60.0,
        };
        let doc = |extra: Value| {
            let mut d =
                json!({"active": true, "iss": "https://idp", "aud": ["x", "api"], "exp": 2000.0});
            for (k, v) in extra.as_object().unwrap() {
                d[k] = v.clone();
            }
            d
        };
        assert!(check_active(&doc(json!({})), &c, 1000.0).is_ok());
        assert!(check_active(&doc(json!({})), &c, 2059.0).is_ok());
        let reason = |d: Value, now: f64| check_active(&d, &c, now).unwrap_err().reason;
        assert_eq!(reason(doc(json!({})), 2061.0), Reason::Expired);
        assert_eq!(
            reason(doc(json!({"nbf": 1100.0})), 1000.0),
            Reason::NotYetValid
        );
        assert_eq!(
            reason(doc(json!({"iss": "https://other"})), 1000.0),
            Reason::IssuerNotAllowed
        );
        assert_eq!(
            reason(doc(json!({"aud": "other"})), 1000.0),
            Reason::AudienceNotAllowed
        );
        assert!(check_active(&doc(json!({"aud": "api"})), &c, 1000.0).is_ok());
        assert!(check_active(&json!({"active": true}), &ActiveChecks::default(), 1.0).is_ok());
    }
}
