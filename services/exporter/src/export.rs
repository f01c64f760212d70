//! Exporting one batch: in the consumer's transaction, stream every report of the batch's
//! dataset from PostgreSQL (COPY TO STDOUT) into S3, write its manifest, record both, prune
//! staging, mark the batch exported and announce it.

use bytes::Bytes;
use catalog::exports::{ExportCatalog, ReportExport};
use chrono::{NaiveDate, Utc};
use contract::{BatchKey, Envelope, Event, ExportCompleted, ExportedObject};
use futures::TryStreamExt as _;
use runtime::{Failure, ServiceContext};
use tokio_postgres::Transaction;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::classify;
use crate::manifest::{self, MANIFEST_FILE, MANIFEST_VERSION, Manifest, SourceFile};
use crate::retention;
use crate::tally::{CsvTally, Totals};
use crate::upload::{Target, Uploaded};

const CSV_CONTENT_TYPE: &str = "text/csv";
const JSON_CONTENT_TYPE: &str = "application/json";

/// Where exports go and what happens after them.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub bucket: String,
    /// Empty or ending in `/`.
    pub prefix: String,
    pub part_size: usize,
    /// Batches per dataset whose staging rows are kept; 0 keeps all.
    pub staging_retention_batches: u32,
}

/// Exports batches; one per `QualityPassed`.
pub struct Exporter {
    pub ctx: ServiceContext,
    pub s3: aws_sdk_s3::Client,
    pub catalog: ExportCatalog,
    pub settings: ExportSettings,
}

/// The batch and event an export answers.
struct Job<'a> {
    batch: &'a BatchKey,
    event_id: Uuid,
    source_files: &'a [SourceFile],
}

impl Exporter {
    /// Exports every report of the batch a `QualityPassed` names and returns the
    /// `ExportCompleted` that lists them.
    pub async fn export_batch(
        &self,
        tx: &Transaction<'_>,
        envelope: &Envelope<Event>,
    ) -> Result<Vec<Envelope<Event>>, Failure> {
        let batch = envelope.batch.as_ref().ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "quality.passed event {} has no batch",
                envelope.event_id
            ))
        })?;
        let dataset = self.ctx.datasets.get(&batch.dataset).ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "dataset '{}' is not defined in this exporter's datasets",
                batch.dataset
            ))
        })?;
        // Exports of one batch run one at a time, so the objects in S3 and the rows in
        // ops.exports always come from the same run.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("export:{batch}")],
        )
        .await
        .map_err(|error| classify::db(error, format!("locking batch {batch} for export")))?;
        let source_files = manifest::source_files(tx, batch).await?;
        let job = Job {
            batch,
            event_id: envelope.event_id,
            source_files: &source_files,
        };
        let reports = self.catalog.reports(&batch.dataset);
        if reports.is_empty() {
            tracing::warn!(dataset = batch.dataset, "the dataset exports no reports");
        }
        let mut objects = Vec::with_capacity(reports.len());
        for report in reports {
            let span = tracing::info_span!(
                "export",
                otel.name = format!("export {}", report.report),
                otel.kind = "client",
                db.system.name = "postgresql",
                db.operation.name = "COPY",
                db.collection.name = format!("{}.{}", report.schema, report.table),
                landfall.dataset = batch.dataset.as_str(),
                landfall.batch = batch.ingestion_date.to_string(),
                landfall.report = report.report.as_str(),
            );
            objects.push(
                self.export_report(tx, &job, report)
                    .instrument(span)
                    .await?,
            );
        }
        let pruned =
            retention::prune_staging(tx, dataset, self.settings.staging_retention_batches).await?;
        tracing::info!(
            dataset = batch.dataset,
            keep_batches = self.settings.staging_retention_batches,
            kept_from = pruned.kept_from.map(|date| date.to_string()),
            rows_deleted = pruned.rows_deleted,
            "staging retention applied"
        );
        mark_exported(tx, batch).await?;
        record_landed_to_export(tx, batch).await;
        let event = Envelope::new(
            Some(batch.clone()),
            Some(envelope.event_id),
            ExportCompleted { objects },
        );
        Ok(vec![event.into_event()])
    }

    /// Streams one report's rows of the batch to its CSV object, then writes its manifest and
    /// records the export.
    async fn export_report(
        &self,
        tx: &Transaction<'_>,
        job: &Job<'_>,
        report: &ReportExport,
    ) -> Result<ExportedObject, Failure> {
        let batch = job.batch;
        let key = report_key(
            &self.settings.prefix,
            &batch.dataset,
            &report.report,
            batch.ingestion_date,
        );
        let target = Target {
            s3: &self.s3,
            bucket: &self.settings.bucket,
            key: &key,
            content_type: CSV_CONTENT_TYPE,
            report: &report.report,
        };
        let (uploaded, totals) = self.stream_report(tx, job, report, &target).await?;
        let exported_at = Utc::now();
        let manifest_key = sibling_key(&key, MANIFEST_FILE);
        let manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            dataset: &batch.dataset,
            ingestion_date: batch.ingestion_date,
            report: &report.report,
            bucket: &self.settings.bucket,
            key: &key,
            content_type: CSV_CONTENT_TYPE,
            rows: totals.data_rows(),
            bytes: totals.bytes,
            sha256: &totals.sha256,
            exported_at,
            quality_event_id: job.event_id,
            source_files: job.source_files,
        };
        Target {
            key: &manifest_key,
            content_type: JSON_CONTENT_TYPE,
            ..target
        }
        .put(Bytes::from(manifest.to_json()?))
        .await?;
        record_export(tx, &manifest, &manifest_key).await?;
        tracing::info!(
            report = report.report,
            bucket = self.settings.bucket,
            key,
            manifest = manifest_key,
            rows = totals.data_rows(),
            bytes = totals.bytes,
            parts = uploaded.parts,
            "report exported"
        );
        Ok(ExportedObject {
            report: report.report.clone(),
            bucket: self.settings.bucket.clone(),
            key,
            rows: totals.data_rows(),
            bytes: totals.bytes,
            sha256: totals.sha256,
        })
    }

    /// Streams the report's rows of the batch (COPY TO STDOUT) to `target`, counting them and
    /// hashing them on the way.
    async fn stream_report(
        &self,
        tx: &Transaction<'_>,
        job: &Job<'_>,
        report: &ReportExport,
        target: &Target<'_>,
    ) -> Result<(Uploaded, Totals), Failure> {
        let batch = job.batch;
        let copy = tx
            .copy_out(report.copy_statement(batch.ingestion_date).as_str())
            .await
            .map_err(|error| {
                classify::db(
                    error,
                    format!(
                        "reading report {} from {}",
                        report.report,
                        report.qualified_table()
                    ),
                )
            })?;
        let mut tally = CsvTally::default();
        let chunks = copy
            .map_err(|error| {
                classify::db(
                    error,
                    format!("streaming report {} from PostgreSQL", report.report),
                )
            })
            .inspect_ok(|chunk: &Bytes| tally.update(chunk));
        let uploaded = target.upload(chunks, self.settings.part_size).await?;
        Ok((uploaded, tally.finish()))
    }
}

/// Records the report's export of the batch in `ops.exports` (the latest one wins), from its
/// manifest.
async fn record_export(
    tx: &Transaction<'_>,
    manifest: &Manifest<'_>,
    manifest_key: &str,
) -> Result<(), Failure> {
    tx.execute(
        "INSERT INTO ops.exports (dataset, ingestion_date, report, bucket, key, manifest_key,
                                  rows, bytes, sha256, event_id, exported_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (dataset, ingestion_date, report) DO UPDATE
            SET bucket = EXCLUDED.bucket, key = EXCLUDED.key, manifest_key = EXCLUDED.manifest_key,
                rows = EXCLUDED.rows, bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256,
                event_id = EXCLUDED.event_id, exported_at = EXCLUDED.exported_at",
        &[
            &manifest.dataset,
            &manifest.ingestion_date,
            &manifest.report,
            &manifest.bucket,
            &manifest.key,
            &manifest_key,
            &(manifest.rows as i64),
            &(manifest.bytes as i64),
            &manifest.sha256,
            &manifest.quality_event_id,
            &manifest.exported_at,
        ],
    )
    .await
    .map_err(|error| {
        classify::db(
            error,
            format!("recording the export of report {}", manifest.report),
        )
    })?;
    Ok(())
}

/// `<prefix><dataset>/<report>/ingestion_date=YYYY-MM-DD/<report>.csv`
pub fn report_key(prefix: &str, dataset: &str, report: &str, ingestion_date: NaiveDate) -> String {
    format!(
        "{prefix}{dataset}/{report}/ingestion_date={}/{report}.csv",
        ingestion_date.format("%Y-%m-%d")
    )
}

/// The key of `file` in the same folder as `key`.
fn sibling_key(key: &str, file: &str) -> String {
    match key.rsplit_once('/') {
        Some((folder, _)) => format!("{folder}/{file}"),
        None => file.to_owned(),
    }
}

async fn mark_exported(tx: &Transaction<'_>, batch: &BatchKey) -> Result<(), Failure> {
    let updated = tx
        .execute(
            "UPDATE ops.batches SET state = 'exported', exported_at = clock_timestamp(),
                    updated_at = clock_timestamp()
              WHERE dataset = $1 AND ingestion_date = $2",
            &[&batch.dataset, &batch.ingestion_date],
        )
        .await
        .map_err(|error| classify::db(error, format!("marking batch {batch} exported")))?;
    if updated == 0 {
        tracing::warn!(%batch, "exported a batch that ops.batches does not know");
    }
    Ok(())
}

/// Records how long the batch took from its first current file landing to this export.
async fn record_landed_to_export(tx: &Transaction<'_>, batch: &BatchKey) {
    let seconds = tx
        .query_one(
            "SELECT extract(epoch FROM clock_timestamp() - min(f.landed_at))::float8
               FROM ops.staged_sources s JOIN ops.files f USING (file_id)
              WHERE s.dataset = $1 AND s.ingestion_date = $2",
            &[&batch.dataset, &batch.ingestion_date],
        )
        .await
        .ok()
        .and_then(|row| row.get::<_, Option<f64>>(0));
    if let Some(seconds) = seconds {
        runtime::metrics::metrics().landed_to_export.record(
            seconds,
            &runtime::metrics::attributes(&[("dataset", &batch.dataset)]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_partition_layout() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let key = report_key("analytics_export/", "ecommerce", "agg_shipments", date);
        assert_eq!(
            key,
            "analytics_export/ecommerce/agg_shipments/ingestion_date=2026-03-01/agg_shipments.csv"
        );
        assert_eq!(
            sibling_key(&key, MANIFEST_FILE),
            "analytics_export/ecommerce/agg_shipments/ingestion_date=2026-03-01/_manifest.json"
        );
        assert_eq!(
            report_key("", "d", "r", date),
            "d/r/ingestion_date=2026-03-01/r.csv"
        );
    }
}
