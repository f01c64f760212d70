//! `_manifest.json`, written beside each report's CSV: what the object holds (rows, bytes,
//! SHA-256), which batch it is, and the source file versions the batch was built from, so a
//! consumer can check the download and trace every number back to the files that landed.

use chrono::{DateTime, NaiveDate, Utc};
use contract::BatchKey;
use runtime::Failure;
use serde::Serialize;
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::classify;

/// The manifest's file name, in the same folder as the CSV.
pub const MANIFEST_FILE: &str = "_manifest.json";

/// Bumped when a field changes meaning or goes away; added fields keep the version.
pub const MANIFEST_VERSION: u32 = 1;

/// One report's manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest<'a> {
    pub manifest_version: u32,
    pub dataset: &'a str,
    pub ingestion_date: NaiveDate,
    pub report: &'a str,
    pub bucket: &'a str,
    /// The CSV object this manifest describes.
    pub key: &'a str,
    pub content_type: &'a str,
    /// Data rows, not counting the header line.
    pub rows: u64,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the object's bytes.
    pub sha256: &'a str,
    pub exported_at: DateTime<Utc>,
    /// The `quality.passed` event the export answered.
    pub quality_event_id: Uuid,
    pub source_files: &'a [SourceFile],
}

/// A file version currently backing one source of the batch (`ops.staged_sources` → `ops.files`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceFile {
    pub source: String,
    pub file_id: i64,
    pub bucket: String,
    pub key: String,
    /// The S3 version id, or the ETag in an unversioned bucket.
    pub version: String,
    pub etag: String,
    pub rows_loaded: i64,
}

impl Manifest<'_> {
    /// Pretty-printed, ending in a line break.
    pub fn to_json(&self) -> Result<Vec<u8>, Failure> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|error| {
            Failure::permanent(anyhow::Error::new(error).context(format!(
                "serializing the manifest of report {}",
                self.report
            )))
        })?;
        json.push(b'\n');
        Ok(json)
    }
}

/// The ledger rows backing the batch now, by source name.
pub async fn source_files(
    tx: &Transaction<'_>,
    batch: &BatchKey,
) -> Result<Vec<SourceFile>, Failure> {
    let rows = tx
        .query(
            "SELECT s.source, f.file_id, f.bucket, f.key, f.version, f.etag, s.rows_loaded
               FROM ops.staged_sources s
               JOIN ops.files f ON f.file_id = s.file_id
              WHERE s.dataset = $1 AND s.ingestion_date = $2
              ORDER BY s.source",
            &[&batch.dataset, &batch.ingestion_date],
        )
        .await
        .map_err(|error| {
            classify::db(error, format!("reading the source files of batch {batch}"))
        })?;
    Ok(rows
        .iter()
        .map(|row| SourceFile {
            source: row.get(0),
            file_id: row.get(1),
            bucket: row.get(2),
            key: row.get(3),
            version: row.get(4),
            etag: row.get(5),
            rows_loaded: row.get(6),
        })
        .collect())
}
