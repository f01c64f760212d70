//! `bench extract`: the extractor reading a large table of a source database into a gzip
//! landing file in S3, against `psql \copy (SELECT …) TO PROGRAM 'gzip > file'` of the same
//! table in the same run; and the extractor's peak RSS while it does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use scratch::shop::{READER, Shop};
use scratch::{Admin, ScratchDatabase};

use super::env::psql_at;
use super::memory::proc_status_kib;
use super::{BenchArgs, BenchEnv, Figure, Report, median};

const MIB: f64 = 1024.0 * 1024.0;
/// The extract file the benchmark runs: the orders table of the sample shop only.
const EXTRACT_TOML: &str = "[[sources]]\nsource = \"orders\"\ntable = \"shop.orders\"\n";
/// The columns both sides read, in the landing file's order.
const COLUMNS: &str =
    "order_id, customer_id, order_date, product_id, unit_price, quantity, total_price";

pub(super) async fn bench_extract(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    let admin = Admin::parse(&args.admin_url).context("--admin-url is not usable")?;
    let shop = Shop::create(&admin, ScratchDatabase::unique_name("landfall_bench_shop")).await?;
    let result = measure(env, args, &shop).await;
    if let Err(error) = shop.database.drop().await {
        eprintln!("could not drop {}: {error:#}", shop.database.name);
    }
    result
}

async fn measure(env: &BenchEnv, args: &BenchArgs, shop: &Shop) -> anyhow::Result<Report> {
    let (rows, table_bytes) = fill(shop, args.bytes).await?;
    println!(
        "Source table  shop.orders: {rows} rows, {:.1} MiB (pg_table_size) in {}",
        table_bytes as f64 / MIB,
        shop.database.name
    );
    // The extractor reads the bench's copy of the datasets with an extract of orders alone.
    let datasets = env.work_dir.join("datasets");
    let dataset = datasets.join("ecommerce");
    std::fs::create_dir_all(&dataset)?;
    std::fs::copy(
        args.datasets_dir.join("ecommerce").join("dataset.toml"),
        dataset.join("dataset.toml"),
    )
    .context("copying the ecommerce dataset's definition")?;
    std::fs::write(dataset.join("extract.toml"), EXTRACT_TOML)?;
    // The bench database migrated now, so the timed runs do not.
    let mut owner = scratch::Admin::parse(&env.scratch.database.url)?
        .connect()
        .await?;
    runtime::db::migrate(&mut owner, &catalog::Datasets::load(&datasets)?).await?;
    let mut vars = env.vars.clone();
    vars.extend([
        (
            "LANDFALL_DATASETS_DIR".to_owned(),
            datasets.display().to_string(),
        ),
        (
            "LANDFALL_SOURCE_DATABASE_URL".to_owned(),
            shop.reader_url.clone(),
        ),
        (
            "LANDFALL_EXTRACT_DATASET".to_owned(),
            "ecommerce".to_owned(),
        ),
        ("LANDFALL_MIGRATE_ON_START".to_owned(), "false".to_owned()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ]);
    let gzip_file = env.work_dir.join("orders.csv.gz");
    let mut extractor_s = Vec::new();
    let mut psql_s = Vec::new();
    let mut peak_mib: f64 = 0.0;
    let mut extracted_bytes = 0;
    for run in 0..args.repeat {
        // Each run a date of its own, so each writes a new file (the same date again would
        // find the same rows and write nothing).
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("a date")
            + chrono::Duration::days(run as i64);
        vars.insert("LANDFALL_EXTRACT_DATE".into(), date.to_string());
        let (took, peak) = run_extractor(&vars, env.timeout).await?;
        extracted_bytes = landed_size(env, &date.to_string()).await?;
        peak_mib = peak_mib.max(peak);
        extractor_s.push(took.as_secs_f64());
        let copy = format!(
            "\\copy (SELECT {COLUMNS} FROM shop.orders) TO PROGRAM 'gzip > {}' WITH (FORMAT csv, HEADER)",
            gzip_file.display()
        );
        let baseline = psql_at(&shop.reader_url, &["-c".as_ref(), copy.as_ref()]).await?;
        psql_s.push(baseline.as_secs_f64());
        println!(
            "Run {}         extractor {:.2}s (peak RSS {peak:.1} MiB), psql \\copy | gzip {:.2}s",
            run + 1,
            took.as_secs_f64(),
            baseline.as_secs_f64()
        );
    }
    let psql_bytes = std::fs::metadata(&gzip_file)?.len();
    std::fs::remove_file(&gzip_file)?;
    let extractor = median(&mut extractor_s);
    let psql = median(&mut psql_s);
    let rows_per_s = rows as f64 / extractor;
    let psql_rows_per_s = rows as f64 / psql;
    Ok(Report {
        bench: "extract",
        params: vec![
            ("rows", rows.to_string()),
            ("table_bytes", table_bytes.to_string()),
            ("repeat", args.repeat.to_string()),
            ("extractor_seconds_median", format!("{extractor:.3}")),
            ("psql_seconds_median", format!("{psql:.3}")),
            ("extracted_gzip_bytes", extracted_bytes.to_string()),
            ("psql_gzip_bytes", psql_bytes.to_string()),
            (
                "extractor",
                "extractor binary as a process, start to exit (connect, read, gzip level 6, multipart upload to the embedded S3 server, record); peak RSS from /proc/<pid>/status VmHWM".into(),
            ),
            (
                "baseline",
                format!("psql as {READER}: \\copy (SELECT …) TO PROGRAM 'gzip > file' (gzip's default level 6)"),
            ),
        ],
        figures: vec![
            Figure {
                figure: "extract rows/s (median)".into(),
                unit: "rows/s",
                value: rows_per_s,
                baseline: Some(psql_rows_per_s),
                baseline_label: "psql \\copy (SELECT …) | gzip".into(),
                goal: Some(("≥ 1× psql".into(), rows_per_s >= psql_rows_per_s)),
            },
            Figure {
                figure: "extractor peak RSS (VmHWM)".into(),
                unit: "MiB",
                value: peak_mib,
                baseline: None,
                baseline_label: String::new(),
                goal: Some(("≤ 64 MiB".into(), peak_mib <= 64.0)),
            },
        ],
    })
}

/// Fills `shop.orders` with generated rows until the table holds about `bytes`; the rows and
/// the table's size.
async fn fill(shop: &Shop, bytes: u64) -> anyhow::Result<(i64, i64)> {
    let client = shop.database.connect().await?;
    // About 70 bytes of heap per order row, measured once below and topped up to the target.
    const CHUNK: i64 = 1_000_000;
    let mut rows: i64 = 0;
    loop {
        let size: i64 = client
            .query_one("SELECT pg_table_size('shop.orders')", &[])
            .await?
            .get(0);
        if size as u64 >= bytes {
            client.batch_execute("VACUUM ANALYZE shop.orders").await?;
            return Ok((rows, size));
        }
        let per_row = if rows > 0 { size / rows } else { 70 };
        let missing = (bytes as i64 - size) / per_row.max(1) + 1;
        let chunk = missing.clamp(1, CHUNK);
        let started = Instant::now();
        client
            .execute(
                "INSERT INTO shop.orders (order_id, customer_id, order_date, product_id,
                                          unit_price, quantity, total_price)
                 SELECT i, 1 + i % 5000, DATE '2026-01-01' + (i % 365)::int, 1 + i % 800,
                        p, q, p * q
                   FROM generate_series($1::int + 1, $1::int + $2::int) AS i,
                        LATERAL (SELECT (1 + i % 9900) / 100.0 AS p, 1 + i % 5 AS q) AS v",
                &[&(rows as i32), &(chunk as i32)],
            )
            .await
            .context("generating orders in the shop")?;
        rows += chunk;
        println!(
            "Generating    {rows} rows ({:.1}s for the last {chunk})",
            started.elapsed().as_secs_f64()
        );
    }
}

/// Runs the extractor binary once; its wall time and the peak of its RSS (VmHWM, read every
/// 10 ms while it runs).
async fn run_extractor(
    vars: &HashMap<String, String>,
    timeout: Duration,
) -> anyhow::Result<(Duration, f64)> {
    let binary = std::env::current_exe()?
        .parent()
        .context("the landfall binary has no folder")?
        .join("extractor");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&binary)
        .env_clear()
        .envs(vars)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id().context("the extractor has no process id")?;
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(kib) = proc_status_kib(pid, "VmHWM") {
            peak_kib = peak_kib.max(kib);
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "the extractor ran past --timeout-s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = started.elapsed();
    anyhow::ensure!(status.success(), "the extractor failed ({status})");
    Ok((took, peak_kib as f64 / 1024.0))
}

/// The size of the file the extractor landed for `date`.
async fn landed_size(env: &BenchEnv, date: &str) -> anyhow::Result<i64> {
    let key = format!("landing/ecommerce/ingestion_date={date}/orders.csv.gz");
    let head = env
        .s3
        .head_object()
        .bucket(super::BUCKET)
        .key(&key)
        .send()
        .await
        .with_context(|| format!("the extractor landed no {key}"))?;
    Ok(head.content_length().unwrap_or_default())
}
