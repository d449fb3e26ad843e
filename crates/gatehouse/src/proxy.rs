//! The Pingora `ProxyHttp` implementation: route, run the connector chain,
//! proxy, record.

use crate::limits::streams::{ProxiedStreams, StreamPlace};
use crate::metrics::UpgradeResult;
use crate::snapshot::Snapshot;
use crate::state::State;
use crate::upstream::Peer;
use answer::{access_log, failure, json_error, loggable, respond, respond_json_error};
use async_trait::async_trait;
use gatehouse_connectors::{run_chain, ChainOutcome, HeaderEdits, Reason, Rejection, RequestView};
use gatehouse_http::canonical::{canonicalise, RawRequest};
use gatehouse_http::cors::CorsPolicy;
use gatehouse_http::headers::{X_FORWARDED_FOR, X_FORWARDED_PROTO};
use gatehouse_http::upgrade::{self, Ask};
use http::{header, HeaderValue, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpUpstreamRequestPolicy;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod answer;
mod edge;
mod metering;
mod place;
mod request;

use request::{new_request_id, remove_query_params, valid_request_id};

const X_REQUEST_ID: &str = "x-request-id";
const MAX_REQUEST_ID_LEN: usize = 128;

/// The proxy application.
pub struct GatehouseProxy {
    /// Shared process state (current snapshot, metrics, flags).
    pub state: Arc<State>,
    /// Places of the HTTP/2 streams being proxied, per connection.
    pub streams: Arc<ProxiedStreams>,
}

/// Per-request state carried through the hooks.
pub struct Ctx {
    start: Instant,
    snapshot: Option<Arc<Snapshot>>,
    route: Option<usize>,
    request_id: Option<HeaderValue>,
    /// The request already carries exactly this id (one valid `X-Request-Id`
    /// from the client), so the upstream request needs no rewrite.
    request_id_in_place: bool,
    edits: HeaderEdits,
    /// The canonical target, when the received one differs from it.
    upstream_target: Option<http::Uri>,
    /// The canonical `Host`, when the received one differs from it.
    upstream_host: Option<HeaderValue>,
    upstream_start: Option<Instant>,
    /// The peer of the current upstream attempt.
    peer: Option<Arc<Peer>>,
    /// Addresses whose connection failed for this request (not tried again
    /// while another peer is left).
    failed: Vec<SocketAddr>,
    /// The step and member whose refusal answered, and why.
    rejected: Option<(usize, usize, Reason)>,
    /// The `Sec-WebSocket-Accept` an allowed WebSocket handshake expects;
    /// `None`: any `101` from the upstream is refused.
    upgrade_accept: Option<HeaderValue>,
    /// Usage headers of the route's limits, added to the response.
    limit_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// The `Access-Control-Allow-Origin` of an allowed origin on a route
    /// with a CORS policy.
    cors_origin: Option<HeaderValue>,
    /// The request is a CORS preflight the route's policy answers.
    preflight: bool,
    /// This HTTP/2 stream's place among its connection's proxied streams,
    /// held until the stream ends.
    place: Option<Box<StreamPlace>>,
    _inflight: InflightGuard,
}

struct InflightGuard(Arc<State>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

impl GatehouseProxy {
    /// Answers 431 to a request whose head is `size` bytes, over
    /// `server.max_request_header_bytes`: nothing is forwarded and the
    /// connection is closed. Always `Ok(true)` (answered).
    async fn refuse_large_head(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        size: usize,
    ) -> Result<bool> {
        self.state.metrics.request_heads_refused.inc();
        session.set_keepalive(None);
        let description = format!(
            "the request head is {size} bytes, more than this server accepts (server.max_request_header_bytes)"
        );
        respond_json_error(
            session,
            ctx,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_too_large",
            &description,
        )
        .await?;
        Ok(true)
    }

    fn route<'a>(&self, ctx: &'a Ctx) -> Option<&'a crate::snapshot::CompiledRoute> {
        ctx.snapshot
            .as_ref()
            .zip(ctx.route)
            .and_then(|(s, i)| s.routes.get(i))
    }
}

#[async_trait]
impl ProxyHttp for GatehouseProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        self.state.request_started();
        Ctx {
            start: Instant::now(),
            snapshot: None,
            route: None,
            request_id: None,
            request_id_in_place: false,
            edits: HeaderEdits::none(),
            upstream_target: None,
            upstream_host: None,
            upstream_start: None,
            peer: None,
            failed: Vec::new(),
            rejected: None,
            upgrade_accept: None,
            limit_headers: Vec::new(),
            cors_origin: None,
            preflight: false,
            place: None,
            _inflight: InflightGuard(self.state.clone()),
        }
    }

    /// HTTP/2 streams get `server.response_write_timeout` here (HTTP/1
    /// sessions get theirs, and the body read timeout, in [`crate::limits::Gate`]).
    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        crate::limits::head_read(session);
        if session.is_http2() {
            let write = self.state.current().config.server.response_write_timeout;
            session.set_write_timeout(Some(write.get()));
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let snapshot = self.state.current();
        ctx.snapshot = Some(snapshot.clone());
        let req = session.req_header();
        let mut sent = req.headers.get_all(X_REQUEST_ID).iter();
        let rid = match (sent.next(), sent.next()) {
            (Some(v), None) if valid_request_id(v) => {
                ctx.request_id_in_place = true;
                v.clone()
            }
            (Some(v), Some(_)) if valid_request_id(v) => v.clone(),
            _ => new_request_id(),
        };
        ctx.request_id = Some(rid.clone());
        if let Some(size) =
            crate::limits::head_over(req, snapshot.config.server.max_request_header_bytes)
        {
            return self.refuse_large_head(session, ctx, size).await;
        }

        if crate::tls::client_certificate_refused(session) {
            respond_json_error(
                session,
                ctx,
                StatusCode::FORBIDDEN,
                "client_certificate_refused",
                "the client certificate of this TLS session is no longer accepted; reconnect with a valid certificate",
            )
            .await?;
            return Ok(true);
        }

        let raw = RawRequest {
            method: &req.method,
            target: req.raw_path(),
            uri_authority: req.uri.authority().map(|a| a.as_str()),
            needs_host: req.version == http::Version::HTTP_11,
        };
        let hosts = req
            .headers
            .get_all(header::HOST)
            .iter()
            .map(HeaderValue::as_bytes);
        let canon = match canonicalise(raw, hosts, snapshot.path_rules) {
            Ok(c) => c,
            Err(refusal) => {
                respond_json_error(
                    session,
                    ctx,
                    StatusCode::BAD_REQUEST,
                    refusal.error(),
                    refusal.description(),
                )
                .await?;
                return Ok(true);
            }
        };
        // A CORS preflight is routed by the method it asks for; a route with
        // a policy answers it (below), before any connector.
        let host = canon.host.as_ref().map(|h| h.name.as_ref());
        let preflight = CorsPolicy::preflight_method(&req.method, &req.headers)
            .and_then(|m| snapshot.router.find(host, &canon.path, &m))
            .filter(|&i| snapshot.routes[i].edge.cors.is_some());
        ctx.preflight = preflight.is_some();
        let found = preflight.or_else(|| snapshot.router.find(host, &canon.path, &req.method));
        if canon.rewrite_target {
            ctx.upstream_target = http::Uri::try_from(canon.target()).ok();
            if ctx.upstream_target.is_none() {
                respond_json_error(
                    session,
                    ctx,
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    "the request target cannot be forwarded",
                )
                .await?;
                return Ok(true);
            }
        }
        if canon.rewrite_host {
            ctx.upstream_host = canon
                .host
                .as_ref()
                .and_then(|h| HeaderValue::from_str(&h.header_value()).ok());
        }
        let Some(idx) = found else {
            respond_json_error(
                session,
                ctx,
                StatusCode::NOT_FOUND,
                "no_route",
                "no route matches this request",
            )
            .await?;
            return Ok(true);
        };
        ctx.route = Some(idx);
        let route = &snapshot.routes[idx];
        if let Some(target) = edge::rewritten_target(&route.edge, &canon) {
            ctx.upstream_target = target;
            if ctx.upstream_target.is_none() {
                respond_json_error(
                    session,
                    ctx,
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    "the rewritten request target cannot be forwarded",
                )
                .await?;
                return Ok(true);
            }
        }
        if let Some(cors) = &route.edge.cors {
            if ctx.preflight {
                return edge::answer_preflight(session, ctx, cors).await;
            }
            ctx.cors_origin = cors.allowed_origin(&session.req_header().headers);
        }
        let req = session.req_header();
        match upgrade::classify(req.version, &req.method, &req.headers, &route.upgrades) {
            Ask::None => {}
            Ask::Strip => {
                self.state.metrics.upgrades[UpgradeResult::Stripped as usize].inc();
                // Removed before Pingora reads the request as an upgrade.
                session.req_header_mut().remove_header(&header::UPGRADE);
            }
            Ask::Refuse(description) => {
                session.set_keepalive(None);
                respond_json_error(
                    session,
                    ctx,
                    StatusCode::BAD_REQUEST,
                    "invalid_upgrade",
                    description,
                )
                .await?;
                return Ok(true);
            }
            Ask::Websocket { accept } => ctx.upgrade_accept = Some(accept),
        }
        if route.chain.is_empty() {
            return place::admit(self, session, ctx, route, &rid).await;
        }
        let watch = route.watch_client && session.is_body_empty();
        let req = session.req_header();

        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let rid_str = rid.to_str().unwrap_or("");
        let observe = |s: usize, m: usize, ok: bool, d: Duration| {
            route.chain_metrics[s][m].observe(ok, d);
            if ok && route.chain[s].members.len() > 1 {
                route.metrics.group_allow(route.chain[s].members[m].name());
            }
        };
        let outcome = if watch {
            // The chain may call an identity provider: run it while watching
            // the client, so a client that goes away cancels the call. The
            // head is copied so the session is free to be watched.
            let head = req.clone();
            let tls = session.digest().and_then(|d| d.ssl_digest.clone());
            let view = RequestView {
                method: &head.method,
                uri: &head.uri,
                headers: &head.headers,
                client,
                request_id: rid_str,
                peer_cert: tls
                    .as_ref()
                    .and_then(|t| t.extension.get::<gatehouse_connectors::PeerCertificate>()),
                verified: None,
            };
            let chain = run_chain(&route.chain, &view, observe);
            tokio::pin!(chain);
            tokio::select! {
                outcome = &mut chain => outcome,
                watched = session.read_body_or_idle(true) => match watched {
                    Err(e) => {
                        self.state.metrics.abandoned_checks.inc();
                        return Err(e.into_down());
                    }
                    Ok(_) => chain.await,
                },
            }
        } else {
            let view = RequestView {
                method: &req.method,
                uri: &req.uri,
                headers: &req.headers,
                client,
                request_id: rid_str,
                peer_cert: crate::tls::session_peer(session),
                verified: None,
            };
            run_chain(&route.chain, &view, observe).await
        };
        match outcome {
            ChainOutcome::Allow(edits) => {
                ctx.edits = edits;
                place::admit(self, session, ctx, route, &rid).await
            }
            ChainOutcome::Deny {
                step,
                member,
                denial,
            } => {
                let Rejection {
                    status,
                    reason,
                    headers,
                    content_type,
                    body,
                } = denial.rejection;
                let connector = route.chain[step].members[member].name();
                route.metrics.reject(connector, reason);
                ctx.rejected = Some((step, member, reason));
                tracing::debug!(route = %route.name, connector, %reason, status = status.as_u16(), description = %denial.failure.description, "request rejected");
                respond(session, ctx, status, &headers, &content_type, body).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(route) = self.route(ctx) else {
            return Err(Error::explain(InternalError, "no route selected"));
        };
        let Some(peer) = route.upstream.select(&ctx.failed) else {
            return Err(Error::explain(InternalError, "the upstream has no address"));
        };
        let mut http = Box::new(peer.http.clone());
        if ctx.upgrade_accept.is_none() {
            // Belt and braces: no upgrade field reaches the upstream unless
            // the route allowed this request's handshake.
            http.options.http_upstream_request_policy = HttpUpstreamRequestPolicy::deny_upgrades();
        }
        ctx.peer = Some(peer);
        ctx.upstream_start = Some(Instant::now());
        Ok(http)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let peer = ctx.peer.take();
        if let Some(p) = &peer {
            ctx.failed.push(p.addr);
        }
        // Nothing was sent upstream yet: another peer may take the request.
        let retry = self
            .route(ctx)
            .is_some_and(|r| r.upstream.connect_failed(peer.as_deref(), ctx.failed.len()));
        e.set_retry(retry);
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(p) = &ctx.peer {
            p.connected();
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(snapshot) = ctx.snapshot.as_ref() else {
            return Ok(());
        };
        let rules = &snapshot.headers;
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let trusted = rules.is_trusted(peer);
        if let Some(uri) = ctx.upstream_target.clone() {
            up.set_uri(uri);
        }
        if let Some(host) = ctx.upstream_host.clone() {
            up.insert_header(header::HOST, host)?;
        }
        let xff = peer.map(|ip| rules.forwarded_for(&up.headers, ip, trusted));
        let proto = rules
            .trusted_proto(&up.headers, trusted)
            .cloned()
            .unwrap_or_else(|| {
                let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
                HeaderValue::from_static(if tls { "https" } else { "http" })
            });
        for (h, why) in rules.to_remove(&up.headers, trusted) {
            self.state.metrics.headers_dropped[why as usize].inc();
            up.remove_header(&h);
        }
        if let Some(route) = self.route(ctx) {
            edge::request_rules(&route.edge, up)?;
        }
        for h in &ctx.edits.remove {
            up.remove_header(h);
        }
        for (n, v) in &ctx.edits.set {
            up.insert_header(n.clone(), v.clone())?;
        }
        if !ctx.edits.remove_query_params.is_empty() {
            if let Some(uri) = remove_query_params(&up.uri, &ctx.edits.remove_query_params) {
                up.set_uri(uri);
            }
        }
        if let Some(xff) = xff {
            up.insert_header(X_FORWARDED_FOR, xff)?;
        }
        up.insert_header(X_FORWARDED_PROTO, proto)?;
        if let Some(id) = ctx.request_id.as_ref().filter(|_| !ctx.request_id_in_place) {
            up.insert_header(X_REQUEST_ID, id.clone())?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(route), Some(t)) = (self.route(ctx), ctx.upstream_start) {
            route.metrics.observe_upstream(t.elapsed());
        }
        if resp.status == StatusCode::SWITCHING_PROTOCOLS {
            let complete = ctx
                .upgrade_accept
                .as_ref()
                .is_some_and(|accept| upgrade::completes(&resp.headers, accept));
            let result = if complete {
                UpgradeResult::Tunnelled
            } else {
                UpgradeResult::BadHandshake
            };
            self.state.metrics.upgrades[result as usize].inc();
            if !complete {
                return Err(Error::explain(
                    InvalidHTTPHeader,
                    "the upstream's 101 does not complete the client's WebSocket handshake (or the route allows no upgrade)",
                )
                .into_up());
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(id) = &ctx.request_id {
            resp.insert_header(X_REQUEST_ID, id.clone())?;
        }
        // Ours replace any the upstream sent: usage is what Gatehouse counted.
        for (n, v) in &ctx.limit_headers {
            resp.insert_header(n.clone(), v.clone())?;
        }
        edge::finish(ctx, resp)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let (code, error, description) = failure(e);
        if code > 0 {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = json_error(status, error, description, ctx.request_id.as_ref());
            let mut resp = ResponseHeader::build(status, Some(3)).ok();
            if let Some(r) = resp.as_mut() {
                let _ = r.insert_header(header::CONTENT_TYPE, "application/json");
                let _ = r.insert_header(header::CONTENT_LENGTH, body.len().to_string());
                if let Some(id) = &ctx.request_id {
                    let _ = r.insert_header(X_REQUEST_ID, id.clone());
                }
                let _ = edge::finish(ctx, r);
            }
            if let Some(r) = resp {
                if let Err(err) = session.as_mut().write_error_response(r, body).await {
                    tracing::debug!("could not send error response: {err}");
                }
            }
        }
        match self.route(ctx) {
            _ if code == 0 => tracing::debug!("client went away: {e}"),
            Some(route) => {
                tracing::warn!(route = %route.name, upstream = %route.upstream.name, status = code, "proxy error: {}", loggable(e))
            }
            None => tracing::warn!(status = code, "request failed: {}", loggable(e)),
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        // fail_to_proxy logs every failure once, with the route and upstream.
        true
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.start.elapsed();
        let Some(snapshot) = ctx.snapshot.as_ref() else {
            return;
        };
        let route = ctx.route.and_then(|i| snapshot.routes.get(i));
        match route {
            Some(r) => r.metrics.observe(status, elapsed),
            None => snapshot.unmatched.observe(status, elapsed),
        }
        if snapshot.config.server.access_log {
            access_log(
                session,
                ctx,
                route.map_or("_none", |r| r.name.as_str()),
                status,
                elapsed,
            );
        }
    }
}

#[cfg(test)]
mod tests;
