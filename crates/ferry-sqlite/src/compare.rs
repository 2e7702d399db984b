//! `ferry verify ARCHIVE --against app.db`: does a live SQLite database hold what the archive
//! holds? Tables, columns, schema objects, row counts, and the content digest of every table
//! (recomputed with exactly the query the exporter used).

use std::collections::BTreeSet;
use std::path::Path;

use ferry_archive::Manifest;

use crate::digest::{self, Digest};
use crate::error::{Ctx, SqliteError};
use crate::export::open_read_only;
use crate::schema;

/// One line per difference, each naming the table or object. Empty means identical.
pub fn compare(manifest: &Manifest, db: &Path) -> Result<Vec<String>, SqliteError> {
    if manifest.source.engine != schema::ENGINE {
        return Err(SqliteError::Unsupported(format!(
            "comparing a {} archive with a SQLite database needs the cross-engine mapping, which this version of ferry does not have yet",
            manifest.source.engine
        )));
    }
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
