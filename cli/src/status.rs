//! `landfall status`: files and batches with their state, rows and timings.

use chrono::{DateTime, NaiveDate, Utc};

use crate::table::{Table, truncate};

/// The states of a batch (`ops.batches.state`), in pipeline order.
pub const BATCH_STATES: &[&str] = &[
    "staging",
    "ready",
    "transformed",
    "quality_passed",
    "quality_failed",
    "exported",
];

/// The states of a file (`ops.files.state`).
pub const FILE_STATES: &[&str] = &[
    "landed",
    "staged",
    "rejected",
    "superseded",
    "missing",
    "ignored",
];

/// What `--state` names: a file state, a batch state (the two sets share no name), or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter<'a> {
    None,
    File(&'a str),
    Batch(&'a str),
}

impl StatusFilter {
    pub fn state_filter(&self) -> anyhow::Result<StateFilter<'_>> {
        match self.state.as_deref() {
            None => Ok(StateFilter::None),
            Some(state) if FILE_STATES.contains(&state) => Ok(StateFilter::File(state)),
            Some(state) if BATCH_STATES.contains(&state) => Ok(StateFilter::Batch(state)),
            Some(state) => anyhow::bail!(
                "--state '{state}' is neither a batch state ({}) nor a file state ({})",
                BATCH_STATES.join(", "),
                FILE_STATES.join(", ")
            ),
        }
    }

    fn any(&self) -> bool {
        self.dataset.is_some() || self.date.is_some() || self.state.is_some()
    }

    /// (file state, batch state) as query parameters.
    fn states(&self) -> anyhow::Result<(Option<&str>, Option<&str>)> {
        Ok(match self.state_filter()? {
            StateFilter::None => (None, None),
            StateFilter::File(state) => (Some(state), None),
            StateFilter::Batch(state) => (None, Some(state)),
        })
    }
}

/// Which rows to show.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StatusFilter {
    /// Only this dataset.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only this ingestion date (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Only this state. A batch state (staging, ready, transformed, quality_passed,
    /// quality_failed, exported): the batches in it and their files. A file state (landed,
    /// staged, rejected, superseded, missing, ignored): the files in it and the batches holding
    /// one (an ignored key belongs to no batch).
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many files, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

/// Renders the batches and files tables.
pub async fn render(
    client: &tokio_postgres::Client,
    filter: &StatusFilter,
) -> anyhow::Result<String> {
    filter.state_filter()?;
    let mut out = String::new();
    out.push_str(&batches(client, filter).await?);
    out.push('\n');
    out.push_str(&files(client, filter).await?);
    Ok(out)
}

async fn batches(client: &tokio_postgres::Client, filter: &StatusFilter) -> anyhow::Result<String> {
    let (file_state, batch_state) = filter.states()?;
    let rows = client
        .query(
            "SELECT b.dataset, b.ingestion_date, b.state, array_to_string(s.staged, ', '),
                    array_to_string(ARRAY(SELECT m FROM unnest(b.sources_missing) AS m
                                           WHERE m <> ALL(s.staged) ORDER BY m), ', '),
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
    for row in &rows {
        let at = |index: usize| row.get::<_, Option<DateTime<Utc>>>(index);
        let step = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| match (from, to) {
            (Some(from), Some(to)) if to >= from => seconds(to - from),
            (_, Some(_)) => "done".into(),
            _ => String::new(),
        };
        let dataset: String = row.get(0);
        let date: NaiveDate = row.get(1);
        table.row(vec![
            dataset.clone(),
            date.to_string(),
            row.get(2),
            row.get(3),
            row.get(4),
            step(at(5), at(6)),
            step(at(6), at(7)),
            step(at(7), at(8)),
            step(at(8), at(9)),
            quality.get(&(dataset, date)).cloned().unwrap_or_default(),
            published(at(7), at(11)).into(),
            row.get(10),
        ]);
    }
    Ok(if table.is_empty() && filter.any() {
        "Batches: none match\n".into()
    } else if table.is_empty() {
        "Batches: none yet\n".into()
    } else {
        format!("Batches (each stage's duration)\n{}", table.render())
    })
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

/// "passed/failed/warned" per batch, from the quality results (when the table exists).
async fn quality_summary(
    client: &tokio_postgres::Client,
) -> anyhow::Result<std::collections::HashMap<(String, NaiveDate), String>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('ops.quality_results') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(Default::default());
    }
    let rows = client
        .query(
            "SELECT dataset, ingestion_date,
                    count(*) FILTER (WHERE status = 'passed'),
                    count(*) FILTER (WHERE status <> 'passed' AND severity = 'error'),
                    count(*) FILTER (WHERE status <> 'passed' AND severity <> 'error')
               FROM ops.quality_results GROUP BY dataset, ingestion_date",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let summary = format!(
                "{} passed, {} failed, {} warned",
                row.get::<_, i64>(2),
                row.get::<_, i64>(3),
                row.get::<_, i64>(4)
            );
            ((row.get(0), row.get(1)), summary)
        })
        .collect())
}

async fn files(client: &tokio_postgres::Client, filter: &StatusFilter) -> anyhow::Result<String> {
    let (file_state, batch_state) = filter.states()?;
    let rows = client
        .query(
            "SELECT f.file_id, coalesce(f.dataset, '-'), coalesce(f.ingestion_date::text, '-'), coalesce(f.source, '-'),
                    f.state, f.rows_loaded, f.rows_rejected, f.landed_at, f.finished_at, f.discovered_by,
                    coalesce(f.reason, ''), f.key, coalesce(f.trace_id, '')
               FROM ops.files f
              WHERE ($1::text IS NULL OR f.dataset = $1) AND ($2::date IS NULL OR f.ingestion_date = $2)
                AND ($3::text IS NULL OR f.state = $3)
                AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM ops.batches b WHERE b.dataset = f.dataset
                                                    AND b.ingestion_date = f.ingestion_date AND b.state = $4))
              ORDER BY f.file_id DESC LIMIT $5",
            &[&filter.dataset, &filter.date, &file_state, &batch_state, &filter.limit],
        )
        .await?;
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
    for row in &rows {
        let landed: DateTime<Utc> = row.get(7);
        let finished: Option<DateTime<Utc>> = row.get(8);
        let reason: String = row.get(10);
        let key: String = row.get(11);
        table.row(vec![
            row.get::<_, i64>(0).to_string(),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get::<_, Option<i64>>(5)
                .map(|n| n.to_string())
                .unwrap_or_default(),
            row.get::<_, Option<i64>>(6)
                .map(|n| n.to_string())
                .unwrap_or_default(),
            landed.format("%Y-%m-%d %H:%M:%S").to_string(),
            finished
                .map(|finished| seconds(finished - landed))
                .unwrap_or_default(),
            row.get(9),
            row.get(12),
            truncate(if reason.is_empty() { &key } else { &reason }, 90),
        ]);
    }
    Ok(if table.is_empty() {
        "Files: none match\n".into()
    } else {
        format!("Files (newest first)\n{}", table.render())
    })
}

fn seconds(duration: chrono::TimeDelta) -> String {
    format!("{:.2}s", duration.num_milliseconds() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_state(state: &str) -> StatusFilter {
        StatusFilter {
            state: Some(state.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_state_names_a_batch_or_a_file_state() {
        assert!(
            BATCH_STATES
                .iter()
                .all(|state| !FILE_STATES.contains(state))
        );
        assert_eq!(
            with_state("exported").state_filter().unwrap(),
            StateFilter::Batch("exported")
        );
        assert_eq!(
            with_state("rejected").state_filter().unwrap(),
            StateFilter::File("rejected")
        );
        assert_eq!(
            StatusFilter::default().state_filter().unwrap(),
            StateFilter::None
        );
        let error = with_state("done").state_filter().unwrap_err().to_string();
        assert!(
            error.contains("neither a batch state (staging, ready"),
            "{error}"
        );
        assert!(
            error.contains("nor a file state (landed, staged"),
            "{error}"
        );
    }
}
