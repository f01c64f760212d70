//! Watches the events a pipeline publishes, through a private queue bound to its exchange.

use std::time::Duration;

use contract::{Envelope, Event};
use futures::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

/// Every event published to the test's events exchange, decoded.
pub struct EventSpy {
    consumer: lapin::Consumer,
    _connection: lapin::Connection,
    pub seen: Vec<Envelope<Event>>,
    /// The AMQP text headers of each seen event, in the same order.
    pub headers: Vec<std::collections::BTreeMap<String, String>>,
}

impl EventSpy {
    pub async fn new(amqp_url: &str, exchange: &str) -> anyhow::Result<EventSpy> {
        let connection =
            runtime::broker::connect_with(amqp_url, lapin::ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let exchange_options = lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                exchange.into(),
                lapin::ExchangeKind::Topic,
                exchange_options,
                FieldTable::default(),
            )
            .await?;
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let queue = channel
            .queue_declare("".into(), options, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "spy".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(EventSpy {
            consumer,
            _connection: connection,
            seen: Vec::new(),
            headers: Vec::new(),
        })
    }

    /// Reads events until `done(seen)` holds, failing the test after `deadline`.
    pub async fn until(
        &mut self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&[Envelope<Event>]) -> bool,
    ) {
        let result = tokio::time::timeout(deadline, async {
            while !done(&self.seen) {
                let delivery = self
                    .consumer
                    .next()
                    .await
                    .expect("spy consumer ended")
                    .expect("spy delivery");
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("spy ack");
                let event = Envelope::decode(&delivery.data).expect("published events decode");
                self.seen.push(event);
                let headers = delivery
                    .properties
                    .headers()
                    .as_ref()
                    .map(|table| {
                        table
                            .inner()
                            .keys()
                            .filter_map(|name| {
                                let value = runtime::broker::header_text(
                                    &delivery.properties,
                                    name.as_str(),
                                )?;
                                Some((name.to_string(), value))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.headers.push(headers);
            }
        })
        .await;
        if result.is_err() {
            let types: Vec<&str> = self
                .seen
                .iter()
                .map(|event| event.event_type.as_str())
                .collect();
            panic!("timed out after {deadline:?} waiting for {what}; saw {types:?}");
        }
    }

    pub fn of_type(&self, event_type: &str) -> Vec<&Envelope<Event>> {
        self.seen
            .iter()
            .filter(|event| event.event_type == event_type)
            .collect()
    }
}
