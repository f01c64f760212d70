//! Write, audit, publish: the models write a batch's report rows to `audit.<report>`, the checks
//! read them there, and once every error-severity check passed the batch's rows replace its
//! rows in `analytics.<report>`, the tables people and the exporter read. This runs in the
//! transaction that stores the check results, so readers see the batch's previously published
//! rows (or none) until it commits, and the new ones after, all reports at once. A batch that
//! fails its checks is not published: its previous audited rows stay.

use catalog::sql::quote_ident;
use contract::BatchKey;
use runtime::Failure;
use runtime::failure::db;
use tokio_postgres::Transaction;

/// The schema the models write reports to.
pub const AUDIT_SCHEMA: &str = "audit";
/// The schema readers read published reports from.
pub const PUBLISHED_SCHEMA: &str = "analytics";

/// Copies `batch`'s rows of every report from `audit` to `analytics` (replacing the batch's
/// published rows) and stamps `ops.batches.published_at`; returns the rows published.
pub async fn publish(
    tx: &Transaction<'_>,
    batch: &BatchKey,
    reports: &[String],
) -> Result<u64, Failure> {
    // Publishes of one dataset one at a time: a user's report table is made by the first.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('landfall.publish'), hashtext($1))",
        &[&batch.dataset],
    )
    .await
    .map_err(|error| db(error, format!("waiting to publish batch {batch}")))?;
    let mut rows = 0;
    for report in reports {
        rows += publish_report(tx, batch, report).await?;
    }
    tx.execute(
        "UPDATE ops.batches SET published_at = clock_timestamp()
          WHERE dataset = $1 AND ingestion_date = $2",
        &[&batch.dataset, &batch.ingestion_date],
    )
    .await
    .map_err(|error| db(error, format!("marking batch {batch} published")))?;
    Ok(rows)
}

/// One report: the columns of its audit table (the published table has them too, the
/// transformer makes it `LIKE` the audit table), the batch's rows deleted and copied.
async fn publish_report(
    tx: &Transaction<'_>,
    batch: &BatchKey,
    report: &str,
) -> Result<u64, Failure> {
    let columns: Vec<String> = tx
        .query(
            "SELECT attname FROM pg_catalog.pg_attribute
              WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
              ORDER BY attnum",
            &[&format!("{AUDIT_SCHEMA}.{}", quote_ident(report))],
        )
        .await
        .map_err(|error| {
            db(
                error,
                format!("reading the columns of {AUDIT_SCHEMA}.{report}"),
            )
        })?
        .iter()
        .map(|row| quote_ident(row.get::<_, &str>(0)))
        .collect();
    if columns.is_empty() {
        return Err(Failure::permanent(anyhow::anyhow!(
            "report '{report}' of dataset {} has no table {AUDIT_SCHEMA}.{report}: its model must \
             write the batch's rows there (dataset.toml lists it under `reports`)",
            batch.dataset
        )));
    }
    let columns = columns.join(", ");
    let table = quote_ident(report);
    // The bundled reports' published tables are made by their migrations; a user's dataset
    // makes only its audit table, and the published one is made alike on its first publish.
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{PUBLISHED_SCHEMA}.{table}")],
        )
        .await
        .map_err(|error| db(error, format!("looking for {PUBLISHED_SCHEMA}.{report}")))?
        .get(0);
    if !exists {
        tx.batch_execute(&format!(
            "CREATE TABLE {PUBLISHED_SCHEMA}.{table} (LIKE {AUDIT_SCHEMA}.{table} INCLUDING ALL)"
        ))
        .await
        .map_err(|error| db(error, format!("making {PUBLISHED_SCHEMA}.{report}")))?;
    }
    tx.execute(
        &format!("DELETE FROM {PUBLISHED_SCHEMA}.{table} WHERE ingestion_date = $1"),
        &[&batch.ingestion_date],
    )
    .await
    .map_err(|error| {
        db(
            error,
            format!("clearing batch {batch} from {PUBLISHED_SCHEMA}.{report}"),
        )
    })?;
    let rows = tx
        .execute(
            &format!(
                "INSERT INTO {PUBLISHED_SCHEMA}.{table} ({columns})
                 SELECT {columns} FROM {AUDIT_SCHEMA}.{table} WHERE ingestion_date = $1"
            ),
            &[&batch.ingestion_date],
        )
        .await
        .map_err(|error| {
            db(
                error,
                format!("publishing batch {batch} to {PUBLISHED_SCHEMA}.{report}"),
            )
        })?;
    Ok(rows)
}
