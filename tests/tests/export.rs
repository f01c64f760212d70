//! The exporter against real PostgreSQL, RabbitMQ and the embedded S3 server: every report of
//! a passed batch lands in S3 as CSV with a manifest that matches it, a re-export overwrites,
//! a large report goes up in parts byte for byte, and staging keeps only the newest batches.
//!
//! The transformer and quality checker are not run: report rows and ledger rows are written
//! with SQL and the `quality.passed` event is published by the test.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use chrono::NaiveDate;
use contract::{BatchKey, Envelope, Event, ExportCompleted, QualityPassed};
use futures::TryStreamExt as _;
use landfall_tests::TestEnv;
use landfall_tests::spy::EventSpy;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const DEADLINE: Duration = Duration::from_secs(60);
const BUCKET: &str = "lake";
const REPORTS: &[&str] = &[
    "agg_public_holiday",
    "agg_shipments",
    "best_performing_product",
    "sales_by_month",
    "top_products_by_revenue",
];

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a YYYY-MM-DD date")
}

fn csv_key(report: &str, day: &str) -> String {
    format!("analytics_export/ecommerce/{report}/ingestion_date={day}/{report}.csv")
}

fn manifest_key(report: &str, day: &str) -> String {
    format!("analytics_export/ecommerce/{report}/ingestion_date={day}/_manifest.json")
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Publishes a `quality.passed` for the batch, as the quality checker would.
async fn publish_quality_passed(env: &TestEnv, day: &str) -> uuid::Uuid {
    let envelope = Envelope::new(
        Some(BatchKey {
            dataset: "ecommerce".into(),
            ingestion_date: date(day),
        }),
        None,
        QualityPassed {
            checks_run: 1,
            warnings: vec![],
        },
    );
    env.publish_raw(
        "events",
        "quality.passed",
        &envelope.encode(),
        lapin::BasicProperties::default(),
    )
    .await;
    envelope.event_id
}

/// Waits for the `count`-th `export.completed` and returns it.
async fn export_completed(spy: &mut EventSpy, count: usize) -> (Envelope<Event>, ExportCompleted) {
    spy.until(&format!("{count} export.completed"), DEADLINE, |seen| {
        seen.iter()
            .filter(|event| event.event_type == "export.completed")
            .count()
            >= count
    })
    .await;
    let envelope = spy.of_type("export.completed")[count - 1].clone();
    match &envelope.payload {
        Event::ExportCompleted(completed) => {
            let completed = completed.clone();
            (envelope, completed)
        }
        other => panic!("export.completed carries {other:?}"),
    }
}

/// The object's bytes and content type.
async fn get_object(env: &TestEnv, key: &str) -> (Vec<u8>, String) {
    let object = env
        .s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|error| panic!("getting {key}: {error:?}"));
    let content_type = object.content_type().unwrap_or_default().to_owned();
    let body = object.body.collect().await.expect("object body");
    (body.into_bytes().to_vec(), content_type)
}

async fn manifest(env: &TestEnv, report: &str, day: &str) -> Value {
    let (bytes, content_type) = get_object(env, &manifest_key(report, day)).await;
    assert_eq!(content_type, "application/json");
    serde_json::from_slice(&bytes).expect("the manifest is JSON")
}

/// Records one staged file per source for the batch; returns each as the manifest lists it.
async fn seed_ledger(env: &TestEnv, day: &str, sources: &[&str]) -> Vec<Value> {
    let mut files = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        let key = TestEnv::landing_key(day, &format!("{source}.csv"));
        let etag = format!("etag-{day}-{source}");
        let rows_loaded = 10 * (index as i64 + 1);
        let row = env
            .db
            .query_one(
                "INSERT INTO ops.files (bucket, key, version, etag, size_bytes, dataset, source,
                                        ingestion_date, state, rows_loaded, rows_rejected, discovered_by)
                 VALUES ($1, $2, $3, $3, 100, 'ecommerce', $4, $5::text::date, 'staged', $6, 0, 'notification')
                 RETURNING file_id",
                &[&BUCKET, &key, &etag, source, &day, &rows_loaded],
            )
            .await
            .expect("inserting a ledger row");
        let file_id: i64 = row.get(0);
        env.db
            .execute(
                "INSERT INTO ops.staged_sources (dataset, ingestion_date, source, file_id, rows_loaded)
                 VALUES ('ecommerce', $1::text::date, $2, $3, $4)",
                &[&day, source, &file_id, &rows_loaded],
            )
            .await
            .expect("inserting a staged source");
        files.push(serde_json::json!({
            "source": source,
            "file_id": file_id,
            "bucket": BUCKET,
            "key": key,
            "version": etag,
            "etag": etag,
            "rows_loaded": rows_loaded,
        }));
    }
    files.sort_by_key(|file| file["source"].as_str().unwrap_or_default().to_owned());
    files
}

async fn seed_batch(env: &TestEnv, day: &str, state: &str) {
    env.db
        .execute(
            "INSERT INTO ops.batches (dataset, ingestion_date, state) VALUES ('ecommerce', $1::text::date, $2)",
            &[&day, &state],
        )
        .await
        .expect("inserting a batch");
}

/// One row (or row set) per report for `day`, with values CSV must quote, plus rows of
/// another day that must not be exported. Returns the CSV text each report should have.
async fn seed_reports(env: &TestEnv, day: &str) -> Vec<(&'static str, String)> {
    env.db
        .batch_execute(&format!(
            "INSERT INTO analytics.agg_public_holiday VALUES
                (DATE '{day}', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12),
                (DATE '{day}' - 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
             INSERT INTO analytics.agg_shipments VALUES (DATE '{day}', 3, 4), (DATE '{day}' - 1, 9, 9);
             INSERT INTO analytics.best_performing_product VALUES
                (DATE '{day}', 'Widget, \"Deluxe\"', DATE '2026-02-14', true, 42,
                 10.00, 20.00, 30.00, 25.50, 14.50, 60.00, NULL);
             INSERT INTO analytics.sales_by_month VALUES
                (DATE '{day}', DATE '2026-02-01', 200.50, 4),
                (DATE '{day}', DATE '2026-01-01', 100.00, 2),
                (DATE '{day}', DATE '2026-03-01', 50.25, 1),
                (DATE '{day}' - 1, DATE '2026-01-01', 1.00, 1);
             INSERT INTO analytics.top_products_by_revenue VALUES
                (DATE '{day}', 2, 20, E'Two\\nLines', 150.00, 3),
                (DATE '{day}', 1, 10, 'Gadget', 300.00, 5),
                (DATE '{day}', 3, 30, NULL, 10.00, 1);"
        ))
        .await
        .expect("inserting report rows");
    vec![
        (
            "agg_public_holiday",
            format!(
                "ingestion_date,tt_order_hol_jan,tt_order_hol_feb,tt_order_hol_mar,tt_order_hol_apr,\
                 tt_order_hol_may,tt_order_hol_jun,tt_order_hol_jul,tt_order_hol_aug,tt_order_hol_sep,\
                 tt_order_hol_oct,tt_order_hol_nov,tt_order_hol_dec\n\
                 {day},1,2,3,4,5,6,7,8,9,10,11,12\n"
            ),
        ),
        (
            "agg_shipments",
            format!("ingestion_date,tt_late_shipments,tt_undelivered_shipments\n{day},3,4\n"),
        ),
        (
            "best_performing_product",
            format!(
                "ingestion_date,product_name,most_ordered_day,is_public_holiday,tt_review_points,\
                 pct_one_star_review,pct_two_star_review,pct_three_star_review,pct_four_star_review,\
                 pct_five_star_review,pct_early_shipments,pct_late_shipments\n\
                 {day},\"Widget, \"\"Deluxe\"\"\",2026-02-14,t,42,10.00,20.00,30.00,25.50,14.50,60.00,\n"
            ),
        ),
        (
            "sales_by_month",
            format!(
                "ingestion_date,month,revenue,order_count\n\
                 {day},2026-01-01,100.00,2\n\
                 {day},2026-02-01,200.50,4\n\
                 {day},2026-03-01,50.25,1\n"
            ),
        ),
        (
            "top_products_by_revenue",
            format!(
                "ingestion_date,rank,product_id,product_name,revenue,order_count\n\
                 {day},1,10,Gadget,300.00,5\n\
                 {day},2,20,\"Two\nLines\",150.00,3\n\
                 {day},3,30,,10.00,1\n"
            ),
        ),
    ]
}

/// Checks a report's CSV, its manifest and its `ops.exports` row against what was expected;
/// returns the object's SHA-256.
async fn check_export(
    env: &TestEnv,
    day: &str,
    report: &str,
    expected_csv: &str,
    expected_rows: u64,
    source_files: &[Value],
) -> String {
    let key = csv_key(report, day);
    let (csv, content_type) = get_object(env, &key).await;
    assert_eq!(content_type, "text/csv", "{key}");
    assert_eq!(String::from_utf8_lossy(&csv), expected_csv, "{key}");
    let sha256 = hex_sha256(&csv);
    let manifest = manifest(env, report, day).await;
    assert_eq!(manifest["report"], report);
    assert_eq!(manifest["dataset"], "ecommerce");
    assert_eq!(manifest["ingestion_date"], day);
    assert_eq!(manifest["bucket"], BUCKET);
    assert_eq!(manifest["key"], key.as_str());
    assert_eq!(manifest["rows"], expected_rows, "{report} rows");
    assert_eq!(manifest["bytes"], csv.len() as u64, "{report} bytes");
    assert_eq!(manifest["sha256"], sha256.as_str(), "{report} sha256");
    assert!(manifest["exported_at"].is_string());
    assert_eq!(
        manifest["source_files"],
        Value::Array(source_files.to_vec())
    );
    let row = env
        .db
        .query_one(
            "SELECT key, manifest_key, rows, bytes, sha256 FROM ops.exports
              WHERE dataset = 'ecommerce' AND ingestion_date = $1::text::date AND report = $2",
            &[&day, &report],
        )
        .await
        .expect("one ops.exports row per report");
    assert_eq!(row.get::<_, String>(0), key);
    assert_eq!(row.get::<_, String>(1), manifest_key(report, day));
    assert_eq!(row.get::<_, i64>(2) as u64, expected_rows);
    assert_eq!(row.get::<_, i64>(3) as usize, csv.len());
    assert_eq!(row.get::<_, String>(4), sha256);
    sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_is_exported_with_its_manifest_and_a_re_export_overwrites() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let exporter = env.start_exporter(&[]);
    env.wait_for_exporter_consuming(DEADLINE).await;
    let day = "2026-03-01";
    let source_files = seed_ledger(&env, day, &["orders", "reviews", "shipment_deliveries"]).await;
    seed_batch(&env, day, "quality_passed").await;
    let expected = seed_reports(&env, day).await;

    let event_id = publish_quality_passed(&env, day).await;
    let (envelope, completed) = export_completed(&mut spy, 1).await;
    assert_eq!(envelope.causation_id, Some(event_id));
    assert_eq!(
        envelope.batch.as_ref().map(|b| b.ingestion_date),
        Some(date(day))
    );
    let reported: Vec<&str> = completed
        .objects
        .iter()
        .map(|o| o.report.as_str())
        .collect();
    assert_eq!(reported, REPORTS);

    let expected_rows = [1, 1, 1, 3, 3];
    let mut first_shas = Vec::new();
    for ((report, csv), rows) in expected.iter().zip(expected_rows) {
        let sha256 = check_export(&env, day, report, csv, rows, &source_files).await;
        let object = completed
            .objects
            .iter()
            .find(|object| object.report == *report)
            .expect("one object per report");
        assert_eq!(object.bucket, BUCKET);
        assert_eq!(object.key, csv_key(report, day));
        assert_eq!((object.rows, object.bytes), (rows, csv.len() as u64));
        assert_eq!(object.sha256, sha256);
        first_shas.push(sha256);
    }
    let batch = env
        .db
        .query_one(
            "SELECT state, exported_at IS NOT NULL FROM ops.batches WHERE ingestion_date = $1::text::date",
            &[&day],
        )
        .await
        .unwrap();
    assert_eq!(batch.get::<_, String>(0), "exported");
    assert!(batch.get::<_, bool>(1));

    // The report is rebuilt with a different number; the batch passes again.
    env.db
        .execute(
            "UPDATE analytics.agg_shipments SET tt_late_shipments = 17 WHERE ingestion_date = $1::text::date",
            &[&day],
        )
        .await
        .unwrap();
    publish_quality_passed(&env, day).await;
    let (_, completed) = export_completed(&mut spy, 2).await;
    assert_eq!(completed.objects.len(), REPORTS.len());
    let new_csv =
        format!("ingestion_date,tt_late_shipments,tt_undelivered_shipments\n{day},17,4\n");
    let new_sha = check_export(&env, day, "agg_shipments", &new_csv, 1, &source_files).await;
    assert_ne!(new_sha, first_shas[1]);
    // The other reports are written again, unchanged.
    let (csv, _) = get_object(&env, &csv_key("sales_by_month", day)).await;
    assert_eq!(hex_sha256(&csv), first_shas[3]);
    assert_eq!(
        env.count("SELECT count(*) FROM ops.exports WHERE report = 'agg_shipments'")
            .await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM ops.exports").await, 5);
    // Same keys, nothing beside them: five CSVs and five manifests.
    let listed = env
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("analytics_export/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 10);

    exporter.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_larger_than_a_part_goes_up_in_parts_byte_for_byte() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let part_size: usize = 5 * 1024 * 1024;
    let exporter = env.start_exporter(&[("LANDFALL_EXPORT_PART_SIZE_BYTES", "5242880")]);
    env.wait_for_exporter_consuming(DEADLINE).await;
    let day = "2026-03-01";
    seed_ledger(&env, day, &["orders"]).await;
    // ~12 MiB: 60 000 products whose names hold quotes, commas and line breaks.
    let products: i32 = 60_000;
    env.db
        .execute(
            "INSERT INTO analytics.top_products_by_revenue
             SELECT $1::text::date, i, i, 'Product ' || i || E' \"quoted\", with a comma\\nand a second line '
                    || repeat(chr(97 + i % 26), 120),
                    i * 1.25, i % 7
               FROM generate_series(1, $2::int) AS i",
            &[&day, &products],
        )
        .await
        .expect("generating a large report");
    // What PostgreSQL itself writes for the same query: the object must be exactly this.
    let expected: Vec<u8> = env
        .db
        .copy_out(&format!(
            "COPY (SELECT * FROM analytics.top_products_by_revenue WHERE ingestion_date = DATE '{day}'
                   ORDER BY rank) TO STDOUT WITH (FORMAT csv, HEADER)"
        ))
        .await
        .unwrap()
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .unwrap();
    assert!(expected.len() > 2 * part_size, "{} bytes", expected.len());

    publish_quality_passed(&env, day).await;
    let (_, completed) = export_completed(&mut spy, 1).await;
    let key = csv_key("top_products_by_revenue", day);
    let (csv, _) = get_object(&env, &key).await;
    assert_eq!(csv.len(), expected.len());
    assert!(csv == expected, "the object differs from COPY's output");
    let object = completed
        .objects
        .iter()
        .find(|object| object.report == "top_products_by_revenue")
        .unwrap();
    assert_eq!(object.rows, products as u64);
    assert_eq!(object.bytes, expected.len() as u64);
    assert_eq!(object.sha256, hex_sha256(&expected));
    let manifest = manifest(&env, "top_products_by_revenue", day).await;
    assert_eq!(manifest["rows"], products as u64);
    assert_eq!(manifest["sha256"], hex_sha256(&expected).as_str());
    // A multipart object's ETag ends in -<parts>; S3 requires every part but the last to be
    // at least 5 MiB, which the server checks on completion.
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    let parts = expected.len().div_ceil(part_size);
    let etag = head.e_tag().unwrap_or_default().trim_matches('"');
    assert!(
        etag.ends_with(&format!("-{parts}")),
        "ETag {etag}, expected {parts} parts"
    );
    // A small report of the same batch went up in one PUT.
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(csv_key("agg_shipments", day))
        .send()
        .await
        .unwrap();
    assert!(!head.e_tag().unwrap_or_default().contains('-'));

    exporter.stop().await;
    env.cleanup().await;
}

/// Rows of staging table `table` per batch date: (date, rows). Read from `staging_rows`,
/// where they are (and retention deletes), staged files or not.
async fn staged_batches(env: &TestEnv, table: &str) -> Vec<(String, i64)> {
    env.db
        .query(
            &format!(
                "SELECT _batch::text, count(*) FROM staging_rows.{table} GROUP BY 1 ORDER BY 1"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_staging_rows_of_the_newest_batches_only() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let exporter = env.start_exporter(&[("LANDFALL_STAGING_RETENTION_BATCHES", "2")]);
    env.wait_for_exporter_consuming(DEADLINE).await;
    let staged_days = ["2026-02-26", "2026-02-27", "2026-02-28", "2026-03-01"];
    for day in staged_days {
        seed_ledger(&env, day, &["orders", "reviews", "shipment_deliveries"]).await;
    }
    // Customers (an optional snapshot source) came on the first two days only: the kept
    // batches read the snapshot of 02-26, which stays; the one of 02-25 goes.
    seed_ledger(&env, "2026-02-26", &["customers"]).await;
    // An older batch known only to ops.batches still counts as a batch. Its rows belong to no
    // staged file (file id 0), so only the tables hold them, not the views.
    seed_batch(&env, "2026-02-25", "exported").await;
    seed_batch(&env, "2026-03-01", "quality_passed").await;
    // Each day's rows are those of its staged file of the source.
    let file = |source: &str, day: &str| {
        format!(
            "coalesce((SELECT file_id FROM ops.staged_sources
                        WHERE dataset = 'ecommerce' AND source = '{source}'
                          AND ingestion_date = DATE '{day}'), 0)"
        )
    };
    for day in std::iter::once("2026-02-25").chain(staged_days) {
        let (orders, reviews, shipments) = (
            file("orders", day),
            file("reviews", day),
            file("shipment_deliveries", day),
        );
        env.db
            .batch_execute(&format!(
                "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id,
                                                  order_date, product_id, unit_price, quantity, total_price)
                 SELECT {orders}, i + 1, DATE '{day}', i, 1, DATE '{day}', 1, 2.50, 2, 5.00
                   FROM generate_series(1, 3) AS i;
                 INSERT INTO staging_rows.reviews (_file_id, _line, _batch, review, product_id)
                 VALUES ({reviews}, 2, DATE '{day}', 5, 1), ({reviews}, 3, DATE '{day}', NULL, 2);
                 INSERT INTO staging_rows.shipment_deliveries (_file_id, _line, _batch, shipment_id, order_id)
                 VALUES ({shipments}, 2, DATE '{day}', 1, 1);"
            ))
            .await
            .expect("inserting staging rows");
    }
    for day in ["2026-02-25", "2026-02-26"] {
        let customers = file("customers", day);
        env.db
            .batch_execute(&format!(
                "INSERT INTO staging_rows.customers (_file_id, _line, _batch, customer_id, customer_name, postal_code)
                 VALUES ({customers}, 2, DATE '{day}', 1, 'Ada', '10115'),
                        ({customers}, 3, DATE '{day}', 2, 'Bo', '10117');"
            ))
            .await
            .expect("inserting customer snapshots");
    }
    // What the staged batches' models would read: every staged day, 02-25 not.
    assert_eq!(
        env.count("SELECT count(DISTINCT _batch) FROM staging.orders")
            .await,
        4
    );

    publish_quality_passed(&env, "2026-03-01").await;
    let (_, completed) = export_completed(&mut spy, 1).await;

    let kept = |rows: i64| {
        vec![
            ("2026-02-28".to_owned(), rows),
            ("2026-03-01".to_owned(), rows),
        ]
    };
    assert_eq!(staged_batches(&env, "orders").await, kept(3));
    assert_eq!(staged_batches(&env, "reviews").await, kept(2));
    assert_eq!(staged_batches(&env, "shipment_deliveries").await, kept(1));
    assert_eq!(
        staged_batches(&env, "customers").await,
        vec![("2026-02-26".to_owned(), 2)]
    );
    // The ledger of what landed stays.
    assert_eq!(
        env.count("SELECT count(DISTINCT ingestion_date) FROM ops.staged_sources")
            .await,
        4
    );
    // A batch without report rows exports header-only files.
    let empty = completed
        .objects
        .iter()
        .find(|object| object.report == "agg_shipments")
        .unwrap();
    assert_eq!(empty.rows, 0);
    let (csv, _) = get_object(&env, &csv_key("agg_shipments", "2026-03-01")).await;
    assert_eq!(
        String::from_utf8_lossy(&csv),
        "ingestion_date,tt_late_shipments,tt_undelivered_shipments\n"
    );

    exporter.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_overwrites_objects_written_before_it() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let exporter = env.start_exporter(&[("LANDFALL_STAGING_RETENTION_BATCHES", "0")]);
    env.wait_for_exporter_consuming(DEADLINE).await;
    let day = "2026-03-02";
    // A stale object from an earlier run (e.g. one whose transaction later rolled back).
    env.s3
        .put_object()
        .bucket(BUCKET)
        .key(csv_key("agg_shipments", day))
        .body(ByteStream::from_static(b"stale\n"))
        .send()
        .await
        .unwrap();
    env.db
        .batch_execute(&format!(
            "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id, order_date,
                                              product_id, unit_price, quantity, total_price)
             VALUES (1, 2, DATE '2020-01-01', 1, 1, DATE '2020-01-01', 1, 1, 1, 1);
             INSERT INTO analytics.agg_shipments VALUES (DATE '{day}', 0, 1);"
        ))
        .await
        .unwrap();
    seed_batch(&env, "2026-03-01", "exported").await;
    seed_batch(&env, day, "quality_passed").await;

    publish_quality_passed(&env, day).await;
    export_completed(&mut spy, 1).await;
    let (csv, _) = get_object(&env, &csv_key("agg_shipments", day)).await;
    assert_eq!(
        String::from_utf8_lossy(&csv),
        format!("ingestion_date,tt_late_shipments,tt_undelivered_shipments\n{day},0,1\n")
    );
    let manifest = manifest(&env, "agg_shipments", day).await;
    assert_eq!(manifest["source_files"], Value::Array(vec![]));
    // Retention 0 keeps every batch's staging rows.
    assert_eq!(
        env.count("SELECT count(*) FROM staging_rows.orders").await,
        1
    );

    exporter.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_failing_mid_stream_aborts_its_upload_and_is_dead_lettered() {
    let env = TestEnv::new().await;
    // Datasets whose ecommerce export is only a table made to fail while COPY writes it.
    let datasets = landfall_tests::datasets::bundled_copy(&env, "export-datasets");
    std::fs::write(
        datasets.join("ecommerce").join("exports.toml"),
        "[[exports]]\nreport = \"exploding\"\ntable = \"analytics.exploding\"\norder_by = \"n\"\n",
    )
    .unwrap();
    let datasets_dir = datasets.display().to_string();
    let exporter = env.start_exporter(&[
        ("LANDFALL_DATASETS_DIR", &datasets_dir),
        ("LANDFALL_EXPORT_PART_SIZE_BYTES", "5242880"),
    ]);
    env.wait_for_exporter_consuming(DEADLINE).await;
    let day = "2026-03-01";
    seed_batch(&env, day, "quality_passed").await;
    // ~12 MiB of rows; the last holds an enum value whose label is then removed from the
    // catalog, so PostgreSQL fails only when COPY writes that row: after two parts went up.
    env.db
        .batch_execute(&format!(
            "CREATE TYPE analytics.mood AS ENUM ('fine', 'doomed');
             CREATE TABLE analytics.exploding (
                 ingestion_date date NOT NULL, n integer NOT NULL, filler text NOT NULL,
                 mood analytics.mood NOT NULL);
             INSERT INTO analytics.exploding
             SELECT DATE '{day}', i, repeat('x', 200),
                    (CASE WHEN i = 60000 THEN 'doomed' ELSE 'fine' END)::analytics.mood
               FROM generate_series(1, 60000) AS i;
             DELETE FROM pg_enum WHERE enumtypid = 'analytics.mood'::regtype AND enumlabel = 'doomed';"
        ))
        .await
        .expect("creating the failing report");

    publish_quality_passed(&env, day).await;
    let message = landfall_tests::wait_until(
        "the quality.passed in the exporter's dead-letter queue",
        DEADLINE,
        || async { env.take_message("exporter.dlq").await },
    )
    .await;
    let properties = &message.delivery.properties;
    assert_eq!(
        runtime::broker::header_text(properties, runtime::broker::ERROR_KIND_HEADER).as_deref(),
        Some("permanent")
    );
    let reason = runtime::broker::header_text(properties, runtime::broker::REASON_HEADER)
        .unwrap_or_default();
    assert!(
        reason.contains("streaming report exploding from PostgreSQL")
            && reason.contains("invalid internal value for enum"),
        "{reason}"
    );
    // The multipart upload was aborted: no parts left behind, no object written.
    assert_eq!(env.open_multipart_upload_files(), Vec::<String>::new());
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(csv_key("exploding", day))
        .send()
        .await;
    assert!(head.is_err(), "the failed report's object exists");
    // Nothing was recorded: the transaction rolled back.
    assert_eq!(env.count("SELECT count(*) FROM ops.exports").await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM ops.batches WHERE state = 'quality_passed'")
            .await,
        1
    );

    exporter.stop().await;
    env.cleanup().await;
    std::fs::remove_dir_all(&datasets).ok();
}
