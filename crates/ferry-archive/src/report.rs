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

/// Progress of a long export or import, reported by the engine adapters as they go. The
/// binary renders it (bars on a terminal, plain lines in logs); libraries never print.
pub trait Progress: Send + Sync {
    /// A table starts; `rows` when the total is known in advance.
    fn table_started(&self, table: &str, rows: Option<u64>);
    /// `rows` more rows (and `bytes` more bytes of data) of this table are done.
    fn advance(&self, table: &str, rows: u64, bytes: u64);
    fn table_finished(&self, table: &str);
    /// The whole run is over (successfully or not): clear whatever is on screen.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn table_started(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: &str, _: u64, _: u64) {}
    fn table_finished(&self, _: &str) {}
}
