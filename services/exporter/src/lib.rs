//! The exporter: once a batch passes its quality checks, writes each of its dataset's reports
//! to S3 as CSV with a `_manifest.json` beside it, records them in `ops.exports`, applies the
//! staging retention policy and announces `export.completed`.

// The exporter's consumer future (S3 multipart inside a COPY stream inside the runtime's
// consumer loop) is deep enough that computing its layout in release builds needs more than
// the default query depth.
#![recursion_limit = "256"]

pub mod classify;
pub mod config;
pub mod export;
pub mod manifest;
pub mod retention;
pub mod tally;
pub mod upload;

use contract::{Envelope, Event};
use runtime::{Failure, Handler, Incoming, MessageKind, ServiceContext, Shutdown};

pub use config::ExporterConfig;
pub use export::{ExportSettings, Exporter};

pub const STAGE: runtime::Stage = runtime::Stage::Exporter;
pub const SERVICE: &str = STAGE.name();

impl Handler for Exporter {
    async fn handle(
        &self,
        message: &Incoming,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let (envelope, ()) = message.pipeline_event(STAGE, |event| {
            matches!(event, Event::QualityPassed(_)).then_some(())
        })?;
        self.export_batch(tx, envelope).await
    }
}

/// Runs the exporter until `shutdown`. A malformed exports file stops it at start.
pub async fn run(config: ExporterConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    // The AWS identity first: a service without credentials stops at once, saying why.
    let s3 = runtime::s3::client(&config.s3).await?;
    let ctx = ServiceContext::start(config.common.clone(), shutdown).await?;
    let catalog = catalog::exports::ExportCatalog::load(&ctx.datasets)?;
    let spec = runtime::broker::queue_spec(&ctx.config, STAGE);
    let exporter = Exporter {
        ctx: ctx.clone(),
        s3,
        catalog,
        settings: ExportSettings {
            bucket: config.export_bucket,
            prefix: config.export_prefix,
            part_size: config.multipart_part_size,
            staging_retention_batches: config.staging_retention_batches,
        },
    };
    ctx.serve(spec, MessageKind::Events, exporter).await
}
