//! One OTLP trace per file across all five services, span links from a batch's transform to
//! its files, semantic-convention attributes, metrics — received by a real OTLP/gRPC receiver
//! from the five real service binaries; and nothing exported when tracing is off.

use std::collections::BTreeMap;
use std::time::Duration;

use landfall_tests::otlp::{OtlpReceiver, ReceivedSpan};
use landfall_tests::{TestEnv, data, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const DATE: &str = "2026-06-01";
const SERVICES: &[&str] = &[
    "ingester",
    "stager",
    "transformer",
    "quality-checker",
    "exporter",
];

async fn wait_count(env: &TestEnv, what: &str, sql: &str, expected: i64) {
    wait_until(what, DEADLINE, || async {
        Ok((env.try_count(sql).await? == expected).then_some(()))
    })
    .await;
}

/// The services whose `process` spans are ancestors of `span`, nearest first.
fn upstream_services(span: &ReceivedSpan, by_id: &BTreeMap<String, ReceivedSpan>) -> Vec<String> {
    let mut services = Vec::new();
    let mut parent = span.parent_span_id.clone();
    while let Some(next) = by_id.get(&parent) {
        if next.name.starts_with("process ") {
            services.push(next.service.clone());
        }
        parent = next.parent_span_id.clone();
    }
    services
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_is_one_trace_across_all_five_services() {
    let env = TestEnv::new().await;
    let receiver = OtlpReceiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = receiver.endpoint();
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
    ];
    let mut children = Vec::new();
    for service in SERVICES {
        children.push(env.spawn_binary(service, &otel));
    }
    for service in SERVICES {
        env.wait_consuming(service, DEADLINE).await;
    }
    let date = TestEnv::landing_key;
    env.put(&date(DATE, "reviews.csv"), data::reviews_csv(20))
        .await;
    env.put(
        &date(DATE, "shipment_deliveries.csv"),
        data::shipments_csv(20),
    )
    .await;
    // The transformer has seen both (the batch waits for orders) before orders lands.
    wait_count(
        &env,
        "the transformer to have seen two staged sources",
        "SELECT count(*) FROM ops.batches WHERE cardinality(sources_staged) = 2 AND sources_missing = '{orders}'",
        1,
    )
    .await;
    // The orders file completes the batch: its journey runs through all five services.
    env.put(&date(DATE, "orders.csv"), data::orders_csv(1, 20))
        .await;
    wait_count(
        &env,
        "the batch exported",
        "SELECT count(*) FROM ops.batches WHERE state = 'exported'",
        1,
    )
    .await;
    let trace: String = env
        .db
        .query_one(
            "SELECT trace_id FROM ops.files WHERE source = 'orders'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let file_traces: Vec<String> = env
        .db
        .query("SELECT trace_id FROM ops.files ORDER BY trace_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let batch_trace: String = env
        .db
        .query_one("SELECT trace_id FROM ops.batches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        batch_trace, trace,
        "the batch's transform continues the completing file's trace"
    );

    let spans = wait_until(
        "spans of all five services in the orders trace",
        DEADLINE,
        || async {
            let spans: Vec<ReceivedSpan> = receiver
                .spans()
                .into_iter()
                .filter(|span| span.trace_id == trace)
                .collect();
            let complete = SERVICES.iter().all(|service| {
                spans
                    .iter()
                    .any(|span| span.service == *service && span.name.starts_with("process "))
            }) && spans.iter().any(|span| span.name.starts_with("export "));
            Ok(complete.then_some(spans))
        },
    )
    .await;
    let by_id: BTreeMap<String, ReceivedSpan> = spans
        .iter()
        .map(|span| (span.span_id.clone(), span.clone()))
        .collect();
    let process = |service: &str| {
        spans
            .iter()
            .find(|span| span.service == service && span.name.starts_with("process "))
            .unwrap_or_else(|| panic!("no process span of {service}"))
    };
    // Parent order: each stage's span descends from the previous stage's.
    assert!(
        process("ingester").parent_span_id.is_empty(),
        "the notification starts the trace"
    );
    assert_eq!(
        upstream_services(process("exporter"), &by_id),
        ["quality-checker", "transformer", "stager", "ingester"]
    );
    assert_eq!(
        upstream_services(process("quality-checker"), &by_id),
        ["transformer", "stager", "ingester"]
    );

    // Messaging and database conventions, and landfall's own attributes.
    let stager = process("stager");
    for (key, value) in [
        ("messaging.system", "rabbitmq"),
        ("messaging.operation.type", "process"),
        ("messaging.rabbitmq.destination.routing_key", "file.landed"),
        ("landfall.dataset", "ecommerce"),
        ("landfall.batch", DATE),
    ] {
        assert_eq!(
            stager.attributes.get(key).map(String::as_str),
            Some(value),
            "{key} on {stager:?}"
        );
    }
    assert_eq!(
        stager.attributes.get("messaging.destination.name"),
        Some(&format!("{}.stager", env.prefix))
    );
    assert!(stager.attributes.contains_key("messaging.message.id"));
    let copy = spans
        .iter()
        .find(|span| span.name == "COPY staging.\"orders\"")
        .expect("the COPY span");
    assert_eq!(
        copy.attributes.get("db.system.name").map(String::as_str),
        Some("postgresql")
    );
    assert_eq!(
        copy.attributes
            .get("db.collection.name")
            .map(String::as_str),
        Some("staging.orders")
    );
    assert_eq!(
        copy.attributes.get("landfall.source").map(String::as_str),
        Some("orders")
    );
    assert_eq!(
        copy.attributes
            .get("landfall.rows_loaded")
            .map(String::as_str),
        Some("20")
    );
    assert_eq!(
        copy.attributes
            .get("landfall.rows_rejected")
            .map(String::as_str),
        Some("0")
    );
    assert!(spans.iter().any(
        |span| span.attributes.get("landfall.model").map(String::as_str) == Some("agg_shipments")
    ));
    assert!(spans.iter().any(
        |span| span.attributes.get("landfall.check").map(String::as_str)
            == Some("orders_order_id_unique")
    ));
    let publish = spans
        .iter()
        .find(|span| span.name.starts_with("publish "))
        .expect("a publish span");
    assert_eq!(
        publish
            .attributes
            .get("messaging.operation.type")
            .map(String::as_str),
        Some("publish")
    );

    // The transform links to the traces of the batch's three files.
    let transform = spans
        .iter()
        .find(|span| span.name == format!("transform ecommerce/{DATE}"))
        .expect("the transform span");
    let mut linked: Vec<String> = transform
        .links
        .iter()
        .map(|(trace, _)| trace.clone())
        .collect();
    linked.sort();
    assert_eq!(linked, file_traces);

    // A message the stager cannot read: dead-lettered, and counted.
    env.publish_raw(
        "events",
        "file.landed",
        b"not an envelope",
        lapin::BasicProperties::default(),
    )
    .await;
    // Metrics from every service.
    let expected = [
        ("ingester", "landfall.files"),
        ("stager", "landfall.rows.staged"),
        ("stager", "landfall.stage.duration"),
        ("transformer", "landfall.events.consumed"),
        ("exporter", "landfall.batch.landed_to_export"),
    ];
    wait_until("the metrics", DEADLINE, || async {
        let metrics = receiver.metrics();
        let all = expected
            .iter()
            .all(|(service, name)| metrics.contains(&(service.to_string(), name.to_string())));
        let published = metrics
            .iter()
            .any(|(_, name)| name == "landfall.events.published");
        let backlog = metrics
            .iter()
            .any(|(_, name)| name == "landfall.outbox.backlog");
        let dead = metrics.contains(&(
            "stager".to_owned(),
            "landfall.events.dead_lettered".to_owned(),
        ));
        Ok((all && published && backlog && dead).then_some(()))
    })
    .await;
    // The dashboards chart only metrics the services really export (Prometheus names: dots
    // become underscores, plus _total, _seconds_bucket and the like).
    let exported: Vec<String> = receiver
        .metrics()
        .into_iter()
        .map(|(_, name)| name.replace('.', "_"))
        .collect();
    let dashboards =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/dashboards");
    let mut charted = 0;
    for entry in std::fs::read_dir(&dashboards).expect("dashboards folder") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(
            dashboard["panels"]
                .as_array()
                .is_some_and(|panels| !panels.is_empty()),
            "{} has no panels",
            path.display()
        );
        for token in text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|token| token.starts_with("landfall_"))
        {
            assert!(
                exported.iter().any(|name| token.starts_with(name.as_str())),
                "{} charts {token}, which no service exports",
                path.display()
            );
            charted += 1;
        }
    }
    assert!(charted > 20, "the dashboards chart landfall's metrics");
    for child in children {
        assert!(child.terminate().await.success());
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_exported_when_tracing_is_off() {
    let env = TestEnv::new().await;
    // Where an exporter would send by default, were it switched on without an endpoint.
    let receiver = OtlpReceiver::start("127.0.0.1:4317")
        .await
        .expect("port 4317 free for the default-endpoint receiver");
    let ingester = env.spawn_binary("ingester", &[]);
    let stager = env.spawn_binary("stager", &[]);
    env.wait_consuming("ingester", DEADLINE).await;
    env.wait_consuming("stager", DEADLINE).await;
    env.put(
        &TestEnv::landing_key(DATE, "orders.csv"),
        data::orders_csv(1, 5),
    )
    .await;
    wait_count(
        &env,
        "the file staged",
        "SELECT count(*) FROM ops.files WHERE state = 'staged'",
        1,
    )
    .await;
    // Trace context still travels (the ledger has the trace id), but nothing leaves the process.
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE length(trace_id) = 32")
            .await,
        1
    );
    assert!(ingester.terminate().await.success());
    assert!(stager.terminate().await.success());
    assert!(
        receiver.spans().is_empty(),
        "spans exported with tracing off: {:?}",
        receiver.spans().len()
    );
    assert!(receiver.metrics().is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_inside_a_span_carry_its_trace_id() {
    let env = TestEnv::new().await;
    let log_path = std::env::temp_dir().join(format!("landfall-json-log-{}.log", env.suffix));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut ingester = tokio::process::Command::new(landfall_tests::binary_path("ingester"))
        .env_clear()
        .envs(env.vars())
        .env("LANDFALL_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    env.wait_consuming("ingester", DEADLINE).await;
    env.put(
        &TestEnv::landing_key(DATE, "orders.csv"),
        data::orders_csv(1, 3),
    )
    .await;
    wait_count(
        &env,
        "the file in the ledger",
        "SELECT count(*) FROM ops.files",
        1,
    )
    .await;
    let trace: String = env
        .db
        .query_one("SELECT trace_id FROM ops.files", &[])
        .await
        .unwrap()
        .get(0);
    let pid = ingester.id().unwrap();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    ingester.wait().await.unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let landed = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"] == "file landed")
        .unwrap_or_else(|| panic!("no JSON 'file landed' line in:\n{text}"));
    assert_eq!(landed["span"]["trace_id"], trace.as_str(), "{landed}");
    let _ = std::fs::remove_file(&log_path);
    env.cleanup().await;
}
