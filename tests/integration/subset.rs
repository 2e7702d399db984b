//! Shipping part of a database: `-t`/`-T`/`--exclude-table-data`, `--where`, and
//! foreign-key-consistent subsets, on both engines.
//!
//! The subset tests check ferry's walk against the same rule written independently in SQL:
//! every foreign key becomes rows of an `edges(child, child_id, parent, parent_id)` view, the
//! seeds' descendants are one recursive query and their ancestors another. The fixture has
//! a self-reference (records.parent_id), an FK cycle (teams.captain_id ↔ members.team_id),
//! rows that reference across users, NULL keys, and an unrelated lookup table.

use std::collections::BTreeSet;
use std::path::Path;

use crate::harness::TestDir;
use crate::pg_db::PgDb;

/// Tables, in an order that loads without deferring anything but the cycle.
const TABLES: [&str; 7] = [
    "users",
    "clients",
    "records",
    "notes",
    "teams",
    "members",
    "countries",
];

/// A fixture row: (table, id, [(fk column, value)]).
type Row = (&'static str, i64, Vec<(&'static str, Option<i64>)>);

/// Deterministic rows with cross links.
fn rows() -> Vec<Row> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9e37_79b9;
    let mut next = |m: i64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as i64 + 1
    };
    for u in 1..=20 {
        out.push(("users", u, vec![]));
    }
    for c in 1..=60 {
        out.push(("clients", c, vec![("user_id", Some(next(20)))]));
    }
    for r in 1..=300 {
        // Replies point at an earlier record, often another client's; a few have none.
        let parent = (r > 30 && r % 7 != 0).then(|| next(r - 1));
        out.push((
            "records",
            r,
            vec![("client_id", Some(next(60))), ("parent_id", parent)],
        ));
    }
    for n in 1..=200 {
        let client = (n % 9 != 0).then(|| next(60));
        out.push((
            "notes",
            n,
            vec![("client_id", client), ("user_id", Some(next(20)))],
        ));
    }
    for t in 1..=10 {
        out.push((
            "teams",
            t,
            vec![("captain_id", (t % 3 != 0).then(|| next(40)))],
        ));
    }
    for m in 1..=40 {
        out.push((
            "members",
            m,
            vec![("team_id", Some(next(10))), ("user_id", Some(next(20)))],
        ));
    }
    out
}

/// (child table, column, parent table).
const FKS: [(&str, &str, &str); 8] = [
    ("clients", "user_id", "users"),
    ("records", "client_id", "clients"),
    ("records", "parent_id", "records"),
    ("notes", "client_id", "clients"),
    ("notes", "user_id", "users"),
    ("teams", "captain_id", "members"),
    ("members", "team_id", "teams"),
    ("members", "user_id", "users"),
];

fn ddl(pg: bool) -> String {
    let int = if pg { "integer" } else { "INTEGER" };
    let mut s = String::new();
    s.push_str(&format!(
        "CREATE TABLE users (id {int} PRIMARY KEY, email text NOT NULL UNIQUE);
         CREATE TABLE clients (id {int} PRIMARY KEY, user_id {int} NOT NULL REFERENCES users(id), name text);
         CREATE TABLE records (id {int} PRIMARY KEY, client_id {int} NOT NULL REFERENCES clients(id), parent_id {int} REFERENCES records(id), body text);
         CREATE TABLE notes (id {int} PRIMARY KEY, client_id {int} REFERENCES clients(id), user_id {int} NOT NULL REFERENCES users(id), body text);
         CREATE TABLE members (id {int} PRIMARY KEY, team_id {int}, user_id {int} NOT NULL REFERENCES users(id));
         CREATE TABLE teams (id {int} PRIMARY KEY, captain_id {int} REFERENCES members(id), name text);
         CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
         CREATE INDEX notes_user ON notes (user_id);
         CREATE VIEW user_clients AS SELECT u.email, c.name FROM users u JOIN clients c ON c.user_id = u.id;
         CREATE VIEW client_names AS SELECT name FROM clients;\n"
    ));
    let mut captains = String::new();
    for (table, id, fks) in rows() {
        let mut cols = vec!["id".to_owned()];
        let mut vals = vec![id.to_string()];
        for (c, v) in fks {
            // The cycle: captains are set once the members exist.
            if c == "captain_id" {
                if let Some(v) = v {
                    captains.push_str(&format!(
                        "UPDATE teams SET captain_id = {v} WHERE id = {id};\n"
                    ));
                }
                continue;
            }
            cols.push(c.into());
            vals.push(v.map(|v| v.to_string()).unwrap_or_else(|| "NULL".into()));
        }
        match table {
            "users" => {
                cols.push("email".into());
                vals.push(format!("'u{id}@example.com'"));
            }
            "records" | "notes" => {
                cols.push("body".into());
                vals.push(format!("'{table} {id}'"));
            }
            _ => {}
        }
        s.push_str(&format!(
            "INSERT INTO {table} ({}) VALUES ({});\n",
            cols.join(", "),
            vals.join(", ")
        ));
    }
    s.push_str(&captains);
    s.push_str(
        "INSERT INTO countries VALUES ('de', 'Germany'), ('fr', 'France'), ('jp', 'Japan');\n",
    );
    // The cycle's second half, once both tables hold their rows.
    if pg {
        s.push_str("ALTER TABLE members ADD FOREIGN KEY (team_id) REFERENCES teams(id);\n");
    }
    s
}

fn sqlite_fixture(path: &Path) {
    // SQLite cannot add a foreign key to an existing table: members is declared with it.
    let sql = ddl(false).replace("team_id INTEGER,", "team_id INTEGER REFERENCES teams(id),");
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
}

/// The subset rule in SQL, for seeds given as a query of (table, id): descendants of the
/// seeds, then ancestors of everything so far.
fn expected_sql(seeds: &str) -> String {
    let edges: Vec<String> = FKS
        .iter()
        .map(|(c, col, p)| {
            format!("SELECT '{c}' AS child, id AS child_id, '{p}' AS parent, {col} AS parent_id FROM {c} WHERE {col} IS NOT NULL")
        })
        .collect();
    format!(
        "WITH RECURSIVE edges AS ({}),
         down(t, id) AS ({seeds} UNION SELECT e.child, e.child_id FROM edges e JOIN down d ON e.parent = d.t AND e.parent_id = d.id),
         up(t, id) AS (SELECT t, id FROM down UNION SELECT e.parent, e.parent_id FROM edges e JOIN up u ON e.child = u.t AND e.child_id = u.id)
         SELECT t || ' ' || id FROM up ORDER BY 1",
        edges.join(" UNION ALL ")
    )
}

fn sqlite_lines(path: &Path, sql: &str) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn pg_lines(db: &PgDb, sql: &str) -> BTreeSet<String> {
    db.psql(sql)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `table id` for every row of the keyed tables.
fn all_rows_sql(tables: &[&str]) -> String {
    tables
        .iter()
        .filter(|t| **t != "countries")
        .map(|t| format!("SELECT '{t}' || ' ' || id FROM {t}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

fn count_sqlite(path: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_sqlite_subset_follows_self_references_and_cycles_as_the_rule_written_in_sql() {
    let dir = TestDir::new();
    let src = dir.path("app.db");
    sqlite_fixture(&src);
    std::fs::write(dir.path("ids.txt"), "# captains\n3\n\n17\n").unwrap();
    for (seed_args, seeds_sql) in [
        (
            vec!["--subset", "users:email = 'u2@example.com'"],
            "SELECT 'users', id FROM users WHERE email = 'u2@example.com'".to_owned(),
        ),
        (
            vec![
                "--subset-ids",
                "members=ids.txt",
                "--subset",
                "records:id = 250",
            ],
            "SELECT 'members', id FROM members WHERE id IN (3, 17) UNION SELECT 'records', 250"
                .to_owned(),
        ),
    ] {
        let _ = std::fs::remove_dir_all(dir.path("part"));
        let _ = std::fs::remove_file(dir.path("part.db"));
        let mut args = vec!["export", "app.db", "part"];
        args.extend(seed_args.iter().copied());
        dir.ferry().args(&args).run().success();
        dir.ferry()
            .args(["import", "part", "part.db"])
            .run()
            .success();
        let expected = sqlite_lines(&src, &expected_sql(&seeds_sql));
        let got = sqlite_lines(&dir.path("part.db"), &all_rows_sql(&TABLES));
        similar_asserts::assert_eq!(expected, got, "seeds {seed_args:?}");
        assert!(got.len() > 10 && got.len() < 400, "{} rows", got.len());
        // The lookup table is unrelated to every seed: copied whole.
        assert_eq!(count_sqlite(&dir.path("part.db"), "countries"), 3);
        let fk: Vec<String> = sqlite_lines(
            &dir.path("part.db"),
            "SELECT \"table\" || ' ' || rowid FROM pragma_foreign_key_check",
        )
        .into_iter()
        .collect();
        assert!(fk.is_empty(), "FK violations: {fk:?}");
    }
}

#[test]
fn a_postgresql_subset_follows_self_references_and_cycles_as_the_rule_written_in_sql() {
    let dir = TestDir::new();
    let src = PgDb::new("subset_src");
    src.psql(&ddl(true));
    let seeds = "SELECT 'users'::text, id FROM users WHERE email = 'u7@example.com'";
    let plan = dir
        .ferry()
        .args([
            "export",
            &src.url(),
            "part.tar",
            "--subset",
            "users:email = 'u7@example.com'",
            "--dry-run",
        ])
        .run()
        .success();
    assert!(!dir.path("part.tar").exists(), "a dry run writes nothing");
    let expected = pg_lines(&src, &expected_sql(seeds));
    // The plan counts each table's rows as the subset will hold them.
    for t in ["users", "clients", "records", "notes", "members", "teams"] {
        let n = expected
            .iter()
            .filter(|l| l.starts_with(&format!("{t} ")))
            .count();
        let line = plan
            .stdout()
            .lines()
            .find(|l| l.starts_with(&format!("public.{t} ")))
            .unwrap_or_else(|| panic!("no plan line for {t}:\n{}", plan.stdout()))
            .to_owned();
        assert!(
            line.split_whitespace().any(|w| w == n.to_string()),
            "{t}: expected {n} rows in {line:?}"
        );
    }
    assert!(plan.stdout().contains("seed"), "{}", plan.stdout());
    assert!(plan.stdout().contains("copied whole"), "{}", plan.stdout());

    dir.ferry()
        .args([
            "export",
            &src.url(),
            "part.tar",
            "--subset",
            "users:email = 'u7@example.com'",
        ])
        .run()
        .success();
    let dst = PgDb::new("subset_dst");
    dir.ferry()
        .args(["import", "part.tar", &dst.url()])
        .run()
        .success();
    let got = pg_lines(&dst, &format!("{} ORDER BY 1", all_rows_sql(&TABLES)));
    similar_asserts::assert_eq!(expected, got);
    assert_eq!(dst.psql("SELECT count(*) FROM countries").trim(), "3");
    dir.ferry()
        .args(["inspect", "part.tar"])
        .run()
        .success()
        .says("selection --subset users:email = 'u7@example.com'");
}

#[test]
fn tables_and_rows_are_selected_on_sqlite_with_what_was_left_out_reported() {
    let dir = TestDir::new();
    sqlite_fixture(&dir.path("app.db"));
    let run = dir
        .ferry()
        .args([
            "export",
            "app.db",
            "part",
            "-T",
            "note*",
            "--exclude-table-data",
            "countries",
            "--where",
            "clients:id <= 10",
        ])
        .run()
        .success();
    // records reference clients past 10: reported, not hidden.
    run.says("rows of clients that are not exported");
    dir.ferry()
        .args(["import", "part", "part.db"])
        .run()
        .success();
    let db = dir.path("part.db");
    assert_eq!(count_sqlite(&db, "clients"), 10);
    assert_eq!(count_sqlite(&db, "records"), 300);
    assert_eq!(count_sqlite(&db, "countries"), 0);
    let tables = sqlite_lines(
        &db,
        "SELECT name FROM sqlite_schema WHERE type IN ('table', 'index', 'view')",
    );
    assert!(
        !tables.contains("notes") && !tables.contains("notes_user"),
        "{tables:?}"
    );
    assert!(tables.contains("user_clients"), "{tables:?}");

    // -t keeps only matches; a view on a table left out goes, and says so.
    dir.ferry()
        .args(["export", "app.db", "c", "-t", "c*"])
        .run()
        .success()
        .says("view user_clients left out");
    dir.ferry().args(["import", "c", "c.db"]).run().success();
    let tables = sqlite_lines(
        &dir.path("c.db"),
        "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')",
    );
    let want: BTreeSet<String> = ["clients", "countries", "client_names"]
        .into_iter()
        .map(String::from)
        .collect();
    similar_asserts::assert_eq!(want, tables);

    // Under --strict the dangling rows are refused, and nothing is written.
    dir.ferry()
        .args([
            "export",
            "app.db",
            "strict",
            "--where",
            "clients:id <= 10",
            "--strict",
        ])
        .run()
        .fails_with(1)
        .says("foreign key records(client_id)");
    assert!(!dir.path("strict").exists());
    // A typo is an error, not an empty archive.
    dir.ferry()
        .args(["export", "app.db", "typo", "-t", "cleints"])
        .run()
        .fails_with(1)
        .says("-t \"cleints\" matches no table");
    dir.ferry()
        .args(["export", "app.db", "typo", "--where", "clients id = 1"])
        .run()
        .fails_with(1)
        .says("expected TABLE:CONDITION");
    assert!(!dir.path("typo").exists());
}

#[test]
fn tables_and_rows_are_selected_on_postgresql_with_what_was_left_out_reported() {
    let dir = TestDir::new();
    let src = PgDb::new("select_src");
    src.psql(&ddl(true));
    let run = dir
        .ferry()
        .args([
            "export",
            &src.url(),
            "part",
            "-T",
            "public.note*",
            "--exclude-table-data",
            "countries",
            "--where",
            "clients:id <= 10",
        ])
        .run()
        .success();
    run.says("rows of public.clients that are not exported");
    let dst = PgDb::new("select_dst");
    // The dangling records would break the target's foreign key: the import says so and
    // changes nothing; the same archive without records loads.
    dir.ferry()
        .args(["import", "part", &dst.url()])
        .run()
        .fails_with(1);
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0"
    );
    dir.ferry()
        .args([
            "export",
            &src.url(),
            "part2",
            "-T",
            "note*",
            "-T",
            "records",
            "--exclude-table-data",
            "countries",
            "--where",
            "clients:id <= 10",
        ])
        .run()
        .success();
    dir.ferry()
        .args(["import", "part2", &dst.url()])
        .run()
        .success();
    assert_eq!(dst.psql("SELECT count(*) FROM clients").trim(), "10");
    assert_eq!(dst.psql("SELECT count(*) FROM countries").trim(), "0");
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_catalog.pg_class WHERE relname IN ('notes', 'records', 'notes_user', 'notes_id_seq')").trim(),
        "0"
    );
    dir.ferry()
        .args([
            "export",
            &src.url(),
            "strict",
            "--where",
            "clients:id <= 10",
            "--strict",
        ])
        .run()
        .fails_with(1)
        .says("records_client_id_fkey");
    assert!(!dir.path("strict").exists());
    dir.ferry()
        .args(["export", &src.url(), "typo", "--subset", "nosuch:id = 1"])
        .run()
        .fails_with(1)
        .says("--subset \"nosuch\" matches no table");
}

/// An identity column's sequence has no OWNED BY of its own: its value must leave the
/// archive with its table, or the import refuses the archive for setting a sequence it does
/// not create. A kept table's identity and serial sequences keep their positions.
#[test]
fn a_left_out_tables_identity_sequence_leaves_with_it() {
    let dir = TestDir::new();
    let src = PgDb::new("identity_src");
    src.psql(
        "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);
         CREATE TABLE events (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, kind text);
         CREATE TABLE tags (id serial PRIMARY KEY, name text);
         INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 7) g;
         INSERT INTO events (kind) SELECT 'k' || g FROM generate_series(1, 5) g;
         INSERT INTO tags (name) VALUES ('a'), ('b');",
    );
    dir.ferry()
        .args(["export", &src.url(), "ev", "-t", "events", "-t", "tags"])
        .run()
        .success()
        .says("sequence users_id_seq left out: it belongs to a table that is not exported");
    let dst = PgDb::new("identity_dst");
    dir.ferry()
        .args(["import", "ev", &dst.url()])
        .run()
        .success();
    assert_eq!(
        dst.psql("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_catalog.pg_class WHERE relkind = 'S'")
            .trim(),
        "events_id_seq,tags_id_seq"
    );
    // The next ids follow the source's, not a fresh sequence's.
    assert_eq!(
        dst.psql("INSERT INTO events (kind) VALUES ('new') RETURNING id")
            .trim(),
        "6"
    );
    assert_eq!(
        dst.psql("INSERT INTO tags (name) VALUES ('c') RETURNING id")
            .trim(),
        "3"
    );
}

/// A routine whose signature uses a left-out table's row type cannot be created without it
/// (pagila's `rewards_report` returns `SETOF customer`): it leaves with the table, noted,
/// as do an aggregate built on it, its comment, a SQL-standard body that names the table, and
/// the views that call it (through other views too, with their comments). A routine that
/// only names the table in a quoted body stays: such bodies are not checked when the import
/// creates them.
#[test]
fn routines_typed_by_a_left_out_table_leave_with_it() {
    let dir = TestDir::new();
    let src = PgDb::new("routine_src");
    src.psql(
        "CREATE TABLE customer (id int PRIMARY KEY, name text);
         CREATE TABLE rental (id int PRIMARY KEY, customer_id int);
         INSERT INTO customer VALUES (1, 'a'); INSERT INTO rental VALUES (1, 1), (2, 1);
         CREATE FUNCTION best_customers() RETURNS SETOF customer LANGUAGE sql AS 'SELECT * FROM customer';
         COMMENT ON FUNCTION best_customers() IS 'the best ones';
         CREATE FUNCTION pick(customer[], customer) RETURNS customer[] LANGUAGE sql AS 'SELECT $1 || $2';
         CREATE AGGREGATE gather(customer) (SFUNC = pick, STYPE = customer[]);
         CREATE FUNCTION rentals_of(int) RETURNS bigint LANGUAGE sql
           AS 'SELECT count(*) FROM rental r JOIN customer c ON c.id = r.customer_id WHERE c.id = $1';
         CREATE FUNCTION customer_count() RETURNS bigint LANGUAGE sql
           BEGIN ATOMIC SELECT count(*) FROM customer; END;
         CREATE VIEW best AS SELECT name FROM best_customers();
         COMMENT ON VIEW best IS 'a view on a function';
         CREATE VIEW best_names AS SELECT upper(name) AS name FROM best;
         CREATE VIEW rentals AS SELECT count(*) AS n FROM rental;",
    );
    dir.ferry()
        .args(["export", &src.url(), "part", "-t", "rental"])
        .run()
        .success()
        .says("function best_customers() left out: it needs a table that is not exported")
        .says("function pick(public.customer[], public.customer) left out")
        .says("aggregate gather(public.customer) left out")
        .says("function customer_count() left out")
        .says("view best left out: it calls a function left out above")
        .says("view best_names left out");
    let dst = PgDb::new("routine_dst");
    dir.ferry()
        .args(["import", "part", &dst.url()])
        .run()
        .success();
    assert_eq!(
        dst.psql("SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_catalog.pg_proc WHERE pronamespace = 'public'::regnamespace")
            .trim(),
        "rentals_of"
    );
    assert_eq!(dst.psql("SELECT count(*) FROM rental").trim(), "2");
    assert_eq!(
        dst.psql(
            "SELECT string_agg(viewname, ',') FROM pg_catalog.pg_views WHERE schemaname = 'public'"
        )
        .trim(),
        "rentals"
    );
}

/// `-t` selects the tables it names, as pg_dump's does: a partitioned table named alone
/// comes without its partitions' rows, and the export says so.
#[test]
fn a_partitioned_table_selected_without_its_partitions_is_reported() {
    let dir = TestDir::new();
    let src = PgDb::new("parted_src");
    src.psql(
        "CREATE TABLE m (id int, at date) PARTITION BY RANGE (at);
         CREATE TABLE m1 PARTITION OF m FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
         CREATE TABLE m2 PARTITION OF m FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
         INSERT INTO m VALUES (1, '2020-05-01'), (2, '2021-05-01');",
    );
    let alone = dir
        .ferry()
        .args(["export", &src.url(), "alone", "-t", "m"])
        .run()
        .success()
        .says("table public.m is partitioned and holds no rows itself: 2 of its partitions (public.m1, ...) are not selected");
    assert!(alone.stderr().contains("warning:"), "{}", alone.stderr());
    let all = dir
        .ferry()
        .args(["export", &src.url(), "all", "-t", "m*"])
        .run()
        .success();
    assert!(!all.stderr().contains("is partitioned"), "{}", all.stderr());
}

/// The walk carries key values as text and casts them back to the key's type without its
/// modifier; for `char(3)` and `bit(3)` that cast once meant a length of 1, so the subset
/// found none of the seed's children (world's `countrylanguage` of `country` 'FRA').
#[test]
fn a_subset_follows_fixed_length_character_and_bit_keys() {
    let dir = TestDir::new();
    let src = PgDb::new("bpchar_src");
    src.psql(
        "CREATE TABLE country (code char(3) PRIMARY KEY, name text);
         CREATE TABLE language (code char(3) REFERENCES country, lang text);
         CREATE TABLE flag (bits bit(3) PRIMARY KEY, code char(3) REFERENCES country);
         CREATE TABLE flag_use (bits bit(3) REFERENCES flag, note text);
         INSERT INTO country VALUES ('FRA', 'France'), ('DEU', 'Germany'), ('FR', 'padded');
         INSERT INTO language VALUES ('FRA', 'French'), ('FRA', 'Breton'), ('DEU', 'German'), ('FR', 'x');
         INSERT INTO flag VALUES (B'101', 'FRA'), (B'011', 'DEU');
         INSERT INTO flag_use VALUES (B'101', 'a'), (B'101', 'b'), (B'011', 'c');",
    );
    dir.ferry()
        .args([
            "export",
            &src.url(),
            "fra",
            "--subset",
            "country:code = 'FRA'",
        ])
        .run()
        .success();
    let dst = PgDb::new("bpchar_dst");
    dir.ferry()
        .args(["import", "fra", &dst.url()])
        .run()
        .success();
    assert_eq!(
        dst.psql("SELECT string_agg(lang, ',' ORDER BY lang) FROM language")
            .trim(),
        "Breton,French"
    );
    assert_eq!(
        dst.psql("SELECT string_agg(note, ',' ORDER BY note) FROM flag_use")
            .trim(),
        "a,b"
    );
    assert_eq!(
        dst.psql("SELECT string_agg(code, ',') FROM country").trim(),
        "FRA"
    );
}

#[test]
fn a_where_inside_a_subset_reports_the_rows_it_leaves_dangling() {
    let dir = TestDir::new();
    sqlite_fixture(&dir.path("app.db"));
    let args = [
        "export",
        "app.db",
        "s",
        "--subset",
        "users:email = 'u2@example.com'",
        "--where",
        "clients:id <= 10",
    ];
    dir.ferry()
        .args(args)
        .run()
        .success()
        .says("that are not exported (foreign key");
    let mut strict = args.to_vec();
    strict[2] = "t";
    strict.push("--strict");
    dir.ferry()
        .args(&strict)
        .run()
        .fails_with(1)
        .says("--strict");
    assert!(!dir.path("t").exists());
}
