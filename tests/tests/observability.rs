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
