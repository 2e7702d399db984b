//! # ferry-sqlite: SQLite in and out of a ferry archive
//!
//! SQLite is the embedded default, and the engine with the least regular data: a column's
//! declared type is only a preference, and any value may have any of five storage classes.
//! This crate's job is to carry all of that exactly.
//!
//! * **Export** ([`export()`]) opens the file read-only, holds one read transaction for the
//!   whole run (a consistent snapshot even under a concurrent WAL writer), counts the storage
//!   classes of every column (so the prelude can announce each column's logical type before
//!   any data) and streams rows into Arrow builders in bounded batches. Columns whose values
//!   all have one class get the natural Arrow type; others use the `sqlite_value` struct and
//!   get a warning with their class counts. Rowids are data; original `CREATE` statements,
//!   `sqlite_sequence`, pragmas and planner statistics travel in the manifest.
//! * **Import** ([`import()`]) rebuilds the database in a temporary file with its original
//!   DDL, loads the rows in one transaction with a cached statement, adds indexes, views and
//!   triggers afterwards, checks integrity, and only then renames the file into place.
//!   `--resume` builds a named partial file part by part instead, so that a killed run can
//!   be continued (`resume`).
//! * **Compare** ([`compare()`]) recomputes each table's content digest from a live database.
//!
//! The type mapping lives in [`types`]; `spec/types.md` mirrors it. The importer and the
//! exporter share only the archive format (and `digest`, which defines the digest both
//! sides of `verify --against` compute). Archives from PostgreSQL come in through
//! [`from_postgres`]: its types and values there, its schema (tables, keys, indexes, views,
//! triggers, sequences) in `from_postgres::ddl`, as the PostgreSQL adapter keeps SQLite
//! archives in its `from_sqlite`. Archive values are read through
//! `ferry_archive::sqlite_value`, the one reader both adapters share.
//!
//! An archive is data: every statement built from archive text is prepared under SQLite's
//! authorizer (`guard`), which refuses `ATTACH`, `PRAGMA`, transactions and the like, and
//! must create exactly the object its manifest entry names. SQL that is read (the catalog's
//! `CREATE` statements on export) or translated (PostgreSQL expressions, indexes and views on
//! import) goes through `ferry-sql`'s parser, never through string surgery.

#![forbid(unsafe_code)]

mod collation;
mod compare;
mod data_only;
pub(crate) mod digest;
mod error;
mod export;
mod export_resume;
pub mod from_postgres;
mod guard;
mod import;
mod profile;
mod resume;
pub(crate) mod schema;
mod select;
pub mod types;

pub use compare::compare;
pub use data_only::{DataOnlyOptions, DataOnlyReport, import_data_only};
pub use error::SqliteError;
pub use export::{ExportOptions, ExportReport, export};
pub use import::{ImportOptions, ImportReport, dry_run, import, integrity_pragma};

/// A TEXT value as a `str`, if it is UTF-8. Every TEXT value is checked when it is profiled
/// and again when it is written, so the check is SIMD's (`std::str::from_utf8` was 8 % of a
/// SQLite export's CPU).
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// Quotes an identifier for SQLite: always, so that case, spaces, keywords and quotes in
/// names never matter.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}
