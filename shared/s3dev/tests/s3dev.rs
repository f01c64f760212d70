//! End-to-end tests: a real `aws-sdk-s3` client against `S3DevServer`, with
//! notifications checked in the RabbitMQ running at
//! `amqp://guest:guest@127.0.0.1:5672/%2f` (override with `S3DEV_TEST_AMQP_URL`).
//!
//! Every test uses its own server, root folder, exchange and exclusive queue,
//! so tests run in parallel and never see each other's events. Events are
//! fetched with `basic_get` right after the S3 call returns: no sleeps, because
//! the server publishes (with confirms) before answering.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, anyhow, bail, ensure};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, EncodingType};
use lapin::options::ExchangeDeclareOptions;
use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use s3dev::{NotifyConfig, S3DevConfig, S3DevServer};
use serde_json::Value;

const ACCESS_KEY: &str = "s3dev-test";
const SECRET_KEY: &str = "s3dev-test-secret";
const ROUTING_KEY: &str = "s3.events";

fn amqp_url() -> String {
    std::env::var("S3DEV_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// One server plus a private queue bound to its private exchange.
struct Harness {
    server: Option<S3DevServer>,
    client: Client,
    root: PathBuf,
    exchange: String,
    queue: String,
    channel: Channel,
    _connection: Connection,
}

impl Harness {
    async fn start() -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(unique("s3dev-test"));
        let exchange = unique("s3dev-test-exchange");
        let server = S3DevServer::start(S3DevConfig {
            root: root.clone(),
            listen: "127.0.0.1:0".parse()?,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            region: "us-east-1".into(),
            notify: Some(NotifyConfig {
                amqp_url: amqp_url(),
                exchange: exchange.clone(),
                routing_key: ROUTING_KEY.into(),
            }),
        })
        .await
        .context("starting s3dev")?;

        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .context("test connection to RabbitMQ")?;
        let channel = connection.create_channel().await?;
        let queue = unique("s3dev-test-queue");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        // The server declared the exchange at start, so we can bind right away.
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let client = client(&server.endpoint_url());
        Ok(Self {
            server: Some(server),
            client,
            root,
            exchange,
            queue,
            channel,
            _connection: connection,
        })
    }

    fn server(&self) -> &S3DevServer {
        self.server.as_ref().expect("server is running")
    }

    /// The next event in the private queue, if any.
    async fn next_event(&self) -> anyhow::Result<Option<Value>> {
        let message = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await?;
        let Some(message) = message else {
            return Ok(None);
        };
        let delivery = message.delivery;
        ensure!(
            delivery.routing_key.as_str() == ROUTING_KEY,
            "routing key {}",
            delivery.routing_key
        );
        let content_type = delivery
            .properties
            .content_type()
            .as_ref()
            .map(|ct| ct.as_str().to_owned());
        ensure!(
            content_type.as_deref() == Some("application/json"),
            "content type {content_type:?}"
        );
        ensure!(
            *delivery.properties.delivery_mode() == Some(2),
            "not persistent"
        );
        Ok(Some(serde_json::from_slice(&delivery.data)?))
    }

    /// Exactly one event must be waiting.
    async fn only_event(&self) -> anyhow::Result<Value> {
        let event = self
            .next_event()
            .await?
            .ok_or_else(|| anyhow!("no event in the queue"))?;
        if let Some(extra) = self.next_event().await? {
            bail!("more than one event; the second is {extra}");
        }
        Ok(event)
    }

    async fn assert_no_event(&self) -> anyhow::Result<()> {
        if let Some(event) = self.next_event().await? {
            bail!("unexpected event {event}");
        }
        Ok(())
    }

    async fn create_bucket(&self) -> anyhow::Result<String> {
        let bucket = unique("b");
        self.client.create_bucket().bucket(&bucket).send().await?;
        Ok(bucket)
    }

    async fn finish(mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.channel
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
        self.channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
        tokio::fs::remove_dir_all(&self.root).await?;
        Ok(())
    }
}

/// Removes the root folder even when a test fails half-way.
impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .behavior_version(BehaviorVersion::latest())
        .build();
    Client::from_conf(config)
}

fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

fn record(event: &Value) -> &Value {
    &event["Records"][0]
}

#[tokio::test(flavor = "multi_thread")]
async fn put_list_get_with_one_notification_per_put() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let bucket = h.create_bucket().await?;
    h.assert_no_event().await?;

    let key = "landing/2026/11/a file+v1.csv";
    let body = b"id,name\n1,alpha\n2,beta\n".to_vec();
    let put = h
        .client
        .put_object()
        .bucket(&bucket)
        .key(key)
        .content_type("text/csv")
        .metadata("source-system", "crm")
        .body(ByteStream::from(body.clone()))
        .send()
        .await?;
    let etag = put.e_tag().context("put returns an ETag")?.to_owned();

    // The event is already in RabbitMQ when put_object returns.
    let event = h.only_event().await?;
    assert_eq!(event["EventName"], "s3:ObjectCreated:Put");
    assert_eq!(event["Key"], format!("{bucket}/{key}"));
    let rec = record(&event);
    assert_eq!(rec["eventName"], "s3:ObjectCreated:Put");
    assert_eq!(rec["eventSource"], "minio:s3");
    assert_eq!(rec["userIdentity"]["principalId"], ACCESS_KEY);
    assert_eq!(rec["s3"]["bucket"]["name"], bucket.as_str());
    assert_eq!(rec["s3"]["bucket"]["arn"], format!("arn:aws:s3:::{bucket}"));
    let object = &rec["s3"]["object"];
    assert_eq!(object["key"], "landing%2F2026%2F11%2Fa+file%2Bv1.csv");
    assert_eq!(object["size"], body.len());
    assert_eq!(object["eTag"], unquote(&etag));
    assert_eq!(object["contentType"], "text/csv");
    assert_eq!(object["userMetadata"]["X-Amz-Meta-Source-System"], "crm");
    assert_eq!(rec["source"]["host"], "127.0.0.1");
    assert!(
        rec["source"]["userAgent"]
            .as_str()
            .is_some_and(|ua| !ua.is_empty())
    );

    // A second put yields exactly one more event, with a larger sequencer.
    h.client
        .put_object()
        .bucket(&bucket)
        .key("landing/other.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await?;
    let second = h.only_event().await?;
    let second_object = &record(&second)["s3"]["object"];
    // aws-sdk-s3 sends `application/octet-stream` when no type is set.
    assert_eq!(second_object["contentType"], "application/octet-stream");
    assert!(
        second_object["sequencer"].as_str() > object["sequencer"].as_str(),
        "sequencer increases"
    );

    let listed = h.client.list_objects_v2().bucket(&bucket).send().await?;
    let entries: Vec<(String, String)> = listed
        .contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap_or_default().to_owned(),
                o.e_tag().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].0, key);
    assert_eq!(entries[0].1, etag, "listing carries the put's ETag");
    assert!(!entries[1].1.is_empty());

    let encoded = h
        .client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("landing/2026/")
        .encoding_type(EncodingType::Url)
        .send()
        .await?;
    let encoded_keys: Vec<&str> = encoded.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(encoded_keys, ["landing/2026/11/a+file%2Bv1.csv"]);

    let v1 = h.client.list_objects().bucket(&bucket).send().await?;
    let v1_etags: Vec<&str> = v1.contents().iter().filter_map(|o| o.e_tag()).collect();
    assert_eq!(v1_etags.first().copied(), Some(etag.as_str()));

    let got = h
        .client
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await?;
    assert_eq!(got.content_type(), Some("text/csv"));
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    let bytes = got.body.collect().await?.into_bytes();
    assert_eq!(bytes.as_ref(), body.as_slice());

    h.assert_no_event().await?;
    h.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_upload_over_existing_object_notifies_with_size_and_etag() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let bucket = h.create_bucket().await?;
    let key = "big/export.csv";

    // A single-part object first: its stored checksum must not survive the
    // multipart overwrite (or the checksum-validating GET below would fail).
    h.client
        .put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from_static(b"old"))
        .send()
        .await?;
    h.only_event().await?;

    let part1 = vec![b'a'; 5 * 1024 * 1024];
    let part2 = b"tail\n".to_vec();
    let upload = h
        .client
        .create_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .content_type("text/csv")
        .send()
        .await?;
    let upload_id = upload.upload_id().context("upload id")?;
    let mut parts = Vec::new();
    for (number, data) in [(1, &part1), (2, &part2)] {
        let uploaded = h
            .client
            .upload_part()
            .bucket(&bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(data.clone()))
            .send()
            .await?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(uploaded.e_tag().context("part ETag")?)
                .build(),
        );
    }
    h.assert_no_event().await?;
    let completed = h
        .client
        .complete_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await?;
    let etag = completed
        .e_tag()
        .context("complete returns an ETag")?
        .to_owned();
    assert!(unquote(&etag).ends_with("-2"), "multipart ETag {etag}");

    let event = h.only_event().await?;
    assert_eq!(
        event["EventName"],
        "s3:ObjectCreated:CompleteMultipartUpload"
    );
    let object = &record(&event)["s3"]["object"];
    let total = part1.len() + part2.len();
    assert_eq!(object["size"], total);
    assert_eq!(object["eTag"], unquote(&etag));
    assert_eq!(object["contentType"], "text/csv");
    assert_eq!(object["key"], "big%2Fexport.csv");

    let head = h
        .client
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await?;
    assert_eq!(head.content_length(), Some(i64::try_from(total)?));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    let listed = h.client.list_objects_v2().bucket(&bucket).send().await?;
    assert_eq!(listed.contents()[0].e_tag(), Some(etag.as_str()));
    assert_eq!(listed.contents()[0].size(), Some(i64::try_from(total)?));

    let got = h
        .client
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await?;
    let bytes = got.body.collect().await?.into_bytes();
    assert_eq!(bytes.len(), total);
    assert!(bytes.ends_with(b"tail\n"));

    h.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_and_delete_notify() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let bucket = h.create_bucket().await?;
    h.client
        .put_object()
        .bucket(&bucket)
        .key("src/a.csv")
        .content_type("text/csv")
        .body(ByteStream::from_static(b"x,y\n"))
        .send()
        .await?;
    h.only_event().await?;

    h.client
        .copy_object()
        .bucket(&bucket)
        .key("dst/a.csv")
        .copy_source(format!("{bucket}/src/a.csv"))
        .send()
        .await?;
    let copied = h.only_event().await?;
    assert_eq!(copied["EventName"], "s3:ObjectCreated:Copy");
    assert_eq!(record(&copied)["s3"]["object"]["size"], 4);
    assert_eq!(record(&copied)["s3"]["object"]["contentType"], "text/csv");

    h.client
        .delete_object()
        .bucket(&bucket)
        .key("dst/a.csv")
        .send()
        .await?;
    let deleted = h.only_event().await?;
    assert_eq!(deleted["EventName"], "s3:ObjectRemoved:Delete");
    assert_eq!(deleted["Key"], format!("{bucket}/dst/a.csv"));
    let object = &record(&deleted)["s3"]["object"];
    assert_eq!(object["key"], "dst%2Fa.csv");
    assert!(
        object.get("size").is_none() && object.get("eTag").is_none(),
        "{object}"
    );

    let err = h
        .client
        .head_object()
        .bucket(&bucket)
        .key("dst/a.csv")
        .send()
        .await
        .expect_err("deleted");
    assert!(err.into_service_error().is_not_found());

    h.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_keys_the_file_system_cannot_store() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let bucket = h.create_bucket().await?;

    for key in ["a/../b", "..", "x//y", "dir/"] {
        let err = h
            .client
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from_static(b"nope"))
            .send()
            .await
            .expect_err(key);
        assert_eq!(err.code(), Some("InvalidArgument"), "{key}: {err:?}");
        let err = h
            .client
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect_err(key);
        assert_eq!(err.code(), Some("InvalidArgument"), "{key}: {err:?}");
    }

    // An object and a "folder" with the same name cannot coexist on disk.
    h.client
        .put_object()
        .bucket(&bucket)
        .key("a")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await?;
    h.only_event().await?;
    let err = h
        .client
        .put_object()
        .bucket(&bucket)
        .key("a/b")
        .body(ByteStream::from_static(b"2"))
        .send()
        .await
        .expect_err("a is a file");
    assert_eq!(err.code(), Some("InvalidArgument"), "{err:?}");
    h.client
        .put_object()
        .bucket(&bucket)
        .key("p/q")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await?;
    h.only_event().await?;
    let err = h
        .client
        .put_object()
        .bucket(&bucket)
        .key("p")
        .body(ByteStream::from_static(b"2"))
        .send()
        .await
        .expect_err("p is a folder");
    assert_eq!(err.code(), Some("InvalidArgument"), "{err:?}");
    // Deleting the folder name is a no-op (204), as in S3, and keeps p/q.
    h.client
        .delete_object()
        .bucket(&bucket)
        .key("p")
        .send()
        .await?;
    assert_eq!(
        h.only_event().await?["EventName"],
        "s3:ObjectRemoved:Delete"
    );
    h.client
        .head_object()
        .bucket(&bucket)
        .key("p/q")
        .send()
        .await?;

    // Too long for s3s-fs's sidecar file names.
    let err = h
        .client
        .put_object()
        .bucket(&bucket)
        .key("k".repeat(300))
        .body(ByteStream::from_static(b"3"))
        .send()
        .await
        .expect_err("too long");
    assert_eq!(err.code(), Some("KeyTooLongError"), "{err:?}");

    // s3s-fs would silently create the bucket.
    let err = h
        .client
        .put_object()
        .bucket(unique("missing"))
        .key("k")
        .body(ByteStream::from_static(b"4"))
        .send()
        .await
        .expect_err("no bucket");
    assert_eq!(err.code(), Some("NoSuchBucket"), "{err:?}");

    h.assert_no_event().await?;
    h.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_notifications_are_dropped() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let bucket = h.create_bucket().await?;

    h.server().set_notifications_enabled(false);
    h.client
        .put_object()
        .bucket(&bucket)
        .key("lost.csv")
        .body(ByteStream::from_static(b"a\n"))
        .send()
        .await?;
    h.assert_no_event().await?;

    h.server().set_notifications_enabled(true);
    h.client
        .put_object()
        .bucket(&bucket)
        .key("seen.csv")
        .body(ByteStream::from_static(b"b\n"))
        .send()
        .await?;
    let event = h.only_event().await?;
    assert_eq!(event["Key"], format!("{bucket}/seen.csv"));

    h.finish().await
}

/// Force-closes the server's AMQP connection (found by its connection name,
/// which contains our private exchange) and checks the next put still
/// delivers its event. Skipped when `rabbitmqctl` is not usable here.
#[tokio::test(flavor = "multi_thread")]
async fn reconnects_after_the_broker_drops_the_connection() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let bucket = h.create_bucket().await?;
    let name = format!("s3dev:{}", h.exchange);

    let Some(pid) = connection_pid(&name)? else {
        eprintln!("skipping: rabbitmqctl unavailable or connection {name} not listed");
        return h.finish().await;
    };
    close_connection(&pid)?;

    h.client
        .put_object()
        .bucket(&bucket)
        .key("after-restart.csv")
        .body(ByteStream::from_static(b"c\n"))
        .send()
        .await?;
    let event = h.only_event().await?;
    assert_eq!(event["Key"], format!("{bucket}/after-restart.csv"));

    h.finish().await
}

/// When the broker keeps refusing the event (here: the connection is dropped
/// and the exchange replaced by one of another type, so re-declaring it on
/// reconnect fails), the client gets an `InternalError` after the bounded
/// retries instead of a silent success. Skipped without `rabbitmqctl`.
#[tokio::test(flavor = "multi_thread")]
async fn unpublishable_event_fails_the_request() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let bucket = h.create_bucket().await?;
    let name = format!("s3dev:{}", h.exchange);
    let Some(pid) = connection_pid(&name)? else {
        eprintln!("skipping: rabbitmqctl unavailable or connection {name} not listed");
        return h.finish().await;
    };
    h.channel
        .exchange_delete(h.exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await?;
    h.channel
        .exchange_declare(
            h.exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    close_connection(&pid)?;

    // No SDK retries: one S3 request already spans all publish retries.
    let config = aws_sdk_s3::Config::builder()
        .endpoint_url(h.server().endpoint_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .behavior_version(BehaviorVersion::latest())
        .build();
    let err = Client::from_conf(config)
        .put_object()
        .bucket(&bucket)
        .key("unannounced.csv")
        .body(ByteStream::from_static(b"d\n"))
        .send()
        .await
        .expect_err("event cannot be published");
    assert_eq!(err.code(), Some("InternalError"), "{err:?}");
    assert!(
        err.message().is_some_and(|m| m.contains("notification")),
        "{err:?}"
    );

    h.finish().await
}

/// Makes the broker close one connection, as a broker restart would.
fn close_connection(pid: &str) -> anyhow::Result<()> {
    let status = Command::new("rabbitmqctl")
        .args([
            "close_connection",
            pid,
            "s3dev test: simulated broker restart",
        ])
        .status()
        .context("running rabbitmqctl close_connection")?;
    ensure!(status.success(), "rabbitmqctl close_connection failed");
    Ok(())
}

/// The Erlang pid of the connection whose client properties mention `name`.
fn connection_pid(name: &str) -> anyhow::Result<Option<String>> {
    let output = match Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "--no-table-headers",
            "--quiet",
            "pid",
            "client_properties",
        ])
        .output()
    {
        Ok(output) if output.status.success() => output,
        _ => return Ok(None),
    };
    let text = String::from_utf8(output.stdout)?;
    Ok(text
        .lines()
        .find(|line| line.contains(name))
        .and_then(|line| line.split_whitespace().next())
        .map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread")]
async fn works_without_notifications_and_shuts_down() -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(unique("s3dev-test"));
    let server = S3DevServer::start(S3DevConfig {
        root: root.clone(),
        listen: "0.0.0.0:0".parse()?,
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        region: "us-east-1".into(),
        notify: None,
    })
    .await?;
    let endpoint = server.endpoint_url();
    let port = server.local_addr().port();
    assert_eq!(endpoint, format!("http://127.0.0.1:{port}"));
    let client = client(&endpoint);
    client.create_bucket().bucket("plain").send().await?;
    client
        .put_object()
        .bucket("plain")
        .key("x.txt")
        .body(ByteStream::from_static(b"hi"))
        .send()
        .await?;
    let buckets = client.list_buckets().send().await?;
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["plain"]);

    // Wrong secret: SigV4 is really checked.
    let config = aws_sdk_s3::Config::builder()
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, "wrong", None, None, "test"))
        .force_path_style(true)
        .behavior_version(BehaviorVersion::latest())
        .build();
    let err = Client::from_conf(config)
        .list_buckets()
        .send()
        .await
        .expect_err("bad signature");
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err:?}");

    server.shutdown().await;
    let after = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(after.is_err(), "listener closed after shutdown");
    tokio::fs::remove_dir_all(&root).await?;
    Ok(())
}
