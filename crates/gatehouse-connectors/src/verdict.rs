//! Requests as connectors see them, and what they answer.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use std::net::IpAddr;

use crate::errors::{Failure, FailureClass};

/// A read-only view of the downstream request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request target (path and query; authority for HTTP/2).
    pub uri: &'a Uri,
    /// Request headers as received (hop-by-hop headers included).
    pub headers: &'a HeaderMap,
    /// The client's address, when known.
    pub client: Option<IpAddr>,
    /// The request id Gatehouse assigned or accepted (for error bodies).
    pub request_id: &'a str,
    /// The client certificate verified on this connection (mutual TLS), if any.
    pub peer_cert: Option<&'a PeerCertificate>,
    /// The identity document an earlier step of the route verified (the
    /// latest allowing one's), for a step that reads its credential from it
    /// (an API key in a JWT claim); `None` for the first step.
    pub verified: Option<&'a serde_json::Value>,
}

/// A client certificate the TLS listener verified against its
/// `client_ca_file`, as connectors see it. Computed once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// base64url (no padding) SHA-256 of the DER: RFC 8705 `x5t#S256`.
    pub thumbprint: String,
    /// The subject distinguished name (RFC 4514 string form).
    pub subject: String,
    /// DNS, email and URI subjectAltNames, in certificate order.
    pub sans: Vec<String>,
}

/// Changes a connector asks for on the upstream request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Headers to set (replacing any existing value).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers to remove.
    pub remove: Vec<HeaderName>,
    /// Query parameters to remove from the URI (e.g. a token carrier).
    pub remove_query_params: Vec<String>,
    /// Cookies removed from the `Cookie` header (token carriers). Already
    /// reflected in `set`/`remove` for the request the edits were made for;
    /// kept so that merged edits remove every one of them
    /// ([`HeaderEdits::settle_cookies`]).
    pub remove_cookies: Vec<String>,
    /// Not an edit: the identity document the allowing connector verified
    /// (JWT claims, userinfo answer, API key entry), handed to the steps
    /// after it on the same request ([`RequestView::verified`]).
    pub verified: Option<std::sync::Arc<serde_json::Value>>,
}

impl HeaderEdits {
    /// No edits.
    pub fn none() -> Self {
        Self::default()
    }

    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.remove.is_empty()
            && self.remove_query_params.is_empty()
            && self.remove_cookies.is_empty()
    }

    /// Makes the `Cookie` edit remove every cookie of `remove_cookies` from
    /// the request's `headers` at once (two edits made apart would each put
    /// back the other's cookie).
    pub fn settle_cookies(&mut self, headers: &HeaderMap) {
        if self.remove_cookies.is_empty() {
            return;
        }
        self.set.retain(|(n, _)| n != http::header::COOKIE);
        self.remove.retain(|n| n != http::header::COOKIE);
        match crate::token::cookie_without(headers, &self.remove_cookies) {
            None => {}
            Some(Some(v)) => self.set.push((http::header::COOKIE, v)),
            Some(None) => self.remove.push(http::header::COOKIE),
        }
    }

    /// Appends `other`'s edits after this one's (later sets win).
    pub fn merge(&mut self, other: HeaderEdits) {
        if self.is_empty() {
            let verified = self.verified.take();
            *self = other;
            self.verified = self.verified.take().or(verified);
            return;
        }
        if other.verified.is_some() {
            self.verified = other.verified;
        }
        self.set.extend(other.set);
        self.remove.extend(other.remove);
        self.remove_query_params.extend(other.remove_query_params);
        self.remove_cookies.extend(other.remove_cookies);
    }
}

/// A connector's decision.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Let the request through, with these edits.
    Allow(HeaderEdits),
    /// Answer the client now.
    Deny(Denial),
}

/// A refusal: what went wrong (typed, for metrics, logs, tools and any-of
/// groups) next to the response rendered for the client.
#[derive(Debug, Clone)]
pub struct Denial {
    /// What went wrong.
    pub failure: Failure,
    /// What to answer.
    pub rejection: Rejection,
}

impl Denial {
    /// Pairs a failure with its rendered response.
    pub fn new(failure: Failure, rejection: Rejection) -> Self {
        Self { failure, rejection }
    }

    /// The bounded reason.
    pub fn reason(&self) -> Reason {
        self.failure.reason
    }

    /// True when this refusal should answer rather than `other` in an
    /// any-of group (see [`Reason::specificity`]; `other` is the earlier).
    pub fn outranks(&self, other: &Denial) -> bool {
        self.reason().specificity() > other.reason().specificity()
    }
}

impl From<Rejection> for Denial {
    /// A denial known only by its response (connectors outside this crate
    /// that render their own): the class follows the status.
    fn from(rejection: Rejection) -> Self {
        let class = FailureClass::of_status(rejection.status);
        Self {
            failure: Failure::new(
                rejection.reason,
                class,
                "",
                rejection.reason.as_str().replace('_', " "),
            ),
            rejection,
        }
    }
}

/// Declares [`Reason`] from one list of `Variant = "label"` lines: the
/// enum, [`Reason::ALL`] in the same order, its length and the labels — so
/// adding a reason is one line, and no reason can be missing from a list.
macro_rules! reasons {
    ($( $(#[doc = $doc:expr])* $name:ident = $label:literal, )+) => {
        /// Why a request was refused: a bounded set, used for the response, the log
        /// line and the `reason` metric label.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Reason {
            $( $(#[doc = $doc])* $name, )+
        }

        impl Reason {
            /// How many reasons there are.
            pub const COUNT: usize = [$($label),+].len();

            /// Every reason, in declaration order (see [`Reason::index`]).
            pub const ALL: [Reason; Reason::COUNT] = [$(Reason::$name),+];

            /// The label / log form, in `snake_case`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => $label,)+
                }
            }
        }
    };
}

reasons! {
    /// No credential was presented.
    MissingToken = "missing_token",
    /// The credential could not be parsed.
    Malformed = "malformed",
    /// The credential has more than one carrier (two `Authorization`
    /// headers, two token cookies, a header and a query token, …).
    AmbiguousToken = "ambiguous_token",
    /// The credential exceeds the size limit.
    TokenTooLarge = "token_too_large",
    /// The token's algorithm is not allowed.
    AlgorithmNotAllowed = "algorithm_not_allowed",
    /// No key matches the token.
    UnknownKey = "unknown_key",
    /// Keys could not be obtained.
    KeysUnavailable = "keys_unavailable",
    /// The signature does not verify.
    BadSignature = "bad_signature",
    /// The token has expired.
    Expired = "expired",
    /// The token is not valid yet.
    NotYetValid = "not_yet_valid",
    /// The token claims to be issued in the future.
    IssuedInFuture = "issued_in_future",
    /// The token is older than the allowed age.
    TooOld = "too_old",
    /// The issuer is not allowed.
    IssuerNotAllowed = "issuer_not_allowed",
    /// No audience is allowed.
    AudienceNotAllowed = "audience_not_allowed",
    /// A required claim is missing.
    MissingClaim = "missing_claim",
    /// A claim policy refused the request.
    PolicyDenied = "policy_denied",
    /// A value to inject is not a valid header value.
    InvalidHeaderValue = "invalid_header_value",
    /// No userinfo endpoint fits the request.
    NoUserinfoEndpoint = "no_userinfo_endpoint",
    /// The region header was sent more than once (or as a list).
    AmbiguousRegion = "ambiguous_region",
    /// The identity provider rejected the credential.
    IdpRejected = "idp_rejected",
    /// The identity provider could not be reached or failed.
    IdpUnavailable = "idp_unavailable",
    /// The identity provider answered something unusable.
    IdpBadResponse = "idp_bad_response",
    /// The token is bound to a client certificate (RFC 8705) that is not
    /// the one presented, or no certificate was presented.
    CertificateMismatch = "certificate_mismatch",
    /// The token's type (JOSE `typ`) is not among the accepted ones.
    TokenTypeNotAllowed = "token_type_not_allowed",
    /// The token is an ID token (`nonce`, `at_hash` or `c_hash`), not an
    /// access token.
    IdToken = "id_token",
    /// The API key is known but not active (disabled, or not approved yet).
    KeyInactive = "key_inactive",
    /// A connector-specific refusal not covered above.
    Denied = "denied",
}

impl Reason {
    /// Position in [`Reason::ALL`], for pre-resolved metric handles.
    pub fn index(self) -> usize {
        self as usize
    }

    /// How much a refusal with this reason says about the credential, for
    /// choosing the answer of an any-of group none of whose members allowed:
    /// the highest wins (ties: the earlier member). "Not mine" (no token in
    /// this member's sources, another issuer) says least; a token whose
    /// signature verified and was then refused says most.
    pub fn specificity(self) -> u8 {
        match self {
            Reason::MissingToken | Reason::IssuerNotAllowed => 0,
            Reason::Malformed
            | Reason::TokenTooLarge
            | Reason::AlgorithmNotAllowed
            | Reason::TokenTypeNotAllowed
            | Reason::UnknownKey
            | Reason::NoUserinfoEndpoint
            | Reason::AmbiguousRegion => 1,
            Reason::KeysUnavailable
            | Reason::IdpUnavailable
            | Reason::IdpBadResponse
            | Reason::Denied => 2,
            Reason::BadSignature | Reason::IdpRejected => 3,
            Reason::AmbiguousToken
            | Reason::Expired
            | Reason::NotYetValid
            | Reason::IssuedInFuture
            | Reason::TooOld
            | Reason::AudienceNotAllowed
            | Reason::MissingClaim
            | Reason::PolicyDenied
            | Reason::CertificateMismatch
            | Reason::IdToken
            | Reason::KeyInactive
            | Reason::InvalidHeaderValue => 4,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A response to send instead of proxying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Response status.
    pub status: StatusCode,
    /// Why (bounded; used for metrics and logs).
    pub reason: Reason,
    /// Extra response headers (e.g. `WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `Content-Type` of the body.
    pub content_type: HeaderValue,
    /// Response body.
    pub body: Bytes,
}

impl Rejection {
    /// A JSON error response: `{"error": error, "error_description": description}`.
    pub fn json(status: StatusCode, reason: Reason, error: &str, description: &str) -> Self {
        let body = serde_json::json!({ "error": error, "error_description": description });
        Self {
            status,
            reason,
            headers: Vec::new(),
            content_type: HeaderValue::from_static("application/json"),
            body: Bytes::from(body.to_string()),
        }
    }

    /// An RFC 6750 bearer-token error: JSON body plus a `WWW-Authenticate:
    /// Bearer realm="…"` challenge, with `error`/`error_description` unless
    /// `error` is empty (the "no credential" case, RFC 6750 §3.1).
    pub fn bearer(
        status: StatusCode,
        reason: Reason,
        realm: &str,
        error: &str,
        description: &str,
    ) -> Self {
        let mut challenge = format!("Bearer realm=\"{}\"", quote_safe(realm));
        if !error.is_empty() {
            challenge.push_str(&format!(
                ", error=\"{}\", error_description=\"{}\"",
                quote_safe(error),
                quote_safe(description)
            ));
        }
        let mut r = Self::json(
            status,
            reason,
            if error.is_empty() {
                "unauthorized"
            } else {
                error
            },
            description,
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers.push((http::header::WWW_AUTHENTICATE, v));
        }
        r
    }

    /// Adds a header to the response.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Makes text safe inside a quoted-string of a challenge: printable ASCII,
/// without `"` and `\`.
fn quote_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '\''
            }
        })
        .collect()
}

#[cfg(test)]
mod reason_tests {
    use super::*;
    use crate::errors::FailureClass;

    #[test]
    fn every_reason_is_listed_once_with_its_own_index_and_label() {
        let mut labels = std::collections::HashSet::new();
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(labels.insert(r.as_str()), "{r} twice");
        }
        assert_eq!(Reason::ALL[Reason::COUNT - 1], Reason::Denied);
    }

    #[test]
    fn a_status_read_back_gives_the_class_that_renders_it() {
        for class in [
            FailureClass::InvalidToken,
            FailureClass::InvalidRequest,
            FailureClass::InsufficientScope,
            FailureClass::Unavailable,
        ] {
            assert_eq!(FailureClass::of_status(class.status()), class);
        }
        assert_eq!(
            FailureClass::NoCredential.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reason_indexes_are_dense_and_labels_unique() {
        let mut labels = std::collections::HashSet::new();
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(labels.insert(r.as_str()));
        }
    }

    #[test]
    fn bearer_challenge_format() {
        let r = Rejection::bearer(
            StatusCode::UNAUTHORIZED,
            Reason::Expired,
            "api",
            "invalid_token",
            "token \"expired\"",
        );
        let (_, v) = r
            .headers
            .iter()
            .find(|(n, _)| n == http::header::WWW_AUTHENTICATE)
            .unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"token 'expired'\""
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_token");

        let r = Rejection::bearer(
            StatusCode::UNAUTHORIZED,
            Reason::MissingToken,
            "api",
            "",
            "no token",
        );
        let (_, v) = r
            .headers
            .iter()
            .find(|(n, _)| n == http::header::WWW_AUTHENTICATE)
            .unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer realm=\"api\"");
    }

    #[test]
    fn merge_keeps_order() {
        let mut a = HeaderEdits::none();
        a.merge(HeaderEdits {
            set: vec![(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            )],
            ..Default::default()
        });
        a.merge(HeaderEdits {
            set: vec![(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("2"),
            )],
            ..Default::default()
        });
        assert_eq!(a.set.len(), 2);
        assert_eq!(a.set[1].1, "2");
    }
}
