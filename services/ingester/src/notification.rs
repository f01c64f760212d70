//! Reading S3 bucket notifications: the standard `Records[]` JSON that MinIO (AMQP target) and
//! AWS (SQS, optionally wrapped in SNS) send.

use percent_encoding::percent_decode_str;
use pipeline::ledger::ObjectCreated;
use serde::Deserialize;

/// Why a message is not a notification landfall can read.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("not an S3 event notification (expected JSON with Records[]): {0}")]
    NotJson(String),
    #[error("record {index}: {problem}")]
    BadRecord { index: usize, problem: String },
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Option<Vec<Record>>,
    /// `s3:TestEvent` is sent by AWS when a notification is configured.
    #[serde(rename = "Event", default)]
    event: Option<String>,
    /// SNS wraps the S3 notification as a JSON string in `Message`.
    #[serde(rename = "Type", default)]
    sns_type: Option<String>,
    #[serde(rename = "Message", default)]
    sns_message: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: String,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: BucketEntity,
    object: ObjectEntity,
}

#[derive(Deserialize)]
struct BucketEntity {
    name: String,
}

#[derive(Deserialize)]
struct ObjectEntity {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "eTag", default)]
    etag: Option<String>,
    #[serde(rename = "versionId", default)]
    version_id: Option<String>,
}

/// The created objects a notification announces. Test events, removals and other event types
/// yield nothing; a message that is not a notification at all is an error.
pub fn parse(body: &[u8]) -> Result<Vec<ObjectCreated>, NotificationError> {
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|error| NotificationError::NotJson(error.to_string()))?;
    if notification.sns_type.as_deref() == Some("Notification") {
        let inner = notification.sns_message.unwrap_or_default();
        return parse(inner.as_bytes());
    }
    if notification.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    let Some(records) = notification.records else {
        return Err(NotificationError::NotJson("no Records[] array".into()));
    };
    let mut created = Vec::new();
    for (index, record) in records.into_iter().enumerate() {
        // MinIO writes `s3:ObjectCreated:Put`, AWS `ObjectCreated:Put`.
        let event_name = record
            .event_name
            .strip_prefix("s3:")
            .unwrap_or(&record.event_name);
        if !event_name.starts_with("ObjectCreated:") {
            continue;
        }
        let key = decode_key(&record.s3.object.key)
            .map_err(|problem| NotificationError::BadRecord { index, problem })?;
        let etag = record
            .s3
            .object
            .etag
            .map(|etag| etag.trim_matches('"').to_owned())
            .filter(|etag| !etag.is_empty())
            .ok_or_else(|| NotificationError::BadRecord {
                index,
                problem: format!("object '{key}' has no eTag"),
            })?;
        created.push(ObjectCreated {
            bucket: record.s3.bucket.name,
            key,
            size: record.s3.object.size.unwrap_or(0),
            etag,
            version_id: record
                .s3
                .object
                .version_id
                .filter(|id| !id.is_empty() && id != "null"),
        });
    }
    Ok(created)
}

/// Keys arrive form-URL-encoded: `+` is a space, `%2B` a plus, `%2F` a slash.
fn decode_key(raw: &str) -> Result<String, String> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| format!("key '{raw}' is not valid UTF-8 once URL-decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minio(event: &str, key: &str, etag: &str) -> String {
        format!(
            r#"{{"EventName":"{event}","Key":"lake/{key}","Records":[{{"eventVersion":"2.0","eventSource":"minio:s3","eventName":"{event}",
            "s3":{{"s3SchemaVersion":"1.0","bucket":{{"name":"lake","arn":"arn:aws:s3:::lake"}},
            "object":{{"key":"{key}","size":12,"eTag":"{etag}","sequencer":"1"}}}}}}]}}"#
        )
    }

    #[test]
    fn minio_records_are_read_and_keys_decoded() {
        let body = minio(
            "s3:ObjectCreated:Put",
            "landing%2Fa+b%2Bc%2Forders.csv",
            "abc",
        );
        let created = parse(body.as_bytes()).unwrap();
        assert_eq!(
            created,
            [ObjectCreated {
                bucket: "lake".into(),
                key: "landing/a b+c/orders.csv".into(),
                size: 12,
                etag: "abc".into(),
                version_id: None,
            }]
        );
    }

    #[test]
    fn several_records_in_one_message_are_all_read() {
        let body = r#"{"Records":[
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k1","size":1,"eTag":"\"e1\"","versionId":"v1"}}},
            {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"k0"}}},
            {"eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"b"},"object":{"key":"k2","size":2,"eTag":"e2-2"}}}
        ]}"#;
        let created = parse(body.as_bytes()).unwrap();
        assert_eq!(created.len(), 2);
        assert_eq!(created[0].version(), "v1");
        assert_eq!(created[0].etag, "e1");
        assert_eq!(created[1].version(), "e2-2");
    }

    #[test]
    fn test_events_and_sns_wrapping_are_understood() {
        assert!(
            parse(br#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#)
                .unwrap()
                .is_empty()
        );
        let inner = minio("s3:ObjectCreated:Put", "k", "e");
        let sns = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        assert_eq!(parse(sns.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let error = parse(b"\x93\x01\x02").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("not an S3 event notification"),
            "{error}"
        );
        assert!(parse(br#"{"hello":1}"#).is_err());
    }
}
