//! PostgreSQL archives into SQLite: the schema. Tables with columns by the mapping
//! (`from_postgres::decide`), keys, unique and foreign keys, the CHECK constraints SQLite
//! can parse (pre-data), then indexes, views, triggers and sequence positions translated
//! on the syntax tree (post-data). The rows go through `from_postgres::value`.

use std::collections::{HashMap, HashSet};

use ferry_archive::facts::{Facts, PgColumnFacts};
use ferry_archive::{Column, LogicalType, Manifest, Table};
use rusqlite::Connection;

use crate::error::{Ctx, SqliteError};
use crate::from_postgres;
use crate::guard::{Expect, Guard};

/// An archive from PostgreSQL: the SQLite tables made for it and how each is loaded.
pub(crate) struct Cross {
    /// Per archived table id: (SQLite table, [(data field, column, conversion)]).
    pub(crate) loads: HashMap<String, from_postgres::Load>,
    pub(crate) names: HashMap<(String, String), String>,
    pub(crate) notes: Vec<String>,
    pub(crate) skipped: Vec<String>,
}

/// Sequence values by (schema, name): the same name may live in several schemas.
fn sequence_values(m: &Manifest) -> HashMap<(String, String), i64> {
    m.objects
        .iter()
        .filter(|o| o.kind == "sequence_value")
        .filter_map(|o| {
            let v = o.properties.get("last_value")?.as_str()?.parse().ok()?;
            Some(((o.schema.clone().unwrap_or_default(), o.name.clone()), v))
        })
        .collect()
}

/// Each enum type's labels, by its `regtype` name, for the CHECK that keeps a column to them.
fn enum_labels(m: &Manifest) -> HashMap<String, Vec<String>> {
    m.objects
        .iter()
        .filter_map(|o| {
            let labels = o.properties.get("labels")?.as_array()?;
            let name = o.properties.get("regtype")?.as_str()?.to_owned();
            Some((
                name,
                labels
                    .iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect(),
            ))
        })
        .collect()
}

/// Creates the SQLite tables for a PostgreSQL archive: columns by the mapping, keys, unique
/// and foreign keys, and the CHECK constraints that SQLite can parse.
pub(crate) fn cross_pre_data(
    conn: &Connection,
    guard: &Guard,
    m: &Manifest,
    numeric_real: bool,
    resumable: bool,
) -> Result<Cross, SqliteError> {
    from_postgres::check_facts(m).map_err(|(context, e)| SqliteError::Check {
        context: format!("table {context}"),
        detail: format!("the archive's properties are unreadable: {e}"),
    })?;
    crate::import::begin_load(conn, resumable)?;
    let (names, notes) = from_postgres::table_names(m);
    let mut pd = PreData {
        conn,
        m,
        numeric_real,
        names,
        notes,
        skipped: Vec::new(),
        carried_sequences: HashSet::new(),
        sequences: sequence_values(m),
        enums: enum_labels(m),
    };
    for t in &m.tables {
        if let Some(parent) = from_postgres::partition_parent(t, m) {
            pd.notes.push(format!(
                "partition {} is loaded into the table of {}",
                t.display_name(),
                parent.display_name()
            ));
            continue;
        }
        pd.table(guard, t)?;
    }
    pd.not_carried();
    let loads = from_postgres::loads(m, &pd.names, numeric_real);
    Ok(Cross {
        loads,
        names: pd.names,
        notes: pd.notes,
        skipped: pd.skipped,
    })
}

/// Expressions inside a table name only its own columns.
fn no_rename(_: Option<&str>, _: &str) -> Option<String> {
    None
}

/// The pre-data as it is made, table by table.
struct PreData<'a> {
    conn: &'a Connection,
    m: &'a Manifest,
    numeric_real: bool,
    names: HashMap<(String, String), String>,
    notes: Vec<String>,
    skipped: Vec<String>,
    /// Sequences that became a table's AUTOINCREMENT, so not reported as dropped.
    carried_sequences: HashSet<(String, String)>,
    sequences: HashMap<(String, String), i64>,
    enums: HashMap<String, Vec<String>>,
}

/// What one table's columns decided: the definitions, and whether a column became the
/// AUTOINCREMENT rowid alias (with the sequence's position, when archived).
#[derive(Default)]
struct Columns {
    defs: Vec<String>,
    aliased: bool,
    sequence_value: Option<i64>,
}

impl PreData<'_> {
    fn name_of(&self, t: &Table) -> String {
        self.names[&(t.schema.clone().unwrap_or_default(), t.name.clone())].clone()
    }

    fn table(&mut self, guard: &Guard, t: &Table) -> Result<(), SqliteError> {
        let target = self.name_of(t);
        let pk_single = t
            .primary_key
            .as_ref()
            .filter(|k| k.columns.len() == 1)
            .map(|k| k.columns[0].as_str());
        let mut cols = Columns::default();
        for c in &t.columns {
            if let Some(def) = self.column(t, c, &target, pk_single, &mut cols) {
                cols.defs.push(def);
            }
        }
        let mut defs = cols.defs;
        self.keys(t, cols.aliased, &mut defs);
        self.checks(t, &target, &mut defs);
        let sql = format!(
            "CREATE TABLE main.{} (\n  {}\n)",
            crate::quote(&target),
            defs.join(",\n  ")
        );
        let what = format!("table {target}");
        guard.run(
            self.conn,
            &sql,
            Expect {
                kind: "table",
                name: &target,
                what: &what,
            },
        )?;
        if let Some(seq) = cols.sequence_value {
            self.conn
                .execute(
                    "INSERT INTO main.sqlite_sequence(name, seq) VALUES (?1, ?2)",
                    rusqlite::params![target, seq],
                )
                .ctx(|| format!("table {target}: setting its sequence"))?;
        }
        Ok(())
    }

    /// One column's definition, or None when it is left out (reported).
    fn column(
        &mut self,
        t: &Table,
        c: &Column,
        target: &str,
        pk_single: Option<&str>,
        cols: &mut Columns,
    ) -> Option<String> {
        let (decl, _) = from_postgres::decide(c, self.numeric_real);
        let integer = matches!(
            c.logical_type,
            LogicalType::Int16 | LogicalType::Int32 | LogicalType::Int64
        );
        let facts = PgColumnFacts::read(&c.properties).unwrap_or_default();
        let seq_name = facts
            .sequence
            .clone()
            .or_else(|| c.default.as_deref().and_then(nextval_sequence));
        if let Some(seq) = seq_name.filter(|_| integer && pk_single == Some(c.name.as_str())) {
            cols.aliased = true;
            let key = sequence_key(&seq, t.schema.as_deref().unwrap_or("public"));
            cols.sequence_value = self.sequences.get(&key).copied();
            self.carried_sequences.insert(key);
            self.notes.push(format!(
                "{target}.{}: identity/serial column becomes INTEGER PRIMARY KEY AUTOINCREMENT",
                c.name
            ));
            return Some(format!(
                "{} INTEGER PRIMARY KEY AUTOINCREMENT",
                crate::quote(&c.name)
            ));
        }
        if facts.identity.is_some() {
            self.skipped.push(format!(
                "identity of {target}.{}: only a single-column integer primary key can be AUTOINCREMENT in SQLite; new rows need explicit values",
                c.name
            ));
        }
        let decl = if decl.is_empty() { "TEXT".into() } else { decl };
        if c.generated.is_some() {
            return self.generated_column(t, c, target, &decl);
        }
        let mut def = format!("{} {decl}", crate::quote(&c.name));
        if !c.nullable {
            def.push_str(" NOT NULL");
        }
        if let Some(d) = c.default.as_deref() {
            self.default_clause(c, d, target, &mut def);
        }
        let labels = facts.enum_type.as_deref().and_then(|e| self.enums.get(e));
        if let Some(labels) = labels {
            let list: Vec<String> = labels
                .iter()
                .map(|l| format!("'{}'", l.replace('\'', "''")))
                .collect();
            def.push_str(&format!(
                " CHECK ({} IN ({}))",
                crate::quote(&c.name),
                list.join(", ")
            ));
        }
        Some(def)
    }

    /// PostgreSQL recomputes stored values, so the archive has none; SQLite recomputes them
    /// too when the expression translates.
    fn generated_column(
        &mut self,
        t: &Table,
        c: &Column,
        target: &str,
        decl: &str,
    ) -> Option<String> {
        let g = c.generated.as_ref()?;
        let what = format!("generated column {target}.{}", c.name);
        let ctx = ferry_sql::to_sqlite::Context {
            relation: &no_rename,
            numeric_text: &[],
        };
        let expr = match ferry_sql::to_sqlite::expr_to_sqlite(&g.expression, &what, &ctx) {
            Ok(e) => e,
            Err(e) => {
                self.skipped.push(format!("{e}; the column was left out"));
                return None;
            }
        };
        if !sqlite_accepts(self.conn, t, &expr) {
            self.skipped.push(format!(
                "generated column {target}.{}: ({}) does not translate to SQLite; left out",
                c.name, g.expression
            ));
            return None;
        }
        Some(format!(
            "{} {decl} GENERATED ALWAYS AS ({expr}) STORED",
            crate::quote(&c.name)
        ))
    }

    fn default_clause(&mut self, c: &Column, d: &str, target: &str, def: &mut String) {
        let exact_numeric = !self.numeric_real
            && matches!(
                c.logical_type,
                LogicalType::Decimal { .. } | LogicalType::Numeric
            );
        match translate_pg_default(d, &c.logical_type, target, &c.name) {
            // Exact numerics live in TEXT columns: keep the default's digits.
            Some(x) if exact_numeric && x.parse::<f64>().is_ok() => {
                def.push_str(&format!(" DEFAULT '{x}'"))
            }
            Some(x) => def.push_str(&format!(" DEFAULT {x}")),
            None if d.starts_with("nextval(") => self.skipped.push(format!(
                "default of {target}.{} ({d}): SQLite has sequences only for an INTEGER PRIMARY KEY AUTOINCREMENT; new rows need explicit values",
                c.name
            )),
            None => self.skipped.push(format!(
                "default of {target}.{} ({d}) does not translate; dropped",
                c.name
            )),
        }
    }

    /// Primary key (unless a column became the rowid alias), unique and foreign keys.
    fn keys(&self, t: &Table, aliased: bool, defs: &mut Vec<String>) {
        if let Some(pk) = t.primary_key.as_ref().filter(|_| !aliased) {
            defs.push(format!("PRIMARY KEY ({})", quoted_list(&pk.columns)));
        }
        for u in &t.unique {
            defs.push(format!("UNIQUE ({})", quoted_list(&u.columns)));
        }
        for fk in &t.foreign_keys {
            let ref_name = self
                .names
                .get(&(
                    fk.ref_schema.clone().unwrap_or_default(),
                    fk.ref_table.clone(),
                ))
                .cloned()
                .unwrap_or_else(|| fk.ref_table.clone());
            defs.push(format!(
                "FOREIGN KEY ({}) REFERENCES {} ({}) ON UPDATE {} ON DELETE {}{}",
                quoted_list(&fk.columns),
                crate::quote(&ref_name),
                quoted_list(&fk.ref_columns),
                fk.on_update,
                fk.on_delete,
                if fk.deferrable {
                    " DEFERRABLE INITIALLY DEFERRED"
                } else {
                    ""
                }
            ));
        }
    }

    /// The CHECK constraints SQLite can compile; the rest are reported.
    fn checks(&mut self, t: &Table, target: &str, defs: &mut Vec<String>) {
        let numeric_text: Vec<String> = t
            .columns
            .iter()
            .filter(|c| {
                from_postgres::decide(c, self.numeric_real).1
                    == from_postgres::Conv::Decimal { real: false }
            })
            .map(|c| c.name.clone())
            .collect();
        let ctx = ferry_sql::to_sqlite::Context {
            relation: &no_rename,
            numeric_text: &numeric_text,
        };
        for ck in &t.checks {
            let what = format!("check {} on {target}", ck.name.as_deref().unwrap_or("?"));
            let expr = match ferry_sql::to_sqlite::expr_to_sqlite(&ck.expression, &what, &ctx) {
                Ok(e) => e,
                Err(e) => {
                    self.skipped.push(format!("{e}; the check was not created"));
                    continue;
                }
            };
            if sqlite_accepts(self.conn, t, &expr) {
                defs.push(format!("CHECK ({expr})"));
            } else {
                self.skipped.push(format!(
                    "check {} on {target}: ({}) does not translate to SQLite",
                    ck.name.as_deref().unwrap_or("?"),
                    ck.expression
                ));
            }
        }
    }

    /// The archive's objects that SQLite has no place for, each reported with the reason.
    fn not_carried(&mut self) {
        for o in &self.m.objects {
            let why = match o.kind.as_str() {
                "function" | "procedure" | "aggregate" => {
                    Some("user-defined functions, procedures and aggregates do not exist in SQLite")
                }
                "trigger" => Some("PL/pgSQL triggers do not translate to SQLite"),
                "materialized_view" => Some("SQLite has no materialized views"),
                "sequence"
                    if self
                        .carried_sequences
                        .contains(&(o.schema.clone().unwrap_or_default(), o.name.clone())) =>
                {
                    None
                }
                "sequence" => Some("standalone sequences do not exist in SQLite"),
                "type" => Some("SQLite has no user-defined types (enums become CHECK constraints)"),
                "extension" | "collation" => Some("not applicable to SQLite"),
                "rule" => Some("SQLite has no rules (a rule's effect can be written as a trigger)"),
                "constraint"
                    if o.definition
                        .as_deref()
                        .is_some_and(|d| d.contains(" EXCLUDE ")) =>
                {
                    Some("SQLite has no exclusion constraints")
                }
                _ => None,
            };
            if let Some(why) = why {
                self.skipped
                    .push(format!("{} {}: {why}", o.kind.replace('_', " "), o.name));
            }
        }
        let comments = self
            .m
            .objects
            .iter()
            .filter(|o| o.kind == "comment")
            .count();
        if comments > 0 {
            self.skipped
                .push(format!("{comments} comment(s): SQLite has no comments"));
        }
    }
}

/// Whether SQLite can compile `expr` against the table's columns (prepared, never run).
fn sqlite_accepts(conn: &Connection, t: &Table, expr: &str) -> bool {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("NULL AS {}", crate::quote(&c.name)))
        .collect();
    conn.prepare(&format!(
        "SELECT ({expr}) FROM (SELECT {})",
        cols.join(", ")
    ))
    .is_ok()
}

/// Indexes and views after the rows; each that SQLite refuses is reported, not fatal.
pub(crate) fn cross_post_data(
    conn: &Connection,
    guard: &Guard,
    m: &Manifest,
    cross: Cross,
) -> Result<(Vec<String>, Vec<String>), SqliteError> {
    let mut skipped = cross.skipped;
    let mut notes = cross.notes;
    let mut used_names = HashSet::new();
    // A partition's rows are in its root's table, so are its indexes; one that the root
    // (or another partition) already has is not made twice.
    let mut relations = cross.names.clone();
    for t in &m.tables {
        if let Some(root) = from_postgres::partition_parent(t, m)
            && let Some(n) = cross
                .names
                .get(&(root.schema.clone().unwrap_or_default(), root.name.clone()))
        {
            relations.insert(
                (t.schema.clone().unwrap_or_default(), t.name.clone()),
                n.clone(),
            );
        }
    }
    let mut made: HashMap<String, String> = HashMap::new();
    for o in m.objects.iter().filter(|o| o.kind == "index") {
        let def = o.definition.as_deref().unwrap_or("");
        let (sql, index_name, shape) =
            match translate_index(def, &o.name, &relations, &mut used_names) {
                Ok(x) => x,
                Err(why) => {
                    skipped.push(format!("{why}; the index was not created in SQLite"));
                    continue;
                }
            };
        if let Some(first) = made.get(&shape) {
            notes.push(format!(
                "index {}: its partition's rows are in one SQLite table, which index {first} already covers the same way",
                o.name
            ));
            continue;
        }
        made.insert(shape, o.name.clone());
        let what = format!("index {}", o.name);
        let expect = Expect {
            kind: "index",
            name: &index_name,
            what: &what,
        };
        if let Err(e) = try_sql(conn, guard, &sql, expect, None)? {
            skipped.push(format!("index {}: {e}", o.name));
        }
    }
    let names = view_names(m, &cross.names);
    for o in m.objects.iter().filter(|o| o.kind == "view") {
        let def = o.definition.as_deref().unwrap_or("");
        let Some((_, body)) = def.split_once(" AS\n") else {
            continue;
        };
        let name = names
            .get(&(o.schema.clone().unwrap_or_default(), o.name.clone()))
            .cloned()
            .unwrap_or_else(|| o.name.clone());
        let what = format!("view {}", o.name);
        let relation = |s: Option<&str>, t: &str| relation_name(&names, s, t);
        let ctx = ferry_sql::to_sqlite::Context {
            relation: &relation,
            numeric_text: &[],
        };
        let body = match ferry_sql::to_sqlite::query_to_sqlite(body, &what, &ctx) {
            Ok(b) => b,
            Err(e) => {
                skipped.push(format!("{e}; the view was not created in SQLite"));
                continue;
            }
        };
        let sql = format!("CREATE VIEW main.{} AS {body}", crate::quote(&name));
        let check = format!("SELECT * FROM main.{} LIMIT 0", crate::quote(&name));
        let what = format!("view {}", o.name);
        let expect = Expect {
            kind: "view",
            name: &name,
            what: &what,
        };
        if let Err(e) = try_sql(conn, guard, &sql, expect, Some(&check))? {
            skipped.push(format!(
                "view {}: its definition does not translate to SQLite ({e})",
                o.name
            ));
        }
    }
    Ok((notes, skipped))
}

/// Runs a statement built from archive text (and an optional check query) behind a
/// savepoint, under the guard; `Ok(Err(reason))` when SQLite refused it, in which case
/// nothing of it remains. A statement that is not what it should be fails the import.
fn try_sql(
    conn: &Connection,
    guard: &Guard,
    sql: &str,
    expect: Expect<'_>,
    check: Option<&str>,
) -> Result<Result<(), String>, SqliteError> {
    conn.execute_batch("SAVEPOINT ferry_try")
        .ctx(|| "savepoint".into())?;
    let result = guard.run(conn, sql, expect).and_then(|()| {
        check.map_or(Ok(()), |c| {
            conn.prepare(c)
                .map(|_| ())
                .ctx(|| format!("{}: checking", expect.what))
        })
    });
    match result {
        Ok(()) => conn
            .execute_batch("RELEASE ferry_try")
            .ctx(|| "savepoint".into())
            .map(Ok),
        Err(e @ SqliteError::Refused { .. }) => Err(e),
        Err(e) => {
            conn.execute_batch("ROLLBACK TO ferry_try; RELEASE ferry_try")
                .ctx(|| "savepoint".into())?;
            Ok(Err(match e {
                SqliteError::Sql { source, .. } => source.to_string(),
                other => other.to_string(),
            }))
        }
    }
}

/// Table names plus view names, for rewriting qualified references in view bodies.
fn view_names(
    m: &Manifest,
    names: &HashMap<(String, String), String>,
) -> HashMap<(String, String), String> {
    let mut all = names.clone();
    for o in m.objects.iter().filter(|o| o.kind == "view") {
        let key = (o.schema.clone().unwrap_or_default(), o.name.clone());
        all.entry(key).or_insert_with(|| o.name.clone());
    }
    all
}

/// A PostgreSQL index in SQLite, translated on the syntax tree: (statement, index name), or
/// why it does not translate (other methods, INCLUDE, storage parameters, operator classes).
fn translate_index(
    def: &str,
    name: &str,
    names: &HashMap<(String, String), String>,
    used: &mut HashSet<String>,
) -> Result<(String, String, String), String> {
    let what = format!("index {name}");
    let relation = |s: Option<&str>, t: &str| relation_name(names, s, t);
    let ctx = ferry_sql::to_sqlite::Context {
        relation: &relation,
        numeric_text: &[],
    };
    let ix = ferry_sql::to_sqlite::index_to_sqlite(def, &what, &ctx).map_err(|e| e.to_string())?;
    let target = relation_name(names, ix.schema.as_deref(), &ix.table)
        .ok_or_else(|| format!("{what}: its table {} is not in the archive", ix.table))?;
    // What the index does, whatever its name: duplicates are recognised by it.
    let shape = format!(
        "{} {target} ({}) {:?}",
        ix.unique,
        ix.keys.join(", "),
        ix.predicate
    );
    let mut index_name = if name.to_lowercase().starts_with("sqlite_") {
        format!("_{name}") // reserved by SQLite, as for tables
    } else {
        name.to_owned()
    };
    let mut n = 2;
    while !used.insert(index_name.to_lowercase()) {
        index_name = format!("{name}_{n}");
        n += 1;
    }
    let mut sql = format!(
        "CREATE {}INDEX main.{} ON {} ({})",
        if ix.unique { "UNIQUE " } else { "" },
        crate::quote(&index_name),
        crate::quote(&target),
        ix.keys.join(", ")
    );
    if let Some(w) = &ix.predicate {
        sql.push_str(&format!(" WHERE {w}"));
    }
    Ok((sql, index_name, shape))
}

/// The SQLite name of a PostgreSQL table or view, by schema (when qualified) and name.
fn relation_name(
    names: &HashMap<(String, String), String>,
    schema: Option<&str>,
    name: &str,
) -> Option<String> {
    match schema {
        Some(s) => names.get(&(s.to_owned(), name.to_owned())).cloned(),
        None => names
            .iter()
            .find(|((_, t), _)| t == name)
            .map(|(_, n)| n.clone()),
    }
}

fn quoted_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| crate::quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// (schema, name) of a sequence written as PostgreSQL prints a regclass: `app.seq`,
/// `"My Schema"."Seq"`, or unqualified (in `default_schema`).
fn sequence_key(regclass: &str, default_schema: &str) -> (String, String) {
    let unquote = |s: &str| {
        s.strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .map(|x| x.replace("\"\"", "\""))
            .unwrap_or_else(|| s.to_owned())
    };
    // Split at the last dot outside double quotes.
    let mut in_quotes = false;
    let mut split = None;
    for (i, c) in regclass.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => split = Some(i),
            _ => {}
        }
    }
    match split {
        Some(i) => (unquote(&regclass[..i]), unquote(&regclass[i + 1..])),
        None => (default_schema.to_owned(), unquote(regclass)),
    }
}

/// `nextval('app.users_id_seq'::regclass)` → `app.users_id_seq`.
fn nextval_sequence(default: &str) -> Option<String> {
    let inner = default.strip_prefix("nextval('")?;
    Some(inner.split('\'').next()?.to_owned())
}

/// A PostgreSQL default for SQLite, read on the syntax tree: the "now" family, literals and
/// booleans; `None` for anything else (reported by the caller).
fn translate_pg_default(d: &str, lt: &LogicalType, table: &str, column: &str) -> Option<String> {
    let what = format!("default of {table}.{column}");
    let parsed = ferry_sql::to_sqlite::default_to_sqlite(d, &what).ok()?;
    let lower = parsed.printed.to_ascii_lowercase();
    match lower.as_str() {
        "now()"
        | "current_timestamp"
        | "statement_timestamp()"
        | "transaction_timestamp()"
        | "localtimestamp" => Some(if *lt == LogicalType::TimestampTz {
            "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))".into()
        } else {
            "CURRENT_TIMESTAMP".into()
        }),
        "current_date" => Some("CURRENT_DATE".into()),
        "true" => Some("1".into()),
        "false" => Some("0".into()),
        "null" => Some("NULL".into()),
        _ if parsed.number.is_some() => parsed.number,
        // Printed from the tree: the quotes are the printer's, never the archive's.
        _ if parsed.text.is_some() => Some(parsed.printed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_names_keep_their_schema() {
        assert_eq!(
            sequence_key("app.seq", "public"),
            ("app".into(), "seq".into())
        );
        assert_eq!(
            sequence_key("\"My.Schema\".\"S\"\"q\"", "public"),
            ("My.Schema".into(), "S\"q".into())
        );
        assert_eq!(
            sequence_key("seq", "public"),
            ("public".into(), "seq".into())
        );
    }
}
