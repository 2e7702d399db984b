//! PostgreSQL test databases: each test gets its own uniquely named database on the local
//! server (`FERRY_TEST_PG`, default `postgresql://postgres@127.0.0.1:5432`), dropped when
//! the test ends, so tests run in parallel. Talks to the server through `psql`, which the
//! PostgreSQL installation provides.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub fn server_url() -> String {
    std::env::var("FERRY_TEST_PG").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into())
}

pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub fn new(tag: &str) -> PgDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ferry_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        psql_on(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql_on("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { name }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name)
    }

    /// Runs SQL (stops at the first error) and returns what psql printed, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        psql_on(&self.name, sql)
    }

    /// Runs a SQL file with psql, stopping at the first error.
    pub fn psql_file(&self, path: &std::path::Path) {
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .arg("-f")
            .arg(path)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL that must fail; returns the error text.
    pub fn psql_err(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .arg("-c")
            .arg(sql)
            .output()
            .expect("run psql");
        assert!(!out.status.success(), "{sql} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Waits until no other session is connected to this database: a killed client's
    /// server session ends only once the server notices.
    pub fn wait_for_other_sessions_to_end(&self) {
        for _ in 0..200 {
            let n = self.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            );
            if n.trim() == "0" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the killed run's sessions never ended");
    }

    /// `pg_dump --schema-only`, without comments, SET lines and the per-run restrict keys.
    pub fn schema_dump(&self) -> String {
        let out = Command::new("pg_dump")
            .args(["--schema-only", "--no-owner", "--no-privileges", "-d"])
            .arg(self.url())
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                !(l.starts_with("--")
                    || l.starts_with("SET ")
                    || l.starts_with("SELECT pg_catalog.set_config")
                    || l.starts_with("\\restrict")
                    || l.starts_with("\\unrestrict")
                    || l.trim().is_empty())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every user table's rows as an ordered COPY, and every sequence's value.
    pub fn data_dump(&self) -> String {
        let tables = self.psql(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname !~ '^pg_' ORDER BY 1",
        );
        let mut out = String::new();
        for t in tables.lines().filter(|l| !l.is_empty()) {
            let rows = self.psql(&format!(
                "COPY (SELECT * FROM ONLY {t} x ORDER BY x::text COLLATE \"C\") TO STDOUT"
            ));
            out.push_str(&format!("== {t}\n{rows}"));
        }
        out.push_str("== sequences\n");
        out.push_str(
            &self.psql(
                "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
            ),
        );
        out
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-X", "-q", "-d"])
            .arg(format!("{}/postgres", server_url()))
            .arg("-c")
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Runs SQL through psql's stdin, so that each statement commits on its own (as a
/// migration script would), stopping at the first error.
fn psql_on(db: &str, sql: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("psql")
        .args(["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-f", "-", "-d"])
        .arg(format!("{}/{db}", server_url()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run psql");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(sql.as_bytes())
        .expect("write sql");
    let out = child.wait_with_output().expect("psql output");
    assert!(
        out.status.success(),
        "psql failed: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A schema exercising every type and object kind the PostgreSQL adapter promises, in two
/// schemas, one with a "MixedCase" table and reserved-word names.
pub const TORTURE: &str = r#"
CREATE SCHEMA app;
CREATE SCHEMA "Other Schema";
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy', 'it''s complicated');
CREATE DOMAIN app.posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN app.email AS text COLLATE "C" CONSTRAINT has_at CHECK (VALUE LIKE '%@%') NOT NULL DEFAULT 'x@y';
CREATE TYPE app.complex AS (re double precision, im double precision, label text);
CREATE TYPE app.floatrange AS RANGE (subtype = float8);
CREATE COLLATION app.nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

CREATE FUNCTION app.double_it(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated := now();
  RETURN NEW;
END $$;
CREATE PROCEDURE app.bump(n integer) LANGUAGE plpgsql AS $$ BEGIN PERFORM n + 1; END $$;
COMMENT ON FUNCTION app.double_it(integer) IS 'doubles';

CREATE SEQUENCE app.standalone START 100 INCREMENT 7;
SELECT nextval('app.standalone'), nextval('app.standalone');

CREATE TABLE app.types (
  id integer GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY 5) PRIMARY KEY,
  i2 smallint, i4 integer, i8 bigint,
  n_free numeric, n_fixed numeric(12,3), n_big numeric(60,20), n_nan numeric(8,2),
  f4 real, f8 double precision, mon money,
  t text, vc varchar(10), ch char(6), nm name, "char" "char",
  ba bytea, b boolean,
  d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
  u uuid, js json, jb jsonb, x xml,
  ip inet, cidr_ cidr, mac macaddr, mac8 macaddr8,
  bits bit(4), vbits varbit,
  tsv tsvector, tsq tsquery,
  pt point, ln line, ls lseg, bx box, pa path, pg polygon, ci circle,
  r4 int4range, rts tstzrange, mr int4multirange, fr app.floatrange,
  a1 integer[], a2 text[][], a3 app.mood[],
  m app.mood, p app.posint, e app.email, c app.complex,
  doubled bigint GENERATED ALWAYS AS (i4::bigint * 2) STORED,
  CONSTRAINT small_i2 CHECK (i2 <= 32767 AND i8 IS DISTINCT FROM 0)
);
INSERT INTO app.types (i2, i4, i8, n_free, n_fixed, n_big, n_nan, f4, f8, mon, t, vc, ch, nm, "char", ba, b,
  d, tm, ttz, ts, tstz, iv, u, js, jb, x, ip, cidr_, mac, mac8, bits, vbits, tsv, tsq,
  pt, ln, ls, bx, pa, pg, ci, r4, rts, mr, fr, a1, a2, a3, m, p, e, c) VALUES
 (-32768, -2147483648, -9223372036854775808, 'NaN', -123456789.125, '12345678901234567890123456789012345678.12345678901234567890', 'NaN',
  'NaN', '-0', '-92233720368547758.08', E'tab\there, quote '' and backslash \\ and ünïcødé', 'ten chars!', 'ab', 'a name', 'x',
  '\x00ff10', true, '-infinity', '00:00:00', '23:59:59.999999+14', '4713-01-01 00:00:00 BC', '-infinity',
  '-178000000 years 3 mons -2 days 00:00:00.000001', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"a": 1,   "a": 2, "nested": {"x": [1, 2.50]}}', '{"b": [1, 2], "a": null}', '<doc><p>hi</p></doc>',
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'1010', B'1',
  'a fat cat sat', 'fat & (rat | cat)',
  '(1.5,-2)', '{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(2,3))', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(1,0))', '<(0,0),5>',
  '[1,10)', '[2024-01-01 00:00+00,infinity)', '{[1,3),[5,7)}', '[1.5,2.5]',
  '[0:2]={7,NULL,9}', '{{a,b},{c,NULL}}', '{sad,happy}', 'it''s complicated', 7, 'me@example.com', '(1.5,-2,"a, b")'),
 (32767, 2147483647, 9223372036854775807, 'Infinity', 0.001, '-0.00000000000000000001', 12.5,
  'Infinity', 1.7976931348623157e308, 0, '', '', '', '', NULL,
  '', false, 'infinity', '24:00:00', '00:00:00-15:59', '294276-12-31 23:59:59.999999', 'infinity',
  '0', '00000000-0000-0000-0000-000000000000', '[]', '{}', '<a/>',
  '::1', '::/0', 'ff:ff:ff:ff:ff:ff', 'ff:ff:ff:ff:ff:ff:ff:ff', B'0000', B'',
  '', '!x',
  '(0,0)', '{1,0,0}', '[(0,0),(0,0)]', '((0,0),(0,0))', '((0,0))', '((0,0))', '<(0,0),0>',
  'empty', 'empty', '{}', 'empty',
  '{}', '{}', '{}', 'sad', 1, 'a@b', '(,,)'),
 (NULL, NULL, NULL, '-Infinity', NULL, NULL, NULL, '-Infinity', '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, '2000-01-01', NULL, NULL, '2000-01-01 00:00:00', '1970-01-01 00:00:00+00', NULL, NULL, 'null', 'null', NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '{{1,2},{3,4}}', NULL, NULL, NULL, NULL, DEFAULT, NULL);
COMMENT ON TABLE app.types IS 'every type';
COMMENT ON COLUMN app.types.n_free IS 'unbounded numeric';

CREATE TABLE app.users (
  id serial PRIMARY KEY,
  email app.email UNIQUE,
  name text COLLATE app.nocase,
  score integer DEFAULT app.double_it(21) CHECK (score >= 0),
  updated timestamptz DEFAULT now(),
  during tstzrange,
  EXCLUDE USING gist (during WITH &&)
);
INSERT INTO app.users (email, name, during) VALUES ('a@x', 'Ann', '[2024-01-01,2024-02-01)'), ('b@x', 'Bob', '[2024-03-01,2024-04-01)');
CREATE TRIGGER users_touch BEFORE UPDATE ON app.users FOR EACH ROW EXECUTE FUNCTION app.touch();
COMMENT ON TRIGGER users_touch ON app.users IS 'keeps updated current';
CREATE TRIGGER users_touch_off BEFORE INSERT ON app.users FOR EACH ROW EXECUTE FUNCTION app.touch();
ALTER TABLE app.users DISABLE TRIGGER users_touch_off;

CREATE TABLE app.posts (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  user_id integer NOT NULL,
  parent_id bigint REFERENCES app.posts (id) ON DELETE CASCADE,
  body text NOT NULL,
  tags text[],
  doc jsonb,
  tsv tsvector,
  loc point,
  CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES app.users (id) DEFERRABLE INITIALLY DEFERRED
);
INSERT INTO app.posts (user_id, parent_id, body, tags, doc, tsv, loc) VALUES
  (1, NULL, 'hello', '{a,b}', '{"k": 1}', 'hello world', '(1,2)'),
  (2, 1, 'reply', '{}', '{"k": [2]}', 'reply', '(3,4)');
INSERT INTO app.posts (id, user_id, body) VALUES (100, 1, 'explicit id');
CREATE INDEX posts_body_hash ON app.posts USING hash (body);
CREATE INDEX posts_tags_gin ON app.posts USING gin (tags);
CREATE INDEX posts_doc_gin ON app.posts USING gin (doc jsonb_path_ops);
CREATE INDEX posts_loc_gist ON app.posts USING gist (loc);
CREATE INDEX posts_id_brin ON app.posts USING brin (id);
CREATE INDEX posts_body_spgist ON app.posts USING spgist (body);
CREATE INDEX posts_lower_body ON app.posts (lower(body)) WHERE parent_id IS NULL;
CREATE UNIQUE INDEX posts_user_body ON app.posts (user_id, body DESC NULLS LAST);
COMMENT ON INDEX app.posts_lower_body IS 'partial expression index';
COMMENT ON CONSTRAINT posts_user_fk ON app.posts IS 'deferred';

CREATE TABLE app.events (
  id bigserial,
  at timestamptz NOT NULL,
  kind text NOT NULL,
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE app.events_2023 PARTITION OF app.events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE INDEX events_kind ON app.events (kind);
INSERT INTO app.events (at, kind) VALUES ('2023-05-01', 'a'), ('2024-05-01', 'b'), ('2024-06-01', 'c');

CREATE VIEW app.user_posts AS SELECT u.name, count(p.id) AS posts FROM app.users u LEFT JOIN app.posts p ON p.user_id = u.id GROUP BY u.name;
CREATE VIEW app.top_users AS SELECT * FROM app.user_posts WHERE posts > 0;
CREATE MATERIALIZED VIEW app.post_counts AS SELECT user_id, count(*) AS n FROM app.posts GROUP BY user_id;
CREATE UNIQUE INDEX post_counts_user ON app.post_counts (user_id);
COMMENT ON VIEW app.top_users IS 'active users';
COMMENT ON COLUMN app.top_users.posts IS 'posts written';
COMMENT ON COLUMN app.post_counts.n IS 'posts per user';

CREATE TABLE "Other Schema"."MixedCase" (
  "select" integer PRIMARY KEY,
  "from" text,
  "User" app.mood DEFAULT 'ok',
  "weird ""quoted"" name" numeric(5,2)
);
INSERT INTO "Other Schema"."MixedCase" VALUES (1, 'where', 'happy', 1.25), (2, NULL, DEFAULT, NULL);
CREATE TABLE "Other Schema".refs (
  id integer PRIMARY KEY,
  mixed_id integer REFERENCES "Other Schema"."MixedCase" ("select") ON UPDATE CASCADE,
  amount money
);
INSERT INTO "Other Schema".refs VALUES (1, 1, 9.99);
CREATE UNLOGGED TABLE "Other Schema".scratch (k text PRIMARY KEY, v jsonb) WITH (fillfactor = 70);
INSERT INTO "Other Schema".scratch VALUES ('k', '{"v": true}');
ALTER SEQUENCE app.standalone OWNED BY app.posts.user_id;
"#;
