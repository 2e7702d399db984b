use ferry_archive::{ArchiveError, clip};

/// Errors of the PostgreSQL adapter. Connection errors name the target without its password;
/// data errors name the table, column and row.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    #[error("{0}")]
    Config(String),
    #[error("{target}: cannot connect: {detail}")]
    Connect { target: String, detail: String },
    /// A statement the server (or the connection) refused. `sqlstate` is the server's error
    /// code, which users grep for; `source` keeps the driver's error chain.
    #[error("{context}: {detail}{}", sqlstate.as_ref().map(|c| format!(" [SQLSTATE {c}]")).unwrap_or_default())]
    Query {
        context: String,
        detail: String,
        sqlstate: Option<String>,
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    #[error("table {table}, column {column}, row {row}: {reason}")]
    Value {
        table: String,
        column: String,
        row: u64,
        reason: String,
    },
    #[error("{target}: not empty: {detail}; pass --clean to drop and replace them")]
    TargetNotEmpty { target: String, detail: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{context}: {detail}")]
    Check { context: String, detail: String },
    /// Archive SQL that is not what its manifest entry says, refused before any change.
    #[error("the archive was refused before anything changed: {0}")]
    Refused(#[from] ferry_sql::SqlError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl PgError {
    /// A failed statement, with the server's message, detail and hint when it sent them.
    pub fn query(context: impl Into<String>, e: tokio_postgres::Error) -> PgError {
        // The server quotes values in its messages; a 25 MB value must not become a 25 MB
        // error line.
        let detail = match e.as_db_error() {
            Some(db) => {
                let mut s = clip(db.message());
                if let Some(d) = db.detail() {
                    s.push_str(&format!(" ({})", clip(d)));
                }
                if let Some(h) = db.hint() {
                    s.push_str(&format!("; hint: {}", clip(h)));
                }
                s
            }
            None => clip(&e.to_string()),
        };
        PgError::Query {
            context: context.into(),
            detail,
            sqlstate: e.code().map(|c| c.code().to_owned()),
            source: Some(e),
        }
    }
}

pub(crate) trait Ctx<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, PgError>;
}

impl<T> Ctx<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, PgError> {
        self.map_err(|e| PgError::query(context(), e))
    }
}
