//! The file ledger: one row per object version seen under the landing prefix.

use contract::{BatchKey, Envelope, Event, FileLanded};
use runtime::datasets::{Datasets, KeyMatch};
use runtime::telemetry;

use crate::notification::ObjectCreated;

/// How an object was found.
#[derive(Debug, Clone, Copy)]
pub enum DiscoveredBy {
    Notification,
    Reconcile,
}

impl DiscoveredBy {
    fn as_str(self) -> &'static str {
        match self {
            DiscoveredBy::Notification => "notification",
            DiscoveredBy::Reconcile => "reconcile",
        }
    }
}

/// What recording an object did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// A new file of a batch: the `FileLanded` event to publish.
    Landed(Box<Envelope<Event>>),
    /// Already in the ledger (same key and version, or same content): nothing changes.
    Duplicate,
    /// Under the landing prefix but no dataset source: recorded as ignored with the reason.
    Unmapped(String),
    /// Outside the landing prefix: not recorded.
    Outside,
}

/// Records `object` in the ledger inside `tx`. Idempotent: the same object version, however
/// often and by whichever path it is announced, gives one ledger row and one `FileLanded`.
pub async fn record(
    tx: &tokio_postgres::Transaction<'_>,
    datasets: &Datasets,
    landing_prefix: &str,
    object: &ObjectCreated,
    discovered_by: DiscoveredBy,
) -> Result<Recorded, tokio_postgres::Error> {
    let key_match = datasets.match_key(landing_prefix, &object.key);
    if key_match == KeyMatch::Outside {
        return Ok(Recorded::Outside);
    }
    // One writer per key at a time, so two replicas seeing the same object insert it once.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("{}/{}", object.bucket, object.key)],
    )
    .await?;
    // A listing knows the ETag but not the version id: the same content counts as seen.
    let seen = tx
        .query_opt(
            "SELECT file_id FROM ops.files
              WHERE bucket = $1 AND key = $2 AND (version = $3 OR etag = $4) LIMIT 1",
            &[&object.bucket, &object.key, &object.version(), &object.etag],
        )
        .await?;
    if seen.is_some() {
        return Ok(Recorded::Duplicate);
    }
    let trace_id = telemetry::current_trace_id();
    let traceparent = telemetry::current_trace_headers().remove("traceparent");
    let size = object.size as i64;
    match key_match {
        KeyMatch::Outside => unreachable!("handled above"),
        KeyMatch::Unmapped(reason) => {
            tx.execute(
                "INSERT INTO ops.files (bucket, key, version, etag, size_bytes, state, reason, discovered_by, finished_at, trace_id)
                 VALUES ($1, $2, $3, $4, $5, 'ignored', $6, $7, clock_timestamp(), $8)",
                &[&object.bucket, &object.key, &object.version(), &object.etag, &size, &reason, &discovered_by.as_str(), &trace_id],
            )
            .await?;
            tracing::warn!(
                key = object.key,
                reason,
                "landed key maps to no dataset source; ignored"
            );
            runtime::metrics::metrics()
                .files
                .add(1, &runtime::metrics::attributes(&[("outcome", "ignored")]));
            Ok(Recorded::Unmapped(reason))
        }
        KeyMatch::File {
            dataset,
            source,
            ingestion_date,
        } => {
            let row = tx
                .query_one(
                    "INSERT INTO ops.files (bucket, key, version, etag, size_bytes, dataset, source, ingestion_date, discovered_by, trace_id, traceparent)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING file_id",
                    &[&object.bucket, &object.key, &object.version(), &object.etag, &size, &dataset, &source, &ingestion_date, &discovered_by.as_str(), &trace_id, &traceparent],
                )
                .await?;
            let file_id: i64 = row.get(0);
            tracing::info!(file_id, key = object.key, dataset, source, %ingestion_date, "file landed");
            runtime::metrics::metrics().files.add(
                1,
                &runtime::metrics::attributes(&[("dataset", &dataset), ("outcome", "landed")]),
            );
            let event = Envelope::new(
                Some(BatchKey {
                    dataset,
                    ingestion_date,
                }),
                None,
                FileLanded {
                    file_id,
                    bucket: object.bucket.clone(),
                    key: object.key.clone(),
                    version: object.version().to_owned(),
                    etag: object.etag.clone(),
                    size: object.size,
                    source,
                },
            );
            Ok(Recorded::Landed(Box::new(event.into_event())))
        }
    }
}
