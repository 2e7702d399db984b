//! # ferry-archive: the ferry archive format, and nothing about databases
//!
//! A ferry archive is a directory (or a tar of the same entries) holding `prelude.json`, one
//! or more zstd-compressed Parquet files per table under `data/<table id>/`, and
//! `manifest.json`. The normative description is `spec/FORMAT.md`; this crate is its
//! reference implementation, and deliberately knows no engine: adapters hand it Arrow record
//! batches and a [`Manifest`], and get the same back when reading.
//!
//! Three decisions shape the code:
//!
//! * **One pass, either direction.** The prelude (the schema) is written first and the
//!   manifest (checksums, row counts) last, so an exporter can stream a tar to stdout while it
//!   reads its source, and an importer can load from stdin while the tar arrives. The price is
//!   that a streaming reader learns whether the data was intact only at the end; [`read`]
//!   returns the manifest only after every check passed, and importers commit only then.
//! * **Nothing half-written.** [`ArchiveWriter`] stages everything beside the target and
//!   publishes with one rename; dropping it on an error removes the staging area.
//! * **One type mapping.** [`LogicalType::arrow_type`] is the single place that fixes how each
//!   logical type is stored; `spec/types.md` mirrors it row by row.
//!
//! Reading is push-style ([`Visitor`]) so that the importer (stop at the first problem) and
//! `verify` (collect every problem) share one traversal.

#![forbid(unsafe_code)]

pub mod again;
pub mod convert;
mod encoding;
mod error;
pub mod facts;
mod hash;
pub mod interrupt;
pub mod leftover;
pub mod limits;
mod location;
pub mod manifest;
pub mod mask;
mod reader;
mod remote_tar;
mod report;
pub mod rowkey;
pub mod rowset;
mod schema;
pub mod seal;
pub mod selection;
pub mod sign;
mod slice;
pub mod sqlite_value;
pub mod types;
mod verify;
mod writer;

pub use error::{ArchiveError, Result};
pub use facts::Facts;
pub use hash::{HashingWriter, copy_hashed, hash_file};
pub use location::{Location, Remote, RemoteRef};
pub use manifest::{
    Check, Column, CreatedBy, DataFile, ForeignKey, Generated, Key, Manifest, SchemaObject, Source,
    Stage, Table, Warning,
};
pub use reader::{
    Batches, DetachedPart, MANIFEST, PRELUDE, Part, PartData, Visitor, decoding, read,
    read_manifest, read_stream,
};
pub use report::{Comparison, ImportPlan, NoProgress, Progress, TableReport};
pub use schema::{MANIFEST_SCHEMA, validate as validate_manifest_json};
pub use types::LogicalType;

/// At most about 200 bytes of `s` (for a value quoted in a message), cut at a character
/// boundary, saying how much was left out: a 25 MB value must not become a 25 MB error.
pub fn clip(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} more bytes)", &s[..cut], s.len() - cut)
}
pub use verify::{Report, verify};
pub use writer::{ArchiveWriter, RESUME_JOURNAL, TableWriter, WriteOptions, resume_dir};

#[cfg(test)]
mod tests {
    #[test]
    fn clip_keeps_messages_short_and_cuts_on_a_character() {
        assert_eq!(super::clip("short"), "short");
        let long = "é".repeat(10_000_000);
        let c = super::clip(&long);
        assert!(c.len() < 240, "{}", c.len());
        assert!(c.ends_with("… (19999800 more bytes)"), "{c}");
    }
}
