//! Test certificates, made with the `openssl` command-line tool (installed by
//! `scripts/install-deps.sh`): a CA, server certificates for given DNS names
//! signed by it (ECDSA P-256), client certificates for mutual TLS.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (scripts/install-deps.sh installs it)")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A certificate authority in a directory: `NAME.pem` / `NAME.key`.
#[derive(Debug, Clone)]
pub struct TestCa {
    dir: PathBuf,
    name: String,
}

/// Paths of a certificate and its key.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM certificate (leaf only).
    pub cert: PathBuf,
    /// PEM PKCS#8 private key.
    pub key: PathBuf,
}

impl TestCa {
    /// Creates the CA `name` in `dir` (self-signed, P-256, 10 days).
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<Self> {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "10",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ],
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })
    }

    /// The CA certificate (PEM).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// Issues `file.pem` / `file.key` for `cn` with the DNS names `dns`
    /// (`serverAuth` when `dns` is not empty, else a `clientAuth` certificate),
    /// valid from now for `days` days.
    pub fn issue_with(
        &self,
        file: &str,
        cn: &str,
        dns: &[&str],
        days: u32,
    ) -> anyhow::Result<CertFiles> {
        let d = &self.dir;
        let key = format!("{file}.key");
        let csr = format!("{file}.csr");
        let ext = format!("{file}.ext");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        )?;
        let mut extfile = String::from("basicConstraints=CA:FALSE\n");
        if dns.is_empty() {
            extfile.push_str("extendedKeyUsage=clientAuth\n");
        } else {
            extfile.push_str("extendedKeyUsage=serverAuth\nsubjectAltName=");
            let sans: Vec<String> = dns.iter().map(|n| format!("DNS:{n}")).collect();
            extfile.push_str(&sans.join(","));
            extfile.push('\n');
        }
        std::fs::write(d.join(&ext), extfile)?;
        let ca_pem = format!("{}.pem", self.name);
        let ca_key = format!("{}.key", self.name);
        let out = format!("{file}.pem");
        let days_s = days.to_string();
        let args = [
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            &days_s,
            "-extfile",
            &ext,
            "-out",
            &out,
        ];
        openssl(d, &args)?;
        Ok(CertFiles {
            cert: d.join(out),
            key: d.join(key),
        })
    }

    /// A server certificate for `dns`, valid now for 10 days.
    pub fn server(&self, file: &str, dns: &[&str]) -> anyhow::Result<CertFiles> {
        self.issue_with(file, dns.first().copied().unwrap_or(file), dns, 10)
    }

    /// A client certificate with common name `cn`, valid now for 10 days.
    pub fn client(&self, file: &str, cn: &str) -> anyhow::Result<CertFiles> {
        self.issue_with(file, cn, &[], 10)
    }
}
