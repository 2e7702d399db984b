//! PostgreSQL → archive, over `COPY ... TO STDOUT (FORMAT binary)`.
//!
//! One transaction (`REPEATABLE READ, READ ONLY, DEFERRABLE`) holds one snapshot for the
//! catalog reads and every table's data; `pg_export_snapshot()` names it so that parallel
//! workers can join it. Rows are decoded field by field straight into Arrow builders and
//! flushed in bounded batches, which a second thread encodes to Parquet; the raw bytes of each
//! row also feed the table's digest.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use arrow_array::{ArrayRef, RecordBatch};
use ferry_archive::{
    ArchiveWriter, Location, LogicalType, Manifest, Progress, Source, TableReport, TableWriter,
    WriteOptions,
};
use futures_util::StreamExt;
use serde_json::json;
use tokio_postgres::Client;

use crate::catalog::{self, TableInfo};
use crate::conn::ConnSpec;
use crate::error::{Ctx, PgError, RowExt};
use crate::pgbinary::{Decoder, RowSplitter};
use crate::types::Wire;
use crate::{ENGINE, quote_ident, quote_qualified};
use ferry_archive::mask;
use ferry_archive::rowset::RowDigest;
use ferry_archive::selection::{self, Action, PlanRow, Selection, TableName};

use crate::select;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Schemas to export; empty means every user schema.
    pub schemas: Vec<String>,
    pub batch_rows: usize,
    pub batch_bytes: usize,
    /// Tables exported at once, each on its own connection in the same snapshot.
    pub jobs: usize,
    /// Which tables and rows to take (`-t`, `--where`, `--subset`, ...).
    pub selection: Selection,
    /// Refuse rows that a `--where` leaves referencing rows that are not exported.
    pub strict: bool,
    /// Decide and count, write nothing.
    pub dry_run: bool,
    /// The key of the `hash` and `email` masks; never written anywhere.
    pub mask_key: Option<Vec<u8>>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            schemas: Vec::new(),
            batch_rows: 16_384,
            // Up to four batches per table are alive at once (being decoded, two queued,
            // being encoded): 4 MiB keeps wide rows (blobs) from holding 100+ MB.
            batch_bytes: 4 << 20,
            jobs: 1,
            selection: Selection::default(),
            strict: false,
            dry_run: false,
            mask_key: None,
        }
    }
}

#[derive(Debug)]
pub struct ExportReport {
    pub manifest: Manifest,
    pub tables: Vec<TableReport>,
    /// What the user should know that is not in the archive (such as staging schemas left
    /// out), and what the selection left out or found.
    pub notes: Vec<String>,
    /// What the selection decided for each table (empty for a whole export).
    pub plan: Vec<PlanRow>,
}

pub fn export(
    url: &str,
    location: &Location,
    write: WriteOptions,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportReport, PgError> {
    let spec = ConnSpec::parse(url)?;
    crate::runtime()?.block_on(export_async(&spec, location, write, options, progress))
}

/// Every scan of the export starts at the table's first page. With synchronized scans (the
/// server's default) a sequential scan of a table larger than a quarter of
/// `shared_buffers` joins the last scan of it wherever that was: the archive then holds the
/// rows rotated (at scale 1000, `events` began with the last 90 937 ids, then 1 onwards), so
/// two exports of an unchanged database differ, and a SQLite import of the archive inserts
/// all but the first few rows in front of them, into the middle of the table's b-tree
/// instead of appending at its end: 12 % slower for that table. Read from the first page,
/// a table loaded in key order comes out in key order. For the same reason a `COPY (SELECT
/// …)` (a `--where` filter, columns read as text) gets no parallel plan, whose workers'
/// rows would arrive interleaved.
const FROM_THE_FIRST_PAGE: &str =
    "SET LOCAL synchronize_seqscans = off; SET LOCAL max_parallel_workers_per_gather = 0";

async fn export_async(
    spec: &ConnSpec,
    location: &Location,
    write: WriteOptions,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportReport, PgError> {
    let client = spec.connect().await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE; {FROM_THE_FIRST_PAGE}"
        ))
        .await
        .ctx(|| format!("{}: starting the snapshot", spec.display()))?;
    let snapshot: String = client
        .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
        .ctx(|| "exporting the snapshot".into())?
        .at(0)?;
    tracing::debug!(snapshot, "export snapshot");
    let mut cat = catalog::read(&client, &options.schemas).await?;
    let mut notes = Vec::new();
    let stages = crate::leftover::present(&client).await?;
    if !stages.is_empty() {
        let more = match stages.len() {
            n if n > 3 => format!(" and {} more", n - 3),
            _ => String::new(),
        };
        notes.push(format!(
            "left out {} ferry staging schema(s) ({}{more}): an import is running, or one was killed and `ferry cleanup` will drop them",
            stages.len(),
            stages[..stages.len().min(3)].join(", ")
        ));
    }
    // As pg_dump does: no TRUNCATE, rewrite or drop can slip under the snapshot while the
    // data is read (those are not MVCC-safe).
    let locked: Vec<String> = cat
        .tables
        .iter()
        .map(|t| quote_qualified(t.table.schema.as_deref().unwrap_or(""), &t.table.name))
        .collect();
    if !locked.is_empty() {
        client
            .batch_execute(&format!(
                "LOCK TABLE {} IN ACCESS SHARE MODE",
                locked.join(", ")
            ))
            .await
            .ctx(|| "locking the tables to export".into())?;
    }
    let mut plan = Vec::new();
    let mut selection_notes = Vec::new();
    if !options.selection.is_empty() {
        let names: Vec<TableName> = cat.tables.iter().map(|t| TableName::of(&t.table)).collect();
        let resolved = options
            .selection
            .resolve(&names, false)
            .map_err(|e| PgError::Unsupported(e.to_string()))?;
        let mut applied = select::apply(&client, &cat.tables, &resolved).await?;
        applied.filters(&client, &mut cat.tables, &resolved).await?;
        let dangling =
            select::check_dangling(&client, &cat.tables, &resolved, options.strict).await?;
        applied.notes.extend(dangling);
        let mut notes = applied.notes;
        select::leave_out_dependents(&client, &mut cat, &applied.keep, &mut notes).await?;
        notes.extend(selection::prune_records(
            &mut cat.tables,
            |t| &mut t.table,
            &mut cat.objects,
            &applied.keep,
            &|o| {
                o.definition
                    .as_deref()
                    .map(|d| ferry_sql::check::relations(d, false))
                    .unwrap_or_default()
            },
        ));
        let (fields, dropped) = selection::exclude_columns(
            &mut cat.tables,
            |t| &mut t.table,
            &mut cat.objects,
            &options.selection.exclude_columns,
            false,
            &|sql, cols| {
                ferry_sql::rewrite::drop_columns(sql, false, cols, "the table's definition")
                    .map(|r| r.map(|(s, d)| (s, d.columns, d.constraints)))
                    .map_err(|e| e.to_string())
            },
            &|text, c| ferry_sql::check::mentions(text, false, c),
        )
        .map_err(|e| PgError::Unsupported(e.to_string()))?;
        notes.extend(dropped);
        // Wire forms are per data field.
        for (i, positions) in fields {
            for p in positions.into_iter().rev() {
                cat.tables[i].wires.remove(p);
            }
        }
        plan = applied.plan;
        if options.dry_run {
            for row in plan.iter_mut().filter(|r| r.rows.is_none()) {
                let Some(t) = cat
                    .tables
                    .iter()
                    .find(|t| t.table.display_name() == row.table)
                else {
                    continue;
                };
                row.rows = Some(match row.action {
                    Action::SchemaOnly => 0,
                    _ => select::count(&client, t, t.filter.as_deref()).await?,
                });
            }
        }
        selection_notes = notes;
    }
    for t in &mut cat.tables {
        demote_unrepresentable(&client, t).await?;
    }

    let mut manifest = Manifest::new(Source {
        engine: ENGINE.into(),
        engine_version: cat.version.clone(),
        database: spec.dbname().to_owned(),
    });
    manifest.settings = cat.settings.clone();
    manifest
        .options
        .insert("batch_rows".into(), json!(options.batch_rows));
    manifest.options.insert(
        "schemas".into(),
        json!(cat.settings.get("schemas").cloned().unwrap_or_default()),
    );
    manifest.options.insert(
        "text_session".into(),
        json!("client_encoding=UTF8 DateStyle=ISO,MDY IntervalStyle=postgres extra_float_digits=3 bytea_output=hex TimeZone=UTC search_path=''"),
    );
    manifest.tables = cat.tables.iter().map(|t| t.table.clone()).collect();
    manifest.objects = cat.objects.clone();
    manifest.warnings = cat.warnings.clone();
    let masker = mask::prepare(
        &mut manifest,
        &options.selection.masks,
        options.mask_key.clone(),
        false,
    )
    .map_err(|e| PgError::Unsupported(e.to_string()))?;
    selection_notes.extend(masker.describe());
    manifest.record_selection(&options.selection, &selection_notes);
    if options.dry_run {
        if plan.is_empty() {
            for (i, t) in cat.tables.iter().enumerate() {
                manifest.tables[i].rows = Some(select::count(&client, t, None).await?);
            }
        }
        client
            .batch_execute("COMMIT")
            .await
            .ctx(|| "ending the snapshot".into())?;
        notes.extend(selection_notes);
        return Ok(ExportReport {
            manifest,
            tables: Vec::new(),
            notes,
            plan,
        });
    }

    let mut writer = ArchiveWriter::create(location, write, manifest.clone())?;
    let masked: Vec<bool> = manifest
        .tables
        .iter()
        .map(|t| !masker.masked_columns(&t.id).is_empty())
        .collect();
    writer.set_masker(masker);
    // Row estimates, largest first: the order in which workers take tables.
    let mut order: Vec<(usize, Option<u64>)> = Vec::new();
    for (i, t) in cat.tables.iter().enumerate() {
        let estimate: Option<i64> = client
            .query_one(
                "SELECT reltuples::bigint FROM pg_catalog.pg_class WHERE oid = $1",
                &[&t.oid],
            )
            .await
            .ok()
            .and_then(|r| r.at(0).ok());
        order.push((i, estimate.filter(|n| *n >= 0).map(|n| n as u64)));
    }
    // A partitioned table's estimate counts its partitions' rows, which it does not hold.
    order.sort_by_key(|(i, n)| {
        std::cmp::Reverse(if cat.tables[*i].has_rows {
            n.unwrap_or(0)
        } else {
            0
        })
    });
    let done = if options.jobs > 1 && cat.tables.len() > 1 {
        // The largest table is taken first but finishes last: in a tar file its parts go
        // first all the same, so that a parallel import starts loading it first too.
        if let Some((i, _)) = order.first()
            && cat.tables[*i].has_rows
        {
            writer.lead_with(&cat.tables[*i].table.id)?;
        }
        // Several connections, one snapshot: each worker joins the one this transaction
        // exported, so all of them read the same consistent state.
        let queue = Mutex::new(order.into_iter().collect::<VecDeque<_>>());
        let free = crate::conn::free_connections(&client).await?;
        let workers = options.jobs.min(cat.tables.len()).min(free.max(1));
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        crate::runtime()?.block_on(worker(
                            spec, &snapshot, &queue, &cat, &writer, options, progress,
                        ))
                    })
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                let part = h
                    .join()
                    .map_err(|_| PgError::Unsupported("an export worker panicked".into()))?;
                all.extend(part?);
            }
            Ok::<_, PgError>(all)
        })?
    } else {
        let mut all = Vec::new();
        for (i, estimate) in order {
            all.push(export_one(&client, &cat, i, estimate, &writer, options, progress).await?);
        }
        all
    };
    let mut reports = vec![TableReport::default(); cat.tables.len()];
    for (i, digest, files, elapsed) in done {
        // The digest describes the source's rows; a masked table's archive rows differ.
        manifest.tables[i].content_digest =
            (!masked[i]).then(|| digest.finish(crate::DIGEST_PREFIX));
        reports[i] = TableReport {
            name: cat.tables[i].table.display_name(),
            rows: digest.rows(),
            bytes: Some(files.iter().map(|f| f.bytes).sum()),
            elapsed,
        };
    }
    // End the snapshot first: if that fails, nothing has been published yet.
    client
        .batch_execute("COMMIT")
        .await
        .ctx(|| "ending the snapshot".into())?;
    let manifest = writer.finish(manifest)?;
    Ok(ExportReport {
        manifest,
        tables: reports,
        notes,
        plan,
    })
}

type Exported = (
    usize,
    RowDigest,
    Vec<ferry_archive::DataFile>,
    std::time::Duration,
);

/// Copies table `i` of the catalog into the archive.
async fn export_one(
    client: &Client,
    cat: &catalog::Catalog,
    i: usize,
    estimate: Option<u64>,
    writer: &ArchiveWriter,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<Exported, PgError> {
    let started = Instant::now();
    let t = &cat.tables[i];
    let name = t.table.display_name();
    progress.table_started(&name, estimate);
    let tw = writer.table(&t.table.id)?;
    let (digest, files) = copy_table(client, t, tw, options, &|r, b| {
        progress.advance(&name, r, b)
    })
    .await?;
    progress.table_finished(&name);
    Ok((i, digest, files, started.elapsed()))
}

/// One parallel worker: its own connection in the exporter's snapshot, taking tables from
/// the shared queue until it is empty.
async fn worker(
    spec: &ConnSpec,
    snapshot: &str,
    queue: &Mutex<VecDeque<(usize, Option<u64>)>>,
    cat: &catalog::Catalog,
    writer: &ArchiveWriter,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<Vec<Exported>, PgError> {
    let client = spec.connect().await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}; {FROM_THE_FIRST_PAGE}",
            catalog::quote_literal(snapshot)
        ))
        .await
        .ctx(|| format!("{}: joining the export snapshot", spec.display()))?;
    let mut done = Vec::new();
    loop {
        let next = queue
            .lock()
            .map_err(|_| PgError::Unsupported("queue poisoned".into()))?
            .pop_front();
        let Some((i, estimate)) = next else { break };
        done.push(export_one(&client, cat, i, estimate, writer, options, progress).await?);
    }
    client
        .batch_execute("COMMIT")
        .await
        .ctx(|| "ending the snapshot".into())?;
    Ok(done)
}

/// Values a natural type cannot hold force a column into its exact text form: NaN in a
/// numeric(p,s) (a decimal has no NaN), and timestamps past the year 294246 (Arrow counts
/// microseconds from 1970, PostgreSQL from 2000, so PostgreSQL's last 30 years do not fit).
/// One scan per table that has such columns answers both.
async fn demote_unrepresentable(client: &Client, t: &mut TableInfo) -> Result<(), PgError> {
    let stored: Vec<usize> = t
        .table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_stored())
        .map(|(i, _)| i)
        .collect();
    let mut checks: Vec<(usize, usize, String)> = Vec::new();
    for (field, &i) in stored.iter().enumerate() {
        let c = &t.table.columns[i];
        let q = quote_ident(&c.name);
        match c.logical_type {
            LogicalType::Decimal { .. } => checks.push((field, i, format!("{q} = 'NaN'"))),
            LogicalType::Timestamp | LogicalType::TimestampTz => checks.push((
                field,
                i,
                format!("{q} >= '294246-01-01' AND {q} <> 'infinity'"),
            )),
            // A list has one dimension and counts from 1; any other array keeps its literal.
            // An empty array has no dimensions (NULL here), and is an empty list.
            LogicalType::List { .. } => checks.push((
                field,
                i,
                format!("pg_catalog.array_ndims({q}) <> 1 OR pg_catalog.array_lower({q}, 1) <> 1"),
            )),
            _ => {}
        }
    }
    if checks.is_empty() || !t.has_rows {
        return Ok(());
    }
    let exprs: Vec<String> = checks
        .iter()
        .map(|(_, _, cond)| format!("coalesce(bool_or({cond}), false)"))
        .collect();
    // Only the rows the export takes can force a column to text.
    let filter = t
        .filter
        .as_deref()
        .map(|f| format!(" WHERE {f}"))
        .unwrap_or_default();
    let sql = format!(
        "SELECT {} FROM ONLY {}{filter}",
        exprs.join(", "),
        quote_qualified(t.table.schema.as_deref().unwrap_or(""), &t.table.name)
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .ctx(|| format!("table {}: checking value ranges", t.table.display_name()))?;
    for (j, (field, i, _)) in checks.iter().enumerate() {
        if !row.at::<bool>(j)? {
            continue;
        }
        let col = &mut t.table.columns[*i];
        col.logical_type = match col.logical_type {
            LogicalType::Decimal { .. } => LogicalType::Numeric,
            _ => {
                t.wires[*field] = Wire::AsText;
                LogicalType::EngineText {
                    engine: ENGINE.into(),
                    type_name: col.declared_type.clone().unwrap_or_default(),
                }
            }
        };
    }
    Ok(())
}

/// The `COPY ... TO STDOUT` that reads a table's data fields, shared with `verify --against`
/// so that both compute the digest over the same bytes.
pub(crate) fn copy_out_sql(
    table: &ferry_archive::Table,
    wires: &[Wire],
    filter: Option<&str>,
) -> String {
    let qualified = quote_qualified(table.schema.as_deref().unwrap_or(""), &table.name);
    let fields: Vec<&ferry_archive::Column> =
        table.columns.iter().filter(|c| c.is_stored()).collect();
    if filter.is_none() && wires.iter().all(|w| *w != Wire::AsText) {
        let cols: Vec<String> = fields.iter().map(|c| quote_ident(&c.name)).collect();
        format!(
            "COPY {qualified} ({}) TO STDOUT (FORMAT binary)",
            cols.join(", ")
        )
    } else {
        let cols: Vec<String> = fields
            .iter()
            .zip(wires)
            .map(|(c, w)| {
                if *w == Wire::AsText {
                    format!("{}::text", quote_ident(&c.name))
                } else {
                    quote_ident(&c.name)
                }
            })
            .collect();
        let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
        format!(
            "COPY (SELECT {} FROM ONLY {qualified}{filter}) TO STDOUT (FORMAT binary)",
            cols.join(", ")
        )
    }
}

/// What the reading side hands the encoding thread.
enum ToEncoder {
    Batch(RecordBatch),
    /// The stream ended cleanly: finish the files. Without it (the reader failed and hung
    /// up) the encoder drops its writer unfinished (marking the archive failed if a part is
    /// open) and the reader's error fails the export.
    Done,
}

/// Reads one table's binary COPY stream on this (async) thread and encodes it on another.
///
/// Decoding rows into Arrow and Parquet encoding + zstd + the file hash each take about half
/// of the client's CPU; on one thread the export ran at twice the server's `COPY TO` time.
/// A bounded channel (two batches) between them keeps memory bounded and lets a slow disk
/// push back on the socket, and so on the server.
async fn copy_table(
    client: &Client,
    t: &TableInfo,
    tw: TableWriter,
    options: &ExportOptions,
    advance: &(dyn Fn(u64, u64) + Sync),
) -> Result<(RowDigest, Vec<ferry_archive::DataFile>), PgError> {
    if !t.has_rows {
        return Ok((RowDigest::default(), tw.finish()?));
    }
    let schema = tw.schema().clone();
    let (tx, rx) = std::sync::mpsc::sync_channel::<ToEncoder>(2);
    let thread = std::thread::Builder::new()
        .name("ferry-encode".into())
        .spawn(
            move || -> Result<Option<Vec<ferry_archive::DataFile>>, PgError> {
                let mut tw = tw;
                for msg in rx {
                    match msg {
                        ToEncoder::Batch(batch) => tw.write(&batch)?,
                        ToEncoder::Done => return Ok(Some(tw.finish()?)),
                    }
                }
                Ok(None)
            },
        )
        .map_err(|e| PgError::Unsupported(format!("starting an encoding thread: {e}")))?;
    let mut encoder = Joined {
        tx: Some(tx),
        thread: Some(thread),
    };
    let tx = encoder.tx.clone().expect("set above");
    let read = decode_copy(client, t, &schema, &tx, options, advance).await;
    if read.is_ok() {
        // A closed channel means the encoder already failed; its error is the one to tell.
        let _ = tx.send(ToEncoder::Done);
    }
    drop(tx);
    let encoded = encoder.join()?;
    // The encoder's error explains a reader that stopped because the channel closed.
    match (read, encoded) {
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e),
        (Ok(digest), Ok(Some(files))) => Ok((digest, files)),
        (Ok(_), Ok(None)) => Err(PgError::Unsupported(format!(
            "table {}: the encoding thread stopped early",
            t.table.display_name()
        ))),
    }
}

/// The encoding thread of [`copy_table`] and the sender that feeds it. Dropped without
/// [`Joined::join`] (the reading side panicked, or the export's future was dropped), it still
/// hangs up and waits for the thread, so that no thread goes on writing into an archive the
/// failed export is removing.
struct Joined<T> {
    tx: Option<std::sync::mpsc::SyncSender<ToEncoder>>,
    thread: Option<std::thread::JoinHandle<T>>,
}

impl<T> Joined<T> {
    /// Hangs up and waits for the thread's result.
    fn join(&mut self) -> Result<T, PgError> {
        self.tx = None;
        self.thread
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| PgError::Unsupported("an encoding thread panicked".into()))
    }
}

impl<T> Drop for Joined<T> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reading half of [`copy_table`]: splits the COPY stream into rows, digests them and
/// decodes them into Arrow batches for the encoder.
async fn decode_copy(
    client: &Client,
    t: &TableInfo,
    schema: &arrow_schema::SchemaRef,
    tx: &std::sync::mpsc::SyncSender<ToEncoder>,
    options: &ExportOptions,
    advance: &(dyn Fn(u64, u64) + Sync),
) -> Result<RowDigest, PgError> {
    let table = &t.table;
    let mut digest = RowDigest::default();
    let fields: Vec<&ferry_archive::Column> =
        table.columns.iter().filter(|c| c.is_stored()).collect();
    let mut decoders: Vec<Decoder> = fields
        .iter()
        .zip(&t.wires)
        .map(|(c, w)| Decoder::new(*w, &c.logical_type))
        .collect();
    let sql = copy_out_sql(table, &t.wires, t.filter.as_deref());
    let stream = client
        .copy_out(&sql)
        .await
        .ctx(|| format!("table {}: starting COPY", table.display_name()))?;
    futures_util::pin_mut!(stream);
    let mut splitter = RowSplitter::default();
    let mut spans = Vec::with_capacity(fields.len());
    let (mut in_batch, mut bytes) = (0usize, 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ctx(|| format!("table {}: reading COPY data", table.display_name()))?;
        splitter.feed(&chunk);
        while let Some(row) = splitter
            .next_row(&mut spans)
            .map_err(|reason| bad_stream(table, digest.rows(), reason))?
        {
            if spans.len() != decoders.len() {
                return Err(bad_stream(
                    table,
                    digest.rows(),
                    format!("{} fields, expected {}", spans.len(), decoders.len()),
                ));
            }
            for (j, (d, span)) in decoders.iter_mut().zip(&spans).enumerate() {
                let field = span.map(|(at, len)| &row[at..at + len]);
                bytes += d.push(field).map_err(|reason| PgError::Value {
                    table: table.display_name(),
                    column: fields[j].name.clone(),
                    row: digest.rows() + 1,
                    reason,
                })?;
            }
            digest.row(&row);
            in_batch += 1;
            if in_batch >= options.batch_rows || bytes >= options.batch_bytes {
                flush(&mut decoders, schema, options.batch_bytes, tx)?;
                advance(in_batch as u64, bytes as u64);
                in_batch = 0;
                bytes = 0;
            }
        }
    }
    if !splitter.finished() {
        return Err(bad_stream(
            table,
            digest.rows(),
            "COPY stream ended without its trailer".into(),
        ));
    }
    if in_batch > 0 {
        flush(&mut decoders, schema, options.batch_bytes, tx)?;
        advance(in_batch as u64, bytes as u64);
    }
    Ok(digest)
}

fn bad_stream(table: &ferry_archive::Table, rows: u64, reason: String) -> PgError {
    PgError::Check {
        context: format!("table {}, after row {rows}", table.display_name()),
        detail: reason,
    }
}

fn flush(
    decoders: &mut [Decoder],
    schema: &arrow_schema::SchemaRef,
    batch_bytes: usize,
    tx: &std::sync::mpsc::SyncSender<ToEncoder>,
) -> Result<(), PgError> {
    let arrays: Vec<ArrayRef> = decoders.iter_mut().map(|d| d.finish(batch_bytes)).collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| PgError::Unsupported(format!("building a record batch: {e}")))?;
    // A closed channel means the encoder failed; copy_table reports its error instead.
    tx.send(ToEncoder::Batch(batch))
        .map_err(|_| PgError::Unsupported("the encoding thread stopped".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A reading side that panics must not leave the encoder running: the unwind hangs up
    /// and waits for it.
    #[test]
    fn an_unwinding_reader_waits_for_its_encoder() {
        let finished = Arc::new(AtomicBool::new(false));
        let seen = finished.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel::<ToEncoder>(2);
        let thread = std::thread::spawn(move || {
            for _ in rx {}
            // Slow to end, as an encoder finishing a row group would be.
            std::thread::sleep(std::time::Duration::from_millis(200));
            seen.store(true, Ordering::SeqCst);
        });
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _encoder = Joined {
                tx: Some(tx),
                thread: Some(thread),
            };
            panic!("the reading side failed");
        }));
        assert!(panicked.is_err());
        assert!(
            finished.load(Ordering::SeqCst),
            "the encoder was still running after the reader unwound"
        );
    }
}
