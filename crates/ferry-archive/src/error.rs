use std::path::PathBuf;

/// Everything that can go wrong reading or writing an archive. Each variant names the file
/// (an archive-relative path or a filesystem path) it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// SIGINT or SIGTERM arrived; the run stopped at its next batch and undid its work.
    #[error("interrupted")]
    Interrupted,
    /// A required signature is missing, broken or by another key (`crate::sign`).
    #[error("signature: {0}")]
    Signature(String),
    /// An encrypted archive that the keys given do not open, or one that is damaged
    /// (`crate::seal`).
    #[error("encryption: {0}")]
    Encryption(String),
    /// Beyond a resource limit (`crate::limits`); `flag` raises it.
    #[error("{path}: {what}, over the limit of {limit}; pass {flag} to accept more")]
    Limit {
        path: String,
        what: String,
        limit: String,
        flag: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid manifest: {reason}")]
    BadManifest { file: String, reason: String },
    #[error(
        "{file}: archive format version {found} is not supported (this ferry reads major versions 1 to {supported})"
    )]
    UnsupportedVersion {
        file: String,
        found: String,
        supported: u64,
    },
    #[error("{path}: {reason}")]
    BadEntry { path: String, reason: String },
    #[error("{path}: checksum mismatch: manifest says {expected}, file has {actual}")]
    Checksum {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: size mismatch: manifest says {expected} bytes, file has {actual}")]
    Size {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: row count mismatch: manifest says {expected}, file holds {actual}")]
    Rows {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: listed in the manifest but missing from the archive")]
    Missing { path: String },
    #[error("{path}: not listed in the manifest")]
    Unexpected { path: String },
    #[error("{path}: Parquet: {source}")]
    Parquet {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: Arrow: {source}")]
    Arrow {
        path: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("{path}: already exists; refusing to overwrite it")]
    TargetExists { path: PathBuf },
    #[error("{path}: the archive ends before manifest.json (truncated or failed export)")]
    Truncated { path: String },
    #[error("export aborted: {0}")]
    Aborted(String),
}

impl ArchiveError {
    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.to_string(),
            source,
        }
    }
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;
