//! Streams one file's rows through validation into its staging table with COPY.

use std::pin::Pin;

use bytes::Bytes;
use catalog::Source;
use futures::{Sink as _, SinkExt as _};
use runtime::Failure;
use runtime::db::quote_ident;
use tokio::io::AsyncRead;

use crate::csv_stream::{ReadError, RecordReader};
use crate::encode::{COPY_HEADER, COPY_TRAILER};

mod counted;
mod rows;

use counted::Counter;
use rows::{RowEncoder, read_header};

/// Rows are sent to COPY in chunks of about this many bytes.
const COPY_CHUNK: usize = 1024 * 1024;
/// Longest value kept in a reject row.
const MAX_REJECT_VALUE_CHARS: usize = 200;
/// Longest reason kept for a row or a file (a reason quotes the offending value).
pub const MAX_REASON_CHARS: usize = 500;

/// `text` as PostgreSQL text can hold it and a person can read it: NUL bytes shown as `\0`,
/// cut to `max` characters with a marker.
pub fn printable(text: &str, max: usize) -> String {
    let cleaned = text.replace('\0', "\\0");
    if cleaned.chars().count() <= max {
        return cleaned;
    }
    let kept: String = cleaned.chars().take(max).collect();
    format!("{kept}… ({} characters in all)", cleaned.chars().count())
}

/// A refused row: where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub line: i64,
    pub column: Option<String>,
    pub value: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(column) => write!(f, "line {}, column {column}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// Rejected rows: every one counted, the first `limit` kept in full.
#[derive(Debug, Default)]
pub struct Rejects {
    pub count: u64,
    pub kept: Vec<RejectedRow>,
    pub limit: usize,
}

impl Rejects {
    pub fn add(&mut self, row: RejectedRow) {
        self.count += 1;
        if self.kept.len() < self.limit {
            self.kept.push(row);
        }
    }
}

/// What loading a file did (inside the caller's transaction).
#[derive(Debug)]
pub struct LoadReport {
    /// Data rows in the file (the header excluded).
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rejects: Rejects,
    /// Whether duplicate natural keys were already rejected while streaming; if not, the
    /// caller runs [`reject_duplicate_keys`].
    pub duplicates_checked: bool,
}

/// Why a load stopped.
#[derive(Debug)]
pub enum LoadError {
    /// The file as a whole is unusable; the reason is for a person.
    File(String),
    /// The database or S3 failed.
    Failed(Failure),
}

impl From<tokio_postgres::Error> for LoadError {
    fn from(error: tokio_postgres::Error) -> Self {
        LoadError::Failed(error.into())
    }
}

/// Marks an I/O error that came from the S3 download, not from decoding the file.
#[derive(Debug, thiserror::Error)]
#[error("reading the object from S3: {0}")]
pub struct SourceError(pub String);

/// Loads every valid row of `reader` into `source`'s staging table. With `restaging` (the
/// file is the staged one of its batch already), its current rows are removed first, in
/// `sinks[0]` (the consumer's transaction), so they give way to the new ones at its commit.
/// The rows are COPYed over every transaction of `sinks` at once, a chunk to each in turn,
/// so each PostgreSQL backend works on its share while the file is read and encoded; but the
/// extra sinks (`sinks[1..]`) take a chunk only while `copying` (the files this stager is
/// COPYing, this one included) is at most 1. Two backends COPYing one file spend about half
/// as much CPU again per row as one: worth it while the other core would be idle, not when
/// other files keep it busy (docs/PERFORMANCE.md).
#[allow(clippy::too_many_arguments)]
pub async fn load_rows(
    sinks: &[&tokio_postgres::Transaction<'_>],
    copying: &std::sync::atomic::AtomicUsize,
    source: &Source,
    file_id: i64,
    batch_date: chrono::NaiveDate,
    reader: &mut RecordReader<Pin<Box<dyn AsyncRead + Send>>>,
    restaging: bool,
    max_rejects_kept: usize,
) -> Result<LoadReport, LoadError> {
    if restaging {
        delete_file_rows(sinks[0], source, file_id, batch_date).await?;
    }
    let header_map = read_header(reader, source).await?;
    let mut copies = open_copies(sinks, source).await?;
    let mut rows = RowEncoder::new(source, header_map, file_id, batch_date)?;
    let mut report = LoadReport {
        rows_read: 0,
        rows_loaded: 0,
        rejects: Rejects {
            limit: max_rejects_kept,
            ..Rejects::default()
        },
        duplicates_checked: false,
    };
    let mut next_sink = 0;
    let mut chunk = Vec::with_capacity(COPY_CHUNK + 64 * 1024);
    // A snapshot source without a natural key: identical rows counted, not copied.
    let mut counter = source.counted().then(Counter::default);
    let mut values = Vec::new();
    let mut copied_rows = 0;
    while let Some(record) = reader.next_record().await.map_err(read_error)? {
        report.rows_read += 1;
        if let Some(counter) = counter.as_mut() {
            values.clear();
            let encoded = rows
                .check_width(&record)
                .and_then(|()| rows.encode_values(&record, &mut values));
            if let Err(rejected) = encoded {
                report.rejects.add(rejected);
                continue;
            }
            report.rows_loaded += 1;
            counter.add(&values, record.line as i64);
            if !counter.full() {
                continue;
            }
            copied_rows += counter.drain_into(&rows, &mut chunk);
        } else {
            let row_start = chunk.len();
            if let Err(rejected) = rows.encode(&record, &mut chunk) {
                chunk.truncate(row_start);
                report.rejects.add(rejected);
                continue;
            }
            report.rows_loaded += 1;
            copied_rows += 1;
        }
        if chunk.len() >= COPY_CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(COPY_CHUNK + 64 * 1024));
            let index = ready_sink(&mut copies, next_sink, copying).await?;
            copies[index].as_mut().start_send(Bytes::from(full))?;
            next_sink = (index + 1) % copies.len();
        }
    }
    report.duplicates_checked = rows.seen.is_some();
    if let Some(counter) = counter.as_mut() {
        copied_rows += counter.drain_into(&rows, &mut chunk);
    }
    if !chunk.is_empty() {
        let index = ready_sink(&mut copies, next_sink, copying).await?;
        copies[index].send(Bytes::from(chunk)).await?;
    }
    let copied = finish_copies(copies).await?;
    debug_assert_eq!(copied, copied_rows);
    Ok(report)
}

/// A binary COPY into `source`'s staging table on each of `sinks`, its header sent.
async fn open_copies(
    sinks: &[&tokio_postgres::Transaction<'_>],
    source: &Source,
) -> Result<Vec<Pin<Box<tokio_postgres::CopyInSink<Bytes>>>>, tokio_postgres::Error> {
    let mut column_list: Vec<String> = source
        .columns
        .iter()
        .map(|column| quote_ident(&column.name))
        .collect();
    if source.counted() {
        column_list.push(catalog::staging::COUNT_COLUMN.to_owned());
    }
    let copy = format!(
        "COPY {} (_file_id, _line, _batch, {}) FROM STDIN (FORMAT binary)",
        source.rows_table(),
        column_list.join(", ")
    );
    let mut copies = Vec::with_capacity(sinks.len());
    for tx in sinks {
        let mut sink = Box::pin(tx.copy_in::<_, Bytes>(&copy).await?);
        sink.send(Bytes::from_static(COPY_HEADER)).await?;
        copies.push(sink);
    }
    Ok(copies)
}

/// Ends every COPY; returns the rows they took in all.
async fn finish_copies(
    copies: Vec<Pin<Box<tokio_postgres::CopyInSink<Bytes>>>>,
) -> Result<u64, tokio_postgres::Error> {
    let mut copied = 0;
    for mut sink in copies {
        sink.send(Bytes::from_static(COPY_TRAILER)).await?;
        copied += sink.as_mut().finish().await?;
    }
    Ok(copied)
}

/// Deletes every row of `file_id` (a file of the batch dated `batch_date`) from `source`'s
/// staging table; returns how many. The batch finds the rows' block ranges through the BRIN
/// index on `_batch` (there is none on `_file_id`: `catalog::staging`).
pub async fn delete_file_rows(
    tx: &tokio_postgres::Transaction<'_>,
    source: &Source,
    file_id: i64,
    batch_date: chrono::NaiveDate,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        &format!(
            "DELETE FROM {} WHERE _batch = $2 AND _file_id = $1",
            source.rows_table()
        ),
        &[&file_id, &batch_date],
    )
    .await
}

/// Removes the mark saying other COPY connections committed rows of `file_id`; whether
/// there was one.
pub async fn clear_leftover_mark(
    tx: &tokio_postgres::Transaction<'_>,
    file_id: i64,
) -> Result<bool, tokio_postgres::Error> {
    let cleared = tx
        .execute(
            "DELETE FROM ops.copy_leftovers WHERE file_id = $1",
            &[&file_id],
        )
        .await?;
    Ok(cleared > 0)
}

/// The first of `copies` ready to take a chunk, looking from `from` on: a backend that is
/// behind gets fewer chunks instead of holding up the others. Only the first (the consumer's
/// own transaction) while the stager is COPYing other files too (`copying` above 1).
async fn ready_sink(
    copies: &mut [Pin<Box<tokio_postgres::CopyInSink<Bytes>>>],
    from: usize,
    copying: &std::sync::atomic::AtomicUsize,
) -> Result<usize, tokio_postgres::Error> {
    let usable = if copying.load(std::sync::atomic::Ordering::Relaxed) > 1 {
        1
    } else {
        copies.len()
    };
    futures::future::poll_fn(|cx| {
        for offset in 0..usable {
            let index = (from + offset) % usable;
            if copies[index].as_mut().poll_ready(cx)?.is_ready() {
                return std::task::Poll::Ready(Ok(index));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn read_error(error: ReadError) -> LoadError {
    match error {
        ReadError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<SourceError>()) => {
            LoadError::Failed(Failure::transient(io))
        }
        ReadError::Io(io) => LoadError::File(format!("the file cannot be decoded: {io}")),
        too_long @ ReadError::RecordTooLong { .. } => LoadError::File(too_long.to_string()),
    }
}

/// Moves rows whose natural key repeats an earlier line of the same file to the rejects.
pub async fn reject_duplicate_keys(
    tx: &tokio_postgres::Transaction<'_>,
    source: &Source,
    file_id: i64,
    batch_date: chrono::NaiveDate,
) -> Result<Vec<RejectedRow>, tokio_postgres::Error> {
    if source.natural_key.is_empty() {
        return Ok(Vec::new());
    }
    let table = source.rows_table();
    let same_key: Vec<String> = source
        .natural_key
        .iter()
        .map(|key| format!("earlier.{0} = later.{0}", quote_ident(key)))
        .collect();
    let key_text: Vec<String> = source
        .natural_key
        .iter()
        .map(|key| format!("later.{}::text", quote_ident(key)))
        .collect();
    let sql = format!(
        "DELETE FROM {table} AS later USING {table} AS earlier
          WHERE later._batch = $2 AND earlier._batch = $2
            AND later._file_id = $1 AND earlier._file_id = $1 AND earlier._line < later._line AND {}
         RETURNING later._line, concat_ws(',', {})",
        same_key.join(" AND "),
        key_text.join(", ")
    );
    let rows = tx.query(&sql, &[&file_id, &batch_date]).await?;
    let key_names = source.natural_key.join(",");
    let mut rejected: Vec<RejectedRow> = rows
        .iter()
        .map(|row| {
            let value: String = row.get(1);
            RejectedRow {
                line: row.get(0),
                column: Some(key_names.clone()),
                reason: format!(
                    "duplicate {key_names} {value}: an earlier line of the file has it"
                ),
                value: Some(value),
            }
        })
        .collect();
    rejected.sort_by_key(|row| row.line);
    Ok(rejected)
}

/// Stores rejected rows (bulk insert).
pub async fn store_rejects(
    tx: &tokio_postgres::Transaction<'_>,
    file_id: i64,
    rows: &[RejectedRow],
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let lines: Vec<i64> = rows.iter().map(|row| row.line).collect();
    let columns: Vec<Option<&str>> = rows.iter().map(|row| row.column.as_deref()).collect();
    let values: Vec<Option<&str>> = rows.iter().map(|row| row.value.as_deref()).collect();
    let reasons: Vec<&str> = rows.iter().map(|row| row.reason.as_str()).collect();
    tx.execute(
        "INSERT INTO ops.rejected_rows (file_id, line, column_name, value, reason)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])",
        &[&file_id, &lines, &columns, &values, &reasons],
    )
    .await?;
    Ok(())
}
