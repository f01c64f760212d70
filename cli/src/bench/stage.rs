//! `bench stage`: an N-row orders.csv from S3 into staging, against `psql \copy` of the same
//! file into a typed table; also the generated orders file the memory benchmark loads.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::NaiveDate;

use super::env::Poll;
use super::{BenchArgs, BenchEnv, Figure, ORDERS_HEADER, ORDERS_TABLE, Report, median};
use crate::services::Services;

pub(super) async fn bench_stage(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    let csv = env.work_dir.join("orders.csv");
    let generated = write_orders(&csv, Limit::Rows(args.rows))?;
    println!(
        "Generated     {} rows, {:.1} MB in {}",
        generated.rows,
        generated.bytes as f64 / 1e6,
        csv.display()
    );
    // psql and the stager take turns, each after a checkpoint, so a slow moment of the
    // machine does not fall on one side only; the medians are compared.
    let mut services = env.start_services(&["ingester", "stager"]).await?;
    let runs = stage_runs(env, &mut services, &csv, generated.rows, args.repeat).await;
    services.stop().await;
    let (mut psql_runs, mut stager_runs, mut put_runs) = runs?;
    let psql_s = median(&mut psql_runs);
    let psql_rate = generated.rows as f64 / psql_s;
    let staged = Staged {
        rows_loaded: generated.rows as i64,
        rows_rejected: 0,
        stager_s: median(&mut stager_runs),
        put_to_staged_s: median(&mut put_runs),
    };
    println!(
        "Medians       psql \\copy {psql_s:.2}s ({psql_rate:.0} rows/s); stager {:.2}s in the ledger, {:.2}s from the PUT to staged",
        staged.stager_s, staged.put_to_staged_s
    );
    let rows = generated.rows as f64;
    let stager_rate = rows / staged.stager_s;
    let wall_rate = rows / staged.put_to_staged_s;
    let baseline_label = "psql \\copy, typed table with a primary key".to_owned();
    Ok(Report {
        bench: "stage",
        params: vec![
            ("rows", generated.rows.to_string()),
            ("bytes", generated.bytes.to_string()),
            (
                "stager",
                "stager binary as a process (ingester binary feeds it)".into(),
            ),
            ("runs", psql_runs.len().to_string()),
            ("psql_seconds", format!("{psql_s:.3}")),
            ("stager_seconds", format!("{:.3}", staged.stager_s)),
            (
                "put_to_staged_seconds",
                format!("{:.3}", staged.put_to_staged_s),
            ),
        ],
        figures: vec![
            Figure {
                figure: "stage rows/s (stager start → staged)".into(),
                unit: "rows/s",
                value: stager_rate,
                baseline: Some(psql_rate),
                baseline_label: baseline_label.clone(),
                goal: Some(("≥ 1.5× baseline".into(), stager_rate >= 1.5 * psql_rate)),
            },
            Figure {
                figure: "stage rows/s (PUT → staged, incl. ingester)".into(),
                unit: "rows/s",
                value: wall_rate,
                baseline: Some(psql_rate),
                baseline_label,
                goal: None,
            },
        ],
    })
}

/// `repeat` turns of `psql \copy` then the stager on the same file: the seconds psql took, the
/// stager took in the ledger, and from the PUT to staged, one of each per turn.
async fn stage_runs(
    env: &BenchEnv,
    services: &mut Services,
    csv: &Path,
    rows: u64,
    repeat: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let first_date = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date");
    let (mut psql_runs, mut stager_runs, mut put_runs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..repeat.max(1) {
        let psql_s = psql_copy_orders(env, csv, rows).await?;
        let date = first_date - chrono::Days::new(run as u64);
        let staged = stage_one(env, services, csv, &date.to_string()).await?;
        anyhow::ensure!(
            staged.rows_loaded as u64 == rows,
            "the stager loaded {} of {} rows ({} rejected)",
            staged.rows_loaded,
            rows,
            staged.rows_rejected
        );
        println!(
            "Run {}         psql \\copy {:.2}s; stager {:.2}s in the ledger (staging_started_at → finished_at), {:.2}s from the PUT to staged: {:.2}×",
            run + 1,
            psql_s,
            staged.stager_s,
            staged.put_to_staged_s,
            psql_s / staged.stager_s
        );
        psql_runs.push(psql_s);
        stager_runs.push(staged.stager_s);
        put_runs.push(staged.put_to_staged_s);
    }
    Ok((psql_runs, stager_runs, put_runs))
}

/// `\copy` of the orders file into a typed table with a primary key, after a checkpoint.
async fn psql_copy_orders(env: &BenchEnv, csv: &Path, rows: u64) -> anyhow::Result<f64> {
    env.db
        .batch_execute(&format!("{ORDERS_TABLE}; CHECKPOINT;"))
        .await?;
    let took = env
        .psql(&format!(
            "\\copy bench_psql_orders FROM '{}' WITH (FORMAT csv, HEADER true)",
            csv.display()
        ))
        .await?;
    let loaded: i64 = env
        .db
        .query_one("SELECT count(*) FROM bench_psql_orders", &[])
        .await?
        .get(0);
    anyhow::ensure!(loaded as u64 == rows, "psql loaded {loaded} of {rows} rows");
    env.db
        .batch_execute("DROP TABLE bench_psql_orders; CHECKPOINT;")
        .await?;
    Ok(took.as_secs_f64())
}

pub(super) struct Staged {
    pub(super) rows_loaded: i64,
    pub(super) rows_rejected: i64,
    /// `finished_at - staging_started_at` in the ledger.
    pub(super) stager_s: f64,
    /// From the PUT's return to the staged state being visible.
    pub(super) put_to_staged_s: f64,
}

/// Puts the file as the orders of `date` and waits until the stager has staged it.
pub(super) async fn stage_one(
    env: &BenchEnv,
    services: &mut Services,
    csv: &Path,
    date: &str,
) -> anyhow::Result<Staged> {
    let key = format!("landing/ecommerce/ingestion_date={date}/orders.csv");
    env.put_file(&key, csv).await?;
    let put_done = Instant::now();
    let key = &key;
    env.poll(services, Duration::from_millis(20), move || async move {
        let row = env
            .db
            .query_opt(
                "SELECT state, coalesce(reason, ''), coalesce(rows_loaded, 0)::bigint,
                        coalesce(rows_rejected, 0)::bigint,
                        extract(epoch FROM finished_at - staging_started_at)::float8
                   FROM ops.files WHERE key = $1 ORDER BY file_id DESC LIMIT 1",
                &[key],
            )
            .await;
        // The ledger appears when the ingester first migrates; until then the query fails.
        if let Ok(Some(row)) = row {
            let state: String = row.get(0);
            match state.as_str() {
                "staged" => {
                    return Ok(Poll::Done(Staged {
                        rows_loaded: row.get(2),
                        rows_rejected: row.get(3),
                        stager_s: row.get::<_, Option<f64>>(4).unwrap_or(f64::NAN),
                        put_to_staged_s: put_done.elapsed().as_secs_f64(),
                    }));
                }
                "landed" => {}
                other => bail!("{key} ended {other}: {}", row.get::<_, String>(1)),
            }
        }
        Ok(Poll::Waiting(format!("{key} was not staged")))
    })
    .await
}

pub(super) enum Limit {
    Rows(u64),
    Bytes(u64),
}

pub(super) struct Generated {
    pub(super) rows: u64,
    pub(super) bytes: u64,
}

/// A deterministic, valid orders.csv: unique order ids, prices and quantities within bounds.
pub(super) fn write_orders(path: &Path, limit: Limit) -> anyhow::Result<Generated> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(ORDERS_HEADER.as_bytes())?;
    let mut bytes = ORDERS_HEADER.len() as u64;
    let base = NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date");
    let dates: Vec<String> = (0..365)
        .map(|day| (base - chrono::Duration::days(day)).to_string())
        .collect();
    // splitmix64: fast, and the same file on every machine.
    let mut state: u64 = 0x5eed_1a4d_fa11;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut line = String::with_capacity(128);
    let mut rows = 0u64;
    loop {
        match limit {
            Limit::Rows(max) if rows >= max => break,
            Limit::Bytes(max) if bytes >= max => break,
            _ => {}
        }
        rows += 1;
        let r = next();
        let customer = r % 300 + 1;
        let product = (r >> 12) % 40 + 1;
        let date = &dates[((r >> 20) % 365) as usize];
        let cents = 199 + (r >> 32) % 9_000;
        let quantity = (r >> 48) % 4 + 1;
        let total = cents * quantity;
        line.clear();
        writeln!(
            line,
            "{rows},{customer},{date},{product},{}.{:02},{quantity},{}.{:02}",
            cents / 100,
            cents % 100,
            total / 100,
            total % 100
        )
        .expect("writing to a String");
        out.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
    }
    out.flush()?;
    anyhow::ensure!(rows <= i32::MAX as u64, "order ids must fit the int column");
    Ok(Generated { rows, bytes })
}
