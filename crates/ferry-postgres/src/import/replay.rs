//! DDL replay: the archive's definitions, checked to be data (one statement, of its
//! entry's kind, naming its entry's object) and run before the rows (pre-data) and after
//! them (post-data), one statement at a time through the extended protocol.

use super::*;

/// Runs one statement behind a savepoint: `Ok(Err(reason))` when the server refused it.
///
/// Every savepoint here is released after `ROLLBACK TO` as well: `ROLLBACK TO` leaves the
/// savepoint's subtransaction open, and a COPY FREEZE issued later inside it would be
/// refused for every table created before it.
pub(super) async fn try_statement(
    client: &Client,
    sql: &str,
) -> Result<Result<(), String>, PgError> {
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
pub(super) fn archive_sequence(
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
pub(super) async fn foreign_schemas(
    client: &Client,
    ours: &[String],
) -> Result<Vec<String>, PgError> {
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
pub(super) fn phase(o: &ferry_archive::SchemaObject) -> &str {
    match o.kind.as_str() {
        "schema" | "extension" | "collation" | "type" | "function" | "procedure" | "aggregate"
        | "sequence" | "view" | "materialized_view" => PRE,
        _ => POST,
    }
}

pub(super) fn first_line(sql: &str) -> String {
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
pub(super) async fn run_with_retries(
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

impl Loader<'_> {
    /// An archive is data: each definition must be one statement of its entry's kind,
    /// naming its entry's object (in the schema it is imported into), before anything runs.
    pub(super) fn check_definitions(&self, m: &Manifest) -> Result<(), PgError> {
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
        // `found` is what the object names or lands in: a schema outside the archive's, or
        // a relation the archive does not create.
        let outside = |what: String, found: String| {
            PgError::Refused(ferry_sql::SqlError::Unexpected {
                what,
                expected: format!(
                    "an object in the archive's schemas ({}) that the archive creates",
                    schemas.join(", ")
                ),
                found,
            })
        };
        for t in &m.tables {
            let schema = self.schema_of(t);
            if !schemas.contains(&schema) {
                return Err(outside(
                    format!("table {}", t.name),
                    format!("schema {schema}"),
                ));
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
                        format!("table {}.{n}", s.unwrap_or_default()),
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
                return Err(outside(
                    format!("{} {}", o.kind, o.name),
                    format!("schema {s}"),
                ));
            }
            // Only a schema and a comment may name no schema; anything else would land
            // wherever the session's search path points.
            if home.is_none() && o.kind != "comment" {
                return Err(outside(
                    format!("{} {}", o.kind, o.name),
                    "no schema".into(),
                ));
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
                    "a table the archive does not create".into(),
                ));
            }
            // A sequence value or owner is set only on the archive's own sequences.
            if matches!(o.kind.as_str(), "sequence_value" | "sequence_owned_by")
                && !archive_sequence(m, schema.as_deref(), &o.name, &remapped)
            {
                return Err(outside(
                    format!("{} {}", o.kind, o.name),
                    "a sequence the archive does not create".into(),
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
                        format!("table {}.{n}", s.unwrap_or_default()),
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
                    "an object the archive does not create".into(),
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
    pub(super) fn no_archive_code_at_import(
        &self,
        m: &Manifest,
        schemas: &[String],
    ) -> Result<(), PgError> {
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
    pub(super) fn sql(&self, sql: &str) -> String {
        match self.mode.remap() {
            // Text the tokenizer cannot read stays as it is; the definition check then
            // refuses it, since it does not name the remapped schema.
            Some((from, to)) => ferry_sql::rewrite::remap_schema(sql, from, to, "definition")
                .unwrap_or_else(|_| sql.to_owned()),
            None => sql.to_owned(),
        }
    }

    pub(super) async fn pre_data(&mut self, m: &Manifest) -> Result<(), PgError> {
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
                // Names come from the source's catalog: no two builds can collide.
                self.add_build(&t.id, (&ts, &tn), i, what, def, true);
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
    pub(super) fn object_schema(&self, o: &ferry_archive::SchemaObject) -> String {
        let schema = o.schema.clone().unwrap_or_else(|| "public".into());
        match self.mode.remap() {
            Some((from, to)) if *from == schema => to.clone(),
            _ => schema,
        }
    }

    /// With --clean: archived objects other than tables that already exist are dropped too.
    pub(super) async fn clean_objects(&self, m: &Manifest) -> Result<(), PgError> {
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

    pub(super) async fn post_data(&mut self, m: &Manifest) -> Result<(), PgError> {
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
                    // Built on its table's staging copy: it exists, so it is reported too.
                    if let Some(note) = &step.note {
                        self.notes.push(note.clone());
                    }
                    continue;
                }
                // A trigger's function first: refused, it is the trigger's one report.
                if let Some((prepare, _)) = &step.prepare {
                    self.statements += 1;
                    if let Err(reason) = try_statement(self.client, prepare).await? {
                        self.skipped
                            .push(format!("{}: its function: {reason}", step.what));
                        continue;
                    }
                }
                self.statements += 1;
                let tried = try_statement(self.client, &step.sql).await?;
                if let (Ok(()), Some(note)) = (&tried, &step.note) {
                    self.notes.push(note.clone());
                }
                if let (Err(_), Some((_, undo))) = (&tried, &step.prepare) {
                    // The refused trigger's function goes too; should that fail, it stays
                    // and is reported with the trigger.
                    if let Err(why) = try_statement(self.client, undo).await? {
                        self.skipped
                            .push(format!("{}: its function stays ({why})", step.what));
                    }
                }
                if let Err(reason) = tried {
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
