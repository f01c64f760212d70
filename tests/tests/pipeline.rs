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
    // Order counts over day 2's eight orders: product 1 orders 1, 3, 4 (3); product 2 orders 2,
    // 6 and the new 8 (3); product 3 order 5 (1); product 9 order 7 (1).
    assert_eq!(
        query_text(&env, &format!("SELECT rank::text, product_id::text, coalesce(product_name, 'NULL'), revenue::text, order_count::text FROM analytics.top_products_by_revenue WHERE ingestion_date = '{DAY2}' ORDER BY rank")).await,
        rows(&[&["1", "1", "Atlas", "50.00", "3"], &["2", "2", "Kite Pro", "20.00", "3"], &["3", "3", "Radio", "20.00", "1"], &["4", "9", "NULL", "1.00", "1"]])
    );
    // D = 2026-03-03: the 12 months are still Apr 2025 … Mar 2026. Day 2's snapshot is day 1's
    // seven orders plus order 8 (2026-03-03, 5.00), which is on D itself (order_date ≤ D), so
    // March becomes order 4 (10.00) + order 8 (5.00) = 15.00 from 2 orders. The other months
    // are as on day 1: Dec 2025 order 5 (20.00); Jan order 1 (10.00); Feb orders 2, 3, 7
    // (10 + 30 + 1 = 41.00); order 6 (Jan 2025) is outside. The remaining 8 months are zero:
    // 12 rows, 86.00 from 7 orders in all.
    let sales_day2 = query_text(&env, &format!("SELECT month::text, revenue::text, order_count::text FROM analytics.sales_by_month WHERE ingestion_date = '{DAY2}' AND order_count > 0 ORDER BY month")).await;
    assert_eq!(
        sales_day2,
        rows(&[
            &["2025-12-01", "20.00", "1"],
            &["2026-01-01", "10.00", "1"],
            &["2026-02-01", "41.00", "3"],
            &["2026-03-01", "15.00", "2"]
        ])
    );
    assert_eq!(
        query_text(&env, &format!("SELECT count(*)::text, min(month)::text, max(month)::text, sum(revenue)::text, sum(order_count)::text, count(*) FILTER (WHERE order_count = 0 AND revenue = 0)::text FROM analytics.sales_by_month WHERE ingestion_date = '{DAY2}'")).await,
        rows(&[&["12", "2025-04-01", "2026-03-01", "86.00", "7", "8"]])
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

/// Day 1's six files, the snapshots first (as in the big test), then waits until all are
/// staged.
async fn land_day1(env: &TestEnv) {
    put(env, DAY1, "holidays", HOLIDAYS.into()).await;
    put(env, DAY1, "products", PRODUCTS_DAY1.into()).await;
    put(env, DAY1, "customers", CUSTOMERS.into()).await;
    wait_staged(env, DAY1, 3).await;
    put(env, DAY1, "orders", ORDERS_DAY1.into()).await;
    put(env, DAY1, "shipment_deliveries", SHIPMENTS_DAY1.into()).await;
    put(env, DAY1, "reviews", REVIEWS_DAY1.into()).await;
    wait_staged(env, DAY1, 6).await;
}

/// Each model's dependencies, as its file's header declares them.
fn ecommerce_dependencies(env: &TestEnv) -> Vec<(String, Vec<String>)> {
    let dir = env.common_config("test").models_dir.join("ecommerce");
    transformer::models::ModelSet::load(&dir)
        .expect("the ecommerce models load")
        .models()
        .iter()
        .map(|model| (model.name.clone(), model.depends_on.clone()))
        .collect()
}

/// Fails unless every model in `ran` comes after each of its dependencies that also ran.
fn assert_dependency_order(ran: &[&str], dependencies: &[(String, Vec<String>)]) {
    for (index, model) in ran.iter().enumerate() {
        let (_, depends_on) = dependencies
            .iter()
            .find(|(name, _)| name == model)
            .unwrap_or_else(|| panic!("{model} is not an ecommerce model"));
        for dependency in depends_on {
            if let Some(position) = ran.iter().position(|name| name == dependency) {
                assert!(
                    position < index,
                    "{model} ran before its dependency {dependency}: {ran:?}"
                );
            }
        }
    }
}

/// The `transform.completed` of the batch names every model of the dataset once, in dependency
/// order, with the rows each wrote — the same counts as the tables hold for the batch, worked
/// out by hand from the fixture on a fresh database — and timings that fit within the run
/// recorded in `ops.transform_runs`, which holds the same list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_completed_carries_every_models_row_count_and_timing() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let transformer = env.start_transformer(&[]);
    land_day1(&env).await;
    spy.until("transform.completed", DEADLINE, |seen| {
        seen.iter()
            .any(|event| event.event_type == "transform.completed")
    })
    .await;
    let completed = spy.of_type("transform.completed");
    assert_eq!(completed.len(), 1, "one transform of the batch");
    assert_eq!(
        completed[0]
            .batch
            .as_ref()
            .map(|batch| (batch.dataset.clone(), batch.ingestion_date.to_string())),
        Some(("ecommerce".to_owned(), DAY1.to_owned()))
    );
    let contract::Event::TransformCompleted(payload) = &completed[0].payload else {
        panic!("unexpected payload {:?}", completed[0].payload);
    };
    // The six staged files of the batch.
    let staged: Vec<i64> = env
        .db
        .query(
            "SELECT file_id FROM ops.staged_sources WHERE ingestion_date = $1::text::date ORDER BY file_id",
            &[&DAY1],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(staged.len(), 6);
    assert_eq!(payload.file_ids, staged);

    // One entry per model of the dataset, each after the models it depends on.
    let dependencies = ecommerce_dependencies(&env);
    let ran: Vec<&str> = payload
        .models
        .iter()
        .map(|run| run.model.as_str())
        .collect();
    let mut names = ran.clone();
    names.sort();
    let mut all: Vec<&str> = dependencies.iter().map(|(name, _)| name.as_str()).collect();
    all.sort();
    assert_eq!(names, all, "every model once: {ran:?}");
    assert_eq!(all.len(), 11);
    assert_dependency_order(&ran, &dependencies);

    // Rows per model, by hand, on an empty warehouse, and what the tables hold for the batch:
    // dim_date the whole years 2025 and 2026 (orders from 2025-01-01 to 2026-03-01, the
    // calendar 2025–2026) = 365 + 365; customers 10 and 11; products 1, 2 and 3; orders 1–7;
    // shipments 100–106; the seven review lines (the empty one too); one row per batch for
    // the three single-row reports; sales_by_month the 12 months Apr 2025 … Mar 2026;
    // top_products_by_revenue products 1, 3, 2 and 9 (four products ordered, fewer than 10).
    let d = DAY1;
    let expected: &[(&str, u64, String)] = &[
        (
            "dim_date",
            730,
            "SELECT count(*) FROM warehouse.dim_date".into(),
        ),
        (
            "dim_customer",
            2,
            "SELECT count(*) FROM warehouse.dim_customer WHERE customer_key <> -1".into(),
        ),
        (
            "dim_product",
            3,
            "SELECT count(*) FROM warehouse.dim_product WHERE product_key <> -1".into(),
        ),
        (
            "fact_orders",
            7,
            format!("SELECT count(*) FROM warehouse.fact_orders WHERE last_batch = '{d}'"),
        ),
        (
            "fact_shipments",
            7,
            format!("SELECT count(*) FROM warehouse.fact_shipments WHERE last_batch = '{d}'"),
        ),
        (
            "fact_reviews",
            7,
            format!("SELECT count(*) FROM warehouse.fact_reviews WHERE last_batch = '{d}'"),
        ),
        (
            "agg_public_holiday",
            1,
            format!(
                "SELECT count(*) FROM analytics.agg_public_holiday WHERE ingestion_date = '{d}'"
            ),
        ),
        (
            "agg_shipments",
            1,
            format!("SELECT count(*) FROM analytics.agg_shipments WHERE ingestion_date = '{d}'"),
        ),
        (
            "best_performing_product",
            1,
            format!(
                "SELECT count(*) FROM analytics.best_performing_product WHERE ingestion_date = '{d}'"
            ),
        ),
        (
            "sales_by_month",
            12,
            format!("SELECT count(*) FROM analytics.sales_by_month WHERE ingestion_date = '{d}'"),
        ),
        (
            "top_products_by_revenue",
            4,
            format!(
                "SELECT count(*) FROM analytics.top_products_by_revenue WHERE ingestion_date = '{d}'"
            ),
        ),
    ];
    for (model, rows, sql) in expected {
        let run = payload
            .models
            .iter()
            .find(|run| run.model == *model)
            .unwrap_or_else(|| panic!("{model} missing from {ran:?}"));
        assert_eq!(run.rows, *rows, "{model}: rows in transform.completed");
        assert_eq!(
            env.count(sql).await as u64,
            *rows,
            "{model}: rows in its table"
        );
    }

    // The run as recorded: the same list, and the models' times fit within the run's.
    let recorded = env
        .db
        .query_one(
            "SELECT models::text, (extract(epoch FROM finished_at - started_at) * 1000)::float8
               FROM ops.transform_runs WHERE ingestion_date = $1::text::date",
            &[&DAY1],
        )
        .await
        .unwrap();
    let recorded_models: Vec<contract::ModelRun> =
        serde_json::from_str(recorded.get::<_, &str>(0)).unwrap();
    assert_eq!(recorded_models, payload.models);
    let run_ms: f64 = recorded.get(1);
    let models_ms: u64 = payload.models.iter().map(|run| run.duration_ms).sum();
    assert!(
        run_ms >= 0.0,
        "the run ended before it started: {run_ms} ms"
    );
    assert!(
        models_ms as f64 <= run_ms + 1.0,
        "the models took {models_ms} ms in a run of {run_ms} ms: {:?}",
        payload.models
    );

    transformer.stop().await;
    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}

/// Running a batch again (`landfall transform`) publishes a second `transform.completed` whose
/// report row counts are still the rows each report holds for the batch — 12 months, 4 ranked
/// products, one row for each single-row report — not the rows the re-run deleted plus those
/// it inserted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_reports_the_rows_each_report_holds_for_the_batch() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let transformer = env.start_transformer(&[]);
    land_day1(&env).await;
    wait_transforms(&env, DAY1, 1).await;
    let output = env
        .landfall(&["transform", "--dataset", "ecommerce", "--date", DAY1])
        .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    spy.until("two transform.completed", DEADLINE, |seen| {
        seen.iter()
            .filter(|event| event.event_type == "transform.completed")
            .count()
            == 2
    })
    .await;
    // The command's event (the transformer's may be published after it).
    let command_event: uuid::Uuid = env
        .db
        .query_one(
            "SELECT event_id FROM ops.outbox WHERE created_by = 'landfall-transform'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let rerun = spy
        .of_type("transform.completed")
        .into_iter()
        .find(|event| event.event_id == command_event)
        .expect("the command's transform.completed");
    let contract::Event::TransformCompleted(rerun) = &rerun.payload else {
        panic!("not a TransformCompleted");
    };
    let rows_of = |model: &str| {
        rerun
            .models
            .iter()
            .find(|run| run.model == model)
            .unwrap_or_else(|| panic!("{model} missing: {:?}", rerun.models))
            .rows
    };
    for (report, rows) in [
        ("sales_by_month", 12),
        ("top_products_by_revenue", 4),
        ("agg_public_holiday", 1),
        ("agg_shipments", 1),
        ("best_performing_product", 1),
    ] {
        let held = env
            .count(&format!(
                "SELECT count(*) FROM analytics.{report} WHERE ingestion_date = '{DAY1}'"
            ))
            .await;
        assert_eq!(held, rows, "{report} holds {rows} rows for the batch");
        assert_eq!(
            rows_of(report),
            rows as u64,
            "{report}: the re-run's transform.completed says {} rows; the table holds {held} \
             for the batch (landfall transform printed:\n{stdout})",
            rows_of(report)
        );
    }
    transformer.stop().await;
    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}

/// `landfall transform --models m` runs m and the models upstream of it, in dependency order,
/// and nothing else: the run recorded, the event published and the tables all show it. An
/// unknown model is an error naming it, and nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landfall_transform_models_runs_them_with_their_upstream_only() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    // No transformer: the batch is staged and only the command transforms it.
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    land_day1(&env).await;
    let dependencies = ecommerce_dependencies(&env);
    let transform = |models: &'static [&'static str]| {
        let env = &env;
        async move {
            let mut args = vec![
                "transform",
                "--dataset",
                "ecommerce",
                "--date",
                DAY1,
                "--models",
            ];
            args.extend_from_slice(models);
            env.landfall(&args).await
        }
    };
    let last_run = || {
        let env = &env;
        async move {
            let models = query_text(
            env,
            "SELECT m ->> 'model' FROM ops.transform_runs r, jsonb_array_elements(r.models) WITH ORDINALITY AS e (m, n)
              WHERE r.run_id = (SELECT max(run_id) FROM ops.transform_runs) ORDER BY n",
        )
        .await;
            models
                .into_iter()
                .map(|row| row[0].clone())
                .collect::<Vec<String>>()
        }
    };
    let count = |table: &str| {
        let sql = match table {
            "warehouse.dim_customer" => {
                format!("SELECT count(*) FROM {table} WHERE customer_key <> -1")
            }
            "warehouse.dim_product" => {
                format!("SELECT count(*) FROM {table} WHERE product_key <> -1")
            }
            _ => format!("SELECT count(*) FROM {table}"),
        };
        let env = &env;
        async move { env.count(&sql).await }
    };

    // agg_public_holiday depends on dim_date only.
    let output = transform(&["agg_public_holiday"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(last_run().await, ["dim_date", "agg_public_holiday"]);
    let table_models: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| dependencies.iter().any(|(name, _)| name == word))
        .collect();
    assert_eq!(table_models, ["dim_date", "agg_public_holiday"], "{stdout}");
    spy.until("the command's transform.completed", DEADLINE, |seen| {
        seen.iter()
            .any(|event| event.event_type == "transform.completed")
    })
    .await;
    let contract::Event::TransformCompleted(published) =
        &spy.of_type("transform.completed")[0].payload
    else {
        panic!("not a TransformCompleted");
    };
    let published: Vec<&str> = published
        .models
        .iter()
        .map(|run| run.model.as_str())
        .collect();
    assert_eq!(published, ["dim_date", "agg_public_holiday"]);
    // Its value as worked out in the big test: order 1 (Jan 1), orders 2 and 3 (Feb 16), order
    // 5 (Dec 25 2025) — it needs only dim_date's holiday flags.
    assert_eq!(
        report(&env, "analytics.agg_public_holiday", DAY1).await,
        rows(&[&["(2026-03-02,1,2,0,0,0,0,0,0,0,0,0,1)"]])
    );
    assert_eq!(count("warehouse.dim_date").await, 730);
    for table in [
        "warehouse.dim_customer",
        "warehouse.dim_product",
        "warehouse.fact_orders",
        "warehouse.fact_shipments",
        "warehouse.fact_reviews",
        "analytics.agg_shipments",
        "analytics.best_performing_product",
        "analytics.sales_by_month",
        "analytics.top_products_by_revenue",
    ] {
        assert_eq!(count(table).await, 0, "{table} was not to run");
    }

    // best_performing_product: dim_date, dim_product, fact_reviews, fact_orders, and through
    // fact_orders dim_customer too; not fact_shipments (it reads the staged shipments itself)
    // nor the other reports.
    let output = transform(&["best_performing_product"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ran = last_run().await;
    let mut ran_sorted = ran.clone();
    ran_sorted.sort();
    assert_eq!(
        ran_sorted,
        [
            "best_performing_product",
            "dim_customer",
            "dim_date",
            "dim_product",
            "fact_orders",
            "fact_reviews"
        ]
    );
    assert_dependency_order(
        &ran.iter().map(String::as_str).collect::<Vec<_>>(),
        &dependencies,
    );
    // The big test's hand-worked day-1 row.
    assert_eq!(
        report(&env, "analytics.best_performing_product", DAY1).await,
        rows(&[&["(2026-03-02,Kite,2026-02-16,t,11,33.33,0.00,0.00,0.00,66.67,0.00,100.00)"]])
    );
    assert_eq!(count("warehouse.fact_orders").await, 7);
    assert_eq!(count("warehouse.dim_customer").await, 2);
    for table in [
        "warehouse.fact_shipments",
        "analytics.agg_shipments",
        "analytics.sales_by_month",
        "analytics.top_products_by_revenue",
    ] {
        assert_eq!(count(table).await, 0, "{table} was not to run");
    }

    // An unknown model: an error naming it, no run.
    let output = transform(&["agg_public_holidays"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no model named 'agg_public_holidays'"),
        "{stderr}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM ops.transform_runs").await,
        2
    );

    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}
