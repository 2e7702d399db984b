//! `ferry verify ARCHIVE --against postgres://...`: tables, columns, row counts and the
//! content digest of every table, recomputed from the live database with the exporter's own
//! `COPY`, inside one snapshot; plus every sequence's value.

use ferry_archive::Manifest;
use futures_util::StreamExt;
use serde_json::Value;

use crate::catalog;
use crate::conn::ConnSpec;
use crate::digest::RowDigest;
use crate::error::{Ctx, PgError};
use crate::export::copy_out_sql;
use crate::pgbinary::RowSplitter;
use crate::{ENGINE, quote_qualified, types};

/// One line per difference, each naming the table or sequence. Empty means identical.
pub fn compare(manifest: &Manifest, url: &str) -> Result<Vec<String>, PgError> {
    if manifest.source.engine != ENGINE {
        return Err(PgError::Unsupported(format!(
            "comparing a {} archive with a PostgreSQL database needs the cross-engine mapping, which this version of ferry does not have yet",
            manifest.source.engine
        )));
    }
    let spec = ConnSpec::parse(url)?;
    crate::runtime()?.block_on(compare_async(manifest, &spec))
}

async fn compare_async(manifest: &Manifest, spec: &ConnSpec) -> Result<Vec<String>, PgError> {
    let client = spec.connect().await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .ctx(|| format!("{}: starting a snapshot", spec.display()))?;
    let types = catalog::type_map(&client).await?;
    let mut diffs = Vec::new();
    for t in &manifest.tables {
        let name = t.display_name();
        let qualified = quote_qualified(t.schema.as_deref().unwrap_or("public"), &t.name);
        let oid: Option<u32> = client
            .query_one("SELECT pg_catalog.to_regclass($1)::oid", &[&qualified])
            .await
            .ctx(|| format!("table {name}: looking it up"))?
            .get(0);
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
        let stream = client
            .copy_out(&copy_out_sql(t, &wires))
            .await
            .ctx(|| format!("table {name}: reading"))?;
        futures_util::pin_mut!(stream);
        let mut digest = RowDigest::default();
        let mut splitter = RowSplitter::default();
        let mut spans = Vec::new();
        while let Some(chunk) = stream.next().await {
            splitter.feed(&chunk.ctx(|| format!("table {name}: reading"))?);
            while let Some(row) =
                splitter
                    .next_row(&mut spans)
                    .map_err(|detail| PgError::Check {
                        context: format!("table {name}"),
                        detail,
                    })?
            {
                digest.row(&row);
            }
        }
        let expected = t.rows.unwrap_or(0);
        if digest.rows() != expected {
            diffs.push(format!(
                "table {name}: {} rows in the database, {expected} in the archive",
                digest.rows()
            ));
        } else if t.content_digest.as_deref() != Some(digest.finish().as_str()) {
            diffs.push(format!(
                "table {name}: same row count ({expected}) but different content"
            ));
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
                let (last, called): (String, bool) = (r.get(0), r.get(1));
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
    Ok(diffs)
}
