//! The ingester: turns S3 bucket notifications into ledger rows and `FileLanded` events, and
//! reconciles the landing prefix against the ledger so a lost notification loses no file.

pub mod notification;
pub mod sqs;

use std::sync::Arc;
use std::time::Duration;

use contract::{Envelope, Event};
use runtime::{
    CommonConfig, ConfigError, Env, Failure, Handler, Incoming, LandingConfig, MessageKind,
    S3Config, ServiceContext, Shutdown,
};

use pipeline::ledger::{self, DiscoveredBy, ObjectCreated, Recorded};
use pipeline::reconcile;

pub const STAGE: runtime::Stage = runtime::Stage::Ingester;
pub const SERVICE: &str = STAGE.name();

/// The ingester's configuration.
#[derive(Debug, Clone)]
pub struct IngesterConfig {
    pub common: CommonConfig,
    /// How to reach S3 (`LANDFALL_S3_*`).
    pub s3: S3Config,
    /// Where files land (`LANDFALL_BUCKET`, `LANDFALL_LANDING_PREFIX`).
    pub landing: LandingConfig,
    /// How often reconcile lists the landing prefix (`LANDFALL_RECONCILE_INTERVAL_S`, 0 = only at start).
    pub reconcile_interval: Duration,
    /// Whether to reconcile when the service starts (`LANDFALL_RECONCILE_ON_START`).
    pub reconcile_on_start: bool,
    /// The SQS notification source (`LANDFALL_SQS_QUEUE_URL` and friends), polled in addition
    /// to the AMQP notification queue; `None` when not configured.
    pub sqs: Option<sqs::SqsConfig>,
}

impl runtime::service::ServiceConfig for IngesterConfig {
    fn common(&self) -> &CommonConfig {
        &self.common
    }

    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(IngesterConfig {
            common: CommonConfig::from_env(env, SERVICE)?,
            s3: S3Config::from_env(env)?,
            landing: LandingConfig::from_env(env)?,
            reconcile_interval: Duration::from_secs(env.number(
                "LANDFALL_RECONCILE_INTERVAL_S",
                300,
                0,
                86_400,
            )?),
            reconcile_on_start: env.boolean("LANDFALL_RECONCILE_ON_START", true)?,
            sqs: sqs::SqsConfig::from_env(env)?,
        })
    }
}

/// Records every created object a notification announces.
pub struct NotificationHandler {
    ctx: ServiceContext,
    landing_prefix: String,
}

impl Handler for NotificationHandler {
    async fn handle(
        &self,
        message: &Incoming,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let span = tracing::Span::current();
        let mut caused = self.handle_batch(&[(&span, message)], tx).await?;
        Ok(caused.pop().unwrap_or_default())
    }

    const BATCHED: bool = true;

    /// The whole batch's objects recorded with a constant number of statements; a message
    /// that is not a notification fails the batch, whose messages then go one by one.
    async fn handle_batch(
        &self,
        messages: &[(&tracing::Span, &Incoming)],
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<Vec<Vec<Envelope<Event>>>, Failure> {
        let mut parsed = Vec::with_capacity(messages.len());
        for (_, message) in messages {
            parsed.push(notification::parse(&message.body).map_err(Failure::permanent)?);
        }
        let objects: Vec<(&ObjectCreated, &tracing::Span)> = parsed
            .iter()
            .zip(messages)
            .flat_map(|(objects, (span, _))| objects.iter().map(move |object| (object, *span)))
            .collect();
        let mut recorded = ledger::record_many(
            tx,
            &self.ctx.datasets,
            &self.landing_prefix,
            &objects,
            DiscoveredBy::Notification,
        )
        .await?
        .into_iter()
        .zip(&objects);
        let mut caused = Vec::with_capacity(messages.len());
        for objects in &parsed {
            let mut events = Vec::new();
            for (outcome, (object, span)) in recorded.by_ref().take(objects.len()) {
                match outcome {
                    Recorded::Landed(event) => events.push(*event),
                    skipped => span.in_scope(|| note_skipped(object, &skipped)),
                }
            }
            caused.push(events);
        }
        Ok(caused)
    }
}

/// Logs why an announced object caused no event: already in the ledger, or outside the
/// landing prefix (a landed or unmapped object is logged where it is recorded).
fn note_skipped(object: &ObjectCreated, recorded: &Recorded) {
    match recorded {
        Recorded::Duplicate => tracing::info!(
            key = object.key,
            "duplicate notification; already in the ledger"
        ),
        Recorded::Outside => {
            tracing::debug!(key = object.key, "key outside the landing prefix; skipped")
        }
        Recorded::Landed(_) | Recorded::Unmapped(_) => {}
    }
}

/// Runs the ingester until `shutdown`: the AMQP notification queue always (it costs nothing
/// where S3 cannot publish to it), the SQS queue too when one is configured, and reconcile.
pub async fn run(config: IngesterConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    // The AWS identity first: a service without credentials stops at once, saying why.
    let aws = runtime::s3::sdk_config(&config.s3).await?;
    let s3 = runtime::s3::client_with(&aws, &config.s3);
    let ctx = ServiceContext::start(config.common.clone(), shutdown).await?;
    let landing = Arc::new(config.landing.clone());
    tokio::spawn(reconcile_periodically(
        ctx.clone(),
        s3,
        landing.clone(),
        config.reconcile_on_start,
        config.reconcile_interval,
    ));
    let sqs_poller = config.sqs.clone().map(|sqs_config| {
        let client = sqs::client(&sqs_config, &aws);
        tokio::spawn(sqs::run(
            ctx.clone(),
            sqs_config,
            client,
            landing.landing_prefix.clone(),
        ))
    });
    let spec = runtime::broker::queue_spec(&ctx.config, STAGE);
    let handler = NotificationHandler {
        ctx: ctx.clone(),
        landing_prefix: landing.landing_prefix.clone(),
    };
    let served = ctx.clone().serve(spec, MessageKind::Raw, handler).await;
    if let Some(task) = sqs_poller {
        sqs::finish(&ctx, task).await;
    }
    served
}

async fn reconcile_periodically(
    ctx: ServiceContext,
    s3: aws_sdk_s3::Client,
    landing: Arc<LandingConfig>,
    on_start: bool,
    interval: Duration,
) {
    if !on_start && interval.is_zero() {
        return;
    }
    // A notification published before the ingester's queue was bound is dropped by the broker
    // as unroutable; reconciling only once the queue exists closes that gap: what landed before
    // is listed, what lands after is queued.
    if !ctx.declare_topology().await {
        return;
    }
    let mut first = on_start;
    loop {
        if !first {
            if interval.is_zero() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = ctx.shutdown.wait() => return,
            }
        }
        first = false;
        let result =
            reconcile::reconcile(&ctx.pool, &s3, &landing, &ctx.datasets, SERVICE, None).await;
        match result {
            Ok(report) if report.landed > 0 => ctx.outbox_wake.notify_waiters(),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "reconcile failed; trying again at the next interval"
            ),
        }
    }
}
