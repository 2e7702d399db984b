//! Masking on export: the secret never enters the archive, joins survive, and the same key
//! gives the same archive.

use std::path::Path;

use crate::harness::TestDir;
use crate::pg_db::PgDb;

const SHOP: &str = "
CREATE TABLE customers (email text PRIMARY KEY, name text NOT NULL, phone text, age integer CHECK (age > 0), code varchar(8));
CREATE TABLE wide (id bigint PRIMARY KEY);
CREATE TABLE narrow (id integer PRIMARY KEY, wide_id integer REFERENCES wide(id));
CREATE TABLE orders (id integer PRIMARY KEY, customer text NOT NULL REFERENCES customers(email), total numeric(10,2));
CREATE TABLE tickets (id integer PRIMARY KEY, opened_by text REFERENCES customers(email), body text);
INSERT INTO customers SELECT 'cust' || g || '@corp.example', 'Name ' || g, '+49 170 ' || g, 20 + g FROM generate_series(1, 50) g;
INSERT INTO orders SELECT g, 'cust' || (g % 50 + 1) || '@corp.example', g * 1.5 FROM generate_series(1, 200) g;
INSERT INTO tickets SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'cust' || (g % 7 + 1) || '@corp.example' END, 'help ' || g FROM generate_series(1, 30) g;
";

/// The join answers that must not change: per customer (by an unmasked attribute), how
/// many orders and tickets it has.
const JOINS: &str = "SELECT c.age, count(DISTINCT o.id), count(DISTINCT t.id)
    FROM customers c LEFT JOIN orders o ON o.customer = c.email LEFT JOIN tickets t ON t.opened_by = c.email
    GROUP BY c.age ORDER BY c.age";

/// Every byte of every file of an archive directory, and every value of its Parquet files
/// decoded (their pages are compressed, so the raw bytes alone would prove nothing).
fn archive_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
            if p.extension().is_some_and(|x| x == "parquet") {
                use parquet::file::reader::{FileReader, SerializedFileReader};
                let r = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
                for row in r.get_row_iter(None).unwrap() {
                    out.push_str(&row.unwrap().to_string());
                    out.push('\n');
                }
            }
        }
    }
    out
}

fn data_checksums(dir: &Path) -> Vec<(String, String)> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["files"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_hashed_text_key_keeps_every_join_and_leaves_no_original_in_the_archive() {
    let dir = TestDir::new();
    let src = PgDb::new("mask_src");
    src.psql(SHOP);
    std::fs::write(dir.path("key"), "correct horse battery staple\n").unwrap();
    let export = |name: &str, key: &str| {
        dir.ferry()
            .args([
                "export",
                &src.url(),
                name,
                "--mask",
                "customers.email=hash",
                "--mask",
                "*.phone=null",
                "--mask",
                "customers.name=const:anonymous",
                "--mask-key-file",
                key,
            ])
            .run()
            .success()
    };
    export("a", "key")
        .says("column public.orders.customer masked (hash)")
        .says("column public.tickets.opened_by masked (hash)");
    let text = archive_text(&dir.path("a"));
    // Decoding works: unmasked values are there.
    assert!(text.contains("help 17"), "Parquet values were not decoded");
    for secret in ["corp.example", "Name 1", "+49 170", "cust1"] {
        assert!(!text.contains(secret), "{secret:?} is in the archive");
    }
    // The key is in no file either; the rules are recorded by name.
    assert!(!text.contains("correct horse"));
    assert!(text.contains("\"rule\": \"hash\"") || text.contains("\"rule\":\"hash\""));

    let dst = PgDb::new("mask_dst");
    dir.ferry()
        .args(["import", "a", &dst.url()])
        .run()
        .success();
    similar_asserts::assert_eq!(src.psql(JOINS), dst.psql(JOINS));
    assert_eq!(
        dst.psql("SELECT count(*), count(DISTINCT email), min(name), max(name), count(phone) FROM customers").trim(),
        "50|50|anonymous|anonymous|0"
    );
    // A masked table has no digest of its source's rows: verify compares its rows with the
    // archive's, so the import matches and a changed value is named.
    dir.ferry()
        .args(["verify", "a", "--against", &dst.url()])
        .run()
        .success()
        .says("matches it");
    dst.psql("UPDATE orders SET total = 0 WHERE id = 7");
    dir.ferry()
        .args(["verify", "a", "--against", &dst.url()])
        .run()
        .fails_with(3)
        .says("table public.orders, row id=7: column total: database 0.00, archive 10.50");
    assert_eq!(
        dst.psql("SELECT count(*) FROM tickets WHERE opened_by IS NULL")
            .trim(),
        "6",
        "NULL stays NULL"
    );

    // The same key gives the same data files; another key does not.
    export("b", "key");
    assert_eq!(
        data_checksums(&dir.path("a")),
        data_checksums(&dir.path("b"))
    );
    std::fs::write(dir.path("key2"), "another key").unwrap();
    export("c", "key2");
    assert_ne!(
        data_checksums(&dir.path("a")),
        data_checksums(&dir.path("c"))
    );
}

#[test]
fn masks_that_would_break_the_archive_or_lack_a_key_are_refused_before_anything_is_written() {
    let dir = TestDir::new();
    let src = PgDb::new("mask_refuse");
    src.psql(SHOP);
    for (args, says) in [
        (vec!["--mask", "customers.email=hash"], "need a key"),
        (vec!["--mask", "orders.customer=null"], "NOT NULL"),
        (
            vec!["--mask", "customers.email=const:x"],
            "referenced by foreign key",
        ),
        (
            vec!["--mask", "orders.total=email"],
            "does not apply to a decimal(10,2) column",
        ),
        (
            vec!["--mask", "orders.total=hash"],
            "does not apply to a decimal(10,2) column",
        ),
        (
            vec!["--mask", "customers.code=hash"],
            "writes 32 characters, and the column is declared \"character varying(8)\"",
        ),
        (
            vec!["--mask", "wide.id=hash"],
            "joins columns of different types (int32 and int64)",
        ),
        (vec!["--mask", "customers.mail=hash"], "matches no column"),
        (
            vec!["--mask", "customers.email"],
            "expected TABLE.COLUMN=RULE",
        ),
    ] {
        let url = src.url();
        let mut all = vec!["export", &url, "out"];
        all.extend(args.iter().copied());
        dir.ferry()
            .args(&all)
            .env("FERRY_MASK_KEY", "")
            .run()
            .fails_with(1)
            .says(says);
        assert!(!dir.path("out").exists());
    }
}

#[test]
fn a_sqlite_integer_key_is_permuted_consistently_across_its_references() {
    let dir = TestDir::new();
    let db = dir.path("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL CHECK (email LIKE '%@%'));
         CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), title TEXT);
         CREATE TABLE tags (id INTEGER PRIMARY KEY, owner INTEGER REFERENCES USERS(ID));
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO users SELECT i, 'person' || i || '@mail.example' FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 900)
         INSERT INTO posts SELECT i, (i * 7) % 300 + 1, 'post ' || i FROM n;
         INSERT INTO tags VALUES (1, 7), (2, NULL);",
    )
    .unwrap();
    drop(conn);
    dir.ferry()
        .args([
            "export",
            "app.db",
            "m",
            "--mask",
            "users.id=hash",
            "--mask",
            "users.email=email",
        ])
        .env("FERRY_MASK_KEY", "k")
        .run()
        .success()
        .says("column posts.user_id masked (hash)")
        // REFERENCES USERS(ID) names the key in another case; SQLite matches it anyway.
        .says("column tags.owner masked (hash)");
    dir.ferry().args(["import", "m", "m.db"]).run().success();
    let q = |path: &Path, sql: &str| -> String {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get::<_, String>(0))
            .unwrap()
    };
    let shape = "SELECT group_concat(n, ',') FROM (SELECT count(*) AS n FROM posts p JOIN users u ON u.id = p.user_id GROUP BY u.id ORDER BY n, min(p.id))";
    assert_eq!(q(&db, shape), q(&dir.path("m.db"), shape));
    let m = dir.path("m.db");
    assert_eq!(
        q(
            &m,
            "SELECT count(DISTINCT id) || ' ' || count(DISTINCT email) || ' ' || sum(email LIKE 'u%@example.invalid') || ' ' || sum(id > 0) FROM users"
        ),
        "300 300 300 300"
    );
    assert_eq!(
        q(
            &m,
            "SELECT count(*) || '' FROM users WHERE id BETWEEN 1 AND 300 AND email LIKE 'person%'"
        ),
        "0"
    );
    assert_eq!(
        q(
            &m,
            "SELECT count(*) || ' ' || count(t.owner) FROM tags t LEFT JOIN users u ON u.id = t.owner WHERE t.owner IS NULL OR u.id IS NOT NULL"
        ),
        "2 1",
        "the reference spelled in another case follows the key"
    );
    // The masked tables carry no digest; verify compares their rows with the archive's.
    dir.ferry()
        .args(["verify", "m", "--against", "m.db"])
        .run()
        .success()
        .says("matches it");
    rusqlite::Connection::open(&m)
        .unwrap()
        .execute("UPDATE posts SET title = 'changed' WHERE id = 5", [])
        .unwrap();
    dir.ferry()
        .args(["verify", "m", "--against", "m.db"])
        .run()
        .fails_with(3)
        .says("table posts, row id=5: column title: database 'changed', archive 'post 5'");
}

#[test]
fn a_constant_masks_timestamps_dates_and_flags_in_their_own_type() {
    let dir = TestDir::new();
    rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, born DATE, seen DATETIME, vip BOOLEAN);
             INSERT INTO people VALUES (1, '1980-02-03', '2024-05-01 13:45:00', 1),
                                       (2, '1991-12-30', '2024-05-02 08:00:00', 0),
                                       (3, NULL, NULL, NULL);",
        )
        .unwrap();
    dir.ferry()
        .args([
            "export",
            "app.db",
            "a",
            "-q",
            "--mask",
            "people.born=const:2000-01-01",
            "--mask",
            "people.seen=const:2000-01-01 00:00:00",
            "--mask",
            "people.vip=const:false",
        ])
        .run()
        .success();
    dir.ferry()
        .args(["import", "a", "b.db", "-q"])
        .run()
        .success();
    let rows: Vec<String> = rusqlite::Connection::open(dir.path("b.db"))
        .unwrap()
        .prepare(
            "SELECT quote(born) || ' ' || quote(seen) || ' ' || quote(vip) FROM people ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            "'2000-01-01' '2000-01-01 00:00:00' 0",
            "'2000-01-01' '2000-01-01 00:00:00' 0",
            "NULL NULL NULL"
        ]
    );
    // A constant the column cannot hold is refused before anything is written.
    dir.ferry()
        .args([
            "export",
            "app.db",
            "bad",
            "--mask",
            "people.seen=const:yesterday",
        ])
        .run()
        .fails_with(1)
        .says("const:yesterday is not a timestamp value");
    assert!(!dir.path("bad").exists());
}
