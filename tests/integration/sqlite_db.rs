//! Helpers for SQLite test databases: the torture database, and an exact, comparable dump of
//! everything a SQLite file holds (schema rows, every value with its storage class, rowids,
//! pragmas).

use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::ValueRef;

/// Builds a database that exercises everything the SQLite issue lists.
pub fn build_torture(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(TORTURE).unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    conn.execute(
        "INSERT INTO plain(rowid, a, e) VALUES (1000, 'big', ?1)",
        [&big],
    )
    .unwrap();
    conn.execute_batch("ANALYZE;").unwrap();
}

const TORTURE: &str = r#"
PRAGMA page_size = 8192;
PRAGMA auto_vacuum = INCREMENTAL;
PRAGMA journal_mode = WAL;
PRAGMA application_id = 1718183538;
PRAGMA user_version = 42;

-- No INTEGER PRIMARY KEY: rowids are data, with gaps. Columns of every affinity, holding
-- values of every class. (-0.0 survives only where no REAL affinity applies: a REAL column
-- stores it as the integer 0.)
CREATE TABLE plain(a, b INTEGER, c REAL, d TEXT, e BLOB, f NUMERIC(10,2));
INSERT INTO plain(rowid, a, b, c, d, e, f) VALUES
  (1, 1, 9223372036854775807, -0.0, 'plain text', X'00', 1.5),
  (2, 2.5, -9223372036854775808, 4.9406564584124654e-324, '', X'', 2),
  (3, 'text', 0, 1.7976931348623157e308, NULL, NULL, 3.25),
  (4, X'DEADBEEF', -1, -1e308 * 10, CAST(X'610062' AS TEXT), zeroblob(10), NULL),
  (5, NULL, 42, 1e308 * 10, CAST(X'C328FF' AS TEXT), X'FF', 'n/a'),
  (7, '', NULL, 2.2250738585072014e-308, 'ünïcødé ✓ 🚢', NULL, 7),
  (8, -0.0, NULL, NULL, NULL, -0.0, NULL),
  (10, 'gap', 'not a number', 0.1, 'ok', 'text in a blob column', 1e20);

-- AUTOINCREMENT whose sequence is past max(id).
CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL DEFAULT 'x');
INSERT INTO auto(v) VALUES ('one'), ('two'), ('three'), ('four'), ('five');
DELETE FROM auto WHERE id > 3;

CREATE TABLE wr(k TEXT PRIMARY KEY COLLATE NOCASE, v INT, w) WITHOUT ROWID;
INSERT INTO wr VALUES ('b', 2, 2.5), ('A', 1, 'x'), ('c', NULL, NULL);

CREATE TABLE st(id INTEGER PRIMARY KEY, n INTEGER NOT NULL, r REAL, t TEXT, b BLOB, x ANY) STRICT;
INSERT INTO st VALUES (1, 5, 1.25, 's', X'01', 1), (2, -5, NULL, NULL, NULL, 'any'),
  (3, 0, 0.5, '', X'', X'02'), (4, 1, 2.0, 't', NULL, 3.5);

CREATE TABLE gen(
  id INTEGER PRIMARY KEY,
  name TEXT COLLATE NOCASE CHECK (length(name) < 50),
  price REAL NOT NULL DEFAULT 0.0,
  qty INT DEFAULT (1 + 1),
  total REAL GENERATED ALWAYS AS (price * qty) STORED,
  shout TEXT AS (upper(name)) VIRTUAL,
  created DATETIME DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT positive CHECK (price >= 0)
);
INSERT INTO gen(id, name, price, qty, created) VALUES (1, 'apple', 0.5, 3, '2024-01-02 03:04:05'),
  (2, 'pear', 1.25, 2, '2024-02-03T04:05:06Z'), (5, 'fig', 3, NULL, NULL);

CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT UNIQUE, code TEXT, UNIQUE(code, name));
CREATE TABLE child(
  id INTEGER PRIMARY KEY,
  parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE ON UPDATE SET NULL DEFERRABLE INITIALLY DEFERRED,
  note TEXT
);
INSERT INTO parent VALUES (1, 'p1', 'a'), (2, 'p2', 'b');
INSERT INTO child VALUES (1, 1, 'c1'), (2, 2, 'c2'), (3, NULL, 'orphan');
-- A trigger that would change data if it fired during the load.
CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);
CREATE TRIGGER child_audit AFTER INSERT ON child BEGIN
  INSERT INTO audit(what) VALUES ('child ' || NEW.id);
  UPDATE parent SET name = name || '!' WHERE id = NEW.parent_id;
END;
INSERT INTO child VALUES (4, 1, 'fired');

CREATE UNIQUE INDEX parent_code ON parent(code);
CREATE INDEX child_note_partial ON child(note) WHERE parent_id IS NOT NULL;
CREATE INDEX gen_lower_name ON gen(lower(name), price DESC);
CREATE VIEW child_names AS SELECT c.id, p.name FROM child c JOIN parent p ON p.id = c.parent_id;
CREATE VIEW v2 AS SELECT count(*) AS n FROM child_names;

CREATE VIRTUAL TABLE docs USING fts5(title, body);
INSERT INTO docs(rowid, title, body) VALUES (3, 'ferry', 'moves databases'), (9, 'river', 'boats cross it');

CREATE TABLE "weird ""name""" ("select" TEXT, "Mixed Case" INT, [with space] BLOB, "from" REAL);
INSERT INTO "weird ""name""" VALUES ('k', 1, X'00', 1.0), ('order', 2, NULL, NULL);

CREATE TABLE hasrowid(rowid TEXT, v INT);
INSERT INTO hasrowid(_rowid_, rowid, v) VALUES (100, 'user rowid', 1), (205, 'another', 2);

CREATE TABLE empty_one(x INTEGER, y TEXT);
"#;

/// Everything that must survive a round trip, in a form that compares with a readable diff.
pub fn dump(path: &Path) -> String {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut out = String::new();
    for p in [
        "encoding",
        "page_size",
        "auto_vacuum",
        "journal_mode",
        "application_id",
        "user_version",
    ] {
        let v: rusqlite::types::Value = conn
            .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
            .unwrap();
        out.push_str(&format!("pragma {p} = {v:?}\n"));
    }
    // sqlite_schema rows, normalised: ordered by name (a restore creates indexes and triggers
    // after the data, so rowid order differs) and without rootpage (physical).
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "schema {} {} on {}: {}\n",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?
                    .unwrap_or_else(|| "(auto)".into())
            ))
        })
        .unwrap();
    for r in rows {
        out.push_str(&r.unwrap());
    }
    let tables: Vec<(String, String, bool)> = conn
        .prepare("SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'virtual') AND name NOT IN ('sqlite_schema', 'sqlite_temp_schema') ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (name, kind, without_rowid) in tables {
        let q = format!("\"{}\"", name.replace('"', "\"\""));
        let cols: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_xinfo(?1) WHERE hidden != 1 ORDER BY cid")
            .unwrap()
            .query_map([&name], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| format!("\"{}\"", r.unwrap().replace('"', "\"\"")))
            .collect();
        // sqlite_sequence's own rowids are bookkeeping (SQLite rewrites its rows freely);
        // its content is compared by name.
        let sql = if without_rowid || name == "sqlite_sequence" {
            format!("SELECT {} FROM main.{q} ORDER BY 1, 2", cols.join(", "))
        } else if kind == "virtual" || !cols.iter().any(|c| c == "\"rowid\"") {
            format!(
                "SELECT _rowid_, {} FROM main.{q} ORDER BY _rowid_",
                cols.join(", ")
            )
        } else {
            format!("SELECT oid, {} FROM main.{q} ORDER BY oid", cols.join(", "))
        };
        let mut stmt = conn.prepare(&sql).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        out.push_str(&format!("table {name} ({kind}):\n"));
        while let Some(r) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n).map(|i| show(r.get_ref(i).unwrap())).collect();
            out.push_str(&format!("  {}\n", cells.join(" | ")));
        }
    }
    out
}

/// A value with its storage class, exactly (reals by bit pattern, text by bytes).
fn show(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("int {i}"),
        ValueRef::Real(f) => format!("real {f:e} ({:016x})", f.to_bits()),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) if !s.contains('\0') => format!("text {s:?}"),
            _ => format!("text bytes {}", hex_short(t)),
        },
        ValueRef::Blob(b) => format!("blob {}", hex_short(b)),
    }
}

fn hex_short(b: &[u8]) -> String {
    if b.len() <= 64 {
        hex::encode(b)
    } else {
        use sha2::Digest;
        format!(
            "{} bytes, sha256 {}",
            b.len(),
            hex::encode(sha2::Sha256::digest(b))
        )
    }
}
