//! The transformer: tracks each batch's staged sources and marks a batch ready once every
//! required source is staged. (Running the batch's SQL models on a ready batch comes next.)

use contract::{Envelope, Event};
use runtime::{CommonConfig, Failure, Handler, Incoming, MessageKind, ServiceContext, Shutdown};

pub const SERVICE: &str = "transformer";

/// Keeps `ops.batches` up to date from `StagingLoaded` events.
pub struct BatchTracker {
    ctx: ServiceContext,
}

impl Handler for BatchTracker {
    async fn handle(
        &self,
        message: &Incoming,
        tx: &tokio_postgres::Transaction<'_>,
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
        let dataset = self.ctx.datasets.get(&batch.dataset).ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "dataset '{}' is not defined in this transformer's datasets",
                batch.dataset
            ))
        })?;
        // The row lock serialises concurrent events of one batch: one of them marks it ready.
        tx.execute(
            "INSERT INTO ops.batches (dataset, ingestion_date) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&batch.dataset, &batch.ingestion_date],
        )
        .await?;
        let state: String = tx
            .query_one(
                "SELECT state FROM ops.batches WHERE dataset = $1 AND ingestion_date = $2 FOR UPDATE",
                &[&batch.dataset, &batch.ingestion_date],
            )
            .await?
            .get(0);
        let staged: Vec<String> = tx
            .query(
                "SELECT source FROM ops.staged_sources WHERE dataset = $1 AND ingestion_date = $2 ORDER BY source",
                &[&batch.dataset, &batch.ingestion_date],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let missing: Vec<String> = dataset
            .required_sources()
            .map(|source| source.name.clone())
            .filter(|name| !staged.contains(name))
            .collect();
        let becomes_ready = missing.is_empty() && state == "staging";
        tx.execute(
            "UPDATE ops.batches
                SET sources_staged = $3, sources_missing = $4, updated_at = clock_timestamp(),
                    state = CASE WHEN $5 THEN 'ready' ELSE state END,
                    ready_at = CASE WHEN $5 THEN clock_timestamp() ELSE ready_at END
              WHERE dataset = $1 AND ingestion_date = $2",
            &[
                &batch.dataset,
                &batch.ingestion_date,
                &staged,
                &missing,
                &becomes_ready,
            ],
        )
        .await?;
        if becomes_ready {
            tracing::info!(batch = %batch, "every required source is staged; batch ready");
        }
        Ok(Vec::new())
    }
}

/// Runs the transformer until `shutdown`.
pub async fn run(config: CommonConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let ctx = ServiceContext::start(config, shutdown).await?;
    let spec = runtime::broker::queue_spec(&ctx.config, SERVICE);
    let tracker = BatchTracker { ctx: ctx.clone() };
    ctx.serve(spec, MessageKind::Events, tracker).await
}
