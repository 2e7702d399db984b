//! Staging schemas that outlived their import.
//!
//! A parallel import loads tables into `ferry_stage_*` schemas that it commits (see
//! [`crate::import`]); a run that fails or is interrupted drops them, but one that is
//! killed, or whose connection is cut, cannot. Each staging schema therefore records its
//! owner in its comment: the server session (backend pid and start time) of the import's
//! main connection, which the server ends when the client goes away. [`sweep`] drops the
//! staging schemas whose owner session no longer exists, and nothing else: not a running
//! import's, and not a schema that merely has a similar name.
//!
//! Exports leave every staging schema out ([`STAGE_PATTERN`]): a staging copy is never data.

use tokio_postgres::Client;

use crate::error::{Ctx, PgError};
use crate::quote_ident;

/// The names [`crate::import`] gives staging schemas: `ferry_stage_<hex>_<hex>_<n>`.
pub(crate) const STAGE_PATTERN: &str = "^ferry_stage_[0-9a-f]+_[0-9a-f]+_[0-9]+$";

const RECORD: &str = "ferry staging; owner backend ";

/// The comment a staging schema gets: this connection's server session.
pub(crate) async fn owner_record(client: &Client) -> Result<String, PgError> {
    let row = client
        .query_one(
            "SELECT pg_catalog.pg_backend_pid(),
                    (SELECT (extract(epoch FROM a.backend_start))::text
                       FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid())",
            &[],
        )
        .await
        .ctx(|| "reading this session's identity".into())?;
    let pid: i32 = row.try_get(0).ctx(|| "reading this session's pid".into())?;
    let start: Option<String> = row
        .try_get(1)
        .ctx(|| "reading this session's start time".into())?;
    Ok(format!(
        "{RECORD}{pid} started {}",
        start.unwrap_or_default()
    ))
}

/// `CREATE SCHEMA` with its owner record, in one implicit transaction: a staging schema
/// never exists without the record that lets a later run tell whether it is abandoned.
pub(crate) async fn create_stage_schema(
    client: &Client,
    name: &str,
    record: &str,
) -> Result<(), tokio_postgres::Error> {
    // Both strings are ferry's own (a generated name, digits from the server).
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {0}; COMMENT ON SCHEMA {0} IS '{1}'",
            quote_ident(name),
            record.replace('\'', "''")
        ))
        .await
}

/// Drops the staging schemas of imports whose server session has ended. With
/// `keep_resumable`, those that hold tables a killed import committed (with their resume
/// record) are left for [`crate::resume::adopt`] to take over.
pub async fn sweep(client: &Client, keep_resumable: bool) -> Result<Swept, PgError> {
    let mut swept = Swept::default();
    for (name, comment) in abandoned(client).await? {
        if keep_resumable && crate::resume::Record::parse(&comment).is_some() {
            continue;
        }
        match drop_quietly(client, &name).await {
            Ok(()) => swept.dropped.push(name),
            Err(e) => swept.failed.push(e),
        }
    }
    Ok(swept)
}

/// The staging schemas whose owner session has ended, with their comments.
pub(crate) async fn abandoned(client: &Client) -> Result<Vec<(String, String)>, PgError> {
    let stages = client
        .query(
            "SELECT n.nspname, pg_catalog.obj_description(n.oid, 'pg_namespace')
               FROM pg_catalog.pg_namespace n WHERE n.nspname ~ $1 ORDER BY 1",
            &[&STAGE_PATTERN],
        )
        .await
        .ctx(|| "looking for abandoned staging schemas".into())?;
    if stages.is_empty() {
        return Ok(Vec::new());
    }
    let sessions = client
        .query(
            "SELECT pid, (extract(epoch FROM backend_start))::text FROM pg_catalog.pg_stat_activity",
            &[],
        )
        .await
        .ctx(|| "reading the server's sessions".into())?;
    let mut live = Vec::new();
    for s in &sessions {
        let pid: Option<i32> = s.try_get(0).ctx(|| "reading pg_stat_activity.pid".into())?;
        let start: Option<String> = s
            .try_get(1)
            .ctx(|| "reading pg_stat_activity.backend_start".into())?;
        if let Some(pid) = pid {
            live.push((pid, start));
        }
    }
    let mut out = Vec::new();
    for row in &stages {
        let name: String = row
            .try_get(0)
            .ctx(|| "reading a staging schema's name".into())?;
        let comment: Option<String> = row
            .try_get(1)
            .ctx(|| "reading a staging schema's comment".into())?;
        let Some(comment) = comment else {
            // No record: not provably abandoned, so not ours to drop.
            continue;
        };
        let Some((pid, start)) = parse_record(&comment) else {
            continue;
        };
        // A session whose start time this role may not see is taken as the owner, and so is
        // any session with the pid when the record has no start time (its writer could not
        // see its own, under another role): dropping a running import's schema would be far
        // worse than keeping an abandoned one.
        let owner_alive = live.iter().any(|(p, s)| {
            *p == pid && (start.is_empty() || s.as_deref().is_none_or(|s| s == start))
        });
        if !owner_alive {
            out.push((name, comment));
        }
    }
    Ok(out)
}

/// Drops one abandoned staging schema. Never waits on locks (a schema someone is dropping by
/// hand), and never fails the caller's run for a leftover it could not remove (another
/// role's, a read-only server): the reason is returned, for `ferry cleanup` to be named.
pub(crate) async fn drop_quietly(client: &Client, name: &str) -> Result<(), String> {
    // The name comes from the catalog: it runs alone, through the extended protocol.
    let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(name));
    let dropped = async {
        client
            .batch_execute("BEGIN; SET LOCAL lock_timeout = '2s'")
            .await?;
        client.execute(&drop, &[]).await?;
        client.batch_execute("COMMIT").await
    }
    .await;
    match dropped {
        Ok(()) => {
            tracing::info!(schema = %name, "dropped an abandoned staging schema");
            Ok(())
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(format!("{name}: {}", PgError::query("DROP SCHEMA", e)))
        }
    }
}

/// What `sweep` did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Staging schemas of ended sessions, dropped.
    pub dropped: Vec<String>,
    /// Abandoned ones that could not be dropped, with the reason.
    pub failed: Vec<String>,
}

/// The staging schemas present, whoever owns them (for the export's note).
pub(crate) async fn present(client: &Client) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname ~ $1 ORDER BY 1",
            &[&STAGE_PATTERN],
        )
        .await
        .ctx(|| "looking for staging schemas".into())?;
    rows.iter()
        .map(|r| {
            r.try_get(0)
                .ctx(|| "reading a staging schema's name".into())
        })
        .collect()
}

/// `(pid, start)` from a record written by [`owner_record`].
fn parse_record(comment: &str) -> Option<(i32, &str)> {
    // A resumable stage carries its resume record after the owner's.
    let owner = comment.split(crate::resume::MARK).next().unwrap_or(comment);
    let rest = owner.strip_prefix(RECORD)?;
    let (pid, start) = rest.split_once(" started ")?;
    Some((pid.parse().ok()?, start))
}

/// Connects and sweeps: `ferry cleanup` on a PostgreSQL target.
pub fn cleanup(url: &str) -> Result<Swept, PgError> {
    let spec = crate::conn::ConnSpec::parse(url)?;
    let rt = crate::runtime()?;
    rt.block_on(async {
        let client = spec.connect().await?;
        sweep(&client, false).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse() {
        assert_eq!(
            parse_record("ferry staging; owner backend 4242 started 1733333333.123456"),
            Some((4242, "1733333333.123456"))
        );
        assert_eq!(parse_record("a user's comment"), None);
        assert_eq!(
            parse_record("ferry staging; owner backend x started 1"),
            None
        );
    }
}
