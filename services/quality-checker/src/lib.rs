//! The quality-checker: on `transform.completed`, runs the checks declared for the batch's
//! dataset in `<dataset>/checks.toml`, stores one result per check in
//! `ops.quality_results`, and publishes `quality.passed` (the batch may be exported) or
//! `quality.failed` (an error-severity check failed, or any check could not run). A batch that passes is
//! published in the same transaction: its report rows go from `audit` to `analytics`
//! ([`pipeline::publish`]).

pub mod run;
pub mod sql;

use std::sync::Arc;

use contract::{BatchKey, CheckOutcome, Envelope, Event, QualityFailed, QualityPassed};
use runtime::{CommonConfig, Failure, Handler, Incoming, MessageKind, ServiceContext, Shutdown};
use tokio_postgres::Transaction;

use crate::run::CheckResult;
use catalog::checks::{self, CheckCatalog};

pub const STAGE: runtime::Stage = runtime::Stage::QualityChecker;
pub const SERVICE: &str = STAGE.name();

/// Runs a batch's checks and gates its export.
pub struct QualityChecker {
    /// Every dataset's checks, loaded and validated at start.
    pub catalog: Arc<CheckCatalog>,
    /// The service's pool, to run a batch's checks on a second connection beside the consumer's
    /// transaction; `None` runs them one after another in the consumer's transaction.
    pub second_connection: Option<deadpool_postgres::Pool>,
    /// The datasets, for the report tables a passed batch publishes.
    pub datasets: Arc<catalog::Datasets>,
}

impl Handler for QualityChecker {
    async fn handle(
        &self,
        message: &Incoming,
        tx: &Transaction<'_>,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let (envelope, (), batch) = message.batch_event(STAGE, |event| {
            matches!(event, Event::TransformCompleted(_)).then_some(())
        })?;
        let checks = self.catalog.checks(&batch.dataset).ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "dataset '{}' is not defined in this quality-checker's datasets",
                batch.dataset
            ))
        })?;
        let results = run::run_checks(
            tx,
            batch,
            checks,
            envelope.event_id,
            self.second_connection.as_ref(),
        )
        .await?;
        let event = verdict(batch, envelope.event_id, &results);
        let state = match event.payload {
            Event::QualityFailed(_) => "quality_failed",
            _ => "quality_passed",
        };
        record_batch_state(tx, batch, state).await?;
        let published = match (&event.payload, self.datasets.get(&batch.dataset)) {
            (Event::QualityPassed(_), Some(dataset)) => {
                Some(pipeline::publish::publish(tx, batch, &dataset.reports).await?)
            }
            _ => None,
        };
        tracing::info!(
            batch = %batch,
            checks_run = results.len(),
            state,
            published_rows = published,
            "quality checks ran"
        );
        Ok(vec![event])
    }
}

/// `quality.failed` listing the error-severity checks that failed and every check that could
/// not run, else `quality.passed` listing the warn-severity ones that found rows.
fn verdict(batch: &BatchKey, cause: uuid::Uuid, results: &[CheckResult]) -> Envelope<Event> {
    let checks_run = u32::try_from(results.len()).unwrap_or(u32::MAX);
    let outcome = |result: &CheckResult| CheckOutcome {
        check: result.check.clone(),
        severity: result.severity.as_str().to_owned(),
        // A check that could not run has no count; its stored result holds the error.
        failing_rows: result.failing_rows.map_or(0, |rows| rows.max(0) as u64),
    };
    let failed: Vec<CheckOutcome> = results
        .iter()
        .filter(|result| result.blocks_export())
        .map(outcome)
        .collect();
    let batch = Some(batch.clone());
    if !failed.is_empty() {
        return Envelope::new(batch, Some(cause), QualityFailed { checks_run, failed })
            .into_event();
    }
    let warnings = results
        .iter()
        .filter(|result| result.status != run::Status::Passed)
        .map(outcome)
        .collect();
    Envelope::new(
        batch,
        Some(cause),
        QualityPassed {
            checks_run,
            warnings,
        },
    )
    .into_event()
}

/// Moves the batch to its quality state. The batch row belongs to the transformer; one that is
/// missing is logged, not created, and the results stay in `ops.quality_results`.
async fn record_batch_state(
    tx: &Transaction<'_>,
    batch: &BatchKey,
    state: &str,
) -> Result<(), Failure> {
    let updated = tx
        .execute(
            "UPDATE ops.batches
                SET state = $3, quality_at = clock_timestamp(), updated_at = clock_timestamp()
              WHERE dataset = $1 AND ingestion_date = $2",
            &[&batch.dataset, &batch.ingestion_date, &state],
        )
        .await?;
    if updated == 0 {
        tracing::warn!(batch = %batch, "the batch has no row in ops.batches; its state was not updated");
    }
    Ok(())
}

/// Runs the quality-checker until `shutdown`.
pub async fn run(config: CommonConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    // Before waiting for the database: a malformed declaration stops the service at once,
    // naming the file and the check.
    let datasets = catalog::Datasets::load(&config.datasets_dir)?;
    let mut catalog = CheckCatalog::load(&datasets)?;
    let ctx = ServiceContext::start(config, shutdown).await?;
    for dataset in ctx.datasets.iter() {
        match catalog.checks(&dataset.name) {
            Some(checks) => {
                tracing::info!(
                    dataset = dataset.name,
                    checks = checks.len(),
                    "quality checks loaded"
                );
            }
            None => {
                tracing::warn!(
                    dataset = dataset.name,
                    path = %dataset.checks_file().display(),
                    "no {} declared for the dataset; its batches pass with no checks run",
                    checks::CHECKS_FILE
                );
                catalog.insert_empty(&dataset.name);
            }
        }
    }
    let spec = runtime::broker::queue_spec(&ctx.config, STAGE);
    let checker = QualityChecker {
        catalog: Arc::new(catalog),
        second_connection: Some(ctx.pool.clone()),
        datasets: ctx.datasets.clone(),
    };
    ctx.serve(spec, MessageKind::Events, checker).await
}
