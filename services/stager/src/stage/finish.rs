//! After the COPY: the reject policy, and the file recorded as staged or rejected with its
//! log line, metrics and event.

use contract::{Envelope, Event, FileRejected, StagingLoaded};
use runtime::Failure;
use tokio_postgres::Transaction;

use super::{Job, Stager};
use crate::load::{self, LoadReport, RejectedRow};

/// Rejects the rows whose natural key repeats an earlier line (unless the COPY did already)
/// and puts the kept rejects in line order.
pub(super) async fn reject_duplicates(
    tx: &Transaction<'_>,
    job: &Job<'_>,
    report: &mut LoadReport,
) -> Result<(), Failure> {
    if !report.duplicates_checked {
        for duplicate in load::reject_duplicate_keys(
            tx,
            job.source,
            job.landed.file_id,
            job.batch.ingestion_date,
        )
        .await?
        {
            report.rows_loaded -= 1;
            report.rejects.add(duplicate);
        }
    }
    report.rejects.kept.sort_by_key(|row| row.line);
    Ok(())
}

/// Why the whole file is rejected, when its rejected rows are over the dataset's limit
/// (`reject_max_share`, `reject_max_rows`).
pub(super) fn over_threshold(job: &Job<'_>, report: &LoadReport) -> Option<String> {
    let rejected = report.rejects.count;
    if !job.reject_limit.exceeded(rejected, report.rows_read) {
        return None;
    }
    let first = report
        .rejects
        .kept
        .first()
        .map(|row| format!("; first: {row}"))
        .unwrap_or_default();
    Some(format!(
        "{rejected} of {} rows rejected ({:.1}%), over {}{first}",
        report.rows_read,
        100.0 * rejected as f64 / report.rows_read.max(1) as f64,
        job.reject_limit.describe(),
    ))
}

/// Takes the file's rows out again: back to the savepoint before the COPY, and the rows the
/// extra connections committed.
pub(super) async fn undo_load(
    tx: &Transaction<'_>,
    job: &Job<'_>,
    parallel: bool,
) -> Result<(), Failure> {
    tx.batch_execute("ROLLBACK TO SAVEPOINT load").await?;
    if parallel {
        // Committed by the other connections: removed here, with the rejection (and
        // their mark, which the rollback to the savepoint brought back).
        let file_id = job.landed.file_id;
        load::delete_file_rows(tx, job.source, file_id, job.batch.ingestion_date).await?;
        load::clear_leftover_mark(tx, file_id).await?;
    }
    Ok(())
}

/// Records the file as the staged one of its batch source, with its rejects, replacing the
/// older version's rows; returns the older version's id.
pub(super) async fn record_staged(
    tx: &Transaction<'_>,
    job: &Job<'_>,
    report: &LoadReport,
) -> Result<Option<i64>, Failure> {
    let landed = job.landed;
    load::store_rejects(tx, landed.file_id, &report.rejects.kept).await?;
    let replaced_file_id = replace_previous_version(tx, job).await?;
    tx.execute(
        "INSERT INTO ops.staged_sources (dataset, ingestion_date, source, file_id, rows_loaded)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (dataset, ingestion_date, source)
         DO UPDATE SET file_id = EXCLUDED.file_id, rows_loaded = EXCLUDED.rows_loaded, staged_at = clock_timestamp()",
        &[&job.batch.dataset, &job.batch.ingestion_date, &job.source.name, &landed.file_id, &(report.rows_loaded as i64)],
    )
    .await?;
    tx.execute(
        "UPDATE ops.files SET state = 'staged', reason = NULL, rows_loaded = $2, rows_rejected = $3,
                finished_at = clock_timestamp()
          WHERE file_id = $1",
        &[&landed.file_id, &(report.rows_loaded as i64), &(report.rejects.count as i64)],
    )
    .await?;
    Ok(replaced_file_id)
}

/// Logs and counts the staged file and returns its `StagingLoaded`.
pub(super) fn staged(
    job: &Job<'_>,
    report: &LoadReport,
    copy_span: &tracing::Span,
    replaced_file_id: Option<i64>,
) -> Envelope<Event> {
    let (landed, source) = (job.landed, job.source);
    let rejected = report.rejects.count;
    tracing::info!(
        file_id = landed.file_id,
        rows_loaded = report.rows_loaded,
        rows_rejected = rejected,
        table = source.qualified_table(),
        "file staged"
    );
    copy_span.record("landfall.rows_loaded", report.rows_loaded);
    copy_span.record("landfall.rows_rejected", rejected);
    let labels =
        runtime::metrics::attributes(&[("dataset", &job.batch.dataset), ("source", &source.name)]);
    let metrics = runtime::metrics::metrics();
    metrics.rows_staged.add(report.rows_loaded, &labels);
    metrics.rows_rejected.add(rejected, &labels);
    metrics.files.add(
        1,
        &runtime::metrics::attributes(&[("dataset", &job.batch.dataset), ("outcome", "staged")]),
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
    event.into_event()
}

impl Stager {
    /// Records the file as rejected (or missing) with the reason, keeps its reject rows, and
    /// announces it. Rows of an older version of the file stay staged.
    pub(super) async fn finish_rejected(
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
