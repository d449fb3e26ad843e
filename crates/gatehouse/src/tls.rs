//! TLS listeners: the certificates of the serving snapshot chosen per
//! handshake by SNI, handshake metrics, client certificates judged per
//! connection. Loading certificates (and the client-CA verifier) is
//! [`crate::certs`], which knows nothing of the serving state.
//!
//! How this sits on Pingora 0.9 (`pingora-core/src/listeners/tls/rustls/mod.rs`):
//! `TlsSettings::set_cert_resolver` installs our [`SniResolver`] as the
//! rustls `ResolvesServerCert` of the listener's `ServerConfig`, and
//! `TlsSettings::with_callbacks` our [`HandshakeCallbacks`] (Pingora calls
//! `handshake_complete_callback` after every successful handshake). The
//! resolver does not own certificates: it reads them from the serving
//! [`Snapshot`](crate::snapshot::Snapshot) (one `ArcSwap` load per
//! handshake), so a reload that swaps the snapshot swaps the certificates for
//! every new handshake at once; open connections keep the session they have.
//!
//! What Pingora 0.9 does not let us set: `TlsSettings::build` always builds
//! the `ServerConfig` with TLS 1.2 and 1.3 (`builder_with_protocol_versions(
//! &[&TLS12, &TLS13])`). Refusing a ClientHello without TLS 1.3 cipher suites
//! in the resolver was tried and is not enforcement (a TLS 1.2-only rustls
//! client still lists 1.3 suites and got through; test
//! `tls::min_version_1_3_is_refused_until_it_can_be_enforced`), so the
//! configuration refuses `min_version = "1.3"` until Pingora lets the versions
//! be set.
//! Nor does it report failed handshakes to a hook: `gatehouse_tls_handshakes_total`
//! counts successful handshakes (by version) and those refused here; the
//! ClientHellos that reached certificate selection are counted separately.

mod client_auth;

pub use client_auth::{client_certificate_refused, client_certificate_warnings, session_peer};

use crate::certs::{unix_now, CompiledTls};
use crate::state::State;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// Sets `gatehouse_tls_certificate_expiry_seconds` from the serving
/// certificates (called when `/metrics` is scraped, so the value is current
/// and certificates no longer served disappear).
pub fn refresh_expiry(state: &State) {
    let g = &state.metrics.tls_cert_expiry;
    g.reset();
    let now = unix_now();
    for t in &state.current().tls {
        for c in &t.certs.certs {
            g.with_label_values(&[c.cert_file.display().to_string().as_str()])
                .set((c.not_after - now) as f64);
        }
    }
}

/// The certificate resolver of the `index`-th `[[server.tls]]` entry: reads
/// the certificates of the serving snapshot, falling back to those loaded at
/// start if a reload removed the entry (listeners change only on restart).
pub struct SniResolver {
    state: Arc<State>,
    index: usize,
    fallback: Arc<CompiledTls>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let m = &self.state.metrics;
        m.tls_client_hellos.inc();
        let snap = self.state.current();
        let set = snap.tls.get(self.index).unwrap_or(&self.fallback);
        Some(set.certs.select(hello.server_name()).key.clone())
    }
}

/// Pingora's post-handshake hook: counts the handshake by TLS version and
/// attaches the client certificate, if any.
pub struct HandshakeCallbacks {
    state: Arc<State>,
    /// The `[[server.tls]]` entry of the listener.
    index: usize,
}

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for HandshakeCallbacks {
    async fn handshake_complete_callback(
        &self,
        tls: &pingora::protocols::tls::TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let version = match tls.version() {
            Some("TLSv1.3" | "TLSv1_3") => "TLSv1_3",
            Some("TLSv1.2" | "TLSv1_2") => "TLSv1_2",
            _ => "other",
        };
        self.state
            .metrics
            .tls_handshakes
            .with_label_values(&["success", version])
            .inc();
        client_auth::judge_peer(&self.state, self.index, tls)
    }
}

/// The Pingora TLS settings of the `index`-th `[[server.tls]]` entry.
pub fn settings(
    state: &Arc<State>,
    index: usize,
    initial: Arc<CompiledTls>,
) -> anyhow::Result<pingora::listeners::tls::TlsSettings> {
    let mut s =
        pingora::listeners::tls::TlsSettings::with_callbacks(Box::new(HandshakeCallbacks {
            state: state.clone(),
            index,
        }))
        .map_err(|e| anyhow::anyhow!("server.tls[{index}]: {e}"))?;
    if let Some(v) = initial.client_verifier.clone() {
        s.set_client_cert_verifier(Arc::new(client_auth::ReloadingVerifier::new(
            state.clone(),
            index,
            v,
        )));
    }
    s.set_cert_resolver(Arc::new(SniResolver {
        state: state.clone(),
        index,
        fallback: initial,
    }));
    s.enable_h2();
    Ok(s)
}
