//! The versioned envelope and its MessagePack encoding.

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{Event, Payload};

/// Major version of the envelope and payload schemas this build writes and reads.
/// A reader refuses a message of a newer major version; minor versions only add fields.
pub const SCHEMA_MAJOR: u16 = 1;
/// Minor version this build writes.
pub const SCHEMA_MINOR: u16 = 0;

/// `major.minor` of the schema a message was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersion {
    pub major: u16,
    pub minor: u16,
}

impl SchemaVersion {
    /// The version this build writes.
    pub const CURRENT: SchemaVersion = SchemaVersion {
        major: SCHEMA_MAJOR,
        minor: SCHEMA_MINOR,
    };
}

impl std::fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One batch: one ingestion date of one dataset. Every stage works batch by batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BatchKey {
    pub dataset: String,
    pub ingestion_date: NaiveDate,
}

impl std::fmt::Display for BatchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.dataset, self.ingestion_date)
    }
}

/// The envelope every pipeline event travels in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P> {
    /// Unique per event; consumers record it to drop redeliveries.
    pub event_id: Uuid,
    /// Dotted name such as `file.landed`; also the AMQP routing key.
    pub event_type: String,
    pub schema_version: SchemaVersion,
    pub occurred_at: DateTime<Utc>,
    /// The batch the event belongs to; `None` only for a file that maps to no dataset.
    pub batch: Option<BatchKey>,
    /// The event that caused this one, so a journey can be followed back.
    pub causation_id: Option<Uuid>,
    pub payload: P,
}

/// Why a message could not be read. Each variant is permanent: retrying cannot help.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not a MessagePack landfall envelope: {0}")]
    NotAnEnvelope(String),
    #[error("unknown event type '{0}'")]
    UnknownEventType(String),
    #[error(
        "event '{event_type}' has schema version {found}, newer than the supported major version {SCHEMA_MAJOR}"
    )]
    UnsupportedVersion {
        event_type: String,
        found: SchemaVersion,
    },
    #[error("payload of '{event_type}' does not match its schema: {reason}")]
    BadPayload { event_type: String, reason: String },
}

impl DecodeError {
    /// A short machine-readable name for dead-letter headers and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::NotAnEnvelope(_) => "not_an_envelope",
            DecodeError::UnknownEventType(_) => "unknown_event_type",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::BadPayload { .. } => "bad_payload",
        }
    }
}

impl<P: Payload> Envelope<P> {
    /// A new event of this payload's type, caused by `causation_id` (if any).
    pub fn new(batch: Option<BatchKey>, causation_id: Option<Uuid>, payload: P) -> Self {
        Envelope {
            event_id: Uuid::now_v7(),
            event_type: P::EVENT_TYPE.to_owned(),
            schema_version: SchemaVersion::CURRENT,
            occurred_at: Utc::now(),
            batch,
            causation_id,
            payload,
        }
    }

    /// MessagePack with named fields.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("envelope fields always serialize")
    }

    /// The same envelope with its payload wrapped as the [`Event`] enum.
    pub fn into_event(self) -> Envelope<Event> {
        let Envelope {
            event_id,
            event_type,
            schema_version,
            occurred_at,
            batch,
            causation_id,
            payload,
        } = self;
        Envelope {
            event_id,
            event_type,
            schema_version,
            occurred_at,
            batch,
            causation_id,
            payload: payload.into_event(),
        }
    }
}

impl Envelope<Event> {
    /// Reads any known event. Unknown fields are ignored; unknown types and newer major
    /// versions are refused.
    pub fn decode(bytes: &[u8]) -> Result<Envelope<Event>, DecodeError> {
        let header: Envelope<IgnoredAny> = rmp_serde::from_slice(bytes)
            .map_err(|error| DecodeError::NotAnEnvelope(error.to_string()))?;
        if header.schema_version.major > SCHEMA_MAJOR {
            return Err(DecodeError::UnsupportedVersion {
                event_type: header.event_type,
                found: header.schema_version,
            });
        }
        crate::events::decode_payload(&header.event_type, bytes)
    }

    /// Encodes whatever payload the envelope holds.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("envelope fields always serialize")
    }
}

/// Decodes the envelope as one specific payload type.
pub(crate) fn decode_as<P: Payload>(bytes: &[u8]) -> Result<Envelope<P>, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|error| DecodeError::BadPayload {
        event_type: P::EVENT_TYPE.to_owned(),
        reason: error.to_string(),
    })
}
