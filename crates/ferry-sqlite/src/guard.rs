//! Archive SQL runs under SQLite's own authorizer.
//!
//! An archive's definitions are data: each must be one statement that creates exactly the
//! object its manifest entry names, in the database being built, and nothing else. Only
//! SQLite knows every corner of its grammar, so the check is SQLite's: the statement is
//! *prepared* with an authorizer that records what it would create and refuses `ATTACH`,
//! `DETACH`, `PRAGMA`, transactions, savepoints, drops, `VACUUM INTO` (which creates nothing
//! and so is refused by the kind check) and the functions that reach outside the file. Then
//! it is executed, with the authorizer passive again: work that a virtual-table module does
//! inside its own `xCreate` (FTS5 shadow tables) is the module's, not the archive's. rusqlite
//! refuses a second statement in the text (`MultipleStatement`), so nothing can be stacked.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::error::SqliteError;

/// Functions an archive's SQL may not call: they load code or touch files.
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "fts3_tokenizer",
    "readfile",
    "writefile",
    "edit",
];

#[derive(Default)]
struct Record {
    /// (kind, name, database) of each object the statement creates.
    creates: Vec<(&'static str, String, String)>,
    /// The first action refused, for the message.
    denied: Option<String>,
}

#[derive(Default)]
struct State {
    /// `Some` while an archive statement is being prepared.
    checking: Option<Record>,
}

/// The authorizer installed on a connection that runs archive SQL.
#[derive(Clone)]
pub struct Guard {
    state: Arc<Mutex<State>>,
}

/// What an archive statement must create.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// `table` (also matches a virtual table), `index`, `view` or `trigger`.
    pub kind: &'a str,
    pub name: &'a str,
    /// For messages: the manifest entry and field the statement came from.
    pub what: &'a str,
}

impl Guard {
    pub fn install(conn: &mut Connection) -> Result<Guard, SqliteError> {
        let state = Arc::new(Mutex::new(State::default()));
        let hook_state = Arc::clone(&state);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            let mut st = hook_state.lock().unwrap_or_else(|e| e.into_inner());
            match st.checking.as_mut() {
                None => Authorization::Allow,
                Some(rec) => judge(ctx, rec),
            }
        }))
        .map_err(|source| SqliteError::Sql {
            context: "installing the archive SQL authorizer".into(),
            source,
        })?;
        Ok(Guard { state })
    }

    /// Checks that `sql` is one statement creating exactly `expect` in `main`, then runs it.
    pub fn run(&self, conn: &Connection, sql: &str, expect: Expect<'_>) -> Result<(), SqliteError> {
        // The authorizer sees the calls in a view or trigger body only when it is used, long
        // after the import: read them from the text too.
        let calls = ferry_sql::sqlite::called_functions(sql)
            .map_err(|e| refused(expect.what, &e.to_string()))?;
        if let Some(f) = calls
            .iter()
            .find(|f| DENIED_FUNCTIONS.iter().any(|d| d.eq_ignore_ascii_case(f)))
        {
            return Err(refused(expect.what, &format!("it calls {f}()")));
        }
        self.set(Some(Record::default()));
        let prepared = conn.prepare(sql);
        let rec = self.set(None).unwrap_or_default();
        let mut stmt = match prepared {
            Ok(s) => s,
            Err(source) => {
                return Err(match rec.denied {
                    Some(why) => refused(expect.what, &why),
                    None => match source {
                        rusqlite::Error::MultipleStatement => {
                            refused(expect.what, "it holds more than one statement")
                        }
                        // An application's own collation (crate::collation): a writer
                        // gets no stand-in, since rows in the wrong order corrupt the file.
                        source
                            if source.sqlite_error().is_some_and(|e| {
                                e.extended_code == rusqlite::ffi::SQLITE_ERROR_MISSING_COLLSEQ
                            }) =>
                        {
                            SqliteError::Unsupported(format!(
                                "{}: {source}: the application that wrote the source \
                                 defines that collation, not SQLite, and ferry cannot store \
                                 text in an order it does not know (the archive can be \
                                 imported into PostgreSQL, which reports the collation)",
                                expect.what
                            ))
                        }
                        source => SqliteError::Sql {
                            context: format!("{}: creating", expect.what),
                            source,
                        },
                    },
                });
            }
        };
        let matches = |(kind, name, db): &(&str, String, String)| {
            db == "main"
                && name.eq_ignore_ascii_case(expect.name)
                && (*kind == expect.kind || (*kind == "virtual" && expect.kind == "table"))
        };
        // SQLite's own objects (sqlite_sequence for AUTOINCREMENT, sqlite_autoindex_* for
        // UNIQUE) come with the statement; no user object may have such a name.
        let creates: Vec<_> = rec
            .creates
            .iter()
            .filter(|(_, name, _)| !name.to_ascii_lowercase().starts_with("sqlite_"))
            .cloned()
            .collect();
        match creates.as_slice() {
            [one] if matches(one) => {}
            [] => return Err(refused(expect.what, "it creates nothing")),
            [(kind, name, db), ..] => {
                return Err(refused(
                    expect.what,
                    &format!(
                        "it creates {kind} {db}.{name}, not {} {}",
                        expect.kind, expect.name
                    ),
                ));
            }
        }
        stmt.raw_execute().map_err(|source| SqliteError::Sql {
            context: format!("{}: creating", expect.what),
            source,
        })?;
        Ok(())
    }

    fn set(&self, r: Option<Record>) -> Option<Record> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut st.checking, r)
    }
}

fn refused(what: &str, why: &str) -> SqliteError {
    SqliteError::Refused {
        what: what.to_owned(),
        reason: why.to_owned(),
    }
}

fn judge(ctx: AuthContext<'_>, rec: &mut Record) -> Authorization {
    let db = ctx.database_name.unwrap_or("main").to_owned();
    let internal = |t: &str| t.starts_with("sqlite_");
    let mut create = |kind: &'static str, name: &str| {
        rec.creates.push((kind, name.to_owned(), db.clone()));
        Authorization::Allow
    };
    let deny = |rec: &mut Record, why: String| {
        rec.denied.get_or_insert(why);
        Authorization::Deny
    };
    match ctx.action {
        AuthAction::CreateTable { table_name } => create("table", table_name),
        AuthAction::CreateIndex { index_name, .. } => create("index", index_name),
        AuthAction::CreateView { view_name } => create("view", view_name),
        AuthAction::CreateTrigger { trigger_name, .. } => create("trigger", trigger_name),
        AuthAction::CreateVtable { table_name, .. } => create("virtual", table_name),
        // CREATE INDEX authorizes the build of the new index as a REINDEX of it.
        AuthAction::Read { .. }
        | AuthAction::Select
        | AuthAction::Recursive
        | AuthAction::Reindex { .. } => Authorization::Allow,
        AuthAction::Function { function_name } => {
            if DENIED_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                deny(rec, format!("it calls {function_name}()"))
            } else {
                Authorization::Allow
            }
        }
        // Creating an object writes its row into the schema table (and an AUTOINCREMENT
        // table its sequence row).
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
            if internal(table_name) =>
        {
            Authorization::Allow
        }
        AuthAction::Attach { filename } => deny(rec, format!("it attaches {filename:?}")),
        AuthAction::Pragma { pragma_name, .. } => {
            deny(rec, format!("it runs PRAGMA {pragma_name}"))
        }
        other => deny(rec, format!("it would {other:?}")),
    }
}
