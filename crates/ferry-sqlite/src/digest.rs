//! The content digest of a table: SHA-256 over every value of every row, in a fixed row order,
//! with its storage class. Export records it in the manifest; `verify --against` recomputes it
//! from a live database. Two tables with the same digest hold the same values with the same
//! storage classes, byte for byte.
//!
//! Encoding per value: NULL `0x00`; INTEGER `0x01` + i64 big-endian; REAL `0x02` + IEEE-754
//! bits big-endian (so -0.0 and NaN payloads count); TEXT `0x03` + u64 length + bytes; BLOB
//! `0x04` + u64 length + bytes. Rows are the data fields in manifest order, rowid first.

use rusqlite::types::ValueRef;
use sha2::{Digest as _, Sha256};

pub const PREFIX: &str = "sqlite-v1:";

pub struct Digest(Sha256);

impl Default for Digest {
    fn default() -> Self {
        Digest(Sha256::new())
    }
}

impl Digest {
    pub fn value(&mut self, v: ValueRef<'_>) {
        encode(v, |bytes| self.0.update(bytes));
    }

    pub fn finish(self) -> String {
        format!("{PREFIX}{}", hex::encode(self.0.finalize()))
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
