//! Where a batch stands in `ops.batches`: the one reading every wait for a batch uses (the demo
//! prints each batch as it settles, the bench waits for its exports, the tests wait for theirs).

use chrono::{DateTime, NaiveDate, Utc};
use runtime::BatchState;

/// A batch's row in `ops.batches`.
#[derive(Debug, Default)]
pub struct BatchStanding {
    /// `ops.batches.state` (empty while the batch has no row).
    pub state: String,
    pub exported_at: Option<DateTime<Utc>>,
    /// Whether its last transform was made from its current staged files.
    pub current: bool,
}

impl BatchStanding {
    /// The batch's state, export time and whether its last transform was made from its current
    /// staged files; the default (empty state) while it has no row.
    pub async fn read(
        client: &tokio_postgres::Client,
        dataset: &str,
        date: NaiveDate,
    ) -> anyhow::Result<BatchStanding> {
        let row = client
            .query_opt(
                "SELECT b.state, b.exported_at,
                        b.transformed_files = (SELECT array_agg(file_id ORDER BY file_id) FROM ops.staged_sources s
                                                WHERE s.dataset = b.dataset AND s.ingestion_date = b.ingestion_date)
                   FROM ops.batches b WHERE b.dataset = $2 AND b.ingestion_date = $1",
                &[&date, &dataset],
            )
            .await?;
        Ok(row
            .map(|row| BatchStanding {
                state: row.get(0),
                exported_at: row.get(1),
                current: row.get::<_, Option<bool>>(2).unwrap_or(false),
            })
            .unwrap_or_default())
    }

    /// `exported` or `quality_failed` once the batch has settled from its current staged files;
    /// `None` while it is on its way (or settled from files since replaced).
    pub fn settled(&self) -> Option<BatchState> {
        [BatchState::Exported, BatchState::QualityFailed]
            .into_iter()
            .find(|state| self.current && self.state == state.as_str())
    }
}

/// One look of a wait for the batch's export: when it was exported, once it is exported from its
/// current staged files; `None` while it is on its way; an error once it failed its checks.
pub async fn exported(
    client: &tokio_postgres::Client,
    dataset: &str,
    date: NaiveDate,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let standing = BatchStanding::read(client, dataset, date).await?;
    match standing.settled() {
        Some(BatchState::Exported) => Ok(standing.exported_at),
        Some(_) => anyhow::bail!("batch {dataset} {date} failed its quality checks"),
        None => Ok(None),
    }
}
