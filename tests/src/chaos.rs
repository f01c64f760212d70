//! The fault harness: the five service binaries as processes, a supervisor that restarts
//! whatever dies, fault injection (kills, outages, duplicate notifications), and the
//! comparison of a run's final tables and exported files with a fault-free run of the same
//! input.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::env::{BUCKET, TestEnv, binary_path};

/// The five services, in pipeline order.
pub const SERVICES: [&str; 5] = [
    runtime::Stage::Ingester.name(),
    runtime::Stage::Stager.name(),
    runtime::Stage::Transformer.name(),
    runtime::Stage::QualityChecker.name(),
    runtime::Stage::Exporter.name(),
];

/// The report tables of the `ecommerce` dataset, compared row for row.
const REPORTS: [&str; 5] = [
    "analytics.agg_public_holiday",
    "analytics.agg_shipments",
    "analytics.best_performing_product",
    "analytics.sales_by_month",
    "analytics.top_products_by_revenue",
];

/// Tables whose row counts must match exactly (lost or doubled rows show here).
const COUNTED: [&str; 7] = [
    "warehouse.fact_orders",
    "warehouse.fact_shipments",
    "warehouse.fact_reviews",
    "warehouse.dim_customer",
    "warehouse.dim_product",
    "warehouse.dim_date",
    "ops.rejected_rows",
];

/// One day's landing files: (key, body).
pub struct Day {
    pub date: String,
    pub files: Vec<(String, Vec<u8>)>,
}

/// `landfall gen` output for `days` days of `orders` orders each (deterministic).
pub async fn generate(days: u32, orders: u32) -> Vec<Day> {
    let out = std::env::temp_dir().join(format!(
        "landfall-chaos-input-{:08x}",
        rand::random::<u32>()
    ));
    let status = Command::new(binary_path("landfall"))
        .args(["gen", "--days", &days.to_string()])
        .args(["--orders-per-day", &orders.to_string()])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .expect("running landfall gen");
    assert!(status.success(), "landfall gen failed");
    let mut dates: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("generated folder")
        .map(|entry| entry.expect("entry").path())
        .collect();
    dates.sort();
    let mut result = Vec::new();
    for dir in dates {
        let date = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .expect("a day's folder")
            .map(|entry| {
                let path = entry.expect("entry").path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (
                    TestEnv::landing_key(&date, &name),
                    std::fs::read(&path).expect("generated file"),
                )
            })
            .collect();
        files.sort();
        result.push(Day { date, files });
    }
    let _ = std::fs::remove_dir_all(&out);
    result
}

/// What the harness did to a run, printed at the end.
#[derive(Debug, Default)]
pub struct Injected {
    /// (seconds into the run, service, why) of every SIGKILL the harness sent.
    pub kills: Vec<(f64, &'static str, String)>,
    /// Processes that died at a crash point of `LANDFALL_FAULT_KILL`.
    pub crash_points: BTreeMap<String, usize>,
    /// Exits the harness did not cause: a service gave up (exit code) instead of riding out
    /// the fault. Each is a failure of the run.
    pub crashes: Vec<String>,
    /// Outages and other faults, in order.
    pub events: Vec<(f64, String)>,
    /// How the services noticed: log lines of transient failures retried and of lost
    /// connections re-made, per service.
    pub recoveries: BTreeMap<&'static str, (usize, usize)>,
}

impl Injected {
    pub fn print(&self, title: &str) {
        println!("── {title}: injected ──");
        for (at, service, why) in &self.kills {
            println!("  {at:7.2} s  SIGKILL {service:<16} {why}");
        }
        for (at, event) in &self.events {
            println!("  {at:7.2} s  {event}");
        }
        let points: usize = self.crash_points.values().sum();
        println!(
            "  {} harness kills, {} crash-point kills {:?}, {} unexpected exits",
            self.kills.len(),
            points,
            self.crash_points,
            self.crashes.len()
        );
        for (service, (retries, reconnects)) in &self.recoveries {
            if retries + reconnects > 0 {
                println!(
                    "  {service}: {retries} transient failures retried, {reconnects} connections re-made"
                );
            }
        }
        for crash in &self.crashes {
            println!("  unexpected exit: {crash}");
        }
    }
}

/// The five services as processes, restarted by a supervisor whenever one dies.
pub struct Fleet {
    spawner: Spawner,
    children: Arc<Mutex<HashMap<&'static str, Child>>>,
    pub injected: Arc<Mutex<Injected>>,
    started: Instant,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Fleet {
    /// Starts every service with `vars` (the test's variables plus overrides); each gets
    /// `application_name=<service>` in its database URL so `pg_stat_activity` shows who runs
    /// what.
    pub async fn start(vars: HashMap<String, String>, log_dir: &Path) -> Fleet {
        std::fs::create_dir_all(log_dir).expect("log folder");
        let spawner = Spawner {
            database_url: vars["LANDFALL_DATABASE_URL"].clone(),
            vars,
            log_dir: log_dir.to_owned(),
        };
        let children: HashMap<&'static str, Child> = SERVICES
            .iter()
            .map(|&service| (service, spawner.spawn(service)))
            .collect();
        let children = Arc::new(Mutex::new(children));
        let injected = Arc::new(Mutex::new(Injected::default()));
        let supervisor = tokio::spawn(supervise(
            children.clone(),
            injected.clone(),
            spawner.clone(),
        ));
        Fleet {
            spawner,
            children,
            injected,
            started: Instant::now(),
            supervisor,
        }
    }

    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// SIGKILL `service` and start it again at once.
    pub async fn kill(&self, service: &'static str, why: impl Into<String>) {
        let mut children = self.children.lock().await;
        if let Some(mut child) = children.remove(service) {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        children.insert(service, self.spawner.spawn(service));
        drop(children);
        self.injected
            .lock()
            .await
            .kills
            .push((self.elapsed(), service, why.into()));
    }

    pub async fn note(&self, event: impl Into<String>) {
        let at = self.elapsed();
        let event = event.into();
        println!("  {at:7.2} s  {event}");
        self.injected.lock().await.events.push((at, event));
    }

    /// Stops the supervisor, then SIGTERMs every service and waits for it to drain; returns
    /// what was injected. The crash-point counts come from the services' logs.
    pub async fn stop(self) -> Injected {
        self.supervisor.abort();
        let _ = self.supervisor.await;
        let mut children = self.children.lock().await;
        for child in children.values() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
        let mut injected = std::mem::take(&mut *self.injected.lock().await);
        for (service, child) in children.iter_mut() {
            match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(status) => injected
                    .crashes
                    .push(format!("{service} ended badly after SIGTERM: {status:?}")),
                Err(_) => {
                    injected
                        .crashes
                        .push(format!("{service} did not drain within 30 s of SIGTERM"));
                    let _ = child.kill().await;
                }
            }
        }
        for service in SERVICES {
            let log = std::fs::read_to_string(self.spawner.log_dir.join(format!("{service}.log")))
                .unwrap_or_default();
            let retries = log.matches("transient failure; retrying").count();
            let reconnects =
                log.matches("reconnecting").count() + log.matches("lost its connection").count();
            injected.recoveries.insert(service, (retries, reconnects));
            for line in log.lines() {
                if let Some(point) = line.strip_prefix("landfall fault injection: SIGKILL at ") {
                    *injected.crash_points.entry(point.to_owned()).or_default() += 1;
                }
            }
        }
        injected
    }
}

#[derive(Clone)]
struct Spawner {
    vars: HashMap<String, String>,
    database_url: String,
    log_dir: PathBuf,
}

impl Spawner {
    fn spawn(&self, service: &'static str) -> Child {
        let log_path = self.log_dir.join(format!("{service}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("service log");
        let separator = if self.database_url.contains('?') {
            '&'
        } else {
            '?'
        };
        Command::new(binary_path(service))
            .env_clear()
            .envs(&self.vars)
            .env(
                "LANDFALL_DATABASE_URL",
                format!("{}{separator}application_name={service}", self.database_url),
            )
            .env("RUST_LOG", "info")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {service}: {error}"))
    }
}

/// Restarts whatever died; an exit that was not a SIGKILL (a crash point's or ours) is an
/// unexpected exit and is recorded.
async fn supervise(
    children: Arc<Mutex<HashMap<&'static str, Child>>>,
    injected: Arc<Mutex<Injected>>,
    spawner: Spawner,
) {
    use std::os::unix::process::ExitStatusExt;
    loop {
        {
            let mut children = children.lock().await;
            for service in SERVICES {
                let Some(child) = children.get_mut(service) else {
                    continue;
                };
                let Ok(Some(status)) = child.try_wait() else {
                    continue;
                };
                if status.signal() != Some(SIGKILL) {
                    let log =
                        std::fs::read_to_string(spawner.log_dir.join(format!("{service}.log")))
                            .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(3).collect();
                    injected
                        .lock()
                        .await
                        .crashes
                        .push(format!("{service} exited ({status}): {tail:?}"));
                }
                children.insert(service, spawner.spawn(service));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The signal number of SIGKILL on Linux.
const SIGKILL: i32 = 9;

/// A fresh connection for each check: the harness's own connections must survive
/// PostgreSQL restarts too.
pub async fn connect(database_url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// PUTs every file of `day` (each PUT returns after its notification is in RabbitMQ).
pub async fn land(env: &TestEnv, day: &Day) {
    for (key, body) in &day.files {
        env.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|error| panic!("putting {key}: {error:?}"));
    }
}

/// Waits until every batch is exported, the outbox is empty and no queue of the run holds a
/// message (ready or unacknowledged): the run is over, nothing is still in flight.
pub async fn wait_finished(env: &TestEnv, batches: usize, deadline: Duration) {
    let database_url = env.database_url.clone();
    let prefix = env.prefix.clone();
    crate::wait_until(
        "every batch exported and the pipeline idle",
        deadline,
        || {
            let database_url = database_url.clone();
            let prefix = prefix.clone();
            async move {
                let db = connect(&database_url).await?;
                let row = db
                    .query_one(
                        "SELECT (SELECT count(*) FROM ops.batches WHERE state = 'exported'),
                            (SELECT count(*) FROM ops.outbox WHERE sent_at IS NULL),
                            (SELECT count(*) FROM ops.files WHERE state = 'landed')",
                        &[],
                    )
                    .await?;
                let (exported, unsent, landed): (i64, i64, i64) =
                    (row.get(0), row.get(1), row.get(2));
                if exported as usize != batches || unsent != 0 || landed != 0 {
                    anyhow::bail!(
                        "{exported} of {batches} batches exported, {unsent} outbox rows unsent, \
                     {landed} files not yet staged"
                    );
                }
                let dead = dead_letters(&prefix).await?;
                if !dead.is_empty() {
                    // Never comes back on its own: fail now, not at the deadline.
                    panic!("messages were dead-lettered during the run: {dead:?}");
                }
                let busy = busy_queues(&prefix).await?;
                if !busy.is_empty() {
                    anyhow::bail!("queues still holding messages: {busy:?}");
                }
                Ok(Some(()))
            }
        },
    )
    .await
}

/// Dead-letter queues of the prefix that hold messages.
async fn dead_letters(prefix: &str) -> anyhow::Result<Vec<String>> {
    Ok(queue_depths(prefix)
        .await?
        .into_iter()
        .filter(|(name, messages)| name.ends_with(".dlq") && *messages > 0)
        .map(|(name, messages)| format!("{name}={messages}"))
        .collect())
}

/// Work queues of the prefix with messages ready or unacknowledged.
async fn busy_queues(prefix: &str) -> anyhow::Result<Vec<String>> {
    Ok(queue_depths(prefix)
        .await?
        .into_iter()
        .filter(|(name, messages)| !name.ends_with(".dlq") && *messages > 0)
        .map(|(name, messages)| format!("{name}={messages}"))
        .collect())
}

/// (queue, messages ready + unacknowledged) of the prefix's queues (`rabbitmqctl list_queues`).
async fn queue_depths(prefix: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let output = Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            "messages",
        ])
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "rabbitmqctl list_queues failed");
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (name, messages) = (parts.next()?, parts.next()?);
            name.starts_with(&format!("{prefix}."))
                .then(|| Some((name.to_owned(), messages.parse().ok()?)))
                .flatten()
        })
        .collect())
}

/// What a finished run produced, in a form two runs can be compared in.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Report tables, every row as text, sorted.
    pub reports: BTreeMap<String, Vec<String>>,
    /// Exported CSVs byte for byte; manifests without the fields that name the run
    /// (`exported_at`, `quality_event_id`, ledger `file_id`s).
    pub exports: BTreeMap<String, Vec<u8>>,
    /// Row counts that expose lost or doubled rows.
    pub counts: BTreeMap<String, i64>,
    /// The dimensions' versions without their surrogate keys, sorted: not compared on their
    /// own (the counts are), but listed when a dimension's count differs, to say which
    /// versions.
    pub versions: BTreeMap<String, Vec<String>>,
}

/// The type-2 dimensions and their surrogate key columns.
const DIMENSIONS: [(&str, &str); 2] = [
    ("warehouse.dim_customer", "customer_key"),
    ("warehouse.dim_product", "product_key"),
];

impl Outcome {
    pub async fn collect(env: &TestEnv) -> Outcome {
        let db = connect(&env.database_url).await.expect("database");
        let mut reports = BTreeMap::new();
        for table in REPORTS {
            let rows = db
                .query(&format!("SELECT t::text FROM {table} t ORDER BY 1"), &[])
                .await
                .unwrap_or_else(|error| panic!("{table}: {error}"));
            reports.insert(
                table.to_owned(),
                rows.iter().map(|row| row.get::<_, String>(0)).collect(),
            );
        }
        let mut counts = BTreeMap::new();
        for table in COUNTED {
            let count: i64 = db
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap_or_else(|error| panic!("{table}: {error}"))
                .get(0);
            counts.insert(table.to_owned(), count);
        }
        // Every staged row once: no file loaded twice, no line twice.
        let staging = db
            .query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging'
                  ORDER BY 1",
                &[],
            )
            .await
            .expect("staging tables");
        for row in staging {
            let table: String = row.get(0);
            let count = db
                .query_one(
                    &format!(
                        "SELECT count(*), count(DISTINCT (_file_id, _line)) FROM staging.{table}"
                    ),
                    &[],
                )
                .await
                .expect("staging count");
            let (rows, distinct): (i64, i64) = (count.get(0), count.get(1));
            counts.insert(format!("staging.{table}"), rows);
            counts.insert(format!("staging.{table} duplicate lines"), rows - distinct);
            // Rows a killed attempt's second COPY connection committed are removed by the
            // retry: none are left behind the view.
            let hidden: i64 = db
                .query_one(
                    &format!(
                        "SELECT (SELECT count(*) FROM staging_rows.{table}) - (SELECT count(*) FROM staging.{table})"
                    ),
                    &[],
                )
                .await
                .expect("staging_rows count")
                .get(0);
            counts.insert(
                format!("staging_rows.{table} rows of files not staged"),
                hidden,
            );
        }
        for row in db
            .query(
                "SELECT state, count(*) FROM ops.files GROUP BY state ORDER BY state",
                &[],
            )
            .await
            .expect("ledger")
        {
            counts.insert(
                format!("ops.files state={}", row.get::<_, String>(0)),
                row.get(1),
            );
        }
        let duplicate_versions: i64 = db
            .query_one(
                "SELECT count(*) - count(DISTINCT (bucket, key, version)) FROM ops.files",
                &[],
            )
            .await
            .expect("ledger duplicates")
            .get(0);
        counts.insert("ops.files duplicate versions".into(), duplicate_versions);
        let mut exports = BTreeMap::new();
        let mut token = None;
        loop {
            let page = env
                .s3
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix("analytics_export/")
                .set_continuation_token(token.take())
                .send()
                .await
                .expect("listing exports");
            for object in page.contents() {
                let key = object.key().unwrap_or_default().to_owned();
                let body = env
                    .s3
                    .get_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .send()
                    .await
                    .expect("export object")
                    .body
                    .collect()
                    .await
                    .expect("export body")
                    .into_bytes()
                    .to_vec();
                let body = if key.ends_with(".json") {
                    comparable_manifest(&body)
                } else {
                    body
                };
                exports.insert(key, body);
            }
            match page.next_continuation_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        let mut versions = BTreeMap::new();
        for (table, key) in DIMENSIONS {
            let rows = db
                .query(
                    &format!("SELECT (to_jsonb(t) - '{key}')::text FROM {table} t ORDER BY 1"),
                    &[],
                )
                .await
                .unwrap_or_else(|error| panic!("{table}: {error}"));
            versions.insert(
                table.to_owned(),
                rows.iter().map(|row| row.get::<_, String>(0)).collect(),
            );
        }
        Outcome {
            reports,
            exports,
            counts,
            versions,
        }
    }

    /// Every difference, as lines a person can read; empty when the runs agree.
    pub fn differences(&self, baseline: &Outcome) -> Vec<String> {
        let mut differences = Vec::new();
        for (table, rows) in &baseline.reports {
            let other = self.reports.get(table).cloned().unwrap_or_default();
            if &other != rows {
                let missing: Vec<&String> =
                    rows.iter().filter(|row| !other.contains(row)).collect();
                let extra: Vec<&String> = other.iter().filter(|row| !rows.contains(row)).collect();
                differences.push(format!(
                    "{table}: {} rows vs {} in the fault-free run; missing {missing:?}, extra {extra:?}",
                    other.len(),
                    rows.len()
                ));
            }
        }
        let keys: std::collections::BTreeSet<&String> =
            baseline.exports.keys().chain(self.exports.keys()).collect();
        for key in keys {
            match (baseline.exports.get(key), self.exports.get(key)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(_), Some(b)) => differences.push(format!(
                    "{key}: differs from the fault-free run ({} bytes): {}",
                    b.len(),
                    String::from_utf8_lossy(&b[..b.len().min(300)])
                )),
                (Some(_), None) => differences.push(format!("{key}: not exported")),
                (None, Some(_)) => differences.push(format!("{key}: exported only under faults")),
                (None, None) => {}
            }
        }
        let names: std::collections::BTreeSet<&String> =
            baseline.counts.keys().chain(self.counts.keys()).collect();
        for name in names {
            let (a, b) = (
                baseline.counts.get(name).copied().unwrap_or(0),
                self.counts.get(name).copied().unwrap_or(0),
            );
            if a != b {
                let mut line = format!("{name}: {b} rows vs {a} in the fault-free run");
                if let (Some(ours), Some(theirs)) =
                    (self.versions.get(name), baseline.versions.get(name))
                {
                    let missing: Vec<&String> = theirs
                        .iter()
                        .filter(|row| !ours.contains(row))
                        .take(20)
                        .collect();
                    let extra: Vec<&String> = ours
                        .iter()
                        .filter(|row| !theirs.contains(row))
                        .take(20)
                        .collect();
                    line.push_str(&format!("; missing {missing:?}, extra {extra:?}"));
                }
                differences.push(line);
            }
        }
        differences
    }

    /// One line on what was compared.
    pub fn summary(&self) -> String {
        let rows: usize = self.reports.values().map(Vec::len).sum();
        let bytes: usize = self.exports.values().map(Vec::len).sum();
        format!(
            "{} report tables ({rows} rows), {} exported objects ({bytes} bytes), {} row counts",
            self.reports.len(),
            self.exports.len(),
            self.counts.len()
        )
    }
}

fn comparable_manifest(body: &[u8]) -> Vec<u8> {
    let mut manifest: serde_json::Value = serde_json::from_slice(body).expect("manifest is JSON");
    if let Some(object) = manifest.as_object_mut() {
        object.remove("exported_at");
        object.remove("quality_event_id");
        if let Some(files) = object
            .get_mut("source_files")
            .and_then(|files| files.as_array_mut())
        {
            for file in files {
                if let Some(file) = file.as_object_mut() {
                    file.remove("file_id");
                }
            }
        }
    }
    serde_json::to_vec_pretty(&manifest).expect("manifest")
}

/// `rabbitmqctl <args>`, failing the test if it fails.
pub async fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("running rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Restarts the local PostgreSQL cluster (every connection to it is dropped).
pub async fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .max()
        .expect("a PostgreSQL cluster");
    let output = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .output()
        .await
        .expect("running pg_ctlcluster");
    assert!(
        output.status.success(),
        "pg_ctlcluster restart: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
