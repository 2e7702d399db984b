//! The one loop that streams an archive part into `COPY ... FROM STDIN (FORMAT binary)`:
//! header, rows batch by batch in ~1 MiB messages, trailer, and a check that the server
//! took every row. Callers only say, per field, how its values are encoded: as the
//! PostgreSQL wire form the exporter read ([`Encoder`]), or as a SQLite value through its
//! conversion ([`Conv::put`]). Every value error names the table, column, row and the row's
//! key, whichever import mode loads it.

use arrow_array::RecordBatch;
use bytes::{Bytes, BytesMut};
use ferry_archive::sqlite_value::SqliteColumn;
use ferry_archive::{LogicalType, PartData, Table};
use futures_util::SinkExt;
use tokio_postgres::Client;

use crate::error::{Ctx, PgError};
use crate::from_sqlite::Conv;
use crate::pgbinary::{Encoder, put_header};
use crate::types::Wire;

/// How one archive field becomes one COPY field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldEnc {
    /// A SQLite value, through its conversion.
    Sqlite(Conv),
    /// A PostgreSQL archive's value, in this wire form.
    Native(Wire),
}

/// Rows encoded between checks of the message buffer.
const SLICE_ROWS: usize = 1024;

/// A COPY message is sent once the buffer holds this much.
const MESSAGE: usize = 1 << 20;

/// The buffer's room for the next message, reserved whole after each send: a message and
/// the slice of narrow rows (up to 512 bytes) that crosses [`MESSAGE`]. Left to grow from
/// empty, `BytesMut` doubled its way up from 64 KiB, copying at each step, and its last
/// step (2 MiB) crossed glibc's mmap threshold (`src/malloc_tuning.rs`), so every message
/// faulted in fresh zeroed pages: page faults of the benchmark's import halved with this
/// (those left are mostly the Parquet decoder's, and a freed buffer the heap trims).
const BUF_ROOM: usize = MESSAGE + (MESSAGE / 2);

/// Streams `part` of `table` into `sql` (a `COPY ... FROM STDIN (FORMAT binary)` into
/// `target`, which names it in messages), one COPY field per entry of `fields`: (the
/// archive's data field index, its encoding).
pub(crate) async fn copy_part(
    client: &Client,
    sql: &str,
    target: &str,
    table: &Table,
    fields: &[(usize, FieldEnc)],
    part: &impl PartData,
    batch_rows: usize,
) -> Result<u64, PgError> {
    let data = table.data_fields();
    let sink = client
        .copy_in::<_, Bytes>(sql)
        .await
        .ctx(|| format!("table {target}: starting COPY"))?;
    futures_util::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(BUF_ROOM);
    put_header(&mut buf);
    let mut rows = 0u64;
    for batch in part.batches(batch_rows.max(1))? {
        let batch = batch?;
        // Encoded a slice at a time, so that the message buffer stays near 1 MiB instead of
        // growing to a whole batch (several MiB of wide rows): large, short-lived buffers
        // are what make the allocator's footprint grow with the data.
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = (batch.num_rows() - offset).min(SLICE_ROWS);
            let rows_of = Rows {
                target,
                table,
                data: &data,
                batch: &batch.slice(offset, len),
                before: rows,
            };
            rows_of.encode(fields, &mut buf)?;
            rows += len as u64;
            offset += len;
            if buf.len() >= MESSAGE {
                sink.send(buf.split().freeze())
                    .await
                    .ctx(|| format!("table {target}: sending COPY data"))?;
                // A huge value (a blob of hundreds of MiB) grew the buffer to its size: the
                // rest of the part starts over in a new one instead of keeping that alive.
                if buf.capacity() > 4 * BUF_ROOM {
                    buf = BytesMut::with_capacity(BUF_ROOM);
                } else {
                    buf.reserve(BUF_ROOM);
                }
            }
        }
        ferry_archive::interrupt::pause_point("import:batch");
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    sink.send(buf.split().freeze())
        .await
        .ctx(|| format!("table {target}: sending COPY data"))?;
    let loaded = sink
        .finish()
        .await
        .ctx(|| format!("table {target}: loading {}", part.path()))?;
    if loaded != rows {
        return Err(PgError::Check {
            context: format!("table {target}"),
            detail: format!("{rows} rows sent, the server loaded {loaded}"),
        });
    }
    Ok(rows)
}

/// A slice of a part's rows, with what its errors name.
struct Rows<'a> {
    target: &'a str,
    table: &'a Table,
    /// The table's data fields: (name, logical type).
    data: &'a [(String, LogicalType)],
    batch: &'a RecordBatch,
    /// Rows of the part before this slice, so errors give the row's number in the part.
    before: u64,
}

/// One field's encoder for one slice.
enum Writer<'a> {
    Native(Encoder<'a>),
    /// The column is read once per slice, not once per value.
    Sqlite(SqliteColumn<'a>, Conv),
}

impl Rows<'_> {
    fn value_error(&self, field: usize, r: usize, reason: String) -> PgError {
        PgError::Value {
            table: self.target.to_owned(),
            column: self.data[field].0.clone(),
            row: self.before + r as u64 + 1,
            reason: ferry_archive::rowkey::with_key(reason, self.table, self.batch, r),
        }
    }

    /// The one COPY row loop: every row of the slice, field count first.
    fn encode(&self, fields: &[(usize, FieldEnc)], buf: &mut BytesMut) -> Result<(), PgError> {
        let writers = fields
            .iter()
            .map(|&(i, enc)| {
                let (array, logical) = (self.batch.column(i), &self.data[i].1);
                Ok(match enc {
                    FieldEnc::Native(w) => Writer::Native(
                        Encoder::new(array, w, logical).map_err(|e| self.value_error(i, 0, e))?,
                    ),
                    FieldEnc::Sqlite(conv) => Writer::Sqlite(
                        SqliteColumn::new(array, logical).map_err(|e| self.value_error(i, 0, e))?,
                        conv,
                    ),
                })
            })
            .collect::<Result<Vec<_>, PgError>>()?;
        let count = (fields.len() as i16).to_be_bytes();
        for r in 0..self.batch.num_rows() {
            buf.extend_from_slice(&count);
            for (&(i, _), w) in fields.iter().zip(&writers) {
                match w {
                    Writer::Native(e) => e.put(r, buf),
                    Writer::Sqlite(col, conv) => col.get(r).and_then(|v| conv.put(v, buf)),
                }
                .map_err(|reason| self.value_error(i, r, reason))?;
            }
        }
        Ok(())
    }
}
