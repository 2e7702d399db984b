//! Archive → PostgreSQL, over `COPY ... FROM STDIN (FORMAT binary)`, all or nothing.
//!
//! Order: pre-data DDL (schemas, extensions, types, functions, sequences, tables with their
//! CHECK constraints, views), then the rows, then post-data (primary keys, unique and
//! exclusion constraints, indexes, foreign keys, triggers, sequence values, comments,
//! materialized view refreshes). Everything the target's users can see happens in one
//! transaction, the *import transaction*, which commits only after the archive has been
//! read to its end and every checksum matched; any failure rolls it back, so the target is
//! left exactly as it was.
//!
//! **Serial (`--jobs 1`).** The import transaction creates every table and loads it with
//! COPY FREEZE (allowed because the table is new in that transaction).
//!
//! **Parallel (`--jobs N`).** PostgreSQL cannot share one transaction between connections,
//! so the tables are loaded beside the target, then published:
//! 1. Before the import transaction starts, each table is created empty in its own private
//!    staging schema (`ferry_stage_<id>_<n>`) and committed, unless it needs something the
//!    archive itself creates (its own types, sequences or functions) or is part of a
//!    partition tree; those stay in the import transaction.
//! 2. Load workers ([`crate::parallel`]), one connection and one transaction each, take
//!    whole tables: they load every part (COPY FREEZE again, after a TRUNCATE in their
//!    transaction), build the table's indexes and keys, and commit, into staging only.
//!    With `--jobs-per-table N`, a table's parts are spread over up to N workers instead
//!    (no FREEZE), and its builds run after they have all committed. Foreign keys between
//!    staged tables come last, one per worker transaction, so they validate in parallel.
//! 3. The import transaction moves the staged tables into their schemas (`ALTER TABLE ...
//!    SET SCHEMA`, which moves their indexes, keys and identity sequences with them), then
//!    creates what depends on them (views, foreign keys, triggers, comments, sequence
//!    values) and commits: the target changes in one step.
//! 4. The staging schemas are dropped, on success, on failure and on interruption. A
//!    process killed (or cut off from the server) between steps 1 and 4 leaves them behind;
//!    each records its owner's server session, and the next import, or `ferry cleanup`,
//!    drops those whose session has ended ([`crate::leftover`]).
//!
//! Columns carried as `engine_text` cannot go through a binary COPY into their own type, so
//! such tables are loaded into a temporary staging table whose columns are `text` for those
//! fields, then moved with one `INSERT ... SELECT` that casts them (see [`crate::load`]).
//!
//! Layout: this file has the entry points ([`import`], [`dry_run`]), the import's [`Mode`]
//! (replay, from SQLite, data only) and the `Loader` that reads the archive as a
//! `Visitor`; `staging` creates, loads and publishes the staging schemas (steps 1, 3, 4);
//! `replay` checks and runs the archive's definitions (pre-data, post-data).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_archive::facts::{Facts, PgTableFacts};
use ferry_archive::{Location, Manifest, Part, Progress, Table, TableReport, Visitor};
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

use crate::catalog::{self, POST, PRE, RawType};
use crate::conn::ConnSpec;
use crate::data_only;
use crate::error::{Ctx, PgError, RowExt};
use crate::from_sqlite;
use crate::load::{Copier, Plan, plan_table};
use crate::parallel::{Build, Checkpoint, Pool, TableWork};
use crate::{ENGINE, quote_ident, quote_qualified};

mod replay;
mod staging;

use replay::*;
use staging::*;

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
    /// With `data_only`: skip (and report) archive tables the target does not have,
    /// instead of refusing the import.
    pub skip_missing_tables: bool,
    pub batch_rows: usize,
    /// Connections that load tables at the same time (1: everything in the import
    /// transaction). `--data-only` always loads serially, into the existing tables.
    pub jobs: usize,
    /// Connections that may load one table's parts at once (1: one, with COPY FREEZE).
    pub jobs_per_table: usize,
    /// Let the archive's own functions run during the import (CHECKs, indexes and
    /// materialized views that call them) and be SECURITY DEFINER or in any language.
    pub trust_archive: bool,
    /// Take over the tables an interrupted import of this archive committed in staging
    /// instead of loading them again, and keep this import's own on failure (see
    /// [`crate::resume`]).
    pub resume: bool,
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
    /// Load workers that loaded tables in staging (0: everything went through the import
    /// transaction).
    pub workers: usize,
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
    // What killed imports left behind goes first, so it can neither be mistaken for the
    // target's content nor pile up.
    if options.resume && (options.data_only || options.jobs_per_table > 1) {
        return Err(PgError::Config(format!(
            "--resume takes over whole tables loaded in staging; not with {}",
            if options.data_only {
                "--data-only, which loads into the existing tables"
            } else {
                "--jobs-per-table, whose tables several connections load"
            }
        )));
    }
    let swept = match rt.block_on(crate::leftover::sweep(&client, options.resume)) {
        Ok(s) => s,
        Err(e) => crate::leftover::Swept {
            failed: vec![e.to_string()],
            ..Default::default()
        },
    };
    let mut jobs = if options.data_only {
        1
    } else if options.resume {
        // Only tables loaded by a worker are committed, and so resumable.
        options.jobs.max(2)
    } else {
        options.jobs.max(1)
    };
    let mut capped = None;
    if jobs > 1 {
        // Workers connect besides this connection; never more than the server has room for.
        let free = rt.block_on(crate::conn::free_connections(&client))?;
        if jobs - 1 > free {
            capped = Some((jobs, free + 1));
            jobs = free + 1;
        }
    }
    // The workers live in this scope; when it ends they have all stopped, so their
    // transactions are over and the staging schemas can be dropped.
    let (result, stage_schemas, workers) = std::thread::scope(|s| {
        let pool = (jobs > 1).then(|| {
            let per_table = options.jobs_per_table.max(1);
            Pool::start(s, jobs, &spec, options.batch_rows, per_table, progress)
        });
        let mut loader = Loader {
            rt: &rt,
            client: &client,
            spec: &spec,
            options,
            pool,
            staging: None,
            archive_key: String::new(),
            owner: String::new(),
            resumed: HashMap::new(),
            plans: HashMap::new(),
            reports: HashMap::new(),
            announced: HashSet::new(),
            statements: 0,
            mode: Mode::Pending,
            deferred: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
            progress,
        };
        let result = loader.run(location);
        if result.is_err() {
            // Before the workers are abandoned: one may be waiting on a lock this
            // transaction holds, and would never finish its current step.
            let _ = rt.block_on(client.batch_execute("ROLLBACK"));
        }
        let schemas: Vec<String> = loader
            .staging
            .as_ref()
            .map(|s| s.schemas.clone())
            .unwrap_or_default();
        let workers = loader.staging.as_ref().map_or(0, |s| s.workers_used);
        (result, schemas, workers)
    });
    let result = match result {
        // What committed in staging is kept for the next `--resume`, which checks it again.
        Err(e) if options.resume && !stage_schemas.is_empty() => {
            return Err(PgError::Resumable {
                error: Box::new(e),
                kept: stage_schemas.len(),
            });
        }
        r => r,
    };
    let mut dropped = drop_stage_schemas(&rt, &client, &stage_schemas);
    if dropped.is_err() {
        // The import's own connection may be what failed (the server terminated it, a
        // network cut), or the interruption's cancel request may have landed on one of
        // these statements: the staging schemas are still reachable on a new connection.
        if let Ok(fresh) = rt.block_on(spec.connect_for_cleanup()) {
            dropped = drop_stage_schemas(&rt, &fresh, &stage_schemas);
        }
    }
    let (manifest, mut loaded) = result?;
    if let Err(e) = dropped {
        loaded.notes.push(format!(
            "the import is complete, but its empty staging schema could not be dropped: {e}"
        ));
    }
    let tables = manifest
        .tables
        .iter()
        .map(|t| loaded.tables.remove(&t.id).unwrap_or_default())
        .collect();
    let mut notes = loaded.notes;
    if !swept.dropped.is_empty() {
        notes.push(format!(
            "dropped {} staging schema(s) left by an import that was killed: {}",
            swept.dropped.len(),
            swept.dropped.join(", ")
        ));
    }
    for f in &swept.failed {
        notes.push(format!(
            "a staging schema left by a killed import could not be dropped ({f}); `ferry cleanup` as its owner drops it"
        ));
    }
    if let Some((asked, used)) = capped {
        notes.push(format!(
            "--jobs {asked}: the server has room for {} more connection(s), so {used} were used",
            used - 1
        ));
    }
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
    Ok(ImportReport {
        tables,
        elapsed: started.elapsed(),
        statements: loaded.statements,
        notes,
        skipped: loaded.skipped,
        workers,
    })
}

/// What a finished load hands back to [`import`].
struct Loaded {
    tables: HashMap<String, TableReport>,
    statements: usize,
    notes: Vec<String>,
    skipped: Vec<String>,
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
            let mode = data_only::PlanMode {
                skip_missing: options.skip_missing_tables,
                describe_only: true,
            };
            let p = data_only::plan(&client, &m, &schema, mode).await;
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
            let cross = from_sqlite::plan(&m, &schema, options.strict, &[]);
            plan.statements.extend(cross.pre.into_iter().map(|s| s.sql));
            plan.statements
                .push("-- rows: COPY ... FROM STDIN (FORMAT binary) per table".into());
            plan.notes = cross.notes;
            // What a statement reports once it has run (a view's translation) is part of
            // the plan: it would be reported if the statement succeeds.
            plan.notes
                .extend(cross.post.iter().filter_map(|s| s.note.clone()));
            for s in cross.post {
                plan.statements.extend(s.prepare.map(|(p, _)| p));
                plan.statements.push(s.sql);
            }
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
                Some((from, to)) => ferry_sql::rewrite::remap_schema(s, from, to, "definition")
                    .unwrap_or_else(|_| s.to_owned()),
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

/// What an import does with its archive, decided when the prelude arrives.
enum Mode {
    /// Before the prelude.
    Pending,
    /// A PostgreSQL archive, replayed as it is, or under another schema (`--target-schema`:
    /// the archive's schema and the target's).
    Replay { remap: Option<(String, String)> },
    /// A SQLite archive, through the cross-engine plan.
    FromSqlite(from_sqlite::CrossPlan),
    /// `--data-only`: the rows, into tables the target already has.
    DataOnly(data_only::DataOnly),
}

impl Mode {
    fn remap(&self) -> Option<&(String, String)> {
        match self {
            Mode::Replay { remap } => remap.as_ref(),
            _ => None,
        }
    }

    fn cross(&self) -> Option<&from_sqlite::CrossPlan> {
        match self {
            Mode::FromSqlite(plan) => Some(plan),
            _ => None,
        }
    }

    fn data_only(&self) -> Option<&data_only::DataOnly> {
        match self {
            Mode::DataOnly(plan) => Some(plan),
            _ => None,
        }
    }
}

struct Loader<'a> {
    rt: &'a Runtime,
    /// The import transaction's connection.
    client: &'a Client,
    spec: &'a ConnSpec,
    options: &'a ImportOptions,
    /// Load workers (`--jobs` > 1); taken when they are told to finish.
    pool: Option<Pool>,
    staging: Option<Staging>,
    /// SHA-256 of the archive's prelude, which resume records name.
    archive_key: String,
    /// This import's owner record, which staging schema comments start with.
    owner: String,
    /// Rows of parts that an interrupted import had loaded and this one kept, by table id.
    resumed: HashMap<String, u64>,
    /// How each table's rows are encoded, by archive id.
    plans: HashMap<String, Copier>,
    reports: HashMap<String, TableReport>,
    /// Tables whose first part has arrived.
    announced: HashSet<String>,
    statements: usize,
    mode: Mode,
    /// Pre-data statements that need a staged table; run once it is published.
    deferred: Vec<(String, String)>,
    skipped: Vec<String>,
    notes: Vec<String>,
    progress: &'a dyn Progress,
}

impl Loader<'_> {
    /// Reads the archive (loading as it goes), waits for the workers, then publishes and
    /// commits.
    fn run(&mut self, location: &Location) -> Result<(Manifest, Loaded), PgError> {
        let manifest = ferry_archive::read(location, self)?.ok_or_else(|| {
            PgError::Unsupported(format!("{}: unreadable archive", location.display()))
        })?;
        if let Some(pool) = self.pool.take() {
            // The last rounds' jobs go largest table first, so that the longest does not
            // start last.
            let rows: HashMap<&str, u64> = manifest
                .tables
                .iter()
                .map(|t| (t.id.as_str(), t.rows.unwrap_or(0)))
                .collect();
            let weight = |id: &str| std::cmp::Reverse(rows.get(id).copied().unwrap_or(0));
            // Tables loaded by several workers are built once all of them have committed.
            let shared: Vec<Vec<Build>> = match &self.staging {
                Some(st) if self.options.jobs_per_table > 1 => {
                    let mut ids: Vec<&String> = st.tables.keys().collect();
                    ids.sort_by_key(|id| (weight(id), *id));
                    ids.into_iter()
                        .map(|id| &st.tables[id])
                        .filter(|s| s.by_worker)
                        .map(|s| s.builds.clone())
                        .collect()
                }
                _ => Vec::new(),
            };
            // Validating a foreign key scans its table (ties keep post-data order).
            let mut foreign_keys = self
                .staging
                .as_ref()
                .map(|s| s.foreign_keys.clone())
                .unwrap_or_default();
            foreign_keys.sort_by_key(|(from, _)| weight(from));
            let foreign_keys = foreign_keys.into_iter().map(|(_, b)| b).collect();
            let (built, busy) = pool.finish(shared, foreign_keys, &mut self.reports)?;
            if let Some(st) = &mut self.staging {
                st.built.extend(built);
                st.workers_used = busy;
            }
        }
        for t in &manifest.tables {
            self.progress.table_finished(&t.display_name());
        }
        let rt = self.rt;
        rt.block_on(self.post_data(&manifest))?;
        let tables = manifest
            .tables
            .iter()
            .map(|t| {
                let mut r = self.reports.remove(&t.id).unwrap_or_default();
                r.name = self.remapped_name(t);
                (t.id.clone(), r)
            })
            .collect();
        let mut notes = self
            .mode
            .cross()
            .map(|c| c.notes.clone())
            .unwrap_or_default();
        notes.append(&mut self.notes);
        if !self.resumed.is_empty() {
            let mut kept: Vec<String> = manifest
                .tables
                .iter()
                .filter(|t| self.resumed.contains_key(&t.id))
                .map(|t| self.remapped_name(t))
                .collect();
            kept.sort();
            notes.push(format!(
                "--resume: kept {} row(s) of {} table(s) that the interrupted import had loaded ({}); loaded the rest",
                self.resumed.values().sum::<u64>(),
                kept.len(),
                kept.join(", ")
            ));
        }
        Ok((
            manifest,
            Loaded {
                tables,
                statements: self.statements,
                notes,
                skipped: std::mem::take(&mut self.skipped),
            },
        ))
    }

    fn schema_of(&self, t: &Table) -> String {
        let s = t.schema.clone().unwrap_or_else(|| "public".into());
        match self.mode.remap() {
            Some((from, to)) if *from == s => to.clone(),
            _ => s,
        }
    }

    fn remapped_name(&self, t: &Table) -> String {
        match self.mode.cross().and_then(|c| c.tables.get(&t.id)) {
            Some(plan) => plan.target.clone(),
            None => format!("{}.{}", self.schema_of(t), t.name),
        }
    }

    /// Looks for archived tables that already exist. Refuses a non-empty target unless
    /// --clean; returns the clashing tables, which [`Self::begin`] drops.
    async fn check_conflicts(&self, names: &[String]) -> Result<Vec<String>, PgError> {
        let target = self.spec.display();
        let mut clashes = Vec::new();
        for name in names {
            let exists: bool = self
                .client
                .query_one("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[name])
                .await
                .ctx(|| format!("{target}: checking for {name}"))?
                .at(0)?;
            if exists {
                clashes.push(name.clone());
            }
        }
        if !clashes.is_empty() && !self.options.clean {
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
        Ok(clashes)
    }

    /// Functions, types, views and sequences the archive would create that already exist:
    /// `CREATE OR REPLACE` would silently replace them, so a non-empty target is refused
    /// unless --clean, as for tables.
    async fn check_object_conflicts(&self, m: &Manifest) -> Result<(), PgError> {
        let target = self.spec.display();
        let mut clashes = Vec::new();
        for o in &m.objects {
            let schema = self.object_schema(o);
            let name = quote_qualified(&schema, &o.name);
            let exists: bool = match o.kind.as_str() {
                "function" | "procedure" | "aggregate" => {
                    self.client
                        .query_one(
                            // By name alone: the archive's argument list is its own word,
                            // and CREATE OR REPLACE must not reach an existing routine.
                            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                               WHERE n.nspname = $1 AND p.proname = $2)",
                            &[&schema, &o.name],
                        )
                        .await
                        .ctx(|| format!("{target}: checking for {name}"))?
                        .at(0)?
                }
                // Lookups by a quoted name: to_reg* parse it and run nothing.
                kind @ ("type" | "view" | "materialized_view" | "sequence") => {
                    let probe = if kind == "type" {
                        "SELECT pg_catalog.to_regtype($1) IS NOT NULL"
                    } else {
                        "SELECT pg_catalog.to_regclass($1) IS NOT NULL"
                    };
                    self.client
                        .query_one(probe, &[&name])
                        .await
                        .ctx(|| format!("{target}: checking for {name}"))?
                        .at(0)?
                }
                _ => continue,
            };
            let arg = name;
            if exists {
                clashes.push(format!("{} {}", o.kind.replace('_', " "), arg));
            }
        }
        if clashes.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = clashes.iter().take(5).map(String::as_str).collect();
        Err(PgError::TargetNotEmpty {
            target,
            detail: format!(
                "{} of the archive's objects already exist ({}{})",
                clashes.len(),
                shown.join(", "),
                if clashes.len() > 5 { ", ..." } else { "" }
            ),
        })
    }

    /// Opens the import transaction; with --clean, drops the clashing tables inside it.
    async fn begin(&self, clashes: &[String]) -> Result<(), PgError> {
        self.client
            .batch_execute("BEGIN")
            .await
            .ctx(|| format!("{}: starting the import transaction", self.spec.display()))?;
        for name in clashes {
            self.client
                .batch_execute(&format!("DROP TABLE IF EXISTS {name} CASCADE"))
                .await
                .ctx(|| format!("--clean: dropping {name}"))?;
        }
        Ok(())
    }

    /// Reads the target's own column types (of the staging copy, for a staged table),
    /// which decide each field's wire form.
    async fn plan_tables(&mut self, m: &Manifest) -> Result<(), PgError> {
        let types: HashMap<u32, RawType> = catalog::type_map(self.client).await?;
        for (i, t) in m.tables.iter().enumerate() {
            let name = quote_qualified(&self.schema_of(t), &t.name);
            let staged = self.staging.as_mut().and_then(|s| s.tables.get_mut(&t.id));
            let lookup = staged.as_ref().map_or(name.clone(), |s| s.stage.clone());
            let plan: Plan = plan_table(self.client, &types, t, &lookup, &name, i).await?;
            if plan.text_stage.is_some()
                && let Some(s) = self.staging.as_mut().and_then(|s| s.tables.get_mut(&t.id))
            {
                s.by_worker = false;
            }
            self.plans
                .insert(t.id.clone(), Copier::Same(Arc::new(plan)));
        }
        Ok(())
    }

    async fn pre_data_from_sqlite(&mut self, m: &Manifest) -> Result<(), PgError> {
        let schema = self
            .options
            .target_schema
            .clone()
            .unwrap_or_else(|| "public".into());
        let foreign = foreign_schemas(self.client, std::slice::from_ref(&schema)).await?;
        let plan = from_sqlite::plan(m, &schema, self.options.strict, &foreign);
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
        let clashes = self
            .check_conflicts(&from_sqlite::target_tables(m, &schema))
            .await?;
        let candidates = plan
            .pre
            .iter()
            .filter_map(|step| {
                let id = step.table.as_ref()?;
                Some(Candidate {
                    id: id.clone(),
                    name: plan.tables.get(id)?.name.clone(),
                    ddl_schema: schema.clone(),
                    qualified: plan.tables.get(id)?.target.clone(),
                    ddl: step.sql.clone(),
                    schema: schema.clone(),
                })
            })
            .collect();
        self.stage(candidates, std::slice::from_ref(&schema))
            .await?;
        self.begin(&clashes).await?;
        let client = self.client;
        // Views, checks and indexes from SQLite name tables without a schema.
        client
            .batch_execute(&format!("SET LOCAL search_path = {}", quote_ident(&schema)))
            .await
            .ctx(|| "setting the search path".into())?;
        for step in &plan.pre {
            if step.table.as_deref().is_some_and(|id| self.staged(id)) {
                continue;
            }
            crate::one_statement(client, &step.sql)
                .await
                .ctx(|| format!("creating {}", step.what))?;
            self.statements += 1;
        }
        for (i, step) in plan.post.iter().enumerate() {
            if let Some(id) = &step.table
                && let Some(tp) = plan.tables.get(id)
            {
                self.add_build(
                    id,
                    (&tp.schema, &tp.name),
                    i,
                    step.what.clone(),
                    &step.sql,
                    step.apart,
                );
            }
            if let Some((from, to)) = &step.foreign_key
                && let (Some(a), Some(b)) = (plan.tables.get(from), plan.tables.get(to))
            {
                self.add_foreign_key(
                    (from, (&a.schema, &a.name)),
                    (to, (&b.schema, &b.name)),
                    i,
                    step.what.clone(),
                    &step.sql,
                );
            }
        }
        for (id, tp) in &plan.tables {
            self.plans
                .insert(id.clone(), Copier::Cross(Arc::new(tp.clone())));
        }
        self.mode = Mode::FromSqlite(plan);
        Ok(())
    }
}

/// The import transaction's COMMIT, the one moment the target changes: refused once an
/// interruption was asked for, so that a Ctrl-C seen before it leaves the target as it was.
async fn commit_import(client: &Client, context: String) -> Result<(), PgError> {
    ferry_archive::interrupt::pause_point("import:commit");
    ferry_archive::interrupt::check()?;
    client.batch_execute("COMMIT").await.ctx(|| context)
}

impl Visitor for Loader<'_> {
    type Error = PgError;

    fn prelude(&mut self, prelude: &Manifest) -> Result<(), PgError> {
        self.archive_key =
            crate::resume::digest(&[&serde_json::to_string(prelude).unwrap_or_default()]);
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
                let mode = data_only::PlanMode {
                    skip_missing: self.options.skip_missing_tables,
                    describe_only: false,
                };
                data_only::plan(client, prelude, &schema, mode).await
            })?;
            self.mode = Mode::DataOnly(plan);
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
        self.mode = Mode::Replay { remap: None };
        if let Some(to) = &self.options.target_schema {
            let schemas: Vec<String> = prelude
                .settings
                .get("schemas")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            match schemas.as_slice() {
                [from] => {
                    self.mode = Mode::Replay {
                        remap: Some((from.clone(), to.clone())),
                    }
                }
                other => {
                    return Err(PgError::Config(format!(
                        "--target-schema needs a single-schema archive; this one has {} ({})",
                        other.len(),
                        other.join(", ")
                    )));
                }
            }
        }
        self.check_definitions(prelude)?;
        let rt = self.rt;
        rt.block_on(self.pre_data(prelude))
    }

    fn part(&mut self, table: &Table, part: &Part<'_>) -> Result<(), PgError> {
        tracing::debug!(table = %table.display_name(), part = part.path, "loading");
        let started = Instant::now();
        let name = table.display_name();
        if self.announced.insert(table.id.clone()) {
            self.progress.table_started(&name, None);
        }
        let rt = self.rt;
        if let Mode::DataOnly(plan) = &self.mode {
            let rows = rt.block_on(data_only::load_part(
                self.client,
                plan,
                table,
                part,
                self.options.batch_rows,
            ))?;
            return self.loaded(table, rows, started);
        }
        let copier = self
            .plans
            .get(&table.id)
            .cloned()
            .ok_or_else(|| PgError::Check {
                context: format!("table {name}"),
                detail: "data for a table the prelude did not announce".into(),
            })?;
        let staged = self.staging.as_ref().and_then(|s| s.tables.get(&table.id));
        if let Some(record) = staged.and_then(|s| s.resumed.as_ref()) {
            let builds: Vec<&str> = staged
                .map(|s| s.builds.iter().map(|b| b.sql.as_str()).collect())
                .unwrap_or_default();
            if let Some(rows) = check_resumed(record, &builds, table, part)? {
                *self.resumed.entry(table.id.clone()).or_default() += rows;
                return self.loaded(table, rows, started);
            }
        }
        if let (Some(s), Some(pool)) = (staged, self.pool.as_mut())
            && s.by_worker
        {
            let rows = part.footer_rows()?;
            let record = s.resumed.clone().unwrap_or_else(|| {
                crate::resume::Record::new(&self.archive_key, &table.id, &s.definition)
            });
            let work = TableWork {
                stage: s.stage.clone(),
                copier,
                builds: s.builds.clone(),
                checkpoint: Checkpoint {
                    schema: s.stage_schema.clone(),
                    owner: self.owner.clone(),
                    adopted: s.resumed.is_some(),
                    record,
                },
            };
            return pool.part(table, work, part.detach()?, rows, &mut self.reports);
        }
        let into = staged.map_or_else(|| copier.target().to_owned(), |s| s.stage.clone());
        // A table the import transaction created itself is loaded frozen.
        let freeze = staged.is_none() && table.kind == "table";
        let rows = rt.block_on(copier.copy(
            self.client,
            table,
            &into,
            part,
            self.options.batch_rows,
            freeze,
        ))?;
        self.loaded(table, rows, started)
    }
}

/// A part of a table taken over from an interrupted import: `Some(rows)` when that import
/// loaded it (same path, same SHA-256), `None` when it did not and it is to be loaded now.
/// A part it loaded that has changed since, or builds that differ, refuse the import: the
/// rows in staging no longer match the archive.
fn check_resumed(
    record: &crate::resume::Record,
    builds: &[&str],
    table: &Table,
    part: &Part<'_>,
) -> Result<Option<u64>, PgError> {
    let refuse = |detail: String| PgError::Check {
        context: format!("--resume: table {}", table.display_name()),
        detail: format!(
            "{detail}; the interrupted import's rows are not reused. Drop them with `ferry cleanup TARGET`, then import without --resume"
        ),
    };
    if record.builds != crate::resume::digest(builds) {
        return Err(refuse(
            "its indexes and keys differ from those the interrupted import built".into(),
        ));
    }
    match record.part(part.path) {
        None => Ok(None),
        Some(done) if done.sha256 == part.sha256() => Ok(Some(done.rows)),
        Some(done) => Err(refuse(format!(
            "part {} changed since the interrupted import loaded it (SHA-256 {} then, {} now)",
            part.path,
            done.sha256,
            part.sha256()
        ))),
    }
}

impl Loader<'_> {
    fn loaded(&mut self, table: &Table, rows: u64, started: Instant) -> Result<(), PgError> {
        self.progress.advance(&table.display_name(), rows, 0);
        let r = self.reports.entry(table.id.clone()).or_default();
        r.rows += rows;
        r.elapsed += started.elapsed();
        Ok(())
    }
}
