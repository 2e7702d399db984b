//! Across engines: SQLite archives into PostgreSQL, through the documented mapping.

use crate::harness::TestDir;
use crate::pg_db::PgDb;

const APP: &str = r#"
CREATE TABLE accounts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  active BOOLEAN NOT NULL DEFAULT 1,
  flagged BOOLEAN DEFAULT 'false',
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  CHECK (active IN (0, 1))
);
CREATE TABLE docs (
  id TEXT PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  parent_id TEXT REFERENCES docs(id),
  body JSON,
  attachment BLOB,
  size INTEGER CHECK (size >= 0),
  price NUMERIC(10,2),
  published_at DATETIME,
  created_ms TIMESTAMP,
  julian DATETIME,
  day DATE,
  updated DATETIME DEFAULT (datetime('now')),
  code VARCHAR(8)
);
CREATE INDEX docs_account ON docs(account_id) WHERE parent_id IS NULL;
CREATE VIEW active_accounts AS SELECT id, name FROM accounts WHERE active = 1;
INSERT INTO accounts (name, active, flagged, created_at) VALUES
  ('ann', 1, 'true', '2024-01-02 03:04:05'),
  ('bob', 0, 'false', '2024-01-02T03:04:05.5Z'),
  ('cy', 1, NULL, '2024-01-02T05:04:05+02:00');
DELETE FROM accounts WHERE id = 3;
INSERT INTO accounts (name) VALUES ('dee');
INSERT INTO docs VALUES
  ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1, NULL, '{"k": [1, 2]}', X'00FF00', 10, 12.5,
   '2024-03-04 05:06:07', 1709528767123, 2460373.5, '2024-03-04', '2024-03-04 00:00:00', 'abc'),
  ('child', 2, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL, NULL, 0, 3,
   '2024-03-04T05:06:07Z', 1709528767000, 2460374.25, '2024-03-05', NULL, NULL);
"#;

fn sqlite(path: &std::path::Path, sql: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

#[test]
fn an_app_database_moves_to_postgresql_value_by_value() {
    let dir = TestDir::new();
    sqlite(&dir.path("app.db"), APP);
    dir.ferry()
        .args(["export", "app.db", "app"])
        .run()
        .success();
    let pg = PgDb::new("cross");
    let run = dir
        .ferry()
        .args(["import", "app", &pg.url()])
        .run()
        .success();
    let types = pg.psql(
        "SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
         WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    );
    for want in [
        "accounts.id bigint",
        "accounts.active boolean",
        "accounts.flagged boolean",
        "accounts.created_at timestamp without time zone",
        "docs.id text",
        "docs.account_id bigint",
        "docs.body jsonb",
        "docs.attachment bytea",
        "docs.size integer",
        "docs.price numeric",
        "docs.published_at timestamp without time zone",
        "docs.created_ms timestamp without time zone",
        "docs.julian timestamp without time zone",
        "docs.day date",
        "docs.code character varying",
    ] {
        assert!(
            types.lines().any(|l| l == want),
            "{want} missing from:\n{types}"
        );
    }
    // Row 4 took its created_at from the translated CURRENT_TIMESTAMP default in SQLite.
    assert_eq!(
        pg.psql("SELECT id, name, active, flagged, CASE WHEN id = 4 THEN created_at > '2025-01-01' ELSE NULL END, CASE WHEN id < 4 THEN created_at::text END FROM accounts ORDER BY id"),
        "1|ann|t|t||2024-01-02 03:04:05\n2|bob|f|f||2024-01-02 03:04:05.5\n4|dee|t|f|t|\n"
    );
    assert_eq!(
        pg.psql(
            "SELECT id, account_id, coalesce(parent_id, '-'), coalesce(body::text, '-'), coalesce(encode(attachment, 'hex'), '-'),
                    size, price, published_at, created_ms, julian, day, coalesce(code, '-')
             FROM docs ORDER BY id"
        ),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|1|-|{\"k\": [1, 2]}|00ff00|10|12.50|2024-03-04 05:06:07|2024-03-04 05:06:07.123|2024-03-04 00:00:00|2024-03-04|abc\n\
         child|2|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|-|-|0|3.00|2024-03-04 05:06:07|2024-03-04 05:06:07|2024-03-04 18:00:00|2024-03-05|-\n"
    );
    // Proof across engines: the archive, converted by the documented mapping, is what the
    // database holds.
    let verified = dir
        .ferry()
        .args(["verify", "app", "--against", &pg.url()])
        .run()
        .success();
    assert!(
        verified
            .stderr()
            .contains("columns \"body\" are compared by row count only"),
        "{}",
        verified.stderr()
    );
    pg.psql("UPDATE docs SET size = 11 WHERE size = 10");
    let changed = dir
        .ferry()
        .args(["verify", "app", "--against", &pg.url()])
        .run()
        .fails_with(3);
    assert!(
        changed
            .stdout()
            .contains("table \"public\".\"docs\": same row count (2) but different content"),
        "{}",
        changed.stdout()
    );
    pg.psql("UPDATE docs SET size = 10 WHERE size = 11");
    // numeric is compared by value (12.50 in a numeric(10,2) column is the archive's 12.5),
    // so a changed amount is caught too.
    pg.psql("UPDATE docs SET price = 12.51 WHERE price = 12.50");
    dir.ferry()
        .args(["verify", "app", "--against", &pg.url()])
        .run()
        .fails_with(3)
        .says("table \"public\".\"docs\": same row count (2) but different content");
    pg.psql("UPDATE docs SET price = 12.50 WHERE price = 12.51");
    // The application's next insert works: identity past max(id) and past sqlite_sequence.
    // Its created_at comes from the translated CURRENT_TIMESTAMP: UTC, in whole seconds as
    // SQLite stores it (PostgreSQL's now() has microseconds).
    assert_eq!(
        pg.psql(
            "INSERT INTO accounts (name) VALUES ('eve') RETURNING id, active, \
             created_at = date_trunc('second', created_at), \
             abs(extract(epoch from created_at - (now() AT TIME ZONE 'UTC'))) < 2"
        )
        .trim(),
        "5|t|t|t"
    );
    assert_eq!(
        pg.psql(
            "INSERT INTO docs (id, account_id) VALUES ('late', 5) \
             RETURNING updated = date_trunc('second', updated)"
        )
        .trim(),
        "t"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM active_accounts").trim(), "3");
    // Constraints and indexes came along.
    let constraints = pg.psql(
        "SELECT conname || ' ' || contype::text FROM pg_constraint WHERE conrelid IN ('accounts'::regclass, 'docs'::regclass) ORDER BY 1",
    );
    for c in [
        "docs_parent_id_fkey f",
        "docs_account_id_fkey f",
        "docs_pkey p",
        "accounts_pkey p",
    ] {
        assert!(constraints.contains(c), "{c} missing:\n{constraints}");
    }
    assert!(
        pg.psql("SELECT indexdef FROM pg_indexes WHERE indexname = 'docs_account'")
            .contains("WHERE (parent_id IS NULL)")
    );
    let err = pg.psql_err("INSERT INTO docs (id, account_id, size) VALUES ('neg', 1, -1)");
    assert!(err.contains("check constraint"), "{err}");
    let err = pg.psql_err("INSERT INTO docs (id, account_id) VALUES ('orphan', 99)");
    assert!(err.contains("foreign key"), "{err}");
    assert!(
        run.stderr()
            .contains("converted: docs.created_ms: integer dates read as unix epoch milliseconds"),
        "{}",
        run.stderr()
    );
}

#[test]
fn three_sqlite_databases_into_one_postgresql_database_one_schema_each() {
    let dir = TestDir::new();
    let pg = PgDb::new("tenants");
    for (i, tenant) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let db = dir.path(&format!("{tenant}.db"));
        sqlite(
            &db,
            &format!(
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                 INSERT INTO items (name) VALUES ('{tenant}-1'), ('{tenant}-2');
                 INSERT INTO items (name) SELECT name || '-x' FROM items LIMIT {i};"
            ),
        );
        dir.ferry()
            .args(["export".as_ref(), db.as_os_str(), tenant.as_ref()])
            .run()
            .success();
        dir.ferry()
            .args(["import", tenant, &pg.url(), "--target-schema", tenant])
            .run()
            .success();
    }
    assert_eq!(
        pg.psql("SELECT (SELECT count(*) FROM alpha.items), (SELECT count(*) FROM beta.items), (SELECT count(*) FROM gamma.items), (SELECT name FROM gamma.items WHERE id = 4)"),
        "2|3|4|gamma-2-x\n"
    );
    assert_eq!(
        pg.psql("INSERT INTO beta.items (name) VALUES ('n') RETURNING id")
            .trim(),
        "4"
    );
}

const MIXED: &str = "
CREATE TABLE readings (id INTEGER PRIMARY KEY, value INTEGER, taken DATETIME);
INSERT INTO readings VALUES (1, 10, '2024-01-01 00:00:00'), (2, 'abc', '2024-01-02 00:00:00'),
  (3, 30, 'n/a'), (4, 2.5, NULL);
";

#[test]
fn a_mixed_type_column_is_widened_and_reported_or_refused_with_strict() {
    let dir = TestDir::new();
    sqlite(&dir.path("m.db"), MIXED);
    dir.ferry().args(["export", "m.db", "m"]).run().success();

    let strict = PgDb::new("strict");
    let run = dir
        .ferry()
        .args(["import", "m", &strict.url(), "--strict"])
        .run()
        .fails_with(1);
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    for needle in [
        "table readings, column value",
        "id 2: 'abc'",
        "column taken",
        "id 3: 'n/a'",
        "nothing was written",
    ] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }
    assert_eq!(
        strict
            .psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0"
    );

    let lenient = PgDb::new("lenient");
    let run = dir
        .ferry()
        .args(["import", "m", &lenient.url()])
        .run()
        .success();
    let out = run.stderr();
    assert!(
        out.contains("readings.value: holds several storage classes"),
        "{out}"
    );
    assert!(
        out.contains("readings.taken: 1 value(s) do not convert to timestamp"),
        "{out}"
    );
    assert_eq!(
        lenient.psql(
            "SELECT id, value, taken, pg_typeof(value), pg_typeof(taken) FROM readings ORDER BY id"
        ),
        "1|10|2024-01-01 00:00:00|text|text\n2|abc|2024-01-02 00:00:00|text|text\n3|30|n/a|text|text\n4|2.5||text|text\n"
    );
}

const PG_APP: &str = r#"
CREATE TYPE status AS ENUM ('draft', 'live', 'gone');
CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL UNIQUE,
  admin boolean NOT NULL DEFAULT false,
  prefs jsonb,
  joined timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE places (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  owner uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  lat numeric(9,6) NOT NULL,
  lon numeric(9,6) NOT NULL,
  opened date,
  opens_at time,
  state status NOT NULL DEFAULT 'draft',
  tags text[],
  CHECK (lat BETWEEN -90 AND 90)
);
CREATE INDEX places_owner ON places (owner);
CREATE VIEW live_places AS SELECT id, lat, lon FROM places WHERE state = 'live';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER places_touch BEFORE UPDATE ON places FOR EACH ROW EXECUTE FUNCTION touch();
INSERT INTO users VALUES
  ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ann@x', true, '{"theme": "dark", "n": [1, 2.5]}', '2024-05-06 07:08:09.123456+02'),
  ('b1ffcd88-8d1a-4ef8-bb6d-6bb9bd380a22', 'bob@x', false, NULL, '2024-01-01 00:00:00+00');
INSERT INTO places (owner, lat, lon, opened, opens_at, state, tags) VALUES
  ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 48.858370, 2.294481, '2024-02-29', '09:30:00', 'live', '{a,"b c"}'),
  ('b1ffcd88-8d1a-4ef8-bb6d-6bb9bd380a22', -33.856784, 151.215297, NULL, NULL, 'draft', NULL);
"#;

#[test]
fn a_postgresql_app_database_moves_to_sqlite() {
    let dir = TestDir::new();
    let pg = PgDb::new("pgapp");
    pg.psql(PG_APP);
    dir.ferry()
        .args(["export", &pg.url(), "pg.tar"])
        .run()
        .success();
    let run = dir
        .ferry()
        .args(["import", "pg.tar", "app.db"])
        .run()
        .success();
    let out = run.stderr();
    for needle in [
        "converted: places.id: identity/serial column becomes INTEGER PRIMARY KEY AUTOINCREMENT",
        "skipped: function touch: user-defined functions, procedures and aggregates do not exist in SQLite",
        "skipped: trigger places_touch: PL/pgSQL triggers do not translate to SQLite",
        "quick_check ok",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    let conn = rusqlite::Connection::open(dir.path("app.db")).unwrap();
    let rows: Vec<String> = conn
        .prepare("SELECT id, email, admin, prefs, joined, typeof(admin) FROM users ORDER BY email")
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}|{}|{}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|ann@x|1|{\"n\": [1, 2.5], \"theme\": \"dark\"}|2024-05-06T05:08:09.123456Z|integer",
            "b1ffcd88-8d1a-4ef8-bb6d-6bb9bd380a22|bob@x|0||2024-01-01T00:00:00Z|integer",
        ]
    );
    let places: Vec<String> = conn
        .prepare("SELECT id, owner, lat, typeof(lat), lon, opened, opens_at, state, tags FROM places ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((0..9)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        places,
        [
            "1|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|48.858370|text|2.294481|2024-02-29|09:30:00|live|[\"a\",\"b c\"]",
            "2|b1ffcd88-8d1a-4ef8-bb6d-6bb9bd380a22|-33.856784|text|151.215297|NULL|NULL|draft|NULL",
        ]
    );
    // Keys, checks and the enum's allowed values hold in SQLite too.
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let violations: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(violations, 0);
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    assert!(
        conn.execute(
            "INSERT INTO places (owner, lat, lon) VALUES ('nobody', 0, 0)",
            []
        )
        .is_err()
    );
    assert!(conn.execute("INSERT INTO places (owner, lat, lon, state) VALUES ('b1ffcd88-8d1a-4ef8-bb6d-6bb9bd380a22', 0, 0, 'bogus')", []).is_err());
    assert!(conn.execute("INSERT INTO places (owner, lat, lon) VALUES ('b1ffcd88-8d1a-4ef8-bb6d-6bb9bd380a22', 91, 0)", []).is_err());
    let next: i64 = conn
        .query_row("INSERT INTO places (owner, lat, lon) VALUES ('b1ffcd88-8d1a-4ef8-bb6d-6bb9bd380a22', 1, 1) RETURNING id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(next, 3);
    let live: i64 = conn
        .query_row("SELECT count(*) FROM live_places", [], |r| r.get(0))
        .unwrap();
    assert_eq!(live, 1);
    drop(conn);
    // Proof across engines: every value, converted by the mapping, is in the database; the
    // row inserted above is the one difference.
    let run = dir
        .ferry()
        .args(["verify", "pg.tar", "--against", "app.db"])
        .run()
        .fails_with(3);
    assert_eq!(
        run.stdout().trim(),
        "table places: 3 rows in the database, 2 in the archive"
    );
    rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .execute("DELETE FROM places WHERE id = 3", [])
        .unwrap();
    dir.ferry()
        .args(["verify", "pg.tar", "--against", "app.db"])
        .run()
        .success()
        .says("app.db matches it");
}

#[test]
fn data_only_fills_a_schema_made_by_migrations_and_advances_sequences() {
    let dir = TestDir::new();
    sqlite(
        &dir.path("app.db"),
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE Authors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, joined DATETIME);
         CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES Authors(id), title TEXT, published BOOLEAN, legacy_flag INTEGER);
         CREATE TABLE alembic_version (version_num TEXT);
         INSERT INTO alembic_version VALUES ('old-sqlite-rev');
         INSERT INTO posts VALUES (7, 2, 'second author first', 1, 0);
         INSERT INTO Authors VALUES (1, 'ann', '2024-01-01 10:00:00'), (2, 'bob', 1704103200);
         INSERT INTO posts VALUES (8, 1, 'hello', 0, 1);",
    );
    dir.ferry().args(["export", "app.db", "a"]).run().success();
    let pg = PgDb::new("migrated");
    // What the application's migrations created: its own types, order and extras.
    pg.psql(
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
         INSERT INTO alembic_version VALUES ('abc123');
         CREATE TABLE authors (id serial PRIMARY KEY, name varchar(80) NOT NULL, joined timestamptz, karma integer NOT NULL DEFAULT 0);
         CREATE TABLE posts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, author_id integer NOT NULL REFERENCES authors(id), published boolean NOT NULL DEFAULT false);",
    );
    let run = dir
        .ferry()
        .args(["import", "a", &pg.url(), "--data-only"])
        .run()
        .success();
    let err = run.stderr();
    for needle in [
        "skipped: table alembic_version: migration bookkeeping that already holds rows; left alone",
        "skipped: column posts.legacy_flag: not in the target table",
        "converted: table Authors loaded into public.authors",
        "converted: column authors.karma: only in the target; it takes its default",
        "converted: sequence public.authors_id_seq advanced to 2",
        "converted: sequence public.posts_id_seq advanced to 8",
    ] {
        assert!(err.contains(needle), "{needle:?} missing:\n{err}");
    }
    assert_eq!(
        pg.psql("SELECT id, name, joined, karma FROM authors ORDER BY id; SELECT id, author_id, title, published FROM posts ORDER BY id; SELECT * FROM alembic_version"),
        "1|ann|2024-01-01 10:00:00+00|0\n2|bob|2024-01-01 10:00:00+00|0\n7|2|second author first|t\n8|1|hello|f\nabc123\n"
    );
    assert_eq!(
        pg.psql("INSERT INTO authors (name) VALUES ('cy') RETURNING id")
            .trim(),
        "3"
    );
    assert_eq!(
        pg.psql("INSERT INTO posts (title, author_id) VALUES ('n', 3) RETURNING id")
            .trim(),
        "9"
    );

    // A NOT NULL column without a default that the archive cannot fill: refused up front.
    let strict = PgDb::new("notnull");
    strict.psql("CREATE TABLE authors (id integer PRIMARY KEY, name text, country text NOT NULL)");
    let run = dir
        .ferry()
        .args(["import", "a", &strict.url(), "--data-only"])
        .run()
        .fails_with(1);
    assert!(
        run.stderr()
            .contains("column authors.country: NOT NULL without a default"),
        "{}",
        run.stderr()
    );
    assert_eq!(strict.psql("SELECT count(*) FROM authors").trim(), "0");
}

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let dir = TestDir::new();
    sqlite(&dir.path("app.db"), APP);
    dir.ferry()
        .args(["export", "app.db", "app"])
        .run()
        .success();
    let pg = PgDb::new("dry");
    let out = dir
        .ferry()
        .args(["import", "app", &pg.url(), "--dry-run"])
        .run()
        .success()
        .stdout();
    for needle in [
        "CREATE TABLE \"public\".\"accounts\" (",
        "\"id\" bigint GENERATED BY DEFAULT AS IDENTITY",
        "\"created_at\" timestamp without time zone NOT NULL",
        "ALTER TABLE \"public\".\"docs\" ADD CONSTRAINT \"docs_account_id_fkey\" FOREIGN KEY",
        "-- converted: docs.created_ms: integer dates read as unix epoch milliseconds",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0"
    );

    let src = PgDb::new("drysrc");
    src.psql(PG_APP);
    dir.ferry()
        .args(["export", &src.url(), "pg"])
        .run()
        .success();
    let out = dir
        .ferry()
        .args(["import", "pg", "never.db", "--dry-run"])
        .run()
        .success()
        .stdout();
    for needle in [
        "\"id\" INTEGER PRIMARY KEY AUTOINCREMENT",
        "\"state\" TEXT NOT NULL DEFAULT 'draft' CHECK (\"state\" IN ('draft', 'live', 'gone'))",
        "-- skipped: trigger places_touch",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    assert!(!dir.path("never.db").exists());
}

/// The `content_digest` and row count of every table, by name.
fn digests(dir: &TestDir, archive: &str) -> Vec<(String, String, u64)> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path(archive).join("manifest.json")).unwrap())
            .unwrap();
    let mut v: Vec<(String, String, u64)> = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                format!(
                    "{}.{}",
                    t["schema"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap()
                ),
                t["content_digest"].as_str().unwrap().to_owned(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn jobs_1_and_jobs_4_give_identical_archives_and_imports() {
    let dir = TestDir::new();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/app.db");
    for jobs in ["1", "4"] {
        dir.ferry()
            .args([
                "export".as_ref(),
                "--jobs".as_ref(),
                jobs.as_ref(),
                sample.as_os_str(),
                format!("s{jobs}").as_ref(),
            ])
            .run()
            .success();
        dir.ferry()
            .args(["import", &format!("s{jobs}"), &format!("s{jobs}.db")])
            .run()
            .success();
    }
    assert_eq!(digests(&dir, "s1"), digests(&dir, "s4"));
    crate::harness::assert_same!(
        crate::sqlite_db::dump(&dir.path("s1.db")),
        crate::sqlite_db::dump(&dir.path("s4.db"))
    );

    let src = PgDb::new("jobs");
    src.psql(crate::pg_db::TORTURE);
    let mut restored = Vec::new();
    for jobs in ["1", "4"] {
        dir.ferry()
            .args(["export", "--jobs", jobs, &src.url(), &format!("p{jobs}")])
            .run()
            .success();
        let dst = PgDb::new("jobsdst");
        dir.ferry()
            .args(["import", &format!("p{jobs}"), &dst.url()])
            .run()
            .success();
        restored.push(dst);
    }
    assert_eq!(digests(&dir, "p1"), digests(&dir, "p4"));
    crate::harness::assert_same!(restored[0].data_dump(), restored[1].data_dump());
    crate::harness::assert_same!(restored[0].schema_dump(), restored[1].schema_dump());
}

/// With two connections the profile pass scans a large rowid table as two rowid ranges and
/// merges them: the manifest must be the one-connection pass's, down to which misfits are
/// the first five examples (three in each half here, so the merge must cut the second).
/// Also split: rowids at both ends of the 64-bit range, and a table whose rowid is kept as a
/// field of its own (negative rowids included).
#[test]
fn a_profile_split_over_two_connections_is_the_serial_profile() {
    let dir = TestDir::new();
    sqlite(
        &dir.path("wide.db"),
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n integer, d date, j json, r real, b blob,
                         v varchar(10), m numeric(8,2));
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
         INSERT INTO t SELECT i * 50,
           CASE WHEN i % 500 = 7 THEN 'x' || i WHEN i > 2900 THEN i * 1000000000 ELSE i END,
           CASE i % 3 WHEN 0 THEN '2024-01-02' WHEN 1 THEN i * 86400 ELSE 2460000.5 END,
           CASE WHEN i = 2999 THEN 'not json' ELSE '{\"k\": ' || i || '}' END,
           i / 7.0,
           CASE WHEN i % 2 = 0 THEN randomblob(4) END,
           CASE WHEN i = 2500 THEN 'much longer than ten' ELSE 'v' || (i % 10) END,
           CASE WHEN i = 40 THEN 123456.789 ELSE i / 4.0 END
         FROM c;
         CREATE TABLE k (a TEXT PRIMARY KEY, x integer) WITHOUT ROWID;
         INSERT INTO k VALUES ('a', 1), ('b', 'two');
         CREATE TABLE small (id INTEGER PRIMARY KEY, x);
         INSERT INTO small VALUES (1, 1), (2, 'a'), (3, 2.5);
         CREATE TABLE ends (id INTEGER PRIMARY KEY, x integer);
         INSERT INTO ends VALUES (-9223372036854775808, 'a'), (-1, 2.5), (0, NULL),
                                 (9223372036854775807, 1);
         CREATE TABLE kept (a integer, b);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)
         INSERT INTO kept(rowid, a, b) SELECT i * 77 - 50000,
           CASE WHEN i % 300 = 1 THEN 'no' ELSE i END, x'00' || i FROM c;",
    );
    let mut manifests = Vec::new();
    for jobs in ["1", "2"] {
        let run = dir
            .ferry()
            .args([
                "-vv",
                "export",
                "--jobs",
                jobs,
                "wide.db",
                &format!("w{jobs}"),
            ])
            .run()
            .success();
        assert!(
            run.stderr()
                .contains(&format!("profile pass done connections={jobs}")),
            "--jobs {jobs}: {}",
            run.stderr()
        );
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path(&format!("w{jobs}")).join("manifest.json")).unwrap(),
        )
        .unwrap();
        manifests.push(m);
    }
    let examples =
        &manifests[0]["tables"][0]["columns"][1]["properties"]["profile"]["misfit_examples"];
    assert_eq!(
        examples.as_array().map(Vec::len),
        Some(5),
        "the fixture has misfits in both halves: {examples}"
    );
    for key in ["tables", "warnings"] {
        crate::harness::assert_same!(
            serde_json::to_string_pretty(&manifests[1][key]).unwrap(),
            serde_json::to_string_pretty(&manifests[0][key]).unwrap(),
            "{key}"
        );
    }
}

#[test]
fn data_only_refuses_an_archive_table_the_target_lacks_unless_told_to_skip_it() {
    let dir = TestDir::new();
    sqlite(
        &dir.path("app.db"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO users VALUES (1, 'ann'), (2, 'bob'), (3, 'cy');
         CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
         INSERT INTO audit VALUES (1, 'x'), (2, 'y');",
    );
    dir.ferry()
        .args(["export", "app.db", "app"])
        .run()
        .success();
    let pg = PgDb::new("dataonly_missing");
    pg.psql("CREATE TABLE users (id integer PRIMARY KEY, name text)");
    let run = dir
        .ferry()
        .args(["import", "app", &pg.url(), "--data-only"])
        .run()
        .fails_with(1)
        .says("table audit: no table of that name in schema public")
        .says("--skip-missing-tables");
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    assert_eq!(pg.psql("SELECT count(*) FROM users").trim(), "0");

    // The plan of a data-only import, in a read-only transaction.
    dir.ferry()
        .args(["import", "app", &pg.url(), "--data-only", "--dry-run"])
        .run()
        .fails_with(1)
        .says("--skip-missing-tables");
    dir.ferry()
        .args(["import", "app", &pg.url(), "--data-only", "--dry-run"])
        .args(["--skip-missing-tables"])
        .run()
        .success()
        .says("-- skipped: table audit: no table of that name in schema public");
    assert_eq!(pg.psql("SELECT count(*) FROM users").trim(), "0");

    let run = dir
        .ferry()
        .args([
            "import",
            "app",
            &pg.url(),
            "--data-only",
            "--skip-missing-tables",
        ])
        .run()
        .success()
        .says("skipped: table audit: no table of that name in schema public");
    let last = run.stderr().lines().last().unwrap_or("").to_owned();
    assert!(
        last.starts_with("imported app into postgresql://")
            && last.contains(&format!("/{} in ", pg.name)),
        "the last line names the target: {last}"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM users").trim(), "3");
}

/// SQLite does not enforce foreign keys unless asked, so a real file can hold rows whose
/// parent is gone. Moved to PostgreSQL, such a key is still added for new rows (NOT VALID)
/// and reported by name, every row arrives, and the keys the rows satisfy are validated,
/// whether the import is serial or parallel (where the keys are validated by the load
/// workers, the largest table's first, and a refused one runs again at publication).
#[test]
fn a_foreign_key_the_source_rows_violate_is_added_not_valid_and_reported() {
    let dir = TestDir::new();
    sqlite(
        &dir.path("shop.db"),
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY,
                              customer_id INTEGER NOT NULL REFERENCES customers(id));
         CREATE TABLE lines (id INTEGER PRIMARY KEY,
                             order_id INTEGER NOT NULL REFERENCES orders(id),
                             qty INTEGER NOT NULL);
         INSERT INTO customers (name) VALUES ('ann'), ('bob');
         INSERT INTO orders (customer_id) VALUES (1), (2), (1);
         -- order 4 belongs to customer 7, who was deleted with foreign keys off
         INSERT INTO orders (customer_id) VALUES (7);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO lines (order_id, qty) SELECT 1 + i % 4, i FROM n;",
    );
    dir.ferry()
        .args(["export", "shop.db", "shop.tar"])
        .run()
        .success();
    for jobs in ["1", "2"] {
        let pg = PgDb::new("fk_not_valid");
        let run = dir
            .ferry()
            .args(["import", "--jobs", jobs, "shop.tar", &pg.url()])
            .run()
            .success();
        assert!(
            run.stderr().contains("orders_customer_id_fkey")
                && run.stderr().contains("existing rows violate it")
                && run
                    .stderr()
                    .contains("added NOT VALID, so it applies to new rows only"),
            "--jobs {jobs}: {}",
            run.stderr()
        );
        assert_eq!(
            pg.psql(
                "SELECT conname || ' ' || convalidated::text FROM pg_constraint \
                 WHERE contype = 'f' ORDER BY 1"
            ),
            "lines_order_id_fkey true\norders_customer_id_fkey false\n",
            "--jobs {jobs}"
        );
        assert_eq!(
            pg.psql(
                "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), \
                 (SELECT count(*) FROM lines), (SELECT customer_id FROM orders WHERE id = 4)"
            )
            .trim(),
            "2|4|3000|7",
            "--jobs {jobs}"
        );
        // NOT VALID still guards new rows.
        let err = pg.psql_err("INSERT INTO orders (customer_id) VALUES (8)");
        assert!(err.contains("foreign key"), "--jobs {jobs}: {err}");
    }
}

/// Views written for SQLite, in the shapes Northwind's carry (a date function on a constant,
/// a TEXT flag compared with a number), are created in PostgreSQL and return the rows they
/// return in SQLite; one that only SQLite can read (`+` on text) is skipped by name.
#[test]
fn sqlite_views_are_read_in_postgresql_as_sqlite_reads_them() {
    let dir = TestDir::new();
    let views = [
        (
            "shipped_1997",
            "SELECT id FROM orders WHERE shipped BETWEEN DATETIME('1997-01-01') AND datetime('1997-12-31 23:59:59')",
        ),
        (
            "open_orders",
            "SELECT id FROM orders WHERE (((orders.Status)=0))",
        ),
        (
            "not_closed",
            "SELECT id FROM orders WHERE Status <> 1 AND status IN (0, 2)",
        ),
        // SQLite's LIKE ignores ASCII case; a backslash is an ordinary character in it.
        (
            "like_a",
            "SELECT id FROM orders WHERE note LIKE 'A%' OR note LIKE 'x\\%'",
        ),
        // An integer flag, though another table has a boolean one of that name.
        ("flag_one", "SELECT id FROM counts WHERE flag = 1"),
    ];
    let mut sql = "CREATE TABLE orders (id INTEGER PRIMARY KEY, shipped DATETIME, \
                   Status TEXT NOT NULL DEFAULT '0', note TEXT, \
                   late INTEGER GENERATED ALWAYS AS \
                     (CASE WHEN shipped > datetime('1997-06-01') THEN 1 ELSE 0 END) VIRTUAL, \
                   CHECK (shipped IS NULL OR shipped >= date('1990-01-01')));
         CREATE INDEX late_orders ON orders(id) WHERE shipped > datetime('1997-06-01');
         CREATE TRIGGER too_early BEFORE INSERT ON orders WHEN NEW.shipped < date('1990-01-01')
           BEGIN SELECT RAISE(ABORT, 'too early'); END;
         INSERT INTO orders VALUES
           (1, '1997-01-01 00:00:00', '0', 'a'), (2, '1997-06-15 10:00:00', '1', 'b'),
           (3, '1997-12-31 23:59:59', '0', 'c'), (4, '1998-01-02 13:00:00', '2', 'd'),
           (5, NULL, '2', NULL), (6, NULL, '2', 'x\\yz');
         CREATE TABLE counts (id INTEGER PRIMARY KEY, flag INTEGER);
         INSERT INTO counts VALUES (1, 0), (2, 1), (3, 5), (4, 1);
         CREATE TABLE tags (id INTEGER PRIMARY KEY, flag BOOLEAN);
         INSERT INTO tags VALUES (1, 0), (2, 1);
         CREATE VIEW sums AS SELECT id, (note + ' ' + note) AS s FROM orders;
         CREATE VIEW after_noon AS SELECT id FROM orders WHERE time(shipped) > time('12:00');
         CREATE VIEW trimmed AS SELECT * FROM (SELECT trim(Status) AS status FROM orders)
           WHERE status = 0;"
        .to_owned();
    for (name, body) in views {
        sql.push_str(&format!("\nCREATE VIEW {name} AS {body};"));
    }
    sqlite(&dir.path("shop.db"), &sql);
    let conn = rusqlite::Connection::open(dir.path("shop.db")).unwrap();
    dir.ferry()
        .args(["export", "shop.db", "shop.tar"])
        .run()
        .success();
    let pg = PgDb::new("sqlite_views");
    let run = dir
        .ferry()
        .args(["import", "shop.tar", &pg.url()])
        .run()
        .success();
    let out = run.stderr();
    for needle in [
        "converted: view shipped_1997: DATETIME('1997-01-01'), datetime('1997-12-31 23:59:59') replaced by the text SQLite returns",
        "skipped: view sums: operator does not exist: text + unknown",
        // Only a constant is folded: a column's time stays a call PostgreSQL does not have.
        "skipped: view after_noon:",
        // trim() has no affinity, so SQLite compares '0' with 0 and finds no row: the text
        // rule applies to a table's own columns only, not to a subquery's.
        "skipped: view trimmed:",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    // A view that was not created reports no conversion.
    assert!(!out.contains("converted: view after_noon"), "{out}");
    // The same replacement in the other objects that compare, each reported once with what
    // it can change, whether its table's builds ran on a staging copy (--jobs 2) or after
    // publishing (--jobs 1).
    let tail = "replaced by the text SQLite returns; beside a date or timestamp column it compares as that type, where SQLite compared text, so rows whose stored text has another form (such as a date without a time)";
    for jobs in ["1", "2"] {
        let again = PgDb::new("sqlite_views_jobs");
        let run = dir
            .ferry()
            .args(["import", "--jobs", jobs, "shop.tar", &again.url()])
            .run()
            .success();
        let out = run.stderr();
        for needle in [
            format!(
                "converted: check orders_check1 on orders: date('1990-01-01') {tail} may be accepted or refused differently\n"
            ),
            format!(
                "converted: index late_orders: datetime('1997-06-01') {tail} may be indexed differently\n"
            ),
            format!(
                "converted: generated column orders.late: datetime('1997-06-01') {tail} may get another value\n"
            ),
            format!(
                "converted: trigger too_early: translated to a PL/pgSQL trigger (a RAISE guard); date('1990-01-01') {tail} may fire it differently\n"
            ),
        ] {
            assert_eq!(
                out.matches(&needle).count(),
                1,
                "--jobs {jobs}: {needle:?} not reported once:\n{out}"
            );
        }
    }
    for (name, _) in views {
        let in_sqlite: Vec<String> = conn
            .prepare(&format!("SELECT id FROM {name} ORDER BY id"))
            .unwrap()
            .query_map([], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|v| v.unwrap().to_string())
            .collect();
        let in_pg = pg.psql(&format!("SELECT id FROM {name} ORDER BY id"));
        assert_eq!(in_pg.lines().collect::<Vec<_>>(), in_sqlite, "view {name}");
        assert!(!in_sqlite.is_empty(), "view {name} selects no row");
    }
}

/// Sakila's triggers (jOOQ/sakila): `AFTER INSERT` and `AFTER UPDATE`, each setting the
/// row's stamp with an UPDATE of the row named by its rowid. In PostgreSQL they set the
/// stamp on the row before it is written, so inserts and updates stamp rows as in SQLite.
#[test]
fn sqlite_touch_triggers_by_rowid_stamp_inserted_and_updated_rows() {
    let dir = TestDir::new();
    sqlite(
        &dir.path("films.db"),
        "CREATE TABLE actor (actor_id numeric NOT NULL, name TEXT NOT NULL,
                             last_update TIMESTAMP NOT NULL, PRIMARY KEY (actor_id));
         CREATE TRIGGER actor_trigger_ai AFTER INSERT ON actor
           BEGIN UPDATE actor SET last_update = DATETIME('NOW') WHERE rowid = new.rowid; END;
         -- The same now as the insert touch's, spelled another way: the insert touch
         -- still stands alone.
         CREATE TRIGGER actor_trigger_au AFTER UPDATE ON actor
           BEGIN UPDATE actor SET last_update = CURRENT_TIMESTAMP WHERE rowid = new.rowid; END;
         -- PostgreSQL has no GLOB: this trigger is refused when it is created.
         CREATE TRIGGER actor_glob AFTER UPDATE ON actor WHEN NEW.name GLOB 'x*'
           BEGIN UPDATE actor SET last_update = DATETIME('NOW') WHERE rowid = new.rowid; END;
         INSERT INTO actor VALUES (1, 'ann', '2001-01-01 00:00:00');
         -- Here SQLite's UPDATE after the insert also fires the audit, which a BEFORE
         -- INSERT trigger in PostgreSQL would not: that touch is refused.
         CREATE TABLE film (id INTEGER PRIMARY KEY, title TEXT, last_update TEXT);
         CREATE TABLE film_log (film_id INTEGER, what TEXT);
         CREATE TRIGGER film_ai AFTER INSERT ON film
           BEGIN UPDATE film SET last_update = DATETIME('NOW') WHERE rowid = new.rowid; END;
         CREATE TRIGGER film_audit AFTER UPDATE ON film
           BEGIN INSERT INTO film_log VALUES (NEW.id, 'updated'); END;",
    );
    let conn = rusqlite::Connection::open(dir.path("films.db")).unwrap();
    let stamp_in_sqlite: String = conn
        .query_row("SELECT last_update FROM actor", [], |r| r.get(0))
        .unwrap();
    assert_ne!(
        stamp_in_sqlite, "2001-01-01 00:00:00",
        "SQLite's own trigger"
    );
    dir.ferry()
        .args(["export", "films.db", "films.tar"])
        .run()
        .success();
    let pg = PgDb::new("touch_rowid");
    let run = dir
        .ferry()
        .args(["import", "films.tar", &pg.url()])
        .run()
        .success();
    for needle in [
        "converted: trigger actor_trigger_ai: translated to a PL/pgSQL trigger (sets columns of the new row",
        "converted: trigger actor_trigger_au: translated to a PL/pgSQL trigger (sets columns of the updated row",
        "skipped: trigger film_ai: a touch after an insert is translated only when the table's other triggers set the same columns to the same values (SQLite's UPDATE fires them, a BEFORE INSERT trigger does not), and trigger film_audit does not",
        "converted: trigger film_audit: translated to a PL/pgSQL trigger",
        "skipped: trigger actor_glob:",
    ] {
        assert!(
            run.stderr().contains(needle),
            "{needle:?} missing:\n{}",
            run.stderr()
        );
    }
    // The refused trigger's function went with it: only the created triggers' remain.
    assert_eq!(
        pg.psql(
            "SELECT string_agg(proname, ' ' ORDER BY proname) FROM pg_proc \
             WHERE pronamespace = 'public'::regnamespace"
        )
        .trim(),
        "actor_actor_trigger_ai actor_actor_trigger_au film_film_audit"
    );
    // The loaded row keeps its stamp: loading fires no trigger.
    assert_eq!(
        pg.psql("SELECT last_update::text FROM actor WHERE actor_id = 1")
            .trim(),
        stamp_in_sqlite
    );
    pg.psql(
        "INSERT INTO actor (actor_id, name, last_update) VALUES (2, 'bob', '2001-01-01');
         UPDATE actor SET name = 'ann b', last_update = '2001-01-01' WHERE actor_id = 1;",
    );
    assert_eq!(
        pg.psql(
            "SELECT actor_id, last_update > now() - interval '1 day', \
             last_update = date_trunc('second', last_update) FROM actor ORDER BY 1"
        ),
        "1|t|t\n2|t|t\n"
    );
}

/// A trigger and its function are checked, created and refused as one: when the archive
/// text of the function is refused (here its message names another schema of the target),
/// the trigger is not tried, and the one report is the refusal.
#[test]
fn a_refused_trigger_function_takes_its_trigger_with_it() {
    let dir = TestDir::new();
    sqlite(
        &dir.path("shop.db"),
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
         CREATE TRIGGER no_negative BEFORE INSERT ON orders
           BEGIN SELECT RAISE(ABORT, 'see public.orders') WHERE NEW.n < 0; END;
         CREATE TRIGGER no_zero BEFORE INSERT ON orders
           BEGIN SELECT RAISE(ABORT, 'no zero') WHERE NEW.n = 0; END;",
    );
    dir.ferry()
        .args(["export", "shop.db", "shop.tar"])
        .run()
        .success();
    let pg = PgDb::new("trigger_pair");
    pg.psql("CREATE SCHEMA app");
    let run = dir
        .ferry()
        .args(["import", "--target-schema", "app", "shop.tar", &pg.url()])
        .run()
        .success();
    let out = run.stderr();
    let about: Vec<&str> = out.lines().filter(|l| l.contains("no_negative")).collect();
    assert_eq!(about.len(), 1, "{out}");
    assert!(
        about[0].starts_with("skipped: ") && about[0].contains("refused, not created"),
        "{out}"
    );
    assert_eq!(
        pg.psql(
            "SELECT (SELECT string_agg(proname, ' ') FROM pg_proc \
                     WHERE pronamespace = 'app'::regnamespace), \
                    (SELECT string_agg(tgname, ' ') FROM pg_trigger WHERE NOT tgisinternal)"
        )
        .trim(),
        "orders_no_zero|no_zero"
    );
}
