//! The transformer: tracks each batch's staged sources and, once every required source is
//! staged, runs the dataset's SQL models for that batch in dependency order (independent ones in
//! parallel, each in its own transaction; or all in one transaction with a parallelism of 1),
//! and publishes `TransformCompleted`. A batch is re-run whenever one of its files changes.

use std::sync::Arc;

use anyhow::Context as _;
use catalog::models::{Model, Models};
use contract::{BatchKey, Envelope, Event};
use pipeline::transform::transform_batch;
use runtime::{CommonConfig, Failure, Handler, Incoming, MessageKind, ServiceContext, Shutdown};
use tokio_postgres::Transaction;

pub const STAGE: runtime::Stage = runtime::Stage::Transformer;
pub const SERVICE: &str = STAGE.name();

/// Handles `staging.loaded`: batch bookkeeping, then the transform when the batch is complete.
pub struct Transformer {
    pub ctx: ServiceContext,
    pub models: Arc<Models>,
    /// The connections models run on when they run in parallel: a pool of its own, so models
    /// never wait for connections held by consumers waiting for the dataset's lock.
    pub models_pool: deadpool_postgres::Pool,
}

impl Handler for Transformer {
    async fn handle(
        &self,
        message: &Incoming,
        tx: &Transaction<'_>,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let (envelope, (), batch) = message.batch_event(STAGE, |event| {
            matches!(event, Event::StagingLoaded(_)).then_some(())
        })?;
        let Some(file_ids) = self.track_batch(tx, batch).await? else {
            return Ok(Vec::new());
        };
        let models = self
            .models
            .for_dataset(&batch.dataset)
            .cloned()
            .unwrap_or_default();
        let all: Vec<&Model> = models.models().iter().collect();
        let parallel = Some((&self.models_pool, self.ctx.config.transform_parallelism));
        let service = &self.ctx.config.service_name;
        let cause = Some(envelope.event_id);
        let mut events =
            vec![transform_batch(tx, batch, &all, file_ids, service, cause, parallel).await?];
        for (later, file_ids) in self.later_batches_to_rerun(tx, batch).await? {
            tracing::info!(batch = %later, after = %batch, "re-running a later batch: its reports cover this one");
            events
                .push(transform_batch(tx, &later, &all, file_ids, service, cause, parallel).await?);
        }
        Ok(events)
    }
}

impl Transformer {
    /// In a dataset with a delta source, a report as of D covers every batch up to D: when a
    /// batch is transformed after later ones were (it landed late, or was corrected), those
    /// later batches are transformed again, in date order, from their staged files, in the
    /// same transaction. A snapshot dataset's batches each carry their own state: none is.
    async fn later_batches_to_rerun(
        &self,
        tx: &Transaction<'_>,
        batch: &BatchKey,
    ) -> Result<Vec<(BatchKey, Vec<i64>)>, Failure> {
        let delta = self
            .ctx
            .datasets
            .get(&batch.dataset)
            .is_some_and(|dataset| {
                dataset
                    .sources
                    .iter()
                    .any(|source| source.mode() == catalog::Mode::Delta)
            });
        if !delta {
            return Ok(Vec::new());
        }
        let rows = tx
            .query(
                "SELECT b.ingestion_date,
                        (SELECT array_agg(s.file_id ORDER BY s.file_id) FROM ops.staged_sources s
                          WHERE s.dataset = b.dataset AND s.ingestion_date = b.ingestion_date)
                   FROM ops.batches b
                  WHERE b.dataset = $1 AND b.ingestion_date > $2 AND b.transformed_files IS NOT NULL
                  ORDER BY b.ingestion_date
                    FOR UPDATE OF b",
                &[&batch.dataset, &batch.ingestion_date],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let later = BatchKey {
                    dataset: batch.dataset.clone(),
                    ingestion_date: row.get(0),
                };
                (later, row.get::<_, Option<Vec<i64>>>(1).unwrap_or_default())
            })
            .collect())
    }

    /// Records which sources the batch has; returns the staged file ids when the batch is
    /// complete and was not yet transformed from exactly these files.
    async fn track_batch(
        &self,
        tx: &Transaction<'_>,
        batch: &BatchKey,
    ) -> Result<Option<Vec<i64>>, Failure> {
        let dataset = self.ctx.datasets.get(&batch.dataset).ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "dataset '{}' is not defined in this transformer's datasets",
                batch.dataset
            ))
        })?;
        // The row lock serialises the events of one batch: concurrent ones lead to one run.
        tx.execute(
            "INSERT INTO ops.batches (dataset, ingestion_date) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&batch.dataset, &batch.ingestion_date],
        )
        .await?;
        let row = tx
            .query_one(
                "SELECT transformed_files FROM ops.batches WHERE dataset = $1 AND ingestion_date = $2 FOR UPDATE",
                &[&batch.dataset, &batch.ingestion_date],
            )
            .await?;
        let transformed_files: Option<Vec<i64>> = row.get(0);
        let staged = tx
            .query(
                "SELECT source, file_id FROM ops.staged_sources WHERE dataset = $1 AND ingestion_date = $2 ORDER BY source",
                &[&batch.dataset, &batch.ingestion_date],
            )
            .await?;
        let sources: Vec<String> = staged.iter().map(|row| row.get(0)).collect();
        let mut file_ids: Vec<i64> = staged.iter().map(|row| row.get(1)).collect();
        file_ids.sort_unstable();
        let missing: Vec<String> = dataset
            .required_sources()
            .map(|source| source.name.clone())
            .filter(|name| !sources.contains(name))
            .collect();
        tx.execute(
            "UPDATE ops.batches
                SET sources_staged = $3, sources_missing = $4, updated_at = clock_timestamp(),
                    state = CASE WHEN cardinality($4::text[]) = 0 AND state = 'staging' THEN 'ready' ELSE state END,
                    ready_at = CASE WHEN cardinality($4::text[]) = 0 AND ready_at IS NULL THEN clock_timestamp() ELSE ready_at END
              WHERE dataset = $1 AND ingestion_date = $2",
            &[&batch.dataset, &batch.ingestion_date, &sources, &missing],
        )
        .await?;
        if !missing.is_empty() {
            tracing::info!(batch = %batch, missing = missing.join(","), "batch waits for sources");
            return Ok(None);
        }
        if transformed_files.as_ref() == Some(&file_ids) {
            tracing::info!(batch = %batch, "batch already transformed from these files");
            return Ok(None);
        }
        Ok(Some(file_ids))
    }
}

/// Runs the transformer until `shutdown`.
pub async fn run(config: CommonConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let ctx = ServiceContext::start(config, shutdown).await?;
    let models = Models::load(&ctx.datasets).context("loading the SQL models")?;
    let spec = runtime::broker::queue_spec(&ctx.config, STAGE);
    let models_pool = runtime::db::pool_as(
        &ctx.config.database_url,
        ctx.config.transform_parallelism,
        ctx.config.database_role.as_deref(),
    )?;
    let transformer = Transformer {
        ctx: ctx.clone(),
        models: Arc::new(models),
        models_pool,
    };
    ctx.serve(spec, MessageKind::Events, transformer).await
}
