//! SQLite → archive → SQLite: exact round trips, verify --against, target handling.

use crate::harness::{TestDir, assert_archive_manifests_valid, assert_same, edit_manifests};
use crate::sqlite_db::{build_torture, dump};

fn sha(path: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Each batch after the first is read into builders sized from the one before; batches of
/// one row take that path for every column the torture database has, mixed ones included.
#[test]
fn batches_of_one_row_round_trip_exactly() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    dir.ferry()
        .args(["export", "src.db", "a", "--batch-rows", "1"])
        .run()
        .success();
    dir.ferry().args(["import", "a", "copy.db"]).run().success();
    assert_same!(
        dump(&dir.path("copy.db")),
        dump(&dir.path("src.db")),
        "batches of one row"
    );
}

/// The data pass takes the largest table first, so that an importer reading the tar (or
/// the stream) starts on it at once; the manifest and the summary keep the schema's order.
#[test]
fn the_largest_table_comes_first_in_a_tar_and_the_manifest_keeps_the_schema_order() {
    let dir = TestDir::new();
    let conn = rusqlite::Connection::open(dir.path("src.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE small (id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE wide (id INTEGER PRIMARY KEY, v BLOB);
         CREATE TABLE many (id INTEGER PRIMARY KEY, v INTEGER);
         INSERT INTO small VALUES (1, 'a'), (2, 'b');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
           INSERT INTO wide SELECT i, randomblob(4096) FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
           INSERT INTO many SELECT i, i * 7 FROM n;",
    )
    .unwrap();
    drop(conn);
    let run = dir
        .ferry()
        .args(["export", "src.db", "a.tar"])
        .run()
        .success();
    // wide holds about 200 KB, many about 16 KB, small a few bytes.
    let mut ar = tar::Archive::new(std::fs::File::open(dir.path("a.tar")).unwrap());
    let data: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .filter(|p| p.starts_with("data/"))
        .collect();
    let manifest = assert_archive_manifests_valid(&dir.path("a.tar"));
    let tables: Vec<(&str, &str)> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tables.iter().map(|t| t.0).collect::<Vec<_>>(),
        ["small", "wide", "many"]
    );
    let order: Vec<&str> = data
        .iter()
        .map(|p| tables.iter().find(|t| p.contains(t.1)).unwrap().0)
        .collect();
    assert_eq!(order, ["wide", "many", "small"], "{data:?}");
    let summary = run.stderr();
    let at = |name: &str| summary.find(&format!("\n{name} ")).expect(name);
    assert!(
        at("small") < at("wide") && at("wide") < at("many"),
        "the summary lists tables in the schema's order:\n{summary}"
    );
    dir.ferry()
        .args(["import", "a.tar", "copy.db"])
        .run()
        .success();
    assert_same!(dump(&dir.path("copy.db")), dump(&dir.path("src.db")));
}

/// A stream is written at zstd level 1 unless `--zstd-level` says otherwise, a file at
/// level 3; the manifest records the level used, and the stream still imports exactly.
#[test]
fn a_stream_defaults_to_zstd_level_1_and_records_the_level_used() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    let level = |archive: &str| {
        assert_archive_manifests_valid(&dir.path(archive))["options"]["zstd_level"].clone()
    };
    let stream_to = |name: &str, extra: &[&str]| {
        let out = std::fs::File::create(dir.path(name)).unwrap();
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .current_dir(dir.root())
            .args(["-q", "export", "src.db", "-"])
            .args(extra)
            .env_remove("FERRY_LOG")
            .stdout(out)
            .status()
            .expect("spawn ferry");
        assert!(status.success(), "export {name}: {status}");
    };
    stream_to("stream.tar", &[]);
    stream_to("stream7.tar", &["--zstd-level", "7"]);
    dir.ferry()
        .args(["-q", "export", "src.db", "file.tar"])
        .run()
        .success();
    assert_eq!(level("stream.tar"), 1);
    assert_eq!(level("stream7.tar"), 7);
    assert_eq!(level("file.tar"), 3);
    dir.ferry()
        .args(["import", "-", "copy.db"])
        .stdin_file(&dir.path("stream.tar"))
        .run()
        .success();
    assert_same!(dump(&dir.path("copy.db")), dump(&dir.path("src.db")));
}

#[test]
fn torture_database_round_trips_exactly_in_every_container_form() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    let before = sha(&dir.path("src.db"));
    let expected = dump(&dir.path("src.db"));

    for (archive, restored) in [("dir", "from-dir.db"), ("a.tar", "from-tar.db")] {
        dir.ferry()
            .args(["export", "src.db", archive])
            .run()
            .success();
        assert_archive_manifests_valid(&dir.path(archive));
        // The default check is quick_check; --full-check also looks up every index entry.
        let (flags, check): (&[&str], _) = if archive == "dir" {
            (&[], "quick_check ok")
        } else {
            (&["--full-check"], "integrity_check ok")
        };
        dir.ferry()
            .args(["import", archive, restored])
            .args(flags)
            .run()
            .success()
            .says(check);
        assert_same!(dump(&dir.path(restored)), expected, "through {archive}");
    }
    let (export, import) = dir
        .ferry()
        .args(["export", "sqlite://src.db", "-"])
        .pipe(dir.ferry().args(["import", "-", "sqlite://from-pipe.db"]));
    export.success();
    import.success();
    assert_same!(dump(&dir.path("from-pipe.db")), expected, "through a pipe");

    assert_eq!(sha(&dir.path("src.db")), before, "the source was modified");
    let mut left = dir.entries();
    left.retain(|e| e.starts_with('.'));
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
fn manifest_records_schema_hints_and_mixed_columns() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    dir.ferry().args(["export", "src.db", "a"]).run().success();
    let m = assert_archive_manifests_valid(&dir.path("a"));
    let table = |name: &str| {
        m["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("table {name} missing"))
            .clone()
    };
    let names: Vec<&str> = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("docs_")),
        "FTS shadow tables exported: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("sqlite_")),
        "internal tables exported: {names:?}"
    );

    let plain = table("plain");
    assert_eq!(plain["rowid"], "rowid");
    assert_eq!(plain["columns"][0]["type"]["kind"], "sqlite_value");
    assert_eq!(plain["columns"][1]["type"]["kind"], "sqlite_value");
    assert_eq!(plain["columns"][4]["type"]["kind"], "sqlite_value");
    assert_eq!(plain["columns"][5]["hint"], "numeric(10,2)");
    let st = table("st");
    assert_eq!(st["properties"]["strict"], true);
    assert_eq!(st["columns"][1]["type"]["kind"], "int64");
    assert_eq!(st["columns"][2]["type"]["kind"], "float64");
    assert!(
        st.get("rowid").is_none(),
        "INTEGER PRIMARY KEY carries the rowid"
    );
    assert_eq!(table("wr")["properties"]["without_rowid"], true);
    assert_eq!(table("auto")["properties"]["sqlite_sequence"], 5);
    assert_eq!(table("hasrowid")["rowid"], "_rowid_");
    assert_eq!(table("docs")["kind"], "virtual");
    let generated = &table("gen")["columns"];
    assert_eq!(generated[4]["generated"]["expression"], "price * qty");
    assert_eq!(generated[4]["generated"]["stored"], true);
    assert_eq!(generated[5]["generated"]["stored"], false);
    assert_eq!(generated[1]["collation"], "NOCASE");
    assert_eq!(generated[6]["hint"], "timestamp");
    let gen_table = table("gen");
    let checks: Vec<&str> = gen_table["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["expression"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["price >= 0", "length(name) < 50"]);
    let fk = &table("child")["foreign_keys"][0];
    assert_eq!(fk["ref_table"], "parent");
    assert_eq!(fk["on_delete"], "CASCADE");
    assert_eq!(fk["on_update"], "SET NULL");
    assert_eq!(m["settings"]["user_version"], 42);
    assert_eq!(m["settings"]["application_id"], 1718183538);
    assert_eq!(m["settings"]["journal_mode"], "wal");

    let mixed = m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["table"] == "plain" && w["column"] == "a")
        .expect("a warning for plain.a");
    assert_eq!(mixed["code"], "mixed_types");
    assert_eq!(mixed["details"]["integer"], 1);
    assert_eq!(mixed["details"]["real"], 2);
    assert_eq!(mixed["details"]["text"], 4);
    assert_eq!(mixed["details"]["blob"], 1);
    assert_eq!(mixed["details"]["null"], 1);
    let utf8 = m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["table"] == "plain" && w["column"] == "d")
        .expect("a warning for plain.d");
    assert_eq!(utf8["code"], "invalid_utf8");
    let objects: Vec<String> = m["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    for o in [
        "index parent_code",
        "index child_note_partial",
        "index gen_lower_name",
        "view child_names",
        "view v2",
        "trigger child_audit",
    ] {
        assert!(
            objects.contains(&o.to_owned()),
            "{o} missing from {objects:?}"
        );
    }
}

#[test]
fn verify_against_matches_source_and_copy_and_catches_one_changed_value() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    dir.ferry()
        .args(["export", "src.db", "a.tar"])
        .run()
        .success();
    dir.ferry()
        .args(["import", "a.tar", "copy.db"])
        .run()
        .success();
    for db in ["src.db", "copy.db"] {
        dir.ferry()
            .args(["verify", "a.tar", "--against", db])
            .run()
            .success()
            .says("matches it");
    }
    let conn = rusqlite::Connection::open(dir.path("copy.db")).unwrap();
    conn.execute("UPDATE st SET r = 1.2500000000000002 WHERE id = 1", [])
        .unwrap();
    drop(conn);
    let run = dir
        .ferry()
        .args(["verify", "a.tar", "--against", "copy.db"])
        .run()
        .fails_with(3);
    // The digest says that the table differs; the located line says where.
    assert_eq!(
        run.stdout().trim(),
        "table st: same row count (4) but different content\n\
         table st, row id=1: column r: database 1.2500000000000002, archive 1.25"
    );

    // A storage class changed (the text '5' where the integer 5 was), and, in a table keyed
    // by its rowid, a row replaced by another.
    let conn = rusqlite::Connection::open(dir.path("copy.db")).unwrap();
    conn.execute_batch(
        "UPDATE st SET r = 1.25, x = '1' WHERE id = 1;
         DELETE FROM plain WHERE rowid = 1000;
         INSERT INTO plain(rowid, a) VALUES (1001, 'other');",
    )
    .unwrap();
    drop(conn);
    let run = dir
        .ferry()
        .args(["verify", "a.tar", "--against", "copy.db"])
        .run()
        .fails_with(3);
    let out = run.stdout();
    for line in [
        "table st, row id=1: column x: database '1', archive 1",
        "table plain, row rowid=1001: only in the database",
        "table plain, row rowid=1000: only in the archive",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
}

/// A digest of a kind this version cannot recompute (an archive from a newer ferry) is a
/// difference, not a pass, and the other tables are still compared.
#[test]
fn verify_against_reports_a_digest_it_cannot_recompute_and_checks_the_rest() {
    let dir = TestDir::new();
    dir.export_sample("a");
    dir.ferry().args(["import", "a", "copy.db"]).run().success();
    edit_manifests(&dir.path("a"), |m| {
        for t in m["tables"].as_array_mut().unwrap() {
            if t["name"] == "users" && t.get("content_digest").is_some() {
                t["content_digest"] = "sqlite-v9:00".into();
            }
        }
    });
    let conn = rusqlite::Connection::open(dir.path("copy.db")).unwrap();
    conn.execute(
        "DELETE FROM events WHERE rowid = (SELECT max(rowid) FROM events)",
        [],
    )
    .unwrap();
    drop(conn);
    let run = dir
        .ferry()
        .args(["verify", "a", "--against", "copy.db"])
        .run()
        .fails_with(3);
    let out = run.stdout();
    assert!(
        out.contains(
            "table users: its content digest is of a kind this version of ferry cannot recompute"
        ),
        "{out}"
    );
    assert!(out.contains("table events: "), "{out}");
}

#[test]
fn an_existing_target_is_refused_unless_replace_which_keeps_a_backup() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    dir.ferry().args(["export", "src.db", "a"]).run().success();
    std::fs::write(dir.path("target.db"), b"old content").unwrap();
    dir.ferry()
        .args(["import", "a", "target.db"])
        .run()
        .fails_with(1)
        .says("target.db: already exists; pass --replace");
    assert_eq!(
        std::fs::read(dir.path("target.db")).unwrap(),
        b"old content"
    );

    dir.ferry()
        .args(["import", "a", "target.db", "--replace"])
        .run()
        .success()
        .says("is kept as");
    let backups: Vec<String> = dir
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("target.db.bak-"))
        .collect();
    assert_eq!(backups.len(), 1, "{:?}", dir.entries());
    assert_eq!(
        std::fs::read(dir.path(&backups[0])).unwrap(),
        b"old content"
    );
    assert_same!(dump(&dir.path("target.db")), dump(&dir.path("src.db")));
}

#[test]
fn replace_refuses_anything_but_a_regular_file() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    dir.ferry().args(["export", "src.db", "a"]).run().success();
    std::fs::create_dir(dir.path("adir")).unwrap();
    std::fs::write(dir.path("real.db"), b"keep me").unwrap();
    std::os::unix::fs::symlink(dir.path("real.db"), dir.path("link.db")).unwrap();
    let fifo = dir.path("fifo.db");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for (target, kind) in [
        ("adir", "a directory"),
        ("link.db", "a symbolic link"),
        ("fifo.db", "a FIFO"),
        ("/dev/null", "a device"),
    ] {
        dir.ferry()
            .args(["import", "a", target, "--replace"])
            .run()
            .fails_with(1)
            .says(&format!(
                "not a regular file ({kind}); --replace replaces only a database file"
            ));
    }
    assert!(dir.path("adir").is_dir());
    assert!(
        std::fs::symlink_metadata(dir.path("link.db"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(dir.path("real.db")).unwrap(), b"keep me");
    assert!(
        !dir.entries().iter().any(|e| e.contains(".bak-")),
        "{:?}",
        dir.entries()
    );
    let null = std::fs::metadata("/dev/null").unwrap().file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&null));
}

#[test]
fn a_failed_import_leaves_no_target_and_no_temp_file() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    dir.ferry()
        .args(["export", "src.db", "good.tar"])
        .run()
        .success();
    // Damage the last data entry's content: the tar still parses, the rows may even load,
    // but the checksum at the end cannot match, so nothing may be published.
    let mut bytes = std::fs::read(dir.path("good.tar")).unwrap();
    let manifest_at = bytes
        .windows(13)
        .rposition(|w| w == b"manifest.json")
        .unwrap();
    bytes[manifest_at - 1000] ^= 0x55;
    std::fs::write(dir.path("bad.tar"), &bytes).unwrap();
    let before = dir.entries();
    dir.ferry()
        .args(["import", "bad.tar", "new.db"])
        .run()
        .fails_with(1)
        .says("new.db");
    assert_eq!(
        dir.entries(),
        before,
        "the failed import left something behind"
    );

    // The same from stdin.
    dir.ferry()
        .args(["import", "-", "new.db"])
        .stdin_file(&dir.path("bad.tar"))
        .run()
        .fails_with(1);
    assert_eq!(dir.entries(), before);
}

#[test]
fn clear_errors_for_a_missing_source_and_a_non_database() {
    let dir = TestDir::new();
    dir.ferry()
        .args(["export", "nope.db", "a"])
        .run()
        .fails_with(1)
        .says("nope.db: no such SQLite database file");
    std::fs::write(dir.path("text.db"), "this is not a database, just text").unwrap();
    let run = dir
        .ferry()
        .args(["export", "text.db", "a"])
        .run()
        .fails_with(1)
        .says("text.db: not a SQLite database");
    assert_eq!(
        run.stderr().lines().count(),
        1,
        "one line: {}",
        run.stderr()
    );
    assert!(!dir.path("a").exists());
}

#[test]
fn triggers_do_not_fire_during_the_load() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    dir.ferry().args(["export", "src.db", "a"]).run().success();
    dir.ferry().args(["import", "a", "b.db"]).run().success();
    let conn = rusqlite::Connection::open(dir.path("b.db")).unwrap();
    let audit: i64 = conn
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(audit, 1, "only the audit row of the source");
    // And the trigger still works afterwards.
    conn.execute("INSERT INTO child VALUES (10, 2, 'new')", [])
        .unwrap();
    let audit: i64 = conn
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(audit, 2);
    let next: i64 = conn
        .query_row(
            "INSERT INTO auto(v) VALUES ('next') RETURNING id",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        next, 6,
        "AUTOINCREMENT continues from the source's sqlite_sequence"
    );
    let hits: i64 = conn
        .query_row(
            "SELECT count(*) FROM docs WHERE docs MATCH 'boats'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hits, 1, "the FTS index works after import");
}

#[test]
fn the_dump_sees_storage_classes_and_bit_patterns() {
    // Guards the comparison itself: the dump must tell -0.0 from 0.0, TEXT from BLOB, and
    // show the rowids of tables without an INTEGER PRIMARY KEY.
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    let d = dump(&dir.path("src.db"));
    for needle in [
        "real -0e0 (8000000000000000)",
        "real 5e-324 (0000000000000001)",
        "text bytes 610062",
        "text bytes c328ff",
        "int 9223372036854775807",
        "int -9223372036854775808",
        "blob 3000000 bytes",
        "int 1000 | text \"big\"",
        "real inf (7ff0000000000000)",
        "table sqlite_stat1",
        "int 100 | text \"user rowid\"",
    ] {
        assert!(d.contains(needle), "dump lacks {needle:?}:\n{d}");
    }
}

/// The golden archive in samples/ was written by an earlier ferry. If a format change stops
/// this ferry from reading it, this test fails: old archives must stay importable.
#[test]
fn the_golden_sample_archive_still_imports_exactly() {
    let dir = TestDir::new();
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let archive = samples.join("app.archive");
    let db = samples.join("app.db");
    dir.ferry()
        .args(["verify".as_ref(), archive.as_os_str()])
        .run()
        .success();
    dir.ferry()
        .args([
            "import".as_ref(),
            archive.as_os_str(),
            dir.path("restored.db").as_os_str(),
        ])
        .run()
        .success();
    assert_same!(dump(&dir.path("restored.db")), dump(&db));
    dir.ferry()
        .args([
            "verify".as_ref(),
            archive.as_os_str(),
            "--against".as_ref(),
            dir.path("restored.db").as_os_str(),
        ])
        .run()
        .success();
}

#[test]
fn progress_is_plain_lines_for_logs_and_silent_when_not_a_terminal() {
    let dir = TestDir::new();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/app.db");
    let run = dir
        .ferry()
        .args([
            "--progress".as_ref(),
            "plain".as_ref(),
            "export".as_ref(),
            sample.as_os_str(),
            "a".as_ref(),
        ])
        .run()
        .success();
    let err = run.stderr();
    for needle in [
        "progress: users: started (50 rows)",
        "progress: users: done, 50 rows in",
        "progress: events: done, 2000 rows in",
    ] {
        assert!(err.contains(needle), "{needle:?} missing:\n{err}");
    }
    // Not a terminal: the default shows no bars and writes no control characters.
    let run = dir.ferry().args(["import", "a", "b.db"]).run().success();
    assert!(
        !run.stderr().contains("progress:") && !run.stderr().contains('\u{1b}'),
        "{}",
        run.stderr()
    );
}

/// A writer commits pairs of rows (one in each table, one transaction) into a WAL database
/// while ferry exports it: every archive must hold as many rows in one table as in the
/// other, which only a single read transaction over both tables guarantees.
#[test]
fn export_is_one_consistent_snapshot_while_another_process_writes() {
    let dir = TestDir::new();
    let db = dir.path("live.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE a (id INTEGER PRIMARY KEY, pad BLOB);
             CREATE TABLE b (id INTEGER PRIMARY KEY, pad BLOB);",
        )
        .unwrap();
        let tx = c.unchecked_transaction().unwrap();
        for _ in 0..20_000 {
            tx.execute("INSERT INTO a (pad) VALUES (zeroblob(100))", [])
                .unwrap();
            tx.execute("INSERT INTO b (pad) VALUES (zeroblob(100))", [])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            let mut pairs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.execute_batch(
                    "BEGIN; INSERT INTO a (pad) VALUES (x'00'); INSERT INTO b (pad) VALUES (x'00'); COMMIT;",
                )
                .unwrap();
                pairs += 1;
            }
            pairs
        })
    };
    for i in 0..3 {
        let out = format!("snap{i}");
        dir.ferry()
            .args([
                "--progress",
                "none",
                "export",
                "--jobs",
                "1",
                "live.db",
                &out,
            ])
            .run()
            .success();
        let d = digests_of(&dir.path(&out));
        assert_eq!(d["a"], d["b"], "archive {out} mixes two moments: {d:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let pairs = writer.join().unwrap();
    assert!(pairs > 0, "the writer never ran");
}

fn digests_of(archive: &std::path::Path) -> std::collections::HashMap<String, u64> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("manifest.json")).unwrap()).unwrap();
    m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn jobs_beyond_eight_per_core_are_refused_with_one_line() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    dir.ferry().args(["export", "src.db", "ok"]).run().success();
    for args in [
        vec!["export", "src.db", "a", "--jobs", "100000"],
        vec!["import", "ok", "b.db", "--jobs", "100000"],
    ] {
        let run = dir
            .ferry()
            .args(&args)
            .run()
            .fails_with(1)
            .says("--jobs 100000 is more than 8 per core");
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    }
    assert!(!dir.path("a").exists() && !dir.path("b.db").exists());
}

#[test]
fn a_locked_source_is_reported_as_locked_not_as_damaged() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    let holder = rusqlite::Connection::open(dir.path("src.db")).unwrap();
    holder
        .execute_batch("PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE;")
        .unwrap();
    let run = dir
        .ferry()
        .args(["export", "src.db", "a"])
        .run()
        .fails_with(1)
        .says("the database is locked by another connection");
    assert!(
        !run.stderr().contains("not a SQLite database"),
        "{}",
        run.stderr()
    );
    assert!(!dir.path("a").exists());
    holder.execute_batch("COMMIT").unwrap();
}

#[test]
fn flags_that_do_not_apply_are_refused_not_ignored() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    dir.ferry().args(["export", "src.db", "a"]).run().success();
    for (args, said) in [
        (
            vec!["export", "src.db", "b", "--schema", "app"],
            "--schema does not apply to a SQLite source",
        ),
        (
            vec!["import", "a", "c.db", "--clean"],
            "--clean does not apply to a SQLite target: to replace an existing file, use --replace",
        ),
        (
            vec!["import", "a", "c.db", "--target-schema", "x"],
            "--target-schema does not apply to a SQLite target",
        ),
        (
            vec!["import", "a", "c.db", "--strict"],
            "--strict does not apply to a SQLite target",
        ),
        (
            vec!["import", "a", "c.db", "--data-only"],
            "c.db: no such database; --data-only loads into an existing database",
        ),
        (
            vec!["import", "a", "c.db", "--data-only", "--strict"],
            "--strict does not apply to --data-only into SQLite",
        ),
    ] {
        let run = dir.ferry().args(&args).run().fails_with(1).says(said);
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    }
    assert!(!dir.path("b").exists() && !dir.path("c.db").exists());
}

#[test]
fn control_characters_in_names_are_escaped_in_human_output_and_exact_in_json() {
    let dir = TestDir::new();
    let evil = "t\u{1b}[31mred\r\nskipped: forged";
    rusqlite::Connection::open(dir.path("src.db"))
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE \"{evil}\" (a INTEGER); INSERT INTO \"{evil}\" VALUES (1);"
        ))
        .unwrap();
    let export = dir.ferry().args(["export", "src.db", "a"]).run().success();
    let inspect = dir.ferry().args(["inspect", "a"]).run().success();
    for out in [export.stderr(), inspect.stdout()] {
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out:?}");
        assert!(out.contains(r"t\u{1b}[31mred\r\nskipped: forged"), "{out}");
        assert!(
            !out.lines().any(|l| l.starts_with("skipped: forged")),
            "{out}"
        );
    }
    let json = dir.ferry().args(["inspect", "a", "--json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
    assert!(
        v.to_string()
            .contains(&serde_json::to_string(evil).unwrap()[1..20])
    );
    // An error that names the table: one line, escaped.
    std::fs::write(dir.path("taken.db"), b"x").unwrap();
    let run = dir
        .ferry()
        .args(["import", "a", "taken.db"])
        .run()
        .fails_with(1);
    assert_eq!(run.stderr().lines().count(), 1);
}

/// Runs ferry under `umask` (the harness's builder cannot set one).
fn ferry_with_umask(dir: &TestDir, umask: &str, args: &str) {
    let status = std::process::Command::new("sh")
        .current_dir(dir.root())
        .args([
            "-c",
            &format!("umask {umask} && exec \"$0\" {args}"),
            env!("CARGO_BIN_EXE_ferry"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "ferry {args}");
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn new_files_take_the_umask_and_a_replaced_database_keeps_its_mode_and_owner() {
    use std::os::unix::fs::MetadataExt;
    let dir = TestDir::new();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/app.db");
    std::fs::copy(&sample, dir.path("app.db")).unwrap();
    ferry_with_umask(&dir, "002", "-q export app.db app.tar");
    ferry_with_umask(&dir, "002", "-q export app.db app");
    ferry_with_umask(&dir, "002", "-q import app.tar a.db");
    ferry_with_umask(&dir, "022", "-q import app.tar b.db");
    assert_eq!(mode(&dir.path("app.tar")), 0o664);
    assert_eq!(mode(&dir.path("app")), 0o775);
    assert_eq!(mode(&dir.path("a.db")), 0o664);
    assert_eq!(mode(&dir.path("b.db")), 0o644);

    // A database shared with a group (mode 0640, another group): --replace keeps both.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path("b.db"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(dir.path("b.db"), None, Some(4242)).unwrap();
    ferry_with_umask(&dir, "077", "-q import app.tar b.db --replace");
    assert_eq!(mode(&dir.path("b.db")), 0o640);
    assert_eq!(std::fs::metadata(dir.path("b.db")).unwrap().gid(), 4242);
}

#[test]
fn boolean_columns_of_zeros_and_ones_are_arrow_booleans_and_stay_integers() {
    let dir = TestDir::new();
    rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, done BOOLEAN, active BOOL NOT NULL,
                             level BOOLEAN, word BOOLEAN);
             INSERT INTO t VALUES (1, 1, 0, 2, 'yes'), (2, 0, 1, 0, 'no'), (3, NULL, 1, 1, NULL);",
        )
        .unwrap();
    dir.ferry()
        .args(["export", "app.db", "a", "-q"])
        .run()
        .success();
    let m = assert_archive_manifests_valid(&dir.path("a"));
    let kind = |col: &str| kind_of(&m, col);
    assert_eq!(kind("done"), "boolean");
    assert_eq!(kind("active"), "boolean");
    assert_eq!(kind("level"), "int64", "a 2 is not a flag");
    assert_eq!(kind("word"), "text");
    // Back into SQLite: the INTEGERs 0 and 1, storage class and all; pyarrow sees booleans.
    let seen = back_and_read(
        &dir,
        &m,
        "print(t.schema.field('done').type, t.column('done').to_pylist())",
    );
    assert_eq!(seen, "bool [True, False, None]\n");
    // Into PostgreSQL: boolean columns.
    let pg = crate::pg_db::PgDb::new("flags");
    dir.ferry()
        .args(["import", "a", &pg.url(), "-q"])
        .run()
        .success();
    assert_eq!(
        pg.psql(
            "SELECT string_agg(format('%s:%s:%s', done, active, level), ' ' ORDER BY id) FROM t"
        )
        .trim(),
        "t:f:2 f:t:0 :t:1"
    );
    dir.ferry()
        .args(["verify", "a", "--against", &pg.url()])
        .run()
        .success();
}

#[test]
fn datetime_text_in_sqlites_own_form_is_an_arrow_timestamp_and_prints_back_the_same() {
    let dir = TestDir::new();
    rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME, fine TIMESTAMP, day DATE,
                              mixed DATETIME, zoned DATETIME);
             INSERT INTO ev VALUES
               (1, '2024-05-01 13:45:00', '2024-05-01 13:45:00.5', '2024-05-01',
                '2024-05-01 13:45:00', '2024-05-01 13:45:00+02:00'),
               (2, '1999-12-31 23:59:59', '0001-01-01 00:00:00.000001', '0001-01-01',
                '2024-05-01T13:45:00', '2024-05-01 13:45:00Z'),
               (3, NULL, NULL, NULL, NULL, NULL);",
        )
        .unwrap();
    dir.ferry()
        .args(["export", "app.db", "a", "-q"])
        .run()
        .success();
    let m = assert_archive_manifests_valid(&dir.path("a"));
    let kind = |col: &str| kind_of(&m, col);
    assert_eq!(kind("at"), "timestamp");
    assert_eq!(kind("fine"), "timestamp");
    assert_eq!(kind("day"), "date");
    assert_eq!(kind("mixed"), "text", "two forms of writing a time");
    assert_eq!(kind("zoned"), "text", "a zone");
    // Back into SQLite: the same TEXT, byte for byte; pyarrow sees timestamps and dates.
    let seen = back_and_read(
        &dir,
        &m,
        "print(t.schema.field('at').type, t.schema.field('day').type); \
         print(t.column('fine')[0].as_py(), t.column('day')[1].as_py())",
    );
    assert_eq!(
        seen,
        "timestamp[us] date32[day]\n2024-05-01 13:45:00.500000 0001-01-01\n"
    );
    // Into PostgreSQL: timestamp and date columns, and verify agrees.
    let pg = crate::pg_db::PgDb::new("stamps");
    dir.ferry()
        .args(["import", "a", &pg.url(), "-q"])
        .run()
        .success();
    assert_eq!(
        pg.psql("SELECT string_agg(format('%s|%s|%s', at, fine, day), ' ; ' ORDER BY id) FROM ev")
            .trim(),
        "2024-05-01 13:45:00|2024-05-01 13:45:00.5|2024-05-01 ; \
         1999-12-31 23:59:59|0001-01-01 00:00:00.000001|0001-01-01 ; ||"
    );
    dir.ferry()
        .args(["verify", "a", "--against", &pg.url()])
        .run()
        .success();
}

/// The logical type kind of column `col` of the manifest's first table.
fn kind_of(m: &serde_json::Value, col: &str) -> String {
    m["tables"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == col)
        .unwrap()["type"]["kind"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Imports archive `a` into `b.db`, checks it equals `app.db` exactly, and returns what
/// `print_` (Python, with the first part of the first table as `t`) printed.
fn back_and_read(dir: &TestDir, m: &serde_json::Value, print_: &str) -> String {
    dir.ferry()
        .args(["import", "a", "b.db", "-q"])
        .run()
        .success();
    assert_same!(dump(&dir.path("b.db")), dump(&dir.path("app.db")));
    let part = dir
        .path("a")
        .join(m["tables"][0]["files"][0]["path"].as_str().unwrap());
    crate::harness::python(
        &format!("import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]); {print_}"),
        &part,
    )
}

/// Foreign-key violations the source carried (SQLite does not enforce keys unless asked)
/// are reported by the import exactly as `PRAGMA foreign_key_check` finds them in the
/// source: ferry checks the common key (a column referring to a rowid) with its own query,
/// so every corner of SQLite's matching is here, beside keys the pragma still checks.
#[test]
fn foreign_key_violations_are_reported_exactly_as_the_pragma_finds_them() {
    let dir = TestDir::new();
    let src = dir.path("src.db");
    let c = rusqlite::Connection::open(&src).unwrap();
    c.execute_batch(
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE p (id INTEGER PRIMARY KEY, x);
         INSERT INTO p VALUES (1, 0), (2, 0);
         -- One key per column, each checked against p's rowid; values of every class.
         CREATE TABLE c (a, b TEXT, r REAL, i INTEGER,
             FOREIGN KEY (a) REFERENCES p (id), FOREIGN KEY (b) REFERENCES p,
             FOREIGN KEY (r) REFERENCES p (id), FOREIGN KEY (i) REFERENCES p (id));
         INSERT INTO c (a) VALUES (1), ('1'), (1.0), (1.5), ('1.0'), (x'01'), ('abc'), (' 1'),
             ('01'), (3), (NULL), (2.0000000001), ('2e0'), (9223372036854775807), (-0.0);
         INSERT INTO c (b) VALUES (1), ('1'), ('1.0'), ('abc'), ('2 ');
         INSERT INTO c (r) VALUES (1), (1.5), ('1'), (2e0);
         INSERT INTO c (i) VALUES ('1'), ('x'), (2), (5);
         -- A table that refers to itself.
         CREATE TABLE tree (id INTEGER PRIMARY KEY, up INTEGER REFERENCES tree (id));
         INSERT INTO tree VALUES (1, NULL), (2, 1), (3, 7), (4, 4);
         CREATE INDEX tree_up ON tree (up);
         -- Keys the pragma checks: a parent whose key is not the rowid, a WITHOUT ROWID
         -- child, two columns, a missing parent, a column that shadows the rowid.
         CREATE TABLE q (k INT PRIMARY KEY);
         INSERT INTO q VALUES (1);
         CREATE TABLE wr (id TEXT PRIMARY KEY, q INTEGER REFERENCES q (k),
             p INTEGER REFERENCES p) WITHOUT ROWID;
         INSERT INTO wr VALUES ('a', 1, 1), ('b', 2, 5);
         CREATE TABLE mp (a, b, PRIMARY KEY (a, b));
         INSERT INTO mp VALUES (1, 2);
         CREATE TABLE m (a, b, x REFERENCES nosuch (id), FOREIGN KEY (a, b) REFERENCES mp (a, b));
         INSERT INTO m VALUES (1, 2, NULL), (1, 3, 7);
         CREATE TABLE s (n INTEGER, oid INTEGER REFERENCES p (id));
         INSERT INTO s VALUES (1, 99), (2, 1);",
    )
    .unwrap();
    let mut expected: Vec<String> = c
        .prepare("SELECT \"table\", rowid, parent, fkid FROM pragma_foreign_key_check")
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "table {}, rowid {}: no matching row in {} (foreign key {})",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?
                    .map_or("-".into(), |i| i.to_string()),
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(c);
    assert!(
        expected.len() > 15,
        "the source has violations: {expected:?}"
    );
    dir.ferry().args(["export", "src.db", "a"]).run().success();
    let run = dir.ferry().args(["import", "a", "b.db"]).run().success();
    let prefix = "warning: foreign key violation carried over from the source: ";
    let mut reported: Vec<String> = run
        .stderr()
        .lines()
        .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        .collect();
    expected.sort();
    reported.sort();
    assert_same!(reported, expected);
}

/// Rows go into SQLite many to a statement, as many as SQLite's 32 766 parameters allow: a
/// table of 1999 columns (one short of SQLite's limit, which a dump's rowid needs) loads 16
/// rows to a statement, and the rows left over one by one.
#[test]
fn the_widest_table_sqlite_allows_round_trips() {
    let dir = TestDir::new();
    let cols: Vec<String> = (1..1999).map(|i| format!("c{i}")).collect();
    let conn = rusqlite::Connection::open(dir.path("wide.db")).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE wide (id INTEGER PRIMARY KEY, {});",
        cols.join(", ")
    ))
    .unwrap();
    for row in 1..=40 {
        let values: Vec<String> = (1..1999).map(|i| (row * i).to_string()).collect();
        conn.execute_batch(&format!(
            "INSERT INTO wide VALUES ({row}, {});",
            values.join(", ")
        ))
        .unwrap();
    }
    drop(conn);
    dir.ferry().args(["export", "wide.db", "a"]).run().success();
    dir.ferry().args(["import", "a", "copy.db"]).run().success();
    assert_same!(
        dump(&dir.path("copy.db")),
        dump(&dir.path("wide.db")),
        "the wide table"
    );
}
