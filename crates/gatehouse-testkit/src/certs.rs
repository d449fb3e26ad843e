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

/// `DNS:` subjectAltNames in OpenSSL's form.
fn dns_sans(dns: &[&str]) -> Vec<String> {
    dns.iter().map(|n| format!("DNS:{n}")).collect()
}

/// How long an issued certificate is valid.
enum Validity {
    /// From now, for this many days.
    Days(u32),
    /// Between two `YYYYMMDDHHMMSSZ` times.
    Between(&'static str, &'static str),
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
        let sans = dns_sans(dns);
        let usage = if dns.is_empty() {
            "clientAuth"
        } else {
            "serverAuth"
        };
        self.issue(file, cn, usage, &sans, Validity::Days(days))
    }

    fn issue(
        &self,
        file: &str,
        cn: &str,
        usage: &str,
        sans: &[impl AsRef<str>],
        validity: Validity,
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
        let mut extfile = format!("basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n");
        if !sans.is_empty() {
            let sans: Vec<&str> = sans.iter().map(AsRef::as_ref).collect();
            extfile.push_str(&format!("subjectAltName={}\n", sans.join(",")));
        }
        std::fs::write(d.join(&ext), extfile)?;
        let ca_pem = format!("{}.pem", self.name);
        let ca_key = format!("{}.key", self.name);
        let out = format!("{file}.pem");
        match validity {
            Validity::Days(days) => {
                let days_s = days.to_string();
                openssl(
                    d,
                    &[
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
                    ],
                )?;
            }
            Validity::Between(start, end) => {
                // `openssl x509` cannot set notBefore before OpenSSL 3.4; `openssl ca` can.
                let db = format!("{file}.index");
                std::fs::write(d.join(&db), "")?;
                std::fs::write(d.join(format!("{file}.serial")), "01\n")?;
                let cnf = format!("{file}.cnf");
                std::fs::write(
                    d.join(&cnf),
                    format!(
                        "[ca]\ndefault_ca = d\n[d]\ndatabase = {db}\nnew_certs_dir = .\n\
                         certificate = {ca_pem}\nprivate_key = {ca_key}\nserial = {file}.serial\n\
                         default_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n"
                    ),
                )?;
                openssl(
                    d,
                    &[
                        "ca",
                        "-batch",
                        "-config",
                        &cnf,
                        "-in",
                        &csr,
                        "-out",
                        &out,
                        "-startdate",
                        start,
                        "-enddate",
                        end,
                        "-extfile",
                        &ext,
                        "-notext",
                    ],
                )?;
            }
        }
        Ok(CertFiles {
            cert: d.join(out),
            key: d.join(key),
        })
    }

    /// A server certificate for `dns` whose validity starts in 2099 (not yet valid).
    pub fn server_not_yet_valid(&self, file: &str, dns: &[&str]) -> anyhow::Result<CertFiles> {
        let sans = dns_sans(dns);
        let validity = Validity::Between("20990101000000Z", "20990201000000Z");
        self.issue(
            file,
            dns.first().copied().unwrap_or(file),
            "serverAuth",
            &sans,
            validity,
        )
    }

    /// A server certificate for `cn` with the subjectAltNames `sans` in
    /// OpenSSL's form (`DNS:localhost`, `IP:127.0.0.1`), valid now for 10 days.
    pub fn server_with_sans(
        &self,
        file: &str,
        cn: &str,
        sans: &[&str],
    ) -> anyhow::Result<CertFiles> {
        self.issue(file, cn, "serverAuth", sans, Validity::Days(10))
    }

    /// A client certificate with common name `cn` and the subjectAltNames
    /// `sans`, in OpenSSL's form (`URI:spiffe://…`, `DNS:…`, `email:…`).
    pub fn client_with_sans(
        &self,
        file: &str,
        cn: &str,
        sans: &[&str],
    ) -> anyhow::Result<CertFiles> {
        self.issue(file, cn, "clientAuth", sans, Validity::Days(10))
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
