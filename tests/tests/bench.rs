//! `landfall bench stage`, `events`, `batch`, `steady` and `extract` run end to end on their own database,
//! prefix and S3 server and write their figures as JSON. Timings are never pass/fail: this checks the
//! shape and that every figure is a positive number, not that a goal is met.

use std::path::Path;

/// Runs `landfall bench <args> --json FILE` from the repository; its table (stdout) and its
/// JSON, failing the test if it fails.
async fn run_bench(args: &[&str]) -> (String, serde_json::Value) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository folder");
    let json = std::env::temp_dir().join(format!(
        "landfall-bench-test-{:08x}.json",
        rand::random::<u32>()
    ));
    let output = tokio::process::Command::new(landfall_tests::binary_path("landfall"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .current_dir(&repo)
        .env("RUST_LOG", "warn")
        .env("LANDFALL_DATASETS_DIR", repo.join("datasets"))
        .output()
        .await
        .expect("running landfall bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "landfall bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("the JSON file");
    let _ = std::fs::remove_file(&json);
    let report = serde_json::from_str(&text).expect("valid JSON");
    (stdout, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_stage_writes_its_figures_as_json() {
    let (stdout, report) = run_bench(&["stage", "--rows", "20000"]).await;
    for column in ["figure", "value", "baseline", "ratio", "goal", "met?"] {
        assert!(
            stdout.contains(column),
            "the table lacks {column}:\n{stdout}"
        );
    }
    assert_eq!(report["bench"], "stage");
    assert_eq!(report["params"]["rows"], "20000");
    let figures = report["figures"].as_array().expect("figures");
    assert!(!figures.is_empty(), "no figures in {report}");
    for figure in figures {
        assert!(figure["figure"].is_string(), "{figure}");
        for field in ["value", "baseline", "ratio"] {
            let number = figure[field].as_f64().unwrap_or(-1.0);
            assert!(number > 0.0, "{field} is not a positive number in {figure}");
        }
        assert!(figure.get("goal").is_some() && figure.get("met").is_some());
    }
    let main = &figures[0];
    assert_eq!(main["unit"], "rows/s");
    assert!(main["met"].is_boolean(), "{main}");
}

/// `landfall bench events` with a handful of events: the ingester consumes them all and its
/// relay publishes every outbox row; the JSON carries positive figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_events_writes_its_figures_as_json() {
    let (_, report) = run_bench(&["events", "--events", "200"]).await;
    assert_eq!(report["bench"], "events");
    assert_eq!(report["params"]["events"], "200");
    let main = &report["figures"][0];
    assert_eq!(main["unit"], "events/s");
    for field in ["value", "baseline", "ratio"] {
        let number = main[field].as_f64().unwrap_or(-1.0);
        assert!(number > 0.0, "{field} is not a positive number in {main}");
    }
}

/// `landfall bench batch` with a small batch, twice, each in a world of its own: all five
/// services take it to the export; the JSON holds the medians of the two runs and each run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_batch_compares_the_medians_of_its_runs() {
    let (stdout, report) = run_bench(&["batch", "--orders", "2000", "--repeat", "2"]).await;
    assert_eq!(report["bench"], "batch");
    for run in ["Run 1 ", "Run 2 "] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(run) && line.contains("first PUT → exported")),
            "no line for {run}:\n{stdout}"
        );
    }
    assert!(stdout.contains("Models "), "{stdout}");
    let runs = report["params"]["runs"].as_str().expect("the runs");
    assert_eq!(runs.split("; ").count(), 2, "{runs}");
    let main = &report["figures"][0];
    assert_eq!(main["figure"], "first PUT → exported (median of 2)");
    assert_eq!(main["unit"], "s");
    for field in ["value", "baseline", "ratio"] {
        let number = main[field].as_f64().unwrap_or(-1.0);
        assert!(number > 0.0, "{field} is not a positive number in {main}");
    }
    assert!(main["met"].is_boolean(), "{main}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_steady_lands_two_days_of_a_snapshot_history() {
    let kept = format!("landfall_bench_kept_{:08x}", rand::random::<u32>());
    let (stdout, report) = run_bench(&[
        "steady",
        "--orders",
        "2000",
        "--reviews-per-order",
        "3",
        "--change",
        "5",
        "--keep-database",
        &kept,
    ])
    .await;
    // The database stays under the name asked for, with day 2's 2100 staged orders in it.
    let servers = landfall_tests::Servers::default();
    let admin = scratch::Admin::parse(&servers.database_url("postgres")).expect("admin URL");
    let day2_orders: i64 = scratch::Admin::parse(&servers.database_url(&kept))
        .expect("kept database URL")
        .connect()
        .await
        .expect("the kept database")
        .query_one(
            "SELECT count(*) FROM staging.orders WHERE _batch = '2026-11-03'",
            &[],
        )
        .await
        .expect("day 2's staged orders")
        .get(0);
    admin
        .connect()
        .await
        .expect("the maintenance database")
        .batch_execute(&format!("DROP DATABASE {kept} WITH (FORCE)"))
        .await
        .expect("dropping the kept database");
    assert_eq!(day2_orders, 2100);
    assert!(
        stdout.contains(&format!("Kept          database {kept}")),
        "{stdout}"
    );
    assert_eq!(report["bench"], "steady");
    // 2000 orders and their shipments on day 1; 5% more (100) on day 2; 3 reviews per order.
    assert_eq!(
        report["params"]["day1_rows"],
        "orders 2000, shipment_deliveries 2000, reviews 6000"
    );
    let day2 = report["params"]["day2_rows"]
        .as_str()
        .expect("day 2's rows");
    assert!(
        day2.starts_with("orders 2100, shipment_deliveries 2100, reviews "),
        "{day2}"
    );
    for day in ["Day 1 ", "Day 2 "] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(day) && line.contains("last PUT → exported")),
            "no line for {day}:\n{stdout}"
        );
    }
    let figures = report["figures"].as_array().expect("figures");
    let names: Vec<&str> = figures
        .iter()
        .map(|figure| figure["figure"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "day 2: last PUT → exported",
            "day 1: last PUT → exported",
            "stager peak RSS (VmHWM), both days"
        ]
    );
    for figure in &figures[..2] {
        for field in ["value", "baseline", "ratio"] {
            let number = figure[field].as_f64().unwrap_or(-1.0);
            assert!(number > 0.0, "{field} is not a positive number in {figure}");
        }
    }
    assert!(figures[2]["value"].as_f64().unwrap_or(-1.0) > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_extract_compares_the_extractor_with_psql_copy_to_gzip() {
    let (stdout, report) = run_bench(&["extract", "--bytes", "4000000", "--repeat", "1"]).await;
    assert_eq!(report["bench"], "extract");
    // 4 MB of a table at roughly 70 bytes a row: tens of thousands of rows, not a handful.
    let rows: u64 = report["params"]["rows"]
        .as_str()
        .and_then(|rows| rows.parse().ok())
        .expect("rows");
    assert!(rows > 20_000, "{rows} rows");
    assert!(stdout.contains("Run 1 "), "{stdout}");
    let figures = report["figures"].as_array().expect("figures");
    let names: Vec<&str> = figures
        .iter()
        .map(|figure| figure["figure"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["extract rows/s (median)", "extractor peak RSS (VmHWM)"]
    );
    for field in ["value", "baseline", "ratio"] {
        let number = figures[0][field].as_f64().unwrap_or(-1.0);
        assert!(
            number > 0.0,
            "{field} is not a positive number in {}",
            figures[0]
        );
    }
    assert!(figures[1]["value"].as_f64().unwrap_or(-1.0) > 0.0);
    for size in ["extracted_gzip_bytes", "psql_gzip_bytes"] {
        let bytes: u64 = report["params"][size]
            .as_str()
            .and_then(|bytes| bytes.parse().ok())
            .unwrap_or_default();
        assert!(bytes > 1000, "{size}: {bytes}");
    }
}
