//! The second notification source: AWS S3 → SQS (optionally through SNS), long-polled.
//!
//! On AWS a bucket cannot notify RabbitMQ; it notifies an SQS queue (directly, or an SNS topic
//! the queue subscribes to). When `LANDFALL_SQS_QUEUE_URL` is set the ingester long-polls that
//! queue *as well as* consuming its AMQP notification queue. Each message is handled like an
//! AMQP notification: parsed with [`notification::parse`], its objects recorded in the ledger and
//! their `FileLanded` events written to the outbox in one PostgreSQL transaction; committed; the
//! relay woken; and only then is the message deleted from SQS. A crash in between redelivers
//! it, and the ledger recognises the objects.
//!
//! A message that is not a notification is never deleted: it is logged and left to become
//! visible again, so the queue's redrive policy moves it to the dead-letter queue after
//! `maxReceiveCount` receives (with the body intact for whoever looks at it there).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};
use backon::Retryable as _;
use pipeline::ledger::{self, DiscoveredBy, ObjectCreated, Recorded};
use runtime::{Failure, ServiceContext};
use tracing::Instrument as _;

use crate::notification;

mod config;

pub use config::{SqsConfig, client};

/// How one message ended.
enum Outcome {
    /// Recorded and committed (or nothing to record, e.g. `s3:TestEvent`): delete it.
    Done,
    /// Not a notification, or a permanent failure: left for the redrive policy.
    Left,
    /// The database stayed away through every retry: left, and the poller backs off.
    Unavailable,
}

/// The SQS poller of one ingester process.
struct Poller {
    ctx: ServiceContext,
    client: aws_sdk_sqs::Client,
    config: SqsConfig,
    landing_prefix: String,
    /// Whether this poller marked the service not ready (and so must mark it ready again).
    marked_unready: bool,
    /// Whether something was committed after shutdown began (the relay may have stopped).
    committed_while_draining: AtomicBool,
}

/// Long-polls the queue until shutdown; never returns early on errors. Returns whether events
/// were committed after shutdown began, which the caller then publishes (the relay stops when
/// the AMQP consumers have drained, possibly before this poller did).
pub async fn run(
    ctx: ServiceContext,
    config: SqsConfig,
    client: aws_sdk_sqs::Client,
    landing_prefix: String,
) -> bool {
    let mut poller = Poller {
        ctx,
        client,
        config,
        landing_prefix,
        marked_unready: false,
        committed_while_draining: AtomicBool::new(false),
    };
    poller.run().await;
    poller.committed_while_draining.into_inner()
}

impl Poller {
    async fn run(&mut self) {
        let shutdown = self.ctx.shutdown.clone();
        let mut backoff = self.ctx.retry_policy().forever();
        let mut checked = false;
        while !shutdown.is_triggered() {
            if !checked {
                match self.check_queue().await {
                    Ok(()) => checked = true,
                    Err(error) => {
                        self.unready(&format!("checking the queue: {error}"));
                        self.pause(&mut backoff).await;
                        continue;
                    }
                }
            }
            let received = tokio::select! {
                received = self.receive() => received,
                _ = shutdown.wait() => break,
            };
            match received {
                Ok(messages) => {
                    self.ready();
                    backoff = self.ctx.retry_policy().forever();
                    if messages.is_empty() {
                        continue;
                    }
                    if !self.handle_batch(messages).await {
                        // The database is away: receiving more would only count receives
                        // against the redrive policy's limit.
                        self.pause(&mut backoff).await;
                    }
                }
                Err(error) => {
                    self.unready(&format!("receiving: {error}"));
                    self.pause(&mut backoff).await;
                }
            }
        }
        tracing::info!(queue = self.config.queue_name(), "stopped polling SQS");
    }

    async fn pause(&self, backoff: &mut (impl Iterator<Item = Duration> + Send)) {
        let log = |delay: Duration| tracing::debug!(?delay, "SQS poller backing off");
        let policy = self.ctx.retry_policy();
        policy.pause_with(backoff, &self.ctx.shutdown, log).await;
    }

    /// `/readyz` has one consumer flag, owned by the AMQP consumers; the poller clears it while
    /// SQS fails and sets it again only when it was the one that cleared it.
    fn unready(&mut self, problem: &str) {
        tracing::warn!(
            queue = self.config.queue_name(),
            problem,
            "SQS notification source unavailable; retrying"
        );
        self.ctx.readiness.set_consumer(false);
        self.marked_unready = true;
    }

    fn ready(&mut self) {
        if self.marked_unready {
            tracing::info!(
                queue = self.config.queue_name(),
                "SQS notification source available again"
            );
            self.ctx.readiness.set_consumer(true);
            self.marked_unready = false;
        }
    }

    /// Reads the queue's attributes once: proves access, and warns when nothing would ever
    /// take a message that is not a notification out of the queue.
    async fn check_queue(&self) -> Result<(), String> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.config.queue_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|error| describe(&error))?;
        let attributes = output.attributes().cloned().unwrap_or_default();
        let redrive = attributes.get(&QueueAttributeName::RedrivePolicy);
        if redrive.is_none() {
            tracing::warn!(
                queue = self.config.queue_name(),
                "the SQS queue has no redrive policy: a message that is not a notification is \
                 received again and again until the retention period ends; give it a dead-letter queue"
            );
        }
        tracing::info!(
            queue = self.config.queue_name(),
            wait = ?self.config.wait_time,
            visibility = ?self.config.visibility_timeout,
            redrive_policy = redrive.map(String::as_str).unwrap_or("none"),
            "polling SQS for S3 notifications"
        );
        Ok(())
    }

    async fn receive(&self) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.config.queue_url)
            .max_number_of_messages(self.config.max_messages)
            .wait_time_seconds(self.config.wait_time.as_secs() as i32)
            .visibility_timeout(self.config.visibility_timeout.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|error| describe(&error))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Handles one received batch, in order, while a heartbeat keeps the messages in hand
    /// hidden; deletes those that are done. Returns false when the database was unavailable.
    async fn handle_batch(&self, messages: Vec<aws_sdk_sqs::types::Message>) -> bool {
        // Entry id (the index in the batch) → receipt handle, of messages still in hand.
        let in_hand: Mutex<BTreeMap<String, String>> = Mutex::new(
            messages
                .iter()
                .enumerate()
                .filter_map(|(index, message)| {
                    Some((index.to_string(), message.receipt_handle()?.to_owned()))
                })
                .collect(),
        );
        let mut done = Vec::new();
        let mut database_available = true;
        let mut unstarted = Vec::new();
        let work = async {
            for (index, message) in messages.iter().enumerate() {
                let id = index.to_string();
                if self.ctx.shutdown.is_triggered() || !database_available {
                    unstarted.push(id);
                    continue;
                }
                match self.handle(message).await {
                    Outcome::Done => done.push(id),
                    Outcome::Left => {
                        in_hand.lock().expect("in-hand lock").remove(&id);
                    }
                    Outcome::Unavailable if self.ctx.shutdown.is_triggered() => {
                        unstarted.push(id);
                    }
                    Outcome::Unavailable => {
                        in_hand.lock().expect("in-hand lock").remove(&id);
                        database_available = false;
                    }
                }
            }
        };
        tokio::select! {
            _ = work => {}
            _ = self.heartbeat(&in_hand) => {}
        }
        let in_hand = in_hand.into_inner().expect("in-hand lock");
        let pick = |ids: &[String]| -> Vec<(String, String)> {
            ids.iter()
                .filter_map(|id| Some((id.clone(), in_hand.get(id)?.clone())))
                .collect()
        };
        self.delete(pick(&done)).await;
        if self.ctx.shutdown.is_triggered() {
            // Not handled because this process is stopping: another replica may have them now.
            // (Left unhandled because the database is away, they reappear after the timeout.)
            self.change_visibility(&pick(&unstarted), 0).await;
        }
        database_available
    }

    /// Every half visibility timeout, hides the messages in hand for another full one.
    async fn heartbeat(&self, in_hand: &Mutex<BTreeMap<String, String>>) {
        let period = self.config.visibility_timeout / 2;
        let seconds = self.config.visibility_timeout.as_secs() as i32;
        loop {
            tokio::time::sleep(period).await;
            let entries: Vec<(String, String)> = in_hand
                .lock()
                .expect("in-hand lock")
                .iter()
                .map(|(id, receipt)| (id.clone(), receipt.clone()))
                .collect();
            tracing::debug!(
                messages = entries.len(),
                "work takes long; extending the visibility of SQS messages in hand"
            );
            self.change_visibility(&entries, seconds).await;
        }
    }

    /// One message to the end of its transaction.
    async fn handle(&self, message: &aws_sdk_sqs::types::Message) -> Outcome {
        let message_id = message.message_id().unwrap_or_default().to_owned();
        let receives = message
            .attributes()
            .and_then(|attributes| {
                attributes.get(&MessageSystemAttributeName::ApproximateReceiveCount)
            })
            .cloned()
            .unwrap_or_default();
        // Each notification starts its own trace, as an AMQP one without trace context does.
        let span = tracing::info_span!(
            parent: None,
            "process",
            otel.name = format!("process {}", self.config.queue_name()),
            otel.kind = "consumer",
            messaging.system = "aws_sqs",
            messaging.operation.type = "process",
            messaging.destination.name = self.config.queue_name(),
            messaging.message.id = message_id.as_str(),
        );
        async {
            let body = message.body().unwrap_or_default();
            let objects = match notification::parse(body.as_bytes()) {
                Ok(objects) => objects,
                Err(error) => {
                    tracing::error!(
                        reason = %error,
                        receives,
                        "SQS message is not an S3 notification; leaving it in the queue for its \
                         redrive policy (dead-letter queue after maxReceiveCount receives)"
                    );
                    return Outcome::Left;
                }
            };
            if objects.is_empty() {
                tracing::info!(
                    "notification announces no created object (e.g. s3:TestEvent); deleting it"
                );
                return Outcome::Done;
            }
            self.record_with_retries(&objects, &receives).await
        }
        .instrument(span)
        .await
    }

    /// Records the objects, retrying transient failures; the message's outcome.
    async fn record_with_retries(&self, objects: &[ObjectCreated], receives: &str) -> Outcome {
        let result = self
            .ctx
            .retry_policy()
            .retry_transient(&self.ctx.shutdown, || self.record(objects))
            .await;
        match result {
            Ok(landed) => {
                if landed > 0 {
                    self.ctx.outbox_wake.notify_waiters();
                    if self.ctx.shutdown.is_triggered() {
                        self.committed_while_draining.store(true, Ordering::Relaxed);
                    }
                }
                Outcome::Done
            }
            Err(failure) if failure.is_transient() => {
                tracing::error!(
                    reason = failure.reason(),
                    receives,
                    "could not record the notification; leaving it in the queue to be received again"
                );
                Outcome::Unavailable
            }
            Err(failure) => {
                tracing::error!(
                    reason = failure.reason(),
                    receives,
                    "could not record the notification; leaving it in the queue for its redrive policy"
                );
                Outcome::Left
            }
        }
    }

    /// Records the objects and their events in one transaction; returns how many landed.
    async fn record(&self, objects: &[ObjectCreated]) -> Result<usize, Failure> {
        let mut client = self.ctx.pool.get().await?;
        let tx = client.transaction().await?;
        let span = tracing::Span::current();
        let announced: Vec<(&ObjectCreated, &tracing::Span)> =
            objects.iter().map(|object| (object, &span)).collect();
        let recorded = ledger::record_many(
            &tx,
            &self.ctx.datasets,
            &self.landing_prefix,
            &announced,
            DiscoveredBy::Notification,
        )
        .await?;
        let headers = runtime::telemetry::current_trace_headers();
        let mut events = Vec::new();
        for (recorded, object) in recorded.iter().zip(objects) {
            match recorded {
                Recorded::Landed(event) => events.push((&**event, headers.clone())),
                skipped => crate::note_skipped(object, skipped),
            }
        }
        runtime::outbox::enqueue_many(&tx, &self.ctx.config.service_name, &events).await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// Deletes messages whose effect is committed. A message that cannot be deleted comes back
    /// after its visibility timeout and is recognised by the ledger.
    async fn delete(&self, entries: Vec<(String, String)>) {
        if entries.is_empty() {
            return;
        }
        let request = entries
            .iter()
            .map(|(id, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        let attempt = || {
            self.client
                .delete_message_batch()
                .queue_url(&self.config.queue_url)
                .set_entries(Some(request.clone()))
                .send()
        };
        match attempt.retry(self.ctx.retry_policy().backoff()).await {
            Ok(output) => {
                for failed in output.failed() {
                    tracing::warn!(
                        code = failed.code(),
                        message = failed.message().unwrap_or_default(),
                        "could not delete an SQS message; it will be received again and dropped as a duplicate"
                    );
                }
            }
            Err(error) => tracing::warn!(
                error = describe(&error),
                "could not delete SQS messages; they will be received again and dropped as duplicates"
            ),
        }
    }

    /// Best effort: a failure only means a message reappears sooner or later than wished.
    async fn change_visibility(&self, entries: &[(String, String)], seconds: i32) {
        if entries.is_empty() {
            return;
        }
        let request = entries
            .iter()
            .map(|(id, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        let result = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.config.queue_url)
            .set_entries(Some(request))
            .send()
            .await;
        match result {
            Ok(output) => {
                for failed in output.failed() {
                    tracing::warn!(
                        code = failed.code(),
                        message = failed.message().unwrap_or_default(),
                        "could not change an SQS message's visibility"
                    );
                }
            }
            Err(error) => tracing::warn!(
                error = describe(&error),
                "could not change the visibility of SQS messages"
            ),
        }
    }
}

/// An SQS error on one line: the service's code and message, or the whole chain of a
/// network or timeout error.
fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(_) => format!(
            "{}: {}",
            error.code().unwrap_or("error"),
            error.message().unwrap_or("no message")
        ),
        _ => DisplayErrorContext(error).to_string(),
    }
}

/// Waits (within the grace period) for the poller to stop after shutdown, then publishes
/// events it committed after the relay may already have stopped.
pub async fn finish(ctx: &ServiceContext, task: tokio::task::JoinHandle<bool>) {
    let grace = ctx.config.shutdown_grace;
    let abort = task.abort_handle();
    let committed_while_draining = match tokio::time::timeout(grace, task).await {
        Ok(Ok(committed)) => committed,
        Ok(Err(error)) => {
            tracing::error!(%error, "the SQS poller failed");
            false
        }
        Err(_) => {
            tracing::warn!(
                ?grace,
                "the SQS poller did not stop within the grace period"
            );
            abort.abort();
            false
        }
    };
    if !committed_while_draining {
        return;
    }
    let relay = ctx.relay();
    match tokio::time::timeout(grace, relay.publish_pending()).await {
        Ok(Ok(published)) => tracing::info!(published, "published events of the last SQS messages"),
        // Not lost: they stay in the outbox for the next relay of any service.
        Ok(Err(error)) => tracing::warn!(
            error = format!("{error:#}"),
            "could not publish the last events; the next relay will"
        ),
        Err(_) => tracing::warn!("publishing the last events timed out; the next relay will"),
    }
}
