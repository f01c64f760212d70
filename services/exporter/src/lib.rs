//! The exporter: writes a passed batch's reports to S3 with a manifest.
//!
//! This release runs the stage's plumbing (queue, health, drain, outbox) but not yet its work:
//! a `QualityPassed` event it cannot act on is dead-lettered with that reason rather than acknowledged
//! and lost, so `landfall dlq requeue` can replay it once the stage's work ships.

use contract::{Envelope, Event};
use runtime::{CommonConfig, Failure, Handler, Incoming, MessageKind, ServiceContext, Shutdown};

pub const SERVICE: &str = "exporter";

/// Refuses work it cannot do yet, permanently and with the reason.
pub struct PendingStage;

impl Handler for PendingStage {
    async fn handle(
        &self,
        message: &Incoming,
        _tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let event_type = message
            .event
            .as_ref()
            .map(|event| event.event_type.as_str())
            .unwrap_or("unknown");
        Err(Failure::permanent(anyhow::anyhow!(
            "the exporter cannot act on '{event_type}' events in this release; requeue it from the dead-letter queue after upgrading"
        )))
    }
}

/// Runs the exporter until `shutdown`.
pub async fn run(config: CommonConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let ctx = ServiceContext::start(config, shutdown).await?;
    let spec = runtime::broker::queue_spec(&ctx.config, SERVICE);
    ctx.serve(spec, MessageKind::Events, PendingStage).await
}
