//! Table selection, row filters and foreign-key-consistent subsets on a PostgreSQL source.
//!
//! Every query runs on the exporter's connection, inside its `REPEATABLE READ, READ ONLY`
//! snapshot, so the subset, the counts and the data agree. A row's identity is
//! `(tableoid, ctid)`: stable inside the snapshot (the exporter holds ACCESS SHARE locks, so
//! no VACUUM FULL or CLUSTER moves rows under it), valid for partitioned tables (whose rows
//! live in the partitions), and it needs no temporary table, which a read-only transaction
//! or a hot standby could not create. Key values travel as text and are cast back to the
//! column's type by the server, so PostgreSQL's own equality decides what matches, and no
//! value ever becomes SQL text. The data pass then reads each table
//! `WHERE ctid = ANY('{...}'::tid[])`: a TID scan, and a list of numbers ferry formatted.

use std::collections::{BTreeMap, HashMap, HashSet};

use ferry_archive::selection::{self, Fetched, PlanRow, Request, Resolved, Seed, Walker};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::catalog::{Catalog, TableInfo};
use crate::error::{Ctx, PgError, RowExt};
use crate::{quote_ident, quote_qualified};

/// `(tableoid, block, offset)`.
pub(crate) type RowId = (u32, u32, u16);

fn from_clause(t: &TableInfo) -> String {
    let q = quote_qualified(t.table.schema.as_deref().unwrap_or(""), &t.table.name);
    // A partitioned table's rows are in its partitions: ONLY would see none.
    if t.table.kind == "partitioned" {
        q
    } else {
        format!("ONLY {q}")
    }
}

fn parse_ctid(s: &str) -> Option<(u32, u16)> {
    let (b, o) = s.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    Some((b.parse().ok()?, o.parse().ok()?))
}

/// The type a key column's text is cast back to: the column's own type without its
/// modifier (a cast to `varchar(5)` would cut values, one to `numeric(4,2)` could fail), as
/// the server names it. Two types mean a length of 1 without their modifier, `character`
/// and `bit`: a `char(3)` key cast to `character` became its first letter, and found no
/// child rows. Their unlimited forms, `bpchar` and `varbit`, compare with them as they do
/// with themselves.
async fn column_type(client: &Client, t: &TableInfo, column: &str) -> Result<String, PgError> {
    let row = client
        .query_opt(
            "SELECT CASE a.atttypid
                      WHEN 'pg_catalog.bpchar'::pg_catalog.regtype THEN 'pg_catalog.bpchar'
                      WHEN 'pg_catalog._bpchar'::pg_catalog.regtype THEN 'pg_catalog.bpchar[]'
                      WHEN 'pg_catalog.bit'::pg_catalog.regtype THEN 'pg_catalog.varbit'
                      WHEN 'pg_catalog._bit'::pg_catalog.regtype THEN 'pg_catalog.varbit[]'
                      ELSE pg_catalog.format_type(a.atttypid, NULL) END
             FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped",
            &[&t.oid, &column],
        )
        .await
        .ctx(|| {
            format!(
                "table {}: reading the type of {column}",
                t.table.display_name()
            )
        })?;
    match row {
        Some(r) => r.at(0),
        None => Err(PgError::Unsupported(format!(
            "table {}: no column {column} to follow a foreign key through",
            t.table.display_name()
        ))),
    }
}

async fn fetch(
    client: &Client,
    t: &TableInfo,
    filter: Option<&str>,
    condition: &str,
    params: &[&(dyn ToSql + Sync)],
    columns: &[String],
) -> Result<Fetched<RowId, String>, PgError> {
    ferry_archive::interrupt::check()?;
    let mut select = vec!["tableoid::oid".to_owned(), "ctid::text".to_owned()];
    select.extend(columns.iter().map(|c| format!("{}::text", quote_ident(c))));
    let filter = filter.map(|f| format!(" AND ({f})")).unwrap_or_default();
    let sql = format!(
        "SELECT {} FROM {} WHERE ({condition}){filter}",
        select.join(", "),
        from_clause(t)
    );
    let name = t.table.display_name();
    let rows = client
        .query(&sql, params)
        .await
        .ctx(|| format!("table {name}: selecting the subset"))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let oid: u32 = r.at(0)?;
        let ctid: String = r.at(1)?;
        let (block, offset) = parse_ctid(&ctid).ok_or_else(|| {
            PgError::Unsupported(format!("table {name}: unexpected ctid {ctid:?}"))
        })?;
        let mut values = Vec::with_capacity(columns.len());
        for j in 0..columns.len() {
            values.push(r.at::<Option<String>>(2 + j)?);
        }
        out.push(((oid, block, offset), values));
    }
    Ok(out)
}

/// Keys per lookup: one statement, a few arrays of text.
const KEYS_PER_QUERY: usize = 10_000;

async fn lookup(
    client: &Client,
    t: &TableInfo,
    filter: Option<&str>,
    match_columns: &[String],
    keys: &[Vec<String>],
    columns: &[String],
) -> Result<Fetched<RowId, String>, PgError> {
    let lhs: Vec<String> = match_columns.iter().map(|c| quote_ident(c)).collect();
    let mut casts = Vec::new();
    let mut arrays = Vec::new();
    for (j, c) in match_columns.iter().enumerate() {
        casts.push(format!("u.c{j}::{}", column_type(client, t, c).await?));
        arrays.push(format!("${}::text[]", j + 1));
    }
    let aliases: Vec<String> = (0..match_columns.len()).map(|j| format!("c{j}")).collect();
    let condition = format!(
        "({}) IN (SELECT {} FROM unnest({}) AS u({}))",
        lhs.join(", "),
        casts.join(", "),
        arrays.join(", "),
        aliases.join(", ")
    );
    let mut out = Vec::new();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let columns_of_keys: Vec<Vec<&str>> = (0..match_columns.len())
            .map(|j| chunk.iter().map(|k| k[j].as_str()).collect())
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> = columns_of_keys
            .iter()
            .map(|v| v as &(dyn ToSql + Sync))
            .collect();
        out.extend(fetch(client, t, filter, &condition, &params, columns).await?);
    }
    Ok(out)
}

/// What applying a selection decided, for the export to carry out.
pub(crate) struct Applied {
    pub keep: Vec<bool>,
    pub plan: Vec<PlanRow>,
    pub notes: Vec<String>,
    /// The rows of each table a subset keeps, by the table's oid.
    pub rows_by_oid: Option<BTreeMap<u32, Vec<(u32, u16)>>>,
}

impl Applied {
    /// Turns the decisions into each table's row filter and whether its rows are read.
    /// A partition takes its subset from whichever ancestor the walk went through.
    pub(crate) async fn filters(
        &mut self,
        client: &Client,
        tables: &mut [TableInfo],
        resolved: &Resolved,
    ) -> Result<(), PgError> {
        let parents: BTreeMap<u32, u32> = parents(client).await?.into_iter().collect();
        let subset_oids: HashSet<u32> = self
            .plan
            .iter()
            .zip(tables.iter())
            .filter(|(p, _)| p.action == selection::Action::Subset)
            .map(|(_, t)| t.oid)
            .collect();
        for (i, t) in tables.iter_mut().enumerate() {
            let choice = &resolved.choices[i];
            if !choice.data {
                t.has_rows = false;
            }
            t.filter = choice.filter.clone();
            let Some(by_oid) = &self.rows_by_oid else {
                continue;
            };
            let mut via = None;
            let mut at = t.oid;
            for _ in 0..32 {
                if subset_oids.contains(&at) {
                    via = Some(at);
                    break;
                }
                match parents.get(&at) {
                    Some(&p) => at = p,
                    None => break,
                }
            }
            let Some(via) = via else { continue };
            let rows = by_oid.get(&t.oid).map(Vec::as_slice).unwrap_or(&[]);
            if t.has_rows {
                t.filter = Some(if rows.is_empty() {
                    "false".to_owned()
                } else {
                    ctid_filter(rows)
                });
            }
            let plan = &mut self.plan[i];
            if via != t.oid && plan.action != selection::Action::Excluded {
                plan.action = selection::Action::Subset;
                plan.reasons = vec![format!("a partition of a table in the subset")];
            }
            if plan.action == selection::Action::Subset {
                plan.rows = Some(rows.len() as u64);
            }
        }
        Ok(())
    }
}

/// Every (child, parent) pair of the inheritance and partition trees, by oid.
pub(crate) async fn parents(client: &Client) -> Result<Vec<(u32, u32)>, PgError> {
    client
        .query(
            "SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits",
            &[],
        )
        .await
        .ctx(|| "reading partitions".into())?
        .iter()
        .map(|r| Ok((r.at::<u32>(0)?, r.at::<u32>(1)?)))
        .collect()
}

/// Leaves out, with a note each, what cannot go into the archive without the tables the
/// selection keeps out (`keep`): identity and owned sequences and their values; routines
/// that need such a table, the aggregates built on them, their comments, and the views that
/// call them. Also says when a partitioned table is kept without its partitions, whose rows
/// then stay out. What a removed table's own objects and definitions name is left to
/// [`selection::prune_records`], which the caller runs next.
pub(crate) async fn leave_out_dependents(
    client: &Client,
    cat: &mut Catalog,
    keep: &[bool],
    notes: &mut Vec<String>,
) -> Result<(), PgError> {
    // `-t` selects the tables it names, as pg_dump's does, so a partitioned table named
    // without its partitions comes with none of its rows: said, not left to be found.
    let left_out: HashMap<u32, String> = cat
        .tables
        .iter()
        .zip(keep)
        .filter(|(_, k)| !**k)
        .map(|(t, _)| (t.oid, t.table.display_name()))
        .collect();
    let mut left_by_parent: HashMap<u32, Vec<&str>> = HashMap::new();
    for (child, parent) in parents(client).await? {
        if let Some(name) = left_out.get(&child) {
            left_by_parent.entry(parent).or_default().push(name);
        }
    }
    for (t, _) in cat
        .tables
        .iter()
        .zip(keep)
        .filter(|(t, k)| **k && t.table.kind == "partitioned")
    {
        let Some(left) = left_by_parent.get_mut(&t.oid) else {
            continue;
        };
        left.sort_unstable();
        notes.push(format!(
            "table {} is partitioned and holds no rows itself: {} of its partitions ({}{}) are not selected, and their rows are not exported",
            t.table.display_name(),
            left.len(),
            left[0],
            if left.len() > 1 { ", ..." } else { "" }
        ));
    }
    // Sequences owned by a table that stays out go with it, as pg_dump -T does.
    let gone: Vec<(Option<String>, String)> = cat
        .tables
        .iter()
        .zip(keep)
        .filter(|(_, k)| !**k)
        .map(|(t, _)| (t.table.schema.clone(), t.table.name.clone()))
        .collect();
    // An identity column's sequence has no OWNED BY object (its column creates it), so
    // the catalog is asked which sequences the left-out tables' identity columns own.
    let gone_oids: Vec<u32> = cat
        .tables
        .iter()
        .zip(keep)
        .filter(|(_, k)| !**k)
        .map(|(t, _)| t.oid)
        .collect();
    let mut owned: Vec<(Option<String>, String)> = Vec::new();
    for r in client
        .query(
            "SELECT sn.nspname, s.relname FROM pg_catalog.pg_depend d
             JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
             JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
             WHERE d.classid = 'pg_catalog.pg_class'::regclass
               AND d.refclassid = 'pg_catalog.pg_class'::regclass
               AND d.deptype = 'i' AND d.refobjid = ANY($1)",
            &[&gone_oids],
        )
        .await
        .ctx(|| "reading the identity sequences of the tables left out".into())?
    {
        owned.push((Some(r.at(0)?), r.at(1)?));
    }
    owned.extend(
        cat.objects
            .iter()
            .filter(|o| o.kind == "sequence_owned_by")
            .filter(|o| {
                let named =
                    ferry_sql::check::relations(o.definition.as_deref().unwrap_or(""), false);
                named.iter().any(|(s, n)| {
                    gone.iter()
                        .any(|(gs, gn)| gn == n && (s.is_none() || s == gs))
                })
            })
            .map(|o| (o.schema.clone(), o.name.clone())),
    );
    // Its value, ownership, comment and grants share its name (a relation name, unique in
    // its schema); a function may share it too, and stays. An identity sequence has no
    // object of its own (its column creates it): its value is what says it left.
    let declared: Vec<(Option<String>, String)> = cat
        .objects
        .iter()
        .filter(|o| o.kind == "sequence")
        .map(|o| (o.schema.clone(), o.name.clone()))
        .collect();
    cat.objects.retain(|o| {
        let key = (o.schema.clone(), o.name.clone());
        let goes = !matches!(o.kind.as_str(), "function" | "procedure" | "aggregate")
            && owned.contains(&key);
        if goes
            && (o.kind == "sequence" || (o.kind == "sequence_value" && !declared.contains(&key)))
        {
            notes.push(format!(
                "sequence {} left out: it belongs to a table that is not exported",
                o.name
            ));
        }
        !goes
    });
    // A routine cannot be created without a left-out table when its arguments or result
    // use the table's row type (or an array of it), when its SQL-standard body (BEGIN
    // ATOMIC, parsed at creation) names the table, or when it is built on such a routine
    // (an aggregate on its transition function). Nor can a view that calls one, or a view
    // on such a view. Other bodies do not count: the import creates functions without
    // checking them, as pg_restore does.
    let mut routines: Vec<(String, String, String)> = Vec::new();
    let mut views: Vec<(Option<String>, String)> = Vec::new();
    for r in client
        .query(
            "WITH RECURSIVE rowtypes AS (
                 SELECT t.oid FROM pg_catalog.pg_type t WHERE t.typrelid = ANY($1)
                 UNION ALL
                 SELECT a.oid FROM pg_catalog.pg_type a JOIN rowtypes r ON a.typelem = r.oid
                   AND a.typcategory = 'A'
             ), routines AS (
                 SELECT d.objid AS oid FROM pg_catalog.pg_depend d
                 WHERE d.classid = 'pg_catalog.pg_proc'::regclass
                   AND ((d.refclassid = 'pg_catalog.pg_type'::regclass
                         AND d.refobjid IN (SELECT oid FROM rowtypes))
                     OR (d.refclassid = 'pg_catalog.pg_class'::regclass
                         AND d.refobjid = ANY($1)))
                 UNION
                 SELECT d.objid FROM pg_catalog.pg_depend d JOIN routines r
                   ON d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid = r.oid
                 WHERE d.classid = 'pg_catalog.pg_proc'::regclass
             ), views AS (
                 SELECT w.ev_class AS oid FROM pg_catalog.pg_depend d
                 JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
                 WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
                   AND d.refclassid = 'pg_catalog.pg_proc'::regclass
                   AND d.refobjid IN (SELECT oid FROM routines)
                 UNION
                 SELECT w.ev_class FROM pg_catalog.pg_depend d
                 JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
                 JOIN views v ON d.refclassid = 'pg_catalog.pg_class'::regclass
                   AND d.refobjid = v.oid AND w.ev_class <> v.oid
                 WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
             )
             SELECT 'routine', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)
             FROM routines r JOIN pg_catalog.pg_proc p ON p.oid = r.oid
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
             UNION ALL
             SELECT 'view', n.nspname, c.relname, ''
             FROM views v JOIN pg_catalog.pg_class c ON c.oid = v.oid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
            &[&gone_oids],
        )
        .await
        .ctx(|| "reading the routines and views that need the left-out tables".into())?
    {
        let (kind, schema, name): (String, String, String) = (r.at(0)?, r.at(1)?, r.at(2)?);
        if kind == "view" {
            views.push((Some(schema), name));
        } else {
            routines.push((schema, name, r.at(3)?));
        }
    }
    let routine = |o: &ferry_archive::SchemaObject| {
        let args = o.properties.get("identity_arguments")?.as_str()?;
        routines
            .iter()
            .find(|(s, n, a)| Some(s) == o.schema.as_ref() && *n == o.name && a == args)
    };
    let mut gone_routines: Vec<String> = Vec::new();
    cat.objects.retain(|o| {
        if !matches!(o.kind.as_str(), "function" | "procedure" | "aggregate") {
            return true;
        }
        let Some((s, n, a)) = routine(o) else {
            return true;
        };
        notes.push(format!(
            "{} {n}({a}) left out: it needs a table that is not exported (in its arguments, its result, its SQL body or a routine it is built on)",
            o.kind
        ));
        gone_routines.push(crate::catalog::routine_target(&o.kind, s, n, a));
        false
    });
    // Their comments, whose definitions name them as the catalog wrote them.
    cat.objects.retain(|o| {
        o.kind != "comment"
            || !gone_routines.iter().any(|r| {
                o.definition
                    .as_deref()
                    .is_some_and(|d| d.starts_with(&format!("COMMENT ON {r} IS ")))
            })
    });
    // The views go with everything that shares their name (comments, grants) or belongs
    // to them (triggers, rules).
    cat.objects.retain(|o| {
        // A function may share a view's name; a type cannot (the view's row type has it).
        let named = !matches!(o.kind.as_str(), "function" | "procedure" | "aggregate")
            && views.contains(&(o.schema.clone(), o.name.clone()));
        let owned = o
            .table
            .as_ref()
            .is_some_and(|t| views.contains(&(o.schema.clone(), t.clone())));
        if named && matches!(o.kind.as_str(), "view" | "materialized_view") {
            notes.push(format!(
                "{} {} left out: it calls a function left out above, itself or through a view",
                o.kind.replace('_', " "),
                o.name
            ));
        }
        !(named || owned)
    });
    Ok(())
}

/// Walks the subset, if there is one. Sets nothing on the tables: the caller turns
/// [`Applied`] into filters, then checks for dangling rows ([`check_dangling`]).
pub(crate) async fn apply(
    client: &Client,
    tables: &[TableInfo],
    resolved: &Resolved,
) -> Result<Applied, PgError> {
    let mut notes = resolved.notes.clone();
    let table_list: Vec<ferry_archive::Table> = tables.iter().map(|t| t.table.clone()).collect();
    let (edges, edge_notes) = selection::edges(&table_list);
    let filters: Vec<Option<&str>> = resolved
        .choices
        .iter()
        .map(|c| c.filter.as_deref())
        .collect();
    let mut subset = None;
    let mut rows_by_oid = None;
    if !resolved.seeds.is_empty() {
        notes.extend(edge_notes);
        let mut w: Walker<RowId, String> = Walker::new(&table_list, &edges, &resolved.seeds);
        while let Some(request) = w.next_request() {
            let fetched = match request {
                Request::Seed {
                    table,
                    seed: Seed::Condition(c),
                    columns,
                } => fetch(client, &tables[table], filters[table], &c, &[], &columns).await?,
                Request::Seed {
                    table,
                    seed: Seed::Ids(ids),
                    columns,
                } => {
                    let t = &tables[table];
                    let Some(pk) = t
                        .table
                        .primary_key
                        .as_ref()
                        .filter(|k| k.columns.len() == 1)
                    else {
                        return Err(PgError::Unsupported(format!(
                            "--subset-ids {}: it needs a one-column primary key; use --subset with a condition",
                            t.table.display_name()
                        )));
                    };
                    let keys: Vec<Vec<String>> = ids.into_iter().map(|i| vec![i]).collect();
                    lookup(client, t, filters[table], &pk.columns, &keys, &columns).await?
                }
                Request::Lookup {
                    table,
                    match_columns,
                    keys,
                    columns,
                } => {
                    lookup(
                        client,
                        &tables[table],
                        filters[table],
                        &match_columns,
                        &keys,
                        &columns,
                    )
                    .await?
                }
            };
            w.answer(fetched);
        }
        let s = w.finish();
        // A partitioned table's set holds its partitions' rows: group by physical table.
        let mut by_oid: BTreeMap<u32, Vec<(u32, u16)>> = BTreeMap::new();
        let mut seen = HashSet::new();
        for set in s.rows.iter().flatten() {
            for &(oid, b, o) in set {
                if seen.insert((oid, b, o)) {
                    by_oid.entry(oid).or_default().push((b, o));
                }
            }
        }
        for v in by_oid.values_mut() {
            v.sort_unstable();
        }
        rows_by_oid = Some(by_oid);
        subset = Some(s);
    }
    let names: Vec<String> = tables.iter().map(|t| t.table.display_name()).collect();
    let plan = selection::plan_rows(&names, &resolved.choices, subset.as_ref());
    Ok(Applied {
        keep: resolved.choices.iter().map(|c| c.included).collect(),
        plan,
        notes,
        rows_by_oid,
    })
}

/// Rows that a filter (a `--where`, or a subset whose walk applied one) leaves pointing at
/// rows that are not exported; run once the tables carry their final filters.
pub(crate) async fn check_dangling(
    client: &Client,
    tables: &[TableInfo],
    resolved: &Resolved,
    strict: bool,
) -> Result<Vec<String>, PgError> {
    let list: Vec<ferry_archive::Table> = tables.iter().map(|t| t.table.clone()).collect();
    let (edges, _) = selection::edges(&list);
    let effective: Vec<selection::Choice> = resolved
        .choices
        .iter()
        .zip(tables)
        .map(|(c, t)| selection::Choice {
            filter: t.filter.clone(),
            ..c.clone()
        })
        .collect();
    let mut notes = Vec::new();
    dangling(client, tables, &effective, &edges, strict, &mut notes).await?;
    Ok(notes)
}

/// The condition that reads exactly these rows of a table.
pub(crate) fn ctid_filter(rows: &[(u32, u16)]) -> String {
    let list: Vec<String> = rows.iter().map(|(b, o)| format!("\"({b},{o})\"")).collect();
    format!("ctid = ANY('{{{}}}'::tid[])", list.join(","))
}

/// Rows that a `--where` (or a table exported without rows) leaves referencing a row that is
/// not in the archive: reported per foreign key, refused under `--strict`.
async fn dangling(
    client: &Client,
    tables: &[TableInfo],
    choices: &[selection::Choice],
    edges: &[selection::Edge],
    strict: bool,
    notes: &mut Vec<String>,
) -> Result<(), PgError> {
    for e in edges.iter().filter(|e| selection::may_dangle(e, choices)) {
        let sql = selection::dangling_query(
            e,
            choices,
            (
                &from_clause(&tables[e.child]),
                &from_clause(&tables[e.parent]),
            ),
            &|s: &str| quote_ident(s),
            ("true", "false"),
        );
        let child = tables[e.child].table.display_name();
        let n: i64 = client
            .query_one(&sql, &[])
            .await
            .ctx(|| format!("table {child}: checking foreign key {}", e.name))?
            .at(0)?;
        if n == 0 {
            continue;
        }
        let line = selection::dangling_line(e, n, &child, &tables[e.parent].table.display_name());
        if strict {
            return Err(PgError::Unsupported(format!("--strict: {line}")));
        }
        notes.push(line);
    }
    Ok(())
}

/// Exact row counts in the snapshot, for the plan.
pub(crate) async fn count(
    client: &Client,
    t: &TableInfo,
    filter: Option<&str>,
) -> Result<u64, PgError> {
    if !t.has_rows {
        return Ok(0);
    }
    let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    let n: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {}{filter}", from_clause(t)),
            &[],
        )
        .await
        .ctx(|| format!("table {}: counting rows", t.table.display_name()))?
        .at(0)?;
    Ok(n as u64)
}
