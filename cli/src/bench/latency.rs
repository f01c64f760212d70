//! `bench latency`: small batches (three files each), last PUT → exported, p50 and p99, against
//! `psql \copy` of one batch's three files.

use std::time::Duration;

use chrono::{NaiveDate, Utc};

use super::env::Poll;
use super::{BenchArgs, BenchEnv, DROP_BATCH_TABLES, Figure, Report, batch_tables, psql_copy_each};
use crate::services::Services;

pub(super) const LATENCY_SOURCES: &[&str] = &["orders", "reviews", "shipment_deliveries"];

pub(super) async fn bench_latency(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    let orders_per_batch = 1000;
    let first = NaiveDate::from_ymd_opt(2030, 1, 1).expect("a date");
    // Baseline: psql \copy of one batch's three files into typed tables, median of 5.
    let baseline = psql_copy_batch(env, first, orders_per_batch).await?;
    println!("psql \\copy    three files of one batch: {baseline:.3}s (median of 5)");
    let mut services = env.start_pipeline().await?;
    let measured = latency_runs(env, &mut services, args.runs, first, orders_per_batch).await;
    services.stop().await;
    let mut latencies = measured?;
    latencies.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let label = "psql \\copy of the batch's three files".to_owned();
    Ok(Report {
        bench: "latency",
        params: vec![
            ("runs", args.runs.to_string()),
            ("warmup_runs", "1".into()),
            ("orders_per_batch", orders_per_batch.to_string()),
            ("services", "the five service binaries as processes".into()),
            ("min_seconds", format!("{:.3}", latencies[0])),
            (
                "max_seconds",
                format!("{:.3}", latencies[latencies.len() - 1]),
            ),
            (
                "all_seconds",
                latencies
                    .iter()
                    .map(|s| format!("{s:.3}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ],
        figures: vec![
            Figure {
                figure: "last PUT → exported, p50".into(),
                unit: "s",
                value: p50,
                baseline: Some(baseline),
                baseline_label: label.clone(),
                goal: Some(("< 1 s".into(), p50 < 1.0)),
            },
            Figure {
                figure: "last PUT → exported, p99".into(),
                unit: "s",
                value: p99,
                baseline: Some(baseline),
                baseline_label: label,
                goal: Some(("< 3 s".into(), p99 < 3.0)),
            },
        ],
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn batch_bodies(date: NaiveDate, orders: i64) -> Vec<(&'static str, String)> {
    crate::sample::batch_files(date, 0, orders, 0.0)
        .into_iter()
        .filter(|file| LATENCY_SOURCES.contains(&file.source))
        .map(|file| (file.source, file.body))
        .collect()
}

async fn latency_runs(
    env: &BenchEnv,
    services: &mut Services,
    runs: usize,
    first: NaiveDate,
    orders: i64,
) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    // Run 0 warms up (connections, plans, caches) and is not counted.
    for run in 0..=runs {
        let date = first + chrono::Duration::days(run as i64);
        for (source, body) in batch_bodies(date, orders) {
            let key = format!("landing/ecommerce/ingestion_date={date}/{source}.csv");
            env.put_bytes(&key, body.into_bytes()).await?;
        }
        let last_put = Utc::now();
        let exported = wait_exported(env, services, date).await?;
        let seconds = (exported - last_put).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        if run == 0 {
            println!("Warm-up       {date}: {seconds:.3}s (not counted)");
        } else {
            println!("Run {run:<3}       {date}: {seconds:.3}s");
            latencies.push(seconds);
        }
    }
    Ok(latencies)
}

pub(super) async fn wait_exported(
    env: &BenchEnv,
    services: &mut Services,
    date: NaiveDate,
) -> anyhow::Result<chrono::DateTime<Utc>> {
    env.poll(services, Duration::from_millis(10), move || async move {
        Ok(
            match scratch::batch::exported(&env.db, "ecommerce", date).await? {
                Some(at) => Poll::Done(at),
                None => Poll::Waiting(format!("batch {date} was not exported")),
            },
        )
    })
    .await
}

/// Typed tables like the staging ones (primary key on the natural key) for `psql \copy` of a
/// batch's three files.
/// The median over 5 tries of `psql \copy` of one batch's three files (one psql each, as a
/// script would), into typed tables like the staging ones (primary key on the natural key).
async fn psql_copy_batch(env: &BenchEnv, date: NaiveDate, orders: i64) -> anyhow::Result<f64> {
    let dir = env.work_dir.join("latency-baseline");
    std::fs::create_dir_all(&dir)?;
    let mut paths = Vec::new();
    for (source, body) in batch_bodies(date, orders) {
        let path = dir.join(format!("{source}.csv"));
        std::fs::write(&path, body)?;
        paths.push((source, path));
    }
    env.db.batch_execute(&batch_tables()).await?;
    let mut tries = Vec::new();
    for _ in 0..5 {
        env.db
            .batch_execute(
                "TRUNCATE bench_psql_orders, bench_psql_reviews, bench_psql_shipment_deliveries",
            )
            .await?;
        tries.push(psql_copy_each(env, &paths).await?.as_secs_f64());
    }
    env.db.batch_execute(DROP_BATCH_TABLES).await?;
    tries.sort_by(f64::total_cmp);
    Ok(tries[tries.len() / 2])
}
