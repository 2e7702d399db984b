//! Resuming an interrupted parallel import (`ferry import --resume`).
//!
//! A parallel import loads each table into its own staging schema on a worker connection
//! (see [`crate::import`]). Each worker commits a table as soon as its rows are in, and in
//! the same transaction it writes the table's *resume record* into its staging schema's
//! comment: which archive it came from (the SHA-256 of the prelude), which table and
//! definition, which builds ran, and each part it holds with its SHA-256 and row count.
//! Each build then runs in a transaction of its own (see [`crate::parallel`]), which adds
//! it to the record. Because the record commits with the rows and the builds, it never
//! claims a part or a build that a crash rolled back, and never misses one that committed.
//!
//! An import killed before it published leaves these schemas behind. `--resume` takes them
//! over instead of sweeping them ([`adopt`]): under an advisory lock, so that two resumes
//! cannot take the same one, it keeps each abandoned staging table whose record names this
//! archive, a table of it with the same definition, and this ferry version, and whose row
//! count still equals the record's; it drops the rest. Foreign keys on the kept tables are
//! dropped too: they are added again, and so validated again, once every table is in.
//!
//! As the archive is read again, a part the record holds with the same SHA-256 is skipped,
//! a part it does not hold is loaded (appended, so without FREEZE), and a part it holds
//! with another SHA-256 stops the import: the archive changed since, and the table cannot
//! be trusted. Publication is unchanged, one transaction, so a resumed import ends exactly
//! as an uninterrupted one would.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::error::{Ctx, PgError, RowExt};
use crate::{quote_ident, quote_qualified};

/// Separates the owner record from the resume record in a staging schema's comment.
pub(crate) const MARK: &str = "; resume ";

/// The advisory lock (`pg_advisory_xact_lock`) under which resumes take staging schemas over.
const LOCK: i64 = 0x6665_7272_795f_7273; // "ferry_rs"

/// What a staging table holds, committed with it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Record {
    /// The ferry version that wrote it: plans and builds may differ between versions.
    pub version: String,
    /// SHA-256 of the archive's prelude.
    pub archive: String,
    /// The archive's table id.
    pub table: String,
    /// SHA-256 of the CREATE TABLE the staging copy was made with.
    pub definition: String,
    /// SHA-256 of the builds (indexes, keys) run on it.
    pub builds: String,
    /// Post-data positions of the builds that succeeded on it.
    pub built: Vec<usize>,
    pub parts: Vec<DonePart>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct DonePart {
    pub path: String,
    pub sha256: String,
    pub rows: u64,
}

impl Record {
    pub fn new(archive: &str, table: &str, definition: &str) -> Record {
        Record {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            archive: archive.to_owned(),
            table: table.to_owned(),
            definition: digest(&[definition]),
            ..Default::default()
        }
    }

    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.rows).sum()
    }

    pub fn part(&self, path: &str) -> Option<&DonePart> {
        self.parts.iter().find(|p| p.path == path)
    }

    /// The staging schema's comment: the owner record, then this one. Hex, so that the
    /// archive's paths never reach SQL text unescaped.
    pub fn comment(&self, owner: &str) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{owner}{MARK}{}", hex::encode(json))
    }

    pub fn parse(comment: &str) -> Option<Record> {
        let (_, record) = comment.split_once(MARK)?;
        serde_json::from_slice(&hex::decode(record).ok()?).ok()
    }
}

/// SHA-256 (hex) of strings, each ended by a NUL so that the split is part of the digest.
pub(crate) fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// `COMMENT ON SCHEMA` with a record, in the caller's transaction.
pub(crate) async fn write(
    client: &Client,
    schema: &str,
    owner: &str,
    record: &Record,
) -> Result<(), PgError> {
    // Both parts are ferry's own text (digits from the server, hex), so plain quoting holds;
    // the schema's name may come from the catalog, so it runs alone (extended protocol).
    let sql = format!(
        "COMMENT ON SCHEMA {} IS '{}'",
        quote_ident(schema),
        record.comment(owner).replace('\'', "''")
    );
    client
        .execute(&sql, &[])
        .await
        .map(|_| ())
        .ctx(|| format!("recording the progress of staging schema {schema}"))
}

/// The advisory lock class (`pg_advisory_xact_lock(class, hashtext(schema))`) under which
/// a staging schema's record is rewritten.
const RECORD_LOCK: i32 = 0x6672_7263; // "frrc"

/// Locks a staging schema's record for the rest of the caller's transaction and reads it
/// as committed. Its table's builds run on other connections than the one that loads it
/// (see [`crate::parallel`]), and each adds itself to the record in its own transaction:
/// two unserialized rewrites of one comment would fail ("tuple concurrently updated") or
/// lose an entry, so every rewrite reads the record afresh under this lock first. Each
/// caller takes the table's lock (by loading or building) before this one, never after.
pub(crate) async fn lock(client: &Client, schema: &str) -> Result<Option<Record>, PgError> {
    client
        .execute(
            "SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2))",
            &[&RECORD_LOCK, &schema],
        )
        .await
        .ctx(|| format!("locking the progress record of staging schema {schema}"))?;
    let comment: Option<String> = client
        .query_one(
            "SELECT pg_catalog.obj_description(n.oid, 'pg_namespace')
               FROM pg_catalog.pg_namespace n WHERE n.nspname = $1",
            &[&schema],
        )
        .await
        .ctx(|| format!("reading the progress record of staging schema {schema}"))?
        .at(0)?;
    Ok(comment.as_deref().and_then(Record::parse))
}

/// A table the interrupted import had loaded, now this import's.
#[derive(Debug, Clone)]
pub(crate) struct Adopted {
    /// Its staging schema.
    pub schema: String,
    pub record: Record,
}

/// A table this import could take over: its archive id, name in staging and definition.
pub(crate) struct Wanted<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub ddl: &'a str,
}

/// What [`adopt`] did.
#[derive(Debug, Default)]
pub(crate) struct Adoption {
    /// By archive table id.
    pub tables: HashMap<String, Adopted>,
    /// Abandoned staging schemas that did not match, dropped (or why they could not be).
    pub dropped: Vec<String>,
    pub failed: Vec<String>,
}

/// Takes over the abandoned staging tables of an earlier import of this archive (see the
/// module's essay). Runs in its own transaction, before the import transaction.
pub(crate) async fn adopt(
    client: &Client,
    owner: &str,
    archive: &str,
    wanted: &[Wanted<'_>],
) -> Result<Adoption, PgError> {
    let mut adoption = Adoption::default();
    client
        .batch_execute("BEGIN")
        .await
        .ctx(|| "--resume: starting a transaction".into())?;
    client
        .execute("SELECT pg_catalog.pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .ctx(|| "--resume: waiting for another resume to take its tables".into())?;
    let mut drop = Vec::new();
    for (schema, comment) in crate::leftover::abandoned(client).await? {
        let Some(record) = Record::parse(&comment) else {
            drop.push(schema);
            continue;
        };
        let matched = wanted.iter().find(|w| {
            w.id == record.table
                && record.archive == archive
                && record.version == env!("CARGO_PKG_VERSION")
                && record.definition == digest(&[w.ddl])
                && !adoption.tables.contains_key(w.id)
        });
        let Some(w) = matched else {
            drop.push(schema);
            continue;
        };
        let table = quote_qualified(&schema, w.name);
        let exists: bool = client
            .query_one("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[&table])
            .await
            .ctx(|| format!("--resume: looking for {table}"))?
            .at(0)?;
        let rows: i64 = if exists {
            client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .ctx(|| format!("--resume: counting the rows of {table}"))?
                .at(0)?
        } else {
            -1
        };
        if rows < 0 || rows as u64 != record.rows() {
            tracing::info!(%table, rows, recorded = record.rows(), "not resumed: rows differ");
            drop.push(schema);
            continue;
        }
        drop_foreign_keys(client, &table).await?;
        write(client, &schema, owner, &record).await?;
        adoption.tables.insert(
            w.id.to_owned(),
            Adopted {
                schema: schema.clone(),
                record,
            },
        );
    }
    client
        .batch_execute("COMMIT")
        .await
        .ctx(|| "--resume: taking over the staging tables".into())?;
    for schema in drop {
        match crate::leftover::drop_quietly(client, &schema).await {
            Ok(()) => adoption.dropped.push(schema),
            Err(e) => adoption.failed.push(e),
        }
    }
    Ok(adoption)
}

/// Drops the foreign keys a staging table got in the interrupted run: they are added again
/// with everyone else's, after every table is loaded.
async fn drop_foreign_keys(client: &Client, table: &str) -> Result<(), PgError> {
    let rows = client
        .query(
            "SELECT conname::text FROM pg_catalog.pg_constraint
              WHERE conrelid = $1::text::regclass AND contype = 'f' ORDER BY 1",
            &[&table],
        )
        .await
        .ctx(|| format!("--resume: reading the foreign keys of {table}"))?;
    for r in rows {
        let name: String = r.at(0)?;
        // Names from the catalog and the archive: one statement, extended protocol.
        client
            .execute(
                &format!("ALTER TABLE {table} DROP CONSTRAINT {}", quote_ident(&name)),
                &[],
            )
            .await
            .ctx(|| format!("--resume: dropping foreign key {name} of {table}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_a_comment() {
        let mut r = Record::new("a".repeat(64).as_str(), "t1", "CREATE TABLE x ()");
        r.parts.push(DonePart {
            path: "data/t1/part-0.parquet".into(),
            sha256: "b".repeat(64),
            rows: 7,
        });
        let owner = "ferry staging; owner backend 42 started 1.5";
        let c = r.comment(owner);
        assert!(c.starts_with(owner));
        assert!(!c.contains('\''), "{c}");
        assert_eq!(Record::parse(&c), Some(r.clone()));
        assert_eq!(r.rows(), 7);
        assert_eq!(Record::parse(owner), None);
    }

    #[test]
    fn digests_keep_the_split() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
    }
}
