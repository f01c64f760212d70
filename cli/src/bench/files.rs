//! `bench files`: many small files landed at once → all staged by two stager processes, against
//! one psql session running a `\copy` per file.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_s3::primitives::ByteStream;
use chrono::NaiveDate;

use super::env::Poll;
use super::{BUCKET, BenchArgs, BenchEnv, Figure, ORDERS_HEADER, ORDERS_TABLE, Report};
use crate::services::Services;

pub(super) async fn bench_files(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.files >= 1, "--files must be at least 1");
    let rows_per_file = 20;
    let bodies = small_files(args.files, rows_per_file);
    let psql_s = psql_copy_files(env, &bodies).await?;
    let psql_rate = args.files as f64 / psql_s;
    println!(
        "psql \\copy    {} files in {psql_s:.2}s (one session)",
        args.files
    );
    let mut services = env
        .start_services(&["ingester", "stager", "stager"])
        .await?;
    let measured = async {
        let started = Instant::now();
        let puts = put_all(env, &bodies).await?;
        wait_all_staged(env, &mut services, args.files).await?;
        anyhow::Ok((started.elapsed().as_secs_f64(), puts))
    }
    .await;
    services.stop().await;
    let (total_s, put_s) = measured?;
    let rate = args.files as f64 / total_s;
    println!(
        "Stagers       {} files landed and staged in {total_s:.2}s (PUTs took {put_s:.2}s)",
        args.files
    );
    Ok(Report {
        bench: "files",
        params: vec![
            ("files", args.files.to_string()),
            ("rows_per_file", rows_per_file.to_string()),
            ("stagers", "2 stager processes, 1 ingester".into()),
            ("put_seconds", format!("{put_s:.3}")),
            ("total_seconds", format!("{total_s:.3}")),
        ],
        figures: vec![Figure {
            figure: "files/s (first PUT → all staged)".into(),
            unit: "files/s",
            value: rate,
            baseline: Some(psql_rate),
            baseline_label: "psql \\copy of each file, one session".into(),
            goal: Some(("≥ 50 files/s".into(), rate >= 50.0)),
        }],
    })
}

/// `files` small orders files, each the orders of a day of its own: `(key, body)`.
fn small_files(files: usize, rows_per_file: usize) -> Vec<(String, String)> {
    let first = NaiveDate::from_ymd_opt(2030, 1, 1).expect("a date");
    (0..files)
        .map(|index| {
            let date = first + chrono::Duration::days(index as i64);
            let mut body = String::from(ORDERS_HEADER);
            for row in 0..rows_per_file {
                let id = index * rows_per_file + row + 1;
                writeln!(
                    body,
                    "{id},{},2029-12-01,{},1.50,2,3.00",
                    id % 300 + 1,
                    id % 40 + 1
                )
                .expect("writing to a String");
            }
            (
                format!("landing/ecommerce/ingestion_date={date}/orders.csv"),
                body,
            )
        })
        .collect()
}

/// The baseline: one psql session running one `\\copy` per file; the seconds it took.
async fn psql_copy_files(env: &BenchEnv, bodies: &[(String, String)]) -> anyhow::Result<f64> {
    let dir = env.work_dir.join("files-baseline");
    std::fs::create_dir_all(&dir)?;
    let mut script = String::new();
    for (index, (_, body)) in bodies.iter().enumerate() {
        let path = dir.join(format!("{index}.csv"));
        std::fs::write(&path, body)?;
        writeln!(
            script,
            "\\copy bench_psql_orders FROM '{}' WITH (FORMAT csv, HEADER true)",
            path.display()
        )?;
    }
    let script_path = dir.join("copy.sql");
    std::fs::write(&script_path, script)?;
    env.db.batch_execute(ORDERS_TABLE).await?;
    let took = env
        .psql_with(&["-f".as_ref(), script_path.as_os_str()])
        .await?;
    env.db.batch_execute("DROP TABLE bench_psql_orders").await?;
    Ok(took.as_secs_f64())
}

/// Waits until `files` files are staged, failing if any ends otherwise.
async fn wait_all_staged(
    env: &BenchEnv,
    services: &mut Services,
    files: usize,
) -> anyhow::Result<()> {
    env.poll(services, Duration::from_millis(20), move || async move {
        let row = env
            .db
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'staged'),
                        count(*) FILTER (WHERE state NOT IN ('landed', 'staged'))
                   FROM ops.files",
                &[],
            )
            .await?;
        let (staged, other): (i64, i64) = (row.get(0), row.get(1));
        anyhow::ensure!(other == 0, "{other} file(s) were not staged");
        Ok(if staged as usize >= files {
            Poll::Done(())
        } else {
            Poll::Waiting(format!("only {staged} of {files} files staged"))
        })
    })
    .await
}

/// Puts every file, 16 at a time; returns how long the PUTs took.
async fn put_all(env: &BenchEnv, bodies: &[(String, String)]) -> anyhow::Result<f64> {
    let started = Instant::now();
    for chunk in bodies.chunks(16) {
        let mut tasks = tokio::task::JoinSet::new();
        for (key, body) in chunk {
            let s3 = env.s3.clone();
            let (key, body) = (key.clone(), body.clone().into_bytes());
            tasks.spawn(async move {
                s3.put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .with_context(|| format!("uploading {key}"))
            });
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}
