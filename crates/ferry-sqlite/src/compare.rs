//! `ferry verify ARCHIVE --against app.db`: does a live SQLite database hold what the archive
//! holds? Tables, columns, schema objects, row counts, and the content digest of every table
//! (recomputed with exactly the query the exporter used).

use std::collections::BTreeSet;
use std::path::Path;

use std::collections::HashMap;

use ferry_archive::rowset::RowDigest;
use ferry_archive::{Comparison, Manifest, PartData};
use rusqlite::types::ValueRef;

use crate::from_postgres;

use crate::digest::{self, Digest};
use crate::error::{Ctx, SqliteError};
use crate::export::open_read_only;
use crate::schema;

/// Compares the archive at `location` (whose manifest is `manifest`) with a live SQLite
/// database: exactly for a SQLite archive, through the import's own mapping for a
/// PostgreSQL archive.
pub fn compare(
    location: &ferry_archive::Location,
    manifest: &Manifest,
    db: &Path,
) -> Result<Comparison, SqliteError> {
    match manifest.source.engine.as_str() {
        schema::ENGINE => Ok(Comparison {
            differences: compare_same(manifest, db)?,
            notes: Vec::new(),
        }),
        "postgresql" => compare_from_postgres(location, manifest, db),
        other => Err(SqliteError::Unsupported(format!(
            "archives written from {other} cannot be compared with SQLite"
        ))),
    }
}

/// One canonical encoding of a SQLite value, for row digests (as in `digest`).
fn encode(v: ValueRef<'_>, out: &mut Vec<u8>) {
    match v {
        ValueRef::Null => out.push(0),
        ValueRef::Integer(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_be_bytes());
        }
        ValueRef::Real(f) => {
            out.push(2);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        ValueRef::Text(t) => {
            out.push(3);
            out.extend_from_slice(&(t.len() as u64).to_be_bytes());
            out.extend_from_slice(t);
        }
        ValueRef::Blob(b) => {
            out.push(4);
            out.extend_from_slice(&(b.len() as u64).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

/// A PostgreSQL archive against the SQLite database it was imported into: every value of
/// every table, converted on the archive side exactly as the import converts it, compared as
/// an order-independent digest per SQLite table (partitions are summed into their parent).
fn compare_from_postgres(
    location: &ferry_archive::Location,
    m: &Manifest,
    db: &Path,
) -> Result<Comparison, SqliteError> {
    let (names, _) = from_postgres::table_names(m);
    let plans = from_postgres::loads(m, &names, false);
    struct Side<'a> {
        plans: &'a HashMap<String, from_postgres::Load>,
        digests: HashMap<String, RowDigest>,
        problems: Vec<String>,
    }
    impl ferry_archive::Visitor for Side<'_> {
        type Error = SqliteError;
        fn prelude(&mut self, _: &Manifest) -> Result<(), SqliteError> {
            Ok(())
        }
        fn part(
            &mut self,
            table: &ferry_archive::Table,
            part: &ferry_archive::Part<'_>,
        ) -> Result<(), SqliteError> {
            let Some((target, fields)) = self.plans.get(&table.id) else {
                return Ok(());
            };
            let data = table.data_fields();
            let digest = self.digests.entry(target.clone()).or_default();
            let mut row = Vec::new();
            for batch in part.batches(16_384)? {
                let batch = batch?;
                for r in 0..batch.num_rows() {
                    row.clear();
                    for (i, _, conv) in fields {
                        match from_postgres::value(conv, &data[*i].1, batch.column(*i), r) {
                            Ok(v) => encode(ValueRef::from(&v), &mut row),
                            Err(e) => self.problems.push(format!("table {}: {e}", table.name)),
                        }
                    }
                    digest.row(&row);
                }
            }
            Ok(())
        }
    }
    let mut side = Side {
        plans: &plans,
        digests: HashMap::new(),
        problems: Vec::new(),
    };
    ferry_archive::read(location, &mut side)?;
    let mut diffs = side.problems;
    let conn = open_read_only(db)?;
    let mut done = BTreeSet::new();
    for t in m.tables.iter().filter(|t| t.kind != "partitioned") {
        let (target, fields) = &plans[&t.id];
        if !done.insert(target.clone()) {
            continue; // a parent already compared with all its partitions
        }
        let cols: Vec<String> = fields.iter().map(|f| crate::quote(&f.1)).collect();
        let sql = format!(
            "SELECT {} FROM main.{}",
            cols.join(", "),
            crate::quote(target)
        );
        let mut stmt = match conn.prepare(&sql) {
            Ok(s) => s,
            Err(e) => {
                diffs.push(format!("table {target}: cannot be read as archived ({e})"));
                continue;
            }
        };
        let mut rows = stmt.query([]).ctx(|| format!("table {target}: reading"))?;
        let mut live = RowDigest::default();
        let mut row = Vec::new();
        while let Some(r) = rows.next().ctx(|| format!("table {target}: reading"))? {
            row.clear();
            for i in 0..cols.len() {
                encode(
                    r.get_ref(i).ctx(|| format!("table {target}: reading"))?,
                    &mut row,
                );
            }
            live.row(&row);
        }
        let expected = side.digests.get(target).cloned().unwrap_or_default();
        if live.rows() != expected.rows() {
            diffs.push(format!(
                "table {target}: {} rows in the database, {} in the archive",
                live.rows(),
                expected.rows()
            ));
        } else if live.finish("") != expected.finish("") {
            diffs.push(format!(
                "table {target}: same row count ({}) but different content",
                live.rows()
            ));
        }
    }
    Ok(Comparison {
        differences: diffs,
        notes: Vec::new(),
    })
}

/// One line per difference, each naming the table or object. Empty means identical.
fn compare_same(manifest: &Manifest, db: &Path) -> Result<Vec<String>, SqliteError> {
    let conn = open_read_only(db)?;
    conn.execute_batch("BEGIN")
        .ctx(|| "starting a read transaction".into())?;
    let live = schema::read_schema(&conn)?;
    let mut diffs = Vec::new();

    let archived: BTreeSet<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
    for t in &live.tables {
        if !archived.contains(t.table.name.as_str()) {
            diffs.push(format!(
                "table {}: in the database but not in the archive",
                t.table.name
            ));
        }
    }
    for t in &manifest.tables {
        let Some(l) = live.tables.iter().find(|l| l.table.name == t.name) else {
            diffs.push(format!(
                "table {}: in the archive but not in the database",
                t.name
            ));
            continue;
        };
        let cols = |t: &ferry_archive::Table| {
            t.columns
                .iter()
                .map(|c| (c.name.clone(), c.declared_type.clone()))
                .collect::<Vec<_>>()
        };
        if cols(t) != cols(&l.table) {
            diffs.push(format!(
                "table {}: columns differ: archive {:?}, database {:?}",
                t.name,
                cols(t),
                cols(&l.table)
            ));
            continue;
        }
        if !l.export_rows {
            continue;
        }
        let (rows, d) = table_digest(&conn, t)?;
        let expected_rows = t.rows.unwrap_or(0);
        if rows != expected_rows {
            diffs.push(format!(
                "table {}: {rows} rows in the database, {expected_rows} in the archive",
                t.name
            ));
        } else if t.content_digest.as_deref() != Some(d.as_str()) {
            diffs.push(format!(
                "table {}: same row count ({rows}) but different content",
                t.name
            ));
        }
    }

    let key = |kind: &str, name: &str| format!("{kind} {name}");
    let objects = |v: &[ferry_archive::SchemaObject]| -> BTreeSet<(String, Option<String>)> {
        v.iter()
            .map(|o| (key(&o.kind, &o.name), o.definition.clone()))
            .collect()
    };
    let (a, l) = (objects(&manifest.objects), objects(&live.objects));
    for (name, _) in a.difference(&l) {
        diffs.push(format!("{name}: missing or different in the database"));
    }
    for (name, _) in l.difference(&a) {
        if !a.iter().any(|(n, _)| n == name) {
            diffs.push(format!("{name}: in the database but not in the archive"));
        }
    }
    for key in ["user_version", "application_id"] {
        if manifest.settings.get(key) != live.settings.get(key) {
            diffs.push(format!(
                "PRAGMA {key}: archive {:?}, database {:?}",
                manifest.settings.get(key),
                live.settings.get(key)
            ));
        }
    }
    conn.execute_batch("COMMIT")
        .ctx(|| "ending the read transaction".into())?;
    Ok(diffs)
}

fn table_digest(
    conn: &rusqlite::Connection,
    t: &ferry_archive::Table,
) -> Result<(u64, String), SqliteError> {
    let sql = digest::select_sql(t);
    let mut stmt = conn
        .prepare(&sql)
        .ctx(|| format!("table {}: reading", t.name))?;
    let n = stmt.column_count();
    let mut rows = stmt
        .query([])
        .ctx(|| format!("table {}: reading", t.name))?;
    let mut d = Digest::default();
    let mut count = 0u64;
    while let Some(row) = rows.next().ctx(|| format!("table {}: reading", t.name))? {
        for i in 0..n {
            d.value(
                row.get_ref(i)
                    .ctx(|| format!("table {}: reading", t.name))?,
            );
        }
        count += 1;
    }
    Ok((count, d.finish()))
}
