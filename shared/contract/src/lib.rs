//! landfall's message contract: the only place pipeline events are defined.
//!
//! Every message on the pipeline exchange is an [`Envelope`] around exactly one payload type,
//! encoded as MessagePack with named fields (`rmp-serde`). Named fields let a producer add a
//! field without breaking an older reader: readers ignore fields they do not know. A reader
//! refuses, with a typed [`DecodeError`], an event type it does not know and a newer major
//! schema version, so such a message is dead-lettered with a reason instead of half-understood.

mod envelope;
mod events;

pub use envelope::{BatchKey, DecodeError, Envelope, SCHEMA_MAJOR, SCHEMA_MINOR, SchemaVersion};
pub use events::{
    CheckOutcome, EVENT_TYPES, Event, ExportCompleted, ExportedObject, FileLanded, FileRejected,
    ModelRun, Payload, QualityFailed, QualityPassed, StagingLoaded, TransformCompleted,
};
