//! The last step before a request goes upstream: the route's limits count
//! it, then an HTTP/2 stream takes a place among its connection's proxied
//! streams ([`crate::limits::streams`]).

use super::answer::respond;
use super::{metering, Ctx, GatehouseProxy};
use crate::snapshot::CompiledRoute;
use http::{header, HeaderValue, StatusCode};
use pingora::prelude::Result;
use pingora::protocols::Digest;
use pingora::proxy::Session;

/// `Ok(true)` when the request was answered here (a limit refused it, or
/// its HTTP/2 connection had no place for it in time).
pub(super) async fn admit(
    proxy: &GatehouseProxy,
    session: &mut Session,
    ctx: &mut Ctx,
    route: &CompiledRoute,
    rid: &HeaderValue,
) -> Result<bool> {
    if metering::apply(proxy, session, ctx, route, rid).await? {
        return Ok(true);
    }
    if !session.as_downstream().is_http2() || ctx.place.is_some() {
        return Ok(false);
    }
    // Every stream of a connection shares its digest.
    let Some(key) = session
        .digest()
        .map(|d| std::ptr::from_ref::<Digest>(d).addr())
    else {
        return Ok(false);
    };
    let Some(server) = ctx.snapshot.as_ref().map(|s| &s.config.server) else {
        return Ok(false);
    };
    let cap = usize::try_from(server.h2_max_proxied_streams).unwrap_or(usize::MAX);
    let wait = server.response_write_timeout.get();
    let metrics = &proxy.state.metrics;
    let take = proxy
        .streams
        .take(key, cap, wait, || metrics.h2_streams_waited.inc());
    // A stream reset (or a connection closed) while it waits stops
    // waiting: a client cannot pile up waiters by resetting streams and
    // opening new ones. A request body would be consumed by the watch, so
    // only bodiless requests are watched.
    let got = if session.is_body_empty() {
        tokio::pin!(take);
        tokio::select! {
            got = &mut take => got,
            watched = session.read_body_or_idle(true) => match watched {
                Err(e) => return Err(e.into_down()),
                Ok(_) => take.await,
            },
        }
    } else {
        take.await
    };
    match got {
        Ok(place) => {
            ctx.place = Some(Box::new(place));
            Ok(false)
        }
        Err(_) => {
            metrics.h2_streams_refused.inc();
            let body = super::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                "this connection has too many requests in progress; retry later",
                ctx.request_id.as_ref(),
            );
            let json = HeaderValue::from_static("application/json");
            let retry = [(header::RETRY_AFTER, HeaderValue::from_static("1"))];
            respond(
                session,
                ctx,
                StatusCode::SERVICE_UNAVAILABLE,
                &retry,
                &json,
                body,
            )
            .await?;
            Ok(true)
        }
    }
}
