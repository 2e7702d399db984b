//! `ferry verify ARCHIVE --against postgres://...`: tables, columns, row counts and the
//! content digest of every table, recomputed from the live database with the exporter's own
//! `COPY`, inside one snapshot; plus every sequence's value.

use ferry_archive::sqlite_value::SqliteColumn;
use ferry_archive::{Manifest, PartData};
use futures_util::StreamExt;
use serde_json::Value;

use crate::catalog;
use crate::conn::ConnSpec;
use crate::error::{Ctx, PgError, RowExt};
use crate::export::copy_out_sql;
use crate::from_sqlite::{self, Conv};
use crate::pgbinary::RowSplitter;
use crate::{ENGINE, quote_qualified, types};
use bytes::BytesMut;
use ferry_archive::rowset::{RowDigest, RowHash};
use ferry_archive::{Comparison, Visitor};
use std::collections::HashMap;

/// One line per difference, each naming the table or sequence. Empty means identical.
/// `schema` is where a SQLite archive was imported (default `public`).
pub fn compare(
    location: &ferry_archive::Location,
    manifest: &Manifest,
    url: &str,
    schema: Option<&str>,
) -> Result<Comparison, PgError> {
    let spec = ConnSpec::parse(url)?;
    match manifest.source.engine.as_str() {
        ENGINE => crate::runtime()?.block_on(compare_async(location, manifest, &spec)),
        "sqlite" => compare_from_sqlite(location, manifest, &spec, schema.unwrap_or("public")),
        other => Err(PgError::Unsupported(format!(
            "archives written from {other} cannot be compared with PostgreSQL"
        ))),
    }
}

/// Conversions whose output is, or can be normalised to, the bytes PostgreSQL sends back for
/// the stored value, so that the archive side is digested exactly as the database side.
/// Numerics are compared by value: the column's scale pads the stored value, so both sides
/// drop trailing fractional zeros (`trim_scale` on the server, the same on the archive's
/// text). json keeps its text as given. jsonb (PostgreSQL reorders keys and rewrites
/// numbers and escapes) and real (rounded to 24 bits) are only counted.
fn byte_exact(conv: Conv, server_version: i32) -> bool {
    match conv {
        Conv::Jsonb | Conv::Float4 => false,
        // trim_scale arrived in PostgreSQL 13.
        Conv::Numeric => server_version >= 130_000,
        _ => true,
    }
}

/// The server-side expression a compared column is read through.
fn read_as(column: &str, conv: Conv) -> String {
    match conv {
        Conv::Numeric => format!("pg_catalog.trim_scale({column})"),
        _ => column.to_owned(),
    }
}

/// The archive side of [`read_as`]: a numeric field (length word and value, as
/// `Conv::put` wrote it at `start`) re-encoded without trailing fractional zeros.
fn trim_numeric_field(row: &mut BytesMut, start: usize) -> Result<(), String> {
    let len = i32::from_be_bytes(
        row[start..start + 4]
            .try_into()
            .map_err(|_| "short field")?,
    );
    if len < 0 {
        return Ok(()); // NULL
    }
    let text = crate::pgbinary::numeric_to_text(&row[start + 4..])?;
    let trimmed = match text.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                int.to_owned()
            } else {
                format!("{int}.{frac}")
            }
        }
        None => text,
    };
    row.truncate(start);
    crate::pgbinary::numeric_from_text(&trimmed, row)
}

/// A SQLite archive against the PostgreSQL database it was imported into: row counts of every
/// table, and the digest of every column whose conversion is byte-exact, computed on the
/// archive side by applying the import's own conversions.
fn compare_from_sqlite(
    location: &ferry_archive::Location,
    m: &Manifest,
    spec: &ConnSpec,
    schema: &str,
) -> Result<Comparison, PgError> {
    let plan = from_sqlite::plan(m, schema, false, &[]);
    let server_version: i32 = crate::runtime()?.block_on(async {
        let client = spec.connect().await?;
        let v: String = client
            .query_one(
                "SELECT pg_catalog.current_setting('server_version_num')",
                &[],
            )
            .await
            .ctx(|| "reading the server version".into())?
            .at(0)?;
        Ok::<_, PgError>(v.parse().unwrap_or(0))
    })?;
    let mut notes = Vec::new();
    let mut compared: HashMap<String, Vec<(usize, String, Conv)>> = HashMap::new();
    let mut diffs = Vec::new();
    for (id, tp) in &plan.tables {
        let fields: Vec<_> = tp
            .fields
            .iter()
            .filter(|f| byte_exact(f.2, server_version))
            .cloned()
            .collect();
        let counted: Vec<&str> = tp
            .fields
            .iter()
            .filter(|f| !byte_exact(f.2, server_version))
            .map(|f| f.1.as_str())
            .collect();
        if !counted.is_empty() {
            notes.push(format!(
                "{}: columns {} are compared by row count only (PostgreSQL normalises their values)",
                tp.target,
                counted.join(", ")
            ));
        }
        compared.insert(id.clone(), fields);
    }
    // The archive side.
    struct Side<'a> {
        compared: &'a HashMap<String, Vec<(usize, String, Conv)>>,
        digests: HashMap<String, RowDigest>,
        error: Option<String>,
    }
    impl Visitor for Side<'_> {
        type Error = PgError;
        fn part(
            &mut self,
            table: &ferry_archive::Table,
            part: &ferry_archive::Part<'_>,
        ) -> Result<(), PgError> {
            let Some(fields) = self.compared.get(&table.id) else {
                return Ok(());
            };
            let data = table.data_fields();
            let digest = self.digests.entry(table.id.clone()).or_default();
            let mut row = BytesMut::new();
            for batch in part.batches(16_384)? {
                let batch = batch?;
                let columns = fields
                    .iter()
                    .map(|(i, _, _)| SqliteColumn::new(batch.column(*i), &data[*i].1))
                    .collect::<Result<Vec<_>, String>>();
                let columns = match columns {
                    Ok(c) => c,
                    Err(e) => {
                        self.error
                            .get_or_insert(format!("table {}: {e}", table.name));
                        continue;
                    }
                };
                for r in 0..batch.num_rows() {
                    row.clear();
                    row.extend_from_slice(&(fields.len() as i16).to_be_bytes());
                    for ((_, _, conv), col) in fields.iter().zip(&columns) {
                        let start = row.len();
                        let put = col
                            .get(r)
                            .and_then(|v| conv.put(v, &mut row))
                            .and_then(|()| match conv {
                                Conv::Numeric => trim_numeric_field(&mut row, start),
                                _ => Ok(()),
                            });
                        if let Err(e) = put {
                            self.error
                                .get_or_insert(format!("table {}: {e}", table.name));
                        }
                    }
                    digest.row(&row);
                }
            }
            Ok(())
        }
    }
    let mut side = Side {
        compared: &compared,
        digests: HashMap::new(),
        error: None,
    };
    ferry_archive::read(location, &mut side)?;
    if let Some(e) = side.error {
        diffs.push(format!(
            "archive value that the import could not have loaded: {e}"
        ));
    }
    let archive = side.digests;
    crate::runtime()?.block_on(async {
        let client = spec.connect().await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .ctx(|| format!("{}: starting a snapshot", spec.display()))?;
        for t in &m.tables {
            let Some(tp) = plan.tables.get(&t.id) else {
                continue;
            };
            let exists: bool = client
                .query_one(
                    "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                    &[&tp.target],
                )
                .await
                .ctx(|| format!("table {}: looking it up", tp.target))?
                .at(0)?;
            if !exists {
                diffs.push(format!(
                    "table {}: in the archive but not in the database",
                    tp.target
                ));
                continue;
            }
            let fields = &compared[&t.id];
            let cols: Vec<&str> = fields.iter().map(|f| f.1.as_str()).collect();
            let select = if cols.is_empty() {
                "1".to_owned()
            } else {
                fields
                    .iter()
                    .map(|f| read_as(&f.1, f.2))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let live = copy_digest(
                &client,
                &format!(
                    "COPY (SELECT {select} FROM {}) TO STDOUT (FORMAT binary)",
                    tp.target
                ),
                &tp.target,
                RowHash::default(),
            )
            .await?;
            let expected = archive.get(&t.id).cloned().unwrap_or_default();
            let want_rows = t.rows.unwrap_or(0);
            if live.rows() != want_rows {
                diffs.push(format!(
                    "table {}: {} rows in the database, {want_rows} in the archive",
                    tp.target,
                    live.rows()
                ));
            } else if !cols.is_empty() && live.finish("") != expected.finish("") {
                diffs.push(format!(
                    "table {}: same row count ({want_rows}) but different content in columns {}",
                    tp.target,
                    cols.join(", ")
                ));
            }
        }
        client
            .batch_execute("COMMIT")
            .await
            .ctx(|| "ending the snapshot".into())?;
        Ok(Comparison {
            differences: diffs,
            notes,
        })
    })
}

async fn copy_digest(
    client: &tokio_postgres::Client,
    sql: &str,
    name: &str,
    hash: RowHash,
) -> Result<RowDigest, PgError> {
    let stream = client
        .copy_out(sql)
        .await
        .ctx(|| format!("table {name}: reading"))?;
    futures_util::pin_mut!(stream);
    let mut digest = RowDigest::new(hash);
    let mut splitter = RowSplitter::default();
    let mut spans = Vec::new();
    while let Some(chunk) = stream.next().await {
        splitter.feed(&chunk.ctx(|| format!("table {name}: reading"))?);
        while let Some(row) = splitter
            .next_row(&mut spans)
            .map_err(|detail| PgError::Check {
                context: format!("table {name}"),
                detail,
            })?
        {
            digest.row(&row);
        }
    }
    Ok(digest)
}

async fn compare_async(
    location: &ferry_archive::Location,
    manifest: &Manifest,
    spec: &ConnSpec,
) -> Result<Comparison, PgError> {
    let client = spec.connect().await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .ctx(|| format!("{}: starting a snapshot", spec.display()))?;
    let types = catalog::type_map(&client).await?;
    let mut diffs = Vec::new();
    let mut notes = Vec::new();
    // Tables whose content differs, with the wire form each field was read in.
    let mut changed: Vec<(&ferry_archive::Table, Vec<types::Wire>)> = Vec::new();
    // Tables whose recorded digest this version cannot recompute: only the row-by-row
    // comparison can clear them.
    let mut unchecked: Vec<String> = Vec::new();
    for t in &manifest.tables {
        let name = t.display_name();
        let qualified = quote_qualified(t.schema.as_deref().unwrap_or("public"), &t.name);
        let oid: Option<u32> = client
            .query_one("SELECT pg_catalog.to_regclass($1)::oid", &[&qualified])
            .await
            .ctx(|| format!("table {name}: looking it up"))?
            .at(0)?;
        let Some(oid) = oid else {
            diffs.push(format!(
                "table {name}: in the archive but not in the database"
            ));
            continue;
        };
        let live = catalog::columns(&client, &[oid])
            .await?
            .remove(&oid)
            .unwrap_or_default();
        let live_cols: Vec<(String, String)> = live
            .iter()
            .map(|c| (c.name.clone(), c.formatted.clone()))
            .collect();
        let archived: Vec<(String, String)> = t
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.declared_type.clone().unwrap_or_default()))
            .collect();
        if live_cols != archived {
            diffs.push(format!(
                "table {name}: columns differ: archive {archived:?}, database {live_cols:?}"
            ));
            continue;
        }
        if t.kind == "partitioned" {
            continue;
        }
        // The archive's logical type decides text or binary, exactly as at export (a
        // column demoted to text there must be read as text here).
        let wires: Vec<types::Wire> = live
            .iter()
            .zip(&t.columns)
            .filter(|(c, _)| c.generated.is_empty())
            .map(|(c, archived)| {
                if matches!(
                    archived.logical_type,
                    ferry_archive::LogicalType::EngineText { .. }
                ) {
                    return types::Wire::AsText;
                }
                let ti = catalog::type_info(&types, c.type_oid, c.typmod, c.formatted.clone());
                types::wire(&ti)
            })
            .collect();
        let kind = crate::digest_kind(t.content_digest.as_deref());
        let hash = kind.map_or(RowHash::default(), |(_, h)| h);
        let digest = copy_digest(&client, &copy_out_sql(t, &wires, None), &name, hash).await?;
        let expected = t.rows.unwrap_or(0);
        if digest.rows() != expected {
            diffs.push(format!(
                "table {name}: {} rows in the database, {expected} in the archive",
                digest.rows()
            ));
        } else if t.content_digest.is_none() {
            // No digest recorded (a masked table's rows are not its source's): its rows are
            // compared one by one.
            unchecked.push(name.clone());
            changed.push((t, wires));
        } else if kind.is_none() {
            // A digest from a newer ferry: the rows themselves can still be compared.
            notes.push(format!(
                "table {name}: its content digest is of a kind this version of ferry cannot recompute; its rows are compared one by one"
            ));
            unchecked.push(name.clone());
            changed.push((t, wires));
        } else if let Some((prefix, _)) = kind
            && t.content_digest.as_deref() != Some(digest.finish(prefix).as_str())
        {
            diffs.push(format!(
                "table {name}: same row count ({expected}) but different content"
            ));
            changed.push((t, wires));
        }
    }
    if !changed.is_empty() {
        match locate(location, spec, &client, &types, &changed).await {
            Ok(found) => diffs.extend(found),
            Err(e) => {
                notes.push(format!("the differing rows could not be located: {e}"));
                // A table nothing has compared is not a match.
                for name in &unchecked {
                    diffs.push(format!(
                        "table {name}: its content could not be compared (no digest this version of ferry can recompute is recorded, and its rows could not be compared one by one)"
                    ));
                }
            }
        }
    }
    for o in manifest
        .objects
        .iter()
        .filter(|o| o.kind == "sequence_value")
    {
        let schema = o.schema.clone().unwrap_or_default();
        let q = format!(
            "SELECT last_value::text, is_called FROM {}",
            quote_qualified(&schema, &o.name)
        );
        match client.query_one(&q, &[]).await {
            Ok(r) => {
                let (last, called): (String, bool) = (r.at(0)?, r.at(1)?);
                let want_last = o
                    .properties
                    .get("last_value")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let want_called = o
                    .properties
                    .get("is_called")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if last != want_last || called != want_called {
                    diffs.push(format!(
                        "sequence {schema}.{}: last_value {last} (called {called}) in the database, {want_last} (called {want_called}) in the archive",
                        o.name
                    ));
                }
            }
            Err(_) => diffs.push(format!(
                "sequence {schema}.{}: missing in the database",
                o.name
            )),
        }
    }
    client
        .batch_execute("COMMIT")
        .await
        .ctx(|| "ending the snapshot".into())?;
    Ok(Comparison {
        differences: diffs,
        notes,
    })
}

/// Most rows named per table: enough to see the pattern, few enough to read.
const LOCATED_ROWS: usize = 3;

/// Names the rows (by primary key) and columns behind a digest mismatch. The digest says
/// only *that* a table differs; to say *where*, a second session joins the first one's
/// snapshot, loads the archive's rows into a temporary table with the importer's own
/// encoder, and compares the two in SQL, every value as its text. Nothing outside the
/// temporary tables is written, and the transaction is rolled back. It costs a load of each
/// differing table, so it runs only when one differs.
async fn locate(
    location: &ferry_archive::Location,
    spec: &ConnSpec,
    first: &tokio_postgres::Client,
    types: &HashMap<u32, catalog::RawType>,
    changed: &[(&ferry_archive::Table, Vec<types::Wire>)],
) -> Result<Vec<String>, PgError> {
    let snapshot: String = first
        .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
        .ctx(|| "exporting the snapshot".into())?
        .at(0)?;
    // The archive's parts of the differing tables, checked, and kept open past the read.
    struct Parts<'a> {
        wanted: &'a [(&'a ferry_archive::Table, Vec<types::Wire>)],
        parts: Vec<(String, ferry_archive::DetachedPart)>,
    }
    impl Visitor for Parts<'_> {
        type Error = PgError;
        fn part(
            &mut self,
            table: &ferry_archive::Table,
            part: &ferry_archive::Part<'_>,
        ) -> Result<(), PgError> {
            if self.wanted.iter().any(|(t, _)| t.id == table.id) {
                self.parts.push((table.id.clone(), part.detach()?));
            }
            Ok(())
        }
    }
    let mut visitor = Parts {
        wanted: changed,
        parts: Vec::new(),
    };
    ferry_archive::read(location, &mut visitor)?;
    let client = spec.connect().await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
            catalog::quote_literal(&snapshot)
        ))
        .await
        .ctx(|| "joining the comparison's snapshot".into())?;
    let mut out = Vec::new();
    for (i, (t, wires)) in changed.iter().enumerate() {
        let name = t.display_name();
        let live = quote_qualified(t.schema.as_deref().unwrap_or("public"), &t.name);
        let temp_name = format!("ferry_cmp_{i}");
        let temp = format!("pg_temp.{}", crate::quote_ident(&temp_name));
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE {temp} (LIKE {live}) ON COMMIT DROP"
            ))
            .await
            .ctx(|| format!("table {name}: creating its comparison table"))?;
        let plan = crate::load::plan_table(&client, types, t, &temp, &name, 1_000 + i).await?;
        let copier = crate::load::Copier::Same(std::sync::Arc::new(plan));
        for (_, part) in visitor.parts.iter().filter(|(id, _)| *id == t.id) {
            copier.copy(&client, t, &temp, part, 16_384, false).await?;
        }
        let found = located_rows(&client, t, &live, &temp).await?;
        if found.is_empty() {
            // The database holds what the archive's files hold. If those do not match the
            // digest the exporter recorded, the archive was changed after export. With no
            // digest recorded (a masked table), the database's rows and the archive's copy
            // are digested alike: the digest sees what a comparison of text cannot, and how
            // many times a row repeats.
            let mut as_temp = (*t).clone();
            as_temp.schema = Some("pg_temp".into());
            as_temp.name = temp_name;
            if t.content_digest.is_none() {
                let hash = crate::digest_kind(None).map_or(RowHash::default(), |(_, h)| h);
                let sql = |t: &ferry_archive::Table| copy_out_sql(t, wires, None);
                let live = copy_digest(&client, &sql(t), &name, hash).await?;
                let archived = copy_digest(&client, &sql(&as_temp), &name, hash).await?;
                if live.finish("") != archived.finish("") {
                    out.push(format!(
                        "table {name}: the rows differ only in ways a comparison of their text cannot see, or in how many times a row repeats"
                    ));
                }
                continue;
            }
            let Some((prefix, hash)) = crate::digest_kind(t.content_digest.as_deref()) else {
                continue;
            };
            let d = copy_digest(&client, &copy_out_sql(&as_temp, wires, None), &name, hash).await?;
            out.push(
                if t.content_digest.as_deref() != Some(d.finish(prefix).as_str()) {
                    format!(
                        "table {name}: the database holds the archive's rows, but they do not match the content digest recorded at export (the archive was changed after export)"
                    )
                } else {
                    format!(
                        "table {name}: the rows differ only in ways a comparison of their text cannot see"
                    )
                },
            );
        }
        out.extend(found);
    }
    client
        .batch_execute("ROLLBACK")
        .await
        .ctx(|| "ending the comparison".into())?;
    Ok(out)
}

/// The rows of `live` and `temp` (the archive's) that are not in the other, compared as
/// text (json and other types have no equality operator), named by primary key with the
/// columns that differ.
async fn located_rows(
    client: &tokio_postgres::Client,
    t: &ferry_archive::Table,
    live: &str,
    temp: &str,
) -> Result<Vec<String>, PgError> {
    let name = t.display_name();
    let fields: Vec<String> = t.data_fields().into_iter().map(|(n, _)| n).collect();
    let key: Vec<String> = t
        .primary_key
        .as_ref()
        .map(|k| k.columns.clone())
        .unwrap_or_default();
    let select = |from: &str| {
        let cols: Vec<String> = fields
            .iter()
            .map(|f| format!("{}::text", crate::quote_ident(f)))
            .collect();
        format!(
            "SELECT {} FROM ONLY {from}",
            if cols.is_empty() {
                "NULL::text".to_owned()
            } else {
                cols.join(", ")
            }
        )
    };
    let text_row = |r: &tokio_postgres::Row| -> Result<Vec<Option<String>>, PgError> {
        (0..r.len()).map(|i| r.at::<Option<String>>(i)).collect()
    };
    let show = |v: &Option<String>| match v {
        Some(v) => ferry_archive::clip(v),
        None => "NULL".to_owned(),
    };
    let mut out = Vec::new();
    for (here, there, label) in [(live, temp, "database"), (temp, live, "archive")] {
        let sql = format!(
            "{} EXCEPT ALL {} LIMIT {LOCATED_ROWS}",
            select(here),
            select(there)
        );
        let rows = client
            .query(&sql, &[])
            .await
            .ctx(|| format!("table {name}: comparing"))?;
        for row in &rows {
            if out.len() >= LOCATED_ROWS {
                break;
            }
            let row = text_row(row)?;
            let key_at: Vec<usize> = key
                .iter()
                .filter_map(|k| fields.iter().position(|f| f == k))
                .collect();
            if key.is_empty() || key_at.len() != key.len() {
                out.push(format!(
                    "table {name}: a row only in the {label}: ({})",
                    ferry_archive::clip(&row.iter().map(show).collect::<Vec<_>>().join(", "))
                ));
                continue;
            }
            let at = key
                .iter()
                .zip(&key_at)
                .map(|(k, i)| format!("{k}={}", show(&row[*i])))
                .collect::<Vec<_>>()
                .join(", ");
            let cond: Vec<String> = key
                .iter()
                .enumerate()
                .map(|(n, k)| {
                    format!(
                        "{}::text IS NOT DISTINCT FROM ${}",
                        crate::quote_ident(k),
                        n + 1
                    )
                })
                .collect();
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = key_at
                .iter()
                .map(|i| &row[*i] as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let other = client
                .query_opt(
                    &format!("{} WHERE {} LIMIT 1", select(there), cond.join(" AND ")),
                    &params,
                )
                .await
                .ctx(|| format!("table {name}: looking up a row"))?;
            match other {
                None => out.push(format!("table {name}, row {at}: only in the {label}")),
                Some(_) if label == "archive" => {} // reported from the database side
                Some(o) => {
                    let o = text_row(&o)?;
                    let cols: Vec<String> = fields
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| row[*i] != o[*i])
                        .map(|(i, f)| {
                            format!(
                                "column {f}: database {}, archive {}",
                                show(&row[i]),
                                show(&o[i])
                            )
                        })
                        .collect();
                    out.push(format!("table {name}, row {at}: {}", cols.join("; ")));
                }
            }
        }
    }
    Ok(out)
}
