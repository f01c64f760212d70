//! The staging retention policy: once a batch is exported, staging keeps the rows of the
//! newest N batches of its dataset and drops the rest, so staging tables do not grow for ever.
//! The ledger (`ops.files`, `ops.staged_sources`) is kept: it is the record of what landed.
//! An optional snapshot source also keeps its newest snapshot from before the cutoff.

use catalog::{Dataset, Mode};
use chrono::NaiveDate;
use runtime::Failure;
use tokio_postgres::Transaction;

use crate::classify;

/// What pruning did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Rows of batches before this date were dropped; `None` when there was nothing to prune.
    pub kept_from: Option<NaiveDate>,
    pub rows_deleted: u64,
}

/// Deletes the staging rows of every batch of `dataset` older than its `keep` newest batches
/// (by ingestion date, as `ops.staged_sources` and `ops.batches` know them); `keep` 0 keeps all.
pub async fn prune_staging(
    tx: &Transaction<'_>,
    dataset: &Dataset,
    keep: u32,
) -> Result<Pruned, Failure> {
    if keep == 0 {
        return Ok(Pruned::default());
    }
    let oldest_kept: Option<NaiveDate> = tx
        .query_opt(
            "SELECT ingestion_date FROM (
                 SELECT ingestion_date FROM ops.staged_sources WHERE dataset = $1
                 UNION
                 SELECT ingestion_date FROM ops.batches WHERE dataset = $1
             ) AS batches
             ORDER BY ingestion_date DESC
             OFFSET $2 LIMIT 1",
            &[&dataset.name, &(i64::from(keep) - 1)],
        )
        .await
        .map_err(|error| {
            classify::db(
                error,
                format!("finding the batches of dataset {} to keep", dataset.name),
            )
        })?
        .map(|row| row.get(0));
    let Some(oldest_kept) = oldest_kept else {
        return Ok(Pruned::default());
    };
    let mut rows_deleted = 0;
    for source in &dataset.sources {
        let table = source.rows_table();
        // The newest staged snapshot: read through the view, which leaves out rows of files
        // that were never staged.
        let view = source.qualified_table();
        // An optional snapshot source may be missing from a kept batch, whose models then read
        // the latest snapshot before it (`snapshot.<table>`): the newest one older than the
        // cutoff stays too. A required source has a file in every batch that is transformed.
        let sql = if source.mode() == Mode::Snapshot && !source.required {
            format!(
                "DELETE FROM {table} WHERE _batch < $1
                    AND _batch < (SELECT coalesce(max(_batch), $1) FROM {view} WHERE _batch < $1)"
            )
        } else {
            format!("DELETE FROM {table} WHERE _batch < $1")
        };
        let deleted = tx.execute(&sql, &[&oldest_kept]).await.map_err(|error| {
            classify::db(
                error,
                format!("dropping staging rows before {oldest_kept} from {table}"),
            )
        })?;
        if deleted > 0 {
            tracing::info!(
                table,
                rows = deleted,
                before = %oldest_kept,
                "dropped staging rows of batches past retention"
            );
        }
        rows_deleted += deleted;
    }
    Ok(Pruned {
        kept_from: Some(oldest_kept),
        rows_deleted,
    })
}
