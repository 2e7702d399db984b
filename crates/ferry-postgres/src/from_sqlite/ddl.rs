//! The DDL of a SQLite archive in PostgreSQL, decided from the manifest alone: names first
//! (folded and shortened as PostgreSQL needs them), then every column's type (see
//! [`super::decide`]), then the statements in the order they run: tables before the data;
//! defaults, identities, generated columns, keys, indexes, foreign keys, checks, views and
//! triggers after it. Each statement passes the same guard as a PostgreSQL archive's own
//! before it is kept.

use std::collections::HashMap;

use ferry_archive::facts::{Facts, SqliteTableFacts};
use ferry_archive::manifest::{Check, ForeignKey, SchemaObject};
use ferry_archive::{Column, Manifest, Table};

use super::{Conv, Decision, TablePlan, decide, leak, pg_names, shorten, translate_default, wider};
use crate::{quote_ident, quote_qualified};

/// One DDL statement of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    /// What it does, for messages.
    pub what: String,
    pub sql: String,
    /// The archive id of the one table this statement creates or changes, when it touches
    /// no other object: such a step may run while the table is still being staged.
    pub table: Option<String>,
    /// For a foreign key: the archive ids of the referencing and the referenced table.
    pub foreign_key: Option<(String, String)>,
    /// A build that may run beside its table's other builds: an index with a name of its
    /// own (see [`names_itself`]). The others keep their post-data order.
    pub apart: bool,
    /// Reported (`converted: …`) once the statement has run: a translation it carries.
    pub note: Option<String>,
    /// A statement this one needs, run just before it (a trigger's function): checked and
    /// reported with it, so that the pair is created, refused or skipped as one. With it,
    /// the statement that takes it back if this one is refused (`DROP FUNCTION`).
    pub prepare: Option<(String, String)>,
}

/// The report of a translation that replaced `date('1997-01-01')`-style calls by the text
/// SQLite returns for them (`folded`, as written), with what that means for the object
/// (`effect`: "may be selected differently"); `None` when nothing was folded. The text is
/// SQLite's exactly, but beside a column converted to a date or timestamp PostgreSQL
/// compares the two as that type, where SQLite compared text.
fn fold_note(folded: &[String], effect: &str) -> Option<String> {
    (!folded.is_empty()).then(|| {
        format!(
            "{} replaced by the text SQLite returns; beside a date or timestamp column it compares as that type, where SQLite compared text, so rows whose stored text has another form (such as a date without a time) {effect}",
            folded.join(", ")
        )
    })
}

impl Step {
    fn global(what: String, sql: String) -> Self {
        Step {
            what,
            sql,
            table: None,
            foreign_key: None,
            apart: false,
            note: None,
            prepare: None,
        }
    }

    fn on(table: &Table, what: String, sql: String) -> Self {
        Step {
            what,
            sql,
            table: Some(table.id.clone()),
            foreign_key: None,
            apart: false,
            note: None,
            prepare: None,
        }
    }
}

/// Whether an index named `name` can be built at any moment without changing what the
/// server names anything else. Unnamed primary keys and unique constraints take a name the
/// server picks from what exists when they run (`t_pkey`, `t_a_key`, then `t_pkey1`, ...);
/// an index whose name could be one of those must keep its place in post-data order, or a
/// parallel import could name a key differently from a serial one.
pub(crate) fn names_itself(name: &str) -> bool {
    !name
        .to_ascii_lowercase()
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .ends_with("key")
}

/// Everything an import of a SQLite archive will do, decided from the prelude alone.
#[derive(Debug, Default)]
pub struct CrossPlan {
    pub pre: Vec<Step>,
    /// Post-data statements; each may fail and is then reported, not fatal.
    pub post: Vec<Step>,
    pub tables: HashMap<String, TablePlan>,
    /// Conversions and renames, for the report and --dry-run.
    pub notes: Vec<String>,
    /// Objects that were not carried over, with the reason.
    pub skipped: Vec<String>,
    /// --strict findings: values that would not convert.
    pub refusals: Vec<String>,
}

/// `foreign`: the target's other schemas (empty when not known, as for --dry-run); no
/// statement may name anything in them.
pub fn plan(m: &Manifest, schema: &str, strict: bool, foreign: &[String]) -> CrossPlan {
    let mut pl = Planner::new(m, schema, strict);
    pl.tables();
    pl.keys();
    pl.indexes();
    pl.constraints();
    pl.views_and_triggers();
    pl.guard(foreign);
    pl.p
}

/// The plan as it is built. Names and column decisions are fixed first, for the whole
/// archive, because a statement of one table names the columns of another.
struct Planner<'m> {
    m: &'m Manifest,
    schema: &'m str,
    strict: bool,
    /// SQLite table name → PostgreSQL table name.
    table_names: HashMap<String, String>,
    /// SQLite table name → (SQLite column name → PostgreSQL column name).
    col_names: HashMap<String, HashMap<String, String>>,
    /// (SQLite table, SQLite column) → its type and conversion.
    decisions: HashMap<(String, String), Decision>,
    /// The SQLite exporter's table facts; unreadable ones are reported and not used.
    facts: HashMap<&'m str, SqliteTableFacts>,
    /// Column defaults and generated columns, set after the data is in.
    defaults: Vec<Step>,
    generated: Vec<Step>,
    p: CrossPlan,
}

impl<'m> Planner<'m> {
    fn new(m: &'m Manifest, schema: &'m str, strict: bool) -> Self {
        let mut p = CrossPlan::default();
        p.pre.push(Step::global(
            format!("schema {schema}"),
            format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)),
        ));
        let table_names = pg_names(m.tables.iter().map(|t| t.name.as_str()));
        for (orig, new) in &table_names {
            if orig != new && orig.to_lowercase() != *new {
                p.notes.push(format!("table {orig} renamed to {new}"));
            }
        }
        let facts = m
            .tables
            .iter()
            .map(|t| {
                let f = SqliteTableFacts::read(&t.properties).unwrap_or_else(|e| {
                    p.notes.push(format!(
                        "table {}: its rowid alias and sqlite_sequence are unreadable ({e}); not carried",
                        t.name
                    ));
                    SqliteTableFacts::default()
                });
                (t.name.as_str(), f)
            })
            .collect();
        let mut pl = Planner {
            m,
            schema,
            strict,
            table_names,
            col_names: HashMap::new(),
            decisions: HashMap::new(),
            facts,
            defaults: Vec::new(),
            generated: Vec::new(),
            p,
        };
        pl.decide_all();
        pl
    }

    /// Every column is decided before any statement, so that a foreign key column can take
    /// the type of the column it references (an INTEGER PRIMARY KEY becomes bigint; its
    /// references follow).
    fn decide_all(&mut self) {
        let m = self.m;
        for t in &m.tables {
            let alias = self.facts[t.name.as_str()].rowid_alias.as_deref();
            for c in &t.columns {
                self.decisions.insert(
                    (t.name.clone(), c.name.clone()),
                    decide(c, alias == Some(c.name.as_str()), self.strict),
                );
            }
        }
        for t in &m.tables {
            for fk in &t.foreign_keys {
                let ref_cols = self.referenced_columns(fk);
                for (col, rc) in fk.columns.iter().zip(&ref_cols) {
                    self.widen_to(&t.name, col, &fk.ref_table, rc);
                }
            }
        }
    }

    /// The columns a foreign key references: its own list, else the referenced table's key.
    fn referenced_columns(&self, fk: &ForeignKey) -> Vec<String> {
        if !fk.ref_columns.is_empty() {
            return fk.ref_columns.clone();
        }
        self.m
            .tables
            .iter()
            .find(|r| r.name == fk.ref_table)
            .and_then(|r| r.primary_key.as_ref())
            .map(|k| k.columns.clone())
            .unwrap_or_default()
    }

    /// An integer referencing column takes the wider of its own and the referenced type.
    fn widen_to(&mut self, table: &str, col: &str, ref_table: &str, ref_col: &str) {
        let key = (ref_table.to_owned(), ref_col.to_owned());
        let Some(target) = self.decisions.get(&key).cloned() else {
            return;
        };
        let Some(d) = self.decisions.get_mut(&(table.to_owned(), col.to_owned())) else {
            return;
        };
        let ints = [Conv::Int2, Conv::Int4, Conv::Int8];
        if ints.contains(&d.conv) && ints.contains(&target.conv) {
            let (pg_type, conv) = wider(
                (leak(&d.pg_type), d.conv),
                (leak(&target.pg_type), target.conv),
            );
            d.pg_type = pg_type.to_owned();
            d.conv = conv;
        }
    }

    fn tname(&self, n: &str) -> String {
        self.table_names
            .get(n)
            .cloned()
            .unwrap_or_else(|| shorten(n))
    }

    /// A SQLite table's target, quoted and qualified.
    fn target(&self, n: &str) -> String {
        quote_qualified(self.schema, &self.tname(n))
    }

    /// CREATE TABLE for every table; defaults, identities and generated columns after the
    /// data, in that order.
    fn tables(&mut self) {
        let m = self.m;
        for t in &m.tables {
            self.table(t);
        }
        let defaults = std::mem::take(&mut self.defaults);
        self.p.post.splice(0..0, defaults);
        let generated = std::mem::take(&mut self.generated);
        self.p.post.extend(generated);
    }

    fn table(&mut self, t: &Table) {
        let target = self.target(&t.name);
        let cols = pg_names(t.columns.iter().map(|c| c.name.as_str()));
        let alias = self.facts[t.name.as_str()].rowid_alias.clone();
        let data_fields = t.data_fields();
        if t.kind == "virtual" {
            self.p.skipped.push(format!(
                "virtual table {}: its full-text or spatial index is not recreated; its columns are loaded as a plain table",
                t.name
            ));
        }
        if t.rowid.is_some() {
            self.p.notes.push(format!(
                "table {}: SQLite rowids are not kept (no INTEGER PRIMARY KEY; PostgreSQL has no rowid)",
                t.name
            ));
        }
        let mut defs = Vec::new();
        let mut fields = Vec::new();
        for c in &t.columns {
            let col = cols[&c.name].clone();
            let d = self.decisions[&(t.name.clone(), c.name.clone())].clone();
            if let Some(n) = &d.note {
                self.p.notes.push(format!("{}.{}: {n}", t.name, c.name));
            }
            if self.strict {
                for ex in &d.misfits {
                    self.p
                        .refusals
                        .push(format!("table {}, column {}, {ex}", t.name, c.name));
                }
            }
            // Stored and generated columns alike.
            if let Some(note) = c.collation.as_deref().and_then(collation_note) {
                self.p
                    .notes
                    .push(format!("column {}.{}: {note}", t.name, c.name));
            }
            if c.generated.is_some() {
                self.generated_column(t, c, &col, &cols, &d);
                continue;
            }
            if !col.eq_ignore_ascii_case(&c.name) {
                self.p
                    .notes
                    .push(format!("column {}.{} renamed to {col}", t.name, c.name));
            }
            let is_alias = alias.as_deref() == Some(c.name.as_str());
            defs.push(self.column_def(t, c, &col, &d, is_alias));
            if let Some(i) = data_fields.iter().position(|(n, _)| *n == c.name) {
                fields.push((i, quote_ident(&col), d.conv));
            }
        }
        self.p.pre.push(Step::on(
            t,
            format!("table {}", t.name),
            format!("CREATE TABLE {target} (\n    {}\n)", defs.join(",\n    ")),
        ));
        self.p.tables.insert(
            t.id.clone(),
            TablePlan {
                target: target.clone(),
                schema: self.schema.to_owned(),
                name: self.tname(&t.name),
                fields,
            },
        );
        self.col_names.insert(t.name.clone(), cols);
        if let Some(a) = &alias {
            let step = self.identity(t, a);
            self.p.post.push(step);
        }
    }

    /// One column's definition; its default, when it translates, is set after the data.
    fn column_def(
        &mut self,
        t: &Table,
        c: &Column,
        col: &str,
        d: &Decision,
        alias: bool,
    ) -> String {
        let mut def = format!("{} {}", quote_ident(col), d.pg_type);
        if alias {
            def.push_str(" GENERATED BY DEFAULT AS IDENTITY");
        } else if let Some(dflt) = &c.default {
            // Set after the table exists, each behind its own savepoint: a default that
            // PostgreSQL refuses for the column's type is reported, not fatal.
            match translate_default(dflt, &d.pg_type, d.conv) {
                Some(x) => self.defaults.push(Step::on(
                    t,
                    format!("default of {}.{} ({dflt})", t.name, c.name),
                    format!(
                        "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {x}",
                        self.target(&t.name),
                        quote_ident(col)
                    ),
                )),
                None => self.p.skipped.push(format!(
                    "default of {}.{} ({dflt}) does not translate; dropped",
                    t.name, c.name
                )),
            }
        }
        if !c.nullable {
            def.push_str(" NOT NULL");
        }
        def
    }

    /// A generated column is recomputed by PostgreSQL once the rows are in (added last, so
    /// it is the table's last column); reported if the expression does not translate.
    fn generated_column(
        &mut self,
        t: &Table,
        c: &Column,
        col: &str,
        cols: &HashMap<String, String>,
        d: &Decision,
    ) {
        let Some(g) = &c.generated else { return };
        let ty = if d.pg_type == "text" && c.hint.is_none() {
            "text"
        } else {
            d.pg_type.as_str()
        };
        let what = format!("generated column {}.{}", t.name, c.name);
        let renames = Renames::new(
            cols.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(self.table_names.iter().map(|(k, v)| (k.clone(), v.clone()))),
        );
        let names: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        let ctx = ferry_sql::translate::Context {
            rename: &|n| renames.get(n),
            columns: Some(&names),
            bools: &[],
            texts: &[],
        };
        match ferry_sql::translate::expr_to_pg_folding(&g.expression, &what, &ctx) {
            Ok((expr, folded)) => {
                let mut step = Step::on(
                    t,
                    what.clone(),
                    format!(
                        "ALTER TABLE {} ADD COLUMN {} {ty} GENERATED ALWAYS AS ({expr}) STORED",
                        self.target(&t.name),
                        quote_ident(col),
                    ),
                );
                step.note =
                    fold_note(&folded, "may get another value").map(|f| format!("{what}: {f}"));
                self.generated.push(step);
            }
            Err(e) => self.p.skipped.push(format!("{e}; the column was left out")),
        }
    }

    /// The identity of a rowid alias continues after the highest key or sqlite_sequence.
    fn identity(&self, t: &Table, alias: &str) -> Step {
        let target = self.target(&t.name);
        let pg_col = &self.col_names[&t.name][alias];
        let col = quote_ident(pg_col);
        let seq = self.facts[t.name.as_str()].sqlite_sequence.unwrap_or(0);
        Step::global(
            format!("identity of {}.{alias}", t.name),
            format!(
                "SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence({}, {}), greatest(v, 1), v > 0) FROM (SELECT greatest(coalesce(max({col}), 0), {seq}) AS v FROM {target}) s",
                crate::catalog::quote_literal(&target),
                crate::catalog::quote_literal(pg_col)
            ),
        )
    }

    /// A SQLite table's columns as their PostgreSQL names, quoted, for a column list.
    fn qcols(&self, t: &str, cols: &[String]) -> String {
        cols.iter()
            .map(|c| {
                quote_ident(
                    self.col_names
                        .get(t)
                        .and_then(|m| m.get(c))
                        .map(String::as_str)
                        .unwrap_or(c),
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Primary keys and unique constraints.
    fn keys(&mut self) {
        let m = self.m;
        for t in &m.tables {
            if let Some(pk) = &t.primary_key {
                let step = Step::on(
                    t,
                    format!("primary key of {}", t.name),
                    format!(
                        "ALTER TABLE {} ADD PRIMARY KEY ({})",
                        self.target(&t.name),
                        self.qcols(&t.name, &pk.columns)
                    ),
                );
                self.p.post.push(step);
            }
            for u in &t.unique {
                self.unique(t, &u.columns);
            }
        }
    }

    fn unique(&mut self, t: &Table, columns: &[String]) {
        let target = self.target(&t.name);
        let nocase: Vec<&Column> = t
            .columns
            .iter()
            .filter(|c| columns.contains(&c.name) && is_nocase(c))
            .collect();
        if nocase.is_empty() {
            let step = Step::on(
                t,
                format!("unique constraint on {}", t.name),
                format!(
                    "ALTER TABLE {target} ADD UNIQUE ({})",
                    self.qcols(&t.name, columns)
                ),
            );
            self.p.post.push(step);
            return;
        }
        // UNIQUE on a NOCASE column compares case-insensitively in SQLite: a unique
        // index on lower(column) keeps that here (a constraint cannot hold expressions).
        let keys: Vec<String> = columns
            .iter()
            .map(|c| {
                let q = self.qcols(&t.name, std::slice::from_ref(c));
                if nocase.iter().any(|n| &n.name == c) {
                    format!("(lower({q}))")
                } else {
                    q
                }
            })
            .collect();
        let name = shorten(&format!(
            "{}_{}_key",
            self.tname(&t.name),
            columns.join("_").to_lowercase()
        ));
        self.p.notes.push(format!(
            "unique constraint on {}({}): NOCASE, so it becomes a unique index on lower(...)",
            t.name,
            columns.join(", ")
        ));
        self.p.post.push(Step::on(
            t,
            format!("unique constraint on {}", t.name),
            format!(
                "CREATE UNIQUE INDEX {} ON {target} ({})",
                quote_ident(&name),
                keys.join(", ")
            ),
        ));
    }

    /// SQLite spells booleans 0 and 1; PostgreSQL compares a boolean only with true/false.
    /// A table's own boolean columns for its checks and indexes; all of them for views.
    fn bools_of(&self, table: Option<&str>) -> Vec<String> {
        self.decisions
            .iter()
            .filter(|((t, _), d)| d.conv == Conv::Bool && table.is_none_or(|x| x == t))
            .filter_map(|((t, c), _)| self.col_names.get(t)?.get(c).cloned())
            .collect()
    }

    /// The PostgreSQL names of the columns of `tables` that compare as text in SQLite and
    /// are text here: TEXT affinity, loaded as text unwidened. A name that any other column
    /// of those tables has (of whatever type) is left out, so that a comparison is never read
    /// as text where SQLite read it otherwise.
    fn texts_of(&self, tables: Option<&[String]>) -> Vec<String> {
        let mut texts = Vec::new();
        let mut others = Vec::new();
        let in_scope = |t: &str| tables.is_none_or(|ts| ts.iter().any(|x| x == t));
        for t in self.m.tables.iter().filter(|t| in_scope(&t.name)) {
            for c in &t.columns {
                let Some(pg) = self.col_names.get(&t.name).and_then(|m| m.get(&c.name)) else {
                    continue;
                };
                let text_affinity =
                    ferry_sql::sqlite::Affinity::of(c.declared_type.as_deref().unwrap_or(""))
                        == ferry_sql::sqlite::Affinity::Text;
                let conv = self
                    .decisions
                    .get(&(t.name.clone(), c.name.clone()))
                    .map(|d| d.conv);
                if text_affinity && conv == Some(Conv::Text { widen: false }) {
                    texts.push(pg.clone());
                } else {
                    others.push(pg.clone());
                }
            }
        }
        texts.retain(|n| !others.contains(n));
        texts
    }

    /// SQLite names in a table's expressions → the names its columns and the tables have here.
    fn renames_of(&self, t: &str) -> Renames {
        Renames::new(
            self.col_names
                .get(t)
                .into_iter()
                .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
                .chain(self.table_names.iter().map(|(k, v)| (k.clone(), v.clone()))),
        )
    }

    /// Every table and column name, for views and triggers that may name any of them.
    fn all_renames(&self) -> Renames {
        Renames::new(
            self.table_names
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(
                    self.col_names
                        .values()
                        .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone()))),
                ),
        )
    }

    /// The table SQL names `t` (SQLite matches names whatever their ASCII case).
    fn table_named(&self, t: &str) -> Option<&'m Table> {
        self.m
            .tables
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(t))
    }

    fn columns_of(&self, t: &str) -> Vec<String> {
        self.table_named(t)
            .map(|x| x.columns.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    }

    fn nocase_of(&self, t: &str) -> Vec<String> {
        self.table_named(t)
            .map(|x| {
                x.columns
                    .iter()
                    .filter(|c| is_nocase(c))
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn indexes(&mut self) {
        let m = self.m;
        for o in m.objects.iter().filter(|o| o.kind == "index") {
            let Some(table) = m
                .tables
                .iter()
                .find(|t| Some(t.name.as_str()) == o.table.as_deref())
            else {
                self.p
                    .skipped
                    .push(format!("index {}: its table is not in the archive", o.name));
                continue;
            };
            self.index(o, table);
        }
    }

    fn index(&mut self, o: &SchemaObject, table: &Table) {
        let renames = self.renames_of(&table.name);
        let cols = self.columns_of(&table.name);
        let bools = self.bools_of(Some(&table.name));
        let texts = self.texts_of(Some(std::slice::from_ref(&table.name)));
        let ctx = ferry_sql::translate::Context {
            rename: &|n| renames.get(n),
            columns: Some(&cols),
            bools: &bools,
            texts: &texts,
        };
        let what = format!("index {}", o.name);
        let parsed = ferry_sql::translate::index_to_pg(
            o.definition.as_deref().unwrap_or(""),
            &what,
            &ctx,
            &self.nocase_of(&table.name),
        );
        match parsed {
            Ok(ix) if ix.table.eq_ignore_ascii_case(&table.name) => {
                let mut sql = format!(
                    "CREATE {}INDEX {} ON {} ({})",
                    if ix.unique { "UNIQUE " } else { "" },
                    quote_ident(&shorten(&o.name.to_lowercase())),
                    self.target(&table.name),
                    ix.keys.join(", ")
                );
                if let Some(w) = &ix.predicate {
                    sql.push_str(&format!(" WHERE {w}"));
                }
                if ix.keys.iter().any(|k| k.starts_with("(lower(")) {
                    self.p.notes.push(format!(
                        "{what}: COLLATE NOCASE keys become lower(...), so it stays case-insensitive"
                    ));
                }
                let mut step = Step::on(table, what.clone(), sql);
                step.apart = names_itself(&shorten(&o.name.to_lowercase()));
                step.note = fold_note(&ix.folded, "may be indexed differently")
                    .map(|f| format!("{what}: {f}"));
                self.p.post.push(step);
            }
            Ok(ix) => self.p.skipped.push(format!(
                "{what}: its definition is on table {}, not {}; refused",
                ix.table, table.name
            )),
            Err(e) => self
                .p
                .skipped
                .push(format!("{e}; the index was not created")),
        }
    }

    /// Foreign keys and checks, table by table.
    fn constraints(&mut self) {
        let m = self.m;
        for t in &m.tables {
            self.foreign_keys(t);
            for (i, ck) in t.checks.iter().enumerate() {
                self.check(t, i, ck);
            }
        }
    }

    fn foreign_keys(&mut self, t: &Table) {
        let target = self.target(&t.name);
        let mut used = std::collections::HashSet::new();
        for fk in &t.foreign_keys {
            let base = format!("{}_{}_fkey", self.tname(&t.name), fk.columns.join("_"));
            let mut name = shorten(&base);
            let mut n = 1;
            while !used.insert(name.clone()) {
                name = shorten(&format!("{base}{n}"));
                n += 1;
            }
            let refs = if fk.ref_columns.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.qcols(&fk.ref_table, &fk.ref_columns))
            };
            let mut step = Step::global(
                format!("foreign key {name}"),
                format!(
                    "ALTER TABLE {target} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}{refs} ON UPDATE {} ON DELETE {}",
                    quote_ident(&name),
                    self.qcols(&t.name, &fk.columns),
                    self.target(&fk.ref_table),
                    fk.on_update,
                    fk.on_delete
                ),
            );
            step.foreign_key = self
                .table_named(&fk.ref_table)
                .map(|r| (t.id.clone(), r.id.clone()));
            self.p.post.push(step);
        }
    }

    fn check(&mut self, t: &Table, i: usize, ck: &Check) {
        let name = ck
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_check{}", self.tname(&t.name), i + 1));
        let what = format!("check {name} on {}", t.name);
        let renames = self.renames_of(&t.name);
        let cols = self.columns_of(&t.name);
        let bools = self.bools_of(Some(&t.name));
        let texts = self.texts_of(Some(std::slice::from_ref(&t.name)));
        let ctx = ferry_sql::translate::Context {
            rename: &|n| renames.get(n),
            columns: Some(&cols),
            bools: &bools,
            texts: &texts,
        };
        match ferry_sql::translate::expr_to_pg_folding(&ck.expression, &what, &ctx) {
            Ok((expr, folded)) => {
                let mut step = Step::on(
                    t,
                    what.clone(),
                    format!(
                        "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({expr})",
                        self.target(&t.name),
                        quote_ident(&shorten(&name)),
                    ),
                );
                step.note = fold_note(&folded, "may be accepted or refused differently")
                    .map(|f| format!("{what}: {f}"));
                self.p.post.push(step);
            }
            Err(e) => self
                .p
                .skipped
                .push(format!("{e}; the check was not created")),
        }
    }

    fn views_and_triggers(&mut self) {
        let m = self.m;
        let renames = self.all_renames();
        for o in &m.objects {
            match o.kind.as_str() {
                "view" => self.view(o, &renames),
                "trigger" => self.trigger(o, &renames),
                _ => {}
            }
        }
    }

    fn view(&mut self, o: &SchemaObject, renames: &Renames) {
        let what = format!("view {}", o.name);
        let sql = o.definition.as_deref().unwrap_or("");
        // The text rule reads a name as a table's column: only when every relation the view
        // reads is one of the archive's tables (no subquery in FROM, no CTE, no other view).
        // The boolean rule then reads only those tables' boolean columns, so that an integer
        // `flag` compared with 1 stays an integer comparison beside another table's boolean
        // `flag`; otherwise it reads every table's, which can only make PostgreSQL refuse
        // the view (a boolean compared with a number), never select other rows.
        let tables: Option<Vec<String>> =
            ferry_sql::translate::view_base_relations(sql).and_then(|rels| {
                rels.iter()
                    .map(|r| self.table_named(r).map(|t| t.name.clone()))
                    .collect()
            });
        let (bools, texts) = match tables {
            Some(tables) => (
                tables.iter().flat_map(|t| self.bools_of(Some(t))).collect(),
                self.texts_of(Some(&tables)),
            ),
            None => (self.bools_of(None), Vec::new()),
        };
        let ctx = ferry_sql::translate::Context {
            rename: &|n| renames.get(n),
            columns: None,
            bools: &bools,
            texts: &texts,
        };
        match ferry_sql::translate::view_to_pg(sql, &what, &ctx) {
            Ok(v) => {
                let mut step = Step::global(
                    what.clone(),
                    format!(
                        "CREATE VIEW {}{} AS {}",
                        quote_qualified(self.schema, &shorten(&o.name.to_lowercase())),
                        if v.columns.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", v.columns.join(", "))
                        },
                        v.query
                    ),
                );
                step.note = fold_note(&v.folded, "may be selected differently")
                    .map(|f| format!("{what}: {f}"));
                self.p.post.push(step);
            }
            Err(e) => self
                .p
                .skipped
                .push(format!("{e}; the view was not created")),
        }
    }

    fn trigger(&mut self, o: &SchemaObject, renames: &Renames) {
        let bools = self.bools_of(o.table.as_deref());
        // A trigger's conditions may read other tables through subqueries: no text rule.
        let texts: Vec<String> = Vec::new();
        let ctx = ferry_sql::translate::Context {
            rename: &|n| renames.get(n),
            columns: None,
            bools: &bools,
            texts: &texts,
        };
        let m = self.m;
        let key_of = |t: &str| -> ferry_sql::trigger::RowKey {
            let Some(x) = m.tables.iter().find(|x| x.name.eq_ignore_ascii_case(t)) else {
                return Default::default();
            };
            let without_rowid = x.properties.get("without_rowid") == Some(&true.into());
            // A column may take one of the rowid's names; the others still name the rowid.
            let rowid = ["rowid", "_rowid_", "oid"]
                .into_iter()
                .filter(|r| {
                    !without_rowid && !x.columns.iter().any(|c| c.name.eq_ignore_ascii_case(r))
                })
                .map(String::from)
                .collect();
            ferry_sql::trigger::RowKey {
                columns: x
                    .primary_key
                    .as_ref()
                    .map(|k| k.columns.clone())
                    .unwrap_or_default(),
                rowid,
            }
        };
        let what = format!("trigger {}", o.name);
        let translated = ferry_sql::trigger::sqlite_trigger(
            o.definition.as_deref().unwrap_or(""),
            &what,
            &ctx,
            &key_of,
        )
        .map_err(|e| e.to_string())
        .and_then(|trig| {
            self.insert_touch_alone(&trig, o, &ctx, &key_of)?;
            plpgsql_trigger(
                &trig,
                self.schema,
                &|n| self.tname(n),
                &|t, c| {
                    let d = self.decisions.get(&(t.to_owned(), c.to_owned()))?;
                    let pg = self.col_names.get(t)?.get(c)?.clone();
                    Some((pg, d.pg_type.clone(), d.conv))
                },
                &|t| {
                    m.tables
                        .iter()
                        .find(|x| x.name.eq_ignore_ascii_case(t))
                        .map(|x| {
                            (
                                x.name.clone(),
                                x.columns.iter().map(|c| c.name.clone()).collect(),
                            )
                        })
                },
            )
            .map(|made| (made, trig.folded))
        });
        match translated {
            Ok(((function, trigger, drop_function, shape), folded)) => {
                let mut note = format!("{what}: translated to a PL/pgSQL trigger ({shape})");
                if let Some(f) = fold_note(&folded, "may fire it differently") {
                    note.push_str(&format!("; {f}"));
                }
                let mut step = Step::global(what, trigger);
                // Reported once the trigger exists, as a refused one is reported skipped.
                step.note = Some(note);
                step.prepare = Some((function, drop_function));
                self.p.post.push(step);
            }
            Err(why) => self
                .p
                .skipped
                .push(format!("{why}; recreate it as a PL/pgSQL trigger")),
        }
    }

    /// A touch after an insert becomes a `BEFORE INSERT` trigger, so it no longer fires the
    /// table's UPDATE triggers as SQLite's UPDATE did, and the table's other INSERT triggers
    /// see the touched row. That is the same only when every other trigger on the table is
    /// itself a touch of some of the same columns (Sakila's pairs: one after insert, one
    /// after update, both stamping `last_update`).
    fn insert_touch_alone(
        &self,
        trig: &ferry_sql::trigger::Trigger,
        o: &SchemaObject,
        ctx: &ferry_sql::translate::Context<'_>,
        key_of: &dyn Fn(&str) -> ferry_sql::trigger::RowKey,
    ) -> Result<(), String> {
        use ferry_sql::trigger::Action;
        let Action::Touch(sets) = &trig.action else {
            return Ok(());
        };
        if !trig.events.iter().any(|e| e == "INSERT") {
            return Ok(());
        }
        for other in self.m.objects.iter().filter(|x| {
            x.kind == "trigger"
                && x.name != o.name
                && x.table
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(&trig.table))
        }) {
            let sql = other.definition.as_deref().unwrap_or("");
            // The other trigger changes nothing the touch did not already set: it sets some
            // of the same columns to the same values, whatever its WHEN says (one "now" is
            // the same value however it is spelled).
            let same = match ferry_sql::trigger::sqlite_trigger(sql, "trigger", ctx, key_of) {
                Ok(t) => match t.action {
                    Action::Touch(s) => s.iter().all(|(c, e)| {
                        sets.iter().any(|(c2, e2)| {
                            c.eq_ignore_ascii_case(c2) && super::same_sqlite_value(e, e2)
                        })
                    }),
                    _ => false,
                },
                Err(_) => false,
            };
            if !same {
                return Err(format!(
                    "trigger {}: a touch after an insert is translated only when the table's other triggers set the same columns to the same values (SQLite's UPDATE fires them, a BEFORE INSERT trigger does not), and trigger {} does not",
                    o.name, other.name
                ));
            }
        }
        Ok(())
    }

    /// Whatever the archive's text became, no statement reaches outside the target schema
    /// or calls a server function that touches files, sessions or settings.
    fn guard(&mut self, foreign: &[String]) {
        let allowed = vec![self.schema.to_owned()];
        let mut refused = Vec::new();
        for steps in [&mut self.p.pre, &mut self.p.post] {
            steps.retain(|step| {
                let check = |sql: &str| {
                    ferry_sql::check::check_pg_statement(sql, &step.what, &allowed, foreign)
                };
                let checked = match &step.prepare {
                    Some((prepare, _)) => check(prepare).and_then(|()| check(&step.sql)),
                    None => check(&step.sql),
                };
                match checked {
                    Ok(()) => true,
                    Err(e) => {
                        refused.push(format!("{e}; refused, not created"));
                        false
                    }
                }
            });
        }
        self.p.skipped.extend(refused);
    }
}

/// What becomes of a column's collation that PostgreSQL has no counterpart for: BINARY is
/// byte order, as equality on `text` is. NOCASE is carried by `lower(...)` in the unique
/// constraints and indexes that use it, and not by a query's `=`, which is said. Anything
/// else is dropped, and said so.
fn collation_note(collation: &str) -> Option<String> {
    let collation = unquoted(collation);
    if collation.eq_ignore_ascii_case("BINARY") {
        return None;
    }
    Some(if collation.eq_ignore_ascii_case("NOCASE") {
        // The keys keep it (lower(...)); a query's `=` and ORDER BY on the column do not.
        "COLLATE NOCASE: its unique constraints and indexes compare lower(...), but `=` and \
         ORDER BY on the column are case-sensitive in PostgreSQL"
            .to_owned()
    } else if collation.eq_ignore_ascii_case("RTRIM") {
        "COLLATE RTRIM dropped: SQLite ignored trailing spaces when it compared this column's \
         text, PostgreSQL does not"
            .to_owned()
    } else {
        format!(
            "COLLATE {collation} dropped: the application that wrote the source defines it, \
             not SQLite; PostgreSQL compares this column's text by the database's collation, \
             so its order and the uniqueness of indexes on it may differ"
        )
    })
}

fn is_nocase(c: &Column) -> bool {
    c.collation
        .as_deref()
        .is_some_and(|k| unquoted(k).eq_ignore_ascii_case("NOCASE"))
}

/// A collation name as SQLite reads it: archives written before ferry-sql unquoted it
/// record `COLLATE "NOCASE"` as `"NOCASE"`.
fn unquoted(name: &str) -> &str {
    let pairs = [('"', '"'), ('[', ']'), ('`', '`'), ('\'', '\'')];
    pairs
        .iter()
        .find_map(|&(open, close)| {
            name.strip_prefix(open)
                .and_then(|rest| rest.strip_suffix(close))
        })
        .unwrap_or(name)
}

/// What a SQLite column became: (PostgreSQL name, type, conversion).
type ColumnFacts<'a> = dyn Fn(&str, &str) -> Option<(String, String, Conv)> + 'a;
/// A SQLite table's exact name and its columns, by a name written in any case.
type TableColumns<'a> = dyn Fn(&str) -> Option<(String, Vec<String>)> + 'a;

/// A recognised SQLite trigger as a PL/pgSQL function and the trigger that calls it:
/// (CREATE FUNCTION, CREATE TRIGGER, the shape's name). Every value is translated for its
/// target column's type, as a default would be.
fn plpgsql_trigger(
    trig: &ferry_sql::trigger::Trigger,
    schema: &str,
    tname: &dyn Fn(&str) -> String,
    column: &ColumnFacts<'_>,
    table_columns: &TableColumns<'_>,
) -> Result<(String, String, String, &'static str), String> {
    use ferry_sql::trigger::Action;
    let what = format!("trigger {}", trig.name);
    let (table, _) = table_columns(&trig.table)
        .ok_or_else(|| format!("{what}: its table {} is not in the archive", trig.table))?;
    let value = |t: &str, c: &str, expr: &str| -> Result<(String, String), String> {
        let (pg, pg_type, conv) =
            column(t, c).ok_or_else(|| format!("{what}: column {t}.{c} is not in the archive"))?;
        let v = translate_default(expr, &pg_type, conv)
            .ok_or_else(|| format!("{what}: {expr} does not translate"))?;
        Ok((pg, v))
    };
    let finish = "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;\n  RETURN NEW;";
    let (body, shape) = match &trig.action {
        Action::Touch(sets) => {
            let mut lines = Vec::new();
            for (c, expr) in sets {
                let (pg, v) = value(&table, c, expr)?;
                lines.push(format!("NEW.{} := {v};", quote_ident(&pg)));
            }
            lines.push("RETURN NEW;".into());
            let shape = if trig.events.iter().any(|e| e == "INSERT") {
                "sets columns of the new row before it is written, as the SQLite trigger's UPDATE did after the insert"
            } else {
                "sets columns of the updated row before it is written"
            };
            (lines.join("\n  "), shape)
        }
        Action::Audit(inserts) => {
            let mut lines = Vec::new();
            for i in inserts {
                let (target, all) = table_columns(&i.table)
                    .ok_or_else(|| format!("{what}: table {} is not in the archive", i.table))?;
                let cols = i.columns.clone().unwrap_or(all);
                if cols.len() != i.values.len() {
                    return Err(format!(
                        "{what}: {} values for {} columns",
                        i.values.len(),
                        cols.len()
                    ));
                }
                let mut names = Vec::new();
                let mut values = Vec::new();
                for (c, expr) in cols.iter().zip(&i.values) {
                    let (pg, v) = value(&target, c, expr)?;
                    names.push(quote_ident(&pg));
                    values.push(v);
                }
                lines.push(format!(
                    "INSERT INTO {} ({}) VALUES ({});",
                    quote_qualified(schema, &tname(&target)),
                    names.join(", "),
                    values.join(", ")
                ));
            }
            lines.push(if trig.timing == "AFTER" {
                "RETURN NULL;".into()
            } else {
                finish.into()
            });
            (lines.join("\n  "), "inserts into another table")
        }
        Action::Guard { condition, message } => {
            let act = match message {
                Some(m) => format!(
                    "RAISE EXCEPTION USING MESSAGE = {}",
                    crate::catalog::quote_literal(m)
                ),
                None => "RETURN NULL".into(),
            };
            let guard = match condition {
                Some(c) => format!("IF {c} THEN\n    {act};\n  END IF;"),
                None => format!("{act};"),
            };
            let end = if trig.timing == "AFTER" {
                "RETURN NULL;"
            } else {
                finish
            };
            (format!("{guard}\n  {end}"), "a RAISE guard")
        }
    };
    let mut tag = "ferry".to_owned();
    while body.contains(&format!("${tag}$")) {
        tag.push('_');
    }
    let function = quote_qualified(
        schema,
        &shorten(&format!("{}_{}", tname(&table), trig.name.to_lowercase())),
    );
    let create_function = format!(
        "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS ${tag}$\nBEGIN\n  {body}\nEND\n${tag}$"
    );
    let create_trigger = format!(
        "CREATE TRIGGER {} {} {} ON {} FOR EACH ROW{} EXECUTE FUNCTION {function}()",
        quote_ident(&shorten(&trig.name.to_lowercase())),
        trig.timing,
        trig.events.join(" OR "),
        quote_qualified(schema, &tname(&table)),
        trig.when
            .as_ref()
            .map(|w| format!(" WHEN ({w})"))
            .unwrap_or_default()
    );
    let drop_function = format!("DROP FUNCTION {function}()");
    Ok((create_function, create_trigger, drop_function, shape))
}

/// SQLite names and the PostgreSQL names they became, looked up as the translation of an
/// expression needs them: exact name first, then case-insensitively, else lower-cased as
/// PostgreSQL folds an unquoted name.
struct Renames {
    exact: HashMap<String, String>,
    folded: HashMap<String, String>,
}

impl Renames {
    fn new(pairs: impl Iterator<Item = (String, String)>) -> Self {
        let mut exact = HashMap::new();
        let mut folded = HashMap::new();
        for (k, v) in pairs {
            folded.entry(k.to_lowercase()).or_insert_with(|| v.clone());
            exact.insert(k, v);
        }
        Renames { exact, folded }
    }

    fn get(&self, name: &str) -> String {
        self.exact
            .get(name)
            .or_else(|| self.folded.get(&name.to_lowercase()))
            .cloned()
            .unwrap_or_else(|| name.to_lowercase())
    }
}

/// Tables the archive names, for conflict checks: (schema, table) in the target.
pub fn target_tables(m: &Manifest, schema: &str) -> Vec<String> {
    let names = pg_names(m.tables.iter().map(|t| t.name.as_str()));
    m.tables
        .iter()
        .map(|t| quote_qualified(schema, &names[&t.name]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collations_without_a_counterpart_are_reported_however_quoted() {
        for carried in ["BINARY", "\"binary\"", "`binary`"] {
            assert_eq!(collation_note(carried), None, "{carried}");
        }
        for (dropped, says) in [
            ("nocase", "case-sensitive in PostgreSQL"),
            ("\"NOCASE\"", "case-sensitive in PostgreSQL"),
            ("[NoCase]", "case-sensitive in PostgreSQL"),
            ("RTRIM", "trailing spaces"),
            ("\"rtrim\"", "trailing spaces"),
            ("unicase", "COLLATE unicase dropped"),
            ("'unicase'", "COLLATE unicase dropped"),
        ] {
            let note = collation_note(dropped).unwrap_or_default();
            assert!(note.contains(says), "{dropped}: {note}");
        }
    }
}
