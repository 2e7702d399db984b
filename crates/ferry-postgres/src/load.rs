//! How one table's rows go from archive parts into a PostgreSQL table: the per-table plan
//! (wire form of every field, read from the target's own column types) and the encoder that
//! feeds [`copy_part`]. The import transaction and the parallel load workers both use it, so
//! a value is encoded the same way whichever connection carries it.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_archive::{LogicalType, PartData, Table};
use tokio_postgres::Client;

use crate::catalog::{self, RawType};
use crate::copy_in::{FieldEnc, copy_part};
use crate::error::{Ctx, PgError, RowExt};
use crate::from_sqlite::TablePlan;
use crate::quote_ident;
use crate::types::{self, Wire};

/// How a PostgreSQL archive's table is loaded into its own column types.
pub(crate) struct Plan {
    /// The table's final name, quoted, for messages.
    pub name: String,
    /// Wire form of each data field in the target.
    wires: Vec<Wire>,
    columns: Vec<String>,
    casts: Vec<String>,
    /// `Some(temporary table)` when some fields arrive as text and need a cast on the
    /// server; such a table is loaded only by the connection that created this one.
    pub text_stage: Option<String>,
}

/// Reads the column types of `lookup` (the table as it exists now: its final name, or its
/// name in the staging schema) and decides each field's wire form. Creates the temporary
/// text staging table when one is needed (`i` keeps its name unique in the session).
pub(crate) async fn plan_table(
    client: &Client,
    types: &HashMap<u32, RawType>,
    t: &Table,
    lookup: &str,
    name: &str,
    i: usize,
) -> Result<Plan, PgError> {
    let oid: u32 = client
        .query_one("SELECT $1::text::regclass::oid", &[&lookup])
        .await
        .ctx(|| format!("table {name}: looking it up"))?
        .at(0)?;
    let target_cols = catalog::columns(client, &[oid])
        .await?
        .remove(&oid)
        .unwrap_or_default();
    let mut wires = Vec::new();
    let mut columns = Vec::new();
    let mut casts = Vec::new();
    let mut defs = Vec::new();
    for (field, logical) in t.data_fields() {
        let c = target_cols
            .iter()
            .find(|c| c.name == field)
            .ok_or_else(|| PgError::Check {
                context: format!("table {name}"),
                detail: format!("column {field:?} of the archive is not in the target table"),
            })?;
        let ti = catalog::type_info(types, c.type_oid, c.typmod, c.formatted.clone());
        let mut wire = types::wire(&ti);
        // A natural type stored as text in the archive (a timestamp past the year 294246
        // is the only case from PostgreSQL) is cast on the server.
        if matches!(logical, LogicalType::EngineText { .. }) {
            wire = Wire::AsText;
        }
        let q = quote_ident(&field);
        casts.push(if wire == Wire::AsText {
            format!("{q}::{}", c.formatted)
        } else {
            q.clone()
        });
        defs.push(if wire == Wire::AsText {
            format!("{q} text")
        } else {
            format!("{q} {}", c.formatted)
        });
        columns.push(q);
        wires.push(wire);
    }
    let text_stage = if wires.contains(&Wire::AsText) {
        let stage = format!("pg_temp.{}", quote_ident(&format!("ferry_stage_{i}")));
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE {stage} ({}) ON COMMIT DROP",
                defs.join(", ")
            ))
            .await
            .ctx(|| format!("table {name}: creating its staging table"))?;
        Some(stage)
    } else {
        None
    };
    Ok(Plan {
        name: name.to_owned(),
        wires,
        columns,
        casts,
        text_stage,
    })
}

/// How a table's rows are encoded for `COPY ... FROM STDIN (FORMAT binary)`.
#[derive(Clone)]
pub(crate) enum Copier {
    /// A PostgreSQL archive, into the table's own column types.
    Same(Arc<Plan>),
    /// A SQLite archive, through the cross-engine conversions.
    Cross(Arc<TablePlan>),
}

impl Copier {
    /// The table's final name, quoted.
    pub fn target(&self) -> &str {
        match self {
            Copier::Same(plan) => &plan.name,
            Copier::Cross(plan) => &plan.target,
        }
    }

    /// Loads one part into `into`. `freeze`: the table was created or truncated in this
    /// transaction, so COPY may write its rows already frozen; this spares the server the
    /// hint-bit and freezing rewrites of every page later, and is about a fifth faster.
    pub async fn copy(
        &self,
        client: &Client,
        table: &Table,
        into: &str,
        part: &impl PartData,
        batch_rows: usize,
        freeze: bool,
    ) -> Result<u64, PgError> {
        let options = if freeze {
            "FORMAT binary, FREEZE"
        } else {
            "FORMAT binary"
        };
        match self {
            Copier::Same(plan) => {
                copy_same(client, plan, table, into, part, batch_rows, options).await
            }
            Copier::Cross(plan) => {
                let cols: Vec<&str> = plan.fields.iter().map(|(_, c, _)| c.as_str()).collect();
                let sql = format!("COPY {into} ({}) FROM STDIN ({options})", cols.join(", "));
                let fields: Vec<(usize, FieldEnc)> = plan
                    .fields
                    .iter()
                    .map(|(i, _, conv)| (*i, FieldEnc::Sqlite(*conv)))
                    .collect();
                copy_part(client, &sql, &plan.target, table, &fields, part, batch_rows).await
            }
        }
    }
}

async fn copy_same(
    client: &Client,
    plan: &Plan,
    table: &Table,
    into: &str,
    part: &impl PartData,
    batch_rows: usize,
    options: &str,
) -> Result<u64, PgError> {
    // Fields that travel as text go to the temporary staging table first (never frozen:
    // it is emptied after every part).
    let (copy_into, options) = match &plan.text_stage {
        Some(stage) => (stage.as_str(), "FORMAT binary"),
        None => (into, options),
    };
    let wires: Vec<Wire> = plan
        .wires
        .iter()
        .map(|w| {
            if plan.text_stage.is_some() && *w == Wire::AsText {
                Wire::Text
            } else {
                *w
            }
        })
        .collect();
    let sql = format!(
        "COPY {copy_into} ({}) FROM STDIN ({options})",
        plan.columns.join(", ")
    );
    let fields: Vec<(usize, FieldEnc)> = wires
        .into_iter()
        .enumerate()
        .map(|(j, w)| (j, FieldEnc::Native(w)))
        .collect();
    let rows = copy_part(client, &sql, &plan.name, table, &fields, part, batch_rows).await?;
    if let Some(stage) = &plan.text_stage {
        client
            .batch_execute(&format!(
                "INSERT INTO {into} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {stage}; TRUNCATE {stage}",
                plan.columns.join(", "),
                plan.casts.join(", ")
            ))
            .await
            .ctx(|| format!("table {}: moving {} from staging", plan.name, part.path()))?;
    }
    Ok(rows)
}
