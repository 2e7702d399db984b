//! The one loop that streams an archive part into `COPY ... FROM STDIN (FORMAT binary)`:
//! header, rows batch by batch in ~1 MiB messages, trailer, and a check that the server
//! took every row. Callers only say how a batch's rows are encoded.

use arrow_array::RecordBatch;
use bytes::{Bytes, BytesMut};
use ferry_archive::PartData;
use futures_util::SinkExt;
use tokio_postgres::Client;

use crate::error::{Ctx, PgError};
use crate::pgbinary::put_header;

/// Rows encoded between checks of the message buffer.
const SLICE_ROWS: usize = 1024;

/// Streams `part` into `sql` (a `COPY ... FROM STDIN (FORMAT binary)`). `encode(batch,
/// rows_before, buf)` appends every row of the batch, field count included.
pub(crate) async fn copy_part(
    client: &Client,
    sql: &str,
    target: &str,
    part: &impl PartData,
    batch_rows: usize,
    mut encode: impl FnMut(&RecordBatch, u64, &mut BytesMut) -> Result<(), PgError>,
) -> Result<u64, PgError> {
    let sink = client
        .copy_in::<_, Bytes>(sql)
        .await
        .ctx(|| format!("table {target}: starting COPY"))?;
    futures_util::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(1 << 20);
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
            encode(&batch.slice(offset, len), rows, &mut buf)?;
            rows += len as u64;
            offset += len;
            if buf.len() >= 1 << 20 {
                sink.send(buf.split().freeze())
                    .await
                    .ctx(|| format!("table {target}: sending COPY data"))?;
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

/// The field count that starts every row.
pub(crate) fn put_field_count(buf: &mut BytesMut, n: usize) {
    buf.extend_from_slice(&(n as i16).to_be_bytes());
}
