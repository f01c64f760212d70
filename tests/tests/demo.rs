//! The README's first command, run as a person runs it: `landfall demo` generates data, starts
//! the S3 endpoint and the five service binaries, lands the files, waits for every export, and
//! exits 0 — and a second run on the same database is correct too.

use landfall_tests::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_end_to_end_and_again_on_the_same_database() {
    let env = TestEnv::new().await;
    let work_dir = std::env::temp_dir().join(format!("landfall-demo-test-{}", env.suffix));
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
    let first = env.landfall(&args).await;
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for expected in [
        "Batch 2026-11-24:",
        "Batch 2026-11-25:",
        "from the last upload to the export",
        "best_performing_product",
        "Exports",
    ] {
        assert!(
            stdout.contains(expected),
            "'{expected}' missing from:\n{stdout}"
        );
    }
    // Every report of both batches is in S3, with its manifest.
    let exported = work_dir.join(
        "s3/landfall-demo/analytics_export/ecommerce/agg_shipments/ingestion_date=2026-11-25",
    );
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
    let reports = env
        .count("SELECT count(*) FROM analytics.agg_public_holiday")
        .await;

    let second = env.landfall(&args).await;
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "second demo run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        stdout.contains("already exported from these same files"),
        "{stdout}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM analytics.agg_public_holiday")
            .await,
        reports
    );
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE state = 'staged'")
            .await,
        12
    );
    let _ = std::fs::remove_dir_all(&work_dir);
    env.cleanup().await;
}
