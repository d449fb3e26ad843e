//! How a connector's refusals look to the client: RFC 6750 (default), a
//! custom template, or the Mashery connectors' responses for migrations.

use crate::{Reason, Rejection};
use bytes::Bytes;
use gatehouse_config::ConfigError;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

/// The class of a failure, which decides the RFC 6750 status and `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// No credential at all: 401 with a bare challenge.
    NoCredential,
    /// A credential that is not acceptable: 401 `invalid_token`.
    InvalidToken,
    /// A request that is malformed: 400 `invalid_request`.
    InvalidRequest,
    /// A valid credential without the rights: 403 `insufficient_scope`.
    InsufficientScope,
    /// A credential that is not a bearer token and is refused (an unknown or
    /// inactive API key): 403 `access_denied`.
    Forbidden,
    /// A dependency (keys, IdP) is unavailable: 503 with `Retry-After`.
    Unavailable,
}

impl FailureClass {
    /// The HTTP status of this class — the one mapping every refusal uses.
    pub fn status(self) -> StatusCode {
        self.answer().0
    }

    /// The RFC 6750 `error` of this class (empty for a bare challenge).
    pub fn error(self) -> &'static str {
        self.answer().1
    }

    fn answer(self) -> (StatusCode, &'static str) {
        match self {
            FailureClass::NoCredential => (StatusCode::UNAUTHORIZED, ""),
            FailureClass::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            FailureClass::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
            FailureClass::InsufficientScope => (StatusCode::FORBIDDEN, "insufficient_scope"),
            FailureClass::Forbidden => (StatusCode::FORBIDDEN, "access_denied"),
            FailureClass::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
        }
    }

    /// The class a refusal rendered elsewhere belongs to, read back from its
    /// status (the inverse of [`FailureClass::status`]; 401 is read as
    /// `InvalidToken`).
    pub fn of_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => FailureClass::InvalidRequest,
            403 => FailureClass::InsufficientScope,
            s if s >= 500 => FailureClass::Unavailable,
            _ => FailureClass::InvalidToken,
        }
    }
}

/// One failure, as a connector describes it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Bounded reason (metric label).
    pub reason: Reason,
    /// The class.
    pub class: FailureClass,
    /// Short description for the client; never contains token contents.
    pub description: String,
    /// The original product's error name for this stage (e.g. `TokenExpired`).
    pub legacy_code: &'static str,
}

impl Failure {
    /// Builds a failure.
    pub fn new(
        reason: Reason,
        class: FailureClass,
        legacy_code: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            reason,
            class,
            description: description.into(),
            legacy_code,
        }
    }
}

/// What an identity provider said when it rejected a token (relayed to the
/// client by [`ErrorResponder::relay`]).
#[derive(Debug, Clone, PartialEq)]
pub struct IdpRefusal {
    /// Its status (4xx).
    pub status: StatusCode,
    /// Its `WWW-Authenticate`, when it sent one.
    pub challenge: Option<HeaderValue>,
    /// The OAuth `error` of its JSON body, when it has one.
    pub error: Option<String>,
    /// Its error text (from a configured header or body path, or a default).
    pub text: String,
}

/// `error_style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStyle {
    /// RFC 6750 statuses, challenges and a JSON body.
    #[default]
    Rfc6750,
    /// The Mashery/Boomi connectors' responses (see the migration guide).
    Mashery,
}

/// `custom_error` as written in the config (the original's `customizeErrorEnable`).
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomErrorConfig {
    /// Status for every refusal of this connector.
    pub status: u16,
    /// Body content type.
    #[serde(default = "default_ct")]
    pub content_type: String,
    /// Body template; `{error}`, `{reason}`, `{description}` and `{request_id}` are replaced.
    pub body: String,
}

fn default_ct() -> String {
    "application/json".into()
}

#[derive(Debug, Clone)]
struct CustomError {
    status: StatusCode,
    content_type: HeaderValue,
    body: String,
}

/// Turns failures into responses, per the connector's settings.
#[derive(Debug, Clone)]
pub struct ErrorResponder {
    realm: String,
    style: ErrorStyle,
    custom: Option<CustomError>,
    /// Status the Mashery style uses (403 JWT, 401 OIDC connector-made errors).
    mashery_status: StatusCode,
    /// False for credentials that are not bearer tokens (API keys): no
    /// `WWW-Authenticate: Bearer` challenge.
    challenge: bool,
    /// The kind's own Mashery answer for a failure (code, message), when it
    /// has one (API keys: `ERR_403_DEVELOPER_INACTIVE`).
    mashery_answer: Option<MasheryAnswer>,
}

/// A kind's Mashery answer for one failure: `Some((X-Mashery-Error-Code,
/// message))`, or `None` for the style's usual one.
pub type MasheryAnswer = fn(&Failure) -> Option<(&'static str, &'static str)>;

const RETRY_AFTER_SECS: &str = "5";

impl ErrorResponder {
    /// Compiles the settings found under `path`.
    pub fn new(
        path: &str,
        realm: &str,
        style: ErrorStyle,
        custom: Option<&CustomErrorConfig>,
        mashery_status: StatusCode,
    ) -> Result<Self, ConfigError> {
        let custom = match custom {
            None => None,
            Some(c) => {
                let status = StatusCode::from_u16(c.status)
                    .ok()
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .ok_or_else(|| {
                        ConfigError::new(
                            format!("{path}.custom_error.status"),
                            format!("{} is not a 4xx or 5xx status", c.status),
                        )
                    })?;
                let content_type = HeaderValue::from_str(&c.content_type).map_err(|_| {
                    ConfigError::new(
                        format!("{path}.custom_error.content_type"),
                        "not a valid header value",
                    )
                })?;
                Some(CustomError {
                    status,
                    content_type,
                    body: c.body.clone(),
                })
            }
        };
        if realm.contains(['"', '\\']) || !realm.is_ascii() {
            return Err(ConfigError::new(
                format!("{path}.realm"),
                "must be ASCII without quotes or backslashes",
            ));
        }
        Ok(Self {
            realm: realm.to_string(),
            style,
            custom,
            mashery_status,
            challenge: true,
            mashery_answer: None,
        })
    }

    /// For credentials that are not bearer tokens: refusals carry no
    /// `WWW-Authenticate: Bearer` challenge, and `answer` picks the Mashery
    /// code and message of a failure.
    pub fn for_keys(mut self, answer: MasheryAnswer) -> Self {
        self.challenge = false;
        self.mashery_answer = Some(answer);
        self
    }

    /// The style of the responses.
    pub fn style(&self) -> ErrorStyle {
        self.style
    }

    /// The denial for `f`: the failure with its rendered response.
    pub fn deny(&self, f: Failure, request_id: &str) -> crate::Denial {
        let r = self.reject(&f, request_id);
        crate::Denial::new(f, r)
    }

    /// The denial relaying an identity provider's own rejection: its status
    /// and challenge (RFC 6750: a JSON body with its `error` and text, and a
    /// challenge of ours when a 401 came without one; `mashery`: its text in
    /// an `<h1>`). Custom error bodies do not apply: the IdP's answer does.
    pub fn relay(&self, r: &IdpRefusal) -> crate::Denial {
        let failure = Failure::new(
            Reason::IdpRejected,
            FailureClass::InvalidToken,
            "TargetEndpointError",
            format!(
                "the identity provider rejected the token (status {})",
                r.status.as_u16()
            ),
        );
        let mut headers = Vec::new();
        if let Some(c) = &r.challenge {
            headers.push((http::header::WWW_AUTHENTICATE, c.clone()));
        }
        let rejection = match self.style {
            ErrorStyle::Mashery => Rejection {
                status: r.status,
                reason: Reason::IdpRejected,
                headers,
                content_type: HeaderValue::from_static("text/html; charset=utf-8"),
                body: Bytes::from(format!("<h1>{}</h1>", html_escape(&r.text))),
            },
            ErrorStyle::Rfc6750 => {
                if headers.is_empty() && r.status == StatusCode::UNAUTHORIZED {
                    headers = Rejection::bearer(
                        r.status,
                        Reason::IdpRejected,
                        &self.realm,
                        "invalid_token",
                        "the identity provider rejected the token",
                    )
                    .headers;
                }
                let error = r.error.as_deref().unwrap_or("invalid_token");
                Rejection {
                    status: r.status,
                    reason: Reason::IdpRejected,
                    headers,
                    content_type: HeaderValue::from_static("application/json"),
                    body: Bytes::from(
                        serde_json::json!({"error": error, "error_description": r.text})
                            .to_string(),
                    ),
                }
            }
        };
        crate::Denial::new(failure, rejection)
    }

    /// The response for `f`.
    pub fn reject(&self, f: &Failure, request_id: &str) -> Rejection {
        let (status, error) = (f.class.status(), f.class.error());
        if let Some(c) = &self.custom {
            let body = c
                .body
                .replace(
                    "{error}",
                    if error.is_empty() {
                        "unauthorized"
                    } else {
                        error
                    },
                )
                .replace("{reason}", f.reason.as_str())
                .replace("{description}", &f.description)
                .replace("{request_id}", request_id);
            return Rejection {
                status: c.status,
                reason: f.reason,
                headers: Vec::new(),
                content_type: c.content_type.clone(),
                body: Bytes::from(body),
            };
        }
        match self.style {
            ErrorStyle::Rfc6750 => {
                let mut r = Rejection::bearer(status, f.reason, &self.realm, error, &f.description);
                if !self.challenge {
                    r.headers
                        .retain(|(n, _)| n != http::header::WWW_AUTHENTICATE);
                }
                if f.class == FailureClass::Unavailable {
                    // No challenge: the credential may be fine; ask the client to retry.
                    r.headers
                        .retain(|(n, _)| n != http::header::WWW_AUTHENTICATE);
                    r.headers.push((
                        http::header::RETRY_AFTER,
                        HeaderValue::from_static(RETRY_AFTER_SECS),
                    ));
                }
                r
            }
            ErrorStyle::Mashery => {
                let own = self.mashery_answer.and_then(|a| a(f));
                let (status, code, text) = if let Some((code, text)) = own {
                    (self.mashery_status, code, text)
                } else if self.mashery_status == StatusCode::UNAUTHORIZED {
                    (
                        StatusCode::UNAUTHORIZED,
                        "ERR_401_UNAUTHORIZED",
                        "Unauthorized",
                    )
                } else {
                    (
                        StatusCode::FORBIDDEN,
                        "ERR_403_NOT_AUTHORIZED",
                        "Forbidden: Not Authorized",
                    )
                };
                let mut headers = vec![(
                    HeaderName::from_static("x-mashery-error-code"),
                    HeaderValue::from_static(code),
                )];
                if let Ok(v) = HeaderValue::from_str(f.legacy_code) {
                    headers.push((HeaderName::from_static("x-mashery-error-detail"), v));
                }
                Rejection {
                    status,
                    reason: f.reason,
                    headers,
                    content_type: HeaderValue::from_static("text/plain; charset=utf-8"),
                    body: Bytes::from(format!("{text}\n")),
                }
            }
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(class: FailureClass) -> Failure {
        Failure::new(
            Reason::Expired,
            class,
            "TokenExpired",
            "token expired 3s ago",
        )
    }

    fn header<'a>(r: &'a Rejection, n: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn rfc6750_statuses_and_challenges() {
        let e = ErrorResponder::new("c", "api", ErrorStyle::Rfc6750, None, StatusCode::FORBIDDEN)
            .unwrap();
        let r = e.reject(&f(FailureClass::NoCredential), "r1");
        assert_eq!(
            (r.status, header(&r, "www-authenticate")),
            (StatusCode::UNAUTHORIZED, Some("Bearer realm=\"api\""))
        );
        let r = e.reject(&f(FailureClass::InvalidToken), "r1");
        assert_eq!(
            header(&r, "www-authenticate"),
            Some("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"token expired 3s ago\"")
        );
        let r = e.reject(&f(FailureClass::InsufficientScope), "r1");
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(header(&r, "www-authenticate")
            .unwrap()
            .contains("insufficient_scope"));
        let r = e.reject(&f(FailureClass::Unavailable), "r1");
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&r, "retry-after"), Some("5"));
        assert_eq!(header(&r, "www-authenticate"), None);
    }

    #[test]
    fn custom_template() {
        let c = CustomErrorConfig {
            status: 418,
            content_type: "application/xml".into(),
            body: "<e r='{reason}' id='{request_id}'>{error}</e>".into(),
        };
        let e = ErrorResponder::new(
            "c",
            "api",
            ErrorStyle::Rfc6750,
            Some(&c),
            StatusCode::FORBIDDEN,
        )
        .unwrap();
        let r = e.reject(&f(FailureClass::InvalidToken), "rid-9");
        assert_eq!(r.status.as_u16(), 418);
        assert_eq!(r.body, "<e r='expired' id='rid-9'>invalid_token</e>");
        assert_eq!(r.content_type, "application/xml");
        let bad = CustomErrorConfig { status: 200, ..c };
        assert_eq!(
            ErrorResponder::new(
                "c",
                "api",
                ErrorStyle::Rfc6750,
                Some(&bad),
                StatusCode::FORBIDDEN
            )
            .unwrap_err()
            .path,
            "c.custom_error.status"
        );
    }

    #[test]
    fn mashery_style() {
        let e = ErrorResponder::new("c", "api", ErrorStyle::Mashery, None, StatusCode::FORBIDDEN)
            .unwrap();
        let r = e.reject(&f(FailureClass::InvalidToken), "r");
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(
            header(&r, "x-mashery-error-code"),
            Some("ERR_403_NOT_AUTHORIZED")
        );
        assert_eq!(header(&r, "x-mashery-error-detail"), Some("TokenExpired"));
        let e = ErrorResponder::new(
            "c",
            "api",
            ErrorStyle::Mashery,
            None,
            StatusCode::UNAUTHORIZED,
        )
        .unwrap();
        let r = e.reject(&f(FailureClass::NoCredential), "r");
        assert_eq!(
            header(&r, "x-mashery-error-code"),
            Some("ERR_401_UNAUTHORIZED")
        );
    }
}
