//! Running a batch's models: in parallel, each in its own transaction once its dependencies
//! committed, or all of them in one transaction; either way re-running a batch replaces exactly
//! its own rows.

use std::collections::HashMap;
use std::time::Instant;

use chrono::NaiveDate;
use contract::ModelRun;
use runtime::Failure;
use tokio_postgres::{SimpleQueryMessage, SimpleQueryRow, Transaction};
use tracing::Instrument as _;

use catalog::models::Model;

/// Runs `models` in order for the batch dated `batch_date`; returns each one's rows (see
/// [`rows_written`]) and time.
/// A model's SQL sees the batch date as `ops.batch_date()`; each model starts from the
/// session's default settings ([`fresh_settings`]), whatever the models before it set.
pub async fn run_models(
    tx: &Transaction<'_>,
    models: &[&Model],
    batch_date: NaiveDate,
) -> Result<Vec<ModelRun>, Failure> {
    let mut runs = Vec::with_capacity(models.len());
    for model in models {
        runs.push(run_one(tx, model, batch_date).await?);
    }
    Ok(runs)
}

/// Runs `models` (in dependency order) for the batch, up to `parallelism` at once, each in its
/// own transaction on its own connection from `pool`: a model starts once every model of this
/// run it depends on has committed. Each model replaces its batch's rows atomically and is
/// idempotent, so a run cut short (a failed model, a killed process) is repaired by running
/// the batch again; the transform's record and its `transform.completed` are written by the
/// caller only after every model committed. On a failure the models already running finish
/// (committed or rolled back) before the first error is returned. Of the models ready to
/// start, those with the longest chain of models waiting on them go first ([`start_order`]).
pub async fn run_models_in_parallel(
    pool: &deadpool_postgres::Pool,
    models: &[&Model],
    batch_date: NaiveDate,
    parallelism: usize,
) -> Result<Vec<ModelRun>, Failure> {
    use futures::StreamExt as _;
    use std::collections::HashSet;

    let in_run: HashSet<&str> = models.iter().map(|model| model.name.as_str()).collect();
    let mut runs: Vec<Option<ModelRun>> = vec![None; models.len()];
    let mut started = vec![false; models.len()];
    let mut committed: HashSet<&str> = HashSet::new();
    let mut running = futures::stream::FuturesUnordered::new();
    let mut failure = None;
    let order = start_order(models);
    loop {
        if failure.is_none() {
            for &index in &order {
                let model = models[index];
                if running.len() >= parallelism.max(1) {
                    break;
                }
                let ready = !started[index]
                    && model.depends_on.iter().all(|dependency| {
                        !in_run.contains(dependency.as_str())
                            || committed.contains(dependency.as_str())
                    });
                if ready {
                    started[index] = true;
                    running
                        .push(async move { (index, run_committed(pool, model, batch_date).await) });
                }
            }
        }
        let Some((index, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(run) => {
                committed.insert(models[index].name.as_str());
                runs[index] = Some(run);
            }
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    Ok(runs
        .into_iter()
        .map(|run| run.expect("every model ran: the dependencies are in run order"))
        .collect())
}

/// The indexes of `models` (in dependency order) in the order they are considered for a free
/// connection: the longest chain of models of this run that depend on a model, itself
/// included, first; then as listed. With two connections and the dimensions done, a fact that
/// a report waits for starts before a report nothing waits for: on the 1M-order batch
/// `agg_public_holiday` used to take the connection `fact_orders` was ready for, and the
/// second connection idled at the end while `fact_reviews` and then
/// `best_performing_product` ran (docs/PERFORMANCE.md).
pub fn start_order(models: &[&Model]) -> Vec<usize> {
    let position: std::collections::HashMap<&str, usize> = models
        .iter()
        .enumerate()
        .map(|(index, model)| (model.name.as_str(), index))
        .collect();
    // Dependents come after their dependencies: walk backwards.
    let mut chain = vec![1usize; models.len()];
    for index in (0..models.len()).rev() {
        for dependency in &models[index].depends_on {
            if let Some(&upstream) = position.get(dependency.as_str()) {
                chain[upstream] = chain[upstream].max(chain[index] + 1);
            }
        }
    }
    let mut order: Vec<usize> = (0..models.len()).collect();
    order.sort_by_key(|&index| (std::cmp::Reverse(chain[index]), index));
    order
}

/// One model in its own transaction on a connection of `pool`, committed.
async fn run_committed(
    pool: &deadpool_postgres::Pool,
    model: &Model,
    batch_date: NaiveDate,
) -> Result<ModelRun, Failure> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let run = run_one(&tx, model, batch_date).await?;
    tx.commit().await?;
    Ok(run)
}

/// What PostgreSQL has counted as written in the current transaction so far, by table: for
/// each table with any, the rows inserted plus the rows updated (`n_tup_ins + n_tup_upd` of
/// `pg_stat_xact_user_tables`; deleted rows are counted apart and not read). The view lists
/// the tables outside `pg_catalog`, `information_schema` and the TOAST schemas, so neither the
/// catalog rows a `CREATE` writes nor the TOAST rows of a long value count.
const WRITTEN_SO_FAR: &str = "SELECT relid, n_tup_ins + n_tup_upd FROM pg_catalog.pg_stat_xact_user_tables WHERE n_tup_ins + n_tup_upd > 0";

/// The rows inserted plus updated in the current transaction so far, by table OID
/// ([`WRITTEN_SO_FAR`]).
pub type Written = HashMap<u32, u64>;

/// Puts `tx` back to the session's default settings, undoing any `SET LOCAL` (or `SET`) of a
/// model run before in the same transaction (`RESET ALL` inside a transaction resets
/// `SET LOCAL` values too), then makes `batch_date` what the next model sees as
/// `ops.batch_date()` (until the transaction ends), and reads what the transaction has written
/// so far ([`WRITTEN_SO_FAR`]). One round trip.
async fn fresh_settings(tx: &Transaction<'_>, batch_date: NaiveDate) -> Result<Written, Failure> {
    // A date's text (YYYY-MM-DD) needs no quoting beyond the literal's.
    let messages = tx
        .simple_query(&format!(
            "RESET ALL; SELECT set_config('landfall.batch_date', '{batch_date}', true); {WRITTEN_SO_FAR}"
        ))
        .await?;
    // The counters' rows are the last statement's: every row after the last RowDescription.
    let start = messages
        .iter()
        .rposition(|message| matches!(message, SimpleQueryMessage::RowDescription(_)))
        .map_or(0, |index| index + 1);
    written_from(&messages[start..])
}

/// What the transaction has written so far ([`WRITTEN_SO_FAR`]).
async fn written_so_far(tx: &Transaction<'_>) -> Result<Written, Failure> {
    let messages = tx.simple_query(WRITTEN_SO_FAR).await?;
    written_from(&messages)
}

/// The rows of [`WRITTEN_SO_FAR`] among `messages`.
fn written_from(messages: &[SimpleQueryMessage]) -> Result<Written, Failure> {
    fn field<T: std::str::FromStr>(row: &SimpleQueryRow, index: usize) -> Result<T, Failure> {
        row.get(index)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                Failure::permanent(anyhow::anyhow!(
                    "pg_stat_xact_user_tables gave {:?} where a number belongs",
                    row.get(index)
                ))
            })
    }
    let mut written = Written::new();
    for message in messages {
        if let SimpleQueryMessage::Row(row) = message {
            written.insert(field(row, 0)?, field(row, 1)?);
        }
    }
    Ok(written)
}

/// One model inside `tx`, from fresh settings ([`fresh_settings`]): its rows and time.
async fn run_one(
    tx: &Transaction<'_>,
    model: &Model,
    batch_date: NaiveDate,
) -> Result<ModelRun, Failure> {
    runtime::fault::point("transformer.between_models");
    let before = fresh_settings(tx, batch_date).await?;
    let started = Instant::now();
    // No db.operation.name: a model is one call that may hold several statements of any kind,
    // and the conventions say not to read the operation out of the query text then.
    let span = tracing::info_span!(
        "model",
        otel.name = format!("transform {}", model.name),
        otel.kind = "client",
        db.system.name = "postgresql",
        landfall.model = model.name.as_str(),
        landfall.rows = tracing::field::Empty,
    );
    tx.simple_query(&model.sql)
        .instrument(span.clone())
        .await
        .map_err(|error| {
            runtime::failure::db(
                error,
                format!("model {} failed for batch {batch_date}", model.name),
            )
        })?;
    let duration_ms = started.elapsed().as_millis() as u64;
    let rows = rows_written(&before, &written_so_far(tx).await?);
    span.record("landfall.rows", rows);
    tracing::info!(model = model.name, rows, duration_ms, "model ran");
    Ok(ModelRun {
        model: model.name.clone(),
        rows,
        duration_ms,
    })
}

/// The rows a model wrote, given what its transaction had written before it and after it
/// ([`WRITTEN_SO_FAR`]): the rows it inserted or updated, counted by PostgreSQL per table, in
/// whatever statements (`INSERT`, `UPDATE`, `MERGE`, `INSERT … ON CONFLICT`, `CREATE TABLE …
/// AS`, also behind a `WITH` or in a function). The `DELETE` that clears the batch's old rows
/// before they are inserted again, and `SELECT`s and `SET`s, do not count, so a re-run reports
/// what the batch holds, not what it deleted plus what it inserted.
///
/// PostgreSQL starts a table's counts of the transaction again at a `TRUNCATE` (and forgets a
/// dropped table's), so rows written to a table before it is truncated or dropped in the same
/// transaction do not count; a table that counts fewer rows after the model than before it
/// (truncated by the model after an earlier model of the same transaction wrote it) adds
/// nothing.
pub fn rows_written(before: &Written, after: &Written) -> u64 {
    after
        .iter()
        .map(|(table, rows)| rows.saturating_sub(before.get(table).copied().unwrap_or(0)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_that_others_wait_on_start_first() {
        let model = |name: &str, depends_on: &[&str]| Model {
            name: name.into(),
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
            sql: String::new(),
        };
        // In dependency order, a report listed before the fact a longer chain waits on.
        let models = [
            model("dim", &[]),
            model("report_of_dim", &["dim"]),
            model("fact", &["dim"]),
            model("report_of_fact", &["fact"]),
            model("lone", &[]),
            model("outside_dependency", &["not_in_this_run"]),
        ];
        let models: Vec<&Model> = models.iter().collect();
        let names: Vec<&str> = start_order(&models)
            .into_iter()
            .map(|index| models[index].name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "dim",
                "fact",
                "report_of_dim",
                "report_of_fact",
                "lone",
                "outside_dependency"
            ]
        );
    }

    #[test]
    fn the_bundled_facts_start_before_the_reports_beside_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../datasets/ecommerce/models");
        let set = catalog::models::ModelSet::load(&dir).unwrap();
        let models: Vec<&Model> = set.models().iter().collect();
        let order: Vec<&str> = start_order(&models)
            .into_iter()
            .map(|index| models[index].name.as_str())
            .collect();
        let position = |name: &str| order.iter().position(|n| *n == name).unwrap();
        for fact in ["fact_orders", "fact_reviews", "fact_shipments"] {
            for report in ["agg_public_holiday", "agg_shipments", "sales_by_month"] {
                assert!(position(fact) < position(report), "{order:?}");
            }
        }
        assert!(position("dim_date") < position("fact_orders"), "{order:?}");
    }

    #[test]
    fn rows_written_are_the_rows_each_table_gained_while_the_model_ran() {
        // Table 1 had 10 rows inserted or updated before the model and 15 after; table 2 was
        // not written by the model; table 3 was written by the model only; table 4 was
        // truncated by it after an earlier model wrote 8 rows, and holds 3 new ones since.
        let before = Written::from([(1, 10), (2, 5), (4, 8)]);
        let after = Written::from([(1, 15), (2, 5), (3, 7), (4, 3)]);
        assert_eq!(rows_written(&before, &after), (15 - 10) + 7);
        assert_eq!(rows_written(&Written::new(), &Written::new()), 0);
    }
}
