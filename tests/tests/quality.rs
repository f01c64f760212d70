//! The quality-checker against real PostgreSQL and RabbitMQ: the rows a batch's checks read
//! are written here with SQL (no transformer involved), then a `transform.completed` is
//! published and the verdict event and `ops.quality_results` are checked.

use std::path::PathBuf;
use std::time::Duration;

use contract::{BatchKey, CheckOutcome, Envelope, Event, TransformCompleted};
use landfall_tests::TestEnv;
use landfall_tests::checks::{STAGER_RULES, bundled_checks_with};
use runtime::{CommonConfig, Env};
use serde_json::json;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(60);
const DAY: &str = "2026-03-01";
const OTHER_DAY: &str = "2026-02-28";

/// Rows of every table the bundled checks read, all of them passing, for `day`. The staging
/// rows are those of files 1 to 5, which [`clean_batch`] then records as the batch's staged
/// files, so they show in the `staging` views the checks read.
const CLEAN_BATCH: &str = "
INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id, order_date,
                                 product_id, unit_price, quantity, total_price)
VALUES (1, 2, {day}, 1, 1, {day} - 2, 10, 5.00, 2, 10.00),
       (1, 3, {day}, 2, 2, {day} - 1, 11, 3.50, 3, 10.50);
INSERT INTO staging_rows.shipment_deliveries (_file_id, _line, _batch, shipment_id, order_id,
                                              shipment_date, delivery_date)
VALUES (2, 2, {day}, 100, 1, {day} - 1, {day}),
       (2, 3, {day}, 101, 2, {day}, NULL);
INSERT INTO staging_rows.reviews (_file_id, _line, _batch, review, product_id)
VALUES (3, 2, {day}, 5, 10), (3, 3, {day}, NULL, 11), (3, 4, {day}, 3, 10);
INSERT INTO staging_rows.customers (_file_id, _line, _batch, customer_id, customer_name, postal_code)
VALUES (4, 2, {day}, 1, 'Ada', '10115'), (4, 3, {day}, 2, 'Bob', '20095');
INSERT INTO staging_rows.products (_file_id, _line, _batch, product_id, product_category, product_name)
VALUES (5, 2, {day}, 10, 'toys', 'Kite'), (5, 3, {day}, 11, 'books', 'Atlas');
INSERT INTO audit.agg_public_holiday (ingestion_date, tt_order_hol_jan, tt_order_hol_feb,
    tt_order_hol_mar, tt_order_hol_apr, tt_order_hol_may, tt_order_hol_jun, tt_order_hol_jul,
    tt_order_hol_aug, tt_order_hol_sep, tt_order_hol_oct, tt_order_hol_nov, tt_order_hol_dec)
VALUES ({day}, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
INSERT INTO audit.agg_shipments (ingestion_date, tt_late_shipments, tt_undelivered_shipments)
VALUES ({day}, 0, 1);
INSERT INTO audit.best_performing_product (ingestion_date, product_name, most_ordered_day,
    is_public_holiday, tt_review_points, pct_one_star_review, pct_two_star_review,
    pct_three_star_review, pct_four_star_review, pct_five_star_review, pct_early_shipments,
    pct_late_shipments)
VALUES ({day}, 'Kite', {day} - 2, false, 8, 0, 0, 50, 0, 50, 100, 0);
-- The 12 months up to the batch's own; both orders fall in the month of the day before it.
INSERT INTO audit.sales_by_month (ingestion_date, month, revenue, order_count)
SELECT {day}, month::date,
       CASE WHEN month = date_trunc('month', {day} - 1) THEN 20.50 ELSE 0 END,
       CASE WHEN month = date_trunc('month', {day} - 1) THEN 2 ELSE 0 END
  FROM generate_series(date_trunc('month', {day}) - interval '11 months',
                       date_trunc('month', {day}), interval '1 month') AS month;
INSERT INTO audit.top_products_by_revenue (ingestion_date, rank, product_id, product_name,
    revenue, order_count)
VALUES ({day}, 1, 11, 'Atlas', 10.50, 1), ({day}, 2, 10, 'Kite', 10.00, 1);
INSERT INTO ops.batches (dataset, ingestion_date, state) VALUES ('ecommerce', {day}, 'transformed');
";

/// `sql` with `{day}` as a date literal, run as one batch of statements.
async fn execute(env: &TestEnv, sql: &str, day: &str) {
    let sql = sql.replace("{day}", &format!("DATE '{day}'"));
    env.db
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

/// Writes [`CLEAN_BATCH`] for `day` and stages its files.
async fn clean_batch(env: &TestEnv, day: &str) {
    execute(env, CLEAN_BATCH, day).await;
    for (file_id, source) in (1..).zip([
        "orders",
        "shipment_deliveries",
        "reviews",
        "customers",
        "products",
    ]) {
        env.stage_file("ecommerce", source, day, file_id).await;
    }
}

/// Migrates the test database as a service would at start, so rows can be written first.
async fn migrate(env: &TestEnv) {
    env.migrated_client().await;
}

/// Declares the exchanges and queues, so an event published before the consumer is up waits
/// in its queue.
async fn declare_topology(env: &TestEnv) {
    let config = env.common_config("quality-checker");
    let connection =
        lapin::Connection::connect(&env.amqp_url, lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    let topology = runtime::broker::Topology {
        prefix: config.amqp_prefix.clone(),
        notify_exchange: config.notify_exchange.clone(),
    };
    runtime::broker::declare_topology(&channel, &config, &topology)
        .await
        .expect("declaring the topology");
    connection.close(200, "done".into()).await.ok();
}

/// Publishes a `transform.completed` for `day`'s ecommerce batch; returns its event id.
async fn publish_transform_completed(env: &TestEnv, day: &str) -> Uuid {
    let envelope = Envelope::new(
        Some(BatchKey {
            dataset: "ecommerce".into(),
            ingestion_date: day.parse().expect("a date"),
        }),
        None,
        TransformCompleted {
            file_ids: vec![],
            models: vec![],
        },
    );
    let properties = runtime::broker::event_properties(
        &envelope.event_id.to_string(),
        &envelope.event_type,
        Default::default(),
    );
    env.publish_raw(
        "events",
        "transform.completed",
        &envelope.encode(),
        properties,
    )
    .await;
    envelope.event_id
}

/// Waits for the quality event caused by `cause` and returns its payload.
async fn verdict(spy: &mut landfall_tests::spy::EventSpy, cause: Uuid) -> Event {
    let caused = |event: &Envelope<Event>| {
        event.causation_id == Some(cause) && event.event_type.starts_with("quality.")
    };
    spy.until("the quality verdict", DEADLINE, |seen| {
        seen.iter().any(caused)
    })
    .await;
    let event = spy.seen.iter().find(|event| caused(event)).expect("seen");
    event.payload.clone()
}

/// One stored result: name, status, severity, failing rows, sample, error, cause.
#[derive(Debug)]
struct Stored {
    check: String,
    status: String,
    severity: String,
    failing_rows: Option<i64>,
    sample: serde_json::Value,
    error: Option<String>,
    cause: Uuid,
}

async fn results(env: &TestEnv, day: &str) -> Vec<Stored> {
    env.db
        .query(
            "SELECT check_name, status, severity, failing_rows, sample, error, transform_event_id
               FROM ops.quality_results
              WHERE dataset = 'ecommerce' AND ingestion_date = $1::text::date
              ORDER BY check_name",
            &[&day],
        )
        .await
        .expect("ops.quality_results")
        .iter()
        .map(|row| Stored {
            check: row.get(0),
            status: row.get(1),
            severity: row.get(2),
            failing_rows: row.get(3),
            sample: row.get(4),
            error: row.get(5),
            cause: row.get(6),
        })
        .collect()
}

fn result<'a>(results: &'a [Stored], check: &str) -> &'a Stored {
    results
        .iter()
        .find(|result| result.check == check)
        .unwrap_or_else(|| panic!("no result for {check} in {results:?}"))
}

async fn batch_state(env: &TestEnv, day: &str) -> (String, bool) {
    let row = env
        .db
        .query_one(
            "SELECT state, quality_at IS NOT NULL FROM ops.batches
              WHERE dataset = 'ecommerce' AND ingestion_date = $1::text::date",
            &[&day],
        )
        .await
        .expect("the batch row");
    (row.get(0), row.get(1))
}

/// A copy of the bundled datasets whose `ecommerce/checks.toml` is `checks_toml`.
fn datasets_with_checks(env: &TestEnv, checks_toml: &str) -> PathBuf {
    let dir = landfall_tests::datasets::bundled_copy(env, "quality");
    std::fs::write(dir.join("ecommerce/checks.toml"), checks_toml).expect("checks.toml");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_batch_passes_every_bundled_check() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    clean_batch(&env, DAY).await;
    // Another batch's rows break several checks; they must not count against this batch.
    execute(
        &env,
        "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id, order_date,
                                          product_id, unit_price, quantity, total_price)
         VALUES (9, 2, {day}, 1, 1, {day}, 10, 1.00, 1, 1.00),
                (9, 3, {day}, 1, 1, {day}, 10, 1.00, 1, 7.00);
         INSERT INTO audit.agg_shipments VALUES ({day}, -1, 0);",
        OTHER_DAY,
    )
    .await;
    env.stage_file("ecommerce", "orders", OTHER_DAY, 9).await;
    // Nor must rows of this batch whose file is not the staged one (an attempt's leftovers).
    execute(
        &env,
        "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id, order_date,
                                          product_id, unit_price, quantity, total_price)
         VALUES (8, 2, {day}, 1, 1, {day}, 10, 1.00, 1, 7.00);",
        DAY,
    )
    .await;
    let checker = env.start_quality_checker(&[]);
    declare_topology(&env).await;
    let mut spy = env.spy().await;
    let cause = publish_transform_completed(&env, DAY).await;

    let Event::QualityPassed(passed) = verdict(&mut spy, cause).await else {
        panic!("expected quality.passed: {:?}", results(&env, DAY).await);
    };
    assert_eq!(passed.warnings, vec![]);
    let stored = results(&env, DAY).await;
    assert_eq!(stored.len(), passed.checks_run as usize);
    assert!(stored.len() >= 18, "every bundled check ran: {stored:?}");
    for result in &stored {
        assert_eq!(result.status, "passed", "{result:?}");
        assert_eq!(result.failing_rows, Some(0), "{result:?}");
        assert_eq!(result.sample, json!([]), "{result:?}");
        assert_eq!(result.cause, cause);
    }
    assert_eq!(
        batch_state(&env, DAY).await,
        ("quality_passed".to_owned(), true)
    );

    checker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_error_check_fails_the_batch_and_keeps_the_failing_rows() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    clean_batch(&env, DAY).await;
    execute(
        &env,
        "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id, order_date,
                                          product_id, unit_price, quantity, total_price)
         VALUES (1, 4, {day}, 2, 2, {day} - 1, 11, 3.50, 3, 10.50);
         INSERT INTO staging_rows.reviews (_file_id, _line, _batch, review, product_id)
         VALUES (3, 5, {day}, 7, 11);",
        DAY,
    )
    .await;
    // Rows the stager would have rejected, caught by the stager's rules written as checks.
    let datasets = bundled_checks_with(&env, STAGER_RULES);
    let checker = env.start_quality_checker(&[(
        "LANDFALL_DATASETS_DIR",
        datasets.to_str().expect("UTF-8 path"),
    )]);
    declare_topology(&env).await;
    let mut spy = env.spy().await;
    let cause = publish_transform_completed(&env, DAY).await;

    let Event::QualityFailed(failed) = verdict(&mut spy, cause).await else {
        panic!("expected quality.failed: {:?}", results(&env, DAY).await);
    };
    let mut named = failed.failed.clone();
    named.sort_by(|a, b| a.check.cmp(&b.check));
    assert_eq!(
        named,
        vec![
            CheckOutcome {
                check: "orders_order_id_unique".into(),
                severity: "error".into(),
                failing_rows: 1,
            },
            CheckOutcome {
                check: "reviews_review_in_range".into(),
                severity: "error".into(),
                failing_rows: 1,
            },
        ]
    );
    let stored = results(&env, DAY).await;
    assert_eq!(stored.len(), failed.checks_run as usize);
    let unique = result(&stored, "orders_order_id_unique");
    assert_eq!(unique.status, "failed");
    assert_eq!(unique.sample, json!([{"order_id": 2, "occurrences": 2}]));
    let review = result(&stored, "reviews_review_in_range");
    assert_eq!(
        review.sample,
        json!([{"_file_id": 3, "_line": 5, "_batch": DAY, "review": 7, "product_id": 11}])
    );
    assert_eq!(
        batch_state(&env, DAY).await,
        ("quality_failed".to_owned(), true)
    );

    checker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_warn_check_passes_the_batch_with_a_warning() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    clean_batch(&env, DAY).await;
    execute(
        &env,
        "UPDATE staging_rows.orders SET total_price = 9.99 WHERE order_id = 2",
        DAY,
    )
    .await;
    let checker = env.start_quality_checker(&[]);
    declare_topology(&env).await;
    let mut spy = env.spy().await;
    let cause = publish_transform_completed(&env, DAY).await;

    let Event::QualityPassed(passed) = verdict(&mut spy, cause).await else {
        panic!("expected quality.passed: {:?}", results(&env, DAY).await);
    };
    assert_eq!(
        passed.warnings,
        vec![CheckOutcome {
            check: "orders_total_price_matches".into(),
            severity: "warn".into(),
            failing_rows: 1,
        }]
    );
    let stored = results(&env, DAY).await;
    let warning = result(&stored, "orders_total_price_matches");
    assert_eq!(
        (warning.status.as_str(), warning.severity.as_str()),
        ("failed", "warn")
    );
    assert_eq!(warning.sample[0]["order_id"], json!(2));
    assert_eq!(warning.sample[0]["total_price"], json!(9.99));
    // The sample keeps the database's values: unit_price 3.50 (numeric(12,2)) as 3.50, not 3.5.
    let sample = env
        .query_text(
            "SELECT sample::text FROM ops.quality_results WHERE check_name = 'orders_total_price_matches'",
        )
        .await;
    assert!(sample[0][0].contains("\"unit_price\": 3.50"), "{sample:?}");
    assert!(sample[0][0].contains("\"order_id\": 2,"), "{sample:?}");
    assert_eq!(batch_state(&env, DAY).await.0, "quality_passed");
    let table = env.landfall(&["status", "--dataset", "ecommerce"]).await;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("0 failed, 1 warned, 0 broken; warned: orders_total_price_matches"),
        "{table}"
    );

    checker.stop().await;
    env.cleanup().await;
}

const BROKEN_CHECKS: &str = r#"
[[checks]]
name = "missing_table"
kind = "custom_sql"
severity = "error"
sql = "SELECT * FROM staging.no_such_table WHERE _batch = ops.batch_date()"

[[checks]]
name = "missing_column"
kind = "expression"
severity = "warn"
table = "staging.orders"
expression = "no_such_column > 0"

[[checks]]
name = "deletes_instead_of_checking"
kind = "custom_sql"
severity = "warn"
sql = "WITH gone AS (DELETE FROM staging.orders RETURNING *) SELECT * FROM gone"

[[checks]]
name = "orders_present"
kind = "row_count"
severity = "error"
table = "staging.orders"
min = 2
max = 2
where = "_batch = ops.batch_date()"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_check_is_stored_as_an_error_and_the_others_still_run() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    clean_batch(&env, DAY).await;
    let datasets = datasets_with_checks(&env, BROKEN_CHECKS);
    let checker = env.start_quality_checker(&[(
        "LANDFALL_DATASETS_DIR",
        datasets.to_str().expect("UTF-8 path"),
    )]);
    declare_topology(&env).await;
    let mut spy = env.spy().await;
    let cause = publish_transform_completed(&env, DAY).await;

    let Event::QualityFailed(failed) = verdict(&mut spy, cause).await else {
        panic!("expected quality.failed: {:?}", results(&env, DAY).await);
    };
    assert_eq!(failed.checks_run, 4);
    // A check that could not run blocks the export whatever its severity: the two broken
    // warnings as much as the broken error check.
    let mut blocking: Vec<(String, String)> = failed
        .failed
        .iter()
        .map(|outcome| (outcome.check.clone(), outcome.severity.clone()))
        .collect();
    blocking.sort();
    assert_eq!(
        blocking,
        [
            ("deletes_instead_of_checking".to_owned(), "warn".to_owned()),
            ("missing_column".to_owned(), "warn".to_owned()),
            ("missing_table".to_owned(), "error".to_owned()),
        ]
    );
    assert!(
        failed
            .failed
            .iter()
            .all(|outcome| outcome.failing_rows == 0)
    );
    assert_eq!(batch_state(&env, DAY).await.0, "quality_failed");
    // `landfall status` names them as broken, apart from failed and warned checks.
    let output = env
        .landfall(&["status", "--dataset", "ecommerce", "--json"])
        .await;
    assert!(output.status.success(), "{output:?}");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let checks = &status["batches"][0]["checks"];
    assert_eq!(checks["passed"], 1, "{checks}");
    assert_eq!(checks["failed"], 0, "{checks}");
    assert_eq!(checks["warned"], 0, "{checks}");
    assert_eq!(checks["broken"], 3, "{checks}");
    assert_eq!(
        checks["broken_checks"],
        json!([
            "deletes_instead_of_checking",
            "missing_column",
            "missing_table"
        ])
    );
    let table = env.landfall(&["status", "--dataset", "ecommerce"]).await;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(
            "1 passed, 0 failed, 0 warned, 3 broken; broken: deletes_instead_of_checking, missing_column, missing_table"
        ),
        "{table}"
    );
    let stored = results(&env, DAY).await;
    let missing_table = result(&stored, "missing_table");
    assert_eq!(missing_table.status, "error");
    assert_eq!(missing_table.failing_rows, None);
    let message = missing_table.error.as_deref().unwrap_or_default();
    assert!(
        message.contains("relation \"staging.no_such_table\" does not exist"),
        "{message}"
    );
    let missing_column = result(&stored, "missing_column");
    assert_eq!(missing_column.status, "error");
    assert!(
        missing_column
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("no_such_column"),
        "{missing_column:?}"
    );
    // A check may not change data: PostgreSQL refuses the DELETE, the rows stay.
    assert_eq!(
        result(&stored, "deletes_instead_of_checking").status,
        "error"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM staging.orders").await,
        2,
        "the orders are still there"
    );
    // Ran after the broken checks, in the same transaction, and passed.
    assert_eq!(result(&stored, "orders_present").status, "passed");

    checker.stop().await;
    std::fs::remove_dir_all(&datasets).ok();
    env.cleanup().await;
}

/// A unique check (which runs with `enable_hashagg = off`, grouping by a sort) followed by
/// checks that fail if that setting is still in force: whichever of the two connections runs
/// them after the unique check, they must see the session's own value again.
const UNIQUE_THEN_OTHERS: &str = r#"
[[checks]]
name = "orders_customer_id_unique"
kind = "unique"
severity = "warn"
table = "staging.orders"
columns = ["customer_id", "order_date"]
where = "_batch = ops.batch_date()"

[[checks]]
name = "hashagg_back_1"
kind = "custom_sql"
severity = "error"
sql = "SELECT current_setting('enable_hashagg') AS enable_hashagg WHERE current_setting('enable_hashagg') <> 'on'"

[[checks]]
name = "hashagg_back_2"
kind = "custom_sql"
severity = "error"
sql = "SELECT current_setting('enable_hashagg') AS enable_hashagg WHERE current_setting('enable_hashagg') <> 'on'"

[[checks]]
name = "hashagg_back_3"
kind = "custom_sql"
severity = "error"
sql = "SELECT current_setting('enable_hashagg') AS enable_hashagg WHERE current_setting('enable_hashagg') <> 'on'"

[[checks]]
name = "hashagg_back_4"
kind = "custom_sql"
severity = "error"
sql = "SELECT current_setting('enable_hashagg') AS enable_hashagg WHERE current_setting('enable_hashagg') <> 'on'"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_check_finds_repeated_keys_and_its_planner_setting_ends_with_it() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    clean_batch(&env, DAY).await;
    // A third order of customer 1 on the same day as its first: one repeated key, two rows.
    execute(
        &env,
        "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id, order_date,
                                          product_id, unit_price, quantity, total_price)
         VALUES (1, 4, {day}, 3, 1, {day} - 2, 10, 1.00, 1, 1.00)",
        DAY,
    )
    .await;
    let datasets = datasets_with_checks(&env, UNIQUE_THEN_OTHERS);
    let checker = env.start_quality_checker(&[(
        "LANDFALL_DATASETS_DIR",
        datasets.to_str().expect("UTF-8 path"),
    )]);
    declare_topology(&env).await;
    let mut spy = env.spy().await;
    let cause = publish_transform_completed(&env, DAY).await;

    let Event::QualityPassed(_) = verdict(&mut spy, cause).await else {
        panic!("expected quality.passed: {:?}", results(&env, DAY).await);
    };
    let stored = results(&env, DAY).await;
    let unique = result(&stored, "orders_customer_id_unique");
    assert_eq!(
        (unique.status.as_str(), unique.failing_rows),
        ("failed", Some(1)),
        "{unique:?}"
    );
    assert_eq!(unique.sample[0]["customer_id"], json!(1));
    assert_eq!(unique.sample[0]["occurrences"], json!(2));
    for check in [
        "hashagg_back_1",
        "hashagg_back_2",
        "hashagg_back_3",
        "hashagg_back_4",
    ] {
        let stored = result(&stored, check);
        assert_eq!(stored.status, "passed", "{stored:?}");
    }

    checker.stop().await;
    std::fs::remove_dir_all(&datasets).ok();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_a_batch_replaces_its_results_and_keeps_other_batches() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    clean_batch(&env, DAY).await;
    clean_batch(&env, OTHER_DAY).await;
    // The duplicate order below is caught by the stager's rule written as a check.
    let datasets = bundled_checks_with(&env, STAGER_RULES);
    let checker = env.start_quality_checker(&[(
        "LANDFALL_DATASETS_DIR",
        datasets.to_str().expect("UTF-8 path"),
    )]);
    declare_topology(&env).await;
    let mut spy = env.spy().await;
    let first = publish_transform_completed(&env, DAY).await;
    assert!(matches!(
        verdict(&mut spy, first).await,
        Event::QualityPassed(_)
    ));
    let other = publish_transform_completed(&env, OTHER_DAY).await;
    assert!(matches!(
        verdict(&mut spy, other).await,
        Event::QualityPassed(_)
    ));
    let checks_run = results(&env, DAY).await.len();

    // The batch is transformed again, now with a duplicate order.
    execute(
        &env,
        "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id, order_date,
                                          product_id, unit_price, quantity, total_price)
         VALUES (1, 4, {day}, 1, 1, {day} - 2, 10, 5.00, 2, 10.00);",
        DAY,
    )
    .await;
    let second = publish_transform_completed(&env, DAY).await;
    assert!(matches!(
        verdict(&mut spy, second).await,
        Event::QualityFailed(_)
    ));

    let stored = results(&env, DAY).await;
    assert_eq!(stored.len(), checks_run, "one result per check: {stored:?}");
    assert!(stored.iter().all(|result| result.cause == second));
    assert_eq!(result(&stored, "orders_order_id_unique").status, "failed");
    assert_eq!(batch_state(&env, DAY).await.0, "quality_failed");
    let kept = results(&env, OTHER_DAY).await;
    assert_eq!(kept.len(), checks_run);
    assert!(
        kept.iter()
            .all(|result| result.cause == other && result.status == "passed")
    );
    assert_eq!(batch_state(&env, OTHER_DAY).await.0, "quality_passed");

    checker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_checks_file_stops_the_service_at_start() {
    let env = TestEnv::new().await;
    let datasets = datasets_with_checks(
        &env,
        "[[checks]]\nname = \"orders_unique\"\nkind = \"unique\"\nseverity = \"error\"\ntable = \"staging.orders\"\ncolumn = \"order_id\"\n",
    );
    let mut vars = env.vars();
    vars.insert(
        "LANDFALL_DATASETS_DIR".into(),
        datasets.display().to_string(),
    );
    let config = CommonConfig::from_env(
        &Env::from_fn(|name| vars.get(name).cloned()),
        "quality-checker",
    )
    .expect("valid configuration");
    let (_trigger, shutdown) = runtime::shutdown::channel();
    let outcome = tokio::time::timeout(DEADLINE, quality_checker::run(config, shutdown))
        .await
        .expect("the service stops at once");
    let error = format!(
        "{:#}",
        outcome.expect_err("a malformed checks.toml is refused")
    );
    assert!(
        error.contains(&datasets.join("ecommerce/checks.toml").display().to_string()),
        "{error}"
    );
    assert!(
        error.contains("check 'orders_unique' (line 1): `column` does not apply to a unique check"),
        "{error}"
    );
    // Refused before touching the database: nothing was migrated.
    let migrated = env
        .try_count("SELECT count(*) FROM ops.schema_migrations")
        .await;
    assert!(migrated.is_err(), "{migrated:?}");

    std::fs::remove_dir_all(&datasets).ok();
    env.cleanup().await;
}
