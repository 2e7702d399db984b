//! Table selection, row filters and foreign-key-consistent subsets on a SQLite source.
//!
//! Everything runs on the exporter's one connection, inside its read transaction, so the
//! subset, the counts and the data come from the same snapshot. The walk itself is
//! `ferry_archive::selection::walk`; this module is its SQLite half: a row's identity is its
//! rowid (or its primary key in a WITHOUT ROWID table), and values keep their storage class,
//! so keys compare as SQLite compares them. The rows a subset keeps are written to TEMP
//! tables, which a read-only connection may create, and the data pass reads
//! `WHERE rowid IN (SELECT ... FROM temp....)`: the row lists never become SQL text.

use ferry_archive::selection::{
    self, Fetched, PlanRow, Resolved, RowSource, Seed, Subset, TableName,
};
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::{Ctx, SqliteError};
use crate::quote;
use crate::schema::{TableInfo, prop};

/// A SQLite value with SQLite's equality, usable as a hash key (reals by their bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Val {
    Int(i64),
    Real(u64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Val {
    fn read(v: ValueRef<'_>) -> Option<Val> {
        match v {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(Val::Int(i)),
            ValueRef::Real(f) => Some(Val::Real(f.to_bits())),
            ValueRef::Text(t) => Some(Val::Text(t.to_vec())),
            ValueRef::Blob(b) => Some(Val::Blob(b.to_vec())),
        }
    }

    fn sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(match self {
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Real(b) => ValueRef::Real(f64::from_bits(*b)),
            // Text is bound as its exact bytes, UTF-8 or not, as SQLite stored it.
            Val::Text(t) => ValueRef::Text(t),
            Val::Blob(b) => ValueRef::Blob(b),
        })
    }
}

/// The columns that identify a row of `t`: its rowid (under the name the export reads it
/// by), the INTEGER PRIMARY KEY that aliases it, or a WITHOUT ROWID table's primary key.
fn identity(t: &ferry_archive::Table) -> Result<Vec<String>, SqliteError> {
    if let Some(r) = &t.rowid {
        return Ok(vec![r.clone()]);
    }
    if let Some(alias) = t.properties.get(prop::ROWID_ALIAS).and_then(|v| v.as_str()) {
        return Ok(vec![alias.to_owned()]);
    }
    match &t.primary_key {
        Some(pk) if !pk.columns.is_empty() => Ok(pk.columns.clone()),
        _ => Err(SqliteError::Unsupported(format!(
            "table {}: its rows have no readable identity (no rowid, no primary key), so it cannot take part in a subset",
            t.name
        ))),
    }
}

struct Source<'a> {
    conn: &'a Connection,
    tables: &'a [TableInfo],
    identity: Vec<Vec<String>>,
    filters: Vec<Option<String>>,
}

impl Source<'_> {
    fn fetch(
        &self,
        t: usize,
        condition: &str,
        params: &[ToSqlOutput<'_>],
        columns: &[String],
    ) -> Result<Fetched<Vec<Val>, Val>, SqliteError> {
        ferry_archive::interrupt::check()?;
        let table = &self.tables[t].table;
        let id = &self.identity[t];
        if id.is_empty() {
            identity(table)?;
        }
        let cols: Vec<String> = id.iter().chain(columns).map(|c| quote(c)).collect();
        let filter = match &self.filters[t] {
            Some(f) => format!(" AND ({f})"),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM main.{} WHERE ({condition}){filter}",
            cols.join(", "),
            quote(&table.name)
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .ctx(|| format!("table {}: preparing the subset query", table.name))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .ctx(|| format!("table {}: selecting the subset", table.name))?;
        let mut out = Vec::new();
        while let Some(r) = rows
            .next()
            .ctx(|| format!("table {}: selecting the subset", table.name))?
        {
            let mut ident = Vec::with_capacity(id.len());
            for j in 0..id.len() {
                let v = r
                    .get_ref(j)
                    .ctx(|| format!("table {}: reading", table.name))?;
                // A NULL in a WITHOUT ROWID key cannot happen; a rowid is never NULL.
                ident.push(Val::read(v).unwrap_or(Val::Int(0)));
            }
            let mut values = Vec::with_capacity(columns.len());
            for j in 0..columns.len() {
                let v = r
                    .get_ref(id.len() + j)
                    .ctx(|| format!("table {}: reading", table.name))?;
                values.push(Val::read(v));
            }
            out.push((ident, values));
        }
        Ok(out)
    }
}

impl RowSource for Source<'_> {
    type Row = Vec<Val>;
    type Value = Val;
    type Error = SqliteError;

    fn seed(
        &mut self,
        t: usize,
        seed: &Seed,
        columns: &[String],
    ) -> Result<Fetched<Vec<Val>, Val>, SqliteError> {
        match seed {
            Seed::Condition(c) => self.fetch(t, c, &[], columns),
            Seed::Ids(ids) => {
                let key = self.identity[t].clone();
                let table = &self.tables[t].table;
                let key = match &table.primary_key {
                    Some(pk) if pk.columns.len() == 1 => pk.columns.clone(),
                    Some(_) => {
                        return Err(SqliteError::Unsupported(format!(
                            "--subset-ids {}: its primary key has several columns; use --subset with a condition",
                            table.name
                        )));
                    }
                    None => key,
                };
                // Bound as text; the key column's affinity turns '42' into 42 for the
                // comparison, as it would in the user's own WHERE.
                let keys: Vec<Vec<Val>> = ids
                    .iter()
                    .map(|s| vec![Val::Text(s.as_bytes().to_vec())])
                    .collect();
                self.lookup(t, &key, &keys, columns)
            }
        }
    }

    /// One query however many keys: they go to a TEMP table that the query reads with
    /// `IN (SELECT ...)`. Sent in chunks of 500 as `IN (VALUES ...)` instead, a key column
    /// without an index (a self-reference such as `tasks.parent_id`, a child's foreign key)
    /// cost one scan of the whole table per chunk: a 1 % subset of the bench's scale-10000
    /// database read `attachments` 104 times and took 1.7 times the whole export. With the
    /// TEMP table SQLite scans once, or probes an index per key where there is one.
    fn lookup(
        &mut self,
        t: usize,
        match_columns: &[String],
        keys: &[Vec<Val>],
        columns: &[String],
    ) -> Result<Fetched<Vec<Val>, Val>, SqliteError> {
        let temp = format!("ferry_keys_{}", match_columns.len());
        let condition = in_temp(self.conn, &temp, match_columns, keys)?;
        self.fetch(t, &condition, &[], columns)
    }
}

/// What applying a selection decided, for the export to carry out.
pub(crate) struct Applied {
    /// Whether each table (in the original order) stays in the archive.
    pub keep: Vec<bool>,
    pub plan: Vec<PlanRow>,
    pub notes: Vec<String>,
}

/// Applies a resolved selection to the tables read from the source: sets each table's row
/// filter (its `--where`, and its subset's TEMP table) and whether its rows are read, walks
/// the subset, and reports rows that a filter left referencing a row that is not exported.
pub(crate) fn apply(
    conn: &Connection,
    tables: &mut [TableInfo],
    resolved: &Resolved,
    strict: bool,
) -> Result<Applied, SqliteError> {
    let mut notes = resolved.notes.clone();
    for (t, c) in tables.iter_mut().zip(&resolved.choices) {
        if !c.data {
            t.export_rows = false;
        }
        t.filter = c.filter.clone();
    }
    let table_list: Vec<ferry_archive::Table> = tables.iter().map(|t| t.table.clone()).collect();
    let (edges, edge_notes) = selection::edges(&table_list);
    let subset: Option<Subset<Vec<Val>>> = if resolved.seeds.is_empty() {
        None
    } else {
        notes.extend(edge_notes);
        // A table without an identity is an error only if the walk reaches it.
        let identities: Vec<Vec<String>> = tables
            .iter()
            .map(|t| identity(&t.table).unwrap_or_default())
            .collect();
        let mut source = Source {
            conn,
            tables,
            identity: identities,
            filters: resolved.choices.iter().map(|c| c.filter.clone()).collect(),
        };
        let s = selection::walk(&mut source, &table_list, &edges, &resolved.seeds)?;
        let identities = source.identity;
        for (i, rows) in s.rows.iter().enumerate() {
            let Some(rows) = rows else { continue };
            if !resolved.choices[i].data {
                continue;
            }
            if identities[i].is_empty() {
                identity(&tables[i].table)?;
            }
            tables[i].filter = Some(keep_rows(conn, i, &identities[i], rows)?);
        }
        Some(s)
    };
    let names: Vec<String> = tables.iter().map(|t| t.table.name.clone()).collect();
    let plan = selection::plan_rows(&names, &resolved.choices, subset.as_ref());
    // Rows a filter leaves pointing at rows that are not exported: with a subset too, whose
    // walk applies each table's --where and whose parents may be exported without rows.
    let effective: Vec<selection::Choice> = resolved
        .choices
        .iter()
        .zip(tables.iter())
        .map(|(c, t)| selection::Choice {
            filter: t.filter.clone(),
            ..c.clone()
        })
        .collect();
    dangling(conn, tables, &effective, &edges, strict, &mut notes)?;
    Ok(Applied {
        keep: resolved.choices.iter().map(|c| c.included).collect(),
        plan,
        notes,
    })
}

/// Writes a subset's row identities to a TEMP table and returns the filter that reads them.
fn keep_rows(
    conn: &Connection,
    i: usize,
    identity: &[String],
    rows: &std::collections::HashSet<Vec<Val>>,
) -> Result<String, SqliteError> {
    in_temp(conn, &format!("ferry_subset_{i}"), identity, rows)
}

/// Puts `rows` (values of `columns`, in order) into the TEMP table `name`, created if
/// missing and emptied if not, and returns the condition that reads them:
/// `columns IN (SELECT ... FROM temp.name)`. The row lists never become SQL text, and the
/// table's columns have no declared type, so a value keeps its storage class and the
/// compared column's affinity applies, as it would to a bound parameter.
fn in_temp<'a>(
    conn: &Connection,
    name: &str,
    columns: &[String],
    rows: impl IntoIterator<Item = &'a Vec<Val>>,
) -> Result<String, SqliteError> {
    let temp = quote(name);
    let cols: Vec<String> = (0..columns.len()).map(|j| format!("c{j}")).collect();
    let context = || format!("the subset's list of rows ({name})");
    conn.execute(
        &format!(
            "CREATE TEMP TABLE IF NOT EXISTS {temp} ({})",
            cols.join(", ")
        ),
        [],
    )
    .ctx(context)?;
    conn.execute(&format!("DELETE FROM temp.{temp}"), [])
        .ctx(context)?;
    let mut insert = conn
        .prepare_cached(&format!(
            "INSERT INTO temp.{temp} VALUES ({})",
            vec!["?"; columns.len()].join(", ")
        ))
        .ctx(context)?;
    for r in rows {
        insert
            .execute(rusqlite::params_from_iter(r.iter().map(Val::sql)))
            .ctx(context)?;
    }
    let lhs: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    Ok(format!(
        "({}) IN (SELECT {} FROM temp.{temp})",
        lhs.join(", "),
        cols.join(", ")
    ))
}

/// Rows that a `--where` (or a table whose rows are left out) leaves referencing a row that
/// is not in the archive: reported per foreign key, refused under `--strict`.
fn dangling(
    conn: &Connection,
    tables: &[TableInfo],
    choices: &[selection::Choice],
    edges: &[selection::Edge],
    strict: bool,
    notes: &mut Vec<String>,
) -> Result<(), SqliteError> {
    for e in edges.iter().filter(|e| selection::may_dangle(e, choices)) {
        let (child, parent) = (&tables[e.child].table.name, &tables[e.parent].table.name);
        let sql = selection::dangling_query(
            e,
            choices,
            (
                &format!("main.{}", quote(child)),
                &format!("main.{}", quote(parent)),
            ),
            &|s: &str| quote(s),
            ("1", "0"),
        );
        let n: i64 = conn
            .query_row(&sql, [], |r| r.get(0))
            .ctx(|| format!("table {child}: checking foreign key {}", e.name))?;
        if n == 0 {
            continue;
        }
        let line = selection::dangling_line(e, n, child, parent);
        if strict {
            return Err(SqliteError::Check {
                context: "--strict".into(),
                detail: line,
            });
        }
        notes.push(line);
    }
    Ok(())
}

/// The names selection matches against.
pub(crate) fn names(tables: &[TableInfo]) -> Vec<TableName> {
    tables.iter().map(|t| TableName::of(&t.table)).collect()
}
