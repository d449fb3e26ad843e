//! The files a configuration makes Gatehouse read, fingerprinted and watched
//! for reloads: connectors' key material (`secret_file`, `pem_file`,
//! `jwks_file`), part of a connector's identity on reload, the certificates,
//! keys and client CAs of `[[server.tls]]`, and the secret files of shared
//! caches.
//!
//! Each file a section names is fingerprinted (SHA-256 of its content) just
//! **before** the connector is built. A reload carries a connector over only
//! when its section and every file's current fingerprint are unchanged;
//! taking the fingerprint before the build means a file that changes during
//! the build is seen as changed by the next reload (a needless rebuild at
//! worst, never a stale key kept).
//!
//! Paths are used as written in the config and resolved like the connector
//! resolves them: relative paths against the process's working directory.

use gatehouse_config::{Config, ConnectorConfig};
use gatehouse_connectors::files::read_file;
use gatehouse_connectors::Registry;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a file held when it was looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    /// SHA-256 of the content.
    Sha256([u8; 32]),
    /// The file could not be read (missing, too large, …), with why.
    Unreadable(String),
}

impl Fingerprint {
    /// Fingerprints the file at `path` now (bounded read).
    pub fn of(path: &Path) -> Self {
        match read_file(path) {
            Ok(bytes) => Self::Sha256(Sha256::digest(&bytes).into()),
            Err(e) => Self::Unreadable(e.to_string()),
        }
    }
}

/// Files and what they held, keyed by absolute path.
pub type FileStates = BTreeMap<PathBuf, Fingerprint>;

/// `path` made absolute against the working directory (no file-system
/// access, symlinks kept: the connector reads through them too).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The files the section `cfg` makes its connector read, absolute, deduplicated.
pub fn connector_files(registry: &Registry, cfg: &ConnectorConfig) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in registry.source_files(cfg) {
        let p = absolute(&p);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The files every connector of `config` reads, and [`server_files`].
pub fn config_files(registry: &Registry, config: &Config) -> BTreeSet<PathBuf> {
    config
        .connectors
        .values()
        .flat_map(|c| connector_files(registry, c))
        .chain(server_files(config))
        .collect()
}

/// The certificates, keys and client CAs of `[[server.tls]]` and the secret
/// files of `[caches.*]`, absolute.
pub fn server_files(config: &Config) -> Vec<PathBuf> {
    crate::certs::files(&config.server.tls)
        .iter()
        .chain(
            config
                .caches
                .values()
                .flat_map(|c| c.files())
                .collect::<Vec<_>>()
                .iter(),
        )
        .map(|p| absolute(p))
        .collect()
}

/// Fingerprints each of `paths` now.
pub fn fingerprint_all<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> FileStates {
    paths
        .into_iter()
        .map(|p| (p.clone(), Fingerprint::of(p)))
        .collect()
}

/// True when every file of `states` still holds what it held then.
pub fn unchanged(states: &FileStates) -> bool {
    states.iter().all(|(p, f)| Fingerprint::of(p) == *f)
}

/// True when every file of `states` was readable then (a connector is only
/// carried over on readable, unchanged files).
pub fn all_readable(states: &FileStates) -> bool {
    states.values().all(|f| matches!(f, Fingerprint::Sha256(_)))
}

/// The paths to match file events against for `files`: each path, plus its
/// symlink-resolved target when that differs (so a change of the target in
/// another directory is seen too).
pub fn watch_targets(files: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    let mut out = files.clone();
    for f in files {
        if let Ok(real) = std::fs::canonicalize(f) {
            out.insert(real);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fingerprints_follow_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "one").unwrap();
        let states = fingerprint_all([&f]);
        assert!(all_readable(&states) && unchanged(&states));
        std::fs::write(&f, "two").unwrap();
        assert!(!unchanged(&states));
        std::fs::remove_file(&f).unwrap();
        let gone = fingerprint_all([&f]);
        assert!(!all_readable(&gone));
        assert!(unchanged(&gone), "still missing is unchanged");
        std::fs::write(&f, "one").unwrap();
        assert!(unchanged(&states), "same content again is unchanged");
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("keys/a.pem")), cwd.join("keys/a.pem"));
        assert_eq!(absolute(Path::new("/etc/k")), PathBuf::from("/etc/k"));
    }
}
