//! Archive → SQLite.
//!
//! The database is built in a temporary file beside the target, inside one transaction, with
//! the journal off (a failed build is thrown away whole, so a journal would only cost time),
//! and renamed into place only after the archive's manifest has been checked and SQLite's own
//! integrity check has passed. The order is the one that loads fastest and fires nothing:
//! tables, rows, then indexes, views and triggers, then sequences, statistics and pragmas.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int8Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use ferry_archive::types::sqlite_class;
use ferry_archive::{Location, LogicalType, Manifest, Part, Table, TableReport, Visitor};
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};
use serde_json::Value;

use crate::error::{Ctx, SqliteError};
use crate::schema::{self, prop};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Replace an existing target, keeping it as `<target>.bak-<timestamp>`.
    pub replace: bool,
    /// Rows per decoded batch.
    pub batch_rows: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            replace: false,
            batch_rows: 16_384,
        }
    }
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub tables: Vec<TableReport>,
    /// `PRAGMA foreign_key_check` findings; they were in the source too (SQLite does not
    /// enforce foreign keys unless asked), so they are reported, not fatal.
    pub foreign_key_violations: Vec<String>,
    /// Where `--replace` kept the previous file.
    pub backup: Option<PathBuf>,
    pub elapsed: Duration,
}

pub fn import(
    location: &Location,
    target: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, SqliteError> {
    let started = Instant::now();
    let exists = std::fs::symlink_metadata(target).is_ok();
    if exists && !options.replace {
        return Err(SqliteError::TargetExists {
            path: target.to_owned(),
        });
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".ferry-")
        .suffix(".sqlite.partial")
        .tempfile_in(parent)
        .ctx(|| format!("{}: creating a temporary file", parent.display()))?
        .into_temp_path();
    let conn = Connection::open(&temp).ctx(|| format!("{}: opening", temp.display()))?;

    let mut loader = Loader {
        conn: &conn,
        batch_rows: options.batch_rows.max(1),
        prelude: None,
        reports: HashMap::new(),
    };
    let manifest = ferry_archive::read(location, &mut loader)?.ok_or_else(|| {
        SqliteError::Unsupported(format!("{}: unreadable archive", location.display()))
    })?;
    let mut reports: Vec<TableReport> = manifest
        .tables
        .iter()
        .map(|t| {
            let mut r = loader.reports.remove(&t.id).unwrap_or_default();
            r.name = t.display_name();
            r
        })
        .collect();
    reports.retain(|r| !r.name.is_empty());
    check_row_counts(&manifest, &reports)?;
    post_data(&conn, &manifest)?;
    conn.execute_batch("COMMIT")
        .ctx(|| "committing the import".into())?;
    let integrity: Vec<String> = query_strings(&conn, "PRAGMA integrity_check")?;
    if integrity != ["ok"] {
        return Err(SqliteError::Check {
            context: "PRAGMA integrity_check".into(),
            detail: integrity.join("; "),
        });
    }
    let fk = foreign_key_check(&conn)?;
    finish_settings(&conn, &manifest)?;
    conn.close().map_err(|(_, e)| e).ctx(|| "closing".into())?;
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .ctx(|| format!("{}: syncing", temp.display()))?;

    let backup = if exists {
        Some(backup_existing(target)?)
    } else {
        None
    };
    if let Err(e) = temp.persist_noclobber(target) {
        if let Some(b) = &backup {
            let _ = std::fs::rename(b, target);
        }
        return Err(SqliteError::Io {
            context: format!("{}: moving the new database into place", target.display()),
            source: e.error,
        });
    }
    Ok(ImportReport {
        tables: reports,
        foreign_key_violations: fk,
        backup,
        elapsed: started.elapsed(),
    })
}

fn check_row_counts(manifest: &Manifest, reports: &[TableReport]) -> Result<(), SqliteError> {
    for (t, r) in manifest.tables.iter().zip(reports) {
        let expected = t.rows.unwrap_or(0);
        let exports_rows = !t.properties.contains_key(prop::CONTENT);
        if exports_rows && r.rows != expected {
            return Err(SqliteError::Check {
                context: format!("table {}", t.display_name()),
                detail: format!(
                    "the archive lists {expected} rows but {} were loaded",
                    r.rows
                ),
            });
        }
    }
    Ok(())
}

/// Moves the existing target (and its WAL, which belongs to it) aside.
fn backup_existing(target: &Path) -> Result<PathBuf, SqliteError> {
    let stamp = chrono::Local::now().format("%Y%m%dT%H%M%S");
    let mut backup = PathBuf::from(format!("{}.bak-{stamp}", target.display()));
    let mut n = 1;
    while backup.exists() {
        backup = PathBuf::from(format!("{}.bak-{stamp}-{n}", target.display()));
        n += 1;
    }
    std::fs::rename(target, &backup).ctx(|| {
        format!(
            "{}: keeping a backup at {}",
            target.display(),
            backup.display()
        )
    })?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = PathBuf::from(format!("{}{suffix}", target.display()));
        if side.exists() {
            let to = PathBuf::from(format!("{}{suffix}", backup.display()));
            std::fs::rename(&side, &to).ctx(|| format!("{}: moving aside", side.display()))?;
        }
    }
    Ok(backup)
}

struct Loader<'c> {
    conn: &'c Connection,
    batch_rows: usize,
    prelude: Option<Manifest>,
    reports: HashMap<String, TableReport>,
}

impl Visitor for Loader<'_> {
    type Error = SqliteError;

    fn prelude(&mut self, prelude: &Manifest) -> Result<(), SqliteError> {
        if prelude.source.engine != schema::ENGINE {
            return Err(SqliteError::Unsupported(format!(
                "this archive was written from {} {}; importing it into SQLite needs the cross-engine mapping, which this version of ferry does not have yet",
                prelude.source.engine, prelude.source.engine_version
            )));
        }
        pre_data(self.conn, prelude)?;
        self.prelude = Some(prelude.clone());
        Ok(())
    }

    fn part(&mut self, table: &Table, part: &Part<'_>) -> Result<(), SqliteError> {
        if table.properties.contains_key(prop::CONTENT) {
            return Ok(()); // external-content and contentless FTS: rebuilt in post_data
        }
        let started = Instant::now();
        let sql = insert_sql(table);
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .ctx(|| format!("table {}: preparing the insert", table.name))?;
        let fields = table.data_fields();
        let mut rows = 0u64;
        for batch in part.batches(self.batch_rows)? {
            let batch = batch.map_err(|e| {
                SqliteError::Archive(ferry_archive::ArchiveError::Arrow {
                    path: part.path.to_owned(),
                    source: e,
                })
            })?;
            let cols = columns(&batch, &fields).map_err(|reason| SqliteError::Value {
                table: table.name.clone(),
                column: reason.0,
                row: "-".into(),
                reason: reason.1,
            })?;
            for r in 0..batch.num_rows() {
                for (j, c) in cols.iter().enumerate() {
                    let v = c.value(r).map_err(|reason| SqliteError::Value {
                        table: table.name.clone(),
                        column: fields[j].0.clone(),
                        row: format!("{} of {}", r + 1, part.path),
                        reason,
                    })?;
                    stmt.raw_bind_parameter(j + 1, ToSqlOutput::Borrowed(v))
                        .ctx(|| format!("table {}: binding {}", table.name, fields[j].0))?;
                }
                stmt.raw_execute().map_err(|source| SqliteError::Sql {
                    context: format!(
                        "table {}, {} of {}: inserting",
                        table.name,
                        row_label(&cols, &fields, r, table),
                        part.path
                    ),
                    source,
                })?;
            }
            rows += batch.num_rows() as u64;
        }
        let rep = self.reports.entry(table.id.clone()).or_default();
        rep.rows += rows;
        rep.elapsed += started.elapsed();
        Ok(())
    }
}

fn row_label(
    cols: &[Col<'_>],
    fields: &[(String, LogicalType)],
    r: usize,
    table: &Table,
) -> String {
    match (
        table.rowid.is_some(),
        cols.first().and_then(|c| c.value(r).ok()),
    ) {
        (true, Some(ValueRef::Integer(i))) => format!("rowid {i}"),
        (_, Some(v)) => format!("row with {} = {v:?}", fields[0].0),
        _ => format!("row {r}"),
    }
}

fn insert_sql(table: &Table) -> String {
    let fields = table.data_fields();
    let names: Vec<String> = fields.iter().map(|(n, _)| crate::quote(n)).collect();
    let params: Vec<String> = (1..=fields.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO main.{} ({}) VALUES ({})",
        crate::quote(&table.name),
        names.join(", "),
        params.join(", ")
    )
}

/// Settings that must precede the first table, then the tables themselves.
fn pre_data(conn: &Connection, m: &Manifest) -> Result<(), SqliteError> {
    let setting = |k: &str| m.settings.get(k);
    if let Some(Value::String(enc)) = setting("encoding") {
        let enc = match enc.as_str() {
            "utf-16le" => "UTF-16le",
            "utf-16be" => "UTF-16be",
            _ => "UTF-8",
        };
        conn.execute_batch(&format!("PRAGMA encoding = '{enc}'"))
            .ctx(|| "setting the encoding".into())?;
    }
    if let Some(n) = setting("page_size").and_then(Value::as_i64) {
        conn.execute_batch(&format!("PRAGMA page_size = {n}"))
            .ctx(|| "setting the page size".into())?;
    }
    if let Some(n) = setting("auto_vacuum").and_then(Value::as_i64) {
        conn.execute_batch(&format!("PRAGMA auto_vacuum = {n}"))
            .ctx(|| "setting auto_vacuum".into())?;
    }
    // Load-time settings for a file nobody else can see yet.
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA cache_size = -131072; PRAGMA foreign_keys = OFF;
         BEGIN",
    )
    .ctx(|| "setting up the load".into())?;
    for t in &m.tables {
        let sql = t.definition.as_deref().ok_or_else(|| {
            SqliteError::Unsupported(format!("table {}: the archive has no definition", t.name))
        })?;
        conn.execute_batch(sql)
            .ctx(|| format!("table {}: creating", t.name))?;
    }
    Ok(())
}

/// Everything after the rows: indexes, views and triggers in their original order, FTS
/// rebuilds, sqlite_sequence, the planner's statistics.
fn post_data(conn: &Connection, m: &Manifest) -> Result<(), SqliteError> {
    for o in &m.objects {
        if let Some(sql) = &o.definition {
            conn.execute_batch(sql)
                .ctx(|| format!("{} {}: creating", o.kind, o.name))?;
        }
    }
    for t in &m.tables {
        if t.properties.get(prop::CONTENT).and_then(Value::as_str) == Some("external") {
            let q = crate::quote(&t.name);
            conn.execute_batch(&format!("INSERT INTO main.{q}({q}) VALUES ('rebuild')"))
                .ctx(|| format!("virtual table {}: rebuilding from its content", t.name))?;
        }
    }
    let sequences: Vec<(&str, i64)> = m
        .tables
        .iter()
        .filter_map(|t| {
            t.properties
                .get(prop::SEQUENCE)
                .and_then(Value::as_i64)
                .map(|s| (t.name.as_str(), s))
        })
        .collect();
    if !sequences.is_empty() {
        let mut del = conn
            .prepare("DELETE FROM main.sqlite_sequence WHERE name = ?1")
            .ctx(|| "restoring sqlite_sequence".into())?;
        let mut ins = conn
            .prepare("INSERT INTO main.sqlite_sequence(name, seq) VALUES (?1, ?2)")
            .ctx(|| "restoring sqlite_sequence".into())?;
        for (name, seq) in sequences {
            del.execute([name])
                .ctx(|| format!("table {name}: restoring sqlite_sequence"))?;
            ins.execute(rusqlite::params![name, seq])
                .ctx(|| format!("table {name}: restoring sqlite_sequence"))?;
        }
    }
    restore_stats(conn, m)?;
    Ok(())
}

/// Recreates sqlite_stat1/sqlite_stat4 with the source's rows (not fresh statistics: the copy
/// should plan queries exactly as the original did).
fn restore_stats(conn: &Connection, m: &Manifest) -> Result<(), SqliteError> {
    let stat1 = m.settings.get("sqlite_stat1").and_then(Value::as_array);
    let stat4 = m.settings.get("sqlite_stat4").and_then(Value::as_array);
    if stat1.is_none() && stat4.is_none() {
        return Ok(());
    }
    // ANALYZE of the (empty) schema table creates the statistics tables.
    conn.execute_batch("ANALYZE main.sqlite_schema")
        .ctx(|| "creating the statistics tables".into())?;
    for (name, rows) in [("sqlite_stat1", stat1), ("sqlite_stat4", stat4)] {
        let exists: i64 = conn
            .query_row(
                "SELECT count(*) FROM main.sqlite_schema WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .ctx(|| format!("restoring {name}"))?;
        match rows {
            None if exists > 0 => conn
                .execute_batch(&format!("DROP TABLE main.{name}"))
                .ctx(|| format!("dropping {name}, which the source did not have"))?,
            None => {}
            Some(rows) => {
                if exists == 0 {
                    return Err(SqliteError::Unsupported(format!(
                        "the archive has {name} statistics but this SQLite cannot create {name}"
                    )));
                }
                conn.execute_batch(&format!("DELETE FROM main.{name}"))
                    .ctx(|| format!("restoring {name}"))?;
                for row in rows {
                    let vals: Vec<rusqlite::types::Value> = row
                        .as_array()
                        .map(|r| r.iter().map(json_to_sql).collect())
                        .unwrap_or_default();
                    let params: Vec<String> = (1..=vals.len()).map(|i| format!("?{i}")).collect();
                    conn.execute(
                        &format!("INSERT INTO main.{name} VALUES ({})", params.join(", ")),
                        rusqlite::params_from_iter(vals.iter()),
                    )
                    .ctx(|| format!("restoring {name}"))?;
                }
            }
        }
    }
    Ok(())
}

fn json_to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Number(n) if n.is_i64() => V::Integer(n.as_i64().unwrap_or_default()),
        Value::Number(n) => V::Real(n.as_f64().unwrap_or_default()),
        Value::String(s) => V::Text(s.clone()),
        Value::Object(o) => match o.get("blob").and_then(Value::as_str) {
            Some(h) => V::Blob(hex::decode(h).unwrap_or_default()),
            None => V::Null,
        },
        other => V::Text(other.to_string()),
    }
}

/// Pragmas that live in the file header and are set last: the journal mode (WAL is
/// persistent) and the application's own numbers.
fn finish_settings(conn: &Connection, m: &Manifest) -> Result<(), SqliteError> {
    for key in ["user_version", "application_id"] {
        if let Some(n) = m.settings.get(key).and_then(Value::as_i64) {
            conn.execute_batch(&format!("PRAGMA main.{key} = {n}"))
                .ctx(|| format!("setting {key}"))?;
        }
    }
    conn.execute_batch("PRAGMA locking_mode = NORMAL")
        .ctx(|| "setting locking_mode".into())?;
    let mode = match m.settings.get("journal_mode").and_then(Value::as_str) {
        Some("wal") => "WAL",
        _ => "DELETE",
    };
    let _: String = conn
        .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
        .ctx(|| "setting the journal mode".into())?;
    Ok(())
}

fn query_strings(conn: &Connection, sql: &str) -> Result<Vec<String>, SqliteError> {
    let mut stmt = conn.prepare(sql).ctx(|| sql.to_owned())?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .ctx(|| sql.to_owned())?;
    rows.collect::<Result<_, _>>().ctx(|| sql.to_owned())
}

fn foreign_key_check(conn: &Connection) -> Result<Vec<String>, SqliteError> {
    let mut stmt = conn
        .prepare("SELECT \"table\", rowid, parent, fkid FROM pragma_foreign_key_check")
        .ctx(|| "PRAGMA foreign_key_check".into())?;
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "table {}, rowid {}: no matching row in {} (foreign key {})",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?
                    .map_or("-".to_owned(), |i| i.to_string()),
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?
            ))
        })
        .ctx(|| "PRAGMA foreign_key_check".into())?;
    rows.collect::<Result<_, _>>()
        .ctx(|| "PRAGMA foreign_key_check".into())
}

/// A data field of a decoded batch, readable as SQLite values.
enum Col<'a> {
    Int(&'a arrow_array::Int64Array),
    Real(&'a arrow_array::Float64Array),
    Text(&'a arrow_array::StringArray),
    Blob(&'a arrow_array::BinaryArray),
    Value {
        nulls: &'a arrow_array::StructArray,
        class: &'a arrow_array::Int8Array,
        integer: &'a arrow_array::Int64Array,
        real: &'a arrow_array::Float64Array,
        text: &'a arrow_array::StringArray,
        blob: &'a arrow_array::BinaryArray,
    },
}

fn columns<'a>(
    batch: &'a RecordBatch,
    fields: &[(String, LogicalType)],
) -> Result<Vec<Col<'a>>, (String, String)> {
    fields
        .iter()
        .zip(batch.columns())
        .map(|((name, lt), a)| {
            Ok(match lt {
                LogicalType::Int64 => Col::Int(a.as_primitive::<Int64Type>()),
                LogicalType::Float64 => Col::Real(a.as_primitive::<Float64Type>()),
                LogicalType::Text => Col::Text(a.as_string::<i32>()),
                LogicalType::Bytes => Col::Blob(a.as_binary::<i32>()),
                LogicalType::SqliteValue => {
                    let s = a.as_struct();
                    Col::Value {
                        nulls: s,
                        class: s.column(0).as_primitive::<Int8Type>(),
                        integer: s.column(1).as_primitive::<Int64Type>(),
                        real: s.column(2).as_primitive::<Float64Type>(),
                        text: s.column(3).as_string::<i32>(),
                        blob: s.column(4).as_binary::<i32>(),
                    }
                }
                other => {
                    return Err((
                        name.clone(),
                        format!(
                            "logical type {} cannot be loaded into SQLite yet",
                            other.display()
                        ),
                    ));
                }
            })
        })
        .collect()
}

impl<'a> Col<'a> {
    /// The value of row `r`; an invalid `sqlite_value` (unknown class, empty slot) is an error.
    fn value(&self, r: usize) -> Result<ValueRef<'a>, String> {
        Ok(match self {
            Col::Int(a) if a.is_valid(r) => ValueRef::Integer(a.value(r)),
            Col::Real(a) if a.is_valid(r) => ValueRef::Real(a.value(r)),
            Col::Text(a) if a.is_valid(r) => ValueRef::Text(a.value(r).as_bytes()),
            Col::Blob(a) if a.is_valid(r) => ValueRef::Blob(a.value(r)),
            Col::Value {
                nulls,
                class,
                integer,
                real,
                text,
                blob,
            } if nulls.is_valid(r) => match class.value(r) {
                sqlite_class::INTEGER if integer.is_valid(r) => ValueRef::Integer(integer.value(r)),
                sqlite_class::REAL if real.is_valid(r) => ValueRef::Real(real.value(r)),
                sqlite_class::TEXT if text.is_valid(r) => ValueRef::Text(text.value(r).as_bytes()),
                sqlite_class::TEXT_BYTES if blob.is_valid(r) => ValueRef::Text(blob.value(r)),
                sqlite_class::BLOB if blob.is_valid(r) => ValueRef::Blob(blob.value(r)),
                c => return Err(format!("invalid sqlite_value: class {c} without its value")),
            },
            _ => ValueRef::Null,
        })
    }
}
