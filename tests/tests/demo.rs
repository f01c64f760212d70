//! The README's first command, run as a person runs it: `landfall demo` generates data (or takes
//! `--input`), starts the S3 endpoint and the five service binaries, lands the files, waits for
//! every export and exits 0 — having stopped every process it started, whether it succeeded or
//! failed. A second run on the same database leaves every table as it was; `--keep-running`
//! keeps the pipeline up (a file put afterwards goes through it) until SIGINT or SIGTERM; a failure
//! names its stage and the reason; and `landfall status` then shows each batch's stages with
//! their durations, the quality results, and every file's rows, rejects and reason.
//!
//! The demo's service processes are found in `/proc`: the five binaries whose environment holds
//! this test's RabbitMQ prefix (nothing else on the machine has it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use landfall_tests::datasets::copy_dir;
use landfall_tests::{TestEnv, binary_path, wait_until};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(240);
const SERVICES: [&str; 5] = [
    "exporter",
    "ingester",
    "quality-checker",
    "stager",
    "transformer",
];
/// The demo's bucket and credentials (cli/src/demo.rs).
const DEMO_BUCKET: &str = "landfall-demo";
const DEMO_ACCESS_KEY: &str = "landfall-demo";
const DEMO_SECRET_KEY: &str = "landfall-demo-secret";
const REPORTS: [&str; 5] = [
    "agg_public_holiday",
    "agg_shipments",
    "best_performing_product",
    "sales_by_month",
    "top_products_by_revenue",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_end_to_end_stops_what_it_started_and_again_on_the_same_database() {
    let env = TestEnv::new().await;
    let work_dir = work_dir(&env, "run");
    let work_dir_text = work_dir.display().to_string();
    let args = [
        "demo",
        "--database-url",
        env.database_url.as_str(),
        "--amqp-prefix",
        env.prefix.as_str(),
        "--work-dir",
        work_dir_text.as_str(),
        "--days",
        "2",
        "--orders-per-day",
        "300",
        "--dirty",
        "0.01",
    ];
    let first = run_demo(&env, &args).await;
    first.assert_success();
    for expected in [
        "Batch 2026-11-24:",
        "Batch 2026-11-25:",
        "from the last upload to the export",
        "best_performing_product",
        "Exports",
    ] {
        assert!(
            first.stdout.contains(expected),
            "'{expected}' missing from:\n{}",
            first.stdout
        );
    }
    // Every report of both batches is in S3, with its manifest.
    let exported = demo_s3(&env, &work_dir)
        .join("landfall-demo/analytics_export/ecommerce/agg_shipments/ingestion_date=2026-11-25");
    assert!(
        exported.join("agg_shipments.csv").exists(),
        "{} missing",
        exported.display()
    );
    assert!(exported.join("_manifest.json").exists());
    assert_eq!(
        env.count("SELECT count(*) FROM ops.batches WHERE state = 'exported'")
            .await,
        2
    );
    let before = warehouse_snapshot(&env).await;
    for report in REPORTS {
        let rows = &before[&format!("analytics.{report}")];
        for date in ["2026-11-24", "2026-11-25"] {
            assert!(
                rows.iter().any(|row| row.starts_with(&format!("({date},"))),
                "analytics.{report} has no row for {date}: {rows:?}"
            );
        }
    }
    for dimension in ["dim_customer", "dim_product", "dim_date"] {
        assert!(
            before[&format!("warehouse.{dimension}")].len() > 1,
            "warehouse.{dimension} is empty"
        );
    }
    let exports_before = exported_objects(&env, &work_dir).await;
    assert_eq!(
        exports_before.len(),
        2 * REPORTS.len(),
        "{exports_before:?}"
    );

    // Again on the same database: the files are recognised, and every report table, every
    // dimension (its surrogate keys included), every fact and every exported object is as the
    // first run left it, row for row.
    let second = run_demo(&env, &args).await;
    second.assert_success();
    assert!(
        second
            .stdout
            .contains("already exported from these same files"),
        "{}",
        second.stdout
    );
    let after = warehouse_snapshot(&env).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &before {
        assert_eq!(
            &after[table], rows,
            "{table} changed on the second run on the same database"
        );
    }
    assert_eq!(exported_objects(&env, &work_dir).await, exports_before);
    assert_eq!(broker_objects(&env.prefix).await, Vec::<String>::new());
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE state = 'staged'")
            .await,
        12
    );
    let _ = std::fs::remove_dir_all(&work_dir);
    env.cleanup().await;
}

/// `--keep-running`: after the batches are exported the five services and the S3 endpoint stay
/// up and the demo prints the endpoint, bucket and keys with a ready curl command; a batch put
/// afterwards with that command (curl is a third-party S3 client: AWS Signature V4) goes all the
/// way to its export; SIGTERM or SIGINT (Ctrl-C) stops everything, removes the run's queues and
/// exchanges, and the demo exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_running_serves_files_put_with_curl_afterwards_until_sigterm_or_sigint() {
    let env = TestEnv::new().await;
    let work_dir = work_dir(&env, "keep");
    let work_dir_text = work_dir.display().to_string();
    let args = [
        "demo",
        "--database-url",
        env.database_url.as_str(),
        "--amqp-prefix",
        env.prefix.as_str(),
        "--work-dir",
        work_dir_text.as_str(),
        "--days",
        "2",
        "--orders-per-day",
        "50",
        "--keep-running",
    ];

    for signal in ["TERM", "INT"] {
        let mut demo = Demo::start(&env, &args);
        let endpoint = demo.s3_endpoint().await;
        demo.line("Services and S3 keep running").await;
        let services = demo.services(&env.prefix);
        for service in &services {
            wait_until(
                &format!(
                    "{} ({}) to answer /readyz 200",
                    service.name, service.health
                ),
                DEADLINE,
                || async {
                    Ok(runtime::health::is_ready(&service.health)
                        .await
                        .then_some(()))
                },
            )
            .await;
        }
        assert!(
            tokio::net::TcpStream::connect(endpoint.trim_start_matches("http://"))
                .await
                .is_ok(),
            "the S3 endpoint {endpoint} is closed"
        );

        if signal == "TERM" {
            // What the demo says about landing a file: the endpoint it printed first, its
            // bucket and keys, and a curl command for the next day's orders.
            for (needle, expected) in [
                ("  endpoint ", endpoint.clone()),
                (
                    "  bucket ",
                    format!(
                        "{DEMO_BUCKET} (keys landing/ecommerce/ingestion_date=YYYY-MM-DD/<source>.csv)"
                    ),
                ),
                ("  access key ", DEMO_ACCESS_KEY.to_owned()),
                ("  secret key ", DEMO_SECRET_KEY.to_owned()),
            ] {
                let line = demo.line(needle).await;
                assert_eq!(
                    line.trim_start()
                        .split_once("  ")
                        .map(|(_, value)| value.trim()),
                    Some(expected.as_str()),
                    "{line}"
                );
            }
            let curl = demo.line("  with curl ").await;
            let command = curl
                .trim_start()
                .trim_start_matches("with curl")
                .trim()
                .to_owned();
            assert!(
                command.ends_with(&format!(
                    "-T orders.csv {endpoint}/{DEMO_BUCKET}/landing/ecommerce/ingestion_date=2026-11-26/orders.csv"
                )),
                "{command}"
            );
            // A new ingestion date, put with that command (run by the shell, in the folder of
            // the file; only the file name changes): day 2's files again, as 2026-11-26. It is
            // staged, transformed, checked and exported.
            let day2 = work_dir.join("data/2026-11-25");
            let mut files: Vec<String> = std::fs::read_dir(&day2)
                .expect("the demo's generated data")
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            assert_eq!(files.len(), 6, "{files:?}");
            for file in &files {
                let output = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(command.replace("orders.csv", file))
                    .current_dir(&day2)
                    .output()
                    .await
                    .expect("running sh");
                assert!(
                    output.status.success(),
                    "{command} for {file}: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            wait_until("2026-11-26 exported by the running demo", DEADLINE, || async {
                Ok((env
                    .try_count("SELECT count(*) FROM ops.batches WHERE ingestion_date = '2026-11-26' AND state = 'exported'")
                    .await?
                    == 1)
                    .then_some(()))
            })
            .await;
            assert_eq!(
                env.count("SELECT count(*) FROM ops.files WHERE ingestion_date = '2026-11-26' AND state = 'staged'")
                    .await,
                6
            );
            assert_eq!(
                env.count("SELECT count(*) FROM ops.exports WHERE ingestion_date = '2026-11-26'")
                    .await,
                REPORTS.len() as i64
            );
            let csv = demo_s3(&env, &work_dir).join(
                "landfall-demo/analytics_export/ecommerce/agg_shipments/ingestion_date=2026-11-26/agg_shipments.csv",
            );
            assert!(csv.exists(), "{} missing", csv.display());
        } else {
            // The second run on the same database found both generated days exported already.
            assert_eq!(
                demo.stdout()
                    .matches("already exported from these same files")
                    .count(),
                2,
                "{}",
                demo.stdout()
            );
        }

        assert!(
            demo.child.try_wait().unwrap().is_none(),
            "the demo exited before it was signalled:\n{}",
            demo.stdout()
        );
        demo.signal(signal);
        let run = demo.finish(services, &endpoint).await;
        assert!(
            run.status.success(),
            "SIG{signal} did not stop the demo cleanly ({}):\n{}\n{}",
            run.status,
            run.stdout,
            run.stderr
        );
        assert_eq!(broker_objects(&env.prefix).await, Vec::<String>::new());
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    env.cleanup().await;
}

/// A required file the stager rejects fails its batch, naming the stage, the file and the
/// stager's reason; the other batches go on and are exported; the run ends listing every failed
/// batch, with exit code 1. It leaves a consistent state: every event of the run handled (no
/// file still 'landed'), `landfall status` showing as staged exactly the sources whose file is
/// staged and none of them as missing, and no queue or exchange of its prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_file_fails_its_batch_the_others_are_exported_and_status_agrees() {
    let env = TestEnv::new().await;
    let work_dir = work_dir(&env, "reject");
    let input = generate(&env, &work_dir, 3, 20).await;
    let orders = input.join("2026-11-24/orders.csv");
    let text = std::fs::read_to_string(&orders).unwrap();
    std::fs::write(&orders, text.replacen("order_id,", "order_ref,", 1)).unwrap();
    let reason = "staging failed: the stager rejected landing/ecommerce/ingestion_date=2026-11-24/orders.csv: \
                  unknown column 'order_ref' in the header \
                  (expected order_id,customer_id,order_date,product_id,unit_price,quantity,total_price); \
                  batch 2026-11-24 cannot be transformed without its orders";

    let run = run_demo(&env, &demo_args(&env, &work_dir, &input, None)).await;
    assert_eq!(run.status.code(), Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "1 of 3 batches failed:\n  batch 2026-11-24: {reason}"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains(&format!("Batch 2026-11-24: {reason}")),
        "{}",
        run.stdout
    );
    for date in ["2026-11-23", "2026-11-25"] {
        assert!(
            run.stdout.contains(&format!("Batch {date}: ")),
            "{}",
            run.stdout
        );
    }
    assert_eq!(
        env.query_text(
            "SELECT ingestion_date::text, state, (SELECT count(*) FROM ops.exports e
                                                  WHERE e.ingestion_date = b.ingestion_date)::text
               FROM ops.batches b ORDER BY 1"
        )
        .await,
        landfall_tests::rows(&[
            &["2026-11-23", "exported", &REPORTS.len().to_string()],
            &["2026-11-24", "staging", "0"],
            &["2026-11-25", "exported", &REPORTS.len().to_string()],
        ])
    );
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE state = 'landed'")
            .await,
        0
    );

    // Status: per batch, the sources staged are those of its files in state 'staged'; the
    // missing ones are the rest of the required ones.
    let status = landfall_status(&env).await;
    let files = table(&status, "Files");
    assert_eq!(files.len(), 18, "{status}");
    for batch in table(&status, "Batches") {
        let date = batch["batch"].as_str();
        let mut staged: Vec<&str> = files
            .iter()
            .filter(|file| file["batch"] == date && file["state"] == "staged")
            .map(|file| file["source"].as_str())
            .collect();
        staged.sort();
        assert_eq!(
            batch["sources staged"],
            staged.join(", "),
            "{date}:\n{status}"
        );
        let expected_missing = if date == "2026-11-24" { "orders" } else { "" };
        assert_eq!(batch["missing"], expected_missing, "{date}:\n{status}");
    }
    assert_eq!(broker_objects(&env.prefix).await, Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&work_dir);
    env.cleanup().await;
}

/// Two runs with different inputs into two databases but one work folder (as two runs with
/// the default `--work-dir` do): each database holds exactly the batches and files of its own
/// input, listed here from the input folders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_two_databases_sharing_a_work_folder_each_land_exactly_their_own_input() {
    let first = TestEnv::new().await;
    let second = TestEnv::new().await;
    let work_dir = work_dir(&first, "two-databases");
    // The first input: two generated days. The second: one generated day moved to another
    // date, without its (optional) product snapshot.
    let input_a = generate(&first, &work_dir.join("a"), 2, 20).await;
    let input_b = generate(&first, &work_dir.join("b"), 1, 20).await;
    std::fs::rename(input_b.join("2026-11-25"), input_b.join("2026-12-01")).unwrap();
    std::fs::remove_file(input_b.join("2026-12-01/products.csv")).unwrap();

    for (env, input) in [(&first, &input_a), (&second, &input_b)] {
        // The same work folder and the same RabbitMQ prefix for both runs.
        let mut args = demo_args(&first, &work_dir, input, None);
        let url = args.iter().position(|arg| arg == "--database-url").unwrap() + 1;
        args[url] = env.database_url.clone();
        run_demo(&first, &args).await.assert_success();
    }
    for (env, input) in [(&first, &input_a), (&second, &input_b)] {
        let (dates, keys) = input_batches_and_keys(input);
        assert_eq!(
            env.query_text("SELECT ingestion_date::text, state FROM ops.batches ORDER BY 1")
                .await,
            dates
                .iter()
                .map(|date| vec![date.clone(), "exported".to_owned()])
                .collect::<Vec<_>>(),
            "{}",
            env.database
        );
        assert_eq!(
            env.query_text("SELECT key FROM ops.files ORDER BY key")
                .await
                .concat(),
            keys,
            "{}",
            env.database
        );
    }
    assert_eq!(broker_objects(&first.prefix).await, Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&work_dir);
    second.cleanup().await;
    first.cleanup().await;
}

/// `--from-db`: the same sample days put in a shop database and extracted from it give the
/// reports landing them as files gives; the holiday calendar, not in the shop, lands as a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_from_a_shop_database_reports_as_from_its_files() {
    let files = TestEnv::new().await;
    let from_db = TestEnv::new().await;
    let work_dir = work_dir(&files, "from-db");
    let input = generate(&files, &work_dir.join("files"), 2, 60).await;
    run_demo(
        &files,
        &demo_args(&files, &work_dir.join("files"), &input, None),
    )
    .await
    .assert_success();
    let args: Vec<String> = [
        "demo",
        "--database-url",
        &from_db.database_url,
        "--amqp-prefix",
        &from_db.prefix,
        "--work-dir",
        &work_dir.join("db").join("demo").display().to_string(),
        "--from-db",
        "--days",
        "2",
        "--orders-per-day",
        "60",
        "--timeout-s",
        "180",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    let run = run_demo(&from_db, &args).await;
    run.assert_success();
    assert!(
        run.stdout.contains("Extracted     2026-11-25: 5 tables"),
        "{}",
        run.stdout
    );
    let expected = report_rows(&files).await;
    assert!(expected.iter().all(|rows| !rows.is_empty()), "{expected:?}");
    assert_eq!(report_rows(&from_db).await, expected);
    // Five tables from the shop per date; the calendar as a file.
    assert_eq!(
        from_db
            .query_text(
                "SELECT ingestion_date::text, count(*)::text FROM ops.extracts GROUP BY 1 ORDER BY 1"
            )
            .await,
        [["2026-11-24", "5"], ["2026-11-25", "5"]]
    );
    assert_eq!(
        from_db
            .count("SELECT count(*) FROM ops.files WHERE key LIKE '%/holidays.csv'")
            .await,
        2
    );
    let admin = scratch::Admin::parse(&from_db.servers.database_url("postgres")).unwrap();
    admin
        .connect()
        .await
        .unwrap()
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {}_shop WITH (FORCE)",
            from_db.database
        ))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&work_dir);
    from_db.cleanup().await;
    files.cleanup().await;
}

/// Every row of every report, as text, each report sorted.
async fn report_rows(env: &TestEnv) -> Vec<Vec<Vec<String>>> {
    let mut all = Vec::new();
    for report in REPORTS {
        all.push(
            env.query_text(&format!(
                "SELECT r::text FROM analytics.{report} r ORDER BY 1"
            ))
            .await,
        );
    }
    all
}

/// A model whose SQL fails: the transformer dead-letters the batch's event and the demo stops,
/// naming the transform stage and the database's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_fails_the_demo_naming_transform_and_the_error() {
    let env = TestEnv::new().await;
    let work_dir = work_dir(&env, "model");
    let input = generate(&env, &work_dir, 1, 20).await;
    let datasets = work_dir.join("datasets");
    copy_dir(&repo_dir().join("datasets"), &datasets);
    let model = datasets.join("ecommerce/models/agg_shipments.sql");
    let mut sql = std::fs::read_to_string(&model).unwrap();
    sql.push_str("\nSELECT no_such_column FROM warehouse.fact_orders;\n");
    std::fs::write(&model, sql).unwrap();

    let run = run_demo(&env, &demo_args(&env, &work_dir, &input, Some(&datasets))).await;
    assert!(!run.status.success(), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "transform failed: the transformer gave up on a message (dead-lettered to {}.transformer.dlq): \
             model agg_shipments failed for batch 2026-11-25",
            env.prefix
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("column \"no_such_column\" does not exist"),
        "{}",
        run.stderr
    );
    assert_eq!(env.count("SELECT count(*) FROM ops.exports").await, 0);
    let _ = std::fs::remove_dir_all(&work_dir);
    env.cleanup().await;
}

/// An error-severity check that fails: the demo stops naming the quality stage, the check and
/// its failing rows; nothing is exported; `landfall status` shows the batch stopped at quality
/// with the check counted as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_fails_the_demo_naming_quality_and_status_shows_it() {
    let env = TestEnv::new().await;
    let work_dir = work_dir(&env, "check");
    let input = generate(&env, &work_dir, 1, 20).await;
    let datasets = work_dir.join("datasets");
    copy_dir(&repo_dir().join("datasets"), &datasets);
    let checks = datasets.join("ecommerce/checks.toml");
    let mut toml = std::fs::read_to_string(&checks).unwrap();
    toml.push_str(
        r#"
[[checks]]
name = "demo_test_no_order_has_a_quantity"
description = "Fails for every order of the batch, on purpose."
kind = "expression"
severity = "error"
table = "staging.orders"
expression = "quantity IS NULL"
where = "_batch = (SELECT ops.batch_date())"

[[checks]]
name = "demo_test_broken_warning"
description = "Cannot run: its table does not exist. Broken, so it blocks the export though it warns."
kind = "custom_sql"
severity = "warn"
sql = "SELECT * FROM staging.no_such_table"
"#,
    );
    std::fs::write(&checks, toml).unwrap();
    let checks_declared = count_checks(&checks);
    // Every order of the day fails it: one a line of orders.csv after the header.
    let orders = data_lines(&input.join("2026-11-25/orders.csv"));

    let run = run_demo(&env, &demo_args(&env, &work_dir, &input, Some(&datasets))).await;
    assert!(!run.status.success(), "{}", run.stdout);
    assert!(
        run.stderr.contains(
            "quality failed: batch 2026-11-25 failed its error-severity checks or has checks \
             that could not run: demo_test_broken_warning (could not run: relation \
             \"staging.no_such_table\" does not exist"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "demo_test_no_order_has_a_quantity ({orders} failing rows); nothing was exported"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(env.count("SELECT count(*) FROM ops.exports").await, 0);
    assert!(
        !demo_s3(&env, &work_dir.join("demo"))
            .join("landfall-demo/analytics_export")
            .exists()
    );

    let status = landfall_status(&env).await;
    let batches = table(&status, "Batches");
    assert_eq!(batches.len(), 1, "{status}");
    let batch = &batches[0];
    assert_eq!(batch["batch"], "2026-11-25", "{status}");
    assert_eq!(batch["state"], "quality_failed", "{status}");
    for stage in ["ready", "transform", "quality"] {
        assert_duration(&batch[stage], &status);
    }
    assert_eq!(batch["export"], "", "not exported:\n{status}");
    let warned_names: Vec<String> = env
        .query_text("SELECT check_name FROM ops.quality_results WHERE status = 'failed' AND severity = 'warn' ORDER BY 1")
        .await
        .concat();
    let warned = warned_names.len();
    let mut expected = format!(
        "{} passed, 1 failed, {warned} warned, 1 broken; failed: demo_test_no_order_has_a_quantity",
        checks_declared - 2 - warned
    );
    if !warned_names.is_empty() {
        expected.push_str(&format!("; warned: {}", warned_names.join(", ")));
    }
    expected.push_str("; broken: demo_test_broken_warning");
    assert_eq!(batch["checks"], expected, "{status}");
    let _ = std::fs::remove_dir_all(&work_dir);
    env.cleanup().await;
}

/// After a demo of two days — one malformed order row on day 1, day 2's product snapshot with a
/// header the dataset does not know (products are optional: the batch goes on without them) —
/// `landfall status` shows per batch its state, the sources staged, each stage's duration, the
/// quality results and the trace id; per file its state, the rows loaded and rejected (counted
/// here from the input files), how long staging took, and the reason of the rejected file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_stage_durations_quality_results_and_file_rows_after_a_demo() {
    let env = TestEnv::new().await;
    let work_dir = work_dir(&env, "status");
    let input = generate(&env, &work_dir, 2, 40).await;
    let day1_orders = input.join("2026-11-24/orders.csv");
    let mut text = std::fs::read_to_string(&day1_orders).unwrap();
    text.push_str("not-a-number,1,2026-11-20,1,1.00,1,1.00\n");
    std::fs::write(&day1_orders, text).unwrap();
    let day2_products = input.join("2026-11-25/products.csv");
    let text = std::fs::read_to_string(&day2_products).unwrap();
    std::fs::write(&day2_products, text.replacen("product_id,", "sku,", 1)).unwrap();
    let products_reason =
        "unknown column 'sku' in the header (expected product_id,product_category,product_name)";

    let run = run_demo(&env, &demo_args(&env, &work_dir, &input, None)).await;
    run.assert_success();
    assert!(
        run.stdout.contains(&format!(
            "rejected by the stager   landing/ecommerce/ingestion_date=2026-11-25/products.csv: {products_reason}"
        )),
        "{}",
        run.stdout
    );

    let status = landfall_status(&env).await;
    let checks_declared = count_checks(&repo_dir().join("datasets/ecommerce/checks.toml"));
    let batches = table(&status, "Batches");
    let all_sources = "customers, holidays, orders, products, reviews, shipment_deliveries";
    let without_products = "customers, holidays, orders, reviews, shipment_deliveries";
    assert_eq!(
        batches
            .iter()
            .map(|batch| (batch["batch"].as_str(), batch["sources staged"].as_str()))
            .collect::<Vec<_>>(),
        [
            ("2026-11-25", without_products),
            ("2026-11-24", all_sources)
        ],
        "{status}"
    );
    for batch in &batches {
        assert_eq!(batch["dataset"], "ecommerce", "{status}");
        assert_eq!(batch["state"], "exported", "{status}");
        assert_eq!(batch["missing"], "", "{status}");
        for stage in ["ready", "transform", "quality", "export"] {
            assert_duration(&batch[stage], &status);
        }
        // Every declared check ran on the batch; the warnings are what the results hold.
        let warned_names: Vec<String> = env
            .query_text(&format!(
                "SELECT check_name FROM ops.quality_results WHERE ingestion_date = '{}' AND status <> 'passed' AND severity = 'warn' ORDER BY 1",
                batch["batch"]
            ))
            .await
            .concat();
        let warned = warned_names.len();
        let mut expected = format!(
            "{} passed, 0 failed, {warned} warned, 0 broken",
            checks_declared - warned
        );
        if !warned_names.is_empty() {
            expected.push_str(&format!("; warned: {}", warned_names.join(", ")));
        }
        assert_eq!(batch["checks"], expected, "{status}");
        // The demo named them under the batch.
        for name in &warned_names {
            assert!(
                run.stdout
                    .contains(&format!("warned by a check        {name} (")),
                "{name}:\n{}",
                run.stdout
            );
        }
        assert_eq!(batch["trace id"].len(), 32, "{status}");
    }

    let files = table(&status, "Files");
    assert_eq!(files.len(), 12, "{status}");
    for file in &files {
        let (date, source) = (file["batch"].as_str(), file["source"].as_str());
        let key = format!("landing/ecommerce/ingestion_date={date}/{source}.csv");
        let lines = data_lines(&input.join(date).join(format!("{source}.csv")));
        let expected = match (date, source) {
            ("2026-11-24", "orders") => ("staged", lines - 1, 1, key.as_str()),
            ("2026-11-25", "products") => ("rejected", 0, 0, products_reason),
            _ => ("staged", lines, 0, key.as_str()),
        };
        assert_eq!(
            (
                file["dataset"].as_str(),
                file["state"].as_str(),
                file["rows"].clone(),
                file["rejected"].clone(),
                file["found by"].as_str(),
                file["reason / key"].as_str(),
            ),
            (
                "ecommerce",
                expected.0,
                expected.1.to_string(),
                expected.2.to_string(),
                "notification",
                expected.3,
            ),
            "{date} {source}:\n{status}"
        );
        assert_duration(&file["took"], &status);
        assert_eq!(file["trace id"].len(), 32, "{status}");
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    env.cleanup().await;
}

/// The demo removes the queues and exchanges an earlier run left under its prefix, but not
/// ones something consumes (another demo, or a pipeline, under that prefix): it refuses to run,
/// saying which queue is in use, and leaves it as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_whose_queue_has_a_consumer_is_refused_and_left_alone() {
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    let env = TestEnv::new().await;
    let work_dir = work_dir(&env, "in-use");
    let input = generate(&env, &work_dir, 1, 20).await;
    let connection =
        lapin::Connection::connect(&env.amqp_url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = format!("{}.stager", env.prefix);
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let _consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "another-pipeline".into(),
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await
        .unwrap();

    let args = demo_args(&env, &work_dir, &input, None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = env.landfall(&args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("the queue {queue} is in use")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "runs under --amqp-prefix {}; stop it or choose another prefix",
            env.prefix
        )),
        "{stderr}"
    );
    assert!(broker_objects(&env.prefix).await.contains(&queue));
    connection.close(200, "done".into()).await.ok();
    let _ = std::fs::remove_dir_all(&work_dir);
    env.cleanup().await;
}

/// `landfall s3-server` accepts the keys its `--help` gives as the defaults, also when the key
/// variables are set but empty, says at start which keys it accepts, and stops on SIGTERM.
/// curl signs the requests (AWS Signature V4), as a client that is not landfall's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_accepts_the_keys_its_help_names_and_says_so_at_start() {
    let empty_keys = [
        ("LANDFALL_S3_ACCESS_KEY_ID", ""),
        ("LANDFALL_S3_SECRET_ACCESS_KEY", ""),
    ];
    let help = tokio::process::Command::new(binary_path("landfall"))
        .args(["s3-server", "--help"])
        .env_clear()
        .envs(empty_keys)
        .output()
        .await
        .expect("landfall s3-server --help");
    let help = String::from_utf8(help.stdout).unwrap();
    for default in [
        "landfall [env: LANDFALL_S3_ACCESS_KEY_ID=]",
        "landfall-secret [env:",
    ] {
        assert!(
            help.contains(&format!("(or it is empty): {default}")),
            "{help}"
        );
    }

    let root = std::env::temp_dir().join(format!(
        "landfall-s3-server-test-{:08x}",
        rand::random::<u32>()
    ));
    let mut server = tokio::process::Command::new(binary_path("landfall"))
        .args(["s3-server", "--listen", "127.0.0.1:0", "--amqp-url", ""])
        .arg("--root")
        .arg(&root)
        .env_clear()
        .envs(empty_keys)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting landfall s3-server");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("a line from s3-server")
            .unwrap()
            .expect("s3-server ended early")
    };
    let first = next_line().await;
    let endpoint = first
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no endpoint in '{first}'"))
        .to_owned();
    assert_eq!(next_line().await, "Access key    landfall (the default)");
    assert_eq!(
        next_line().await,
        "Secret key    landfall-secret (the default)"
    );

    let curl = |args: Vec<String>| async move {
        let output = tokio::process::Command::new("curl")
            .args([
                "--fail-with-body",
                "-sS",
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            ])
            .args([
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "--user",
                "landfall:landfall-secret",
            ])
            .args(&args)
            .output()
            .await
            .expect("running curl");
        let body = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "curl {args:?}: {body}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        body
    };
    let file = root.with_extension("csv");
    std::fs::write(&file, "a,b\n1,2\n").unwrap();
    curl(vec![
        "-X".into(),
        "PUT".into(),
        format!("{endpoint}/checked"),
    ])
    .await;
    curl(vec![
        "-T".into(),
        file.display().to_string(),
        format!("{endpoint}/checked/landing/x.csv"),
    ])
    .await;
    assert_eq!(
        curl(vec![format!("{endpoint}/checked/landing/x.csv")]).await,
        "a,b\n1,2\n"
    );

    kill(server.id().unwrap(), "TERM");
    let status = tokio::time::timeout(DEADLINE, server.wait())
        .await
        .expect("s3-server stopped after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&file);
}

// --- The demo as a process ---------------------------------------------------------------------

/// A running `landfall demo`: its stdout line by line as it prints it.
struct Demo {
    child: tokio::process::Child,
    prefix: String,
    lines: mpsc::UnboundedReceiver<String>,
    printed: Vec<String>,
    stderr: Option<tokio::task::JoinHandle<String>>,
}

impl Drop for Demo {
    /// A test that fails while the demo runs leaves none of its services running: they are
    /// killed, then the demo (`kill_on_drop`).
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            for service in service_processes(&self.prefix) {
                if service.parent == pid {
                    kill(service.pid, "KILL");
                }
            }
        }
    }
}

fn kill(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// A finished demo run.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "demo failed ({}):\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// One service process of a demo, as `/proc` shows it.
#[derive(Debug, Clone)]
struct ServiceProcess {
    pid: u32,
    parent: u32,
    name: String,
    /// `LANDFALL_HEALTH_ADDR`: where it answers `/readyz`.
    health: String,
}

impl Demo {
    fn start<S: AsRef<std::ffi::OsStr>>(env: &TestEnv, args: &[S]) -> Demo {
        let mut child = tokio::process::Command::new(binary_path("landfall"))
            .args(args)
            .env_clear()
            .envs(env.vars())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting landfall demo");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Demo {
            child,
            prefix: env.prefix.clone(),
            lines,
            printed: Vec::new(),
            stderr: Some(stderr),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the demo is running")
    }

    fn stdout(&self) -> String {
        self.printed.join("\n")
    }

    /// Waits for the next line containing `needle`.
    async fn line(&mut self, needle: &str) -> String {
        loop {
            let line = tokio::time::timeout(DEADLINE, self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no line with '{needle}' within {DEADLINE:?}:\n{}",
                        self.stdout()
                    )
                });
            let Some(line) = line else {
                let stderr = self.stderr.take().unwrap().await.unwrap();
                panic!(
                    "the demo ended without printing '{needle}':\n{}\n{stderr}",
                    self.stdout()
                );
            };
            self.printed.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The S3 endpoint the demo prints (`S3 endpoint   http://127.0.0.1:PORT (files in …)`).
    async fn s3_endpoint(&mut self) -> String {
        let line = self.line("S3 endpoint").await;
        line.split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in '{line}'"))
            .to_owned()
    }

    /// The five service processes the demo started: children of the demo, with the demo's
    /// environment.
    fn services(&self, prefix: &str) -> Vec<ServiceProcess> {
        let services = service_processes(prefix);
        let mut names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        assert_eq!(names, SERVICES, "{services:?}");
        for service in &services {
            assert_eq!(
                service.parent,
                self.pid(),
                "{service:?} is not the demo's child"
            );
        }
        services
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the demo to exit, then checks that nothing it started is left: none of its
    /// service processes (nor any other with its environment), no health port, no S3 port.
    async fn finish(mut self, services: Vec<ServiceProcess>, s3_endpoint: &str) -> Run {
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the demo did not exit:\n{}", self.stdout()))
            .expect("waiting for the demo");
        while let Some(line) = self.lines.recv().await {
            self.printed.push(line);
        }
        let run = Run {
            status,
            stdout: self.stdout(),
            stderr: self.stderr.take().unwrap().await.unwrap(),
        };
        let prefix = self.prefix.clone();
        let left = service_processes(&prefix);
        for orphan in &left {
            // Not left running on the machine by a failing test.
            kill(orphan.pid, "KILL");
        }
        assert!(
            left.is_empty(),
            "service processes still running after the demo exited: {left:?}\n{}\n{}",
            run.stdout,
            run.stderr
        );
        for service in &services {
            assert!(
                !Path::new(&format!("/proc/{}", service.pid)).exists()
                    || !same_process(service, &prefix),
                "{service:?} outlived the demo"
            );
            assert!(
                tokio::net::TcpStream::connect(&service.health)
                    .await
                    .is_err(),
                "{}'s health port {} still open after the demo exited",
                service.name,
                service.health
            );
        }
        let s3 = s3_endpoint.trim_start_matches("http://");
        assert!(
            tokio::net::TcpStream::connect(s3).await.is_err(),
            "the demo's S3 port {s3} still open after it exited"
        );
        run
    }
}

/// Runs the demo to its end: records the five service processes once it says they are ready,
/// and checks it stopped them and its S3 server before exiting.
async fn run_demo<S: AsRef<std::ffi::OsStr>>(env: &TestEnv, args: &[S]) -> Run {
    let mut demo = Demo::start(env, args);
    let endpoint = demo.s3_endpoint().await;
    demo.line("Services").await;
    let services = demo.services(&env.prefix);
    demo.finish(services, &endpoint).await
}

/// Every process whose environment holds `LANDFALL_AMQP_PREFIX=<prefix>` and whose program is
/// one of the five service binaries (zombies have no environment left: they are not running).
fn service_processes(prefix: &str) -> Vec<ServiceProcess> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Some(process) = service_process(pid, prefix) else {
            continue;
        };
        found.push(process);
    }
    found
}

fn service_process(pid: u32, prefix: &str) -> Option<ServiceProcess> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let environ = std::fs::read(dir.join("environ")).ok()?;
    let vars: HashMap<String, String> = environ
        .split(|byte| *byte == 0)
        .filter_map(|var| {
            let var = String::from_utf8_lossy(var);
            let (name, value) = var.split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    if vars.get("LANDFALL_AMQP_PREFIX").map(String::as_str) != Some(prefix) {
        return None;
    }
    let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
    let program = cmdline.split(|byte| *byte == 0).next()?;
    let name = Path::new(&*String::from_utf8_lossy(program))
        .file_name()?
        .to_string_lossy()
        .into_owned();
    if !SERVICES.contains(&name.as_str()) {
        return None;
    }
    // /proc/<pid>/stat: "pid (comm) state ppid …".
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if state == "Z" {
        return None;
    }
    let parent = fields.next()?.parse().ok()?;
    Some(ServiceProcess {
        pid,
        parent,
        name,
        health: vars
            .get("LANDFALL_HEALTH_ADDR")
            .cloned()
            .unwrap_or_default(),
    })
}

/// The pid still names that service of that demo (not a new process given the same pid).
fn same_process(service: &ServiceProcess, prefix: &str) -> bool {
    service_process(service.pid, prefix).is_some_and(|now| now.name == service.name)
}

// --- Data, tables and files ---------------------------------------------------------------------

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository folder")
}

/// The demo's S3 folder for the test's database under `--work-dir`: one folder per database,
/// `s3/<database>@<host>-<port>`.
fn demo_s3(env: &TestEnv, demo_work_dir: &Path) -> PathBuf {
    demo_work_dir
        .join("s3")
        .join(format!("{}@127.0.0.1-5432", env.database))
}

fn work_dir(env: &TestEnv, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("landfall-demo-test-{name}-{}", env.suffix))
}

/// `landfall gen` (no malformed rows) into `<work_dir>/input`, one folder per date ending
/// 2026-11-25.
async fn generate(env: &TestEnv, work_dir: &Path, days: u32, orders: u32) -> PathBuf {
    let out = work_dir.join("input");
    let out_text = out.display().to_string();
    let (days, orders) = (days.to_string(), orders.to_string());
    let output = env
        .landfall(&[
            "gen",
            "--days",
            &days,
            "--orders-per-day",
            &orders,
            "--dirty",
            "0",
            "--out",
            &out_text,
        ])
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn demo_args(env: &TestEnv, work_dir: &Path, input: &Path, datasets: Option<&Path>) -> Vec<String> {
    let mut args: Vec<String> = [
        "demo",
        "--database-url",
        &env.database_url,
        "--amqp-prefix",
        &env.prefix,
        "--work-dir",
        &work_dir.join("demo").display().to_string(),
        "--input",
        &input.display().to_string(),
        "--timeout-s",
        "180",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    if let Some(datasets) = datasets {
        args.push("--datasets-dir".into());
        args.push(datasets.display().to_string());
    }
    args
}

/// An input folder's dates and the landing keys of its files, each sorted.
fn input_batches_and_keys(input: &Path) -> (Vec<String>, Vec<String>) {
    let mut dates = Vec::new();
    let mut keys = Vec::new();
    for day in std::fs::read_dir(input).unwrap() {
        let day = day.unwrap().path();
        let date = day.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&day).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            keys.push(format!("landing/ecommerce/ingestion_date={date}/{name}"));
        }
        dates.push(date);
    }
    dates.sort();
    keys.sort();
    (dates, keys)
}

/// Which of the demo's queues and exchanges under `prefix` exist (named as the README's
/// diagram names them; a passive declare fails for a missing one).
async fn broker_objects(prefix: &str) -> Vec<String> {
    use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
    let connection = lapin::Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ");
    let mut found = Vec::new();
    for service in SERVICES {
        for queue in [
            format!("{prefix}.{service}"),
            format!("{prefix}.{service}.dlq"),
        ] {
            let channel = connection.create_channel().await.unwrap();
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            if channel
                .queue_declare(queue.as_str().into(), passive, Default::default())
                .await
                .is_ok()
            {
                found.push(queue);
            }
        }
    }
    for exchange in ["events", "dlx", "s3"].map(|name| format!("{prefix}.{name}")) {
        let channel = connection.create_channel().await.unwrap();
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if channel
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                passive,
                Default::default(),
            )
            .await
            .is_ok()
        {
            found.push(exchange);
        }
    }
    connection.close(200, "done".into()).await.ok();
    found
}

/// Data lines of a CSV file (its lines after the header; the generator writes no line breaks
/// inside fields).
fn data_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .lines()
        .count()
        - 1
}

fn count_checks(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| line.trim() == "[[checks]]")
        .count()
}

/// Every table of the warehouse and analytics schemas, each row as text, in order.
async fn warehouse_snapshot(env: &TestEnv) -> std::collections::BTreeMap<String, Vec<String>> {
    let tables = env
        .query_text(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables
              WHERE table_schema IN ('warehouse', 'analytics') AND table_type = 'BASE TABLE'
              ORDER BY 1",
        )
        .await;
    let mut snapshot = std::collections::BTreeMap::new();
    for table in tables {
        let table = &table[0];
        let rows = env
            .query_text(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
            .await
            .into_iter()
            .map(|mut row| row.remove(0))
            .collect();
        snapshot.insert(table.clone(), rows);
    }
    for report in REPORTS {
        assert!(
            snapshot.contains_key(&format!("analytics.{report}")),
            "{report} missing"
        );
    }
    snapshot
}

/// What the exporter recorded of each exported report, and the bytes of its CSV and manifest
/// objects on disk.
async fn exported_objects(env: &TestEnv, work_dir: &Path) -> Vec<(Vec<String>, Vec<Vec<u8>>)> {
    let rows = env
        .query_text(
            "SELECT report, ingestion_date::text, key, manifest_key, rows::text, bytes::text, sha256
               FROM ops.exports ORDER BY report, ingestion_date",
        )
        .await;
    rows.into_iter()
        .map(|row| {
            let objects = [&row[2], &row[3]]
                .iter()
                .map(|key| {
                    let path = demo_s3(env, work_dir).join(DEMO_BUCKET).join(key);
                    std::fs::read(&path)
                        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
                })
                .collect();
            (row, objects)
        })
        .collect()
}

async fn landfall_status(env: &TestEnv) -> String {
    let output = env.landfall(&["status"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 status")
}

/// The rows of the status table titled `title`, each cell under its header's name; the
/// columns are where the rule under the header puts them.
fn table(output: &str, title: &str) -> Vec<HashMap<String, String>> {
    let mut lines = output.lines().skip_while(|line| !line.starts_with(title));
    assert!(lines.next().is_some(), "no {title} table:\n{output}");
    let header: Vec<char> = lines.next().unwrap_or_default().chars().collect();
    let rule: Vec<char> = lines.next().unwrap_or_default().chars().collect();
    let mut spans = Vec::new();
    let mut start = None;
    for (index, c) in rule.iter().chain(std::iter::once(&' ')).enumerate() {
        match (c, start) {
            ('-', None) => start = Some(index),
            (' ', Some(from)) => {
                spans.push((from, index));
                start = None;
            }
            _ => {}
        }
    }
    assert!(
        !spans.is_empty(),
        "no rule under the {title} header:\n{output}"
    );
    let cell = |line: &[char], (from, to): (usize, usize), last: bool| -> String {
        let to = if last { line.len() } else { to.min(line.len()) };
        line.get(from.min(line.len())..to)
            .unwrap_or_default()
            .iter()
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let names: Vec<String> = spans
        .iter()
        .enumerate()
        .map(|(index, span)| cell(&header, *span, index + 1 == spans.len()))
        .collect();
    lines
        .take_while(|line| !line.is_empty())
        .map(|line| {
            let line: Vec<char> = line.chars().collect();
            names
                .iter()
                .zip(&spans)
                .enumerate()
                .map(|(index, (name, span))| {
                    (name.clone(), cell(&line, *span, index + 1 == spans.len()))
                })
                .collect()
        })
        .collect()
}

/// A duration as status prints it: seconds with two decimals.
fn assert_duration(cell: &str, status: &str) {
    let digits = cell.strip_suffix('s').and_then(|s| s.split_once('.'));
    assert!(
        digits.is_some_and(|(whole, fraction)| {
            !whole.is_empty()
                && whole.chars().all(|c| c.is_ascii_digit())
                && fraction.len() == 2
                && fraction.chars().all(|c| c.is_ascii_digit())
        }),
        "'{cell}' is not a duration:\n{status}"
    );
}
