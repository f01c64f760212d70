//! `landfall demo`: the whole pipeline on sample data, on this machine, with nothing to install
//! beyond PostgreSQL and RabbitMQ. It generates the files (or takes `--input`), starts an
//! embedded S3 server that publishes bucket notifications to RabbitMQ and the five services as
//! separate processes (the real binaries), uploads the files, waits until every batch is
//! exported, prints what happened, and stops what it started. `--dataset` picks the dataset
//! (ecommerce by default; `online_retail` has a generator too, any defined dataset takes
//! `--input`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, NaiveDate, Utc};
use s3dev::{NotifyConfig, S3DevConfig, S3DevServer};

use crate::sample::GenArgs;
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
    /// The datasets folder: one folder per dataset with its definition, models, checks and
    /// exports.
    #[arg(long, env = "LANDFALL_DATASETS_DIR", default_value = "datasets")]
    pub datasets_dir: PathBuf,
    /// How long to wait for every batch to be exported.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

/// One ingestion date's files to land.
struct Batch {
    date: NaiveDate,
    files: Vec<PathBuf>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
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
    create_database_if_missing(&args.database_url).await?;
    let topology = runtime::broker::Topology {
        prefix: args.amqp_prefix.clone(),
        notify_exchange: format!("{}.s3", args.amqp_prefix),
    };
    clear_topology(&args.amqp_url, &topology).await?;
    // One S3 folder per database: the ingester's start-up reconcile lands whatever the landing
    // prefix holds, so a run must not find the files an earlier run left for another database.
    let s3_dir = Path::new("s3").join(s3_folder(&args.database_url)?);
    let server = S3DevServer::start(S3DevConfig {
        root: work_dir.join(&s3_dir),
        listen: "127.0.0.1:0".parse()?,
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        region: REGION.into(),
        notify: Some(NotifyConfig {
            amqp_url: args.amqp_url.clone(),
            exchange: topology.notify_exchange.clone(),
            routing_key: format!("{BUCKET}.created"),
        }),
    })
    .await
    .context("starting the embedded S3 server (is RabbitMQ running? see README)")?;
    println!(
        "S3 endpoint   {} (files in {})",
        server.endpoint_url(),
        args.work_dir.join(&s3_dir).display()
    );
    let endpoint = server.endpoint_url();
    let outcome = async {
        let vars = service_vars(&LocalStack {
            database_url: &args.database_url,
            amqp_url: &args.amqp_url,
            amqp_prefix: &args.amqp_prefix,
            s3_endpoint: &endpoint,
            access_key: ACCESS_KEY,
            secret_key: SECRET_KEY,
            bucket: BUCKET,
            datasets_dir: &args.datasets_dir,
        })?;
        let mut services = Services::start(&vars, &work_dir.join("logs")).await?;
        let run = Run {
            args: &args,
            vars: &vars,
            s3_dir: &s3_dir,
            reports: &reports,
            required: &required,
        };
        let outcome = land_and_wait(&run, &batches, &mut services).await;
        let outcome = match outcome {
            Ok(failed) => {
                let kept = if args.keep_running {
                    let next_day = batches
                        .last()
                        .and_then(|batch| batch.date.succ_opt())
                        .unwrap_or_default();
                    let source = required.first().map_or("orders", String::as_str);
                    keep_running(&landing_help(
                        &endpoint,
                        &args.sample.dataset,
                        next_day,
                        source,
                        &required,
                    ))
                    .await
                } else {
                    Ok(())
                };
                kept.and_then(|()| summary(&failed, batches.len()))
            }
            Err(error) => Err(error),
        };
        services.stop().await;
        outcome
    }
    .await;
    server.shutdown().await;
    // The queues and exchanges go with the run: what the services had to do is done (or
    // reported as failed), and the database keeps every result.
    if let Err(error) = delete_topology(&args.amqp_url, &topology).await {
        eprintln!(
            "could not remove the exchanges and queues under '{}': {error:#}",
            args.amqp_prefix
        );
    }
    outcome
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
fn s3_folder(database_url: &str) -> anyhow::Result<String> {
    let config = runtime::db::PgTarget::parse(database_url)
        .context("--database-url is not usable")?
        .config;
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
    Ok(format!("{database}@{host}-{port}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect())
}

/// What a person needs to land a file in the running demo: the endpoint, bucket and keys, and
/// a ready command for curl and for the AWS CLI.
fn landing_help(
    endpoint: &str,
    dataset: &str,
    date: NaiveDate,
    source: &str,
    required: &[String],
) -> String {
    let key = format!("landing/{dataset}/ingestion_date={date}/{source}.csv");
    format!(
        "To land a file, put it to the S3 endpoint (path-style, region {REGION}):\n\
         \x20 endpoint      {endpoint}\n\
         \x20 bucket        {BUCKET} (keys landing/{dataset}/ingestion_date=YYYY-MM-DD/<source>.csv)\n\
         \x20 access key    {ACCESS_KEY}\n\
         \x20 secret key    {SECRET_KEY}\n\
         \x20 with curl     curl --fail -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 aws:amz:{REGION}:s3 --user {ACCESS_KEY}:{SECRET_KEY} -T {source}.csv {endpoint}/{BUCKET}/{key}\n\
         \x20 with aws      AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY={SECRET_KEY} AWS_DEFAULT_REGION={REGION} aws s3 cp {source}.csv s3://{BUCKET}/{key} --endpoint-url {endpoint}\n\
         A batch goes through once its required sources are there: {}.",
        required.join(", ")
    )
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM, handled from before it says so.
async fn keep_running(help: &str) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    println!("\nServices and S3 keep running; Ctrl-C (SIGINT) or SIGTERM stops them.\n{help}");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// Removes the exchanges and queues an earlier run under the same prefix left (their messages
/// were for that run's database); refuses while something consumes them.
async fn clear_topology(
    amqp_url: &str,
    topology: &runtime::broker::Topology,
) -> anyhow::Result<()> {
    let connection =
        runtime::broker::connect_with(amqp_url, lapin::ConnectionProperties::default())
            .await
            .context("connecting to RabbitMQ (is it running? see README)")?;
    // A queue with a consumer is not deleted (`if_unused`); a missing one is no error.
    let unused = lapin::options::QueueDeleteOptions {
        if_unused: true,
        ..Default::default()
    };
    let channel = connection.create_channel().await?;
    for service in services_names() {
        let queue = topology.queue(service);
        if let Err(error) = channel.queue_delete(queue.as_str().into(), unused).await {
            bail!(
                "the queue {queue} is in use ({error}): a pipeline (another demo?) runs under \
                 --amqp-prefix {}; stop it or choose another prefix",
                topology.prefix
            );
        }
    }
    let deleted = runtime::broker::delete_topology(&channel, topology).await;
    connection.close(200, "done".into()).await.ok();
    deleted.with_context(|| {
        format!(
            "removing the queues and exchanges an earlier run left under '{}'",
            topology.prefix
        )
    })
}

async fn delete_topology(
    amqp_url: &str,
    topology: &runtime::broker::Topology,
) -> anyhow::Result<()> {
    let connection =
        runtime::broker::connect_with(amqp_url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let deleted = runtime::broker::delete_topology(&channel, topology).await;
    connection.close(200, "done".into()).await.ok();
    deleted
}

/// What one run works with.
struct Run<'a> {
    args: &'a DemoArgs,
    vars: &'a HashMap<String, String>,
    s3_dir: &'a Path,
    reports: &'a [ReportExport],
    required: &'a [String],
}

/// Uploads every batch, waits until each is exported or failed (printing each in date order as
/// it settles) and until the services have handled every event of the run; returns the failed
/// batches with their reasons. An error is a failure of the run itself (a service exited, a
/// stage gave up on something that belongs to no batch of the run).
async fn land_and_wait(
    run: &Run<'_>,
    batches: &[Batch],
    services: &mut Services,
) -> anyhow::Result<Vec<(NaiveDate, String)>> {
    let args = run.args;
    let dataset = args.sample.dataset.as_str();
    let s3_config =
        runtime::S3Config::from_env(&runtime::Env::from_fn(|name| run.vars.get(name).cloned()))?;
    let s3 = runtime::s3::client(&s3_config).await?;
    if let Err(error) = s3.create_bucket().bucket(BUCKET).send().await {
        let owned = error
            .as_service_error()
            .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists());
        anyhow::ensure!(owned, "creating the demo bucket: {error:?}");
    }
    let client = runtime::db::connect(&args.database_url).await?;
    let started: DateTime<Utc> = client
        .query_one("SELECT clock_timestamp()", &[])
        .await?
        .get(0);
    let mut dead_letters = DeadLetters::watch(&args.amqp_url, &args.amqp_prefix).await?;
    let mut uploaded_at = Vec::new();
    let mut uploads = Vec::new();
    for batch in batches {
        let mut uploaded = Uploaded::default();
        for file in &batch.files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            let key = format!("landing/{dataset}/ingestion_date={}/{name}", batch.date);
            let put = s3
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .content_type("text/csv")
                .body(ByteStream::from(
                    std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
                ))
                .send()
                .await
                .with_context(|| format!("uploading {key}"))?;
            uploaded
                .etags
                .push(put.e_tag().unwrap_or_default().trim_matches('"').to_owned());
            uploaded.keys.push(key);
        }
        uploaded_at.push(Utc::now());
        uploads.push(uploaded);
        println!("Uploaded      {}: {} files", batch.date, batch.files.len());
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let watch = Watch {
        client: &client,
        dataset,
        required: run.required,
    };
    let mut outcomes: Vec<Option<Result<(), String>>> = vec![None; batches.len()];
    let mut printed = 0;
    let mut failed = Vec::new();
    while printed < batches.len() {
        services.check_alive()?;
        dead_letters.collect(dataset, batches).await?;
        let timed_out = Instant::now() > deadline;
        for (index, batch) in batches.iter().enumerate() {
            if outcomes[index].is_some() {
                continue;
            }
            outcomes[index] =
                batch_outcome(&watch, batch.date, &uploads[index], &dead_letters).await?;
            if outcomes[index].is_none() && timed_out {
                outcomes[index] = Some(Err(stuck(&watch, batch.date, &uploads[index]).await?));
            }
        }
        while let Some(Some(outcome)) = outcomes.get(printed) {
            let date = batches[printed].date;
            match outcome {
                Ok(()) => {
                    print_batch(
                        &client,
                        dataset,
                        date,
                        uploaded_at[printed],
                        &uploads[printed],
                        run.reports,
                    )
                    .await?
                }
                Err(reason) => {
                    println!("\nBatch {date}: {reason}");
                    failed.push((date, reason.clone()));
                }
            }
            printed += 1;
        }
        if printed < batches.len() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Stopped now, a service would leave events of the run unhandled (a batch's sources
    // recorded staged by the stager but not yet by the transformer): wait until every event
    // the run published has been handled or dead-lettered.
    let quiet_by = deadline.max(Instant::now() + Duration::from_secs(30));
    loop {
        services.check_alive()?;
        dead_letters.collect(dataset, batches).await?;
        let pending = unhandled_events(&client, started, &dead_letters).await?;
        if pending == 0 {
            break;
        }
        if Instant::now() > quiet_by {
            eprintln!(
                "warning: {pending} event(s) of this run were still unhandled when the demo stopped; see the service logs"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "\nExports       s3://{BUCKET}/analytics_export/{dataset}/… = {}",
        args.work_dir
            .join(run.s3_dir)
            .join(BUCKET)
            .join("analytics_export")
            .display()
    );
    let shown = s3dev::redact_url(&args.database_url);
    if shown == args.database_url {
        println!(
            "Database      {shown} (try `LANDFALL_DATABASE_URL={shown} landfall status --dataset {dataset}`)"
        );
    } else {
        println!(
            "Database      {shown} (try `LANDFALL_DATABASE_URL=<the --database-url> landfall status --dataset {dataset}`)"
        );
    }
    println!("Service logs  {}", args.work_dir.join("logs").display());
    Ok(failed)
}

/// Events the services published since `since` for a consuming stage that no consumer has
/// handled yet (nor dead-lettered).
async fn unhandled_events(
    client: &tokio_postgres::Client,
    since: DateTime<Utc>,
    dead_letters: &DeadLetters,
) -> anyhow::Result<i64> {
    let routed: Vec<&str> = runtime::Stage::ALL
        .iter()
        .flat_map(|stage| stage.consumes().iter().copied())
        .collect();
    let dead: Vec<String> = dead_letters
        .seen
        .iter()
        .filter_map(|letter| letter.event_id.clone())
        .collect();
    Ok(client
        .query_one(
            "SELECT count(*) FROM ops.outbox o
              WHERE o.created_at >= $1 AND o.routing_key = ANY($2) AND o.event_id::text <> ALL($3)
                AND NOT EXISTS (SELECT 1 FROM ops.processed_events p WHERE p.event_id = o.event_id)",
            &[&since, &routed, &dead],
        )
        .await?
        .get(0))
}

/// The S3 keys this run put for one batch, with the ETags S3 answered.
#[derive(Default)]
struct Uploaded {
    keys: Vec<String>,
    etags: Vec<String>,
}

/// What waiting for a batch looks at.
struct Watch<'a> {
    client: &'a tokio_postgres::Client,
    dataset: &'a str,
    required: &'a [String],
}

/// How the batch stands: `None` while it is on its way; `Ok` once it is exported from its
/// current files and every file this run put for it is staged or rejected; `Err` with the
/// stage and the reason once it cannot be exported.
async fn batch_outcome(
    watch: &Watch<'_>,
    date: NaiveDate,
    uploaded: &Uploaded,
    dead_letters: &DeadLetters,
) -> anyhow::Result<Option<Result<(), String>>> {
    let (client, dataset) = (watch.client, watch.dataset);
    if let Some(letter) = dead_letters.of_batch(dataset, date) {
        return Ok(Some(Err(format!(
            "{} failed: the {} gave up on a message (dead-lettered to {}.{}.dlq): {}",
            stage_of(letter.service),
            letter.service,
            dead_letters.prefix,
            letter.service,
            letter.reason
        ))));
    }
    let (state, current) = batch_state(client, dataset, date).await?;
    // This run's files of the batch: their state, and whether their source is staged.
    let files = client
        .query(
            "SELECT u.key, f.state, coalesce(f.source, ''), coalesce(f.reason, ''),
                    EXISTS (SELECT 1 FROM ops.staged_sources s WHERE s.dataset = f.dataset
                               AND s.ingestion_date = f.ingestion_date AND s.source = f.source)
               FROM unnest($1::text[], $2::text[]) AS u(key, etag)
               LEFT JOIN ops.files f ON f.bucket = $3 AND f.key = u.key AND f.etag = u.etag",
            &[&uploaded.keys, &uploaded.etags, &BUCKET],
        )
        .await?;
    let settled = files.iter().all(|file| {
        file.get::<_, Option<String>>(1)
            .is_some_and(|state| state != "landed")
    });
    for file in &files {
        let source: String = file.get(2);
        if file.get::<_, Option<String>>(1).as_deref() == Some("rejected")
            && watch.required.contains(&source)
            && !file.get::<_, bool>(4)
        {
            return Ok(Some(Err(format!(
                "staging failed: the stager rejected {}: {}; batch {date} cannot be transformed without its {source}",
                file.get::<_, String>(0),
                file.get::<_, String>(3)
            ))));
        }
    }
    if state == "exported" && current && settled {
        return Ok(Some(Ok(())));
    }
    if state == "quality_failed" && current {
        let failed = client
            .query(
                "SELECT check_name || ' (' || coalesce(failing_rows || ' failing rows', 'could not run: ' || error) || ')'
                   FROM ops.quality_results
                  WHERE dataset = $2 AND ingestion_date = $1 AND status <> 'passed' AND severity = 'error'
                  ORDER BY check_name",
                &[&date, &dataset],
            )
            .await?;
        let names: Vec<String> = failed.iter().map(|row| row.get(0)).collect();
        return Ok(Some(Err(format!(
            "quality failed: batch {date} failed its error-severity checks: {}; nothing was exported",
            names.join(", ")
        ))));
    }
    Ok(None)
}

/// The batch's state, and whether its last transform was made from its current staged files.
async fn batch_state(
    client: &tokio_postgres::Client,
    dataset: &str,
    date: NaiveDate,
) -> anyhow::Result<(String, bool)> {
    let standing = crate::batches::standing(client, dataset, date).await?;
    Ok((standing.state, standing.current))
}

/// Where a batch that did not get through before the deadline is stuck, and its rejected files.
async fn stuck(watch: &Watch<'_>, date: NaiveDate, uploaded: &Uploaded) -> anyhow::Result<String> {
    let (client, dataset) = (watch.client, watch.dataset);
    let (state, _) = batch_state(client, dataset, date).await?;
    let settled: bool = client
        .query_one(
            "SELECT count(*) = cardinality($1::text[]) FROM unnest($1::text[], $2::text[]) AS u(key, etag)
               JOIN ops.files f ON f.bucket = $3 AND f.key = u.key AND f.etag = u.etag
              WHERE f.state <> 'landed'",
            &[&uploaded.keys, &uploaded.etags, &BUCKET],
        )
        .await?
        .get(0);
    let rejected = client
        .query("SELECT key, reason FROM ops.files WHERE dataset = $2 AND ingestion_date = $1 AND state = 'rejected'", &[&date, &dataset])
        .await?;
    let rejected: Vec<String> = rejected
        .iter()
        .map(|row| format!("{}: {}", row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect();
    let staged: Vec<String> = client
        .query(
            "SELECT source FROM ops.staged_sources WHERE dataset = $2 AND ingestion_date = $1",
            &[&date, &dataset],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let missing: Vec<&str> = watch
        .required
        .iter()
        .filter(|source| !staged.contains(source))
        .map(String::as_str)
        .collect();
    // The transformer marks a batch ready in its transform's transaction: a batch whose
    // required sources are all staged but still 'staging' waits for the transform.
    let stage = match state.as_str() {
        "" | "staging" if !missing.is_empty() || !settled => {
            format!(
                "staging (stager; required sources not staged: {})",
                missing.join(", ")
            )
        }
        "" | "staging" | "ready" => "transform (transformer)".into(),
        "transformed" => "quality (quality-checker)".into(),
        "quality_passed" => "export (exporter)".into(),
        _ => "the pipeline".into(),
    };
    Ok(format!(
        "batch {date} stuck at state '{state}' waiting for {stage}; rejected files: [{}]; see the service logs",
        rejected.join("; ")
    ))
}

/// The pipeline stage a service runs.
fn stage_of(service: &str) -> &'static str {
    runtime::Stage::from_name(service).map_or("the pipeline", runtime::Stage::step)
}

/// One message a stage gave up on during this run.
struct DeadLetter {
    service: &'static str,
    reason: String,
    batch: Option<contract::BatchKey>,
    event_id: Option<String>,
}

/// The services' dead-letter queues: a message dead-lettered during this run is a stage that
/// gave up, and its `x-landfall-reason` header says why. The queues are the run's own (an
/// earlier run's were removed before the services started), and the demo takes what arrives
/// in them (it removes its queues when it ends).
struct DeadLetters {
    prefix: String,
    channel: lapin::Channel,
    _connection: lapin::Connection,
    /// (service, queue)
    queues: Vec<(&'static str, String)>,
    seen: Vec<DeadLetter>,
}

impl DeadLetters {
    async fn watch(amqp_url: &str, prefix: &str) -> anyhow::Result<DeadLetters> {
        let connection =
            runtime::broker::connect_with(amqp_url, lapin::ConnectionProperties::default())
                .await
                .context("connecting to RabbitMQ to watch the dead-letter queues")?;
        let channel = connection.create_channel().await?;
        let queues = services_names()
            .into_iter()
            .map(|service| (service, format!("{prefix}.{service}.dlq")))
            .collect();
        Ok(DeadLetters {
            prefix: prefix.to_owned(),
            channel,
            _connection: connection,
            queues,
            seen: Vec::new(),
        })
    }

    /// Takes the messages dead-lettered since the last look. One that belongs to no batch of
    /// the run ends it: the pipeline failed at something the demo did not put there.
    async fn collect(&mut self, dataset: &str, batches: &[Batch]) -> anyhow::Result<()> {
        for (service, queue) in &self.queues {
            let options = lapin::options::BasicGetOptions { no_ack: true };
            while let Some(message) = self
                .channel
                .basic_get(queue.as_str().into(), options)
                .await
                .with_context(|| format!("reading {queue}"))?
            {
                let reason = runtime::broker::header_text(
                    &message.delivery.properties,
                    runtime::broker::REASON_HEADER,
                )
                .unwrap_or_else(|| "(no reason recorded)".into());
                let envelope = contract::Envelope::decode(&message.delivery.data).ok();
                let batch = envelope.as_ref().and_then(|event| event.batch.clone());
                let ours = batch.as_ref().is_some_and(|batch| {
                    batch.dataset == dataset
                        && batches.iter().any(|ours| ours.date == batch.ingestion_date)
                });
                if !ours {
                    bail!(
                        "{} failed: the {service} gave up on a message (dead-lettered to {queue}): {reason}",
                        stage_of(service),
                    );
                }
                self.seen.push(DeadLetter {
                    service,
                    reason,
                    batch,
                    event_id: envelope.map(|event| event.event_id.to_string()),
                });
            }
        }
        Ok(())
    }

    /// The first message of the batch a stage gave up on.
    fn of_batch(&self, dataset: &str, date: NaiveDate) -> Option<&DeadLetter> {
        self.seen.iter().find(|letter| {
            letter
                .batch
                .as_ref()
                .is_some_and(|batch| batch.dataset == dataset && batch.ingestion_date == date)
        })
    }
}

async fn print_batch(
    client: &tokio_postgres::Client,
    dataset: &str,
    date: NaiveDate,
    uploaded_at: DateTime<Utc>,
    uploaded: &Uploaded,
    reports: &[ReportExport],
) -> anyhow::Result<()> {
    let row = client
        .query_one(
            "SELECT b.exported_at,
                    (SELECT coalesce(sum(rows_loaded), 0)::bigint FROM ops.files f
                      WHERE f.dataset = b.dataset AND f.ingestion_date = b.ingestion_date AND f.state = 'staged'),
                    (SELECT coalesce(sum(rows_rejected), 0)::bigint FROM ops.files f
                      WHERE f.dataset = b.dataset AND f.ingestion_date = b.ingestion_date AND f.state = 'staged')
               FROM ops.batches b WHERE b.dataset = $2 AND b.ingestion_date = $1",
            &[&date, &dataset],
        )
        .await?;
    let exported: DateTime<Utc> = row.get(0);
    let timing = if exported >= uploaded_at {
        format!(
            "{:.2}s from the last upload to the export",
            (exported - uploaded_at).num_milliseconds() as f64 / 1000.0
        )
    } else {
        "already exported from these same files by an earlier run".to_owned()
    };
    println!(
        "\nBatch {date}: {} rows staged, {} rejected; {timing}",
        row.get::<_, i64>(1),
        row.get::<_, i64>(2)
    );
    // A rejected file of a source the batch can do without (e.g. a product snapshot).
    let rejected = client
        .query(
            "SELECT u.key, f.reason FROM unnest($1::text[], $2::text[]) AS u(key, etag)
               JOIN ops.files f ON f.bucket = $3 AND f.key = u.key AND f.etag = u.etag
              WHERE f.state = 'rejected' ORDER BY u.key",
            &[&uploaded.keys, &uploaded.etags, &BUCKET],
        )
        .await?;
    for file in &rejected {
        println!(
            "  rejected by the stager   {}: {}",
            file.get::<_, String>(0),
            file.get::<_, String>(1)
        );
    }
    if dataset != "ecommerce" {
        return print_reports(client, date, reports).await;
    }
    for (report, sql) in [
        (
            "agg_public_holiday",
            "SELECT t::text FROM analytics.agg_public_holiday t WHERE ingestion_date = $1",
        ),
        (
            "agg_shipments",
            "SELECT t::text FROM analytics.agg_shipments t WHERE ingestion_date = $1",
        ),
        (
            "best_performing_product",
            "SELECT t::text FROM analytics.best_performing_product t WHERE ingestion_date = $1",
        ),
        (
            "top_products_by_revenue",
            "SELECT rank || '. ' || coalesce(product_name, '(unknown)') || ' ' || revenue FROM analytics.top_products_by_revenue WHERE ingestion_date = $1 AND rank <= 3 ORDER BY rank",
        ),
    ] {
        let rows = client.query(sql, &[&date]).await?;
        let text: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        println!("  {report:<24} {}", text.join("  "));
    }
    Ok(())
}

/// The first rows of each exported report of the batch, in export order: the report's name,
/// then one row a line.
async fn print_reports(
    client: &tokio_postgres::Client,
    date: NaiveDate,
    reports: &[ReportExport],
) -> anyhow::Result<()> {
    const SHOWN: i64 = 3;
    for report in reports {
        let order_by: Vec<String> = report
            .order_by
            .iter()
            .map(|column| runtime::db::quote_ident(column))
            .collect();
        let sql = format!(
            "SELECT t::text FROM {} t WHERE ingestion_date = $1 ORDER BY {} LIMIT {}",
            report.qualified_table(),
            order_by.join(", "),
            SHOWN + 1
        );
        let rows = client
            .query(&sql, &[&date])
            .await
            .with_context(|| format!("reading report {}", report.report))?;
        let mut lines: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        if lines.len() as i64 > SHOWN {
            lines.truncate(SHOWN as usize);
            lines.push("…".into());
        }
        if lines.is_empty() {
            lines.push("(no rows)".into());
        }
        for (index, line) in lines.iter().enumerate() {
            let name = if index == 0 {
                report.report.as_str()
            } else {
                ""
            };
            println!("  {name:<32} {line}");
        }
    }
    Ok(())
}

/// The five services as child processes, logging to files.
pub(crate) struct Services {
    children: Vec<(&'static str, tokio::process::Child, PathBuf)>,
}

impl Services {
    async fn start(vars: &HashMap<String, String>, log_dir: &Path) -> anyhow::Result<Services> {
        let services = Services::start_only(vars, log_dir, &services_names()).await?;
        println!(
            "Services      {} (separate processes, ready)",
            services_names().join(", ")
        );
        Ok(services)
    }

    /// Starts the named services (binaries next to this one) and waits until each is ready.
    pub(crate) async fn start_only(
        vars: &HashMap<String, String>,
        log_dir: &Path,
        names: &[&'static str],
    ) -> anyhow::Result<Services> {
        std::fs::create_dir_all(log_dir)?;
        let bin_dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut children = Vec::new();
        let mut ports = Vec::new();
        for &service in names {
            let binary = bin_dir.join(service);
            anyhow::ensure!(
                binary.exists(),
                "{} is missing: build the services first (cargo build --workspace --bins)",
                binary.display()
            );
            let port = runtime::health::unused_local_port()?;
            let log_path = log_dir.join(format!("{service}.log"));
            let log = std::fs::File::create(&log_path)?;
            let child = tokio::process::Command::new(&binary)
                .envs(vars)
                .env("LANDFALL_HEALTH_ADDR", format!("127.0.0.1:{port}"))
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                )
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            children.push((service, child, log_path));
            ports.push(port);
        }
        let mut services = Services { children };
        let deadline = Instant::now() + Duration::from_secs(60);
        for (index, port) in ports.iter().enumerate() {
            while !ready(*port).await {
                services.check_alive()?;
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{} did not become ready within a minute; see its log",
                    names[index]
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(services)
    }

    /// The process id of a running service (the first of that name).
    pub(crate) fn pid(&self, service: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(name, _, _)| *name == service)
            .and_then(|(_, child, _)| child.id())
    }

    /// An error naming the service that exited, with the end of its log.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        for (service, child, log) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let text = std::fs::read_to_string(&*log).unwrap_or_default();
                let tail: Vec<&str> = text
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                bail!(
                    "{service} exited ({status}); the end of {}:\n{}",
                    log.display(),
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to each, then wait for the drain.
    pub(crate) async fn stop(mut self) {
        for (_, child, _) in &self.children {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
        for (service, child, _) in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                eprintln!("{service} did not stop within 30 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut response = String::new();
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .is_ok()
        && stream.read_to_string(&mut response).await.is_ok()
        && response.starts_with("HTTP/1.1 200")
}

/// Where the locally started services find their servers and files.
pub(crate) struct LocalStack<'a> {
    pub database_url: &'a str,
    pub amqp_url: &'a str,
    pub amqp_prefix: &'a str,
    pub s3_endpoint: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub bucket: &'a str,
    pub datasets_dir: &'a Path,
}

/// The environment the demo's and the benchmarks' service processes run with.
pub(crate) fn service_vars(stack: &LocalStack<'_>) -> anyhow::Result<HashMap<String, String>> {
    Ok([
        ("LANDFALL_DATABASE_URL", stack.database_url.to_owned()),
        ("LANDFALL_AMQP_URL", stack.amqp_url.to_owned()),
        ("LANDFALL_AMQP_PREFIX", stack.amqp_prefix.to_owned()),
        ("LANDFALL_S3_ENDPOINT", stack.s3_endpoint.to_owned()),
        ("LANDFALL_S3_ACCESS_KEY_ID", stack.access_key.to_owned()),
        ("LANDFALL_S3_SECRET_ACCESS_KEY", stack.secret_key.to_owned()),
        ("LANDFALL_BUCKET", stack.bucket.to_owned()),
        (
            "LANDFALL_DATASETS_DIR",
            absolute(stack.datasets_dir)?.display().to_string(),
        ),
        ("LANDFALL_OUTBOX_POLL_MS", "250".into()),
        ("LANDFALL_RECONCILE_INTERVAL_S", "0".into()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect())
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

async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let target = runtime::db::PgTarget::parse(url).context("--database-url is not usable")?;
    let name = target.config.get_dbname().unwrap_or("postgres").to_owned();
    if target.connect().await.is_ok() {
        return Ok(());
    }
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name '{name}' must be letters, digits and '_' to be created"
    );
    let mut admin = target.clone();
    admin.config.dbname("postgres");
    let client = admin
        .connect()
        .await
        .context("connecting to PostgreSQL (is it running? see README)")?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    println!("Database      created {name}");
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    })
}

/// The stages, in pipeline order: one binary each.
fn services_names() -> Vec<&'static str> {
    runtime::Stage::ALL
        .iter()
        .map(|stage| stage.name())
        .collect()
}
