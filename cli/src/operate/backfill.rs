//! `landfall backfill`: a range of ingestion dates, one after the other: land what S3 holds and
//! the ledger lacks, or re-run the models of a batch that misses nothing; then follow it.

use std::time::Instant;

use anyhow::Context as _;
use chrono::NaiveDate;
use contract::BatchKey;
use runtime::Env;

use super::{BackfillArgs, Operator, Stage};
use crate::progress::Progress;

pub(super) async fn backfill(args: &BackfillArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.from <= args.to,
        "--from {} is after --to {}",
        args.from,
        args.to
    );
    let operator = Operator::start("landfall-backfill", &args.dataset)?;
    let landing = runtime::LandingConfig::from_env(&Env::process())?;
    let s3 = runtime::s3::client(&runtime::S3Config::from_env(&Env::process())?).await?;
    let dates: Vec<NaiveDate> = args
        .from
        .iter_days()
        .take_while(|date| *date <= args.to)
        .collect();
    let started = Instant::now();
    let (mut exported, mut skipped) = (0, 0);
    let mut progress = Progress::new(dates.len() as u64, "dates");
    let run = Backfill {
        args,
        operator: &operator,
        landing: &landing,
        s3: &s3,
    };
    for date in &dates {
        match run.date(*date, &mut progress).await? {
            Done::Skipped => skipped += 1,
            Done::Published => {}
            Done::Exported => exported += 1,
        }
    }
    progress.finish();
    if args.wait.no_wait {
        println!(
            "{} date(s): events published, {skipped} skipped; follow them with `landfall runs --dataset {}`",
            dates.len(),
            args.dataset
        );
    } else {
        println!(
            "{} date(s) in {:.1}s: {exported} exported, {skipped} skipped",
            dates.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// What a backfill works with.
struct Backfill<'a> {
    args: &'a BackfillArgs,
    operator: &'a Operator,
    landing: &'a runtime::LandingConfig,
    s3: &'a aws_sdk_s3::Client,
}

/// How one date ended.
enum Done {
    /// Nothing to land or re-run.
    Skipped,
    /// Its events published, not followed (`--no-wait`).
    Published,
    Exported,
}

impl Backfill<'_> {
    /// One date: lands its missing files or re-runs its models, publishes, and follows the
    /// batch until it is exported.
    async fn date(&self, date: NaiveDate, progress: &mut Progress) -> anyhow::Result<Done> {
        let (args, operator) = (self.args, self.operator);
        let batch = BatchKey {
            dataset: args.dataset.clone(),
            ingestion_date: date,
        };
        let since = operator.now().await?;
        let (report, listing) = self.land(&batch, progress).await?;
        let staged: i64 = operator
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM ops.staged_sources WHERE dataset = $1 AND ingestion_date = $2",
                &[&args.dataset, &date],
            )
            .await?
            .get(0);
        if report.landed > 0 {
            progress.message(format!(
                "{batch}: {} object(s) listed, {} new file(s) landed",
                report.listed, report.landed
            ));
        } else if staged > 0 {
            progress.phase(format!("{batch} re-running the models"));
            let models = progress.during(operator.transform(&batch)).await?;
            progress.message(format!(
                "{batch}: {} object(s) listed, nothing missing; {models} model(s) re-ran",
                report.listed
            ));
        } else if report.listed > 0 {
            progress.message(format!(
                "{batch}: {} object(s) listed, none of them staged (rejected? see `landfall status --dataset {} --date {date}`); skipped",
                report.listed, args.dataset
            ));
            progress.advance(format!("{batch} skipped"));
            return Ok(Done::Skipped);
        } else {
            progress.message(format!("{batch}: no files in {listing}; skipped"));
            progress.advance(format!("{batch} skipped"));
            return Ok(Done::Skipped);
        }
        operator.publish().await?;
        if args.wait.no_wait {
            progress.advance(format!("{batch} events published"));
            return Ok(Done::Published);
        }
        let batch_started = Instant::now();
        operator
            .follow(&batch, since, &args.wait, progress, Stage::Transform, false)
            .await?;
        progress.message(format!(
            "{batch}: exported ({:.1}s)",
            batch_started.elapsed().as_secs_f64()
        ));
        progress.advance(format!("{batch} exported"));
        Ok(Done::Exported)
    }

    /// Lands the files S3 holds for the batch and the ledger lacks: what was listed and landed,
    /// and where it listed, in words.
    async fn land(
        &self,
        batch: &BatchKey,
        progress: &mut Progress,
    ) -> anyhow::Result<(pipeline::reconcile::ReconcileReport, String)> {
        let (operator, landing) = (self.operator, self.landing);
        // The folders the dataset's key patterns put this date's files in; only the keys that
        // map to this batch are landed from them.
        let prefixes = operator
            .datasets
            .get(&self.args.dataset)
            .map(|dataset| dataset.listing_prefixes(batch.ingestion_date))
            .unwrap_or_default();
        let listing = prefixes
            .iter()
            .map(|prefix| format!("s3://{}/{}{prefix}", landing.bucket, landing.landing_prefix))
            .collect::<Vec<_>>()
            .join(", ");
        progress.phase(format!("{batch} listing {listing}"));
        let mut report = pipeline::reconcile::ReconcileReport::default();
        for prefix in &prefixes {
            let found = progress
                .during(pipeline::reconcile::reconcile_batch(
                    &operator.pool,
                    self.s3,
                    landing,
                    &operator.datasets,
                    &operator.config.service_name,
                    prefix,
                    batch,
                ))
                .await
                .with_context(|| format!("listing {prefix}"))?;
            report.listed += found.listed;
            report.landed += found.landed;
            report.unmapped += found.unmapped;
        }
        Ok((report, listing))
    }
}
