//! Staging one file: in the consumer's transaction, stream the object into its staging table,
//! keep the rejects, and swap the batch's source over from any older version of the file.
//!
//! [`Stager::stage_file`] reads as its list of steps: find the file's dataset and source, lock
//! its ledger row and its batch source, fetch the object, COPY its rows ([`copy`]), apply the
//! reject policy and record the outcome ([`finish`]).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use catalog::Source;
use contract::{BatchKey, Envelope, Event, FileLanded};
use runtime::{Failure, ServiceContext};
use tokio_postgres::Transaction;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::load::{self, LoadError};

mod copy;
mod finish;

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

/// The file being staged and where it goes.
struct Job<'a> {
    event_id: Uuid,
    batch: BatchKey,
    landed: &'a FileLanded,
    source: &'a Source,
    /// The dataset's share of rejected rows over which the whole file is rejected.
    reject_limit: catalog::RejectLimit,
}

impl Stager {
    /// Stages the file a `FileLanded` names and returns the event that says how it went.
    pub async fn stage_file(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope<Event>,
        landed: &FileLanded,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let job = self.job(envelope, landed)?;
        let currently_staged = lock_file(tx, &job).await?;
        lock_batch_source(tx, &job).await?;
        let Some(object) = self.fetch(&job).await? else {
            let reason =
                "the object no longer exists in S3 (deleted before it could be staged)".to_owned();
            return self
                .finish_rejected(tx, &job, "missing", reason, &[], 0)
                .await;
        };
        if superseded_before_staging(tx, &job, &object).await? {
            return Ok(Vec::new());
        }
        mark_staging_started(tx, &job).await?;
        let mut helper_clients = self.helper_connections(&object, currently_staged).await?;
        let helpers = copy::begin_helpers(&mut helper_clients).await?;
        tx.batch_execute("SAVEPOINT load").await?;
        let copy_span = copy::span(&job, helpers.len());
        let loaded = self
            .copy_rows(tx, &helpers, &job, object.body, currently_staged)
            .instrument(copy_span.clone())
            .await;
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
        let parallel = copy::commit_helpers(tx, helpers, &job).await?;
        finish::reject_duplicates(tx, &job, &mut report).await?;
        if let Some(reason) = finish::over_threshold(&job, &report) {
            finish::undo_load(tx, &job, parallel).await?;
            let rejects = &report.rejects;
            return self
                .finish_rejected(tx, &job, "rejected", reason, &rejects.kept, rejects.count)
                .await;
        }
        let replaced_file_id = finish::record_staged(tx, &job, &report).await?;
        let event = finish::staged(&job, &report, &copy_span, replaced_file_id);
        Ok(vec![event])
    }

    /// The file's batch, dataset and source, from the event and this stager's datasets.
    fn job<'a>(
        &'a self,
        envelope: &Envelope<Event>,
        landed: &'a FileLanded,
    ) -> Result<Job<'a>, Failure> {
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
        Ok(Job {
            event_id: envelope.event_id,
            batch,
            landed,
            source,
            reject_limit: dataset.reject_limit(),
        })
    }

    /// The object as it is now in S3; `None` when it no longer exists. Other errors are
    /// classified by [`runtime::failure::s3`].
    async fn fetch(&self, job: &Job<'_>) -> Result<Option<GetObjectOutput>, Failure> {
        let landed = job.landed;
        let fetched = self
            .s3
            .get_object()
            .bucket(&landed.bucket)
            .key(&landed.key)
            .send()
            .await;
        match fetched {
            Ok(object) => Ok(Some(object)),
            Err(error)
                if matches!(error.as_service_error(), Some(GetObjectError::NoSuchKey(_))) =>
            {
                Ok(None)
            }
            Err(error) => Err(runtime::failure::s3(
                error,
                format!("fetching s3://{}/{}", landed.bucket, landed.key),
            )),
        }
    }
}

/// Locks the file's ledger row; returns whether the file is the staged one of its batch
/// already (a replay stages it again). Removes what an earlier attempt left behind.
async fn lock_file(tx: &Transaction<'_>, job: &Job<'_>) -> Result<bool, Failure> {
    let file_id = job.landed.file_id;
    let Some(known) = tx
        .query_opt(
            "SELECT EXISTS (SELECT 1 FROM ops.staged_sources s WHERE s.file_id = f.file_id)
               FROM ops.files f WHERE f.file_id = $1 FOR UPDATE OF f",
            &[&file_id],
        )
        .await?
    else {
        return Err(Failure::permanent(anyhow::anyhow!(
            "file {file_id} is not in the ledger"
        )));
    };
    let currently_staged: bool = known.get(0);
    if !currently_staged && load::clear_leftover_mark(tx, file_id).await? {
        // Rows an earlier attempt's other COPY connections committed before it died: never
        // visible (the file was not staged), removed whichever way this attempt ends.
        let removed =
            load::delete_file_rows(tx, job.source, file_id, job.batch.ingestion_date).await?;
        tracing::info!(
            file_id,
            rows = removed,
            "removed the rows an earlier attempt left behind"
        );
    }
    Ok(currently_staged)
}

/// One load per batch source at a time, so versions of a file replace each other in order.
async fn lock_batch_source(tx: &Transaction<'_>, job: &Job<'_>) -> Result<(), Failure> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!(
            "slot:{}/{}/{}",
            job.batch.dataset, job.batch.ingestion_date, job.source.name
        )],
    )
    .await?;
    Ok(())
}

/// Whether the object was overwritten since it was announced; if so the file is recorded as
/// superseded (its newer version stages instead).
async fn superseded_before_staging(
    tx: &Transaction<'_>,
    job: &Job<'_>,
    object: &GetObjectOutput,
) -> Result<bool, Failure> {
    let current_etag = object.e_tag().unwrap_or_default().trim_matches('"');
    if current_etag == job.landed.etag {
        return Ok(false);
    }
    tx.execute(
        "UPDATE ops.files SET state = 'superseded', finished_at = clock_timestamp(),
                reason = 'a newer version of the object replaced it before it was staged'
          WHERE file_id = $1",
        &[&job.landed.file_id],
    )
    .await?;
    tracing::info!(
        file_id = job.landed.file_id,
        "object was overwritten before staging; its newer version stages instead"
    );
    Ok(true)
}

async fn mark_staging_started(tx: &Transaction<'_>, job: &Job<'_>) -> Result<(), Failure> {
    tx.execute(
        "UPDATE ops.files SET staging_started_at = clock_timestamp() WHERE file_id = $1",
        &[&job.landed.file_id],
    )
    .await?;
    Ok(())
}
