//! `landfall dlq`: look at, requeue and purge the dead-letter queues.
//!
//! Each service's queue `<prefix>.<service>` dead-letters to `<prefix>.<service>.dlq`. The
//! consumer adds why (`x-landfall-reason`, `x-landfall-error-kind`, `x-landfall-service`) and where
//! the message came from (`x-landfall-original-exchange`, `x-landfall-original-routing-key`); a
//! message the broker dead-lettered itself (delivery limit) carries `x-death` instead.
//!
//! Reading never loses a message: messages are fetched with `basic.get` *without* ack on one
//! channel, and closing that channel returns every one of them to the queue in its place.
//! Requeueing publishes a copy to the original exchange with publisher confirms and only then
//! acks it off the dead-letter queue; the message id is kept, so a consumer that already
//! applied the event drops the copy as a duplicate.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use runtime::broker;

mod requeue;

use requeue::{purge, requeue};

use crate::choices::Service;
use crate::table::{Table, truncate};

#[derive(Args)]
pub struct DlqArgs {
    /// Exchange and queue name prefix.
    #[arg(
        long,
        global = true,
        env = "LANDFALL_AMQP_PREFIX",
        default_value = "landfall"
    )]
    prefix: String,
    /// The RabbitMQ to read and requeue from.
    #[arg(
        long,
        global = true,
        env = "LANDFALL_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    amqp_url: String,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// One line per dead-lettered message: why, and where it came from (nothing is removed).
    List {
        /// Only this service's dead-letter queue (default: all five).
        #[arg(long, value_enum)]
        service: Option<Service>,
        /// At most this many messages per queue.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print one JSON document (`{"messages": […], "missing_queues": […]}`, README "The
        /// `landfall` command") instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// One message in full: properties, headers and the decoded event (nothing is removed).
    Show {
        /// The service whose dead-letter queue holds it.
        #[arg(long, value_enum)]
        service: Service,
        /// Its position in `dlq list` (1 = the oldest).
        #[arg(
            long,
            conflicts_with = "message_id",
            required_unless_present = "message_id"
        )]
        index: Option<usize>,
        /// Its message id (the event id of a pipeline event).
        #[arg(long)]
        message_id: Option<String>,
    },
    /// Publish messages back to the exchange and routing key they came from, then remove them
    /// from the dead-letter queue.
    Requeue {
        /// The service whose dead-letter queue holds them.
        #[arg(long, value_enum)]
        service: Service,
        /// Only the message with this id (as `dlq list` shows it).
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        message_id: Option<String>,
        /// Every message in the queue.
        #[arg(long)]
        all: bool,
    },
    /// Delete every message of a service's dead-letter queue.
    Purge {
        /// The service whose dead-letter queue is emptied.
        #[arg(long, value_enum)]
        service: Service,
        /// Really delete them (without it, only says how many there are).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let connection = runtime::broker::connect_with(
        &args.amqp_url,
        ConnectionProperties::default().with_connection_name("landfall-dlq".into()),
    )
    .await
    .context("connecting to RabbitMQ (LANDFALL_AMQP_URL)")?;
    let result = match args.command {
        DlqCommand::List {
            service,
            limit,
            json,
        } => {
            let services = match service {
                Some(service) => vec![service.name()],
                None => Service::ALL.map(Service::name).to_vec(),
            };
            list(&connection, &args.prefix, &services, limit, json).await
        }
        DlqCommand::Show {
            service,
            index,
            message_id,
        } => {
            let service = service.name();
            show(
                &connection,
                &args.prefix,
                service,
                index,
                message_id.as_deref(),
            )
            .await
        }
        DlqCommand::Requeue {
            service,
            message_id,
            all,
        } => {
            let service = service.name();
            let selected = if all { None } else { message_id };
            requeue(&connection, &args.prefix, service, selected.as_deref()).await
        }
        DlqCommand::Purge { service, yes } => {
            purge(&connection, &args.prefix, service.name(), yes).await
        }
    };
    connection.close(200, "done".into()).await.ok();
    result
}

fn dlq_name(prefix: &str, service: &str) -> String {
    format!("{prefix}.{service}.dlq")
}

/// Messages in the queue now, or an error naming the queue when it does not exist.
async fn depth(connection: &Connection, queue: &str) -> anyhow::Result<u32> {
    // A failed passive declare closes its channel: use a throwaway one.
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .with_context(|| {
            format!("queue {queue} does not exist (has a service of this prefix ever started?)")
        })?;
    channel.close(200, "done".into()).await.ok();
    Ok(declared.message_count())
}

/// One dead-lettered message as read (still unacked on `channel`).
struct Held {
    delivery: lapin::message::Delivery,
}

impl Held {
    fn header(&self, name: &str) -> Option<String> {
        broker::header_text(&self.delivery.properties, name)
    }

    fn message_id(&self) -> String {
        self.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .or_else(|| {
                contract::Envelope::decode(&self.delivery.data)
                    .ok()
                    .map(|event| event.event_id.to_string())
            })
            .unwrap_or_default()
    }

    fn event_type(&self) -> String {
        match contract::Envelope::decode(&self.delivery.data) {
            Ok(event) => event.event_type,
            Err(_) => match self.delivery.properties.kind() {
                Some(kind) => format!("{kind} (undecodable)"),
                None if looks_like_notification(&self.delivery.data) => "s3 notification".into(),
                None => "(not an event)".into(),
            },
        }
    }

    /// The first `x-death` entry (the broker's own dead-lettering record), if any.
    fn x_death(&self) -> Option<FieldTable> {
        let headers = self.delivery.properties.headers().as_ref()?;
        match headers.inner().get("x-death")? {
            AMQPValue::FieldArray(entries) => match entries.as_slice().first()? {
                AMQPValue::FieldTable(table) => Some(table.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Where the message was first published: landfall's headers, else `x-death`.
    fn origin(&self) -> Option<(String, String)> {
        if let (Some(exchange), Some(routing_key)) = (
            self.header(broker::ORIGINAL_EXCHANGE_HEADER),
            self.header(broker::ORIGINAL_ROUTING_KEY_HEADER),
        ) {
            return Some((exchange, routing_key));
        }
        let death = self.x_death()?;
        let exchange = death.inner().get("exchange").map(value_text)?;
        let routing_key = match death.inner().get("routing-keys")? {
            AMQPValue::FieldArray(keys) => keys.as_slice().first().map(value_text)?,
            other => value_text(other),
        };
        Some((exchange, routing_key))
    }

    /// How many times the broker dead-lettered it (`x-death` count), if it did.
    fn deaths(&self) -> String {
        self.x_death()
            .and_then(|death| death.inner().get("count").map(value_text))
            .unwrap_or_default()
    }

    fn reason(&self) -> String {
        self.header(broker::REASON_HEADER)
            .or_else(|| {
                self.x_death()
                    .and_then(|death| death.inner().get("reason").map(value_text))
                    .map(|reason| format!("broker: {reason}"))
            })
            .unwrap_or_default()
    }
}

fn looks_like_notification(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|value| value.get("Records").is_some() || value.get("EventName").is_some())
        .unwrap_or(false)
}

fn value_text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(text) => text.to_string(),
        AMQPValue::ShortString(text) => text.to_string(),
        AMQPValue::Boolean(v) => v.to_string(),
        AMQPValue::ShortShortInt(v) => v.to_string(),
        AMQPValue::ShortShortUInt(v) => v.to_string(),
        AMQPValue::ShortInt(v) => v.to_string(),
        AMQPValue::ShortUInt(v) => v.to_string(),
        AMQPValue::LongInt(v) => v.to_string(),
        AMQPValue::LongUInt(v) => v.to_string(),
        AMQPValue::LongLongInt(v) => v.to_string(),
        AMQPValue::Timestamp(v) => v.to_string(),
        AMQPValue::FieldArray(values) => {
            let items: Vec<String> = values.as_slice().iter().map(value_text).collect();
            format!("[{}]", items.join(", "))
        }
        AMQPValue::FieldTable(table) => {
            let items: Vec<String> = table
                .inner()
                .iter()
                .map(|(name, value)| format!("{name}={}", value_text(value)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        other => format!("{other:?}"),
    }
}

/// Fetches up to `limit` messages of `queue` without acking them: they stay the channel's
/// until it acks them or closes (which puts every unacked one back).
async fn fetch(channel: &Channel, queue: &str, limit: usize) -> anyhow::Result<Vec<Held>> {
    let mut held = Vec::new();
    while held.len() < limit {
        let message = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .with_context(|| format!("reading {queue}"))?;
        let Some(message) = message else { break };
        held.push(Held {
            delivery: message.delivery,
        });
    }
    Ok(held)
}

/// What `landfall dlq list --json` prints.
#[derive(Debug, serde::Serialize)]
struct DlqReport {
    /// Every dead-lettered message read, queue by queue in pipeline order, oldest first.
    messages: Vec<DeadLetter>,
    /// Dead-letter queues that do not exist (no service of this prefix declared them yet).
    missing_queues: Vec<String>,
}

/// One dead-lettered message (left in its queue).
#[derive(Debug, serde::Serialize)]
struct DeadLetter {
    service: &'static str,
    /// Its position in the queue (1 = the oldest), as `dlq show --index` takes it.
    index: usize,
    event_type: String,
    message_id: String,
    /// `transient` or `permanent` (`x-landfall-error-kind`); empty when the broker dead-lettered it.
    error_kind: String,
    original_exchange: Option<String>,
    original_routing_key: Option<String>,
    /// How often the broker dead-lettered it (`x-death` count); empty when landfall did.
    deaths: String,
    reason: String,
}

/// Reads (and leaves) up to `limit` messages of each service's dead-letter queue.
async fn read_dead_letters(
    connection: &Connection,
    prefix: &str,
    services: &[&'static str],
    limit: usize,
) -> anyhow::Result<DlqReport> {
    let mut report = DlqReport {
        messages: Vec::new(),
        missing_queues: Vec::new(),
    };
    for service in services {
        let queue = dlq_name(prefix, service);
        if depth(connection, &queue).await.is_err() {
            report.missing_queues.push(queue);
            continue;
        }
        let channel = connection.create_channel().await?;
        let held = fetch(&channel, &queue, limit).await;
        let read: anyhow::Result<Vec<DeadLetter>> = held.map(|held| {
            held.iter()
                .enumerate()
                .map(|(index, message)| {
                    let origin = message.origin();
                    DeadLetter {
                        service,
                        index: index + 1,
                        event_type: message.event_type(),
                        message_id: message.message_id(),
                        error_kind: message
                            .header(broker::ERROR_KIND_HEADER)
                            .unwrap_or_default(),
                        original_exchange: origin.as_ref().map(|(exchange, _)| exchange.clone()),
                        original_routing_key: origin.map(|(_, key)| key),
                        deaths: message.deaths(),
                        reason: message.reason(),
                    }
                })
                .collect()
        });
        // Closing the channel returns every fetched message to the queue.
        channel.close(200, "listed".into()).await.ok();
        report.messages.extend(read?);
    }
    Ok(report)
}

async fn list(
    connection: &Connection,
    prefix: &str,
    services: &[&'static str],
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let report = read_dead_letters(connection, prefix, services, limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut table = Table::new(&[
        "service",
        "#",
        "event type",
        "message id",
        "kind",
        "original routing key",
        "deaths",
        "reason",
    ]);
    for message in &report.messages {
        table.row(vec![
            message.service.to_owned(),
            message.index.to_string(),
            message.event_type.clone(),
            message.message_id.clone(),
            message.error_kind.clone(),
            message.original_routing_key.clone().unwrap_or_default(),
            message.deaths.clone(),
            truncate(&message.reason.replace('\n', " "), 160),
        ]);
    }
    if table.is_empty() {
        println!("no dead-lettered messages");
    } else {
        print!("{}", table.render());
        println!("{} dead-lettered message(s)", report.messages.len());
    }
    for queue in report.missing_queues {
        println!("({queue} does not exist)");
    }
    Ok(())
}

async fn show(
    connection: &Connection,
    prefix: &str,
    service: &str,
    index: Option<usize>,
    message_id: Option<&str>,
) -> anyhow::Result<()> {
    let queue = dlq_name(prefix, service);
    let count = depth(connection, &queue).await? as usize;
    let channel = connection.create_channel().await?;
    let result = async {
        let held = fetch(&channel, &queue, count.max(1)).await?;
        let found = match (index, message_id) {
            (Some(index), _) => held
                .iter()
                .enumerate()
                .find(|(position, _)| position + 1 == index),
            (None, Some(id)) => held
                .iter()
                .enumerate()
                .find(|(_, message)| message.message_id() == id),
            (None, None) => None,
        };
        let Some((position, message)) = found else {
            anyhow::bail!(
                "no such message in {queue} ({} message(s) there)",
                held.len()
            );
        };
        Ok(describe(service, position + 1, message))
    }
    .await;
    channel.close(200, "shown".into()).await.ok();
    print!("{}", result?);
    Ok(())
}

fn describe(service: &str, position: usize, message: &Held) -> String {
    use std::fmt::Write as _;
    let delivery = &message.delivery;
    let properties = &delivery.properties;
    let mut out = String::new();
    let _ = writeln!(out, "service       {service}");
    let _ = writeln!(out, "position      {position}");
    let _ = writeln!(out, "message id    {}", message.message_id());
    let _ = writeln!(out, "event type    {}", message.event_type());
    if let Some(kind) = properties.kind() {
        let _ = writeln!(out, "type          {kind}");
    }
    if let Some(content_type) = properties.content_type() {
        let _ = writeln!(out, "content type  {content_type}");
    }
    let _ = writeln!(
        out,
        "dead-lettered via {} ({})",
        delivery.exchange, delivery.routing_key
    );
    if let Some((exchange, routing_key)) = message.origin() {
        let _ = writeln!(out, "origin        {exchange} ({routing_key})");
    }
    out.push_str("headers\n");
    if let Some(headers) = properties.headers() {
        for (name, value) in headers.inner() {
            let _ = writeln!(out, "  {name}: {}", value_text(value));
        }
    }
    let _ = writeln!(out, "body          {} bytes", delivery.data.len());
    match contract::Envelope::decode(&delivery.data) {
        Ok(event) => {
            let json = serde_json::to_string_pretty(&event)
                .unwrap_or_else(|error| format!("(cannot render: {error}) {event:?}"));
            let _ = writeln!(out, "event\n{json}");
        }
        Err(error) => {
            let _ = writeln!(out, "not an event: {error}");
            let text = String::from_utf8_lossy(&delivery.data);
            let _ = writeln!(out, "raw body\n{}", truncate(&text, 4000));
        }
    }
    out
}
