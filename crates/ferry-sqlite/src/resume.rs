//! Resuming an interrupted SQLite import (`ferry import --resume ARCHIVE app.db`).
//!
//! An ordinary import builds the database in a temporary file with an in-memory journal, in
//! one transaction: fastest, and a failure throws the file away. With `--resume` the file is
//! `<target>.ferry-resume` instead, kept when the run fails, and built part by part: each
//! part's rows commit with a row in the file's own journal table, `_ferry_resume`, naming
//! the archive (the SHA-256 of its prelude), the part, its SHA-256 and its row count. The
//! rollback journal is on (TRUNCATE mode); it costs little, since pages appended to the end
//! of a file are not journaled, and a process killed mid-part leaves a hot journal that
//! SQLite rolls back when the file is next opened, so the file holds exactly the parts its
//! journal lists.
//!
//! The next `--resume` run checks the file (`PRAGMA quick_check`, the archive named in the
//! journal, and its tables against the ones the archive's pre-data makes in a scratch
//! database), skips the parts the journal lists with the same SHA-256, loads the rest, and
//! refuses a part whose SHA-256 changed. Indexes, views and triggers come after the rows,
//! as always, and the journal table is dropped in the last transaction, so the published
//! file holds nothing of the resume. A file that does not pass is discarded and the import
//! starts over, saying so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferry_archive::Manifest;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::error::{Ctx, SqliteError};

pub(crate) const SUFFIX: &str = ".ferry-resume";
pub(crate) const JOURNAL: &str = "_ferry_resume";

/// What a `--resume` import knows of its partial file.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The archive an earlier run was loading into the file; `None` for a new file.
    pub earlier: Option<String>,
    /// Parts the file holds: path → (SHA-256, rows).
    pub parts: HashMap<String, (String, u64)>,
    /// This run's archive (SHA-256 of its prelude), once the prelude has arrived.
    pub archive: String,
    /// Rows kept from the earlier run, by table id.
    pub kept: HashMap<String, u64>,
}

impl State {
    pub fn kept_note(&self, m: &Manifest) -> Option<String> {
        if self.kept.is_empty() {
            return None;
        }
        let names: Vec<String> = m
            .tables
            .iter()
            .filter(|t| self.kept.contains_key(&t.id))
            .map(|t| t.display_name())
            .collect();
        Some(format!(
            "--resume: kept {} row(s) of {} table(s) that the interrupted import had loaded ({}); loaded the rest",
            self.kept.values().sum::<u64>(),
            names.len(),
            names.join(", ")
        ))
    }
}

/// `<target>.ferry-resume`.
pub(crate) fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// The SHA-256 that names an archive in the journal: that of its prelude.
pub(crate) fn archive_key(prelude: &Manifest) -> String {
    let json = serde_json::to_string(prelude).unwrap_or_default();
    hex::encode(Sha256::digest(json.as_bytes()))
}

/// The state of `partial`: new when there is none; what its journal says when it is sound;
/// otherwise it is discarded, with a note, and the import starts over.
pub(crate) fn open(partial: &Path, notes: &mut Vec<String>) -> Result<Option<State>, SqliteError> {
    if std::fs::symlink_metadata(partial).is_err() {
        return Ok(Some(State::default()));
    }
    match read_journal(partial) {
        Ok(state) => Ok(Some(state)),
        Err(why) => {
            notes.push(format!(
                "--resume: {} could not be reused ({why}); the import started over",
                partial.display()
            ));
            discard(partial)?;
            Ok(Some(State::default()))
        }
    }
}

fn read_journal(partial: &Path) -> Result<State, String> {
    let meta = std::fs::symlink_metadata(partial).map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    // Read-write: a hot journal left by a killed run is rolled back on this first read.
    let conn = Connection::open_with_flags(
        partial,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("PRAGMA quick_check: {check}"));
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT archive, path, sha256, rows FROM main.\"{JOURNAL}\""
        ))
        .map_err(|_| "it has no resume journal".to_owned())?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut state = State::default();
    for row in rows {
        let (archive, path, sha, n) = row.map_err(|e| e.to_string())?;
        match (path, sha, n) {
            (Some(path), Some(sha), Some(n)) => {
                state.parts.insert(path, (sha, n.max(0) as u64));
            }
            _ => state.earlier = Some(archive),
        }
    }
    if state.earlier.is_none() {
        return Err("its resume journal names no archive".into());
    }
    Ok(state)
}

/// Removes the partial file and its rollback journal.
pub(crate) fn discard(partial: &Path) -> Result<(), SqliteError> {
    let mut journal = partial.as_os_str().to_owned();
    journal.push("-journal");
    for p in [partial, Path::new(&journal)] {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(SqliteError::Io {
                    context: format!("{}: removing", p.display()),
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Wraps a failure: the partial file stays for the next `--resume`.
pub(crate) fn kept(e: SqliteError, partial: &Path) -> SqliteError {
    match e {
        // Nothing was loaded into it yet.
        e @ (SqliteError::TargetExists { .. } | SqliteError::ResumeMismatch(_)) => e,
        e => SqliteError::Resumable {
            error: Box::new(e),
            partial: partial.to_owned(),
        },
    }
}

/// Creates the journal in a new partial file, naming the archive, in the open transaction.
pub(crate) fn start_journal(conn: &Connection, archive: &str) -> Result<(), SqliteError> {
    conn.execute_batch(&format!(
        "CREATE TABLE main.\"{JOURNAL}\" (archive TEXT NOT NULL, path TEXT, sha256 TEXT, rows INTEGER, table_id TEXT)"
    ))
    .ctx(|| "--resume: creating its journal".into())?;
    conn.execute(
        &format!("INSERT INTO main.\"{JOURNAL}\" (archive) VALUES (?1)"),
        [archive],
    )
    .ctx(|| "--resume: starting its journal".into())?;
    Ok(())
}

/// Commits the open transaction, which loaded `path`, with its journal row; then opens the
/// next one.
pub(crate) fn commit_part(
    conn: &Connection,
    archive: &str,
    table_id: &str,
    path: &str,
    sha256: &str,
    rows: u64,
) -> Result<(), SqliteError> {
    conn.execute(
        &format!(
            "INSERT INTO main.\"{JOURNAL}\" (archive, path, sha256, rows, table_id) VALUES (?1, ?2, ?3, ?4, ?5)"
        ),
        rusqlite::params![archive, path, sha256, rows as i64, table_id],
    )
    .ctx(|| format!("--resume: recording {path}"))?;
    conn.execute_batch("COMMIT")
        .ctx(|| format!("--resume: committing {path}"))?;
    ferry_archive::interrupt::pause_point("import:part-committed");
    conn.execute_batch("BEGIN")
        .ctx(|| "--resume: starting the next part".into())
}

/// Drops the journal, in the import's last transaction.
pub(crate) fn drop_journal(conn: &Connection) -> Result<(), SqliteError> {
    conn.execute_batch(&format!("DROP TABLE main.\"{JOURNAL}\""))
        .ctx(|| "--resume: dropping its journal".into())
}

/// The tables, views, indexes and triggers of a database, but the journal.
pub(crate) fn schema(conn: &Connection) -> Result<Vec<(String, String, String)>, SqliteError> {
    let mut stmt = conn
        .prepare(
            "SELECT type, name, coalesce(sql, '') FROM main.sqlite_schema
              WHERE name <> ?1 ORDER BY type, name",
        )
        .ctx(|| "reading the schema".into())?;
    let rows = stmt
        .query_map([JOURNAL], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ctx(|| "reading the schema".into())?;
    rows.collect::<Result<Vec<_>, _>>()
        .ctx(|| "reading the schema".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_file_sits_beside_the_target() {
        assert_eq!(
            partial_path(Path::new("/srv/app.db")),
            PathBuf::from("/srv/app.db.ferry-resume")
        );
    }

    #[test]
    fn a_file_without_a_journal_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.ferry-resume");
        Connection::open(&p)
            .unwrap()
            .execute_batch("CREATE TABLE t(a)")
            .unwrap();
        let mut notes = Vec::new();
        let state = open(&p, &mut notes).unwrap().unwrap();
        assert!(state.earlier.is_none());
        assert!(!p.exists(), "discarded");
        assert!(notes[0].contains("no resume journal"), "{notes:?}");
    }
}
