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
use crate::parallel::{Build, Pool, TableWork};
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
    let swept = match rt.block_on(crate::leftover::sweep(&client)) {
        Ok(s) => s,
        Err(e) => crate::leftover::Swept {
            failed: vec![e.to_string()],
            ..Default::default()
        },
    };
    let mut jobs = if options.data_only {
        1
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

fn drop_stage_schemas(rt: &Runtime, client: &Client, schemas: &[String]) -> Result<(), PgError> {
    for s in schemas {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(s));
        rt.block_on(client.batch_execute(&sql))
            .ctx(|| format!("dropping the staging schema {s}"))?;
    }
    Ok(())
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
            plan.statements
                .extend(cross.post.into_iter().map(|s| s.sql));
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

/// The tables being loaded beside the target, in staging schemas (parallel import).
struct Staging {
    /// The staging schemas this import created (one per staged table), to drop at the end.
    schemas: Vec<String>,
    /// Staged tables, by archive id.
    tables: HashMap<String, Staged>,
    /// Post-data positions already done on the staging copies.
    built: HashSet<usize>,
    /// Foreign keys between worker-loaded tables, pointed at their staging copies: added
    /// (and so validated) by the workers, in parallel, once every load has committed.
    foreign_keys: Vec<Build>,
    /// Load workers that had tables.
    workers_used: usize,
}

struct Staged {
    /// Final name, quoted, for messages.
    name: String,
    /// Quoted name in its staging schema.
    stage: String,
    /// The schema it is published into.
    schema: String,
    /// Loaded by a worker; otherwise by the import transaction (its rows need a text
    /// staging table, which only the session that created it can see).
    by_worker: bool,
    builds: Vec<Build>,
}

/// A table that may be staged.
struct Candidate {
    id: String,
    /// Its name (unquoted), as the DDL names it.
    name: String,
    /// Its schema as the DDL names it, and its quoted name there.
    ddl_schema: String,
    qualified: String,
    ddl: String,
    /// The schema it is published into.
    schema: String,
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
            // Tables loaded by several workers are built once all of them have committed.
            let shared: Vec<Vec<Build>> = match &self.staging {
                Some(st) if self.options.jobs_per_table > 1 => {
                    let mut ids: Vec<&String> = st.tables.keys().collect();
                    ids.sort();
                    ids.into_iter()
                        .map(|id| &st.tables[id])
                        .filter(|s| s.by_worker)
                        .map(|s| s.builds.clone())
                        .collect()
                }
                _ => Vec::new(),
            };
            let foreign_keys = self
                .staging
                .as_ref()
                .map(|s| s.foreign_keys.clone())
                .unwrap_or_default();
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

    /// An archive is data: each definition must be one statement of its entry's kind,
    /// naming its entry's object (in the schema it is imported into), before anything runs.
    fn check_definitions(&self, m: &Manifest) -> Result<(), PgError> {
        let remapped = |s: &str| match self.mode.remap() {
            Some((from, to)) if from == s => to.clone(),
            _ => s.to_owned(),
        };
        // The schemas this import may touch: the archive's own, as it lists them.
        let schemas: Vec<String> = m
            .settings
            .get("schemas")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .unwrap_or_else(|| {
                // An archive that lists no schemas: those of its tables.
                let mut v: Vec<String> = m.tables.iter().filter_map(|t| t.schema.clone()).collect();
                v.dedup();
                v
            })
            .iter()
            .map(|s| remapped(s))
            .collect();
        let foreign = self.rt.block_on(foreign_schemas(self.client, &schemas))?;
        let outside = |what: String, schema: &str| {
            PgError::Refused(ferry_sql::SqlError::Unexpected {
                what,
                expected: format!(
                    "an object in the archive's schemas ({})",
                    schemas.join(", ")
                ),
                found: format!("schema {schema}"),
            })
        };
        for t in &m.tables {
            let schema = self.schema_of(t);
            if !schemas.contains(&schema) {
                return Err(outside(format!("table {}", t.name), &schema));
            }
            let sql = self.sql(t.definition.as_deref().unwrap_or(""));
            // A partition's parent is one of the archive's own tables.
            for (s, n) in ferry_sql::check::named_tables(&sql) {
                if !m
                    .tables
                    .iter()
                    .any(|x| x.name == n && Some(self.schema_of(x)) == s)
                {
                    return Err(outside(
                        format!("table {}", t.name),
                        &format!("{}.{n}", s.unwrap_or_default()),
                    ));
                }
            }
            ferry_sql::check_pg_definition(
                &sql,
                ferry_sql::Expect {
                    kind: if t.kind == "partitioned" {
                        "table"
                    } else {
                        &t.kind
                    },
                    schema: Some(&schema),
                    name: &t.name,
                    table: None,
                    schemas: &schemas,
                    trusted: self.options.trust_archive,
                    foreign: &foreign,
                },
            )?;
        }
        for o in &m.objects {
            let Some(def) = o.definition.as_deref() else {
                continue;
            };
            let schema = o.schema.as_deref().map(remapped);
            let name = if o.kind == "schema" {
                remapped(&o.name)
            } else {
                o.name.clone()
            };
            let home = if o.kind == "schema" {
                Some(&name)
            } else {
                schema.as_ref()
            };
            if let Some(s) = home
                && !schemas.contains(s)
            {
                return Err(outside(format!("{} {}", o.kind, o.name), s));
            }
            // Only a schema and a comment may name no schema; anything else would land
            // wherever the session's search path points.
            if home.is_none() && o.kind != "comment" {
                return Err(outside(format!("{} {}", o.kind, o.name), "(none)"));
            }
            // An index, constraint, trigger, rule or comment belongs to one of the archive's
            // own tables (or objects): never to one that is already in the target.
            let own = |n: &str| {
                m.tables
                    .iter()
                    .any(|t| t.name == n && t.schema.as_deref().map(remapped) == schema)
                    || m.objects.iter().any(|x| {
                        matches!(x.kind.as_str(), "view" | "materialized_view")
                            && x.name == n
                            && x.schema.as_deref().map(remapped) == schema
                    })
            };
            if let Some(t) = &o.table
                && !own(t)
            {
                return Err(outside(
                    format!("{} {} on table {t}", o.kind, o.name),
                    "a table the archive does not create",
                ));
            }
            // A sequence value or owner is set only on the archive's own sequences.
            if matches!(o.kind.as_str(), "sequence_value" | "sequence_owned_by")
                && !archive_sequence(m, schema.as_deref(), &o.name, &remapped)
            {
                return Err(outside(
                    format!("{} {}", o.kind, o.name),
                    "a sequence the archive does not create",
                ));
            }
            // A foreign key may reference only the archive's own tables.
            for (s, n) in ferry_sql::check::named_tables(def) {
                let s = s.map(|s| remapped(&s));
                if !m
                    .tables
                    .iter()
                    .any(|t| t.name == n && t.schema.as_deref().map(remapped) == s)
                {
                    return Err(outside(
                        format!("{} {}", o.kind, o.name),
                        &format!("{}.{n}", s.unwrap_or_default()),
                    ));
                }
            }
            if o.kind == "comment"
                && o.table.is_none()
                && !(own(&o.name)
                    || m.objects
                        .iter()
                        .any(|x| x.kind != "comment" && x.name == o.name)
                    || schemas.contains(&o.name))
            {
                return Err(outside(
                    format!("comment on {}", o.name),
                    "an object the archive does not create",
                ));
            }
            ferry_sql::check_pg_definition(
                &self.sql(def),
                ferry_sql::Expect {
                    kind: &o.kind,
                    schema: schema.as_deref(),
                    name: &name,
                    table: o.table.as_deref(),
                    schemas: &schemas,
                    trusted: self.options.trust_archive,
                    foreign: &foreign,
                },
            )?;
        }
        if !self.options.trust_archive {
            self.no_archive_code_at_import(m, &schemas)?;
        }
        Ok(())
    }

    /// The archive's own functions must not run while it is imported: a CHECK, a generated
    /// column, a domain, an index expression or a materialized view that calls one would run
    /// its body over the loaded rows, and a body is code. Refused unless --trust-archive.
    fn no_archive_code_at_import(&self, m: &Manifest, schemas: &[String]) -> Result<(), PgError> {
        let routines: Vec<&str> = m
            .objects
            .iter()
            .filter(|o| matches!(o.kind.as_str(), "function" | "procedure" | "aggregate"))
            .map(|o| o.name.as_str())
            .collect();

        // A view runs when a materialized view over it is refreshed after the load.
        let refreshed = m.objects.iter().any(|o| o.kind == "materialized_view");
        let none: Vec<String> = Vec::new();
        let mut evaluated: Vec<(String, Option<&str>, Vec<String>)> = m
            .tables
            .iter()
            .map(|t| {
                // The load supplies these columns, so their defaults do not run.
                let supplied = t.data_fields().into_iter().map(|(n, _)| n).collect();
                (
                    format!("table {}", t.display_name()),
                    t.definition.as_deref(),
                    supplied,
                )
            })
            .collect();
        evaluated.extend(
            m.objects
                .iter()
                .filter(|o| {
                    matches!(
                        o.kind.as_str(),
                        "type" | "index" | "constraint" | "materialized_view"
                    ) || (refreshed && o.kind == "view")
                })
                .map(|o| {
                    (
                        format!("{} {}", o.kind.replace('_', " "), o.name),
                        o.definition.as_deref(),
                        none.clone(),
                    )
                }),
        );
        for (what, def, supplied) in evaluated {
            let Some(def) = def else { continue };
            if let Some(f) = ferry_sql::check::calls_any(def, &routines, &supplied, schemas) {
                return Err(PgError::Refused(ferry_sql::SqlError::Unexpected {
                    what,
                    expected: "no call to a function the archive defines while it is imported (pass --trust-archive to allow it)".into(),
                    found: format!("a call to {f}()"),
                }));
            }
        }
        Ok(())
    }

    /// Rewrites schema-qualified names in a DDL statement for --target-schema.
    fn sql(&self, sql: &str) -> String {
        match self.mode.remap() {
            // Text the tokenizer cannot read stays as it is; the definition check then
            // refuses it, since it does not name the remapped schema.
            Some((from, to)) => ferry_sql::rewrite::remap_schema(sql, from, to, "definition")
                .unwrap_or_else(|_| sql.to_owned()),
            None => sql.to_owned(),
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

    /// Parallel import, step 1: creates the staging schemas and, in them, every candidate
    /// table that depends on nothing in the schemas the archive publishes into (`published`):
    /// those objects are the import transaction's to create or, with --clean, to drop. Runs
    /// before the import transaction, and commits.
    async fn stage(
        &mut self,
        candidates: Vec<Candidate>,
        published: &[String],
    ) -> Result<(), PgError> {
        if self.pool.is_none() || candidates.is_empty() {
            return Ok(());
        }
        let client = self.client;
        let id = format!(
            "{:x}_{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        // One staging schema per table: workers create index and constraint names in
        // their own transactions, and two of them creating the same name in one schema
        // would wait on each other until commit. Only the schemas created here are
        // recorded, so cleanup never drops one it did not make.
        self.staging = Some(Staging {
            schemas: Vec::new(),
            tables: HashMap::new(),
            built: HashSet::new(),
            foreign_keys: Vec::new(),
            workers_used: 0,
        });
        let record = crate::leftover::owner_record(client).await?;
        let mut staged = HashMap::new();
        for (n, c) in candidates.into_iter().enumerate() {
            let st = format!("ferry_stage_{id}_{}", n + 1);
            if let Err(e) = crate::leftover::create_stage_schema(client, &st, &record).await {
                self.notes.push(format!(
                    "tables were loaded on one connection: a staging schema for the parallel load could not be created ({})",
                    PgError::query("CREATE SCHEMA", e)
                ));
                break;
            }
            if let Some(s) = &mut self.staging {
                s.schemas.push(st.clone());
            }
            let stage = quote_qualified(&st, &c.name);
            // An identity column's sequence is named in the DDL, schema and all: it goes
            // to staging with its table, and is published with it. (Where this misses,
            // the sequence lands in a published schema, and the dependency check below
            // rolls the attempt back.)
            let Some(ddl) =
                ferry_sql::rewrite::move_create_table(&c.ddl, &c.ddl_schema, &c.name, &st)
            else {
                continue;
            };
            client
                .batch_execute("BEGIN")
                .await
                .ctx(|| "staging: starting a transaction".into())?;
            let created = crate::one_statement(client, &ddl).await;
            if let Err(e) = &created {
                tracing::debug!(table = %c.qualified, error = %e, "not staged");
            }
            let ok = created.is_ok() && !depends_on(client, &stage, published).await?;
            let end = if ok { "COMMIT" } else { "ROLLBACK" };
            client
                .batch_execute(end)
                .await
                .ctx(|| format!("staging {}", c.qualified))?;
            tracing::debug!(table = %c.qualified, staged = ok, "staging");
            if ok {
                staged.insert(
                    c.id,
                    Staged {
                        name: quote_qualified(&c.schema, &c.name),
                        stage,
                        schema: c.schema,
                        by_worker: true,
                        builds: Vec::new(),
                    },
                );
            }
        }
        self.statements += staged.len();
        if let Some(s) = &mut self.staging {
            s.tables = staged;
        }
        Ok(())
    }

    fn staged(&self, id: &str) -> bool {
        self.staging
            .as_ref()
            .is_some_and(|s| s.tables.contains_key(id))
    }

    /// Registers a table-local post-data statement to run on a worker-loaded table's
    /// staging copy, when it can be pointed there.
    fn add_build(
        &mut self,
        id: &str,
        (schema, table): (&str, &str),
        index: usize,
        what: String,
        sql: &str,
    ) {
        let Some(s) = self
            .staging
            .as_mut()
            .and_then(|st| st.tables.get_mut(id))
            .filter(|s| s.by_worker)
        else {
            return;
        };
        if let Some(sql) = ferry_sql::rewrite::retarget_table(sql, schema, table, &s.stage) {
            s.builds.push(Build { index, what, sql });
        }
    }

    /// Registers a foreign key between two worker-loaded tables, to be added on their
    /// staging copies.
    fn add_foreign_key(
        &mut self,
        (from, (from_schema, from_table)): (&str, (&str, &str)),
        (to, (to_schema, to_table)): (&str, (&str, &str)),
        index: usize,
        what: String,
        sql: &str,
    ) {
        let Some(st) = self.staging.as_mut() else {
            return;
        };
        let stage = |id: &str| {
            st.tables
                .get(id)
                .filter(|s| s.by_worker)
                .map(|s| s.stage.clone())
        };
        let (Some(a), Some(b)) = (stage(from), stage(to)) else {
            return;
        };
        let sql = ferry_sql::rewrite::retarget_table(sql, from_schema, from_table, &a)
            .and_then(|sql| ferry_sql::rewrite::retarget_references(&sql, to_schema, to_table, &b));
        if let Some(sql) = sql {
            st.foreign_keys.push(Build { index, what, sql });
        }
    }

    async fn pre_data(&mut self, m: &Manifest) -> Result<(), PgError> {
        let names: Vec<String> = m
            .tables
            .iter()
            .map(|t| quote_qualified(&self.schema_of(t), &t.name))
            .collect();
        let clashes = self.check_conflicts(&names).await?;
        if !self.options.clean {
            self.check_object_conflicts(m).await?;
        }
        let candidates = m
            .tables
            .iter()
            .filter(|t| {
                t.kind == "table"
                    && PgTableFacts::read(&t.properties).is_ok_and(|f| f.partition_of.is_none())
            })
            .filter_map(|t| {
                let ddl_schema = t.schema.clone().unwrap_or_else(|| "public".into());
                Some(Candidate {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    qualified: quote_qualified(&ddl_schema, &t.name),
                    ddl: t.definition.clone()?,
                    schema: self.schema_of(t),
                    ddl_schema,
                })
            })
            .collect();
        let published: Vec<String> = m
            .settings
            .get("schemas")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .unwrap_or_default()
            .into_iter()
            .chain(m.tables.iter().map(|t| self.schema_of(t)))
            .collect();
        // Staged tables are created from the archive's DDL as it is. Under --target-schema it
        // would still name the source schema's objects; with --clean, the import
        // transaction drops and recreates objects that staged indexes could point at. Both
        // load in the import transaction.
        if self.mode.remap().is_none() && clashes.is_empty() {
            self.stage(candidates, &published).await?;
        }
        self.begin(&clashes).await?;
        if !clashes.is_empty() {
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
        for t in m.tables.iter().filter(|t| !self.staged(&t.id)) {
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
        self.deferred = run_with_retries(self.client, pending, self.staging.is_some()).await?;
        self.plan_tables(m).await?;
        // Keys and indexes are built on the staging copy of their table; foreign keys
        // between two staged tables are added there too, once both are loaded.
        let name_of = |t: &Table| {
            (
                t.schema.clone().unwrap_or_else(|| "public".into()),
                t.name.clone(),
            )
        };
        for (i, o) in m.objects.iter().enumerate() {
            let def = o.definition.as_deref().unwrap_or("");
            let fk = o.kind == "constraint" && def.contains(" FOREIGN KEY (");
            let local = o.kind == "index" || (o.kind == "constraint" && !fk);
            if phase(o) != POST || !(local || fk) {
                continue;
            }
            let Some(t) = m
                .tables
                .iter()
                .find(|t| t.schema == o.schema && o.table.as_deref() == Some(t.name.as_str()))
            else {
                continue;
            };
            let what = format!("{} {}", o.kind, o.name);
            let (ts, tn) = name_of(t);
            if local {
                self.add_build(&t.id, (&ts, &tn), i, what, def);
            } else if let Some(u) = m.tables.iter().find(|u| {
                let (us, un) = name_of(u);
                ferry_sql::rewrite::retarget_references(def, &us, &un, "x").is_some()
            }) {
                let (us, un) = name_of(u);
                self.add_foreign_key((&t.id, (&ts, &tn)), (&u.id, (&us, &un)), i, what, def);
            }
        }
        Ok(())
    }

    /// The schema an archived object goes into (after --target-schema).
    fn object_schema(&self, o: &ferry_archive::SchemaObject) -> String {
        let schema = o.schema.clone().unwrap_or_else(|| "public".into());
        match self.mode.remap() {
            Some((from, to)) if *from == schema => to.clone(),
            _ => schema,
        }
    }

    /// With --clean: archived objects other than tables that already exist are dropped too.
    async fn clean_objects(&self, m: &Manifest) -> Result<(), PgError> {
        for o in &m.objects {
            let schema = self.object_schema(o);
            let name = quote_qualified(&schema, &o.name);
            let sql = match o.kind.as_str() {
                "view" => format!("DROP VIEW IF EXISTS {name} CASCADE"),
                "materialized_view" => format!("DROP MATERIALIZED VIEW IF EXISTS {name} CASCADE"),
                "sequence" => format!("DROP SEQUENCE IF EXISTS {name} CASCADE"),
                "type" => format!("DROP TYPE IF EXISTS {name} CASCADE"),
                "function" | "procedure" | "aggregate" => {
                    let args = o
                        .properties
                        .get("identity_arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    // The argument list is archive text inside ferry's own statement: it
                    // must not close the parenthesis and name a second object.
                    if !ferry_sql::check::is_argument_list(args) {
                        return Err(PgError::Check {
                            context: format!("{} {}", o.kind, o.name),
                            detail: format!("identity_arguments {args:?} are not an argument list"),
                        });
                    }
                    format!(
                        "DROP {} IF EXISTS {name}({args}) CASCADE",
                        o.kind.to_uppercase()
                    )
                }
                _ => continue,
            };
            crate::one_statement(self.client, &sql)
                .await
                .ctx(|| format!("--clean: {sql}"))?;
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
                self.add_build(id, (&tp.schema, &tp.name), i, step.what.clone(), &step.sql);
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

    /// Parallel import, step 3: moves the staged tables into their schemas, then creates
    /// what had to wait for them.
    async fn publish(&mut self) -> Result<(), PgError> {
        if let Some(st) = &self.staging {
            let mut staged: Vec<(&String, &Staged)> = st.tables.iter().collect();
            staged.sort_by_key(|(id, _)| *id);
            for (_, s) in staged {
                if self.mode.cross().is_some() {
                    unclash_index_names(self.client, s).await?;
                }
                let sql = format!(
                    "ALTER TABLE {} SET SCHEMA {}",
                    s.stage,
                    quote_ident(&s.schema)
                );
                self.client
                    .batch_execute(&sql)
                    .await
                    .ctx(|| format!("publishing table {}", s.name))?;
            }
        }
        let deferred = std::mem::take(&mut self.deferred);
        if !deferred.is_empty() {
            run_with_retries(self.client, deferred, false).await?;
        }
        Ok(())
    }

    async fn post_data(&mut self, m: &Manifest) -> Result<(), PgError> {
        for t in &m.tables {
            let got = self.reports.get(&t.id).map_or(0, |r| r.rows);
            let loaded_here = self.mode.data_only().is_none_or(|p| p.loads(&t.id));
            if loaded_here && Some(got) != t.rows && !t.properties.contains_key("content") {
                return Err(PgError::Check {
                    context: format!("table {}", t.display_name()),
                    detail: format!("the archive lists {:?} rows but {got} were loaded", t.rows),
                });
            }
        }
        let commit = format!("{}: committing the import", self.spec.display());
        if let Mode::DataOnly(plan) = &self.mode {
            let mut notes = data_only::finish(self.client, plan).await?;
            self.notes.append(&mut plan.notes.clone());
            self.notes.append(&mut notes);
            self.skipped.extend(plan.skipped.iter().cloned());
            return commit_import(self.client, commit).await;
        }
        self.publish().await?;
        let built = self
            .staging
            .as_ref()
            .map(|s| s.built.clone())
            .unwrap_or_default();
        self.statements += built.len();
        if let Mode::FromSqlite(cross) = &self.mode {
            for (i, step) in cross.post.iter().enumerate() {
                if built.contains(&i) {
                    continue;
                }
                self.statements += 1;
                if let Err(reason) = try_statement(self.client, &step.sql).await? {
                    // A foreign key that existing rows violate (SQLite does not enforce
                    // them by default) is still added for new rows, and reported.
                    if step.sql.contains("FOREIGN KEY") {
                        let not_valid = format!("{} NOT VALID", step.sql);
                        if try_statement(self.client, &not_valid).await?.is_ok() {
                            self.skipped.push(format!(
                                "{}: existing rows violate it ({reason}); added NOT VALID, so it applies to new rows only",
                                step.what
                            ));
                            continue;
                        }
                    }
                    self.skipped.push(format!("{}: {reason}", step.what));
                }
            }
            self.skipped.extend(cross.skipped.iter().cloned());
            return commit_import(self.client, commit).await;
        }
        for (i, o) in m.objects.iter().enumerate() {
            if phase(o) != POST || built.contains(&i) {
                continue;
            }
            let sql = self.sql(o.definition.as_deref().unwrap_or(""));
            crate::one_statement(self.client, &sql)
                .await
                .ctx(|| format!("{} {}: {}", o.kind, o.name, first_line(&sql)))?;
            self.statements += 1;
        }
        commit_import(self.client, commit).await
    }
}

/// The import transaction's COMMIT, the one moment the target changes: refused once an
/// interruption was asked for, so that a Ctrl-C seen before it leaves the target as it was.
async fn commit_import(client: &Client, context: String) -> Result<(), PgError> {
    ferry_archive::interrupt::pause_point("import:commit");
    ferry_archive::interrupt::check()?;
    client.batch_execute("COMMIT").await.ctx(|| context)
}

/// A SQLite archive's keys get PostgreSQL's generated names (`<table>_<columns>_key`),
/// which two tables can share (`a_b` with UNIQUE (c), `a` with UNIQUE (b_c)). A serial
/// import gets the second one `..._key1` from the server; staged tables, each built alone,
/// both have the plain name. Before a staged table is moved, each of its indexes whose
/// name is taken in the target schema gets the server's next free name the same way.
async fn unclash_index_names(client: &Client, s: &Staged) -> Result<(), PgError> {
    let rows = client
        .query(
            "SELECT c.relname::text, n.nspname::text FROM pg_catalog.pg_index i
             JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE i.indrelid = $1::text::regclass ORDER BY c.oid",
            &[&s.stage],
        )
        .await
        .ctx(|| format!("publishing table {}: reading its indexes", s.name))?;
    for r in rows {
        let (index, stage_schema): (String, String) = (r.at(0)?, r.at(1)?);
        let mut name = index.clone();
        let mut n = 0;
        loop {
            let taken: bool = client
                .query_one(
                    "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                    &[&quote_qualified(&s.schema, &name)],
                )
                .await
                .ctx(|| format!("publishing table {}: checking index names", s.name))?
                .at(0)?;
            if !taken {
                break;
            }
            n += 1;
            // As the server does: shorten the base so that base and number fit 63 bytes.
            let suffix = n.to_string();
            let mut base = index.clone();
            while base.len() + suffix.len() > 63 {
                base.pop();
            }
            name = format!("{base}{suffix}");
        }
        if name != index {
            client
                .batch_execute(&format!(
                    "ALTER INDEX {} RENAME TO {}",
                    quote_qualified(&stage_schema, &index),
                    quote_ident(&name)
                ))
                .await
                .ctx(|| format!("publishing table {}: renaming index {index}", s.name))?;
        }
    }
    Ok(())
}

/// Does the (staged) table depend on anything in these schemas: a type, a sequence, a
/// function or a collation, through a column, a default or a constraint?
async fn depends_on(client: &Client, table: &str, schemas: &[String]) -> Result<bool, PgError> {
    let row = client
        .query_one(
            "WITH t AS (SELECT $1::text::regclass::oid AS oid),
             deps AS (
               SELECT d.refclassid, d.refobjid FROM pg_catalog.pg_depend d, t
               WHERE (d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = t.oid)
                  OR (d.classid = 'pg_catalog.pg_attrdef'::regclass
                      AND d.objid IN (SELECT a.oid FROM pg_catalog.pg_attrdef a WHERE a.adrelid = t.oid))
                  OR (d.classid = 'pg_catalog.pg_constraint'::regclass
                      AND d.objid IN (SELECT c.oid FROM pg_catalog.pg_constraint c WHERE c.conrelid = t.oid))),
             ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ANY($2))
             SELECT EXISTS (SELECT 1 FROM deps WHERE
                  (refclassid = 'pg_catalog.pg_type'::regclass
                   AND refobjid IN (SELECT oid FROM pg_catalog.pg_type WHERE typnamespace IN (SELECT oid FROM ns)))
               OR (refclassid = 'pg_catalog.pg_class'::regclass
                   AND refobjid IN (SELECT oid FROM pg_catalog.pg_class WHERE relnamespace IN (SELECT oid FROM ns)))
               OR (refclassid = 'pg_catalog.pg_proc'::regclass
                   AND refobjid IN (SELECT oid FROM pg_catalog.pg_proc WHERE pronamespace IN (SELECT oid FROM ns)))
               OR (refclassid = 'pg_catalog.pg_collation'::regclass
                   AND refobjid IN (SELECT oid FROM pg_catalog.pg_collation WHERE collnamespace IN (SELECT oid FROM ns))))",
            &[&table, &schemas],
        )
        .await
        .ctx(|| format!("staging: reading what {table} depends on"))?;
    row.at(0)
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
        if let (Some(s), Some(pool)) = (staged, self.pool.as_mut())
            && s.by_worker
        {
            let rows = part.footer_rows()?;
            let work = TableWork {
                stage: s.stage.clone(),
                copier,
                builds: s.builds.clone(),
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

impl Loader<'_> {
    fn loaded(&mut self, table: &Table, rows: u64, started: Instant) -> Result<(), PgError> {
        self.progress.advance(&table.display_name(), rows, 0);
        let r = self.reports.entry(table.id.clone()).or_default();
        r.rows += rows;
        r.elapsed += started.elapsed();
        Ok(())
    }
}

/// Runs one statement behind a savepoint: `Ok(Err(reason))` when the server refused it.
///
/// Every savepoint here is released after `ROLLBACK TO` as well: `ROLLBACK TO` leaves the
/// savepoint's subtransaction open, and a COPY FREEZE issued later inside it would be
/// refused for every table created before it.
async fn try_statement(client: &Client, sql: &str) -> Result<Result<(), String>, PgError> {
    client
        .batch_execute("SAVEPOINT ferry_try")
        .await
        .ctx(|| "savepoint".into())?;
    match crate::one_statement(client, sql).await {
        Ok(()) => {
            client
                .batch_execute("RELEASE SAVEPOINT ferry_try")
                .await
                .ctx(|| "savepoint".into())?;
            Ok(Ok(()))
        }
        Err(e) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT ferry_try; RELEASE SAVEPOINT ferry_try")
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

/// Whether the archive creates the sequence `schema.name`: a sequence object, or the
/// identity sequence of one of its columns.
fn archive_sequence(
    m: &Manifest,
    schema: Option<&str>,
    name: &str,
    remapped: &dyn Fn(&str) -> String,
) -> bool {
    let same = |s: Option<&str>| s.map(remapped).as_deref() == schema;
    m.objects
        .iter()
        .any(|o| o.kind == "sequence" && o.name == name && same(o.schema.as_deref()))
        || m.tables
            .iter()
            .filter(|t| same(t.schema.as_deref()))
            .any(|t| {
                t.columns.iter().any(|c| {
                    ferry_archive::facts::PgColumnFacts::read(&c.properties)
                        .ok()
                        .and_then(|f| f.sequence)
                        .is_some_and(|q| {
                            q == name
                                || q.ends_with(&format!(".{name}"))
                                || q.ends_with(&format!(".\"{name}\""))
                        })
                })
            })
}

/// The target's schemas other than `ours` (and the system's): names in them are out of an
/// archive's reach.
async fn foreign_schemas(client: &Client, ours: &[String]) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_catalog.pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
               AND nspname !~ '^pg_(toast_)?temp_' AND NOT (nspname = ANY($1::text[]))",
            &[&ours],
        )
        .await
        .ctx(|| "reading the target's schemas".into())?;
    rows.iter().map(|r| r.at(0)).collect()
}

/// When an object is created: decided by its kind, never by the archive (a trigger marked
/// `pre` would fire on the archive's own rows while they load).
fn phase(o: &ferry_archive::SchemaObject) -> &str {
    match o.kind.as_str() {
        "schema" | "extension" | "collation" | "type" | "function" | "procedure" | "aggregate"
        | "sequence" | "view" | "materialized_view" => PRE,
        _ => POST,
    }
}

fn first_line(sql: &str) -> String {
    let l = sql.lines().next().unwrap_or("");
    match l.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &l[..cut]),
        None => l.to_owned(),
    }
}

/// Runs DDL statements inside the open transaction; a statement that fails is retried after
/// the others (behind a savepoint), until a round makes no progress. With `defer`, the
/// statements that still fail are returned rather than fatal, since they may need a table
/// that is still in the staging schema (a view, a SQL function); a table statement is
/// always fatal, since its rows are about to arrive.
async fn run_with_retries(
    client: &Client,
    mut pending: Vec<(String, String)>,
    defer: bool,
) -> Result<Vec<(String, String)>, PgError> {
    loop {
        let mut failed = Vec::new();
        let before = pending.len();
        for (what, sql) in pending {
            client
                .batch_execute("SAVEPOINT ferry_ddl")
                .await
                .ctx(|| "savepoint".into())?;
            match crate::one_statement(client, &sql).await {
                Ok(()) => client
                    .batch_execute("RELEASE SAVEPOINT ferry_ddl")
                    .await
                    .ctx(|| "savepoint".into())?,
                Err(e) => {
                    client
                        .batch_execute(
                            "ROLLBACK TO SAVEPOINT ferry_ddl; RELEASE SAVEPOINT ferry_ddl",
                        )
                        .await
                        .ctx(|| "savepoint".into())?;
                    failed.push((what, sql, e));
                }
            }
        }
        if failed.is_empty() {
            return Ok(Vec::new());
        }
        if failed.len() == before {
            let table = failed.iter().position(|(w, _, _)| w.starts_with("table "));
            if defer && table.is_none() {
                return Ok(failed.into_iter().map(|(w, s, _)| (w, s)).collect());
            }
            let (what, _, e) = failed.remove(table.unwrap_or(0));
            return Err(PgError::query(format!("creating {what}"), e));
        }
        pending = failed.into_iter().map(|(w, s, _)| (w, s)).collect();
    }
}
