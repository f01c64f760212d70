//! `landfall`: the operator command. Runs the demo, migrates the database, reconciles the
//! landing prefix with the ledger, shows files and batches, and serves the embedded S3 server.

mod bench;
mod dataset_check;
mod demo;
mod dlq;
mod operate;
mod progress;
mod sample;
mod sample_retail;
mod status;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use runtime::datasets::Datasets;
use runtime::{CommonConfig, Env};

#[derive(Parser)]
#[command(
    name = "landfall",
    version,
    about = "Event-driven ELT for e-commerce files: operator command"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on sample data: embedded S3 server, the five services as processes.
    Demo(demo::DemoArgs),
    /// Measure a performance figure against its baseline in the same run (own database,
    /// prefix and S3 server): stage, latency, memory or files.
    Bench(bench::BenchArgs),
    /// Write sample landing files: <out>/<YYYY-MM-DD>/<source>.csv.
    Gen {
        #[command(flatten)]
        args: sample::GenArgs,
        #[arg(long, default_value = "sample-data")]
        out: PathBuf,
    },
    /// Apply pending migrations and create the datasets' staging tables (LANDFALL_DATABASE_URL).
    Migrate {
        #[arg(long, env = "LANDFALL_DATASETS_DIR", default_value = "datasets")]
        datasets_dir: PathBuf,
    },
    /// List the landing prefix and land every object the ledger lacks (the service configuration
    /// variables apply: LANDFALL_DATABASE_URL, LANDFALL_BUCKET, LANDFALL_S3_*, LANDFALL_AMQP_*).
    Reconcile {
        /// Only keys under this part of the landing prefix, e.g. `ecommerce/ingestion_date=2026-11-`.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Run a batch's SQL models now (all, or the named ones with their upstream models) and
    /// publish TransformCompleted so quality checks and export follow.
    Transform {
        #[arg(long)]
        dataset: String,
        /// The batch's ingestion date (YYYY-MM-DD).
        #[arg(long)]
        date: chrono::NaiveDate,
        /// Only these models (and everything they depend on).
        #[arg(long, num_args = 1..)]
        models: Vec<String>,
    },
    /// Files and batches with their state, rows and timings (LANDFALL_DATABASE_URL).
    Status(status::StatusFilter),
    /// Dataset definitions: `dataset check DIR` validates one, its models, checks and exports,
    /// and runs its SQL in a scratch database.
    Dataset {
        #[command(subcommand)]
        command: dataset_check::DatasetCommand,
    },
    #[command(flatten)]
    Operate(operate::OpsCommand),
    /// Dead-lettered messages: `dlq list | show | requeue | purge` (LANDFALL_AMQP_URL,
    /// LANDFALL_AMQP_PREFIX).
    Dlq(dlq::DlqArgs),
    /// Serve the embedded S3 server (file-system backed, MinIO-style notifications to RabbitMQ).
    S3Server {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        #[arg(long, default_value = ".landfall/s3")]
        root: PathBuf,
        #[arg(long, env = "LANDFALL_S3_ACCESS_KEY_ID", default_value = "landfall")]
        access_key: String,
        #[arg(
            long,
            env = "LANDFALL_S3_SECRET_ACCESS_KEY",
            default_value = "landfall-secret",
            hide_env_values = true
        )]
        secret_key: String,
        /// RabbitMQ to publish bucket notifications to (none when empty).
        #[arg(
            long,
            env = "LANDFALL_AMQP_URL",
            default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
            hide_env_values = true
        )]
        amqp_url: String,
        #[arg(long, env = "LANDFALL_NOTIFY_EXCHANGE", default_value = "landfall.s3")]
        exchange: String,
        #[arg(long, default_value = "s3.created")]
        routing_key: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runtime::telemetry::init("landfall", false)?;
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Gen { args, out } => {
            let written = sample::write(&args, &out)?;
            println!("{written} files written under {}", out.display());
            Ok(())
        }
        Command::Migrate { datasets_dir } => migrate(&datasets_dir).await,
        Command::Reconcile { prefix } => reconcile(prefix.as_deref()).await,
        Command::Transform {
            dataset,
            date,
            models,
        } => transform(&dataset, date, &models).await,
        Command::Dataset { command } => dataset_check::run(command).await,
        Command::Operate(command) => operate::run(command).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Status(filter) => {
            let client = connect().await?;
            print!("{}", status::render(&client, &filter).await?);
            Ok(())
        }
        Command::S3Server {
            listen,
            root,
            access_key,
            secret_key,
            amqp_url,
            exchange,
            routing_key,
        } => {
            let notify = (!amqp_url.is_empty()).then_some(s3dev::NotifyConfig {
                amqp_url,
                exchange,
                routing_key,
            });
            let server = s3dev::S3DevServer::start(s3dev::S3DevConfig {
                root,
                listen,
                access_key,
                secret_key,
                region: "us-east-1".into(),
                notify,
            })
            .await?;
            println!("S3 endpoint {} — Ctrl-C stops it", server.endpoint_url());
            tokio::signal::ctrl_c().await?;
            server.shutdown().await;
            Ok(())
        }
    }
}

async fn connect() -> anyhow::Result<tokio_postgres::Client> {
    let url = Env::process().required(
        "LANDFALL_DATABASE_URL",
        "a PostgreSQL URL such as postgres://user@host:5432/landfall",
    )?;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .context("connecting to LANDFALL_DATABASE_URL")?;
    tokio::spawn(connection);
    Ok(client)
}

async fn migrate(datasets_dir: &std::path::Path) -> anyhow::Result<()> {
    let datasets = Datasets::load(datasets_dir)?;
    let mut client = connect().await?;
    let applied = runtime::db::migrate(&mut client, &datasets).await?;
    println!(
        "{applied} migration(s) applied; staging tables of {} dataset(s) in place",
        datasets.iter().count()
    );
    Ok(())
}

async fn reconcile(prefix: Option<&str>) -> anyhow::Result<()> {
    let config = CommonConfig::from_env(&Env::process(), "landfall-reconcile")?;
    let datasets = Datasets::load(&config.datasets_dir)?;
    let pool = runtime::db::pool(&config.database_url, 2)?;
    let s3 = runtime::s3::client(&config.s3);
    let report = ingester::reconcile::reconcile(
        &pool,
        &s3,
        &config.s3,
        &datasets,
        "landfall-reconcile",
        prefix,
    )
    .await?;
    let relay = runtime::outbox::OutboxRelay::for_command(pool.clone(), config.clone());
    let published = relay.publish_pending().await?;
    println!(
        "listed {} object(s): {} new file(s) landed, {} key(s) matching no dataset; {published} event(s) published",
        report.listed, report.landed, report.unmapped
    );
    Ok(())
}

/// Runs a batch's models (all, or the named ones with everything upstream of them) and
/// publishes `TransformCompleted`, so the checks and the export follow as usual.
async fn transform(
    dataset: &str,
    date: chrono::NaiveDate,
    selected: &[String],
) -> anyhow::Result<()> {
    let config = CommonConfig::from_env(&Env::process(), "landfall-transform")?;
    let datasets = Datasets::load(&config.datasets_dir)?;
    anyhow::ensure!(
        datasets.get(dataset).is_some(),
        "no dataset named '{dataset}' in {}",
        config.datasets_dir.display()
    );
    let models = transformer::Models::load(&config, &datasets)?;
    let model_set = models.for_dataset(dataset).cloned().unwrap_or_default();
    let to_run = if selected.is_empty() {
        model_set.models().iter().collect()
    } else {
        model_set.with_upstream(selected)?
    };
    let pool = runtime::db::pool(&config.database_url, 2)?;
    let mut client = pool
        .get()
        .await
        .context("connecting to LANDFALL_DATABASE_URL")?;
    let tx = client.transaction().await?;
    let staged = tx
        .query(
            "SELECT file_id FROM ops.staged_sources WHERE dataset = $1 AND ingestion_date = $2 ORDER BY file_id",
            &[&dataset, &date],
        )
        .await?;
    anyhow::ensure!(
        !staged.is_empty(),
        "batch {dataset}/{date} has no staged files"
    );
    let file_ids: Vec<i64> = staged.iter().map(|row| row.get(0)).collect();
    let batch = contract::BatchKey {
        dataset: dataset.to_owned(),
        ingestion_date: date,
    };
    let event = transformer::transform_batch(
        &tx,
        &batch,
        &to_run,
        file_ids,
        "landfall-transform",
        None,
        None,
    )
    .await
    .map_err(|failure| anyhow::anyhow!(failure.reason()))?;
    runtime::outbox::enqueue(&tx, "landfall-transform", &event).await?;
    tx.commit().await?;
    if let contract::Event::TransformCompleted(completed) = &event.payload {
        let mut table = table::Table::new(&["model", "rows", "ms"]);
        for run in &completed.models {
            table.row(vec![
                run.model.clone(),
                run.rows.to_string(),
                run.duration_ms.to_string(),
            ]);
        }
        print!("{}", table.render());
    }
    let published = runtime::outbox::OutboxRelay::for_command(pool, config.clone())
        .publish_pending()
        .await?;
    println!("batch {batch} transformed; {published} event(s) published");
    Ok(())
}
