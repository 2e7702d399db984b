use std::path::PathBuf;

use ferry_archive::ArchiveError;

/// Errors of the SQLite adapter. Each names the database file, table, column or row.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    #[error("{}: no such SQLite database file", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: not a SQLite database ({source})", path.display())]
    NotADatabase {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("table {table}, column {column}, row {row}: {reason}")]
    Value {
        table: String,
        column: String,
        row: String,
        reason: String,
    },
    #[error("{}: already exists; pass --replace to replace it (the old file is kept as a backup)", path.display())]
    TargetExists { path: PathBuf },
    #[error("{0}")]
    Unsupported(String),
    #[error("{context}: {detail}")]
    Check { context: String, detail: String },
    /// Archive SQL that is not what its manifest entry says; nothing outside the file being
    /// built was touched, and that file is thrown away.
    #[error("the archive was refused before the target changed: {what}: {reason}")]
    Refused { what: String, reason: String },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// `--resume`: the partial file holds another archive, or tables that differ from
    /// this one's; the import starts over.
    #[error("--resume: {0}")]
    ResumeMismatch(String),
    /// A failed `--resume` import: its partial file is kept for the next one.
    #[error("{error}; what was loaded is kept in {} for `ferry import --resume` (delete it to start over)", partial.display())]
    Resumable {
        error: Box<SqliteError>,
        partial: std::path::PathBuf,
    },
}

pub(crate) trait Ctx<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, SqliteError>;
}

impl<T> Ctx<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, SqliteError> {
        self.map_err(|source| SqliteError::Sql {
            context: context(),
            source,
        })
    }
}

impl<T> Ctx<T> for Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, SqliteError> {
        self.map_err(|source| SqliteError::Io {
            context: context(),
            source,
        })
    }
}
