//! The keys file of an `api_key` connector: consumers' keys by SHA-256,
//! never in clear, with their plan, status, expiry, optional shared secret
//! (signed keys) and attributes.
//!
//! ```toml
//! [[keys]]
//! sha256 = "<hex of SHA-256 of the key>"
//! consumer = "acme"
//! plan = "gold"
//! status = "active"                  # "disabled" or "waiting" refuse the key
//! expires = "2027-06-30T00:00:00Z"   # optional
//! secret_file = "keys/acme.secret"   # signed keys only
//! attributes = { tier = "partner" }
//! ```
//!
//! Every error names the file and the line of the entry (parse errors the
//! line and column), and all of them are reported, not only the first.

use crate::files::{read_file_limited, FileError};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Largest keys file read (64 MiB: about 400 000 entries).
pub const MAX_KEYS_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest secret file read.
pub const MAX_SECRET_BYTES: u64 = 4096;

/// One `[[keys]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    sha256: String,
    consumer: String,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    secret_file: Option<String>,
    #[serde(default)]
    attributes: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    keys: Vec<toml::Spanned<RawKey>>,
}

/// Whether a key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Usable.
    Active,
    /// Refused ("Account Inactive").
    Disabled,
    /// Not approved yet: refused like a disabled key.
    Waiting,
}

impl Status {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Status::Active),
            "disabled" => Some(Status::Disabled),
            "waiting" => Some(Status::Waiting),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
            Status::Waiting => "waiting",
        }
    }
}

/// One key, loaded.
#[derive(Debug)]
pub struct KeyEntry {
    /// Its status.
    pub status: Status,
    /// When it stops being accepted.
    pub expires: Option<SystemTime>,
    /// The shared secret of a signed key (the secret file's content without
    /// a trailing line break).
    pub secret: Option<Vec<u8>>,
    /// The verified document policy and `inject_headers` read: `consumer`,
    /// `plan`, `status`, `expires`, `attributes` — never the key or its hash.
    pub doc: Arc<Value>,
    /// 1-based line of the entry in the keys file (for `gatehouse check`).
    pub line: usize,
}

/// The keys of one file, by the SHA-256 of the key.
#[derive(Debug, Default)]
pub struct KeyStore {
    by_hash: HashMap<[u8; 32], KeyEntry>,
}

/// Why a keys file was refused: every problem found, each with its file and
/// line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysFileErrors(pub Vec<String>);

impl std::fmt::Display for KeysFileErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl From<FileError> for KeysFileErrors {
    fn from(e: FileError) -> Self {
        KeysFileErrors(vec![e.to_string()])
    }
}

impl KeyStore {
    /// Reads and checks `path`, and each entry's `secret_file`.
    pub fn load(path: &Path) -> Result<Self, KeysFileErrors> {
        let bytes = read_file_limited(path, MAX_KEYS_FILE_BYTES)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            KeysFileErrors(vec![format!(
                "{}: not UTF-8 (at byte {})",
                path.display(),
                e.valid_up_to()
            )])
        })?;
        Self::parse(path, text, &|p: &Path| {
            read_file_limited(p, MAX_SECRET_BYTES).map_err(|e| e.to_string())
        })
    }

    /// Parses `text` (the content of `path`); `read_secret` reads a
    /// `secret_file`.
    pub fn parse(
        path: &Path,
        text: &str,
        read_secret: &dyn Fn(&Path) -> Result<Vec<u8>, String>,
    ) -> Result<Self, KeysFileErrors> {
        let file = path.display();
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| KeysFileErrors(vec![format!("{file}: {}", one_line(&e.to_string()))]))?;
        let lines = LineIndex::new(text);
        let mut errs = Vec::new();
        let mut by_hash: HashMap<[u8; 32], KeyEntry> = HashMap::with_capacity(raw.keys.len());
        for spanned in raw.keys {
            let line = lines.line_of(spanned.span().start);
            let at = |what: String| format!("{file}:{line}: {what}");
            let k = spanned.into_inner();
            let hash = match decode_sha256(&k.sha256) {
                Some(h) => h,
                None => {
                    errs.push(at("sha256 must be 64 hexadecimal digits (the SHA-256 of the key; `gatehouse keys hash KEY` prints it)".into()));
                    continue;
                }
            };
            if k.consumer.is_empty() {
                errs.push(at("consumer must not be empty".into()));
            }
            let status = match k.status.as_deref() {
                None => Status::Active,
                Some(s) => Status::parse(s).unwrap_or_else(|| {
                    errs.push(at(format!(
                        "status {s:?} is not one of \"active\", \"disabled\", \"waiting\""
                    )));
                    Status::Disabled
                }),
            };
            let expires = k.expires.as_deref().and_then(|e| {
                humantime::parse_rfc3339_weak(e)
                    .map_err(|_| {
                        errs.push(at(format!(
                            "expires {e:?} is not an RFC 3339 time (2027-06-30T00:00:00Z)"
                        )))
                    })
                    .ok()
            });
            let secret = k
                .secret_file
                .as_deref()
                .and_then(|s| match read_secret(Path::new(s)) {
                    Ok(mut b) => {
                        while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                            b.pop();
                        }
                        if b.is_empty() {
                            errs.push(at(format!("secret_file {s} is empty")));
                            return None;
                        }
                        Some(b)
                    }
                    Err(e) => {
                        errs.push(at(format!("secret_file: {e}")));
                        None
                    }
                });
            let mut doc = Map::new();
            doc.insert("consumer".into(), Value::String(k.consumer));
            if let Some(p) = k.plan {
                doc.insert("plan".into(), Value::String(p));
            }
            doc.insert("status".into(), Value::String(status.as_str().into()));
            if let Some(e) = &k.expires {
                doc.insert("expires".into(), Value::String(e.clone()));
            }
            if let Some(a) = k.attributes {
                match serde_json::to_value(a) {
                    Ok(v) => {
                        doc.insert("attributes".into(), v);
                    }
                    Err(e) => errs.push(at(format!("attributes: {e}"))),
                }
            }
            let entry = KeyEntry {
                status,
                expires,
                secret,
                doc: Arc::new(Value::Object(doc)),
                line,
            };
            if let Some(first) = by_hash.get(&hash) {
                errs.push(at(format!(
                    "the same key (sha256) as the entry at line {}",
                    first.line
                )));
                continue;
            }
            by_hash.insert(hash, entry);
        }
        if errs.is_empty() {
            Ok(Self { by_hash })
        } else {
            Err(KeysFileErrors(errs))
        }
    }

    /// The entry of the presented `key`, if any. The map is searched by the
    /// SHA-256 of the key, so the time a lookup takes tells nothing about
    /// the stored hashes beyond what a hash's preimage would.
    pub fn find(&self, key: &[u8]) -> Option<&KeyEntry> {
        let h: [u8; 32] = Sha256::digest(key).into();
        self.by_hash.get(&h)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when the file holds no key.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Keys that need a secret (on a connector with `signature`) and have
    /// none: their lines.
    pub fn lines_without_secret(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .by_hash
            .values()
            .filter(|e| e.secret.is_none())
            .map(|e| e.line)
            .collect();
        v.sort_unstable();
        v
    }
}

/// The `secret_file` paths a keys file names (for watching and reload
/// fingerprints); empty when the file cannot be read or parsed (the build
/// reports that).
pub fn secret_files(path: &Path) -> Vec<PathBuf> {
    #[derive(Deserialize)]
    struct Only {
        #[serde(default)]
        keys: Vec<OnlySecret>,
    }
    #[derive(Deserialize)]
    struct OnlySecret {
        #[serde(default)]
        secret_file: Option<String>,
    }
    let Ok(bytes) = read_file_limited(path, MAX_KEYS_FILE_BYTES) else {
        return Vec::new();
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Vec::new();
    };
    let Ok(only) = toml::from_str::<Only>(text) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = only
        .keys
        .into_iter()
        .filter_map(|k| k.secret_file.map(PathBuf::from))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The 32 bytes of a 64-digit hex SHA-256 (either case).
pub fn decode_sha256(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// The line of the keys file a hash would be written on.
pub fn hash_line(key: &str) -> String {
    format!(
        "sha256 = \"{}\"",
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}

/// TOML errors span several lines (a snippet with a caret): one line for a
/// log and an error list.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Byte offset → 1-based line.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        Self(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    fn line_of(&self, offset: usize) -> usize {
        self.0.partition_point(|nl| *nl < offset) + 1
    }
}
