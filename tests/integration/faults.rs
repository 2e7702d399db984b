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
    dir.ferry()
        .args(["export"])
        .args([app_db()])
        .args(["app.tar"])
        .run()
        .success();
}

fn staging_schemas(db: &PgDb) -> Vec<String> {
    db.psql("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ferry\\_stage\\_%' ORDER BY 1")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
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
    for _ in 0..200 {
        let n = db.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        if n.trim() == "0" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the killed run's sessions never ended");
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
    // And a rerun succeeds with nothing left over.
    dir.ferry()
        .args(["import", "app.tar", &db.url(), "--jobs", "2"])
        .run()
        .success();
    assert_same!(staging_schemas(&db), Vec::<String>::new());
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
    // A running import's schemas are kept while it runs.
    let running = dir
        .ferry()
        .args(["import", "app.tar", &db.url(), "--jobs", "2"])
        .paused_at("import:batch");
    let live = staging_schemas(&db);
    assert!(live.len() > 1, "{live:?}");
    dir.ferry()
        .args(["cleanup", &db.url()])
        .run()
        .success()
        .says("removed 0 leftover(s)");
    assert_same!(staging_schemas(&db), live);
    running.signal("KILL");
    wait_for_sessions_to_end(&db);
    let run = dir.ferry().args(["cleanup", &db.url()]).run().success();
    assert_same!(staging_schemas(&db), vec!["ferry_stage_1_2_3".to_owned()]);
    assert!(
        run.stderr()
            .contains(&format!("removed {} leftover(s)", live.len() - 1))
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
