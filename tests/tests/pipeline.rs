//! The ecommerce models end to end on a small fixture whose report values were worked out by
//! hand (the reasoning is in the comments), over two ingestion dates, then a re-run and a late
//! correction. Files land in S3; the real ingester, stager and transformer do the rest.

use std::time::Duration;

use landfall_tests::{TestEnv, rows, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const DAY1: &str = "2026-03-02"; // a Monday
const DAY2: &str = "2026-03-03";

// The calendar: 2026-03-01 is a Sunday, so it is not a *public* holiday (weekdays only);
// 2025-01-01 is a Wednesday holiday that lies outside the year before either batch.
const HOLIDAYS: &str = "holiday_date,name
2025-01-01,New Year 2025
2025-12-25,Christmas
2026-01-01,New Year
2026-02-16,Carnival Monday
2026-03-01,Sunday Fair
";

const PRODUCTS_DAY1: &str = "product_id,product_category,product_name
1,books,Atlas
2,toys,Kite
3,audio,Radio
";
// Day 2 renames product 2: a new dimension version.
const PRODUCTS_DAY2: &str = "product_id,product_category,product_name
1,books,Atlas
2,toys,Kite Pro
3,audio,Radio
";
// Unchanged on day 2: no new customer rows.
const CUSTOMERS: &str = "customer_id,customer_name,postal_code
10,Ada,10115
11,Bob,20095
";

// Order 5's customer 12 and order 7's product 9 are unknown: they get the unknown member (-1).
const ORDERS_DAY1: &str =
    "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price
1,10,2026-01-01,1,10.00,1,10.00
2,10,2026-02-16,2,5.00,2,10.00
3,11,2026-02-16,1,10.00,3,30.00
4,11,2026-03-01,1,10.00,1,10.00
5,12,2025-12-25,3,20.00,1,20.00
6,10,2025-01-01,2,5.00,1,5.00
7,11,2026-02-20,9,1.00,1,1.00
";
// Snapshot mode: day 2 carries every order, plus a new one.
const ORDERS_DAY2_EXTRA: &str = "8,11,2026-03-03,2,5.00,1,5.00\n";

const SHIPMENTS_DAY1: &str = "shipment_id,order_id,shipment_date,delivery_date
100,1,2026-01-02,2026-01-05
101,2,2026-02-22,
102,3,2026-02-21,
103,4,,
104,5,,
105,6,2025-01-10,
106,7,,2026-02-25
";
const SHIPMENTS_DAY2_EXTRA: &str = "107,8,,\n";

const REVIEWS_DAY1: &str = "review,product_id
5,1
4,1
,1
5,2
5,2
1,2
3,3
";
const REVIEWS_DAY2_EXTRA: &str = "4,3\n4,3\n4,3\n";

async fn query_text(env: &TestEnv, sql: &str) -> Vec<Vec<String>> {
    env.query_text(sql).await
}

async fn put(env: &TestEnv, date: &str, source: &str, body: String) {
    env.put(&TestEnv::landing_key(date, &format!("{source}.csv")), body)
        .await;
}

/// Waits until `count` files of `date` are staged.
async fn wait_staged(env: &TestEnv, date: &str, count: i64) {
    let sql = format!(
        "SELECT count(*) FROM ops.files WHERE ingestion_date = '{date}' AND state = 'staged'"
    );
    wait_until(
        &format!("{count} files of {date} staged"),
        DEADLINE,
        || async { Ok((env.try_count(&sql).await? >= count).then_some(())) },
    )
    .await;
}

/// Waits for the number of transform runs of `date` to reach `runs`.
async fn wait_transforms(env: &TestEnv, date: &str, runs: i64) {
    let sql = format!("SELECT count(*) FROM ops.transform_runs WHERE ingestion_date = '{date}'");
    wait_until(
        &format!("{runs} transform run(s) of {date}"),
        DEADLINE,
        || async { Ok((env.try_count(&sql).await? >= runs).then_some(())) },
    )
    .await;
}

async fn report(env: &TestEnv, table: &str, date: &str) -> Vec<Vec<String>> {
    let order = if table.contains("sales_by_month") {
        "month"
    } else if table.contains("top_products") {
        "rank"
    } else {
        "ingestion_date"
    };
    query_text(
        env,
        &format!("SELECT t::text FROM {table} t WHERE ingestion_date = '{date}' ORDER BY {order}"),
    )
    .await
}

/// Fails with only the rows that differ.
fn assert_same(before: &[Vec<String>], after: &[Vec<String>], what: &str) {
    let gone: Vec<&Vec<String>> = before.iter().filter(|row| !after.contains(row)).collect();
    let new: Vec<&Vec<String>> = after.iter().filter(|row| !before.contains(row)).collect();
    assert!(
        gone.is_empty() && new.is_empty() && before.len() == after.len(),
        "{what} changed the tables: gone {gone:?}, new {new:?}"
    );
}

/// Every warehouse and analytics table as text, to compare whole states.
async fn dump(env: &TestEnv) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for table in [
        "warehouse.dim_date",
        "warehouse.dim_customer",
        "warehouse.dim_product",
        "warehouse.fact_orders",
        "warehouse.fact_shipments",
        "warehouse.fact_reviews",
        "analytics.agg_public_holiday",
        "analytics.agg_shipments",
        "analytics.best_performing_product",
        "analytics.sales_by_month",
        "analytics.top_products_by_revenue",
    ] {
        let mut rows = query_text(env, &format!("SELECT '{table}', t::text FROM {table} t")).await;
        rows.sort();
        all.extend(rows);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_days_of_files_give_the_hand_computed_reports() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let mut spy = env.spy().await;
    // One consumer taking one message at a time, so redelivered events are handled in order.
    let transformer =
        env.start_transformer(&[("LANDFALL_CONCURRENCY", "1"), ("LANDFALL_PREFETCH", "1")]);
    let checker = env.start_quality_checker(&[]);
    let exporter = env.start_exporter(&[]);

    // Day 1: the snapshots first, so the batch is transformed once, with them.
    put(&env, DAY1, "holidays", HOLIDAYS.into()).await;
    put(&env, DAY1, "products", PRODUCTS_DAY1.into()).await;
    put(&env, DAY1, "customers", CUSTOMERS.into()).await;
    wait_staged(&env, DAY1, 3).await;
    put(&env, DAY1, "orders", ORDERS_DAY1.into()).await;
    put(&env, DAY1, "shipment_deliveries", SHIPMENTS_DAY1.into()).await;
    put(&env, DAY1, "reviews", REVIEWS_DAY1.into()).await;
    wait_transforms(&env, DAY1, 1).await;
    wait_exported(&env, DAY1).await;
    // The reports went out: the checks passed and the export wrote the CSV.
    assert_eq!(
        env.get_text(&export_key("agg_shipments", DAY1)).await,
        "ingestion_date,tt_late_shipments,tt_undelivered_shipments\n2026-03-02,2,1\n"
    );

    // Holiday orders with D − 1 year < order_date ≤ D = 2026-03-02: order 1 (Jan 1), orders 2
    // and 3 (Feb 16), order 5 (Dec 25 2025). Order 4 is on a Sunday "holiday"; order 6 is on
    // 2025-01-01, more than a year before D.
    let holidays_day1 = "(2026-03-02,1,2,0,0,0,0,0,0,0,0,0,1)";
    assert_eq!(
        report(&env, "analytics.agg_public_holiday", DAY1).await,
        rows(&[&[holidays_day1]])
    );
    // Late: shipment 101 (Feb 22 ≥ Feb 16 + 6, not delivered) and 105 (9 days after order 6).
    // Shipment 102 left 5 days after its order. Undelivered: 104 (order Dec 25 + 15 days ≤ D);
    // 103's order (Mar 1) is not 15 days old yet; 106 was delivered.
    assert_eq!(
        report(&env, "analytics.agg_shipments", DAY1).await,
        rows(&[&["(2026-03-02,2,1)"]])
    );
    // Reviews (non-empty): product 1 two (9 points), product 2 three (11), product 3 one (3) →
    // product 2, "Kite". Its orders: 2 (Feb 16, qty 2) and 6 (2025-01-01, qty 1): one order each
    // day, the larger quantity wins → Feb 16, a Monday holiday. Stars: 1 of 3 one-star = 33.33,
    // 2 of 3 five-star = 66.67. Its shipments 101 and 105 are both late → 100 late, 0 early.
    assert_eq!(
        report(&env, "analytics.best_performing_product", DAY1).await,
        rows(&[&["(2026-03-02,Kite,2026-02-16,t,11,33.33,0.00,0.00,0.00,66.67,0.00,100.00)"]])
    );
    // The 12 months Apr 2025 … Mar 2026: Dec 2025 order 5 (20.00); Jan order 1 (10.00); Feb
    // orders 2, 3, 7 (10 + 30 + 1); Mar order 4 (10.00). Order 6 (Jan 2025) is outside.
    let sales_day1 = query_text(&env, &format!("SELECT month::text, revenue::text, order_count::text FROM analytics.sales_by_month WHERE ingestion_date = '{DAY1}' AND order_count > 0 ORDER BY month")).await;
    assert_eq!(
        sales_day1,
        rows(&[
            &["2025-12-01", "20.00", "1"],
            &["2026-01-01", "10.00", "1"],
            &["2026-02-01", "41.00", "3"],
            &["2026-03-01", "10.00", "1"]
        ])
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM analytics.sales_by_month WHERE ingestion_date = '{DAY1}'"
        ))
        .await,
        12
    );
    // Revenue: product 1 orders 1, 3, 4 = 50.00; product 3 order 5 = 20.00; product 2 orders 2, 6
    // = 15.00; product 9 (unknown, no name) order 7 = 1.00.
    assert_eq!(
        query_text(&env, &format!("SELECT rank::text, product_id::text, coalesce(product_name, 'NULL'), revenue::text, order_count::text FROM analytics.top_products_by_revenue WHERE ingestion_date = '{DAY1}' ORDER BY rank")).await,
        rows(&[&["1", "1", "Atlas", "50.00", "3"], &["2", "3", "Radio", "20.00", "1"], &["3", "2", "Kite", "15.00", "2"], &["4", "9", "NULL", "1.00", "1"]])
    );
    // Unknown members, never dropped.
    assert_eq!(
        env.count("SELECT customer_key FROM warehouse.fact_orders WHERE order_id = 5")
            .await,
        -1
    );
    assert_eq!(
        env.count("SELECT product_key FROM warehouse.fact_orders WHERE order_id = 7")
            .await,
        -1
    );
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.fact_orders")
            .await,
        7
    );
    // dim_date covers the whole years 2025 and 2026; Feb 16 2026 is a public holiday and not a
    // working day; Mar 1 2026 is a weekend day, not a public holiday.
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.dim_date").await,
        365 + 365
    );
    assert_eq!(
        query_text(&env, "SELECT is_public_holiday::text, working_day::text, is_weekend::text, iso_day_of_week::text FROM warehouse.dim_date WHERE calendar_date IN ('2026-02-16', '2026-03-01') ORDER BY calendar_date").await,
        rows(&[&["true", "false", "false", "1"], &["false", "false", "true", "7"]])
    );
    // Running the batch again changes nothing, down to the surrogate keys.
    let before = dump(&env).await;
    let output = env
        .landfall(&["transform", "--dataset", "ecommerce", "--date", DAY1])
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait_transforms(&env, DAY1, 2).await;
    wait_exported(&env, DAY1).await;
    assert_same(&before, &dump(&env).await, "re-running day 1");
    // Delivering day 1's staging.loaded again — the same event, then a re-sent copy with a new
    // id — changes nothing either: the first is recognised by its id, the second finds the batch
    // already transformed from the same files.
    let day1_loaded = |event: &contract::Envelope<contract::Event>| {
        event.event_type == "staging.loaded"
            && event
                .batch
                .as_ref()
                .is_some_and(|batch| batch.ingestion_date.to_string() == DAY1)
    };
    spy.until("day 1's staging.loaded", DEADLINE, |seen| {
        seen.iter().any(day1_loaded)
    })
    .await;
    let landed = spy
        .seen
        .iter()
        .find(|event| {
            event.event_type == "staging.loaded"
                && event
                    .batch
                    .as_ref()
                    .is_some_and(|batch| batch.ingestion_date.to_string() == DAY1)
        })
        .cloned()
        .expect("day 1's staging.loaded");
    env.publish_raw(
        "events",
        "staging.loaded",
        &landed.encode(),
        lapin::BasicProperties::default(),
    )
    .await;
    let mut resent = landed.clone();
    resent.event_id = uuid::Uuid::new_v4();
    env.publish_raw(
        "events",
        "staging.loaded",
        &resent.encode(),
        lapin::BasicProperties::default(),
    )
    .await;
    let processed = format!(
        "SELECT count(*) FROM ops.processed_events WHERE consumer = 'transformer' AND event_id = '{}'",
        resent.event_id
    );
    wait_until("the re-sent event handled", DEADLINE, || async {
        Ok((env.try_count(&processed).await? == 1).then_some(()))
    })
    .await;
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM ops.transform_runs WHERE ingestion_date = '{DAY1}'"
        ))
        .await,
        2
    );
    assert_same(
        &before,
        &dump(&env).await,
        "delivering day 1's events twice",
    );

    let kite_day1_key = env
        .count("SELECT product_key FROM warehouse.dim_product WHERE product_id = 2")
        .await;

    // Day 2: product 2 renamed, customers unchanged, one more order, three more reviews.
    put(&env, DAY2, "products", PRODUCTS_DAY2.into()).await;
    put(&env, DAY2, "customers", CUSTOMERS.into()).await;
    wait_staged(&env, DAY2, 2).await;
    put(
        &env,
        DAY2,
        "orders",
        format!("{ORDERS_DAY1}{ORDERS_DAY2_EXTRA}"),
    )
    .await;
    put(
        &env,
        DAY2,
        "shipment_deliveries",
        format!("{SHIPMENTS_DAY1}{SHIPMENTS_DAY2_EXTRA}"),
    )
    .await;
    put(
        &env,
        DAY2,
        "reviews",
        format!("{REVIEWS_DAY1}{REVIEWS_DAY2_EXTRA}"),
    )
    .await;
    wait_transforms(&env, DAY2, 1).await;
    wait_exported(&env, DAY2).await;

    // Type 2: two rows for product 2, the day-1 row closed on day 2; day-1 facts keep the old
    // key, the new order gets the new one; the unchanged customer snapshot added no rows.
    assert_eq!(
        query_text(&env, "SELECT product_name, valid_from::text, coalesce(valid_to::text, 'NULL'), is_current::text FROM warehouse.dim_product WHERE product_id = 2 ORDER BY valid_from").await,
        rows(&[&["Kite", DAY1, DAY2, "false"], &["Kite Pro", DAY2, "NULL", "true"]])
    );
    assert_eq!(
        env.count("SELECT product_key FROM warehouse.fact_orders WHERE order_id = 2")
            .await,
        kite_day1_key
    );
    assert_ne!(
        env.count("SELECT product_key FROM warehouse.fact_orders WHERE order_id = 8")
            .await,
        kite_day1_key
    );
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.dim_customer WHERE customer_key <> -1")
            .await,
        2
    );
    // Day 2's reports: the holiday window and the shipments are as on day 1 (order 8 is too
    // recent to be undelivered). Product 3 now has four reviews (3 + 4 + 4 + 4 = 15 points):
    // 25% three-star, 75% four-star; its one order (5, Dec 25 2025, a holiday) has one shipment,
    // 104, not late → 0 late, 100 early.
    assert_eq!(
        report(&env, "analytics.agg_public_holiday", DAY2).await,
        rows(&[&["(2026-03-03,1,2,0,0,0,0,0,0,0,0,0,1)"]])
    );
    assert_eq!(
        report(&env, "analytics.agg_shipments", DAY2).await,
        rows(&[&["(2026-03-03,2,1)"]])
    );
    assert_eq!(
        report(&env, "analytics.best_performing_product", DAY2).await,
        rows(&[&["(2026-03-03,Radio,2025-12-25,t,15,0.00,0.00,25.00,75.00,0.00,100.00,0.00)"]])
    );
    // Product 2 now has 15.00 + 5.00 = 20.00, tying product 3: the lower id ranks first.
    assert_eq!(
        query_text(&env, &format!("SELECT rank::text, product_id::text, coalesce(product_name, 'NULL'), revenue::text FROM analytics.top_products_by_revenue WHERE ingestion_date = '{DAY2}' ORDER BY rank")).await,
        rows(&[&["1", "1", "Atlas", "50.00"], &["2", "2", "Kite Pro", "20.00"], &["3", "3", "Radio", "20.00"], &["4", "9", "NULL", "1.00"]])
    );
    // Day 1's rows are still there (history kept).
    assert_eq!(
        report(&env, "analytics.agg_public_holiday", DAY1).await,
        rows(&[&[holidays_day1]])
    );

    // A corrected day-1 reviews file lands after day 2: the one-star review is withdrawn.
    // Product 2 then has two five-star reviews (10 points) and product 1 two (9 points): the
    // tie on count goes to the higher points → product 2, now named "Kite Pro" (current row).
    let fact_reviews_before = query_text(
        &env,
        "SELECT t::text FROM warehouse.fact_reviews t ORDER BY source_line",
    )
    .await;
    let day2_before = report(&env, "analytics.best_performing_product", DAY2).await;
    let day2_exported_at = exported_at(&env, DAY2).await;
    put(&env, DAY1, "reviews", REVIEWS_DAY1.replace("1,2\n", "")).await;
    wait_transforms(&env, DAY1, 3).await;
    wait_exported(&env, DAY1).await;
    // Re-exported with the corrected values; day 2's export untouched.
    let best_csv = env
        .get_text(&export_key("best_performing_product", DAY1))
        .await;
    assert!(
        best_csv.contains("2026-03-02,Kite Pro,2026-02-16,t,10,"),
        "{best_csv}"
    );
    assert_eq!(exported_at(&env, DAY2).await, day2_exported_at);
    assert_eq!(
        report(&env, "analytics.best_performing_product", DAY1).await,
        rows(&[&[
            "(2026-03-02,\"Kite Pro\",2026-02-16,t,10,0.00,0.00,0.00,0.00,100.00,0.00,100.00)"
        ]])
    );
    assert_eq!(
        report(&env, "analytics.best_performing_product", DAY2).await,
        day2_before
    );
    assert_eq!(
        query_text(
            &env,
            "SELECT t::text FROM warehouse.fact_reviews t ORDER BY source_line"
        )
        .await,
        fact_reviews_before
    );

    // An error-severity check failing stops the export: a duplicate order slipped into day 2's
    // staging (the stager would have rejected it from a file) and the batch is transformed again.
    env.db
        .batch_execute(&format!(
            "INSERT INTO staging.orders SELECT _file_id, _line + 1000, _batch, order_id, customer_id, order_date, product_id,
                    unit_price, quantity, total_price FROM staging.orders WHERE _batch = '{DAY2}' AND order_id = 3"
        ))
        .await
        .unwrap();
    let output = env
        .landfall(&["transform", "--dataset", "ecommerce", "--date", DAY2])
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let failed = format!(
        "SELECT count(*) FROM ops.batches WHERE ingestion_date = '{DAY2}' AND state = 'quality_failed'"
    );
    wait_until("day 2 to fail its checks", DEADLINE, || async {
        Ok((env.try_count(&failed).await? == 1).then_some(()))
    })
    .await;
    spy.until("quality.failed", DEADLINE, |seen| {
        seen.iter()
            .any(|event| event.event_type == "quality.failed")
    })
    .await;
    let stored = query_text(
        &env,
        &format!("SELECT status, failing_rows::text, sample::text FROM ops.quality_results WHERE ingestion_date = '{DAY2}' AND check_name = 'orders_order_id_unique'"),
    )
    .await;
    assert_eq!(stored[0][0], "failed");
    assert_eq!(stored[0][1], "1");
    assert!(stored[0][2].contains("\"order_id\": 3"), "{stored:?}");
    assert_eq!(
        exported_at(&env, DAY2).await,
        day2_exported_at,
        "nothing exported after the failed checks"
    );

    exporter.stop().await;
    checker.stop().await;
    transformer.stop().await;
    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}

fn export_key(report: &str, date: &str) -> String {
    format!("analytics_export/ecommerce/{report}/ingestion_date={date}/{report}.csv")
}

/// Waits until the batch is exported from its current files.
async fn wait_exported(env: &TestEnv, date: &str) {
    let sql = format!(
        "SELECT count(*) FROM ops.batches b WHERE ingestion_date = '{date}' AND state = 'exported'
            AND transformed_files = (SELECT array_agg(file_id ORDER BY file_id) FROM ops.staged_sources s WHERE s.ingestion_date = b.ingestion_date)"
    );
    wait_until(&format!("{date} exported"), DEADLINE, || async {
        Ok((env.try_count(&sql).await? == 1).then_some(()))
    })
    .await;
}

/// When each report of the batch was last exported.
async fn exported_at(env: &TestEnv, date: &str) -> Vec<Vec<String>> {
    query_text(env, &format!("SELECT report, exported_at::text FROM ops.exports WHERE ingestion_date = '{date}' ORDER BY report")).await
}
