//! Running a batch's checks and storing one result per check in the consumer's transaction.
//! Each check runs under its own savepoint, so a broken check is recorded as an error and the
//! others still run; the batch's previous results are replaced in the same transaction.
//!
//! When a second connection can be had from the pool, the checks run on two connections at
//! once: the consumer's transaction and a transaction of their own on the second connection
//! (the batch date set the same way, rolled back at the end: checks only read). Each takes the
//! next check not yet started, so a long check on one does not hold the others up. The checks
//! read what the transform committed, which both connections see alike; the results are
//! stored afterwards, in the consumer's transaction, in the order of the checks, exactly as
//! when they run one after another on one connection (the fallback when no second connection
//! is free).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use contract::BatchKey;
use runtime::Failure;
use tokio_postgres::Transaction;
use tracing::Instrument as _;
use uuid::Uuid;

use catalog::checks::{Check, Severity};

/// Failing rows kept per check, as JSON objects, to show what went wrong.
pub const SAMPLE_ROWS: u32 = 20;

/// How long to wait for a second connection before running the checks on one.
const SECOND_CONNECTION_WAIT: Duration = Duration::from_secs(1);

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    /// The check ran and found failing rows.
    Failed,
    /// The check's SQL could not run (the message is kept): it blocks the export whatever its
    /// severity, which grades what a check that ran found, not one that could not run.
    Error,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Error => "error",
        }
    }
}

/// One check's outcome, as stored in `ops.quality_results`.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub check: String,
    pub kind: &'static str,
    pub severity: Severity,
    pub status: Status,
    /// `None` when the check could not run.
    pub failing_rows: Option<i64>,
    /// Up to [`SAMPLE_ROWS`] failing rows, each a JSON object as PostgreSQL wrote it: stored
    /// as they are, so a value keeps its type and digits (`63` an integer, `63.00` a numeric),
    /// which a round trip through `serde_json`'s `f64` would lose.
    pub sample: Vec<String>,
    pub error: Option<String>,
    /// The failing-rows query that was run.
    pub sql: String,
    pub duration_ms: i64,
}

impl CheckResult {
    /// Whether this result stops the batch's export: an error-severity check that found rows,
    /// or any check whose SQL could not run (a broken warning must not pass unseen).
    pub fn blocks_export(&self) -> bool {
        match self.status {
            Status::Passed => false,
            Status::Failed => self.severity == Severity::Error,
            Status::Error => true,
        }
    }
}

/// Runs every check of `batch` and stores the results, replacing those of an earlier run of
/// the same batch. `cause` is the `transform.completed` event the run answers. With `second`,
/// the checks run on two connections at once when the pool has one to spare.
pub async fn run_checks(
    tx: &Transaction<'_>,
    batch: &BatchKey,
    checks: &[Check],
    cause: Uuid,
    second: Option<&deadpool_postgres::Pool>,
) -> Result<Vec<CheckResult>, Failure> {
    // Two runs of one batch at once (a re-run racing the first) would interleave their
    // delete and insert; the second waits for the first to commit instead.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("quality:{batch}")],
    )
    .await?;
    // Transaction-local: `ops.batch_date()` means this batch's date in the checks' SQL.
    set_batch_date(tx, batch).await?;
    tx.execute(
        "DELETE FROM ops.quality_results WHERE dataset = $1 AND ingestion_date = $2",
        &[&batch.dataset, &batch.ingestion_date],
    )
    .await?;
    let mut connection = match second {
        Some(pool) if checks.len() > 1 => lend(pool).await,
        _ => None,
    };
    let results = match connection.as_mut() {
        Some(connection) => run_on_two(tx, connection, batch, checks).await?,
        None => {
            let next = AtomicUsize::new(0);
            run_lane(tx, checks, &next)
                .await?
                .into_iter()
                .map(|(_, result)| result)
                .collect()
        }
    };
    for result in &results {
        store_result(tx, batch, cause, result).await?;
    }
    Ok(results)
}

async fn set_batch_date(tx: &Transaction<'_>, batch: &BatchKey) -> Result<(), Failure> {
    tx.execute(
        "SELECT set_config('landfall.batch_date', $1, true)",
        &[&batch.ingestion_date.to_string()],
    )
    .await?;
    Ok(())
}

/// A second connection, or `None` (the checks then run on one) when the pool has none free
/// within [`SECOND_CONNECTION_WAIT`] or cannot make one.
async fn lend(pool: &deadpool_postgres::Pool) -> Option<deadpool_postgres::Object> {
    match tokio::time::timeout(SECOND_CONNECTION_WAIT, pool.get()).await {
        Ok(Ok(connection)) => Some(connection),
        Ok(Err(error)) => {
            tracing::warn!(error = %format!("{error:#}"), "no second connection for the checks; running them on one");
            None
        }
        Err(_) => {
            tracing::debug!("no second connection free for the checks; running them on one");
            None
        }
    }
}

/// Runs `checks` on the consumer's transaction and on a transaction of `client` at once; the
/// results come back in the order of `checks`.
async fn run_on_two(
    tx: &Transaction<'_>,
    client: &mut tokio_postgres::Client,
    batch: &BatchKey,
    checks: &[Check],
) -> Result<Vec<CheckResult>, Failure> {
    let side = client.transaction().await?;
    set_batch_date(&side, batch).await?;
    let next = AtomicUsize::new(0);
    let (here, there) = tokio::join!(run_lane(tx, checks, &next), run_lane(&side, checks, &next));
    // The checks only read: nothing of the side transaction is kept. (Dropped on an error
    // above, it rolls back the same way.)
    let (here, there) = (here?, there?);
    if let Err(error) = side.rollback().await {
        tracing::debug!(%error, "rolling back the checks' second transaction failed");
    }
    let mut results: Vec<(usize, CheckResult)> = here.into_iter().chain(there).collect();
    results.sort_by_key(|(index, _)| *index);
    debug_assert_eq!(results.len(), checks.len());
    Ok(results.into_iter().map(|(_, result)| result).collect())
}

/// Runs checks on `tx` one after another, each time the next one no lane has taken yet
/// (`next`), until none is left; returns each one's result with its index in `checks`.
async fn run_lane(
    tx: &Transaction<'_>,
    checks: &[Check],
    next: &AtomicUsize,
) -> Result<Vec<(usize, CheckResult)>, Failure> {
    let mut results = Vec::new();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(check) = checks.get(index) else {
            return Ok(results);
        };
        let span = tracing::info_span!(
            "check",
            otel.name = format!("check {}", check.name),
            otel.kind = "client",
            db.system.name = "postgresql",
            db.operation.name = "SELECT",
            landfall.check = check.name.as_str(),
            landfall.failing_rows = tracing::field::Empty,
        );
        let result = run_check(tx, check).instrument(span.clone()).await?;
        if let Some(failing) = result.failing_rows {
            span.record("landfall.failing_rows", failing);
        }
        results.push((index, result));
    }
}

/// Runs one check under a savepoint. A SQL error in the check becomes an `error` result; a
/// lost connection (or another transient database error) fails the whole run so it is retried.
async fn run_check(tx: &Transaction<'_>, check: &Check) -> Result<CheckResult, Failure> {
    let failing_sql = catalog::checks::sql::failing_rows(check);
    let measured_sql = crate::sql::measured(&failing_sql, SAMPLE_ROWS);
    let planner_setting = crate::sql::planner_setting(check);
    let started = Instant::now();
    tx.batch_execute("SAVEPOINT quality_check").await?;
    if let Some((name, value)) = planner_setting {
        tx.batch_execute(&format!("SET LOCAL {name} = {value}"))
            .await?;
    }
    let outcome = tx.query(&measured_sql, &[]).await;
    if let (Some((name, _)), Ok(_)) = (planner_setting, &outcome) {
        // Kept by the released savepoint: back to the session's value for the next check. (A
        // failed check's rollback to the savepoint undoes it.)
        tx.batch_execute(&format!("SET LOCAL {name} TO DEFAULT"))
            .await?;
    }
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut result = CheckResult {
        check: check.name.clone(),
        kind: check.kind.name(),
        severity: check.severity,
        status: Status::Passed,
        failing_rows: Some(0),
        sample: Vec::new(),
        error: None,
        sql: failing_sql,
        duration_ms,
    };
    match outcome {
        Ok(rows) => {
            tx.batch_execute("RELEASE SAVEPOINT quality_check").await?;
            let failing_rows: i64 = rows.first().map_or(0, |row| row.get(0));
            result.failing_rows = Some(failing_rows);
            result.sample = rows.iter().map(|row| row.get(1)).collect();
            if failing_rows > 0 {
                result.status = Status::Failed;
            }
        }
        Err(error) if runtime::failure::is_transient_db_error(&error) => {
            return Err(Failure::from(error));
        }
        Err(error) => {
            tx.batch_execute(
                "ROLLBACK TO SAVEPOINT quality_check; RELEASE SAVEPOINT quality_check",
            )
            .await?;
            result.status = Status::Error;
            result.failing_rows = None;
            result.error = Some(describe(&error));
        }
    }
    log_result(&result);
    Ok(result)
}

fn log_result(result: &CheckResult) {
    match result.status {
        Status::Passed => tracing::debug!(
            check = result.check,
            duration_ms = result.duration_ms,
            "check passed"
        ),
        Status::Failed => tracing::warn!(
            check = result.check,
            severity = result.severity.as_str(),
            failing_rows = result.failing_rows,
            "check failed"
        ),
        Status::Error => tracing::warn!(
            check = result.check,
            severity = result.severity.as_str(),
            error = result.error,
            "check could not run"
        ),
    }
}

/// The database's own words for why a check's SQL failed, with detail, hint and SQLSTATE.
fn describe(error: &tokio_postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        return error.to_string();
    };
    let mut text = db.message().to_owned();
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    text.push_str(&format!(" (SQLSTATE {})", db.code().code()));
    text
}

async fn store_result(
    tx: &Transaction<'_>,
    batch: &BatchKey,
    cause: Uuid,
    result: &CheckResult,
) -> Result<(), Failure> {
    tx.execute(
        "INSERT INTO ops.quality_results
                (dataset, ingestion_date, check_name, check_kind, severity, status, failing_rows,
                 sample, error, sql, duration_ms, transform_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, ($8::text)::jsonb, $9, $10, $11, $12)",
        &[
            &batch.dataset,
            &batch.ingestion_date,
            &result.check,
            &result.kind,
            &result.severity.as_str(),
            &result.status.as_str(),
            &result.failing_rows,
            &format!("[{}]", result.sample.join(", ")),
            &result.error,
            &result.sql,
            &result.duration_ms,
            &cause,
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(severity: Severity, status: Status) -> CheckResult {
        CheckResult {
            check: "c".into(),
            kind: "custom_sql",
            severity,
            status,
            failing_rows: None,
            sample: Vec::new(),
            error: None,
            sql: String::new(),
            duration_ms: 0,
        }
    }

    #[test]
    fn severity_grades_a_check_that_ran_and_a_broken_check_always_blocks() {
        assert!(!result(Severity::Error, Status::Passed).blocks_export());
        assert!(result(Severity::Error, Status::Failed).blocks_export());
        assert!(!result(Severity::Warn, Status::Failed).blocks_export());
        assert!(result(Severity::Warn, Status::Error).blocks_export());
        assert!(result(Severity::Error, Status::Error).blocks_export());
    }
}
