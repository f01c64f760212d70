//! `landfall dlq requeue` and `purge`: messages published back where they came from (then
//! acked off the dead-letter queue), or deleted.

use anyhow::Context as _;
use lapin::options::{
    BasicAckOptions, BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};

use super::{depth, dlq_name, fetch};

/// Headers of a copy to publish again: landfall's dead-letter headers and the broker's
/// dead-letter bookkeeping removed, the rest (trace context, …) kept.
fn republished_properties(properties: &BasicProperties) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(table) = properties.headers() {
        for (name, value) in table.inner() {
            let name_text = name.as_str();
            let dropped = name_text.starts_with("x-landfall-")
                || matches!(
                    name_text,
                    "x-death"
                        | "x-first-death-exchange"
                        | "x-first-death-queue"
                        | "x-first-death-reason"
                        | "x-last-death-exchange"
                        | "x-last-death-queue"
                        | "x-last-death-reason"
                        | "x-delivery-count"
                );
            if !dropped {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
    properties.clone().with_headers(headers)
}

pub(super) async fn requeue(
    connection: &Connection,
    prefix: &str,
    service: &str,
    message_id: Option<&str>,
) -> anyhow::Result<()> {
    let queue = dlq_name(prefix, service);
    // Only the messages there now: one that fails again and comes back is not retried in a loop.
    let count = depth(connection, &queue).await? as usize;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let result = async {
        let held = fetch(&channel, &queue, count).await?;
        let mut requeued = 0usize;
        for message in &held {
            if message_id.is_some_and(|id| message.message_id() != id) {
                continue;
            }
            let (exchange, routing_key) = message.origin().with_context(|| {
                format!(
                    "message {} has no original exchange or routing key in its headers",
                    message.message_id()
                )
            })?;
            let confirmation = channel
                .basic_publish(
                    exchange.as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.delivery.data,
                    republished_properties(&message.delivery.properties),
                )
                .await?
                .await?;
            anyhow::ensure!(
                confirmation.is_ack(),
                "the broker did not confirm the copy of {} to {exchange} ({routing_key}); it stays in {queue}",
                message.message_id()
            );
            anyhow::ensure!(
                confirmation.take_message().is_none(),
                "no queue is bound to {exchange} with '{routing_key}'; message {} stays in {queue}",
                message.message_id()
            );
            message
                .delivery
                .ack(BasicAckOptions::default())
                .await
                .context("acking the requeued message off the dead-letter queue")?;
            println!(
                "requeued {} {} to {exchange} ({routing_key})",
                message.event_type(),
                message.message_id()
            );
            requeued += 1;
        }
        if let Some(id) = message_id {
            anyhow::ensure!(requeued > 0, "no message with id {id} in {queue}");
        }
        Ok(requeued)
    }
    .await;
    // Whatever was not requeued goes back to the dead-letter queue.
    channel.close(200, "requeued".into()).await.ok();
    println!("{} message(s) requeued from {queue}", result?);
    Ok(())
}

pub(super) async fn purge(
    connection: &Connection,
    prefix: &str,
    service: &str,
    yes: bool,
) -> anyhow::Result<()> {
    let queue = dlq_name(prefix, service);
    let count = depth(connection, &queue).await?;
    if !yes {
        anyhow::bail!(
            "{queue} holds {count} message(s); run again with --yes to delete them (`landfall dlq list --service {service}` shows them)"
        );
    }
    let channel = connection.create_channel().await?;
    let purged = channel
        .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await?;
    channel.close(200, "purged".into()).await.ok();
    println!("{purged} message(s) deleted from {queue}");
    Ok(())
}
