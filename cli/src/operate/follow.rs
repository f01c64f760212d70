//! Following a re-run batch until it is exported or fails its checks, for `replay` and
//! `backfill`.

use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use contract::BatchKey;

use super::{Operator, Stage, WaitArgs};
use crate::progress::Progress;

impl Operator {
    /// Follows the batch, re-run `from` a stage, until it is exported or fails its checks after
    /// `since`, showing on `progress` what it waits for. With `count_stages`, the checks and the
    /// export each count as a unit done (replay); otherwise only the phase changes (backfill
    /// counts dates).
    pub(super) async fn follow(
        &self,
        batch: &BatchKey,
        since: DateTime<Utc>,
        wait: &WaitArgs,
        progress: &mut Progress,
        from: Stage,
        count_stages: bool,
    ) -> anyhow::Result<()> {
        let client = self.client().await?;
        let deadline = Instant::now() + Duration::from_secs(wait.timeout_s);
        let mut counted = Vec::new();
        loop {
            let seen = Seen::read(&client, batch, since).await?;
            let advanced = count_stages && seen.count_done(batch, progress, &mut counted);
            if !advanced {
                progress.phase(seen.phase(batch, from));
            }
            if seen.exported && seen.settled() && seen.state == "exported" {
                return Ok(());
            }
            if seen.checked && seen.settled() && seen.state == "quality_failed" {
                let names = failed_checks(&client, batch).await?;
                bail!(
                    "batch {batch} failed its checks ({}); nothing was exported",
                    names.join(", ")
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "batch {batch} not exported within {}s: {}",
                    wait.timeout_s,
                    seen.waiting()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What one look at a followed batch sees.
struct Seen {
    state: String,
    /// Transformed, checked, exported since the re-run began.
    transformed: bool,
    checked: bool,
    exported: bool,
    /// The required sources not staged, comma-separated.
    missing: String,
    /// Its files landed and not staged yet.
    landed: i64,
    /// Whether its last transform is of its staged files.
    current: bool,
}

impl Seen {
    async fn read(
        client: &tokio_postgres::Client,
        batch: &BatchKey,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Seen> {
        let row = client
            .query_opt(
                "SELECT state, transformed_at > $3, quality_at > $3, exported_at > $3,
                        array_to_string(sources_missing, ', '),
                        (SELECT count(*) FROM ops.files f WHERE f.dataset = b.dataset
                            AND f.ingestion_date = b.ingestion_date AND f.state = 'landed'),
                        transformed_files IS NOT DISTINCT FROM
                          (SELECT array_agg(file_id ORDER BY file_id) FROM ops.staged_sources s
                            WHERE s.dataset = b.dataset AND s.ingestion_date = b.ingestion_date)
                   FROM ops.batches b WHERE dataset = $1 AND ingestion_date = $2",
                &[&batch.dataset, &batch.ingestion_date, &since],
            )
            .await?;
        Ok(match &row {
            Some(row) => Seen {
                state: row.get::<_, String>(0),
                transformed: row.get::<_, Option<bool>>(1).unwrap_or(false),
                checked: row.get::<_, Option<bool>>(2).unwrap_or(false),
                exported: row.get::<_, Option<bool>>(3).unwrap_or(false),
                missing: row.get::<_, String>(4),
                landed: row.get::<_, i64>(5),
                current: row.get::<_, bool>(6),
            },
            None => Seen {
                state: "(none yet)".to_owned(),
                transformed: false,
                checked: false,
                exported: false,
                missing: String::new(),
                landed: 0,
                current: false,
            },
        })
    }

    /// Every file of the batch is staged and its last transform is of them.
    fn settled(&self) -> bool {
        self.landed == 0 && self.current
    }

    /// What the batch waits for, for the progress line.
    fn phase(&self, batch: &BatchKey, from: Stage) -> String {
        let Seen {
            state,
            transformed,
            checked,
            exported,
            missing,
            landed,
            ..
        } = self;
        let settled = self.settled();
        if *landed > 0 {
            format!("{batch} {landed} file(s) landed; waiting for the stager")
        } else if !missing.is_empty() {
            format!("{batch} waiting for required source(s): {missing}")
        } else if *exported && settled && state == "exported" {
            format!("{batch} exported")
        } else if *checked && state == "quality_failed" {
            format!("{batch} failed its checks")
        } else if *checked {
            format!("{batch} checked; waiting for the export")
        } else if from == Stage::Export {
            format!("{batch} waiting for the export")
        } else if *transformed && settled {
            format!("{batch} transformed; waiting for the checks")
        } else if from == Stage::Quality {
            format!("{batch} waiting for the checks")
        } else {
            format!("{batch} waiting for the transform")
        }
    }

    /// Counts the checks and the export as units done on `progress` once each happened (each
    /// once: `counted`); whether one was.
    fn count_done(
        &self,
        batch: &BatchKey,
        progress: &mut Progress,
        counted: &mut Vec<&'static str>,
    ) -> bool {
        let mut advanced = false;
        for (stage, done) in [("checked", self.checked), ("exported", self.exported)] {
            if done && !counted.contains(&stage) {
                counted.push(stage);
                progress.advance(format!("{batch} {stage}"));
                advanced = true;
            }
        }
        advanced
    }

    /// What the batch was still waiting for when the time was up.
    fn waiting(&self) -> String {
        if self.landed > 0 {
            format!(
                "{} file(s) not staged yet (is the stager running?)",
                self.landed
            )
        } else if !self.missing.is_empty() {
            format!("required source(s) not staged: {}", self.missing)
        } else {
            format!("state '{}' (are the services running?)", self.state)
        }
    }
}

/// The batch's error-severity checks that did not pass.
async fn failed_checks(
    client: &tokio_postgres::Client,
    batch: &BatchKey,
) -> anyhow::Result<Vec<String>> {
    let failed = client
        .query(
            "SELECT check_name FROM ops.quality_results
              WHERE dataset = $1 AND ingestion_date = $2 AND severity = 'error' AND status <> 'passed'
              ORDER BY check_name",
            &[&batch.dataset, &batch.ingestion_date],
        )
        .await?;
    Ok(failed.iter().map(|row| row.get(0)).collect())
}
