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
