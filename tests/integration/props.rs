//! Property-based round trips: random schemas (names with quotes, unicode and reserved
//! words; every declared type; keys and nullability) and random values (the edge values of
//! each type, NULL beside empty), exported and imported, then compared:
//!
//! - SQLite → SQLite and PostgreSQL → PostgreSQL exactly (a full dump of both sides);
//! - SQLite → PostgreSQL through the documented mapping (`ferry verify --against`), or a
//!   refusal in one line that leaves the target as it was.
//!
//! CI runs a few cases from a fixed seed; `scripts/soak` runs them for as long as asked,
//! with `FERRY_PROPTEST_CASES` and `FERRY_PROPTEST_SEED`.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rusqlite::types::Value as Sql;

use crate::harness::{Run, TestDir};
use crate::pg_db::PgDb;
use crate::sqlite_db;

/// A runner with a fixed seed (or `FERRY_PROPTEST_SEED`) and `FERRY_PROPTEST_CASES` cases
/// (default `default_cases`). Shrinking reruns ferry for every step, so it is kept short.
pub fn runner(default_cases: u32) -> TestRunner {
    let cases = std::env::var("FERRY_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    let seed: u64 = std::env::var("FERRY_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00f3_4a77);
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (seed >> ((i % 8) * 8)) as u8 ^ i as u8;
    }
    let config = Config {
        cases,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Identifiers that break naive SQL: quotes, spaces, reserved words, unicode, case.
const NAMES: &[&str] = &[
    "id",
    "select",
    "order",
    "Mixed Case",
    "we\"ird",
    "it's",
    "ünïcødé",
    "名前",
    "group",
    "x-y",
    "table",
    "a.b",
];

fn name(i: usize) -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(move |n| format!("{n}_{i}"))
}

const SQLITE_TYPES: &[&str] = &[
    "INTEGER",
    "REAL",
    "TEXT",
    "BLOB",
    "NUMERIC",
    "",
    "BOOLEAN",
    "DATETIME",
    "VARCHAR(10)",
    "DECIMAL(10,2)",
    "BIGINT",
    "DOUBLE PRECISION",
    "JSON",
];

fn sqlite_value() -> impl Strategy<Value = Sql> {
    prop_oneof![
        Just(Sql::Null),
        prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1, 1, 1 << 53, (1 << 53) + 1])
            .prop_map(Sql::Integer),
        any::<i64>().prop_map(Sql::Integer),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1e308,
            -1e-308,
            5e-324,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1,
            -2.5
        ])
        .prop_map(Sql::Real),
        any::<f64>()
            .prop_filter("NaN is stored as NULL", |f| !f.is_nan())
            .prop_map(Sql::Real),
        prop::sample::select(vec![
            "",
            " ",
            "NULL",
            "0",
            "1.0",
            "true",
            "2024-02-29 12:00:00",
            "{\"a\":1}",
            "a\u{0}b",
            "line\nbreak",
            "tab\there",
            "'quoted'",
            "\\back",
        ])
        .prop_map(|s| Sql::Text(s.to_owned())),
        "\\PC{0,12}".prop_map(Sql::Text),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Sql::Blob),
    ]
}

#[derive(Debug, Clone)]
struct SqliteTable {
    name: String,
    /// (name, declared type)
    columns: Vec<(String, String)>,
    /// The first column is an INTEGER PRIMARY KEY.
    rowid_key: bool,
    rows: Vec<Vec<Sql>>,
}

fn sqlite_table(i: usize) -> impl Strategy<Value = SqliteTable> {
    (
        name(i),
        prop::collection::vec((0..NAMES.len(), prop::sample::select(SQLITE_TYPES)), 1..5),
        any::<bool>(),
        0..10usize,
    )
        .prop_flat_map(|(name, cols, rowid_key, nrows)| {
            let columns: Vec<(String, String)> = cols
                .iter()
                .enumerate()
                .map(|(j, (n, t))| (format!("{}_{j}", NAMES[*n]), (*t).to_owned()))
                .collect();
            let width = columns.len();
            prop::collection::vec(prop::collection::vec(sqlite_value(), width), nrows).prop_map(
                move |rows| SqliteTable {
                    name: name.clone(),
                    columns: columns.clone(),
                    rowid_key,
                    rows,
                },
            )
        })
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn build_sqlite(path: &std::path::Path, tables: &[SqliteTable]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    for t in tables {
        let cols: Vec<String> = t
            .columns
            .iter()
            .enumerate()
            .map(|(j, (n, ty))| {
                if j == 0 && t.rowid_key {
                    format!("{} INTEGER PRIMARY KEY", quote(n))
                } else {
                    format!("{} {ty}", quote(n))
                }
            })
            .collect();
        conn.execute(
            &format!("CREATE TABLE {} ({})", quote(&t.name), cols.join(", ")),
            [],
        )
        .unwrap();
        let params = vec!["?"; t.columns.len()].join(", ");
        let mut insert = conn
            .prepare(&format!("INSERT INTO {} VALUES ({params})", quote(&t.name)))
            .unwrap();
        for (r, row) in t.rows.iter().enumerate() {
            let mut row = row.clone();
            if t.rowid_key {
                row[0] = Sql::Integer(r as i64 + 1);
            }
            insert
                .execute(rusqlite::params_from_iter(row.iter()))
                .unwrap();
        }
    }
}

fn sqlite_tables() -> impl Strategy<Value = Vec<SqliteTable>> {
    (1..4usize).prop_flat_map(|n| (0..n).map(sqlite_table).collect::<Vec<_>>())
}

/// A failure must be one `ferry: error:` line, and never a panic or a signal.
fn one_line_failure(run: &Run) -> Result<(), TestCaseError> {
    let err = run.stderr();
    prop_assert_eq!(run.code(), Some(1), "{}", err);
    prop_assert_eq!(err.lines().count(), 1, "{}", err);
    prop_assert!(err.starts_with("ferry: error: "), "{}", err);
    Ok(())
}

#[test]
fn sqlite_round_trips_exactly_and_into_postgresql_through_the_mapping() {
    let pg = PgDb::new("prop_sqlite");
    let case = std::cell::Cell::new(0u32);
    runner(12)
        .run(&sqlite_tables(), |tables| {
            case.set(case.get() + 1);
            let case = case.get();
            let dir = TestDir::new();
            build_sqlite(&dir.path("src.db"), &tables);
            dir.ferry()
                .args(["export", "src.db", "a.tar"])
                .run()
                .success();
            // Same engine: exact.
            dir.ferry()
                .args(["import", "a.tar", "out.db"])
                .run()
                .success();
            prop_assert_eq!(
                sqlite_db::dump(&dir.path("out.db")),
                sqlite_db::dump(&dir.path("src.db"))
            );
            // Cross engine: what arrives is what the mapping says, checked by the
            // independent comparison; or a clear refusal that leaves nothing.
            let schema = format!("case_{case}");
            let run = dir
                .ferry()
                .args(["import", "a.tar", &pg.url(), "--target-schema", &schema])
                .run();
            if run.code() == Some(0) {
                let verify = dir
                    .ferry()
                    .args(["verify", "a.tar", "--against", &pg.url()])
                    .args(["--target-schema", &schema])
                    .run();
                prop_assert_eq!(verify.code(), Some(0), "{}", verify.stdout());
            } else {
                one_line_failure(&run)?;
                let left = pg.psql(&format!(
                    "SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}'"
                ));
                prop_assert_eq!(left.trim(), "0");
            }
            Ok(())
        })
        .unwrap();
}

/// PostgreSQL types with their edge values, as SQL literals.
fn pg_column() -> impl Strategy<Value = (&'static str, Vec<&'static str>)> {
    prop::sample::select(vec![
        ("int2", vec!["-32768", "32767", "0"]),
        ("int4", vec!["-2147483648", "2147483647", "-1"]),
        (
            "int8",
            vec!["-9223372036854775808", "9223372036854775807", "0"],
        ),
        (
            "numeric",
            vec![
                "'NaN'",
                "'-0.000'",
                "'123456789012345678901234567890.123456789'",
                "'1e-20'",
                "'Infinity'",
            ],
        ),
        ("numeric(10,2)", vec!["'-12345678.90'", "'0.01'", "'0'"]),
        (
            "float8",
            vec![
                "'NaN'",
                "'Infinity'",
                "'-Infinity'",
                "'-0'",
                "'1e308'",
                "'5e-324'",
                "'0.1'",
            ],
        ),
        ("float4", vec!["'NaN'", "'3.4e38'", "'-1.5e-45'", "'0.1'"]),
        (
            "text",
            vec![
                "''",
                "' '",
                "'NULL'",
                "E'line\\nbreak'",
                "'it''s'",
                "E'back\\\\slash'",
                "'ünï 名前 😀'",
            ],
        ),
        ("varchar(5)", vec!["''", "'abcde'", "'ü'"]),
        ("bytea", vec!["'\\x'", "'\\x00ff10'", "'\\xdeadbeef'"]),
        ("bool", vec!["true", "false"]),
        (
            "date",
            vec![
                "'infinity'",
                "'-infinity'",
                "'4713-01-01 BC'",
                "'5874897-12-31'",
                "'2000-02-29'",
            ],
        ),
        (
            "timestamptz",
            vec![
                "'infinity'",
                "'-infinity'",
                "'294276-12-31 23:59:59.999999+00'",
                "'4713-01-01 00:00:00+00 BC'",
                "'2024-02-29 12:34:56.789+05:30'",
            ],
        ),
        (
            "timestamp",
            vec!["'1999-12-31 23:59:59.999999'", "'infinity'"],
        ),
        ("time", vec!["'00:00'", "'24:00:00'", "'12:34:56.789'"]),
        (
            "interval",
            vec![
                "'1 year 2 mons -3 days 04:05:06.789'",
                "'-178000000 years'",
                "'0'",
            ],
        ),
        (
            "jsonb",
            vec![
                "'{\"a\": [1, 2.50, \"x\"]}'",
                "'\"\\u00e9\"'",
                "'null'",
                "'{}'",
            ],
        ),
        ("json", vec!["'{\"b\":1,  \"a\":2}'", "'[1,2.50]'"]),
        (
            "uuid",
            vec![
                "'00000000-0000-0000-0000-000000000000'",
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            ],
        ),
        (
            "int4[]",
            vec!["'{1,NULL,3}'", "'{}'", "'{{1,2},{3,4}}'", "'[0:1]={1,2}'"],
        ),
        ("text[]", vec!["'{\"a,b\",NULL,\"\"}'", "'{}'"]),
        ("inet", vec!["'192.168.0.1/24'", "'::1'"]),
        ("money", vec!["'12.34'", "'-0.01'"]),
    ])
}

#[derive(Debug, Clone)]
struct PgTable {
    /// (name, type, not null)
    columns: Vec<(String, &'static str, bool)>,
    rows: Vec<Vec<Option<&'static str>>>,
}

fn pg_table() -> impl Strategy<Value = PgTable> {
    (
        prop::collection::vec((0..NAMES.len(), pg_column(), any::<bool>()), 1..6),
        0..8usize,
    )
        .prop_flat_map(|(cols, nrows)| {
            let columns: Vec<(String, &'static str, bool, Vec<&'static str>)> = cols
                .into_iter()
                .enumerate()
                .map(|(j, (n, (ty, values), not_null))| {
                    (format!("{}_{j}", NAMES[n]), ty, not_null, values)
                })
                .collect();
            let row = columns
                .iter()
                .map(|(_, _, not_null, values)| {
                    let pick = prop::sample::select(values.clone()).prop_map(Some);
                    if *not_null {
                        pick.boxed()
                    } else {
                        prop_oneof![1 => Just(None), 3 => pick].boxed()
                    }
                })
                .collect::<Vec<_>>();
            let shape: Vec<(String, &'static str, bool)> = columns
                .iter()
                .map(|(n, t, nn, _)| (n.clone(), *t, *nn))
                .collect();
            prop::collection::vec(row, nrows).prop_map(move |rows| PgTable {
                columns: shape.clone(),
                rows,
            })
        })
}

#[test]
fn postgresql_round_trips_exactly() {
    let src = PgDb::new("prop_pg_src");
    let dst = PgDb::new("prop_pg_dst");
    let case = std::cell::Cell::new(0u32);
    runner(10)
        .run(&pg_table(), |t| {
            case.set(case.get() + 1);
            let case = case.get();
            let schema = format!("case_{case}");
            let cols: Vec<String> = t
                .columns
                .iter()
                .map(|(n, ty, nn)| {
                    format!("{} {ty}{}", quote(n), if *nn { " NOT NULL" } else { "" })
                })
                .collect();
            let mut sql = format!(
                "CREATE SCHEMA {schema}; CREATE TABLE {schema}.\"t\" (\"k\" serial PRIMARY KEY, {});",
                cols.join(", ")
            );
            for row in &t.rows {
                let values: Vec<&str> = row.iter().map(|v| v.unwrap_or("NULL")).collect();
                let names: Vec<String> = t.columns.iter().map(|(n, _, _)| quote(n)).collect();
                sql.push_str(&format!(
                    "INSERT INTO {schema}.\"t\" ({}) VALUES ({});",
                    names.join(", "),
                    values.join(", ")
                ));
            }
            src.psql(&sql);
            let dir = TestDir::new();
            dir.ferry()
                .args(["export", &src.url(), "a.tar", "--schema", &schema])
                .run()
                .success();
            dir.ferry()
                .args(["import", "a.tar", &dst.url()])
                .run()
                .success();
            let dump = |db: &PgDb| {
                let rows = db.psql(&format!(
                    "COPY (SELECT * FROM {schema}.\"t\" ORDER BY \"k\") TO STDOUT"
                ));
                let types = db.psql(&format!(
                    "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull, ', ' ORDER BY attnum)
                     FROM pg_attribute WHERE attrelid = '{schema}.t'::regclass AND attnum > 0"
                ));
                format!("{types}\n{rows}")
            };
            prop_assert_eq!(dump(&dst), dump(&src));
            Ok(())
        })
        .unwrap();
}
