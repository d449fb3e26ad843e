//! A route's edge settings applied to Pingora's request and response
//! heads: the preflight answer, the CORS headers of every other answer, the
//! path rewrite and the header rules (compiled in [`crate::edge`]).

use super::answer::{json_error, respond};
use super::Ctx;
use crate::edge::RouteEdge;
use bytes::Bytes;
use gatehouse_http::canonical::CanonicalRequest;
use gatehouse_http::cors::{is_cors_response_header, CorsPolicy};
use http::{header, HeaderName, HeaderValue, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Result;
use pingora::proxy::Session;

/// Answers a CORS preflight for a route with a policy, before any
/// connector runs: 204 with the allow headers, or 403 `cors_refused` with
/// none. Nothing reaches the upstream either way.
pub(super) async fn answer_preflight(
    session: &mut Session,
    ctx: &Ctx,
    cors: &CorsPolicy,
) -> Result<bool> {
    match cors.preflight(&session.req_header().headers) {
        Ok(headers) => {
            let empty = HeaderValue::from_static("text/plain");
            respond(
                session,
                ctx,
                StatusCode::NO_CONTENT,
                &headers,
                &empty,
                Bytes::new(),
            )
            .await?;
        }
        Err(refusal) => {
            let status = StatusCode::FORBIDDEN;
            let body = json_error(
                status,
                "cors_refused",
                refusal.description(),
                ctx.request_id.as_ref(),
            );
            let json = HeaderValue::from_static("application/json");
            let vary = [CorsPolicy::preflight_vary()];
            respond(session, ctx, status, &vary, &json, body).await?;
        }
    }
    Ok(true)
}

/// The upstream target once `rewrite_prefix` replaced the matched prefix of
/// the canonical path (the query kept); `None` when the route has no rewrite.
pub(super) fn rewritten_target(
    edge: &RouteEdge,
    canon: &CanonicalRequest<'_>,
) -> Option<Option<http::Uri>> {
    let rw = edge.rewrite.as_ref()?;
    let path = rw.apply(&canon.path)?;
    let target = match &canon.query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    Some(http::Uri::try_from(target).ok())
}

/// `[routes.request_headers]` on the request sent upstream: every
/// spelling of a named header removed, then the `set` ones inserted.
pub(super) fn request_rules(edge: &RouteEdge, up: &mut RequestHeader) -> Result<()> {
    if edge.request.is_empty() {
        return Ok(());
    }
    for n in edge.request.to_remove(&up.headers) {
        up.remove_header(&n);
    }
    for (n, v) in edge.request.to_set() {
        up.insert_header(n.clone(), v.clone())?;
    }
    Ok(())
}

/// What every answer of the route gets, Gatehouse's own and the
/// upstream's: on a route with a CORS policy, the upstream's
/// `Access-Control-*` headers replaced by the policy's for the request's
/// origin (and `Vary: Origin`), after `[routes.response_headers]`.
/// A preflight's answer carries its own CORS headers already.
pub(super) fn finish(ctx: &Ctx, resp: &mut ResponseHeader) -> Result<()> {
    let Some(route) = ctx
        .snapshot
        .as_ref()
        .zip(ctx.route)
        .and_then(|(s, i)| s.routes.get(i))
    else {
        return Ok(());
    };
    let edge = &route.edge;
    // The route's rules first: a rule setting or removing `Vary` must not
    // drop the policy's `Vary: Origin` (a shared cache would then serve one
    // origin's grant to another). A preflight's answer has its `Vary`
    // already: a rule adds to it.
    let own_vary = ctx.preflight && edge.cors.is_some();
    for n in edge.response.to_remove(&resp.headers) {
        if !(own_vary && n == header::VARY) {
            resp.remove_header(&n);
        }
    }
    for (n, v) in edge.response.to_set() {
        if own_vary && n == header::VARY {
            resp.append_header(n.clone(), v.clone())?;
        } else {
            resp.insert_header(n.clone(), v.clone())?;
        }
    }
    if let (Some(cors), false) = (&edge.cors, ctx.preflight) {
        let upstream_cors: Vec<HeaderName> = resp
            .headers
            .keys()
            .filter(|n| is_cors_response_header(n))
            .cloned()
            .collect();
        for n in upstream_cors {
            resp.remove_header(&n);
        }
        for (n, v) in cors.answer_headers(ctx.cors_origin.as_ref()) {
            if n == header::VARY {
                resp.append_header(n, v)?;
            } else {
                resp.insert_header(n, v)?;
            }
        }
    }
    Ok(())
}
