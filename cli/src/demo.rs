//! `landfall demo`: the whole pipeline on sample data, on this machine, with nothing to install
//! beyond PostgreSQL and RabbitMQ: an embedded S3 server publishes bucket notifications to
//! RabbitMQ, the five services run in this process, sample files land day by day.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{Duration as Days, NaiveDate};
use runtime::Env;
use runtime::service::ServiceConfig;
use s3dev::{NotifyConfig, S3DevConfig, S3DevServer};

use crate::sample;

const ACCESS_KEY: &str = "landfall-demo";
const SECRET_KEY: &str = "landfall-demo-secret";
const BUCKET: &str = "landfall-demo";
const PREFIX: &str = "landfall-demo";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// PostgreSQL server (without a database name); the demo (re)creates its own database.
    #[arg(
        long,
        env = "LANDFALL_DEMO_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub postgres: String,
    /// The demo's database; dropped and created anew.
    #[arg(long, default_value = "landfall_demo")]
    pub database: String,
    /// RabbitMQ.
    #[arg(
        long,
        env = "LANDFALL_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Ingestion dates to land, ending with --last-date.
    #[arg(long, default_value_t = 3)]
    pub days: i64,
    #[arg(long, default_value = "2026-11-25")]
    pub last_date: NaiveDate,
    #[arg(long, default_value_t = 1000)]
    pub orders_per_day: i64,
    /// Where the embedded S3 server keeps its files.
    #[arg(long)]
    pub s3_root: Option<PathBuf>,
    /// Keep the services and the S3 server running after the demo (Ctrl-C stops them).
    #[arg(long)]
    pub keep_running: bool,
    /// The datasets folder.
    #[arg(long, env = "LANDFALL_DATASETS_DIR", default_value = "datasets")]
    pub datasets_dir: PathBuf,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let database_url = reset_database(&args).await?;
    reset_broker(&args.amqp_url).await?;
    let s3_root = args
        .s3_root
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("landfall-demo-s3"));
    let _ = std::fs::remove_dir_all(&s3_root);
    let server = S3DevServer::start(S3DevConfig {
        root: s3_root.clone(),
        listen: "127.0.0.1:0".parse()?,
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        region: "us-east-1".into(),
        notify: Some(NotifyConfig {
            amqp_url: args.amqp_url.clone(),
            exchange: format!("{PREFIX}.s3"),
            routing_key: format!("{BUCKET}.created"),
        }),
    })
    .await?;
    println!(
        "S3 endpoint  {} (bucket {BUCKET}, files in {})",
        server.endpoint_url(),
        s3_root.display()
    );
    let vars = service_vars(&args, &database_url, &server.endpoint_url());
    let env = Env::from_fn(|name| vars.get(name).cloned());
    let common = runtime::CommonConfig::from_env(&env, "landfall-demo")?;
    let s3 = runtime::s3::client(&common.s3);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .context("creating the demo bucket")?;

    let (trigger, shutdown) = runtime::shutdown::channel();
    let mut services = tokio::task::JoinSet::new();
    let config = |service: &str| runtime::CommonConfig::from_env(&env, service);
    services.spawn(ingester::run(
        ingester::IngesterConfig::from_env(&env)?,
        shutdown.clone(),
    ));
    services.spawn(stager::run(
        stager::StagerConfig::from_env(&env)?,
        shutdown.clone(),
    ));
    services.spawn(transformer::run(config("transformer")?, shutdown.clone()));
    services.spawn(quality_checker::run(
        config("quality-checker")?,
        shutdown.clone(),
    ));
    services.spawn(exporter::run(config("exporter")?, shutdown.clone()));
    wait_for_consumers(&args.amqp_url, &common).await?;
    println!(
        "Services     ingester, stager, transformer, quality-checker, exporter consuming (in this process)"
    );

    let mut expected_files = 0;
    for day in 0..args.days {
        let date = args.last_date - Days::days(args.days - 1 - day);
        for file in sample::batch_files(date, day, args.orders_per_day) {
            let key = format!(
                "landing/ecommerce/ingestion_date={date}/{}.csv",
                file.source
            );
            s3.put_object()
                .bucket(BUCKET)
                .key(&key)
                .content_type("text/csv")
                .body(ByteStream::from(file.body.into_bytes()))
                .send()
                .await
                .with_context(|| format!("putting {key}"))?;
            expected_files += 1;
        }
        println!(
            "Landed       {date}: orders, reviews, shipment_deliveries, customers, products, holidays"
        );
    }
    let (client, connection) =
        tokio_postgres::connect(&database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    wait_for_pipeline(&client, expected_files, args.days).await?;
    println!(
        "\nAll {expected_files} files handled and {} batches ready in {:.1}s.\n",
        args.days,
        started.elapsed().as_secs_f64()
    );
    print!(
        "{}",
        crate::status::render(
            &client,
            &crate::status::StatusFilter {
                limit: 100,
                ..Default::default()
            }
        )
        .await?
    );
    let rejects = client
        .query("SELECT f.source, r.line, r.column_name, r.value, r.reason, f.ingestion_date::text FROM ops.rejected_rows r JOIN ops.files f USING (file_id) ORDER BY r.file_id, r.line LIMIT 10", &[])
        .await?;
    if !rejects.is_empty() {
        println!("\nRejected rows (ops.rejected_rows; the rest of each file loaded)");
        for row in rejects {
            let column: Option<String> = row.get(2);
            let value: Option<String> = row.get(3);
            println!(
                "  {} {}.csv line {}, column {}: '{}' — {}",
                row.get::<_, String>(5),
                row.get::<_, String>(0),
                row.get::<_, i64>(1),
                column.unwrap_or_default(),
                value.unwrap_or_default(),
                row.get::<_, String>(4)
            );
        }
    }
    println!(
        "\nThe demo database is {database_url}; run `LANDFALL_DATABASE_URL={database_url} landfall status` to look again."
    );
    if args.keep_running {
        println!("Services keep running; Ctrl-C stops them.");
        trigger.on_signals();
    } else {
        trigger.trigger();
    }
    while let Some(result) = services.join_next().await {
        result??;
    }
    server.shutdown().await;
    Ok(())
}

async fn reset_database(args: &DemoArgs) -> anyhow::Result<String> {
    let server = args.postgres.trim_end_matches('/');
    let (admin, connection) =
        tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls)
            .await
            .with_context(|| {
                format!("connecting to PostgreSQL at {server} (is it running? see README)")
            })?;
    tokio::spawn(connection);
    anyhow::ensure!(
        args.database
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "--database must be lower-case letters, digits and '_'"
    );
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            args.database
        ))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {}", args.database))
        .await?;
    Ok(format!("{server}/{}", args.database))
}

async fn reset_broker(amqp_url: &str) -> anyhow::Result<()> {
    let connection = lapin_connect(amqp_url).await?;
    let channel = connection.create_channel().await?;
    let topology = runtime::broker::Topology {
        prefix: PREFIX.into(),
        notify_exchange: format!("{PREFIX}.s3"),
    };
    runtime::broker::delete_topology(&channel, &topology).await?;
    channel.close(200, "reset".into()).await?;
    connection.close(200, "reset".into()).await?;
    Ok(())
}

async fn lapin_connect(amqp_url: &str) -> anyhow::Result<lapin::Connection> {
    runtime::broker::connect(&runtime::Secret::new(amqp_url), "landfall-demo")
        .await
        .with_context(|| "is RabbitMQ running? see README".to_string())
}

fn service_vars(args: &DemoArgs, database_url: &str, s3_endpoint: &str) -> HashMap<String, String> {
    [
        ("LANDFALL_DATABASE_URL", database_url.to_owned()),
        ("LANDFALL_AMQP_URL", args.amqp_url.clone()),
        ("LANDFALL_AMQP_PREFIX", PREFIX.into()),
        ("LANDFALL_S3_ENDPOINT", s3_endpoint.to_owned()),
        ("LANDFALL_S3_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("LANDFALL_S3_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("LANDFALL_BUCKET", BUCKET.into()),
        (
            "LANDFALL_DATASETS_DIR",
            args.datasets_dir.display().to_string(),
        ),
        ("LANDFALL_HEALTH_ADDR", "127.0.0.1:0".into()),
        ("LANDFALL_OUTBOX_POLL_MS", "250".into()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Waits until every stage consumes from its queue, so the files land on a running pipeline.
async fn wait_for_consumers(amqp_url: &str, config: &runtime::CommonConfig) -> anyhow::Result<()> {
    let connection = lapin_connect(amqp_url).await?;
    let topology = runtime::broker::Topology {
        prefix: PREFIX.into(),
        notify_exchange: format!("{PREFIX}.s3"),
    };
    let channel = connection.create_channel().await?;
    runtime::broker::declare_topology(&channel, config, &topology).await?;
    channel.close(200, "declared".into()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for (service, _) in runtime::broker::PIPELINE {
        let queue = format!("{PREFIX}.{service}");
        loop {
            let channel = connection.create_channel().await?;
            let options = lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let declared = channel
                .queue_declare(queue.as_str().into(), options, Default::default())
                .await;
            let _ = channel.close(200, "checked".into()).await;
            if declared.is_ok_and(|declared| declared.consumer_count() > 0) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{service} did not start consuming within a minute; see the logs above"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = connection.close(200, "ready".into()).await;
    Ok(())
}

/// Waits until every landed file reached a final state and every batch is ready.
async fn wait_for_pipeline(
    client: &tokio_postgres::Client,
    files: i64,
    batches: i64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = String::new();
    loop {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM ops.files WHERE state <> 'landed'),
                        (SELECT count(*) FROM ops.files),
                        (SELECT count(*) FROM ops.batches WHERE state = 'ready')",
                &[],
            )
            .await?;
        let (done, seen, ready): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let progress = format!(
            "Progress     {done}/{files} files staged or rejected, {ready}/{batches} batches ready"
        );
        if progress != last {
            println!("{progress}");
            last = progress;
        }
        if done >= files && seen >= files && ready >= batches {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pipeline did not finish within 5 minutes; see the logs above"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
