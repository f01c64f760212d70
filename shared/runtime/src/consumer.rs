//! The one consumer loop every service uses.
//!
//! For each delivery: decode it, then in one PostgreSQL transaction record the event id as
//! processed, apply the handler's effect and write the events it causes to the outbox; commit;
//! only then ack. Transient failures are retried with backoff and jitter; a permanent failure,
//! or a transient one that outlives its retries, is dead-lettered with the reason in headers.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use contract::{Envelope, Event};
use futures::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use tracing::Instrument as _;

use crate::broker::{self, QueueSpec};
use crate::failure::Failure;
use crate::service::ServiceContext;

mod batch;

use batch::process_batch;

/// One message as a handler sees it.
#[derive(Debug)]
pub struct Incoming {
    pub body: Vec<u8>,
    pub routing_key: String,
    pub headers: BTreeMap<String, String>,
    pub redelivered: bool,
    /// The decoded envelope, for services that consume pipeline events.
    pub event: Option<Envelope<Event>>,
}

impl Incoming {
    /// The pipeline event a stage's handler works on and what `pick` takes from it; a message
    /// that is no pipeline event, or an event `pick` does not take, is a permanent failure
    /// naming the stage and what it got.
    pub fn pipeline_event<'a, T>(
        &'a self,
        stage: crate::stage::Stage,
        pick: impl FnOnce(&'a Event) -> Option<T>,
    ) -> Result<(&'a Envelope<Event>, T), crate::Failure> {
        let name = stage.name();
        let envelope = self.event.as_ref().ok_or_else(|| {
            crate::Failure::permanent(anyhow::anyhow!("the {name} reads pipeline events only"))
        })?;
        let picked = pick(&envelope.payload).ok_or_else(|| {
            crate::Failure::permanent(anyhow::anyhow!(
                "the {name} does not handle '{}' events",
                envelope.payload.event_type()
            ))
        })?;
        Ok((envelope, picked))
    }

    /// [`Self::pipeline_event`] of an event that must name its batch; one without is a
    /// permanent failure.
    pub fn batch_event<'a, T>(
        &'a self,
        stage: crate::stage::Stage,
        pick: impl FnOnce(&'a Event) -> Option<T>,
    ) -> Result<(&'a Envelope<Event>, T, &'a contract::BatchKey), crate::Failure> {
        let (envelope, picked) = self.pipeline_event(stage, pick)?;
        let batch = envelope.batch.as_ref().ok_or_else(|| {
            crate::Failure::permanent(anyhow::anyhow!(
                "a {} event without a batch",
                envelope.payload.event_type()
            ))
        })?;
        Ok((envelope, picked, batch))
    }
}

/// Whether a queue carries landfall's MessagePack events or something foreign (S3 notifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Decoded as an [`Envelope`]; duplicates are dropped by event id.
    Events,
    /// Handed over as bytes; the handler must be idempotent by itself.
    Raw,
}

/// What a service does with one message.
pub trait Handler: Send + Sync + 'static {
    /// Applies the effect of `message` inside `tx` and returns the events it causes; the
    /// runtime writes those to the outbox in the same transaction and commits.
    fn handle<'a>(
        &'a self,
        message: &'a Incoming,
        tx: &'a tokio_postgres::Transaction<'_>,
    ) -> impl Future<Output = Result<Vec<Envelope<Event>>, Failure>> + Send + 'a;

    /// Whether [`Handler::handle_batch`] applies a batch of messages set-based (a constant
    /// number of statements per batch). When it does, the consumer first tries a batch with it
    /// in one transaction, and only if that fails goes message by message (a savepoint each).
    const BATCHED: bool = false;

    /// Applies several messages inside `tx`, each with the span of its delivery, and returns
    /// the events each causes, in order. All or nothing: an error rolls back the whole batch,
    /// whose messages are then applied one by one with [`Handler::handle`]. The default applies
    /// them one after the other.
    fn handle_batch<'a>(
        &'a self,
        messages: &'a [(&'a tracing::Span, &'a Incoming)],
        tx: &'a tokio_postgres::Transaction<'_>,
    ) -> impl Future<Output = Result<Vec<Vec<Envelope<Event>>>, Failure>> + Send + 'a {
        async move {
            let mut caused = Vec::with_capacity(messages.len());
            for (span, message) in messages {
                caused.push(self.handle(message, tx).instrument((*span).clone()).await?);
            }
            Ok(caused)
        }
    }
}

/// How one delivery ended.
enum Outcome {
    Applied { published: usize },
    Duplicate,
}

/// Consumes `spec`'s queue until shutdown, reconnecting with backoff whenever the broker goes away.
pub async fn run<H: Handler>(
    ctx: ServiceContext,
    spec: QueueSpec,
    kind: MessageKind,
    handler: Arc<H>,
    worker: usize,
) {
    let mut backoff = ctx.retry_policy().forever();
    while !ctx.shutdown.is_triggered() {
        match consume(&ctx, &spec, kind, &handler, worker).await {
            Ok(()) => return,
            Err(error) => {
                ctx.readiness.set_consumer(false);
                let what = "consumer lost its broker connection; reconnecting";
                let policy = ctx.retry_policy();
                if !policy
                    .pause(&mut backoff, &error, what, &ctx.shutdown)
                    .await
                {
                    return;
                }
            }
        }
    }
}

async fn consume<H: Handler>(
    ctx: &ServiceContext,
    spec: &QueueSpec,
    kind: MessageKind,
    handler: &Arc<H>,
    worker: usize,
) -> anyhow::Result<()> {
    let connection =
        broker::connect(&ctx.config.amqp_url, &format!("{}-{worker}", spec.service)).await?;
    let channel = broker::confirm_channel(&connection).await?;
    broker::declare_topology(&channel, &ctx.config, &ctx.topology).await?;
    let queue = broker::declare_queue(&channel, &ctx.topology, spec).await?;
    channel
        .basic_qos(ctx.config.prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!(
        "{}-{}-{worker}",
        spec.service,
        uuid::Uuid::new_v4().simple()
    );
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    ctx.readiness.set_consumer(true);
    tracing::info!(queue, worker, "consuming");
    loop {
        let next = tokio::select! {
            next = deliveries.next() => next,
            _ = ctx.shutdown.wait() => {
                // Stop taking work; what was prefetched but not started goes back to the queue.
                let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                let _ = connection.close(200, "shutting down".into()).await;
                return Ok(());
            }
        };
        let delivery = match next {
            Some(delivery) => delivery?,
            None => anyhow::bail!("the broker ended the consumer"),
        };
        if ctx.config.consume_batch <= 1 {
            process(ctx, &channel, &queue, kind, handler.as_ref(), delivery).await?;
            continue;
        }
        // Whatever else is already here joins this one's transaction (never waiting for more).
        let mut batch = vec![delivery];
        while batch.len() < ctx.config.consume_batch {
            match deliveries.next().now_or_never() {
                Some(Some(delivery)) => batch.push(delivery?),
                Some(None) => anyhow::bail!("the broker ended the consumer"),
                None => break,
            }
        }
        process_batch(ctx, &channel, &queue, kind, handler.as_ref(), batch).await?;
    }
}

/// The `traceparent` user metadata of the first object a MinIO-style S3 notification announces
/// (`Records[0].s3.object.userMetadata["X-Amz-Meta-Traceparent"]`, any case): the extractor
/// writes it, so the file's trace starts with the extract that wrote it. AWS's notifications
/// carry no metadata; their files start a trace of their own, as dropped files do.
pub fn notified_traceparent(body: &[u8]) -> Option<String> {
    let notification: serde_json::Value = serde_json::from_slice(body).ok()?;
    let metadata = notification
        .get("Records")?
        .get(0)?
        .get("s3")?
        .get("object")?
        .get("userMetadata")?
        .as_object()?;
    metadata.iter().find_map(|(name, value)| {
        name.eq_ignore_ascii_case("x-amz-meta-traceparent")
            .then(|| value.as_str().map(str::to_owned))
            .flatten()
    })
}

/// The message's `process` span (continuing the trace it carries) and what the handler sees,
/// or the permanent failure of a message that is not a landfall event.
fn prepare(
    queue: &str,
    kind: MessageKind,
    delivery: &Delivery,
) -> (tracing::Span, Result<Incoming, Failure>) {
    let mut headers = text_headers(&delivery.properties);
    if kind == MessageKind::Raw && !headers.contains_key("traceparent") {
        // A bucket notification carries no trace headers; an object written by the extractor
        // names its trace in its metadata, which MinIO-style notifications include.
        if let Some(traceparent) = notified_traceparent(&delivery.data) {
            headers.insert("traceparent".to_owned(), traceparent);
        }
    }
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "process",
        otel.name = format!("process {queue}"),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = queue,
        messaging.rabbitmq.destination.routing_key = delivery.routing_key.as_str(),
        messaging.message.id = message_id,
        landfall.dataset = tracing::field::Empty,
        landfall.batch = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, &headers);
    let mut incoming = Incoming {
        body: delivery.data.clone(),
        routing_key: delivery.routing_key.to_string(),
        headers,
        redelivered: delivery.redelivered,
        event: None,
    };
    if kind == MessageKind::Events {
        match Envelope::decode(&incoming.body) {
            Ok(event) => {
                if let Some(batch) = &event.batch {
                    span.record("landfall.dataset", batch.dataset.as_str());
                    span.record("landfall.batch", batch.ingestion_date.to_string());
                }
                incoming.event = Some(event);
            }
            Err(error) => return (span, Err(Failure::permanent(error))),
        }
    }
    (span, Ok(incoming))
}

/// Handles one delivery to the end: acked, dead-lettered, or (on shutdown) requeued. An error
/// here means the channel is unusable; the message is redelivered after reconnecting.
async fn process<H: Handler>(
    ctx: &ServiceContext,
    channel: &Channel,
    queue: &str,
    kind: MessageKind,
    handler: &H,
    delivery: Delivery,
) -> anyhow::Result<()> {
    let (span, incoming) = prepare(queue, kind, &delivery);
    async {
        let incoming = match incoming {
            Ok(incoming) => incoming,
            Err(failure) => return dead_letter(ctx, channel, queue, &delivery, &failure).await,
        };
        let started = std::time::Instant::now();
        let service = ctx.config.service_name.as_str();
        let consumed = |outcome: &str| {
            crate::metrics::metrics().events_consumed.add(
                1,
                &crate::metrics::attributes(&[("service", service), ("outcome", outcome)]),
            );
        };
        let attempt = || apply(ctx, handler, &incoming);
        let result = ctx
            .retry_policy()
            .retry_transient(&ctx.shutdown, attempt)
            .await;
        match result {
            Ok(Outcome::Applied { published }) => {
                consumed("applied");
                let event_type = incoming
                    .event
                    .as_ref()
                    .map(|event| event.event_type.as_str())
                    .unwrap_or("notification");
                crate::metrics::metrics().stage_duration.record(
                    started.elapsed().as_secs_f64(),
                    &crate::metrics::attributes(&[
                        ("service", service),
                        ("event_type", event_type),
                    ]),
                );
                crate::fault::point("consumer.after_commit");
                if published > 0 {
                    ctx.outbox_wake.notify_waiters();
                }
                delivery.ack(BasicAckOptions::default()).await?;
                Ok(())
            }
            Ok(Outcome::Duplicate) => {
                consumed("duplicate");
                tracing::info!("event already processed; dropping the duplicate");
                delivery.ack(BasicAckOptions::default()).await?;
                Ok(())
            }
            Err(failure) if failure.is_transient() && ctx.shutdown.is_triggered() => {
                // Not this process's to give up on: another replica (or the restart) retries.
                consumed("requeued");
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await?;
                Ok(())
            }
            Err(failure) => dead_letter(ctx, channel, queue, &delivery, &failure).await,
        }
    }
    .instrument(span)
    .await
}

/// One attempt: a transaction holding the idempotency record, the effect and the outbox rows.
async fn apply<H: Handler>(
    ctx: &ServiceContext,
    handler: &H,
    incoming: &Incoming,
) -> Result<Outcome, Failure> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let outcome = apply_in(ctx, handler, incoming, &tx).await?;
    if matches!(outcome, Outcome::Applied { .. }) {
        tx.commit().await?;
    }
    Ok(outcome)
}

/// The idempotency record, the effect and the outbox rows of one message, inside `tx`.
async fn apply_in<H: Handler>(
    ctx: &ServiceContext,
    handler: &H,
    incoming: &Incoming,
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<Outcome, Failure> {
    if let Some(event) = &incoming.event {
        // The row lock taken here also makes a concurrent duplicate wait for this commit.
        let inserted = tx
            .execute(
                "INSERT INTO ops.processed_events (consumer, event_id, event_type) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&ctx.config.consumer, &event.event_id, &event.event_type],
            )
            .await?;
        if inserted == 0 {
            return Ok(Outcome::Duplicate);
        }
    }
    let events = handler.handle(incoming, tx).await?;
    for event in &events {
        crate::outbox::enqueue(tx, &ctx.config.service_name, event).await?;
    }
    Ok(Outcome::Applied {
        published: events.len(),
    })
}

/// Publishes the message to the dead-letter exchange with the reason, then acks the original.
async fn dead_letter(
    ctx: &ServiceContext,
    channel: &Channel,
    queue: &str,
    delivery: &Delivery,
    failure: &Failure,
) -> anyhow::Result<()> {
    tracing::error!(
        reason = failure.reason(),
        kind = failure.kind(),
        "dead-lettering message"
    );
    let labels = [
        ("service", ctx.config.service_name.as_str()),
        ("kind", failure.kind()),
    ];
    crate::metrics::metrics()
        .events_dead_lettered
        .add(1, &crate::metrics::attributes(&labels));
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    for (name, value) in [
        (broker::REASON_HEADER, failure.reason()),
        (broker::ERROR_KIND_HEADER, failure.kind().to_owned()),
        (broker::SERVICE_HEADER, ctx.config.service_name.clone()),
        (
            broker::ORIGINAL_ROUTING_KEY_HEADER,
            delivery.routing_key.to_string(),
        ),
        (
            broker::ORIGINAL_EXCHANGE_HEADER,
            delivery.exchange.to_string(),
        ),
    ] {
        headers.insert(name.into(), broker::long_string(&value));
    }
    let properties = delivery.properties.clone().with_headers(headers);
    broker::publish_confirmed(
        channel,
        &ctx.topology.dead_letter_exchange(),
        queue,
        &delivery.data,
        properties,
    )
    .await?;
    delivery.ack(BasicAckOptions::default()).await?;
    Ok(())
}

/// Text-valued AMQP headers (trace context and landfall's own).
fn text_headers(properties: &BasicProperties) -> BTreeMap<String, String> {
    let Some(table) = properties.headers() else {
        return BTreeMap::new();
    };
    table
        .inner()
        .iter()
        .filter_map(|(name, value)| match value {
            AMQPValue::LongString(text) => Some((name.to_string(), text.to_string())),
            AMQPValue::ShortString(text) => Some((name.to_string(), text.to_string())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::notified_traceparent;

    #[test]
    fn a_minio_notification_names_the_trace_its_object_was_written_in() {
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let body = format!(
            r#"{{"EventName":"s3:ObjectCreated:CompleteMultipartUpload","Records":[{{"s3":{{"object":{{"key":"k","userMetadata":{{"content-type":"application/gzip","X-Amz-Meta-Traceparent":"{traceparent}"}}}}}}}}]}}"#
        );
        assert_eq!(
            notified_traceparent(body.as_bytes()).as_deref(),
            Some(traceparent)
        );
        // AWS's notifications carry no metadata; neither does a file dropped without it.
        let aws = r#"{"Records":[{"s3":{"object":{"key":"k","size":3}}}]}"#;
        assert_eq!(notified_traceparent(aws.as_bytes()), None);
        assert_eq!(notified_traceparent(b"not json"), None);
    }
}
