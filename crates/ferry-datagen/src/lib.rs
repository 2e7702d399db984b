//! # ferry-datagen: deterministic application-like databases
//!
//! ferry's sample (`samples/app.db`), several integration tests and the benchmark all need
//! the same kind of data: what a real application keeps in SQLite. Users, projects with
//! UUID text keys, a self-referencing task tree, BLOB attachments, JSON settings, booleans
//! stored as 0/1, dates in the three forms applications actually use (ISO text, unix epoch
//! numbers, julian-day reals), and one large `events` table. Everything derives from a seeded
//! generator, so the same scale always yields the same bytes of data.

#![forbid(unsafe_code)]

use std::path::Path;

use rusqlite::{Connection, params};

/// The app schema, as an application's own migration would create it.
pub const APP_SCHEMA: &str = r#"
CREATE TABLE users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  email VARCHAR(255) NOT NULL UNIQUE,
  display_name TEXT,
  is_admin BOOLEAN NOT NULL DEFAULT 0,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  settings JSON
);
CREATE TABLE projects (
  id TEXT PRIMARY KEY,
  owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name VARCHAR(100) NOT NULL,
  budget NUMERIC(12,2),
  archived BOOLEAN NOT NULL DEFAULT 0,
  created_at DATETIME DEFAULT (datetime('now'))
);
CREATE TABLE tasks (
  id INTEGER PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id),
  parent_id INTEGER REFERENCES tasks(id),
  title TEXT NOT NULL CHECK (length(title) > 0),
  done BOOLEAN NOT NULL DEFAULT 0,
  priority INTEGER NOT NULL DEFAULT 2 CHECK (priority BETWEEN 1 AND 5),
  due_date DATE,
  estimate_hours REAL,
  updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE attachments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  filename TEXT NOT NULL,
  mime_type TEXT,
  content BLOB NOT NULL,
  uploaded_at INTEGER NOT NULL
);
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  user_id INTEGER REFERENCES users(id),
  kind TEXT NOT NULL,
  payload JSON,
  occurred_at DATETIME NOT NULL,
  occurred_ms INTEGER,
  julian REAL,
  duration REAL,
  thumbnail BLOB
);
CREATE INDEX tasks_project ON tasks(project_id);
CREATE INDEX tasks_open_due ON tasks(due_date) WHERE done = 0;
CREATE INDEX users_email_lower ON users(lower(email));
CREATE INDEX events_user_time ON events(user_id, occurred_at);
CREATE INDEX events_kind ON events(kind);
CREATE VIEW open_tasks AS
  SELECT t.id, t.title, p.name AS project, t.due_date
  FROM tasks t JOIN projects p ON p.id = t.project_id
  WHERE t.done = 0;
CREATE TRIGGER tasks_touch AFTER UPDATE OF title, done ON tasks BEGIN
  UPDATE tasks SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
PRAGMA user_version = 3;
"#;

/// Row counts at scale 1. Scale multiplies all of them.
pub const USERS: u64 = 50;
pub const PROJECTS: u64 = 20;
pub const TASKS: u64 = 300;
pub const ATTACHMENTS: u64 = 30;
pub const EVENTS: u64 = 2_000;

/// splitmix64: tiny, fast, and identical everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        let h = format!("{a:016x}{b:016x}");
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "ümlaut", "naïve", "日本", "ferry",
];

fn words(rng: &mut Rng, n: u64) -> String {
    (0..n.max(1))
        .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// 2023-01-01 00:00:00 UTC plus `secs`, as ISO-8601 text in the given style.
fn iso(secs: i64, style: u64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = ferry_archive::convert::civil_from_days(days + 19_358);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    match style % 3 {
        0 => format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}"),
        1 => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        _ => format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:03}",
            secs % 1000
        ),
    }
}

const EPOCH_2023: i64 = 1_672_531_200;

/// The app schema without the parts pgloader 3.6 cannot load (a `datetime('now')` default,
/// an expression index, a partial index), so that the benchmark can run it on the same data.
pub fn plain_schema() -> String {
    APP_SCHEMA
        .replace(" DEFAULT (datetime('now'))", "")
        .replace(
            "CREATE INDEX tasks_open_due ON tasks(due_date) WHERE done = 0;",
            "CREATE INDEX tasks_open_due ON tasks(due_date);",
        )
        .replace(
            "CREATE INDEX users_email_lower ON users(lower(email));\n",
            "",
        )
}

/// Writes the app database at `path` (which must not exist) at the given scale.
pub fn generate_app_sqlite(path: &Path, scale: u64) -> anyhow::Result<()> {
    generate(path, scale, APP_SCHEMA)
}

/// The same data under [`plain_schema`].
pub fn generate_plain_sqlite(path: &Path, scale: u64) -> anyhow::Result<()> {
    generate(path, scale, &plain_schema())
}

fn generate(path: &Path, scale: u64, schema: &str) -> anyhow::Result<()> {
    anyhow::ensure!(!path.exists(), "{} already exists", path.display());
    let scale = scale.max(1);
    let mut conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")?;
    conn.execute_batch(schema)?;
    let mut rng = Rng::new(0xF3_22_1E);
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(
            "INSERT INTO users(email, display_name, is_admin, created_at, settings) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for i in 0..USERS * scale {
            let settings = if rng.chance(70) {
                Some(format!(
                    "{{\"theme\": \"{}\", \"notify\": {}, \"tags\": [\"{}\"]}}",
                    if rng.chance(50) { "dark" } else { "light" },
                    rng.chance(50),
                    words(&mut rng, 1)
                ))
            } else {
                None
            };
            st.execute(params![
                format!("user{i}@example.com"),
                rng.chance(90).then(|| words(&mut rng, 2)),
                rng.chance(10),
                iso((i * 3_600) as i64, rng.next_u64()),
                settings,
            ])?;
        }
        let mut project_ids = Vec::new();
        let mut st = tx.prepare(
            "INSERT INTO projects(id, owner_id, name, budget, archived, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for i in 0..PROJECTS * scale {
            let id = rng.uuid();
            let budget = rng
                .chance(80)
                .then(|| (rng.below(10_000_000) as f64) / 100.0);
            st.execute(params![
                id,
                (1 + rng.below(USERS * scale)) as i64,
                format!("{} {i}", words(&mut rng, 2)),
                budget,
                rng.chance(20),
                iso((i * 86_400) as i64, 0),
            ])?;
            project_ids.push(id);
        }
        let mut st = tx.prepare(
            "INSERT INTO tasks(id, project_id, parent_id, title, done, priority, due_date, estimate_hours, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for i in 1..=TASKS * scale {
            let parent = (i > 10 && rng.chance(30)).then(|| (1 + rng.below(i - 1)) as i64);
            let due = rng
                .chance(60)
                .then(|| iso((rng.below(700) * 86_400) as i64, 0)[..10].to_owned());
            st.execute(params![
                i as i64,
                project_ids[rng.below(project_ids.len() as u64) as usize],
                parent,
                words(&mut rng, 4),
                rng.chance(40),
                (1 + rng.below(5)) as i64,
                due,
                rng.chance(70).then(|| rng.below(400) as f64 / 8.0),
                iso((i * 997) as i64, 0),
            ])?;
        }
        let mut st = tx.prepare(
            "INSERT INTO attachments(task_id, filename, mime_type, content, uploaded_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for i in 0..ATTACHMENTS * scale {
            let len = 200 + rng.below(2_000) as usize;
            st.execute(params![
                (1 + rng.below(TASKS * scale)) as i64,
                format!("file-{i}.bin"),
                rng.chance(80).then_some("application/octet-stream"),
                rng.bytes(len),
                EPOCH_2023 + (i * 7_919) as i64,
            ])?;
        }
        let kinds = ["login", "logout", "view", "edit", "comment", "upload"];
        let mut st = tx.prepare(
            "INSERT INTO events(id, user_id, kind, payload, occurred_at, occurred_ms, julian, duration, thumbnail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for i in 1..=EVENTS * scale {
            let secs = (i * 13) as i64;
            let payload = rng.chance(85).then(|| {
                format!(
                    "{{\"path\": \"/p/{}\", \"ms\": {}, \"ok\": {}, \"note\": \"{}\"}}",
                    rng.below(1000),
                    rng.below(5000),
                    rng.chance(95),
                    words(&mut rng, 3)
                )
            });
            st.execute(params![
                i as i64,
                rng.chance(95)
                    .then(|| (1 + rng.below(USERS * scale)) as i64),
                kinds[rng.below(kinds.len() as u64) as usize],
                payload,
                iso(secs, rng.next_u64()),
                (EPOCH_2023 + secs) * 1000,
                2_459_945.5 + secs as f64 / 86_400.0,
                rng.chance(90)
                    .then(|| rng.below(1_000_000) as f64 / 1000.0 + 0.001),
                rng.chance(10).then(|| {
                    let n = 64 + rng.below(192) as usize;
                    rng.bytes(n)
                }),
            ])?;
        }
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA journal_mode = DELETE; ANALYZE;")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_schema_drops_only_what_pgloader_cannot_load() {
        let s = plain_schema();
        assert!(!s.contains("datetime('now')") && !s.contains("lower(email)"));
        assert!(s.contains("CREATE INDEX tasks_open_due ON tasks(due_date);"));
        assert_eq!(
            s.matches("CREATE TABLE").count(),
            APP_SCHEMA.matches("CREATE TABLE").count()
        );
    }

    #[test]
    fn dates_are_right() {
        assert_eq!(iso(0, 0), "2023-01-01 00:00:00");
        assert_eq!(iso(86_400 * 59 + 3_661, 1), "2023-03-01T01:01:01Z");
    }

    #[test]
    fn generation_is_deterministic() {
        let dir = std::env::temp_dir().join(format!("ferry-datagen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.db"), dir.join("b.db"));
        let _ = std::fs::remove_file(&a);
        let _ = std::fs::remove_file(&b);
        generate_app_sqlite(&a, 1).unwrap();
        generate_app_sqlite(&b, 1).unwrap();
        let digest = |p: &Path| -> String {
            let c = Connection::open(p).unwrap();
            c.query_row(
                "SELECT group_concat(x, ',') FROM (SELECT quote(payload) || quote(occurred_at) || quote(thumbnail) AS x FROM events ORDER BY id)",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(digest(&a), digest(&b));
        let n: i64 = Connection::open(&a)
            .unwrap()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as u64, EVENTS);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
