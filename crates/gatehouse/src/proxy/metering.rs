//! A route's request limits, after its connectors allowed: each limit
//! counts the request in order; the first that refuses answers (429 with
//! `Retry-After`, or Mashery's 403 codes), and every answer — refused or
//! proxied — carries the usage headers the limits ask for.

use super::answer::json_error;
use super::Ctx;
use crate::meter::{Decision, Over, Subject, UsageHeaders};
use crate::snapshot::CompiledRoute;
use bytes::Bytes;
use gatehouse_config::meter::LimitErrorStyle;
use gatehouse_http::meter::{ietf_limit, mashery_headers, Usage};
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::prelude::Result;
use pingora::proxy::Session;

/// Counts the request against the route's limits (after its connectors
/// allowed): `Ok(true)` when a limit refused it and the answer was sent.
pub(super) async fn apply(
    proxy: &super::GatehouseProxy,
    session: &mut Session,
    ctx: &mut Ctx,
    route: &CompiledRoute,
    rid: &HeaderValue,
) -> Result<bool> {
    if route.limits.is_empty() {
        return Ok(false);
    }
    // The trusted client address, only for limits that count by it.
    let client = if route.limits.iter().any(|l| l.by_client_address()) {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let rules = &proxy.state.current().headers;
        crate::meter::trusted_client(peer, &session.req_header().headers, |ip| {
            rules.is_trusted(ip)
        })
    } else {
        None
    };
    let subject = Subject {
        identity: ctx.edits.verified.as_deref(),
        injected: &ctx.edits.set,
        client,
    };
    match meter(route, &subject, rid).await {
        Ok(headers) => {
            ctx.limit_headers = headers;
            Ok(false)
        }
        Err(r) => {
            super::answer::respond(session, ctx, r.status, &r.headers, &r.content_type, r.body)
                .await?;
            Ok(true)
        }
    }
}

/// A refusal, ready to send.
pub(super) struct Refusal {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub content_type: HeaderValue,
    pub body: Bytes,
}

fn header(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).ok()?,
    ))
}

/// Counts the request of `s` against the route's limits: the usage
/// headers for the response, or the refusal.
pub(super) async fn meter(
    route: &CompiledRoute,
    s: &Subject<'_>,
    request_id: &HeaderValue,
) -> Result<Vec<(HeaderName, HeaderValue)>, Refusal> {
    let mut ietf: Vec<(&str, Usage)> = Vec::new();
    let mut policies: Vec<&HeaderValue> = Vec::new();
    let mut headers = Vec::new();
    let mut refused = None;
    for l in &route.limits {
        let d = l.check(s).await;
        if let Decision::Allowed(u) | Decision::Limited(_, _, u) = d {
            match l.config.headers {
                UsageHeaders::Ietf => {
                    ietf.push((l.name.as_str(), u));
                    policies.extend(l.ietf_policy(s));
                }
                UsageHeaders::Mashery => headers.extend(
                    mashery_headers(&u)
                        .into_iter()
                        .filter_map(|(n, v)| header(n, &v)),
                ),
                UsageHeaders::None => {}
            }
        }
        match d {
            Decision::Limited(over, retry, _) => {
                refused = Some((l.name.as_str(), l.error_style(), Some((over, retry))));
                break;
            }
            Decision::StoreDown => {
                refused = Some((l.name.as_str(), l.error_style(), None));
                break;
            }
            Decision::Allowed(_) | Decision::Unkeyed => {}
        }
    }
    if let Some(limit) = ietf_limit(&ietf) {
        // The policy only changes with the config: compiled once per plan.
        let policy = match policies[..] {
            [one] => Some(one.clone()),
            _ => {
                let joined: Vec<&str> = policies.iter().filter_map(|v| v.to_str().ok()).collect();
                HeaderValue::from_str(&joined.join(", ")).ok()
            }
        };
        if let Some(p) = policy {
            headers.push((HeaderName::from_static("ratelimit-policy"), p));
        }
        headers.extend(header("ratelimit", &limit));
    }
    let Some((name, style, over)) = refused else {
        return Ok(headers);
    };
    let json = HeaderValue::from_static("application/json");
    let Some((over, retry)) = over else {
        headers.extend(header("retry-after", "1"));
        return Err(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &format!("the counts of limit {name} cannot be reached; try again"),
                Some(request_id),
            ),
            headers,
            content_type: json,
        });
    };
    headers.extend(header("retry-after", &retry.to_string()));
    Err(match style {
        LimitErrorStyle::Default => {
            let what = match over {
                Over::Rate => "over the request rate",
                Over::Quota => "over the request quota of the period",
            };
            Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                body: json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    &format!("{what} of limit {name}; retry after {retry} s"),
                    Some(request_id),
                ),
                headers,
                content_type: json,
            }
        }
        LimitErrorStyle::Mashery => {
            let (code, text) = match over {
                Over::Rate => (
                    "ERR_403_DEVELOPER_OVER_QPS",
                    "Forbidden: Account Over Queries Per Second Limit",
                ),
                Over::Quota => (
                    "ERR_403_DEVELOPER_OVER_RATE",
                    "Forbidden: Account Over Rate Limit",
                ),
            };
            headers.extend(header("x-mashery-error-code", code));
            Refusal {
                status: StatusCode::FORBIDDEN,
                body: Bytes::from(format!("{text}\n")),
                headers,
                content_type: HeaderValue::from_static("text/plain; charset=utf-8"),
            }
        }
    })
}
