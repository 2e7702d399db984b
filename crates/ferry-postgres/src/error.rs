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
    /// A catalog row that does not have the shape ferry's query asked for (a server
    /// version or extension ferry does not know): never a panic.
    #[error("reading the server's catalog ({at}): column {column}: {detail}")]
    Catalog {
        at: String,
        column: String,
        detail: String,
    },
    #[error("{context}: {detail}")]
    Check { context: String, detail: String },
    /// Archive SQL that is not what its manifest entry says, refused before any change.
    #[error("the archive was refused before anything changed: {0}")]
    Refused(#[from] ferry_sql::SqlError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A failed `--resume` import: what committed in staging is kept for the next one.
    #[error(
        "{error}; the tables it loaded are kept in {kept} staging schema(s) for `ferry import --resume` (`ferry cleanup TARGET` drops them)"
    )]
    Resumable { error: Box<PgError>, kept: usize },
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

/// `Row::try_get` with an error that names the column and the query's place in the source,
/// for catalog rows: `Row::get` panics on a type or NULL the query did not expect.
pub(crate) trait RowExt {
    fn at<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, idx: usize) -> Result<T, PgError>;
}

impl RowExt for tokio_postgres::Row {
    #[track_caller]
    fn at<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, idx: usize) -> Result<T, PgError> {
        let caller = std::panic::Location::caller();
        self.try_get(idx).map_err(|e| PgError::Catalog {
            at: format!(
                "{}:{}",
                caller.file().rsplit('/').next().unwrap_or(""),
                caller.line()
            ),
            column: self
                .columns()
                .get(idx)
                .map_or_else(|| idx.to_string(), |c| c.name().to_owned()),
            detail: e.to_string(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the local server, as every test here: a catalog value of a shape the query
    /// did not expect (here a NULL where a name was expected) is a typed error naming the
    /// column and the call site, not a panic.
    #[test]
    fn a_catalog_row_of_an_unexpected_shape_is_an_error_naming_its_column() {
        let server = std::env::var("FERRY_TEST_PG")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into());
        let spec = crate::conn::ConnSpec::parse(&format!("{server}/postgres")).unwrap();
        let rt = crate::runtime().unwrap();
        let row = rt.block_on(async {
            let client = spec.connect().await.unwrap();
            client
                .query_one("SELECT NULL::text AS relname, 1::int4 AS n", &[])
                .await
                .unwrap()
        });
        let err = row.at::<String>(0).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PgError::Catalog { .. }), "{text}");
        assert!(text.contains("column relname"), "{text}");
        assert!(text.contains("error.rs:"), "{text}");
        assert!(row.at::<String>(1).is_err(), "an int4 is not text");
        assert_eq!(row.at::<i32>(1).unwrap(), 1);
    }
}
