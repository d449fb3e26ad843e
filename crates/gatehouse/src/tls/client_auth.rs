//! Mutual TLS: the client-certificate verifier of a `[[server.tls]]` entry
//! (re-read on every reload, like the certificates), what connectors see of
//! a verified certificate, and `check` warnings about it.

use super::{provider, read_certs};
use crate::state::State;
use gatehouse_config::{ClientAuth, ConfigError, TlsListenerConfig};
use gatehouse_connectors::PeerCertificate;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

fn client_roots(path: &Path, key: &str) -> Result<Arc<RootCertStore>, ConfigError> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path, key)? {
        roots.add(c).map_err(|e| {
            ConfigError::new(key, format!("{}: not a usable CA: {e}", path.display()))
        })?;
    }
    Ok(Arc::new(roots))
}

/// The verifier of entry `index` (`None` without `client_ca_file`).
pub fn verifier(
    index: usize,
    cfg: &TlsListenerConfig,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, ConfigError> {
    let Some(ca) = &cfg.client_ca_file else {
        return Ok(None);
    };
    let key = format!("server.tls[{index}].client_ca_file");
    let roots = client_roots(ca, &key)?;
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
    let builder = match cfg.client_auth.unwrap_or(ClientAuth::Require) {
        ClientAuth::Require => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    let v = builder
        .build()
        .map_err(|e| ConfigError::new(&key, format!("{}: {e}", ca.display())))?;
    Ok(Some(v))
}

/// The verifier a listener is built with: delegates every handshake to the
/// verifier of the serving snapshot, so a new `client_ca_file` content (CA
/// rotation) and `client_auth` apply to new handshakes on reload. Sends no
/// CA names in the CertificateRequest (rustls lends them from the verifier,
/// which changes on reload); clients with one certificate send it anyway.
pub struct ReloadingVerifier {
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
    pub fn new(state: Arc<State>, index: usize, initial: Arc<dyn ClientCertVerifier>) -> Self {
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

/// What connectors see of a verified client certificate (`x5t#S256`
/// thumbprint, subject, subjectAltNames), computed once per connection and
/// attached to it (Pingora's `SslDigest::extension`).
pub fn peer_certificate(der: &[u8]) -> PeerCertificate {
    use base64::Engine;
    let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(der));
    let (subject, sans) = match x509_parser::parse_x509_certificate(der) {
        Ok((_, c)) => {
            let mut sans = Vec::new();
            if let Ok(Some(san)) = c.subject_alternative_name() {
                use x509_parser::extensions::GeneralName as G;
                for n in &san.value.general_names {
                    match n {
                        G::DNSName(s) | G::RFC822Name(s) | G::URI(s) => sans.push((*s).to_string()),
                        _ => {}
                    }
                }
            }
            (rfc4514(c.subject()), sans)
        }
        Err(_) => (String::new(), Vec::new()),
    };
    PeerCertificate {
        thumbprint,
        subject,
        sans,
    }
}

/// Attached to a connection whose client certificate the serving
/// configuration no longer accepts (see [`judge_peer`]): its requests are
/// refused.
#[derive(Debug, Clone, Copy)]
pub struct ClientCertRefused;

/// What a completed handshake on listener `index` says about its client:
/// the [`PeerCertificate`] when the serving configuration accepts it, or
/// [`ClientCertRefused`]. The chain is verified again here, on every
/// handshake: a resumed TLS session carries the certificate of its first
/// handshake, verified then, against the CA and `client_auth` of then.
pub fn judge_peer(
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

/// A distinguished name in RFC 4514 string form: RDNs last to first,
/// joined by `,` (multi-valued ones by `+`), short attribute names (`CN`,
/// `O`, …) or dotted OIDs, values escaped so that no value can be read as
/// another attribute (`CN=x\, O=Admins`); control characters as `\XX`.
/// Values that are not strings are `#` and the hex of their content.
pub fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    use std::fmt::Write;
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let ty = x509_parser::objects::oid2abbrev(atv.attr_type(), registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| atv.attr_type().to_id_string());
                    let value = match atv.as_str() {
                        Ok(v) => escape_value(v),
                        Err(_) => atv.as_slice().iter().fold(String::from("#"), |mut s, b| {
                            let _ = write!(s, "{b:02x}");
                            s
                        }),
                    };
                    format!("{ty}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape_value(v: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:02X}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn subjects_are_rfc4514_and_values_cannot_forge_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let ca = gatehouse_testkit::TestCa::new(dir.path(), "ca").unwrap();
        let c = ca.client("evil", "x, O=Admins").unwrap();
        let pem = std::fs::read_to_string(&c.cert).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let p = peer_certificate(&der);
        assert_eq!(p.subject, "CN=x\\, O=Admins");
        assert_eq!(p.thumbprint.len(), 43, "base64url of 32 bytes");
        assert_eq!(escape_value(" #a\u{7}b "), "\\ #a\\07b\\ ");
        assert_eq!(escape_value("#x"), "\\#x");
        assert_eq!(escape_value("a+b\\c;d<e>\"f"), "a\\+b\\\\c\\;d\\<e\\>\\\"f");
    }
}
