//! `landfall bench <name>`: performance figures measured against their baselines in the same
//! run. Each run sets up its own world — a database `landfall_bench_<random>` (dropped at the
//! end), its own exchange/queue prefix, the embedded S3 server in a temporary folder — runs the
//! real service binaries next to this one as processes, prints a table (figure, value,
//! baseline, ratio, goal, met?) and writes the same as JSON. Figures are reported, never
//! asserted: a goal that is not met does not make the command fail.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{NaiveDate, Utc};
use s3dev::{NotifyConfig, S3DevConfig, S3DevServer};

use crate::demo::Services;
use crate::table::Table;

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
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[arg(value_enum)]
    pub name: BenchName,
    /// stage: rows in the generated orders.csv.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// stage: runs of `psql \copy` and of the stager, alternating; batch: batches, each in a
    /// database, broker prefix and S3 server of its own with its own `psql \copy` baseline.
    /// Their medians are compared.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// latency: measured batches (after one warm-up batch).
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// memory: size of the generated orders.csv in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    pub bytes: u64,
    /// files: how many small files to land at once.
    #[arg(long, default_value_t = 1000)]
    pub files: usize,
    /// events: notifications pre-loaded into the ingester's queue.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// batch: orders in the batch (reviews are half of it, shipments as generated, ~0.9 of it).
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: i64,
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
    /// Folder of the dataset definitions.
    #[arg(long, env = "LANDFALL_DATASETS_DIR", default_value = "datasets")]
    pub datasets_dir: PathBuf,
    /// Folder of the SQL models, checks and exports (`<dir>/<dataset>/`).
    #[arg(long, env = "LANDFALL_MODELS_DIR", default_value = "sql/models")]
    pub models_dir: PathBuf,
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
        env.database,
        env.prefix,
        env.endpoint,
        env.work_dir.display()
    );
    let result = match args.name {
        BenchName::Stage => bench_stage(&env, &args).await,
        BenchName::Latency => bench_latency(&env, &args).await,
        BenchName::Memory => bench_memory(&env, &args).await,
        BenchName::Files => bench_files(&env, &args).await,
        BenchName::Events => bench_events(&env, &args).await,
        BenchName::Batch => bench_batch_runs(&env, &args).await,
    };
    env.cleanup().await;
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
    std::fs::write(&json_path, render_json(&report))
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("JSON          {}", json_path.display());
    Ok(())
}

/// The bench's private database, broker prefix and S3 server.
struct BenchEnv {
    database: String,
    database_url: String,
    admin_url: String,
    amqp_url: String,
    prefix: String,
    endpoint: String,
    work_dir: PathBuf,
    server: S3DevServer,
    s3: aws_sdk_s3::Client,
    db: tokio_postgres::Client,
    vars: HashMap<String, String>,
    timeout: Duration,
}

impl BenchEnv {
    async fn new(args: &BenchArgs) -> anyhow::Result<BenchEnv> {
        let suffix = format!("{:08x}", rand::random::<u32>());
        let database = format!("landfall_bench_{suffix}");
        let prefix = format!("landfall-bench-{suffix}");
        let work_dir = std::env::temp_dir().join(format!("landfall-bench-{suffix}"));
        let admin_config =
            runtime::db::PgTarget::parse(&args.admin_url).context("--admin-url is not usable")?;
        let admin = admin_config
            .connect()
            .await
            .context("connecting to PostgreSQL (is it running? see README)")?;
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .context("creating the bench database")?;
        let mut config = admin_config.clone();
        config.config.dbname(&database);
        let database_url = replace_dbname(&args.admin_url, &database);
        let made = async {
            std::fs::create_dir_all(&work_dir)?;
            let db = config.connect().await?;
            let server = S3DevServer::start(S3DevConfig {
                root: work_dir.join("s3"),
                listen: "127.0.0.1:0".parse()?,
                access_key: ACCESS_KEY.into(),
                secret_key: SECRET_KEY.into(),
                region: "us-east-1".into(),
                notify: Some(NotifyConfig {
                    amqp_url: args.amqp_url.clone(),
                    exchange: format!("{prefix}.s3"),
                    routing_key: format!("{BUCKET}.created"),
                }),
            })
            .await
            .context("starting the embedded S3 server (is RabbitMQ running? see README)")?;
            anyhow::Ok((db, server))
        }
        .await;
        let (db, server) = match made {
            Ok(made) => made,
            Err(error) => {
                drop_everything(
                    &args.admin_url,
                    &database,
                    &args.amqp_url,
                    &prefix,
                    &work_dir,
                )
                .await;
                return Err(error);
            }
        };
        let endpoint = server.endpoint_url();
        let vars = crate::demo::service_vars(&crate::demo::LocalStack {
            database_url: &database_url,
            amqp_url: &args.amqp_url,
            amqp_prefix: &prefix,
            s3_endpoint: &endpoint,
            access_key: ACCESS_KEY,
            secret_key: SECRET_KEY,
            bucket: BUCKET,
            datasets_dir: &args.datasets_dir,
            models_dir: &args.models_dir,
        })?;
        let s3_config =
            runtime::S3Config::from_env(&runtime::Env::from_fn(|name| vars.get(name).cloned()))?;
        let s3 = runtime::s3::client(&s3_config).await?;
        let env = BenchEnv {
            database,
            database_url,
            admin_url: args.admin_url.clone(),
            amqp_url: args.amqp_url.clone(),
            prefix,
            endpoint,
            work_dir,
            server,
            s3,
            db,
            vars,
            timeout: Duration::from_secs(args.timeout_s),
        };
        if let Err(error) = env.s3.create_bucket().bucket(BUCKET).send().await {
            env.cleanup().await;
            bail!("creating the bench bucket: {error:?}");
        }
        Ok(env)
    }

    /// Stops the S3 server, drops the database, the exchanges and queues, and the files.
    async fn cleanup(self) {
        self.server.shutdown().await;
        drop(self.db);
        drop_everything(
            &self.admin_url,
            &self.database,
            &self.amqp_url,
            &self.prefix,
            &self.work_dir,
        )
        .await;
    }

    async fn start_services(&self, names: &[&'static str]) -> anyhow::Result<Services> {
        Services::start_only(&self.vars, &self.work_dir.join("logs"), names).await
    }

    async fn put_file(&self, key: &str, path: &Path) -> anyhow::Result<()> {
        let body = ByteStream::from_path(path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("text/csv")
            .body(body)
            .send()
            .await
            .with_context(|| format!("uploading {key}"))?;
        Ok(())
    }

    async fn put_bytes(&self, key: &str, body: Vec<u8>) -> anyhow::Result<()> {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("text/csv")
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("uploading {key}"))?;
        Ok(())
    }

    /// Runs `psql -c <command>` against the bench database; returns the wall time it took.
    async fn psql(&self, command: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let output = tokio::process::Command::new("psql")
            .arg(&self.database_url)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command])
            .output()
            .await
            .context("running psql (is it installed?)")?;
        let took = started.elapsed();
        anyhow::ensure!(
            output.status.success(),
            "psql -c {command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(took)
    }
}

async fn drop_everything(
    admin_url: &str,
    database: &str,
    amqp_url: &str,
    prefix: &str,
    work_dir: &Path,
) {
    if let Ok(admin) = runtime::db::connect(admin_url).await
        && let Err(error) = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .await
    {
        eprintln!("could not drop database {database}: {error}");
    }
    let secret = runtime::Secret::new(amqp_url);
    if let Ok(connection) = runtime::broker::connect(&secret, "landfall-bench-cleanup").await {
        let topology = runtime::broker::Topology {
            prefix: prefix.to_owned(),
            notify_exchange: format!("{prefix}.s3"),
        };
        if let Ok(channel) = connection.create_channel().await {
            if let Err(error) = runtime::broker::delete_topology(&channel, &topology).await {
                eprintln!("could not delete the exchanges and queues of {prefix}: {error}");
            }
            let _ = channel.close(200, "bench done".into()).await;
        }
        let _ = connection.close(200, "bench done".into()).await;
    }
    let _ = std::fs::remove_dir_all(work_dir);
}

// ---------------------------------------------------------------------------------------------
// stage

async fn bench_stage(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    let csv = env.work_dir.join("orders.csv");
    let generated = write_orders(&csv, Limit::Rows(args.rows))?;
    println!(
        "Generated     {} rows, {:.1} MB in {}",
        generated.rows,
        generated.bytes as f64 / 1e6,
        csv.display()
    );
    // psql and the stager take turns, each after a checkpoint, so a slow moment of the
    // machine does not fall on one side only; the medians are compared.
    let mut services = env.start_services(&["ingester", "stager"]).await?;
    let first_date = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date");
    let runs = async {
        let (mut psql_runs, mut stager_runs, mut put_runs) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..args.repeat.max(1) {
            let psql_s = psql_copy_orders(env, &csv, generated.rows).await?;
            let date = first_date - chrono::Days::new(run as u64);
            let staged = stage_one(env, &mut services, &csv, &date.to_string()).await?;
            anyhow::ensure!(
                staged.rows_loaded as u64 == generated.rows,
                "the stager loaded {} of {} rows ({} rejected)",
                staged.rows_loaded,
                generated.rows,
                staged.rows_rejected
            );
            println!(
                "Run {}         psql \\copy {:.2}s; stager {:.2}s in the ledger (staging_started_at → finished_at), {:.2}s from the PUT to staged: {:.2}×",
                run + 1,
                psql_s,
                staged.stager_s,
                staged.put_to_staged_s,
                psql_s / staged.stager_s
            );
            psql_runs.push(psql_s);
            stager_runs.push(staged.stager_s);
            put_runs.push(staged.put_to_staged_s);
        }
        anyhow::Ok((psql_runs, stager_runs, put_runs))
    }
    .await;
    services.stop().await;
    let (mut psql_runs, mut stager_runs, mut put_runs) = runs?;
    let psql_s = median(&mut psql_runs);
    let psql_rate = generated.rows as f64 / psql_s;
    let staged = Staged {
        rows_loaded: generated.rows as i64,
        rows_rejected: 0,
        stager_s: median(&mut stager_runs),
        put_to_staged_s: median(&mut put_runs),
    };
    println!(
        "Medians       psql \\copy {psql_s:.2}s ({psql_rate:.0} rows/s); stager {:.2}s in the ledger, {:.2}s from the PUT to staged",
        staged.stager_s, staged.put_to_staged_s
    );
    let rows = generated.rows as f64;
    let stager_rate = rows / staged.stager_s;
    let wall_rate = rows / staged.put_to_staged_s;
    let baseline_label = "psql \\copy, typed table with a primary key".to_owned();
    Ok(Report {
        bench: "stage",
        params: vec![
            ("rows", generated.rows.to_string()),
            ("bytes", generated.bytes.to_string()),
            (
                "stager",
                "stager binary as a process (ingester binary feeds it)".into(),
            ),
            ("runs", psql_runs.len().to_string()),
            ("psql_seconds", format!("{psql_s:.3}")),
            ("stager_seconds", format!("{:.3}", staged.stager_s)),
            (
                "put_to_staged_seconds",
                format!("{:.3}", staged.put_to_staged_s),
            ),
        ],
        figures: vec![
            Figure {
                figure: "stage rows/s (stager start → staged)".into(),
                unit: "rows/s",
                value: stager_rate,
                baseline: Some(psql_rate),
                baseline_label: baseline_label.clone(),
                goal: Some(("≥ 1.5× baseline".into(), stager_rate >= 1.5 * psql_rate)),
            },
            Figure {
                figure: "stage rows/s (PUT → staged, incl. ingester)".into(),
                unit: "rows/s",
                value: wall_rate,
                baseline: Some(psql_rate),
                baseline_label,
                goal: None,
            },
        ],
    })
}

/// `\copy` of the orders file into a typed table with a primary key, after a checkpoint.
async fn psql_copy_orders(env: &BenchEnv, csv: &Path, rows: u64) -> anyhow::Result<f64> {
    env.db
        .batch_execute(
            "CREATE TABLE bench_psql_orders (
                 order_id int PRIMARY KEY, customer_id int NOT NULL, order_date date NOT NULL,
                 product_id int NOT NULL, unit_price numeric(12,2) NOT NULL,
                 quantity int NOT NULL, total_price numeric(12,2) NOT NULL);
             CHECKPOINT;",
        )
        .await?;
    let took = env
        .psql(&format!(
            "\\copy bench_psql_orders FROM '{}' WITH (FORMAT csv, HEADER true)",
            csv.display()
        ))
        .await?;
    let loaded: i64 = env
        .db
        .query_one("SELECT count(*) FROM bench_psql_orders", &[])
        .await?
        .get(0);
    anyhow::ensure!(loaded as u64 == rows, "psql loaded {loaded} of {rows} rows");
    env.db
        .batch_execute("DROP TABLE bench_psql_orders; CHECKPOINT;")
        .await?;
    Ok(took.as_secs_f64())
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

struct Staged {
    rows_loaded: i64,
    rows_rejected: i64,
    /// `finished_at - staging_started_at` in the ledger.
    stager_s: f64,
    /// From the PUT's return to the staged state being visible.
    put_to_staged_s: f64,
}

/// Puts the file as the orders of `date` and waits until the stager has staged it.
async fn stage_one(
    env: &BenchEnv,
    services: &mut Services,
    csv: &Path,
    date: &str,
) -> anyhow::Result<Staged> {
    let key = format!("landing/ecommerce/ingestion_date={date}/orders.csv");
    env.put_file(&key, csv).await?;
    let put_done = Instant::now();
    let deadline = put_done + env.timeout;
    loop {
        services.check_alive()?;
        let row = env
            .db
            .query_opt(
                "SELECT state, coalesce(reason, ''), coalesce(rows_loaded, 0)::bigint,
                        coalesce(rows_rejected, 0)::bigint,
                        extract(epoch FROM finished_at - staging_started_at)::float8
                   FROM ops.files WHERE key = $1 ORDER BY file_id DESC LIMIT 1",
                &[&key],
            )
            .await;
        // The ledger appears when the ingester first migrates; until then the query fails.
        if let Ok(Some(row)) = row {
            let state: String = row.get(0);
            match state.as_str() {
                "staged" => {
                    return Ok(Staged {
                        rows_loaded: row.get(2),
                        rows_rejected: row.get(3),
                        stager_s: row.get::<_, Option<f64>>(4).unwrap_or(f64::NAN),
                        put_to_staged_s: put_done.elapsed().as_secs_f64(),
                    });
                }
                "landed" => {}
                other => bail!("{key} ended {other}: {}", row.get::<_, String>(1)),
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{key} was not staged within {:?}; see the logs in {}",
            env.timeout,
            env.work_dir.join("logs").display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// latency

const LATENCY_SOURCES: &[&str] = &["orders", "reviews", "shipment_deliveries"];

async fn bench_latency(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    let orders_per_batch = 1000;
    let first = NaiveDate::from_ymd_opt(2030, 1, 1).expect("a date");
    // Baseline: psql \copy of one batch's three files into typed tables, median of 5.
    let baseline = psql_copy_batch(env, first, orders_per_batch).await?;
    println!("psql \\copy    three files of one batch: {baseline:.3}s (median of 5)");
    let names: Vec<&'static str> = runtime::Stage::ALL
        .iter()
        .map(|stage| stage.name())
        .collect();
    let mut services = env.start_services(&names).await?;
    let measured = latency_runs(env, &mut services, args.runs, first, orders_per_batch).await;
    services.stop().await;
    let mut latencies = measured?;
    latencies.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let label = "psql \\copy of the batch's three files".to_owned();
    Ok(Report {
        bench: "latency",
        params: vec![
            ("runs", args.runs.to_string()),
            ("warmup_runs", "1".into()),
            ("orders_per_batch", orders_per_batch.to_string()),
            ("services", "the five service binaries as processes".into()),
            ("min_seconds", format!("{:.3}", latencies[0])),
            (
                "max_seconds",
                format!("{:.3}", latencies[latencies.len() - 1]),
            ),
            (
                "all_seconds",
                latencies
                    .iter()
                    .map(|s| format!("{s:.3}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ],
        figures: vec![
            Figure {
                figure: "last PUT → exported, p50".into(),
                unit: "s",
                value: p50,
                baseline: Some(baseline),
                baseline_label: label.clone(),
                goal: Some(("< 1 s".into(), p50 < 1.0)),
            },
            Figure {
                figure: "last PUT → exported, p99".into(),
                unit: "s",
                value: p99,
                baseline: Some(baseline),
                baseline_label: label,
                goal: Some(("< 3 s".into(), p99 < 3.0)),
            },
        ],
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn batch_bodies(date: NaiveDate, orders: i64) -> Vec<(&'static str, String)> {
    crate::sample::batch_files(date, 0, orders, 0.0)
        .into_iter()
        .filter(|file| LATENCY_SOURCES.contains(&file.source))
        .map(|file| (file.source, file.body))
        .collect()
}

async fn latency_runs(
    env: &BenchEnv,
    services: &mut Services,
    runs: usize,
    first: NaiveDate,
    orders: i64,
) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    // Run 0 warms up (connections, plans, caches) and is not counted.
    for run in 0..=runs {
        let date = first + chrono::Duration::days(run as i64);
        for (source, body) in batch_bodies(date, orders) {
            let key = format!("landing/ecommerce/ingestion_date={date}/{source}.csv");
            env.put_bytes(&key, body.into_bytes()).await?;
        }
        let last_put = Utc::now();
        let exported = wait_exported(env, services, date).await?;
        let seconds = (exported - last_put).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        if run == 0 {
            println!("Warm-up       {date}: {seconds:.3}s (not counted)");
        } else {
            println!("Run {run:<3}       {date}: {seconds:.3}s");
            latencies.push(seconds);
        }
    }
    Ok(latencies)
}

async fn wait_exported(
    env: &BenchEnv,
    services: &mut Services,
    date: NaiveDate,
) -> anyhow::Result<chrono::DateTime<Utc>> {
    let deadline = Instant::now() + env.timeout;
    loop {
        services.check_alive()?;
        let row = env
            .db
            .query_opt(
                "SELECT state, exported_at FROM ops.batches WHERE dataset = 'ecommerce' AND ingestion_date = $1",
                &[&date],
            )
            .await?;
        if let Some(row) = row {
            let state: String = row.get(0);
            match state.as_str() {
                "exported" => {
                    if let Some(at) = row.get::<_, Option<chrono::DateTime<Utc>>>(1) {
                        return Ok(at);
                    }
                }
                "quality_failed" => bail!("batch {date} failed its quality checks"),
                _ => {}
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "batch {date} was not exported within {:?}; see the logs in {}",
            env.timeout,
            env.work_dir.join("logs").display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Typed tables like the staging ones (primary key on the natural key) for `psql \copy` of a
/// batch's three files.
const BATCH_TABLES: &str = "CREATE TABLE bench_psql_orders (
     order_id int PRIMARY KEY, customer_id int NOT NULL, order_date date NOT NULL,
     product_id int NOT NULL, unit_price numeric(12,2) NOT NULL,
     quantity int NOT NULL, total_price numeric(12,2) NOT NULL);
 CREATE TABLE bench_psql_reviews (review smallint, product_id int NOT NULL);
 CREATE TABLE bench_psql_shipment_deliveries (
     shipment_id int PRIMARY KEY, order_id int NOT NULL, shipment_date date,
     delivery_date date);";
const DROP_BATCH_TABLES: &str =
    "DROP TABLE bench_psql_orders, bench_psql_reviews, bench_psql_shipment_deliveries";

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

/// The median over 5 tries of `psql \copy` of one batch's three files (one psql each, as a
/// script would), into typed tables like the staging ones (primary key on the natural key).
async fn psql_copy_batch(env: &BenchEnv, date: NaiveDate, orders: i64) -> anyhow::Result<f64> {
    let dir = env.work_dir.join("latency-baseline");
    std::fs::create_dir_all(&dir)?;
    let mut paths = Vec::new();
    for (source, body) in batch_bodies(date, orders) {
        let path = dir.join(format!("{source}.csv"));
        std::fs::write(&path, body)?;
        paths.push((source, path));
    }
    env.db.batch_execute(BATCH_TABLES).await?;
    let mut tries = Vec::new();
    for _ in 0..5 {
        env.db
            .batch_execute(
                "TRUNCATE bench_psql_orders, bench_psql_reviews, bench_psql_shipment_deliveries",
            )
            .await?;
        tries.push(psql_copy_each(env, &paths).await?.as_secs_f64());
    }
    env.db.batch_execute(DROP_BATCH_TABLES).await?;
    tries.sort_by(f64::total_cmp);
    Ok(tries[tries.len() / 2])
}

// ---------------------------------------------------------------------------------------------
// memory

async fn bench_memory(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    let csv = env.work_dir.join("orders.csv");
    let generated = write_orders(&csv, Limit::Bytes(args.bytes))?;
    println!(
        "Generated     {} rows, {:.1} MiB in {}",
        generated.rows,
        generated.bytes as f64 / MIB,
        csv.display()
    );
    let mut services = env.start_services(&["ingester", "stager"]).await?;
    let measured = async {
        let pid = services
            .pid("stager")
            .context("the stager has no process id")?;
        let idle = proc_status_kib(pid, "VmRSS")? as f64 / 1024.0;
        let staged = stage_one(env, &mut services, &csv, "2026-11-25").await?;
        let peak = proc_status_kib(pid, "VmHWM")? as f64 / 1024.0;
        anyhow::Ok((idle, peak, staged))
    }
    .await;
    services.stop().await;
    let (idle, peak, staged) = measured?;
    std::fs::remove_file(&csv)?;
    println!(
        "Stager        idle RSS {idle:.1} MiB, peak RSS {peak:.1} MiB, {} rows in {:.1}s",
        staged.rows_loaded, staged.stager_s
    );
    Ok(Report {
        bench: "memory",
        params: vec![
            ("bytes", generated.bytes.to_string()),
            ("rows", generated.rows.to_string()),
            ("rows_loaded", staged.rows_loaded.to_string()),
            ("rows_rejected", staged.rows_rejected.to_string()),
            ("stager_seconds", format!("{:.3}", staged.stager_s)),
            (
                "stager",
                "stager binary as a process; /proc/<pid>/status".into(),
            ),
        ],
        figures: vec![
            Figure {
                figure: "stager peak RSS (VmHWM)".into(),
                unit: "MiB",
                value: peak,
                baseline: Some(idle),
                baseline_label: "the stager's RSS when idle, before the load".into(),
                goal: Some(("≤ 64 MiB".into(), peak <= 64.0)),
            },
            Figure {
                figure: "stage rows/s of the large file".into(),
                unit: "rows/s",
                value: staged.rows_loaded as f64 / staged.stager_s,
                baseline: None,
                baseline_label: String::new(),
                goal: None,
            },
        ],
    })
}

const MIB: f64 = 1024.0 * 1024.0;

/// A `kB` field of /proc/<pid>/status, e.g. VmRSS or VmHWM.
fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------------
// files

async fn bench_files(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.files >= 1, "--files must be at least 1");
    let rows_per_file = 20;
    let first = NaiveDate::from_ymd_opt(2030, 1, 1).expect("a date");
    let bodies: Vec<(String, String)> = (0..args.files)
        .map(|index| {
            let date = first + chrono::Duration::days(index as i64);
            let mut body = String::from(ORDERS_HEADER);
            for row in 0..rows_per_file {
                let id = index * rows_per_file + row + 1;
                writeln!(
                    body,
                    "{id},{},2029-12-01,{},1.50,2,3.00",
                    id % 300 + 1,
                    id % 40 + 1
                )
                .expect("writing to a String");
            }
            (
                format!("landing/ecommerce/ingestion_date={date}/orders.csv"),
                body,
            )
        })
        .collect();
    // Baseline: one psql session running one \copy per file.
    let dir = env.work_dir.join("files-baseline");
    std::fs::create_dir_all(&dir)?;
    let mut script = String::new();
    for (index, (_, body)) in bodies.iter().enumerate() {
        let path = dir.join(format!("{index}.csv"));
        std::fs::write(&path, body)?;
        writeln!(
            script,
            "\\copy bench_psql_orders FROM '{}' WITH (FORMAT csv, HEADER true)",
            path.display()
        )?;
    }
    let script_path = dir.join("copy.sql");
    std::fs::write(&script_path, script)?;
    env.db
        .batch_execute(
            "CREATE TABLE bench_psql_orders (
                 order_id int PRIMARY KEY, customer_id int NOT NULL, order_date date NOT NULL,
                 product_id int NOT NULL, unit_price numeric(12,2) NOT NULL,
                 quantity int NOT NULL, total_price numeric(12,2) NOT NULL)",
        )
        .await?;
    let started = Instant::now();
    let output = tokio::process::Command::new("psql")
        .arg(&env.database_url)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script_path)
        .output()
        .await
        .context("running psql")?;
    let psql_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        output.status.success(),
        "psql -f failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    env.db.batch_execute("DROP TABLE bench_psql_orders").await?;
    let psql_rate = args.files as f64 / psql_s;
    println!(
        "psql \\copy    {} files in {psql_s:.2}s (one session)",
        args.files
    );
    let mut services = env
        .start_services(&["ingester", "stager", "stager"])
        .await?;
    let measured = async {
        let started = Instant::now();
        let puts = put_all(env, &bodies).await?;
        let deadline = Instant::now() + env.timeout;
        loop {
            services.check_alive()?;
            let row = env
                .db
                .query_one(
                    "SELECT count(*) FILTER (WHERE state = 'staged'),
                            count(*) FILTER (WHERE state NOT IN ('landed', 'staged'))
                       FROM ops.files",
                    &[],
                )
                .await?;
            let (staged, other): (i64, i64) = (row.get(0), row.get(1));
            anyhow::ensure!(other == 0, "{other} file(s) were not staged");
            if staged as usize >= args.files {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {staged} of {} files staged within {:?}",
                args.files,
                env.timeout
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok((started.elapsed().as_secs_f64(), puts))
    }
    .await;
    services.stop().await;
    let (total_s, put_s) = measured?;
    let rate = args.files as f64 / total_s;
    println!(
        "Stagers       {} files landed and staged in {total_s:.2}s (PUTs took {put_s:.2}s)",
        args.files
    );
    Ok(Report {
        bench: "files",
        params: vec![
            ("files", args.files.to_string()),
            ("rows_per_file", rows_per_file.to_string()),
            ("stagers", "2 stager processes, 1 ingester".into()),
            ("put_seconds", format!("{put_s:.3}")),
            ("total_seconds", format!("{total_s:.3}")),
        ],
        figures: vec![Figure {
            figure: "files/s (first PUT → all staged)".into(),
            unit: "files/s",
            value: rate,
            baseline: Some(psql_rate),
            baseline_label: "psql \\copy of each file, one session".into(),
            goal: Some(("≥ 50 files/s".into(), rate >= 50.0)),
        }],
    })
}

/// Puts every file, 16 at a time; returns how long the PUTs took.
async fn put_all(env: &BenchEnv, bodies: &[(String, String)]) -> anyhow::Result<f64> {
    let started = Instant::now();
    for chunk in bodies.chunks(16) {
        let mut tasks = tokio::task::JoinSet::new();
        for (key, body) in chunk {
            let s3 = env.s3.clone();
            let (key, body) = (key.clone(), body.clone().into_bytes());
            tasks.spawn(async move {
                s3.put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .with_context(|| format!("uploading {key}"))
            });
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// events

async fn bench_events(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    use lapin::options::QueueDeclareOptions;
    anyhow::ensure!(args.events >= 1, "--events must be at least 1");
    let n = args.events;
    // What the ingester process will see: the bench's variables over this process's
    // environment (which the child inherits), so LANDFALL_PREFETCH=… on the command line
    // is reported as it is used.
    let config = runtime::CommonConfig::from_env(
        &runtime::Env::from_fn(|name| {
            env.vars
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        }),
        "ingester",
    )?;
    let topology = runtime::broker::Topology::from_config(&config);
    let connection = runtime::broker::connect(&config.amqp_url, "landfall-bench-events").await?;
    let channel = runtime::broker::confirm_channel(&connection).await?;
    runtime::broker::declare_topology(&channel, &config, &topology).await?;

    // Baseline: the broker alone — the same number of messages published (confirms pipelined)
    // to a quorum queue and consumed with an ack each, no PostgreSQL.
    let raw_queue = format!("{}.bench-raw", env.prefix);
    let mut queue_args = lapin::types::FieldTable::default();
    queue_args.insert(
        "x-queue-type".into(),
        runtime::broker::long_string("quorum"),
    );
    channel
        .queue_declare(
            raw_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            queue_args,
        )
        .await?;
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|index| notification(index).into_bytes())
        .collect();
    let started = Instant::now();
    publish_all(&channel, "", &raw_queue, &bodies).await?;
    consume_all(&connection, &raw_queue, n).await?;
    let raw_s = started.elapsed().as_secs_f64();
    channel
        .queue_delete(raw_queue.as_str().into(), Default::default())
        .await?;
    let raw_rate = n as f64 / raw_s;
    println!("Broker alone  {n} messages published and consumed in {raw_s:.2}s ({raw_rate:.0}/s)");

    // The measured path: the notifications wait in the ingester's queue before it starts.
    let started = Instant::now();
    publish_all(
        &channel,
        &config.notify_exchange,
        &config.notify_routing_key,
        &bodies,
    )
    .await?;
    println!(
        "Pre-loaded    {n} S3 notifications into {} in {:.2}s",
        topology.queue("ingester"),
        started.elapsed().as_secs_f64()
    );
    let _ = channel.close(200, "bench".into()).await;
    let _ = connection.close(200, "bench".into()).await;
    let mut services = env.start_services(&["ingester"]).await?;
    let measured = async {
        let deadline = Instant::now() + env.timeout;
        loop {
            services.check_alive()?;
            let sent: i64 = env
                .db
                .query_one(
                    "SELECT count(*) FROM ops.outbox WHERE sent_at IS NOT NULL",
                    &[],
                )
                .await?
                .get(0);
            if sent as usize >= n {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {sent} of {n} events published within {:?}",
                env.timeout
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let row = env
            .db
            .query_one(
                "SELECT (SELECT count(*) FROM ops.files WHERE state = 'landed'),
                        extract(epoch FROM (SELECT max(sent_at) FROM ops.outbox)
                                         - (SELECT min(landed_at) FROM ops.files))::float8,
                        extract(epoch FROM (SELECT max(landed_at) - min(landed_at) FROM ops.files))::float8",
                &[],
            )
            .await?;
        anyhow::Ok((row.get::<_, i64>(0), row.get::<_, f64>(1), row.get::<_, f64>(2)))
    }
    .await;
    let config_note = format!(
        "LANDFALL_CONCURRENCY={}, LANDFALL_PREFETCH={}, LANDFALL_CONSUME_BATCH={}",
        config.concurrency, config.prefetch, config.consume_batch
    );
    services.stop().await;
    let (landed, total_s, consume_s) = measured?;
    anyhow::ensure!(
        landed as usize == n,
        "{landed} of {n} notifications became ledger rows"
    );
    let rate = n as f64 / total_s;
    println!(
        "Ingester      {n} events: first commit → last outbox row published {total_s:.2}s ({rate:.0}/s); commits alone {consume_s:.2}s"
    );
    Ok(Report {
        bench: "events",
        params: vec![
            ("events", n.to_string()),
            (
                "service",
                format!("ingester binary as a process ({config_note})"),
            ),
            ("seconds", format!("{total_s:.3}")),
            ("commit_seconds", format!("{consume_s:.3}")),
            ("broker_alone_seconds", format!("{raw_s:.3}")),
        ],
        figures: vec![Figure {
            figure: "events/s (consume → commit → outbox → publish)".into(),
            unit: "events/s",
            value: rate,
            baseline: Some(raw_rate),
            baseline_label: "broker alone: publish (pipelined confirms) + consume/ack".into(),
            goal: Some(("≥ 5,000/s".into(), rate >= 5000.0)),
        }],
    })
}

/// A MinIO-style notification of one created object, a different key each.
fn notification(index: usize) -> String {
    let date =
        NaiveDate::from_ymd_opt(2030, 1, 1).expect("a date") + chrono::Duration::days(index as i64);
    let key = format!("landing/ecommerce/ingestion_date={date}/orders.csv");
    format!(
        r#"{{"EventName":"s3:ObjectCreated:Put","Key":"{BUCKET}/{key}","Records":[{{"eventVersion":"2.0","eventSource":"minio:s3","eventName":"s3:ObjectCreated:Put","s3":{{"s3SchemaVersion":"1.0","bucket":{{"name":"{BUCKET}","arn":"arn:aws:s3:::{BUCKET}"}},"object":{{"key":"{key}","size":100,"eTag":"e{index:08x}","sequencer":"1"}}}}}}]}}"#
    )
}

/// Publishes every body, awaiting confirms in windows of 1,000.
async fn publish_all(
    channel: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    bodies: &[Vec<u8>],
) -> anyhow::Result<()> {
    for window in bodies.chunks(1000) {
        let mut confirms = Vec::with_capacity(window.len());
        for body in window {
            confirms.push(
                channel
                    .basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        lapin::options::BasicPublishOptions::default(),
                        body,
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a message");
        }
    }
    Ok(())
}

/// Consumes and acks `n` messages of `queue`.
async fn consume_all(connection: &lapin::Connection, queue: &str, n: usize) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(100, lapin::options::BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "bench-raw".into(),
            lapin::options::BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    for _ in 0..n {
        let delivery = deliveries
            .next()
            .await
            .context("the broker ended the consumer")??;
        delivery
            .ack(lapin::options::BasicAckOptions::default())
            .await?;
    }
    let _ = channel.close(200, "bench".into()).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// batch

/// `--repeat` batches, the first in `env` and each other one in a world of its own (a fresh
/// database: a second batch in the same one would merge into the first one's facts), each
/// against its own `psql \copy` baseline; the medians of the pipeline's and of psql's times
/// are compared.
async fn bench_batch_runs(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    let mut runs = vec![bench_batch(env, args).await?];
    for run in 1..args.repeat.max(1) {
        let env = BenchEnv::new(args).await?;
        println!(
            "Run {}         database {}, AMQP prefix {}",
            run + 1,
            env.database,
            env.prefix
        );
        let result = bench_batch(&env, args).await;
        env.cleanup().await;
        runs.push(result?);
    }
    if runs.len() == 1 {
        return Ok(runs.remove(0));
    }
    let figure = |report: &Report, index: usize| {
        let figure = &report.figures[index];
        (figure.value, figure.baseline.unwrap_or(f64::NAN))
    };
    let mut summary = Vec::new();
    for (run, report) in runs.iter().enumerate() {
        let (total, psql) = figure(report, 0);
        let line = format!("{total:.2}s against {psql:.2}s = {:.2}×", total / psql);
        println!("Run {:<3}       first PUT → exported {line}", run + 1);
        summary.push(line);
    }
    let mut totals: Vec<f64> = runs.iter().map(|report| figure(report, 0).0).collect();
    let mut after_last: Vec<f64> = runs.iter().map(|report| figure(report, 1).0).collect();
    let mut psql: Vec<f64> = runs.iter().map(|report| figure(report, 0).1).collect();
    let (total, after_last, psql) = (
        median(&mut totals),
        median(&mut after_last),
        median(&mut psql),
    );
    println!(
        "Medians       first PUT → exported {total:.2}s, last PUT → exported {after_last:.2}s, psql \\copy {psql:.2}s"
    );
    let mut report = runs.remove(0);
    report.params.push(("runs", summary.join("; ")));
    let label = format!(
        "median of {} runs' sums of psql \\copy of the three files",
        summary.len()
    );
    report.figures = vec![
        Figure {
            figure: format!("first PUT → exported (median of {})", summary.len()),
            unit: "s",
            value: total,
            baseline: Some(psql),
            baseline_label: label.clone(),
            goal: Some(("≤ 3× baseline".into(), total <= 3.0 * psql)),
        },
        Figure {
            figure: format!("last PUT returned → exported (median of {})", summary.len()),
            unit: "s",
            value: after_last,
            baseline: Some(psql),
            baseline_label: label,
            goal: None,
        },
    ];
    Ok(report)
}

async fn bench_batch(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.orders >= 10, "--orders must be at least 10");
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date");
    let dir = env.work_dir.join("batch");
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    let mut counts = Vec::new();
    for file in crate::sample::batch_files(date, 0, args.orders, 0.0) {
        if !LATENCY_SOURCES.contains(&file.source) {
            continue;
        }
        let mut body = file.body;
        if file.source == "reviews" {
            // Half as many reviews as orders: keep the header and the first rows.
            let keep = (args.orders / 2) as usize + 1;
            let cut = body
                .match_indices('\n')
                .nth(keep - 1)
                .map_or(body.len(), |(at, _)| at + 1);
            body.truncate(cut);
        }
        let rows = body.lines().count() - 1;
        let path = dir.join(format!("{}.csv", file.source));
        std::fs::write(&path, &body)?;
        counts.push((file.source, rows));
        files.push((file.source, path));
    }
    let described: Vec<String> = counts
        .iter()
        .map(|(source, rows)| format!("{source} {rows}"))
        .collect();
    println!("Generated     {}", described.join(", "));
    // Baseline: psql \copy of each file into a typed table (one psql each), summed.
    env.db
        .batch_execute(&format!("{BATCH_TABLES}\nCHECKPOINT;"))
        .await?;
    let psql_s = psql_copy_each(env, &files).await?.as_secs_f64();
    env.db
        .batch_execute(&format!("{DROP_BATCH_TABLES};\nCHECKPOINT;"))
        .await?;
    println!("psql \\copy    the three files: {psql_s:.2}s");
    let names: Vec<&'static str> = runtime::Stage::ALL
        .iter()
        .map(|stage| stage.name())
        .collect();
    let mut services = env.start_services(&names).await?;
    let measured = async {
        let first_put = Utc::now();
        for (source, path) in &files {
            let key = format!("landing/ecommerce/ingestion_date={date}/{source}.csv");
            env.put_file(&key, path).await?;
        }
        let last_put = Utc::now();
        let exported = wait_exported(env, &mut services, date).await?;
        let seconds = |from: chrono::DateTime<Utc>| {
            (exported - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
        };
        let stages = env
            .db
            .query_one(
                "SELECT extract(epoch FROM ready_at - first_staged_at)::float8,
                        extract(epoch FROM transformed_at - ready_at)::float8,
                        extract(epoch FROM quality_at - transformed_at)::float8,
                        extract(epoch FROM exported_at - quality_at)::float8
                   FROM ops.batches WHERE dataset = 'ecommerce' AND ingestion_date = $1",
                &[&date],
            )
            .await?;
        let stages: Vec<String> = ["first staged → ready", "transform", "quality", "export"]
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let value: Option<f64> = stages.get(index);
                format!("{name} {:.2}s", value.unwrap_or(f64::NAN))
            })
            .collect();
        // Where the transform and the checks spent their time (slowest first).
        let slowest = |sql: &'static str| async move {
            let rows = env.db.query(sql, &[&date]).await?;
            anyhow::Ok(
                rows.iter()
                    .map(|row| format!("{} {}ms", row.get::<_, String>(0), row.get::<_, i64>(1)))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        let models = slowest(
            "SELECT m->>'model', (m->>'duration_ms')::int8
               FROM ops.transform_runs r, jsonb_array_elements(r.models) m
              WHERE r.dataset = 'ecommerce' AND r.ingestion_date = $1
              ORDER BY (m->>'duration_ms')::int8 DESC",
        )
        .await?;
        let checks = slowest(
            "SELECT check_name, duration_ms FROM ops.quality_results
              WHERE dataset = 'ecommerce' AND ingestion_date = $1 AND duration_ms >= 20
              ORDER BY duration_ms DESC",
        )
        .await?;
        println!("Models        {models}");
        println!(
            "Checks ≥20ms  {}",
            if checks.is_empty() { "none" } else { &checks }
        );
        anyhow::Ok((
            seconds(first_put),
            seconds(last_put),
            (last_put - first_put).num_microseconds().unwrap_or(0) as f64 / 1e6,
            stages.join(", "),
        ))
    }
    .await;
    services.stop().await;
    let (total_s, after_last_s, put_s, stages) = measured?;
    println!(
        "Pipeline      first PUT → exported {total_s:.2}s (PUTs {put_s:.2}s; last PUT → exported {after_last_s:.2}s; {stages})"
    );
    let label = "sum of psql \\copy of the three files".to_owned();
    Ok(Report {
        bench: "batch",
        params: vec![
            ("files", described.join(", ")),
            ("services", "the five service binaries as processes".into()),
            ("psql_seconds", format!("{psql_s:.3}")),
            ("put_seconds", format!("{put_s:.3}")),
            ("stages", stages),
        ],
        figures: vec![
            Figure {
                figure: "first PUT → exported".into(),
                unit: "s",
                value: total_s,
                baseline: Some(psql_s),
                baseline_label: label.clone(),
                goal: Some(("≤ 3× baseline".into(), total_s <= 3.0 * psql_s)),
            },
            Figure {
                figure: "last PUT returned → exported".into(),
                unit: "s",
                value: after_last_s,
                baseline: Some(psql_s),
                baseline_label: label,
                goal: None,
            },
        ],
    })
}

// ---------------------------------------------------------------------------------------------
// data

enum Limit {
    Rows(u64),
    Bytes(u64),
}

struct Generated {
    rows: u64,
    bytes: u64,
}

/// A deterministic, valid orders.csv: unique order ids, prices and quantities within bounds.
fn write_orders(path: &Path, limit: Limit) -> anyhow::Result<Generated> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(ORDERS_HEADER.as_bytes())?;
    let mut bytes = ORDERS_HEADER.len() as u64;
    let base = NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date");
    let dates: Vec<String> = (0..365)
        .map(|day| (base - chrono::Duration::days(day)).to_string())
        .collect();
    // splitmix64: fast, and the same file on every machine.
    let mut state: u64 = 0x5eed_1a4d_fa11;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut line = String::with_capacity(128);
    let mut rows = 0u64;
    loop {
        match limit {
            Limit::Rows(max) if rows >= max => break,
            Limit::Bytes(max) if bytes >= max => break,
            _ => {}
        }
        rows += 1;
        let r = next();
        let customer = r % 300 + 1;
        let product = (r >> 12) % 40 + 1;
        let date = &dates[((r >> 20) % 365) as usize];
        let cents = 199 + (r >> 32) % 9_000;
        let quantity = (r >> 48) % 4 + 1;
        let total = cents * quantity;
        line.clear();
        writeln!(
            line,
            "{rows},{customer},{date},{product},{}.{:02},{quantity},{}.{:02}",
            cents / 100,
            cents % 100,
            total / 100,
            total % 100
        )
        .expect("writing to a String");
        out.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
    }
    out.flush()?;
    anyhow::ensure!(rows <= i32::MAX as u64, "order ids must fit the int column");
    Ok(Generated { rows, bytes })
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

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value}"),
        _ => "null".into(),
    }
}

fn render_json(report: &Report) -> String {
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"bench\": {},", json_string(report.bench));
    let _ = writeln!(
        out,
        "  \"measured_at\": {},",
        json_string(&Utc::now().to_rfc3339())
    );
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let _ = writeln!(
        out,
        "  \"machine\": {{\"cpus\": {cpus}, \"kernel\": {}, \"profile\": {}}},",
        json_string(kernel.trim()),
        json_string(if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        })
    );
    let params: Vec<String> = report
        .params
        .iter()
        .map(|(name, value)| format!("{}: {}", json_string(name), json_string(value)))
        .collect();
    let _ = writeln!(out, "  \"params\": {{{}}},", params.join(", "));
    out.push_str("  \"figures\": [\n");
    for (index, figure) in report.figures.iter().enumerate() {
        let _ = write!(
            out,
            "    {{\"figure\": {}, \"unit\": {}, \"value\": {}, \"baseline\": {}, \"baseline_label\": {}, \"ratio\": {}, \"goal\": {}, \"met\": {}}}",
            json_string(&figure.figure),
            json_string(figure.unit),
            json_number(Some(figure.value)),
            json_number(figure.baseline),
            json_string(&figure.baseline_label),
            json_number(figure.ratio()),
            figure
                .goal
                .as_ref()
                .map_or("null".into(), |(goal, _)| json_string(goal)),
            figure
                .goal
                .as_ref()
                .map_or("null".into(), |(_, met)| met.to_string()),
        );
        out.push_str(if index + 1 < report.figures.len() {
            ",\n"
        } else {
            "\n"
        });
    }
    out.push_str("  ]\n}\n");
    out
}

/// The admin URL with its database name replaced.
fn replace_dbname(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |at| at + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{host_part}/{database}{query}")
}
