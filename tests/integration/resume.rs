//! `ferry import --resume`: an import killed part-way continues from what it had committed
//! (tables in PostgreSQL staging schemas, parts in a SQLite partial file), and ends exactly
//! as an uninterrupted import; what changed in the archive since is never reused.

use std::path::PathBuf;

use crate::harness::{Ferry, TestDir, assert_same};
use crate::pg_db::PgDb;

pub(crate) fn real(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/real")).join(name)
}

/// Staging tables that carry a resume record, as `name relfilenode`. The relfilenode
/// changes when a table is emptied (TRUNCATE) or made again, so an unchanged one proves
/// that a resumed import did not load the table again.
pub(crate) fn committed_in_staging(db: &PgDb) -> Vec<String> {
    db.psql(
        "SELECT c.relname || ' ' || c.relfilenode FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname LIKE 'ferry\\_stage\\_%' AND c.relkind = 'r'
            AND pg_catalog.obj_description(n.oid, 'pg_namespace') LIKE '%; resume %'
          ORDER BY 1",
    )
    .lines()
    .filter(|l| !l.is_empty())
    .map(str::to_owned)
    .collect()
}

/// A copy of chinook at `chinook.sqlite` in `dir`, exported to `archive`.
fn chinook_copy_exported(dir: &TestDir, archive: &str) {
    std::fs::copy(real("chinook.sqlite"), dir.path("chinook.sqlite")).expect("copy the sample");
    dir.ferry()
        .args(["export", "chinook.sqlite", archive])
        .run()
        .success();
}

/// Changes the copy made by [`chinook_copy_exported`] with `sql`, then exports it to
/// `archive`.
fn change_and_export(dir: &TestDir, sql: &str, archive: &str) {
    let conn = rusqlite::Connection::open(dir.path("chinook.sqlite")).expect("open the copy");
    conn.execute_batch(sql).expect("change the source");
    drop(conn);
    dir.ferry()
        .args(["export", "chinook.sqlite", archive])
        .run()
        .success();
}

fn export_chinook(dir: &TestDir, archive: &str) {
    dir.ferry()
        .args(["export"])
        .args([real("chinook.sqlite")])
        .args([archive])
        .run()
        .success();
}

/// A database loaded with the pagila sample.
fn pagila(tag: &str) -> PgDb {
    let db = PgDb::new(tag);
    db.psql_file(&real("pagila-schema.sql"));
    db.psql_file(&real("pagila-rows.sql"));
    db
}

pub(crate) fn staging_schemas(db: &PgDb) -> usize {
    db.psql("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ferry\\_stage\\_%'")
        .trim()
        .parse()
        .expect("a count")
}

/// Runs a parallel import until its first table has committed in staging, then kills it
/// (SIGKILL: nothing of ferry's cleanup runs). Returns the tables it left committed.
pub(crate) fn kill_after_a_table_committed(ferry: Ferry, archive: &str, db: &PgDb) -> Vec<String> {
    kill_at(ferry, archive, db, "import:table-committed")
}

/// Runs a parallel import until it reaches `point`, then kills it; returns the tables it
/// left committed in staging.
fn kill_at(ferry: Ferry, archive: &str, db: &PgDb, point: &str) -> Vec<String> {
    let run = ferry
        .args([
            "import",
            archive,
            &db.url(),
            "--jobs",
            "2",
            "--trust-archive",
        ])
        .paused_at(point)
        .signal("KILL");
    assert_eq!(run.code(), None, "killed by the signal");
    db.wait_for_other_sessions_to_end();
    let kept = committed_in_staging(db);
    assert!(!kept.is_empty(), "a committed table is left in staging");
    kept
}

/// The name and relfilenode of the published table `schema.name`.
fn published(db: &PgDb, schema: &str, name: &str) -> String {
    db.psql(&format!(
        "SELECT c.relname || ' ' || c.relfilenode FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = '{schema}' AND c.relname = '{name}'"
    ))
    .trim()
    .to_owned()
}

/// Kills an import of `archive` after a table committed, resumes it, and checks the result
/// against an uninterrupted import into `reference`.
fn kill_resume_and_compare(dir: &TestDir, archive: &str, tag: &str, schema: &str) {
    kill_at_resume_and_compare(dir, archive, tag, schema, "import:table-committed", &|_| {});
}

/// The same, killed at `point`; `killed` looks at the target before the resume.
fn kill_at_resume_and_compare(
    dir: &TestDir,
    archive: &str,
    tag: &str,
    schema: &str,
    point: &str,
    killed: &dyn Fn(&PgDb),
) {
    let reference = PgDb::new(&format!("{tag}_ref"));
    let uninterrupted = dir
        .ferry()
        .args(["import", archive, &reference.url(), "--trust-archive"])
        .run()
        .success();
    let db = PgDb::new(tag);
    let kept = kill_at(dir.ferry(), archive, &db, point);
    killed(&db);
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0",
        "nothing is published before the import transaction commits"
    );

    let run = dir
        .ferry()
        .args(["import", "--resume", archive, &db.url(), "--trust-archive"])
        .run()
        .success()
        .says("--resume: kept");
    // A build the interrupted import committed is kept, never run again: run again, it
    // would fail on the object that exists (reported as skipped from a SQLite archive).
    let skipped = |r: &crate::harness::Run| -> Vec<String> {
        format!("{}{}", r.stdout(), r.stderr())
            .lines()
            .filter(|l| l.starts_with("skipped:"))
            .map(str::to_owned)
            .collect()
    };
    assert_same!(skipped(&run).join("\n"), skipped(&uninterrupted).join("\n"));
    for k in &kept {
        let name = k.split(' ').next().expect("a name");
        assert!(
            run.stderr().contains(name),
            "{name} named as kept: {}",
            run.stderr()
        );
        // Same relfilenode: moved into place as it was, not emptied and loaded again.
        assert_eq!(&published(&db, schema, name), k, "{}", run.stderr());
    }
    assert_eq!(staging_schemas(&db), 0, "nothing is left in staging");
    assert_same!(db.schema_dump(), reference.schema_dump());
    assert_same!(db.data_dump(), reference.data_dump());
}

#[test]
fn a_killed_import_of_a_sqlite_archive_resumes_and_ends_as_an_uninterrupted_one() {
    let dir = TestDir::new();
    export_chinook(&dir, "chinook");
    kill_resume_and_compare(&dir, "chinook", "resume_chinook", "public");
}

/// Indexes and keys are built on other connections than the one that loaded their table,
/// each in a transaction of its own that also records it. A resume must keep a build that
/// committed before the kill, and must not run it again (it would fail: the index exists).
#[test]
fn a_build_that_committed_before_the_kill_is_kept_by_the_resume_and_not_run_again() {
    let dir = TestDir::new();
    export_chinook(&dir, "chinook");
    kill_at_resume_and_compare(
        &dir,
        "chinook",
        "resume_built",
        "public",
        "import:build-committed",
        &|db| {
            let built: u32 = db
                .psql("SELECT count(*) FROM pg_indexes WHERE schemaname LIKE 'ferry\\_stage\\_%'")
                .trim()
                .parse()
                .expect("a count");
            assert!(
                built >= 1,
                "the killed import had committed a build in staging"
            );
        },
    );
}

#[test]
fn a_killed_import_of_a_postgres_tar_resumes_and_ends_as_an_uninterrupted_one() {
    let src = pagila("resume_pagila_src");
    let dir = TestDir::new();
    // Small parts, from parallel workers: a table's parts are interleaved with others' in
    // the tar, so some arrive after their table was committed.
    dir.ferry()
        .args([
            "export",
            &src.url(),
            "pagila.tar",
            "--jobs",
            "2",
            "--file-rows",
            "2000",
        ])
        .run()
        .success();
    kill_resume_and_compare(&dir, "pagila.tar", "resume_pagila", "public");
}

#[test]
fn a_resume_of_a_different_archive_reuses_nothing_and_loads_the_new_one() {
    let dir = TestDir::new();
    chinook_copy_exported(&dir, "before");
    let db = PgDb::new("resume_changed");
    kill_after_a_table_committed(dir.ferry(), "before", &db);

    // The source changes and is exported again: every table's data may differ.
    change_and_export(
        &dir,
        "UPDATE Album SET Title = Title || ' (remastered)'; UPDATE Artist SET Name = upper(Name);",
        "after",
    );
    let run = dir
        .ferry()
        .args(["import", "--resume", "after", &db.url()])
        .run()
        .success()
        .says("did not match this archive");
    assert!(!run.stderr().contains("--resume: kept"), "{}", run.stderr());
    let reference = PgDb::new("resume_changed_ref");
    dir.ferry()
        .args(["import", "after", &reference.url()])
        .run()
        .success();
    assert_same!(db.data_dump(), reference.data_dump());
    assert_eq!(staging_schemas(&db), 0);
}

#[test]
fn resume_is_refused_where_it_cannot_hold() {
    let dir = TestDir::new();
    dir.export_sample("app.tar");
    let db = PgDb::new("resume_flags");
    dir.ferry()
        .args([
            "import",
            "--resume",
            "app.tar",
            &db.url(),
            "--jobs-per-table",
            "2",
        ])
        .run()
        .fails_with(1)
        .says("--jobs-per-table");
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0"
    );
}

/// Runs a `--resume` import into a SQLite file until a part has committed, then kills it.
fn kill_sqlite_import_after_a_part(dir: &TestDir, archive: &str, target: &str) {
    let run = dir
        .ferry()
        .args(["import", "--resume", archive, target])
        .paused_at("import:part-committed")
        .signal("KILL");
    assert_eq!(run.code(), None, "killed by the signal");
    assert!(!dir.path(target).exists(), "nothing is published");
    assert!(
        dir.path(&format!("{target}.ferry-resume")).exists(),
        "the partial file stays"
    );
}

#[test]
fn a_killed_sqlite_import_resumes_from_its_partial_file_to_the_same_database() {
    let dir = TestDir::new();
    export_chinook(&dir, "chinook.tar");
    let src = pagila("resume_sqlite_pagila");
    dir.ferry()
        .args(["export", &src.url(), "pagila.tar", "--file-rows", "2000"])
        .run()
        .success();
    for archive in ["chinook.tar", "pagila.tar"] {
        let plain = format!("{archive}.plain.db");
        dir.ferry()
            .args(["import", archive, &plain])
            .run()
            .success();
        let resumed = format!("{archive}.resumed.db");
        kill_sqlite_import_after_a_part(&dir, archive, &resumed);
        dir.ferry()
            .args(["import", "--resume", archive, &resumed])
            .run()
            .success()
            .says("--resume: kept");
        assert!(!dir.path(&format!("{resumed}.ferry-resume")).exists());
        assert_same!(
            crate::sqlite_db::dump(&dir.path(&resumed)),
            crate::sqlite_db::dump(&dir.path(&plain))
        );
    }
}

#[test]
fn a_sqlite_resume_starts_over_on_another_archive_or_a_damaged_file() {
    let dir = TestDir::new();
    chinook_copy_exported(&dir, "before");
    kill_sqlite_import_after_a_part(&dir, "before", "out.db");
    change_and_export(
        &dir,
        "UPDATE Album SET Title = Title || ' (remastered)'",
        "after",
    );
    dir.ferry()
        .args(["import", "after", "fresh.db"])
        .run()
        .success();
    let run = dir
        .ferry()
        .args(["import", "--resume", "after", "out.db"])
        .run()
        .success()
        .says("it holds an import of another archive")
        .says("started over");
    assert!(!run.stderr().contains("--resume: kept"), "{}", run.stderr());
    assert_same!(
        crate::sqlite_db::dump(&dir.path("out.db")),
        crate::sqlite_db::dump(&dir.path("fresh.db"))
    );

    // A partial file cut short is not trusted either.
    kill_sqlite_import_after_a_part(&dir, "after", "cut.db");
    let partial = dir.path("cut.db.ferry-resume");
    let len = std::fs::metadata(&partial).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&partial)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    dir.ferry()
        .args(["import", "--resume", "after", "cut.db"])
        .run()
        .success()
        .says("could not be reused")
        .says("started over");
    assert_same!(
        crate::sqlite_db::dump(&dir.path("cut.db")),
        crate::sqlite_db::dump(&dir.path("fresh.db"))
    );
}

#[test]
fn a_failed_sqlite_resume_keeps_its_partial_file_and_says_so() {
    let dir = TestDir::new();
    export_chinook(&dir, "chinook");
    kill_sqlite_import_after_a_part(&dir, "chinook", "out.db");
    // The archive is damaged after the kill: the resume stops before publishing anything.
    let part = std::fs::read_dir(dir.path("chinook/data/t00011"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&part, bytes).unwrap();
    dir.ferry()
        .args(["import", "--resume", "chinook", "out.db"])
        .run()
        .fails_with(1)
        .says("checksum mismatch")
        .says("kept in")
        .says("out.db.ferry-resume");
    assert!(!dir.path("out.db").exists());
    assert!(dir.path("out.db.ferry-resume").exists());
}

/// Each table's files (path, rows, SHA-256) and content digest, from a directory archive's
/// manifest: what makes two exports the same archive.
fn tables_of(dir: &TestDir, archive: &str) -> Vec<String> {
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path(&format!("{archive}/manifest.json"))).unwrap(),
    )
    .unwrap();
    m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{} {} {}", t["name"], t["files"], t["content_digest"]))
        .collect()
}

/// Runs `export --resume` until a table is finished, then kills it.
fn kill_export_after_a_table(dir: &TestDir, source: &str, archive: &str) {
    let run = dir
        .ferry()
        .args(["export", "--resume", source, archive])
        .paused_at("export:table-done")
        .signal("KILL");
    assert_eq!(run.code(), None, "killed by the signal");
    assert!(!dir.path(archive).exists(), "no archive yet");
    assert!(dir.path(&format!("{archive}.ferry-resume")).is_dir());
}

#[test]
fn a_killed_sqlite_export_resumes_when_the_source_is_unchanged() {
    let dir = TestDir::new();
    std::fs::copy(real("chinook.sqlite"), dir.path("src.db")).unwrap();
    dir.ferry()
        .args(["export", "src.db", "fresh"])
        .run()
        .success();
    kill_export_after_a_table(&dir, "src.db", "out");
    dir.ferry()
        .args(["export", "--resume", "src.db", "out"])
        .run()
        .success()
        .says("the source is unchanged; kept 1 table(s)");
    assert!(!dir.path("out.ferry-resume").exists());
    // The same parts, byte for byte, as an uninterrupted export.
    assert_same!(tables_of(&dir, "out"), tables_of(&dir, "fresh"));
    dir.ferry().args(["verify", "out"]).run().success();

    // A part damaged in the staging directory is written again, not taken over.
    kill_export_after_a_table(&dir, "src.db", "again");
    // The one table finished: the largest, which the data pass takes first.
    let finished: Vec<_> = std::fs::read_dir(dir.path("again.ferry-resume/data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(finished.len(), 1, "{finished:?}");
    let part = finished[0].join("part-000000.parquet");
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&part, bytes).unwrap();
    let run = dir
        .ferry()
        .args(["export", "--resume", "src.db", "again"])
        .run()
        .success()
        .says("changed since the interrupted export wrote it; exported again");
    assert!(!run.stderr().contains("kept 1 table"), "{}", run.stderr());
    assert_same!(tables_of(&dir, "again"), tables_of(&dir, "fresh"));
}

#[test]
fn a_resumed_export_of_a_changed_source_starts_over() {
    let dir = TestDir::new();
    std::fs::copy(real("chinook.sqlite"), dir.path("src.db")).unwrap();
    kill_export_after_a_table(&dir, "src.db", "out");
    let conn = rusqlite::Connection::open(dir.path("src.db")).unwrap();
    conn.execute_batch("UPDATE Album SET Title = 'Changed' WHERE AlbumId = 1")
        .unwrap();
    drop(conn);
    let run = dir
        .ferry()
        .args(["export", "--resume", "src.db", "out"])
        .run()
        .success()
        .says("the source or the options changed since the interrupted export; it started over");
    assert!(!run.stderr().contains("kept"), "{}", run.stderr());
    dir.ferry()
        .args(["export", "src.db", "fresh"])
        .run()
        .success();
    assert_same!(tables_of(&dir, "out"), tables_of(&dir, "fresh"));

    // Only a directory archive can be continued; a PostgreSQL export says it starts over.
    dir.ferry()
        .args(["export", "--resume", "src.db", "out.tar"])
        .run()
        .fails_with(1)
        .says("--resume needs a directory archive");
    let pg = PgDb::new("resume_pg_export");
    pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    dir.ferry()
        .args(["export", "--resume", &pg.url(), "pg"])
        .run()
        .success()
        .says("cannot continue an interrupted one")
        .says("starts over");
}
