//! `bench events`: events/s through the ingester's consume → commit → outbox → publish path,
//! against the broker alone publishing and consuming as many messages.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::NaiveDate;

use super::env::Poll;
use super::{BUCKET, BenchArgs, BenchEnv, Figure, Report};
use crate::services::Services;

pub(super) async fn bench_events(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.events >= 1, "--events must be at least 1");
    let n = args.events;
    let config = ingester_config(env)?;
    let topology = runtime::broker::Topology::from_config(&config);
    let connection = runtime::broker::connect(&config.amqp_url, "landfall-bench-events").await?;
    let channel = runtime::broker::confirm_channel(&connection).await?;
    runtime::broker::declare_topology(&channel, &config, &topology).await?;

    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|index| notification(index).into_bytes())
        .collect();
    let raw_s = broker_alone(&connection, &channel, &env.scratch.broker.prefix, &bodies).await?;
    let raw_rate = n as f64 / raw_s;
    println!("Broker alone  {n} messages published and consumed in {raw_s:.2}s ({raw_rate:.0}/s)");

    // The measured path: the notifications wait in the ingester's queue before it starts.
    let started = Instant::now();
    publish_all(
        &channel,
        &config.notify_exchange,
        &config.notify_routing_key,
        &bodies,
    )
    .await?;
    println!(
        "Pre-loaded    {n} S3 notifications into {} in {:.2}s",
        topology.queue("ingester"),
        started.elapsed().as_secs_f64()
    );
    let _ = channel.close(200, "bench".into()).await;
    let _ = connection.close(200, "bench".into()).await;
    let mut services = env.start_services(&["ingester"]).await?;
    let measured = wait_published(env, &mut services, n).await;
    let config_note = format!(
        "LANDFALL_CONCURRENCY={}, LANDFALL_PREFETCH={}, LANDFALL_CONSUME_BATCH={}",
        config.concurrency, config.prefetch, config.consume_batch
    );
    services.stop().await;
    let (landed, total_s, consume_s) = measured?;
    anyhow::ensure!(
        landed as usize == n,
        "{landed} of {n} notifications became ledger rows"
    );
    let rate = n as f64 / total_s;
    println!(
        "Ingester      {n} events: first commit → last outbox row published {total_s:.2}s ({rate:.0}/s); commits alone {consume_s:.2}s"
    );
    Ok(Report {
        bench: "events",
        params: vec![
            ("events", n.to_string()),
            (
                "service",
                format!("ingester binary as a process ({config_note})"),
            ),
            ("seconds", format!("{total_s:.3}")),
            ("commit_seconds", format!("{consume_s:.3}")),
            ("broker_alone_seconds", format!("{raw_s:.3}")),
        ],
        figures: vec![Figure {
            figure: "events/s (consume → commit → outbox → publish)".into(),
            unit: "events/s",
            value: rate,
            baseline: Some(raw_rate),
            baseline_label: "broker alone: publish (pipelined confirms) + consume/ack".into(),
            goal: Some(("≥ 5,000/s".into(), rate >= 5000.0)),
        }],
    })
}

/// The configuration the ingester process will see: the bench's variables over this process's
/// environment (which the child inherits), so `LANDFALL_PREFETCH=…` on the command line is
/// reported as it is used.
fn ingester_config(env: &BenchEnv) -> anyhow::Result<runtime::CommonConfig> {
    runtime::CommonConfig::from_env(
        &runtime::Env::from_fn(|name| {
            env.vars
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        }),
        "ingester",
    )
    .map_err(Into::into)
}

/// The baseline: the broker alone — as many messages published (confirms pipelined) to a
/// quorum queue of the bench's prefix and consumed with an ack each, no PostgreSQL; the seconds
/// it took.
async fn broker_alone(
    connection: &lapin::Connection,
    channel: &lapin::Channel,
    prefix: &str,
    bodies: &[Vec<u8>],
) -> anyhow::Result<f64> {
    let raw_queue = format!("{prefix}.bench-raw");
    let mut queue_args = lapin::types::FieldTable::default();
    queue_args.insert(
        "x-queue-type".into(),
        runtime::broker::long_string("quorum"),
    );
    channel
        .queue_declare(
            raw_queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            queue_args,
        )
        .await?;
    let started = Instant::now();
    publish_all(channel, "", &raw_queue, bodies).await?;
    consume_all(connection, &raw_queue, bodies.len()).await?;
    let raw_s = started.elapsed().as_secs_f64();
    channel
        .queue_delete(raw_queue.as_str().into(), Default::default())
        .await?;
    Ok(raw_s)
}

/// Waits until the ingester has published `n` outbox rows; then the ledger's landed files, the
/// seconds from the first file landed to the last row published, and the seconds over which
/// the files landed.
async fn wait_published(
    env: &BenchEnv,
    services: &mut Services,
    n: usize,
) -> anyhow::Result<(i64, f64, f64)> {
    env.poll(services, Duration::from_millis(20), move || async move {
        let sent: i64 = env
            .db
            .query_one(
                "SELECT count(*) FROM ops.outbox WHERE sent_at IS NOT NULL",
                &[],
            )
            .await?
            .get(0);
        Ok(if sent as usize >= n {
            Poll::Done(())
        } else {
            Poll::Waiting(format!("only {sent} of {n} events published"))
        })
    })
    .await?;
    let row = env
        .db
        .query_one(
            "SELECT (SELECT count(*) FROM ops.files WHERE state = 'landed'),
                    extract(epoch FROM (SELECT max(sent_at) FROM ops.outbox)
                                     - (SELECT min(landed_at) FROM ops.files))::float8,
                    extract(epoch FROM (SELECT max(landed_at) - min(landed_at) FROM ops.files))::float8",
            &[],
        )
        .await?;
    Ok((
        row.get::<_, i64>(0),
        row.get::<_, f64>(1),
        row.get::<_, f64>(2),
    ))
}

/// A MinIO-style notification of one created object, a different key each.
fn notification(index: usize) -> String {
    let date =
        NaiveDate::from_ymd_opt(2030, 1, 1).expect("a date") + chrono::Duration::days(index as i64);
    let key = format!("landing/ecommerce/ingestion_date={date}/orders.csv");
    format!(
        r#"{{"EventName":"s3:ObjectCreated:Put","Key":"{BUCKET}/{key}","Records":[{{"eventVersion":"2.0","eventSource":"minio:s3","eventName":"s3:ObjectCreated:Put","s3":{{"s3SchemaVersion":"1.0","bucket":{{"name":"{BUCKET}","arn":"arn:aws:s3:::{BUCKET}"}},"object":{{"key":"{key}","size":100,"eTag":"e{index:08x}","sequencer":"1"}}}}}}]}}"#
    )
}

/// Publishes every body, awaiting confirms in windows of 1,000.
async fn publish_all(
    channel: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    bodies: &[Vec<u8>],
) -> anyhow::Result<()> {
    for window in bodies.chunks(1000) {
        let mut confirms = Vec::with_capacity(window.len());
        for body in window {
            confirms.push(
                channel
                    .basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        lapin::options::BasicPublishOptions::default(),
                        body,
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a message");
        }
    }
    Ok(())
}

/// Consumes and acks `n` messages of `queue`.
async fn consume_all(connection: &lapin::Connection, queue: &str, n: usize) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(100, lapin::options::BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "bench-raw".into(),
            lapin::options::BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    for _ in 0..n {
        let delivery = deliveries
            .next()
            .await
            .context("the broker ended the consumer")??;
        delivery
            .ack(lapin::options::BasicAckOptions::default())
            .await?;
    }
    let _ = channel.close(200, "bench".into()).await;
    Ok(())
}
