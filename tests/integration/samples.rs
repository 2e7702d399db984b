//! Real public sample databases (samples/real), in every direction. They hold what our own
//! fixtures did not: bracketed names, a user-defined aggregate, a partitioned table,
//! domains, enums, arrays, tsvector, views built on PostgreSQL-only syntax.

use std::path::PathBuf;

use crate::harness::{TestDir, assert_same};
use crate::pg_db::PgDb;
use crate::sqlite_db;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/real")).join(name)
}

/// The `skipped:` lines of a run.
fn skipped(run: &crate::harness::Run) -> Vec<String> {
    (run.stdout() + &run.stderr())
        .lines()
        .filter(|l| l.starts_with("skipped:"))
        .map(str::to_owned)
        .collect()
}

fn count(conn: &rusqlite::Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn chinook_round_trips_in_every_direction() {
    let dir = TestDir::new();
    let src = sample("chinook.sqlite");
    let src_arg = src.to_str().unwrap();
    dir.ferry()
        .args(["export", src_arg, "lite"])
        .run()
        .success();

    // SQLite → SQLite: exact.
    dir.ferry()
        .args(["import", "lite", "copy.db"])
        .run()
        .success();
    assert_same!(sqlite_db::dump(&dir.path("copy.db")), sqlite_db::dump(&src));

    // SQLite → PostgreSQL: nothing skipped, every value where the mapping puts it.
    let pg = PgDb::new("chinook");
    let run = dir
        .ferry()
        .args(["import", "lite", &pg.url()])
        .run()
        .success();
    assert_eq!(skipped(&run), Vec::<String>::new());
    dir.ferry()
        .args(["verify", "lite", "--against", &pg.url()])
        .run()
        .success();
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'")
            .trim(),
        "22",
        "11 primary keys and Chinook's 11 foreign-key indexes"
    );

    // PostgreSQL → SQLite and PostgreSQL → PostgreSQL.
    dir.ferry()
        .args(["export", &pg.url(), "pg"])
        .run()
        .success();
    let run = dir
        .ferry()
        .args(["import", "pg", "back.db"])
        .run()
        .success();
    assert_eq!(skipped(&run), Vec::<String>::new());
    dir.ferry()
        .args(["verify", "pg", "--against", "back.db"])
        .run()
        .success();
    let a = rusqlite::Connection::open(&src).unwrap();
    let b = rusqlite::Connection::open(dir.path("back.db")).unwrap();
    for t in [
        "Album",
        "Artist",
        "Customer",
        "Employee",
        "Genre",
        "Invoice",
        "InvoiceLine",
        "MediaType",
        "Playlist",
        "PlaylistTrack",
        "Track",
    ] {
        assert_eq!(count(&a, t), count(&b, &t.to_lowercase()), "{t}");
    }
    let pg2 = PgDb::new("chinook2");
    dir.ferry()
        .args(["import", "pg", &pg2.url()])
        .run()
        .success();
    assert_same!(pg2.schema_dump(), pg.schema_dump());
    assert_same!(pg2.data_dump(), pg.data_dump());
}

#[test]
fn pagila_round_trips_in_every_direction() {
    let src = PgDb::new("pagila");
    src.psql_file(&sample("pagila-schema.sql"));
    src.psql_file(&sample("pagila-rows.sql"));
    let dir = TestDir::new();
    let run = dir
        .ferry()
        .args(["export", &src.url(), "pagila.tar"])
        .run()
        .success();
    assert!(
        !run.stderr().contains("warning"),
        "every pagila object is carried: {}",
        run.stderr()
    );

    // PostgreSQL → PostgreSQL, serial and parallel: the same schema and data.
    // pagila's rewards_report is SECURITY DEFINER: its code runs with the importing role's
    // rights for whoever calls it, which ferry restores only when told the archive is
    // trusted.
    let dst = PgDb::new("pagila_refused");
    dir.ferry()
        .args(["import", "pagila.tar", &dst.url()])
        .run()
        .fails_with(1)
        .says("rewards_report")
        .says("--trust-archive");
    for jobs in ["1", "2"] {
        let dst = PgDb::new("pagila_copy");
        dir.ferry()
            .args([
                "import",
                "pagila.tar",
                &dst.url(),
                "--jobs",
                jobs,
                "--trust-archive",
            ])
            .run()
            .success();
        assert_same!(dst.schema_dump(), src.schema_dump());
        assert_same!(dst.data_dump(), src.data_dump());
        let actors = dst.psql("SELECT actors FROM public.film_list WHERE fid = 1");
        let mut actors: Vec<&str> = actors.trim().split(", ").collect();
        actors.sort();
        assert_eq!(
            actors,
            ["NICK WAHLBERG", "PENELOPE GUINESS"],
            "the view over the user-defined aggregate works"
        );
    }

    // PostgreSQL → SQLite: only what SQLite has no place for is skipped, each with its
    // reason; the views that use group_concat and the partitioned payments arrive.
    let run = dir
        .ferry()
        .args(["import", "pagila.tar", "pagila.db"])
        .run()
        .success();
    let allowed = [
        "SQLite has no user-defined types",
        "user-defined functions, procedures and aggregates do not exist in SQLite",
        "standalone sequences do not exist in SQLite",
        "SQLite has no materialized views",
        "PL/pgSQL triggers do not translate to SQLite",
        "SQLite has no comments",
        "SQLite has no GIST indexes",
        "index rental_category: its table rental_by_category is not in the archive",
        "SQLite has sequences only for an INTEGER PRIMARY KEY AUTOINCREMENT",
        "view actor_info: its definition does not translate to SQLite (no such function: array_agg)",
    ];
    for line in skipped(&run) {
        assert!(
            allowed.iter().any(|a| line.contains(a)),
            "skipped something SQLite could hold: {line}"
        );
    }
    let db = rusqlite::Connection::open(dir.path("pagila.db")).unwrap();
    // What is reported skipped is not in the file (a failed attempt is rolled back).
    let actor_info: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'actor_info'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(actor_info, 0, "the skipped view actor_info is not created");
    let film_list: Vec<String> = db
        .prepare("SELECT fid || '|' || actors FROM film_list ORDER BY fid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(film_list.len(), 2);
    assert!(film_list[0].starts_with("1|"), "{film_list:?}");
    assert_eq!(
        count(&db, "payment"),
        2,
        "both partitions' rows in one table"
    );
    let features: String = db
        .query_row(
            "SELECT special_features FROM film WHERE film_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(features, r#"["Deleted Scenes","Behind the Scenes"]"#);
    dir.ferry()
        .args(["verify", "pagila.tar", "--against", "pagila.db"])
        .run()
        .success();
}
