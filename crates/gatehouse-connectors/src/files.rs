//! Files a connector reads when it is built (key material: `secret_file`,
//! `pem_file`, `jwks_file`): one bounded reader, so a wrong path (a log, a
//! device) is a clear configuration error instead of an unbounded read.
//!
//! A connector kind lists the files a section names with
//! [`crate::ConnectorFactory::source_files`]; the binary fingerprints them so
//! that a reload rebuilds a connector whose files changed, and watches them.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a key file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Open, metadata or read failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is a directory.
    #[error("cannot read {}: it is a directory", .0.display())]
    Directory(PathBuf),
    /// The file is larger than the limit.
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
}

impl From<FileError> for String {
    fn from(e: FileError) -> String {
        e.to_string()
    }
}

/// Largest file a connector reads at build (1 MiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads `path` whole, refusing files larger than [`MAX_FILE_BYTES`].
/// Errors name the path and say why (`cannot read …: …`, `… is larger than
/// … bytes`, `… is not a regular file`).
pub fn read_file(path: &Path) -> Result<Vec<u8>, FileError> {
    read_file_limited(path, MAX_FILE_BYTES)
}

/// Like [`read_file`] with an explicit limit.
pub fn read_file_limited(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || FileError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(FileError::Directory(path.to_path_buf()));
    }
    if meta.is_file() && meta.len() > limit {
        return Err(too_large());
    }
    // Read at most one byte past the limit: a FIFO or device has no length.
    let mut buf = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_small_files_and_refuses_large_ones_and_directories() {
        let dir = std::env::temp_dir().join(format!("gh-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small");
        std::fs::write(&small, b"0123456789").unwrap();
        assert_eq!(read_file(&small).unwrap(), b"0123456789");
        assert_eq!(read_file_limited(&small, 10).unwrap().len(), 10);
        let e = read_file_limited(&small, 9).unwrap_err().to_string();
        assert!(e.contains("small is larger than 9 bytes"), "{e}");
        let e = read_file(&dir).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let e = read_file(&dir.join("missing")).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("missing"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
