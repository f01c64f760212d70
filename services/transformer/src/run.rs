//! Running a batch's models: all of them in one transaction, so a batch's tables change
//! together or not at all, and re-running a batch replaces exactly its own rows.

use std::time::Instant;

use chrono::NaiveDate;
use contract::ModelRun;
use runtime::Failure;
use tokio_postgres::{SimpleQueryMessage, Transaction};
use tracing::Instrument as _;

use crate::models::Model;

/// Runs `models` in order for the batch dated `batch_date`; returns each one's rows and time.
/// A model's SQL sees the batch date as `ops.batch_date()`.
pub async fn run_models(
    tx: &Transaction<'_>,
    models: &[&Model],
    batch_date: NaiveDate,
) -> Result<Vec<ModelRun>, Failure> {
    tx.execute(
        "SELECT set_config('landfall.batch_date', $1, true)",
        &[&batch_date.to_string()],
    )
    .await?;
    let mut runs = Vec::with_capacity(models.len());
    for model in models {
        runtime::fault::point("transformer.between_models");
        let started = Instant::now();
        let span = tracing::info_span!(
            "model",
            otel.name = format!("transform {}", model.name),
            otel.kind = "client",
            db.system.name = "postgresql",
            db.operation.name = "transform",
            landfall.model = model.name.as_str(),
            landfall.rows = tracing::field::Empty,
        );
        let messages = tx
            .simple_query(&model.sql)
            .instrument(span.clone())
            .await
            .map_err(|error| {
                let transient = runtime::failure::is_transient_db_error(&error);
                let error = anyhow::Error::new(error).context(format!(
                    "model {} failed for batch {batch_date}",
                    model.name
                ));
                if transient {
                    Failure::Transient(error)
                } else {
                    Failure::Permanent(error)
                }
            })?;
        let rows: u64 = messages
            .iter()
            .map(|message| match message {
                SimpleQueryMessage::CommandComplete(rows) => *rows,
                _ => 0,
            })
            .sum();
        span.record("landfall.rows", rows);
        let duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(model = model.name, rows, duration_ms, "model ran");
        runs.push(ModelRun {
            model: model.name.clone(),
            rows,
            duration_ms,
        });
    }
    Ok(runs)
}
