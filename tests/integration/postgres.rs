//! PostgreSQL → archive → PostgreSQL against the real local server.

use crate::harness::{TestDir, assert_archive_manifests_valid, assert_same};
use crate::pg_db::{PgDb, TORTURE, server_url};

fn torture() -> PgDb {
    let db = PgDb::new("src");
    db.psql(TORTURE);
    db
}

#[test]
fn torture_schema_round_trips_exactly() {
    let dir = TestDir::new();
    let src = torture();
    dir.ferry()
        .args(["export", &src.url(), "a"])
        .run()
        .success();
    let manifest = assert_archive_manifests_valid(&dir.path("a"));
    let dst = PgDb::new("dst");
    dir.ferry()
        .args(["import", "a", &dst.url()])
        .run()
        .success();
    assert_same!(
        dst.schema_dump(),
        src.schema_dump(),
        "pg_dump --schema-only"
    );
    assert_same!(dst.data_dump(), src.data_dump(), "data and sequences");

    // The manifest carries the portable form too.
    let tables: Vec<String> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                t["schema"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            )
        })
        .collect();
    for t in [
        "app.types",
        "app.events",
        "app.events_2024",
        "Other Schema.MixedCase",
    ] {
        assert!(
            tables.contains(&t.to_owned()),
            "{t} missing from {tables:?}"
        );
    }
    let types = &manifest["tables"][0];
    let kind = |col: &str| {
        types["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == col)
            .unwrap()["type"]
            .clone()
    };
    assert_eq!(kind("n_fixed")["kind"], "decimal");
    assert_eq!(kind("n_nan")["kind"], "numeric", "a NaN forces exact text");
    assert_eq!(
        kind("ts")["kind"],
        "engine_text",
        "year 294276 does not fit Arrow"
    );
    assert_eq!(kind("tstz")["kind"], "timestamp_tz");
    assert_eq!(kind("u")["kind"], "uuid");
    assert_eq!(kind("ip")["type_name"], "inet");
    assert_eq!(kind("a2")["type_name"], "text[]");
}

#[test]
fn verify_against_matches_source_and_copy_and_names_a_changed_table() {
    let dir = TestDir::new();
    let src = torture();
    dir.ferry()
        .args(["export", &src.url(), "a.tar"])
        .run()
        .success();
    let dst = PgDb::new("dst");
    dir.ferry()
        .args(["import", "a.tar", &dst.url()])
        .run()
        .success();
    for db in [&src, &dst] {
        dir.ferry()
            .args(["verify", "a.tar", "--against", &db.url()])
            .run()
            .success()
            .says("matches it");
    }
    dst.psql("UPDATE \"Other Schema\".\"MixedCase\" SET \"from\" = 'changed' WHERE \"select\" = 1");
    let run = dir
        .ferry()
        .args(["verify", "a.tar", "--against", &dst.url()])
        .run()
        .fails_with(3);
    // The row and the column are named, through the primary key: the archive's rows are
    // loaded into a temporary table on a second session in the same snapshot.
    assert_eq!(
        run.stdout().trim(),
        "table \"Other Schema\".\"MixedCase\": same row count (2) but different content\n\
         table \"Other Schema\".\"MixedCase\", row select=1: column from: database changed, archive where"
    );
    // Nothing was left behind by the comparison.
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_class WHERE relname LIKE 'ferry_cmp_%'")
            .trim(),
        "0"
    );
}

#[test]
fn tar_stream_through_a_pipe() {
    let dir = TestDir::new();
    let src = torture();
    let dst = PgDb::new("dst");
    let (export, import) = dir
        .ferry()
        .args(["export", &src.url(), "-"])
        .pipe(dir.ferry().args(["import", "-", &dst.url()]));
    export.success();
    import.success();
    assert_same!(dst.data_dump(), src.data_dump());
}

#[test]
fn a_non_empty_target_is_refused_and_left_untouched() {
    let dir = TestDir::new();
    let src = torture();
    dir.ferry()
        .args(["export", &src.url(), "a"])
        .run()
        .success();
    let dst = PgDb::new("dst");
    dst.psql("CREATE SCHEMA app; CREATE TABLE app.users (keep text); INSERT INTO app.users VALUES ('mine')");
    let before = dst.schema_dump() + &dst.data_dump();
    let run = dir
        .ferry()
        .args(["import", "a", &dst.url()])
        .run()
        .fails_with(1)
        .says("not empty")
        .says("\"app\".\"users\"")
        .says("--clean");
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    assert_eq!(dst.schema_dump() + &dst.data_dump(), before);

    dir.ferry()
        .args(["import", "a", &dst.url(), "--clean"])
        .run()
        .success();
    assert_same!(dst.data_dump(), src.data_dump());
}

#[test]
fn a_failing_import_rolls_everything_back() {
    let dir = TestDir::new();
    let src = torture();
    dir.ferry()
        .args(["export", &src.url(), "good.tar"])
        .run()
        .success();
    // Damage a data file inside the tar: the import may load rows before the checksum
    // arrives, but it must not commit.
    let mut bytes = std::fs::read(dir.path("good.tar")).unwrap();
    let at = bytes
        .windows(13)
        .rposition(|w| w == b"manifest.json")
        .unwrap();
    bytes[at - 700] ^= 0x20;
    std::fs::write(dir.path("bad.tar"), &bytes).unwrap();
    let dst = PgDb::new("dst");
    let before = dst.schema_dump();
    dir.ferry()
        .args(["import", "bad.tar", &dst.url()])
        .run()
        .fails_with(1)
        .says("was not changed");
    assert_eq!(dst.schema_dump(), before);
}

/// Each batch after the first is read into builders sized from the one before (a
/// timestamp's zone and a numeric's precision come from the finished array); batches of one
/// row take that path for every type the torture schema has.
#[test]
fn batches_of_one_row_round_trip_exactly() {
    let dir = TestDir::new();
    let src = torture();
    dir.ferry()
        .args(["export", &src.url(), "a", "--batch-rows", "1"])
        .run()
        .success();
    let dst = PgDb::new("dst");
    dir.ferry()
        .args(["import", "a", &dst.url()])
        .run()
        .success();
    assert_same!(dst.data_dump(), src.data_dump(), "batches of one row");
}

/// A private cluster that checks passwords (`scripts/pg-auth-server`), stopped and removed
/// when dropped: the shared test server keeps its trust auth untouched.
struct AuthServer {
    dir: String,
    port: u16,
}

impl AuthServer {
    fn start() -> AuthServer {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-auth-server");
        let out = std::process::Command::new(&script)
            .arg("start")
            .output()
            .expect("run scripts/pg-auth-server");
        assert!(
            out.status.success(),
            "scripts/pg-auth-server start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The script picks the port (below the ephemeral range) and prints it after the
        // directory.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut lines = stdout.lines();
        let dir = lines.next().expect("cluster directory").trim().to_owned();
        let port = lines
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("scripts/pg-auth-server start printed no port: {stdout}"));
        AuthServer { dir, port }
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-auth-server");
        let _ = std::process::Command::new(script)
            .args(["stop", &self.dir])
            .status();
    }
}

#[test]
fn connection_errors_are_one_clear_line_without_the_password() {
    let dir = TestDir::new();
    let base = server_url();
    let auth = AuthServer::start();
    let cases = [
        (
            format!(
                "postgresql://ferry_password_test:wrong-secret@127.0.0.1:{}/postgres",
                auth.port
            ),
            "password authentication failed",
        ),
        (
            "postgresql://postgres:hunter2@127.0.0.1:1/postgres".to_owned(),
            "127.0.0.1:1",
        ),
        (
            format!("{base}/ferry_no_such_database"),
            "ferry_no_such_database",
        ),
    ];
    for (url, needle) in cases {
        let run = dir
            .ferry()
            .args(["export", &url, "a"])
            .run()
            .fails_with(1)
            .says(needle);
        let err = run.stderr();
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            !err.contains("wrong-secret") && !err.contains("hunter2"),
            "password leaked: {err}"
        );
        assert!(!dir.path("a").exists());
    }
}

#[test]
fn connection_forms_tls_and_driver_suffixes() {
    let dir = TestDir::new();
    let db = PgDb::new("conn");
    db.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let host = "127.0.0.1";
    let forms = [
        format!(
            "postgresql+asyncpg://postgres@{host}:5432/{}?sslmode=require",
            db.name
        ),
        format!("postgres://postgres@{host}/{}?sslmode=disable", db.name),
        format!(
            "host={host} port=5432 user=postgres dbname={} sslmode=prefer",
            db.name
        ),
    ];
    for (i, url) in forms.iter().enumerate() {
        let out = format!("a{i}");
        dir.ferry().args(["export", url, &out]).run().success();
    }
    // PG* variables fill in what the URL leaves out.
    let run = dir
        .ferry()
        .args(["export", "postgresql://", "env"])
        .env("PGHOST", host)
        .env("PGUSER", "postgres")
        .env("PGDATABASE", &db.name)
        .run()
        .success();
    drop(run);
    // verify-full needs a trusted root; the local server's snakeoil certificate is not one.
    dir.ferry()
        .args([
            "export",
            &format!(
                "postgresql://postgres@{host}/{}?sslmode=verify-full",
                db.name
            ),
            "b",
        ])
        .run()
        .fails_with(1)
        .says("cannot connect");
}

#[test]
fn target_schema_puts_sqlite_style_single_schema_archives_side_by_side() {
    let dir = TestDir::new();
    let src = PgDb::new("single");
    src.psql(
        "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(8,2));
         INSERT INTO items (name, price) VALUES ('a', 1.50), ('b', NULL);
         CREATE VIEW cheap AS SELECT * FROM items WHERE price < 2;",
    );
    dir.ferry()
        .args(["export", &src.url(), "a", "--schema", "public"])
        .run()
        .success();
    let dst = PgDb::new("multi");
    for tenant in ["tenant_a", "Tenant B"] {
        dir.ferry()
            .args(["import", "a", &dst.url(), "--target-schema", tenant])
            .run()
            .success();
    }
    let q = |s: &str| {
        dst.psql(&format!(
            "SELECT name, price FROM \"{s}\".items ORDER BY id; SELECT count(*) FROM \"{s}\".cheap"
        ))
    };
    assert_eq!(q("tenant_a"), "a|1.50\nb|\n1\n");
    assert_eq!(q("Tenant B"), q("tenant_a"));
    let next = dst.psql("INSERT INTO \"Tenant B\".items (name) VALUES ('c') RETURNING id");
    assert_eq!(
        next.trim(),
        "3",
        "the serial continues after the loaded rows"
    );
}

#[test]
fn what_is_not_carried_is_said_in_the_manifest() {
    let dir = TestDir::new();
    let src = PgDb::new("notcarried");
    src.psql(
        "CREATE TABLE base (id int, note text);
         CREATE TABLE child (extra int) INHERITS (base);
         CREATE TABLE secret (id int, owner text);
         ALTER TABLE secret ENABLE ROW LEVEL SECURITY;
         CREATE POLICY mine ON secret USING (owner = current_user);
         INSERT INTO secret VALUES (1, 'someone else');",
    );
    dir.ferry()
        .args(["export", &src.url(), "a"])
        .run()
        .success();
    let m = assert_archive_manifests_valid(&dir.path("a"));
    let codes: Vec<String> = m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{} {}",
                w["code"].as_str().unwrap(),
                w["table"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        codes.contains(&"inheritance_not_carried public.child".to_owned()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"row_security_not_carried public.secret".to_owned()),
        "{codes:?}"
    );
    // Row security does not filter what the export reads.
    let secret = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "secret")
        .unwrap()
        .clone();
    assert_eq!(secret["rows"], 1);
}

#[test]
fn a_server_error_shows_its_sqlstate_once_on_one_line() {
    let src = PgDb::new("sqlstate_src");
    src.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    let dir = TestDir::new();
    dir.ferry()
        .args(["export", &src.url(), "a"])
        .run()
        .success();
    crate::harness::edit_manifests(&dir.path("a"), |v| {
        v["tables"][0]["definition"] =
            serde_json::Value::from(r#"CREATE TABLE "public"."t" ("id" nosuch_type)"#);
    });
    let dst = PgDb::new("sqlstate_dst");
    let run = dir
        .ferry()
        .args(["import", "a", &dst.url(), "--jobs", "1"])
        .run()
        .fails_with(1)
        .says(r#"type "nosuch_type" does not exist [SQLSTATE 42704]"#);
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("does not exist").count(), 1, "{err}");
}

#[test]
fn a_bare_scheme_without_database_url_is_refused() {
    let dir = TestDir::new();
    dir.ferry()
        .args(["export", "postgresql://", "a"])
        .run()
        .fails_with(1)
        .says("postgresql:// names no database and neither DATABASE_URL nor PGDATABASE is set; name one: postgresql://HOST/DBNAME");
    assert!(!dir.path("a").exists());
    let src = PgDb::new("bare");
    src.psql("CREATE TABLE t (id int)");
    dir.ferry()
        .args(["export", "postgres://", "b"])
        .env("DATABASE_URL", &src.url())
        .run()
        .success()
        .says(&format!("exported {}", src.name));
}

#[test]
fn one_dimensional_arrays_are_arrow_lists_and_round_trip_exactly() {
    let dir = TestDir::new();
    let src = PgDb::new("lists");
    src.psql(
        r#"CREATE TABLE arr (
             id integer PRIMARY KEY, t text[], v varchar(5)[], c char(3)[], n name[],
             b boolean[], i2 smallint[], i4 integer[], i8 bigint[], f4 real[], f8 float8[],
             nums numeric[], dims integer[]);
           INSERT INTO arr VALUES
             (1, ARRAY['a', 'b c', NULL, 'NULL', 'q"uo\te', '', 'ünï {,}', ' lead'],
              '{x,yy}', '{ab,c}', '{pg_class}', '{t,f,NULL}', '{-32768,32767}',
              '{-2147483648,0,2147483647}', '{-9223372036854775808,9223372036854775807}',
              '{1.1,-0,NaN,Infinity}', ARRAY['-0', 'NaN', '-Infinity', '5e-324',
              '1.7976931348623157e308', '0.1']::float8[], '{1.50,NaN}', '{1,2}'),
             (2, '{}', NULL, '{}', NULL, '{}', NULL, '{}', NULL, '{}', NULL, '{}', '[0:1]={7,8}'),
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"#,
    );
    dir.ferry()
        .args(["export", &src.url(), "a", "-q"])
        .run()
        .success();
    let manifest = assert_archive_manifests_valid(&dir.path("a"));
    let types: Vec<(String, serde_json::Value)> = manifest["tables"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["type"].clone()))
        .collect();
    let kind = |col: &str| {
        let t = &types.iter().find(|(n, _)| n == col).unwrap().1;
        match t["kind"].as_str().unwrap() {
            "list" => format!("list<{}>", t["element"]["kind"].as_str().unwrap()),
            k => k.to_owned(),
        }
    };
    for (col, want) in [
        ("t", "list<text>"),
        ("v", "list<text>"),
        ("c", "list<text>"),
        ("n", "list<text>"),
        ("b", "list<boolean>"),
        ("i2", "list<int16>"),
        ("i4", "list<int32>"),
        ("i8", "list<int64>"),
        ("f4", "list<float32>"),
        ("f8", "list<float64>"),
        // numeric elements are not (yet) a list; a lower bound of 0 cannot be one.
        ("nums", "engine_text"),
        ("dims", "engine_text"),
    ] {
        assert_eq!(kind(col), want, "column {col}");
    }
    // Back into PostgreSQL: the same values, bit for bit in their text form.
    let dst = PgDb::new("lists_dst");
    dir.ferry()
        .args(["import", "a", &dst.url(), "-q"])
        .run()
        .success();
    assert_same!(dst.data_dump(), src.data_dump());
    dir.ferry()
        .args(["verify", "a", "--against", &dst.url()])
        .run()
        .success();
    // Into SQLite: the JSON arrays the literals always gave.
    dir.ferry()
        .args(["import", "a", "a.db", "-q"])
        .run()
        .success();
    let conn = rusqlite::Connection::open(dir.path("a.db")).unwrap();
    let row: (String, String, String, String, String) = conn
        .query_row("SELECT t, b, i8, f4, f8 FROM arr WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    assert_eq!(
        row.0,
        r#"["a","b c",null,"NULL","q\"uo\\te","","ünï {,}"," lead"]"#
    );
    assert_eq!(row.1, "[true,false,null]");
    assert_eq!(row.2, "[-9223372036854775808,9223372036854775807]");
    assert_eq!(row.3, r#"[1.1,-0.0,"NaN","Infinity"]"#);
    assert_eq!(
        row.4,
        r#"[-0.0,"NaN","-Infinity",5e-324,1.7976931348623157e+308,0.1]"#
    );
    // Read without ferry: pyarrow sees lists.
    let part = dir
        .path("a")
        .join(manifest["tables"][0]["files"][0]["path"].as_str().unwrap());
    let seen = crate::harness::python(
        "import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]); \
         print(t.schema.field('t').type); print(t.column('t')[0].as_py()[:4])",
        &part,
    );
    assert_eq!(seen, "list<element: string>\n['a', 'b c', None, 'NULL']\n");
}

/// A sequential scan of a table larger than a quarter of `shared_buffers` starts where the
/// last scan of it stopped (synchronized scans), so a plain `COPY TO` after a scan that
/// stopped partway starts partway. The export reads every table from its first page: a
/// table written in key order is archived in key order, the same archive every time.
#[test]
fn a_large_table_is_exported_from_its_first_page_after_a_scan_stopped_halfway() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let src = PgDb::new("syncscan");
    let shared: i64 = src
        .psql("SELECT pg_size_bytes(current_setting('shared_buffers'))")
        .trim()
        .parse()
        .unwrap();
    // Rows of about 1 KB, a third more of them than the synchronized-scan threshold.
    let rows = shared / 4 * 4 / 3 / 1000 + 1000;
    src.psql(&format!(
        "CREATE TABLE big (id int, pad text);
         INSERT INTO big SELECT g, repeat('x', 900) FROM generate_series(1, {rows}) g;"
    ));
    let stop_halfway = format!("SELECT id FROM big OFFSET {} LIMIT 1", rows / 2);
    src.psql(&stop_halfway);
    let plain_copy = src.psql("COPY big (id) TO STDOUT");
    assert_ne!(
        plain_copy.lines().next(),
        Some("1"),
        "the premise: the server's own COPY starts where the stopped scan was"
    );
    src.psql(&stop_halfway);

    let dir = TestDir::new();
    dir.ferry()
        .args(["export", &src.url(), "a"])
        .run()
        .success();
    let part = std::fs::File::open(dir.path("a/data/t00001/part-000000.parquet")).unwrap();
    let first = ParquetRecordBatchReaderBuilder::try_new(part)
        .unwrap()
        .with_batch_size(3)
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let ids: Vec<i32> = first
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int32Type>()
        .values()
        .to_vec();
    assert_eq!(ids, [1, 2, 3]);
}

/// A view that `--exclude-column` leaves out takes what belongs to it along: the comments on
/// it and on its columns, which would otherwise name an object the archive no longer
/// creates, and the importer would refuse the archive.
#[test]
fn views_left_out_with_a_column_take_their_comments_along() {
    let dir = TestDir::new();
    let src = torture();
    let run = dir
        .ferry()
        .args(["export", &src.url(), "a", "--exclude-column", "users.name"])
        .run()
        .success();
    let out = run.stderr() + &run.stdout();
    for view in ["user_posts", "top_users"] {
        assert!(out.contains(&format!("view {view} left out")), "{out}");
    }
    let dst = PgDb::new("dst");
    dir.ferry()
        .args(["import", "a", &dst.url()])
        .run()
        .success();
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_views WHERE schemaname = 'app'")
            .trim(),
        "0"
    );
    assert_eq!(
        dst.psql(
            "SELECT count(*) FROM pg_description d JOIN pg_class c ON c.oid = d.objoid \
             WHERE c.relname = 'post_counts' AND d.objsubid > 0"
        )
        .trim(),
        "1",
        "the materialized view stays, with its column's comment"
    );
}

/// `--data-only` into a schema made by `pg_dump --schema-only` of the source (an
/// application's migrations stand-in) loads every value, including the ones that travel as
/// text literals (arrays, ranges, tsvector, inet, composites), which once went into binary
/// COPY raw and failed; and it leaves every sequence past the rows loaded, including one a
/// default draws from without `OWNED BY` (pagila's are all like that).
#[test]
fn data_only_into_a_pg_dump_schema_loads_every_value_and_sequence() {
    let dir = TestDir::new();
    let src = PgDb::new("dosrc");
    src.psql(
        "CREATE TYPE mood AS ENUM ('sad', 'ok');
         CREATE TYPE pair AS (a int, b text);
         CREATE SEQUENCE loose_seq;
         CREATE TABLE loose (id bigint PRIMARY KEY DEFAULT nextval('loose_seq'), tags text[],
           nums int[], span int4range, doc tsvector, addr inet, p pair, m mood, j jsonb);
         CREATE TABLE owned (id serial PRIMARY KEY, loose_id bigint REFERENCES loose);
         INSERT INTO loose (tags, nums, span, doc, addr, p, m, j) VALUES
           ('{a,\"b c\"}', '{1,NULL,3}', '[1,5)', 'a fat cat', '10.0.0.1/8', ROW(1, 'x'), 'ok', '{\"k\": [1]}'),
           (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           ('{}', '{}', 'empty', '', '::1', ROW(NULL, NULL), 'sad', 'null');
         INSERT INTO owned (loose_id) VALUES (1), (3);",
    );
    dir.ferry()
        .args(["export", &src.url(), "a"])
        .run()
        .success();
    let dst = PgDb::new("dodst");
    std::fs::write(dir.path("schema.sql"), src.schema_dump()).unwrap();
    dst.psql_file(&dir.path("schema.sql"));
    dir.ferry()
        .args(["import", "--data-only", "a", &dst.url()])
        .run()
        .success();
    assert_same!(dst.data_dump(), src.data_dump(), "data and sequences");
    dir.ferry()
        .args(["verify", "a", "--against", &dst.url()])
        .run()
        .success();
    assert_eq!(
        dst.psql("INSERT INTO loose DEFAULT VALUES RETURNING id")
            .trim(),
        "4"
    );
}
