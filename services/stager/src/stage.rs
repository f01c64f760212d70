//! Staging one file: in the consumer's transaction, stream the object into its staging table,
//! keep the rejects, and swap the batch's source over from any older version of the file.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_s3::operation::get_object::GetObjectError;
use contract::{BatchKey, Envelope, Event, FileLanded, FileRejected, StagingLoaded};
use runtime::datasets::Source;
use runtime::{Failure, ServiceContext};
use tokio::io::AsyncRead;
use tokio_postgres::Transaction;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::csv_stream::RecordReader;
use crate::load::{self, LoadError, RejectedRow, SourceError};

/// Stages files; one per `FileLanded`.
pub struct Stager {
    pub ctx: ServiceContext,
    pub s3: aws_sdk_s3::Client,
    /// Rejected rows stored in full per file; the rest are counted.
    pub max_rejects_kept: usize,
    /// Where the extra COPY connections of a large file come from; `None` with one connection.
    pub copy_pool: Option<deadpool_postgres::Pool>,
    /// Connections a large file is COPYed over, the consumer's own included.
    pub copy_connections: usize,
    /// Files at least this large are COPYed over `copy_connections` connections.
    pub parallel_min_bytes: u64,
    /// The files this stager is COPYing now: the extra connections of a large file take rows
    /// only while it is the only one ([`load::load_rows`]).
    pub copying: Arc<AtomicUsize>,
}

/// Counts a file in [`Stager::copying`] while it lives.
struct Copying<'a>(&'a AtomicUsize);

impl<'a> Copying<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Copying(count)
    }
}

impl Drop for Copying<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The file being staged and where it goes.
struct Job<'a> {
    event_id: Uuid,
    batch: BatchKey,
    landed: &'a FileLanded,
    source: &'a Source,
}

impl Stager {
    /// Stages the file a `FileLanded` names and returns the event that says how it went.
    pub async fn stage_file(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope<Event>,
        landed: &FileLanded,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let batch = envelope.batch.clone().ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "file.landed for file {} has no batch",
                landed.file_id
            ))
        })?;
        let dataset = self.ctx.datasets.get(&batch.dataset).ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "dataset '{}' is not defined in this stager's datasets",
                batch.dataset
            ))
        })?;
        let source = dataset.source(&landed.source).ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "dataset '{}' has no source '{}'",
                batch.dataset,
                landed.source
            ))
        })?;
        let job = Job {
            event_id: envelope.event_id,
            batch,
            landed,
            source,
        };
        // Whether the file is the staged one of its batch already (a replay stages it again).
        let Some(known) = tx
            .query_opt(
                "SELECT EXISTS (SELECT 1 FROM ops.staged_sources s WHERE s.file_id = f.file_id)
                   FROM ops.files f WHERE f.file_id = $1 FOR UPDATE OF f",
                &[&landed.file_id],
            )
            .await?
        else {
            return Err(Failure::permanent(anyhow::anyhow!(
                "file {} is not in the ledger",
                landed.file_id
            )));
        };
        let currently_staged: bool = known.get(0);
        if !currently_staged && load::clear_leftover_mark(tx, landed.file_id).await? {
            // Rows an earlier attempt's other COPY connections committed before it died: never
            // visible (the file was not staged), removed whichever way this attempt ends.
            let removed =
                load::delete_file_rows(tx, source, landed.file_id, job.batch.ingestion_date)
                    .await?;
            tracing::info!(
                file_id = landed.file_id,
                rows = removed,
                "removed the rows an earlier attempt left behind"
            );
        }
        // One load per batch source at a time, so versions of a file replace each other in order.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!(
                "slot:{}/{}/{}",
                job.batch.dataset, job.batch.ingestion_date, source.name
            )],
        )
        .await?;
        let object = match self
            .s3
            .get_object()
            .bucket(&landed.bucket)
            .key(&landed.key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(error)
                if matches!(error.as_service_error(), Some(GetObjectError::NoSuchKey(_))) =>
            {
                let reason =
                    "the object no longer exists in S3 (deleted before it could be staged)"
                        .to_owned();
                return self
                    .finish_rejected(tx, &job, "missing", reason, &[], 0)
                    .await;
            }
            Err(error) => {
                let transient = runtime::s3::is_transient(&error);
                let error = anyhow::Error::new(error)
                    .context(format!("fetching s3://{}/{}", landed.bucket, landed.key));
                return Err(if transient {
                    Failure::Transient(error)
                } else {
                    Failure::Permanent(error)
                });
            }
        };
        let current_etag = object.e_tag().unwrap_or_default().trim_matches('"');
        if current_etag != landed.etag {
            tx.execute(
                "UPDATE ops.files SET state = 'superseded', finished_at = clock_timestamp(),
                        reason = 'a newer version of the object replaced it before it was staged'
                  WHERE file_id = $1",
                &[&landed.file_id],
            )
            .await?;
            tracing::info!(
                file_id = landed.file_id,
                "object was overwritten before staging; its newer version stages instead"
            );
            return Ok(Vec::new());
        }
        tx.execute(
            "UPDATE ops.files SET staging_started_at = clock_timestamp() WHERE file_id = $1",
            &[&landed.file_id],
        )
        .await?;
        // A large file is COPYed over several connections: the others commit their share
        // before this transaction stages the file, and `staging.<table>` shows the rows only
        // from then on (migration 0013). Not for a file that is staged already: its rows are
        // visible, and the new copy's would be too before this transaction removes the old.
        let size = u64::try_from(object.content_length().unwrap_or(0)).unwrap_or(0);
        let mut helper_clients = Vec::new();
        if let Some(pool) = &self.copy_pool
            && size >= self.parallel_min_bytes
            && !currently_staged
        {
            for _ in 1..self.copy_connections {
                helper_clients.push(pool.get().await?);
            }
        }
        let mut helpers = Vec::with_capacity(helper_clients.len());
        for client in &mut helper_clients {
            let helper = client.transaction().await?;
            // This transaction waits for the others' COPY (its rows go to them in turn), which
            // PostgreSQL cannot see: a lock request queued between them (a migration's DDL)
            // would wait for ever. The others give up instead, and the file is retried.
            //
            // Its commit need not wait for the disk: the staging transaction's own commit,
            // which makes the rows visible, flushes the WAL past it; a crash before that leaves
            // rows the retry removes anyway.
            helper
                .batch_execute("SET LOCAL lock_timeout = '10s'; SET LOCAL synchronous_commit = off")
                .await?;
            helpers.push(helper);
        }
        let mut reader = RecordReader::new(decoded_body(object.body, &landed.key));
        tx.batch_execute("SAVEPOINT load").await?;
        let copy_span = tracing::info_span!(
            "copy",
            otel.name = format!("COPY {}", source.rows_table()),
            otel.kind = "client",
            db.system.name = "postgresql",
            db.operation.name = "COPY",
            db.collection.name =
                format!("{}.{}", runtime::datasets::ROWS_SCHEMA, source.table_name()),
            landfall.copy_connections = 1 + helpers.len(),
            landfall.dataset = job.batch.dataset.as_str(),
            landfall.batch = job.batch.ingestion_date.to_string(),
            landfall.source = source.name.as_str(),
            landfall.rows_loaded = tracing::field::Empty,
            landfall.rows_rejected = tracing::field::Empty,
        );
        let sinks: Vec<&Transaction<'_>> = std::iter::once(tx)
            .chain(helpers.iter().map(|helper| &**helper))
            .collect();
        let copying = Copying::start(&self.copying);
        let loaded = load::load_rows(
            &sinks,
            &self.copying,
            source,
            landed.file_id,
            job.batch.ingestion_date,
            &mut reader,
            currently_staged,
            self.max_rejects_kept,
        )
        .instrument(copy_span.clone())
        .await;
        drop(copying);
        let mut report = match loaded {
            Ok(report) => report,
            Err(LoadError::Failed(failure)) => return Err(failure),
            Err(LoadError::File(reason)) => {
                // The other connections' shares go with their transactions, never committed.
                drop(helpers);
                tx.batch_execute("ROLLBACK TO SAVEPOINT load").await?;
                return self
                    .finish_rejected(tx, &job, "rejected", reason, &[], 0)
                    .await;
            }
        };
        let parallel = !helpers.is_empty();
        for helper in helpers {
            helper
                .execute(
                    "INSERT INTO ops.copy_leftovers (file_id) VALUES ($1)",
                    &[&landed.file_id],
                )
                .await?;
            helper.commit().await?;
        }
        if parallel {
            // Leftovers only if this transaction does not commit.
            load::clear_leftover_mark(tx, landed.file_id).await?;
        }
        if !report.duplicates_checked {
            for duplicate in
                load::reject_duplicate_keys(tx, source, landed.file_id, job.batch.ingestion_date)
                    .await?
            {
                report.rows_loaded -= 1;
                report.rejects.add(duplicate);
            }
        }
        report.rejects.kept.sort_by_key(|row| row.line);
        let rejected = report.rejects.count;
        if report.rows_read > 0
            && rejected as f64 / report.rows_read as f64 > dataset.reject_threshold
        {
            tx.batch_execute("ROLLBACK TO SAVEPOINT load").await?;
            if parallel {
                // Committed by the other connections: removed here, with the rejection (and
                // their mark, which the rollback to the savepoint brought back).
                load::delete_file_rows(tx, source, landed.file_id, job.batch.ingestion_date)
                    .await?;
                load::clear_leftover_mark(tx, landed.file_id).await?;
            }
            let first = report
                .rejects
                .kept
                .first()
                .map(|row| format!("; first: {row}"))
                .unwrap_or_default();
            let reason = format!(
                "{rejected} of {} rows rejected ({:.1}%), over the dataset's {}% threshold{first}",
                report.rows_read,
                100.0 * rejected as f64 / report.rows_read as f64,
                100.0 * dataset.reject_threshold,
            );
            return self
                .finish_rejected(tx, &job, "rejected", reason, &report.rejects.kept, rejected)
                .await;
        }
        load::store_rejects(tx, landed.file_id, &report.rejects.kept).await?;
        let replaced_file_id = replace_previous_version(tx, &job).await?;
        tx.execute(
            "INSERT INTO ops.staged_sources (dataset, ingestion_date, source, file_id, rows_loaded)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (dataset, ingestion_date, source)
             DO UPDATE SET file_id = EXCLUDED.file_id, rows_loaded = EXCLUDED.rows_loaded, staged_at = clock_timestamp()",
            &[&job.batch.dataset, &job.batch.ingestion_date, &source.name, &landed.file_id, &(report.rows_loaded as i64)],
        )
        .await?;
        tx.execute(
            "UPDATE ops.files SET state = 'staged', reason = NULL, rows_loaded = $2, rows_rejected = $3,
                    finished_at = clock_timestamp()
              WHERE file_id = $1",
            &[&landed.file_id, &(report.rows_loaded as i64), &(rejected as i64)],
        )
        .await?;
        tracing::info!(
            file_id = landed.file_id,
            rows_loaded = report.rows_loaded,
            rows_rejected = rejected,
            table = source.qualified_table(),
            "file staged"
        );
        copy_span.record("landfall.rows_loaded", report.rows_loaded);
        copy_span.record("landfall.rows_rejected", rejected);
        let labels = runtime::metrics::attributes(&[
            ("dataset", &job.batch.dataset),
            ("source", &source.name),
        ]);
        let metrics = runtime::metrics::metrics();
        metrics.rows_staged.add(report.rows_loaded, &labels);
        metrics.rows_rejected.add(rejected, &labels);
        metrics.files.add(
            1,
            &runtime::metrics::attributes(&[
                ("dataset", &job.batch.dataset),
                ("outcome", "staged"),
            ]),
        );
        let event = Envelope::new(
            Some(job.batch.clone()),
            Some(job.event_id),
            StagingLoaded {
                file_id: landed.file_id,
                bucket: landed.bucket.clone(),
                key: landed.key.clone(),
                version: landed.version.clone(),
                source: source.name.clone(),
                table: format!("staging.{}", source.table_name()),
                rows_loaded: report.rows_loaded,
                rows_rejected: rejected,
                replaced_file_id,
            },
        );
        Ok(vec![event.into_event()])
    }

    /// Records the file as rejected (or missing) with the reason, keeps its reject rows, and
    /// announces it. Rows of an older version of the file stay staged.
    async fn finish_rejected(
        &self,
        tx: &Transaction<'_>,
        job: &Job<'_>,
        state: &str,
        reason: String,
        rejects: &[RejectedRow],
        rows_rejected: u64,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        // A reason quotes what was wrong (a header name, a value): keep it bounded.
        let reason = load::printable(&reason, load::MAX_REASON_CHARS);
        load::store_rejects(tx, job.landed.file_id, rejects).await?;
        tx.execute(
            "UPDATE ops.files SET state = $2, reason = $3, rows_loaded = 0, rows_rejected = $4,
                    finished_at = clock_timestamp()
              WHERE file_id = $1",
            &[
                &job.landed.file_id,
                &state,
                &reason,
                &(rows_rejected as i64),
            ],
        )
        .await?;
        tracing::warn!(
            file_id = job.landed.file_id,
            key = job.landed.key,
            reason,
            "file rejected"
        );
        let metrics = runtime::metrics::metrics();
        metrics.files.add(
            1,
            &runtime::metrics::attributes(&[("dataset", &job.batch.dataset), ("outcome", state)]),
        );
        // A file over the reject threshold: its bad rows count as rejected like a staged
        // file's (the rest of its rows were not staged, which files{outcome=rejected} says).
        if rows_rejected > 0 {
            metrics.rows_rejected.add(
                rows_rejected,
                &runtime::metrics::attributes(&[
                    ("dataset", &job.batch.dataset),
                    ("source", &job.source.name),
                ]),
            );
        }
        let event = Envelope::new(
            Some(job.batch.clone()),
            Some(job.event_id),
            FileRejected {
                file_id: job.landed.file_id,
                bucket: job.landed.bucket.clone(),
                key: job.landed.key.clone(),
                source: job.source.name.clone(),
                reason,
                rows_rejected,
            },
        );
        Ok(vec![event.into_event()])
    }
}

/// Removes the staged rows of the file version this one replaces; returns its id.
async fn replace_previous_version(
    tx: &Transaction<'_>,
    job: &Job<'_>,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let previous = tx
        .query_opt(
            "SELECT file_id FROM ops.staged_sources WHERE dataset = $1 AND ingestion_date = $2 AND source = $3",
            &[&job.batch.dataset, &job.batch.ingestion_date, &job.source.name],
        )
        .await?
        .map(|row| row.get::<_, i64>(0))
        .filter(|&previous| previous != job.landed.file_id);
    if let Some(previous) = previous {
        load::delete_file_rows(tx, job.source, previous, job.batch.ingestion_date).await?;
        tx.execute(
            "UPDATE ops.files SET state = 'superseded', reason = format('replaced by file %s', $2::bigint)
              WHERE file_id = $1",
            &[&previous, &job.landed.file_id],
        )
        .await?;
        tracing::info!(
            previous,
            file_id = job.landed.file_id,
            "replaced the rows of the older version"
        );
    }
    Ok(previous)
}

/// The object's bytes as a reader: gunzipped for `.gz` keys. Download errors are tagged as
/// [`SourceError`] so they are retried, while decoding errors reject the file.
fn decoded_body(
    body: aws_sdk_s3::primitives::ByteStream,
    key: &str,
) -> Pin<Box<dyn AsyncRead + Send>> {
    let chunks = futures::stream::unfold(body, |mut body| async move {
        let chunk = body.next().await?;
        Some((
            chunk.map_err(|error| std::io::Error::other(SourceError(error.to_string()))),
            body,
        ))
    });
    let reader = tokio_util::io::StreamReader::new(Box::pin(chunks));
    if key.ends_with(".gz") {
        let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(reader);
        decoder.multiple_members(true);
        Box::pin(decoder)
    } else {
        Box::pin(reader)
    }
}
