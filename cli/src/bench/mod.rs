//! `landfall bench <name>`: performance figures measured against their baselines in the same
//! run. Each run sets up its own world — a database `landfall_bench_<random>` (dropped at the
//! end), its own exchange/queue prefix, the embedded S3 server in a temporary folder — runs the
//! real service binaries next to this one as processes, prints a table (figure, value,
//! baseline, ratio, goal, met?) and writes the same as JSON. Figures are reported, never
//! asserted: a goal that is not met does not make the command fail.
//!
//! One file per benchmark (`stage`, `latency`, `memory`, `files`, `events`, `batch`, `steady`
//! with the snapshot history it generates in `history`, `extract`); `env` is
//! the bench's world (database, prefix, S3 server, services, psql); this file holds the
//! arguments, the `psql \copy` baselines the benchmarks share, and the table and JSON output.

mod batch;
mod env;
mod events;
mod extract;
mod files;
mod history;
mod latency;
mod memory;
mod stage;
mod steady;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use serde::ser::SerializeMap as _;
use serde::{Serialize, Serializer};

use crate::table::Table;
use env::BenchEnv;

const ACCESS_KEY: &str = "landfall-bench";
const SECRET_KEY: &str = "landfall-bench-secret";
const BUCKET: &str = "landfall-bench";
const ORDERS_HEADER: &str =
    "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchName {
    /// An N-row orders.csv from S3 into staging, against `psql \copy` of the same file.
    Stage,
    /// 1k-order batches (three files): last PUT → exported, p50 and p99.
    Latency,
    /// The stager's peak RSS while loading a large CSV.
    Memory,
    /// Many small files landed at once → all staged, two stager processes.
    Files,
    /// Events/s through the ingester's consume → commit → outbox → publish path.
    Events,
    /// 1M orders + 0.5M reviews + 0.9M shipments: PUT → exported, all five services.
    Batch,
    /// A table of --bytes in a source database extracted to a gzip landing file, against
    /// `psql \copy (SELECT …) TO PROGRAM 'gzip > file'`; and the extractor's peak RSS.
    Extract,
    /// Day 1 and day 2 of a snapshot history (day 2: day 1 and a few percent changed), each
    /// day's last PUT → exported against `psql \copy` of that day's files.
    Steady,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[arg(value_enum)]
    pub name: BenchName,
    /// stage: rows in the generated orders.csv.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// stage, extract: runs of `psql \copy` and of the stager (extractor), alternating; batch: batches, each in a
    /// database, broker prefix and S3 server of its own with its own `psql \copy` baseline.
    /// Their medians are compared.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// latency: measured batches (after one warm-up batch).
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// memory: size of the generated orders.csv in bytes; extract: size of the source table.
    #[arg(long, default_value_t = 1 << 30)]
    pub bytes: u64,
    /// files: how many small files to land at once.
    #[arg(long, default_value_t = 1000)]
    pub files: usize,
    /// events: notifications pre-loaded into the ingester's queue.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// batch: orders in the batch (reviews are half of it, shipments as generated, ~0.9 of it);
    /// steady: orders on day 1 (one shipment each).
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: i64,
    /// steady: reviews per order on day 1.
    #[arg(long, default_value_t = 3.0)]
    pub reviews_per_order: f64,
    /// steady: the percentage of each source's rows new or changed on day 2.
    #[arg(long, default_value_t = 2.0)]
    pub change: f64,
    /// Where to write the JSON (default target/bench/<name>.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The PostgreSQL server's maintenance database (the bench database is created next to it).
    #[arg(
        long,
        env = "LANDFALL_BENCH_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_url: String,
    /// RabbitMQ the bench's services and events use (a prefix of its own is made up).
    #[arg(
        long,
        env = "LANDFALL_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// Folder of the datasets: one folder per dataset with its definition, SQL models, checks
    /// and exports.
    #[arg(long, env = "LANDFALL_DATASETS_DIR", default_value = "datasets")]
    pub datasets_dir: PathBuf,
    /// Keep the bench's database under this name instead of dropping it (for EXPLAIN ANALYZE
    /// of its models and checks afterwards); drop it yourself when done.
    #[arg(long, value_name = "NAME")]
    pub keep_database: Option<String>,
    /// Give up on a stage of the benchmark after this long.
    #[arg(long, default_value_t = 1800)]
    pub timeout_s: u64,
}

/// One measured figure and its baseline.
struct Figure {
    figure: String,
    unit: &'static str,
    value: f64,
    baseline: Option<f64>,
    baseline_label: String,
    /// The goal in words and whether it is met.
    goal: Option<(String, bool)>,
}

impl Figure {
    fn ratio(&self) -> Option<f64> {
        self.baseline
            .filter(|baseline| *baseline > 0.0)
            .map(|baseline| self.value / baseline)
    }
}

struct Report {
    bench: &'static str,
    params: Vec<(&'static str, String)>,
    figures: Vec<Figure>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let env = BenchEnv::new(&args).await?;
    println!(
        "Bench env     database {}, AMQP prefix {}, S3 {} (in {})",
        env.scratch.database.name,
        env.scratch.broker.prefix,
        env.scratch.s3.endpoint_url(),
        env.work_dir.display()
    );
    let result = match args.name {
        BenchName::Stage => stage::bench_stage(&env, &args).await,
        BenchName::Latency => latency::bench_latency(&env, &args).await,
        BenchName::Memory => memory::bench_memory(&env, &args).await,
        BenchName::Files => files::bench_files(&env, &args).await,
        BenchName::Events => events::bench_events(&env, &args).await,
        BenchName::Batch => batch::bench_batch_runs(&env, &args).await,
        BenchName::Steady => steady::bench_steady(&env, &args).await,
        BenchName::Extract => extract::bench_extract(&env, &args).await,
    };
    env.cleanup(args.keep_database.as_deref()).await;
    let report = result?;
    println!();
    print!("{}", render_table(&report));
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/bench/{}.json", report.bench)));
    if let Some(parent) = json_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&json_path, render_json(&report)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("JSON          {}", json_path.display());
    Ok(())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// The typed orders table `psql \copy` loads as a baseline (primary key on the natural key, as
/// in staging).
const ORDERS_TABLE: &str = "CREATE TABLE bench_psql_orders (
     order_id int PRIMARY KEY, customer_id int NOT NULL, order_date date NOT NULL,
     product_id int NOT NULL, unit_price numeric(12,2) NOT NULL,
     quantity int NOT NULL, total_price numeric(12,2) NOT NULL)";

/// Typed tables like the staging ones (primary key on the natural key) for `psql \copy` of a
/// batch's three files.
fn batch_tables() -> String {
    format!(
        "{ORDERS_TABLE};
         CREATE TABLE bench_psql_reviews (review smallint, product_id int NOT NULL);
         CREATE TABLE bench_psql_shipment_deliveries (
             shipment_id int PRIMARY KEY, order_id int NOT NULL, shipment_date date,
             delivery_date date);"
    )
}

const DROP_BATCH_TABLES: &str =
    "DROP TABLE bench_psql_orders, bench_psql_reviews, bench_psql_shipment_deliveries";

/// `psql \copy` of a batch's files into new typed tables with keys ([`batch_tables`]), after
/// a checkpoint, one psql each ([`psql_copy_each`]); the seconds it took. The tables are
/// dropped after, with another checkpoint.
async fn psql_copy_into_new_tables(
    env: &BenchEnv,
    files: &[(&str, PathBuf)],
) -> anyhow::Result<f64> {
    env.db
        .batch_execute(&format!("{}\nCHECKPOINT;", batch_tables()))
        .await?;
    let took = psql_copy_each(env, files).await?.as_secs_f64();
    env.db
        .batch_execute(&format!("{DROP_BATCH_TABLES};\nCHECKPOINT;"))
        .await?;
    Ok(took)
}

/// `psql \copy` of each `(source, file)` into its `bench_psql_<source>` table, one psql each
/// (as a script would); the summed time.
async fn psql_copy_each(env: &BenchEnv, files: &[(&str, PathBuf)]) -> anyhow::Result<Duration> {
    let mut total = Duration::ZERO;
    for (source, path) in files {
        total += env
            .psql(&format!(
                "\\copy bench_psql_{source} FROM '{}' WITH (FORMAT csv, HEADER true)",
                path.display()
            ))
            .await?;
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// output

fn number(value: f64) -> String {
    if !value.is_finite() {
        "—".into()
    } else if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

fn render_table(report: &Report) -> String {
    let mut table = Table::new(&["figure", "value", "baseline", "ratio", "goal", "met?"]);
    for figure in &report.figures {
        table.row(vec![
            figure.figure.clone(),
            format!("{} {}", number(figure.value), figure.unit),
            match figure.baseline {
                Some(baseline) => format!(
                    "{} {} ({})",
                    number(baseline),
                    figure.unit,
                    figure.baseline_label
                ),
                None => "—".into(),
            },
            figure
                .ratio()
                .map(|ratio| format!("{ratio:.2}×"))
                .unwrap_or_else(|| "—".into()),
            figure
                .goal
                .as_ref()
                .map(|(goal, _)| goal.clone())
                .unwrap_or_else(|| "—".into()),
            match &figure.goal {
                Some((_, true)) => "yes".into(),
                Some((_, false)) => "NO".into(),
                None => "—".into(),
            },
        ]);
    }
    table.render()
}

/// The JSON file: the report with when and on what kind of machine it was measured.
#[derive(Serialize)]
struct JsonReport<'a> {
    bench: &'static str,
    measured_at: String,
    machine: Machine,
    #[serde(serialize_with = "params_object")]
    params: &'a [(&'static str, String)],
    figures: Vec<JsonFigure<'a>>,
}

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    kernel: String,
    profile: &'static str,
}

/// A figure as written to JSON; a number that is not finite is written `null`.
#[derive(Serialize)]
struct JsonFigure<'a> {
    figure: &'a str,
    unit: &'static str,
    value: Option<f64>,
    baseline: Option<f64>,
    baseline_label: &'a str,
    ratio: Option<f64>,
    goal: Option<&'a str>,
    met: Option<bool>,
}

/// The parameters as one JSON object, in their order.
fn params_object<S: Serializer>(
    params: &&[(&'static str, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(params.len()))?;
    for (name, value) in params.iter() {
        map.serialize_entry(name, value)?;
    }
    map.end()
}

fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|value| value.is_finite())
}

fn render_json(report: &Report) -> anyhow::Result<String> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let json = JsonReport {
        bench: report.bench,
        measured_at: Utc::now().to_rfc3339(),
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: kernel.trim().to_owned(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        },
        params: &report.params,
        figures: report
            .figures
            .iter()
            .map(|figure| JsonFigure {
                figure: &figure.figure,
                unit: figure.unit,
                value: finite(Some(figure.value)),
                baseline: finite(figure.baseline),
                baseline_label: &figure.baseline_label,
                ratio: finite(figure.ratio()),
                goal: figure.goal.as_ref().map(|(goal, _)| goal.as_str()),
                met: figure.goal.as_ref().map(|(_, met)| *met),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&json)?;
    text.push('\n');
    Ok(text)
}
