//! `landfall`: the operator command. Runs the demo, migrates the database, reconciles the
//! landing prefix with the ledger, shows files and batches, and serves the embedded S3 server.

mod bench;
mod choices;
mod dataset_check;
mod demo;
mod dlq;
mod operate;
mod progress;
mod rejects;
mod sample;
mod sample_retail;
mod services;
mod status;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use catalog::Datasets;
use clap::{Parser, Subcommand};
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
        /// The folder the files are written under.
        #[arg(long, default_value = "sample-data")]
        out: PathBuf,
    },
    /// Apply pending migrations and create the datasets' staging tables (LANDFALL_DATABASE_URL).
    Migrate {
        /// Folder of the dataset definitions whose staging tables are created.
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
        /// The batch's dataset (a folder under LANDFALL_DATASETS_DIR).
        #[arg(long)]
        dataset: String,
        /// The batch's ingestion date (YYYY-MM-DD).
        #[arg(long)]
        date: chrono::NaiveDate,
        /// Only these models (and everything they depend on).
        #[arg(long, num_args = 1..)]
        models: Vec<String>,
    },
    /// Read a dataset's tables from the shop's database (its extract.toml) and land them as
    /// files, once, as the extractor service does (LANDFALL_SOURCE_DATABASE_URL,
    /// LANDFALL_DATABASE_URL, LANDFALL_BUCKET, LANDFALL_S3_*).
    Extract {
        /// The dataset (a folder under LANDFALL_DATASETS_DIR with an extract.toml).
        #[arg(long)]
        dataset: String,
        /// The ingestion date the files land under (YYYY-MM-DD); default today (UTC).
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
    /// The rows the stager rejected: file, line, column, value and reason (LANDFALL_DATABASE_URL).
    Rejects(rejects::RejectsArgs),
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
    /// Clients sign requests (AWS Signature V4, path-style, region us-east-1) with the access
    /// and secret key below; it prints the endpoint and the keys it accepts when it starts.
    S3Server {
        /// The address to serve S3 on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// The folder buckets and objects are stored in (one folder per bucket).
        #[arg(long, default_value = ".landfall/s3")]
        root: PathBuf,
        /// The access key clients sign with; when neither this nor the variable is given (or
        /// it is empty): landfall.
        #[arg(long, env = "LANDFALL_S3_ACCESS_KEY_ID")]
        access_key: Option<String>,
        /// The secret key clients sign with; when neither this nor the variable is given (or
        /// it is empty): landfall-secret.
        #[arg(long, env = "LANDFALL_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        /// RabbitMQ to publish bucket notifications to (none when empty).
        #[arg(
            long,
            env = "LANDFALL_AMQP_URL",
            default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
            hide_env_values = true
        )]
        amqp_url: String,
        /// The exchange bucket notifications are published to.
        #[arg(long, env = "LANDFALL_NOTIFY_EXCHANGE", default_value = "landfall.s3")]
        exchange: String,
        /// The routing key of every bucket notification.
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
        Command::Extract { dataset, date } => extract(&dataset, date).await,
        Command::Transform {
            dataset,
            date,
            models,
        } => transform(&dataset, date, &models).await,
        Command::Dataset { command } => dataset_check::run(command).await,
        Command::Operate(command) => operate::run(command).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Rejects(args) => {
            let client = connect().await?;
            print!("{}", rejects::render(&client, &args).await?);
            Ok(())
        }
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
            let access_key = S3Key::resolve(access_key, "--access-key", ACCESS_KEY_VAR, "landfall");
            let secret_key = S3Key::resolve(
                secret_key,
                "--secret-key",
                SECRET_KEY_VAR,
                "landfall-secret",
            );
            let server = s3dev::S3DevServer::start(s3dev::S3DevConfig {
                root: root.clone(),
                listen,
                access_key: access_key.value.clone(),
                secret_key: secret_key.value.clone(),
                region: "us-east-1".into(),
                notify,
            })
            .await?;
            println!(
                "S3 endpoint   {} (path-style, region us-east-1; files in {})",
                server.endpoint_url(),
                root.display()
            );
            println!("Access key    {}", access_key.shown(false));
            println!("Secret key    {}", secret_key.shown(true));
            println!("Ctrl-C (SIGINT) or SIGTERM stops it.");
            use tokio::signal::unix::{SignalKind, signal};
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut terminate = signal(SignalKind::terminate())?;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            server.shutdown().await;
            Ok(())
        }
    }
}

const ACCESS_KEY_VAR: &str = "LANDFALL_S3_ACCESS_KEY_ID";
const SECRET_KEY_VAR: &str = "LANDFALL_S3_SECRET_ACCESS_KEY";

/// A key of `landfall s3-server` and where it came from.
#[derive(Debug, PartialEq, Eq)]
struct S3Key {
    value: String,
    /// `None`: the default.
    from: Option<&'static str>,
}

impl S3Key {
    /// The given key (flag or variable, as clap read it), or the default when none was given or
    /// it is empty (an empty key signs nothing).
    fn resolve(
        given: Option<String>,
        flag: &'static str,
        var: &'static str,
        default: &str,
    ) -> S3Key {
        match given.filter(|value| !value.is_empty()) {
            Some(value) => {
                let from = if std::env::var(var).ok().as_deref() == Some(value.as_str()) {
                    var
                } else {
                    flag
                };
                S3Key {
                    value,
                    from: Some(from),
                }
            }
            None => S3Key {
                value: default.to_owned(),
                from: None,
            },
        }
    }

    /// How the start message shows it: a default is shown (it is in `--help` anyway), a given
    /// secret is not.
    fn shown(&self, secret: bool) -> String {
        match self.from {
            None => format!("{} (the default)", self.value),
            Some(from) if secret => format!("the value of {from} (not shown)"),
            Some(from) => format!("{} (from {from})", self.value),
        }
    }
}

async fn connect() -> anyhow::Result<tokio_postgres::Client> {
    let url = Env::process().required(
        "LANDFALL_DATABASE_URL",
        "a PostgreSQL URL such as postgres://user@host:5432/landfall",
    )?;
    runtime::db::connect(&url)
        .await
        .context("connecting to LANDFALL_DATABASE_URL")
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
    let env = Env::process();
    let config = CommonConfig::from_env(&env, "landfall-reconcile")?;
    let landing = runtime::LandingConfig::from_env(&env)?;
    let s3_config = runtime::S3Config::from_env(&env)?;
    let datasets = Datasets::load(&config.datasets_dir)?;
    let pool = runtime::db::pool(&config.database_url, 2)?;
    let s3 = runtime::s3::client(&s3_config).await?;
    let report = pipeline::reconcile::reconcile(
        &pool,
        &s3,
        &landing,
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

/// One extract run with the extractor's configuration, the dataset and date from the flags.
async fn extract(dataset: &str, date: Option<chrono::NaiveDate>) -> anyhow::Result<()> {
    let date = date.map(|date| date.format("%Y-%m-%d").to_string());
    let env = Env::from_fn(|name| match name {
        "LANDFALL_EXTRACT_DATASET" => Some(dataset.to_owned()),
        "LANDFALL_EXTRACT_DATE" => date.clone(),
        _ => std::env::var(name).ok(),
    });
    let config = <extractor::ExtractorConfig as runtime::service::ServiceConfig>::from_env(&env)?;
    let files = extractor::extract_once(&config).await?;
    for file in &files {
        println!(
            "{:<24} {:>12} rows {:>14} bytes  {}  {}",
            file.source,
            file.rows,
            file.bytes,
            if file.landed {
                "landed   "
            } else {
                "unchanged"
            },
            file.key
        );
    }
    Ok(())
}

/// Runs a batch's models (all, or the named ones with everything upstream of them) and
/// publishes `TransformCompleted`, so the checks and the export follow as usual.
async fn transform(
    dataset: &str,
    date: chrono::NaiveDate,
    selected: &[String],
) -> anyhow::Result<()> {
    let operator = operate::Operator::start("landfall-transform", dataset)?;
    let batch = contract::BatchKey {
        dataset: dataset.to_owned(),
        ingestion_date: date,
    };
    let (event, _) = operator
        .run_models(&batch, selected, "landfall-transform")
        .await?;
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
    let published = operator.publish().await?;
    println!("batch {batch} transformed; {published} event(s) published");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNSET: &str = "LANDFALL_TEST_NO_SUCH_VARIABLE";

    #[test]
    fn an_s3_server_key_not_given_or_empty_is_the_default_its_help_names() {
        let default = S3Key {
            value: "landfall".into(),
            from: None,
        };
        assert_eq!(
            S3Key::resolve(None, "--access-key", UNSET, "landfall"),
            default
        );
        assert_eq!(
            S3Key::resolve(Some(String::new()), "--access-key", UNSET, "landfall"),
            default
        );
        assert_eq!(default.shown(false), "landfall (the default)");
    }

    #[test]
    fn a_given_s3_server_key_is_used_and_a_given_secret_is_not_printed() {
        let given = S3Key::resolve(Some("ak".into()), "--access-key", UNSET, "landfall");
        assert_eq!(
            given,
            S3Key {
                value: "ak".into(),
                from: Some("--access-key")
            }
        );
        assert_eq!(given.shown(false), "ak (from --access-key)");
        let secret = S3Key::resolve(Some("sk".into()), "--secret-key", UNSET, "landfall-secret");
        assert_eq!(secret.shown(true), "the value of --secret-key (not shown)");
        assert!(!secret.shown(true).contains("sk "));
    }
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory as _;

    /// Every flag and argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "landfall", &mut missing);
        assert!(
            missing.is_empty(),
            "arguments without help:\n{}",
            missing.join("\n")
        );
    }
}
