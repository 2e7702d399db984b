//! Resuming an interrupted SQLite export (`ferry export --resume app.db backup/`).
//!
//! A resumable export stages in `<archive>.ferry-resume/` (see
//! `ferry_archive::ArchiveWriter::create_resumable`), which stays when the run fails. Beside
//! the parts it keeps a journal: the source's identity, the options, what the value profile
//! decided for every column, and each finished table's files and content digest, rewritten
//! (atomically) after every table.
//!
//! An export reads one snapshot; a continued one reads a second. The two hold the same rows
//! only if the file did not change in between, so a resume goes on only when the source is
//! provably the same file in the same state: same device and inode, size and modification
//! time, the same header change counter and schema cookie (which every committed write
//! transaction in rollback mode bumps), and the same `-wal` file, if any (size and
//! modification time: in WAL mode commits land there). Anything else, or other options, and
//! the export starts over, saying so. A finished table's files are checked again (size,
//! SHA-256) before they are taken over; the profile is taken from the journal, so a resumed
//! export does not read the finished tables at all.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use ferry_archive::{Column, DataFile, Warning};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::SqliteError;

/// What a resumable export has done so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Journal {
    /// The source's identity ([`identity`]).
    pub source: Value,
    /// The options that shape the archive ([`fingerprint`]).
    pub options: String,
    /// The first run's `created_at`, which the archive keeps.
    pub created_at: String,
    /// The value profile's decisions, per table in export order.
    pub profile: Vec<Profiled>,
    pub warnings: Vec<Warning>,
    /// SHA-256 of the manifest as it stood before the first row was read.
    pub prelude: String,
    /// Finished tables, by id.
    pub done: BTreeMap<String, Done>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Profiled {
    pub id: String,
    pub columns: Vec<Column>,
    pub rows: Option<u64>,
    /// The size estimate, so that the resumed run reads its tables in the same order.
    /// Absent from journals written before it was recorded: those runs order by rows.
    #[serde(default)]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Done {
    pub files: Vec<DataFile>,
    pub digest: Option<String>,
}

/// The source file's identity: what must be unchanged for a second snapshot to equal the
/// first (see the module's essay).
pub(crate) fn identity(path: &Path) -> Result<Value, SqliteError> {
    use std::os::unix::fs::MetadataExt;
    let io = |e| SqliteError::Io {
        context: format!("{}: reading its identity", path.display()),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mut header = [0u8; 100];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(io)?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(&wal)
        .ok()
        .map(|m| json!([m.len(), m.mtime(), m.mtime_nsec()]));
    Ok(json!({
        "device": meta.dev(),
        "inode": meta.ino(),
        "size": meta.len(),
        "mtime": [meta.mtime(), meta.mtime_nsec()],
        "change_counter": hex::encode(&header[24..28]),
        "schema_cookie": hex::encode(&header[40..44]),
        "wal": wal,
    }))
}

/// The options that shape the archive, as one string; the mask key only by its SHA-256.
pub(crate) fn fingerprint(parts: &[Value], mask_key: Option<&[u8]>) -> String {
    let key = mask_key.map(|k| hex::encode(Sha256::digest(k)));
    json!({ "options": parts, "mask_key": key }).to_string()
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The journal an interrupted export left for `target`, if it is readable.
pub(crate) fn load(target: &Path) -> Option<Journal> {
    let path = ferry_archive::resume_dir(target).join(ferry_archive::RESUME_JOURNAL);
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the journal, whole or not at all (a new file renamed over the old one).
pub(crate) fn save(target: &Path, journal: &Journal) -> Result<(), SqliteError> {
    let dir = ferry_archive::resume_dir(target);
    let path = dir.join(ferry_archive::RESUME_JOURNAL);
    let temp = dir.join(format!("{}.new", ferry_archive::RESUME_JOURNAL));
    let bytes = serde_json::to_vec(journal).map_err(|e| SqliteError::Check {
        context: "--resume".into(),
        detail: format!("writing the journal: {e}"),
    })?;
    std::fs::write(&temp, bytes)
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|e| SqliteError::Io {
            context: format!("{}: writing", path.display()),
            source: e,
        })
}

/// Removes what an interrupted export left for `target`.
pub(crate) fn discard(target: &Path) -> Result<(), SqliteError> {
    let dir = ferry_archive::resume_dir(target);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SqliteError::Io {
            context: format!("{}: removing", dir.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_follows_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
            .unwrap();
        let before = identity(&db).unwrap();
        assert_eq!(
            identity(&db).unwrap(),
            before,
            "stable while nothing changes"
        );
        conn.execute_batch("UPDATE t SET x = 2").unwrap();
        assert_ne!(identity(&db).unwrap(), before, "a commit changes it");
    }

    #[test]
    fn the_mask_key_counts_but_is_not_kept() {
        let a = fingerprint(&[json!(1)], Some(b"secret"));
        assert_ne!(a, fingerprint(&[json!(1)], Some(b"other")));
        assert!(!a.contains("secret"));
    }
}
