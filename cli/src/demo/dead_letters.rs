//! The services' dead-letter queues as the demo reads them: a message dead-lettered during the
//! run is a stage that gave up on something, and says why.

use anyhow::{Context as _, bail};
use chrono::NaiveDate;

use super::Batch;

/// The pipeline stage a service runs.
pub(super) fn stage_of(service: &str) -> &'static str {
    runtime::Stage::from_name(service).map_or("the pipeline", runtime::Stage::step)
}

/// One message a stage gave up on during this run.
pub(super) struct DeadLetter {
    pub(super) service: &'static str,
    pub(super) reason: String,
    batch: Option<contract::BatchKey>,
    pub(super) event_id: Option<String>,
}

/// The services' dead-letter queues: a message dead-lettered during this run is a stage that
/// gave up, and its `x-landfall-reason` header says why. The queues are the run's own (an
/// earlier run's were removed before the services started), and the demo takes what arrives
/// in them (it removes its queues when it ends).
pub(super) struct DeadLetters {
    pub(super) prefix: String,
    channel: lapin::Channel,
    _connection: lapin::Connection,
    /// (service, queue)
    queues: Vec<(&'static str, String)>,
    pub(super) seen: Vec<DeadLetter>,
}

impl DeadLetters {
    pub(super) async fn watch(amqp_url: &str, prefix: &str) -> anyhow::Result<DeadLetters> {
        let connection =
            runtime::broker::connect_with(amqp_url, lapin::ConnectionProperties::default())
                .await
                .context("connecting to RabbitMQ to watch the dead-letter queues")?;
        let channel = connection.create_channel().await?;
        let queues = crate::services::services_names()
            .into_iter()
            .map(|service| (service, format!("{prefix}.{service}.dlq")))
            .collect();
        Ok(DeadLetters {
            prefix: prefix.to_owned(),
            channel,
            _connection: connection,
            queues,
            seen: Vec::new(),
        })
    }

    /// Takes the messages dead-lettered since the last look. One that belongs to no batch of
    /// the run ends it: the pipeline failed at something the demo did not put there.
    pub(super) async fn collect(&mut self, dataset: &str, batches: &[Batch]) -> anyhow::Result<()> {
        for (service, queue) in &self.queues {
            let options = lapin::options::BasicGetOptions { no_ack: true };
            while let Some(message) = self
                .channel
                .basic_get(queue.as_str().into(), options)
                .await
                .with_context(|| format!("reading {queue}"))?
            {
                let reason = runtime::broker::header_text(
                    &message.delivery.properties,
                    runtime::broker::REASON_HEADER,
                )
                .unwrap_or_else(|| "(no reason recorded)".into());
                let envelope = contract::Envelope::decode(&message.delivery.data).ok();
                let batch = envelope.as_ref().and_then(|event| event.batch.clone());
                let ours = batch.as_ref().is_some_and(|batch| {
                    batch.dataset == dataset
                        && batches.iter().any(|ours| ours.date == batch.ingestion_date)
                });
                if !ours {
                    bail!(
                        "{} failed: the {service} gave up on a message (dead-lettered to {queue}): {reason}",
                        stage_of(service),
                    );
                }
                self.seen.push(DeadLetter {
                    service,
                    reason,
                    batch,
                    event_id: envelope.map(|event| event.event_id.to_string()),
                });
            }
        }
        Ok(())
    }

    /// The first message of the batch a stage gave up on.
    pub(super) fn of_batch(&self, dataset: &str, date: NaiveDate) -> Option<&DeadLetter> {
        self.seen.iter().find(|letter| {
            letter
                .batch
                .as_ref()
                .is_some_and(|batch| batch.dataset == dataset && batch.ingestion_date == date)
        })
    }
}
