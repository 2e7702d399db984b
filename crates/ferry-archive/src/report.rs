//! What an export or import reports per table. Engine adapters fill it; the binary prints it.

use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableReport {
    /// Display name (`schema.table` or `table`).
    pub name: String,
    pub rows: u64,
    /// Bytes written to the archive (export) or `None` (import).
    pub bytes: Option<u64>,
    pub elapsed: Duration,
}

/// What an import would do, for `--dry-run`: every statement in order, every conversion and
/// every object that would not be carried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportPlan {
    pub statements: Vec<String>,
    pub notes: Vec<String>,
    pub skipped: Vec<String>,
}

/// The outcome of comparing an archive with a live database (`verify --against`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// One line per difference, naming the table, column or object. Empty means they match.
    pub differences: Vec<String>,
    /// What was compared how (columns only counted, ...), for the person reading the result.
    pub notes: Vec<String>,
}
