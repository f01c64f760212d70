//! The demo's wait: every batch uploaded, then each reported (in date order) as it is exported
//! or fails, then every event of the run handled.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, NaiveDate, Utc};
use runtime::BatchState;
use scratch::batch::BatchStanding;

use super::dead_letters::{DeadLetters, stage_of};
use super::report::print_batch;
use super::{BUCKET, Batch, Run};
use crate::services::Services;

/// A batch's outcome: `Ok` once it is exported, `Err` with the reason once it cannot be.
type Outcome = Result<(), String>;

/// Uploads every batch, waits until each is exported or failed (printing each in date order as
/// it settles) and until the services have handled every event of the run; returns the failed
/// batches with their reasons. An error is a failure of the run itself (a service exited, a
/// stage gave up on something that belongs to no batch of the run).
pub(super) async fn land_and_wait(
    run: &Run<'_>,
    batches: &[Batch],
    vars: &HashMap<String, String>,
    services: &mut Services,
) -> anyhow::Result<Vec<(NaiveDate, String)>> {
    let args = run.args;
    let dataset = args.sample.dataset.as_str();
    let client = runtime::db::connect(&args.database_url).await?;
    let started: DateTime<Utc> = client
        .query_one("SELECT clock_timestamp()", &[])
        .await?
        .get(0);
    let mut dead_letters = DeadLetters::watch(&args.amqp_url, &args.amqp_prefix).await?;
    let uploads = if args.from_db {
        super::from_db::extract(run, batches, vars).await?
    } else {
        upload(run, batches).await?
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let watch = Watch {
        client: &client,
        dataset,
        required: run.required,
        batches,
        uploads: &uploads,
    };
    let failed = settle_each(&watch, run, services, &mut dead_letters, deadline).await?;
    wait_quiet(&watch, services, &mut dead_letters, started, deadline).await?;
    print_where(run, dataset);
    Ok(failed)
}

/// Puts each batch's files to S3: the keys, ETags and time of each batch's upload.
async fn upload(run: &Run<'_>, batches: &[Batch]) -> anyhow::Result<Vec<Uploaded>> {
    let mut uploads = Vec::new();
    for batch in batches {
        let uploaded = put_files(run, batch.date, &batch.files).await?;
        uploads.push(uploaded);
        println!("Uploaded      {}: {} files", batch.date, batch.files.len());
    }
    Ok(uploads)
}

/// Puts `files` under the landing prefix for `date`.
pub(super) async fn put_files(
    run: &Run<'_>,
    date: NaiveDate,
    files: &[std::path::PathBuf],
) -> anyhow::Result<Uploaded> {
    let dataset = run.args.sample.dataset.as_str();
    let s3 = run.s3.client().await?;
    let mut uploaded = Uploaded::default();
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let key = format!("landing/{dataset}/ingestion_date={date}/{name}");
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
    uploaded.at = Utc::now();
    Ok(uploaded)
}

/// Waits until each batch is exported or failed (stuck past the deadline counts as failed),
/// printing each in date order as soon as it and the ones before it are settled; the failed
/// ones with their reasons.
async fn settle_each(
    watch: &Watch<'_>,
    run: &Run<'_>,
    services: &mut Services,
    dead_letters: &mut DeadLetters,
    deadline: Instant,
) -> anyhow::Result<Vec<(NaiveDate, String)>> {
    let batches = watch.batches;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; batches.len()];
    let mut printed = 0;
    let mut failed = Vec::new();
    while printed < batches.len() {
        services.check_alive()?;
        dead_letters.collect(watch.dataset, batches).await?;
        let timed_out = Instant::now() > deadline;
        for (index, batch) in batches.iter().enumerate() {
            if outcomes[index].is_some() {
                continue;
            }
            let uploaded = &watch.uploads[index];
            outcomes[index] = batch_outcome(watch, batch.date, uploaded, dead_letters).await?;
            if outcomes[index].is_none() && timed_out {
                outcomes[index] = Some(Err(stuck(watch, batch.date, uploaded).await?));
            }
        }
        while let Some(Some(outcome)) = outcomes.get(printed) {
            let date = batches[printed].date;
            match outcome {
                Ok(()) => {
                    let uploaded = &watch.uploads[printed];
                    print_batch(watch.client, watch.dataset, date, uploaded, run.reports).await?
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
    Ok(failed)
}

/// Stopped now, a service would leave events of the run unhandled (a batch's sources recorded
/// staged by the stager but not yet by the transformer): waits until every event the run
/// published has been handled or dead-lettered (warning after a while, never failing).
async fn wait_quiet(
    watch: &Watch<'_>,
    services: &mut Services,
    dead_letters: &mut DeadLetters,
    started: DateTime<Utc>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let quiet_by = deadline.max(Instant::now() + Duration::from_secs(30));
    loop {
        services.check_alive()?;
        dead_letters.collect(watch.dataset, watch.batches).await?;
        let pending = unhandled_events(watch.client, started, dead_letters).await?;
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > quiet_by {
            eprintln!(
                "warning: {pending} event(s) of this run were still unhandled when the demo stopped; see the service logs"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the exports, the database and the service logs are.
fn print_where(run: &Run<'_>, dataset: &str) {
    let args = run.args;
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
pub(super) struct Uploaded {
    pub(super) keys: Vec<String>,
    pub(super) etags: Vec<String>,
    /// When the last of them was put.
    pub(super) at: DateTime<Utc>,
}

/// What waiting for the batches looks at.
struct Watch<'a> {
    client: &'a tokio_postgres::Client,
    dataset: &'a str,
    required: &'a [String],
    batches: &'a [Batch],
    /// What this run put for each batch.
    uploads: &'a [Uploaded],
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
    let standing = BatchStanding::read(client, dataset, date).await?;
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
    match standing.settled() {
        Some(BatchState::Exported) if settled => return Ok(Some(Ok(()))),
        Some(BatchState::QualityFailed) => {}
        _ => return Ok(None),
    }
    let failed = client
        .query(
            "SELECT check_name || ' (' || coalesce(failing_rows || ' failing rows', 'could not run: ' || error) || ')'
               FROM ops.quality_results
              WHERE dataset = $2 AND ingestion_date = $1
                AND (status = 'error' OR (status = 'failed' AND severity = 'error'))
              ORDER BY check_name",
            &[&date, &dataset],
        )
        .await?;
    let names: Vec<String> = failed.iter().map(|row| row.get(0)).collect();
    Ok(Some(Err(format!(
        "quality failed: batch {date} failed its error-severity checks or has checks that could not run: {}; nothing was exported",
        names.join(", ")
    ))))
}

/// Where a batch that did not get through before the deadline is stuck, and its rejected files.
async fn stuck(watch: &Watch<'_>, date: NaiveDate, uploaded: &Uploaded) -> anyhow::Result<String> {
    let (client, dataset) = (watch.client, watch.dataset);
    let state = BatchStanding::read(client, dataset, date).await?.state;
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
