//! Archive → SQLite.
//!
//! The database is built in a temporary file beside the target: the rows in one transaction,
//! then indexes, views and triggers in a second one, both with an in-memory journal. A new
//! file has next to nothing for it to hold, and what it buys is undo: a multi-row INSERT that
//! SQLite refuses must roll back whole, so that its rows can be replayed one by one to name
//! the row at fault, and a definition tried behind a savepoint and refused must really be
//! undone. SQLite does neither with the journal off. The file is renamed into place only
//! after the archive's manifest has been checked and SQLite's own integrity check has
//! passed. With `--resume` the file is `<target>.ferry-resume` instead, committed part by
//! part ([`crate::resume`]).
//! The order is the one that loads fastest and fires nothing: tables, rows, then indexes,
//! views and triggers, then sequences, statistics and pragmas.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use ferry_archive::sqlite_value::{SqliteColumn, SqliteValue};
use ferry_archive::{
    Location, LogicalType, Manifest, Part, PartData, Progress, Table, TableReport, Visitor,
};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Statement};
use serde_json::Value;

use crate::error::{Ctx, SqliteError};
use crate::from_postgres;
use crate::guard::{Expect, Guard};
use crate::resume;
use crate::schema::{self, prop};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Replace an existing target, keeping it as `<target>.bak-<timestamp>`.
    pub replace: bool,
    /// Rows per decoded batch.
    pub batch_rows: usize,
    /// PostgreSQL numerics as REAL instead of exact text (`--numeric real`).
    pub numeric_real: bool,
    /// Build in `<target>.ferry-resume`, part by part, and keep it on failure; continue
    /// from it when an earlier `--resume` run left one (see [`crate::resume`]).
    pub resume: bool,
    /// Check the finished file with `PRAGMA integrity_check` (which also looks up every
    /// index entry of every row) instead of `PRAGMA quick_check` (every page, b-tree, record
    /// and NOT NULL/CHECK constraint, in linear time). The indexes are built by SQLite from
    /// the rows in the same transaction, so the lookups re-check SQLite rather than the
    /// archive; they cost about a third of a load with indexes (see docs/benchmarks.md).
    pub full_check: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            replace: false,
            batch_rows: 16_384,
            numeric_real: false,
            resume: false,
            full_check: false,
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
    /// Cross-engine conversions and renames applied.
    pub notes: Vec<String>,
    /// Objects not carried over, with the reason.
    pub skipped: Vec<String>,
}

pub fn import(
    location: &Location,
    target: &Path,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport, SqliteError> {
    let started = Instant::now();
    let existing = std::fs::symlink_metadata(target).ok();
    let exists = existing.is_some();
    if exists && !options.replace {
        return Err(SqliteError::TargetExists {
            path: target.to_owned(),
        });
    }
    // --replace moves the old file aside: only ever a regular file, never a device, a FIFO,
    // a directory or a link (run as root, `--replace /dev/null` once replaced /dev/null).
    if let Some(m) = &existing
        && !m.file_type().is_file()
    {
        return Err(SqliteError::Unsupported(format!(
            "{}: not a regular file ({}); --replace replaces only a database file",
            target.display(),
            file_kind(m.file_type())
        )));
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    ferry_archive::leftover::sweep(parent);
    let mut resume_notes = Vec::new();
    let (temp, built) = if options.resume {
        let partial = resume::partial_path(target);
        let mut state = resume::open(&partial, &mut resume_notes)?;
        let built = match build(location, &partial, options, progress, &mut state) {
            Err(SqliteError::ResumeMismatch(why)) if !matches!(location, Location::Stdio) => {
                // The prelude has been read, nothing else: read the archive again, fresh.
                resume_notes.push(format!(
                    "--resume: {} was not reused ({why}); the import started over",
                    partial.display()
                ));
                resume::discard(&partial)?;
                let mut fresh = resume::open(&partial, &mut resume_notes)?;
                build(location, &partial, options, progress, &mut fresh)
            }
            r => r,
        }
        .map_err(|e| resume::kept(e, &partial))?;
        (Partial::Kept(partial), built)
    } else {
        let temp = ferry_archive::leftover::builder(".sqlite.partial", false)
            .tempfile_in(parent)
            .ctx(|| format!("{}: creating a temporary file", parent.display()))?
            .into_temp_path();
        let built = build(location, &temp, options, progress, &mut None)?;
        (Partial::Temp(temp), built)
    };
    let Built {
        reports,
        fk,
        mut notes,
        skipped,
    } = built;
    notes.extend(resume_notes);

    // The last moment an interruption can still leave the target as it was.
    ferry_archive::interrupt::check()?;
    // A replaced database keeps its mode and owner: the application's other users (a web
    // server's group, say) must still reach it.
    #[cfg(unix)]
    if let Some(old) = &existing {
        use std::os::unix::fs::MetadataExt;
        std::fs::set_permissions(temp.path(), old.permissions())
            .ctx(|| format!("{}: setting its mode", temp.path().display()))?;
        // Only root may give a file away; anyone else keeps their own ownership.
        let _ = std::os::unix::fs::chown(temp.path(), Some(old.uid()), Some(old.gid()));
    }
    let backup = if exists {
        Some(backup_existing(target)?)
    } else {
        None
    };
    if let Err(e) = temp.persist_noclobber(target) {
        if let Some(b) = &backup {
            let _ = std::fs::rename(b, target);
        }
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            // Another process (another import) created it while this one ran.
            return Err(SqliteError::TargetExists {
                path: target.to_owned(),
            });
        }
        return Err(SqliteError::Io {
            context: format!("{}: moving the new database into place", target.display()),
            source: e,
        });
    }
    Ok(ImportReport {
        tables: reports,
        foreign_key_violations: fk,
        backup,
        elapsed: started.elapsed(),
        notes,
        skipped,
    })
}

/// What a finished build hands back to [`import`].
struct Built {
    reports: Vec<TableReport>,
    fk: Vec<String>,
    notes: Vec<String>,
    skipped: Vec<String>,
}

/// The file an import builds: a temporary file that is deleted unless it is published, or
/// (`--resume`) the partial file, which is kept.
enum Partial {
    Temp(tempfile::TempPath),
    Kept(PathBuf),
}

impl Partial {
    fn path(&self) -> &Path {
        match self {
            Partial::Temp(t) => t,
            Partial::Kept(p) => p,
        }
    }

    /// Moves the file to `target`, which must not exist. A temporary file that cannot be
    /// moved is deleted; a kept one stays.
    fn persist_noclobber(self, target: &Path) -> std::io::Result<()> {
        match self {
            Partial::Temp(t) => t.persist_noclobber(target).map_err(|e| e.error),
            Partial::Kept(p) => {
                std::fs::hard_link(&p, target)?;
                std::fs::remove_file(&p)?;
                // TRUNCATE mode leaves an empty rollback journal; nothing is in it now.
                let _ = resume::discard(&p);
                Ok(())
            }
        }
    }
}

/// Builds the database in `temp` from the archive: every step up to a closed, synced file
/// that passed its checks. `resume` holds what an interrupted `--resume` import left in it.
fn build(
    location: &Location,
    temp: &Path,
    options: &ImportOptions,
    progress: &dyn Progress,
    resume: &mut Option<resume::State>,
) -> Result<Built, SqliteError> {
    let mut conn = Connection::open(temp).ctx(|| format!("{}: opening", temp.display()))?;
    let guard = Guard::install(&mut conn)?;

    let mut loader = Loader {
        conn: &conn,
        bounded_arrays: Default::default(),
        guard: &guard,
        batch_rows: options.batch_rows.max(1),
        prelude: None,
        reports: HashMap::new(),
        numeric_real: options.numeric_real,
        cross: None,
        resume: resume.take(),
        progress,
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
    for r in &reports {
        progress.table_finished(&r.name);
    }
    check_row_counts(&manifest, &reports)?;
    let kept = loader.resume.as_ref().map(|r| r.kept_note(&manifest));
    if loader.resume.is_none() {
        // Post-data runs in a transaction of its own. The file is still private, so the
        // commit in between publishes nothing.
        conn.execute_batch("COMMIT; BEGIN")
            .ctx(|| "starting the post-data transaction".into())?;
    }
    // The rows wanted a large page cache (a UNIQUE index filled row by row is a random
    // walk: 8 MiB made such a load twice as slow). Post-data is mostly CREATE INDEX, whose
    // sorter takes the cache size as its run size: small runs that fit the CPU's caches
    // sorted 1.2-1.4 s faster per GB than 128 MiB ones, and memory falls back by as much.
    // The sorter may also use helper threads, one per core: 8 % off events' two indexes at
    // scale 1000 (2.62 -> 2.4 s), for one more sort buffer of the cache's size per thread.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{POST_DATA_CACHE_KIB}; PRAGMA threads = {threads}"
    ))
    .ctx(|| "setting the cache for post-data".into())?;
    tracing::debug!("rows loaded; building indexes and the rest of the schema");
    let (mut notes, mut skipped) = match loader.cross.take() {
        Some(cross) => from_postgres::ddl::cross_post_data(&conn, &guard, &manifest, cross)?,
        None => {
            post_data(&conn, &guard, &manifest)?;
            (Vec::new(), Vec::new())
        }
    };
    notes.extend(kept.flatten());
    for (column, n) in loader.bounded_arrays.take() {
        skipped.push(format!(
            "column {column}: {n} array value(s) had lower bounds other than 1 (`[0:2]={{...}}`), which a JSON array cannot keep; their elements are kept in order"
        ));
    }
    if loader.resume.is_some() {
        resume::drop_journal(&conn)?;
    }
    ferry_archive::interrupt::pause_point("import:commit");
    ferry_archive::interrupt::check()?;
    conn.execute_batch("COMMIT")
        .ctx(|| "committing the import".into())?;
    tracing::debug!("committed; checking");
    let fk = checks(&conn, temp, options)?;
    tracing::debug!("checked");
    finish_settings(&conn, &manifest)?;
    conn.close().map_err(|(_, e)| e).ctx(|| "closing".into())?;
    std::fs::File::open(temp)
        .and_then(|f| f.sync_all())
        .ctx(|| format!("{}: syncing", temp.display()))?;
    Ok(Built {
        reports,
        fk,
        notes,
        skipped,
    })
}

/// The checks of a committed import, side by side: the foreign-key check on the import's
/// connection, the integrity check on a second one. Each reads the whole file and neither
/// writes; on one connection they took 1.5 s one after the other at scale 1000, a fifth of
/// the import. Returns what the foreign-key check found.
fn checks(
    conn: &Connection,
    temp: &Path,
    options: &ImportOptions,
) -> Result<Vec<String>, SqliteError> {
    // The load held the file in EXCLUSIVE locking mode; NORMAL drops the lock at the next
    // read, so that the second connection can read too.
    conn.execute_batch("PRAGMA locking_mode = NORMAL")
        .ctx(|| "setting locking_mode".into())?;
    let _: i64 = conn
        .query_row("SELECT count(*) FROM main.sqlite_schema", [], |r| r.get(0))
        .ctx(|| "releasing the load's lock".into())?;
    // The foreign-key check looks up each child row's parent: a random walk over the
    // parent table, which wants the large cache back (at scale 10000, 500 k users looked up
    // by 20 M events took 32 s with 8 MiB and pread for every miss). It stays on this
    // connection, whose cache the load has already grown: on a new one, the same cache
    // would come on top of it (peak RSS 176 -> 260 MB at scale 1000).
    conn.execute_batch(&format!("PRAGMA cache_size = -{LOAD_CACHE_KIB}"))
        .ctx(|| "setting the cache for the checks".into())?;
    let check = integrity_pragma(options);
    std::thread::scope(|s| {
        let integrity = s.spawn(|| {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let second = Connection::open_with_flags(temp, flags)
                .ctx(|| format!("{}: opening for PRAGMA {check}", temp.display()))?;
            // The lock was dropped above; should anything still hold one, wait for it.
            second
                .busy_timeout(std::time::Duration::from_secs(5))
                .ctx(|| format!("{}: opening for PRAGMA {check}", temp.display()))?;
            // It reads each page once: the small post-data cache does.
            second
                .execute_batch(&format!("PRAGMA cache_size = -{POST_DATA_CACHE_KIB}"))
                .ctx(|| format!("setting the cache for PRAGMA {check}"))?;
            let found = query_strings(&second, &format!("PRAGMA {check}"));
            tracing::debug!("{check} done");
            found
        });
        let fk = foreign_key_check(conn);
        tracing::debug!("foreign key check done");
        let integrity = integrity.join().unwrap_or_else(|_| {
            Err(SqliteError::Check {
                context: format!("PRAGMA {check}"),
                detail: "the check's thread panicked".into(),
            })
        })?;
        if integrity != ["ok"] {
            return Err(SqliteError::Check {
                context: format!("PRAGMA {check}"),
                detail: integrity.join("; "),
            });
        }
        fk
    })
}

/// `--dry-run`: the statements an import would run, from the manifest alone, by running
/// them against an empty in-memory database (so they are exactly what SQLite accepts).
pub fn dry_run(
    location: &Location,
    options: &ImportOptions,
) -> Result<ferry_archive::ImportPlan, SqliteError> {
    let m = ferry_archive::read_manifest(location)?;
    let mut conn = Connection::open_in_memory().ctx(|| "opening an in-memory database".into())?;
    let guard = Guard::install(&mut conn)?;
    let mut plan = ferry_archive::ImportPlan::default();
    match m.source.engine.as_str() {
        schema::ENGINE => {
            for t in &m.tables {
                plan.statements.extend(t.definition.clone());
            }
            for o in &m.objects {
                plan.statements.extend(o.definition.clone());
            }
        }
        "postgresql" => {
            let cross =
                from_postgres::ddl::cross_pre_data(&conn, &guard, &m, options.numeric_real, false)?;
            let (notes, skipped) = from_postgres::ddl::cross_post_data(&conn, &guard, &m, cross)?;
            let mut stmt = conn
                .prepare("SELECT sql FROM main.sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid")
                .ctx(|| "reading the planned schema".into())?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .ctx(|| "reading the planned schema".into())?;
            for r in rows {
                plan.statements
                    .push(r.ctx(|| "reading the planned schema".into())?);
            }
            plan.notes = notes;
            plan.skipped = skipped;
        }
        other => {
            return Err(SqliteError::Unsupported(format!(
                "archives written from {other} cannot be imported into SQLite"
            )));
        }
    }
    Ok(plan)
}

fn check_row_counts(manifest: &Manifest, reports: &[TableReport]) -> Result<(), SqliteError> {
    for (t, r) in manifest.tables.iter().zip(reports) {
        let expected = t.rows.unwrap_or(0);
        let exports_rows = !is_content_table(t);
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

pub(crate) fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// An external-content or contentless FTS table: its rows are not in the archive. Only a
/// virtual table can be one; the property on any other table is ignored (it would skip the
/// row-count check and fire the archive's triggers with a rebuild).
fn is_content_table(t: &Table) -> bool {
    t.kind == "virtual" && t.properties.contains_key(prop::CONTENT)
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
    /// Array values with lower bounds other than 1, per SQLite column: JSON cannot keep them.
    bounded_arrays: std::cell::RefCell<std::collections::BTreeMap<String, u64>>,
    guard: &'c Guard,
    batch_rows: usize,
    prelude: Option<Manifest>,
    reports: HashMap<String, TableReport>,
    numeric_real: bool,
    cross: Option<from_postgres::ddl::Cross>,
    /// `--resume`: what the partial file holds.
    resume: Option<resume::State>,
    progress: &'c dyn Progress,
}

impl Visitor for Loader<'_> {
    type Error = SqliteError;

    fn prelude(&mut self, prelude: &Manifest) -> Result<(), SqliteError> {
        let engine = prelude.source.engine.as_str();
        if engine != schema::ENGINE && engine != "postgresql" {
            return Err(SqliteError::Unsupported(format!(
                "archives written from {engine} cannot be imported into SQLite"
            )));
        }
        let resumable = self.resume.is_some();
        if let Some(r) = &mut self.resume {
            if prelude
                .tables
                .iter()
                .any(|t| t.name.eq_ignore_ascii_case(resume::JOURNAL))
            {
                return Err(SqliteError::Unsupported(format!(
                    "--resume keeps its journal in a table named {}, and the archive has a table of that name; import without --resume",
                    resume::JOURNAL
                )));
            }
            r.archive = resume::archive_key(prelude);
            if r.earlier.is_some() {
                return self.resume_prelude(prelude);
            }
        }
        self.cross = pre_data_any(self.conn, self.guard, prelude, self.numeric_real, resumable)?;
        if let Some(r) = &self.resume {
            resume::start_journal(self.conn, &r.archive)?;
            self.conn
                .execute_batch("COMMIT; BEGIN")
                .ctx(|| "--resume: committing the tables".into())?;
        }
        self.prelude = Some(prelude.clone());
        Ok(())
    }

    fn part(&mut self, table: &Table, part: &Part<'_>) -> Result<(), SqliteError> {
        tracing::debug!(table = %table.name, part = part.path, "loading");
        let name = table.display_name();
        if !self.reports.contains_key(&table.id) {
            self.progress.table_started(&name, None);
        }
        let started = Instant::now();
        if let Some(r) = &mut self.resume
            && let Some((sha, rows)) = r.parts.get(part.path)
        {
            if sha != part.sha256() {
                return Err(SqliteError::Check {
                    context: format!("--resume: table {name}"),
                    detail: format!(
                        "part {} changed since the interrupted import loaded it (SHA-256 {sha} then, {} now); its rows are not reused",
                        part.path,
                        part.sha256()
                    ),
                });
            }
            let rows = *rows;
            *r.kept.entry(table.id.clone()).or_default() += rows;
            self.progress.advance(&name, rows, 0);
            let rep = self.reports.entry(table.id.clone()).or_default();
            rep.rows += rows;
            return Ok(());
        }
        let rows = if self.cross.is_some() {
            self.load_from_postgres(table, part)?
        } else if is_content_table(table) {
            0 // external-content and contentless FTS: rebuilt in post_data
        } else {
            self.load_same_engine(table, part)?
        };
        if let Some(r) = &self.resume {
            resume::commit_part(
                self.conn,
                &r.archive,
                &table.id,
                part.path,
                part.sha256(),
                rows,
            )?;
        }
        self.progress.advance(&name, rows, 0);
        let rep = self.reports.entry(table.id.clone()).or_default();
        rep.rows += rows;
        rep.elapsed += started.elapsed();
        Ok(())
    }
}

/// The pre-data of either kind of archive; a PostgreSQL archive's plan for its rows.
fn pre_data_any(
    conn: &Connection,
    guard: &Guard,
    prelude: &Manifest,
    numeric_real: bool,
    resumable: bool,
) -> Result<Option<from_postgres::ddl::Cross>, SqliteError> {
    if prelude.source.engine == schema::ENGINE {
        pre_data(conn, guard, prelude, resumable)?;
        return Ok(None);
    }
    let cross = from_postgres::ddl::cross_pre_data(conn, guard, prelude, numeric_real, resumable)?;
    Ok(Some(cross))
}

/// The check a finished import runs (see [`ImportOptions::full_check`]). A `--resume` run
/// always runs the full one: its indexes may have been filled across runs that were killed
/// (with `synchronous = OFF`), so "built in one go by SQLite" no longer holds.
pub fn integrity_pragma(options: &ImportOptions) -> &'static str {
    if options.full_check || options.resume {
        "integrity_check"
    } else {
        "quick_check"
    }
}

/// Rows per slice handed from the decoding thread to the inserting one (see
/// [`Loader::insert_rows`]).
const PIPE_ROWS: usize = 2048;

/// The page cache while rows load, in KiB: what a UNIQUE index being filled needs.
const LOAD_CACHE_KIB: u32 = 128 << 10;
/// The page cache for post-data, in KiB (see [`build`]); the checks after it go back to
/// [`LOAD_CACHE_KIB`].
const POST_DATA_CACHE_KIB: u32 = 8 << 10;

/// The pragmas of a load, and its first transaction. A resumable load keeps a rollback
/// journal on disk, so that a killed run leaves the file as of its last commit (see
/// [`crate::resume`]); another keeps one in memory, for [`Inserts`] to roll back a refused
/// chunk of rows (with the journal off SQLite leaves such a statement half done). It holds
/// the pages the file had when the load began, which for a new file is its schema.
pub(crate) fn begin_load(conn: &Connection, resumable: bool) -> Result<(), SqliteError> {
    let journal = if resumable { "TRUNCATE" } else { "MEMORY" };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = {journal}; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA cache_size = -{LOAD_CACHE_KIB}; PRAGMA foreign_keys = OFF;
         BEGIN"
    ))
    .ctx(|| "setting up the load".into())
}

impl Loader<'_> {
    /// The prelude of a resumed import: the partial file must hold this archive's tables,
    /// which its pre-data, run on a scratch database, shows; the rows of a PostgreSQL
    /// archive get their plan from that run too.
    fn resume_prelude(&mut self, prelude: &Manifest) -> Result<(), SqliteError> {
        let r = self.resume.as_ref().expect("resuming");
        if r.earlier.as_deref() != Some(r.archive.as_str()) {
            return Err(SqliteError::ResumeMismatch(
                "it holds an import of another archive".into(),
            ));
        }
        let mut scratch = Connection::open_in_memory().ctx(|| "a scratch database".into())?;
        let scratch_guard = Guard::install(&mut scratch)?;
        let cross = pre_data_any(&scratch, &scratch_guard, prelude, self.numeric_real, false)?;
        scratch
            .execute_batch("COMMIT")
            .ctx(|| "a scratch database".into())?;
        if resume::schema(&scratch)? != resume::schema(self.conn)? {
            return Err(SqliteError::ResumeMismatch(
                "its tables differ from those this archive makes".into(),
            ));
        }
        self.cross = cross;
        begin_load(self.conn, true)?;
        self.prelude = Some(prelude.clone());
        Ok(())
    }
}

impl Loader<'_> {
    /// The one insert loop: a cached `INSERT` into `target`; `prepare` turns each batch of
    /// the part into what `load_batch` binds and executes (see [`execute_row`]).
    ///
    /// The two run on two threads, a few slices apart: decoding Parquet and converting
    /// values (`prepare`) took 1.6 s of a 4 s row load at scale 1000, and SQLite's inserts
    /// the rest, on one core of two. Batches are cut into slices of [`PIPE_ROWS`] rows, so
    /// that converted values in flight (blobs copied out of Arrow) stay a few MB. Both get
    /// each slice's offset in the part, for row numbers in messages.
    fn insert_rows<T: Send>(
        &self,
        target: &str,
        columns: &[String],
        part: &Part<'_>,
        prepare: impl Fn(RecordBatch, usize) -> Result<T, SqliteError> + Send,
        mut load_batch: impl FnMut(T, usize, &mut Inserts<'_>) -> Result<(), SqliteError>,
    ) -> Result<u64, SqliteError> {
        let mut stmt = Inserts::prepare(self.conn, target, columns)?;
        let batches = part.batches(self.batch_rows)?;
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel(2);
            s.spawn(move || {
                let mut offset = 0;
                for batch in batches {
                    let batch = match batch {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = tx.send(Err(e.into()));
                            return;
                        }
                    };
                    for start in (0..batch.num_rows()).step_by(PIPE_ROWS) {
                        let n = PIPE_ROWS.min(batch.num_rows() - start);
                        let item = prepare(batch.slice(start, n), offset + start)
                            .map(|prepared| (prepared, n, offset + start));
                        let failed = item.is_err();
                        // A closed channel: the loader stopped (an error, a refusal), and
                        // so does this thread.
                        if tx.send(item).is_err() || failed {
                            return;
                        }
                    }
                    offset += batch.num_rows();
                }
            });
            let mut rows = 0u64;
            for item in rx {
                let (prepared, n, offset) = item?;
                load_batch(prepared, offset, &mut stmt)?;
                ferry_archive::interrupt::pause_point("import:batch");
                rows += n as u64;
            }
            Ok(rows)
        })
    }

    fn load_same_engine(&self, table: &Table, part: &Part<'_>) -> Result<u64, SqliteError> {
        let fields = table.data_fields();
        let names: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
        let prepare = |batch: RecordBatch, _| Ok(batch);
        self.insert_rows(&table.name, &names, part, prepare, |batch, offset, stmt| {
            let batch = &batch;
            let cols = columns(batch, &fields).map_err(|reason| SqliteError::Value {
                table: table.name.clone(),
                column: reason.0,
                row: "-".into(),
                reason: reason.1,
            })?;
            let bind = |stmt: &mut rusqlite::Statement<'_>, param: usize, r: usize, j: usize| {
                let v = bindable(&cols[j], r).map_err(|reason| SqliteError::Value {
                    table: table.name.clone(),
                    column: fields[j].0.clone(),
                    row: format!("{} of {}", offset + r + 1, part.path),
                    reason: ferry_archive::rowkey::with_key(reason, table, batch, r),
                })?;
                stmt.raw_bind_parameter(param, v)
                    .ctx(|| format!("table {}: binding {}", table.name, fields[j].0))
            };
            stmt.insert(batch.num_rows(), offset, part.path, bind, |stmt, r| {
                execute_row(stmt, &table.name, part, || {
                    row_label(&cols, &fields, r, offset + r + 1, table)
                })
            })
        })
    }

    fn load_from_postgres(&self, table: &Table, part: &Part<'_>) -> Result<u64, SqliteError> {
        let cross = self.cross.as_ref().expect("cross import");
        let Some((target, fields)) = cross.loads.get(&table.id) else {
            return Ok(0); // a partitioned parent holds no rows of its own
        };
        let names: Vec<String> = fields.iter().map(|(_, c, _)| c.clone()).collect();
        let data = table.data_fields();
        let path = part.path;
        // On the decoding thread: every value of the batch, converted, row after row; and
        // per column, the arrays whose lower bounds a JSON array cannot keep.
        let prepare = |batch: RecordBatch, offset: usize| {
            let n = batch.num_rows();
            let mut values = Vec::with_capacity(n * fields.len());
            let mut bounded = vec![0u64; fields.len()];
            for r in 0..n {
                for (j, (i, _, conv)) in fields.iter().enumerate() {
                    if let from_postgres::Conv::ArrayJson { .. } = conv
                        && from_postgres::has_lower_bounds(batch.column(*i), r)
                    {
                        bounded[j] += 1;
                    }
                    let v = from_postgres::value(conv, &data[*i].1, batch.column(*i), r).map_err(
                        |reason| SqliteError::Value {
                            table: table.display_name(),
                            column: data[*i].0.clone(),
                            row: format!("{} of {path}", offset + r + 1),
                            reason: ferry_archive::rowkey::with_key(reason, table, &batch, r),
                        },
                    )?;
                    values.push(v);
                }
            }
            Ok((values, bounded, n))
        };
        self.insert_rows(
            target,
            &names,
            part,
            prepare,
            |(values, bounded, n), offset, stmt| {
                for (j, n) in bounded.into_iter().enumerate().filter(|(_, n)| *n > 0) {
                    *self
                        .bounded_arrays
                        .borrow_mut()
                        .entry(format!("{target}.{}", data[fields[j].0].0))
                        .or_default() += n;
                }
                let width = fields.len();
                let bind =
                    |stmt: &mut rusqlite::Statement<'_>, param: usize, r: usize, j: usize| {
                        stmt.raw_bind_parameter(param, &values[r * width + j])
                            .ctx(|| format!("table {target}: binding"))
                    };
                stmt.insert(n, offset, path, bind, |stmt, r| {
                    execute_row(stmt, target, part, || format!("row {}", offset + r + 1))
                })
            },
        )
    }
}

/// Rows per multi-row INSERT. One statement per row opened a cursor, sought the row's place
/// from the b-tree's root and closed again for every row; a chunk keeps the cursor at the
/// end of the table from row to row. At scale 1000 (2 M `events` rows from a PostgreSQL
/// archive, four alternating runs) 32 took the table's load from 2.28-2.57 s to 2.00-2.04 s,
/// the in-memory journal included; 8 rows gained about as much as 32 in a first trial.
///
/// Only a table without indexes during the load gets chunks. A chunk is undone by SQLite's
/// statement journal, which copies every page the statement changes that existed before it:
/// for an appended table, the few pages along its right edge; for a UNIQUE index, filled in
/// random order, one page per row. A table of 1 M rows with a UNIQUE text column loaded in
/// 5.5 s in chunks against 3.8 s row by row.
const CHUNK_ROWS: usize = 32;
/// SQLite's default limit on a statement's parameters.
const MAX_PARAMS: usize = 32_766;

/// The insert of one table's rows: one statement for a row, one for a chunk of
/// [`CHUNK_ROWS`].
pub(crate) struct Inserts<'c> {
    conn: &'c Connection,
    target: String,
    one: rusqlite::CachedStatement<'c>,
    /// The multi-row statement and its rows; absent for a table with an index during the
    /// load ([`CHUNK_ROWS`]), one too wide for two rows of parameters, or one beyond SQLite's
    /// limits on a multi-row VALUES (2000 columns by default, which a single row's VALUES is
    /// not held to).
    many: Option<(rusqlite::CachedStatement<'c>, usize)>,
    width: usize,
}

impl<'c> Inserts<'c> {
    fn prepare(
        conn: &'c Connection,
        target: &str,
        columns: &[String],
    ) -> Result<Self, SqliteError> {
        let names: Vec<String> = columns.iter().map(|c| crate::quote(c)).collect();
        let width = names.len();
        let sql = |rows: usize| {
            let row = format!("({})", vec!["?"; width].join(", "));
            format!(
                "INSERT INTO main.{} ({}) VALUES {}",
                crate::quote(target),
                names.join(", "),
                vec![row; rows].join(", ")
            )
        };
        let ctx = || format!("table {target}: preparing the insert");
        let one = conn.prepare_cached(&sql(1)).ctx(ctx)?;
        let indexed: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_index_list(?1, 'main'))",
                [target],
                |r| r.get(0),
            )
            .ctx(ctx)?;
        let chunk = CHUNK_ROWS.min(MAX_PARAMS / width.max(1));
        let many = (chunk > 1 && width > 0 && !indexed)
            .then(|| conn.prepare_cached(&sql(chunk)).ok())
            .flatten()
            .map(|stmt| (stmt, chunk));
        Ok(Inserts {
            conn,
            target: target.to_owned(),
            one,
            many,
            width,
        })
    }

    /// Inserts rows `0..n` of a slice that starts at row `offset` of `part`: whole chunks
    /// through the multi-row statement, the rest one by one. `bind(statement, parameter, r,
    /// j)` binds row `r`'s column `j`; `execute(statement, r)` runs the one-row statement
    /// bound to row `r`, naming it if SQLite refuses.
    ///
    /// A chunk SQLite refuses is rolled back whole by the load's journal ([`begin_load`])
    /// and replayed row by row, so that the error names the row, as a load of single rows
    /// would. Only when it is certain that nothing of the chunk stayed: the transaction is
    /// still open (a conflict clause of ROLLBACK, or an I/O error, ends it, and a replay
    /// would then commit row by row) and the chunk changed no row (a conflict clause of FAIL
    /// keeps the rows before the refused one, which a replay would find taken). Otherwise the
    /// error names the chunk's rows.
    fn insert(
        &mut self,
        n: usize,
        offset: usize,
        part: &str,
        mut bind: impl FnMut(&mut Statement<'_>, usize, usize, usize) -> Result<(), SqliteError>,
        mut execute: impl FnMut(&mut Statement<'_>, usize) -> Result<(), SqliteError>,
    ) -> Result<(), SqliteError> {
        let width = self.width;
        let mut start = 0;
        if let Some((many, chunk)) = &mut self.many {
            while start + *chunk <= n {
                for r in start..start + *chunk {
                    for j in 0..width {
                        bind(many, (r - start) * width + j + 1, r, j)?;
                    }
                }
                if let Err(refused) = many.raw_execute() {
                    if !self.conn.is_autocommit() && self.conn.changes() == 0 {
                        let rows = start..start + *chunk;
                        one_by_one(&mut self.one, width, rows, &mut bind, &mut execute)?;
                    }
                    // Not replayed, or every row went in alone: SQLite refused the chunk.
                    return Err(SqliteError::Sql {
                        context: format!(
                            "table {}, rows {}-{} of {part}: inserting",
                            self.target,
                            offset + start + 1,
                            offset + start + *chunk
                        ),
                        source: refused,
                    });
                }
                start += *chunk;
            }
        }
        one_by_one(&mut self.one, width, start..n, &mut bind, &mut execute)
    }
}

/// Binds and executes the one-row insert for each of `rows` (see [`Inserts::insert`]).
fn one_by_one(
    one: &mut Statement<'_>,
    width: usize,
    rows: std::ops::Range<usize>,
    bind: &mut impl FnMut(&mut Statement<'_>, usize, usize, usize) -> Result<(), SqliteError>,
    execute: &mut impl FnMut(&mut Statement<'_>, usize) -> Result<(), SqliteError>,
) -> Result<(), SqliteError> {
    for r in rows {
        for j in 0..width {
            bind(one, j + 1, r, j)?;
        }
        execute(one, r)?;
    }
    Ok(())
}

/// Executes the bound insert; a refusal names the table, the row and the part.
fn execute_row(
    stmt: &mut rusqlite::Statement<'_>,
    target: &str,
    part: &Part<'_>,
    row: impl FnOnce() -> String,
) -> Result<(), SqliteError> {
    stmt.raw_execute()
        .map(|_| ())
        .map_err(|source| SqliteError::Sql {
            context: format!("table {target}, {} of {}: inserting", row(), part.path),
            source,
        })
}

/// Names row `r` of a slice by its key, or else by `number`, its place in the part.
fn row_label(
    cols: &[SqliteColumn<'_>],
    fields: &[(String, LogicalType)],
    r: usize,
    number: usize,
    table: &Table,
) -> String {
    match (
        table.rowid.is_some(),
        cols.first().and_then(|c| c.get(r).ok()),
    ) {
        (true, Some(SqliteValue::Integer(i))) => format!("rowid {i}"),
        (_, Some(SqliteValue::Integer(i))) => format!("row with {} = {i}", fields[0].0),
        (_, Some(SqliteValue::Text(t))) => {
            format!("row with {} = '{}'", fields[0].0, ferry_archive::clip(t))
        }
        (_, Some(v)) => format!("row with {} = {v:?}", fields[0].0),
        _ => format!("row {number}"),
    }
}

/// Settings that must precede the first table, then the tables themselves.
fn pre_data(
    conn: &Connection,
    guard: &Guard,
    m: &Manifest,
    resumable: bool,
) -> Result<(), SqliteError> {
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
    begin_load(conn, resumable)?;
    for t in &m.tables {
        let sql = t.definition.as_deref().ok_or_else(|| {
            SqliteError::Unsupported(format!("table {}: the archive has no definition", t.name))
        })?;
        let what = format!("table {} (its definition)", t.name);
        guard.run(
            conn,
            sql,
            Expect {
                kind: "table",
                name: &t.name,
                what: &what,
            },
        )?;
    }
    Ok(())
}

/// Everything after the rows: indexes, views and triggers in their original order, FTS
/// rebuilds, sqlite_sequence, the planner's statistics.
fn post_data(conn: &Connection, guard: &Guard, m: &Manifest) -> Result<(), SqliteError> {
    // Full-text indexes are rebuilt before any trigger exists, so no trigger fires.
    for t in &m.tables {
        if is_content_table(t)
            && t.properties.get(prop::CONTENT).and_then(Value::as_str) == Some("external")
        {
            let q = crate::quote(&t.name);
            conn.execute_batch(&format!("INSERT INTO main.{q}({q}) VALUES ('rebuild')"))
                .ctx(|| format!("virtual table {}: rebuilding from its content", t.name))?;
        }
    }
    for o in &m.objects {
        if let Some(sql) = &o.definition {
            let what = format!("{} {} (its definition)", o.kind, o.name);
            guard.run(
                conn,
                sql,
                Expect {
                    kind: &o.kind,
                    name: &o.name,
                    what: &what,
                },
            )?;
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
                        .ok_or_else(|| "a row is not an array".to_owned())
                        .and_then(|r| r.iter().map(json_to_sql).collect())
                        .map_err(|reason| SqliteError::Refused {
                            what: format!("the archive's {name} statistics"),
                            reason,
                        })?;
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

/// One value of a statistics row as the exporter wrote it; anything else is an error, not
/// a guess (an empty blob for bad hex, NULL for an unknown object).
fn json_to_sql(v: &Value) -> Result<rusqlite::types::Value, String> {
    use rusqlite::types::Value as V;
    Ok(match v {
        Value::Null => V::Null,
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => V::Integer(i),
            (None, Some(f)) => V::Real(f),
            _ => return Err(format!("number {n} is neither an integer nor a real")),
        },
        Value::String(s) => V::Text(s.clone()),
        Value::Object(o) => match o.get("blob").and_then(Value::as_str) {
            Some(h) => V::Blob(hex::decode(h).map_err(|e| format!("blob {h:?} is not hex ({e})"))?),
            None => return Err(format!("unknown value {v}")),
        },
        other => return Err(format!("unknown value {other}")),
    })
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

pub(crate) fn query_strings(conn: &Connection, sql: &str) -> Result<Vec<String>, SqliteError> {
    let mut stmt = conn.prepare(sql).ctx(|| sql.to_owned())?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .ctx(|| sql.to_owned())?;
    rows.collect::<Result<_, _>>().ctx(|| sql.to_owned())
}

/// What `PRAGMA foreign_key_check` finds, table by table and key by key. The common key, one
/// column of a rowid table referring to its parent's rowid (INTEGER PRIMARY KEY), is
/// checked with an anti-join instead, which SQLite can run over an index of the child
/// column, in key order: the pragma took 26 s for 20 M events against 500 k users (a
/// lookup per event in rowid order), the query 4 s. They agree, NULLs, text, reals, blobs
/// and self-references included (tests/integration/sqlite.rs). Every other key goes
/// through the pragma.
pub(crate) fn foreign_key_check(conn: &Connection) -> Result<Vec<String>, SqliteError> {
    let ctx = || "PRAGMA foreign_key_check".to_owned();
    // (child, key id, parent, child column, parent column), one row per column of a key.
    let keys: Vec<(String, i64, String, String, Option<String>)> = conn
        .prepare(
            "SELECT m.name, f.id, f.\"table\", f.\"from\", f.\"to\"
             FROM main.sqlite_schema AS m, pragma_foreign_key_list(m.name, 'main') AS f
             WHERE m.type = 'table' ORDER BY m.rowid, f.id, f.seq",
        )
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })
        .ctx(ctx)?;
    let mut found = Vec::new();
    let mut i = 0;
    while i < keys.len() {
        let (child, id, parent, from, to) = &keys[i];
        let columns = keys[i..]
            .iter()
            .take_while(|k| (&k.0, k.1) == (child, *id))
            .count();
        i += columns;
        let rowids: Vec<Option<i64>> = if columns == 1
            && plain_rowid_table(conn, child)?
            && rowid_key(conn, parent, to)?
        {
            let sql = format!(
                // Aliased, for a table that refers to itself. No ORDER BY: an index on
                // the child column covers the query and hands out the keys in order, so
                // the parent lookups walk the parent table instead of jumping about.
                "SELECT child.rowid FROM main.{c} AS child WHERE child.{f} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM main.{p} AS parent WHERE parent.rowid = child.{f})",
                c = crate::quote(child),
                p = crate::quote(parent),
                f = crate::quote(from),
            );
            let mut rowids: Vec<Option<i64>> = conn
                .prepare(&sql)
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .ctx(ctx)?;
            rowids.sort_unstable();
            rowids
        } else {
            conn.prepare("SELECT rowid FROM pragma_foreign_key_check(?1, 'main') WHERE fkid = ?2")
                .and_then(|mut s| s.query_map((child, id), |r| r.get(0))?.collect())
                .ctx(ctx)?
        };
        found.extend(rowids.into_iter().map(|rowid| {
            format!(
                "table {child}, rowid {}: no matching row in {parent} (foreign key {id})",
                rowid.map_or("-".to_owned(), |i| i.to_string())
            )
        }));
    }
    Ok(found)
}

/// A rowid table none of whose columns is named like the rowid (which would shadow it).
fn plain_rowid_table(conn: &Connection, table: &str) -> Result<bool, SqliteError> {
    conn.query_row(
        "SELECT (SELECT wr = 0 AND type = 'table' FROM pragma_table_list(?1) WHERE schema = 'main')
            AND NOT EXISTS (SELECT 1 FROM pragma_table_xinfo(?1, 'main')
                            WHERE lower(name) IN ('rowid', '_rowid_', 'oid'))",
        [table],
        |r| r.get::<_, Option<bool>>(0),
    )
    .map(|b| b == Some(true))
    .ctx(|| "PRAGMA foreign_key_check".into())
}

/// Whether `column` of `table` (its primary key when `None`) is the table's rowid: a
/// one-column primary key with no index of its own (`INTEGER PRIMARY KEY`; `INT PRIMARY
/// KEY` and `INTEGER PRIMARY KEY DESC` get one), in a rowid table.
fn rowid_key(conn: &Connection, table: &str, column: &Option<String>) -> Result<bool, SqliteError> {
    if !plain_rowid_table(conn, table)? {
        return Ok(false);
    }
    conn.query_row(
        "SELECT (SELECT count(*) FROM pragma_table_info(?1, 'main') WHERE pk > 0) = 1
            AND (?2 IS NULL OR EXISTS (SELECT 1 FROM pragma_table_info(?1, 'main')
                                       WHERE pk = 1 AND name = ?2 COLLATE NOCASE))
            AND NOT EXISTS (SELECT 1 FROM pragma_index_list(?1, 'main') WHERE origin = 'pk')",
        (table, column),
        |r| r.get::<_, bool>(0),
    )
    .ctx(|| "PRAGMA foreign_key_check".into())
}

/// The data fields of a decoded batch, each read through the archive's one validated
/// reader of SQLite values (`ferry_archive::sqlite_value`).
pub(crate) fn columns<'a>(
    batch: &'a RecordBatch,
    fields: &[(String, LogicalType)],
) -> Result<Vec<SqliteColumn<'a>>, (String, String)> {
    fields
        .iter()
        .zip(batch.columns())
        .map(|((name, lt), a)| SqliteColumn::new(a, lt).map_err(|reason| (name.clone(), reason)))
        .collect()
}

/// Row `r` of a field, as SQLite binds it: a timestamp or date printed back into the TEXT
/// it was, every other value borrowed from the batch.
pub(crate) fn bindable<'a>(c: &SqliteColumn<'a>, r: usize) -> Result<ToSqlOutput<'a>, String> {
    let v = c.get(r)?;
    if let Some(text) = v.printed() {
        return Ok(ToSqlOutput::Owned(rusqlite::types::Value::Text(text)));
    }
    Ok(ToSqlOutput::Borrowed(match v {
        SqliteValue::Null | SqliteValue::Timestamp(_) | SqliteValue::Date(_) => ValueRef::Null,
        SqliteValue::Integer(i) => ValueRef::Integer(i),
        SqliteValue::Real(f) => ValueRef::Real(f),
        SqliteValue::Text(t) => ValueRef::Text(t.as_bytes()),
        SqliteValue::TextBytes(b) => ValueRef::Text(b),
        SqliteValue::Blob(b) => ValueRef::Blob(b),
    }))
}
