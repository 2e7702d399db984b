//! The whole "ship part of a database" story as users tell it: one user's data out of a
//! multi-user PostgreSQL app into the SQLite schema the desktop app ships, in two commands,
//! with a JSON report; and reports that say FAIL when a run fails.

use std::collections::BTreeSet;
use std::path::Path;

use crate::harness::TestDir;
use crate::pg_db::PgDb;

const APP: &str = "
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE clients (id serial PRIMARY KEY, user_id integer NOT NULL REFERENCES users(id), name text NOT NULL);
CREATE TABLE records (id serial PRIMARY KEY, client_id integer NOT NULL REFERENCES clients(id), user_id integer NOT NULL REFERENCES users(id), title text, data jsonb);
CREATE TABLE entries (id serial PRIMARY KEY, record_id integer NOT NULL REFERENCES records(id), user_id integer NOT NULL REFERENCES users(id), amount numeric(12,2), at timestamptz NOT NULL);
CREATE TABLE notes (id serial PRIMARY KEY, client_id integer REFERENCES clients(id), user_id integer NOT NULL REFERENCES users(id), body text);
CREATE TABLE currencies (code text PRIMARY KEY, name text NOT NULL);
CREATE INDEX records_user ON records (user_id);
INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 12) g;
INSERT INTO clients (user_id, name) SELECT (g % 12) + 1, 'client ' || g FROM generate_series(1, 60) g;
INSERT INTO records (client_id, user_id, title, data)
    SELECT c.id, c.user_id, 'record ' || g, jsonb_build_object('n', g) FROM generate_series(1, 300) g JOIN clients c ON c.id = (g % 60) + 1;
INSERT INTO entries (record_id, user_id, amount, at)
    SELECT r.id, r.user_id, g * 1.25, '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 hour' FROM generate_series(1, 900) g JOIN records r ON r.id = (g % 300) + 1;
INSERT INTO notes (client_id, user_id, body)
    SELECT CASE WHEN g % 4 = 0 THEN NULL ELSE c.id END, c.user_id, 'note ' || g FROM generate_series(1, 120) g JOIN clients c ON c.id = (g % 60) + 1;
INSERT INTO currencies VALUES ('EUR', 'Euro'), ('USD', 'US dollar'), ('JPY', 'Yen');
";

/// The desktop app's own schema: no users, no user_id anywhere, its own defaults.
const DESKTOP: &str = "
CREATE TABLE clients (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);
CREATE TABLE records (id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL REFERENCES clients(id), title TEXT, data JSON);
CREATE TABLE entries (id INTEGER PRIMARY KEY, record_id INTEGER NOT NULL REFERENCES records(id), amount TEXT, at TEXT NOT NULL);
CREATE TABLE notes (id INTEGER PRIMARY KEY, client_id INTEGER REFERENCES clients(id), body TEXT, pinned INTEGER NOT NULL DEFAULT 0);
CREATE TABLE currencies (code TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE schema_migrations (version TEXT PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('20260101');
";

fn ids_pg(db: &PgDb, sql: &str) -> BTreeSet<String> {
    db.psql(sql)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn ids_sqlite(path: &Path, sql: &str) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn report_schema() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/spec/report.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn valid_report(text: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let v = report_schema();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "report invalid: {errors:?}\n{doc:#}");
    doc
}

#[test]
fn one_users_data_moves_from_postgresql_into_the_desktop_apps_sqlite_schema() {
    let dir = TestDir::new();
    let pg = PgDb::new("oneuser");
    pg.psql(APP);
    let desktop = dir.path("desktop.db");
    rusqlite::Connection::open(&desktop)
        .unwrap()
        .execute_batch(DESKTOP)
        .unwrap();

    dir.ferry()
        .args([
            "export",
            &pg.url(),
            "a.tar",
            "--subset",
            "users:email = 'user5@example.com'",
            "--exclude-column",
            "*.user_id",
            "-T",
            "users",
        ])
        .run()
        .success();
    dir.ferry()
        .args([
            "import",
            "--data-only",
            "a.tar",
            "desktop.db",
            "--report",
            "r.json",
        ])
        .run()
        .success();

    // Every row of that user, and no row of another.
    let uid = "(SELECT id FROM users WHERE email = 'user5@example.com')";
    for (table, of_user) in [
        (
            "clients",
            format!("SELECT id::text FROM clients WHERE user_id = {uid}"),
        ),
        (
            "records",
            format!("SELECT id::text FROM records WHERE user_id = {uid}"),
        ),
        (
            "entries",
            format!("SELECT id::text FROM entries WHERE user_id = {uid}"),
        ),
        (
            "notes",
            format!("SELECT id::text FROM notes WHERE user_id = {uid}"),
        ),
    ] {
        let want = ids_pg(&pg, &of_user);
        assert!(!want.is_empty(), "{table}: the fixture gives the user rows");
        let got = ids_sqlite(&desktop, &format!("SELECT CAST(id AS TEXT) FROM {table}"));
        similar_asserts::assert_eq!(want, got, "{table}");
    }
    // The lookup table whole; values through the mapping; the app's own rows untouched.
    let q = |sql: &str| ids_sqlite(&desktop, sql).into_iter().collect::<Vec<_>>();
    assert_eq!(
        q("SELECT group_concat(code, ',') FROM (SELECT code FROM currencies ORDER BY code)"),
        ["EUR,JPY,USD"]
    );
    assert_eq!(q("SELECT version FROM schema_migrations"), ["20260101"]);
    assert_eq!(q("SELECT DISTINCT CAST(pinned AS TEXT) FROM notes"), ["0"]);
    assert_eq!(q("SELECT CAST(count(*) AS TEXT) FROM records WHERE json_valid(data) AND json_extract(data, '$.n') > 0").len(), 1);
    let fk = q("SELECT \"table\" FROM pragma_foreign_key_check");
    assert!(fk.is_empty(), "{fk:?}");
    // AUTOINCREMENT's counter passed the loaded ids.
    assert_eq!(
        q(
            "SELECT CAST((SELECT seq FROM sqlite_sequence WHERE name = 'clients') >= (SELECT max(id) FROM clients) AS TEXT)"
        ),
        ["1"]
    );
    // A backup of the file as it was.
    let backups: Vec<String> = std::fs::read_dir(dir.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("desktop.db.bak-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let before = dir.path(&backups[0]);
    assert_eq!(
        ids_sqlite(&before, "SELECT CAST(count(*) AS TEXT) FROM clients"),
        BTreeSet::from(["0".to_owned()])
    );

    // The report: PASS, counts that match the user's rows, every check run.
    let doc = valid_report(&std::fs::read_to_string(dir.path("r.json")).unwrap());
    assert_eq!(doc["overall_status"], "PASS");
    assert_eq!(doc["command"], "import");
    let clients = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "clients")
        .unwrap();
    let n = ids_pg(
        &pg,
        &format!("SELECT id::text FROM clients WHERE user_id = {uid}"),
    )
    .len();
    assert_eq!(clients["loaded_rows"], n);
    assert_eq!(clients["match"], true);
    let checks: Vec<(String, String)> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for name in [
        "foreign_key_check",
        "integrity_check",
        "json_valid",
        "row_counts",
    ] {
        assert!(
            checks.contains(&(name.to_owned(), "PASS".to_owned())),
            "{name}: {checks:?}"
        );
    }
}

#[test]
fn reports_validate_and_say_fail_when_the_run_fails() {
    let dir = TestDir::new();
    let pg = PgDb::new("report");
    pg.psql(APP);
    // Export and verify reports, the latter on stdout.
    dir.ferry()
        .args(["export", &pg.url(), "all", "--report", "export.json"])
        .run()
        .success();
    let doc = valid_report(&std::fs::read_to_string(dir.path("export.json")).unwrap());
    assert_eq!(doc["overall_status"], "PASS");
    assert_eq!(doc["tables"].as_array().unwrap().len(), 6);
    let run = dir
        .ferry()
        .args(["verify", "all", "--report", "-"])
        .run()
        .success();
    let doc = valid_report(&run.stdout());
    assert_eq!(doc["overall_status"], "PASS");
    assert!(run.stderr().contains("ok:"), "{}", run.stderr());

    // A data-only import the target cannot take: refused, nothing changed, FAIL, exit 1.
    let desktop = dir.path("desktop.db");
    rusqlite::Connection::open(&desktop)
        .unwrap()
        .execute_batch("CREATE TABLE clients (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
        .unwrap();
    dir.ferry()
        .args([
            "import",
            "--data-only",
            "all",
            "desktop.db",
            "--report",
            "fail.json",
        ])
        .run()
        .fails_with(1)
        .says("not in the target");
    let doc = valid_report(&std::fs::read_to_string(dir.path("fail.json")).unwrap());
    assert_eq!(doc["overall_status"], "FAIL");
    assert!(
        doc["error"].as_str().unwrap().contains("not in the target"),
        "{doc:#}"
    );
    assert_eq!(doc["endpoints"]["target"], "desktop.db");
    assert!(
        !std::fs::read_dir(dir.root()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".bak-")),
        "a refused import keeps no backup"
    );

    // A verify that finds damage: FAIL, with the exit code of a mismatch.
    let part = std::fs::read_dir(dir.path("all/data"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read_dir(&part)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let run = dir
        .ferry()
        .args(["verify", "all", "--report", "v.json"])
        .run();
    assert_ne!(run.code(), Some(0));
    let doc = valid_report(&std::fs::read_to_string(dir.path("v.json")).unwrap());
    assert_eq!(doc["overall_status"], "FAIL");
    assert!(
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "checksums" && c["status"] == "FAIL")
    );
}

#[test]
fn a_conflict_rule_of_the_target_cannot_swallow_rows_silently() {
    let dir = TestDir::new();
    rusqlite::Connection::open(dir.path("src.db"))
        .unwrap()
        .execute_batch("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO tags VALUES (1, 'a'), (2, 'b');")
        .unwrap();
    dir.ferry().args(["export", "src.db", "a"]).run().success();
    // The application's table replaces on conflict, and already holds a row with name 'b'.
    rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .execute_batch("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE ON CONFLICT REPLACE); INSERT INTO tags VALUES (9, 'b');")
        .unwrap();
    dir.ferry()
        .args(["import", "--data-only", "a", "app.db"])
        .run()
        .fails_with(1)
        .says("UNIQUE constraint failed: tags.name");
    let kept: i64 = rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM tags WHERE id = 9", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 1, "the application's row is still there");
}

#[test]
fn partitions_load_into_the_desktop_table_that_holds_them() {
    let dir = TestDir::new();
    let pg = PgDb::new("parts");
    pg.psql(
        "CREATE TABLE measure (id integer, at date NOT NULL, v numeric(6,2), PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE measure_2025 PARTITION OF measure FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE measure_2026 PARTITION OF measure FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         INSERT INTO measure VALUES (1, '2025-03-01', 1.50), (2, '2026-03-01', 2.25), (3, '2026-04-01', NULL);",
    );
    dir.ferry().args(["export", &pg.url(), "m"]).run().success();
    rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE measure (id INTEGER, at TEXT NOT NULL, v TEXT, PRIMARY KEY (id, at));",
        )
        .unwrap();
    dir.ferry()
        .args(["import", "--data-only", "m", "app.db", "--no-backup"])
        .run()
        .success()
        .says("public.measure_2026 (into measure)");
    let rows = ids_sqlite(
        &dir.path("app.db"),
        "SELECT id || '|' || at || '|' || coalesce(v, '-') FROM measure",
    );
    let want: BTreeSet<String> = ["1|2025-03-01|1.50", "2|2026-03-01|2.25", "3|2026-04-01|-"]
        .into_iter()
        .map(String::from)
        .collect();
    similar_asserts::assert_eq!(want, rows);
}

#[test]
fn import_verify_compares_the_target_with_the_archive_and_reports_it() {
    let dir = TestDir::new();
    rusqlite::Connection::open(dir.path("src.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n REAL, b BLOB);
             INSERT INTO t VALUES (1, 'a', 1.5, x'00'), (2, NULL, -0.25, NULL);",
        )
        .unwrap();
    dir.ferry()
        .args(["export", "src.db", "a.tar"])
        .run()
        .success();
    let pg = PgDb::new("importverify");
    for (target, report) in [("copy.db".to_owned(), "s.json"), (pg.url(), "p.json")] {
        dir.ferry()
            .args(["import", "a.tar", &target, "--verify", "--report", report])
            .run()
            .success()
            .says("matches the archive");
        let doc = valid_report(&std::fs::read_to_string(dir.path(report)).unwrap());
        assert_eq!(doc["overall_status"], "PASS");
        assert!(
            doc["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "against" && c["status"] == "PASS"),
            "{doc:#}"
        );
    }
    dir.ferry()
        .args(["import", "-", "x.db", "--verify"])
        .stdin_file(&dir.path("a.tar"))
        .run()
        .fails_with(1)
        .says("give an archive path, not -");
}

#[test]
fn every_value_error_names_the_rows_key() {
    let dir = TestDir::new();
    // PostgreSQL → PostgreSQL, data only, into a narrower column: the same-engine encoder.
    let src = PgDb::new("rowkey_src");
    src.psql(
        "CREATE TABLE t (tenant int, code text, n int, PRIMARY KEY (tenant, code));
         INSERT INTO t VALUES (1, 'a', 5), (2, 'b', 70000);",
    );
    dir.ferry()
        .args(["export", &src.url(), "pg", "-q"])
        .run()
        .success();
    let dst = PgDb::new("rowkey_dst");
    dst.psql("CREATE TABLE t (tenant int, code text, n smallint, PRIMARY KEY (tenant, code));");
    dir.ferry()
        .args(["import", "pg", &dst.url(), "--data-only"])
        .run()
        .fails_with(1)
        .says("70000 does not fit smallint (row with tenant = 2, code = b)");
    assert_eq!(dst.psql("SELECT count(*) FROM t").trim(), "0");
    // SQLite → PostgreSQL, data only, into a column that cannot hold text.
    rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE u (id INTEGER PRIMARY KEY, n);
             INSERT INTO u VALUES (1, 1), (7, 'seven');",
        )
        .unwrap();
    dir.ferry()
        .args(["export", "app.db", "lite", "-q"])
        .run()
        .success();
    let dst2 = PgDb::new("rowkey_dst2");
    dst2.psql("CREATE TABLE u (id bigint PRIMARY KEY, n integer);");
    dir.ferry()
        .args(["import", "lite", &dst2.url(), "--data-only"])
        .run()
        .fails_with(1)
        .says("(row with id = 7)");
}
