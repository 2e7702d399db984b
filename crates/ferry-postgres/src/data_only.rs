//! `--data-only`: load an archive's rows into tables the application's own migrations
//! created. Nothing in the schema changes; tables and columns are matched by name (ignoring
//! case when that is unambiguous), each value is converted to the existing column's type,
//! and every difference between the two sides is reported.
//!
//! Rows are first copied into temporary staging tables, in whatever order the archive
//! delivers them, then moved into the real tables in foreign-key order (parents first), so
//! that no constraint has to be disabled. Identities and sequences are then advanced past
//! the loaded values.

use std::collections::{HashMap, HashSet};

use ferry_archive::facts::{Facts, SqliteTableFacts};

use ferry_archive::{Manifest, Part, Table};
use tokio_postgres::Client;

use crate::catalog;
use crate::copy_in::{FieldEnc, copy_part};
use crate::error::{Ctx, PgError, RowExt};
use crate::from_sqlite;
use crate::types;
use crate::{quote_ident, quote_qualified};

pub(crate) struct DoTable {
    target: String,
    staging: String,
    /// (archive data field, quoted target column, encoding)
    fields: Vec<(usize, String, FieldEnc)>,
    /// What the move from staging selects for each field: the column itself, or, for a value
    /// that travels as its text literal (arrays, tsvector, ranges, a PostgreSQL archive's
    /// engine_text), the staged text cast to the target's type, as a full import does.
    selects: Vec<String>,
    /// Target column → a value its sequence must pass even if no row holds it: SQLite's
    /// `sqlite_sequence` for an AUTOINCREMENT key, which promises never to reuse an id.
    floors: HashMap<String, i64>,
}

pub(crate) struct DataOnly {
    tables: HashMap<String, DoTable>,
    /// Archive table ids, parents before children.
    order: Vec<String>,
    pub notes: Vec<String>,
    pub skipped: Vec<String>,
}

impl DataOnly {
    /// Whether the archive table with this id is loaded (not skipped).
    pub(crate) fn loads(&self, id: &str) -> bool {
        self.tables.contains_key(id)
    }
}

/// Picks the one name in `candidates` equal to `name`, or equal ignoring case when only one is.
fn match_name<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    if let Some(exact) = candidates.clone().find(|c| *c == name) {
        return Some(exact);
    }
    let mut folded = candidates.filter(|c| c.eq_ignore_ascii_case(name));
    match (folded.next(), folded.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// How [`plan`] treats the target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanMode {
    /// An archive table without a target table is skipped and reported, instead of
    /// refusing the import (`--skip-missing-tables`).
    pub skip_missing: bool,
    /// Only describe (`--dry-run`, in a read-only transaction): create no staging tables.
    pub describe_only: bool,
}

pub(crate) async fn plan(
    client: &Client,
    m: &Manifest,
    schema: &str,
    mode: PlanMode,
) -> Result<DataOnly, PgError> {
    let rows = client
        .query(
            "SELECT c.oid, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
            &[&schema],
        )
        .await
        .ctx(|| format!("reading the tables of schema {schema}"))?;
    let existing: Vec<(u32, String)> = rows
        .iter()
        .map(|r| Ok((r.at(0)?, r.at(1)?)))
        .collect::<Result<_, PgError>>()?;
    let types = catalog::type_map(client).await?;
    let oids: Vec<u32> = existing.iter().map(|(o, _)| *o).collect();
    let mut columns = catalog::columns(client, &oids).await?;
    let from_sqlite = m.source.engine == "sqlite";

    let mut out = DataOnly {
        tables: HashMap::new(),
        order: Vec::new(),
        notes: Vec::new(),
        skipped: Vec::new(),
    };
    let mut errors = Vec::new();
    let mut matched: Vec<(String, u32)> = Vec::new();
    for (i, t) in m.tables.iter().enumerate() {
        if t.kind == "partitioned" {
            continue;
        }
        let Some(name) = match_name(&t.name, existing.iter().map(|(_, n)| n.as_str())) else {
            // The prelude does not know the row count yet; the manifest does.
            let rows = t
                .rows
                .map_or("its rows".to_owned(), |n| format!("its {n} rows"));
            if mode.skip_missing {
                out.skipped.push(format!(
                    "table {}: no table of that name in schema {schema}; {rows} are not loaded",
                    t.name
                ));
            } else {
                errors.push(format!(
                    "table {}: no table of that name in schema {schema} (run the application's migrations first, or pass --skip-missing-tables to load the other tables)",
                    t.name
                ));
            }
            continue;
        };
        let oid = existing
            .iter()
            .find(|(_, n)| n == name)
            .map(|(o, _)| *o)
            .expect("matched");
        let target = quote_qualified(schema, name);
        if name != t.name {
            out.notes
                .push(format!("table {} loaded into {schema}.{name}", t.name));
        }
        if ferry_archive::selection::is_migration_bookkeeping(name) {
            let has_rows: bool = client
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {target})"), &[])
                .await
                .ctx(|| format!("table {target}: looking for rows"))?
                .at(0)?;
            if has_rows {
                out.skipped.push(format!(
                    "table {name}: migration bookkeeping that already holds rows; left alone"
                ));
                continue;
            }
        }
        let target_cols = columns.remove(&oid).unwrap_or_default();
        let data = t.data_fields();
        let mut fields = Vec::new();
        let mut staged = Vec::new();
        let mut selects = Vec::new();
        let mut used = HashSet::new();
        for (fi, (fname, _)) in data.iter().enumerate() {
            let Some(cname) = match_name(fname, target_cols.iter().map(|c| c.name.as_str())) else {
                if t.rowid.as_deref() != Some(fname.as_str()) {
                    out.skipped.push(format!(
                        "column {}.{fname}: not in the target table; its values are not loaded",
                        t.name
                    ));
                }
                continue;
            };
            let c = target_cols
                .iter()
                .find(|c| c.name == cname)
                .expect("matched");
            if !c.generated.is_empty() {
                out.skipped.push(format!(
                    "column {}.{fname}: generated in the target; its values are not loaded",
                    t.name
                ));
                continue;
            }
            used.insert(cname.to_owned());
            let ti = catalog::type_info(&types, c.type_oid, c.typmod, c.formatted.clone());
            let enc = if from_sqlite {
                let archived = t.columns.iter().find(|ac| &ac.name == fname);
                match archived.and_then(|ac| from_sqlite::conv_for_existing(&ti.base_name, ac)) {
                    Some(conv) => FieldEnc::Sqlite(conv),
                    None => {
                        errors.push(format!(
                            "column {}.{fname}: no conversion into the target's {}",
                            t.name, c.formatted
                        ));
                        continue;
                    }
                }
            } else if matches!(data[fi].1, ferry_archive::LogicalType::EngineText { .. }) {
                FieldEnc::Native(types::Wire::AsText)
            } else {
                FieldEnc::Native(types::wire(&ti))
            };
            if cname != fname {
                out.notes
                    .push(format!("{}.{fname} loaded into {name}.{cname}", t.name));
            }
            let q = quote_ident(cname);
            // A text literal cannot go into the target's type through binary COPY: it is
            // staged as text and cast on the way in.
            let (stage, select) = match enc {
                FieldEnc::Native(types::Wire::AsText) => {
                    (format!("{q}::text AS {q}"), format!("{q}::{}", c.formatted))
                }
                _ => (q.clone(), q.clone()),
            };
            staged.push(stage);
            selects.push(select);
            fields.push((fi, q, enc));
        }
        for c in &target_cols {
            if used.contains(&c.name) || !c.generated.is_empty() {
                continue;
            }
            if c.not_null && c.default.is_none() && c.identity.is_empty() {
                errors.push(format!(
                    "column {name}.{}: NOT NULL without a default in the target, and the archive has no values for it",
                    c.name
                ));
            } else {
                out.notes.push(format!(
                    "column {name}.{}: only in the target; it takes its default",
                    c.name
                ));
            }
        }
        let staging = format!("pg_temp.{}", quote_ident(&format!("ferry_data_{i}")));
        if !mode.describe_only {
            client
                .batch_execute(&format!(
                    "CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {} FROM {target} WITH NO DATA",
                    staged.join(", ")
                ))
                .await
                .ctx(|| format!("table {target}: creating its staging table"))?;
        }
        matched.push((t.id.clone(), oid));
        let mut floors = HashMap::new();
        let facts = if from_sqlite {
            SqliteTableFacts::read(&t.properties).map_err(|e| PgError::Check {
                context: format!("table {}", t.name),
                detail: format!("its properties are unreadable: {e}"),
            })?
        } else {
            SqliteTableFacts::default()
        };
        if let (Some(alias), Some(seq)) = (facts.rowid_alias.as_deref(), facts.sqlite_sequence)
            && let Some(cname) = match_name(alias, target_cols.iter().map(|c| c.name.as_str()))
        {
            floors.insert(cname.to_owned(), seq);
        }
        out.tables.insert(
            t.id.clone(),
            DoTable {
                target,
                staging,
                fields,
                selects,
                floors,
            },
        );
    }
    if !errors.is_empty() {
        return Err(PgError::Check {
            context: "--data-only".into(),
            detail: format!("nothing was written: {}", errors.join("; ")),
        });
    }
    out.order = fk_order(client, &matched).await?;
    Ok(out)
}

/// Table ids ordered so that referenced tables come first (cycles keep archive order).
async fn fk_order(client: &Client, matched: &[(String, u32)]) -> Result<Vec<String>, PgError> {
    let oids: Vec<u32> = matched.iter().map(|(_, o)| *o).collect();
    let edges: Vec<(u32, u32)> = client
        .query(
            "SELECT conrelid, confrelid FROM pg_catalog.pg_constraint
             WHERE contype = 'f' AND conrelid = ANY($1) AND confrelid = ANY($1) AND conrelid <> confrelid",
            &[&oids],
        )
        .await
        .ctx(|| "reading foreign keys".into())?
        .iter()
        .map(|r| Ok((r.at(0)?, r.at(1)?)))
        .collect::<Result<_, PgError>>()?;
    let mut done: Vec<u32> = Vec::new();
    let mut left: Vec<u32> = oids.clone();
    while !left.is_empty() {
        let ready: Vec<u32> = left
            .iter()
            .copied()
            .filter(|o| {
                edges
                    .iter()
                    .all(|(c, p)| c != o || done.contains(p) || !left.contains(p))
            })
            .collect();
        let next = if ready.is_empty() {
            vec![left[0]]
        } else {
            ready
        };
        left.retain(|o| !next.contains(o));
        done.extend(next);
    }
    Ok(done
        .iter()
        .filter_map(|o| {
            matched
                .iter()
                .find(|(_, m)| m == o)
                .map(|(id, _)| id.clone())
        })
        .collect())
}

pub(crate) async fn load_part(
    client: &Client,
    plan: &DataOnly,
    table: &Table,
    part: &Part<'_>,
    batch_rows: usize,
) -> Result<u64, PgError> {
    let Some(t) = plan.tables.get(&table.id) else {
        return Ok(0); // reported as skipped in the plan
    };
    let cols: Vec<&str> = t.fields.iter().map(|(_, c, _)| c.as_str()).collect();
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        t.staging,
        cols.join(", ")
    );
    let fields: Vec<(usize, FieldEnc)> = t.fields.iter().map(|(i, _, e)| (*i, *e)).collect();
    copy_part(client, &sql, &t.target, table, &fields, part, batch_rows).await
}

/// Moves the staged rows into the real tables, parents first, then advances every identity
/// and sequence-backed column past the largest value now in its table.
pub(crate) async fn finish(client: &Client, plan: &DataOnly) -> Result<Vec<String>, PgError> {
    let mut notes = Vec::new();
    for id in &plan.order {
        let t = &plan.tables[id];
        let cols: Vec<&str> = t.fields.iter().map(|(_, c, _)| c.as_str()).collect();
        let cols = cols.join(", ");
        client
            .batch_execute(&format!(
                "INSERT INTO {} ({cols}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}",
                t.target,
                t.selects.join(", "),
                t.staging
            ))
            .await
            .ctx(|| format!("table {}: inserting the loaded rows", t.target))?;
        // Identity and owned (serial) sequences, and any sequence a column's default draws
        // from: a schema written by hand or by a migration tool often has
        // `DEFAULT nextval('t_id_seq')` without `OWNED BY` (pagila does), and the
        // application's next insert would collide with the rows just loaded.
        let seqs = client
            .query(
                "SELECT a.attname::text, pg_catalog.pg_get_serial_sequence($1::text, a.attname)
                 FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
                   AND pg_catalog.pg_get_serial_sequence($1::text, a.attname) IS NOT NULL
                 UNION
                 SELECT a.attname::text,
                        pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(s.relname)
                 FROM pg_catalog.pg_attrdef ad
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
                 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass
                   AND d.objid = ad.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
                 JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
                 JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
                 WHERE ad.adrelid = $1::text::regclass AND NOT a.attisdropped",
                &[&t.target],
            )
            .await
            .ctx(|| format!("table {}: finding its sequences", t.target))?;
        for r in seqs {
            let (col, seq): (String, String) = (r.at(0)?, r.at(1)?);
            let floor: Option<i64> = t.floors.get(&col).copied();
            let advanced: Option<i64> = client
                .query_opt(
                    &format!(
                        "SELECT pg_catalog.setval($1::text::regclass, m) FROM (SELECT greatest(max({})::bigint, $2::bigint) AS m FROM {}) x
                         WHERE m IS NOT NULL AND m > coalesce(pg_catalog.pg_sequence_last_value($1::text::regclass), 0)",
                        quote_ident(&col),
                        t.target
                    ),
                    &[&seq, &floor],
                )
                .await
                .ctx(|| format!("sequence {seq}: advancing it"))?
                .map(|r| r.at(0))
                .transpose()?;
            if let Some(v) = advanced {
                notes.push(format!("sequence {seq} advanced to {v}"));
            }
        }
    }
    Ok(notes)
}
