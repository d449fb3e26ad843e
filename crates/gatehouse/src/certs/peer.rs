//! What connectors see of a verified client certificate, and RFC 4514
//! distinguished names.

use gatehouse_connectors::PeerCertificate;
use sha2::{Digest, Sha256};

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
