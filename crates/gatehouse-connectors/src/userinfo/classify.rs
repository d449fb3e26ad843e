//! What an identity provider's userinfo answer means: a pure function of
//! the status, headers and (bounded) body, with no I/O.

use super::rules::ErrorText;
use super::settings::ErrorMetadataLocation;
use crate::claims::render;
use crate::errors::IdpRefusal;
pub use crate::kit::remote::Answer;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

/// Classifies a userinfo answer.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], text: &ErrorText) -> Answer {
    match status.as_u16() {
        200 => {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if ct.starts_with("application/jwt") {
                Answer::Unavailable(
                    "signed (application/jwt) userinfo answers are not supported".into(),
                )
            } else if !(ct.starts_with("application/json") || ct.contains("+json")) {
                Answer::Unavailable("userinfo answer is not JSON".into())
            } else {
                match serde_json::from_slice::<Value>(body) {
                    // OIDC Core §5.3.2: `sub` MUST be in the answer; without
                    // a string one it names no one (and `{}` is no identity).
                    Ok(doc) if doc.get("sub").is_some_and(Value::is_string) => {
                        Answer::Identity(doc)
                    }
                    Ok(doc) if doc.is_object() => {
                        Answer::Unavailable("userinfo answer has no string sub".into())
                    }
                    _ => Answer::Unavailable("userinfo answer is not a JSON object".into()),
                }
            }
        }
        400..=499 => Answer::Rejected(IdpRefusal {
            status,
            challenge: headers
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()),
            error: serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string)),
            text: error_text(status, headers, body, text),
        }),
        300..=399 => Answer::Unavailable(crate::outbound::redirect_refused(status, headers)),
        s => Answer::Unavailable(format!("answered {s}")),
    }
}

/// The IdP's error text: from the configured header or JSONPath, the whole
/// body, or a default naming the status.
fn error_text(status: StatusCode, headers: &HeaderMap, body: &[u8], t: &ErrorText) -> String {
    let default = format!(
        "Error Response retrieved from UserInfo endpoint. Response Code - {}",
        status.as_u16()
    );
    match t.location {
        Some(ErrorMetadataLocation::ResponseHeaders) => t
            .header
            .as_ref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or(default),
        Some(ErrorMetadataLocation::ResponsePayload) => match &t.path {
            Some(p) => serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| p.first(&v).and_then(render))
                .unwrap_or(default),
            None if !body.is_empty() => String::from_utf8_lossy(body).into_owned(),
            None => default,
        },
        None => default,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::claims::ClaimPath;

    fn plain() -> ErrorText {
        ErrorText {
            location: None,
            header: None,
            path: None,
        }
    }

    fn json() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            "application/json; charset=utf-8".parse().unwrap(),
        );
        h
    }

    #[test]
    fn a_json_object_is_an_identity() {
        let a = classify(StatusCode::OK, &json(), br#"{"sub":"a"}"#, &plain());
        assert_eq!(a, Answer::Identity(serde_json::json!({"sub": "a"})));
    }

    #[test]
    fn unusable_answers_are_unavailable_with_a_reason() {
        for (status, ct, body, why) in [
            (200, "application/json", &b"[1]"[..], "not a JSON object"),
            (200, "application/json", b"{", "not a JSON object"),
            (200, "application/json", b"{}", "no string sub"),
            (200, "application/json", br#"{"sub":7}"#, "no string sub"),
            (
                200,
                "application/json",
                br#"{"sub":null,"email":"a@b"}"#,
                "no string sub",
            ),
            (
                200,
                "application/json",
                br#"{"email":"a@b"}"#,
                "no string sub",
            ),
            (200, "text/html", b"{}", "not JSON"),
            (200, "application/jwt", b"e.y.j", "signed"),
            (500, "application/json", b"{}", "answered 500"),
            (302, "text/plain", b"", "redirect"),
        ] {
            let mut h = HeaderMap::new();
            h.insert("content-type", ct.parse().unwrap());
            match classify(StatusCode::from_u16(status).unwrap(), &h, body, &plain()) {
                Answer::Unavailable(t) => assert!(t.contains(why), "{status} {ct}: {t}"),
                other => panic!("{status} {ct}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_rejection_keeps_challenge_error_and_text() {
        let mut h = json();
        h.insert(
            "www-authenticate",
            "Bearer error=\"invalid_token\"".parse().unwrap(),
        );
        h.insert("x-why", "revoked".parse().unwrap());
        let body = br#"{"error":"invalid_token","detail":{"msg":"gone"}}"#;
        let Answer::Rejected(r) = classify(StatusCode::UNAUTHORIZED, &h, body, &plain()) else {
            panic!()
        };
        assert_eq!(r.error.as_deref(), Some("invalid_token"));
        assert_eq!(r.challenge.unwrap(), "Bearer error=\"invalid_token\"");
        assert!(r.text.ends_with("Response Code - 401"), "{}", r.text);

        let by_header = ErrorText {
            location: Some(ErrorMetadataLocation::ResponseHeaders),
            header: Some(http::HeaderName::from_static("x-why")),
            path: None,
        };
        let Answer::Rejected(r) = classify(StatusCode::FORBIDDEN, &h, body, &by_header) else {
            panic!()
        };
        assert_eq!(r.text, "revoked");

        let by_path = ErrorText {
            location: Some(ErrorMetadataLocation::ResponsePayload),
            header: None,
            path: Some(ClaimPath::parse("p", "$.detail.msg").unwrap()),
        };
        let Answer::Rejected(r) = classify(StatusCode::FORBIDDEN, &h, body, &by_path) else {
            panic!()
        };
        assert_eq!(r.text, "gone");
    }
}
