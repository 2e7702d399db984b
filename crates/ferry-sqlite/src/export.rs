//! SQLite → archive.
//!
//! The source is opened read-only and read inside one transaction, so every query below sees
//! the same snapshot even while another process writes (WAL) or waits (rollback journal).
//! Each table is read twice: once to count the storage classes of every column (which fixes
//! the logical types the prelude must announce before any data), once to stream its rows into
//! Arrow builders, a bounded batch at a time.
//!
//! The first pass is the one nothing else can overlap, since the prelude waits for it; with
//! `--jobs 2` or more it runs on two connections, each scanning half of every large rowid
//! table. The second connection is kept only when SQLite's change counter (`PRAGMA
//! data_version`, read before this export's snapshot and again inside its own) proves that
//! no write committed in between, so both read the same snapshot, in WAL and rollback modes
//! alike; otherwise the pass runs on one connection.
//!
//! The second pass takes the tables largest first, as the first pass measured them: a
//! parallel PostgreSQL import of the stream loads each table as its parts arrive, so the one
//! that takes longest to load and index starts first instead of waiting behind the small ones.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int8Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_buffer::NullBufferBuilder;
use ferry_archive::facts::{Facts, SqliteColumnFacts};
use ferry_archive::types::{sqlite_class, sqlite_value_fields};
use ferry_archive::{
    ArchiveWriter, Location, LogicalType, Manifest, Progress, Source, Table, TableReport,
    TableWriter, Warning, WriteOptions,
};
use ferry_archive::{again, convert};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use crate::digest::{self, Digest};
use crate::error::{Ctx, SqliteError};
use crate::export_resume;
use crate::profile::Profile;
use crate::schema::{self, TableInfo};
use crate::select;
use crate::types::{self, ClassCounts};
use ferry_archive::mask;
use ferry_archive::selection::{self, Action, PlanRow, Selection};

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Rows per Arrow batch (at most).
    pub batch_rows: usize,
    /// Bytes of text and blob per Arrow batch (about), so wide rows stay bounded too. With
    /// `jobs` 2 or more, up to four batches are alive at once (being read, two queued, being
    /// encoded); with one job, one. The queue fills only once a table of wide rows is long
    /// enough for the reader to get ahead of the encoder, so the budget decides whether
    /// memory is flat as tables grow: with 32 MiB, 360 MB of attachments at scale 10000 took
    /// the peak from 101 to 231 MB; with 8 MiB, the export peaked at 77-81 MB at scale 1000
    /// and 93-98 MB at scale 10000; with 4 MiB, at 80-82 MB at both, at the same speed
    /// (docs/benchmarks.md).
    pub batch_bytes: usize,
    /// Threads: with 2 or more, the profile pass runs on two connections reading the same
    /// snapshot, and Parquet encoding and compression run on a second thread while the first
    /// reads the data (through one connection).
    pub jobs: usize,
    /// Which tables and rows to take (`-t`, `--where`, `--subset`, ...).
    pub selection: Selection,
    /// Refuse rows that a `--where` leaves referencing rows that are not exported.
    pub strict: bool,
    /// Decide and count, write nothing.
    pub dry_run: bool,
    /// The key of the `hash` and `email` masks; never written anywhere.
    pub mask_key: Option<Vec<u8>>,
    /// Stage a directory archive in `<archive>.ferry-resume`, kept on failure, and continue
    /// from what an earlier `--resume` run finished there if the source is unchanged (see
    /// [`crate::export_resume`]).
    pub resume: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            batch_rows: 16_384,
            batch_bytes: 4 << 20,
            jobs: 1,
            selection: Selection::default(),
            strict: false,
            dry_run: false,
            mask_key: None,
            resume: false,
        }
    }
}

#[derive(Debug)]
pub struct ExportReport {
    pub manifest: Manifest,
    pub tables: Vec<TableReport>,
    /// What the selection decided for each table (empty for a whole export).
    pub plan: Vec<PlanRow>,
    /// What the selection left out or found (dropped keys, dangling rows).
    pub notes: Vec<String>,
}

/// Names why a file could not be read: a lock is not damage.
fn open_error(path: &Path, source: rusqlite::Error) -> SqliteError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, NotADatabase};
    match source.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => SqliteError::Check {
            context: path.display().to_string(),
            detail: "the database is locked by another connection (an exclusive lock, or a write in rollback-journal mode); retry once it is done, or export a copy".into(),
        },
        Some(NotADatabase) | None => SqliteError::NotADatabase {
            path: path.to_owned(),
            source,
        },
        Some(_) => SqliteError::Sql {
            context: format!("{}: opening", path.display()),
            source,
        },
    }
}

/// Opens a SQLite file for reading without ever writing to it; collations only the
/// application defines get recording stand-ins (`crate::collation`).
pub fn open_read_only(path: &Path) -> Result<Connection, SqliteError> {
    open_reader(path, true)
}

/// [`open_read_only`] without stand-ins, for a reader whose work writes a file: `VACUUM
/// INTO` rebuilds every index, and one built in a stand-in's order is a corrupt file for
/// the application. An unknown collation then fails it, naming the collation.
pub(crate) fn open_read_only_exact(path: &Path) -> Result<Connection, SqliteError> {
    open_reader(path, false)
}

fn open_reader(path: &Path, stand_ins: bool) -> Result<Connection, SqliteError> {
    if path.is_dir() {
        return Err(SqliteError::Unsupported(format!(
            "{}: a directory, not a SQLite database file",
            path.display()
        )));
    }
    if !path.is_file() {
        return Err(SqliteError::NotFound {
            path: path.to_owned(),
        });
    }
    let opened = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| open_error(path, source))?;
    // A writer's brief lock is waited out; a long one is reported as a lock, not as damage.
    opened
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|source| open_error(path, source))?;
    // An application's own collation (crate::collation) must not make its file unreadable.
    if stand_ins {
        crate::collation::allow_unknown(&opened).map_err(|source| open_error(path, source))?;
    }
    let conn = opened;
    conn.query_row("SELECT count(*) FROM main.sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|source| open_error(path, source))?;
    Ok(conn)
}

/// Fails the export if a query compared text by a collation only the application that
/// wrote the file defines (see `crate::collation`): its answer may be wrong.
fn unknown_collations_compared(
    watch: &crate::collation::Watch,
    path: &Path,
) -> Result<(), SqliteError> {
    match watch.compared() {
        None => Ok(()),
        Some(names) => Err(SqliteError::Unsupported(format!(
            "{}: a query had to compare text by collation {}, which the application that \
             wrote the file defines and SQLite does not; ferry cannot know its order, so the \
             rows it selected may be wrong. Filter (--where, --subset) on other columns",
            path.display(),
            names.join(", ")
        ))),
    }
}

pub fn export(
    path: &Path,
    location: &Location,
    write: WriteOptions,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportReport, SqliteError> {
    // `--resume`: the source's identity, read before the snapshot is taken, so that a write
    // committed in between changes it and the next run does not trust this one's tables.
    let identity = if options.resume && !options.dry_run {
        Some(export_resume::identity(path)?)
    } else {
        None
    };
    let watch = crate::collation::Watch::start();
    let conn = open_read_only(path)?;
    // A second reader for the profile pass, with its change counter read before this
    // export's snapshot is taken (see same_snapshot). A selection may stage key sets in the
    // first connection's temporary tables, which a second cannot see: one connection then.
    let second = match options.jobs >= 2 && options.selection.is_empty() {
        true => open_read_only(path)
            .ok()
            .and_then(|c| data_version(&c).ok().map(|v| (c, v))),
        false => None,
    };
    // A deferred transaction takes its snapshot at the first read of the database, which is
    // read_schema's below (sqlite_version() reads nothing).
    conn.execute_batch("BEGIN")
        .ctx(|| "starting the read transaction".into())?;
    let version: String = conn
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .ctx(|| "reading the SQLite version".into())?;
    let mut info = schema::read_schema(&conn)?;

    let mut warnings = std::mem::take(&mut info.warnings);
    let mut plan = Vec::new();
    let mut notes = Vec::new();
    if !options.selection.is_empty() {
        let resolved = options
            .selection
            .resolve(&select::names(&info.tables), true)
            .map_err(|e| SqliteError::Unsupported(e.to_string()))?;
        let applied = select::apply(&conn, &mut info.tables, &resolved, options.strict)?;
        plan = applied.plan;
        notes = applied.notes;
        notes.extend(selection::prune_records(
            &mut info.tables,
            |t| &mut t.table,
            &mut info.objects,
            &applied.keep,
            &|o| {
                o.definition
                    .as_deref()
                    .map(|d| ferry_sql::check::relations(d, true))
                    .unwrap_or_default()
            },
        ));
        let (fields, dropped) = selection::exclude_columns(
            &mut info.tables,
            |t| &mut t.table,
            &mut info.objects,
            &options.selection.exclude_columns,
            true,
            &|sql, cols| {
                ferry_sql::rewrite::drop_columns(sql, true, cols, "the table's definition")
                    .map(|r| r.map(|(s, d)| (s, d.columns, d.constraints)))
                    .map_err(|e| e.to_string())
            },
            &|text, c| ferry_sql::check::mentions(text, true, c),
        )
        .map_err(|e| SqliteError::Unsupported(e.to_string()))?;
        notes.extend(dropped);
        // Affinities are per stored column, without the rowid field.
        for (i, positions) in fields {
            let t = &mut info.tables[i];
            let skip = usize::from(t.table.rowid.is_some());
            for p in positions.into_iter().rev() {
                t.affinities.remove(p - skip);
            }
        }
    }
    let resumable = match (options.resume, location) {
        (false, _) => None,
        (true, Location::Dir(target)) if !options.dry_run => Some(target.as_path()),
        (true, Location::Dir(_)) => None,
        (true, _) => {
            return Err(SqliteError::Unsupported(
                "--resume needs a directory archive: a tar file or a stream cannot be continued"
                    .into(),
            ));
        }
    };
    let mut earlier = None;
    let mut resume_key = (Value::Null, String::new());
    if let Some(target) = resumable {
        resume_key = (
            identity.clone().unwrap_or_default(),
            export_resume::fingerprint(
                &[
                    serde_json::to_value(&options.selection).unwrap_or_default(),
                    json!(options.batch_rows),
                    json!(options.strict),
                    json!([
                        write.zstd_level,
                        write.row_group_rows,
                        write.row_group_bytes
                    ]),
                    json!([write.file_rows, write.file_bytes]),
                ],
                options.mask_key.as_deref(),
            ),
        );
        match export_resume::load(target) {
            Some(j) if j.source == resume_key.0 && j.options == resume_key.1 => earlier = Some(j),
            Some(_) => {
                notes.push(
                    "--resume: the source or the options changed since the interrupted export; it started over"
                        .into(),
                );
                export_resume::discard(target)?;
            }
            None => export_resume::discard(target)?,
        }
    }
    let profiled = earlier.as_ref().is_some_and(|j| {
        j.profile.len() == info.tables.len()
            && j.profile
                .iter()
                .zip(&info.tables)
                .all(|(p, t)| p.id == t.table.id && p.columns.len() == t.table.columns.len())
    });
    match &earlier {
        // The source is provably the one the interrupted run profiled.
        Some(j) if profiled => {
            for (t, p) in info.tables.iter_mut().zip(&j.profile) {
                t.table.columns = p.columns.clone();
                t.rows = p.rows;
                t.bytes = p.bytes;
            }
            warnings = j.warnings.clone();
        }
        _ => {
            let started = Instant::now();
            let second = second.and_then(same_snapshot);
            let connections = 1 + usize::from(second.is_some());
            profile_tables(&conn, second, &mut info.tables, &mut warnings)?;
            tracing::debug!(
                connections,
                seconds = started.elapsed().as_secs_f64(),
                "profile pass done"
            );
        }
    }
    if !plan.is_empty() {
        for row in &mut plan {
            row.rows = match row.action {
                Action::Excluded => None,
                Action::SchemaOnly => Some(0),
                _ => info
                    .tables
                    .iter()
                    .find(|t| t.table.name == row.table)
                    .and_then(|t| t.rows),
            };
        }
    }

    let database = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut manifest = Manifest::new(Source {
        engine: schema::ENGINE.into(),
        engine_version: version,
        database,
    });
    manifest.settings = info.settings.clone();
    manifest
        .options
        .insert("batch_rows".into(), json!(options.batch_rows));
    manifest.tables = info.tables.iter().map(|t| t.table.clone()).collect();
    manifest.objects = info.objects.clone();
    manifest.warnings = warnings.clone();
    let masker = mask::prepare(
        &mut manifest,
        &options.selection.masks,
        options.mask_key.clone(),
        true,
    )
    .map_err(|e| SqliteError::Unsupported(e.to_string()))?;
    notes.extend(masker.describe());
    manifest.record_selection(&options.selection, &notes);
    // The selection and the profile pass are done: fail before any data is written.
    unknown_collations_compared(&watch, path)?;
    if options.dry_run {
        for (mt, t) in manifest.tables.iter_mut().zip(&info.tables) {
            mt.rows = if t.export_rows { t.rows } else { Some(0) };
        }
        conn.execute_batch("COMMIT")
            .ctx(|| "ending the read transaction".into())?;
        return Ok(ExportReport {
            manifest,
            tables: Vec::new(),
            plan,
            notes,
        });
    }

    let mut journal = None;
    if let Some(target) = resumable {
        if let Some(j) = &earlier {
            manifest.created_at = j.created_at.clone();
        }
        let prelude = export_resume::sha256(&manifest.to_json());
        if earlier.as_ref().is_some_and(|j| j.prelude != prelude) {
            return Err(SqliteError::Check {
                context: "--resume".into(),
                detail: format!(
                    "the interrupted export described the archive differently; delete {} to start over",
                    ferry_archive::resume_dir(target).display()
                ),
            });
        }
        journal = Some(export_resume::Journal {
            source: resume_key.0.clone(),
            options: resume_key.1.clone(),
            created_at: manifest.created_at.clone(),
            profile: info
                .tables
                .iter()
                .map(|t| export_resume::Profiled {
                    id: t.table.id.clone(),
                    columns: t.table.columns.clone(),
                    rows: t.rows,
                    bytes: t.bytes,
                })
                .collect(),
            warnings: warnings.clone(),
            prelude,
            done: earlier.map(|j| j.done).unwrap_or_default(),
        });
    }
    let mut writer = match (resumable, &journal) {
        (Some(target), Some(j)) => {
            let w = ArchiveWriter::create_resumable(target, write, manifest.clone())?;
            export_resume::save(target, j)?;
            w
        }
        _ => ArchiveWriter::create(location, write, manifest.clone())?,
    };
    let masked: Vec<bool> = manifest
        .tables
        .iter()
        .map(|t| !masker.masked_columns(&t.id).is_empty())
        .collect();
    writer.set_masker(masker);
    let mut reports = Vec::new();
    let mut kept = Vec::new();
    for i in largest_first(&info.tables) {
        let t = &info.tables[i];
        let started = Instant::now();
        let done = journal.as_ref().and_then(|j| j.done.get(&t.table.id));
        if let Some(done) = done
            && let Err(e) = writer.reuse_table(&t.table.id, done.files.clone())
        {
            // A file the interrupted run wrote is not what it recorded: write the table again.
            notes.push(format!("--resume: {e}; exported again"));
        } else if let Some(done) = done {
            let mt = &mut manifest.tables[i];
            mt.content_digest = done.digest.clone();
            kept.push((i, mt.display_name()));
            reports.push((
                i,
                TableReport {
                    name: mt.display_name(),
                    rows: done.files.iter().map(|f| f.rows).sum(),
                    bytes: Some(done.files.iter().map(|f| f.bytes).sum()),
                    elapsed: started.elapsed(),
                },
            ));
            continue;
        }
        let tw = writer.table(&t.table.id)?;
        let name = t.table.display_name();
        progress.table_started(&name, t.rows);
        let (rows, digest, files) =
            export_table(&conn, t, tw, options, &|r, b| progress.advance(&name, r, b))?;
        progress.table_finished(&name);
        let mt = &mut manifest.tables[i];
        // The digest describes the source's rows; a masked table's archive rows differ.
        mt.content_digest = (!masked[i]).then_some(digest);
        if let (Some(target), Some(j)) = (resumable, &mut journal) {
            j.done.insert(
                t.table.id.clone(),
                export_resume::Done {
                    files: files.clone(),
                    digest: mt.content_digest.clone(),
                },
            );
            export_resume::save(target, j)?;
            ferry_archive::interrupt::pause_point("export:table-done");
        }
        reports.push((
            i,
            TableReport {
                name: mt.display_name(),
                rows,
                bytes: Some(files.iter().map(|f| f.bytes).sum()),
                elapsed: started.elapsed(),
            },
        ));
    }
    // Reported in the schema's order, whatever order they were read in.
    reports.sort_by_key(|(i, _)| *i);
    let reports: Vec<TableReport> = reports.into_iter().map(|(_, r)| r).collect();
    // Named in the schema's order, as the summary is.
    kept.sort();
    let kept: Vec<String> = kept.into_iter().map(|(_, name)| name).collect();
    if !kept.is_empty() {
        notes.push(format!(
            "--resume: the source is unchanged; kept {} table(s) the interrupted export had finished ({})",
            kept.len(),
            kept.join(", ")
        ));
    }
    unknown_collations_compared(&watch, path)?;
    // End the read transaction first: if that fails, nothing has been published yet.
    conn.execute_batch("COMMIT")
        .ctx(|| "ending the read transaction".into())?;
    let manifest = writer.finish(manifest)?;
    Ok(ExportReport {
        manifest,
        tables: reports,
        plan,
        notes,
    })
}

/// Counts storage classes per stored column, then fixes each column's logical type and
/// records a warning for every column that cannot use its natural type.
fn assign_types(
    conn: &Connection,
    t: &mut TableInfo,
    warnings: &mut Vec<Warning>,
) -> Result<(), SqliteError> {
    let scan = scan(conn, t, None)?;
    decide(t, scan, warnings);
    Ok(())
}

/// The stored columns' positions among the table's columns.
fn stored_columns(t: &TableInfo) -> Vec<usize> {
    t.table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_stored())
        .map(|(i, _)| i)
        .collect()
}

/// What the profile pass found in a table, or in a range of its rowids.
struct Scan {
    counts: Vec<ClassCounts>,
    profiles: Vec<Profile>,
    /// Text and blob lengths, 8 per number: the size estimate [`TableInfo::bytes`].
    bytes: u64,
}

impl Scan {
    /// Adds what a scan of the rows after these found.
    fn merge(&mut self, later: Scan) {
        self.bytes += later.bytes;
        for (c, l) in self.counts.iter_mut().zip(&later.counts) {
            c.add(l);
        }
        for (p, l) in self.profiles.iter_mut().zip(later.profiles) {
            p.merge(l);
        }
    }
}

/// Counts the storage classes and profiles the values of each stored column: of the whole
/// table, or of the rows whose rowid lies in `range`.
fn scan(conn: &Connection, t: &TableInfo, range: Option<(i64, i64)>) -> Result<Scan, SqliteError> {
    let stored = stored_columns(t);
    let mut counts = vec![ClassCounts::default(); stored.len()];
    let mut profiles: Vec<Profile> = stored
        .iter()
        .map(|&i| Profile::new(t.table.columns[i].hint.as_deref()))
        .collect();
    let mut bytes = 0u64;
    if t.export_rows && !stored.is_empty() {
        // The same query, in the same order, as the data pass: rowid first when kept.
        let (filter, bounds) = match (range, split_key(&t.table)) {
            (Some((lo, hi)), Some(key)) => {
                let within = format!("{key} BETWEEN ?1 AND ?2");
                let filter = match t.filter.as_deref() {
                    Some(f) => format!("({f}) AND {within}"),
                    None => within,
                };
                (Some(filter), vec![lo, hi])
            }
            _ => (t.filter.clone(), Vec::new()),
        };
        let sql = digest::select_sql_where(&t.table, filter.as_deref());
        let skip = usize::from(t.table.rowid.is_some());
        let label = row_labeller(&t.table);
        let name = t.table.name.clone();
        let mut stmt = conn
            .prepare(&sql)
            .ctx(|| format!("table {name}: preparing the scan"))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(bounds))
            .ctx(|| format!("table {name}: scanning"))?;
        while let Some(row) = rows.next().ctx(|| format!("table {name}: scanning"))? {
            ferry_archive::interrupt::check()?;
            for (j, (c, p)) in counts.iter_mut().zip(&mut profiles).enumerate() {
                let v = row
                    .get_ref(j + skip)
                    .ctx(|| format!("table {name}: scanning"))?;
                let text = crate::profile::text_of(v);
                p.observe_checked(v, text, || label(row));
                match v {
                    ValueRef::Null => c.null += 1,
                    ValueRef::Integer(i) => {
                        c.integer += 1;
                        bytes += 8;
                        if i.unsigned_abs() >= 1 << 51 {
                            c.integer_large += 1;
                        }
                    }
                    ValueRef::Real(f) => {
                        c.real += 1;
                        bytes += 8;
                        if f.trunc() == f && f.abs() < 9_223_372_036_854_775_808.0 {
                            c.real_integral += 1;
                        }
                    }
                    ValueRef::Text(s) => {
                        c.text += 1;
                        bytes += s.len() as u64;
                        if text.is_none() {
                            c.text_not_utf8 += 1;
                        }
                    }
                    ValueRef::Blob(b) => {
                        c.blob += 1;
                        bytes += b.len() as u64;
                    }
                }
            }
        }
    }
    Ok(Scan {
        counts,
        profiles,
        bytes,
    })
}

/// The logical type, profile and warnings of each column, from what the scan found.
fn decide(t: &mut TableInfo, scan: Scan, warnings: &mut Vec<Warning>) {
    let stored = stored_columns(t);
    let Scan {
        counts,
        profiles,
        bytes,
    } = scan;
    t.bytes = Some(bytes);
    t.rows = counts
        .first()
        .map(|c| c.null + c.integer + c.real + c.text + c.blob);
    for (j, &ci) in stored.iter().enumerate() {
        let (mut lt, misfit) = types::choose(t.affinities[j], &counts[j]);
        let col = &mut t.table.columns[ci];
        let mut profile = profiles[j].to_facts();
        if types::flags(
            col.hint.as_deref(),
            &lt,
            profile.integer_min,
            profile.integer_max,
        ) {
            lt = LogicalType::Boolean;
        }
        if let Some(t) = types::natural_time(
            col.hint.as_deref(),
            &lt,
            counts[j].text,
            profiles[j].canonical_time_text(),
        ) {
            lt = t;
        }
        col.logical_type = lt;
        profile.classes = counts[j]
            .as_json()
            .into_iter()
            .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
            .collect();
        SqliteColumnFacts {
            profile: Some(profile),
        }
        .write(&mut col.properties);
        if let Some(m) = misfit {
            warnings.push(Warning {
                code: m.code().into(),
                table: Some(t.table.name.clone()),
                column: Some(col.name.clone()),
                message: format!(
                    "column {}.{} (declared {:?}) holds {}; kept exactly as {}",
                    t.table.name,
                    col.name,
                    col.declared_type.as_deref().unwrap_or(""),
                    counts[j].describe(),
                    col.logical_type.display()
                ),
                details: counts[j].as_json(),
            });
        }
    }
    // Generated columns still get a type for the target's DDL: their affinity's natural type.
    for col in t.table.columns.iter_mut().filter(|c| !c.is_stored()) {
        let a = types::Affinity::of(col.declared_type.as_deref().unwrap_or(""));
        col.logical_type = types::choose(a, &ClassCounts::default()).0;
    }
}

/// What a profile scan of part of a table ranges over: the real rowid of an ordinary rowid
/// table (its kept field, or one of SQLite's names for it that no column takes); `None` when
/// the table cannot be split (WITHOUT ROWID, virtual, or every rowid name taken). Never the
/// INTEGER PRIMARY KEY itself: a column taken for an alias could still hold NULLs or text,
/// which a range on it would drop. Where the alias is the rowid, as it is whenever it was
/// read right, ranges of the one are ranges of the other, so the halves are in scan order.
fn split_key(table: &Table) -> Option<String> {
    if table.kind != "table" {
        return None;
    }
    if let Some(r) = &table.rowid {
        return Some(crate::quote(r));
    }
    table.properties.get(schema::prop::ROWID_ALIAS)?;
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|n| !table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n)))
        .map(str::to_owned)
}

/// Rowid spans below this are profiled in one scan: splitting them saves less than the
/// second scan's set-up.
const SPLIT_SPAN: i64 = 1 << 16;

/// The profile pass over every table, on two connections when `second` is given: it must
/// read the same snapshot as `conn` (see [`same_snapshot`]). Each table of a large rowid
/// span is scanned as two rowid ranges, which either connection may take, and the halves
/// are merged in rowid order, so the result is the serial pass's: counts add up, and misfit
/// examples stay the first ones in scan order.
fn profile_tables(
    conn: &Connection,
    second: Option<Connection>,
    tables: &mut [TableInfo],
    warnings: &mut Vec<Warning>,
) -> Result<(), SqliteError> {
    let Some(second) = second else {
        for t in tables.iter_mut() {
            assign_types(conn, t, warnings)?;
        }
        return Ok(());
    };
    // Chunks: (table, rowid range). Split tables first, as they are the large ones.
    let mut split = Vec::new();
    let mut whole = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let span = match split_key(&t.table) {
            Some(key) if t.export_rows && !stored_columns(t).is_empty() => {
                // Two subqueries, not `SELECT min(k), max(k)`: SQLite answers a lone min()
                // or max() of the rowid from one end of the b-tree, but a query asking for
                // both scans the whole table (0.4 CPU-s on 2 M rows, before the pass began).
                let name = crate::quote(&t.table.name);
                let sql = format!(
                    "SELECT (SELECT min({key}) FROM main.{name}), (SELECT max({key}) FROM main.{name})"
                );
                conn.query_row(&sql, [], |r| {
                    Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?))
                })
                .ctx(|| format!("table {}: reading its rowid range", t.table.name))?
            }
            _ => (None, None),
        };
        match span {
            (Some(lo), Some(hi)) if hi.saturating_sub(lo) >= SPLIT_SPAN => {
                // Below hi, so mid + 1 cannot overflow.
                let mid = lo.midpoint(hi);
                split.push((i, Some((i64::MIN, mid))));
                split.push((i, Some((mid + 1, i64::MAX))));
            }
            _ => whole.push((i, None)),
        }
    }
    let chunks: Vec<(usize, Option<(i64, i64)>)> = split.into_iter().chain(whole).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Scan>>> =
        std::sync::Mutex::new((0..chunks.len()).map(|_| None).collect());
    let failed = std::sync::atomic::AtomicBool::new(false);
    let shared: &[TableInfo] = tables;
    let run = |c: &Connection| -> Result<(), SqliteError> {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            let k = next.fetch_add(1, SeqCst);
            if k >= chunks.len() || failed.load(SeqCst) {
                return Ok(());
            }
            let (i, range) = chunks[k];
            match scan(c, &shared[i], range) {
                Ok(s) => results.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(s),
                Err(e) => {
                    failed.store(true, SeqCst);
                    return Err(e);
                }
            }
        }
    };
    let (mine, theirs) = std::thread::scope(|s| {
        let run = &run;
        let helper = s.spawn(move || run(&second));
        let mine = run(conn);
        (mine, helper.join())
    });
    mine?;
    match theirs {
        Ok(r) => r?,
        Err(_) => {
            return Err(SqliteError::Check {
                context: "the profile pass".into(),
                detail: "its second thread panicked".into(),
            });
        }
    }
    let mut merged: Vec<Option<Scan>> = (0..tables.len()).map(|_| None).collect();
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    // Chunks of one table are listed in rowid order.
    for ((i, _), r) in chunks.iter().zip(results) {
        let Some(r) = r else { continue };
        match &mut merged[*i] {
            Some(m) => m.merge(r),
            slot => *slot = Some(r),
        }
    }
    for (t, m) in tables.iter_mut().zip(merged) {
        match m {
            Some(scan) => decide(t, scan, warnings),
            None => assign_types(conn, t, warnings)?,
        }
    }
    Ok(())
}

/// SQLite's change counter as this connection sees it: it differs between two readings
/// exactly when another connection committed in between (`PRAGMA data_version`).
fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

/// Starts a read transaction on `second` and keeps the connection only if it sees the
/// same snapshot as the export's: `before` is its data version read before the export's
/// snapshot was taken, and if nothing was committed since, both transactions read the same
/// database. Otherwise (a writer was busy) the profile pass runs on one connection.
fn same_snapshot((second, before): (Connection, i64)) -> Option<Connection> {
    // Refused at once rather than after the busy timeout: a writer waiting for its lock
    // (rollback journal) turns new readers away, and the answer then is one connection.
    second.busy_timeout(std::time::Duration::ZERO).ok()?;
    second.execute_batch("BEGIN").ok()?;
    second
        .query_row("SELECT count(*) FROM main.sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .ok()?;
    (data_version(&second).ok()? == before).then_some(second)
}

/// How reports name a row: by rowid, by the INTEGER PRIMARY KEY, or by the first key column.
fn row_labeller(table: &Table) -> impl Fn(&rusqlite::Row<'_>) -> String + use<> {
    let (name, index) = match (
        &table.rowid,
        table.properties.get(schema::prop::ROWID_ALIAS),
    ) {
        (Some(r), _) => (r.clone(), Some(0)),
        (None, Some(alias)) => {
            let alias = alias.as_str().unwrap_or_default().to_owned();
            let i = table.data_fields().iter().position(|(n, _)| *n == alias);
            (alias, i)
        }
        (None, None) => {
            let first = table
                .primary_key
                .as_ref()
                .and_then(|k| k.columns.first().cloned())
                .unwrap_or_default();
            let i = table.data_fields().iter().position(|(n, _)| *n == first);
            (first, i)
        }
    };
    move |row| match index.and_then(|i| row.get_ref(i).ok()) {
        Some(v) => format!("{name} {}", crate::profile::show(v)),
        None => "?".into(),
    }
}

/// The order of the data pass: the largest tables first (by the profile pass's byte
/// estimate, else by rows), the schema's order among equals. The manifest keeps the
/// schema's order; only the parts' order in the archive follows this one. It is for the
/// parallel PostgreSQL import of a stream or a tar, which loads each table as its parts
/// arrive and builds its indexes once it is in: the table that takes longest to load and
/// index should start first, not wait behind the small ones (`docs/benchmarks.md`, seventh
/// session). The SQLite import builds after every row is in, so the order is all one to it.
/// Bytes are a rough proxy for that time (a blob's byte costs less to load than a row,
/// and indexes cost by rows), but one the scan gets for free and that ranks the table that
/// dominates a database first, which is what matters.
fn largest_first(tables: &[TableInfo]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|&i| {
        let t = &tables[i];
        std::cmp::Reverse((t.bytes.unwrap_or(0), t.rows.unwrap_or(0)))
    });
    order
}

/// Streams one table into the archive; returns its row count, content digest and files.
fn export_table(
    conn: &Connection,
    t: &TableInfo,
    tw: TableWriter,
    options: &ExportOptions,
    advance: &dyn Fn(u64, u64),
) -> Result<(u64, String, Vec<ferry_archive::DataFile>), SqliteError> {
    if options.jobs < 2 {
        let mut tw = tw;
        let schema = tw.schema().clone();
        let (rows, digest) = read_table(conn, t, &schema, options, advance, &mut |b| {
            tw.write(&b).map_err(SqliteError::from)
        })?;
        return Ok((rows, digest, tw.finish()?));
    }
    // Reading and encoding overlap: batches go through a small bounded channel, so memory
    // stays at a couple of batches whatever the table's size.
    let schema = tw.schema().clone();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
        let writer = s.spawn(
            move || -> Result<Vec<ferry_archive::DataFile>, SqliteError> {
                let mut tw = tw;
                for b in rx {
                    tw.write(&b)?;
                }
                Ok(tw.finish()?)
            },
        );
        let read = read_table(conn, t, &schema, options, advance, &mut |b| {
            tx.send(b)
                .map_err(|_| SqliteError::Unsupported("the Parquet writer stopped".into()))
        });
        drop(tx);
        let written = writer
            .join()
            .map_err(|_| SqliteError::Unsupported("the Parquet writer thread panicked".into()))?;
        match (read, written) {
            (Ok((rows, digest)), Ok(files)) => Ok((rows, digest, files)),
            // The writer's own error explains a stopped channel better than the reader's.
            (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        }
    })
}

/// Reads a table in digest order into Arrow batches, handing each to `emit`.
fn read_table(
    conn: &Connection,
    t: &TableInfo,
    schema: &arrow_schema::SchemaRef,
    options: &ExportOptions,
    advance: &dyn Fn(u64, u64),
    emit: &mut dyn FnMut(RecordBatch) -> Result<(), SqliteError>,
) -> Result<(u64, String), SqliteError> {
    let table = &t.table;
    let fields = table.data_fields();
    let mut builders: Vec<ColumnBuilder> = fields
        .iter()
        .map(|(_, lt)| ColumnBuilder::new(lt))
        .collect::<Result<_, _>>()
        .map_err(|reason| SqliteError::Unsupported(format!("table {}: {reason}", table.name)))?;
    let mut digest = Digest::default();
    let mut total = 0u64;
    if t.export_rows {
        let sql = digest::select_sql_where(table, t.filter.as_deref());
        let mut stmt = conn
            .prepare(&sql)
            .ctx(|| format!("table {}: preparing the read", table.name))?;
        let mut rows = stmt
            .query([])
            .ctx(|| format!("table {}: reading", table.name))?;
        let mut in_batch = 0usize;
        let mut bytes = 0usize;
        while let Some(row) = rows
            .next()
            .ctx(|| format!("table {}: reading", table.name))?
        {
            for (j, b) in builders.iter_mut().enumerate() {
                let v = row
                    .get_ref(j)
                    .ctx(|| format!("table {}: reading", table.name))?;
                digest.value(v);
                bytes += b.append(v).map_err(|reason| SqliteError::Value {
                    table: table.name.clone(),
                    column: fields[j].0.clone(),
                    row: row_label(row, table),
                    reason,
                })?;
            }
            in_batch += 1;
            total += 1;
            if in_batch >= options.batch_rows || bytes >= options.batch_bytes {
                emit(build_batch(&mut builders, schema, options.batch_bytes)?)?;
                advance(in_batch as u64, bytes as u64);
                in_batch = 0;
                bytes = 0;
            }
        }
        if in_batch > 0 {
            emit(build_batch(&mut builders, schema, options.batch_bytes)?)?;
            advance(in_batch as u64, bytes as u64);
        }
    }
    Ok((total, digest.finish()))
}

fn row_label(row: &rusqlite::Row<'_>, table: &Table) -> String {
    match row.get_ref(0) {
        Ok(ValueRef::Integer(i)) if table.rowid.is_some() => format!("rowid {i}"),
        Ok(v) => format!("with first field {v:?}"),
        Err(_) => "?".into(),
    }
}

fn build_batch(
    builders: &mut [ColumnBuilder],
    schema: &arrow_schema::SchemaRef,
    batch_bytes: usize,
) -> Result<RecordBatch, SqliteError> {
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish(batch_bytes)).collect();
    RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| SqliteError::Unsupported(format!("building a record batch: {e}")))
}

/// One Arrow builder per data field, chosen by its logical type. `append` returns the bytes
/// of variable-length data it took, for batch sizing.
enum ColumnBuilder {
    Bool(BooleanBuilder),
    /// DATETIME text in `datetime()`'s form (see `types::natural_time`).
    Stamp(TimestampMicrosecondBuilder),
    /// DATE text in `date()`'s form.
    Day(Date32Builder),
    Int(Int64Builder),
    Real(Float64Builder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
    Value(Box<ValueBuilder>),
}

struct ValueBuilder {
    class: Int8Builder,
    integer: Int64Builder,
    real: Float64Builder,
    text: StringBuilder,
    blob: BinaryBuilder,
    nulls: NullBufferBuilder,
}

impl ColumnBuilder {
    fn new(lt: &LogicalType) -> Result<Self, String> {
        Ok(match lt {
            LogicalType::Boolean => ColumnBuilder::Bool(BooleanBuilder::new()),
            LogicalType::Timestamp => ColumnBuilder::Stamp(TimestampMicrosecondBuilder::new()),
            LogicalType::Date => ColumnBuilder::Day(Date32Builder::new()),
            LogicalType::Int64 => ColumnBuilder::Int(Int64Builder::new()),
            LogicalType::Float64 => ColumnBuilder::Real(Float64Builder::new()),
            LogicalType::Text => ColumnBuilder::Text(StringBuilder::new()),
            LogicalType::Bytes => ColumnBuilder::Blob(BinaryBuilder::new()),
            LogicalType::SqliteValue => ColumnBuilder::Value(Box::new(ValueBuilder {
                class: Int8Builder::new(),
                integer: Int64Builder::new(),
                real: Float64Builder::new(),
                text: StringBuilder::new(),
                blob: BinaryBuilder::new(),
                nulls: NullBufferBuilder::new(1024),
            })),
            other => {
                return Err(format!(
                    "logical type {} is not produced by SQLite",
                    other.display()
                ));
            }
        })
    }

    fn append(&mut self, v: ValueRef<'_>) -> Result<usize, String> {
        let misfit = |want: &str| {
            Err(format!(
                "a {} value in a column exported as {want}; the database changed during export?",
                v.data_type()
            ))
        };
        match (self, v) {
            (ColumnBuilder::Stamp(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Stamp(b), ValueRef::Text(t)) => {
                match crate::utf8(t).and_then(convert::canonical_timestamp) {
                    Some(us) => b.append_value(us),
                    None => return misfit("timestamp text"),
                }
            }
            (ColumnBuilder::Day(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Day(b), ValueRef::Text(t)) => {
                match crate::utf8(t).and_then(convert::canonical_date) {
                    Some(d) => b.append_value(d),
                    None => return misfit("date text"),
                }
            }
            (ColumnBuilder::Bool(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Bool(b), ValueRef::Integer(i @ (0 | 1))) => b.append_value(i == 1),
            (ColumnBuilder::Int(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Int(b), ValueRef::Integer(i)) => b.append_value(i),
            (ColumnBuilder::Real(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Real(b), ValueRef::Real(f)) => b.append_value(f),
            // NUMERIC affinity: small integers travel as doubles (see types::choose).
            (ColumnBuilder::Real(b), ValueRef::Integer(i)) if i.unsigned_abs() < 1 << 51 => {
                b.append_value(i as f64)
            }
            (ColumnBuilder::Text(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Text(b), ValueRef::Text(t)) => {
                let Some(s) = crate::utf8(t) else {
                    // Only the error needs std's validator, for its position.
                    return Err(std::str::from_utf8(t)
                        .err()
                        .map_or_else(String::new, |e| e.to_string()));
                };
                b.append_value(s);
                return Ok(t.len());
            }
            (ColumnBuilder::Blob(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Blob(b), ValueRef::Blob(x)) => {
                b.append_value(x);
                return Ok(x.len());
            }
            (ColumnBuilder::Value(b), v) => return Ok(b.append(v)),
            (ColumnBuilder::Bool(_), _) => return misfit("boolean (0 or 1)"),
            (ColumnBuilder::Stamp(_), _) => return misfit("timestamp text"),
            (ColumnBuilder::Day(_), _) => return misfit("date text"),
            (ColumnBuilder::Int(_), _) => return misfit("int64"),
            (ColumnBuilder::Real(_), _) => return misfit("float64"),
            (ColumnBuilder::Text(_), _) => return misfit("text"),
            (ColumnBuilder::Blob(_), _) => return misfit("bytes"),
        }
        Ok(0)
    }

    /// The batch so far, leaving the builder sized for the next one like this one
    /// ([`ferry_archive::again`] says why).
    fn finish(&mut self, batch_bytes: usize) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(again::boolean(b)),
            ColumnBuilder::Stamp(b) => Arc::new(again::primitive(b)),
            ColumnBuilder::Day(b) => Arc::new(again::primitive(b)),
            ColumnBuilder::Int(b) => Arc::new(again::primitive(b)),
            ColumnBuilder::Real(b) => Arc::new(again::primitive(b)),
            ColumnBuilder::Text(b) => Arc::new(again::bytes(b, batch_bytes)),
            ColumnBuilder::Blob(b) => Arc::new(again::bytes(b, batch_bytes)),
            ColumnBuilder::Value(b) => b.finish(batch_bytes),
        }
    }
}

impl ValueBuilder {
    fn append(&mut self, v: ValueRef<'_>) -> usize {
        let mut size = 0;
        let text = crate::profile::text_of(v);
        let class = match v {
            ValueRef::Null => 0,
            ValueRef::Integer(_) => sqlite_class::INTEGER,
            ValueRef::Real(_) => sqlite_class::REAL,
            ValueRef::Text(_) if text.is_some() => sqlite_class::TEXT,
            ValueRef::Text(_) => sqlite_class::TEXT_BYTES,
            ValueRef::Blob(_) => sqlite_class::BLOB,
        };
        self.nulls.append(class != 0);
        self.class.append_value(class);
        match v {
            ValueRef::Integer(i) => self.integer.append_value(i),
            _ => self.integer.append_null(),
        }
        match v {
            ValueRef::Real(f) => self.real.append_value(f),
            _ => self.real.append_null(),
        }
        match text {
            Some(t) => {
                size = t.len();
                self.text.append_value(t);
            }
            None => self.text.append_null(),
        }
        match v {
            ValueRef::Blob(b) | ValueRef::Text(b) if class != sqlite_class::TEXT => {
                size = b.len();
                self.blob.append_value(b);
            }
            _ => self.blob.append_null(),
        }
        size
    }

    /// As `ColumnBuilder::finish`: the next batch's builders are sized like this one's.
    fn finish(&mut self, batch_bytes: usize) -> ArrayRef {
        let children: Vec<ArrayRef> = vec![
            Arc::new(again::primitive(&mut self.class)),
            Arc::new(again::primitive(&mut self.integer)),
            Arc::new(again::primitive(&mut self.real)),
            Arc::new(again::bytes(&mut self.text, batch_bytes)),
            Arc::new(again::bytes(&mut self.blob, batch_bytes)),
        ];
        Arc::new(StructArray::new(
            sqlite_value_fields(),
            children,
            self.nulls.finish(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard of the two-connection profile pass: a second reader is kept only when no
    /// write committed between its first data version and its own snapshot, in both
    /// journal modes.
    #[test]
    fn a_second_reader_is_kept_only_on_the_same_snapshot() {
        for mode in ["DELETE", "WAL"] {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("a.db");
            let writer = Connection::open(&db).unwrap();
            writer
                .execute_batch(&format!(
                    "PRAGMA journal_mode = {mode}; CREATE TABLE t(x); INSERT INTO t VALUES (1)"
                ))
                .unwrap();
            let reader = |writes: bool| {
                let second = open_read_only(&db).unwrap();
                let before = data_version(&second).unwrap();
                // The export's own snapshot is taken here; a commit now or later is what
                // the guard must catch.
                if writes {
                    writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
                }
                same_snapshot((second, before)).is_some()
            };
            assert!(reader(false), "{mode}: nothing was written, yet refused");
            assert!(!reader(true), "{mode}: a commit in between went unnoticed");
        }
    }
}
