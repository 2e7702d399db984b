//! What part of a database an export takes, and how the archive records it.
//!
//! A user ships part of a database in three ways, and they compose:
//!
//! * **Table selection** (`-t`, `-T`, `--exclude-table-data`): globs on `table` or
//!   `schema.table`, as pg_dump has them. An excluded table leaves the archive together with
//!   the objects that belong to it or name it (indexes, views, foreign keys that reference
//!   it); each such removal becomes a note, never a silent drop.
//! * **Row filters** (`--where TABLE:CONDITION`): a condition in the source's own SQL, run
//!   inside the export's snapshot.
//! * **A foreign-key-consistent subset** (`--subset TABLE:CONDITION`, `--subset-ids`): the
//!   seed rows, every row that references an included row *downward* (children, grandchildren,
//!   ...), and every row an included row references *upward* (parents, grandparents, ...), so
//!   that every foreign key in the archive is satisfied. Children of parents are not pulled
//!   in (DBSubsetter's rule): walking every association both ways is what makes other tools'
//!   subsets explode to the whole database.
//!
//! The subset is a fixed point over sets of row identities, not a recursive query: a row is
//! visited at most once per direction, so self-references and cycles end, and the work is
//! proportional to the rows included and the keys they carry, not to the database's size.
//! The engine-specific half (how to fetch rows by key, what a row's identity is) is the
//! [`RowSource`] trait, which each adapter implements over its own snapshot; the walk itself
//! knows no engine, which is why it lives here, beside the [`Selection`] record that the
//! manifest carries so that `inspect` can show what an archive holds.

use std::collections::{BTreeSet, HashSet};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::manifest::{SchemaObject, Table};

/// The selection options of an export, as the manifest records them (`selection`). Secrets
/// never appear here: mask rules are recorded by name, never with their key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// `-t`: only tables matching one of these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// `-T`: tables matching these globs are left out, schema and rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tables: Vec<String>,
    /// `--exclude-table-data`: the schema is kept, the rows are not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_table_data: Vec<String>,
    /// `--where`: row filters, in the source's SQL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<TableCondition>,
    /// `--subset`: seeds of the foreign-key-consistent subset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subset: Vec<TableCondition>,
    /// `--subset-ids`: seeds given as primary-key values, one per line of a file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subset_ids: Vec<IdSeed>,
    /// `--exclude-column`: `TABLE.COLUMN` globs of columns left out, with what uses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_columns: Vec<String>,
    /// `--mask`: the rules by name, as given (the key is never recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<crate::mask::MaskSpec>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self == &Selection::default()
    }

    pub fn has_subset(&self) -> bool {
        !self.subset.is_empty() || !self.subset_ids.is_empty()
    }
}

/// `TABLE:CONDITION`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableCondition {
    pub table: String,
    pub condition: String,
}

impl TableCondition {
    /// Splits at the first `:`, so that a condition may hold casts (`::`) and times.
    pub fn parse(option: &str, arg: &str) -> Result<TableCondition, SelectionError> {
        match arg.split_once(':') {
            Some((t, c)) if !t.trim().is_empty() && !c.trim().is_empty() => Ok(TableCondition {
                table: t.trim().to_owned(),
                condition: c.trim().to_owned(),
            }),
            _ => Err(SelectionError::Syntax {
                option: option.to_owned(),
                arg: arg.to_owned(),
                expected: "TABLE:CONDITION, such as 'users:id = 42'",
            }),
        }
    }
}

/// `--subset-ids TABLE=FILE`: the values, and the file they came from (recorded by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdSeed {
    pub table: String,
    pub file: String,
    /// How many ids the file held; the ids themselves are not recorded.
    pub count: usize,
    #[serde(skip)]
    pub ids: Vec<String>,
}

impl IdSeed {
    /// `TABLE=FILE`, the file holding one primary-key value per line (blank lines and lines
    /// starting with `#` are skipped).
    pub fn read(arg: &str) -> Result<IdSeed, SelectionError> {
        let Some((table, file)) = arg
            .split_once('=')
            .filter(|(t, f)| !t.is_empty() && !f.is_empty())
        else {
            return Err(SelectionError::Syntax {
                option: "--subset-ids".into(),
                arg: arg.to_owned(),
                expected: "TABLE=FILE, such as users=ids.txt",
            });
        };
        let text = std::fs::read_to_string(file).map_err(|e| SelectionError::IdFile {
            file: file.to_owned(),
            reason: e.to_string(),
        })?;
        let ids: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        if ids.is_empty() {
            return Err(SelectionError::IdFile {
                file: file.to_owned(),
                reason: "holds no id (one primary-key value per line)".into(),
            });
        }
        Ok(IdSeed {
            table: table.to_owned(),
            file: file.to_owned(),
            count: ids.len(),
            ids,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("{option} {arg:?}: expected {expected}")]
    Syntax {
        option: String,
        arg: String,
        expected: &'static str,
    },
    #[error("{option} {pattern:?}: {reason}")]
    Pattern {
        option: String,
        pattern: String,
        reason: String,
    },
    #[error("{option} {pattern:?} matches no table{hint}")]
    NoMatch {
        option: String,
        pattern: String,
        hint: String,
    },
    #[error("{option} {table:?} names {count} tables ({names}); qualify it as schema.table")]
    Ambiguous {
        option: String,
        table: String,
        count: usize,
        names: String,
    },
    #[error("--exclude-column: {0}")]
    Column(String),
    #[error("--subset-ids: {file}: {reason}")]
    IdFile { file: String, reason: String },
    #[error("table {table} is given twice to {option}; combine the conditions with AND")]
    Twice { option: String, table: String },
}

/// A compiled `-t`/`-T` glob: `*` and `?`, on the bare name, or on `schema.name` when the
/// pattern holds a dot.
struct Pattern {
    qualified: bool,
    matcher: globset::GlobMatcher,
}

/// A pattern as pg_dump reads it, as a glob: a double-quoted part is literal (its `*`, `?`
/// and `.` match themselves, `""` is a quote), so `-t '"Track"'` and `-t
/// '"public"."My.Table"'` work as they do with pg_dump. Unquoted parts are globs as they
/// were (matched case-sensitively on PostgreSQL; pg_dump folds them to lower case, which
/// ferry does not, so `-t Track` keeps matching `"Track"`). Returns the glob and whether a
/// `.` outside quotes makes it a `schema.table` pattern.
fn pg_dump_glob(pattern: &str) -> (String, bool) {
    let mut glob = String::with_capacity(pattern.len());
    let mut qualified = false;
    let mut quoted = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                glob.push('"');
            }
            (true, '"') => quoted = false,
            (true, '*' | '?' | '[' | ']' | '{' | '}' | ',' | '\\') => {
                glob.push('\\');
                glob.push(c);
            }
            (false, '.') => {
                qualified = true;
                glob.push('.');
            }
            _ => glob.push(c),
        }
    }
    (glob, qualified)
}

impl Pattern {
    fn new(option: &str, pattern: &str, case_insensitive: bool) -> Result<Pattern, SelectionError> {
        let (text, qualified) = pg_dump_glob(pattern);
        let glob = globset::GlobBuilder::new(&text)
            .case_insensitive(case_insensitive)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| SelectionError::Pattern {
                option: option.to_owned(),
                pattern: pattern.to_owned(),
                reason: e.kind().to_string(),
            })?;
        Ok(Pattern {
            qualified,
            matcher: glob.compile_matcher(),
        })
    }

    fn matches(&self, t: &TableName) -> bool {
        if self.qualified {
            self.matcher.is_match(t.qualified())
        } else {
            self.matcher.is_match(&t.name)
        }
    }
}

/// A table as selection sees it. SQLite tables have no schema; `main.name` still matches.
#[derive(Debug, Clone)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn of(t: &Table) -> TableName {
        TableName {
            schema: t.schema.clone(),
            name: t.name.clone(),
        }
    }

    fn qualified(&self) -> String {
        format!("{}.{}", self.schema.as_deref().unwrap_or("main"), self.name)
    }
}

/// What the export does with one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// In the archive at all (schema).
    pub included: bool,
    /// Its rows are in the archive (some or all of them).
    pub data: bool,
    /// The `--where` condition on it.
    pub filter: Option<String>,
}

/// Seeds of a subset, by table index.
#[derive(Debug, Clone, PartialEq)]
pub enum Seed {
    Condition(String),
    Ids(Vec<String>),
}

/// A selection applied to a list of tables.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub choices: Vec<Choice>,
    pub seeds: Vec<(usize, Seed)>,
    /// Patterns of `-T` and `--exclude-table-data` that matched nothing: worth a note, not an
    /// error (the table may simply not exist any more).
    pub notes: Vec<String>,
}

impl Selection {
    /// Decides, for each table, whether it is exported and how. A `-t` pattern, a `--where`
    /// or a `--subset` table that matches nothing is an error: a typo must not export an
    /// empty archive that looks like a success.
    pub fn resolve(
        &self,
        tables: &[TableName],
        case_insensitive: bool,
    ) -> Result<Resolved, SelectionError> {
        let compile =
            |option: &str, list: &[String]| -> Result<Vec<(String, Pattern)>, SelectionError> {
                list.iter()
                    .map(|p| Ok((p.clone(), Pattern::new(option, p, case_insensitive)?)))
                    .collect()
            };
        let only = compile("-t", &self.tables)?;
        let exclude = compile("-T", &self.exclude_tables)?;
        let no_data = compile("--exclude-table-data", &self.exclude_table_data)?;
        let mut notes = Vec::new();
        for (option, list, strict) in [
            ("-t", &only, true),
            ("-T", &exclude, false),
            ("--exclude-table-data", &no_data, false),
        ] {
            for (text, p) in list {
                if tables.iter().any(|t| p.matches(t)) {
                    continue;
                }
                if strict {
                    return Err(SelectionError::NoMatch {
                        option: option.into(),
                        pattern: text.clone(),
                        hint: hint(tables),
                    });
                }
                notes.push(format!("{option} {text:?} matches no table"));
            }
        }
        let mut choices: Vec<Choice> = tables
            .iter()
            .map(|t| {
                let included = (only.is_empty() || only.iter().any(|(_, p)| p.matches(t)))
                    && !exclude.iter().any(|(_, p)| p.matches(t));
                Choice {
                    included,
                    data: included && !no_data.iter().any(|(_, p)| p.matches(t)),
                    filter: None,
                }
            })
            .collect();
        for f in &self.filters {
            let i = find_one("--where", &f.table, tables, case_insensitive)?;
            if choices[i].filter.is_some() {
                return Err(SelectionError::Twice {
                    option: "--where".into(),
                    table: f.table.clone(),
                });
            }
            choices[i].filter = Some(f.condition.clone());
        }
        let mut seeds = Vec::new();
        for s in &self.subset {
            let i = find_one("--subset", &s.table, tables, case_insensitive)?;
            seeds.push((i, Seed::Condition(s.condition.clone())));
        }
        for s in &self.subset_ids {
            let i = find_one("--subset-ids", &s.table, tables, case_insensitive)?;
            seeds.push((i, Seed::Ids(s.ids.clone())));
        }
        Ok(Resolved {
            choices,
            seeds,
            notes,
        })
    }
}

fn hint(tables: &[TableName]) -> String {
    let mut names: Vec<String> = tables.iter().take(6).map(|t| t.name.clone()).collect();
    if tables.len() > 6 {
        names.push("...".into());
    }
    if names.is_empty() {
        " (the source has no table)".into()
    } else {
        format!(" (tables: {})", names.join(", "))
    }
}

/// `"S p"."we""ird"` as `S p.we"ird`: a name written with SQL quotes, as the plan prints
/// it, names the same table as the bare form.
fn unquote(name: &str) -> String {
    if !name.contains('"') {
        return name.to_owned();
    }
    let mut out = String::new();
    let mut chars = name.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.push('"');
            }
            ('"', true) => quoted = false,
            (c, _) => out.push(c),
        }
    }
    out
}

/// The one table `name` (exact, or `schema.table`, either quoted as SQL quotes them) names.
fn find_one(
    option: &str,
    name: &str,
    tables: &[TableName],
    case_insensitive: bool,
) -> Result<usize, SelectionError> {
    let eq = |a: &str, b: &str| {
        if case_insensitive {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let bare = unquote(name);
    let hits: Vec<usize> = tables
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            eq(&t.name, name)
                || eq(&t.qualified(), name)
                || eq(&t.name, &bare)
                || eq(&t.qualified(), &bare)
        })
        .map(|(i, _)| i)
        .collect();
    match hits.len() {
        1 => Ok(hits[0]),
        0 => Err(SelectionError::NoMatch {
            option: option.into(),
            pattern: name.into(),
            hint: hint(tables),
        }),
        n => Err(SelectionError::Ambiguous {
            option: option.into(),
            table: name.into(),
            count: n,
            names: hits
                .iter()
                .map(|&i| tables[i].qualified())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The tables and views an object's definition names, as (schema, name).
pub type ObjectNames = dyn Fn(&SchemaObject) -> Vec<(Option<String>, String)>;

/// Removes the tables `keep` says no to, and everything that would dangle without them:
/// objects that belong to them, foreign keys of kept tables that reference them (and the
/// constraint objects that create those keys), and objects whose definition names a removed
/// table or object (views on views, transitively). `names` lists, for an object, the tables
/// and views its definition names, as (schema, name). Returns one note per removal.
pub fn prune(
    tables: &mut Vec<Table>,
    objects: &mut Vec<SchemaObject>,
    keep: &[bool],
    names: &ObjectNames,
) -> Vec<String> {
    let mut notes = Vec::new();
    let mut gone: Vec<(Option<String>, String)> = Vec::new();
    let mut kept = Vec::new();
    for (t, &k) in std::mem::take(tables).into_iter().zip(keep) {
        if k {
            kept.push(t);
        } else {
            gone.push((t.schema.clone(), t.name.clone()));
        }
    }
    *tables = kept;
    if gone.is_empty() {
        return notes;
    }
    let same = |a: &(Option<String>, String), schema: &Option<String>, name: &str| {
        a.1 == name && (a.0 == *schema || schema.is_none() || a.0.is_none())
    };
    let mut dropped_constraints: Vec<(Option<String>, String, String)> = Vec::new();
    for t in tables.iter_mut() {
        let (schema, table_name) = (t.schema.clone(), t.display_name());
        let in_definition = t.schema.is_none() && t.definition.is_some();
        t.foreign_keys.retain(|fk| {
            let target_schema = fk.ref_schema.clone().or_else(|| schema.clone());
            if !gone.iter().any(|g| same(g, &target_schema, &fk.ref_table)) {
                return true;
            }
            let name = fk.name.clone().unwrap_or_default();
            notes.push(format!(
                "foreign key {name}{}of table {table_name} left out: it references {}, which is not exported{}",
                if name.is_empty() { "" } else { " " },
                fk.ref_table,
                if in_definition {
                    " (it stays in the table's SQLite definition, where it is not enforced until that table exists)"
                } else {
                    ""
                }
            ));
            dropped_constraints.push((schema.clone(), t.name.clone(), name));
            false
        });
    }
    // To a fixed point: a view on a removed view goes too.
    loop {
        let mut removed_view = false;
        let mut keep_objects = Vec::with_capacity(objects.len());
        for o in std::mem::take(objects) {
            let owner_gone = o
                .table
                .as_ref()
                .is_some_and(|t| gone.iter().any(|g| same(g, &o.schema, t)));
            let constraint_gone = o.kind == "constraint"
                && dropped_constraints
                    .iter()
                    .any(|(s, t, n)| *s == o.schema && Some(t) == o.table.as_ref() && *n == o.name);
            let names_gone = || {
                names(&o)
                    .iter()
                    .any(|(s, n)| gone.iter().any(|g| same(g, s, n)))
            };
            if !owner_gone && !constraint_gone {
                if !names_gone() {
                    keep_objects.push(o);
                    continue;
                }
                notes.push(format!(
                    "{} {} left out: its definition names a table or view that is not exported",
                    o.kind, o.name
                ));
            }
            if matches!(o.kind.as_str(), "view" | "materialized_view") {
                gone.push((o.schema.clone(), o.name.clone()));
                removed_view = true;
            }
        }
        *objects = keep_objects;
        if !removed_view {
            break;
        }
    }
    notes
}

/// The columns `--exclude-column` patterns name: (table index, column names), in table
/// order. A pattern that matches no column is an error.
pub fn excluded_columns(
    patterns: &[String],
    tables: &[Table],
    case_insensitive: bool,
) -> Result<Vec<(usize, Vec<String>)>, SelectionError> {
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    for p in patterns {
        let Some((tp, cp)) = p
            .rsplit_once('.')
            .filter(|(t, c)| !t.is_empty() && !c.is_empty())
        else {
            return Err(SelectionError::Syntax {
                option: "--exclude-column".into(),
                arg: p.clone(),
                expected: "TABLE.COLUMN, such as '*.user_id'",
            });
        };
        let tg = Pattern::new("--exclude-column", tp, case_insensitive)?;
        let cg = Pattern::new("--exclude-column", cp, case_insensitive)?;
        let mut hit = false;
        for (i, t) in tables.iter().enumerate() {
            if !tg.matches(&TableName::of(t)) {
                continue;
            }
            for c in &t.columns {
                let name = TableName {
                    schema: None,
                    name: c.name.clone(),
                };
                if !cg.matches(&name) {
                    continue;
                }
                hit = true;
                match out.iter_mut().find(|(j, _)| *j == i) {
                    Some((_, cols)) if !cols.contains(&c.name) => cols.push(c.name.clone()),
                    Some(_) => {}
                    None => out.push((i, vec![c.name.clone()])),
                }
            }
        }
        if !hit {
            return Err(SelectionError::NoMatch {
                option: "--exclude-column".into(),
                pattern: p.clone(),
                hint: String::new(),
            });
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// Per table index, the data-field positions a column drop removed.
pub type DroppedFields = Vec<(usize, Vec<usize>)>;

/// Whether an object's definition (or a CHECK expression) names a column: (text, column).
pub type Mentions = dyn Fn(&str, &str) -> bool;

/// Takes columns out of the manifest's tables: `drops` lists, per table, every column that
/// goes (the asked ones and the generated columns computed from them). The keys, checks and
/// foreign keys that use them go too, as do the table's objects (indexes, triggers,
/// constraints, comments) and any view whose definition names both the table and the
/// column. A column that a foreign key of a table kept in the archive references is refused:
/// the archive would not load. Returns, per table of `drops`, the data-field positions that
/// went (for the adapter's own per-field records), and one note per removal.
pub fn drop_columns(
    tables: &mut [Table],
    objects: &mut Vec<SchemaObject>,
    drops: &[(usize, Vec<String>)],
    mentions: &Mentions,
) -> Result<(DroppedFields, Vec<String>), SelectionError> {
    let dropped = |t: usize, c: &str| {
        drops
            .iter()
            .any(|(i, cols)| *i == t && cols.iter().any(|x| x == c))
    };
    let refused = SelectionError::Column;
    // References from other tables, checked first so nothing changes on a refusal.
    let (edges, _) = edges(tables);
    for e in &edges {
        for (cc, pc) in e.child_columns.iter().zip(&e.parent_columns) {
            if dropped(e.parent, pc) && !dropped(e.child, cc) {
                return Err(refused(format!(
                    "{}.{pc} is referenced by foreign key {} of {}; exclude {}.{cc} too, or keep it",
                    tables[e.parent].display_name(),
                    e.name,
                    tables[e.child].display_name(),
                    tables[e.child].name
                )));
            }
        }
    }
    let mut notes = Vec::new();
    let mut fields_out = Vec::new();
    for (i, cols) in drops {
        let t = &mut tables[*i];
        let name = t.display_name();
        let fields: Vec<String> = t.data_fields().into_iter().map(|(n, _)| n).collect();
        let positions: Vec<usize> = fields
            .iter()
            .enumerate()
            .filter(|(_, n)| cols.contains(n))
            .map(|(p, _)| p)
            .collect();
        t.columns.retain(|c| !cols.contains(&c.name));
        if t.columns.is_empty() {
            return Err(refused(format!("table {name} would have no column left")));
        }
        for c in cols {
            notes.push(format!("column {name}.{c} left out"));
        }
        let uses = |k: &[String]| k.iter().any(|c| cols.contains(c));
        if t.primary_key.as_ref().is_some_and(|k| uses(&k.columns)) {
            t.primary_key = None;
            notes.push(format!(
                "the primary key of {name} left out with its column"
            ));
        }
        t.unique.retain(|k| {
            let gone = uses(&k.columns);
            if gone {
                notes.push(format!(
                    "unique key {} of {name} left out with its column",
                    k.name.as_deref().unwrap_or("")
                ));
            }
            !gone
        });
        t.checks.retain(|ch| {
            let gone = cols.iter().any(|c| mentions(&ch.expression, c));
            if gone {
                notes.push(format!(
                    "check {} of {name} left out: it uses a column left out",
                    ch.name.as_deref().unwrap_or(&ch.expression)
                ));
            }
            !gone
        });
        t.foreign_keys.retain(|fk| {
            let gone = uses(&fk.columns);
            if gone {
                notes.push(format!(
                    "foreign key {} of {name} left out with its column",
                    fk.name
                        .clone()
                        .unwrap_or_else(|| format!("({})", fk.columns.join(", ")))
                ));
            }
            !gone
        });
        let (schema, table) = (t.schema.clone(), t.name.clone());
        let mut removed_views: Vec<(Option<String>, String)> = Vec::new();
        objects.retain(|o| {
            let Some(def) = o.definition.as_deref() else {
                return true;
            };
            let own = o.table.as_deref() == Some(table.as_str()) && o.schema == schema;
            let view =
                matches!(o.kind.as_str(), "view" | "materialized_view") && mentions(def, &table);
            if !(own || view) || !cols.iter().any(|c| mentions(def, c)) {
                return true;
            }
            notes.push(format!(
                "{} {} left out: it uses a column left out of {name}",
                o.kind, o.name
            ));
            if matches!(o.kind.as_str(), "view" | "materialized_view") {
                removed_views.push((o.schema.clone(), o.name.clone()));
            }
            false
        });
        // Views on those views go too, to a fixed point.
        let mut all_removed: Vec<(Option<String>, String)> = Vec::new();
        while !removed_views.is_empty() {
            let gone = std::mem::take(&mut removed_views);
            all_removed.extend(gone.iter().cloned());
            objects.retain(|o| {
                let Some(def) = o.definition.as_deref() else {
                    return true;
                };
                let names_gone = gone.iter().any(|(_, v)| mentions(def, v) && o.name != *v);
                if !names_gone {
                    return true;
                }
                notes.push(format!(
                    "{} {} left out: it uses a view left out",
                    o.kind, o.name
                ));
                if matches!(o.kind.as_str(), "view" | "materialized_view") {
                    removed_views.push((o.schema.clone(), o.name.clone()));
                }
                false
            });
        }
        // What belongs to a removed view goes with it: the comments on it and on its
        // columns, a materialized view's indexes and refresh. Left behind, they name an
        // object the archive no longer creates, and an importer refuses the archive.
        objects.retain(|o| {
            let belongs = |(schema, v): &(Option<String>, String)| {
                o.schema == *schema
                    && (o.table.as_deref() == Some(v.as_str())
                        || (o.table.is_none()
                            && matches!(o.kind.as_str(), "comment" | "refresh")
                            && o.name == *v))
            };
            !all_removed.iter().any(belongs)
        });
        fields_out.push((*i, positions));
    }
    Ok((fields_out, notes))
}

/// Rewrites a table's definition without some columns: `Some((new definition, every
/// column removed))`, `None` when the definition has no column list of its own.
pub type RewriteDefinition = dyn Fn(&str, &[String]) -> Result<Option<Rewritten>, String>;

/// A definition without some columns: (the new text, every column removed, the table
/// constraints removed with them, as written).
pub type Rewritten = (String, Vec<String>, Vec<String>);

/// `--exclude-column` on an adapter's table records: resolves the patterns, rewrites each
/// table's definition with `rewrite` (which also finds the generated columns that go with
/// a column), and applies [`drop_columns`]. Returns, per table record index, the data-field
/// positions removed, and the notes.
pub fn exclude_columns<T>(
    records: &mut [T],
    table: impl Fn(&mut T) -> &mut Table,
    objects: &mut Vec<SchemaObject>,
    patterns: &[String],
    case_insensitive: bool,
    rewrite: &RewriteDefinition,
    mentions: &Mentions,
) -> Result<(DroppedFields, Vec<String>), SelectionError> {
    if patterns.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut tables: Vec<Table> = records.iter_mut().map(|r| table(r).clone()).collect();
    let asked = excluded_columns(patterns, &tables, case_insensitive)?;
    let mut drops = Vec::new();
    let mut constraint_notes = Vec::new();
    for (i, cols) in asked {
        let t = &mut tables[i];
        let name = t.display_name();
        if t.kind == "virtual" {
            return Err(SelectionError::Column(format!(
                "{name} is a virtual table, whose columns its module defines"
            )));
        }
        let alias = <crate::facts::SqliteTableFacts as crate::Facts>::read(&t.properties)
            .ok()
            .and_then(|f| f.rowid_alias);
        if let Some(a) = alias.filter(|a| cols.contains(a)) {
            return Err(SelectionError::Column(format!(
                "{name}.{a} is the table's INTEGER PRIMARY KEY (its rowid); it cannot be left out"
            )));
        }
        let mut gone = cols.clone();
        if let Some(def) = t.definition.clone() {
            let rewritten = rewrite(&def, &cols)
                .map_err(|e| SelectionError::Column(format!("{name}: its definition: {e}")))?;
            if let Some((sql, removed, constraints)) = rewritten {
                t.definition = Some(sql);
                for c in constraints {
                    constraint_notes.push(format!(
                        "constraint `{c}` of {name} left out with its column"
                    ));
                }
                for r in removed {
                    let actual = t.columns.iter().find(|c| {
                        if case_insensitive {
                            c.name.eq_ignore_ascii_case(&r)
                        } else {
                            c.name == r
                        }
                    });
                    if let Some(c) = actual
                        && !gone.contains(&c.name)
                    {
                        gone.push(c.name.clone());
                    }
                }
            }
        }
        drops.push((i, gone));
    }
    let (fields, mut notes) = drop_columns(&mut tables, objects, &drops, mentions)?;
    notes.extend(constraint_notes);
    for (r, t) in records.iter_mut().zip(tables) {
        *table(r) = t;
    }
    Ok((fields, notes))
}

/// Tables that migration tools keep for themselves (lower case): a `--data-only` load
/// leaves the target's as they are, whichever engine it is.
const MIGRATION_BOOKKEEPING: &[&str] = &[
    "alembic_version",
    "schema_migrations",
    "ar_internal_metadata",
    "_prisma_migrations",
    "knex_migrations",
    "knex_migrations_lock",
    "flyway_schema_history",
    "__diesel_schema_migrations",
    "goose_db_version",
    "django_migrations",
    "_sqlx_migrations",
    "pgmigrations",
    "typeorm_migrations",
    "sequelizemeta",
    "__efmigrationshistory",
];

/// Whether a table is a migration tool's bookkeeping (ignoring ASCII case).
pub fn is_migration_bookkeeping(name: &str) -> bool {
    MIGRATION_BOOKKEEPING.contains(&name.to_ascii_lowercase().as_str())
}

/// One line of an export's plan (`ferry export --dry-run`), and of its report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub table: String,
    pub action: Action,
    /// Why: `seed`, `child of X via FK`, `parent of Y via FK`, `unrelated: copied whole`, ...
    pub reasons: Vec<String>,
    /// Rows the archive holds (or would), counted in the export's snapshot.
    pub rows: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Every row.
    Whole,
    /// The rows a `--where` condition keeps.
    Filtered,
    /// The rows of a foreign-key-consistent subset.
    Subset,
    /// The schema without rows (`--exclude-table-data`).
    SchemaOnly,
    /// Not in the archive (`-t`/`-T`).
    Excluded,
}

impl Action {
    pub fn describe(self) -> &'static str {
        match self {
            Action::Whole => "all rows",
            Action::Filtered => "filtered",
            Action::Subset => "subset",
            Action::SchemaOnly => "schema only",
            Action::Excluded => "excluded",
        }
    }
}

/// Decides each table's plan line from its choice and, when a subset was walked, its part in
/// it. `rows` is filled in by the adapter once it has counted.
pub fn plan_rows<R>(
    names: &[String],
    choices: &[Choice],
    subset: Option<&Subset<R>>,
) -> Vec<PlanRow> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let c = &choices[i];
            let in_subset = subset.and_then(|s| s.rows[i].as_ref());
            let mut reasons: Vec<String> = subset
                .map(|s| s.reasons[i].iter().cloned().collect())
                .unwrap_or_default();
            let action = if !c.included {
                if in_subset.is_some() {
                    reasons.push("walked for the subset, not written".into());
                }
                Action::Excluded
            } else if !c.data {
                Action::SchemaOnly
            } else if in_subset.is_some() {
                if reasons.is_empty() {
                    reasons.push("connected to a seed, but no included row references it".into());
                }
                Action::Subset
            } else if c.filter.is_some() {
                Action::Filtered
            } else {
                if subset.is_some() {
                    reasons.push("not connected to a seed by foreign keys: copied whole".into());
                }
                Action::Whole
            };
            if let Some(f) = &c.filter {
                reasons.push(format!("where {f}"));
            }
            PlanRow {
                table: name.clone(),
                action,
                reasons,
                rows: None,
            }
        })
        .collect()
}

/// [`prune`] for an adapter's own table records: keeps the records whose table stays, with
/// the foreign keys `prune` left them.
pub fn prune_records<T>(
    records: &mut Vec<T>,
    table: impl Fn(&mut T) -> &mut Table,
    objects: &mut Vec<SchemaObject>,
    keep: &[bool],
    names: &ObjectNames,
) -> Vec<String> {
    let mut tables: Vec<Table> = records.iter_mut().map(|r| table(r).clone()).collect();
    let notes = prune(&mut tables, objects, keep, names);
    // `prune` kept the tables in order.
    let mut pruned = tables.into_iter();
    let mut kept = Vec::new();
    for (mut r, k) in std::mem::take(records).into_iter().zip(keep) {
        if *k && let Some(p) = pruned.next() {
            table(&mut r).foreign_keys = p.foreign_keys;
            kept.push(r);
        }
    }
    *records = kept;
    notes
}

/// Which foreign keys a selection may leave dangling: the child's exported rows are
/// filtered, or the parent's are (or are left out). The query counting them is
/// [`dangling_query`].
pub fn may_dangle(e: &Edge, choices: &[Choice]) -> bool {
    let (c, p) = (&choices[e.child], &choices[e.parent]);
    c.included && c.data && p.included && (c.filter.is_some() || p.filter.is_some() || !p.data)
}

/// `SELECT count(*)` of the child's exported rows whose key finds no exported parent row.
/// Each filter names its table's columns unqualified, so each gets a derived table of its
/// own as its scope. `from` is each table's FROM item, `quote` the engine's identifier
/// quoting, `truth` its literal for true and false.
pub fn dangling_query(
    e: &Edge,
    choices: &[Choice],
    from: (&str, &str),
    quote: &dyn Fn(&str) -> String,
    truth: (&str, &str),
) -> String {
    let kept = |c: &Choice| match (&c.filter, c.data) {
        (_, false) => truth.1.to_owned(),
        (Some(f), true) => format!("({f})"),
        (None, true) => truth.0.to_owned(),
    };
    let not_null: Vec<String> = e
        .child_columns
        .iter()
        .map(|col| format!("c.{} IS NOT NULL", quote(col)))
        .collect();
    let joined: Vec<String> = e
        .child_columns
        .iter()
        .zip(&e.parent_columns)
        .map(|(cc, pc)| format!("p.{} = c.{}", quote(pc), quote(cc)))
        .collect();
    format!(
        "SELECT count(*) FROM (SELECT * FROM {} WHERE {}) AS c WHERE {} AND NOT EXISTS (SELECT 1 FROM (SELECT * FROM {} WHERE {}) AS p WHERE {})",
        from.0,
        kept(&choices[e.child]),
        not_null.join(" AND "),
        from.1,
        kept(&choices[e.parent]),
        joined.join(" AND ")
    )
}

/// The report line for `n` dangling rows.
pub fn dangling_line(e: &Edge, n: i64, child: &str, parent: &str) -> String {
    format!(
        "table {child}: {n} exported row(s) reference rows of {parent} that are not exported (foreign key {})",
        e.name
    )
}

/// A foreign key between two tables of the export, by index, with the referenced columns
/// resolved (an empty list in the manifest means the parent's primary key).
#[derive(Debug, Clone)]
pub struct Edge {
    pub name: String,
    pub child: usize,
    pub child_columns: Vec<String>,
    pub parent: usize,
    pub parent_columns: Vec<String>,
}

/// The foreign keys among `tables`; keys whose parent is not among them, or whose columns
/// cannot be resolved, are left out with a note (the walk cannot follow them).
pub fn edges(tables: &[Table]) -> (Vec<Edge>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (c, t) in tables.iter().enumerate() {
        for fk in &t.foreign_keys {
            let schema = fk.ref_schema.clone().or_else(|| t.schema.clone());
            let parent = tables
                .iter()
                .position(|p| p.name == fk.ref_table && (p.schema == schema || p.schema.is_none()));
            let name = fk
                .name
                .clone()
                .unwrap_or_else(|| format!("{}({})", t.name, fk.columns.join(", ")));
            let Some(p) = parent else {
                notes.push(format!(
                    "foreign key {name} of table {}: its table {} is not in the source's scope; the subset does not follow it",
                    t.display_name(),
                    fk.ref_table
                ));
                continue;
            };
            let parent_columns = if fk.ref_columns.is_empty() {
                tables[p]
                    .primary_key
                    .as_ref()
                    .map(|k| k.columns.clone())
                    .unwrap_or_default()
            } else {
                fk.ref_columns.clone()
            };
            if parent_columns.len() != fk.columns.len() || parent_columns.is_empty() {
                notes.push(format!(
                    "foreign key {name} of table {}: its referenced columns are unknown; the subset does not follow it",
                    t.display_name()
                ));
                continue;
            }
            out.push(Edge {
                name,
                child: c,
                child_columns: fk.columns.clone(),
                parent: p,
                parent_columns,
            });
        }
    }
    (out, notes)
}

/// Rows fetched from the source: each row's identity and the values of the columns asked for.
pub type Fetched<R, V> = Vec<(R, Vec<Option<V>>)>;

/// The engine half of the subset walk. Every call runs inside the export's snapshot and
/// applies the table's `--where` filter, if it has one.
pub trait RowSource {
    /// A row's identity within its table (a rowid, a ctid, a primary key).
    type Row: Eq + Hash + Clone;
    /// One column's value, in a form whose equality is the engine's.
    type Value: Eq + Hash + Clone;
    type Error;

    /// The rows of `table` that a seed selects, with the values of `columns`.
    fn seed(
        &mut self,
        table: usize,
        seed: &Seed,
        columns: &[String],
    ) -> Result<Fetched<Self::Row, Self::Value>, Self::Error>;

    /// The rows of `table` whose `match_columns` equal one of `keys`, with the values of
    /// `columns`.
    fn lookup(
        &mut self,
        table: usize,
        match_columns: &[String],
        keys: &[Vec<Self::Value>],
        columns: &[String],
    ) -> Result<Fetched<Self::Row, Self::Value>, Self::Error>;
}

/// Why a table is in a subset, and which of its rows are.
#[derive(Debug, Clone)]
pub struct Subset<R> {
    /// For tables connected to a seed: the identities of the included rows. `None` for
    /// tables no foreign-key path connects to a seed, which are copied whole.
    pub rows: Vec<Option<HashSet<R>>>,
    /// Why rows of each table are included: `seed`, `child of X via FK`, `parent of Y via FK`.
    pub reasons: Vec<BTreeSet<String>>,
    /// Lookups run against the source, for the plan and the benchmark.
    pub queries: u64,
}

/// Walks the foreign keys from the seeds to the fixed point (see the module comment), asking
/// `source` for rows. Async sources drive a [`Walker`] themselves.
pub fn walk<S: RowSource>(
    source: &mut S,
    tables: &[Table],
    edges: &[Edge],
    seeds: &[(usize, Seed)],
) -> Result<Subset<S::Row>, S::Error> {
    let mut w = Walker::new(tables, edges, seeds);
    while let Some(request) = w.next_request() {
        let fetched = match &request {
            Request::Seed {
                table,
                seed,
                columns,
            } => source.seed(*table, seed, columns)?,
            Request::Lookup {
                table,
                match_columns,
                keys,
                columns,
            } => source.lookup(*table, match_columns, keys, columns)?,
        };
        w.answer(fetched);
    }
    Ok(w.finish())
}

/// One question the walk asks the source; see [`RowSource`] for what each means.
#[derive(Debug, Clone)]
pub enum Request<V> {
    Seed {
        table: usize,
        seed: Seed,
        columns: Vec<String>,
    },
    Lookup {
        table: usize,
        match_columns: Vec<String>,
        keys: Vec<Vec<V>>,
        columns: Vec<String>,
    },
}

/// The subset walk as a state machine: [`Walker::next_request`] says what to fetch,
/// [`Walker::answer`] hands the rows back, until there is nothing left to ask. This keeps
/// the walk free of any I/O model, so a blocking and an async adapter share it.
pub struct Walker<R, V> {
    names: Vec<String>,
    edges: Vec<Edge>,
    key_columns: Vec<Vec<String>>,
    child_at: Vec<Vec<usize>>,
    parent_at: Vec<Vec<usize>>,
    connected: Vec<bool>,
    state: Walk<R, V>,
    asked_down: Vec<HashSet<Vec<V>>>,
    asked_up: Vec<HashSet<Vec<V>>>,
    queue: std::collections::VecDeque<(Request<V>, bool, String)>,
    current: Option<(usize, bool, String)>,
    queries: u64,
}

impl<R: Eq + Hash + Clone, V: Eq + Hash + Clone> Walker<R, V> {
    pub fn new(tables: &[Table], edges: &[Edge], seeds: &[(usize, Seed)]) -> Self {
        let n = tables.len();
        // The columns each table reports: every key column it has on either side of an edge.
        let mut key_columns: Vec<Vec<String>> = vec![Vec::new(); n];
        for e in edges {
            for (t, cols) in [(e.child, &e.child_columns), (e.parent, &e.parent_columns)] {
                for c in cols {
                    if !key_columns[t].contains(c) {
                        key_columns[t].push(c.clone());
                    }
                }
            }
        }
        let at = |t: usize, cols: &[String]| -> Vec<usize> {
            cols.iter()
                .map(|c| key_columns[t].iter().position(|k| k == c).unwrap_or(0))
                .collect()
        };
        let child_at = edges
            .iter()
            .map(|e| at(e.child, &e.child_columns))
            .collect();
        let parent_at = edges
            .iter()
            .map(|e| at(e.parent, &e.parent_columns))
            .collect();
        // Tables reachable from a seed over edges in either direction; the rest are unrelated.
        let mut connected = vec![false; n];
        let mut stack: Vec<usize> = seeds.iter().map(|(t, _)| *t).collect();
        while let Some(t) = stack.pop() {
            if std::mem::replace(&mut connected[t], true) {
                continue;
            }
            for e in edges {
                if e.child == t && !connected[e.parent] {
                    stack.push(e.parent);
                }
                if e.parent == t && !connected[e.child] {
                    stack.push(e.child);
                }
            }
        }
        let queue = seeds
            .iter()
            .map(|(t, seed)| {
                (
                    Request::Seed {
                        table: *t,
                        seed: seed.clone(),
                        columns: key_columns[*t].clone(),
                    },
                    true,
                    "seed".to_owned(),
                )
            })
            .collect();
        Walker {
            names: tables.iter().map(|t| t.display_name()).collect(),
            edges: edges.to_vec(),
            key_columns,
            child_at,
            parent_at,
            connected,
            state: Walk {
                rows: (0..n).map(|_| HashSet::new()).collect(),
                down_seen: (0..n).map(|_| HashSet::new()).collect(),
                up_seen: (0..n).map(|_| HashSet::new()).collect(),
                down: (0..n).map(|_| Vec::new()).collect(),
                up: (0..n).map(|_| Vec::new()).collect(),
                reasons: vec![BTreeSet::new(); n],
            },
            asked_down: vec![HashSet::new(); edges.len()],
            asked_up: vec![HashSet::new(); edges.len()],
            queue,
            current: None,
            queries: 0,
        }
    }

    /// The next fetch, or `None` once the subset is complete.
    pub fn next_request(&mut self) -> Option<Request<V>> {
        if self.queue.is_empty() {
            self.refill();
        }
        let (request, downward, why) = self.queue.pop_front()?;
        let table = match &request {
            Request::Seed { table, .. } | Request::Lookup { table, .. } => *table,
        };
        self.current = Some((table, downward, why));
        self.queries += 1;
        Some(request)
    }

    /// The rows the last request fetched.
    pub fn answer(&mut self, fetched: Fetched<R, V>) {
        if let Some((t, downward, why)) = self.current.take() {
            self.state.add(t, fetched, downward, why);
        }
    }

    /// Turns the frontiers into requests: children of rows reached downward, parents of
    /// every new row.
    fn refill(&mut self) {
        for t in 0..self.names.len() {
            let frontier = std::mem::take(&mut self.state.down[t]);
            if frontier.is_empty() {
                continue;
            }
            for (k, e) in self.edges.iter().enumerate().filter(|(_, e)| e.parent == t) {
                let keys = new_keys(&frontier, &self.parent_at[k], &mut self.asked_down[k]);
                if keys.is_empty() {
                    continue;
                }
                self.queue.push_back((
                    Request::Lookup {
                        table: e.child,
                        match_columns: e.child_columns.clone(),
                        keys,
                        columns: self.key_columns[e.child].clone(),
                    },
                    true,
                    format!("child of {} via {}", self.names[t], e.name),
                ));
            }
        }
        for t in 0..self.names.len() {
            let frontier = std::mem::take(&mut self.state.up[t]);
            if frontier.is_empty() {
                continue;
            }
            for (k, e) in self.edges.iter().enumerate().filter(|(_, e)| e.child == t) {
                let keys = new_keys(&frontier, &self.child_at[k], &mut self.asked_up[k]);
                if keys.is_empty() {
                    continue;
                }
                self.queue.push_back((
                    Request::Lookup {
                        table: e.parent,
                        match_columns: e.parent_columns.clone(),
                        keys,
                        columns: self.key_columns[e.parent].clone(),
                    },
                    false,
                    format!("parent of {} via {}", self.names[t], e.name),
                ));
            }
        }
    }

    pub fn finish(self) -> Subset<R> {
        let rows = self
            .state
            .rows
            .into_iter()
            .zip(&self.connected)
            .map(|(r, &c)| c.then_some(r))
            .collect();
        Subset {
            rows,
            reasons: self.state.reasons,
            queries: self.queries,
        }
    }
}

type Frontier<R, V> = Vec<(R, Vec<Option<V>>)>;

struct Walk<R, V> {
    rows: Vec<HashSet<R>>,
    /// Rows whose children have been (or are queued to be) fetched.
    down_seen: Vec<HashSet<R>>,
    /// Rows whose parents have been (or are queued to be) fetched.
    up_seen: Vec<HashSet<R>>,
    down: Vec<Frontier<R, V>>,
    up: Vec<Frontier<R, V>>,
    reasons: Vec<BTreeSet<String>>,
}

impl<R: Eq + Hash + Clone, V: Clone> Walk<R, V> {
    /// Includes fetched rows. Every included row's parents are followed; only rows reached
    /// downward (seeds and their descendants) have their children followed.
    fn add(&mut self, t: usize, fetched: Fetched<R, V>, downward: bool, why: String) {
        let mut new = false;
        for (r, values) in fetched {
            new |= self.rows[t].insert(r.clone());
            if downward && self.down_seen[t].insert(r.clone()) {
                self.down[t].push((r.clone(), values.clone()));
                new = true;
            }
            if self.up_seen[t].insert(r.clone()) {
                self.up[t].push((r, values));
            }
        }
        if new {
            self.reasons[t].insert(why);
        }
    }
}

/// The keys at `positions` of the frontier's rows that have no NULL (a key with a NULL
/// references nothing) and were not asked for before.
fn new_keys<R, V: Eq + Hash + Clone>(
    frontier: &Frontier<R, V>,
    positions: &[usize],
    asked: &mut HashSet<Vec<V>>,
) -> Vec<Vec<V>> {
    let mut out = Vec::new();
    for (_, values) in frontier {
        let key: Option<Vec<V>> = positions
            .iter()
            .map(|&p| values.get(p).cloned().flatten())
            .collect();
        if let Some(key) = key
            && asked.insert(key.clone())
        {
            out.push(key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Column, ForeignKey, Key};
    use crate::types::LogicalType;

    fn name(s: Option<&str>, n: &str) -> TableName {
        TableName {
            schema: s.map(str::to_owned),
            name: n.into(),
        }
    }

    #[test]
    fn double_quoted_parts_are_literal_as_in_pg_dump() {
        let tables = [
            name(Some("public"), "Track"),
            name(Some("public"), "track"),
            name(Some("public"), "Tr*"),
            name(Some("public"), "my.table"),
            name(Some("public"), "say \"hi\""),
        ];
        let picks = |p: &str| -> Vec<bool> {
            let sel = Selection {
                tables: vec![p.into()],
                ..Default::default()
            };
            sel.resolve(&tables, false)
                .unwrap()
                .choices
                .iter()
                .map(|c| c.included)
                .collect()
        };
        assert_eq!(picks("\"Track\""), [true, false, false, false, false]);
        assert_eq!(
            picks("\"public\".\"Track\""),
            [true, false, false, false, false]
        );
        assert_eq!(picks("public.\"Tr*\""), [false, false, true, false, false]);
        assert_eq!(picks("Tr*"), [true, false, true, false, false]);
        assert_eq!(picks("\"my.table\""), [false, false, false, true, false]);
        assert_eq!(
            picks("\"say \"\"hi\"\"\""),
            [false, false, false, false, true]
        );
        // Unquoted stays as it was: case-sensitive here, unlike pg_dump's folding.
        assert_eq!(picks("Track"), [true, false, false, false, false]);
    }

    #[test]
    fn globs_on_names_and_qualified_names() {
        let tables = [
            name(Some("public"), "users"),
            name(Some("public"), "audit_log"),
            name(Some("app"), "users"),
        ];
        let sel = Selection {
            tables: vec!["public.*".into()],
            exclude_tables: vec!["audit_*".into()],
            ..Default::default()
        };
        let r = sel.resolve(&tables, false).unwrap();
        let inc: Vec<bool> = r.choices.iter().map(|c| c.included).collect();
        assert_eq!(inc, [true, false, false]);
        let bad = Selection {
            tables: vec!["nosuch*".into()],
            ..Default::default()
        };
        let e = bad.resolve(&tables, false).unwrap_err().to_string();
        assert!(e.contains("matches no table"), "{e}");
        let amb = Selection {
            filters: vec![TableCondition::parse("--where", "users:id > 1").unwrap()],
            ..Default::default()
        };
        let e = amb.resolve(&tables, false).unwrap_err().to_string();
        assert!(e.contains("qualify it"), "{e}");
        let quoted = Selection {
            filters: vec![TableCondition::parse("--where", "\"public\".\"users\":id > 1").unwrap()],
            ..Default::default()
        };
        assert_eq!(
            quoted.resolve(&tables, false).unwrap().choices[0]
                .filter
                .as_deref(),
            Some("id > 1")
        );
        let sqlite = [name(None, "Users")];
        let ok = Selection {
            tables: vec!["main.users".into()],
            ..Default::default()
        };
        assert!(ok.resolve(&sqlite, true).unwrap().choices[0].included);
    }

    #[test]
    fn conditions_split_at_the_first_colon() {
        let c =
            TableCondition::parse("--where", "events:at > '2024-01-01 10:00'::timestamp").unwrap();
        assert_eq!(c.table, "events");
        assert_eq!(c.condition, "at > '2024-01-01 10:00'::timestamp");
        assert!(TableCondition::parse("--where", "events").is_err());
        assert!(TableCondition::parse("--where", ":x").is_err());
    }

    /// A row of the in-memory source: its id, and its values by column name.
    type MemRow = (u32, Vec<(&'static str, Option<i64>)>);

    /// An in-memory source: the rows of each table.
    struct Mem(Vec<Vec<MemRow>>);

    impl RowSource for Mem {
        type Row = u32;
        type Value = i64;
        type Error = ();
        fn seed(
            &mut self,
            t: usize,
            seed: &Seed,
            cols: &[String],
        ) -> Result<Fetched<u32, i64>, ()> {
            let Seed::Ids(ids) = seed else { return Err(()) };
            let ids: Vec<u32> = ids.iter().map(|s| s.parse().unwrap()).collect();
            Ok(self.0[t]
                .iter()
                .filter(|(id, _)| ids.contains(id))
                .map(|(id, vals)| (*id, pick(vals, cols)))
                .collect())
        }
        fn lookup(
            &mut self,
            t: usize,
            m: &[String],
            keys: &[Vec<i64>],
            cols: &[String],
        ) -> Result<Fetched<u32, i64>, ()> {
            Ok(self.0[t]
                .iter()
                .filter(|(_, vals)| {
                    let k: Option<Vec<i64>> = pick(vals, m).into_iter().collect();
                    k.is_some_and(|k| keys.contains(&k))
                })
                .map(|(id, vals)| (*id, pick(vals, cols)))
                .collect())
        }
    }

    fn pick(vals: &[(&str, Option<i64>)], cols: &[String]) -> Vec<Option<i64>> {
        cols.iter()
            .map(|c| vals.iter().find(|(n, _)| n == c).and_then(|(_, v)| *v))
            .collect()
    }

    fn table(name: &str, fks: &[(&str, &str)]) -> Table {
        let mut t = Table::new(
            name,
            name,
            vec![Column::new("id", LogicalType::Int64, false)],
        );
        t.primary_key = Some(Key {
            name: None,
            columns: vec!["id".into()],
            properties: Default::default(),
        });
        for (col, parent) in fks {
            t.foreign_keys.push(ForeignKey {
                name: Some(format!("{name}_{col}")),
                columns: vec![(*col).into()],
                ref_schema: None,
                ref_table: (*parent).into(),
                ref_columns: vec![],
                on_update: "NO ACTION".into(),
                on_delete: "NO ACTION".into(),
                deferrable: false,
                initially_deferred: false,
            });
        }
        t
    }

    #[test]
    fn children_of_parents_are_not_pulled_and_cycles_end() {
        // users ← posts(user_id) ; posts.parent_id → posts (self reference);
        // posts.editor_id → users: a parent of a post, whose other posts stay out.
        let tables = vec![
            table("users", &[]),
            table(
                "posts",
                &[
                    ("user_id", "users"),
                    ("parent_id", "posts"),
                    ("editor_id", "users"),
                ],
            ),
            table("tags", &[]),
        ];
        let (edges, notes) = edges(&tables);
        assert!(notes.is_empty(), "{notes:?}");
        let u = |id| vec![("id", Some(id))];
        let p = |id, user, parent: Option<i64>, editor| {
            vec![
                ("id", Some(id)),
                ("user_id", Some(user)),
                ("parent_id", parent),
                ("editor_id", Some(editor)),
            ]
        };
        let mut src = Mem(vec![
            vec![(1, u(1)), (2, u(2)), (3, u(3))],
            vec![
                (10, p(10, 1, None, 1)),
                (11, p(11, 1, Some(10), 2)), // edited by user 2
                (12, p(12, 2, Some(13), 2)), // user 2's post, in a cycle with 13
                (13, p(13, 2, Some(12), 2)),
                (14, p(14, 3, Some(11), 3)), // a reply to user 1's post, by user 3
            ],
            vec![(100, u(100))],
        ]);
        let s = walk(
            &mut src,
            &tables,
            &edges,
            &[(0, Seed::Ids(vec!["1".into()]))],
        )
        .unwrap();
        let mut users: Vec<u32> = s.rows[0].clone().unwrap().into_iter().collect();
        users.sort();
        let mut posts: Vec<u32> = s.rows[1].clone().unwrap().into_iter().collect();
        posts.sort();
        // User 1, their posts 10 and 11, the reply 14 (a child of 11 via parent_id), its
        // author 3 and editor 2 as parents; not user 2's own posts 12 and 13.
        assert_eq!(users, [1, 2, 3]);
        assert_eq!(posts, [10, 11, 14]);
        assert!(s.rows[2].is_none(), "tags is unrelated and copied whole");
        assert!(s.reasons[0].contains("seed"));
        assert!(
            s.reasons[0]
                .iter()
                .any(|r| r.starts_with("parent of posts"))
        );

        // Seeding a post in the cycle pulls its partner and ends.
        let s = walk(
            &mut src,
            &tables,
            &edges,
            &[(1, Seed::Ids(vec!["12".into()]))],
        )
        .unwrap();
        let mut posts: Vec<u32> = s.rows[1].clone().unwrap().into_iter().collect();
        posts.sort();
        assert_eq!(posts, [12, 13]);
    }
}
