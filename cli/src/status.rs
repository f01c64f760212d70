//! `landfall status`: files and batches with their state, rows and timings, as tables or (with
//! `--json`) as one JSON document.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::choices::StatusState;
use crate::table::{Table, truncate};

/// Which rows to show, and how.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StatusFilter {
    /// Only this dataset.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only this ingestion date (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Only this state. A batch state (staging … exported): the batches in it and their files. A
    /// file state (landed … ignored): the files in it and the batches holding one (an ignored key
    /// belongs to no batch).
    #[arg(long, value_enum)]
    pub state: Option<StatusState>,
    /// At most this many files, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Print one JSON document (`{"batches": […], "files": […]}`, README "The `landfall`
    /// command") instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Show every file's reason whole (the table cuts them at 90 characters; `landfall rejects`
    /// lists a file's rejected rows).
    #[arg(long)]
    pub wide: bool,
}

impl StatusFilter {
    fn any(&self) -> bool {
        self.dataset.is_some() || self.date.is_some() || self.state.is_some()
    }

    /// (file state, batch state) as query parameters.
    fn states(&self) -> (Option<&'static str>, Option<&'static str>) {
        match self.state {
            None => (None, None),
            Some(state) => (
                state.file().map(|file| file.as_str()),
                state.batch().map(|batch| batch.as_str()),
            ),
        }
    }
}

/// What `landfall status --json` prints.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub batches: Vec<BatchStatus>,
    /// Newest first, at most `--limit`.
    pub files: Vec<FileStatus>,
}

/// One batch (one ingestion date of one dataset).
#[derive(Debug, Serialize)]
pub struct BatchStatus {
    pub dataset: String,
    pub ingestion_date: NaiveDate,
    pub state: String,
    /// The sources staged now.
    pub sources_staged: Vec<String>,
    /// Required sources not staged yet.
    pub sources_missing: Vec<String>,
    pub first_staged_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    pub transformed_at: Option<DateTime<Utc>>,
    pub quality_at: Option<DateTime<Utc>>,
    pub exported_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    /// `yes`, `earlier run` or `no`: whether readers of `analytics.*` see the latest transform.
    pub published: &'static str,
    /// The quality results of the batch, `null` when none were stored.
    pub checks: Option<CheckCounts>,
    /// Empty when the batch was not traced.
    pub trace_id: String,
}

/// Quality check results of a batch.
#[derive(Debug, Clone, Serialize)]
pub struct CheckCounts {
    pub passed: i64,
    /// Error-severity checks that ran and found failing rows.
    pub failed: i64,
    /// Warning-severity checks that ran and found failing rows.
    pub warned: i64,
    /// Checks whose SQL could not run, whatever their severity (they block the export).
    pub broken: i64,
    /// The names of the failed, warned and broken checks, each sorted.
    pub failed_checks: Vec<String>,
    pub warned_checks: Vec<String>,
    pub broken_checks: Vec<String>,
}

/// A batch's check results as four columns of `ops.quality_results q` grouped by batch: the
/// passed count, then the names of the failed, warned and broken checks ([`CheckCounts::read`]).
pub const CHECK_COLUMNS: &str = "count(*) FILTER (WHERE q.status = 'passed') AS passed,
    coalesce(array_agg(q.check_name ORDER BY q.check_name)
             FILTER (WHERE q.status = 'failed' AND q.severity = 'error'), '{}') AS failed,
    coalesce(array_agg(q.check_name ORDER BY q.check_name)
             FILTER (WHERE q.status = 'failed' AND q.severity <> 'error'), '{}') AS warned,
    coalesce(array_agg(q.check_name ORDER BY q.check_name)
             FILTER (WHERE q.status = 'error'), '{}') AS broken";

impl CheckCounts {
    /// The [`CHECK_COLUMNS`] of `row` from column `first` on.
    pub fn read(row: &tokio_postgres::Row, first: usize) -> CheckCounts {
        let names = |index: usize| row.get::<_, Vec<String>>(first + index);
        let (failed_checks, warned_checks, broken_checks) = (names(1), names(2), names(3));
        CheckCounts {
            passed: row.get(first),
            failed: failed_checks.len() as i64,
            warned: warned_checks.len() as i64,
            broken: broken_checks.len() as i64,
            failed_checks,
            warned_checks,
            broken_checks,
        }
    }

    /// `21 passed, 1 failed, 1 warned, 0 broken`, then the checks that did not pass by name.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} passed, {} failed, {} warned, {} broken",
            self.passed, self.failed, self.warned, self.broken
        );
        for (what, names) in [
            ("failed", &self.failed_checks),
            ("warned", &self.warned_checks),
            ("broken", &self.broken_checks),
        ] {
            if !names.is_empty() {
                text.push_str(&format!("; {what}: {}", names.join(", ")));
            }
        }
        text
    }
}

/// One landed object version in the ledger.
#[derive(Debug, Serialize)]
pub struct FileStatus {
    pub file_id: i64,
    /// `null` for a key that maps to no dataset (state `ignored`).
    pub dataset: Option<String>,
    pub ingestion_date: Option<NaiveDate>,
    pub source: Option<String>,
    pub state: String,
    pub rows_loaded: Option<i64>,
    pub rows_rejected: Option<i64>,
    pub landed_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `notification` or `reconcile`.
    pub discovered_by: String,
    /// Why it was rejected or ignored; `null` otherwise.
    pub reason: Option<String>,
    pub key: String,
    pub trace_id: String,
}

/// Reads the batches and files the filter selects.
pub async fn report(
    client: &tokio_postgres::Client,
    filter: &StatusFilter,
) -> anyhow::Result<StatusReport> {
    Ok(StatusReport {
        batches: batches(client, filter).await?,
        files: files(client, filter).await?,
    })
}

/// The output of `landfall status`: the tables, or the JSON document with `--json`.
pub async fn render(
    client: &tokio_postgres::Client,
    filter: &StatusFilter,
) -> anyhow::Result<String> {
    let report = report(client, filter).await?;
    if filter.json {
        return Ok(serde_json::to_string_pretty(&report)? + "\n");
    }
    let mut out = batches_table(&report.batches, filter);
    out.push('\n');
    out.push_str(&files_table(&report.files, filter.wide));
    Ok(out)
}

async fn batches(
    client: &tokio_postgres::Client,
    filter: &StatusFilter,
) -> anyhow::Result<Vec<BatchStatus>> {
    let (file_state, batch_state) = filter.states();
    let rows = client
        .query(
            "SELECT b.dataset, b.ingestion_date, b.state, s.staged,
                    ARRAY(SELECT m FROM unnest(b.sources_missing) AS m
                           WHERE m <> ALL(s.staged) ORDER BY m),
                    b.first_staged_at, b.ready_at,
                    b.transformed_at, b.quality_at, b.exported_at, coalesce(b.trace_id, ''),
                    b.published_at
               FROM ops.batches b
              -- The sources staged now: the stager records them as it stages a file, while the
              -- batch's own lists are the transformer's view as of the last staging.loaded it
              -- handled (older while events wait in its queue, or when it is not running).
              CROSS JOIN LATERAL (SELECT ARRAY(SELECT source FROM ops.staged_sources s
                                                WHERE s.dataset = b.dataset AND s.ingestion_date = b.ingestion_date
                                                ORDER BY source) AS staged) s
              WHERE ($1::text IS NULL OR b.dataset = $1) AND ($2::date IS NULL OR b.ingestion_date = $2)
                AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM ops.files f WHERE f.dataset = b.dataset
                                                    AND f.ingestion_date = b.ingestion_date AND f.state = $3))
                AND ($4::text IS NULL OR b.state = $4)
              ORDER BY b.dataset, b.ingestion_date DESC",
            &[&filter.dataset, &filter.date, &file_state, &batch_state],
        )
        .await?;
    let quality = quality_summary(client).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let dataset: String = row.get(0);
            let ingestion_date: NaiveDate = row.get(1);
            let transformed_at = row.get(7);
            let published_at = row.get(11);
            BatchStatus {
                checks: quality.get(&(dataset.clone(), ingestion_date)).cloned(),
                dataset,
                ingestion_date,
                state: row.get(2),
                sources_staged: row.get(3),
                sources_missing: row.get(4),
                first_staged_at: row.get(5),
                ready_at: row.get(6),
                transformed_at,
                quality_at: row.get(8),
                exported_at: row.get(9),
                published_at,
                published: published(transformed_at, published_at),
                trace_id: row.get(10),
            }
        })
        .collect())
}

fn batches_table(batches: &[BatchStatus], filter: &StatusFilter) -> String {
    let mut table = Table::new(&[
        "dataset",
        "batch",
        "state",
        "sources staged",
        "missing",
        "ready",
        "transform",
        "quality",
        "export",
        "checks",
        "published",
        "trace id",
    ]);
    let step = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| match (from, to) {
        (Some(from), Some(to)) if to >= from => seconds(to - from),
        (_, Some(_)) => "done".into(),
        _ => String::new(),
    };
    for batch in batches {
        table.row(vec![
            batch.dataset.clone(),
            batch.ingestion_date.to_string(),
            batch.state.clone(),
            batch.sources_staged.join(", "),
            batch.sources_missing.join(", "),
            step(batch.first_staged_at, batch.ready_at),
            step(batch.ready_at, batch.transformed_at),
            step(batch.transformed_at, batch.quality_at),
            step(batch.quality_at, batch.exported_at),
            batch
                .checks
                .as_ref()
                .map(CheckCounts::summary)
                .unwrap_or_default(),
            batch.published.into(),
            batch.trace_id.clone(),
        ]);
    }
    if table.is_empty() && filter.any() {
        "Batches: none match\n".into()
    } else if table.is_empty() {
        "Batches: none yet\n".into()
    } else {
        format!("Batches (each stage's duration)\n{}", table.render())
    }
}

/// Whether readers of `analytics.*` see the batch's latest transform: "yes" once its checks
/// passed and it was published; "earlier run" while an older run's audited rows are what they
/// see (the latest is being checked, or failed); "no" when nothing of the batch was published.
fn published(
    transformed_at: Option<DateTime<Utc>>,
    published_at: Option<DateTime<Utc>>,
) -> &'static str {
    match (transformed_at, published_at) {
        (_, None) => "no",
        (Some(transformed), Some(published)) if published < transformed => "earlier run",
        (_, Some(_)) => "yes",
    }
}

/// Check results per batch, from the quality results (when the table exists).
async fn quality_summary(
    client: &tokio_postgres::Client,
) -> anyhow::Result<HashMap<(String, NaiveDate), CheckCounts>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('ops.quality_results') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(Default::default());
    }
    let rows = client
        .query(
            &format!(
                "SELECT q.dataset, q.ingestion_date, {CHECK_COLUMNS}
                   FROM ops.quality_results q GROUP BY q.dataset, q.ingestion_date"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let counts = CheckCounts::read(row, 2);
            ((row.get(0), row.get(1)), counts)
        })
        .collect())
}

async fn files(
    client: &tokio_postgres::Client,
    filter: &StatusFilter,
) -> anyhow::Result<Vec<FileStatus>> {
    let (file_state, batch_state) = filter.states();
    let rows = client
        .query(
            "SELECT f.file_id, f.dataset, f.ingestion_date, f.source,
                    f.state, f.rows_loaded, f.rows_rejected, f.landed_at, f.finished_at, f.discovered_by,
                    nullif(f.reason, ''), f.key, coalesce(f.trace_id, '')
               FROM ops.files f
              WHERE ($1::text IS NULL OR f.dataset = $1) AND ($2::date IS NULL OR f.ingestion_date = $2)
                AND ($3::text IS NULL OR f.state = $3)
                AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM ops.batches b WHERE b.dataset = f.dataset
                                                    AND b.ingestion_date = f.ingestion_date AND b.state = $4))
              ORDER BY f.file_id DESC LIMIT $5",
            &[&filter.dataset, &filter.date, &file_state, &batch_state, &filter.limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| FileStatus {
            file_id: row.get(0),
            dataset: row.get(1),
            ingestion_date: row.get(2),
            source: row.get(3),
            state: row.get(4),
            rows_loaded: row.get(5),
            rows_rejected: row.get(6),
            landed_at: row.get(7),
            finished_at: row.get(8),
            discovered_by: row.get(9),
            reason: row.get(10),
            key: row.get(11),
            trace_id: row.get(12),
        })
        .collect())
}

/// Reasons longer than this are cut in the files table unless `--wide`.
const REASON_WIDTH: usize = 90;

fn files_table(files: &[FileStatus], wide: bool) -> String {
    let mut table = Table::new(&[
        "file",
        "dataset",
        "batch",
        "source",
        "state",
        "rows",
        "rejected",
        "landed at",
        "took",
        "found by",
        "trace id",
        "reason / key",
    ]);
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".into());
    let number = |value: Option<i64>| value.map(|n| n.to_string()).unwrap_or_default();
    for file in files {
        table.row(vec![
            file.file_id.to_string(),
            or_dash(file.dataset.clone()),
            or_dash(file.ingestion_date.map(|date| date.to_string())),
            or_dash(file.source.clone()),
            file.state.clone(),
            number(file.rows_loaded),
            number(file.rows_rejected),
            file.landed_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            file.finished_at
                .map(|finished| seconds(finished - file.landed_at))
                .unwrap_or_default(),
            file.discovered_by.clone(),
            file.trace_id.clone(),
            if wide {
                file.reason.clone().unwrap_or_else(|| file.key.clone())
            } else {
                truncate(file.reason.as_deref().unwrap_or(&file.key), REASON_WIDTH)
            },
        ]);
    }
    let cut = !wide
        && files
            .iter()
            .any(|file| file.reason.as_deref().unwrap_or(&file.key).chars().count() > REASON_WIDTH);
    if table.is_empty() {
        "Files: none match\n".into()
    } else if cut {
        format!(
            "Files (newest first; a reason cut short ends in …: --wide shows it whole, `landfall rejects` a file's rejected rows)\n{}",
            table.render()
        )
    } else {
        format!("Files (newest first)\n{}", table.render())
    }
}

fn seconds(duration: chrono::TimeDelta) -> String {
    format!("{:.2}s", duration.num_milliseconds() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_names_a_batch_or_a_file_state() {
        let with_state = |state| StatusFilter {
            state: Some(state),
            ..Default::default()
        };
        assert_eq!(
            with_state(StatusState::Exported).states(),
            (None, Some("exported"))
        );
        assert_eq!(
            with_state(StatusState::Rejected).states(),
            (Some("rejected"), None)
        );
        assert_eq!(StatusFilter::default().states(), (None, None));
    }
}
