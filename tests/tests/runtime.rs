//! What every service does the same way, tested on the real binaries and servers: start,
//! health, readiness, drain on SIGTERM, configuration errors, migrations run concurrently,
//! trace context across hops, transient failures retried then dead-lettered.

use std::time::Duration;

use contract::Event;
use landfall_tests::{TestEnv, binary_path, data, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(60);
const SERVICES: &[&str] = &[
    "ingester",
    "stager",
    "transformer",
    "quality-checker",
    "exporter",
];

/// `GET path` on 127.0.0.1:port; the status code, or an error while nothing listens.
async fn http_status(port: u16, path: &str) -> anyhow::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("empty response"))?;
    Ok(status.parse()?)
}

fn free_port() -> u16 {
    runtime::health::unused_local_port().expect("an unused port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_binary_becomes_ready_and_drains_on_sigterm() {
    let env = TestEnv::new().await;
    let mut running = Vec::new();
    for service in SERVICES {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        running.push((
            service,
            port,
            env.spawn_binary(service, &[("LANDFALL_HEALTH_ADDR", &addr)]),
        ));
    }
    for (service, port, _) in &running {
        wait_until(
            &format!("{service} /readyz to answer 200"),
            DEADLINE,
            || async { Ok((http_status(*port, "/readyz").await? == 200).then_some(())) },
        )
        .await;
        assert_eq!(http_status(*port, "/healthz").await.unwrap(), 200);
        assert_eq!(http_status(*port, "/nope").await.unwrap(), 404);
    }
    // Each declared its quorum queue and dead-letter queue.
    let connection =
        lapin::Connection::connect(&env.amqp_url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
    for service in SERVICES {
        for queue in [
            format!("{}.{service}", env.prefix),
            format!("{}.{service}.dlq", env.prefix),
        ] {
            let channel = connection.create_channel().await.unwrap();
            let options = lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            channel
                .queue_declare(queue.as_str().into(), options, Default::default())
                .await
                .unwrap_or_else(|error| panic!("{queue} was not declared: {error}"));
        }
    }
    let _ = connection.close(200, "done".into()).await;
    for (service, _, child) in running {
        let status = child.terminate().await;
        assert!(
            status.success(),
            "{service} exited with {status} after SIGTERM"
        );
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_error_names_the_variable_and_hides_secrets() {
    let output = tokio::process::Command::new(binary_path("stager"))
        .env_clear()
        .env(
            "LANDFALL_DATABASE_URL",
            "postgres://landfall:s3cr3t@127.0.0.1:5432/x",
        )
        .env("LANDFALL_BUCKET", "lake")
        .env("LANDFALL_PREFETCH", "many")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LANDFALL_PREFETCH: 'many' is not a whole number"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_when_services_start_together() {
    let env = TestEnv::new().await;
    let datasets =
        runtime::datasets::Datasets::load(&env.common_config("test").datasets_dir).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = env.database_url.clone();
        let datasets = datasets.clone();
        tasks.push(tokio::spawn(async move {
            let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            runtime::db::migrate(&mut client, &datasets).await
        }));
    }
    let mut applied = 0;
    for task in tasks {
        applied += task
            .await
            .unwrap()
            .expect("migrating concurrently succeeds");
    }
    let migrations = env
        .count("SELECT count(*) FROM ops.schema_migrations")
        .await;
    assert_eq!(
        applied as i64, migrations,
        "each migration applied exactly once"
    );
    assert!(migrations >= 2);
    assert_eq!(
        env.count("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging'")
            .await,
        // One staging table per source of every bundled dataset.
        datasets
            .iter()
            .map(|dataset| dataset.sources.len() as i64)
            .sum::<i64>()
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_travels_with_every_event() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    env.put(
        &TestEnv::landing_key("2026-04-01", "orders.csv"),
        data::orders_csv(1, 5),
    )
    .await;
    spy.until("staging.loaded", DEADLINE, |seen| {
        seen.iter()
            .any(|event| event.event_type == "staging.loaded")
    })
    .await;

    let trace_of = |event_type: &str| {
        let index = spy
            .seen
            .iter()
            .position(|event| event.event_type == event_type)
            .unwrap();
        let traceparent = spy.headers[index]
            .get("traceparent")
            .cloned()
            .unwrap_or_else(|| panic!("{event_type} has a traceparent"));
        let parts: Vec<String> = traceparent.split('-').map(str::to_owned).collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        (parts[1].clone(), parts[2].clone())
    };
    let (landed_trace, landed_span) = trace_of("file.landed");
    let (loaded_trace, loaded_span) = trace_of("staging.loaded");
    assert_eq!(
        landed_trace, loaded_trace,
        "the stager continued the ingester's trace"
    );
    assert_ne!(landed_span, loaded_span);
    let ledger_trace: String = env
        .db
        .query_one("SELECT trace_id FROM ops.files", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger_trace, landed_trace);
    let landed = spy
        .seen
        .iter()
        .find(|event| event.event_type == "file.landed")
        .unwrap();
    let loaded = spy
        .seen
        .iter()
        .find(|event| event.event_type == "staging.loaded")
        .unwrap();
    assert_eq!(loaded.causation_id, Some(landed.event_id));
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_then_dead_lettered_and_the_service_keeps_running() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    // This stager's S3 endpoint is unreachable: every attempt fails transiently.
    let stager = env.start_stager(&[
        ("LANDFALL_S3_ENDPOINT", "http://127.0.0.1:9"),
        ("LANDFALL_RETRY_ATTEMPTS", "3"),
    ]);
    env.put(
        &TestEnv::landing_key("2026-04-02", "orders.csv"),
        data::orders_csv(1, 5),
    )
    .await;
    let message = wait_until(
        "the file.landed in the stager's dead-letter queue",
        DEADLINE,
        || async { env.take_message("stager.dlq").await },
    )
    .await;
    let properties = &message.delivery.properties;
    assert_eq!(
        runtime::broker::header_text(properties, runtime::broker::ERROR_KIND_HEADER).as_deref(),
        Some("transient")
    );
    let reason = runtime::broker::header_text(properties, runtime::broker::REASON_HEADER).unwrap();
    assert!(
        reason.starts_with(
            "fetching s3://lake/landing/ecommerce/ingestion_date=2026-04-02/orders.csv: "
        ),
        "{reason}"
    );
    match contract::Envelope::decode(&message.delivery.data)
        .unwrap()
        .payload
    {
        Event::FileLanded(landed) => assert_eq!(landed.source, "orders"),
        other => panic!("unexpected dead letter {other:?}"),
    }
    // Nothing was half-stored, and the stager is still serving.
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE state = 'landed'")
            .await,
        1
    );
    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_files_stage_like_plain_ones_and_status_shows_them() {
    use std::io::Write as _;
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let orders = data::orders_csv(1, 40);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(orders.as_bytes()).unwrap();
    let key = TestEnv::landing_key("2026-04-03", "orders.csv.gz");
    env.put(&key, encoder.finish().unwrap()).await;
    env.put(
        &TestEnv::landing_key("2026-04-03", "reviews.csv"),
        "review,product_id\n5,1\n".to_owned(),
    )
    .await;
    wait_until("both files staged", DEADLINE, || async {
        Ok((env
            .try_count("SELECT count(*) FROM ops.files WHERE state = 'staged'")
            .await?
            == 2)
            .then_some(()))
    })
    .await;
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 40);

    let output = env.landfall(&["status", "--date", "2026-04-03"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = String::from_utf8_lossy(&output.stdout);
    let orders_line = status
        .lines()
        .find(|line| line.contains("orders") && line.contains("staged"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(orders_line.contains(" 40 "), "{orders_line}");
    assert!(status.contains("Batches"), "{status}");
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

/// The ingester applies the notifications waiting for it in batches (one transaction, a
/// savepoint each): one that cannot be applied is rolled back alone, dead-lettered with its
/// reason, and every other one is recorded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_message_in_a_batch_is_dead_lettered_alone_and_the_rest_commit() {
    let env = TestEnv::new().await;
    // Declare the queue, then stop, so the notifications below wait for the next start.
    let ingester = env.start_ingester(&[("LANDFALL_CONCURRENCY", "1")]);
    env.wait_consuming("ingester", DEADLINE).await;
    ingester.stop().await;

    let dates: Vec<String> = (1..=12).map(|day| format!("2026-03-{day:02}")).collect();
    for (index, date) in dates.iter().enumerate() {
        env.put(&TestEnv::landing_key(date, "orders.csv"), "order_id\n1\n")
            .await;
        if index == 5 {
            env.publish_raw(
                "s3",
                "lake.created",
                b"<xml>not a notification</xml>",
                lapin::BasicProperties::default(),
            )
            .await;
        }
    }
    let ingester = env.start_ingester(&[("LANDFALL_CONCURRENCY", "1")]);
    let dead = wait_until("the bad message in ingester.dlq", DEADLINE, || async {
        env.take_message("ingester.dlq").await
    })
    .await;
    let reason =
        runtime::broker::header_text(&dead.delivery.properties, runtime::broker::REASON_HEADER)
            .expect("reason header");
    assert!(reason.contains("not an S3 event notification"), "{reason}");
    wait_until("the twelve files in the ledger", DEADLINE, || async {
        let landed = env.try_count("SELECT count(*) FROM ops.files").await?;
        Ok((landed == 12).then_some(()))
    })
    .await;
    let rows = env
        .query_text(
            "SELECT ingestion_date::text, count(*)::text FROM ops.files
              GROUP BY 1 ORDER BY 1",
        )
        .await;
    let expected: Vec<Vec<String>> = dates
        .iter()
        .map(|date| vec![date.clone(), "1".to_owned()])
        .collect();
    assert_eq!(rows, expected, "every notification recorded exactly once");
    assert_eq!(
        env.count("SELECT count(*) FROM ops.outbox WHERE event_type = 'file.landed'")
            .await,
        12
    );
    ingester.stop().await;
    env.cleanup().await;
}
