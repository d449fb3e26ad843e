//! `gatehouse keys`: makes API keys for an `api_key` connector's keys file.
//!
//! `keys add` prints a new random key (and, for signed keys, its shared
//! secret) once, and adds its hashed entry to the keys file: the file never
//! holds a key in clear. The file is replaced whole (written beside it, then
//! renamed), so a Gatehouse watching it never reads half an entry, and the
//! result is checked like a reload would check it before it replaces the
//! old one.

use anyhow::{bail, Context, Result};
use gatehouse_connectors::apikey::keys::{hash_line, KeyStore, MAX_SECRET_BYTES};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `keys add` made.
#[derive(Debug)]
pub struct NewKey {
    /// The key, to hand to the consumer (not stored anywhere).
    pub key: String,
    /// The shared secret and the file holding it, for a signed key.
    pub secret: Option<(String, PathBuf)>,
}

/// `len` random bytes as lowercase hex.
fn random_hex(len: usize) -> Result<String> {
    let mut b = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| anyhow::anyhow!("no random bytes"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A TOML basic string of `s` (quotes and escapes included).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Adds a new key for `consumer` on `plan` to the keys file `file` (created
/// when missing). `signed`: also makes a shared secret, written to
/// `secret_file` (default: beside the keys file, `<consumer>-<8 hex>.secret`,
/// mode 0600).
pub fn add(
    file: &Path,
    consumer: &str,
    plan: Option<&str>,
    signed: bool,
    secret_file: Option<&Path>,
) -> Result<NewKey> {
    if consumer.is_empty() {
        bail!("--consumer must not be empty");
    }
    let old = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    // 128 bits, as hex: safe in a header, a query and a TOML file alike.
    let key = random_hex(16)?;
    let mut entry = format!(
        "\n[[keys]]\n{}\nconsumer = {}\n",
        hash_line(&key),
        toml_string(consumer)
    );
    if let Some(p) = plan {
        entry.push_str(&format!("plan = {}\n", toml_string(p)));
    }
    entry.push_str("status = \"active\"\n");
    let secret = if signed {
        let secret = random_hex(24)?;
        let path = match secret_file {
            Some(p) => p.to_path_buf(),
            None => {
                let safe: String = consumer
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                file.with_file_name(format!("{safe}-{}.secret", &key[..8]))
            }
        };
        entry.push_str(&format!(
            "secret_file = {}\n",
            toml_string(&path.display().to_string())
        ));
        Some((secret, path))
    } else {
        None
    };
    let mut new = old.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&entry);
    // Check the whole result as the connector will read it (the new secret
    // is not written yet: it is read from memory here).
    let check = KeyStore::parse(file, &new, &|p: &Path| match &secret {
        Some((s, sp)) if p == sp.as_path() => Ok(s.clone().into_bytes()),
        _ => gatehouse_connectors::files::read_file_limited(p, MAX_SECRET_BYTES)
            .map_err(|e| e.to_string()),
    });
    if let Err(e) = check {
        bail!("the keys file would not load: {e}");
    }
    if let Some((s, p)) = &secret {
        write_private(p, format!("{s}\n").as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    replace(file, new.as_bytes()).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(NewKey { key, secret })
}

/// Writes `bytes` to a new file `path`, readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Replaces `path` with `bytes` at once: a temporary file beside it, then a
/// rename (keeping the old file's permissions).
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(tmp.path(), meta.permissions())?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn added_keys_load_and_are_found_and_their_secret_is_private() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("consumers.toml");
        let a = add(&f, "acme \"corp\"", Some("gold"), false, None).unwrap();
        let b = add(&f, "beta", None, true, None).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains(&a.key) && !text.contains(&b.key), "{text}");
        let store = KeyStore::load(&f).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(
            store.find(a.key.as_bytes()).unwrap().doc["consumer"],
            "acme \"corp\""
        );
        let (secret, path) = b.secret.unwrap();
        let entry = store.find(b.key.as_bytes()).unwrap();
        assert_eq!(entry.secret.as_deref(), Some(secret.as_bytes()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(a.key.len(), 32);
        assert_ne!(a.key, b.key);
    }

    #[test]
    fn a_keys_file_that_would_not_load_is_left_as_it_was() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("consumers.toml");
        std::fs::write(&f, "[[keys]]\nsha256 = \"zz\"\nconsumer = \"x\"\n").unwrap();
        let e = add(&f, "acme", None, false, None).unwrap_err().to_string();
        assert!(
            e.contains("would not load") && e.contains(":1: sha256"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "[[keys]]\nsha256 = \"zz\"\nconsumer = \"x\"\n"
        );
        assert!(add(&f, "", None, false, None).is_err());
    }
}
