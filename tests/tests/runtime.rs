//! What every service does the same way, tested on the real binaries and servers: start,
//! health, readiness, drain on SIGTERM (also with a message in hand), configuration errors,
//! migrations run concurrently (and over a database of the layout before 0013), trace context
//! across hops, transient failures retried then dead-lettered, and the queue topology as the
//! broker holds it.

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

/// The services that never touch S3 need none of its settings; an unknown log format stops a
/// service at start instead of silently logging text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_that_never_touch_s3_start_without_a_bucket_and_a_bad_log_format_stops_them() {
    let env = TestEnv::new().await;
    let no_s3 = [
        ("LANDFALL_BUCKET", ""),
        ("LANDFALL_S3_ENDPOINT", ""),
        ("LANDFALL_S3_ACCESS_KEY_ID", ""),
        ("LANDFALL_S3_SECRET_ACCESS_KEY", ""),
    ];
    let mut running = Vec::new();
    for service in ["transformer", "quality-checker"] {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut overrides = no_s3.to_vec();
        overrides.push(("LANDFALL_HEALTH_ADDR", &addr));
        running.push((service, port, env.spawn_binary(service, &overrides)));
    }
    for (service, port, _) in &running {
        wait_until(
            &format!("{service} without LANDFALL_BUCKET: /readyz to answer 200"),
            DEADLINE,
            || async { Ok((http_status(*port, "/readyz").await? == 200).then_some(())) },
        )
        .await;
    }
    for (service, _, child) in running {
        let status = child.terminate().await;
        assert!(status.success(), "{service} exited with {status}");
    }

    // The operator commands that only run SQL get past their configuration to the database.
    let landfall = |args: &'static [&'static str]| {
        let mut vars = env.vars();
        for (name, _) in no_s3 {
            vars.remove(name);
        }
        async move {
            tokio::process::Command::new(binary_path("landfall"))
                .args(args)
                .env_clear()
                .envs(vars)
                .env("RUST_LOG", "warn")
                .output()
                .await
                .unwrap()
        }
    };
    for args in [
        &[
            "transform",
            "--dataset",
            "ecommerce",
            "--date",
            "2026-05-01",
        ][..],
        &["replay", "--dataset", "ecommerce", "--date", "2026-05-01"][..],
    ] {
        let output = landfall(args).await;
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            printed.contains("batch ecommerce/2026-05-01 has no staged files")
                && !printed.contains("LANDFALL_BUCKET"),
            "landfall {args:?}:\n{printed}"
        );
    }

    let output = tokio::process::Command::new(binary_path("transformer"))
        .env_clear()
        .envs(env.vars())
        .env("LANDFALL_LOG_FORMAT", "jsonl")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LANDFALL_LOG_FORMAT: 'jsonl' is not a log format; use text or json"),
        "{stderr}"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_when_services_start_together() {
    let env = TestEnv::new().await;
    let datasets = catalog::Datasets::load(&env.common_config("test").datasets_dir).unwrap();
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
    // One staging table per source of every bundled dataset, and its view.
    let sources = datasets
        .iter()
        .map(|dataset| dataset.sources.len() as i64)
        .sum::<i64>();
    assert_eq!(
        env.count(
            "SELECT count(*) FROM information_schema.tables
              WHERE table_schema = 'staging_rows' AND table_type = 'BASE TABLE'"
        )
        .await,
        sources
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM information_schema.tables
              WHERE table_schema = 'staging' AND table_type = 'VIEW'"
        )
        .await,
        sources
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM information_schema.tables
              WHERE table_schema = 'staging' AND table_type <> 'VIEW'"
        )
        .await,
        0
    );
    env.cleanup().await;
}

/// A database migrated before `0013_staging_rows` has its staged rows in tables
/// `staging.<table>`. Migrating it moves each table, rows, indexes and all, into `staging_rows`,
/// a view takes its name, and the snapshot views are made again over the views. The old
/// layout is made here by undoing 0013 on a migrated database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_a_database_of_the_old_layout_moves_its_staging_tables() {
    let env = TestEnv::new().await;
    let datasets = env.datasets();
    let mut client = env.migrated_client().await;
    // Back to the layout before 0013: the tables in `staging`, the snapshot views over them as
    // they were (same definition, same comment), no `staging_rows`, 0013 not applied.
    client
        .batch_execute(
            "DO $$
             DECLARE
                 staged record;
                 snapshot_sql text;
                 snapshot_comment text;
             BEGIN
                 FOR staged IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE n.nspname = 'staging_rows' AND c.relkind = 'r' LOOP
                     snapshot_sql := NULL;
                     SELECT pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class')
                       INTO snapshot_sql, snapshot_comment
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'snapshot' AND c.relname = staged.relname;
                     EXECUTE format('DROP VIEW staging.%I CASCADE', staged.relname);
                     EXECUTE format('ALTER TABLE staging_rows.%I SET SCHEMA staging', staged.relname);
                     IF snapshot_sql IS NOT NULL THEN
                         EXECUTE format('CREATE VIEW snapshot.%I AS %s', staged.relname, snapshot_sql);
                         EXECUTE format('COMMENT ON VIEW snapshot.%I IS %L', staged.relname, snapshot_comment);
                     END IF;
                 END LOOP;
             END
             $$;
             DROP SCHEMA staging_rows;
             -- The index on each table's _file_id of those versions.
             CREATE INDEX orders_file_brin ON staging.orders USING brin (_file_id) WITH (autosummarize = on);
             DROP FUNCTION ops.apply_staging_rows_grants();
             DROP TABLE ops.copy_leftovers;
             DELETE FROM ops.schema_migrations WHERE name LIKE '0013%';
             SELECT ops.apply_service_grants();",
        )
        .await
        .expect("undoing 0013");
    let relkind = |schema: &'static str| {
        let db = &env.db;
        async move {
            db
                .query_opt(
                    "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = $1 AND c.relname = 'orders'",
                    &[&schema],
                )
                .await
                .unwrap()
                .map(|row| row.get::<_, String>(0))
        }
    };
    assert_eq!(relkind("staging").await.as_deref(), Some("r"));
    // A staged file's rows, as the old stager wrote them.
    env.stage_file("ecommerce", "orders", "2026-03-01", 7).await;
    client
        .batch_execute(
            "INSERT INTO staging.orders (_file_id, _line, _batch, order_id, customer_id, order_date,
                                         product_id, unit_price, quantity, total_price)
             SELECT 7, i + 1, DATE '2026-03-01', i, 1, DATE '2026-03-01', 1, 1.00, 1, 1.00
               FROM generate_series(1, 3) AS i;",
        )
        .await
        .unwrap();

    assert_eq!(
        runtime::db::migrate(&mut client, &datasets).await.unwrap(),
        1,
        "0013 applied"
    );
    assert_eq!(relkind("staging_rows").await.as_deref(), Some("r"));
    assert_eq!(relkind("staging").await.as_deref(), Some("v"));
    assert_eq!(
        env.count("SELECT count(*) FROM staging_rows.orders").await,
        3
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 3);
    // Every table moved, none is left in `staging`; the BRIN index on `_batch` went along, the
    // one on `_file_id` (every query of a file's rows names its batch too) is gone.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'staging' AND c.relkind <> 'v'"
        )
        .await,
        0
    );
    let indexes = |schema: &'static str, table: &'static str| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = $2
                      ORDER BY indexname",
                    &[&schema, &table],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        indexes("staging_rows", "orders").await,
        ["orders_batch_brin"]
    );
    // Nothing reads the shipment facts by batch: only their key is indexed
    // (datasets/ecommerce/migrations).
    assert_eq!(
        indexes("warehouse", "fact_shipments").await,
        ["fact_shipments_pkey"]
    );
    // The snapshot view reads the view, not the table.
    let snapshot: String = client
        .query_one("SELECT pg_get_viewdef('snapshot.orders'::regclass)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        snapshot.contains("staging.orders") && !snapshot.contains("staging_rows"),
        "{snapshot}"
    );
    // The grants of the new layout: readers read the view, not the table.
    client
        .batch_execute("SET ROLE landfall_transformer")
        .await
        .unwrap();
    client
        .batch_execute("SELECT count(*) FROM staging.orders")
        .await
        .expect("the transformer reads the view");
    let refused = client
        .batch_execute("SELECT count(*) FROM staging_rows.orders")
        .await
        .expect_err("the transformer does not read the table");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    client.batch_execute("RESET ROLE").await.unwrap();
    // And once moved, migrating again changes nothing.
    assert_eq!(
        runtime::db::migrate(&mut client, &datasets).await.unwrap(),
        0
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 3);
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

/// `rabbitmqctl <args> --formatter json`, parsed (the broker's own view, not the client's).
async fn rabbitmqctl(args: &[&str]) -> serde_json::Value {
    let output = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .args(["--quiet", "--formatter", "json"])
        .output()
        .await
        .expect("running rabbitmqctl (the tests run as root beside the broker)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "rabbitmqctl {args:?} printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The queues of this test's prefix, by name, as `rabbitmqctl list_queues` reports them with
/// `columns`.
async fn queues_of(
    env: &TestEnv,
    columns: &[&str],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut args = vec!["list_queues", "name"];
    args.extend_from_slice(columns);
    let listed = rabbitmqctl(&args).await;
    listed
        .as_array()
        .expect("list_queues prints an array")
        .iter()
        .filter_map(|queue| {
            let name = queue["name"].as_str()?;
            name.starts_with(&format!("{}.", env.prefix))
                .then(|| (name.to_owned(), queue.clone()))
        })
        .collect()
}

/// A queue argument's value from `list_queues arguments` (printed as `[[name, type, value], …]`,
/// or as an object by some RabbitMQ versions).
fn queue_argument(queue: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    match &queue["arguments"] {
        serde_json::Value::Object(map) => map.get(name).cloned(),
        serde_json::Value::Array(entries) => entries.iter().find_map(|entry| {
            let entry = entry.as_array()?;
            (entry.first()?.as_str()? == name).then(|| entry.last().cloned().unwrap_or_default())
        }),
        _ => None,
    }
}

/// The topology as the broker holds it: every consumer queue is a durable quorum queue that
/// dead-letters to `<prefix>.dlx` with its own name as routing key, with the configured
/// delivery limit, and no policy overrides that; each dead-letter queue is durable, quorum and
/// bound to the DLX with that routing key. Then the limit is shown to work: a message
/// requeued again and again is delivered once plus `limit` redeliveries and then lands in the
/// dead-letter queue, intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consumer_queue_is_a_durable_quorum_queue_with_dead_lettering_and_a_delivery_limit() {
    const LIMIT: i64 = 3;
    let env = TestEnv::new().await;
    // One service declares the whole topology; a non-default limit shows the setting is used.
    let limit = LIMIT.to_string();
    let stager = env.start_stager(&[("LANDFALL_DELIVERY_LIMIT", &limit)]);
    env.wait_consuming("stager", DEADLINE).await;

    let queues = queues_of(
        &env,
        &[
            "type",
            "durable",
            "auto_delete",
            "exclusive",
            "arguments",
            "policy",
        ],
    )
    .await;
    // Policies by name (user and operator), each with its definition.
    let mut policies = std::collections::BTreeMap::new();
    for command in ["list_policies", "list_operator_policies"] {
        for policy in rabbitmqctl(&[command])
            .await
            .as_array()
            .into_iter()
            .flatten()
        {
            let definition = match &policy["definition"] {
                serde_json::Value::String(text) => {
                    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
                }
                other => other.clone(),
            };
            let name = policy["name"].as_str().unwrap_or_default().to_owned();
            policies.insert(format!("{command}:{name}"), definition);
        }
    }
    let mut expected_names: Vec<String> = SERVICES
        .iter()
        .flat_map(|service| {
            [
                format!("{}.{service}", env.prefix),
                format!("{}.{service}.dlq", env.prefix),
            ]
        })
        .collect();
    expected_names.sort();
    assert_eq!(
        queues.keys().cloned().collect::<Vec<_>>(),
        expected_names,
        "one queue and one dead-letter queue per service, nothing else"
    );
    let dlx = format!("{}.dlx", env.prefix);
    for (name, queue) in &queues {
        assert_eq!(queue["type"], "quorum", "{name} is a quorum queue: {queue}");
        assert_eq!(queue["durable"], true, "{name} is durable: {queue}");
        assert_eq!(queue["auto_delete"], false, "{name}: {queue}");
        // Not exclusive: no owning connection (printed as false or as an empty owner).
        assert!(
            queue["exclusive"] == false || queue["exclusive"] == "",
            "{name}: {queue}"
        );
        assert_eq!(
            queue_argument(queue, "x-queue-type"),
            Some(serde_json::json!("quorum")),
            "{name}: {queue}"
        );
        // No policy replaces what the arguments declare (a policy's delivery-limit or
        // dead-letter-exchange would win over, or combine with, the arguments): not the one
        // applied to the queue, nor any operator policy (list_queues does not name those).
        let applied = queue["policy"].as_str().unwrap_or_default();
        for (policy, definition) in &policies {
            if !(policy == &format!("list_policies:{applied}")
                || policy.starts_with("list_operator_policies:"))
            {
                continue;
            }
            for key in [
                "delivery-limit",
                "dead-letter-exchange",
                "dead-letter-routing-key",
            ] {
                assert!(
                    definition.get(key).is_none(),
                    "{name}: policy {policy} sets {key}: {definition}"
                );
            }
        }
        if name.ends_with(".dlq") {
            assert_eq!(
                queue_argument(queue, "x-dead-letter-exchange"),
                None,
                "a dead-letter queue dead-letters nowhere: {queue}"
            );
            continue;
        }
        assert_eq!(
            queue_argument(queue, "x-dead-letter-exchange"),
            Some(serde_json::json!(dlx)),
            "{name}: {queue}"
        );
        assert_eq!(
            queue_argument(queue, "x-dead-letter-routing-key"),
            Some(serde_json::json!(name)),
            "{name}: {queue}"
        );
        assert_eq!(
            queue_argument(queue, "x-delivery-limit"),
            Some(serde_json::json!(LIMIT)),
            "{name}: {queue}"
        );
    }
    // Each dead-letter queue is bound to the DLX with its queue's name.
    let bindings = rabbitmqctl(&[
        "list_bindings",
        "source_name",
        "destination_name",
        "destination_kind",
        "routing_key",
    ])
    .await;
    for service in SERVICES {
        let queue = format!("{}.{service}", env.prefix);
        let dead_letter_queue = format!("{queue}.dlq");
        let bound: Vec<&serde_json::Value> = bindings
            .as_array()
            .expect("list_bindings prints an array")
            .iter()
            .filter(|binding| binding["destination_name"] == dead_letter_queue.as_str())
            .filter(|binding| binding["source_name"] != "")
            .collect();
        assert_eq!(bound.len(), 1, "{dead_letter_queue}: {bound:?}");
        assert_eq!(bound[0]["source_name"], dlx.as_str(), "{bound:?}");
        assert_eq!(bound[0]["routing_key"], queue.as_str(), "{bound:?}");
        assert_eq!(bound[0]["destination_kind"], "queue", "{bound:?}");
    }

    // The limit at work, on the exporter's queue (nothing consumes it here): a message that
    // keeps coming back is delivered 1 + LIMIT times, then dead-lettered.
    let body = b"a message every consumer gives back";
    env.publish_raw(
        "events",
        "quality.passed",
        body,
        lapin::BasicProperties::default().with_message_id("poison".into()),
    )
    .await;
    let connection =
        lapin::Connection::connect(&env.amqp_url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let exporter_queue = format!("{}.exporter", env.prefix);
    let mut deliveries = 0;
    let started = std::time::Instant::now();
    let dead = loop {
        assert!(
            started.elapsed() < DEADLINE,
            "after {deliveries} deliveries the message reached neither the queue nor its \
             dead-letter queue within {DEADLINE:?}"
        );
        let got = channel
            .basic_get(
                exporter_queue.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: false },
            )
            .await
            .unwrap();
        if let Some(message) = got {
            deliveries += 1;
            assert_eq!(message.delivery.data, body);
            assert!(
                deliveries <= LIMIT + 1,
                "delivered {deliveries} times with a delivery limit of {LIMIT}"
            );
            message
                .delivery
                .nack(lapin::options::BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
                .unwrap();
            continue;
        }
        if let Some(dead) = env.take_message("exporter.dlq").await.unwrap() {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        deliveries,
        LIMIT + 1,
        "one delivery and {LIMIT} redeliveries"
    );
    assert_eq!(dead.delivery.data, body);
    assert_eq!(
        dead.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string()),
        Some("poison".to_owned())
    );
    let _ = connection.close(200, "done".into()).await;
    stager.stop().await;
    env.cleanup().await;
}

/// SIGTERM while the stager is in the middle of a file (its COPY under way, nothing committed):
/// the process finishes that file, commits, acks, publishes its `staging.loaded`, and exits 0.
/// The file is staged once with every row, the event is sent once, and the queue holds nothing
/// (neither ready for redelivery nor unacked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_file_is_being_staged_finishes_commits_acks_and_exits_cleanly() {
    // Big enough that staging takes a couple of seconds in a debug build: the signal lands
    // well inside the COPY (the assertions below prove it did).
    const ROWS: i64 = 500_000;
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.spawn_binary("stager", &[]);
    let key = TestEnv::landing_key("2026-04-04", "orders.csv");
    env.put(&key, data::orders_csv(1, ROWS)).await;

    env.wait_for_copy_under_way(DEADLINE).await;
    // The database's clock when the signal goes: the file must be finished after it.
    let signalled_at: String = env
        .db
        .query_one("SELECT clock_timestamp()::text", &[])
        .await
        .unwrap()
        .get(0);
    let status = stager.terminate().await;
    assert!(
        status.success(),
        "the stager exited with {status} after SIGTERM"
    );

    // Finished after the signal, with every row, exactly once.
    assert_eq!(
        env.query_text(&format!(
            "SELECT state, rows_loaded::text, rows_rejected::text,
                    (staging_started_at < '{signalled_at}'::timestamptz)::text,
                    (finished_at > '{signalled_at}'::timestamptz)::text
               FROM ops.files"
        ))
        .await,
        landfall_tests::rows(&[&["staged", &ROWS.to_string(), "0", "true", "true"]]),
        "the file was being staged when the signal came, and was finished after it"
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, ROWS);
    assert_eq!(
        env.count("SELECT count(DISTINCT order_id) FROM staging.orders")
            .await,
        ROWS
    );
    assert_eq!(
        env.count("SELECT count(*) FROM ops.processed_events WHERE consumer = 'stager'")
            .await,
        1
    );
    // The drain flushed the outbox before exiting: one staging.loaded, sent.
    assert_eq!(
        env.query_text(
            "SELECT (sent_at IS NOT NULL)::text FROM ops.outbox WHERE event_type = 'staging.loaded'"
        )
        .await,
        landfall_tests::rows(&[&["true"]])
    );
    spy.until("the staging.loaded", DEADLINE, |seen| {
        seen.iter()
            .any(|event| event.event_type == "staging.loaded")
    })
    .await;
    let loaded = spy.of_type("staging.loaded");
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    match &loaded[0].payload {
        Event::StagingLoaded(staged) => assert_eq!(staged.rows_loaded, ROWS as u64),
        other => panic!("unexpected {other:?}"),
    }

    // The file.landed was acked: once the stager's connections are gone, nothing is waiting to
    // be redelivered and nothing is unacked; nothing was dead-lettered either.
    let stager_queue = format!("{}.stager", env.prefix);
    let queue = wait_until("the stager's consumers gone", DEADLINE, || async {
        let queues = queues_of(
            &env,
            &["consumers", "messages_ready", "messages_unacknowledged"],
        )
        .await;
        let queue = queues[&stager_queue].clone();
        Ok((queue["consumers"] == 0).then_some(queue))
    })
    .await;
    assert_eq!(queue["messages_ready"], 0, "{queue}");
    assert_eq!(queue["messages_unacknowledged"], 0, "{queue}");
    assert!(env.take_message("stager.dlq").await.unwrap().is_none());
    ingester.stop().await;
    env.cleanup().await;
}

/// A drain cut short by the grace period is not a clean exit: SIGTERM mid-COPY with a 100 ms
/// grace, the stager exits non-zero saying so; nothing is lost, a restarted stager loads the
/// file (its message went back to the queue) exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_cut_short_by_the_grace_period_exits_non_zero_and_loses_nothing() {
    const ROWS: i64 = 500_000;
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.spawn_binary("stager", &[("LANDFALL_SHUTDOWN_GRACE_MS", "100")]);
    let key = TestEnv::landing_key("2026-04-05", "orders.csv");
    env.put(&key, data::orders_csv(1, ROWS)).await;
    env.wait_for_copy_under_way(DEADLINE).await;
    let status = stager.terminate().await;
    assert!(
        !status.success(),
        "the stager abandoned its file but exited with {status}"
    );
    let restarted = env.spawn_binary("stager", &[]);
    env.wait_count(
        "the file staged by the restarted stager",
        "SELECT count(*) FROM ops.files WHERE state = 'staged'",
        1,
        DEADLINE,
    )
    .await;
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, ROWS);
    // Nor is anything of the abandoned attempt left behind the view.
    assert_eq!(
        env.count("SELECT count(*) FROM staging_rows.orders").await,
        ROWS
    );
    assert!(restarted.terminate().await.success());
    ingester.stop().await;
    env.cleanup().await;
}

/// The file and batch states the code names are exactly those the database's check constraints
/// allow (`ops.files.state`, `ops.batches.state`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_types_match_the_databases_check_constraints() {
    let env = TestEnv::new().await;
    let client = env.migrated_client().await;
    let allowed = |table: &'static str| {
        let client = &client;
        async move {
            let definition: String = client
                .query_one(
                    "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
                      WHERE c.conrelid = $1::text::regclass AND c.contype = 'c'
                        AND pg_get_constraintdef(c.oid) LIKE '%state%'",
                    &[&table],
                )
                .await
                .expect("the state check constraint")
                .get(0);
            let mut states: Vec<String> = definition
                .split('\'')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            states.sort();
            states
        }
    };
    let mut files: Vec<String> = runtime::FileState::ALL
        .iter()
        .map(|state| state.as_str().to_owned())
        .collect();
    files.sort();
    assert_eq!(allowed("ops.files").await, files);
    let mut batches: Vec<String> = runtime::BatchState::ALL
        .iter()
        .map(|state| state.as_str().to_owned())
        .collect();
    batches.sort();
    assert_eq!(allowed("ops.batches").await, batches);
    env.cleanup().await;
}

/// Every connection asks RabbitMQ for frames of at most `runtime::broker::FRAME_MAX` bytes
/// (lapin's buffers are 32 frames each way), unless its URL sets `frame_max`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_ask_for_small_frames_unless_the_url_says_otherwise() {
    let env = TestEnv::new().await;
    let properties = lapin::ConnectionProperties::default;
    let default = runtime::broker::connect_with(&env.amqp_url, properties())
        .await
        .expect("RabbitMQ");
    assert_eq!(default.configuration().frame_max(), 32 * 1024);
    default.close(200, "checked".into()).await.ok();
    let separator = if env.amqp_url.contains('?') { '&' } else { '?' };
    let asked = format!("{}{separator}frame_max=65536", env.amqp_url);
    let larger = runtime::broker::connect_with(&asked, properties())
        .await
        .expect("RabbitMQ");
    assert_eq!(larger.configuration().frame_max(), 65536);
    larger.close(200, "checked".into()).await.ok();
    env.cleanup().await;
}
