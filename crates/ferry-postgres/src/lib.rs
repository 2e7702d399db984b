//! # ferry-postgres: PostgreSQL in and out of a ferry archive
//!
//! * **Export** ([`export()`]) reads one snapshot (`REPEATABLE READ, READ ONLY, DEFERRABLE`):
//!   the catalog into the manifest (portable form plus the server's own DDL), and every
//!   table's rows through `COPY ... TO STDOUT (FORMAT binary)`, decoded field by field into
//!   Arrow builders (`pgbinary`). Types with an exact natural Arrow form use it; every other
//!   type travels as its text form, named in the manifest ([`types`]).
//! * **Import** ([`import()`]) replays pre-data DDL, loads rows through
//!   `COPY ... FROM STDIN (FORMAT binary)` encoded straight from Arrow arrays, then post-data
//!   DDL, all in one transaction that commits only after the archive checked out. Parallel
//!   loads commit table by table in staging, each with a record of the parts it holds, so
//!   that `--resume` can take over what a killed import finished ([`resume`]).
//! * **Compare** ([`compare()`]) recomputes each table's order-independent digest
//!   (`ferry_archive::rowset`) from a live database; for a SQLite archive it applies the
//!   import's own conversions to the archived rows and compares what they must have become.
//!
//! An archive is data: before anything changes, every definition is checked to be one
//! statement of its entry's kind naming its entry's object (`ferry_sql::check`), and archive
//! text only ever runs through the extended protocol, one statement at a time
//! (`one_statement`). SQLite archives' expressions, indexes, views and triggers are parsed
//! and translated on the syntax tree (`ferry_sql::translate`, `ferry_sql::trigger`).
//!
//! Layout, module for module as in `ferry-sqlite`: `export`, `import` (the entry points and
//! the import `Mode`; DDL replay in `import::replay`, staging and publishing in
//! `import::staging`), [`from_sqlite`] (SQLite archives: the type mapping `decide`; their
//! schema in `from_sqlite::ddl`), `compare`, [`types`], `catalog`. Every load, whatever its
//! mode, goes through one COPY row loop (`copy_in`), and every field through one binary
//! codec (`pgbinary`), from Arrow arrays or from SQLite values.
//!
//! Connections ([`conn`]) accept URLs, conninfo strings, `PG*` variables and every `sslmode`
//! through rustls; passwords never appear in messages. The async driver runs on a
//! single-threaded tokio runtime owned by each call, so callers stay synchronous.

#![forbid(unsafe_code)]

mod array_text;
pub(crate) mod catalog;
mod compare;
pub mod conn;
mod copy_in;
mod data_only;
mod error;
mod export;
pub mod from_sqlite;
mod import;
mod leftover;
mod load;
mod parallel;
pub(crate) mod pgbinary;
pub(crate) mod resume;
mod select;
pub mod types;

pub use compare::compare;
pub use error::PgError;
pub use export::{ExportOptions, ExportReport, export};
pub use import::{ImportOptions, ImportReport, dry_run, import};
pub use leftover::{Swept, cleanup};

/// Prefix of this adapter's content digests (an order-independent digest of the binary COPY
/// tuples of a table's data fields; see `ferry_archive::rowset`): v2 sums XXH3-128 row
/// hashes, v1 (archives before it) SHA-256 ones.
pub const DIGEST_PREFIX: &str = "postgresql-v2:";
pub const DIGEST_PREFIX_V1: &str = "postgresql-v1:";

/// The prefix and row hash to recompute a recorded digest with, so older archives compare
/// like for like; the current kind when nothing was recorded, `None` for a kind this
/// version does not know.
pub(crate) fn digest_kind(
    recorded: Option<&str>,
) -> Option<(&'static str, ferry_archive::rowset::RowHash)> {
    use ferry_archive::rowset::RowHash;
    match recorded {
        None => Some((DIGEST_PREFIX, RowHash::Xxh3)),
        Some(r) if r.starts_with(DIGEST_PREFIX) => Some((DIGEST_PREFIX, RowHash::Xxh3)),
        Some(r) if r.starts_with(DIGEST_PREFIX_V1) => Some((DIGEST_PREFIX_V1, RowHash::Sha256)),
        Some(_) => None,
    }
}

/// The engine name written into `source.engine`.
pub const ENGINE: &str = "postgresql";

/// Double-quotes an identifier, always: case, keywords and odd characters never matter.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Runs one statement of SQL that came from an archive (or was built from one). It goes
/// through the extended protocol, which refuses a second command in one statement, so no
/// archive field can stack statements; `batch_execute` is for ferry's own fixed SQL only.
pub(crate) async fn one_statement(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<(), tokio_postgres::Error> {
    tracing::debug!(statement = sql.lines().next().unwrap_or(""), "running");
    client.execute(sql, &[]).await.map(|_| ())
}

fn runtime() -> Result<tokio::runtime::Runtime, PgError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PgError::Config(format!("starting the async runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use ferry_archive::rowset::RowHash;

    use super::*;

    #[test]
    fn a_recorded_digest_is_recomputed_with_the_hash_its_prefix_names() {
        assert_eq!(
            digest_kind(Some("postgresql-v2:3:00")),
            Some((DIGEST_PREFIX, RowHash::Xxh3))
        );
        assert_eq!(
            digest_kind(Some("postgresql-v1:3:00")),
            Some((DIGEST_PREFIX_V1, RowHash::Sha256))
        );
        assert_eq!(digest_kind(None), Some((DIGEST_PREFIX, RowHash::Xxh3)));
        assert_eq!(digest_kind(Some("postgresql-v9:3:00")), None);
        assert_eq!(digest_kind(Some("sqlite-v2:00")), None);
    }
}
