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
        schema::ENGINE => {
            let (mut differences, unrecorded) = compare_same(manifest, db)?;
            let mut notes = Vec::new();
            // Tables whose digest differs, and tables with no digest to compare (a masked
            // table's rows are not its source's): both are compared row by row.
            let changed: Vec<&ferry_archive::Table> = manifest
                .tables
                .iter()
                .filter(|t| {
                    unrecorded.contains(&t.name)
                        || differences
                            .iter()
                            .any(|d| d == &same_count_line(&t.name, t.rows.unwrap_or(0)))
                })
                .collect();
            if !changed.is_empty() {
                match locate(location, db, &changed) {
                    Ok(found) => differences.extend(found),
                    Err(e) => {
                        notes.push(format!("the differing rows could not be located: {e}"));
                        // A table nothing has compared is not a match.
                        differences.extend(unrecorded.iter().map(|t| {
                            format!("table {t}: its content could not be compared (the archive records no digest of it, and its rows could not be compared one by one)")
                        }));
                    }
                }
            }
            Ok(Comparison { differences, notes })
        }
        "postgresql" => compare_from_postgres(location, manifest, db),
        other => Err(SqliteError::Unsupported(format!(
            "archives written from {other} cannot be compared with SQLite"
        ))),
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
                            Ok(v) => crate::digest::encode(ValueRef::from(&v), |b| {
                                row.extend_from_slice(b)
                            }),
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
                crate::digest::encode(
                    r.get_ref(i).ctx(|| format!("table {target}: reading"))?,
                    |b| row.extend_from_slice(b),
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
/// The differences a digest finds, and the tables that have no recorded digest (masked
/// ones), which only a comparison of their rows can check.
fn compare_same(manifest: &Manifest, db: &Path) -> Result<(Vec<String>, Vec<String>), SqliteError> {
    let conn = open_read_only(db)?;
    conn.execute_batch("BEGIN")
        .ctx(|| "starting a read transaction".into())?;
    let live = schema::read_schema(&conn)?;
    let mut diffs = Vec::new();
    let mut unrecorded = Vec::new();

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
        if Digest::like(t.content_digest.as_deref()).is_none() {
            diffs.push(unknown_digest_line(&t.name));
            continue;
        }
        let (rows, d) = table_digest(&conn, t)?;
        let expected_rows = t.rows.unwrap_or(0);
        if rows != expected_rows {
            diffs.push(format!(
                "table {}: {rows} rows in the database, {expected_rows} in the archive",
                t.name
            ));
        } else if t.content_digest.is_none() {
            unrecorded.push(t.name.clone());
        } else if t.content_digest.as_deref() != Some(d.as_str()) {
            diffs.push(same_count_line(&t.name, rows));
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
    Ok((diffs, unrecorded))
}

fn same_count_line(table: &str, rows: u64) -> String {
    format!("table {table}: same row count ({rows}) but different content")
}

/// Most rows named per table: enough to see the pattern, few enough to read.
const LOCATED_ROWS: usize = 3;

/// Names the rows (by key) and columns behind a digest mismatch. The digest says only
/// *that* a table differs; to say *where*, the archive is imported into a temporary file and
/// the two tables are compared in SQL, value and storage class alike (`quote()`), through
/// the key the export orders by (the rowid, its alias or the primary key). This costs an
/// import, so it runs only when a table differs.
fn locate(
    location: &ferry_archive::Location,
    db: &Path,
    tables: &[&ferry_archive::Table],
) -> Result<Vec<String>, SqliteError> {
    let dir = tempfile::Builder::new()
        .prefix(ferry_archive::leftover::prefix())
        .tempdir()
        .ctx(|| "creating a temporary directory".into())?;
    let copy = dir.path().join("archive.sqlite");
    crate::import::import(
        location,
        &copy,
        &crate::ImportOptions::default(),
        &ferry_archive::NoProgress,
    )?;
    let conn = open_read_only(db)?;
    conn.execute("ATTACH DATABASE ?1 AS archive", [copy.to_string_lossy()])
        .ctx(|| "attaching the archive's copy".into())?;
    let mut out = Vec::new();
    for t in tables {
        let fields: Vec<String> = t.data_fields().iter().map(|(n, _)| n.clone()).collect();
        let key: Vec<String> = match (
            &t.rowid,
            t.properties.get(crate::schema::prop::ROWID_ALIAS),
            &t.primary_key,
        ) {
            (Some(r), _, _) => vec![r.clone()],
            (None, Some(alias), _) => vec![alias.as_str().unwrap_or_default().to_owned()],
            (None, None, Some(pk)) => pk.columns.clone(),
            _ => Vec::new(),
        };
        let quoted: Vec<String> = fields
            .iter()
            .map(|f| format!("quote({})", crate::quote(f)))
            .collect();
        let table = crate::quote(&t.name);
        let side = |schema: &str| {
            format!(
                "SELECT {} FROM {schema}.{table}",
                if quoted.is_empty() {
                    "NULL".to_owned()
                } else {
                    quoted.join(", ")
                }
            )
        };
        let mut found = 0;
        for (here, there, label) in [
            ("main", "archive", "database"),
            ("archive", "main", "archive"),
        ] {
            let sql = format!(
                "{} EXCEPT {} LIMIT {}",
                side(here),
                side(there),
                LOCATED_ROWS
            );
            let mut stmt = conn
                .prepare(&sql)
                .ctx(|| format!("table {}: comparing", t.name))?;
            let rows: Vec<Vec<String>> = stmt
                .query_map([], |r| {
                    (0..quoted.len().max(1))
                        .map(|i| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default))
                        .collect()
                })
                .ctx(|| format!("table {}: comparing", t.name))?
                .collect::<Result<_, _>>()
                .ctx(|| format!("table {}: comparing", t.name))?;
            for row in rows {
                if found >= LOCATED_ROWS {
                    break;
                }
                let key_text: Vec<String> = key
                    .iter()
                    .filter_map(|k| {
                        let i = fields.iter().position(|f| f == k)?;
                        Some(format!("{k}={}", ferry_archive::clip(&row[i])))
                    })
                    .collect();
                if key_text.len() != key.len() || key.is_empty() {
                    out.push(format!(
                        "table {}: a row only in the {label}: ({})",
                        t.name,
                        ferry_archive::clip(&row.join(", "))
                    ));
                    found += 1;
                    continue;
                }
                // The same key on the other side: which columns differ, if it is there.
                let cond: Vec<String> = key
                    .iter()
                    .enumerate()
                    .map(|(n, k)| format!("quote({}) = ?{}", crate::quote(k), n + 1))
                    .collect();
                let key_values: Vec<&String> = key
                    .iter()
                    .filter_map(|k| fields.iter().position(|f| f == k).map(|i| &row[i]))
                    .collect();
                let lookup = format!("{} WHERE {} LIMIT 1", side(there), cond.join(" AND "));
                let other: Option<Vec<String>> = conn
                    .prepare(&lookup)
                    .and_then(|mut s| {
                        let params: Vec<&dyn rusqlite::ToSql> = key_values
                            .iter()
                            .map(|v| *v as &dyn rusqlite::ToSql)
                            .collect();
                        let mut rows = s.query(params.as_slice())?;
                        match rows.next()? {
                            Some(r) => Ok(Some(
                                (0..fields.len())
                                    .map(|i| {
                                        r.get::<_, Option<String>>(i).map(Option::unwrap_or_default)
                                    })
                                    .collect::<Result<_, _>>()?,
                            )),
                            None => Ok(None),
                        }
                    })
                    .ctx(|| format!("table {}: looking up a row", t.name))?;
                let at = key_text.join(", ");
                match other {
                    None => out.push(format!("table {}, row {at}: only in the {label}", t.name)),
                    Some(_) if label == "archive" => continue, // reported from the database side
                    Some(o) => {
                        let cols: Vec<String> = fields
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| row[*i] != o[*i])
                            .map(|(i, f)| {
                                format!(
                                    "column {f}: database {}, archive {}",
                                    ferry_archive::clip(&row[i]),
                                    ferry_archive::clip(&o[i])
                                )
                            })
                            .collect();
                        out.push(format!("table {}, row {at}: {}", t.name, cols.join("; ")));
                    }
                }
                found += 1;
            }
        }
        if found == 0 {
            // The database holds what the archive's files hold. If those do not match the
            // digest the exporter recorded, the archive was changed after export. With no
            // digest recorded (a masked table), the database's rows and the archive's copy
            // are digested alike: the digest sees what EXCEPT cannot (-0.0 against 0.0, and
            // how many times a row repeats in a table without a key).
            if t.content_digest.is_none() {
                let (_, live) = table_digest(&conn, t)?;
                let (_, archived) = table_digest(&open_read_only(&copy)?, t)?;
                if live != archived {
                    out.push(format!(
                        "table {}: the rows differ only in ways SQL comparison cannot see (such as -0.0 and 0.0, or how many times a row repeats)",
                        t.name
                    ));
                }
                continue;
            }
            if Digest::like(t.content_digest.as_deref()).is_none() {
                out.push(unknown_digest_line(&t.name));
                continue;
            }
            let copy_conn = open_read_only(&copy)?;
            let (_, d) = table_digest(&copy_conn, t)?;
            out.push(if t.content_digest.as_deref() != Some(d.as_str()) {
                format!(
                    "table {}: the database holds the archive's rows, but they do not match the content digest recorded at export (the archive was changed after export)",
                    t.name
                )
            } else {
                format!(
                    "table {}: the rows differ only in ways SQL comparison cannot see (such as -0.0 and 0.0)",
                    t.name
                )
            });
        }
    }
    Ok(out)
}

/// A table whose recorded digest this version cannot recompute is not a match: nothing
/// compared its content.
fn unknown_digest_line(table: &str) -> String {
    format!(
        "table {table}: its content digest is of a kind this version of ferry cannot recompute, so its content was not compared; verify with a newer ferry"
    )
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
    // Recompute with the hash the recorded digest was made with, so older archives verify.
    let recorded = t.content_digest.as_deref();
    let mut d = Digest::like(recorded).ok_or_else(|| {
        SqliteError::Unsupported(format!(
            "table {}: content digest {:?} is of a kind this version of ferry cannot recompute; verify with a newer ferry",
            t.name,
            recorded.unwrap_or_default().split(':').next().unwrap_or_default()
        ))
    })?;
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
