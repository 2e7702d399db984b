//! Shapes that real databases have and our own fixtures did not: Chinook's bracketed names,
//! desktop applications' double-quoted defaults and NOCASE columns, pagila's aggregates,
//! Sakila's rules, pgloader's leftover sqlite_stat1, money, composites and arrays with
//! bounds. Each is checked value by value or object by object after the migration.

use crate::harness::TestDir;
use crate::pg_db::PgDb;

fn sqlite(path: &std::path::Path, sql: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

const DESKTOP: &str = r#"
CREATE TABLE [Artist] ([ArtistId] INTEGER PRIMARY KEY NOT NULL, [Name] NVARCHAR(120));
CREATE TABLE `Album` (`AlbumId` INTEGER PRIMARY KEY NOT NULL, `Title` NVARCHAR(160) NOT NULL,
  `ArtistId` INTEGER NOT NULL REFERENCES [Artist]([ArtistId]));
CREATE INDEX [IFK_AlbumArtistId] ON [Album] ([ArtistId]);
CREATE INDEX `album_title` ON `Album` (`Title` COLLATE NOCASE);
CREATE VIEW [ArtistAlbums] AS SELECT [Artist].[Name], `Album`.`Title` FROM [Album]
  JOIN [Artist] ON [Artist].[ArtistId] = [Album].[ArtistId] WHERE [Artist].[Name] <> 'Name';
CREATE TABLE books (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  title TEXT NOT NULL DEFAULT "",
  isbn TEXT NOT NULL DEFAULT "isbn",
  meta JSON NOT NULL DEFAULT "{}",
  email TEXT COLLATE NOCASE UNIQUE,
  added DATETIME NOT NULL DEFAULT current_date,
  seen_at TIMESTAMP NOT NULL DEFAULT 0
);
INSERT INTO Artist VALUES (1, 'AC/DC'), (2, 'Accept');
INSERT INTO Album VALUES (1, 'For Those About To Rock', 1), (2, 'Balls to the Wall', 2);
INSERT INTO books (title, email, added, seen_at) VALUES
  ('Dune', 'Ann@Example.com', '2024-01-02 00:00:00', 1700000000);
"#;

#[test]
fn a_desktop_sqlite_database_keeps_its_names_defaults_and_case_rules_in_postgresql() {
    let dir = TestDir::new();
    sqlite(&dir.path("app.db"), DESKTOP);
    dir.ferry()
        .args(["export", "app.db", "app"])
        .run()
        .success();
    let pg = PgDb::new("realworld");
    let run = dir
        .ferry()
        .args(["import", "app", &pg.url()])
        .run()
        .success();
    let out = run.stderr() + &run.stdout();
    assert!(
        !out.lines().any(|l| l.starts_with("skipped:")),
        "nothing here is beyond PostgreSQL:\n{out}"
    );

    // Bracket and backtick names: the indexes exist on the right columns.
    let indexes = pg.psql(
        "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname IN ('ifk_albumartistid', 'album_title') ORDER BY 1",
    );
    assert_eq!(
        indexes.trim(),
        "album_title: CREATE INDEX album_title ON public.album USING btree (lower((title)::text))\n\
         ifk_albumartistid: CREATE INDEX ifk_albumartistid ON public.album USING btree (artistid)"
    );
    // The view, and its rows.
    assert_eq!(
        pg.psql("SELECT name || '|' || title FROM public.artistalbums ORDER BY 1")
            .trim(),
        "AC/DC|For Those About To Rock\nAccept|Balls to the Wall"
    );

    // Double-quoted string defaults, current_date on a timestamp, an epoch default: an
    // INSERT that names only the title works as it did in SQLite.
    pg.psql("INSERT INTO public.books (title) VALUES ('Emma')");
    assert_eq!(
        pg.psql(
            "SELECT isbn || '|' || meta::text || '|' || (added = (now() AT TIME ZONE 'UTC')::date) || '|' || seen_at FROM public.books WHERE title = 'Emma'"
        )
        .trim(),
        "isbn|{}|true|1970-01-01 00:00:00"
    );
    pg.psql("INSERT INTO public.books DEFAULT VALUES");
    assert_eq!(
        pg.psql("SELECT count(*) FROM public.books WHERE title = ''")
            .trim(),
        "1"
    );

    // A NOCASE UNIQUE column stays case-insensitive.
    let err =
        pg.psql_err("INSERT INTO public.books (title, email) VALUES ('x', 'ann@EXAMPLE.com')");
    assert!(err.contains("duplicate key"), "{err}");
}

#[test]
fn aggregates_rules_and_schema_comments_round_trip_in_postgresql() {
    let src = PgDb::new("rw_src");
    src.psql(
        "CREATE FUNCTION public._group_concat(text, text) RETURNS text LANGUAGE sql IMMUTABLE AS
           $$ SELECT CASE WHEN $2 IS NULL THEN $1 WHEN $1 IS NULL THEN $2 ELSE $1 || ', ' || $2 END $$;
         CREATE AGGREGATE public.group_concat(text) (SFUNC = public._group_concat, STYPE = text);
         CREATE AGGREGATE public.total(numeric) (SFUNC = numeric_add, STYPE = numeric, INITCOND = '0');
         COMMENT ON AGGREGATE public.total(numeric) IS 'sums';
         CREATE TABLE public.actor (id int PRIMARY KEY, name text);
         CREATE TABLE public.actor_log (id int, name text);
         CREATE RULE actor_log_insert AS ON INSERT TO public.actor DO ALSO
           INSERT INTO public.actor_log VALUES (NEW.id, NEW.name);
         CREATE VIEW public.names AS SELECT public.group_concat(name) AS all_names FROM public.actor;
         COMMENT ON SCHEMA public IS 'the sample schema';
         INSERT INTO public.actor VALUES (1, 'a'), (2, 'b');",
    );
    let dir = TestDir::new();
    let run = dir
        .ferry()
        .args(["export", &src.url(), "pg.tar"])
        .run()
        .success();
    assert!(!run.stderr().contains("aggregate"), "{}", run.stderr());
    for jobs in ["1", "2"] {
        let dst = PgDb::new("rw_dst");
        dir.ferry()
            .args(["import", "pg.tar", &dst.url(), "--jobs", jobs])
            .run()
            .success();
        crate::harness::assert_same!(dst.schema_dump(), src.schema_dump());
        assert_eq!(
            dst.psql("SELECT all_names FROM public.names").trim(),
            "a, b"
        );
        dst.psql("INSERT INTO public.actor VALUES (3, 'c')");
        assert_eq!(
            dst.psql("SELECT string_agg(name, ',' ORDER BY id) FROM public.actor_log")
                .trim(),
            "a,b,c",
            "the rule fires in the copy"
        );
        assert_eq!(
            dst.psql("SELECT public.total(id) FROM public.actor").trim(),
            "6"
        );
    }
    // Into SQLite, the same objects are reported, never silently dropped.
    let run = dir
        .ferry()
        .args(["import", "pg.tar", "app.db"])
        .run()
        .success();
    let err = run.stderr();
    for needle in [
        "skipped: aggregate group_concat",
        "skipped: rule actor_log_insert",
    ] {
        assert!(err.contains(needle), "{needle}:\n{err}");
    }
}

#[test]
fn postgresql_values_keep_their_meaning_in_sqlite() {
    let src = PgDb::new("rw_values");
    src.psql(
        "SET lc_monetary = 'C';
         CREATE TYPE public.address AS (street text, number int, verified boolean, score float8);
         CREATE TABLE public.prices (id int PRIMARY KEY, price money, home public.address, slots int[]);
         INSERT INTO public.prices VALUES
           (1, '-0.01', ROW('Main St', 42, true, 1.5), '[0:2]={7,8,9}'),
           (2, '1234.56', ROW('a \"quoted\", street', NULL, false, NULL), '{1,2}'),
           (3, NULL, NULL, NULL);
         CREATE TABLE public.sqlite_stat1 (tbl text, idx text, stat text);
         INSERT INTO public.sqlite_stat1 VALUES ('prices', NULL, '3');",
    );
    let dir = TestDir::new();
    dir.ferry()
        .args(["export", &src.url(), "pg"])
        .run()
        .success();
    let run = dir.ferry().args(["import", "pg", "app.db"]).run().success();
    let err = run.stderr();
    assert!(
        err.contains("column prices.slots: 1 array value(s) had lower bounds other than 1"),
        "{err}"
    );
    assert!(
        err.contains("table public.sqlite_stat1 is named _sqlite_stat1"),
        "{err}"
    );
    let conn = rusqlite::Connection::open(dir.path("app.db")).unwrap();
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> = conn
        .prepare("SELECT price, home, slots FROM prices ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                Some("-0.01".into()),
                Some(r#"{"street":"Main St","number":42,"verified":true,"score":1.5}"#.into()),
                Some("[7,8,9]".into())
            ),
            (
                Some("1234.56".into()),
                Some(
                    r#"{"street":"a \"quoted\", street","number":null,"verified":false,"score":null}"#
                        .into()
                ),
                Some("[1,2]".into())
            ),
            (None, None, None),
        ]
    );
    let stat: String = conn
        .query_row("SELECT stat FROM _sqlite_stat1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stat, "3");
    // --numeric real: money as its amount in REAL.
    dir.ferry()
        .args(["import", "pg", "real.db", "--numeric", "real"])
        .run()
        .success();
    let conn = rusqlite::Connection::open(dir.path("real.db")).unwrap();
    let price: f64 = conn
        .query_row("SELECT price FROM prices WHERE id = 2", [], |r| r.get(0))
        .unwrap();
    assert_eq!(price, 1234.56);
}

#[test]
fn data_only_never_reuses_an_id_that_sqlite_sequence_promised() {
    let dir = TestDir::new();
    sqlite(
        &dir.path("app.db"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);
         INSERT INTO notes (body) VALUES ('a'), ('b'), ('c'), ('d'), ('e');
         DELETE FROM notes WHERE id > 2;",
    );
    dir.ferry()
        .args(["export", "app.db", "app"])
        .run()
        .success();
    let pg = PgDb::new("rw_seq");
    pg.psql(
        "CREATE TABLE notes (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, body text)",
    );
    dir.ferry()
        .args(["import", "app", &pg.url(), "--data-only"])
        .run()
        .success();
    assert_eq!(
        pg.psql("INSERT INTO notes (body) VALUES ('f') RETURNING id")
            .trim(),
        "6",
        "ids 3 to 5 were handed out by SQLite and must not come back"
    );
}

const TRIGGERS: &str = r#"
CREATE TABLE doc (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  locked BOOLEAN NOT NULL DEFAULT 0,
  updated_at DATETIME
);
CREATE TABLE doc_log (id INTEGER PRIMARY KEY, doc_id INTEGER, what TEXT, at DATETIME);
CREATE TRIGGER doc_touch AFTER UPDATE ON doc FOR EACH ROW
  BEGIN UPDATE doc SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id; END;
CREATE TRIGGER doc_deleted AFTER DELETE ON doc
  BEGIN INSERT INTO doc_log (doc_id, what, at) VALUES (OLD.id, 'deleted: ' || OLD.title, datetime('now')); END;
CREATE TRIGGER doc_size BEFORE INSERT ON doc
  BEGIN SELECT RAISE(ABORT, 'size must not be negative') WHERE NEW.size < 0; END;
CREATE TRIGGER doc_locked BEFORE UPDATE ON doc WHEN OLD.locked = 1
  BEGIN SELECT RAISE(ABORT, 'doc is locked'); END;
CREATE TRIGGER doc_odd AFTER INSERT ON doc BEGIN DELETE FROM doc_log WHERE doc_id = NEW.id; END;
INSERT INTO doc (id, title, size, locked, updated_at) VALUES
  (1, 'draft', 3, 0, '2020-01-01 00:00:00'), (2, 'final', 5, 1, '2020-01-01 00:00:00');
"#;

#[test]
fn sqlite_triggers_of_the_common_shapes_become_plpgsql_triggers() {
    let dir = TestDir::new();
    sqlite(&dir.path("app.db"), TRIGGERS);
    dir.ferry()
        .args(["export", "app.db", "app"])
        .run()
        .success();
    let pg = PgDb::new("rw_triggers");
    let run = dir
        .ferry()
        .args(["import", "app", &pg.url()])
        .run()
        .success();
    let out = run.stdout() + &run.stderr();
    for name in ["doc_touch", "doc_deleted", "doc_size", "doc_locked"] {
        assert!(
            out.contains(&format!("trigger {name}: translated to a PL/pgSQL trigger")),
            "{name}:\n{out}"
        );
    }
    // The fourth shape is not one of them: reported, not guessed.
    assert!(
        out.lines()
            .any(|l| l.starts_with("skipped: trigger doc_odd") && l.contains("recreate it")),
        "{out}"
    );
    // The loaded rows kept their values: the triggers did not fire during the load.
    assert_eq!(
        pg.psql("SELECT string_agg(updated_at::text, ',' ORDER BY id) FROM public.doc")
            .trim(),
        "2020-01-01 00:00:00,2020-01-01 00:00:00"
    );

    // Touch: an update sets updated_at.
    pg.psql("UPDATE public.doc SET title = 'draft 2' WHERE id = 1");
    assert_eq!(
        pg.psql("SELECT updated_at > '2024-01-01' FROM public.doc WHERE id = 1")
            .trim(),
        "t"
    );
    // Guard with WHEN: the locked row refuses updates, with SQLite's message.
    let err = pg.psql_err("UPDATE public.doc SET title = 'x' WHERE id = 2");
    assert!(err.contains("doc is locked"), "{err}");
    // Guard with a condition.
    let err = pg.psql_err("INSERT INTO public.doc (id, title, size) VALUES (3, 'bad', -1)");
    assert!(err.contains("size must not be negative"), "{err}");
    pg.psql("INSERT INTO public.doc (id, title, size) VALUES (3, 'ok', 1)");
    // Audit: a delete is logged in the other table.
    pg.psql("DELETE FROM public.doc WHERE id = 3");
    assert_eq!(
        pg.psql("SELECT doc_id || '|' || what || '|' || (at > '2024-01-01') FROM public.doc_log")
            .trim(),
        "3|deleted: ok|true"
    );
}

/// Applications register collations of their own (Anki's `unicase`), and SQLite refuses to
/// plan a query on their files without them: the rows are read anyway, in b-tree order,
/// and only what would need the unknown order fails, with its name.
#[test]
fn a_collation_only_the_application_defines_is_read_around_and_reported() {
    let dir = TestDir::new();
    let app = rusqlite::Connection::open(dir.path("app.db")).unwrap();
    app.create_collation("unicase", |a: &str, b: &str| {
        a.to_lowercase().cmp(&b.to_lowercase())
    })
    .unwrap();
    app.execute_batch(
        "CREATE TABLE decks (id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE unicase);
         CREATE UNIQUE INDEX idx_decks_name ON decks (name);
         CREATE TABLE fields (ntid INTEGER NOT NULL, ord INTEGER NOT NULL,
           name TEXT NOT NULL COLLATE unicase,
           label TEXT GENERATED ALWAYS AS (name || '#' || ord) COLLATE unicase,
           PRIMARY KEY (ntid, ord)) WITHOUT ROWID;
         CREATE UNIQUE INDEX idx_fields_name_ntid ON fields (name, ntid);
         INSERT INTO decks VALUES (1, 'Default'), (2, 'spanish'), (3, 'Biology');
         INSERT INTO fields VALUES (7, 0, 'Front'), (7, 1, 'back'), (8, 0, 'Front');
         ANALYZE;",
    )
    .unwrap();
    drop(app);
    let plain = rusqlite::Connection::open(dir.path("app.db")).unwrap();
    assert!(
        plain
            .prepare("SELECT name FROM fields ORDER BY ntid, ord")
            .is_err(),
        "SQLite itself refuses to plan on this file"
    );

    dir.ferry()
        .args(["export", "app.db", "app"])
        .run()
        .success();
    dir.ferry().args(["verify", "app"]).run().success();

    // A filter on the collated column needs the application's order: no archive.
    dir.ferry()
        .args([
            "export",
            "app.db",
            "some",
            "--where",
            "decks:name = 'default'",
        ])
        .run()
        .fails_with(1)
        .says("collation unicase");
    assert!(!dir.path("some").exists(), "a failed export leaves nothing");

    // SQLite would have to store the text in that order: refused, no file.
    dir.ferry()
        .args(["import", "app", "copy.db"])
        .run()
        .fails_with(1)
        .says("no such collation sequence: unicase");
    assert!(
        !dir.path("copy.db").exists(),
        "a failed import leaves nothing"
    );

    // PostgreSQL gets every row, and the report says what the collation became.
    let pg = PgDb::new("appcoll");
    let run = dir
        .ferry()
        .args(["import", "app", &pg.url()])
        .run()
        .success();
    let out = run.stderr() + &run.stdout();
    for column in ["decks.name", "fields.name", "fields.label"] {
        assert!(
            out.contains(&format!("column {column}: COLLATE unicase dropped")),
            "{column}'s collation is reported:\n{out}"
        );
    }
    assert_eq!(
        pg.psql("SELECT string_agg(name, ',' ORDER BY id) FROM public.decks")
            .trim(),
        "Default,spanish,Biology"
    );
    assert_eq!(
        pg.psql("SELECT string_agg(concat_ws(':', ntid, ord, name), ',' ORDER BY ntid, ord) FROM public.fields")
            .trim(),
        "7:0:Front,7:1:back,8:0:Front"
    );
}
