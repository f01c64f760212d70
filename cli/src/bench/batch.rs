//! `bench batch`: a large batch (orders, reviews, shipments) from the first PUT to exported
//! through all five services, against the sum of `psql \copy` of its three files; `--repeat`
//! runs, each in a world of its own, compared by their medians.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};

use super::latency::{LATENCY_SOURCES, wait_exported};
use super::{BenchArgs, BenchEnv, Figure, Report, median, psql_copy_into_new_tables};
use crate::services::Services;

/// `--repeat` batches, the first in `env` and each other one in a world of its own (a fresh
/// database: a second batch in the same one would merge into the first one's facts), each
/// against its own `psql \copy` baseline; the medians of the pipeline's and of psql's times
/// are compared.
pub(super) async fn bench_batch_runs(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    let mut runs = vec![bench_batch(env, args).await?];
    for run in 1..args.repeat.max(1) {
        let env = BenchEnv::new(args).await?;
        println!(
            "Run {}         database {}, AMQP prefix {}",
            run + 1,
            env.scratch.database.name,
            env.scratch.broker.prefix
        );
        let result = bench_batch(&env, args).await;
        env.cleanup(None).await;
        runs.push(result?);
    }
    if runs.len() == 1 {
        return Ok(runs.remove(0));
    }
    let figure = |report: &Report, index: usize| {
        let figure = &report.figures[index];
        (figure.value, figure.baseline.unwrap_or(f64::NAN))
    };
    let mut summary = Vec::new();
    for (run, report) in runs.iter().enumerate() {
        let (total, psql) = figure(report, 0);
        let line = format!("{total:.2}s against {psql:.2}s = {:.2}×", total / psql);
        println!("Run {:<3}       first PUT → exported {line}", run + 1);
        summary.push(line);
    }
    let mut totals: Vec<f64> = runs.iter().map(|report| figure(report, 0).0).collect();
    let mut after_last: Vec<f64> = runs.iter().map(|report| figure(report, 1).0).collect();
    let mut psql: Vec<f64> = runs.iter().map(|report| figure(report, 0).1).collect();
    let (total, after_last, psql) = (
        median(&mut totals),
        median(&mut after_last),
        median(&mut psql),
    );
    println!(
        "Medians       first PUT → exported {total:.2}s, last PUT → exported {after_last:.2}s, psql \\copy {psql:.2}s"
    );
    let mut report = runs.remove(0);
    report.params.push(("runs", summary.join("; ")));
    let label = format!(
        "median of {} runs' sums of psql \\copy of the three files",
        summary.len()
    );
    report.figures = vec![
        Figure {
            figure: format!("first PUT → exported (median of {})", summary.len()),
            unit: "s",
            value: total,
            baseline: Some(psql),
            baseline_label: label.clone(),
            goal: Some(("≤ 3× baseline".into(), total <= 3.0 * psql)),
        },
        Figure {
            figure: format!("last PUT returned → exported (median of {})", summary.len()),
            unit: "s",
            value: after_last,
            baseline: Some(psql),
            baseline_label: label,
            goal: None,
        },
    ];
    Ok(report)
}

pub(super) async fn bench_batch(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.orders >= 10, "--orders must be at least 10");
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date");
    let (files, described) = write_batch(&env.work_dir.join("batch"), date, args.orders)?;
    println!("Generated     {}", described.join(", "));
    // Baseline: psql \copy of each file into a typed table (one psql each), summed.
    let psql_s = psql_copy_into_new_tables(env, &files).await?;
    println!("psql \\copy    the three files: {psql_s:.2}s");
    let mut services = env.start_pipeline().await?;
    let measured = put_and_wait(env, &mut services, &files, date).await;
    services.stop().await;
    let Landed {
        from_first_put: total_s,
        from_last_put: after_last_s,
        puts: put_s,
        stages,
    } = measured?;
    println!(
        "Pipeline      first PUT → exported {total_s:.2}s (PUTs {put_s:.2}s; last PUT → exported {after_last_s:.2}s; {stages})"
    );
    let label = "sum of psql \\copy of the three files".to_owned();
    Ok(Report {
        bench: "batch",
        params: vec![
            ("files", described.join(", ")),
            ("services", "the five service binaries as processes".into()),
            ("psql_seconds", format!("{psql_s:.3}")),
            ("put_seconds", format!("{put_s:.3}")),
            ("stages", stages),
        ],
        figures: vec![
            Figure {
                figure: "first PUT → exported".into(),
                unit: "s",
                value: total_s,
                baseline: Some(psql_s),
                baseline_label: label.clone(),
                goal: Some(("≤ 3× baseline".into(), total_s <= 3.0 * psql_s)),
            },
            Figure {
                figure: "last PUT returned → exported".into(),
                unit: "s",
                value: after_last_s,
                baseline: Some(psql_s),
                baseline_label: label,
                goal: None,
            },
        ],
    })
}

/// Each source of a batch with the path of its file.
type SourceFiles = Vec<(&'static str, PathBuf)>;

/// The batch's orders, reviews (half as many as orders) and shipments written in `dir`:
/// `(source, path)` of each, and each source with its row count.
fn write_batch(
    dir: &Path,
    date: NaiveDate,
    orders: i64,
) -> anyhow::Result<(SourceFiles, Vec<String>)> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let mut described = Vec::new();
    for file in crate::sample::batch_files(date, 0, orders, 0.0) {
        if !LATENCY_SOURCES.contains(&file.source) {
            continue;
        }
        let mut body = file.body;
        if file.source == "reviews" {
            // Half as many reviews as orders: keep the header and the first rows.
            let keep = (orders / 2) as usize + 1;
            let cut = body
                .match_indices('\n')
                .nth(keep - 1)
                .map_or(body.len(), |(at, _)| at + 1);
            body.truncate(cut);
        }
        let rows = body.lines().count() - 1;
        let path = dir.join(format!("{}.csv", file.source));
        std::fs::write(&path, &body)?;
        described.push(format!("{} {rows}", file.source));
        files.push((file.source, path));
    }
    Ok((files, described))
}

/// How long a batch took, from its PUTs to exported.
pub(super) struct Landed {
    /// Seconds from the first PUT to exported.
    pub(super) from_first_put: f64,
    /// Seconds from the last PUT's return to exported.
    pub(super) from_last_put: f64,
    /// Seconds the PUTs took.
    pub(super) puts: f64,
    /// Each stage's time, in words.
    pub(super) stages: String,
}

/// Puts the batch's files and waits until it is exported.
pub(super) async fn put_and_wait(
    env: &BenchEnv,
    services: &mut Services,
    files: &[(&'static str, PathBuf)],
    date: NaiveDate,
) -> anyhow::Result<Landed> {
    let first_put = Utc::now();
    for (source, path) in files {
        let key = format!("landing/ecommerce/ingestion_date={date}/{source}.csv");
        env.put_file(&key, path).await?;
    }
    let last_put = Utc::now();
    let exported = wait_exported(env, services, date).await?;
    let seconds =
        |from: DateTime<Utc>| (exported - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
    let staged = last_staged(env, date).await?;
    let stages = format!(
        "last PUT → all staged {:.2}s, {}",
        (staged - last_put).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6,
        stage_times(env, date).await?
    );
    print_slowest(env, date).await?;
    Ok(Landed {
        from_first_put: seconds(first_put),
        from_last_put: seconds(last_put),
        puts: (last_put - first_put).num_microseconds().unwrap_or(0) as f64 / 1e6,
        stages,
    })
}

/// When the last of the batch's files was staged (`ops.files.finished_at`).
async fn last_staged(env: &BenchEnv, date: NaiveDate) -> anyhow::Result<DateTime<Utc>> {
    let staged: Option<DateTime<Utc>> = env
        .db
        .query_one(
            "SELECT max(finished_at) FROM ops.files
              WHERE dataset = 'ecommerce' AND ingestion_date = $1 AND state = 'staged'",
            &[&date],
        )
        .await?
        .get(0);
    staged.ok_or_else(|| anyhow::anyhow!("no staged file of batch {date}"))
}

/// The time of each stage of the batch in the ledger, in words.
async fn stage_times(env: &BenchEnv, date: NaiveDate) -> anyhow::Result<String> {
    let stages = env
        .db
        .query_one(
            "SELECT extract(epoch FROM ready_at - first_staged_at)::float8,
                    extract(epoch FROM transformed_at - ready_at)::float8,
                    extract(epoch FROM quality_at - transformed_at)::float8,
                    extract(epoch FROM exported_at - quality_at)::float8
               FROM ops.batches WHERE dataset = 'ecommerce' AND ingestion_date = $1",
            &[&date],
        )
        .await?;
    let stages: Vec<String> = ["first staged → ready", "transform", "quality", "export"]
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let value: Option<f64> = stages.get(index);
            format!("{name} {:.2}s", value.unwrap_or(f64::NAN))
        })
        .collect();
    Ok(stages.join(", "))
}

/// Prints where the transform and the checks spent their time (slowest first).
async fn print_slowest(env: &BenchEnv, date: NaiveDate) -> anyhow::Result<()> {
    let slowest = |sql: &'static str| async move {
        let rows = env.db.query(sql, &[&date]).await?;
        anyhow::Ok(
            rows.iter()
                .map(|row| format!("{} {}ms", row.get::<_, String>(0), row.get::<_, i64>(1)))
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    let models = slowest(
        "SELECT m->>'model', (m->>'duration_ms')::int8
           FROM ops.transform_runs r, jsonb_array_elements(r.models) m
          WHERE r.dataset = 'ecommerce' AND r.ingestion_date = $1
          ORDER BY (m->>'duration_ms')::int8 DESC",
    )
    .await?;
    let checks = slowest(
        "SELECT check_name, duration_ms FROM ops.quality_results
          WHERE dataset = 'ecommerce' AND ingestion_date = $1 AND duration_ms >= 20
          ORDER BY duration_ms DESC",
    )
    .await?;
    println!("Models        {models}");
    println!(
        "Checks ≥20ms  {}",
        if checks.is_empty() { "none" } else { &checks }
    );
    Ok(())
}
