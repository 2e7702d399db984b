//! Parallel import (`--jobs N`): the same database as a serial import, published in one
//! transaction, and nothing left behind when it fails.

use std::io::Read;

use crate::harness::{TestDir, assert_same};
use crate::pg_db::{PgDb, TORTURE};

fn sample() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/app.db")
}

/// Imports `archive` into a new database with `--jobs jobs`; returns it and the summary.
fn import(dir: &TestDir, archive: &str, jobs: &str, tag: &str) -> (PgDb, String) {
    let db = PgDb::new(tag);
    let run = dir
        .ferry()
        .args(["import", "--jobs", jobs, archive, &db.url()])
        .run()
        .success();
    let summary = run.stderr();
    (db, summary)
}

fn staging_schemas(db: &PgDb) -> String {
    db.psql("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ferry_stage%'")
        .trim()
        .to_owned()
}

#[test]
fn jobs_1_and_jobs_4_load_identical_databases() {
    let dir = TestDir::new();
    let src = PgDb::new("src");
    src.psql(TORTURE);
    dir.ferry()
        .args(["export", &src.url(), "pg"])
        .run()
        .success();
    dir.ferry()
        .args(["export".as_ref(), sample().as_os_str(), "lite".as_ref()])
        .run()
        .success();
    for archive in ["pg", "lite"] {
        let (serial, said) = import(&dir, archive, "1", "serial");
        assert!(
            said.contains("one transaction") && !said.contains("connections"),
            "{said}"
        );
        let (parallel, said) = import(&dir, archive, "4", "parallel");
        assert!(
            said.contains(", published in one transaction"),
            "--jobs 4 staged no table: {said}"
        );
        assert_same!(
            parallel.schema_dump(),
            serial.schema_dump(),
            "{archive}: schema"
        );
        assert_same!(parallel.data_dump(), serial.data_dump(), "{archive}: data");
        assert_eq!(
            staging_schemas(&parallel),
            "0",
            "{archive}: staging left behind"
        );
        if archive == "pg" {
            assert_same!(
                parallel.schema_dump(),
                src.schema_dump(),
                "pg: source schema"
            );
            assert_same!(parallel.data_dump(), src.data_dump(), "pg: source data");
        }
    }
}

/// A SQLite archive's unnamed keys take names the server picks from what exists when they
/// run; an index whose name one of them would pick must keep its place after them, or a
/// parallel import would name things differently from a serial one. Here the unnamed
/// UNIQUE(b) is `t_b_key`, and an index is named `t_b_key` too (it fails after the key, and
/// is reported the same way by both); the other indexes may build side by side.
#[test]
fn a_parallel_import_names_a_sqlite_archives_keys_as_a_serial_one_does() {
    let dir = TestDir::new();
    let conn = rusqlite::Connection::open(dir.path("keys.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT UNIQUE, c INTEGER);
         CREATE INDEX t_b_key ON t(a);
         CREATE INDEX t_c ON t(c);
         CREATE INDEX t_ac ON t(a, c);
         CREATE TABLE u (id INTEGER PRIMARY KEY, t_id INTEGER REFERENCES t(id), x TEXT UNIQUE);
         CREATE INDEX u_pkey ON u(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
         INSERT INTO t SELECT i, 'a' || (i % 7), 'b' || i, i % 11 FROM n;
         INSERT INTO u SELECT id, id, 'x' || id FROM t;",
    )
    .unwrap();
    drop(conn);
    dir.ferry()
        .args(["export", "keys.db", "keys"])
        .run()
        .success();
    let (serial, said_serial) = import(&dir, "keys", "1", "keys_serial");
    let (parallel, said_parallel) = import(&dir, "keys", "4", "keys_parallel");
    assert!(
        said_parallel.contains("connections"),
        "--jobs 4 staged no table: {said_parallel}"
    );
    let names = "SELECT string_agg(indexname, ', ' ORDER BY indexname) FROM pg_indexes \
                 WHERE schemaname = 'public'";
    assert_same!(parallel.psql(names), serial.psql(names), "index names");
    assert!(
        serial.psql(names).contains("t_b_key"),
        "the fixture's collision did not happen: {}",
        serial.psql(names)
    );
    assert_same!(parallel.schema_dump(), serial.schema_dump(), "schema");
    let skipped = |said: &str| -> Vec<String> {
        let mut v: Vec<String> = said
            .lines()
            .filter(|l| l.contains("t_b_key") || l.contains("u_pkey"))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        skipped(&said_serial).len(),
        2,
        "both colliding indexes are reported: {said_serial}"
    );
    assert_eq!(skipped(&said_parallel), skipped(&said_serial));
}

/// A part replaced by another table's fails part-way through the load (in the worker that
/// decodes it, or at the size check when the tar ends, whichever comes first), while other
/// tables are loading in staging: the target must not change, and the staging schema must go.
#[test]
fn a_bad_part_mid_load_leaves_the_target_as_it_was() {
    let dir = TestDir::new();
    dir.ferry()
        .args(["export".as_ref(), sample().as_os_str(), "good.tar".as_ref()])
        .run()
        .success();
    // Rebuild the tar with the last table's part replaced by the first table's: the
    // entry is well-formed Parquet, but the wrong columns.
    let mut good = tar::Archive::new(std::fs::File::open(dir.path("good.tar")).unwrap());
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for e in good.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        entries.push((path, bytes));
    }
    let parts: Vec<usize> = (0..entries.len())
        .filter(|i| entries[*i].0.starts_with("data/"))
        .collect();
    let (first, last) = (parts[0], *parts.last().unwrap());
    assert_ne!(
        entries[first].0.split('/').nth(1),
        entries[last].0.split('/').nth(1),
        "the sample has several tables"
    );
    entries[last].1 = entries[first].1.clone();
    let mut bad = tar::Builder::new(std::fs::File::create(dir.path("bad.tar")).unwrap());
    for (path, bytes) in &entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        bad.append_data(&mut h, path, bytes.as_slice()).unwrap();
    }
    bad.finish().unwrap();

    let dst = PgDb::new("dst");
    dst.psql("CREATE TABLE keep (x int); INSERT INTO keep VALUES (1)");
    let before = (dst.schema_dump(), dst.data_dump());
    dir.ferry()
        .args(["import", "--jobs", "4", "bad.tar", &dst.url()])
        .run()
        .fails_with(1)
        .says("was not changed")
        .says(&entries[last].0);
    assert_same!(dst.schema_dump(), before.0, "schema");
    assert_same!(dst.data_dump(), before.1, "data");
    assert_eq!(staging_schemas(&dst), "0");
}

/// A failure after the workers have committed their tables to staging (a post-data
/// statement the server refuses, in the publishing transaction): the target must not
/// change, and the committed staging copies must go.
#[test]
fn a_failure_after_staging_commits_leaves_the_target_as_it_was() {
    let dir = TestDir::new();
    let src = PgDb::new("src");
    src.psql(
        "CREATE TABLE a (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text);
         INSERT INTO a (v) SELECT 'row ' || g FROM generate_series(1, 5000) g;
         CREATE TABLE b (id bigint PRIMARY KEY, a_id int REFERENCES a);
         INSERT INTO b SELECT g, g FROM generate_series(1, 5000) g;",
    );
    dir.ferry()
        .args(["export", &src.url(), "arch"])
        .run()
        .success();
    // A statement every check accepts (an index on the archive's own table) that the
    // server refuses only when it runs, after the workers have committed.
    let broken = serde_json::json!({
        "kind": "index",
        "schema": "public",
        "name": "broken",
        "table": "b",
        "definition": "CREATE INDEX broken ON public.b USING btree (no_such_column)",
        "properties": {"phase": "post"}
    });
    crate::harness::edit_manifests(&dir.path("arch"), |m| {
        m["objects"].as_array_mut().unwrap().push(broken.clone());
    });
    let dst = PgDb::new("dst");
    let before = dst.schema_dump();
    let run = dir
        .ferry()
        .args(["import", "--jobs", "4", "arch", &dst.url()])
        .run()
        .fails_with(1);
    let run = run.says("was not changed").says("no_such_column");
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    assert_same!(dst.schema_dump(), before, "schema");
    assert_eq!(staging_schemas(&dst), "0");
}

/// Some tables are staged, one is not (its column type is the archive's own), and a view
/// over a staged table has to wait for publishing: the import transaction retries it
/// behind a savepoint, and must still load its own table frozen afterwards.
#[test]
fn staged_and_unstaged_tables_and_waiting_views_load_together() {
    let dir = TestDir::new();
    let src = PgDb::new("src");
    src.psql(
        "CREATE TYPE mood AS ENUM ('ok', 'meh');
         CREATE TABLE feelings (id int PRIMARY KEY, m mood NOT NULL);
         INSERT INTO feelings SELECT g, 'ok' FROM generate_series(1, 3000) g;
         CREATE TABLE notes (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, body text);
         INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 3000) g;
         CREATE INDEX notes_body ON notes (body);
         CREATE VIEW short_notes AS SELECT id FROM notes WHERE length(body) < 8;",
    );
    dir.ferry()
        .args(["export", &src.url(), "arch"])
        .run()
        .success();
    let (dst, said) = import(&dir, "arch", "2", "dst");
    assert!(said.contains("loaded on 1 connection"), "{said}");
    assert_same!(dst.schema_dump(), src.schema_dump(), "schema");
    assert_same!(dst.data_dump(), src.data_dump(), "data");
    let view = "SELECT count(*) FROM short_notes";
    assert_eq!(dst.psql(view), src.psql(view));
    assert_eq!(
        dst.psql("SELECT nextval('notes_id_seq')").trim(),
        "3001",
        "the identity sequence is published with its table"
    );
    assert_eq!(staging_schemas(&dst), "0");
}

/// `--jobs-per-table`: a table in many parts is spread over several connections (no
/// FREEZE, builds after all of them commit) and still loads exactly what a serial import
/// loads.
#[test]
fn a_table_split_over_several_connections_loads_the_same() {
    let dir = TestDir::new();
    dir.ferry()
        .args([
            "export".as_ref(),
            "--file-rows".as_ref(),
            "150".as_ref(),
            sample().as_os_str(),
            "parts".as_ref(),
        ])
        .run()
        .success();
    let (serial, _) = import(&dir, "parts", "1", "serial");
    let split = PgDb::new("split");
    let said = dir
        .ferry()
        .args([
            "import",
            "--jobs",
            "3",
            "--jobs-per-table",
            "3",
            "parts",
            &split.url(),
        ])
        .run()
        .success()
        .stderr();
    assert!(said.contains("loaded on 3 connections"), "{said}");
    assert_same!(split.schema_dump(), serial.schema_dump(), "schema");
    assert_same!(split.data_dump(), serial.data_dump(), "data");
    assert_eq!(staging_schemas(&split), "0");
}

/// Two SQLite tables whose keys get the same generated PostgreSQL name: each staged table
/// builds its own, and publishing gives the second one the next free name, as a serial
/// import does, instead of failing.
#[test]
fn generated_key_names_that_clash_are_renamed_when_published() {
    let dir = TestDir::new();
    let db = dir.path("clash.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE a_b (id INTEGER PRIMARY KEY, c TEXT UNIQUE);
         CREATE TABLE a (id INTEGER PRIMARY KEY, b_c TEXT UNIQUE);
         INSERT INTO a_b (c) VALUES ('x'), ('y');
         INSERT INTO a (b_c) VALUES ('x'), ('z');",
    )
    .unwrap();
    drop(conn);
    dir.ferry()
        .args(["export".as_ref(), db.as_os_str(), "arch".as_ref()])
        .run()
        .success();
    let (serial, _) = import(&dir, "arch", "1", "serial");
    let (parallel, said) = import(&dir, "arch", "2", "parallel");
    assert!(said.contains("connections, published"), "{said}");
    let keys = "SELECT conrelid::regclass || ' ' || conname FROM pg_constraint
                WHERE contype = 'u' ORDER BY 1";
    let names = parallel.psql(keys);
    assert!(names.contains("a_b_c_key1"), "{names}");
    assert_eq!(
        serial.psql("SELECT count(*) FROM pg_constraint WHERE contype = 'u'"),
        parallel.psql("SELECT count(*) FROM pg_constraint WHERE contype = 'u'")
    );
    assert_same!(parallel.data_dump(), serial.data_dump(), "data");
    // Both keys are enforced.
    assert!(
        parallel
            .psql_err("INSERT INTO a_b (c) VALUES ('x')")
            .contains("duplicate")
    );
    assert!(
        parallel
            .psql_err("INSERT INTO a (b_c) VALUES ('x')")
            .contains("duplicate")
    );
}

/// A parallel PostgreSQL export to a tar file puts the largest table's parts first, though
/// the small table finishes first on the other connection: a parallel import of the tar
/// then starts the largest table first. Paused after the large table's first part, the
/// export gives the small table time to finish; its part must still come after all of the
/// large table's.
#[test]
fn a_parallel_postgresql_export_puts_the_largest_tables_parts_first_in_a_tar() {
    let dir = TestDir::new();
    let src = PgDb::new("lead_src");
    src.psql(
        "CREATE TABLE a_small (id int PRIMARY KEY, v text);
         CREATE TABLE b_large (id int PRIMARY KEY, v text);
         INSERT INTO a_small SELECT g, 's' || g FROM generate_series(1, 10) g;
         INSERT INTO b_large SELECT g, repeat('x', 50) || g FROM generate_series(1, 3000) g;
         ANALYZE;",
    );
    let paused = dir
        .ferry()
        .args([
            "export",
            "--jobs",
            "2",
            "--file-rows",
            "1000",
            "--batch-rows",
            "500",
            &src.url(),
            "out.tar",
        ])
        .paused_at("archive:published:data/t00002/part-000000.parquet");
    // Not a timing assertion: the time the other connection has to finish the small table
    // while the large one waits. Without the lead, its part would land mid-table.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    paused.resume().success();
    let mut names = Vec::new();
    let mut tar = tar::Archive::new(std::fs::File::open(dir.path("out.tar")).unwrap());
    for e in tar.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(
        names,
        [
            "prelude.json",
            "data/t00002/part-000000.parquet",
            "data/t00002/part-000001.parquet",
            "data/t00002/part-000002.parquet",
            "data/t00001/part-000000.parquet",
            "manifest.json",
        ]
    );
    let (dst, _) = import(&dir, "out.tar", "2", "lead_dst");
    assert_eq!(
        dst.psql("SELECT (SELECT count(*) FROM a_small) || ',' || (SELECT count(*) FROM b_large)")
            .trim(),
        "10,3000"
    );
}
