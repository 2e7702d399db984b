//! Resource limits on archives (spec/FORMAT.md §8): a document, a warnings list or a value
//! beyond its limit is refused in one line that names the file and the flag that raises the
//! limit, before anything changes; the flag then lets the same archive through.

use serde_json::json;

use crate::harness::{TestDir, assert_same, edit_manifests};
use crate::pg_db::PgDb;

/// A directory archive of a table whose second row holds a 2 MiB text value.
fn wide_archive(dir: &TestDir) {
    let conn = rusqlite::Connection::open(dir.path("wide.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'short'), (2, printf('%.*c', 2097152, 'a')), (3, NULL);",
    )
    .unwrap();
    drop(conn);
    dir.ferry()
        .args(["export", "wide.db", "wide"])
        .run()
        .success();
}

#[test]
fn a_value_over_the_limit_is_refused_with_its_column_and_row() {
    let dir = TestDir::new();
    wide_archive(&dir);
    let line = "data/t00001/part-000000.parquet: column v, row 2: a value of 2097152 bytes, over the limit of 1 MiB; pass --max-value-mb to accept more";
    let run = dir
        .ferry()
        .args(["import", "wide", "out.db", "--max-value-mb", "1"])
        .run()
        .fails_with(1)
        .says(line);
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    assert!(!dir.path("out.db").exists());

    let pg = PgDb::new("limits");
    let before = pg.schema_dump();
    dir.ferry()
        .args(["import", "wide", &pg.url(), "--max-value-mb", "1"])
        .run()
        .fails_with(1)
        .says(line);
    assert_same!(pg.schema_dump(), before);

    dir.ferry()
        .args(["verify", "wide", "--max-value-mb", "1"])
        .run()
        .fails_with(3)
        .says("--max-value-mb");

    // Within the limit, the same archive loads whole.
    dir.ferry()
        .args(["import", "wide", "out.db", "--max-value-mb", "2"])
        .run()
        .success();
    let conn = rusqlite::Connection::open(dir.path("out.db")).unwrap();
    let len: i64 = conn
        .query_row("SELECT length(v) FROM t WHERE id = 2", [], |r| r.get(0))
        .unwrap();
    assert_eq!(len, 2_097_152);
}

#[test]
fn a_manifest_over_the_size_limit_is_refused_before_it_is_read() {
    let dir = TestDir::new();
    wide_archive(&dir);
    edit_manifests(&dir.path("wide"), |m| {
        m["warnings"] = json!([{
            "code": "padding",
            "message": "x".repeat(1_200_000),
        }]);
    });
    for cmd in ["inspect", "verify"] {
        dir.ferry()
            .args([cmd, "wide", "--max-manifest-mb", "1"])
            .run()
            .fails_with(if cmd == "verify" { 3 } else { 1 })
            .says("more than 1048576 bytes, over the limit of 1 MiB; pass --max-manifest-mb");
    }
    dir.ferry()
        .args(["import", "wide", "out.db", "--max-manifest-mb", "1"])
        .run()
        .fails_with(1)
        .says("--max-manifest-mb");
    assert!(!dir.path("out.db").exists());
    dir.ferry().args(["inspect", "wide"]).run().success();
}

#[test]
fn too_many_warnings_are_refused() {
    let dir = TestDir::new();
    wide_archive(&dir);
    edit_manifests(&dir.path("wide"), |m| {
        let w = json!({"code": "noise", "message": "n"});
        m["warnings"] = json!(vec![w; 20_001]);
    });
    dir.ferry()
        .args(["inspect", "wide"])
        .run()
        .fails_with(1)
        .says(
            "manifest.json: 20001 warnings, over the limit of 20000 warnings; pass --max-warnings",
        );
    dir.ferry()
        .args(["inspect", "wide", "--max-warnings", "30000"])
        .run()
        .success();
}

/// A value far larger than a COPY message (24 MiB, within the default value limit) in the
/// middle of a part: the rows before and after it reach PostgreSQL whole and in order. The
/// message buffer grows to hold that value and is then replaced by a normal-sized one.
#[test]
fn a_huge_value_amid_small_rows_loads_into_postgresql_whole() {
    let dir = TestDir::new();
    let conn = rusqlite::Connection::open(dir.path("huge.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, note TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO t SELECT i, CASE WHEN i = 700 THEN CAST(printf('%.*c', 25165824, 'x') AS BLOB)
                                      ELSE randomblob(40) END, 'row ' || i FROM n;",
    )
    .unwrap();
    drop(conn);
    dir.ferry()
        .args(["export", "huge.db", "huge.tar"])
        .run()
        .success();
    let pg = PgDb::new("huge");
    dir.ferry()
        .args(["import", "huge.tar", &pg.url()])
        .run()
        .success();
    dir.ferry()
        .args(["verify", "huge.tar", "--against", &pg.url()])
        .run()
        .success()
        .says("matches it");
    assert_eq!(
        pg.psql("SELECT count(*), sum(length(v)), max(note) FROM t")
            .trim(),
        format!("5000|{}|row 999", 25165824 + 4999 * 40)
    );
}
