//! MinIO's bucket-notification format, as its AMQP target publishes it.
//!
//! The pipeline consumes MinIO events in production, so the dev server must
//! produce byte-for-byte the same shape: an `event.Log` wrapper
//! (`EventName`, `Key`, `Records`) around one S3-style record. Field names,
//! `omitempty` behaviour and the key escaping follow MinIO's `internal/event`
//! package; maps are `BTreeMap` because Go marshals maps with sorted keys.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::keys::query_escape;

/// What was done to the object; the value is MinIO's `EventName`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventName {
    Put,
    Copy,
    CompleteMultipartUpload,
    Delete,
}

impl EventName {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Put => "s3:ObjectCreated:Put",
            Self::Copy => "s3:ObjectCreated:Copy",
            Self::CompleteMultipartUpload => "s3:ObjectCreated:CompleteMultipartUpload",
            Self::Delete => "s3:ObjectRemoved:Delete",
        }
    }
}

/// Facts about the server that every record repeats.
#[derive(Clone, Debug)]
pub(crate) struct ServerIdentity {
    /// `awsRegion`.
    pub(crate) region: String,
    /// Bucket owner's principal id (the configured access key).
    pub(crate) owner: String,
    /// `x-minio-deployment-id`: random per server start, like a MinIO deployment.
    pub(crate) deployment_id: String,
    /// `x-amz-id-2`: MinIO sends a per-node hash; we send a per-start one.
    pub(crate) node_id: String,
    /// `x-minio-origin-endpoint`, e.g. `http://127.0.0.1:9000`.
    pub(crate) endpoint: String,
}

/// Facts about the request that caused the event.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestFacts {
    /// Access key that signed the request.
    pub(crate) principal: String,
    /// Client IP address, empty when unknown.
    pub(crate) source_ip: String,
    /// `User-Agent` header, empty when absent.
    pub(crate) user_agent: String,
}

/// Facts about the object after the operation (absent for deletions).
#[derive(Clone, Debug, Default)]
pub(crate) struct ObjectFacts {
    pub(crate) size: u64,
    /// ETag without quotes.
    pub(crate) etag: String,
    pub(crate) content_type: String,
    /// User metadata as sent (`x-amz-meta-` stripped, lower case).
    pub(crate) user_metadata: BTreeMap<String, String>,
}

/// MinIO `event.Log`, the message body of its AMQP target.
#[derive(Debug, Serialize)]
pub(crate) struct Log {
    #[serde(rename = "EventName")]
    event_name: &'static str,
    /// `<bucket>/<key>` with the key *not* escaped.
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_version: &'static str,
    event_source: &'static str,
    aws_region: String,
    event_time: String,
    event_name: &'static str,
    user_identity: Identity,
    request_parameters: BTreeMap<&'static str, String>,
    response_elements: BTreeMap<&'static str, String>,
    s3: S3Metadata,
    source: Source,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    principal_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct S3Metadata {
    s3_schema_version: &'static str,
    configuration_id: &'static str,
    bucket: Bucket,
    object: Object,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Bucket {
    name: String,
    owner_identity: Identity,
    arn: String,
}

/// `omitempty` on everything but `key` and `sequencer`, as in MinIO: a
/// deletion carries only those two, and a created *empty* object has no `size`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: String,
    #[serde(skip_serializing_if = "is_zero")]
    size: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    e_tag: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    content_type: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    user_metadata: BTreeMap<String, String>,
    sequencer: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    host: String,
    port: String,
    user_agent: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Builds the notification for one object.
pub(crate) fn build(
    name: EventName,
    bucket: &str,
    key: &str,
    object: Option<&ObjectFacts>,
    request: &RequestFacts,
    server: &ServerIdentity,
) -> Log {
    let now = chrono::Utc::now();
    let sequencer = format!("{:016X}", next_sequence(now));
    let object = match object {
        Some(facts) => Object {
            key: query_escape(key),
            size: facts.size,
            e_tag: facts.etag.clone(),
            content_type: facts.content_type.clone(),
            user_metadata: minio_user_metadata(facts),
            sequencer,
        },
        None => Object {
            key: query_escape(key),
            size: 0,
            e_tag: String::new(),
            content_type: String::new(),
            user_metadata: BTreeMap::new(),
            sequencer,
        },
    };
    let request_parameters = BTreeMap::from([
        ("principalId", request.principal.clone()),
        ("region", server.region.clone()),
        ("sourceIPAddress", request.source_ip.clone()),
    ]);
    let response_elements = BTreeMap::from([
        ("x-amz-id-2", server.node_id.clone()),
        ("x-amz-request-id", format!("{:016X}", next_sequence(now))),
        ("x-minio-deployment-id", server.deployment_id.clone()),
        ("x-minio-origin-endpoint", server.endpoint.clone()),
    ]);
    let record = Record {
        event_version: "2.0",
        event_source: "minio:s3",
        aws_region: server.region.clone(),
        // MinIO's event.AMZTimeFormat: "2006-01-02T15:04:05.000Z".
        event_time: now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        event_name: name.as_str(),
        user_identity: Identity {
            principal_id: request.principal.clone(),
        },
        request_parameters,
        response_elements,
        s3: S3Metadata {
            s3_schema_version: "1.0",
            configuration_id: "Config",
            bucket: Bucket {
                name: bucket.to_owned(),
                owner_identity: Identity {
                    principal_id: server.owner.clone(),
                },
                arn: format!("arn:aws:s3:::{bucket}"),
            },
            object,
        },
        source: Source {
            host: request.source_ip.clone(),
            port: String::new(),
            user_agent: request.user_agent.clone(),
        },
    };
    Log {
        event_name: name.as_str(),
        key: format!("{bucket}/{key}"),
        records: vec![record],
    }
}

/// MinIO's `userMetadata`: the object's content type under `content-type`
/// plus user metadata under canonical `X-Amz-Meta-…` header names.
fn minio_user_metadata(facts: &ObjectFacts) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = facts
        .user_metadata
        .iter()
        .map(|(name, value)| {
            (
                canonical_header_name(&format!("x-amz-meta-{name}")),
                value.clone(),
            )
        })
        .collect();
    if !facts.content_type.is_empty() {
        map.insert("content-type".to_owned(), facts.content_type.clone());
    }
    map
}

/// Go's `http.CanonicalHeaderKey`: upper-case the first letter and every
/// letter after `-`, lower-case the rest.
fn canonical_header_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// MinIO's sequencer is the event time in Unix nanoseconds, in hex. We make it
/// strictly increasing within the process so consumers can order events even
/// when two land in the same nanosecond tick of a coarse clock.
fn next_sequence(now: chrono::DateTime<chrono::Utc>) -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let nanos = now
        .timestamp_nanos_opt()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = nanos.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => prev = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerIdentity {
        ServerIdentity {
            region: "us-east-1".into(),
            owner: "owner-ak".into(),
            deployment_id: "dep".into(),
            node_id: "node".into(),
            endpoint: "http://127.0.0.1:9000".into(),
        }
    }

    fn request() -> RequestFacts {
        RequestFacts {
            principal: "ak".into(),
            source_ip: "127.0.0.1".into(),
            user_agent: "ua".into(),
        }
    }

    #[test]
    fn created_event_has_minio_shape() {
        let facts = ObjectFacts {
            size: 123,
            etag: "abc".into(),
            content_type: "text/csv".into(),
            user_metadata: BTreeMap::from([("source-system".into(), "crm".into())]),
        };
        let log = build(
            EventName::Put,
            "landing",
            "in/a b+c.csv",
            Some(&facts),
            &request(),
            &server(),
        );
        let json = serde_json::to_value(&log).expect("serialises");
        assert_eq!(json["EventName"], "s3:ObjectCreated:Put");
        assert_eq!(json["Key"], "landing/in/a b+c.csv");
        let record = &json["Records"][0];
        assert_eq!(record["eventVersion"], "2.0");
        assert_eq!(record["eventSource"], "minio:s3");
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["eventName"], "s3:ObjectCreated:Put");
        assert_eq!(record["userIdentity"]["principalId"], "ak");
        assert_eq!(record["requestParameters"]["sourceIPAddress"], "127.0.0.1");
        assert_eq!(record["s3"]["s3SchemaVersion"], "1.0");
        assert_eq!(record["s3"]["configurationId"], "Config");
        assert_eq!(record["s3"]["bucket"]["name"], "landing");
        assert_eq!(
            record["s3"]["bucket"]["ownerIdentity"]["principalId"],
            "owner-ak"
        );
        assert_eq!(record["s3"]["bucket"]["arn"], "arn:aws:s3:::landing");
        let object = &record["s3"]["object"];
        assert_eq!(object["key"], "in%2Fa+b%2Bc.csv");
        assert_eq!(object["size"], 123);
        assert_eq!(object["eTag"], "abc");
        assert_eq!(object["contentType"], "text/csv");
        assert_eq!(object["userMetadata"]["content-type"], "text/csv");
        assert_eq!(object["userMetadata"]["X-Amz-Meta-Source-System"], "crm");
        let sequencer = object["sequencer"].as_str().expect("string");
        assert_eq!(sequencer.len(), 16);
        assert!(sequencer.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(record["source"]["host"], "127.0.0.1");
        assert_eq!(record["source"]["port"], "");
        assert_eq!(record["source"]["userAgent"], "ua");
        let time = record["eventTime"].as_str().expect("string");
        assert!(chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S%.3fZ").is_ok());
        assert_eq!(time.len(), "2026-11-26T10:00:00.123Z".len(), "{time}");
    }

    #[test]
    fn delete_event_omits_object_details() {
        let log = build(EventName::Delete, "b", "k", None, &request(), &server());
        let json = serde_json::to_value(&log).expect("serialises");
        let object = json["Records"][0]["s3"]["object"]
            .as_object()
            .expect("object");
        let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["key", "sequencer"]);
        assert_eq!(json["EventName"], "s3:ObjectRemoved:Delete");
    }

    #[test]
    fn sequencer_is_strictly_increasing() {
        let now = chrono::Utc::now();
        let a = next_sequence(now);
        let b = next_sequence(now);
        assert!(b > a);
    }

    #[test]
    fn canonical_header_names() {
        assert_eq!(
            canonical_header_name("x-amz-meta-foo-bar"),
            "X-Amz-Meta-Foo-Bar"
        );
        assert_eq!(canonical_header_name("X-AMZ-META-A"), "X-Amz-Meta-A");
    }
}
