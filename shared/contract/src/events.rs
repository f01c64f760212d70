//! One payload type per pipeline event.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::envelope::{DecodeError, Envelope, decode_as};

/// A payload type: knows its event type, which is also its routing key.
pub trait Payload: Serialize + DeserializeOwned {
    const EVENT_TYPE: &'static str;
    fn into_event(self) -> Event;
}

/// A file version was recorded in the ledger and should be staged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileLanded {
    /// The ledger row (`ops.files.file_id`).
    pub file_id: i64,
    pub bucket: String,
    pub key: String,
    /// The S3 version id, or the ETag when the bucket is not versioned.
    pub version: String,
    pub etag: String,
    pub size: u64,
    /// The dataset source the key maps to, e.g. `orders`.
    pub source: String,
}

/// A file was refused as a whole; nothing of it was staged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRejected {
    pub file_id: i64,
    pub bucket: String,
    pub key: String,
    pub source: String,
    /// What a person needs to fix the file.
    pub reason: String,
    pub rows_rejected: u64,
}

/// A file's rows are in its staging table (rows of any older version of it are gone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingLoaded {
    pub file_id: i64,
    pub bucket: String,
    pub key: String,
    pub version: String,
    pub source: String,
    /// Fully qualified staging table, e.g. `staging.orders`.
    pub table: String,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    /// The older version of the same source in the batch whose rows this load replaced.
    pub replaced_file_id: Option<i64>,
}

/// One SQL model's run within a transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRun {
    pub model: String,
    /// The rows the model inserted or updated, as PostgreSQL counted them (rows it deleted or
    /// only read do not count).
    pub rows: u64,
    pub duration_ms: u64,
}

/// The batch's models ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformCompleted {
    /// Ledger ids of the files the batch was built from.
    pub file_ids: Vec<i64>,
    pub models: Vec<ModelRun>,
}

/// One quality check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub check: String,
    pub severity: String,
    pub failing_rows: u64,
}

/// Every error-severity check passed; the batch may be exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityPassed {
    pub checks_run: u32,
    /// Warn-severity checks that failed (they do not block export).
    pub warnings: Vec<CheckOutcome>,
}

/// At least one error-severity check failed; the batch is not exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityFailed {
    pub checks_run: u32,
    pub failed: Vec<CheckOutcome>,
}

/// One object the exporter wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedObject {
    pub report: String,
    pub bucket: String,
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// The batch's reports and manifests are in S3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportCompleted {
    pub objects: Vec<ExportedObject>,
}

/// Any known event, for consumers that read the exchange generically.
/// Serialized untagged: the envelope's `event_type` says which payload it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Event {
    FileLanded(FileLanded),
    FileRejected(FileRejected),
    StagingLoaded(StagingLoaded),
    TransformCompleted(TransformCompleted),
    QualityPassed(QualityPassed),
    QualityFailed(QualityFailed),
    ExportCompleted(ExportCompleted),
}

impl Event {
    /// The event type name of the payload held.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::FileLanded(_) => FileLanded::EVENT_TYPE,
            Event::FileRejected(_) => FileRejected::EVENT_TYPE,
            Event::StagingLoaded(_) => StagingLoaded::EVENT_TYPE,
            Event::TransformCompleted(_) => TransformCompleted::EVENT_TYPE,
            Event::QualityPassed(_) => QualityPassed::EVENT_TYPE,
            Event::QualityFailed(_) => QualityFailed::EVENT_TYPE,
            Event::ExportCompleted(_) => ExportCompleted::EVENT_TYPE,
        }
    }
}

macro_rules! payloads {
    ($($name:ident => $event_type:literal),* $(,)?) => {
        $(
            impl Payload for $name {
                const EVENT_TYPE: &'static str = $event_type;
                fn into_event(self) -> Event {
                    Event::$name(self)
                }
            }
        )*

        /// Decodes `bytes` as the payload type named by `event_type`.
        pub(crate) fn decode_payload(
            event_type: &str,
            bytes: &[u8],
        ) -> Result<Envelope<Event>, DecodeError> {
            match event_type {
                $($event_type => Ok(decode_as::<$name>(bytes)?.into_event()),)*
                other => Err(DecodeError::UnknownEventType(other.to_owned())),
            }
        }

        /// Every event type this build knows.
        pub const EVENT_TYPES: &[&str] = &[$($event_type),*];
    };
}

payloads! {
    FileLanded => "file.landed",
    FileRejected => "file.rejected",
    StagingLoaded => "staging.loaded",
    TransformCompleted => "transform.completed",
    QualityPassed => "quality.passed",
    QualityFailed => "quality.failed",
    ExportCompleted => "export.completed",
}
