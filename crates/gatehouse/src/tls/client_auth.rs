//! Mutual TLS on a listener: the verifier that follows the serving
//! snapshot's client-certificate verifier (built by [`crate::certs`], re-read
//! on every reload like the certificates), the per-connection judgement of a
//! client certificate, and `check` warnings about it.

use crate::certs::peer_certificate;
use crate::state::State;
use gatehouse_connectors::PeerCertificate;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;

/// The verifier a listener is built with: delegates every handshake to the
/// verifier of the serving snapshot, so a new `client_ca_file` content (CA
/// rotation) and `client_auth` apply to new handshakes on reload. Sends no
/// CA names in the CertificateRequest (rustls lends them from the verifier,
/// which changes on reload); clients with one certificate send it anyway.
pub(super) struct ReloadingVerifier {
    state: Arc<State>,
    index: usize,
    fallback: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for ReloadingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingVerifier")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl ReloadingVerifier {
    /// The verifier of entry `index`, starting from `initial`.
    pub(super) fn new(
        state: Arc<State>,
        index: usize,
        initial: Arc<dyn ClientCertVerifier>,
    ) -> Self {
        Self {
            state,
            index,
            fallback: initial,
        }
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.state
            .current()
            .tls
            .get(self.index)
            .and_then(|t| t.client_verifier.clone())
            .unwrap_or_else(|| self.fallback.clone())
    }
}

impl ClientCertVerifier for ReloadingVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.current().client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// Attached to a connection whose client certificate the serving
/// configuration no longer accepts (see [`judge_peer`]): its requests are
/// refused.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientCertRefused;

/// What a completed handshake on listener `index` says about its client:
/// the [`PeerCertificate`] when the serving configuration accepts it, or
/// [`ClientCertRefused`]. The chain is verified again here, on every
/// handshake: a resumed TLS session carries the certificate of its first
/// handshake, verified then, against the CA and `client_auth` of then.
pub(super) fn judge_peer(
    state: &State,
    index: usize,
    tls: &pingora::protocols::tls::TlsRef,
) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
    let verifier = state
        .current()
        .tls
        .get(index)
        .and_then(|t| t.client_verifier.clone())?;
    let refused = || Some(Arc::new(ClientCertRefused) as Arc<dyn std::any::Any + Send + Sync>);
    match tls.peer_cert_chain_der() {
        Some([leaf, intermediates @ ..]) => {
            match verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
                Ok(_) => {
                    Some(Arc::new(peer_certificate(leaf)) as Arc<dyn std::any::Any + Send + Sync>)
                }
                Err(e) => {
                    tracing::info!(
                        "a client certificate is no longer accepted (resumed TLS session): {e}"
                    );
                    refused()
                }
            }
        }
        _ if verifier.client_auth_mandatory() => refused(),
        _ => None,
    }
}

/// True when the connection of `session` presented a client certificate the
/// serving configuration no longer accepts (or none where one is required).
pub fn client_certificate_refused(session: &pingora::proxy::Session) -> bool {
    session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .is_some_and(|s| s.extension.get::<ClientCertRefused>().is_some())
}

/// The client certificate verified on the connection of `session`, if any.
pub fn session_peer(session: &pingora::proxy::Session) -> Option<&PeerCertificate> {
    session
        .digest()?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<PeerCertificate>()
}

/// Connectors that need a client certificate (`require_certificate_binding`)
/// when no `[[server.tls]]` listener asks for one: they would refuse
/// every request.
pub fn client_certificate_warnings(snapshot: &crate::snapshot::Snapshot) -> Vec<String> {
    if snapshot
        .config
        .server
        .tls
        .iter()
        .any(|t| t.client_ca_file.is_some())
    {
        return Vec::new();
    }
    snapshot
        .connectors
        .iter()
        .filter(|(_, b)| b.connector.needs_client_certificate())
        .map(|(name, _)| {
            format!(
                "connectors.{name} needs a client certificate, but no [[server.tls]] listener has \
                 client_ca_file: it will refuse every request"
            )
        })
        .collect()
}
