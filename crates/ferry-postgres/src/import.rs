//! Archive → PostgreSQL, over `COPY ... FROM STDIN (FORMAT binary)`, in one transaction.
//!
//! Order: pre-data DDL (schemas, extensions, types, functions, sequences, tables with their
//! CHECK constraints, views), then the rows, then post-data (primary keys, unique and
//! exclusion constraints, indexes, foreign keys, triggers, sequence values, comments,
//! materialized view refreshes). Nothing is committed until the archive has been read to its
//! end and every checksum matched; any failure rolls the whole import back, so the target is
//! left exactly as it was.
//!
//! Columns carried as `engine_text` cannot go through a binary COPY into their own type, so
//! such tables are loaded into a temporary staging table whose columns are `text` for those
//! fields, then moved with one `INSERT ... SELECT` that casts them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use ferry_archive::{Location, Manifest, Part, Progress, Table, TableReport, Visitor};
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

use crate::catalog::{self, POST, PRE};
use crate::conn::ConnSpec;
use crate::copy_in::{copy_part, put_field_count};
use crate::data_only;
use crate::error::{Ctx, PgError};
use crate::from_sqlite;
use crate::pgbinary::Encoder;
use crate::types::{self, Wire};
use crate::{ENGINE, quote_ident, quote_qualified};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Drop archived tables (and the objects that depend on them) that already exist.
    pub clean: bool,
    /// Load a single-schema archive into this schema instead (for a SQLite archive: the
    /// schema to create its tables in; default `public`).
    pub target_schema: Option<String>,
    /// Cross-engine: refuse, before writing anything, any value that would not convert to
    /// its column's natural type (instead of widening the column and reporting it).
    pub strict: bool,
    /// Load rows into the tables that already exist (created by the application's
    /// migrations); create and change nothing else.
    pub data_only: bool,
    pub batch_rows: usize,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub tables: Vec<TableReport>,
    pub elapsed: Duration,
    pub statements: usize,
    /// Cross-engine conversions and renames applied.
    pub notes: Vec<String>,
    /// Objects not carried over, with the reason.
    pub skipped: Vec<String>,
}

pub fn import(
    location: &Location,
    url: &str,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport, PgError> {
    let spec = ConnSpec::parse(url)?;
    let rt = crate::runtime()?;
    let started = Instant::now();
    let client = rt.block_on(spec.connect())?;
    let mut loader = Loader {
        rt: &rt,
        client: &client,
        spec: &spec,
        options,
        plans: HashMap::new(),
        reports: HashMap::new(),
        statements: 0,
        remap: None,
        cross: None,
        data_only: None,
        skipped: Vec::new(),
        notes: Vec::new(),
        progress,
    };
    let result = ferry_archive::read(location, &mut loader).and_then(|m| {
        m.ok_or_else(|| PgError::Unsupported(format!("{}: unreadable archive", location.display())))
    });
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = rt.block_on(client.batch_execute("ROLLBACK"));
            return Err(e);
        }
    };
    for t in &manifest.tables {
        progress.table_finished(&t.display_name());
    }
    let finish = rt.block_on(loader.post_data(&manifest));
    if let Err(e) = finish {
        let _ = rt.block_on(client.batch_execute("ROLLBACK"));
        return Err(e);
    }
    let tables = manifest
        .tables
        .iter()
        .map(|t| {
            let mut r = loader.reports.remove(&t.id).unwrap_or_default();
            r.name = loader.remapped_name(t);
            r
        })
        .collect();
    let mut notes = loader
        .cross
        .as_ref()
        .map(|c| c.notes.clone())
        .unwrap_or_default();
    if manifest.source.engine == ENGINE
        && manifest
            .tables
            .iter()
            .any(|t| t.properties.contains_key("acl"))
    {
        notes.push(
            "ownership and grants are recorded in the archive but not restored (as pg_restore --no-owner --no-privileges): the tables belong to the importing role".into(),
        );
    }
    notes.append(&mut loader.notes);
    Ok(ImportReport {
        tables,
        elapsed: started.elapsed(),
        statements: loader.statements,
        notes,
        skipped: loader.skipped,
    })
}

/// `--dry-run`: the statements an import would run, the conversions and what would not be
/// carried, without changing the target. Only `--data-only` connects (read-only, rolled
/// back), since it plans against the target's existing tables.
pub fn dry_run(
    location: &Location,
    url: &str,
    options: &ImportOptions,
) -> Result<ferry_archive::ImportPlan, PgError> {
    let m = ferry_archive::read_manifest(location)?;
    let mut plan = ferry_archive::ImportPlan::default();
    if options.data_only {
        let spec = ConnSpec::parse(url)?;
        let rt = crate::runtime()?;
        let schema = options
            .target_schema
            .clone()
            .unwrap_or_else(|| "public".into());
        let p = rt.block_on(async {
            let client = spec.connect().await?;
            client
                .batch_execute("BEGIN READ ONLY")
                .await
                .ctx(|| "starting a read-only transaction".into())?;
            let p = data_only::plan(&client, &m, &schema).await;
            let _ = client.batch_execute("ROLLBACK").await;
            p
        })?;
        plan.notes = p.notes;
        plan.skipped = p.skipped;
        return Ok(plan);
    }
    match m.source.engine.as_str() {
        "sqlite" => {
            let schema = options
                .target_schema
                .clone()
                .unwrap_or_else(|| "public".into());
            let cross = from_sqlite::plan(&m, &schema, options.strict);
            plan.statements
                .extend(cross.pre.into_iter().map(|(_, s)| s));
            plan.statements
                .push("-- rows: COPY ... FROM STDIN (FORMAT binary) per table".into());
            plan.statements
                .extend(cross.post.into_iter().map(|(_, s)| s));
            plan.notes = cross.notes;
            plan.skipped = cross.skipped;
            plan.skipped.extend(
                cross
                    .refusals
                    .into_iter()
                    .map(|r| format!("--strict refuses: {r}")),
            );
        }
        ENGINE => {
            let remap = options.target_schema.as_ref().and_then(|to| {
                let schemas: Vec<String> = m
                    .settings
                    .get("schemas")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                (schemas.len() == 1).then(|| (schemas[0].clone(), to.clone()))
            });
            let sql = |s: &str| match &remap {
                Some((from, to)) => remap_schema(s, from, to),
                None => s.to_owned(),
            };
            for o in m.objects.iter().filter(|o| phase(o) == PRE) {
                plan.statements
                    .push(sql(o.definition.as_deref().unwrap_or("")));
            }
            for t in &m.tables {
                plan.statements
                    .push(sql(t.definition.as_deref().unwrap_or("")));
            }
            plan.statements
                .push("-- rows: COPY ... FROM STDIN (FORMAT binary) per table".into());
            for o in m.objects.iter().filter(|o| phase(o) == POST) {
                plan.statements
                    .push(sql(o.definition.as_deref().unwrap_or("")));
            }
        }
        other => {
            return Err(PgError::Unsupported(format!(
                "archives written from {other} cannot be imported into PostgreSQL"
            )));
        }
    }
    Ok(plan)
}

/// How one table's parts are loaded.
struct Plan {
    /// Target table, quoted.
    target: String,
    /// Wire form of each data field in the target.
    wires: Vec<Wire>,
    /// `Some(staging table)` when some fields arrive as text and need a cast.
    staging: Option<String>,
    columns: Vec<String>,
    casts: Vec<String>,
}

struct Loader<'a> {
    rt: &'a Runtime,
    client: &'a Client,
    spec: &'a ConnSpec,
    options: &'a ImportOptions,
    plans: HashMap<String, Plan>,
    reports: HashMap<String, TableReport>,
    statements: usize,
    /// (from, to) schema names when --target-schema applies.
    remap: Option<(String, String)>,
    /// The plan for an archive from SQLite.
    cross: Option<from_sqlite::CrossPlan>,
    /// The plan for --data-only.
    data_only: Option<data_only::DataOnly>,
    skipped: Vec<String>,
    notes: Vec<String>,
    progress: &'a dyn Progress,
}

impl Loader<'_> {
    fn schema_of(&self, t: &Table) -> String {
        let s = t.schema.clone().unwrap_or_else(|| "public".into());
        match &self.remap {
            Some((from, to)) if *from == s => to.clone(),
            _ => s,
        }
    }

    fn remapped_name(&self, t: &Table) -> String {
        match self.cross.as_ref().and_then(|c| c.tables.get(&t.id)) {
            Some(plan) => plan.target.clone(),
            None => format!("{}.{}", self.schema_of(t), t.name),
        }
    }

    /// Rewrites schema-qualified names in a DDL statement for --target-schema.
    fn sql(&self, sql: &str) -> String {
        match &self.remap {
            Some((from, to)) => remap_schema(sql, from, to),
            None => sql.to_owned(),
        }
    }

    /// Looks for archived tables that already exist, then opens the import transaction.
    /// Refuses a non-empty target unless --clean, which drops the clashing tables (inside
    /// the transaction); returns whether it did.
    async fn begin_checking_conflicts(&self, names: &[String]) -> Result<bool, PgError> {
        let client = self.client;
        let target = self.spec.display();
        let mut clashes = Vec::new();
        for name in names {
            let exists: bool = client
                .query_one("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[name])
                .await
                .ctx(|| format!("{target}: checking for {name}"))?
                .get(0);
            if exists {
                clashes.push(name.clone());
            }
        }
        client
            .batch_execute("BEGIN")
            .await
            .ctx(|| format!("{target}: starting the import transaction"))?;
        if clashes.is_empty() {
            return Ok(false);
        }
        if !self.options.clean {
            let shown: Vec<&str> = clashes.iter().take(5).map(String::as_str).collect();
            return Err(PgError::TargetNotEmpty {
                target,
                detail: format!(
                    "{} of the archive's tables already exist ({}{})",
                    clashes.len(),
                    shown.join(", "),
                    if clashes.len() > 5 { ", ..." } else { "" }
                ),
            });
        }
        for name in &clashes {
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS {name} CASCADE"))
                .await
                .ctx(|| format!("--clean: dropping {name}"))?;
        }
        Ok(true)
    }

    async fn pre_data(&mut self, m: &Manifest) -> Result<(), PgError> {
        let client = self.client;
        // Conflicts first, before anything is written.
        let names: Vec<String> = m
            .tables
            .iter()
            .map(|t| quote_qualified(&self.schema_of(t), &t.name))
            .collect();
        if self.begin_checking_conflicts(&names).await? {
            self.clean_objects(m).await?;
        }
        // Types, functions and sequences; then tables; then views. A statement that fails
        // (it needs something created later) is retried after the rest.
        let mut pending: Vec<(String, String)> = Vec::new();
        let is_view = |k: &str| k == "view" || k == "materialized_view";
        for o in m
            .objects
            .iter()
            .filter(|o| phase(o) == PRE && !is_view(&o.kind))
        {
            pending.push((
                format!("{} {}", o.kind, o.name),
                self.sql(o.definition.as_deref().unwrap_or("")),
            ));
        }
        for t in &m.tables {
            let ddl = t.definition.as_deref().ok_or_else(|| {
                PgError::Unsupported(format!(
                    "table {}: the archive has no definition",
                    t.display_name()
                ))
            })?;
            pending.push((format!("table {}", t.display_name()), self.sql(ddl)));
        }
        for o in m
            .objects
            .iter()
            .filter(|o| phase(o) == PRE && is_view(&o.kind))
        {
            pending.push((
                format!("{} {}", o.kind, o.name),
                self.sql(o.definition.as_deref().unwrap_or("")),
            ));
        }
        self.statements += pending.len();
        run_with_retries(client, pending).await?;
        self.plan_tables(m).await
    }

    /// With --clean: archived objects other than tables that already exist are dropped too.
    async fn clean_objects(&self, m: &Manifest) -> Result<(), PgError> {
        for o in &m.objects {
            let schema = o.schema.clone().unwrap_or_else(|| "public".into());
            let schema = match &self.remap {
                Some((from, to)) if *from == schema => to.clone(),
                _ => schema,
            };
            let name = quote_qualified(&schema, &o.name);
            let sql = match o.kind.as_str() {
                "view" => format!("DROP VIEW IF EXISTS {name} CASCADE"),
                "materialized_view" => format!("DROP MATERIALIZED VIEW IF EXISTS {name} CASCADE"),
                "sequence" => format!("DROP SEQUENCE IF EXISTS {name} CASCADE"),
                "type" => format!("DROP TYPE IF EXISTS {name} CASCADE"),
                "function" | "procedure" => format!(
                    "DROP {} IF EXISTS {name}({}) CASCADE",
                    o.kind.to_uppercase(),
                    o.properties
                        .get("identity_arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                _ => continue,
            };
            self.client
                .batch_execute(&sql)
                .await
                .ctx(|| format!("--clean: {sql}"))?;
        }
        Ok(())
    }

    /// Reads the target's own column types, which decide each field's wire form.
    async fn plan_tables(&mut self, m: &Manifest) -> Result<(), PgError> {
        let types = catalog::type_map(self.client).await?;
        let mut oids = Vec::new();
        for t in &m.tables {
            let name = quote_qualified(&self.schema_of(t), &t.name);
            let oid: u32 = self
                .client
                .query_one("SELECT $1::text::regclass::oid", &[&name])
                .await
                .ctx(|| format!("table {name}: looking it up"))?
                .get(0);
            oids.push(oid);
        }
        let mut cols = catalog::columns(self.client, &oids).await?;
        for (i, (t, oid)) in m.tables.iter().zip(&oids).enumerate() {
            let target = quote_qualified(&self.schema_of(t), &t.name);
            let target_cols = cols.remove(oid).unwrap_or_default();
            let mut wires = Vec::new();
            let mut columns = Vec::new();
            let mut casts = Vec::new();
            for (name, logical) in t.data_fields() {
                let c =
                    target_cols
                        .iter()
                        .find(|c| c.name == name)
                        .ok_or_else(|| PgError::Check {
                            context: format!("table {target}"),
                            detail: format!(
                                "column {name:?} of the archive is not in the target table"
                            ),
                        })?;
                let ti = catalog::type_info(&types, c.type_oid, c.typmod, c.formatted.clone());
                let mut wire = types::wire(&ti);
                // A natural type stored as text in the archive (a timestamp past the year
                // 294246 is the only case from PostgreSQL) is cast on the server.
                if matches!(logical, ferry_archive::LogicalType::EngineText { .. }) {
                    wire = Wire::AsText;
                }
                casts.push(if wire == Wire::AsText {
                    format!("{}::{}", quote_ident(&name), c.formatted)
                } else {
                    quote_ident(&name)
                });
                columns.push(quote_ident(&name));
                wires.push(wire);
            }
            let staging = if wires.contains(&Wire::AsText) {
                let stage = format!("pg_temp.{}", quote_ident(&format!("ferry_stage_{i}")));
                let defs: Vec<String> = t
                    .data_fields()
                    .iter()
                    .zip(&wires)
                    .map(|((name, _), w)| {
                        let ty = if *w == Wire::AsText {
                            "text".to_owned()
                        } else {
                            target_cols
                                .iter()
                                .find(|c| &c.name == name)
                                .map(|c| c.formatted.clone())
                                .unwrap_or_default()
                        };
                        format!("{} {ty}", quote_ident(name))
                    })
                    .collect();
                self.client
                    .batch_execute(&format!(
                        "CREATE TEMP TABLE {stage} ({}) ON COMMIT DROP",
                        defs.join(", ")
                    ))
                    .await
                    .ctx(|| format!("table {target}: creating its staging table"))?;
                Some(stage)
            } else {
                None
            };
            self.plans.insert(
                t.id.clone(),
                Plan {
                    target,
                    wires,
                    staging,
                    columns,
                    casts,
                },
            );
        }
        Ok(())
    }

    async fn load_part(&mut self, table: &Table, part: &Part<'_>) -> Result<u64, PgError> {
        let plan = self.plans.get(&table.id).ok_or_else(|| PgError::Check {
            context: format!("table {}", table.display_name()),
            detail: "data for a table the prelude did not announce".into(),
        })?;
        let into = plan.staging.as_deref().unwrap_or(&plan.target);
        let wires: Vec<Wire> = plan
            .wires
            .iter()
            .map(|w| {
                if plan.staging.is_some() && *w == Wire::AsText {
                    Wire::Text
                } else {
                    *w
                }
            })
            .collect();
        let sql = format!(
            "COPY {into} ({}) FROM STDIN (FORMAT binary)",
            plan.columns.join(", ")
        );
        let fields = table.data_fields();
        let target = plan.target.clone();
        let rows = copy_part(
            self.client,
            &sql,
            &target,
            part,
            self.options.batch_rows,
            |batch, before, buf| {
                let value_error = |j: usize, r: u64, reason: String| PgError::Value {
                    table: target.clone(),
                    column: fields[j].0.clone(),
                    row: before + r + 1,
                    reason,
                };
                let encoders: Vec<Encoder<'_>> = batch
                    .columns()
                    .iter()
                    .zip(&fields)
                    .zip(&wires)
                    .enumerate()
                    .map(|(j, ((a, (_, lt)), w))| {
                        Encoder::new(a, *w, lt).map_err(|e| value_error(j, 0, e))
                    })
                    .collect::<Result<_, _>>()?;
                for r in 0..batch.num_rows() {
                    put_field_count(buf, encoders.len());
                    for (j, e) in encoders.iter().enumerate() {
                        e.put(r, buf).map_err(|e| value_error(j, r as u64, e))?;
                    }
                }
                Ok(())
            },
        )
        .await?;
        if let Some(stage) = &plan.staging {
            self.client
                .batch_execute(&format!(
                    "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {stage}; TRUNCATE {stage}",
                    plan.target,
                    plan.columns.join(", "),
                    plan.casts.join(", ")
                ))
                .await
                .ctx(|| format!("table {}: moving {} from staging", plan.target, part.path))?;
        }
        Ok(rows)
    }

    async fn pre_data_from_sqlite(&mut self, m: &Manifest) -> Result<(), PgError> {
        let schema = self
            .options
            .target_schema
            .clone()
            .unwrap_or_else(|| "public".into());
        let plan = from_sqlite::plan(m, &schema, self.options.strict);
        if !plan.refusals.is_empty() {
            return Err(PgError::Check {
                context: "--strict".into(),
                detail: format!(
                    "{} value(s) would not convert, nothing was written: {}",
                    plan.refusals.len(),
                    plan.refusals.join("; ")
                ),
            });
        }
        let client = self.client;
        self.begin_checking_conflicts(&from_sqlite::target_tables(m, &schema))
            .await?;
        // Views, checks and indexes from SQLite name tables without a schema.
        client
            .batch_execute(&format!("SET LOCAL search_path = {}", quote_ident(&schema)))
            .await
            .ctx(|| "setting the search path".into())?;
        for (what, sql) in &plan.pre {
            client
                .batch_execute(sql)
                .await
                .ctx(|| format!("creating {what}"))?;
            self.statements += 1;
        }
        self.cross = Some(plan);
        Ok(())
    }

    async fn load_part_from_sqlite(
        &mut self,
        table: &Table,
        part: &Part<'_>,
    ) -> Result<u64, PgError> {
        let plan = self
            .cross
            .as_ref()
            .and_then(|c| c.tables.get(&table.id))
            .cloned()
            .ok_or_else(|| PgError::Check {
                context: format!("table {}", table.display_name()),
                detail: "data for a table the prelude did not announce".into(),
            })?;
        let cols: Vec<&str> = plan.fields.iter().map(|(_, c, _)| c.as_str()).collect();
        let sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            plan.target,
            cols.join(", ")
        );
        let fields = table.data_fields();
        let rows = copy_part(
            self.client,
            &sql,
            &plan.target,
            part,
            self.options.batch_rows,
            |batch, before, buf| {
                for r in 0..batch.num_rows() {
                    put_field_count(buf, plan.fields.len());
                    for (i, _, conv) in &plan.fields {
                        let v = from_sqlite::value_at(batch.column(*i), &fields[*i].1, r);
                        conv.put(v, buf).map_err(|reason| PgError::Value {
                            table: table.name.clone(),
                            column: fields[*i].0.clone(),
                            row: before + r as u64 + 1,
                            reason: row_hint(batch, &fields, r, table, reason),
                        })?;
                    }
                }
                Ok(())
            },
        )
        .await?;
        Ok(rows)
    }

    async fn post_data(&mut self, m: &Manifest) -> Result<(), PgError> {
        for t in &m.tables {
            let got = self.reports.get(&t.id).map_or(0, |r| r.rows);
            let loaded_here = self.data_only.as_ref().is_none_or(|p| p.loads(&t.id));
            if loaded_here && Some(got) != t.rows && !t.properties.contains_key("content") {
                return Err(PgError::Check {
                    context: format!("table {}", t.display_name()),
                    detail: format!("the archive lists {:?} rows but {got} were loaded", t.rows),
                });
            }
        }
        if let Some(plan) = self.data_only.take() {
            let mut notes = data_only::finish(self.client, &plan).await?;
            self.notes.append(&mut plan.notes.clone());
            self.notes.append(&mut notes);
            self.skipped.extend(plan.skipped.iter().cloned());
            return self
                .client
                .batch_execute("COMMIT")
                .await
                .ctx(|| format!("{}: committing the import", self.spec.display()));
        }
        if let Some(cross) = self.cross.take() {
            for (what, sql) in &cross.post {
                self.statements += 1;
                if let Err(reason) = try_statement(self.client, sql).await? {
                    // A foreign key that existing rows violate (SQLite does not enforce
                    // them by default) is still added for new rows, and reported.
                    if sql.contains("FOREIGN KEY") {
                        let not_valid = format!("{sql} NOT VALID");
                        if try_statement(self.client, &not_valid).await?.is_ok() {
                            self.skipped.push(format!(
                                "{what}: existing rows violate it ({reason}); added NOT VALID, so it applies to new rows only"
                            ));
                            continue;
                        }
                    }
                    self.skipped.push(format!("{what}: {reason}"));
                }
            }
            self.skipped.extend(cross.skipped.iter().cloned());
            self.cross = Some(cross);
            return self
                .client
                .batch_execute("COMMIT")
                .await
                .ctx(|| format!("{}: committing the import", self.spec.display()));
        }
        for o in m.objects.iter().filter(|o| phase(o) == POST) {
            let sql = self.sql(o.definition.as_deref().unwrap_or(""));
            self.client
                .batch_execute(&sql)
                .await
                .ctx(|| format!("{} {}: {}", o.kind, o.name, first_line(&sql)))?;
            self.statements += 1;
        }
        self.client
            .batch_execute("COMMIT")
            .await
            .ctx(|| format!("{}: committing the import", self.spec.display()))
    }
}

impl Visitor for Loader<'_> {
    type Error = PgError;

    fn prelude(&mut self, prelude: &Manifest) -> Result<(), PgError> {
        if self.options.data_only {
            let schema = self
                .options
                .target_schema
                .clone()
                .unwrap_or_else(|| "public".into());
            let rt = self.rt;
            let client = self.client;
            let plan = rt.block_on(async {
                client
                    .batch_execute("BEGIN")
                    .await
                    .ctx(|| "starting the import transaction".into())?;
                data_only::plan(client, prelude, &schema).await
            })?;
            self.data_only = Some(plan);
            return Ok(());
        }
        match prelude.source.engine.as_str() {
            ENGINE => {}
            "sqlite" => {
                let rt = self.rt;
                return rt.block_on(self.pre_data_from_sqlite(prelude));
            }
            other => {
                return Err(PgError::Unsupported(format!(
                    "archives written from {other} cannot be imported into PostgreSQL"
                )));
            }
        }
        if let Some(to) = &self.options.target_schema {
            let schemas: Vec<String> = prelude
                .settings
                .get("schemas")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            match schemas.as_slice() {
                [from] => self.remap = Some((from.clone(), to.clone())),
                other => {
                    return Err(PgError::Config(format!(
                        "--target-schema needs a single-schema archive; this one has {} ({})",
                        other.len(),
                        other.join(", ")
                    )));
                }
            }
        }
        let rt = self.rt;
        rt.block_on(self.pre_data(prelude))
    }

    fn part(&mut self, table: &Table, part: &Part<'_>) -> Result<(), PgError> {
        let started = Instant::now();
        let name = table.display_name();
        if !self.reports.contains_key(&table.id) {
            self.progress.table_started(&name, None);
        }
        let rt = self.rt;
        let rows = if let Some(plan) = &self.data_only {
            rt.block_on(data_only::load_part(
                self.client,
                plan,
                table,
                part,
                self.options.batch_rows,
            ))?
        } else if self.cross.is_some() {
            rt.block_on(self.load_part_from_sqlite(table, part))?
        } else {
            rt.block_on(self.load_part(table, part))?
        };
        self.progress.advance(&name, rows, 0);
        let r = self.reports.entry(table.id.clone()).or_default();
        r.rows += rows;
        r.elapsed += started.elapsed();
        Ok(())
    }
}

/// Adds the row's key to a conversion error, so the message names the row.
fn row_hint(
    batch: &RecordBatch,
    fields: &[(String, ferry_archive::LogicalType)],
    r: usize,
    table: &Table,
    reason: String,
) -> String {
    let key = table.rowid.clone().or_else(|| {
        table
            .primary_key
            .as_ref()
            .and_then(|k| k.columns.first().cloned())
    });
    let Some(key) = key else { return reason };
    let Some(i) = fields.iter().position(|(n, _)| *n == key) else {
        return reason;
    };
    match from_sqlite::as_text(from_sqlite::value_at(batch.column(i), &fields[i].1, r)) {
        Some(v) => format!("{reason} (row with {key} = {v})"),
        None => reason,
    }
}

/// Runs one statement behind a savepoint: `Ok(Err(reason))` when the server refused it.
async fn try_statement(client: &Client, sql: &str) -> Result<Result<(), String>, PgError> {
    client
        .batch_execute("SAVEPOINT ferry_try")
        .await
        .ctx(|| "savepoint".into())?;
    match client.batch_execute(sql).await {
        Ok(()) => {
            client
                .batch_execute("RELEASE SAVEPOINT ferry_try")
                .await
                .ctx(|| "savepoint".into())?;
            Ok(Ok(()))
        }
        Err(e) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT ferry_try")
                .await
                .ctx(|| "savepoint".into())?;
            let reason = e
                .as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_else(|| e.to_string());
            Ok(Err(reason))
        }
    }
}

fn phase(o: &ferry_archive::SchemaObject) -> &str {
    o.properties
        .get("phase")
        .and_then(Value::as_str)
        .unwrap_or(POST)
}

fn first_line(sql: &str) -> String {
    let l = sql.lines().next().unwrap_or("");
    if l.len() > 120 {
        format!("{}...", &l[..120])
    } else {
        l.to_owned()
    }
}

/// Runs DDL statements inside the open transaction; a statement that fails is retried after
/// the others (behind a savepoint), until a round makes no progress.
async fn run_with_retries(
    client: &Client,
    mut pending: Vec<(String, String)>,
) -> Result<(), PgError> {
    loop {
        let mut failed = Vec::new();
        let before = pending.len();
        for (what, sql) in pending {
            client
                .batch_execute("SAVEPOINT ferry_ddl")
                .await
                .ctx(|| "savepoint".into())?;
            match client.batch_execute(&sql).await {
                Ok(()) => client
                    .batch_execute("RELEASE SAVEPOINT ferry_ddl")
                    .await
                    .ctx(|| "savepoint".into())?,
                Err(e) => {
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT ferry_ddl")
                        .await
                        .ctx(|| "savepoint".into())?;
                    failed.push((what, sql, e));
                }
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        if failed.len() == before {
            let (what, _, e) = failed.remove(0);
            return Err(PgError::query(format!("creating {what}"), e));
        }
        pending = failed.into_iter().map(|(w, s, _)| (w, s)).collect();
    }
}

/// Replaces the schema qualifier `from.` (quoted or not) with `to.`: in code, and at the
/// start of string literals (`'app.seq'::regclass`, setval targets), but nowhere else inside
/// literals, so that data such as `LIKE '%app.com'` is left alone.
fn remap_schema(sql: &str, from: &str, to: &str) -> String {
    let quoted_from = format!("{}.", quote_ident(from));
    let bare_from = format!("{from}.");
    let bare_ok = from
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let quoted_to = format!("{}.", quote_ident(to));
    let schema_stmt = format!("SCHEMA IF NOT EXISTS {}", quote_ident(from));
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut in_string = false;
    let mut prev: Option<char> = None;
    while i < sql.len() {
        let rest = &sql[i..];
        let at_string_start = in_string && prev == Some('\'');
        let boundary =
            !prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '"' || p == '.');
        if (!in_string && boundary) || at_string_start {
            if rest.starts_with(&quoted_from) {
                out.push_str(&quoted_to);
                i += quoted_from.len();
                prev = Some('.');
                continue;
            }
            if bare_ok && rest.starts_with(&bare_from) {
                out.push_str(&quoted_to);
                i += bare_from.len();
                prev = Some('.');
                continue;
            }
            if !in_string && rest.starts_with(&schema_stmt) {
                out.push_str(&format!("SCHEMA IF NOT EXISTS {}", quote_ident(to)));
                i += schema_stmt.len();
                prev = Some('"');
                continue;
            }
        }
        let c = rest.chars().next().expect("not at the end");
        if c == '\'' {
            in_string = !in_string;
        }
        out.push(c);
        prev = Some(c);
        i += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_remapping_touches_qualifiers_only() {
        assert_eq!(
            remap_schema(
                "CREATE TABLE \"app\".\"t\" (x int DEFAULT nextval('app.s'::regclass)); SELECT app.f(), myapp.g()",
                "app",
                "tenant 1"
            ),
            "CREATE TABLE \"tenant 1\".\"t\" (x int DEFAULT nextval('\"tenant 1\".s'::regclass)); SELECT \"tenant 1\".f(), myapp.g()"
        );
        assert_eq!(
            remap_schema("CHECK (email LIKE '%app.com')", "app", "b"),
            "CHECK (email LIKE '%app.com')"
        );
        assert_eq!(
            remap_schema("CREATE SCHEMA IF NOT EXISTS \"app\"", "app", "b"),
            "CREATE SCHEMA IF NOT EXISTS \"b\""
        );
    }
}
