//! Where a batch stands in `ops.batches`, read the same way by the commands that wait for a
//! batch to be exported (`demo`, `bench`).

use chrono::{DateTime, NaiveDate, Utc};

/// A batch's row in `ops.batches`.
#[derive(Debug, Default)]
pub(crate) struct BatchStanding {
    /// `ops.batches.state` (empty while the batch has no row).
    pub(crate) state: String,
    pub(crate) exported_at: Option<DateTime<Utc>>,
    /// Whether its last transform was made from its current staged files.
    pub(crate) current: bool,
}

/// The batch's state, export time and whether its last transform was made from its current
/// staged files; the default (empty state) while it has no row.
pub(crate) async fn standing(
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
