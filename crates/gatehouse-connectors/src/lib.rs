//! Gatehouse connectors: the decision logic that stands between a client and
//! an upstream.
//!
//! A [`Connector`] looks at a [`RequestView`] (method, URI, headers, client
//! address — no Pingora types) and returns a [`Verdict`]: allow, with
//! [`HeaderEdits`] to apply to the upstream request, or deny, with a
//! [`Denial`]: the typed [`errors::Failure`] next to the [`Rejection`] sent to
//! the client. A route runs its steps in order with [`run_chain`]; a [`Step`]
//! is one connector or an any-of group whose first allowing member wins.
//!
//! Connectors are built from their `[connectors.NAME]` config section by a
//! [`ConnectorFactory`] registered in a [`Registry`] under its `kind`; the
//! factory also gives the section's JSON Schema and the kind's
//! [`Capabilities`], so the proxy crate never names a kind.
//!
//! # Layout
//!
//! - one folder per kind: [`jwt`], [`userinfo`] — settings, compiled rules, a
//!   pure decision, a thin fetch layer, cache, metrics;
//! - [`kit`]: what every kind shares (common settings, token intake, claim
//!   gate, error responder, clock) — **read its docs before adding a kind**:
//!   a new kind is one folder and one line in [`Registry::builtin`];
//! - building blocks the kit and the fuzz targets use: [`token`] (intake),
//!   [`policy`], [`inject`], [`claims`], [`errors`], [`outbound`], [`files`],
//!   [`limits`], [`metrics`].

pub mod apikey;
mod chain;
pub mod claims;
pub mod errors;
pub mod files;
pub mod inject;
pub mod introspection;
pub mod jwt;
pub mod kit;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod policy;
mod registry;
pub mod shared;
pub mod token;
pub mod userinfo;
mod verdict;

pub use chain::{run_chain, run_chain_traced, ChainOutcome, Said, Step};
pub use registry::{BuildContext, Capabilities, ConnectorFactory, Registry};
pub use verdict::{Denial, HeaderEdits, PeerCertificate, Reason, Rejection, RequestView, Verdict};

use async_trait::async_trait;

/// One authentication or authorization step, built once per config load and
/// shared by every request of every route that lists it.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The instance name from the config (`[connectors.NAME]`).
    fn name(&self) -> &str;

    /// The kind this instance was built from (`jwt`, `oidc_userinfo`, …).
    fn kind(&self) -> &str;

    /// Decides on one request.
    async fn check(&self, req: &RequestView<'_>) -> Verdict;

    /// A cheap look at the request before [`Connector::check`], made only for
    /// members of an any-of group: `Some` skips the member at once when the
    /// credential is plainly not its own (a JWT from an issuer it does not
    /// accept), so the group moves on without verifying a signature. The
    /// failure is rendered (with [`Connector::refuse`]) only if it ends up
    /// answering the client.
    fn precheck(&self, _req: &RequestView<'_>) -> Option<errors::Failure> {
        None
    }

    /// Renders `failure` as this connector renders its refusals (realm,
    /// error style, custom body). The default is a plain RFC 6750-like JSON
    /// answer; connectors that implement [`Connector::precheck`] override it.
    fn refuse(&self, failure: errors::Failure, _req: &RequestView<'_>) -> Denial {
        let status = failure.class.status();
        let r = Rejection::json(
            status,
            failure.reason,
            "access_denied",
            &failure.description,
        );
        Denial::new(failure, r)
    }

    /// Headers this connector may inject upstream. Client-supplied copies of
    /// them are removed from every request on a route that uses the
    /// connector, whether or not the connector sets them, so identity headers
    /// upstream can only come from Gatehouse.
    fn injected_headers(&self) -> &[http::HeaderName] {
        &[]
    }

    /// Where this connector reads its token (empty: it reads none). An
    /// any-of group reads the union of its members' sources: a token in the
    /// carriers of two members is ambiguous, and the carriers of the members
    /// that did not allow are stripped by their own rule
    /// ([`Connector::forwards_token`]).
    fn token_sources(&self) -> &[token::TokenSource] {
        &[]
    }

    /// True when the token's carrier stays on the upstream request
    /// (`forward_authorization`); a query carrier is removed either way.
    fn forwards_token(&self) -> bool {
        true
    }

    /// What `gatehouse check` should warn about in this connector's
    /// settings (e.g. a JWT connector that would accept ID tokens).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// True when a check may make an outbound call (an identity provider)
    /// that is worth cancelling when the client goes away: the proxy then
    /// runs the chain while it watches the client connection.
    fn calls_out(&self) -> bool {
        false
    }

    /// True when this connector reads its credential from the identity an
    /// earlier step of the route verified ([`RequestView::verified`]): a
    /// route must put a verifying step before it (`gatehouse check` refuses
    /// it in the first step).
    fn reads_verified(&self) -> bool {
        false
    }

    /// True when this connector refuses every request that arrives without
    /// a verified client certificate (e.g. certificate-bound tokens), so
    /// `gatehouse check` can warn when no listener asks for one.
    fn needs_client_certificate(&self) -> bool {
        false
    }
}
