//! The stager: streams each landed file from S3 through type checks into its staging table
//! with COPY, one transaction per file, rejecting bad rows with line, column and reason.

pub mod csv_stream;
pub mod encode;
pub mod load;
pub mod stage;

use contract::{Envelope, Event};
use runtime::{
    CommonConfig, ConfigError, Env, Failure, Handler, Incoming, MessageKind, S3Config,
    ServiceContext, Shutdown,
};

pub const STAGE: runtime::Stage = runtime::Stage::Stager;
pub const SERVICE: &str = STAGE.name();

/// The stager's configuration.
#[derive(Debug, Clone)]
pub struct StagerConfig {
    pub common: CommonConfig,
    /// How to reach S3 (`LANDFALL_S3_*`); the bucket of each file comes with its event.
    pub s3: S3Config,
    /// Rejected rows stored in full per file (`LANDFALL_MAX_REJECTS_KEPT`); the rest are counted.
    pub max_rejects_kept: usize,
    /// Connections one large file is COPYed over at once (`LANDFALL_STAGE_COPY_CONNECTIONS`):
    /// one PostgreSQL backend, so about one core, per connection.
    pub copy_connections: usize,
    /// Files at least this large (as stored in S3) use them all
    /// (`LANDFALL_STAGE_PARALLEL_MIN_BYTES`); smaller ones are COPYed on one.
    pub parallel_min_bytes: u64,
}

impl runtime::service::ServiceConfig for StagerConfig {
    fn common(&self) -> &CommonConfig {
        &self.common
    }

    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(StagerConfig {
            common: CommonConfig::from_env(env, SERVICE)?,
            s3: S3Config::from_env(env)?,
            max_rejects_kept: env.number("LANDFALL_MAX_REJECTS_KEPT", 10_000, 0, 10_000_000)?
                as usize,
            copy_connections: env.number("LANDFALL_STAGE_COPY_CONNECTIONS", 2, 1, 16)? as usize,
            parallel_min_bytes: env.number(
                "LANDFALL_STAGE_PARALLEL_MIN_BYTES",
                8 * 1024 * 1024,
                0,
                1 << 40,
            )?,
        })
    }
}

impl Handler for stage::Stager {
    async fn handle(
        &self,
        message: &Incoming,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let (envelope, landed) = message.pipeline_event(STAGE, |event| match event {
            Event::FileLanded(landed) => Some(landed),
            _ => None,
        })?;
        self.stage_file(tx, envelope, landed).await
    }
}

/// Runs the stager until `shutdown`.
pub async fn run(config: StagerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    // The AWS identity first: a service without credentials stops at once, saying why.
    let s3 = runtime::s3::client(&config.s3).await?;
    let ctx = ServiceContext::start(config.common.clone(), shutdown).await?;
    let spec = runtime::broker::queue_spec(&ctx.config, STAGE);
    // The extra COPY connections come from a pool of their own, sized for every consumer to
    // load a large file at once: a consumer holding its transaction never waits for
    // connections other consumers hold.
    let copy_pool = if config.copy_connections > 1 {
        Some(runtime::db::pool_as(
            &ctx.config.database_url,
            ctx.config.concurrency * (config.copy_connections - 1),
            ctx.config.database_role.as_deref(),
        )?)
    } else {
        None
    };
    let stager = stage::Stager {
        ctx: ctx.clone(),
        s3,
        max_rejects_kept: config.max_rejects_kept,
        copy_pool,
        copy_connections: config.copy_connections,
        parallel_min_bytes: config.parallel_min_bytes,
        copying: Default::default(),
    };
    ctx.serve(spec, MessageKind::Events, stager).await
}
