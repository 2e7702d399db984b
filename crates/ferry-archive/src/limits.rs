//! Resource limits on what an archive may ask of its reader.
//!
//! An archive can come from anyone (FORMAT.md §7.1), and every size in it is the writer's
//! claim. Without limits a 3 KB Parquet file that decompresses to 500 MB of values, or a
//! 200 MB manifest with a million warnings, takes gigabytes of memory. Each limit below is
//! far above what a real database produces, refuses with one line naming the file and the
//! flag that raises it, and is checked before the memory is spent where the format allows
//! (document sizes before reading, row-group sizes from the footer before decoding).
//!
//! The limits are process-wide, set once by the binary from its flags ([`set`]); a library
//! user who never sets them gets [`Limits::default`].

use std::sync::OnceLock;

/// What a reader accepts. See `spec/FORMAT.md` §7 (resource limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `manifest.json` or `prelude.json`, in bytes.
    pub document_bytes: u64,
    /// Most entries in a manifest's `warnings`.
    pub warnings: usize,
    /// Largest single value (a string or a blob) once decoded, in bytes.
    pub value_bytes: u64,
}

pub const MIB: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            document_bytes: 16 * MIB,
            warnings: 20_000,
            value_bytes: 256 * MIB,
        }
    }
}

/// Decoded bytes a reader aims to hold in one record batch: a part's batches get fewer rows
/// when its footer says its rows are wide.
pub const BATCH_BYTES: u64 = 32 * MIB;

static LIMITS: OnceLock<Limits> = OnceLock::new();

/// Sets the process's limits. Only the first call counts (the binary calls it once, before
/// any archive is read); later calls return false.
pub fn set(limits: Limits) -> bool {
    LIMITS.set(limits).is_ok()
}

/// The limits in force.
pub fn get() -> Limits {
    LIMITS.get().copied().unwrap_or_default()
}
