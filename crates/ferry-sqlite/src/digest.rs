//! The content digest of a table: one hash over every value of every row, in a fixed row
//! order, with its storage class. Export records it in the manifest; `verify --against`
//! recomputes it from a live database. Two tables with the same digest hold the same values
//! with the same storage classes, byte for byte.
//!
//! Encoding per value: NULL `0x00`; INTEGER `0x01` + i64 big-endian; REAL `0x02` + IEEE-754
//! bits big-endian (so -0.0 and NaN payloads count); TEXT `0x03` + u64 length + bytes; BLOB
//! `0x04` + u64 length + bytes. Rows are the data fields in manifest order, rowid first.
//!
//! `sqlite-v2:` hashes that byte stream with XXH3-128 (seed 0), `sqlite-v1:` with SHA-256.
//! Export writes v2: the digest guards against a wrong restore, not against an attacker (the
//! file checksums do that), and SHA-256 cost as much CPU as reading the rows. A recorded v1
//! digest is still recomputed with SHA-256, so older archives verify as they did.

use rusqlite::types::ValueRef;
use sha2::{Digest as _, Sha256};
use twox_hash::XxHash3_128;

pub const PREFIX: &str = "sqlite-v2:";
pub const PREFIX_V1: &str = "sqlite-v1:";

/// Values are small and many; XXH3's streaming state costs a call and a copy per piece, so
/// pieces gather in a block and reach the hash a block at a time. A large piece goes
/// straight through. Chunking never changes a streaming hash, so this is speed only.
const BLOCK: usize = 64 * 1024;

pub enum Digest {
    V2 {
        hash: Box<XxHash3_128>,
        block: Vec<u8>,
    },
    V1(Sha256),
}

impl Default for Digest {
    fn default() -> Self {
        Digest::V2 {
            hash: Box::new(XxHash3_128::new()),
            block: Vec::with_capacity(BLOCK),
        }
    }
}

impl Digest {
    /// The digest of the kind `recorded` was made with, so that a comparison recomputes like
    /// for like; the current kind when nothing was recorded, `None` for a kind this version
    /// does not know.
    pub fn like(recorded: Option<&str>) -> Option<Self> {
        match recorded {
            None => Some(Digest::default()),
            Some(r) if r.starts_with(PREFIX) => Some(Digest::default()),
            Some(r) if r.starts_with(PREFIX_V1) => Some(Digest::V1(Sha256::new())),
            Some(_) => None,
        }
    }

    pub fn value(&mut self, v: ValueRef<'_>) {
        match self {
            Digest::V2 { hash, block } => encode(v, |bytes| {
                if bytes.len() >= 4096 {
                    hash.write(block);
                    block.clear();
                    hash.write(bytes);
                } else {
                    if block.len() + bytes.len() > BLOCK {
                        hash.write(block);
                        block.clear();
                    }
                    block.extend_from_slice(bytes);
                }
            }),
            Digest::V1(sha) => encode(v, |bytes| sha.update(bytes)),
        }
    }

    pub fn finish(self) -> String {
        match self {
            Digest::V2 { mut hash, block } => {
                hash.write(&block);
                format!("{PREFIX}{:032x}", hash.finish_128())
            }
            Digest::V1(sha) => format!("{PREFIX_V1}{}", hex::encode(sha.finalize())),
        }
    }
}

/// The one encoding of a SQLite value (above), handed to `put` in pieces so that neither the
/// table digest nor a row digest copies a value to encode it.
pub(crate) fn encode(v: ValueRef<'_>, mut put: impl FnMut(&[u8])) {
    match v {
        ValueRef::Null => put(&[0]),
        ValueRef::Integer(i) => {
            put(&[1]);
            put(&i.to_be_bytes());
        }
        ValueRef::Real(f) => {
            put(&[2]);
            put(&f.to_bits().to_be_bytes());
        }
        ValueRef::Text(t) => {
            put(&[3]);
            put(&(t.len() as u64).to_be_bytes());
            put(t);
        }
        ValueRef::Blob(b) => {
            put(&[4]);
            put(&(b.len() as u64).to_be_bytes());
            put(b);
        }
    }
}

/// The `SELECT` that reads a table's data fields in digest order, from the manifest alone,
/// so that export and verify read exactly the same way.
pub fn select_sql(table: &ferry_archive::Table) -> String {
    select_sql_where(table, None)
}

/// [`select_sql`] restricted to the rows a condition keeps.
pub fn select_sql_where(table: &ferry_archive::Table, filter: Option<&str>) -> String {
    let fields: Vec<String> = table
        .data_fields()
        .iter()
        .map(|(n, _)| crate::quote(n))
        .collect();
    let order = match (
        &table.rowid,
        table.properties.get(crate::schema::prop::ROWID_ALIAS),
    ) {
        (Some(r), _) => crate::quote(r),
        (None, Some(alias)) => crate::quote(alias.as_str().unwrap_or_default()),
        (None, None) => match &table.primary_key {
            Some(pk) => pk
                .columns
                .iter()
                .map(|c| crate::quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            None => "1".to_owned(),
        },
    };
    let cols = if fields.is_empty() {
        "NULL".to_owned()
    } else {
        fields.join(", ")
    };
    let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    format!(
        "SELECT {cols} FROM main.{}{filter} ORDER BY {order}",
        crate::quote(&table.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_VECTOR: &str = "sqlite-v2:ac6a1c9f4288d0f3f693e1219dc860f3";
    const V1_VECTOR: &str =
        "sqlite-v1:92eee86df0b47498a84235dca55688ae24bf416f973e84fef523620a63775b59";

    fn digest_of(mut d: Digest, values: &[ValueRef<'_>]) -> String {
        for v in values {
            d.value(*v);
        }
        d.finish()
    }

    /// The vectors were computed outside ferry (Python's `xxhash.xxh3_128` and `hashlib`)
    /// over the encoding the module doc gives, so the spec alone reproduces them.
    #[test]
    fn both_digest_kinds_match_independently_computed_vectors() {
        let big = vec![7u8; 5000];
        let values = [
            ValueRef::Null,
            ValueRef::Integer(-2),
            ValueRef::Real(-0.0),
            ValueRef::Text(b"caf\xc3\xa9"),
            ValueRef::Blob(&big),
            ValueRef::Integer(i64::MAX),
        ];
        assert_eq!(digest_of(Digest::default(), &values), V2_VECTOR);
        assert_eq!(
            digest_of(Digest::like(Some(V1_VECTOR)).unwrap(), &values),
            V1_VECTOR
        );
        assert_eq!(
            digest_of(Digest::like(Some(V2_VECTOR)).unwrap(), &values),
            V2_VECTOR
        );
        assert!(Digest::like(Some("sqlite-v9:00")).is_none());
    }

    #[test]
    fn blocks_and_large_pieces_do_not_change_the_digest() {
        // Enough small values to cross several blocks, mixed with pieces that go straight
        // through, hashed both ways.
        let mut d = Digest::default();
        let mut whole = XxHash3_128::new();
        let mut all = Vec::new();
        for i in 0..40_000i64 {
            let text = format!("row {i}");
            let blob = vec![(i % 251) as u8; if i % 997 == 0 { 9000 } else { 3 }];
            for v in [
                ValueRef::Integer(i),
                ValueRef::Text(text.as_bytes()),
                ValueRef::Blob(&blob),
            ] {
                d.value(v);
                encode(v, |b| all.extend_from_slice(b));
            }
        }
        whole.write(&all);
        assert_eq!(d.finish(), format!("{PREFIX}{:032x}", whole.finish_128()));
        assert_eq!(
            format!("{:032x}", XxHash3_128::oneshot(&all)),
            format!("{:032x}", whole.finish_128())
        );
    }
}
