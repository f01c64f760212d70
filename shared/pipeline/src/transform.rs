//! Transforming a batch: its dataset's models run for it (each in its own transaction on a
//! pool of their own, or all of them in the caller's transaction), the run recorded in
//! `ops.transform_runs`, the batch marked transformed and its `transform.completed` returned.
//! The transformer does this when a batch is complete, `landfall transform` and `landfall
//! replay` when an operator asks.

pub mod run;

use std::time::Instant;

use catalog::models::Model;
use contract::{BatchKey, Envelope, Event, TransformCompleted};
use runtime::Failure;
use tokio_postgres::Transaction;
use tracing::Instrument as _;

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
/// `ops.analyze_staging()`: the big tables of a batch are analyzed side by side. Each table's
/// new BRIN page ranges are summarized first (migration 0019), so the models' and checks'
/// scans of the batch skip the pages of other batches.
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
