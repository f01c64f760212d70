//! Operator commands over batches: `runs` (the transform runs, filtered by dataset, date and
//! batch state), `replay` (a batch again from its transform, its quality checks or its export)
//! and `backfill` (a range of ingestion dates: land what S3 holds and the ledger lacks, re-run
//! the rest, one date after the other, showing each batch's progress).

use anyhow::{Context as _, bail};
use catalog::Datasets;
use chrono::{DateTime, NaiveDate, Utc};
use contract::{BatchKey, CheckOutcome, Envelope, ModelRun, QualityPassed, TransformCompleted};
use runtime::{CommonConfig, Env};

mod backfill;
mod follow;

use backfill::backfill;

use crate::choices::BatchState;
use crate::progress::Progress;
use crate::table::Table;

#[derive(Debug, clap::Subcommand)]
pub enum OpsCommand {
    /// Transform runs, newest first, with their batch's state, checks and exports
    /// (LANDFALL_DATABASE_URL).
    Runs(RunsFilter),
    /// Run a batch again from a stage: its models (transform), its quality checks (quality) or
    /// its export (export); what follows the stage follows as usual.
    Replay(ReplayArgs),
    /// For every ingestion date from --from to --to, in order: land the files S3 holds and the
    /// ledger lacks (reconcile), or re-run the batch's models when nothing is missing; then wait
    /// until the batch is exported before the next date.
    Backfill(BackfillArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunsFilter {
    /// Only this dataset.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only this ingestion date (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Only batches now in this state.
    #[arg(long, value_enum)]
    pub state: Option<BatchState>,
    /// At most this many runs, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Print one JSON document (`{"runs": […]}`, README "The `landfall` command") instead of
    /// the table.
    #[arg(long)]
    pub json: bool,
}

/// What `landfall runs --json` prints.
#[derive(Debug, serde::Serialize)]
pub struct RunsReport {
    /// Newest first, at most `--limit`.
    pub runs: Vec<RunStatus>,
}

/// One transform run of a batch.
#[derive(Debug, serde::Serialize)]
pub struct RunStatus {
    pub run_id: i64,
    pub dataset: String,
    pub ingestion_date: NaiveDate,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Models run.
    pub models: i32,
    /// Rows the models wrote, summed.
    pub rows: i64,
    /// The ledger's file ids the run read.
    pub file_ids: Vec<i64>,
    /// Whether this is the batch's latest run: `batch_state`, `checks` and `reports_exported`
    /// describe the latest run only, and are `null` on earlier ones.
    pub latest: bool,
    pub batch_state: Option<String>,
    pub checks: Option<crate::status::CheckCounts>,
    pub reports_exported: Option<i64>,
}

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Run the batch's models again (then checks and export follow).
    Transform,
    /// Run the batch's quality checks again on the tables as they are (then the export).
    Quality,
    /// Export the batch's reports again (it must have passed its checks).
    Export,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The batch's dataset.
    #[arg(long)]
    pub dataset: String,
    /// The batch's ingestion date (YYYY-MM-DD).
    #[arg(long)]
    pub date: NaiveDate,
    /// The stage to start from.
    #[arg(long, value_enum, default_value = "transform")]
    pub from_stage: Stage,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    /// The dataset whose batches are backfilled.
    #[arg(long)]
    pub dataset: String,
    /// The first ingestion date (YYYY-MM-DD).
    #[arg(long)]
    pub from: NaiveDate,
    /// The last ingestion date, included.
    #[arg(long)]
    pub to: NaiveDate,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Publish and return, without following the batch.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to follow one batch before giving up.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

pub async fn run(command: OpsCommand) -> anyhow::Result<()> {
    match command {
        OpsCommand::Runs(filter) => {
            let client = crate::connect().await?;
            let report = runs(&client, &filter).await?;
            if filter.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", runs_table(&report.runs));
            }
            Ok(())
        }
        OpsCommand::Replay(args) => replay(&args).await,
        OpsCommand::Backfill(args) => backfill(&args).await,
    }
}

/// The transform runs the filter selects, newest first.
pub async fn runs(
    client: &tokio_postgres::Client,
    filter: &RunsFilter,
) -> anyhow::Result<RunsReport> {
    let state = filter.state.map(BatchState::as_str);
    let rows = client
        .query(
            &format!(
            "SELECT r.run_id, r.dataset, r.ingestion_date, r.started_at, r.finished_at,
                    jsonb_array_length(r.models),
                    (SELECT coalesce(sum((m ->> 'rows')::bigint), 0)::bigint FROM jsonb_array_elements(r.models) m),
                    r.file_ids::bigint[],
                    b.state,
                    r.run_id = max(r.run_id) OVER (PARTITION BY r.dataset, r.ingestion_date),
                    q.passed, q.failed, q.warned, q.broken,
                    (SELECT count(*) FROM ops.exports e
                      WHERE e.dataset = r.dataset AND e.ingestion_date = r.ingestion_date)
               FROM ops.transform_runs r
               LEFT JOIN ops.batches b ON b.dataset = r.dataset AND b.ingestion_date = r.ingestion_date
               LEFT JOIN LATERAL (
                    SELECT {}
                      FROM ops.quality_results q
                     WHERE q.dataset = r.dataset AND q.ingestion_date = r.ingestion_date
                    HAVING count(*) > 0) q ON true
              WHERE ($1::text IS NULL OR r.dataset = $1)
                AND ($2::date IS NULL OR r.ingestion_date = $2)
                AND ($3::text IS NULL OR b.state = $3)
              ORDER BY r.run_id DESC
              LIMIT $4",
                crate::status::CHECK_COLUMNS
            ),
            &[&filter.dataset, &filter.date, &state, &filter.limit],
        )
        .await?;
    let runs = rows
        .iter()
        .map(|row| {
            let latest: bool = row.get(9);
            let passed: Option<i64> = row.get(10);
            RunStatus {
                run_id: row.get(0),
                dataset: row.get(1),
                ingestion_date: row.get(2),
                started_at: row.get(3),
                finished_at: row.get(4),
                models: row.get(5),
                rows: row.get(6),
                file_ids: row.get(7),
                latest,
                // The batch's state, checks and exports are those of its latest run.
                batch_state: row.get::<_, Option<String>>(8).filter(|_| latest),
                checks: passed
                    .map(|_| crate::status::CheckCounts::read(row, 10))
                    .filter(|_| latest),
                reports_exported: Some(row.get::<_, i64>(14)).filter(|_| latest),
            }
        })
        .collect();
    Ok(RunsReport { runs })
}

/// The runs table.
fn runs_table(runs: &[RunStatus]) -> String {
    let mut table = Table::new(&[
        "run",
        "dataset",
        "batch",
        "started (UTC)",
        "took",
        "models",
        "rows",
        "files",
        "batch now",
        "checks",
        "reports exported",
    ]);
    for run in runs {
        let batch_column = |value: Option<String>| {
            if run.latest {
                value.unwrap_or_default()
            } else {
                "(earlier run)".into()
            }
        };
        let file_ids: Vec<String> = run.file_ids.iter().map(i64::to_string).collect();
        table.row(vec![
            run.run_id.to_string(),
            run.dataset.clone(),
            run.ingestion_date.to_string(),
            run.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            format!(
                "{:.2}s",
                (run.finished_at - run.started_at).num_milliseconds() as f64 / 1000.0
            ),
            run.models.to_string(),
            run.rows.to_string(),
            file_ids.join(","),
            batch_column(run.batch_state.clone()),
            batch_column(run.checks.as_ref().map(crate::status::CheckCounts::summary)),
            batch_column(run.reports_exported.map(|n| n.to_string())),
        ]);
    }
    if table.is_empty() {
        return "No transform runs match.\n".into();
    }
    table.render()
}

/// What the operator commands need: configuration, datasets, a pool.
pub(crate) struct Operator {
    config: CommonConfig,
    datasets: Datasets,
    pool: deadpool_postgres::Pool,
}

impl Operator {
    pub(crate) fn start(service: &str, dataset: &str) -> anyhow::Result<Operator> {
        let config = CommonConfig::from_env(&Env::process(), service)?;
        let datasets = Datasets::load(&config.datasets_dir)?;
        anyhow::ensure!(
            datasets.get(dataset).is_some(),
            "no dataset named '{dataset}' in {}",
            config.datasets_dir.display()
        );
        let pool = runtime::db::pool(&config.database_url, 2)?;
        Ok(Operator {
            config,
            datasets,
            pool,
        })
    }

    async fn client(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .context("connecting to LANDFALL_DATABASE_URL")
    }

    /// Publishes the outbox rows the command wrote.
    pub(crate) async fn publish(&self) -> anyhow::Result<usize> {
        runtime::outbox::OutboxRelay::for_command(self.pool.clone(), self.config.clone())
            .publish_pending()
            .await
    }

    /// The database's clock: batch timestamps are compared with it, not with this machine's.
    async fn now(&self) -> anyhow::Result<DateTime<Utc>> {
        Ok(self
            .client()
            .await?
            .query_one("SELECT clock_timestamp()", &[])
            .await?
            .get(0))
    }

    /// Runs every model of the batch from its staged files and writes `transform.completed`.
    async fn transform(&self, batch: &BatchKey) -> anyhow::Result<usize> {
        let (_, models) = self
            .run_models(batch, &[], &self.config.service_name)
            .await?;
        Ok(models)
    }

    /// Runs the batch's models — all of them, or the `selected` ones with everything upstream
    /// of them — from its staged files, and writes `transform.completed` from `source` to the
    /// outbox in the same transaction; the event and how many models ran.
    pub(crate) async fn run_models(
        &self,
        batch: &BatchKey,
        selected: &[String],
        source: &str,
    ) -> anyhow::Result<(Envelope<contract::Event>, usize)> {
        let models = catalog::models::Models::load(&self.datasets)?;
        let model_set = models
            .for_dataset(&batch.dataset)
            .cloned()
            .unwrap_or_default();
        let to_run: Vec<&catalog::models::Model> = if selected.is_empty() {
            model_set.models().iter().collect()
        } else {
            model_set.with_upstream(selected)?
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let staged = tx
            .query(
                "SELECT file_id FROM ops.staged_sources WHERE dataset = $1 AND ingestion_date = $2 ORDER BY file_id",
                &[&batch.dataset, &batch.ingestion_date],
            )
            .await?;
        anyhow::ensure!(!staged.is_empty(), "batch {batch} has no staged files");
        let file_ids: Vec<i64> = staged.iter().map(|row| row.get(0)).collect();
        let event =
            pipeline::transform::transform_batch(&tx, batch, &to_run, file_ids, source, None, None)
                .await
                .map_err(|failure| anyhow::anyhow!(failure.reason()))?;
        runtime::outbox::enqueue(&tx, source, &event).await?;
        tx.commit().await?;
        Ok((event, to_run.len()))
    }

    /// Writes `transform.completed` again for the batch's last run, so the checks run again.
    async fn requeue_quality(&self, batch: &BatchKey) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT b.transformed_files,
                        (SELECT r.models FROM ops.transform_runs r
                          WHERE r.dataset = b.dataset AND r.ingestion_date = b.ingestion_date
                          ORDER BY r.run_id DESC LIMIT 1)
                   FROM ops.batches b WHERE b.dataset = $1 AND b.ingestion_date = $2",
                &[&batch.dataset, &batch.ingestion_date],
            )
            .await?;
        let Some((Some(file_ids), Some(models))) = row.map(|row| {
            (
                row.get::<_, Option<Vec<i64>>>(0),
                row.get::<_, Option<serde_json::Value>>(1),
            )
        }) else {
            bail!("batch {batch} was never transformed: replay it from the transform stage");
        };
        let models: Vec<ModelRun> =
            serde_json::from_value(models).context("reading the batch's last transform run")?;
        let event = Envelope::new(
            Some(batch.clone()),
            None,
            TransformCompleted { file_ids, models },
        )
        .into_event();
        runtime::outbox::enqueue(&tx, &self.config.service_name, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes `quality.passed` again for a batch that passed its checks, so it is exported again.
    async fn requeue_export(&self, batch: &BatchKey) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let state: Option<String> = tx
            .query_opt(
                "SELECT state FROM ops.batches WHERE dataset = $1 AND ingestion_date = $2",
                &[&batch.dataset, &batch.ingestion_date],
            )
            .await?
            .map(|row| row.get(0));
        match state.as_deref() {
            Some("quality_passed" | "exported") => {}
            Some(other) => bail!(
                "batch {batch} is '{other}': only a batch that passed its checks is exported; replay it from the quality or transform stage"
            ),
            None => bail!("no batch {batch}"),
        }
        let results = tx
            .query(
                "SELECT check_name, severity, status, coalesce(failing_rows, 0)
                   FROM ops.quality_results WHERE dataset = $1 AND ingestion_date = $2 ORDER BY check_name",
                &[&batch.dataset, &batch.ingestion_date],
            )
            .await?;
        let warnings = results
            .iter()
            .filter(|row| row.get::<_, String>(2) != "passed")
            .map(|row| CheckOutcome {
                check: row.get(0),
                severity: row.get(1),
                failing_rows: row.get::<_, i64>(3).max(0) as u64,
            })
            .collect();
        let event = Envelope::new(
            Some(batch.clone()),
            None,
            QualityPassed {
                checks_run: u32::try_from(results.len()).unwrap_or(u32::MAX),
                warnings,
            },
        )
        .into_event();
        runtime::outbox::enqueue(&tx, &self.config.service_name, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let operator = Operator::start("landfall-replay", &args.dataset)?;
    let batch = BatchKey {
        dataset: args.dataset.clone(),
        ingestion_date: args.date,
    };
    let since = operator.now().await?;
    // The units shown: the models run here (from transform), then the checks (from transform or
    // quality) and the export, both done by the services.
    let stages = match args.from_stage {
        Stage::Transform => 3,
        Stage::Quality => 2,
        Stage::Export => 1,
    };
    let mut progress = Progress::new(stages, "stages");
    match args.from_stage {
        Stage::Transform => {
            progress.phase(format!("{batch} running the models"));
            let models = progress.during(operator.transform(&batch)).await?;
            progress.message(format!("{batch}: {models} model(s) ran"));
            progress.advance(format!("{batch} transformed"));
        }
        Stage::Quality => {
            progress.phase(format!("{batch} asking for the checks again"));
            operator.requeue_quality(&batch).await?;
        }
        Stage::Export => {
            progress.phase(format!("{batch} asking for the export again"));
            operator.requeue_export(&batch).await?;
        }
    }
    let published = operator.publish().await?;
    progress.message(format!(
        "{batch}: replayed from the {} stage; {published} event(s) published",
        format!("{:?}", args.from_stage).to_lowercase()
    ));
    if args.wait.no_wait {
        progress.finish();
        return Ok(());
    }
    operator
        .follow(
            &batch,
            since,
            &args.wait,
            &mut progress,
            args.from_stage,
            true,
        )
        .await?;
    progress.finish();
    println!("{batch}: exported");
    Ok(())
}
