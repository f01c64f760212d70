//! RabbitMQ: connections, the topology every service declares, and publishing with confirms.

use std::collections::BTreeMap;

use anyhow::Context as _;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::config::Secret;
use crate::stage::Stage;

/// AMQP header holding the reason a message was dead-lettered by landfall.
pub const REASON_HEADER: &str = "x-landfall-reason";
/// `transient` or `permanent`.
pub const ERROR_KIND_HEADER: &str = "x-landfall-error-kind";
/// The service that gave up on the message.
pub const SERVICE_HEADER: &str = "x-landfall-service";
/// Routing key the message was originally published with.
pub const ORIGINAL_ROUTING_KEY_HEADER: &str = "x-landfall-original-routing-key";
/// Exchange the message was originally published to.
pub const ORIGINAL_EXCHANGE_HEADER: &str = "x-landfall-original-exchange";

/// The names of every exchange and queue, derived from one prefix so several pipelines (or
/// tests) share a broker without touching each other.
#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    /// Where S3 or MinIO publishes bucket notifications.
    pub notify_exchange: String,
}

impl Topology {
    /// The names a service configuration asks for.
    pub fn from_config(config: &crate::CommonConfig) -> Topology {
        Topology {
            prefix: config.amqp_prefix.clone(),
            notify_exchange: config.notify_exchange.clone(),
        }
    }

    /// The durable topic exchange every pipeline event is published to (routing key = event type).
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }
    /// Where queues dead-letter to; each queue's dead letters keep the queue's name as routing key.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }
    pub fn queue(&self, service: &str) -> String {
        format!("{}.{service}", self.prefix)
    }
    pub fn dead_letter_queue(&self, service: &str) -> String {
        format!("{}.{service}.dlq", self.prefix)
    }
}

/// The queue of one pipeline stage: the events that feed it ([`Stage::consumes`]) on the
/// events exchange, or, for the ingester, the S3 notification exchange.
pub fn queue_spec(config: &crate::CommonConfig, stage: Stage) -> QueueSpec {
    let bindings = if stage == Stage::Ingester {
        vec![(
            config.notify_exchange.clone(),
            config.notify_routing_key.clone(),
        )]
    } else {
        let exchange = format!("{}.events", config.amqp_prefix);
        stage
            .consumes()
            .iter()
            .map(|key| (exchange.clone(), (*key).to_owned()))
            .collect()
    };
    QueueSpec {
        service: stage.name().to_owned(),
        bindings,
        delivery_limit: config.delivery_limit,
    }
}

/// Declares the exchanges and every stage's queue. Every service does this at start, so an
/// event published before its consumer first started is queued, not dropped as unroutable.
pub async fn declare_topology(
    channel: &Channel,
    config: &crate::CommonConfig,
    topology: &Topology,
) -> anyhow::Result<()> {
    declare_exchanges(channel, topology).await?;
    for stage in Stage::ALL {
        declare_queue(channel, topology, &queue_spec(config, stage)).await?;
    }
    Ok(())
}

/// Deletes every queue and exchange of `topology` (tests and the demo start from nothing).
pub async fn delete_topology(channel: &Channel, topology: &Topology) -> anyhow::Result<()> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    for stage in Stage::ALL {
        for queue in [
            topology.queue(stage.name()),
            topology.dead_letter_queue(stage.name()),
        ] {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
    }
    for exchange in [
        topology.events_exchange(),
        topology.dead_letter_exchange(),
        topology.notify_exchange.clone(),
    ] {
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
    }
    Ok(())
}

/// A service's queue: which exchange and routing keys feed it.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub service: String,
    pub bindings: Vec<(String, String)>,
    pub delivery_limit: u32,
}

/// The largest AMQP frame a connection asks for, in bytes, unless its URL says otherwise
/// (`?frame_max=`). lapin keeps a send and a receive buffer of 32 frames per connection. Asking
/// for nothing, it took RabbitMQ's 128 KiB and grew both buffers to 4 MiB by writing zeros,
/// so each connection held 8 MiB (the stager's three: 25 MiB, most of its heap, and its peak
/// RSS 62 MiB instead of 39 MiB; docs/PERFORMANCE.md). Asked for up front, the buffers are
/// sized when the connection is made and only what is used of them is ever touched; at
/// 32 KiB they are 1 MiB each at most. landfall's messages are events of a few hundred bytes
/// and S3 notifications of a few KiB: a larger message is only sent in more frames.
pub const FRAME_MAX: u32 = 32 * 1024;

/// Opens a connection named after the service (shown in the broker's UI).
pub async fn connect(url: &Secret, service: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(service.into());
    connect_with(url.expose(), properties)
        .await
        .context("connecting to RabbitMQ")
}

/// Opens a connection to an `amqp://` or `amqps://` URL. Every landfall connection to RabbitMQ
/// is made here. For `amqps://`, the URL's query may say, as in RabbitMQ's URI spec:
/// `cacertfile` (PEM CAs to check the server against; default: the system's CAs),
/// `certfile` and `keyfile` (a client certificate and its key, PEM), `verify`
/// (`verify_peer`, the default: the chain and the host name are checked; `verify_none`:
/// encrypt without checking), and `server_name_indication` (the name sent in SNI and checked
/// in the certificate instead of the URL's host; `disable` sends no SNI).
/// The largest frame asked for is [`FRAME_MAX`] unless the URL's query sets `frame_max`.
/// Errors never show the URL (it holds the password).
pub async fn connect_with(
    url: &str,
    properties: ConnectionProperties,
) -> anyhow::Result<Connection> {
    let mut uri: lapin::uri::AMQPUri = url.parse().map_err(|_| {
        anyhow::anyhow!(
            "the AMQP URL is not valid (expected amqp://user:password@host:port/vhost or amqps://…)"
        )
    })?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    match uri.scheme {
        lapin::uri::AMQPScheme::AMQP => Ok(Connection::connect_uri(uri, properties).await?),
        lapin::uri::AMQPScheme::AMQPS => {
            let tls = AmqpTls::from_url(url, &uri.authority.host)?;
            connect_tls(uri, properties, tls).await
        }
    }
}

/// The TLS settings of an `amqps://` URL.
struct AmqpTls {
    connector: lapin::tcp::RustlsConnector,
    /// The name sent in SNI and checked in the certificate.
    server_name: String,
    roots_from: String,
}

impl AmqpTls {
    fn from_url(url: &str, host: &str) -> anyhow::Result<AmqpTls> {
        let mut cacertfile = None;
        let mut certfile = None;
        let mut keyfile = None;
        let mut verify_peer = true;
        let mut sni = None;
        if let Some((_, query)) = url.split_once('?') {
            for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_decode(value)?;
                match key {
                    "cacertfile" => cacertfile = Some(std::path::PathBuf::from(value)),
                    "certfile" => certfile = Some(std::path::PathBuf::from(value)),
                    "keyfile" => keyfile = Some(std::path::PathBuf::from(value)),
                    "verify" => {
                        verify_peer = match value.as_str() {
                            "verify_peer" => true,
                            "verify_none" => false,
                            other => anyhow::bail!(
                                "the AMQP URL's verify={other} is not verify_peer or verify_none"
                            ),
                        }
                    }
                    "server_name_indication" => sni = Some(value),
                    "password" => anyhow::bail!(
                        "the AMQP URL's password= (for an encrypted keyfile) is not supported: give an unencrypted PEM key"
                    ),
                    _ => {}
                }
            }
        }
        let (verify, roots_from) = match (verify_peer, &cacertfile) {
            (false, _) => (crate::tls::Verify::Nothing, String::new()),
            (true, Some(path)) => (
                crate::tls::Verify::Full(std::sync::Arc::new(
                    crate::tls::load_roots(path).context("the AMQP URL's cacertfile")?,
                )),
                format!("cacertfile ({})", path.display()),
            ),
            (true, None) => (
                crate::tls::Verify::Full(std::sync::Arc::new(crate::tls::system_roots()?)),
                "the system's trusted CAs (set cacertfile to use others)".to_owned(),
            ),
        };
        let identity = match (certfile, keyfile) {
            (Some(cert), Some(key)) => Some(crate::tls::load_identity(&cert, &key)?),
            (None, None) => None,
            _ => anyhow::bail!("the AMQP URL needs both certfile and keyfile, or neither"),
        };
        let mut config = crate::tls::client_config(&verify, identity)?;
        let server_name = match sni.as_deref() {
            Some("disable") => {
                config.enable_sni = false;
                host.to_owned()
            }
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => host.to_owned(),
        };
        Ok(AmqpTls {
            connector: config.into(),
            server_name,
            roots_from,
        })
    }
}

fn percent_decode(text: &str) -> anyhow::Result<String> {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| anyhow::anyhow!("the AMQP URL has a parameter that is not valid UTF-8"))
}

async fn connect_tls(
    uri: lapin::uri::AMQPUri,
    properties: ConnectionProperties,
    tls: AmqpTls,
) -> anyhow::Result<Connection> {
    let runtime = lapin::runtime::default_runtime()?;
    let timeout = uri
        .query
        .connection_timeout
        .map(std::time::Duration::from_millis);
    let tls = std::sync::Arc::new(tls);
    let connection = Connection::connector(
        uri,
        runtime,
        async move |uri: lapin::uri::AMQPUri, runtime| {
            let tls = tls.clone();
            let open = async {
                let addresses: Vec<std::net::SocketAddr> =
                    tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
                        .await?
                        .collect();
                let stream = lapin::tcp::AsyncTcpStream::connect(&runtime, addresses).await?;
                stream
                    .into_rustls(&tls.connector, &tls.server_name)
                    .await
                    .map_err(|error| {
                        match crate::tls::explain_handshake_error(
                            &error,
                            &tls.server_name,
                            &tls.roots_from,
                        ) {
                            Some(message) => std::io::Error::other(message),
                            None => error,
                        }
                    })
            };
            let stream = match timeout {
                Some(timeout) => tokio::time::timeout(timeout, open).await.map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "timed out connecting to RabbitMQ",
                    )
                })??,
                None => open.await?,
            };
            Ok(stream)
        },
        properties,
    )
    .await?;
    Ok(connection)
}

/// A channel in publisher-confirm mode.
pub async fn confirm_channel(connection: &Connection) -> anyhow::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// Declares the exchanges every service publishes to. Idempotent.
pub async fn declare_exchanges(channel: &Channel, topology: &Topology) -> anyhow::Result<()> {
    for exchange in [
        topology.events_exchange(),
        topology.dead_letter_exchange(),
        topology.notify_exchange.clone(),
    ] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable_exchange(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("declaring exchange {exchange}"))?;
    }
    Ok(())
}

/// Declares a service's quorum queue (dead-lettering to the DLX, with a delivery limit), its
/// dead-letter queue, and their bindings. Idempotent.
pub async fn declare_queue(
    channel: &Channel,
    topology: &Topology,
    spec: &QueueSpec,
) -> anyhow::Result<String> {
    let queue = topology.queue(&spec.service);
    let dead_letter_queue = topology.dead_letter_queue(&spec.service);
    let mut arguments = quorum_arguments();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        long_string(&topology.dead_letter_exchange()),
    );
    arguments.insert("x-dead-letter-routing-key".into(), long_string(&queue));
    arguments.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(spec.delivery_limit as i32),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(
            dead_letter_queue.as_str().into(),
            durable,
            quorum_arguments(),
        )
        .await
        .with_context(|| format!("declaring queue {dead_letter_queue}"))?;
    channel
        .queue_bind(
            dead_letter_queue.as_str().into(),
            topology.dead_letter_exchange().into(),
            queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(queue.as_str().into(), durable, arguments)
        .await
        .with_context(|| format!("declaring queue {queue}"))?;
    for (exchange, routing_key) in &spec.bindings {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("binding {queue} to {exchange} with '{routing_key}'"))?;
    }
    Ok(queue)
}

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), long_string("quorum"));
    arguments
}

pub fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

/// Headers as a field table of long strings.
pub fn header_table(headers: &BTreeMap<String, String>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(name.as_str().into(), long_string(value));
    }
    table
}

/// A header's value as text, if present and textual.
pub fn header_text(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        AMQPValue::ShortString(value) => Some(value.to_string()),
        _ => None,
    }
}

/// Persistent MessagePack message properties for a pipeline event.
pub fn event_properties(event_id: &str, event_type: &str, headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/msgpack".into())
        .with_delivery_mode(2)
        .with_message_id(event_id.into())
        .with_type(event_type.into())
        .with_headers(headers)
}

/// Publishes one message and waits for the broker's confirm; a nack or a return is an error.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> anyhow::Result<()> {
    let confirmation = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            payload,
            properties,
        )
        .await?
        .await?;
    anyhow::ensure!(
        confirmation.is_ack(),
        "the broker did not confirm the message to {exchange} ({routing_key})"
    );
    Ok(())
}
