//! Collations that a database's schema names but SQLite does not define.
//!
//! Applications register their own collations on their connections (Anki's `unicase`, for
//! one), and a file they wrote names them in its `CREATE TABLE` and `CREATE INDEX`
//! statements. Without them SQLite refuses to prepare any query whose plan could use such an
//! index, so ferry could not read the file at all. The rows themselves do not need the
//! collation: ferry reads every table in the order of its rowid or primary-key b-tree,
//! which compares nothing. So a reader registers a stand-in for each unknown name, in
//! byte order, that records every comparison it makes. A comparison means a query did
//! depend on the application's order (a `--where` or `--subset` on such a column, or a
//! sort the plan could not avoid), and its answer may be wrong: the export then fails
//! instead of writing an archive built on it.
//!
//! Writers never get a stand-in: an index built in the wrong order is a corrupt file for
//! the application, so an import that needs the collation fails with SQLite's own error.
//!
//! The record is process-wide because SQLite's callback takes no state; [`Watch`] compares
//! it before and after an export.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rusqlite::Connection;

/// How many comparisons the stand-ins made in all, and the count at each name's latest.
static COMPARED: Mutex<(u64, BTreeMap<String, u64>)> = Mutex::new((0, BTreeMap::new()));

/// Lets `conn` prepare queries on tables and indexes that name collations SQLite does not
/// know, with a recording stand-in for each.
pub(crate) fn allow_unknown(conn: &Connection) -> rusqlite::Result<()> {
    conn.collation_needed(stand_in)
}

fn stand_in(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    let owned = name.to_owned();
    conn.create_collation(name, move |a: &str, b: &str| {
        let mut seen = COMPARED.lock().unwrap_or_else(|e| e.into_inner());
        seen.0 += 1;
        let now = seen.0;
        seen.1.insert(owned.clone(), now);
        a.cmp(b)
    })
}

/// The stand-ins' comparison count when an export started. Two exports in one process
/// that both compare by stand-ins see each other's comparisons; the CLI runs one.
pub(crate) struct Watch(u64);

impl Watch {
    pub(crate) fn start() -> Watch {
        Watch(COMPARED.lock().unwrap_or_else(|e| e.into_inner()).0)
    }

    /// The collations a stand-in compared text by since [`Watch::start`], if any did.
    pub(crate) fn compared(&self) -> Option<Vec<String>> {
        let seen = COMPARED.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<String> = seen
            .1
            .iter()
            .filter(|(_, last)| **last > self.0)
            .map(|(name, _)| name.clone())
            .collect();
        (!names.is_empty()).then_some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_collations_are_readable_and_a_comparison_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        // The application's side: its own collation, an index in its order, and statistics
        // (sqlite_stat4, whose samples SQLite loads with their index's collation).
        let app = Connection::open(&path).unwrap();
        app.create_collation("app_order", |a: &str, b: &str| {
            a.to_lowercase().cmp(&b.to_lowercase())
        })
        .unwrap();
        app.execute_batch(
            "CREATE TABLE t (ntid INTEGER NOT NULL, ord INTEGER NOT NULL,
               name TEXT NOT NULL COLLATE app_order, PRIMARY KEY (ntid, ord)) WITHOUT ROWID;
             CREATE UNIQUE INDEX t_name ON t (name, ntid);
             INSERT INTO t VALUES (1, 1, 'b'), (1, 2, 'A');
             ANALYZE;",
        )
        .unwrap();
        drop(app);

        // Without the collation SQLite cannot plan even a read in key order ("no query
        // solution" here, "no such collation sequence" on other shapes).
        let plain = Connection::open(&path).unwrap();
        assert!(
            plain
                .prepare("SELECT name FROM t ORDER BY ntid, ord")
                .is_err()
        );

        let conn = Connection::open(&path).unwrap();
        allow_unknown(&conn).unwrap();
        let watch = Watch::start();
        let rows: Vec<String> = conn
            .prepare("SELECT name FROM t ORDER BY ntid, ord")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, ["b", "A"]);
        assert_eq!(
            watch.compared(),
            None,
            "reading in primary-key order compares nothing"
        );
        conn.query_row("SELECT count(*) FROM t WHERE name > 'a'", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
        assert_eq!(watch.compared(), Some(vec!["app_order".to_owned()]));
    }
}
