//! TLS listeners: certificates loaded (and re-loaded) from `[[server.tls]]`,
//! chosen per handshake by SNI, handshake metrics, client certificates.
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

pub use client_auth::{
    client_certificate_refused, client_certificate_warnings, peer_certificate, session_peer,
};

use crate::state::State;
use gatehouse_config::{ConfigError, TlsListenerConfig};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A certificate expiring within this many seconds is warned about by `check`.
pub const EXPIRY_WARNING_SECS: i64 = 14 * 24 * 3600;

/// One loaded certificate chain with its key.
#[derive(Debug)]
pub struct LoadedCert {
    /// `cert_file` as configured.
    pub cert_file: PathBuf,
    /// The chain and signing key handed to rustls.
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf (subjectAltName), lower case; `*.x` wildcards kept.
    pub names: Vec<String>,
    /// Leaf notAfter, Unix seconds.
    pub not_after: i64,
}

/// The certificates of one `[[server.tls]]` entry; the first is the default.
#[derive(Debug)]
pub struct CertSet {
    /// In config order.
    pub certs: Vec<LoadedCert>,
}

impl CertSet {
    /// The certificate for the SNI name `sni`: an exact DNS name first, then
    /// a `*.` wildcard covering exactly one label, else the first (default).
    pub fn select(&self, sni: Option<&str>) -> &LoadedCert {
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(c) = self.certs.iter().find(|c| c.names.contains(&name)) {
                return c;
            }
            if let Some((first, rest)) = name.split_once('.') {
                if !first.is_empty() && rest.contains('.') {
                    let wild = format!("*.{rest}");
                    if let Some(c) = self.certs.iter().find(|c| c.names.contains(&wild)) {
                        return c;
                    }
                }
            }
        }
        &self.certs[0]
    }
}

/// Now, Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))
}

/// Reads the PEM certificates of `path` (`key` names it in errors).
pub(crate) fn read_certs(
    path: &Path,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read(path, key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new(key, format!("{}: invalid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("no certificate (BEGIN CERTIFICATE) in {}", path.display()),
        ));
    }
    Ok(certs)
}

fn time_of(t: x509_parser::time::ASN1Time) -> i64 {
    t.timestamp()
}

/// Loads one certificate: chain, key, key match, validity, names.
/// `prefix` is the config path of the entry (`server.tls[0].certificates[1]`).
pub fn load_cert(
    prefix: &str,
    cert_file: &Path,
    key_file: &Path,
    now: i64,
) -> Result<LoadedCert, ConfigError> {
    let ck = format!("{prefix}.cert_file");
    let kk = format!("{prefix}.key_file");
    let chain = read_certs(cert_file, &ck)?;
    let key_pem = read(key_file, &kk)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ConfigError::new(&kk, format!("{}: invalid PEM: {e}", key_file.display())))?
        .ok_or_else(|| {
            ConfigError::new(
                &kk,
                format!(
                    "no private key (PKCS#8, PKCS#1 or SEC1) in {}",
                    key_file.display()
                ),
            )
        })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        ConfigError::new(&kk, format!("{}: unsupported key: {e}", key_file.display()))
    })?;
    let (_, leaf) = x509_parser::parse_x509_certificate(chain[0].as_ref()).map_err(|e| {
        ConfigError::new(
            &ck,
            format!("{}: cannot parse the certificate: {e}", cert_file.display()),
        )
    })?;
    let not_before = time_of(leaf.validity().not_before);
    let not_after = time_of(leaf.validity().not_after);
    if not_before > now {
        return Err(ConfigError::new(
            &ck,
            format!(
                "{}: not valid yet (notBefore {})",
                cert_file.display(),
                leaf.validity().not_before
            ),
        ));
    }
    let mut names = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    let certified = CertifiedKey::new(chain, signer);
    if let Err(rustls::Error::InconsistentKeys(e)) = certified.keys_match() {
        return Err(ConfigError::new(
            &kk,
            format!(
                "{} does not match the certificate in {} ({e:?})",
                key_file.display(),
                cert_file.display()
            ),
        ));
    }
    Ok(LoadedCert {
        cert_file: cert_file.to_path_buf(),
        key: Arc::new(certified),
        names,
        not_after,
    })
}

/// Everything compiled for one `[[server.tls]]` entry.
#[derive(Debug)]
pub struct CompiledTls {
    /// Its certificates.
    pub certs: CertSet,
    /// Its client-certificate verifier (`client_ca_file`), read by the
    /// listener's [`client_auth::ReloadingVerifier`] at every handshake.
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// Loads the certificates of every `[[server.tls]]` entry, all errors at once.
pub fn load_all(tls: &[TlsListenerConfig]) -> Result<Vec<Arc<CompiledTls>>, Vec<ConfigError>> {
    let now = unix_now();
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (t, l) in tls.iter().enumerate() {
        let mut certs = Vec::new();
        for (i, c) in l.certificates.iter().enumerate() {
            let prefix = format!("server.tls[{t}].certificates[{i}]");
            match load_cert(&prefix, &c.cert_file, &c.key_file, now) {
                Ok(c) => certs.push(c),
                Err(e) => errs.push(e),
            }
        }
        let client_verifier = match client_auth::verifier(t, l) {
            Ok(v) => v,
            Err(e) => {
                errs.push(e);
                None
            }
        };
        out.push(Arc::new(CompiledTls {
            certs: CertSet { certs },
            client_verifier,
        }));
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Every file `[[server.tls]]` makes Gatehouse read (watched for reloads).
pub fn files(tls: &[TlsListenerConfig]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for l in tls {
        for c in &l.certificates {
            out.push(c.cert_file.clone());
            out.push(c.key_file.clone());
        }
        if let Some(ca) = &l.client_ca_file {
            out.push(ca.clone());
        }
    }
    out
}

/// Warnings for `gatehouse check`: certificates expired or expiring within 14 days.
pub fn expiry_warnings(tls: &[Arc<CompiledTls>], now: i64) -> Vec<String> {
    let mut out = Vec::new();
    for (t, l) in tls.iter().enumerate() {
        for (i, c) in l.certs.certs.iter().enumerate() {
            let left = c.not_after - now;
            let key = format!("server.tls[{t}].certificates[{i}].cert_file");
            if left <= 0 {
                out.push(format!(
                    "{key}: {} has EXPIRED ({} days ago)",
                    c.cert_file.display(),
                    -left / 86400
                ));
            } else if left < EXPIRY_WARNING_SECS {
                out.push(format!(
                    "{key}: {} expires in {} days {} hours",
                    c.cert_file.display(),
                    left / 86400,
                    (left % 86400) / 3600
                ));
            }
        }
    }
    out
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cert(names: &[&str]) -> LoadedCert {
        LoadedCert {
            cert_file: PathBuf::from(names[0]),
            key: Arc::new(CertifiedKey::new(
                vec![],
                rustls::crypto::ring::sign::any_supported_type(&PrivateKeyDer::Pkcs8(
                    rcgen_free_key().into(),
                ))
                .unwrap(),
            )),
            names: names.iter().map(|s| s.to_string()).collect(),
            not_after: 0,
        }
    }

    /// A fresh P-256 PKCS#8 key.
    fn rcgen_free_key() -> Vec<u8> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .unwrap()
        .as_ref()
        .to_vec()
    }

    #[test]
    fn sni_selection_exact_then_wildcard_then_default() {
        let set = CertSet {
            certs: vec![
                cert(&["api.example.com"]),
                cert(&["*.example.com"]),
                cert(&["other.test", "www.other.test"]),
            ],
        };
        let pick = |n: Option<&str>| set.select(n).names[0].clone();
        assert_eq!(pick(Some("api.example.com")), "api.example.com");
        assert_eq!(pick(Some("API.Example.com.")), "api.example.com");
        assert_eq!(pick(Some("shop.example.com")), "*.example.com");
        assert_eq!(
            pick(Some("a.b.example.com")),
            "api.example.com",
            "one label only"
        );
        assert_eq!(pick(Some("example.com")), "api.example.com");
        assert_eq!(pick(Some("www.other.test")), "other.test");
        assert_eq!(pick(Some("unknown.test")), "api.example.com");
        assert_eq!(pick(None), "api.example.com");
    }
}
