//! The file ledger: one row per object version seen under the landing prefix.

use std::collections::{HashMap, HashSet};

use catalog::{Datasets, KeyMatch};
use contract::{BatchKey, Envelope, Event, FileLanded};
use runtime::telemetry;
use tokio_postgres::types::Type;

/// An object that was created (put, copied, or completed as a multipart upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The key, URL-decoded.
    pub key: String,
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub version_id: Option<String>,
}

impl ObjectCreated {
    /// The ledger's version: the S3 version id, or the ETag in an unversioned bucket.
    pub fn version(&self) -> &str {
        self.version_id.as_deref().unwrap_or(&self.etag)
    }
}

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

/// A new ledger row of a file: logged, counted, and its `FileLanded`.
fn landed(
    object: &ObjectCreated,
    file_id: i64,
    dataset: &str,
    source: &str,
    ingestion_date: chrono::NaiveDate,
) -> Recorded {
    tracing::info!(file_id, key = object.key, dataset, source, %ingestion_date, "file landed");
    runtime::metrics::metrics().files.add(
        1,
        &runtime::metrics::attributes(&[("dataset", dataset), ("outcome", "landed")]),
    );
    let event = Envelope::new(
        Some(BatchKey {
            dataset: dataset.to_owned(),
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
            source: source.to_owned(),
        },
    );
    Recorded::Landed(Box::new(event.into_event()))
}

/// A new ledger row of a key no source matches: logged and counted.
fn ignored(object: &ObjectCreated, reason: &str) -> Recorded {
    tracing::warn!(
        key = object.key,
        reason,
        "landed key maps to no dataset source; ignored"
    );
    runtime::metrics::metrics()
        .files
        .add(1, &runtime::metrics::attributes(&[("outcome", "ignored")]));
    Recorded::Unmapped(reason.to_owned())
}

/// Records objects in the ledger inside `tx`, with a constant number of statements whatever
/// their count. Idempotent: the same object version, however often and by whichever path it is
/// announced, gives one ledger row and one `FileLanded`. One writer per key at a time (an
/// advisory lock per bucket and key), so two replicas seeing the same object insert it once;
/// a listing knows the ETag but not the version id, so the same content counts as seen. Each
/// object comes with the span of the message that announced it, so its ledger row and its
/// `FileLanded` carry that message's trace.
pub async fn record_many(
    tx: &tokio_postgres::Transaction<'_>,
    datasets: &Datasets,
    landing_prefix: &str,
    objects: &[(&ObjectCreated, &tracing::Span)],
    discovered_by: DiscoveredBy,
) -> Result<Vec<Recorded>, tokio_postgres::Error> {
    let matches: Vec<KeyMatch> = objects
        .iter()
        .map(|(object, _)| datasets.match_key(landing_prefix, &object.key))
        .collect();
    let mut recorded: Vec<Option<Recorded>> = vec![None; objects.len()];
    let candidates = first_announcements(objects, &matches, &mut recorded);
    if !candidates.is_empty() {
        let seen = lock_and_find_known(tx, objects, &candidates).await?;
        let mut new = Vec::new();
        for (position, &index) in candidates.iter().enumerate() {
            if seen.contains(&(position as i64)) {
                recorded[index] = Some(Recorded::Duplicate);
            } else {
                new.push(index);
            }
        }
        if !new.is_empty() {
            let file_ids = insert_new(tx, objects, &matches, &new, discovered_by).await?;
            for index in new {
                recorded[index] = Some(new_row(objects[index], &matches[index], &file_ids));
            }
        }
    }
    Ok(recorded
        .into_iter()
        .map(|outcome| outcome.expect("every object has an outcome"))
        .collect())
}

/// The indexes of the objects to look up in the ledger: under the landing prefix and not
/// announced earlier in this batch. The others' outcomes go to `recorded`.
fn first_announcements(
    objects: &[(&ObjectCreated, &tracing::Span)],
    matches: &[KeyMatch],
    recorded: &mut [Option<Recorded>],
) -> Vec<usize> {
    // The same object announced twice in this batch (Put, then CompleteMultipartUpload; or a
    // listing's ETag for a notification's version): the first one counts.
    let mut versions = HashSet::new();
    let mut etags = HashSet::new();
    let mut candidates = Vec::new();
    for (index, ((object, _), key_match)) in objects.iter().zip(matches).enumerate() {
        if *key_match == KeyMatch::Outside {
            recorded[index] = Some(Recorded::Outside);
            continue;
        }
        let by_version = (&object.bucket, &object.key, object.version());
        let by_etag = (&object.bucket, &object.key, object.etag.as_str());
        if versions.contains(&by_version) || etags.contains(&by_etag) {
            recorded[index] = Some(Recorded::Duplicate);
            continue;
        }
        versions.insert(by_version);
        etags.insert(by_etag);
        candidates.push(index);
    }
    candidates
}

/// Locks the candidates' keys; returns the positions (in `candidates`) of those the ledger
/// has already.
async fn lock_and_find_known(
    tx: &tokio_postgres::Transaction<'_>,
    objects: &[(&ObjectCreated, &tracing::Span)],
    candidates: &[usize],
) -> Result<HashSet<i64>, tokio_postgres::Error> {
    let column = |get: &dyn Fn(&ObjectCreated) -> String| -> Vec<String> {
        candidates.iter().map(|&i| get(objects[i].0)).collect()
    };
    let buckets = column(&|o| o.bucket.clone());
    let keys = column(&|o| o.key.clone());
    let object_versions = column(&|o| o.version().to_owned());
    let object_etags = column(&|o| o.etag.clone());
    let lock_names = column(&|o| format!("{}/{}", o.bucket, o.key));
    // The same per-key locks as `record`, taken in one order (by lock id) so that two
    // batches never wait for each other in a cycle; then, in a later statement (so under
    // a snapshot taken after the locks), which of the candidates the ledger already has.
    tx.query_typed(
        "SELECT pg_advisory_xact_lock(h)
           FROM (SELECT DISTINCT hashtextextended(k, 0) AS h
                   FROM unnest($1::text[]) AS k ORDER BY 1) AS locks",
        &[(&lock_names, Type::TEXT_ARRAY)],
    )
    .await?;
    Ok(tx
        .query_typed(
            "SELECT o.n FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                    WITH ORDINALITY AS o(bucket, key, version, etag, n)
              WHERE EXISTS (SELECT 1 FROM ops.files f
                             WHERE f.bucket = o.bucket AND f.key = o.key
                               AND (f.version = o.version OR f.etag = o.etag))",
            &[
                (&buckets, Type::TEXT_ARRAY),
                (&keys, Type::TEXT_ARRAY),
                (&object_versions, Type::TEXT_ARRAY),
                (&object_etags, Type::TEXT_ARRAY),
            ],
        )
        .await?
        .iter()
        .map(|row| row.get::<_, i64>(0) - 1)
        .collect())
}

/// What a new ledger row of an object means, in the span of the message that announced it.
fn new_row(
    (object, span): (&ObjectCreated, &tracing::Span),
    key_match: &KeyMatch,
    file_ids: &HashMap<(String, String, String), i64>,
) -> Recorded {
    match destination(key_match) {
        Ok((dataset, source, ingestion_date)) => {
            let file_id = file_ids[&(
                object.bucket.clone(),
                object.key.clone(),
                object.version().to_owned(),
            )];
            span.in_scope(|| landed(object, file_id, dataset, source, ingestion_date))
        }
        Err(reason) => span.in_scope(|| ignored(object, reason)),
    }
}

/// A new row's dataset, source and batch date, or why its key maps to no source.
fn destination(key_match: &KeyMatch) -> Result<(&str, &str, chrono::NaiveDate), &str> {
    match key_match {
        KeyMatch::File {
            dataset,
            source,
            ingestion_date,
        } => Ok((dataset, source, *ingestion_date)),
        KeyMatch::Unmapped(reason) => Err(reason),
        KeyMatch::Outside => unreachable!("not a candidate"),
    }
}

/// One multi-row insert of the new objects `new` (indexes into `objects`); their file ids by
/// bucket, key and version (unique among them: duplicates were dropped before).
async fn insert_new(
    tx: &tokio_postgres::Transaction<'_>,
    objects: &[(&ObjectCreated, &tracing::Span)],
    matches: &[KeyMatch],
    new: &[usize],
    discovered_by: DiscoveredBy,
) -> Result<HashMap<(String, String, String), i64>, tokio_postgres::Error> {
    let mut rows = NewRows::default();
    for &index in new {
        rows.push(objects[index], &matches[index]);
    }
    let rows = tx
        .query_typed(
            "INSERT INTO ops.files (bucket, key, version, etag, size_bytes, dataset, source, ingestion_date,
                                    state, reason, discovered_by, finished_at, trace_id, traceparent)
             SELECT o.bucket, o.key, o.version, o.etag, o.size_bytes, o.dataset, o.source, o.ingestion_date,
                    CASE WHEN o.dataset IS NULL THEN 'ignored' ELSE 'landed' END, o.reason, $12,
                    CASE WHEN o.dataset IS NULL THEN clock_timestamp() END, o.trace_id, o.traceparent
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[],
                           $7::text[], $8::date[], $9::text[], $10::text[], $11::text[])
                    AS o(bucket, key, version, etag, size_bytes, dataset, source, ingestion_date,
                         reason, trace_id, traceparent)
             RETURNING bucket, key, version, file_id",
            &[
                (&rows.buckets, Type::TEXT_ARRAY),
                (&rows.keys, Type::TEXT_ARRAY),
                (&rows.versions, Type::TEXT_ARRAY),
                (&rows.etags, Type::TEXT_ARRAY),
                (&rows.sizes, Type::INT8_ARRAY),
                (&rows.dataset_names, Type::TEXT_ARRAY),
                (&rows.sources, Type::TEXT_ARRAY),
                (&rows.dates, Type::DATE_ARRAY),
                (&rows.reasons, Type::TEXT_ARRAY),
                (&rows.trace_ids, Type::TEXT_ARRAY),
                (&rows.traceparents, Type::TEXT_ARRAY),
                (&discovered_by.as_str(), Type::TEXT),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| ((row.get(0), row.get(1), row.get(2)), row.get(3)))
        .collect())
}

/// The new ledger rows as columns, for one `unnest` insert.
#[derive(Default)]
struct NewRows<'a> {
    buckets: Vec<&'a str>,
    keys: Vec<&'a str>,
    versions: Vec<&'a str>,
    etags: Vec<&'a str>,
    sizes: Vec<i64>,
    dataset_names: Vec<Option<&'a str>>,
    sources: Vec<Option<&'a str>>,
    dates: Vec<Option<chrono::NaiveDate>>,
    reasons: Vec<Option<&'a str>>,
    trace_ids: Vec<Option<String>>,
    traceparents: Vec<Option<String>>,
}

impl<'a> NewRows<'a> {
    fn push(
        &mut self,
        (object, span): (&'a ObjectCreated, &tracing::Span),
        key_match: &'a KeyMatch,
    ) {
        self.buckets.push(object.bucket.as_str());
        self.keys.push(object.key.as_str());
        self.versions.push(object.version());
        self.etags.push(object.etag.as_str());
        self.sizes.push(object.size as i64);
        self.trace_ids
            .push(span.in_scope(telemetry::current_trace_id));
        match destination(key_match) {
            Ok((dataset, source, ingestion_date)) => {
                self.dataset_names.push(Some(dataset));
                self.sources.push(Some(source));
                self.dates.push(Some(ingestion_date));
                self.reasons.push(None);
                self.traceparents.push(
                    span.in_scope(telemetry::current_trace_headers)
                        .remove("traceparent"),
                );
            }
            Err(reason) => {
                self.dataset_names.push(None);
                self.sources.push(None);
                self.dates.push(None);
                self.reasons.push(Some(reason));
                self.traceparents.push(None);
            }
        }
    }
}
