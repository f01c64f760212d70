//! The AWS path: S3 bucket notifications delivered to SQS (directly, or wrapped by SNS), long
//! polled by the ingester. Runs against moto (PyPI `moto[server]`), a real local S3 + SQS
//! endpoint whose bucket notifications really deliver the AWS event JSON to the queue. The
//! database and the RabbitMQ names are the test's own (TestEnv); only S3 and SQS are moto.
//! The first test runs all five services end to end: put object → notification → SQS → ledger →
//! staging → transform → quality → the reports exported into moto's bucket.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use landfall_tests::moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};
use landfall_tests::{TestEnv, data, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const DATE: &str = "2026-05-01";

// ---------------------------------------------------------------------------------------------
// The AWS side of a test: a bucket, a queue with a dead-letter queue, the bucket notification.

struct Aws {
    moto: Moto,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    bucket: String,
    queue_url: String,
    dlq_url: String,
}

impl Aws {
    /// A bucket and a queue whose redrive policy moves a message to `<queue>-dlq` after
    /// `max_receive_count` receives. No notification yet: see [`Aws::notify_queue`].
    async fn new(max_receive_count: u32) -> Aws {
        let moto = Moto::start().await;
        let (s3, sqs) = (moto.s3(), moto.sqs());
        let bucket = "landfall-landing".to_owned();
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("creating the bucket");
        let dlq_url = create_queue(&sqs, "landfall-notifications-dlq", None).await;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": queue_arn(&sqs, &dlq_url).await,
            "maxReceiveCount": max_receive_count.to_string(),
        })
        .to_string();
        let queue_url = create_queue(&sqs, "landfall-notifications", Some(redrive)).await;
        Aws {
            moto,
            s3,
            sqs,
            bucket,
            queue_url,
            dlq_url,
        }
    }

    /// `PutBucketNotificationConfiguration`: every `s3:ObjectCreated:*` under `landing/` to the
    /// queue, as docs/DEPLOY.md sets it up (so the exporter's own writes under
    /// `analytics_export/` are not announced). AWS (and moto) then sends an `s3:TestEvent` to the
    /// queue.
    async fn notify_queue(&self) {
        use aws_sdk_s3::types::{
            Event, FilterRule, FilterRuleName, NotificationConfiguration,
            NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
        };
        let landing = FilterRule::builder()
            .name(FilterRuleName::Prefix)
            .value("landing/")
            .build();
        let queue = QueueConfiguration::builder()
            .id("landfall-ingester")
            .queue_arn(queue_arn(&self.sqs, &self.queue_url).await)
            .events(Event::from("s3:ObjectCreated:*"))
            .filter(
                NotificationConfigurationFilter::builder()
                    .key(S3KeyFilter::builder().filter_rules(landing).build())
                    .build(),
            )
            .build()
            .expect("queue configuration");
        self.s3
            .put_bucket_notification_configuration()
            .bucket(&self.bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(queue)
                    .build(),
            )
            .send()
            .await
            .expect("configuring the bucket notification");
    }

    /// Puts an object; returns its ETag (without quotes).
    async fn put(&self, key: &str, body: impl Into<Vec<u8>>) -> String {
        let output = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body.into()))
            .send()
            .await
            .unwrap_or_else(|error| panic!("putting {key}: {error:?}"));
        output
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned()
    }

    async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .expect("sending to the queue");
    }

    /// (visible, in flight) messages of a queue.
    async fn counts(&self, queue_url: &str) -> anyhow::Result<(u64, u64)> {
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let attributes = output.attributes().cloned().unwrap_or_default();
        let number = |name: QueueAttributeName| -> anyhow::Result<u64> {
            Ok(attributes
                .get(&name)
                .ok_or_else(|| anyhow::anyhow!("no {name:?}"))?
                .parse()?)
        };
        Ok((
            number(QueueAttributeName::ApproximateNumberOfMessages)?,
            number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        ))
    }

    /// Waits until the queue holds no message at all, visible or in flight: every message was
    /// deleted (or, for the dead-letter case, moved).
    async fn wait_until_drained(&self, what: &str) {
        wait_until(
            &format!("{what}: the SQS queue drained"),
            DEADLINE,
            || async { Ok((self.counts(&self.queue_url).await? == (0, 0)).then_some(())) },
        )
        .await
    }

    /// The ingester's and the stager's settings pointing at moto instead of the test's own
    /// S3 server.
    fn overrides(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LANDFALL_S3_ENDPOINT", self.moto.endpoint.clone()),
            ("LANDFALL_S3_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("LANDFALL_S3_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("LANDFALL_S3_REGION", REGION.into()),
            ("LANDFALL_BUCKET", self.bucket.clone()),
            ("LANDFALL_SQS_QUEUE_URL", self.queue_url.clone()),
            ("LANDFALL_SQS_ENDPOINT", self.moto.endpoint.clone()),
            // Only notifications may find files here: no listing of the landing prefix.
            ("LANDFALL_RECONCILE_ON_START", "false".into()),
            ("LANDFALL_RECONCILE_INTERVAL_S", "0".into()),
        ]
    }
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    redrive_policy: Option<String>,
) -> String {
    let mut request = sqs.create_queue().queue_name(name);
    if let Some(policy) = redrive_policy {
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    request
        .send()
        .await
        .unwrap_or_else(|error| panic!("creating queue {name}: {error:?}"))
        .queue_url()
        .expect("queue URL")
        .to_owned()
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue ARN")
}

fn as_pairs<'a>(overrides: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    overrides
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// An AWS S3 event notification for one created object, as S3 sends it (keys form-URL-encoded).
fn aws_notification(bucket: &str, key: &str, size: usize, etag: &str) -> String {
    let encoded: String = key
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect();
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
        "eventTime": "2026-05-01T06:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "landfall-ingester",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": size, "eTag": etag, "sequencer": "0065F1A2B3C4D5E6F7"}
        }
    }]})
    .to_string()
}

/// The same notification as an SNS topic delivers it to a subscribed queue (raw message
/// delivery off): the S3 event is a JSON string in `Message`.
fn sns_wrapped(notification: &str) -> String {
    serde_json::json!({
        "Type": "Notification",
        "MessageId": "6c1d1f5e-7a8b-5c2d-9e0f-1a2b3c4d5e6f",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:landfall-landing",
        "Subject": "Amazon S3 Notification",
        "Message": notification,
        "Timestamp": "2026-05-01T06:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "c2lnbmF0dXJl",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    })
    .to_string()
}

/// `127.0.0.1:<a free port>`.
fn free_address() -> String {
    let port = runtime::health::unused_local_port().expect("an unused port");
    format!("127.0.0.1:{port}")
}

/// One plain HTTP/1.1 request (`"GET /path"`) to `address` (`host:port` or `http://host:port`);
/// the whole response as text.
async fn http(address: &str, request_line: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|error| panic!("connecting to {address}: {error}"));
    let request = format!(
        "{request_line} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// Waits until `/readyz` answers with `status` (e.g. `"200 OK"`); returns the response.
async fn wait_for_readiness(health: &str, status: &str) -> String {
    wait_until(&format!("/readyz to answer {status}"), DEADLINE, || async {
        let response =
            tokio::time::timeout(Duration::from_secs(5), http(health, "GET /readyz")).await?;
        Ok(response
            .starts_with(&format!("HTTP/1.1 {status}"))
            .then_some(response))
    })
    .await
}

async fn wait_for_state(env: &TestEnv, key: &str, state: &str) {
    wait_until(&format!("{key} to be {state}"), DEADLINE, || async {
        let row = env
            .db
            .query_opt(
                "SELECT state FROM ops.files WHERE key = $1 ORDER BY file_id DESC LIMIT 1",
                &[&key],
            )
            .await?;
        Ok(row
            .map(|row| row.get::<_, String>(0))
            .filter(|found| found == state)
            .map(|_| ()))
    })
    .await
}

// ---------------------------------------------------------------------------------------------

/// The reports the ecommerce dataset exports for every batch (`datasets/ecommerce/exports.toml`).
const REPORTS: &[&str] = &[
    "agg_public_holiday",
    "agg_shipments",
    "best_performing_product",
    "sales_by_month",
    "top_products_by_revenue",
];

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Put object → S3 notification → SQS → ingester → ledger → file.landed → stager → (the batch
/// complete) transformer → quality-checker → exporter → reports in the same moto S3. All five
/// services run; only S3 and SQS are moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_notifications_through_sqs_run_the_pipeline_to_the_export() {
    let env = TestEnv::new().await;
    let aws = Aws::new(5).await;
    let orders_key = TestEnv::landing_key(DATE, "orders.csv");
    let reviews_key = TestEnv::landing_key(DATE, "reviews.csv");
    let shipments_key = TestEnv::landing_key(DATE, "shipment_deliveries.csv");
    let orders = data::orders_csv(1, 25);
    let reviews = data::reviews_csv(20);
    let shipments = data::shipments_csv(25);
    // Landed before the bucket notified anyone: only the SNS-wrapped message below announces it.
    let reviews_etag = aws.put(&reviews_key, reviews.clone()).await;
    aws.notify_queue().await;
    // Configuring the notification sent an s3:TestEvent, the queue's only message so far.
    wait_until("the s3:TestEvent in the queue", DEADLINE, || async {
        Ok((aws.counts(&aws.queue_url).await? == (1, 0)).then_some(()))
    })
    .await;

    // All five services, every one on moto's S3 (the exporter writes the reports there).
    let overrides = aws.overrides();
    let ingester = env.start_ingester(&as_pairs(&overrides));
    let stager = env.start_stager(&as_pairs(&overrides));
    let transformer = env.start_transformer(&as_pairs(&overrides));
    let checker = env.start_quality_checker(&as_pairs(&overrides));
    let exporter = env.start_exporter(&as_pairs(&overrides));
    for service in ["transformer", "quality-checker", "exporter"] {
        env.wait_consuming(service, DEADLINE).await;
    }

    // S3 → SQS → ingester → ledger → file.landed → stager.
    let orders_etag = aws.put(&orders_key, orders.clone()).await;
    wait_for_state(&env, &orders_key, "staged").await;
    // The s3:TestEvent and the Put notification were both deleted, not left to the DLQ.
    aws.wait_until_drained("the test event and the first notification")
        .await;
    assert_eq!(env.count("SELECT count(*) FROM ops.files").await, 1);

    // The second file through SNS, twice; and the first file's notification once more.
    let wrapped = sns_wrapped(&aws_notification(
        &aws.bucket,
        &reviews_key,
        reviews.len(),
        &reviews_etag,
    ));
    aws.send(&wrapped).await;
    aws.send(&wrapped).await;
    aws.send(&aws_notification(
        &aws.bucket,
        &orders_key,
        orders.len(),
        &format!("\"{orders_etag}\""),
    ))
    .await;
    wait_for_state(&env, &reviews_key, "staged").await;
    aws.wait_until_drained("the SNS-wrapped and duplicate notifications")
        .await;
    // Two of the three required sources: the batch waits for the third.
    wait_until("the batch waiting for shipment_deliveries", DEADLINE, || async {
        let waiting = env
            .try_count(
                "SELECT count(*) FROM ops.batches WHERE state = 'staging'
                    AND cardinality(sources_staged) = 2 AND sources_missing = '{shipment_deliveries}'",
            )
            .await?;
        Ok((waiting == 1).then_some(()))
    })
    .await;

    // The third required source completes the batch: it runs through every stage.
    let shipments_etag = aws.put(&shipments_key, shipments.clone()).await;
    let exported_at: String = wait_until("the batch exported", DEADLINE, || async {
        let row = env
            .db
            .query_opt(
                "SELECT exported_at::text FROM ops.batches
                  WHERE dataset = 'ecommerce' AND ingestion_date = $1::text::date
                    AND state = 'exported' AND exported_at IS NOT NULL",
                &[&DATE],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    })
    .await;
    assert!(!exported_at.is_empty());
    aws.wait_until_drained("the third file's notification")
        .await;

    let files = env
        .db
        .query(
            "SELECT key, bucket, state, discovered_by, etag FROM ops.files ORDER BY key",
            &[],
        )
        .await
        .unwrap();
    let files: Vec<[String; 5]> = files
        .iter()
        .map(|row| [0, 1, 2, 3, 4].map(|index| row.get::<_, String>(index)))
        .collect();
    let file = |key: &str, etag: &str| -> [String; 5] {
        [
            key.to_owned(),
            aws.bucket.clone(),
            "staged".into(),
            "notification".into(),
            etag.to_owned(),
        ]
    };
    assert_eq!(
        files,
        [
            file(&orders_key, &orders_etag),
            file(&reviews_key, &reviews_etag),
            file(&shipments_key, &shipments_etag),
        ]
    );
    for (event_type, expected) in [
        ("file.landed", 3),
        ("staging.loaded", 3),
        ("transform.completed", 1),
        ("quality.passed", 1),
        ("export.completed", 1),
    ] {
        assert_eq!(
            env.count(&format!(
                "SELECT count(*) FROM ops.outbox WHERE event_type = '{event_type}'"
            ))
            .await,
            expected,
            "{event_type} events"
        );
    }
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 25);
    assert_eq!(env.count("SELECT count(*) FROM staging.reviews").await, 20);
    assert_eq!(
        env.count("SELECT count(*) FROM staging.shipment_deliveries")
            .await,
        25
    );

    // The reports are in moto's bucket, each as the ledger of exports recorded it, beside its
    // manifest; nothing else was written there.
    let exports = env
        .db
        .query(
            "SELECT report, bucket, key, manifest_key, sha256, bytes FROM ops.exports
              WHERE dataset = 'ecommerce' AND ingestion_date = $1::text::date ORDER BY report",
            &[&DATE],
        )
        .await
        .unwrap();
    let reported: Vec<String> = exports.iter().map(|row| row.get(0)).collect();
    assert_eq!(reported, REPORTS);
    let mut expected_keys = Vec::new();
    for row in &exports {
        let report: String = row.get(0);
        let (bucket, key, manifest_key) = (
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, String>(3),
        );
        assert_eq!(bucket, aws.bucket, "{report}");
        assert_eq!(
            key,
            format!("analytics_export/ecommerce/{report}/ingestion_date={DATE}/{report}.csv")
        );
        let csv = aws
            .s3
            .get_object()
            .bucket(&aws.bucket)
            .key(&key)
            .send()
            .await
            .unwrap_or_else(|error| panic!("getting {key} from moto: {error:?}"))
            .body
            .collect()
            .await
            .expect("the report's body")
            .into_bytes();
        assert_eq!(csv.len() as i64, row.get::<_, i64>(5), "{key}: bytes");
        assert_eq!(hex_sha256(&csv), row.get::<_, String>(4), "{key}: sha256");
        assert!(
            csv.starts_with(b"ingestion_date,")
                && csv.windows(DATE.len()).any(|w| w == DATE.as_bytes()),
            "{key}: {}",
            String::from_utf8_lossy(&csv)
        );
        let manifest = aws
            .s3
            .get_object()
            .bucket(&aws.bucket)
            .key(&manifest_key)
            .send()
            .await
            .unwrap_or_else(|error| panic!("getting {manifest_key} from moto: {error:?}"))
            .body
            .collect()
            .await
            .expect("the manifest's body")
            .into_bytes();
        let manifest: serde_json::Value =
            serde_json::from_slice(&manifest).expect("the manifest is JSON");
        assert_eq!(
            manifest["sha256"],
            row.get::<_, String>(4).as_str(),
            "{manifest}"
        );
        expected_keys.push(key);
        expected_keys.push(manifest_key);
    }
    expected_keys.sort();
    let listed = aws
        .s3
        .list_objects_v2()
        .bucket(&aws.bucket)
        .prefix("analytics_export/")
        .send()
        .await
        .expect("listing the exports");
    let mut listed: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|object| object.key().map(str::to_owned))
        .collect();
    listed.sort();
    assert_eq!(listed, expected_keys);
    // The exports under analytics_export/ were not announced to the ingester (the notification
    // filters on the landing prefix), and nothing was dead-lettered.
    assert_eq!(env.count("SELECT count(*) FROM ops.files").await, 3);
    assert_eq!(
        aws.counts(&aws.dlq_url).await.unwrap(),
        (0, 0),
        "nothing dead-lettered"
    );
    ingester.stop().await;
    stager.stop().await;
    transformer.stop().await;
    checker.stop().await;
    exporter.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_message_goes_to_the_dead_letter_queue_and_slow_work_stays_hidden() {
    const VISIBILITY_S: u64 = 2;
    let env = TestEnv::new().await;
    let aws = Aws::new(2).await;
    let health = free_address();
    let mut overrides = aws.overrides();
    overrides.push((
        "LANDFALL_SQS_VISIBILITY_TIMEOUT_S",
        VISIBILITY_S.to_string(),
    ));
    // Short polls, so the poller notices at once when the queue disappears below.
    overrides.push(("LANDFALL_SQS_WAIT_TIME_S", "1".into()));
    overrides.push(("LANDFALL_HEALTH_ADDR", health.clone()));
    let ingester = env.start_ingester(&as_pairs(&overrides));

    // Not a notification: never deleted by the ingester; after two receives the queue's
    // redrive policy moves it, untouched, to the dead-letter queue.
    let foreign = "<xml>not a notification</xml>";
    aws.send(foreign).await;
    let moved = wait_until("the foreign message in the DLQ", DEADLINE, || async {
        let output = aws
            .sqs
            .receive_message()
            .queue_url(&aws.dlq_url)
            .wait_time_seconds(1)
            .send()
            .await?;
        Ok(output.messages.unwrap_or_default().into_iter().next())
    })
    .await;
    assert_eq!(moved.body(), Some(foreign));
    aws.sqs
        .delete_message()
        .queue_url(&aws.dlq_url)
        .receipt_handle(moved.receipt_handle().expect("receipt handle"))
        .send()
        .await
        .expect("deleting the dead-lettered message");
    aws.wait_until_drained("the foreign message moved").await;

    // Slow work: the ledger's per-object lock is held here, so recording the object waits.
    // The message must stay hidden meanwhile, well past its visibility timeout.
    let slow_key = TestEnv::landing_key(DATE, "notes.txt");
    let lock = format!("{}/{slow_key}", aws.bucket);
    env.db
        .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&lock])
        .await
        .unwrap();
    aws.send(&aws_notification(
        &aws.bucket,
        &slow_key,
        3,
        "0123456789abcdef",
    ))
    .await;
    wait_until("the slow message received", DEADLINE, || async {
        let blocked = env
            .count(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .await;
        Ok((blocked == 1).then_some(()))
    })
    .await;
    // The ingester is now inside the message's transaction. Three visibility timeouts later
    // the message must still be in flight, never visible again.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3 * VISIBILITY_S) {
        let counts = aws.counts(&aws.queue_url).await.unwrap();
        assert_eq!(
            counts,
            (0, 1),
            "(visible, in flight) after {:?}: the visibility was not extended",
            watched.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.count("SELECT count(*) FROM ops.files").await, 0);
    env.db
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&lock],
        )
        .await
        .unwrap();
    aws.wait_until_drained("the slow message handled").await;
    wait_for_state(&env, &slow_key, "ignored").await;
    assert_eq!(env.count("SELECT count(*) FROM ops.files").await, 1);
    assert_eq!(
        aws.counts(&aws.dlq_url).await.unwrap(),
        (0, 0),
        "only the foreign message was dead-lettered, and it was taken out"
    );

    // SQS goes away (moto forgets every queue): the poller keeps trying and /readyz says the
    // service is not ready; once the queue is back it recovers and handles the next message.
    wait_for_readiness(&health, "200 OK").await;
    let reset = http(&aws.moto.endpoint, "POST /moto-api/reset").await;
    assert!(reset.starts_with("HTTP/1.1 200"), "{reset}");
    let unready = wait_for_readiness(&health, "503 Service Unavailable").await;
    assert!(unready.contains("not consuming"), "{unready}");
    assert_eq!(
        create_queue(&aws.sqs, "landfall-notifications", None).await,
        aws.queue_url
    );
    wait_for_readiness(&health, "200 OK").await;
    let later_key = TestEnv::landing_key("2026-05-02", "notes.txt");
    aws.send(&aws_notification(
        &aws.bucket,
        &later_key,
        3,
        "fedcba9876543210",
    ))
    .await;
    wait_for_state(&env, &later_key, "ignored").await;
    aws.wait_until_drained("the message after SQS came back")
        .await;
    ingester.stop().await;
    env.cleanup().await;
}
