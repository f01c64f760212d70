//! Several deliveries applied in one transaction: set-based for a handler that can, else one
//! savepoint each; whatever fails goes through [`process`] on its own.

use contract::{Envelope, Event};
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tracing::Instrument as _;

use super::{Handler, Incoming, MessageKind, Outcome, apply_in, prepare, process};
use crate::failure::Failure;
use crate::service::ServiceContext;

/// Applies several deliveries in one transaction, one savepoint each, and acks them after the
/// one commit. A delivery that cannot be decoded or whose effect fails is rolled back to its
/// savepoint and then goes through [`process`] on its own (retries, dead letter); so does every
/// delivery of the batch when the transaction itself fails.
pub(super) async fn process_batch<H: Handler>(
    ctx: &ServiceContext,
    channel: &Channel,
    queue: &str,
    kind: MessageKind,
    handler: &H,
    batch: Vec<Delivery>,
) -> anyhow::Result<()> {
    let (prepared, mut alone) = prepare_all(queue, kind, batch);
    tracing::debug!(messages = prepared.len(), "applying a batch of deliveries");
    let started = std::time::Instant::now();
    let (committed, published) = apply_together(ctx, handler, &prepared).await;
    crate::fault::point("consumer.after_commit");
    if published > 0 {
        ctx.outbox_wake.notify_waiters();
    }
    record_applied(ctx, &committed, started);
    if alone.is_empty() && committed.iter().all(|ok| *ok) {
        // Every delivery of the batch is committed, and this channel's earlier deliveries
        // were all settled before it began: one ack of the last tag settles the batch.
        if let Some((last, span, _)) = prepared.last() {
            last.ack(BasicAckOptions { multiple: true })
                .instrument(span.clone())
                .await?;
        }
        return Ok(());
    }
    for ((delivery, span, _), ok) in prepared.into_iter().zip(committed) {
        if ok {
            delivery
                .ack(BasicAckOptions::default())
                .instrument(span)
                .await?;
        } else {
            alone.push(delivery);
        }
    }
    for delivery in alone {
        process(ctx, channel, queue, kind, handler, delivery).await?;
    }
    Ok(())
}

/// A delivery with its span and what the handler sees.
type Prepared = (Delivery, tracing::Span, Incoming);

/// The deliveries that decode, each with its span, and those that do not (they go through
/// [`process`] on their own).
fn prepare_all(
    queue: &str,
    kind: MessageKind,
    batch: Vec<Delivery>,
) -> (Vec<Prepared>, Vec<Delivery>) {
    let mut prepared = Vec::with_capacity(batch.len());
    let mut alone = Vec::new();
    for delivery in batch {
        let (span, incoming) = prepare(queue, kind, &delivery);
        match incoming {
            Ok(incoming) => prepared.push((delivery, span, incoming)),
            Err(_) => alone.push(delivery),
        }
    }
    (prepared, alone)
}

/// The batch applied set-based (when the handler can) or with a savepoint each: per message,
/// whether it is committed, and how many events were written to the outbox. When the
/// transaction fails, nothing is committed.
async fn apply_together<H: Handler>(
    ctx: &ServiceContext,
    handler: &H,
    prepared: &[Prepared],
) -> (Vec<bool>, usize) {
    if H::BATCHED && !prepared.is_empty() {
        match apply_set(ctx, handler, prepared).await {
            Ok(published) => return (vec![true; prepared.len()], published),
            Err(failure) => {
                tracing::info!(
                    reason = failure.reason(),
                    messages = prepared.len(),
                    "set-based batch failed; applying its messages with a savepoint each"
                );
            }
        }
    }
    match apply_batch(ctx, handler, prepared).await {
        Ok(result) => result,
        Err(failure) => {
            tracing::warn!(
                reason = failure.reason(),
                messages = prepared.len(),
                "batch transaction failed; applying its messages one by one"
            );
            (vec![false; prepared.len()], 0)
        }
    }
}

/// The events consumed and the time each took, for the messages the batch committed.
fn record_applied(ctx: &ServiceContext, committed: &[bool], started: std::time::Instant) {
    let service = ctx.config.service_name.as_str();
    let applied = committed.iter().filter(|ok| **ok).count();
    if applied > 0 {
        crate::metrics::metrics().events_consumed.add(
            applied as u64,
            &crate::metrics::attributes(&[("service", service), ("outcome", "applied")]),
        );
        crate::metrics::metrics().stage_duration.record(
            started.elapsed().as_secs_f64() / applied as f64,
            &crate::metrics::attributes(&[("service", service), ("event_type", "batch")]),
        );
    }
}

/// The batch's transaction: per message, whether it is committed (applied or a duplicate),
/// and how many events were written to the outbox.
async fn apply_batch<H: Handler>(
    ctx: &ServiceContext,
    handler: &H,
    prepared: &[Prepared],
) -> Result<(Vec<bool>, usize), Failure> {
    let mut client = ctx.pool.get().await?;
    let mut tx = client.transaction().await?;
    let mut committed = Vec::with_capacity(prepared.len());
    let mut published = 0;
    for (_, span, incoming) in prepared {
        let savepoint = tx.savepoint("message").await?;
        match apply_in(ctx, handler, incoming, &savepoint)
            .instrument(span.clone())
            .await
        {
            Ok(outcome) => {
                savepoint.commit().await?;
                if let Outcome::Applied { published: events } = outcome {
                    published += events;
                }
                committed.push(true);
            }
            Err(failure) => {
                span.in_scope(|| {
                    tracing::info!(
                        reason = failure.reason(),
                        "failed inside a batch; retried on its own"
                    )
                });
                savepoint.rollback().await?;
                committed.push(false);
            }
        }
    }
    tx.commit().await?;
    Ok((committed, published))
}

/// The set-based transaction of a batch, for handlers with [`Handler::BATCHED`]: the
/// idempotency records of all its events in one statement (an event already processed, or a
/// second copy within the batch, is a duplicate and changes nothing), the handler's effect for
/// the rest, and all the events they cause in one outbox insert. Returns how many events were
/// written. Any error rolls back the whole batch.
async fn apply_set<H: Handler>(
    ctx: &ServiceContext,
    handler: &H,
    prepared: &[Prepared],
) -> Result<usize, Failure> {
    use tokio_postgres::types::Type;
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let mut fresh: Vec<(&tracing::Span, &Incoming)> = prepared
        .iter()
        .map(|(_, span, incoming)| (span, incoming))
        .collect();
    let events: Vec<&Envelope<Event>> = prepared
        .iter()
        .filter_map(|(_, _, incoming)| incoming.event.as_ref())
        .collect();
    if !events.is_empty() {
        let ids: Vec<uuid::Uuid> = events.iter().map(|event| event.event_id).collect();
        let types: Vec<&str> = events
            .iter()
            .map(|event| event.event_type.as_str())
            .collect();
        let mut inserted: std::collections::HashSet<uuid::Uuid> = tx
            .query_typed(
                "INSERT INTO ops.processed_events (consumer, event_id, event_type)
                 SELECT $1, e.id, e.type FROM unnest($2::uuid[], $3::text[]) AS e(id, type)
                 ON CONFLICT DO NOTHING RETURNING event_id",
                &[
                    (&ctx.config.consumer, Type::TEXT),
                    (&ids, Type::UUID_ARRAY),
                    (&types, Type::TEXT_ARRAY),
                ],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        // The first copy of each newly recorded event is applied; every other is a duplicate.
        fresh.retain(|(span, incoming)| match &incoming.event {
            Some(event) if inserted.remove(&event.event_id) => true,
            Some(_) => {
                span.in_scope(|| tracing::info!("event already processed; dropping the duplicate"));
                false
            }
            None => true,
        });
    }
    let caused = handler.handle_batch(&fresh, &tx).await?;
    let mut outgoing = Vec::new();
    for ((span, _), events) in fresh.iter().zip(&caused) {
        let headers = span.in_scope(crate::telemetry::current_trace_headers);
        outgoing.extend(events.iter().map(|event| (event, headers.clone())));
    }
    crate::outbox::enqueue_many(&tx, &ctx.config.service_name, &outgoing).await?;
    tx.commit().await?;
    Ok(outgoing.len())
}
