//! The transformer: tracks each batch's staged sources and, once every required source is
//! staged, runs the dataset's SQL models for that batch in dependency order (independent ones in
//! parallel, each in its own transaction; or all in one transaction with a parallelism of 1),
//! and publishes `TransformCompleted`. A batch is re-run whenever one of its files changes.

pub mod run;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use catalog::models::{Model, Models};
use contract::{BatchKey, Envelope, Event, TransformCompleted};
use runtime::{CommonConfig, Failure, Handler, Incoming, MessageKind, ServiceContext, Shutdown};
use tokio_postgres::Transaction;
use tracing::Instrument as _;

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
        let Some(envelope) = &message.event else {
            return Err(Failure::permanent(anyhow::anyhow!(
                "the transformer reads pipeline events only"
            )));
        };
        let (Event::StagingLoaded(_), Some(batch)) = (&envelope.payload, &envelope.batch) else {
            return Err(Failure::permanent(anyhow::anyhow!(
                "the transformer handles staging.loaded events with a batch, not '{}'",
                envelope.event_type
            )));
        };
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

/// Runs `models` for `batch` in `tx`, records the run and marks the batch transformed; the
/// returned `TransformCompleted` is for the caller to write to the outbox.
///
/// With `parallel` (a pool and how many models at once, more than one), the models run on
/// connections of that pool, each in its own transaction ([`run::run_models_in_parallel`]);
/// otherwise all of them run inside `tx`, so the batch's tables change together.
pub async fn transform_batch(
    tx: &Transaction<'_>,
    batch: &BatchKey,
    models: &[&Model],
    file_ids: Vec<i64>,
    service: &str,
    causation_id: Option<uuid::Uuid>,
    parallel: Option<(&deadpool_postgres::Pool, usize)>,
) -> Result<Envelope<Event>, Failure> {
    let span = tracing::info_span!(
        "transform",
        otel.name = format!("transform {batch}"),
        landfall.dataset = batch.dataset.as_str(),
        landfall.batch = batch.ingestion_date.to_string(),
        landfall.files = file_ids.len(),
        trace_id = tracing::field::Empty,
    );
    let parallel = parallel.filter(|(_, models_at_once)| *models_at_once > 1);
    lock_and_analyze(tx, batch, parallel).await?;
    link_to_files(tx, &span, &file_ids).await?;
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let runs = match parallel {
        Some((pool, models_at_once)) => {
            run::run_models_in_parallel(pool, models, batch.ingestion_date, models_at_once)
                .instrument(span.clone())
                .await?
        }
        None => {
            run::run_models(tx, models, batch.ingestion_date)
                .instrument(span.clone())
                .await?
        }
    };
    let trace_id = span.in_scope(runtime::telemetry::current_trace_id);
    record_transform(tx, batch, &file_ids, &runs, started_at, trace_id.as_deref()).await?;
    tracing::info!(batch = %batch, models = runs.len(), elapsed_ms = started.elapsed().as_millis() as u64, service, "batch transformed");
    let event = Envelope::new(
        Some(batch.clone()),
        causation_id,
        TransformCompleted {
            file_ids,
            models: runs,
        },
    );
    Ok(event.into_event())
}

/// Takes the dataset's transform lock, then gives the planner the staging tables' real size.
async fn lock_and_analyze(
    tx: &Transaction<'_>,
    batch: &BatchKey,
    parallel: Option<(&deadpool_postgres::Pool, usize)>,
) -> Result<(), Failure> {
    // One transform of a dataset at a time: batches share the dimensions, and two
    // transactions that each find no current version of a customer would both insert one
    // (seen as "ON CONFLICT DO UPDATE command cannot affect row a second time" in the facts).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('landfall.transform'), hashtext($1))",
        &[&batch.dataset],
    )
    .await?;
    // The staging rows were COPYed a moment ago: give the planner their real size. The
    // models' own connections see new statistics only once they are committed.
    match parallel {
        Some((pool, models_at_once)) => analyze_staging_side_by_side(pool, models_at_once).await?,
        None => {
            tx.execute("SELECT ops.analyze_staging()", &[]).await?;
        }
    }
    Ok(())
}

/// Links the batch's transform (`span`) to the trace of every file that fed it.
async fn link_to_files(
    tx: &Transaction<'_>,
    span: &tracing::Span,
    file_ids: &[i64],
) -> Result<(), Failure> {
    let traceparents: Vec<String> = tx
        .query(
            "SELECT traceparent FROM ops.files WHERE file_id = ANY($1) AND traceparent IS NOT NULL ORDER BY file_id",
            &[&file_ids],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    runtime::telemetry::link_to(span, &traceparents);
    runtime::telemetry::continue_trace(span, &Default::default());
    Ok(())
}

/// Records the models' runs and marks the batch transformed from `file_ids`.
async fn record_transform(
    tx: &Transaction<'_>,
    batch: &BatchKey,
    file_ids: &[i64],
    runs: &[contract::ModelRun],
    started_at: chrono::DateTime<chrono::Utc>,
    trace_id: Option<&str>,
) -> Result<(), Failure> {
    let runs_json = serde_json::to_value(runs).map_err(Failure::permanent)?;
    tx.execute(
        "INSERT INTO ops.transform_runs (dataset, ingestion_date, file_ids, models, started_at) VALUES ($1, $2, $3, $4, $5)",
        &[&batch.dataset, &batch.ingestion_date, &file_ids, &runs_json, &started_at],
    )
    .await?;
    tx.execute(
        "UPDATE ops.batches SET state = 'transformed', transformed_at = clock_timestamp(), transformed_files = $3,
                updated_at = clock_timestamp(), trace_id = $4
          WHERE dataset = $1 AND ingestion_date = $2",
        &[&batch.dataset, &batch.ingestion_date, &file_ids, &trace_id],
    )
    .await?;
    Ok(())
}

/// ANALYZE of every staging table, the largest first, up to `at_once` at a time on connections
/// of `pool` (each one committed on its own), instead of one after another in
/// `ops.analyze_staging()`: the big tables of a batch are analyzed side by side.
async fn analyze_staging_side_by_side(
    pool: &deadpool_postgres::Pool,
    at_once: usize,
) -> Result<(), Failure> {
    use futures::{StreamExt as _, TryStreamExt as _};

    let tables: Vec<String> = pool
        .get()
        .await?
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'staging_rows' AND c.relkind IN ('r', 'p')
              ORDER BY pg_relation_size(c.oid) DESC, c.relname",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    futures::stream::iter(tables)
        .map(|table| async move {
            pool.get()
                .await?
                .execute("SELECT ops.analyze_staging_table($1)", &[&table])
                .await?;
            Ok::<(), Failure>(())
        })
        .buffer_unordered(at_once.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Runs the transformer until `shutdown`.
pub async fn run(config: CommonConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let ctx = ServiceContext::start(config, shutdown).await?;
    let models =
        Models::load(&ctx.config.models_dir, &ctx.datasets).context("loading the SQL models")?;
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
