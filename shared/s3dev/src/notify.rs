//! Publishing bucket notifications to RabbitMQ, reliably enough for tests.
//!
//! Every publish waits for the broker's publisher confirm, so once the S3 call
//! that caused it returns, the event is in RabbitMQ. A lost connection (e.g. a
//! broker restart) is repaired on the next publish: the link is rebuilt with
//! exponential backoff and the publish retried a bounded number of times;
//! only when that fails does the caller see an error, which the S3 wrapper
//! turns into `InternalError` rather than dropping the event silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use backon::{ExponentialBuilder, Retryable as _};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::NotifyConfig;

/// Bound on connecting (TCP + AMQP handshake + topology), so a black-holed
/// broker cannot hang an S3 request forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on waiting for one publisher confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries after the first failed publish. With the delays below this rides
/// out roughly 13 s of broker downtime, enough for a RabbitMQ restart.
const PUBLISH_RETRIES: usize = 10;
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);

/// AMQP delivery mode "persistent".
const PERSISTENT: u8 = 2;

/// A confirm-mode channel and the connection that owns it.
struct Link {
    /// Distinguishes links so that a publish failing on an old link does not
    /// tear down a newer one another request already rebuilt.
    generation: u64,
    connection: Connection,
    channel: Channel,
}

/// Publishes notifications to one exchange with one routing key.
pub(crate) struct Notifier {
    config: NotifyConfig,
    /// Shown in the RabbitMQ management UI; includes the exchange so a test
    /// can find (and force-close) exactly this server's connection.
    connection_name: String,
    link: Mutex<Option<Link>>,
    generations: AtomicU64,
}

impl Notifier {
    /// Connects and declares the exchange, so configuration errors surface at
    /// start and consumers can bind to the exchange before the first event.
    pub(crate) async fn connect(config: NotifyConfig) -> anyhow::Result<Self> {
        let connection_name = format!("s3dev:{}", config.exchange);
        let notifier = Self {
            config,
            connection_name,
            link: Mutex::new(None),
            generations: AtomicU64::new(0),
        };
        notifier.channel().await?;
        Ok(notifier)
    }

    /// Publishes `payload` and waits for the broker's confirm, reconnecting
    /// and retrying on failure.
    pub(crate) async fn publish(&self, payload: &[u8]) -> anyhow::Result<()> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(RETRY_MIN_DELAY)
            .with_max_delay(RETRY_MAX_DELAY)
            .with_max_times(PUBLISH_RETRIES);
        (|| self.publish_once(payload))
            .retry(backoff)
            .notify(|err, delay| {
                warn!(error = format!("{err:#}"), ?delay, exchange = %self.config.exchange, "notification publish failed; retrying");
            })
            .await
            .with_context(|| {
                format!(
                    "publishing notification to exchange {:?} failed after {} retries",
                    self.config.exchange, PUBLISH_RETRIES
                )
            })
    }

    /// Closes the broker connection politely (best effort).
    pub(crate) async fn close(&self) {
        let link = self.link.lock().await.take();
        if let Some(link) = link {
            let closing = link.connection.close(200, "s3dev shutting down".into());
            match tokio::time::timeout(CONNECT_TIMEOUT, closing).await {
                Ok(Ok(())) => debug!("closed AMQP connection"),
                Ok(Err(err)) => debug!(%err, "AMQP connection was already closed"),
                Err(_) => debug!("timed out closing AMQP connection"),
            }
        }
    }

    async fn publish_once(&self, payload: &[u8]) -> anyhow::Result<()> {
        let (generation, channel) = self.channel().await?;
        let result = self.publish_on(&channel, payload).await;
        if result.is_err() {
            self.invalidate(generation).await;
        }
        result
    }

    async fn publish_on(&self, channel: &Channel, payload: &[u8]) -> anyhow::Result<()> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(PERSISTENT);
        let confirm = channel
            .basic_publish(
                self.config.exchange.as_str().into(),
                self.config.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await
            .context("basic.publish")?;
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| anyhow!("no publisher confirm within {CONFIRM_TIMEOUT:?}"))?
            .context("waiting for publisher confirm")?;
        match confirmation {
            Confirmation::Ack(_) => Ok(()),
            Confirmation::Nack(_) => bail!("broker nacked the notification"),
            Confirmation::NotRequested => bail!("channel is not in confirm mode"),
        }
    }

    /// The current channel, connecting first if there is none or it broke.
    /// Holding the lock while connecting makes concurrent requests share one
    /// reconnect instead of racing to open several connections.
    async fn channel(&self) -> anyhow::Result<(u64, Channel)> {
        let mut slot = self.link.lock().await;
        if let Some(link) = slot.as_ref()
            && link.channel.status().connected()
        {
            return Ok((link.generation, link.channel.clone()));
        }
        *slot = None;
        let (connection, channel) = tokio::time::timeout(CONNECT_TIMEOUT, self.open())
            .await
            .map_err(|_| {
                anyhow!("connecting to RabbitMQ took longer than {CONNECT_TIMEOUT:?}")
            })??;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        info!(exchange = %self.config.exchange, generation, "connected to RabbitMQ for notifications");
        *slot = Some(Link {
            generation,
            connection,
            channel: channel.clone(),
        });
        Ok((generation, channel))
    }

    async fn open(&self) -> anyhow::Result<(Connection, Channel)> {
        let properties = ConnectionProperties::default()
            .with_connection_name(self.connection_name.as_str().into());
        let connection = runtime::broker::connect_with(&self.config.amqp_url, properties)
            .await
            .with_context(|| {
                format!("connecting to {}", crate::redact_url(&self.config.amqp_url))
            })?;
        let channel = connection
            .create_channel()
            .await
            .context("opening AMQP channel")?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| {
                format!(
                    "declaring durable topic exchange {:?}",
                    self.config.exchange
                )
            })?;
        Ok((connection, channel))
    }

    /// Forgets the link of `generation` (if still current) so the next
    /// publish reconnects; dropping the connection closes it if it is alive.
    async fn invalidate(&self, generation: u64) {
        let mut slot = self.link.lock().await;
        if slot
            .as_ref()
            .is_some_and(|link| link.generation == generation)
        {
            debug!(generation, "dropping broken AMQP link");
            *slot = None;
        }
    }
}
