//! `--data-only` into SQLite: load an archive's rows into a database file whose schema the
//! application created (from its own `schema.sql` or migrations), changing nothing else.
//!
//! The load runs inside one `BEGIN IMMEDIATE` transaction on the target itself, not on a
//! copy: SQLite's journal makes it all or nothing (a failure, a Ctrl-C or a kill -9 rolls
//! back), the application's other connections, journal mode, file mode and owner are
//! untouched, and no other writer can slip in between the backup and the commit. Before
//! the transaction writes anything, `VACUUM INTO` keeps a consistent copy beside the target
//! (`TARGET.bak-<timestamp>`), unless `--no-backup`.
//!
//! Tables and columns are matched by name, ignoring ASCII case as SQLite does. Each value is
//! converted the way a full import would convert it (a SQLite archive's values keep their
//! storage class; a PostgreSQL archive's follow the documented mapping), and the existing
//! column's affinity then applies as it does to any insert. Foreign keys are not enforced
//! row by row, so the order of the archive's tables does not matter; instead
//! `PRAGMA foreign_key_check` and `PRAGMA integrity_check` must both come back clean
//! before the commit. The application's triggers are held off during the load (dropped and
//! recreated from their own definitions inside the same transaction), so loading rows does
//! not fire audit or timestamp logic a second time. Only statements ferry writes itself
//! run: nothing from the archive is executed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_archive::{Location, Manifest, Part, PartData, Progress, Table, TableReport, Visitor};
use rusqlite::Connection;

use crate::error::{Ctx, SqliteError};
use crate::from_postgres::{self, Conv};
use crate::import::{columns, foreign_key_check, query_strings};
use crate::quote;

#[derive(Debug, Clone)]
pub struct DataOnlyOptions {
    /// Skip (and report) archive tables the target lacks, instead of refusing.
    pub skip_missing_tables: bool,
    /// Keep `TARGET.bak-<timestamp>` before changing the file.
    pub backup: bool,
    /// Load, check, and roll back.
    pub dry_run: bool,
    pub batch_rows: usize,
    /// PostgreSQL numerics as REAL instead of exact text.
    pub numeric_real: bool,
}

impl Default for DataOnlyOptions {
    fn default() -> Self {
        DataOnlyOptions {
            skip_missing_tables: false,
            backup: true,
            dry_run: false,
            batch_rows: 16_384,
            numeric_real: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct DataOnlyReport {
    pub tables: Vec<TableReport>,
    /// Differences between the two sides, and what was done about them.
    pub notes: Vec<String>,
    /// Archive tables not loaded, with the reason.
    pub skipped: Vec<String>,
    pub backup: Option<PathBuf>,
    pub elapsed: Duration,
    /// The checks run before the commit, with their results: (name, result).
    pub checks: Vec<(String, String)>,
}

/// A column of the target.
#[derive(Debug, Clone)]
struct TargetColumn {
    name: String,
    declared: String,
    not_null: bool,
    has_default: bool,
    /// The INTEGER PRIMARY KEY, which takes a rowid when left out.
    rowid_alias: bool,
    generated: bool,
}

struct TargetTable {
    name: String,
    columns: Vec<TargetColumn>,
    autoincrement: bool,
}

/// How one archive table loads.
struct Load {
    target: String,
    /// (archive data field, target column, conversion for a PostgreSQL archive)
    fields: Vec<(usize, String, Option<Conv>)>,
}

fn target_tables(conn: &Connection) -> Result<Vec<TargetTable>, SqliteError> {
    let names = query_strings(
        conn,
        "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let mut out = Vec::new();
    for name in names {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?1",
                [&name],
                |r| r.get::<_, Option<String>>(0),
            )
            .ctx(|| format!("table {name}: reading its definition"))?
            .unwrap_or_default();
        if sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            continue;
        }
        let mut stmt = conn
            .prepare("SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk, hidden FROM pragma_table_xinfo(?1)")
            .ctx(|| format!("table {name}: reading its columns"))?;
        let mut columns: Vec<TargetColumn> = stmt
            .query_map([&name], |r| {
                Ok(TargetColumn {
                    name: r.get(0)?,
                    declared: r.get(1)?,
                    not_null: r.get(2)?,
                    has_default: r.get(3)?,
                    rowid_alias: false,
                    generated: r.get::<_, i64>(5)? >= 2,
                })
            })
            .ctx(|| format!("table {name}: reading its columns"))?
            .collect::<Result<_, _>>()
            .ctx(|| format!("table {name}: reading its columns"))?;
        let pks: Vec<i64> = {
            let mut s = conn
                .prepare("SELECT pk FROM pragma_table_info(?1)")
                .ctx(|| format!("table {name}: reading its key"))?;
            s.query_map([&name], |r| r.get(0))
                .ctx(|| format!("table {name}: reading its key"))?
                .collect::<Result<_, _>>()
                .ctx(|| format!("table {name}: reading its key"))?
        };
        let without_rowid = sql.to_ascii_uppercase().contains("WITHOUT ROWID");
        if pks.iter().filter(|p| **p > 0).count() == 1 && !without_rowid {
            let visible: Vec<&mut TargetColumn> =
                columns.iter_mut().filter(|c| !c.generated).collect();
            for (c, pk) in visible.into_iter().zip(&pks) {
                if *pk > 0 && c.declared.eq_ignore_ascii_case("INTEGER") {
                    c.rowid_alias = true;
                }
            }
        }
        out.push(TargetTable {
            autoincrement: sql.to_ascii_uppercase().contains("AUTOINCREMENT"),
            name,
            columns,
        });
    }
    Ok(out)
}

/// Matches the archive's tables and columns with the target's, reporting every difference;
/// refuses, before anything is written, what cannot load.
fn plan(
    m: &Manifest,
    targets: &[TargetTable],
    options: &DataOnlyOptions,
    report: &mut DataOnlyReport,
) -> Result<HashMap<String, Load>, SqliteError> {
    let cross = match m.source.engine.as_str() {
        crate::schema::ENGINE => false,
        "postgresql" => true,
        other => {
            return Err(SqliteError::Unsupported(format!(
                "archives written from {other} cannot be loaded into SQLite"
            )));
        }
    };
    let mut loads = HashMap::new();
    let mut missing = Vec::new();
    for t in &m.tables {
        if t.kind == "partitioned" || t.kind == "virtual" {
            continue;
        }
        if ferry_archive::selection::is_migration_bookkeeping(&t.name) {
            report.skipped.push(format!(
                "table {}: migration bookkeeping, left as the target has it",
                t.display_name()
            ));
            continue;
        }
        let find = |name: &str| targets.iter().find(|x| x.name.eq_ignore_ascii_case(name));
        // A PostgreSQL partition's rows belong in its partitioned table, as a full import
        // puts them: SQLite has no partitions.
        let parent = cross
            .then(|| from_postgres::partition_parent(t, m))
            .flatten();
        let Some(target) = find(&t.name).or_else(|| parent.and_then(|p| find(&p.name))) else {
            missing.push(t);
            continue;
        };
        if parent.is_none()
            && loads
                .values()
                .any(|l: &Load| l.target.eq_ignore_ascii_case(&target.name))
        {
            return Err(SqliteError::Unsupported(format!(
                "table {}: the archive has two tables named {} (in different schemas); load them one at a time",
                t.display_name(),
                target.name
            )));
        }
        let data = t.data_fields();
        let mut fields = Vec::new();
        for (i, (name, _)) in data.iter().enumerate() {
            if t.rowid.as_deref() == Some(name.as_str()) {
                continue; // an implicit rowid: the target assigns its own
            }
            match target
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
            {
                Some(c) if c.generated => report.notes.push(format!(
                    "column {}.{}: generated in the target; its archived values are not loaded",
                    target.name, c.name
                )),
                Some(c) => {
                    let conv = if cross {
                        let col = t.columns.iter().find(|x| &x.name == name).ok_or_else(|| {
                            SqliteError::Unsupported(format!(
                                "table {}: data field {name} has no column",
                                t.display_name()
                            ))
                        })?;
                        Some(from_postgres::decide(col, options.numeric_real).1)
                    } else {
                        None
                    };
                    fields.push((i, c.name.clone(), conv));
                }
                None => report.notes.push(format!(
                    "column {}.{name}: not in the target; its values are not loaded",
                    t.display_name()
                )),
            }
        }
        for c in &target.columns {
            if c.generated || fields.iter().any(|(_, n, _)| n == &c.name) {
                continue;
            }
            if c.not_null && !c.has_default && !c.rowid_alias {
                return Err(SqliteError::Refused {
                    what: format!("column {}.{}", target.name, c.name),
                    reason: "NOT NULL without a default in the target, and the archive has no such column".into(),
                });
            }
            report.notes.push(format!(
                "column {}.{}: only in the target; it takes its default",
                target.name, c.name
            ));
        }
        loads.insert(
            t.id.clone(),
            Load {
                target: target.name.clone(),
                fields,
            },
        );
    }
    if !missing.is_empty() {
        let mut names: Vec<String> = missing.iter().take(5).map(|t| t.display_name()).collect();
        if missing.len() > 5 {
            names.push(format!("and {} more", missing.len() - 5));
        }
        if !options.skip_missing_tables {
            return Err(SqliteError::Refused {
                what: format!("table(s) {}", names.join(", ")),
                reason: "not in the target; pass --skip-missing-tables to load the rest".into(),
            });
        }
        for t in missing {
            report.skipped.push(format!(
                "table {}: not in the target; its {} rows are not loaded",
                t.display_name(),
                t.rows.unwrap_or(0)
            ));
        }
    }
    for t in targets {
        if !loads.values().any(|l| l.target == t.name)
            && !ferry_archive::selection::is_migration_bookkeeping(&t.name)
        {
            report.notes.push(format!(
                "table {}: only in the target; left as it is",
                t.name
            ));
        }
    }
    Ok(loads)
}

struct Loader<'c> {
    conn: &'c Connection,
    options: &'c DataOnlyOptions,
    targets: Vec<TargetTable>,
    loads: HashMap<String, Load>,
    report: DataOnlyReport,
    rows: HashMap<String, u64>,
    progress: &'c dyn Progress,
}

impl Visitor for Loader<'_> {
    type Error = SqliteError;

    fn prelude(&mut self, prelude: &Manifest) -> Result<(), SqliteError> {
        if prelude.source.engine == "postgresql" {
            from_postgres::check_facts(prelude)
                .map_err(|(what, reason)| SqliteError::Refused { what, reason })?;
        }
        self.loads = plan(prelude, &self.targets, self.options, &mut self.report)?;
        Ok(())
    }

    fn part(&mut self, table: &Table, part: &Part<'_>) -> Result<(), SqliteError> {
        let Some(load) = self.loads.get(&table.id) else {
            return Ok(());
        };
        let name = table.display_name();
        let names: Vec<String> = load.fields.iter().map(|(_, c, _)| quote(c)).collect();
        let params: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        let sql = if names.is_empty() {
            format!(
                "INSERT OR ABORT INTO main.{} DEFAULT VALUES",
                quote(&load.target)
            )
        } else {
            format!(
                "INSERT OR ABORT INTO main.{} ({}) VALUES ({})",
                quote(&load.target),
                names.join(", "),
                params.join(", ")
            )
        };
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .ctx(|| format!("table {}: preparing the insert", load.target))?;
        let data = table.data_fields();
        let mut rows = 0u64;
        for batch in part.batches(self.options.batch_rows)? {
            let batch = batch?;
            let value_error = |column: &str, r: usize, reason: String| SqliteError::Value {
                table: name.clone(),
                column: column.to_owned(),
                row: format!("{} of {}", r + 1, part.path),
                reason: ferry_archive::rowkey::with_key(reason, table, &batch, r),
            };
            // A SQLite archive: values keep their storage class.
            let same = if load.fields.iter().all(|(_, _, c)| c.is_none()) {
                Some(columns(&batch, &data).map_err(|(c, reason)| value_error(&c, 0, reason))?)
            } else {
                None
            };
            for r in 0..batch.num_rows() {
                for (j, (i, column, conv)) in load.fields.iter().enumerate() {
                    let bound = match (conv, &same) {
                        (Some(conv), _) => {
                            let v = from_postgres::value(conv, &data[*i].1, batch.column(*i), r)
                                .map_err(|reason| value_error(&data[*i].0, r, reason))?;
                            stmt.raw_bind_parameter(j + 1, v)
                        }
                        (None, Some(cols)) => {
                            let v = crate::import::bindable(&cols[*i], r)
                                .map_err(|reason| value_error(&data[*i].0, r, reason))?;
                            stmt.raw_bind_parameter(j + 1, v)
                        }
                        (None, None) => {
                            return Err(value_error(
                                &data[*i].0,
                                r,
                                "no conversion for this field".into(),
                            ));
                        }
                    };
                    bound.ctx(|| format!("table {}: binding {column}", load.target))?;
                }
                // OR ABORT: a table's own ON CONFLICT REPLACE or IGNORE must not delete the
                // application's rows or drop the archive's without a word.
                let inserted = stmt.raw_execute().map_err(|source| SqliteError::Sql {
                    context: format!(
                        "table {}, row {} of {}: inserting",
                        load.target,
                        r + 1,
                        part.path
                    ),
                    source,
                })?;
                if inserted != 1 {
                    return Err(SqliteError::Check {
                        context: format!("table {}, row {} of {}", load.target, r + 1, part.path),
                        detail: format!(
                            "{inserted} rows inserted for one (a trigger or conflict rule of the target intervened)"
                        ),
                    });
                }
            }
            ferry_archive::interrupt::pause_point("import:batch");
            rows += batch.num_rows() as u64;
            self.progress.advance(&name, batch.num_rows() as u64, 0);
        }
        *self.rows.entry(table.id.clone()).or_default() += rows;
        Ok(())
    }
}

/// Keeps a consistent copy of the target beside it: `TARGET.bak-<timestamp>`.
fn backup(target: &Path) -> Result<PathBuf, SqliteError> {
    let stamp = chrono::Local::now().format("%Y%m%dT%H%M%S");
    let mut path = PathBuf::from(format!("{}.bak-{stamp}", target.display()));
    let mut n = 1;
    while path.exists() {
        path = PathBuf::from(format!("{}.bak-{stamp}-{n}", target.display()));
        n += 1;
    }
    // A second connection: it reads while the loading one holds the write lock.
    let reader = crate::export::open_read_only_exact(target)?;
    reader
        .execute("VACUUM INTO ?1", [path.to_string_lossy()])
        .ctx(|| {
            format!(
                "{}: keeping a backup at {}",
                target.display(),
                path.display()
            )
        })?;
    Ok(path)
}

/// Loads an archive's rows into an existing SQLite database (see the module comment).
pub fn import_data_only(
    location: &Location,
    target: &Path,
    options: &DataOnlyOptions,
    progress: &dyn Progress,
) -> Result<DataOnlyReport, SqliteError> {
    let started = Instant::now();
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(m) => {
            return Err(SqliteError::Unsupported(format!(
                "{}: not a regular file ({})",
                target.display(),
                crate::import::file_kind(m.file_type())
            )));
        }
        Err(_) => {
            return Err(SqliteError::Unsupported(format!(
                "{}: no such database; --data-only loads into an existing database (create it from the application's schema first, or import without --data-only)",
                target.display()
            )));
        }
    }
    // Opened read-write but never created: the check above found the file.
    let conn = Connection::open_with_flags(
        target,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ctx(|| format!("{}: opening", target.display()))?;
    conn.busy_timeout(Duration::from_secs(5))
        .ctx(|| format!("{}: opening", target.display()))?;
    // Keys are checked once, before the commit, instead of row by row.
    conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE")
        .ctx(|| {
            format!(
                "{}: taking the write lock (is the application writing to it?)",
                target.display()
            )
        })?;
    let targets = target_tables(&conn)?;
    let mut report = DataOnlyReport::default();
    let mut made_backup = None;
    let result = (|| -> Result<(), SqliteError> {
        if options.backup && !options.dry_run {
            let b = backup(target)?;
            made_backup = Some(b);
        }
        // The application's triggers, held off during the load.
        let triggers: Vec<(String, String)> = {
            let mut s = conn
                .prepare("SELECT name, sql FROM main.sqlite_schema WHERE type = 'trigger' AND sql IS NOT NULL")
                .ctx(|| "reading the target's triggers".into())?;
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .ctx(|| "reading the target's triggers".into())?
                .collect::<Result<_, _>>()
                .ctx(|| "reading the target's triggers".into())?
        };
        for (name, _) in &triggers {
            conn.execute_batch(&format!("DROP TRIGGER main.{}", quote(name)))
                .ctx(|| format!("holding off trigger {name}"))?;
        }
        let mut loader = Loader {
            conn: &conn,
            options,
            targets,
            loads: HashMap::new(),
            report: std::mem::take(&mut report),
            rows: HashMap::new(),
            progress,
        };
        let manifest = ferry_archive::read(location, &mut loader)?.ok_or_else(|| {
            SqliteError::Unsupported(format!("{}: unreadable archive", location.display()))
        })?;
        report = std::mem::take(&mut loader.report);
        for t in &manifest.tables {
            let Some(load) = loader.loads.get(&t.id) else {
                continue;
            };
            let rows = loader.rows.get(&t.id).copied().unwrap_or(0);
            if Some(rows) != t.rows {
                return Err(SqliteError::Check {
                    context: format!("table {}", t.display_name()),
                    detail: format!(
                        "loaded {rows} rows, the manifest says {}",
                        t.rows.unwrap_or(0)
                    ),
                });
            }
            progress.table_finished(&t.display_name());
            let shown = if t.name.eq_ignore_ascii_case(&load.target) {
                load.target.clone()
            } else {
                format!("{} (into {})", t.display_name(), load.target)
            };
            report.tables.push(TableReport {
                name: shown,
                rows,
                bytes: None,
                elapsed: Duration::ZERO,
            });
            let autoincrement = loader
                .targets
                .iter()
                .any(|x| x.name == load.target && x.autoincrement);
            if autoincrement && rows > 0 {
                // SQLite advanced the counter past every id inserted; it must also pass the
                // source's own counter, which deleted rows may have left higher, since
                // AUTOINCREMENT promises never to reuse an id.
                let floor = <ferry_archive::facts::SqliteTableFacts as ferry_archive::Facts>::read(
                    &t.properties,
                )
                .ok()
                .and_then(|f| f.sqlite_sequence)
                .unwrap_or(0);
                conn.execute(
                    "UPDATE main.sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
                    rusqlite::params![&load.target, floor],
                )
                .ctx(|| format!("table {}: advancing sqlite_sequence", load.target))?;
            }
        }
        for (name, sql) in &triggers {
            conn.execute_batch(sql)
                .ctx(|| format!("restoring trigger {name}"))?;
        }
        if !triggers.is_empty() {
            report.notes.push(format!(
                "{} trigger(s) of the target held off during the load and restored",
                triggers.len()
            ));
        }
        let fk = foreign_key_check(&conn)?;
        report.checks.push((
            "foreign_key_check".into(),
            if fk.is_empty() {
                "ok".into()
            } else {
                format!("{} violation(s)", fk.len())
            },
        ));
        if !fk.is_empty() {
            let more = if fk.len() > 5 {
                format!(" (and {} more)", fk.len() - 5)
            } else {
                String::new()
            };
            return Err(SqliteError::Check {
                context: "PRAGMA foreign_key_check".into(),
                detail: format!("{}{more}", fk[..fk.len().min(5)].join("; ")),
            });
        }
        // Columns the target declares JSON must hold JSON text; a source that never checked
        // (SQLite) may have stored anything, so this warns rather than refuses.
        let mut bad_json = Vec::new();
        for load in loader.loads.values() {
            let Some(t) = loader.targets.iter().find(|x| x.name == load.target) else {
                continue;
            };
            for c in t
                .columns
                .iter()
                .filter(|c| c.declared.to_ascii_uppercase().contains("JSON"))
            {
                let n: i64 = conn
                    .query_row(
                        &format!(
                            "SELECT count(*) FROM main.{} WHERE {c} IS NOT NULL AND NOT json_valid({c})",
                            quote(&t.name),
                            c = quote(&c.name)
                        ),
                        [],
                        |r| r.get(0),
                    )
                    .ctx(|| format!("column {}.{}: checking its JSON", t.name, c.name))?;
                if n > 0 {
                    bad_json.push(format!(
                        "{}.{}: {n} value(s) are not valid JSON",
                        t.name, c.name
                    ));
                }
            }
        }
        bad_json.sort();
        report.checks.push((
            "json_valid".into(),
            if bad_json.is_empty() {
                "ok".into()
            } else {
                format!("warn: {}", bad_json.join("; "))
            },
        ));
        let integrity = query_strings(&conn, "PRAGMA integrity_check")?;
        report
            .checks
            .push(("integrity_check".into(), integrity.join("; ")));
        if integrity != ["ok"] {
            return Err(SqliteError::Check {
                context: "PRAGMA integrity_check".into(),
                detail: integrity.join("; "),
            });
        }
        ferry_archive::interrupt::pause_point("import:commit");
        ferry_archive::interrupt::check()?;
        let end = if options.dry_run {
            "ROLLBACK"
        } else {
            "COMMIT"
        };
        conn.execute_batch(end)
            .ctx(|| format!("{}: committing", target.display()))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = conn.execute_batch("ROLLBACK");
        // The target is as it was, so its copy is not needed.
        if let Some(b) = made_backup {
            let _ = std::fs::remove_file(b);
        }
        return Err(e);
    }
    report.backup = made_backup;
    report.elapsed = started.elapsed();
    Ok(report)
}
