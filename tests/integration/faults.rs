//! Interruptions and kills: Ctrl-C (SIGINT) and SIGTERM at several points of an export and of
//! an import, into both engines and all three archive forms, and kill -9 followed by a rerun.
//!
//! After an interruption the target is as it was, byte for byte or dump for dump, with no
//! staging schema and no partial file, and the run says so in one line and exits 130. After
//! a kill -9 the leftovers are swept by the next run (or `ferry cleanup`), and never
//! exported as data.

use crate::harness::{TestDir, assert_same};
use crate::pg_db::PgDb;

fn app_db() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/app.db")
}

/// `app.tar` in the test directory, from `samples/app.db`.
fn export_app(dir: &TestDir) {
    dir.export_sample("app.tar");
}

fn staging_schemas(db: &PgDb) -> Vec<String> {
    db.psql("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ferry\\_stage\\_%' ORDER BY 1")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A parallel import of `app.tar` succeeds and leaves no staging schema.
fn rerun_leaves_nothing_over(dir: &TestDir, db: &PgDb) {
    dir.ferry()
        .args(["import", "app.tar", &db.url(), "--jobs", "2"])
        .run()
        .success();
    assert_same!(staging_schemas(db), Vec::<String>::new());
}

/// Entries of the test directory other than the ones a test made on purpose.
fn leftovers(dir: &TestDir, expected: &[&str]) -> Vec<String> {
    dir.entries()
        .into_iter()
        .filter(|e| !expected.contains(&e.as_str()))
        .collect()
}

/// Waits until no session other than ours is connected to `db`: the server ends a killed
/// client's session when it notices the closed socket, which takes a moment.
fn wait_for_sessions_to_end(db: &PgDb) {
    db.wait_for_other_sessions_to_end();
}

#[test]
fn interrupted_sqlite_exports_leave_no_archive_and_no_partial_file() {
    for archive in ["out", "out.tar", "-"] {
        for point in ["export:batch", "export:commit"] {
            for signal in ["INT", "TERM"] {
                let dir = TestDir::new();
                let run = dir
                    .ferry()
                    .args(["export"])
                    .args([app_db()])
                    .args([archive])
                    .paused_at(point)
                    .signal(signal)
                    .fails_with(130)
                    .says("ferry: interrupted; no archive was written");
                assert!(
                    !run.stderr().contains("error"),
                    "an interruption is not an error: {}",
                    run.stderr()
                );
                assert_same!(
                    leftovers(&dir, &[]),
                    Vec::<String>::new(),
                    "{archive} {point}"
                );
                if archive == "-" {
                    // A stream cannot be retracted; it must end without the manifest, which
                    // every reader refuses.
                    let stream = dir.path("stream.tar");
                    std::fs::write(&stream, &run.out.stdout).unwrap();
                    dir.ferry()
                        .args(["verify", "-"])
                        .stdin_file(&stream)
                        .run()
                        .fails_with(3);
                }
            }
        }
    }
}

#[test]
fn an_interrupted_postgres_export_leaves_no_archive() {
    let src = PgDb::new("intexp");
    src.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g;");
    for point in ["export:batch", "export:commit"] {
        let dir = TestDir::new();
        dir.ferry()
            .args(["export", &src.url(), "out.tar"])
            .paused_at(point)
            .signal("INT")
            .fails_with(130)
            .says("interrupted; no archive was written");
        assert_same!(leftovers(&dir, &[]), Vec::<String>::new(), "{point}");
    }
}

#[test]
fn an_interrupted_sqlite_import_leaves_the_target_as_it_was() {
    let dir = TestDir::new();
    export_app(&dir);
    std::fs::write(dir.path("old.db"), b"").unwrap();
    let before = std::fs::read(dir.path("old.db")).unwrap();
    for archive in ["app.tar", "-"] {
        for point in ["import:batch", "import:commit"] {
            // A new file, and a --replace of an existing one.
            for (target, extra) in [("new.db", None), ("old.db", Some("--replace"))] {
                let mut f = dir.ferry().args(["import", archive, target]);
                if let Some(x) = extra {
                    f = f.args([x]);
                }
                if archive == "-" {
                    f = f.stdin_file(&dir.path("app.tar"));
                }
                f.paused_at(point)
                    .signal("INT")
                    .fails_with(130)
                    .says("ferry: interrupted; nothing was changed");
                assert_same!(
                    leftovers(&dir, &["app.tar", "old.db"]),
                    Vec::<String>::new(),
                    "{archive} {point} {target}"
                );
                assert_eq!(std::fs::read(dir.path("old.db")).unwrap(), before);
            }
        }
    }
    // And the same import, uninterrupted, still works.
    dir.ferry()
        .args(["import", "app.tar", "new.db"])
        .run()
        .success();
}

#[test]
fn an_interrupted_postgres_import_changes_nothing_serial_or_parallel() {
    let dir = TestDir::new();
    export_app(&dir);
    let db = PgDb::new("intimp");
    // Something of the user's own, which must come through untouched.
    db.psql("CREATE TABLE keep (id int PRIMARY KEY); INSERT INTO keep VALUES (1), (2);");
    let (schema, data) = (db.schema_dump(), db.data_dump());
    dir.ferry()
        .args(["export", &db.url(), "before.tar"])
        .run()
        .success();
    for jobs in ["1", "2"] {
        for point in ["import:batch", "import:commit"] {
            dir.ferry()
                .args(["import", "app.tar", &db.url(), "--jobs", jobs])
                .paused_at(point)
                .signal("INT")
                .fails_with(130)
                .says("ferry: interrupted; nothing was changed");
            assert_same!(
                staging_schemas(&db),
                Vec::<String>::new(),
                "jobs {jobs} at {point}"
            );
            assert_same!(db.schema_dump(), schema, "jobs {jobs} at {point}");
            assert_same!(db.data_dump(), data, "jobs {jobs} at {point}");
        }
    }
    // A following export equals one made before.
    dir.ferry()
        .args(["export", &db.url(), "after.tar"])
        .run()
        .success();
    let tables = |archive: &str| {
        let run = dir
            .ferry()
            .args(["inspect", "--json", archive])
            .run()
            .success();
        let m: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
        (m["tables"].clone(), m["objects"].clone())
    };
    assert_same!(tables("after.tar"), tables("before.tar"));
    rerun_leaves_nothing_over(&dir, &db);
}

#[test]
fn a_killed_parallel_import_is_swept_by_the_next_run_and_never_exported() {
    let dir = TestDir::new();
    export_app(&dir);
    let db = PgDb::new("kill9");
    let run = dir
        .ferry()
        .args(["import", "app.tar", &db.url(), "--jobs", "2"])
        .paused_at("import:batch")
        .signal("KILL");
    assert_eq!(run.code(), None, "killed by the signal");
    wait_for_sessions_to_end(&db);
    let left = staging_schemas(&db);
    assert!(!left.is_empty(), "kill -9 leaves staging schemas behind");

    // An export of the database leaves them out, and says so.
    dir.ferry()
        .args(["export", &db.url(), "while.tar"])
        .run()
        .success()
        .says("left out")
        .says("ferry cleanup");
    let run = dir
        .ferry()
        .args(["inspect", "--json", "while.tar"])
        .run()
        .success();
    assert!(!run.stdout().contains("ferry_stage_"), "{}", run.stdout());

    // The next import drops them, and says so.
    dir.ferry()
        .args(["import", "app.tar", &db.url(), "--jobs", "2"])
        .run()
        .success()
        .says("left by an import that was killed");
    assert_same!(staging_schemas(&db), Vec::<String>::new());
}

#[test]
fn cleanup_drops_only_staging_schemas_whose_session_has_ended() {
    let dir = TestDir::new();
    export_app(&dir);
    let db = PgDb::new("cleanup");
    // A schema with a staging name but no owner record is not provably ferry's: kept.
    db.psql("CREATE SCHEMA ferry_stage_1_2_3");
    // A record without a start time (its writer could not see its own, under another role)
    // is judged by the pid alone: kept while a session has it (the checkpointer's here),
    // dropped once none has.
    let live_pid = db.psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'");
    db.psql(&format!(
        "CREATE SCHEMA ferry_stage_1_2_4; COMMENT ON SCHEMA ferry_stage_1_2_4 IS 'ferry staging; owner backend {} started ';
         CREATE SCHEMA ferry_stage_1_2_5; COMMENT ON SCHEMA ferry_stage_1_2_5 IS 'ferry staging; owner backend 2147483647 started ';",
        live_pid.trim()
    ));
    // A running import's schemas are kept while it runs.
    let running = dir
        .ferry()
        .args(["import", "app.tar", &db.url(), "--jobs", "2"])
        .paused_at("import:batch");
    // The import swept the dead one as it started.
    let live = staging_schemas(&db);
    assert!(live.len() > 3, "{live:?}");
    assert!(!live.contains(&"ferry_stage_1_2_5".to_owned()), "{live:?}");
    assert!(live.contains(&"ferry_stage_1_2_4".to_owned()), "{live:?}");
    dir.ferry()
        .args(["cleanup", &db.url()])
        .run()
        .success()
        .says("removed 0 leftover(s)");
    assert_same!(staging_schemas(&db), live);
    running.signal("KILL");
    wait_for_sessions_to_end(&db);
    let run = dir.ferry().args(["cleanup", &db.url()]).run().success();
    assert_same!(
        staging_schemas(&db),
        vec![
            "ferry_stage_1_2_3".to_owned(),
            "ferry_stage_1_2_4".to_owned()
        ]
    );
    assert!(
        run.stderr()
            .contains(&format!("removed {} leftover(s)", live.len() - 2))
    );
}

#[test]
fn a_killed_sqlite_run_leaves_partial_files_that_the_next_run_sweeps() {
    let dir = TestDir::new();
    // Export to a tar: a partial tar and a partial directory beside it.
    dir.ferry()
        .args(["export"])
        .args([app_db()])
        .args(["a.tar"])
        .paused_at("export:batch")
        .signal("KILL");
    let left = leftovers(&dir, &[]);
    assert!(
        !left.is_empty()
            && left
                .iter()
                .all(|e| e.starts_with(".ferry-") && e.ends_with(".partial")),
        "{left:?}"
    );
    // The next export into this directory sweeps them.
    export_app(&dir);
    assert_same!(leftovers(&dir, &["app.tar"]), Vec::<String>::new());

    // Import into SQLite: a partial database beside the target, swept by the next import.
    dir.ferry()
        .args(["import", "app.tar", "new.db"])
        .paused_at("import:batch")
        .signal("KILL");
    let left = leftovers(&dir, &["app.tar"]);
    assert!(
        left.len() == 1 && left[0].ends_with(".sqlite.partial"),
        "{left:?}"
    );
    dir.ferry()
        .args(["import", "app.tar", "new.db"])
        .run()
        .success();
    assert_same!(
        leftovers(&dir, &["app.tar", "new.db"]),
        Vec::<String>::new()
    );

    // `ferry cleanup DIR` does the same for a directory no run will visit again.
    dir.ferry()
        .args(["import", "app.tar", "other.db"])
        .paused_at("import:batch")
        .signal("KILL");
    assert_eq!(leftovers(&dir, &["app.tar", "new.db"]).len(), 1);
    dir.ferry()
        .args(["cleanup", "other.db"])
        .run()
        .success()
        .says(".sqlite.partial");
    assert_same!(
        leftovers(&dir, &["app.tar", "new.db"]),
        Vec::<String>::new()
    );
}

/// Terminates every session on `db` but the caller's, as an administrator or a failover would.
fn terminate_sessions(db: &PgDb) {
    db.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
}

/// The lines of a failed run's stderr that are ferry's report (the pause hook's line aside).
fn report_lines(run: &crate::harness::Run) -> Vec<String> {
    run.stderr()
        .lines()
        .filter(|l| !l.starts_with("ferry: paused at"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_server_terminating_the_connections_mid_copy_leaves_the_target_as_it_was() {
    let dir = TestDir::new();
    export_app(&dir);
    let db = PgDb::new("terminate");
    db.psql("CREATE TABLE keep (id int PRIMARY KEY); INSERT INTO keep VALUES (1);");
    let (schema, data) = (db.schema_dump(), db.data_dump());
    for jobs in ["1", "2"] {
        let paused = dir
            .ferry()
            .args(["import", "app.tar", &db.url(), "--jobs", jobs])
            .paused_at("import:batch");
        terminate_sessions(&db);
        let run = paused.resume().fails_with(1);
        let lines = report_lines(&run);
        assert_eq!(lines.len(), 1, "one line: {lines:?}");
        assert!(lines[0].starts_with("ferry: error: "), "{lines:?}");
        assert!(lines[0].contains("connection"), "{lines:?}");
        assert_same!(staging_schemas(&db), Vec::<String>::new(), "jobs {jobs}");
        assert_same!(db.schema_dump(), schema, "jobs {jobs}");
        assert_same!(db.data_dump(), data, "jobs {jobs}");
    }
    rerun_leaves_nothing_over(&dir, &db);
}

#[test]
fn two_imports_into_the_same_postgresql_database_at_once_publish_one() {
    let dir = TestDir::new();
    export_app(&dir);
    let reference = PgDb::new("twice_ref");
    dir.ferry()
        .args(["import", "app.tar", &reference.url()])
        .run()
        .success();
    let db = PgDb::new("twice");
    let first = dir
        .ferry()
        .args(["import", "app.tar", &db.url(), "--jobs", "1"])
        .paused_at("import:commit");
    // The second one waits on the first one's uncommitted tables, then finds them taken.
    let second = {
        let f = dir
            .ferry()
            .args(["import", "app.tar", &db.url(), "--jobs", "2"]);
        std::thread::spawn(move || f.run())
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    first.resume().success();
    let second = second.join().unwrap().fails_with(1);
    assert_eq!(report_lines(&second).len(), 1, "{}", second.stderr());
    assert_same!(staging_schemas(&db), Vec::<String>::new());
    assert_same!(db.schema_dump(), reference.schema_dump());
    assert_same!(db.data_dump(), reference.data_dump());
}

#[test]
fn two_imports_into_the_same_sqlite_file_at_once_publish_one() {
    let dir = TestDir::new();
    export_app(&dir);
    let first = dir
        .ferry()
        .args(["import", "app.tar", "new.db"])
        .paused_at("import:commit");
    dir.ferry()
        .args(["import", "app.tar", "new.db"])
        .run()
        .success();
    let published = std::fs::read(dir.path("new.db")).unwrap();
    let run = first.resume().fails_with(1).says("new.db: already exists");
    assert_eq!(report_lines(&run).len(), 1, "{}", run.stderr());
    assert_eq!(std::fs::read(dir.path("new.db")).unwrap(), published);
    assert_same!(
        leftovers(&dir, &["app.tar", "new.db"]),
        Vec::<String>::new()
    );
}

#[test]
fn a_read_only_postgresql_target_is_refused_in_one_line() {
    let dir = TestDir::new();
    export_app(&dir);
    let db = PgDb::new("readonly");
    db.psql(&format!(
        "ALTER DATABASE {} SET default_transaction_read_only = on",
        db.name
    ));
    for jobs in ["1", "2"] {
        let run = dir
            .ferry()
            .args(["import", "app.tar", &db.url(), "--jobs", jobs])
            .run()
            .fails_with(1)
            .says("read-only transaction");
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    }
    assert_same!(staging_schemas(&db), Vec::<String>::new());
    let tables = db.psql(
        "SET default_transaction_read_only = off; SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
    );
    assert_eq!(tables.trim(), "0");
}

/// A tmpfs mounted over a directory of the test, unmounted when dropped. Needs root (CI
/// runs as root; so does the development machine).
struct Mount {
    path: std::path::PathBuf,
}

impl Mount {
    fn tmpfs(path: std::path::PathBuf, options: &str) -> Mount {
        std::fs::create_dir_all(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "these tests mount a small tmpfs and need root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount { path }
    }

    fn remount(&self, options: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(ok.success());
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

/// A SQLite file of about 6 MB of incompressible data, and its archive.
fn incompressible(dir: &TestDir) {
    let conn = rusqlite::Connection::open(dir.path("big.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 60)
         INSERT INTO b SELECT i, randomblob(100000) FROM c;",
    )
    .unwrap();
    drop(conn);
    dir.ferry()
        .args(["export", "big.db", "big.tar"])
        .run()
        .success();
}

#[test]
fn a_full_disk_fails_in_one_line_and_leaves_nothing() {
    let dir = TestDir::new();
    incompressible(&dir);
    let small = Mount::tmpfs(dir.path("small"), "size=2m");
    for (args, what) in [
        (vec!["export", "big.db", "small/out.tar"], "export to a tar"),
        (
            vec!["export", "big.db", "small/out"],
            "export to a directory",
        ),
        (
            vec!["import", "big.tar", "small/new.db"],
            "import into SQLite",
        ),
    ] {
        let run = dir.ferry().args(&args).run().fails_with(1);
        assert_eq!(run.stderr().lines().count(), 1, "{what}: {}", run.stderr());
        assert!(
            run.stderr().contains("No space left on device")
                || run.stderr().contains("database or disk is full"),
            "{what}: {}",
            run.stderr()
        );
        assert_same!(small.entries(), Vec::<String>::new(), "{what}");
    }
}

#[test]
fn a_read_only_directory_fails_in_one_line_and_changes_nothing() {
    let dir = TestDir::new();
    export_app(&dir);
    let ro = Mount::tmpfs(dir.path("ro"), "size=8m");
    std::fs::write(dir.path("ro/old.db"), b"the old file").unwrap();
    ro.remount("ro");
    for (args, what) in [
        (vec!["export", "app.tar", "ro/out.tar"], "export"),
        (vec!["import", "app.tar", "ro/new.db"], "import"),
        (
            vec!["import", "app.tar", "ro/old.db", "--replace"],
            "replace",
        ),
    ] {
        let mut args = args;
        if what == "export" {
            // Export reads a database: use the sample.
            args = vec!["export"];
            let run = dir
                .ferry()
                .args(&args)
                .args([app_db()])
                .args(["ro/out.tar"])
                .run()
                .fails_with(1)
                .says("Read-only file system");
            assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
        } else {
            let run = dir
                .ferry()
                .args(&args)
                .run()
                .fails_with(1)
                .says("Read-only file system");
            assert_eq!(run.stderr().lines().count(), 1, "{what}: {}", run.stderr());
        }
        assert_same!(ro.entries(), vec!["old.db".to_owned()], "{what}");
        assert_eq!(
            std::fs::read(dir.path("ro/old.db")).unwrap(),
            b"the old file"
        );
    }
}

/// Entries of a temporary directory that a process with this pid made.
fn temp_leftovers_of(tmp: &std::path::Path, pid: u32) -> Vec<String> {
    let prefix = format!(".ferry-{pid}-");
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[test]
fn kill_9_in_every_container_form_leaves_only_what_the_next_run_sweeps() {
    let dir = TestDir::new();
    export_app(&dir);
    // Export to a directory: a partial directory beside it, swept by the next export there.
    let killed = dir
        .ferry()
        .args(["export"])
        .args([app_db()])
        .args(["out"])
        .paused_at("export:batch");
    killed.signal("KILL");
    let left = leftovers(&dir, &["app.tar"]);
    assert!(
        left.len() == 1 && left[0].ends_with(".partial") && !dir.path("out").exists(),
        "{left:?}"
    );
    dir.ferry()
        .args(["export"])
        .args([app_db()])
        .args(["out"])
        .run()
        .success();
    assert_same!(leftovers(&dir, &["app.tar", "out"]), Vec::<String>::new());

    // Export to stdout: its parts are staged in the temporary directory. A private one, so
    // that other tests' runs (which sweep the shared one) cannot remove them first.
    let tmp = dir.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let tmp_s = tmp.to_string_lossy().into_owned();
    let killed = dir
        .ferry()
        .env("TMPDIR", &tmp_s)
        .args(["export"])
        .args([app_db()])
        .args(["-"])
        .paused_at("export:batch");
    let pid = killed.pid();
    killed.signal("KILL");
    assert!(
        !temp_leftovers_of(&tmp, pid).is_empty(),
        "a staging directory in the temp dir"
    );
    // Import from stdin: its spool directory is in the temporary directory too.
    let killed = dir
        .ferry()
        .env("TMPDIR", &tmp_s)
        .args(["import", "-", "new.db"])
        .stdin_file(&dir.path("app.tar"))
        .paused_at("import:batch");
    let pid2 = killed.pid();
    killed.signal("KILL");
    assert!(
        !temp_leftovers_of(&tmp, pid2).is_empty(),
        "a spool directory in the temp dir"
    );
    // The next stream import sweeps both (their processes are gone), and succeeds.
    dir.ferry()
        .env("TMPDIR", &tmp_s)
        .args(["import", "-", "new.db"])
        .stdin_file(&dir.path("app.tar"))
        .run()
        .success();
    assert_same!(temp_leftovers_of(&tmp, pid), Vec::<String>::new());
    assert_same!(temp_leftovers_of(&tmp, pid2), Vec::<String>::new());
    assert_same!(
        leftovers(&dir, &["app.tar", "out", "new.db", "tmp"]),
        Vec::<String>::new()
    );
}

#[test]
fn an_interrupted_verify_exits_130_not_as_a_damaged_archive() {
    let dir = TestDir::new();
    export_app(&dir);
    let run = dir
        .ferry()
        .args(["verify", "app.tar"])
        .paused_at("verify:part")
        .signal("INT")
        .fails_with(130);
    assert_eq!(report_lines(&run), vec!["ferry: interrupted".to_owned()]);
}
