//! One OTLP trace per file across all five services, span links from a batch's transform to
//! its files, semantic-convention attributes, metrics, the trace ids `landfall status` prints —
//! received by a real OTLP/gRPC receiver from the real service binaries; the standard variables
//! (service name, resource attributes, samplers); `tracestate` across hops; files by outcome;
//! and nothing exported when tracing is off.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use landfall_tests::otlp::{OtlpReceiver, ReceivedSpan};
use landfall_tests::{TestEnv, data, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const DATE: &str = "2026-06-01";
/// The test environment's bucket.
const BUCKET: &str = "lake";
const SERVICES: &[&str] = &[
    "ingester",
    "stager",
    "transformer",
    "quality-checker",
    "exporter",
];

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

/// The name of the stager's COPY span for `source`: the COPY goes into the table behind the
/// view `staging.<source>` (migration 0013).
fn copy_span_name(source: &str) -> String {
    format!("COPY staging_rows.\"{source}\"")
}

/// Fails unless `span` has each of these attribute values.
fn assert_attributes(span: &ReceivedSpan, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        assert_eq!(
            span.attributes.get(*key).map(String::as_str),
            Some(*value),
            "{key} on {span:?}"
        );
    }
}

/// How many models `datasets/ecommerce/models` holds (one `.sql` file each).
fn model_count() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/ecommerce/models");
    std::fs::read_dir(dir)
        .expect("datasets/ecommerce/models")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "sql"))
        })
        .count()
}

/// The rows of the table `landfall status` prints under the line starting with `title`, as
/// column name → cell. The columns are where the rule under the header has its dashes.
fn status_table(output: &str, title: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = output.lines().skip_while(|line| !line.starts_with(title));
    lines
        .next()
        .unwrap_or_else(|| panic!("no {title} table in:\n{output}"));
    let header = lines.next().expect("a header line");
    let rule: Vec<char> = lines.next().expect("a rule line").chars().collect();
    let mut columns = Vec::new();
    let mut start = None;
    for (index, &c) in rule.iter().chain([&' ']).enumerate() {
        match (c == '-', start) {
            (true, None) => start = Some(index),
            (false, Some(from)) => {
                columns.push((from, index));
                start = None;
            }
            _ => {}
        }
    }
    let cell = |line: &str, (from, to): (usize, usize)| -> String {
        line.chars()
            .skip(from)
            .take(to - from)
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let names: Vec<String> = columns.iter().map(|&column| cell(header, column)).collect();
    lines
        .take_while(|line| !line.trim().is_empty())
        .map(|line| {
            names
                .iter()
                .cloned()
                .zip(columns.iter().map(|&column| cell(line, column)))
                .collect()
        })
        .collect()
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
    env.wait_count(
        "the transformer to have seen two staged sources",
        "SELECT count(*) FROM ops.batches WHERE cardinality(sources_staged) = 2 AND sources_missing = '{orders}'",
        1,
        DEADLINE,
    )
    .await;
    // The orders file completes the batch: its journey runs through all five services.
    env.put(&date(DATE, "orders.csv"), data::orders_csv(1, 20))
        .await;
    env.wait_count(
        "the batch exported",
        "SELECT count(*) FROM ops.batches WHERE state = 'exported'",
        1,
        DEADLINE,
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
        .find(|span| span.name == copy_span_name("orders"))
        .expect("the COPY span");
    assert_eq!(
        copy.attributes.get("db.system.name").map(String::as_str),
        Some("postgresql")
    );
    assert_eq!(
        copy.attributes
            .get("db.collection.name")
            .map(String::as_str),
        Some("staging_rows.orders")
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
            == Some("shipments_order_exists")
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

    // Every file's spans (the ingester's and the stager's, its COPY among them) and the
    // batch's: what `landfall status` names.
    let all = wait_until("the COPY span of each file", DEADLINE, || async {
        let spans = receiver.spans();
        let copied = ["orders", "reviews", "shipment_deliveries"]
            .iter()
            .all(|source| spans.iter().any(|span| span.name == copy_span_name(source)));
        Ok(copied.then_some(spans))
    })
    .await;

    // Database conventions on every span that runs SQL: each file's COPY, each model of the
    // transform, each quality check.
    for source in ["orders", "reviews", "shipment_deliveries"] {
        let copy = all
            .iter()
            .find(|span| span.name == copy_span_name(source))
            .unwrap();
        assert_eq!(copy.service, "stager");
        assert_attributes(
            copy,
            &[
                ("db.system.name", "postgresql"),
                ("db.operation.name", "COPY"),
                ("db.collection.name", &format!("staging_rows.{source}")),
            ],
        );
    }
    let models: Vec<&ReceivedSpan> = all
        .iter()
        .filter(|span| span.attributes.contains_key("landfall.model"))
        .collect();
    assert_eq!(
        models.len(),
        model_count(),
        "one span per model of datasets/ecommerce/models"
    );
    for model in models {
        assert_eq!(model.service, "transformer");
        assert_eq!(model.trace_id, trace, "{model:?}");
        // No db.operation.name: a model may hold several statements of any kind, and the
        // conventions say not to read the operation out of the query text then.
        assert_attributes(model, &[("db.system.name", "postgresql")]);
        assert!(
            model.attributes.contains_key("landfall.rows"),
            "landfall.rows on {model:?}"
        );
    }
    let checks: Vec<&ReceivedSpan> = all
        .iter()
        .filter(|span| span.name.starts_with("check "))
        .collect();
    assert!(checks.len() > 5, "a span per quality check: {checks:?}");
    for check in checks {
        assert_eq!(check.service, "quality-checker");
        assert_attributes(
            check,
            &[
                ("db.system.name", "postgresql"),
                ("db.operation.name", "SELECT"),
            ],
        );
    }
    // Each report's export streams it out with COPY … TO.
    let exports: Vec<&ReceivedSpan> = all
        .iter()
        .filter(|span| span.attributes.contains_key("landfall.report"))
        .collect();
    assert!(!exports.is_empty(), "a span per exported report");
    for export in exports {
        assert_eq!(export.service, "exporter");
        let report = &export.attributes["landfall.report"];
        assert_attributes(
            export,
            &[
                ("db.system.name", "postgresql"),
                ("db.operation.name", "COPY"),
                ("db.collection.name", &format!("analytics.{report}")),
            ],
        );
    }

    // `landfall status` prints the trace id of each file and of the batch: the traces the
    // receiver got the file's ingester and COPY spans in, and the batch's transform span.
    let output = env.landfall(&["status"]).await;
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "landfall status: {}{printed}",
        String::from_utf8_lossy(&output.stderr)
    );
    let batches = status_table(&printed, "Batches");
    assert_eq!(batches.len(), 1, "{printed}");
    assert_eq!(batches[0]["batch"], DATE);
    assert_eq!(
        batches[0]["trace id"], transform.trace_id,
        "the batch's trace id as printed:\n{printed}"
    );
    let files = status_table(&printed, "Files");
    assert_eq!(files.len(), 3, "{printed}");
    let mut printed_traces = BTreeSet::new();
    for file in &files {
        let source = file["source"].as_str();
        let copy = all
            .iter()
            .find(|span| span.name == copy_span_name(source))
            .unwrap_or_else(|| panic!("no COPY span for {source}"));
        assert_eq!(
            file["trace id"], copy.trace_id,
            "{source}'s trace id as printed:\n{printed}"
        );
        assert!(
            all.iter().any(|span| span.trace_id == copy.trace_id
                && span.service == "ingester"
                && span.name.starts_with("process ")),
            "the ingester's span of {source} is in the printed trace"
        );
        printed_traces.insert(file["trace id"].clone());
    }
    assert_eq!(printed_traces.len(), 3, "one trace per file:\n{printed}");

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
    // The dashboards chart only landfall metrics the services really export (Prometheus names:
    // dots become underscores, plus _total, _seconds_bucket and the like). The other metrics
    // they chart come from RabbitMQ and the collector: see
    // `every_metric_a_dashboard_charts_is_one_prometheus_scrapes`.
    let exported: Vec<String> = receiver
        .metrics()
        .into_iter()
        .map(|(_, name)| name.replace('.', "_"))
        .collect();
    let mut charted = 0;
    for query in dashboard_queries() {
        for selector in queried_metrics(&query.expr) {
            if !selector.metric.starts_with("landfall_") {
                continue;
            }
            assert!(
                exported
                    .iter()
                    .any(|name| selector.metric.starts_with(name.as_str())),
                "{query}: charts {}, which no service exports",
                selector.metric
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
    env.wait_count(
        "the file staged",
        "SELECT count(*) FROM ops.files WHERE state = 'staged'",
        1,
        DEADLINE,
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
    env.wait_count(
        "the file in the ledger",
        "SELECT count(*) FROM ops.files",
        1,
        DEADLINE,
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

// ---------------------------------------------------------------------------------------------
// The standard variables, trace context from outside, and metrics by outcome: one or two
// service binaries each.

/// The variables that send a service's spans and metrics to `endpoint` promptly.
fn export_to(endpoint: &str) -> Vec<(&str, &str)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
    ]
}

/// A fresh W3C trace id and span id, as lowercase hex.
fn new_ids() -> (String, String) {
    (
        format!("{:032x}", rand::random::<u128>() | 1),
        format!("{:016x}", rand::random::<u64>() | 1),
    )
}

/// Announces an object the way MinIO does, with these AMQP headers (a `traceparent`, say).
async fn announce(env: &TestEnv, key: &str, etag: &str, headers: &BTreeMap<String, String>) {
    let body = serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("{}/{key}", BUCKET),
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "eventName": "s3:ObjectCreated:Put",
            "s3": {"bucket": {"name": BUCKET},
                   "object": {"key": key.replace('/', "%2F"), "size": 10, "eTag": etag}}
        }]
    })
    .to_string();
    env.publish_raw(
        "s3",
        "lake.created",
        body.as_bytes(),
        lapin::BasicProperties::default().with_headers(runtime::broker::header_table(headers)),
    )
    .await;
}

/// The trace id a `traceparent` names.
fn trace_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

/// `OTEL_SERVICE_NAME` names the service and `OTEL_RESOURCE_ATTRIBUTES` adds to the resource of
/// every span and metric; a notification's `traceparent` and `tracestate` are continued by the
/// ingester, stored with its outbox row, published with `FileLanded`, and continued again by
/// the stager into `StagingLoaded`; the default sampler (`parentbased_always_on`) records the
/// sampled trace and drops the one whose parent was not sampled, though its context travels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_variables_shape_the_resource_and_tracestate_travels_each_hop() {
    let env = TestEnv::new().await;
    let receiver = OtlpReceiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = receiver.endpoint();
    let ingester_name = format!("ingester-{}", env.suffix);
    let run = format!("run-{}", env.suffix);
    let resource_attributes = format!("deployment.environment=ci,landfall.test.run={run}");
    let mut otel = export_to(&endpoint);
    otel.push(("OTEL_RESOURCE_ATTRIBUTES", resource_attributes.as_str()));
    let mut spy = env.spy().await;
    let mut ingester_vars = otel.clone();
    ingester_vars.push(("OTEL_SERVICE_NAME", ingester_name.as_str()));
    // Only the notifications below land the files (reconcile would start traces of its own).
    ingester_vars.push(("LANDFALL_RECONCILE_ON_START", "false"));
    let ingester = env.spawn_binary("ingester", &ingester_vars);
    let stager = env.spawn_binary("stager", &otel);
    env.wait_consuming("ingester", DEADLINE).await;
    env.wait_consuming("stager", DEADLINE).await;

    // Two files, each announced with its own trace context: one sampled, one not.
    env.set_notifications(false);
    let orders_key = TestEnv::landing_key(DATE, "orders.csv");
    let reviews_key = TestEnv::landing_key(DATE, "reviews.csv");
    let orders_etag = env.put(&orders_key, data::orders_csv(1, 10)).await;
    let reviews_etag = env.put(&reviews_key, data::reviews_csv(10)).await;
    let (sampled_trace, sampled_parent) = new_ids();
    let (unsampled_trace, unsampled_parent) = new_ids();
    let sampled_state = "landfall=sampled,vendor=a1b2";
    let unsampled_state = "landfall=unsampled";
    let context = |trace: &str, parent: &str, flags: &str, state: &str| {
        BTreeMap::from([
            (
                "traceparent".to_owned(),
                format!("00-{trace}-{parent}-{flags}"),
            ),
            ("tracestate".to_owned(), state.to_owned()),
        ])
    };
    announce(
        &env,
        &orders_key,
        &orders_etag,
        &context(&sampled_trace, &sampled_parent, "01", sampled_state),
    )
    .await;
    announce(
        &env,
        &reviews_key,
        &reviews_etag,
        &context(&unsampled_trace, &unsampled_parent, "00", unsampled_state),
    )
    .await;
    env.wait_count(
        "both files staged and their StagingLoaded published",
        "SELECT count(*) FROM ops.outbox WHERE event_type = 'staging.loaded' AND sent_at IS NOT NULL",
        2,
        DEADLINE,
    )
    .await;
    spy.until("two FileLanded and two StagingLoaded", DEADLINE, |seen| {
        seen.iter()
            .filter(|event| event.event_type == "staging.loaded")
            .count()
            == 2
            && seen
                .iter()
                .filter(|event| event.event_type == "file.landed")
                .count()
                == 2
    })
    .await;

    // Each file's ledger row has the trace its notification carried.
    let ledger = env
        .query_text("SELECT source, trace_id FROM ops.files ORDER BY source")
        .await;
    assert_eq!(
        ledger,
        landfall_tests::rows(&[
            &["orders", sampled_trace.as_str()],
            &["reviews", unsampled_trace.as_str()]
        ])
    );
    // Both outbox rows of each trace (the ingester's FileLanded, the stager's StagingLoaded)
    // store its traceparent — sampled flag kept — and its tracestate.
    let stored = env
        .query_text(
            "SELECT event_type, headers->>'traceparent', coalesce(headers->>'tracestate', 'NULL')
               FROM ops.outbox ORDER BY id",
        )
        .await;
    assert_eq!(stored.len(), 4, "{stored:?}");
    let mut stored_contexts: Vec<(String, String, String, String)> = stored
        .iter()
        .map(|row| {
            let flags = row[1].rsplit('-').next().unwrap_or_default().to_owned();
            (
                row[0].clone(),
                trace_of(&row[1]).to_owned(),
                flags,
                row[2].clone(),
            )
        })
        .collect();
    stored_contexts.sort();
    let mut expected: Vec<(String, String, String, String)> = ["file.landed", "staging.loaded"]
        .iter()
        .flat_map(|event_type| {
            [
                (
                    event_type.to_string(),
                    sampled_trace.clone(),
                    "01".to_owned(),
                    sampled_state.to_owned(),
                ),
                (
                    event_type.to_string(),
                    unsampled_trace.clone(),
                    "00".to_owned(),
                    unsampled_state.to_owned(),
                ),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(stored_contexts, expected, "outbox headers");
    // And the same travels in the published events' AMQP headers.
    let mut published: Vec<(String, String, String, String)> = spy
        .seen
        .iter()
        .zip(&spy.headers)
        .map(|(event, headers)| {
            let traceparent = headers.get("traceparent").cloned().unwrap_or_default();
            (
                event.event_type.clone(),
                trace_of(&traceparent).to_owned(),
                traceparent
                    .rsplit('-')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                headers
                    .get("tracestate")
                    .cloned()
                    .unwrap_or_else(|| "NULL".into()),
            )
        })
        .collect();
    published.sort();
    assert_eq!(published, expected, "AMQP headers of the published events");

    let ingester_process = format!("process {}.ingester", env.prefix);
    let stager_process = format!("process {}.stager", env.prefix);
    wait_until("the sampled trace's spans", DEADLINE, || async {
        let spans: Vec<ReceivedSpan> = receiver.spans();
        let arrived = |service: &str, name: &str| {
            spans.iter().any(|span| {
                span.trace_id == sampled_trace && span.service == service && span.name == name
            })
        };
        let done = arrived(&ingester_name, &ingester_process)
            && arrived("stager", &stager_process)
            && arrived("stager", &copy_span_name("orders"))
            && spans
                .iter()
                .filter(|span| span.name.starts_with("publish "))
                .count()
                >= 2;
        if done {
            return Ok(Some(()));
        }
        let seen: Vec<(&str, &str, bool)> = spans
            .iter()
            .map(|span| {
                let traced = span.trace_id == sampled_trace;
                (span.service.as_str(), span.name.as_str(), traced)
            })
            .collect();
        anyhow::bail!("(service, span, in the sampled trace) seen: {seen:?}")
    })
    .await;
    wait_until("both services' metrics", DEADLINE, || async {
        let points = receiver.metric_points();
        let done = [ingester_name.as_str(), "stager"].iter().all(|service| {
            points
                .iter()
                .any(|point| point.service == *service && point.name == "landfall.files")
        });
        if done {
            return Ok(Some(()));
        }
        let seen: BTreeSet<(&str, &str)> = points
            .iter()
            .map(|point| (point.service.as_str(), point.name.as_str()))
            .collect();
        anyhow::bail!("(service, metric) seen: {seen:?}")
    })
    .await;
    assert!(ingester.terminate().await.success());
    assert!(stager.terminate().await.success());
    // Everything both exported, flushed at exit.
    let spans = receiver.spans();
    let points = receiver.metric_points();

    // The ingester's consumer span continues the notification's trace, under its parent.
    let process = spans
        .iter()
        .find(|span| span.trace_id == sampled_trace && span.name == ingester_process)
        .expect("the ingester's process span in the notification's trace");
    assert_eq!(process.parent_span_id, sampled_parent);
    // The stager's continues the FileLanded the ingester's publish span sent.
    let by_id: BTreeMap<String, ReceivedSpan> = spans
        .iter()
        .map(|span| (span.span_id.clone(), span.clone()))
        .collect();
    let staged = spans
        .iter()
        .find(|span| span.trace_id == sampled_trace && span.name == stager_process)
        .expect("the stager's process span in the notification's trace");
    let publish = by_id
        .get(&staged.parent_span_id)
        .expect("the stager's parent span was exported");
    assert!(publish.name.starts_with("publish "), "{publish:?}");
    assert_eq!(publish.service, ingester_name);
    assert_eq!(publish.parent_span_id, process.span_id);
    // parentbased_always_on: nothing of the trace whose parent was not sampled.
    let dropped: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| span.trace_id == unsampled_trace)
        .collect();
    assert!(
        dropped.is_empty(),
        "spans of the unsampled parent's trace: {dropped:?}"
    );

    // Resources: OTEL_SERVICE_NAME names the ingester (the stager keeps its own name), and
    // OTEL_RESOURCE_ATTRIBUTES is on every span and metric of both.
    let services: BTreeSet<&str> = spans.iter().map(|span| span.service.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from([ingester_name.as_str(), "stager"]),
        "service.name of the exported spans"
    );
    for span in &spans {
        assert_eq!(
            span.resource
                .get("deployment.environment")
                .map(String::as_str),
            Some("ci"),
            "{span:?}"
        );
        assert_eq!(
            span.resource.get("landfall.test.run"),
            Some(&run),
            "{span:?}"
        );
    }
    let metric_services: BTreeSet<&str> =
        points.iter().map(|point| point.service.as_str()).collect();
    assert_eq!(
        metric_services,
        BTreeSet::from([ingester_name.as_str(), "stager"]),
        "service.name of the exported metrics"
    );
    for point in &points {
        assert_eq!(
            point.resource.get("service.name"),
            Some(&point.service),
            "{point:?}"
        );
        assert_eq!(
            point
                .resource
                .get("deployment.environment")
                .map(String::as_str),
            Some("ci"),
            "{point:?}"
        );
        assert_eq!(
            point.resource.get("landfall.test.run"),
            Some(&run),
            "{point:?}"
        );
    }
    env.cleanup().await;
}

/// `OTEL_TRACES_SAMPLER=always_off`, and `traceidratio` with `OTEL_TRACES_SAMPLER_ARG=0`: the
/// file lands and its `FileLanded` is published (context marked unsampled, so the next
/// service drops it too), metrics are exported, and not one span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampler_that_keeps_nothing_exports_no_spans_while_the_pipeline_works() {
    let env = TestEnv::new().await;
    let samplers: [&[(&str, &str)]; 2] = [
        &[("OTEL_TRACES_SAMPLER", "always_off")],
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    ];
    for (index, sampler) in samplers.iter().enumerate() {
        let receiver = OtlpReceiver::start("127.0.0.1:0").await.unwrap();
        let endpoint = receiver.endpoint();
        let mut vars = export_to(&endpoint);
        vars.extend_from_slice(sampler);
        let ingester = env.spawn_binary("ingester", &vars);
        env.wait_consuming("ingester", DEADLINE).await;
        let date = format!("2026-06-{:02}", index + 1);
        env.put(
            &TestEnv::landing_key(&date, "orders.csv"),
            data::orders_csv(1, 5),
        )
        .await;
        env.wait_count(
            &format!("{sampler:?}: the FileLanded published"),
            &format!(
                "SELECT count(*) FROM ops.outbox WHERE event_type = 'file.landed' AND sent_at IS NOT NULL AND ingestion_date = '{date}'"
            ),
            1,
            DEADLINE,
        )
        .await;
        // The exporter reaches the receiver: the ingester's metrics arrive.
        wait_until(
            &format!("{sampler:?}: the ingester's metrics"),
            DEADLINE,
            || async {
                Ok(receiver
                    .metric_value("ingester", "landfall.files", &[("outcome", "landed")])
                    .filter(|landed| *landed >= 1.0)
                    .map(|_| ()))
            },
        )
        .await;
        let traceparent = env
            .query_text(&format!(
                "SELECT headers->>'traceparent' FROM ops.outbox WHERE ingestion_date = '{date}'"
            ))
            .await;
        assert!(
            traceparent[0][0].starts_with("00-") && traceparent[0][0].ends_with("-00"),
            "{sampler:?}: the published context is marked unsampled: {traceparent:?}"
        );
        // Exit flushes whatever the batch processor holds.
        assert!(ingester.terminate().await.success());
        let spans = receiver.spans();
        assert!(
            spans.is_empty(),
            "{sampler:?}: {} spans exported, e.g. {:?}",
            spans.len(),
            spans.first()
        );
    }
    env.cleanup().await;
}

/// A metric's expected value: service, metric name, attributes its series have, value.
type ExpectedValue<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], f64);

/// `landfall.files` arrives with each outcome a file had — landed, ignored (ingester), staged,
/// rejected, missing (stager) — counting those files; `landfall.rows.rejected` counts the bad
/// rows of a file staged despite them, and `landfall.rows.staged` its good ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_counted_by_outcome_and_rejected_rows_by_source() {
    let env = TestEnv::new().await;
    let receiver = OtlpReceiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = receiver.endpoint();
    let otel = export_to(&endpoint);
    let ingester = env.spawn_binary("ingester", &otel);
    env.wait_consuming("ingester", DEADLINE).await;
    let key = |file: &str| TestEnv::landing_key(DATE, file);
    // 20 good orders; 40 good shipments and one bad (2% < the 5% threshold: staged);
    // 10 reviews, 4 above the maximum (40%: the file is rejected); products deleted before
    // the stager gets to them (missing); a key no source maps (ignored).
    env.put(&key("orders.csv"), data::orders_csv(1, 20)).await;
    let mut shipments = data::shipments_csv(40);
    shipments.push_str("not-a-number,41,2026-02-01,\n");
    env.put(&key("shipment_deliveries.csv"), shipments).await;
    let mut reviews = String::from("review,product_id\n");
    for index in 0..10 {
        let review = if index < 4 { 9 } else { 4 };
        reviews.push_str(&format!("{review},{}\n", index + 1));
    }
    env.put(&key("reviews.csv"), reviews).await;
    env.put(
        &key("products.csv"),
        "product_id,product_category,product_name\n1,toys,ball\n",
    )
    .await;
    env.put(&key("notes.txt"), "not a dataset file").await;
    env.wait_count(
        "five files in the ledger",
        "SELECT count(*) FROM ops.files",
        5,
        DEADLINE,
    )
    .await;
    env.s3
        .delete_object()
        .bucket(BUCKET)
        .key(key("products.csv"))
        .send()
        .await
        .unwrap();
    let stager = env.spawn_binary("stager", &otel);
    env.wait_count(
        "every file finished",
        "SELECT count(*) FROM ops.files WHERE state IN ('staged', 'rejected', 'missing', 'ignored')",
        5,
        DEADLINE,
    )
    .await;
    assert_eq!(
        env.query_text(
            "SELECT source, state, rows_loaded::text, rows_rejected::text FROM ops.files
              WHERE source IS NOT NULL ORDER BY source"
        )
        .await,
        landfall_tests::rows(&[
            &["orders", "staged", "20", "0"],
            &["products", "missing", "0", "0"],
            &["reviews", "rejected", "0", "4"],
            &["shipment_deliveries", "staged", "40", "1"],
        ])
    );
    let expected: &[ExpectedValue] = &[
        ("ingester", "landfall.files", &[("outcome", "landed")], 4.0),
        ("ingester", "landfall.files", &[("outcome", "ignored")], 1.0),
        ("stager", "landfall.files", &[("outcome", "staged")], 2.0),
        ("stager", "landfall.files", &[("outcome", "rejected")], 1.0),
        ("stager", "landfall.files", &[("outcome", "missing")], 1.0),
        (
            "stager",
            "landfall.rows.rejected",
            &[("source", "shipment_deliveries")],
            1.0,
        ),
        (
            "stager",
            "landfall.rows.rejected",
            &[("source", "orders")],
            0.0,
        ),
        // The file rejected as a whole over the threshold: its 4 bad rows count too.
        (
            "stager",
            "landfall.rows.rejected",
            &[("source", "reviews")],
            4.0,
        ),
        (
            "stager",
            "landfall.rows.staged",
            &[("source", "shipment_deliveries")],
            40.0,
        ),
        (
            "stager",
            "landfall.rows.staged",
            &[("source", "orders")],
            20.0,
        ),
    ];
    wait_until("the counts by outcome and source", DEADLINE, || async {
        let got: Vec<Option<f64>> = expected
            .iter()
            .map(|(service, name, attributes, _)| receiver.metric_value(service, name, attributes))
            .collect();
        let want: Vec<Option<f64>> = expected.iter().map(|(.., value)| Some(*value)).collect();
        if got == want {
            Ok(Some(()))
        } else {
            anyhow::bail!("got {got:?}, want {want:?}")
        }
    })
    .await;
    // Outcomes are per dataset where the file has one.
    assert_eq!(
        receiver.metric_value(
            "stager",
            "landfall.files",
            &[("outcome", "staged"), ("dataset", "ecommerce")]
        ),
        Some(2.0)
    );
    assert!(ingester.terminate().await.success());
    assert!(stager.terminate().await.success());
    env.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// The dashboards against what the compose stack's Prometheus really scrapes.

fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// One query of a dashboard panel.
struct PanelQuery {
    dashboard: String,
    panel: String,
    expr: String,
}

impl std::fmt::Display for PanelQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} panel {:?}: {}",
            self.dashboard, self.panel, self.expr
        )
    }
}

/// Every query of every panel of `deploy/grafana/dashboards/*.json`; each dashboard has panels
/// and each panel's targets have a PromQL `expr`.
fn dashboard_queries() -> Vec<PanelQuery> {
    let mut queries = Vec::new();
    let mut dashboards = 0;
    for entry in std::fs::read_dir(deploy_dir().join("grafana/dashboards")).expect("dashboards") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        dashboards += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let dashboard: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("{name}: {error}"));
        let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
        assert!(!panels.is_empty(), "{name} has no panels");
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{name} panel {title:?} has no queries");
            for target in targets {
                let expr = target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} panel {title:?}: a target without expr"));
                queries.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: title.clone(),
                    expr: expr.to_owned(),
                });
            }
        }
    }
    assert!(dashboards >= 6, "an overview and one dashboard per service");
    queries
}

/// A metric a PromQL expression reads, with the label names its selector matches on plus the
/// labels the expression groups by (`by (…)`, `on (…)`, …).
#[derive(Debug)]
struct Selector {
    metric: String,
    labels: Vec<String>,
}

/// The metrics read by a PromQL expression. Enough of PromQL for dashboards: selectors with
/// matchers, function calls and aggregations, `by`/`without`/`on`/`ignoring`/`group_*` lists,
/// range selectors, numbers, strings, operators. Anything else fails the test loudly.
fn queried_metrics(expr: &str) -> Vec<Selector> {
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2"];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let skip_string = |mut i: usize| {
        let quote = chars[i];
        i += 1;
        while i < chars.len() && chars[i] != quote {
            i += if chars[i] == '\\' { 2 } else { 1 };
        }
        assert!(i < chars.len(), "unterminated string in {expr}");
        i + 1
    };
    let mut selectors = Vec::new();
    let mut grouping = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (is_part(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if c == '{' {
            panic!("a selector without a metric name in {expr}");
        } else if is_start(c) {
            let start = i;
            while i < chars.len() && is_part(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_space(i);
            if LABEL_LISTS.contains(&word.as_str()) {
                if chars.get(next) == Some(&'(') {
                    let close = chars[next..]
                        .iter()
                        .position(|&c| c == ')')
                        .map(|at| next + at)
                        .unwrap_or_else(|| panic!("unclosed label list in {expr}"));
                    let list: String = chars[next + 1..close].iter().collect();
                    grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|label| !label.is_empty())
                            .map(str::to_owned),
                    );
                    i = close + 1;
                }
            } else if KEYWORDS.contains(&word.as_str())
                || chars.get(next) == Some(&'(')
                || ["by", "without"].iter().any(|clause| {
                    let after = next + clause.len();
                    chars[next..].starts_with(&clause.chars().collect::<Vec<_>>())
                        && !chars.get(after).copied().is_some_and(is_part)
                })
            {
                // An operator keyword, a function being called, or an aggregation (`sum by (…)`).
            } else {
                let mut labels = Vec::new();
                if chars.get(next) == Some(&'{') {
                    i = next + 1;
                    loop {
                        i = skip_space(i);
                        match chars.get(i) {
                            Some('}') => break,
                            Some(',') => i += 1,
                            Some(&c) if is_start(c) => {
                                let start = i;
                                while i < chars.len() && is_part(chars[i]) {
                                    i += 1;
                                }
                                labels.push(chars[start..i].iter().collect());
                                i = skip_space(i);
                                while i < chars.len() && "=!~".contains(chars[i]) {
                                    i += 1;
                                }
                                i = skip_space(i);
                                assert!(
                                    chars.get(i).is_some_and(|&c| c == '"' || c == '\''),
                                    "a matcher without a quoted value in {expr}"
                                );
                                i = skip_string(i);
                            }
                            _ => panic!("cannot read the selector of {word} in {expr}"),
                        }
                    }
                    i += 1;
                }
                selectors.push(Selector {
                    metric: word,
                    labels,
                });
            }
        } else {
            i += 1;
        }
    }
    for selector in &mut selectors {
        selector.labels.extend(grouping.iter().cloned());
    }
    selectors
}

/// A scrape job of `deploy/prometheus.yml`.
#[derive(Debug)]
struct ScrapeJob {
    name: String,
    metrics_path: String,
    families: Vec<String>,
    targets: Vec<String>,
}

/// The scrape jobs of `deploy/prometheus.yml`. The test crate has no YAML parser, so this reads
/// the file's own shape: `- job_name:`, `metrics_path:`, `family: [a, b]` under `params:`, and
/// `targets: ["host:port"]`, lists in flow style; another shape fails here, loudly.
fn scrape_jobs(yaml: &str) -> Vec<ScrapeJob> {
    let flow_list = |value: &str, key: &str| -> Vec<String> {
        let value = value.trim();
        let inner = value
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or_else(|| {
                panic!("prometheus.yml: write `{key}` as a flow list ([a, b]), not {value:?}")
            });
        inner
            .split(',')
            .map(|item| item.trim().trim_matches('"').trim_matches('\'').to_owned())
            .filter(|item| !item.is_empty())
            .collect()
    };
    let mut jobs: Vec<ScrapeJob> = Vec::new();
    for line in yaml.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("- job_name:") {
            jobs.push(ScrapeJob {
                name: name.trim().trim_matches('"').to_owned(),
                metrics_path: "/metrics".into(),
                families: Vec::new(),
                targets: Vec::new(),
            });
            continue;
        }
        let Some(job) = jobs.last_mut() else {
            continue;
        };
        if let Some(path) = line.strip_prefix("metrics_path:") {
            job.metrics_path = path.trim().trim_matches('"').to_owned();
        } else if let Some(list) = line.strip_prefix("family:") {
            job.families = flow_list(list, "family");
        } else if let Some(list) = line
            .strip_prefix("- targets:")
            .or_else(|| line.strip_prefix("targets:"))
        {
            job.targets.extend(flow_list(list, "targets"));
        }
    }
    jobs
}

/// What RabbitMQ's `/metrics/detailed` endpoint exposes per metric family (rabbitmq-server,
/// `deps/rabbitmq_prometheus/metrics-detailed.md`), for the queue families: metric names, all
/// labelled `vhost` and `queue`. The default `/metrics` endpoint has no `queue` label at all.
const RABBITMQ_DETAILED_QUEUE_FAMILIES: &[(&str, &[&str])] = &[
    (
        "queue_coarse_metrics",
        &[
            "rabbitmq_detailed_queue_messages_ready",
            "rabbitmq_detailed_queue_messages_unacked",
            "rabbitmq_detailed_queue_messages",
            "rabbitmq_detailed_queue_process_reductions_total",
        ],
    ),
    (
        "queue_consumer_count",
        &["rabbitmq_detailed_queue_consumers"],
    ),
];
const RABBITMQ_QUEUE_LABELS: &[&str] = &["vhost", "queue"];

/// The collector's spanmetrics connector (default namespace `traces.span.metrics`) through its
/// Prometheus exporter: the series and their labels (`service.name`, `span.name`, `span.kind`,
/// `status.code`, plus the resource attributes `resource_to_telemetry_conversion` adds).
const SPAN_METRICS: &[&str] = &[
    "traces_span_metrics_calls_total",
    "traces_span_metrics_duration_milliseconds_bucket",
    "traces_span_metrics_duration_milliseconds_sum",
    "traces_span_metrics_duration_milliseconds_count",
];

#[test]
fn every_metric_a_dashboard_charts_is_one_prometheus_scrapes() {
    let deploy = deploy_dir();
    let prometheus = std::fs::read_to_string(deploy.join("prometheus.yml")).unwrap();
    let jobs = scrape_jobs(&prometheus);
    let collector = std::fs::read_to_string(deploy.join("otel-collector.yaml")).unwrap();
    let compose = std::fs::read_to_string(deploy.join("compose.yaml")).unwrap();

    // RabbitMQ's per-queue metrics: a job scraping /metrics/detailed on the rabbitmq service's
    // plugin port, for the families whose metrics the panels use.
    let rabbitmq_jobs: Vec<&ScrapeJob> = jobs
        .iter()
        .filter(|job| job.targets.iter().any(|target| target == "rabbitmq:15692"))
        .collect();
    let mut rabbitmq_metrics: Vec<&str> = Vec::new();
    for job in &rabbitmq_jobs {
        if job.metrics_path != "/metrics/detailed" {
            continue;
        }
        for family in &job.families {
            let (_, metrics) = RABBITMQ_DETAILED_QUEUE_FAMILIES
                .iter()
                .find(|(name, _)| name == family)
                .unwrap_or_else(|| {
                    panic!("job {}: family {family} is not a queue family", job.name)
                });
            rabbitmq_metrics.extend(metrics.iter().copied());
        }
    }
    // The plugin is enabled in the compose stack's broker, by a file the service mounts.
    let plugins = std::fs::read_to_string(deploy.join("rabbitmq/enabled_plugins"))
        .expect("deploy/rabbitmq/enabled_plugins");
    assert!(
        plugins.contains("rabbitmq_prometheus") && plugins.trim_end().ends_with("]."),
        "enabled_plugins must list rabbitmq_prometheus: {plugins}"
    );
    assert!(
        compose.contains("./rabbitmq/enabled_plugins:/etc/rabbitmq/enabled_plugins:ro"),
        "compose.yaml's rabbitmq service must mount deploy/rabbitmq/enabled_plugins"
    );

    // The collector: its Prometheus exporter's port is scraped, and it derives span metrics.
    assert!(
        collector.contains("endpoint: 0.0.0.0:8889")
            && jobs.iter().any(|job| job.metrics_path == "/metrics"
                && job.targets.iter().any(|t| t == "otel-collector:8889")),
        "prometheus.yml must scrape the collector's Prometheus exporter (otel-collector:8889): {jobs:?}"
    );
    let span_metrics = collector.contains("spanmetrics:");

    let mut rabbitmq_charted = 0;
    for query in dashboard_queries() {
        let selectors = queried_metrics(&query.expr);
        assert!(!selectors.is_empty(), "{query}: reads no metric");
        for selector in selectors {
            let metric = selector.metric.as_str();
            if metric.starts_with("landfall_") {
                // Checked against what the services really export in
                // one_file_is_one_trace_across_all_five_services.
            } else if metric.starts_with("rabbitmq_") {
                assert!(
                    rabbitmq_metrics.contains(&metric),
                    "{query}: charts {metric}, which no scrape of RabbitMQ gives \
                     (scraped families give {rabbitmq_metrics:?}; jobs {rabbitmq_jobs:?})"
                );
                for label in &selector.labels {
                    assert!(
                        RABBITMQ_QUEUE_LABELS.contains(&label.as_str()),
                        "{query}: {metric} has no label {label} (only {RABBITMQ_QUEUE_LABELS:?})"
                    );
                }
                rabbitmq_charted += 1;
            } else if metric.starts_with("traces_span_metrics_") {
                assert!(
                    span_metrics && SPAN_METRICS.contains(&metric),
                    "{query}: charts {metric}, which the collector's spanmetrics connector does not give"
                );
            } else {
                panic!(
                    "{query}: charts {metric}, which is neither landfall's, RabbitMQ's nor the collector's"
                );
            }
        }
    }
    // Every service dashboard charts its queue's depth and its dead-letter queue's.
    assert!(rabbitmq_charted >= 10, "{rabbitmq_charted} RabbitMQ series");
}

#[test]
fn the_promql_reader_finds_metrics_and_labels() {
    let found = queried_metrics(
        r#"histogram_quantile(0.99, sum by (le, service) (rate(landfall_stage_duration_seconds_bucket{service="x", kind=~"a\"}b"}[5m]))) + on (queue) rabbitmq_detailed_queue_messages offset 5m"#,
    );
    let found: Vec<(&str, Vec<&str>)> = found
        .iter()
        .map(|s| {
            (
                s.metric.as_str(),
                s.labels.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "landfall_stage_duration_seconds_bucket",
                vec!["service", "kind", "le", "service", "queue"]
            ),
            (
                "rabbitmq_detailed_queue_messages",
                vec!["le", "service", "queue"]
            ),
        ]
    );
}
