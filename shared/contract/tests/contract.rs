//! The contract's promises: round trip, forward compatibility, typed refusals.

use chrono::NaiveDate;
use contract::{BatchKey, DecodeError, Envelope, Event, FileLanded, SchemaVersion, StagingLoaded};
use serde::Serialize;

fn batch() -> Option<BatchKey> {
    Some(BatchKey {
        dataset: "ecommerce".into(),
        ingestion_date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
    })
}

fn file_landed() -> Envelope<FileLanded> {
    Envelope::new(
        batch(),
        None,
        FileLanded {
            file_id: 42,
            bucket: "lake".into(),
            key: "landing/ecommerce/ingestion_date=2026-11-26/orders.csv".into(),
            version: "abc".into(),
            etag: "abc".into(),
            size: 1234,
            source: "orders".into(),
        },
    )
}

#[test]
fn every_event_round_trips() {
    let landed = file_landed();
    let decoded = Envelope::decode(&landed.encode()).expect("decodes");
    assert_eq!(decoded, landed.clone().into_event());

    let loaded = Envelope::new(
        batch(),
        Some(landed.event_id),
        StagingLoaded {
            file_id: 42,
            bucket: "lake".into(),
            key: "k".into(),
            version: "v".into(),
            source: "orders".into(),
            table: "staging.orders".into(),
            rows_loaded: 10,
            rows_rejected: 1,
            replaced_file_id: Some(7),
        },
    );
    let decoded = Envelope::decode(&loaded.encode()).expect("decodes");
    assert_eq!(decoded.causation_id, Some(landed.event_id));
    match decoded.payload {
        Event::StagingLoaded(payload) => assert_eq!(payload, loaded.payload),
        other => panic!("decoded as the wrong payload: {other:?}"),
    }
}

/// A newer producer's envelope: same fields plus ones this reader does not know.
#[derive(Serialize)]
struct NewerFileLanded<'a> {
    #[serde(flatten)]
    inner: &'a FileLanded,
    content_encoding: &'a str,
}

#[derive(Serialize)]
struct NewerEnvelope<'a> {
    #[serde(flatten)]
    inner: &'a Envelope<NewerFileLanded<'a>>,
    priority: u8,
}

#[test]
fn a_reader_ignores_fields_it_does_not_know() {
    let landed = file_landed();
    let newer = Envelope {
        event_id: landed.event_id,
        event_type: landed.event_type.clone(),
        schema_version: SchemaVersion { major: 1, minor: 3 },
        occurred_at: landed.occurred_at,
        batch: landed.batch.clone(),
        causation_id: None,
        payload: NewerFileLanded {
            inner: &landed.payload,
            content_encoding: "gzip",
        },
    };
    let bytes = rmp_serde::to_vec_named(&NewerEnvelope {
        inner: &newer,
        priority: 3,
    })
    .unwrap();
    let decoded = Envelope::decode(&bytes).expect("a newer minor version is readable");
    assert_eq!(decoded.payload, Event::FileLanded(landed.payload));
}

#[test]
fn an_unknown_event_type_is_a_typed_error() {
    let mut envelope = file_landed();
    envelope.event_type = "file.teleported".into();
    match Envelope::decode(&envelope.encode()) {
        Err(DecodeError::UnknownEventType(name)) => assert_eq!(name, "file.teleported"),
        other => panic!("expected UnknownEventType, got {other:?}"),
    }
}

#[test]
fn a_newer_major_version_is_a_typed_error() {
    let mut envelope = file_landed();
    envelope.schema_version = SchemaVersion { major: 2, minor: 0 };
    let error = Envelope::decode(&envelope.encode()).unwrap_err();
    assert!(
        matches!(error, DecodeError::UnsupportedVersion { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("2.0"), "{error}");
}

#[test]
fn bytes_that_are_not_messagepack_are_a_typed_error() {
    for garbage in [&b"{\"json\": true}"[..], b"", &[0xc1, 0x00, 0xff]] {
        let error = Envelope::decode(garbage).unwrap_err();
        assert_eq!(error.kind(), "not_an_envelope", "{garbage:?}: {error}");
    }
}

#[test]
fn a_truncated_message_is_a_typed_error_not_a_panic() {
    let bytes = file_landed().encode();
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        assert!(Envelope::decode(&bytes[..cut]).is_err());
    }
}

#[test]
fn a_payload_missing_a_required_field_is_a_typed_error() {
    #[derive(Serialize)]
    struct Thin {
        file_id: i64,
    }
    let landed = file_landed();
    let thin = Envelope {
        event_id: landed.event_id,
        event_type: landed.event_type,
        schema_version: landed.schema_version,
        occurred_at: landed.occurred_at,
        batch: landed.batch,
        causation_id: None,
        payload: Thin { file_id: 1 },
    };
    let error = Envelope::decode(&rmp_serde::to_vec_named(&thin).unwrap()).unwrap_err();
    assert_eq!(error.kind(), "bad_payload", "{error}");
}
