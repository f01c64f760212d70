//! `landfall demo`: the whole pipeline on sample data, on this machine, with nothing to install
//! beyond PostgreSQL and RabbitMQ. It generates the files (or takes `--input`), starts an
//! embedded S3 server that publishes bucket notifications to RabbitMQ and the five services as
//! separate processes (the real binaries), uploads the files, waits until every batch is
//! exported, prints what happened, and stops what it started. `--dataset` picks the dataset
//! (ecommerce by default; `online_retail` has a generator too, any defined dataset takes
//! `--input`).

mod dead_letters;
mod from_db;
mod report;
mod wait;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use scratch::{BrokerPrefix, S3Spec, ScratchS3};

use crate::sample::GenArgs;
use crate::services::{LocalStack, Services, absolute, service_vars};
use catalog::exports::ReportExport;

const ACCESS_KEY: &str = "landfall-demo";
const SECRET_KEY: &str = "landfall-demo-secret";
const BUCKET: &str = "landfall-demo";
const REGION: &str = "us-east-1";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The database (created if missing; a second run on it is idempotent).
    #[arg(
        long,
        env = "LANDFALL_DEMO_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/landfall_demo"
    )]
    pub database_url: String,
    /// RabbitMQ the demo's services and the embedded S3 server's notifications use.
    #[arg(
        long,
        env = "LANDFALL_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// Prefix of the demo's exchanges and queues.
    #[arg(long, default_value = "landfall-demo")]
    pub amqp_prefix: String,
    /// Land these files instead of generated ones: one sub-folder per ingestion date
    /// (YYYY-MM-DD) holding `<source>.csv` files.
    #[arg(long)]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub sample: GenArgs,
    /// Where the demo keeps the S3 server's files, the generated data and the service logs.
    #[arg(long, default_value = ".landfall/demo")]
    pub work_dir: PathBuf,
    /// Keep the services and the S3 server running afterwards (Ctrl-C stops them).
    #[arg(long)]
    pub keep_running: bool,
    /// The datasets folder: one folder per dataset with its definition, models, checks,
    /// exports and migrations.
    #[arg(long, env = "LANDFALL_DATASETS_DIR", default_value = "datasets")]
    pub datasets_dir: PathBuf,
    /// Land the tables from a database instead of as files: create a sample shop database
    /// (`<database>_shop`, made anew), fill it with each date's sample data and run the
    /// extractor for that date (the `ecommerce` dataset's extract.toml); the holiday calendar,
    /// which is not in the shop, still lands as a file. Sample data only, without malformed
    /// rows (the shop's typed columns could not hold them).
    #[arg(long, conflicts_with = "input")]
    pub from_db: bool,
    /// How long to wait for every batch to be exported.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

/// One ingestion date's files to land.
struct Batch {
    date: NaiveDate,
    files: Vec<PathBuf>,
}

pub async fn run(mut args: DemoArgs) -> anyhow::Result<()> {
    if args.from_db {
        anyhow::ensure!(
            args.sample.dataset == "ecommerce",
            "--from-db extracts the sample shop database of the ecommerce dataset, not '{}'",
            args.sample.dataset
        );
        args.sample.dirty = 0.0;
    }
    let work_dir = absolute(&args.work_dir)?;
    let datasets = catalog::Datasets::load(&args.datasets_dir)?;
    anyhow::ensure!(
        datasets.get(&args.sample.dataset).is_some(),
        "no dataset named '{}' in {}",
        args.sample.dataset,
        args.datasets_dir.display()
    );
    let reports = catalog::exports::ExportCatalog::load(&datasets)?
        .reports(&args.sample.dataset)
        .to_vec();
    let required: Vec<String> = datasets
        .get(&args.sample.dataset)
        .map(|dataset| {
            dataset
                .required_sources()
                .map(|source| source.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let batches = input_batches(&args, &work_dir)?;
    let target =
        runtime::db::PgTarget::parse(&args.database_url).context("--database-url is not usable")?;
    if let Some(name) = scratch::create_if_missing(&target).await? {
        println!("Database      created {name}");
    }
    let broker = BrokerPrefix::new(&args.amqp_url, &args.amqp_prefix);
    broker.clear().await?;
    // One S3 folder per database: the ingester's start-up reconcile lands whatever the landing
    // prefix holds, so a run must not find the files an earlier run left for another database.
    let s3_dir = Path::new("s3").join(s3_folder(&target));
    let s3 = ScratchS3::start(
        S3Spec {
            root: work_dir.join(&s3_dir),
            access_key: ACCESS_KEY,
            secret_key: SECRET_KEY,
            region: REGION,
            bucket: BUCKET,
        },
        &args.amqp_url,
        &args.amqp_prefix,
    )
    .await?;
    println!(
        "S3 endpoint   {} (files in {})",
        s3.endpoint_url(),
        args.work_dir.join(&s3_dir).display()
    );
    let run = Run {
        args: &args,
        work_dir: &work_dir,
        s3: &s3,
        s3_dir: &s3_dir,
        reports: &reports,
        required: &required,
    };
    let outcome = run_pipeline(&run, &batches).await;
    s3.shutdown().await;
    // The queues and exchanges go with the run: what the services had to do is done (or
    // reported as failed), and the database keeps every result.
    if let Err(error) = broker.delete().await {
        eprintln!(
            "could not remove the exchanges and queues under '{}': {error:#}",
            args.amqp_prefix
        );
    }
    outcome
}

/// What one run works with.
struct Run<'a> {
    args: &'a DemoArgs,
    work_dir: &'a Path,
    s3: &'a ScratchS3,
    s3_dir: &'a Path,
    reports: &'a [ReportExport],
    required: &'a [String],
}

/// Starts the services, lands the batches and waits for them, keeps the services running when
/// asked to, and stops them.
async fn run_pipeline(run: &Run<'_>, batches: &[Batch]) -> anyhow::Result<()> {
    let args = run.args;
    let vars = service_vars(&LocalStack {
        servers: run
            .s3
            .servers(&args.database_url, &args.amqp_url, &args.amqp_prefix),
        datasets_dir: &args.datasets_dir,
    })?;
    let mut services = Services::start(&vars, &run.work_dir.join("logs")).await?;
    let outcome = match wait::land_and_wait(run, batches, &vars, &mut services).await {
        Ok(failed) => keep_running_if_asked(run, batches)
            .await
            .and_then(|()| summary(&failed, batches.len())),
        Err(error) => Err(error),
    };
    services.stop().await;
    outcome
}

/// With `--keep-running`: says how to land a file, then waits for Ctrl-C or SIGTERM.
async fn keep_running_if_asked(run: &Run<'_>, batches: &[Batch]) -> anyhow::Result<()> {
    if !run.args.keep_running {
        return Ok(());
    }
    let next_day = batches
        .last()
        .and_then(|batch| batch.date.succ_opt())
        .unwrap_or_default();
    let source = run.required.first().map_or("orders", String::as_str);
    report::keep_running(&report::landing_help(
        &run.s3.endpoint_url(),
        &run.args.sample.dataset,
        next_day,
        source,
        run.required,
    ))
    .await
}

/// The error a run with failed batches ends with: each failed batch and why, in date order.
fn summary(failed: &[(NaiveDate, String)], batches: usize) -> anyhow::Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = failed
        .iter()
        .map(|(date, reason)| format!("  batch {date}: {reason}"))
        .collect();
    bail!(
        "{} of {batches} batches failed:\n{}",
        failed.len(),
        lines.join("\n")
    )
}

/// The S3 server's folder for the runs on one database: `<database>@<host>-<port>`.
fn s3_folder(target: &runtime::db::PgTarget) -> String {
    let config = &target.config;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{database}@{host}-{port}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The batches to land: `--input`'s date folders, or freshly generated ones.
fn input_batches(args: &DemoArgs, work_dir: &Path) -> anyhow::Result<Vec<Batch>> {
    let input = match &args.input {
        Some(input) => input.clone(),
        None => {
            let out = work_dir.join("data");
            let _ = std::fs::remove_dir_all(&out);
            let written = crate::sample::write(&args.sample, &out)?;
            println!(
                "Generated     {written} files for {} days in {}",
                args.sample.days,
                args.work_dir.join("data").display()
            );
            out
        }
    };
    let mut batches = Vec::new();
    for entry in
        std::fs::read_dir(&input).with_context(|| format!("reading {}", input.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Ok(date) = NaiveDate::parse_from_str(&name, "%Y-%m-%d") else {
            bail!(
                "{}: expected one folder per ingestion date named YYYY-MM-DD",
                path.display()
            );
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|file| {
                file.to_string_lossy().ends_with(".csv")
                    || file.to_string_lossy().ends_with(".csv.gz")
            })
            .collect();
        files.sort();
        batches.push(Batch { date, files });
    }
    batches.sort_by_key(|batch| batch.date);
    anyhow::ensure!(
        !batches.is_empty(),
        "no ingestion-date folders in {}",
        input.display()
    );
    Ok(batches)
}
