//! What the seeded scenario tests of every dataset share: waiting until a scenario's batches
//! are exported from their latest files (and nothing is left to run), and where their exports
//! are.

use std::collections::{BTreeMap, HashMap};

use anyhow::bail;
use chrono::NaiveDate;
use contract::{Envelope, Event};

use crate::TestEnv;

pub fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a YYYY-MM-DD date")
}

/// Where the exporter writes `report` of `dataset`'s batch `day`.
pub fn export_key(dataset: &str, report: &str, day: NaiveDate) -> String {
    format!("analytics_export/{dataset}/{report}/ingestion_date={day}/{report}.csv")
}

/// The ledger state of the file put as `key` with `etag`, once the ingester has recorded it.
pub async fn file_state(env: &TestEnv, key: &str, etag: &str) -> anyhow::Result<Option<String>> {
    Ok(env
        .db
        .query_opt(
            "SELECT state FROM ops.files WHERE key = $1 AND trim(both '\"' FROM etag) = $2",
            &[&key, &etag],
        )
        .await?
        .map(|row| row.get(0)))
}

fn decode(payload: &[u8]) -> anyhow::Result<Envelope<Event>> {
    Envelope::decode(payload).map_err(|error| anyhow::anyhow!("an outbox event: {error:?}"))
}

/// Whether every batch of `dataset` dated in `dates` is exported from its latest files and
/// nothing is left to run; says why not otherwise. Quiescent means: every put is in the ledger
/// and no file waits for the stager; for every batch, its newest `transform.completed` was built
/// from exactly the files staged for it now, the quality checker passed that run (a `quality.passed` caused by it), and the
/// exporter has handled that `quality.passed`. A later batch re-run by the transformer because
/// an earlier one changed is re-run in the same transaction as the earlier one, so once the
/// earlier one's run is there, so is the later one's.
pub async fn quiescent(
    env: &TestEnv,
    dataset: &str,
    seed: u64,
    dates: &[NaiveDate],
    puts: &[(String, String)],
) -> anyhow::Result<Option<()>> {
    let files = env
        .db
        .query(
            "SELECT key, trim(both '\"' FROM etag), state, coalesce(reason, '') FROM ops.files",
            &[],
        )
        .await?;
    for (key, etag) in puts {
        if !files
            .iter()
            .any(|row| row.get::<_, &str>(0) == key && row.get::<_, &str>(1) == etag)
        {
            bail!("{key} ({etag}) is not in the ledger yet");
        }
    }
    for row in &files {
        let (key, state, reason): (&str, &str, &str) = (row.get(0), row.get(2), row.get(3));
        match state {
            "landed" => bail!("{key} is not staged yet"),
            "rejected" | "missing" | "ignored" => {
                panic!("seed {seed}: {key} was {state}: {reason} (every scenario row is valid)")
            }
            _ => {}
        }
    }
    let mut staged: BTreeMap<NaiveDate, Vec<i64>> = BTreeMap::new();
    for row in env
        .db
        .query(
            "SELECT ingestion_date, file_id FROM ops.staged_sources WHERE dataset = $1",
            &[&dataset],
        )
        .await?
    {
        staged.entry(row.get(0)).or_default().push(row.get(1));
    }
    let mut latest_transform: BTreeMap<NaiveDate, Envelope<Event>> = BTreeMap::new();
    for row in env
        .db
        .query(
            "SELECT DISTINCT ON (ingestion_date) ingestion_date, payload FROM ops.outbox
              WHERE event_type = 'transform.completed' AND dataset = $1
              ORDER BY ingestion_date, id DESC",
            &[&dataset],
        )
        .await?
    {
        latest_transform.insert(row.get(0), decode(row.get(1))?);
    }
    let mut verdicts: HashMap<uuid::Uuid, (uuid::Uuid, &'static str)> = HashMap::new();
    for row in env
        .db
        .query(
            "SELECT payload, event_type FROM ops.outbox
              WHERE event_type IN ('quality.passed', 'quality.failed') AND dataset = $1",
            &[&dataset],
        )
        .await?
    {
        let event = decode(row.get(0))?;
        let kind = if row.get::<_, &str>(1) == "quality.passed" {
            "passed"
        } else {
            "failed"
        };
        if let Some(cause) = event.causation_id {
            verdicts.insert(cause, (event.event_id, kind));
        }
    }
    let exported: Vec<uuid::Uuid> = env
        .db
        .query(
            "SELECT event_id FROM ops.processed_events WHERE consumer = 'exporter'",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for day in dates {
        let mut files = staged.get(day).cloned().unwrap_or_default();
        files.sort_unstable();
        let Some(transform) = latest_transform.get(day) else {
            bail!("{day} is not transformed yet");
        };
        let Event::TransformCompleted(completed) = &transform.payload else {
            bail!(
                "{day}: the transform.completed row holds {:?}",
                transform.payload
            );
        };
        if completed.file_ids != files {
            bail!(
                "{day}: last transformed from files {:?}, staged now {files:?}",
                completed.file_ids
            );
        }
        match verdicts.get(&transform.event_id) {
            None => bail!("{day}: the quality checks of the last transform have not run yet"),
            Some((_, "failed")) => {
                let failed = env
                    .query_text(&format!(
                        "SELECT check_name, status, failing_rows::text, sample::text FROM ops.quality_results
                          WHERE dataset = '{dataset}' AND ingestion_date = '{day}'
                            AND severity = 'error' AND status <> 'passed'"
                    ))
                    .await;
                panic!("seed {seed}: batch {day} failed its quality checks: {failed:?}")
            }
            Some((passed, _)) => {
                if !exported.contains(passed) {
                    bail!("{day}: the last transform's quality.passed is not exported yet");
                }
            }
        }
    }
    Ok(Some(()))
}

/// One report of one batch as the reference computes it.
pub struct ExpectedReport<'a> {
    pub name: &'a str,
    /// The rows as `query_text` of `select_sql` gives them.
    pub db_rows: Vec<Vec<String>>,
    /// The exported CSV, byte for byte.
    pub csv: String,
    /// The query that reads the batch's rows of the report, in export order.
    pub select_sql: String,
}

/// Compares a batch's report in `analytics.*` and its exported CSV with `expected`; `diff`
/// appends the differences between expected and actual rows at a place ("table" or
/// "exported CSV"). A CSV that differs in bytes but not in cells is a mismatch too.
pub async fn compare_report(
    env: &TestEnv,
    dataset: &str,
    seed: u64,
    day: NaiveDate,
    expected: &ExpectedReport<'_>,
    mismatches: &mut Vec<String>,
    diff: impl Fn(&mut Vec<String>, &str, &[Vec<String>], &[Vec<String>]),
) {
    let name = expected.name;
    let actual = env.query_text(&expected.select_sql).await;
    diff(mismatches, "table", &expected.db_rows, &actual);
    let exported = env.get_text(&export_key(dataset, name, day)).await;
    if exported == expected.csv {
        return;
    }
    let expected_csv = &expected.csv;
    let want = crate::reference::parse_csv(expected_csv).expect("the reference's CSV");
    let found = crate::reference::parse_csv(&exported)
        .unwrap_or_else(|error| vec![vec![format!("not CSV: {error}: {exported:?}")]]);
    let before = mismatches.len();
    diff(
        mismatches,
        "exported CSV",
        &want[1..],
        found.get(1..).unwrap_or_default(),
    );
    if want.first() != found.first() {
        mismatches.push(format!(
            "seed {seed} batch {day} {name} (exported CSV): header {:?}, expected {:?}",
            found.first(),
            want.first()
        ));
    }
    if mismatches.len() == before {
        mismatches.push(format!(
            "seed {seed} batch {day} {name} (exported CSV): the same cells, other bytes: {exported:?}, expected {expected_csv:?}"
        ));
    }
}
