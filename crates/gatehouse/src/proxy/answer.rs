//! What the proxy answers on its own — refusals, errors, the JSON error
//! body — and what it logs about a request or a failure.

use super::{Ctx, X_REQUEST_ID};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::ErrorSource;
use std::time::Duration;

/// Writes a complete response from `request_filter`.
/// The answer carries the request id and, once a route is chosen, its CORS
/// headers and response header rules.
pub(super) async fn respond(
    session: &mut Session,
    ctx: &Ctx,
    status: StatusCode,
    headers: &[(http::HeaderName, HeaderValue)],
    content_type: &HeaderValue,
    body: Bytes,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(header::CONTENT_TYPE, content_type.clone())?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    for (n, v) in headers {
        resp.append_header(n.clone(), v.clone())?;
    }
    if let Some(id) = &ctx.request_id {
        resp.insert_header(X_REQUEST_ID, id.clone())?;
    }
    super::edge::finish(ctx, &mut resp)?;
    // A request body we did not read must not be taken for the next request.
    if !session.is_body_empty() {
        session.set_keepalive(None);
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only || body.is_empty())
        .await?;
    if !head_only && !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Answers with one of Gatehouse's own JSON errors.
pub(super) async fn respond_json_error(
    session: &mut Session,
    ctx: &Ctx,
    status: StatusCode,
    error: &str,
    description: &str,
) -> Result<()> {
    let body = json_error(status, error, description, ctx.request_id.as_ref());
    let json = HeaderValue::from_static("application/json");
    respond(session, ctx, status, &[], &json, body).await
}

/// The JSON body of one of Gatehouse's own errors.
pub(super) fn json_error(
    status: StatusCode,
    error: &str,
    description: &str,
    request_id: Option<&HeaderValue>,
) -> Bytes {
    let rid = request_id.and_then(|v| v.to_str().ok()).unwrap_or("");
    Bytes::from(
        serde_json::json!({ "error": error, "error_description": description, "request_id": rid, "status": status.as_u16() })
            .to_string(),
    )
}

/// The status, `error` and `error_description` answering a failed request
/// (status 0: the client went away, nothing is answered).
pub(super) fn failure(e: &Error) -> (u16, &'static str, &'static str) {
    match e.etype() {
        HTTPStatus(code) => (*code, "error", "request failed"),
        ConnectTimedout | TLSHandshakeTimedout => (
            504,
            "upstream_timeout",
            "the upstream did not accept the connection in time",
        ),
        ReadTimedout | WriteTimedout if e.esource() == &ErrorSource::Upstream => (
            504,
            "upstream_timeout",
            "the upstream did not answer in time",
        ),
        // `server.request_body_timeout` (NGINX answers 408 too).
        ReadTimedout if e.esource() == &ErrorSource::Downstream => (
            408,
            "request_timeout",
            "the request body did not arrive in time",
        ),
        _ => match e.esource() {
            ErrorSource::Upstream => (502, "bad_gateway", "the upstream is unreachable or failed"),
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => (0, "", ""),
                _ => (400, "bad_request", "the request could not be read"),
            },
            _ => (500, "internal_error", "internal error"),
        },
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An error as it may be logged. Pingora's parse errors carry the bytes
/// the upstream sent (`buf: …`), which can echo request headers such as
/// `Authorization`: only their first line (the status line) is kept, and
/// the whole text is bounded.
pub(super) fn loggable(e: &Error) -> String {
    const MAX: usize = 512;
    const STATUS_LINE_MAX: usize = 128;
    let full = e.to_string();
    match full.find("buf: ") {
        None => prefix(&full, MAX).to_string(),
        Some(i) => {
            let rest = &full[i + 5..];
            // The bytes are escaped (`\r\n`): the status line ends at the first.
            let line_end = ["\\r", "\\n", " cause:"]
                .iter()
                .filter_map(|m| rest.find(m))
                .min()
                .unwrap_or(rest.len());
            format!(
                "{}status line: {} (the rest of the upstream's bytes are not logged)",
                &full[..i],
                prefix(&rest[..line_end], STATUS_LINE_MAX)
            )
        }
    }
}

/// One access-log line. Never the query string (it may carry a token), never
/// credentials or cookies.
pub(super) fn access_log(
    session: &Session,
    ctx: &Ctx,
    route: &str,
    status: u16,
    elapsed: Duration,
) {
    let req = session.req_header();
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let (connector, reason) = match (ctx.rejected, ctx.snapshot.as_ref(), ctx.route) {
        (Some((step, member, reason)), Some(s), Some(r)) => (
            s.routes[r]
                .chain
                .get(step)
                .and_then(|st| st.members.get(member))
                .map_or("", |c| c.name()),
            reason.as_str(),
        ),
        _ => ("", ""),
    };
    tracing::info!(
        target: "gatehouse::access",
        method = %req.method,
        path = req.uri.path(),
        status,
        route,
        duration_us = elapsed.as_micros() as u64,
        client = %client,
        request_id = ctx.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
        connector,
        reason,
        "request"
    );
}
