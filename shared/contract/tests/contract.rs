//! The contract's promises: round trip, forward compatibility, typed refusals.

use chrono::NaiveDate;
use contract::{
    BatchKey, CheckOutcome, DecodeError, Envelope, Event, ExportCompleted, ExportedObject,
    FileLanded, FileRejected, ModelRun, QualityFailed, QualityPassed, SchemaVersion, StagingLoaded,
    TransformCompleted,
};
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

/// Each of the seven payloads, with every field set to a value that is not its default,
/// decodes back to the same event under its own type (payloads with alike shapes, such as
/// `QualityPassed` and `QualityFailed`, are told apart by the envelope's type, not guessed).
#[test]
fn each_of_the_seven_events_round_trips_as_itself() {
    let outcome = CheckOutcome {
        check: "fact_orders_key_exists".into(),
        severity: "error".into(),
        failing_rows: 3,
    };
    let events: Vec<Envelope<Event>> = vec![
        file_landed().into_event(),
        Envelope::new(
            batch(),
            None,
            FileRejected {
                file_id: 7,
                bucket: "lake".into(),
                key: "k".into(),
                source: "orders".into(),
                reason: "header: expected order_id, found id (column 1)".into(),
                rows_rejected: 12,
            },
        )
        .into_event(),
        Envelope::new(
            batch(),
            None,
            StagingLoaded {
                file_id: 8,
                bucket: "lake".into(),
                key: "k".into(),
                version: "v2".into(),
                source: "orders".into(),
                table: "staging.orders".into(),
                rows_loaded: 10,
                rows_rejected: 1,
                replaced_file_id: None,
            },
        )
        .into_event(),
        Envelope::new(
            batch(),
            None,
            TransformCompleted {
                file_ids: vec![1, 2, 3],
                models: vec![ModelRun {
                    model: "fact_orders".into(),
                    rows: 1000,
                    duration_ms: 42,
                }],
            },
        )
        .into_event(),
        Envelope::new(
            batch(),
            None,
            QualityPassed {
                checks_run: 17,
                warnings: vec![outcome.clone()],
            },
        )
        .into_event(),
        Envelope::new(
            batch(),
            None,
            QualityFailed {
                checks_run: 17,
                failed: vec![outcome],
            },
        )
        .into_event(),
        Envelope::new(
            batch(),
            None,
            ExportCompleted {
                objects: vec![ExportedObject {
                    report: "agg_shipments".into(),
                    bucket: "lake".into(),
                    key: "exports/ecommerce/2026-11-26/agg_shipments.csv".into(),
                    rows: 1,
                    bytes: 64,
                    sha256: "ab".repeat(32),
                }],
            },
        )
        .into_event(),
    ];
    let mut types = std::collections::BTreeSet::new();
    for event in events {
        let decoded = Envelope::decode(&event.encode())
            .unwrap_or_else(|error| panic!("{}: {error}", event.event_type));
        assert_eq!(decoded.payload.event_type(), event.event_type);
        assert_eq!(decoded, event);
        types.insert(event.event_type.clone());
    }
    assert_eq!(types.len(), 7, "{types:?}");
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
