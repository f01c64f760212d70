//! The stager: streams each landed file from S3 through type checks into its staging table
//! with COPY, one transaction per file, rejecting bad rows with line, column and reason.

pub mod csv_stream;
pub mod encode;
pub mod load;
pub mod stage;

use contract::{Envelope, Event};
use runtime::{
    CommonConfig, ConfigError, Env, Failure, Handler, Incoming, MessageKind, ServiceContext,
    Shutdown,
};

pub const SERVICE: &str = "stager";

/// The stager's configuration.
#[derive(Debug, Clone)]
pub struct StagerConfig {
    pub common: CommonConfig,
    /// Rejected rows stored in full per file (`LANDFALL_MAX_REJECTS_KEPT`); the rest are counted.
    pub max_rejects_kept: usize,
}

impl runtime::service::ServiceConfig for StagerConfig {
    fn common(&self) -> &CommonConfig {
        &self.common
    }

    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(StagerConfig {
            common: CommonConfig::from_env(env, SERVICE)?,
            max_rejects_kept: env.number("LANDFALL_MAX_REJECTS_KEPT", 10_000, 0, 10_000_000)?
                as usize,
        })
    }
}

impl Handler for stage::Stager {
    async fn handle(
        &self,
        message: &Incoming,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let envelope = message.event.as_ref().ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!("the stager reads pipeline events only"))
        })?;
        match &envelope.payload {
            Event::FileLanded(landed) => self.stage_file(tx, envelope, landed).await,
            other => Err(Failure::permanent(anyhow::anyhow!(
                "the stager does not handle '{}' events",
                other.event_type()
            ))),
        }
    }
}

/// Runs the stager until `shutdown`.
pub async fn run(config: StagerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let ctx = ServiceContext::start(config.common.clone(), shutdown).await?;
    let spec = runtime::broker::queue_spec(&ctx.config, SERVICE);
    let stager = stage::Stager {
        ctx: ctx.clone(),
        max_rejects_kept: config.max_rejects_kept,
    };
    ctx.serve(spec, MessageKind::Events, stager).await
}
