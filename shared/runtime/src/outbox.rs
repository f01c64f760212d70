//! The transactional outbox: a consumer writes the events its effect causes in the same
//! transaction as the effect; the relay publishes them with publisher confirms and marks them
//! sent. A crash between publish and mark re-publishes the same event id, which consumers drop.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use contract::{Envelope, Event};
use deadpool_postgres::Pool;
use lapin::options::BasicPublishOptions;
use tokio::sync::Notify;
use tracing::Instrument as _;

use crate::broker::{self, Topology};
use crate::config::Secret;
use crate::failure::RetryPolicy;
use crate::health::Readiness;
use crate::shutdown::Shutdown;

/// Rows published per round; confirms are awaited for the whole round at once.
const RELAY_BATCH: i64 = 500;

/// Writes `envelope` to the outbox inside `tx`, with the current trace context as headers.
pub async fn enqueue(
    tx: &tokio_postgres::Transaction<'_>,
    service: &str,
    envelope: &Envelope<Event>,
) -> Result<(), tokio_postgres::Error> {
    let headers = crate::telemetry::current_trace_headers();
    enqueue_many(tx, service, &[(envelope, headers)]).await
}

/// Writes several events to the outbox inside `tx` in one statement, each with the trace
/// headers of the message that caused it.
pub async fn enqueue_many(
    tx: &tokio_postgres::Transaction<'_>,
    service: &str,
    events: &[(&Envelope<Event>, BTreeMap<String, String>)],
) -> Result<(), tokio_postgres::Error> {
    use tokio_postgres::types::Type;
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut datasets = Vec::with_capacity(events.len());
    let mut dates = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut headers = Vec::with_capacity(events.len());
    for (envelope, trace_headers) in events {
        ids.push(envelope.event_id);
        types.push(envelope.event_type.as_str());
        datasets.push(envelope.batch.as_ref().map(|batch| batch.dataset.as_str()));
        dates.push(envelope.batch.as_ref().map(|batch| batch.ingestion_date));
        payloads.push(envelope.encode());
        headers.push(serde_json::to_value(trace_headers).expect("string map serializes"));
    }
    tx.query_typed(
        "INSERT INTO ops.outbox (event_id, event_type, routing_key, dataset, ingestion_date, payload, headers, created_by)
         SELECT e.id, e.type, e.type, e.dataset, e.ingestion_date, e.payload, e.headers, $7
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], $5::bytea[], $6::jsonb[])
                AS e(id, type, dataset, ingestion_date, payload, headers)",
        &[
            (&ids, Type::UUID_ARRAY),
            (&types, Type::TEXT_ARRAY),
            (&datasets, Type::TEXT_ARRAY),
            (&dates, Type::DATE_ARRAY),
            (&payloads, Type::BYTEA_ARRAY),
            (&headers, Type::JSONB_ARRAY),
            (&service, Type::TEXT),
        ],
    )
    .await?;
    Ok(())
}

/// Publishes unsent outbox rows. Every replica of every service runs one; `FOR UPDATE SKIP
/// LOCKED` lets them share the work without publishing a row twice in the normal case.
#[derive(Clone)]
pub struct OutboxRelay {
    pub pool: Pool,
    pub amqp_url: Secret,
    pub topology: Topology,
    pub config: std::sync::Arc<crate::CommonConfig>,
    pub service: String,
    pub poll: std::time::Duration,
    pub retry: RetryPolicy,
    /// Woken by local commits so an event leaves at once rather than at the next poll.
    pub wake: Arc<Notify>,
    pub readiness: Readiness,
}

impl OutboxRelay {
    /// A relay for one-shot commands (e.g. `landfall reconcile`) that write events when no
    /// service may be running and publish them with [`OutboxRelay::publish_pending`].
    pub fn for_command(pool: Pool, config: crate::CommonConfig) -> OutboxRelay {
        OutboxRelay {
            pool,
            amqp_url: config.amqp_url.clone(),
            topology: Topology::from_config(&config),
            service: config.service_name.clone(),
            poll: config.outbox_poll,
            retry: RetryPolicy {
                attempts: 1,
                min_delay: config.retry_min_delay,
                max_delay: config.retry_max_delay,
            },
            wake: Arc::default(),
            readiness: Readiness::default(),
            config: Arc::new(config),
        }
    }

    /// Runs until shutdown, reconnecting to the broker and database as needed, then flushes
    /// what is left once more.
    pub async fn run(self, shutdown: Shutdown) {
        let mut backoff = self.retry.forever();
        while !shutdown.is_triggered() {
            match self.connect_and_relay(&shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    self.readiness.set_relay(false);
                    let what = "outbox relay lost its connection; retrying";
                    if !self
                        .retry
                        .pause(&mut backoff, &error, what, &shutdown)
                        .await
                    {
                        return;
                    }
                }
            }
        }
    }

    async fn connect_and_relay(&self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let connection =
            broker::connect(&self.amqp_url, &format!("{}-relay", self.service)).await?;
        let channel = broker::confirm_channel(&connection).await?;
        broker::declare_topology(&channel, &self.config, &self.topology).await?;
        self.readiness.set_relay(true);
        loop {
            // Ask to be woken before looking, so a commit between the look and the wait
            // is not missed.
            let woken = self.wake.notified();
            let published = self.publish_round(&channel).await?;
            if published as i64 == RELAY_BATCH {
                continue;
            }
            self.record_backlog().await;
            if shutdown.is_triggered() {
                let _ = connection.close(200, "shutting down".into()).await;
                return Ok(());
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.wait() => {}
            }
        }
    }

    /// Reports how many outbox rows wait to be published (the partial index makes this cheap).
    async fn record_backlog(&self) {
        let Ok(client) = self.pool.get().await else {
            return;
        };
        if let Ok(row) = client
            .query_one("SELECT count(*) FROM ops.outbox WHERE sent_at IS NULL", &[])
            .await
        {
            let backlog: i64 = row.get(0);
            crate::metrics::metrics().outbox_backlog.record(
                backlog.max(0) as u64,
                &crate::metrics::attributes(&[("service", &self.service)]),
            );
        }
    }

    /// Publishes every unsent row once and returns how many, for one-shot commands (e.g.
    /// `landfall reconcile`) that write events when no service may be running.
    pub async fn publish_pending(&self) -> anyhow::Result<usize> {
        let connection =
            broker::connect(&self.amqp_url, &format!("{}-relay", self.service)).await?;
        let channel = broker::confirm_channel(&connection).await?;
        broker::declare_topology(&channel, &self.config, &self.topology).await?;
        let mut total = 0;
        loop {
            let published = self.publish_round(&channel).await?;
            total += published;
            if (published as i64) < RELAY_BATCH {
                break;
            }
        }
        let _ = connection.close(200, "done".into()).await;
        Ok(total)
    }

    /// Publishes one round of unsent rows and marks them sent; returns how many.
    async fn publish_round(&self, channel: &lapin::Channel) -> anyhow::Result<usize> {
        let mut client = self.pool.get().await.context("outbox relay: database")?;
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "SELECT id, event_id, event_type, routing_key, payload, headers
                   FROM ops.outbox WHERE sent_at IS NULL
                  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                &[&RELAY_BATCH],
            )
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let exchange = self.topology.events_exchange();
        let mut confirms = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let (confirm, event_type) = publish_row(channel, &exchange, row).await?;
            confirms.push((confirm, event_type));
            ids.push(row.get::<_, i64>(0));
        }
        let published = &crate::metrics::metrics().events_published;
        for (confirm, event_type) in confirms {
            let confirmation = confirm.await?;
            anyhow::ensure!(confirmation.is_ack(), "the broker refused an outbox event");
            published.add(
                1,
                &crate::metrics::attributes(&[
                    ("service", &self.service),
                    ("event_type", &event_type),
                ]),
            );
        }
        crate::fault::point("outbox.after_confirm");
        tx.execute(
            "UPDATE ops.outbox SET sent_at = clock_timestamp() WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
        tx.commit().await?;
        tracing::debug!(published = ids.len(), "outbox events published");
        Ok(ids.len())
    }
}

/// Publishes one outbox row to `exchange` under a producer span that continues the trace it
/// was written in; the broker's confirmation to wait for and the event's type.
async fn publish_row(
    channel: &lapin::Channel,
    exchange: &str,
    row: &tokio_postgres::Row,
) -> anyhow::Result<(lapin::PublisherConfirm, String)> {
    let event_id: uuid::Uuid = row.get(1);
    let event_type: &str = row.get(2);
    let routing_key: &str = row.get(3);
    let payload: &[u8] = row.get(4);
    let headers: serde_json::Value = row.get(5);
    let stored: BTreeMap<String, String> = serde_json::from_value(headers).unwrap_or_default();
    // A producer span, child of the context the event was written in; the consumer continues
    // from this span.
    let span = tracing::info_span!(
        "publish",
        otel.name = format!("publish {exchange}"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "publish",
        messaging.destination.name = exchange,
        messaging.rabbitmq.destination.routing_key = routing_key,
        messaging.message.id = event_id.to_string(),
        trace_id = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, &stored);
    let headers = span.in_scope(crate::telemetry::current_trace_headers);
    let properties = broker::event_properties(
        &event_id.to_string(),
        event_type,
        broker::header_table(&headers),
    );
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            payload,
            properties,
        )
        .instrument(span)
        .await?;
    Ok((confirm, event_type.to_owned()))
}
