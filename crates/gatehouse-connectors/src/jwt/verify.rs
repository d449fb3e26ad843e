//! The pure decision of the `jwt` kind: is this token valid under these keys
//! and rules at this instant? No I/O, no cache, no clock of its own.
//!
//! Order: structure (three base64url JSON parts) → `alg` allow-list → no
//! `typ` (`token_types`) → `crit` → key selection (`kid`, key type fitting
//! `alg`) → signature → `exp`, `nbf`, `iat`, `max_token_age` → `iss` → `aud`
//! → not an ID token (`accept_id_tokens`). The claim gate
//! (required claims → policy → injection) comes after, in the connector.

use super::rules::Rules;
use super::{Alg, KeySet};
use crate::errors::{Failure, FailureClass};
use crate::Reason;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use std::time::Duration;

/// A token taken apart, before any key is involved.
#[derive(Debug)]
pub struct Parsed<'t> {
    /// The allowed algorithm it names.
    pub alg: Alg,
    /// Its `kid`, when it has one.
    pub kid: Option<String>,
    /// Its (unverified) claims.
    pub claims: Value,
    message: &'t [u8],
    signature: &'t str,
}

/// A token that passed every check of this module.
#[derive(Debug)]
pub struct Verified {
    /// Its claims.
    pub claims: Value,
    /// `exp`, `nbf`, `iat` (re-checked on every cache hit).
    pub times: Times,
    /// Fingerprint of the key that verified it.
    pub key: u64,
}

/// A token's time claims.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Times {
    /// `exp`.
    pub exp: Option<f64>,
    /// `nbf`.
    pub nbf: Option<f64>,
    /// `iat`.
    pub iat: Option<f64>,
}

pub(crate) fn invalid(reason: Reason, code: &'static str, d: impl Into<String>) -> Failure {
    Failure::new(reason, FailureClass::InvalidToken, code, d)
}

/// Keys could not be obtained: 503.
pub fn keys_unavailable() -> Failure {
    Failure::new(
        Reason::KeysUnavailable,
        FailureClass::Unavailable,
        "JsonWebKeyNotAvailable",
        "signing keys are not available",
    )
}

fn b64_json(part: &str, what: &str) -> Result<Value, Failure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| {
            invalid(
                Reason::Malformed,
                "InvalidJWTToken",
                format!("{what} is not base64url"),
            )
        })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
        invalid(
            Reason::Malformed,
            "InvalidJWTToken",
            format!("{what} is not JSON"),
        )
    })?;
    if !v.is_object() {
        return Err(invalid(
            Reason::Malformed,
            "InvalidJWTToken",
            format!("{what} is not a JSON object"),
        ));
    }
    Ok(v)
}

/// Structure, `alg` allow-list, `crit`, `kid` and the payload.
pub fn parse<'t>(token: &'t str, rules: &Rules) -> Result<Parsed<'t>, Failure> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(
            Reason::Malformed,
            "InvalidJWTToken",
            "token must have three dot-separated parts",
        ));
    };
    let header = b64_json(h, "token header")?;
    let Some(alg_name) = header.get("alg").and_then(Value::as_str) else {
        return Err(invalid(
            Reason::Malformed,
            "AlgorithmNotSupported",
            "token header has no alg",
        ));
    };
    let alg = alg_name
        .parse::<Alg>()
        .ok()
        .filter(|a| rules.algorithms.contains(a))
        .ok_or_else(|| {
            invalid(
                Reason::AlgorithmNotAllowed,
                "AlgorithmNotSupported",
                "token algorithm is not allowed",
            )
        })?;
    check_type(rules, &header)?;
    if header.get("crit").is_some() {
        return Err(invalid(
            Reason::Malformed,
            "InvalidJWTToken",
            "token header has unsupported critical parameters",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => {
            return Err(invalid(
                Reason::Malformed,
                "InvalidJWTToken",
                "token kid is not a string",
            ))
        }
    };
    let claims = b64_json(p, "token payload")?;
    Ok(Parsed {
        alg,
        kid,
        claims,
        message: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature: sig,
    })
}

/// Every check of this module on a token: [`parse`], then [`verify_parsed`].
pub fn verify(token: &str, keys: &KeySet, rules: &Rules, now: f64) -> Result<Verified, Failure> {
    verify_parsed(parse(token, rules)?, keys, rules, now)
}

/// Key selection, signature, time claims, issuer and audience.
pub fn verify_parsed(
    p: Parsed<'_>,
    keys: &KeySet,
    rules: &Rules,
    now: f64,
) -> Result<Verified, Failure> {
    if let Some(k) = p.kid.as_deref() {
        if !keys.has_kid(k) && keys.keys.iter().all(|key| key.kid.is_some()) {
            return Err(invalid(
                Reason::UnknownKey,
                "JsonWebKeyNotAvailable",
                "no key with the token's kid",
            ));
        }
    }
    let mut tried = 0;
    let mut verified_by = None;
    for key in keys.candidates(p.alg, p.kid.as_deref()) {
        tried += 1;
        if key.verify(p.alg, p.signature, p.message) {
            verified_by = Some(key.fingerprint);
            break;
        }
    }
    let Some(key) = verified_by else {
        return Err(if tried == 0 {
            invalid(
                Reason::UnknownKey,
                "SignatureInstanceAlgorithmUnavailable",
                "no key fits the token's algorithm",
            )
        } else {
            invalid(
                Reason::BadSignature,
                "InvalidSignature",
                "signature does not verify",
            )
        });
    };
    let claims = p.claims;
    let times = Times {
        exp: numeric(&claims, "exp", "ExpIsNonNumeric")?,
        nbf: numeric(&claims, "nbf", "NbfIsNonNumeric")?,
        iat: numeric(&claims, "iat", "IatIsNonNumeric")?,
    };
    if let (Some(i), Some(e)) = (times.iat, times.exp) {
        if i > e {
            return Err(invalid(
                Reason::Malformed,
                "IatGreaterThanExpTime",
                "token iat is after its exp",
            ));
        }
    }
    check_times(rules, times, now)?;
    check_issuer(rules, &claims)?;
    check_audience(rules, &claims)?;
    check_not_id_token(rules, &claims)?;
    Ok(Verified { claims, times, key })
}

/// The JOSE header's `typ`, when present, must be one of `token_types`
/// (ASCII case-insensitively; RFC 9068 §2.1, RFC 8725 §3.11): a logout
/// token (`logout+jwt`), a DPoP proof (`dpop+jwt`) or a security event
/// (`secevent+jwt`) signed by the same keys is not an access token.
fn check_type(rules: &Rules, header: &Value) -> Result<(), Failure> {
    match header.get("typ") {
        None => Ok(()),
        Some(Value::String(t)) if rules.token_types.iter().any(|w| w.eq_ignore_ascii_case(t)) => {
            Ok(())
        }
        Some(_) => Err(invalid(
            Reason::TokenTypeNotAllowed,
            "InvalidJWTToken",
            "token type (typ) is not accepted",
        )),
    }
}

/// An ID token (OIDC Core §2: it carries `nonce`, `at_hash` or `c_hash`)
/// is made for a client, not for an API (RFC 9068 §1, RFC 8725 §3.11):
/// refused unless `accept_id_tokens`.
fn check_not_id_token(rules: &Rules, claims: &Value) -> Result<(), Failure> {
    if rules.accept_id_tokens {
        return Ok(());
    }
    if ["nonce", "at_hash", "c_hash"]
        .iter()
        .any(|c| claims.get(c).is_some())
    {
        return Err(invalid(
            Reason::IdToken,
            "InvalidJWTToken",
            "an ID token is not an access token",
        ));
    }
    Ok(())
}

fn check_issuer(rules: &Rules, claims: &Value) -> Result<(), Failure> {
    if rules.issuers.is_empty() {
        return Ok(());
    }
    match claims.get("iss") {
        None => Err(invalid(
            Reason::IssuerNotAllowed,
            "IssNotConfiguredInJWTToken",
            "token has no iss claim",
        )),
        Some(Value::String(iss)) if rules.issuers.contains(iss) => Ok(()),
        Some(Value::String(_)) => Err(invalid(
            Reason::IssuerNotAllowed,
            "IssNotAuthorized",
            "token issuer is not allowed",
        )),
        Some(_) => Err(invalid(
            Reason::IssuerNotAllowed,
            "InvalidIssWithMultipleValues",
            "token iss is not a string",
        )),
    }
}

fn check_audience(rules: &Rules, claims: &Value) -> Result<(), Failure> {
    if rules.audiences.is_empty() {
        return Ok(());
    }
    let ok = match claims.get("aud") {
        None => {
            return Err(invalid(
                Reason::AudienceNotAllowed,
                "AudNotConfiguredInJWTToken",
                "token has no aud claim",
            ))
        }
        Some(Value::String(a)) => rules.audiences.contains(a),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|a| rules.audiences.iter().any(|w| w == a)),
        Some(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(
            Reason::AudienceNotAllowed,
            "AudIsNotAuthorized",
            "token audience is not allowed",
        ))
    }
}

fn numeric(claims: &Value, name: &str, code: &'static str) -> Result<Option<f64>, Failure> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(Reason::Malformed, code, format!("{name} is not a number"))),
        Some(_) => Err(invalid(
            Reason::Malformed,
            code,
            format!("{name} is not a number"),
        )),
    }
}

/// Longest span `ago` spells out (about 1000 years).
const MAX_AGO_SECS: u64 = 1000 * 365 * 24 * 3600;

pub(crate) fn ago(secs: f64) -> String {
    // `as` saturates (NaN → 0); the text is capped at a readable length.
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    humantime::format_duration(Duration::from_secs((secs as u64).min(MAX_AGO_SECS))).to_string()
}

/// The time checks (also re-run on every cache hit).
pub fn check_times(rules: &Rules, t: Times, now: f64) -> Result<(), Failure> {
    let l = rules.leeway;
    match t.exp {
        Some(exp) if now >= exp + l => {
            return Err(invalid(
                Reason::Expired,
                "TokenExpired",
                format!("token expired {} ago", ago(now - exp)),
            ))
        }
        None if rules.require_exp => {
            return Err(invalid(
                Reason::MissingClaim,
                "ExpIsNonNumeric",
                "token has no exp claim",
            ))
        }
        _ => {}
    }
    if let Some(nbf) = t.nbf {
        if now + l < nbf {
            return Err(invalid(
                Reason::NotYetValid,
                "TokenNotAllowedBeforeNbf",
                format!("token not valid for another {}", ago(nbf - now)),
            ));
        }
    }
    if let Some(iat) = t.iat {
        if iat > now + l {
            return Err(invalid(
                Reason::IssuedInFuture,
                "IatGreaterThanCurrentTime",
                "token issued in the future",
            ));
        }
    }
    if let Some(max) = rules.max_age {
        let Some(iat) = t.iat else {
            return Err(invalid(
                Reason::MissingClaim,
                "TokenExpiryOverrideOrIatIsNonNumeric",
                "token has no iat claim (max_token_age needs one)",
            ));
        };
        if now >= iat + max + l {
            return Err(invalid(
                Reason::TooOld,
                "TokenExpired",
                format!(
                    "token older than the allowed age by {}",
                    ago(now - iat - max)
                ),
            ));
        }
    }
    Ok(())
}

/// The `iss` of an unverified token: `None` when the payload does not
/// decode (the full check reports it), `Some(None)` when it has no string `iss`.
pub fn unverified_issuer(token: &str) -> Option<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<Value>,
    }
    let bytes = crate::kit::unverified_payload(token)?;
    let p: Iss = serde_json::from_slice(&bytes).ok()?;
    Some(match p.iss {
        Some(Value::String(s)) => Some(s),
        _ => None,
    })
}

/// The `cnf."x5t#S256"` of verified claims (RFC 8705 §3.1), when it is a string.
pub fn confirmation_thumbprint(claims: &Value) -> Option<&str> {
    claims.get("cnf")?.get("x5t#S256")?.as_str()
}

/// RFC 8705 §3: a certificate-bound token is accepted only on a connection
/// that presented the certificate it is bound to. `bound_to` is the token's
/// `cnf."x5t#S256"`; `peer` the thumbprint of the connection's verified
/// client certificate.
pub fn check_binding(bound_to: Option<&str>, peer: Option<&str>) -> Result<(), Failure> {
    let code = "InvalidJWTToken";
    match (bound_to, peer) {
        (_, None) => Err(invalid(
            Reason::CertificateMismatch,
            code,
            "the token must be presented with a client certificate (mutual TLS)",
        )),
        (None, Some(_)) => Err(invalid(
            Reason::CertificateMismatch,
            code,
            "the token is not bound to a certificate (no cnf.x5t#S256 claim)",
        )),
        (Some(b), Some(p)) if b == p => Ok(()),
        (Some(_), Some(_)) => Err(invalid(
            Reason::CertificateMismatch,
            code,
            "the token is bound to another client certificate",
        )),
    }
}
