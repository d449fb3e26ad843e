//! Certificates of `[[server.tls]]`: loading (chain, key, key match,
//! validity, names), SNI selection, expiry, the client-CA verifier of
//! `client_ca_file`, and what connectors see of a client certificate
//! (thumbprint, RFC 4514 subject, subjectAltNames).
//!
//! Nothing here reads the serving state: a [`CompiledTls`] is part of a
//! snapshot, and the listener code that reads it per handshake
//! ([`crate::tls`]) sits above this module.

mod peer;

pub use peer::{peer_certificate, rfc4514};

use gatehouse_config::{ClientAuth, ConfigError, TlsListenerConfig};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
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

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))
}

/// Reads the PEM certificates of `path` (`key` names it in errors).
fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
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
    /// listener's reloading verifier (in [`crate::tls`]) at every handshake.
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
        let client_verifier = match verifier(t, l) {
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
