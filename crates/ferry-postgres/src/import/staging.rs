//! Parallel import: the tables loaded beside the target in private staging schemas, and
//! their publication into the target in the import transaction (steps 1 and 3 of the
//! module's essay). Nothing here is visible to the target's users until the import
//! transaction commits; the staging schemas are dropped whatever happens.

use super::*;

/// The tables being loaded beside the target, in staging schemas (parallel import).
pub(super) struct Staging {
    /// The staging schemas this import created (one per staged table), to drop at the end.
    pub(super) schemas: Vec<String>,
    /// Staged tables, by archive id.
    pub(super) tables: HashMap<String, Staged>,
    /// Post-data positions already done on the staging copies.
    pub(super) built: HashSet<usize>,
    /// Foreign keys between worker-loaded tables, pointed at their staging copies, with the
    /// archive id of the table each belongs to: added (and so validated) by the workers,
    /// in parallel, once every load has committed.
    pub(super) foreign_keys: Vec<(String, Build)>,
    /// Load workers that had tables.
    pub(super) workers_used: usize,
}

pub(super) struct Staged {
    /// Final name, quoted, for messages.
    pub(super) name: String,
    /// Quoted name in its staging schema.
    pub(super) stage: String,
    /// The staging schema (unquoted), where its resume record is kept.
    pub(super) stage_schema: String,
    /// Taken over from an interrupted import (`--resume`): what it already holds.
    pub(super) resumed: Option<crate::resume::Record>,
    /// The CREATE TABLE it was staged from, which its resume record names.
    pub(super) definition: String,
    /// The schema it is published into.
    pub(super) schema: String,
    /// Loaded by a worker; otherwise by the import transaction (its rows need a text
    /// staging table, which only the session that created it can see).
    pub(super) by_worker: bool,
    pub(super) builds: Vec<Build>,
}

/// A table that may be staged.
pub(super) struct Candidate {
    pub(super) id: String,
    /// Its name (unquoted), as the DDL names it.
    pub(super) name: String,
    /// Its schema as the DDL names it, and its quoted name there.
    pub(super) ddl_schema: String,
    pub(super) qualified: String,
    pub(super) ddl: String,
    /// The schema it is published into.
    pub(super) schema: String,
}

pub(super) fn drop_stage_schemas(
    rt: &Runtime,
    client: &Client,
    schemas: &[String],
) -> Result<(), PgError> {
    for s in schemas {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(s));
        rt.block_on(client.batch_execute(&sql))
            .ctx(|| format!("dropping the staging schema {s}"))?;
    }
    Ok(())
}

/// A SQLite archive's keys get PostgreSQL's generated names (`<table>_<columns>_key`),
/// which two tables can share (`a_b` with UNIQUE (c), `a` with UNIQUE (b_c)). A serial
/// import gets the second one `..._key1` from the server; staged tables, each built alone,
/// both have the plain name. Before a staged table is moved, each of its indexes whose
/// name is taken in the target schema gets the server's next free name the same way.
pub(super) async fn unclash_index_names(client: &Client, s: &Staged) -> Result<(), PgError> {
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
pub(super) async fn depends_on(
    client: &Client,
    table: &str,
    schemas: &[String],
) -> Result<bool, PgError> {
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

impl Loader<'_> {
    /// Parallel import, step 1: creates the staging schemas and, in them, every candidate
    /// table that depends on nothing in the schemas the archive publishes into (`published`):
    /// those objects are the import transaction's to create or, with --clean, to drop. Runs
    /// before the import transaction, and commits.
    pub(super) async fn stage(
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
        self.owner = record.clone();
        let mut staged = HashMap::new();
        if self.options.resume {
            let wanted: Vec<crate::resume::Wanted> = candidates
                .iter()
                .map(|c| crate::resume::Wanted {
                    id: &c.id,
                    name: &c.name,
                    ddl: &c.ddl,
                })
                .collect();
            let adoption =
                crate::resume::adopt(client, &record, &self.archive_key, &wanted).await?;
            if !adoption.dropped.is_empty() {
                self.notes.push(format!(
                    "--resume: dropped {} staging schema(s) of an interrupted import that did not match this archive and target: {}",
                    adoption.dropped.len(),
                    adoption.dropped.join(", ")
                ));
            }
            for f in adoption.failed {
                self.notes.push(format!(
                    "a staging schema left by a killed import could not be dropped ({f}); `ferry cleanup` as its owner drops it"
                ));
            }
            for c in &candidates {
                let Some(a) = adoption.tables.get(&c.id) else {
                    continue;
                };
                if let Some(s) = &mut self.staging {
                    s.schemas.push(a.schema.clone());
                    s.built.extend(a.record.built.iter().copied());
                }
                staged.insert(
                    c.id.clone(),
                    Staged {
                        name: quote_qualified(&c.schema, &c.name),
                        stage: quote_qualified(&a.schema, &c.name),
                        stage_schema: a.schema.clone(),
                        resumed: Some(a.record.clone()),
                        definition: c.ddl.clone(),
                        schema: c.schema.clone(),
                        by_worker: true,
                        builds: Vec::new(),
                    },
                );
            }
        }
        for (n, c) in candidates.into_iter().enumerate() {
            if staged.contains_key(&c.id) {
                continue;
            }
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
                        stage_schema: st,
                        resumed: None,
                        definition: c.ddl,
                        schema: c.schema,
                        by_worker: true,
                        builds: Vec::new(),
                    },
                );
            }
        }
        self.statements += staged.values().filter(|s| s.resumed.is_none()).count();
        if let Some(s) = &mut self.staging {
            s.tables = staged;
        }
        Ok(())
    }

    pub(super) fn staged(&self, id: &str) -> bool {
        self.staging
            .as_ref()
            .is_some_and(|s| s.tables.contains_key(id))
    }

    /// Registers a table-local post-data statement to run on a worker-loaded table's
    /// staging copy, when it can be pointed there.
    pub(super) fn add_build(
        &mut self,
        id: &str,
        (schema, table): (&str, &str),
        index: usize,
        what: String,
        sql: &str,
        apart: bool,
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
            s.builds.push(Build {
                index,
                what,
                sql,
                apart,
            });
        }
    }

    /// Registers a foreign key between two worker-loaded tables, to be added on their
    /// staging copies.
    pub(super) fn add_foreign_key(
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
            st.foreign_keys.push((
                from.to_owned(),
                Build {
                    index,
                    what,
                    sql,
                    apart: true,
                },
            ));
        }
    }

    /// Parallel import, step 3: moves the staged tables into their schemas, then creates
    /// what had to wait for them.
    pub(super) async fn publish(&mut self) -> Result<(), PgError> {
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
}
