//! The exchange and queue names of a run: everything under one prefix, removed at its end.

use std::time::Duration;

use anyhow::{Context as _, bail};

/// RabbitMQ and the prefix of a run's exchanges and queues (`<prefix>.events`,
/// `<prefix>.<stage>`, `<prefix>.s3`, …); the services declare them, [`BrokerPrefix::delete`]
/// removes them.
#[derive(Debug, Clone)]
pub struct BrokerPrefix {
    pub amqp_url: String,
    pub prefix: String,
}

impl BrokerPrefix {
    pub fn new(amqp_url: &str, prefix: &str) -> BrokerPrefix {
        BrokerPrefix {
            amqp_url: amqp_url.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    /// The names under the prefix; the S3 server notifies `<prefix>.s3`.
    pub fn topology(&self) -> runtime::broker::Topology {
        runtime::broker::Topology {
            prefix: self.prefix.clone(),
            notify_exchange: format!("{}.s3", self.prefix),
        }
    }

    async fn connect(&self) -> anyhow::Result<lapin::Connection> {
        runtime::broker::connect_with(&self.amqp_url, lapin::ConnectionProperties::default())
            .await
            .context("connecting to RabbitMQ (is it running? see README)")
    }

    /// Deletes every exchange and queue under the prefix (dead letters included). Bounded: a
    /// broker call that never answers (seen once: a close waiting for ever) gives up after 30 s.
    pub async fn delete(&self) -> anyhow::Result<()> {
        let delete = async {
            let connection = self.connect().await?;
            let channel = connection.create_channel().await?;
            let deleted = runtime::broker::delete_topology(&channel, &self.topology()).await;
            connection.close(200, "done".into()).await.ok();
            deleted
        };
        match tokio::time::timeout(Duration::from_secs(30), delete).await {
            Ok(deleted) => deleted,
            Err(_) => bail!("timed out after 30 s"),
        }
    }

    /// Removes the exchanges and queues an earlier run under the same prefix left (their
    /// messages were for that run); refuses while something consumes one of its queues.
    pub async fn clear(&self) -> anyhow::Result<()> {
        let connection = self.connect().await?;
        // A queue with a consumer is not deleted (`if_unused`); a missing one is no error.
        let unused = lapin::options::QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        };
        let channel = connection.create_channel().await?;
        let topology = self.topology();
        for stage in runtime::Stage::ALL {
            let queue = topology.queue(stage.name());
            if let Err(error) = channel.queue_delete(queue.as_str().into(), unused).await {
                bail!(
                    "the queue {queue} is in use ({error}): a pipeline (another demo?) runs under \
                     --amqp-prefix {}; stop it or choose another prefix",
                    self.prefix
                );
            }
        }
        let deleted = runtime::broker::delete_topology(&channel, &topology).await;
        connection.close(200, "done".into()).await.ok();
        deleted.with_context(|| {
            format!(
                "removing the queues and exchanges an earlier run left under '{}'",
                self.prefix
            )
        })
    }
}
