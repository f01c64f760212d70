//! The ecommerce models end to end on a small fixture whose report values were worked out by
//! hand (the reasoning is in the comments), over two ingestion dates, then a re-run and a late
//! correction. Files land in S3; the real ingester, stager and transformer do the rest.

use std::time::Duration;

use landfall_tests::checks::{STAGER_RULES, bundled_checks_with};
use landfall_tests::{TestEnv, rows, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const DAY1: &str = "2026-03-02"; // a Monday
const DAY2: &str = "2026-03-03";

// The fixture: about thirty rows per file, in groups that each exercise one rule of the spec;
// every report value below is worked out by hand from these rows. Weekdays: 2025-03-03,
// 2025-03-31 and 2026-02-16 are Mondays; 2025-04-01, 2025-06-10, 2025-09-09, 2026-01-20,
// 2026-02-10 and 2026-03-03 Tuesdays; 2026-02-25 a Wednesday; 2025-05-01, 2025-08-14,
// 2025-11-20, 2025-12-25 and 2026-01-01 Thursdays; 2025-10-03, 2025-12-26 and 2026-02-20
// Fridays; 2025-11-01 a Saturday; 2026-02-01, 2026-02-15 and 2026-03-01 Sundays.

// The calendar. A public holiday is a listed *weekday*: 2025-11-01 (a Saturday) and
// 2026-03-01 (a Sunday) are listed but are not public holidays. 2025-01-01 lies more than a
// year before either batch; 2025-03-03 is inside day 1's year (D − 1 year = 2025-03-02 <
// 2025-03-03) but not day 2's (2025-03-03 is not > 2025-03-03); 2026-03-03 is day 2 itself
// (order_date ≤ D counts).
const HOLIDAYS: &str = "holiday_date,name
2025-01-01,New Year 2025
2025-03-03,Spring Monday
2025-05-01,Labour Day
2025-10-03,Unity Day
2025-11-01,All Saints
2025-12-25,Christmas
2025-12-26,Boxing Day
2026-01-01,New Year
2026-02-16,Carnival Monday
2026-03-01,Sunday Fair
2026-03-03,Founders Day
";

// Ten known products; product 9 is never in a snapshot (the unknown member).
const PRODUCTS_DAY1: &str = "product_id,product_category,product_name
1,books,Atlas
2,toys,Kite
3,audio,Radio
4,home,Lamp
5,kitchen,Mug
6,office,Pen
7,apparel,Sock
8,outdoor,Tent
10,music,Drum
11,beauty,Soap
";
// Day 2 renames product 2: a new dimension version. Nothing else changes.
const PRODUCTS_DAY2: &str = "product_id,product_category,product_name
1,books,Atlas
2,toys,Kite Pro
3,audio,Radio
4,home,Lamp
5,kitchen,Mug
6,office,Pen
7,apparel,Sock
8,outdoor,Tent
10,music,Drum
11,beauty,Soap
";
// Six known customers; customer 12 is never in a snapshot. Unchanged on day 2: no new rows.
const CUSTOMERS: &str = "customer_id,customer_name,postal_code
10,Ada,10115
11,Bob,20095
13,Cem,50667
14,Dana,80331
15,Eve,04109
16,Finn,01067
";

// 30 orders, `order_id,customer_id,order_date,product_id,unit_price,quantity,total_price`
// (total = unit × quantity throughout). Order 5's customer 12 and order 7's product 9 are
// unknown: they get the unknown member (-1).
const ORDERS_DAY1: &str = concat!(
    "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price\n",
    // The first seven: holidays on Jan 1 (1), Feb 16 (2, 3), the Sunday Mar 1 (4), Christmas
    // (5, unknown customer) and 2025-01-01 (6, a year too old); 7 is of the unknown product.
    "1,10,2026-01-01,1,10.00,1,10.00\n",
    "2,10,2026-02-16,2,5.00,2,10.00\n",
    "3,11,2026-02-16,1,10.00,3,30.00\n",
    "4,11,2026-03-01,1,10.00,1,10.00\n",
    "5,12,2025-12-25,3,20.00,1,20.00\n",
    "6,10,2025-01-01,2,5.00,1,5.00\n",
    "7,11,2026-02-20,9,1.00,1,1.00\n",
    // Kite (product 2), day 1's best product: with orders 2 and 6 it has two orders on Feb 16
    // (quantities 2 + 1 = 3), two on Feb 10 (1 + 1 = 2) and one on 2025-11-20 of quantity 5.
    "9,13,2026-02-16,2,5.00,1,5.00\n",
    "10,14,2026-02-10,2,5.00,1,5.00\n",
    "11,15,2026-02-10,2,5.00,1,5.00\n",
    "12,16,2025-11-20,2,5.00,5,25.00\n",
    // Radio (product 3), day 2's best product: with order 5 it has two orders on Christmas
    // (1 + 1) and two on 2026-01-20 (1 + 1), a full tie, and one on Feb 25 of quantity 3.
    "13,10,2025-12-25,3,20.00,1,20.00\n",
    "14,11,2026-01-20,3,20.00,1,20.00\n",
    "15,13,2026-01-20,3,20.00,1,20.00\n",
    "16,14,2026-02-25,3,20.00,3,60.00\n",
    // Holidays in other months: Spring Monday 2025-03-03 (17), Labour Day (18, 19), Unity Day
    // (20), Boxing Day (21), New Year 2026 (22); All Saints is a Saturday (23).
    "17,15,2025-03-03,4,15.00,2,30.00\n",
    "18,16,2025-05-01,5,8.00,1,8.00\n",
    "19,10,2025-05-01,6,2.50,4,10.00\n",
    "20,11,2025-10-03,7,3.00,3,9.00\n",
    "21,13,2025-12-26,8,120.00,1,120.00\n",
    "22,14,2026-01-01,10,45.00,1,45.00\n",
    "23,15,2025-11-01,7,3.00,2,6.00\n",
    // Ordinary days; 24's shipment is late on day 1 and delivered by day 2; 25 is on the first
    // day of the 12 months (Apr 1 2025), 26 on the last day before them (Mar 31 2025); 29 is
    // the smallest sale (the 11th product by revenue).
    "24,16,2026-02-01,4,15.00,1,15.00\n",
    "25,10,2025-04-01,5,8.00,2,16.00\n",
    "26,11,2025-03-31,6,2.50,2,5.00\n",
    "27,13,2025-08-14,7,3.00,1,3.00\n",
    "28,14,2025-06-10,10,45.00,2,90.00\n",
    "29,15,2025-09-09,11,0.50,1,0.50\n",
    // Never shipped: 30 is exactly 15 days before day 1 (Feb 15 + 15 days = Mar 2), 31 one day
    // younger (Feb 16 + 15 days = Mar 3, day 2), on the Carnival Monday holiday.
    "30,16,2026-02-15,6,2.50,2,5.00\n",
    "31,10,2026-02-16,5,8.00,1,8.00\n",
);
// Snapshot mode: day 2 carries every order, plus two new ones on day 2 itself (Founders Day).
const ORDERS_DAY2_EXTRA: &str = "8,11,2026-03-03,2,5.00,1,5.00\n32,10,2026-03-03,1,10.00,1,10.00\n";

// 31 shipments, `shipment_id,order_id,shipment_date,delivery_date`. Late: shipped ≥ 6 days
// after the order and not delivered. Undelivered: neither shipped nor delivered, and the
// order date + 15 days ≤ D.
const SHIPMENTS_DAY1: &str = concat!(
    "shipment_id,order_id,shipment_date,delivery_date\n",
    // Late: 101 (6 days after Feb 16), 105 (9 days), 112 (6 days after 2025-11-20), 113 (6
    // days after Christmas), 119 (19 days after Labour Day), 124 (8 days after Feb 1; delivered
    // by day 2).
    "101,2,2026-02-22,\n",
    "105,6,2025-01-10,\n",
    "112,12,2025-11-26,\n",
    "113,13,2025-12-31,\n",
    "119,19,2025-05-20,\n",
    "124,24,2026-02-09,\n",
    // Not late: 102 and 109 left 5 days after their orders and 116 after 2, none delivered;
    // 115 left 6 days after its order but was delivered.
    "102,3,2026-02-21,\n",
    "109,10,2026-02-15,\n",
    "116,16,2026-02-27,\n",
    "115,15,2026-01-26,2026-01-30\n",
    // Undelivered on day 1: orders from Christmas (104), Feb 10 (110), Boxing Day (121) and
    // Feb 15 (130, exactly 15 days). Not yet: 103 (order Mar 1) and 131 (order Feb 16; it is
    // on day 2). 106 and 123 have no shipment date but were delivered.
    "104,5,,\n",
    "110,11,,\n",
    "121,21,,\n",
    "130,30,,\n",
    "103,4,,\n",
    "131,31,,\n",
    "106,7,,2026-02-25\n",
    "123,23,,2025-11-05\n",
    // Shipped and delivered; order 12 was split into two shipments (111 and the late 112).
    "100,1,2026-01-02,2026-01-05\n",
    "108,9,2026-02-18,2026-02-20\n",
    "111,12,2025-11-21,2025-11-24\n",
    "114,14,2026-01-22,2026-01-25\n",
    "117,17,2025-03-04,2025-03-06\n",
    "118,18,2025-05-02,2025-05-05\n",
    "120,20,2025-10-06,2025-10-08\n",
    "122,22,2026-01-05,2026-01-09\n",
    "125,25,2025-04-02,2025-04-04\n",
    "126,26,2025-04-01,2025-04-03\n",
    "127,27,2025-08-15,2025-08-18\n",
    "128,28,2025-06-11,2025-06-13\n",
    "129,29,2025-09-10,2025-09-12\n",
);
// Day 2: shipment 124 was delivered on Mar 2; order 8's shipment has not left (order 32 has
// none yet).
const SHIPMENT_124_DAY1: &str = "124,24,2026-02-09,\n";
const SHIPMENT_124_DAY2: &str = "124,24,2026-02-09,2026-03-02\n";
const SHIPMENTS_DAY2_EXTRA: &str = "107,8,,\n";

// 33 review lines, `review,product_id`; only non-empty reviews count.
const REVIEWS_DAY1: &str = concat!(
    "review,product_id\n",
    // Atlas (1): 3 five-star + 6 four-star = 9 reviews, 39 points, and 2 empty lines (counting
    // them would give it 11, more than Kite).
    "5,1\n5,1\n5,1\n4,1\n4,1\n4,1\n4,1\n4,1\n4,1\n,1\n,1\n",
    // Kite (2): 1 one-star, 1 three-star, 3 four-star, 5 five-star = 10 reviews,
    // 1 + 3 + 12 + 25 = 41 points. The one-star review is the one the correction withdraws.
    "1,2\n3,2\n4,2\n4,2\n4,2\n5,2\n5,2\n5,2\n5,2\n5,2\n",
    // Radio (3): 3 + 4 + 4 + 4 + 5 = 20 points from 5 reviews.
    "3,3\n4,3\n4,3\n4,3\n5,3\n",
    // Lamp (4): 5 + 4 + 4 + 4 + 4 = 21 points from 5 reviews.
    "5,4\n4,4\n4,4\n4,4\n4,4\n",
    // Mug (5): 2 + 1.
    "2,5\n1,5\n",
);
// Day 2 (snapshot: the whole set again, plus these): Radio and Lamp reach 10 reviews each.
// Radio: 1 three-star, 5 four-star, 4 five-star = 3 + 20 + 20 = 43 points; Lamp: 7 four-star,
// 3 five-star = 28 + 15 = 43 points.
const REVIEWS_DAY2_EXTRA: &str = "4,3\n4,3\n5,3\n5,3\n5,3\n5,4\n5,4\n4,4\n4,4\n4,4\n";

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
        "audit.agg_public_holiday",
        "audit.agg_shipments",
        "audit.best_performing_product",
        "audit.sales_by_month",
        "audit.top_products_by_revenue",
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
    // The bundled checks, and the stager's rule that an order appears once, which catches the
    // duplicate order slipped into day 2's staging below.
    let checks = bundled_checks_with(&env, STAGER_RULES);
    let checker = env.start_quality_checker(&[(
        "LANDFALL_DATASETS_DIR",
        checks.to_str().expect("UTF-8 path"),
    )]);
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
    // The reports went out: the checks passed and the export wrote the CSV (the values are
    // worked out just below).
    assert_eq!(
        env.get_text(&export_key("agg_shipments", DAY1)).await,
        "ingestion_date,tt_late_shipments,tt_undelivered_shipments\n2026-03-02,6,4\n"
    );

    // Public-holiday orders with D − 1 year < order_date ≤ D, i.e. 2025-03-03 … 2026-03-02:
    //   Jan: order 1 and 22 (New Year 2026)                                  = 2
    //   Feb: orders 2, 3, 9 and 31 (Carnival Monday)                         = 4
    //   Mar: order 17 (Spring Monday 2025-03-03, the first day of the year)  = 1
    //        (order 4 is on Sunday Mar 1: listed, but not a public holiday)
    //   May: orders 18 and 19 (Labour Day)                                   = 2
    //   Oct: order 20 (Unity Day)                                            = 1
    //   Nov: order 23 is on All Saints, a Saturday                           = 0
    //   Dec: orders 5 and 13 (Christmas), 21 (Boxing Day)                    = 3
    // Order 6 (New Year 2025) is more than a year old: not pooled into January.
    let holidays_day1 = "(2026-03-02,2,4,1,0,2,0,0,0,0,1,0,3)";
    assert_eq!(
        report(&env, "audit.agg_public_holiday", DAY1).await,
        rows(&[&[holidays_day1]])
    );
    // Late (shipped ≥ order date + 6 days, not delivered): 101 (Feb 16 → Feb 22, exactly 6
    // days), 105 (9 days), 112 (2025-11-20 → 11-26, 6 days), 113 (Dec 25 → Dec 31, 6 days),
    // 119 (19 days) and 124 (Feb 1 → Feb 9, 8 days) = 6. Not late: 102, 109 (5 days), 116 (2
    // days), 115 (6 days but delivered), the delivered ones and the unshipped ones.
    // Undelivered (no shipment or delivery date, order date + 15 days ≤ Mar 2): 104 (Dec 25 +
    // 15 = Jan 9), 110 (Feb 10 + 15 = Feb 25), 121 (Dec 26 + 15 = Jan 10), 130 (Feb 15 + 15 =
    // Mar 2, D itself) = 4. Not: 103 (Mar 1 + 15 = Mar 16), 131 (Feb 16 + 15 = Mar 3), and 106
    // and 123, which were delivered.
    assert_eq!(
        report(&env, "audit.agg_shipments", DAY1).await,
        rows(&[&["(2026-03-02,6,4)"]])
    );
    // Non-empty reviews: Atlas 9 (39 points; its 2 empty lines do not count), Kite 10 (41),
    // Radio 5 (20), Lamp 5 (21), Mug 2 (3) → Kite, the most reviews.
    // Its orders per day: Feb 16 two (orders 2 and 9, quantity 2 + 1 = 3), Feb 10 two (10 and
    // 11, 1 + 1 = 2), 2025-11-20 one (12, quantity 5), 2025-01-01 one (6). The most orders tie
    // between Feb 16 and Feb 10; the larger quantity wins → Feb 16, a Monday holiday (t). (The
    // single order of quantity 5 does not: the number of orders comes first.)
    // Points 1 + 3 + 4 × 3 + 5 × 5 = 41. Stars of 10: one-star 1 → 10.00, two-star 0, three-star
    // 1 → 10.00, four-star 3 → 30.00, five-star 5 → 50.00.
    // Shipments of its orders: 101, 105, 108, 109, 110, 111 and 112 (order 12 was split) = 7,
    // of which 101, 105 and 112 are late: 100 × 3 / 7 = 42.857… → 42.86 late, 57.14 early.
    assert_eq!(
        report(&env, "audit.best_performing_product", DAY1).await,
        rows(&[&["(2026-03-02,Kite,2026-02-16,t,41,10.00,0.00,10.00,30.00,50.00,57.14,42.86)"]])
    );
    // The 12 calendar months Apr 2025 … Mar 2026 (months without orders are 0):
    //   Apr 2025: order 25 (Apr 1, the first day)                = 16.00, 1
    //   May: orders 18 + 19 = 8.00 + 10.00                        = 18.00, 2
    //   Jun: order 28                                             = 90.00, 1
    //   Jul: none                                                 =  0.00, 0
    //   Aug: order 27                                             =  3.00, 1
    //   Sep: order 29                                             =  0.50, 1
    //   Oct: order 20                                             =  9.00, 1
    //   Nov: orders 12 + 23 = 25.00 + 6.00                        = 31.00, 2
    //   Dec: orders 5 + 13 + 21 = 20.00 + 20.00 + 120.00          = 160.00, 3
    //   Jan 2026: orders 1 + 14 + 15 + 22 = 10 + 20 + 20 + 45      = 95.00, 4
    //   Feb: orders 2, 3, 7, 9, 10, 11, 16, 24, 30, 31
    //        = 10 + 30 + 1 + 5 + 5 + 5 + 60 + 15 + 5 + 8           = 144.00, 10
    //   Mar: order 4                                              = 10.00, 1
    // Outside: order 6 (Jan 2025), 17 (Mar 3 2025) and 26 (Mar 31 2025) — 17 is within a year
    // of D for the holiday report, but March 2025 is not one of the 12 months.
    // 27 orders of the 30 in all, 616.50 − 5.00 − 30.00 − 5.00 = 576.50.
    assert_eq!(
        report(&env, "audit.sales_by_month", DAY1).await,
        rows(&[
            &["(2026-03-02,2025-04-01,16.00,1)"],
            &["(2026-03-02,2025-05-01,18.00,2)"],
            &["(2026-03-02,2025-06-01,90.00,1)"],
            &["(2026-03-02,2025-07-01,0.00,0)"],
            &["(2026-03-02,2025-08-01,3.00,1)"],
            &["(2026-03-02,2025-09-01,0.50,1)"],
            &["(2026-03-02,2025-10-01,9.00,1)"],
            &["(2026-03-02,2025-11-01,31.00,2)"],
            &["(2026-03-02,2025-12-01,160.00,3)"],
            &["(2026-03-02,2026-01-01,95.00,4)"],
            &["(2026-03-02,2026-02-01,144.00,10)"],
            &["(2026-03-02,2026-03-01,10.00,1)"],
        ])
    );
    // Revenue per product over all the batch's orders, whatever their date:
    //   Radio (3):  5, 13, 14, 15 at 20.00 + 16 at 60.00      = 140.00, 5 orders
    //   Drum (10):  22 (45.00) + 28 (90.00)                  = 135.00, 2
    //   Tent (8):   21                                       = 120.00, 1
    //   Kite (2):   2 (10.00) + 6, 9, 10, 11 (5.00) + 12 (25.00) = 55.00, 6
    //   Atlas (1):  1 (10.00) + 3 (30.00) + 4 (10.00)         =  50.00, 3
    //   Lamp (4):   17 (30.00) + 24 (15.00)                   =  45.00, 2
    //   Mug (5):    18 (8.00) + 25 (16.00) + 31 (8.00)        =  32.00, 3
    //   Pen (6):    19 (10.00) + 26 (5.00) + 30 (5.00)        =  20.00, 3
    //   Sock (7):   20 (9.00) + 23 (6.00) + 27 (3.00)         =  18.00, 3
    //   product 9 (unknown: no name): 7                       =   1.00, 1
    //   Soap (11):  29                                        =   0.50, 1 — 11th, not listed.
    assert_eq!(
        report(&env, "audit.top_products_by_revenue", DAY1).await,
        rows(&[
            &["(2026-03-02,1,3,Radio,140.00,5)"],
            &["(2026-03-02,2,10,Drum,135.00,2)"],
            &["(2026-03-02,3,8,Tent,120.00,1)"],
            &["(2026-03-02,4,2,Kite,55.00,6)"],
            &["(2026-03-02,5,1,Atlas,50.00,3)"],
            &["(2026-03-02,6,4,Lamp,45.00,2)"],
            &["(2026-03-02,7,5,Mug,32.00,3)"],
            &["(2026-03-02,8,6,Pen,20.00,3)"],
            &["(2026-03-02,9,7,Sock,18.00,3)"],
            &["(2026-03-02,10,9,,1.00,1)"],
        ])
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
    // Orders 1–7 and 9–31: 30 (order 8 comes on day 2).
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.fact_orders")
            .await,
        30
    );
    // dim_date covers the whole years 2025 and 2026 (orders, shipments and the calendar all lie
    // in them); a listed weekday is a public holiday and not a working day (2025-01-01 too: the
    // year window is the report's, not the calendar's); a listed Saturday or Sunday is a
    // weekend day, not a public holiday.
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.dim_date").await,
        365 + 365
    );
    assert_eq!(
        query_text(&env, "SELECT calendar_date::text, is_public_holiday::text, working_day::text, is_weekend::text, iso_day_of_week::text FROM warehouse.dim_date WHERE calendar_date IN ('2025-01-01', '2025-11-01', '2026-02-16', '2026-03-01', '2026-03-02', '2026-03-03') ORDER BY calendar_date").await,
        rows(&[
            &["2025-01-01", "true", "false", "false", "3"],
            &["2025-11-01", "false", "false", "true", "6"],
            &["2026-02-16", "true", "false", "false", "1"],
            &["2026-03-01", "false", "false", "true", "7"],
            &["2026-03-02", "false", "true", "false", "1"],
            &["2026-03-03", "true", "false", "false", "2"],
        ])
    );
    // Running the batch again changes nothing, down to the surrogate keys.
    let before = dump(&env).await;
    env.landfall_ok(&["transform", "--dataset", "ecommerce", "--date", DAY1])
        .await;
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

    // Day 2: product 2 renamed, customers unchanged, two more orders, one more shipment and
    // shipment 124 delivered, ten more reviews.
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
        format!(
            "{}{SHIPMENTS_DAY2_EXTRA}",
            SHIPMENTS_DAY1.replace(SHIPMENT_124_DAY1, SHIPMENT_124_DAY2)
        ),
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
        6
    );
    // Day 2's reports, D = 2026-03-03.
    // Holidays: the year is now 2025-03-04 … 2026-03-03. Order 17 (2025-03-03) drops out of it;
    // orders 8 and 32 are on Founders Day, D itself (order_date ≤ D) → March 2. The other months
    // are as on day 1: Jan 2, Feb 4, May 2, Oct 1, Dec 3.
    assert_eq!(
        report(&env, "audit.agg_public_holiday", DAY2).await,
        rows(&[&["(2026-03-03,2,4,2,0,2,0,0,0,0,1,0,3)"]])
    );
    // Shipments: 124 was delivered on Mar 2 → no longer late: 101, 105, 112, 113 and 119 = 5.
    // Undelivered: day 1's four (104, 110, 121, 130) and now 131 (Feb 16 + 15 days = Mar 3 =
    // D) = 5; 107's order is on D itself, 103's on Mar 1.
    assert_eq!(
        report(&env, "audit.agg_shipments", DAY2).await,
        rows(&[&["(2026-03-03,5,5)"]])
    );
    // Reviews: Atlas 9 (39), Kite 10 (41), Radio 10 (43), Lamp 10 (43), Mug 2. Three products
    // tie on 10 reviews; Radio and Lamp have more points than Kite and tie on 43; the lower
    // product_id wins → Radio (3).
    // Its orders per day: Christmas two (5 and 13, quantity 1 + 1), 2026-01-20 two (14 and 15,
    // 1 + 1), Feb 25 one (16, quantity 3): Christmas and Jan 20 tie on orders and quantity →
    // the earlier date, 2025-12-25, a Thursday holiday (t).
    // Stars of 10: three-star 1 → 10.00, four-star 5 → 50.00, five-star 4 → 40.00; 43 points.
    // Shipments of its orders: 104 (never shipped), 113 (late), 114, 115 (6 days but delivered)
    // and 116 (2 days) → 1 late of 5 = 20.00, 80.00 early.
    assert_eq!(
        report(&env, "audit.best_performing_product", DAY2).await,
        rows(&[&["(2026-03-03,Radio,2025-12-25,t,43,0.00,0.00,10.00,50.00,40.00,80.00,20.00)"]])
    );
    // Revenue: as on day 1, plus order 8 for Kite (55.00 + 5.00 = 60.00, 7 orders) and order 32
    // for Atlas (50.00 + 10.00 = 60.00, 4 orders): a tie, the lower product_id ranks first;
    // Kite under its day-2 name. Soap is still 11th.
    assert_eq!(
        report(&env, "audit.top_products_by_revenue", DAY2).await,
        rows(&[
            &["(2026-03-03,1,3,Radio,140.00,5)"],
            &["(2026-03-03,2,10,Drum,135.00,2)"],
            &["(2026-03-03,3,8,Tent,120.00,1)"],
            &["(2026-03-03,4,1,Atlas,60.00,4)"],
            &["(2026-03-03,5,2,\"Kite Pro\",60.00,7)"],
            &["(2026-03-03,6,4,Lamp,45.00,2)"],
            &["(2026-03-03,7,5,Mug,32.00,3)"],
            &["(2026-03-03,8,6,Pen,20.00,3)"],
            &["(2026-03-03,9,7,Sock,18.00,3)"],
            &["(2026-03-03,10,9,,1.00,1)"],
        ])
    );
    // The 12 months are still Apr 2025 … Mar 2026. March gains orders 8 (5.00) and 32 (10.00),
    // both on D itself: 10.00 + 5.00 + 10.00 = 25.00 from 3 orders. The other months are as on
    // day 1: 29 orders and 576.50 + 15.00 = 591.50 in all.
    assert_eq!(
        report(&env, "audit.sales_by_month", DAY2).await,
        rows(&[
            &["(2026-03-03,2025-04-01,16.00,1)"],
            &["(2026-03-03,2025-05-01,18.00,2)"],
            &["(2026-03-03,2025-06-01,90.00,1)"],
            &["(2026-03-03,2025-07-01,0.00,0)"],
            &["(2026-03-03,2025-08-01,3.00,1)"],
            &["(2026-03-03,2025-09-01,0.50,1)"],
            &["(2026-03-03,2025-10-01,9.00,1)"],
            &["(2026-03-03,2025-11-01,31.00,2)"],
            &["(2026-03-03,2025-12-01,160.00,3)"],
            &["(2026-03-03,2026-01-01,95.00,4)"],
            &["(2026-03-03,2026-02-01,144.00,10)"],
            &["(2026-03-03,2026-03-01,25.00,3)"],
        ])
    );
    // Day 1's rows are still there (history kept), though day 2's differ.
    assert_eq!(
        report(&env, "audit.agg_public_holiday", DAY1).await,
        rows(&[&[holidays_day1]])
    );
    assert_eq!(
        report(&env, "audit.agg_shipments", DAY1).await,
        rows(&[&["(2026-03-02,6,4)"]])
    );

    // A corrected day-1 reviews file lands after day 2: Kite's one-star review is withdrawn.
    // Kite then has 9 reviews (1 three-star, 3 four-star, 5 five-star = 40 points) and Atlas 9
    // (39 points): the tie on count goes to the higher points → Kite, named "Kite" on day 1
    // (the version valid on the batch date; "Kite Pro" since day 2). Stars of 9: 100/9 = 11.11,
    // 300/9 = 33.33, 500/9 = 55.555… → 55.56. Its most ordered day and shipments are day 1's:
    // Feb 16 (t), 42.86 late, 57.14 early.
    let fact_reviews_before = query_text(
        &env,
        "SELECT t::text FROM warehouse.fact_reviews t ORDER BY product_id, stars, ordinal",
    )
    .await;
    let day2_before = report(&env, "audit.best_performing_product", DAY2).await;
    let day2_exported_at = exported_at(&env, DAY2).await;
    let corrected = REVIEWS_DAY1.replacen("\n1,2\n", "\n", 1);
    assert_eq!(corrected.lines().count(), REVIEWS_DAY1.lines().count() - 1);
    put(&env, DAY1, "reviews", corrected).await;
    wait_transforms(&env, DAY1, 3).await;
    wait_exported(&env, DAY1).await;
    // Re-exported with the corrected values; day 2's export untouched.
    let best_csv = env
        .get_text(&export_key("best_performing_product", DAY1))
        .await;
    assert!(
        best_csv
            .contains("2026-03-02,Kite,2026-02-16,t,40,0.00,0.00,11.11,33.33,55.56,57.14,42.86"),
        "{best_csv}"
    );
    assert_eq!(exported_at(&env, DAY2).await, day2_exported_at);
    assert_eq!(
        report(&env, "audit.best_performing_product", DAY1).await,
        rows(&[&["(2026-03-02,Kite,2026-02-16,t,40,0.00,0.00,11.11,33.33,55.56,57.14,42.86)"]])
    );
    assert_eq!(
        report(&env, "audit.best_performing_product", DAY2).await,
        day2_before
    );
    assert_eq!(
        query_text(
            &env,
            "SELECT t::text FROM warehouse.fact_reviews t ORDER BY product_id, stars, ordinal"
        )
        .await,
        fact_reviews_before
    );

    // An error-severity check failing stops the export: a duplicate order slipped into day 2's
    // staging (the stager would have rejected it from a file) and the batch is transformed again.
    // It is a row of the staged file, so the `staging.orders` the models and checks read shows it.
    env.db
        .batch_execute(&format!(
            "INSERT INTO staging_rows.orders SELECT _file_id, _line + 1000, _batch, order_id, customer_id, order_date, product_id,
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
    env.wait_exported("ecommerce", date, DEADLINE).await;
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
    let datasets = env.datasets();
    let ecommerce = datasets.get("ecommerce").expect("the ecommerce dataset");
    catalog::models::ModelSet::load(&ecommerce.models_folder())
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
    assert_eq!(all.len(), 12);
    assert_dependency_order(&ran, &dependencies);

    // Rows per model, by hand, on an empty warehouse, and what the tables hold for the batch:
    // dim_date the whole years 2025 and 2026 (orders from 2025-01-01 to 2026-03-01, the
    // calendar 2025–2026) = 365 + 365; the six customers; the ten products; orders 1–7 and
    // 9–31 = 30; shipments 100–106 and 108–131 = 31; fact_reviews the 33 review lines (the
    // empty ones too), the batch it now holds, and its counts of the 14 products and stars
    // (Atlas 5, 4 and empty; Kite 1, 3, 4 and 5; Radio 3, 4 and 5; Lamp 5 and 4; Mug 2 and 1);
    // one row per batch for the three single-row reports; sales_by_month the 12 months
    // Apr 2025 … Mar 2026; top_products_by_revenue 10 of the 11 products ordered;
    // holiday_calendar the batch's calendar as a version: its 11 dates and the version itself.
    let d = DAY1;
    let expected: &[(&str, u64, String)] = &[
        (
            "holiday_calendar",
            12,
            "SELECT (SELECT count(*) FROM warehouse.holiday_calendar_days)
                  + (SELECT count(*) FROM warehouse.holiday_calendars)"
                .into(),
        ),
        (
            "dim_date",
            730,
            "SELECT count(*) FROM warehouse.dim_date".into(),
        ),
        (
            "dim_customer",
            6,
            "SELECT count(*) FROM warehouse.dim_customer WHERE customer_key <> -1".into(),
        ),
        (
            "dim_product",
            10,
            "SELECT count(*) FROM warehouse.dim_product WHERE product_key <> -1".into(),
        ),
        (
            "fact_orders",
            30,
            format!("SELECT count(*) FROM warehouse.fact_orders WHERE last_batch = '{d}'"),
        ),
        (
            "fact_shipments",
            31,
            format!("SELECT count(*) FROM warehouse.fact_shipments WHERE last_batch = '{d}'"),
        ),
        (
            "fact_reviews",
            48,
            format!(
                "SELECT (SELECT count(*) FROM warehouse.fact_reviews WHERE last_batch = '{d}')
                      + (SELECT count(*) FROM warehouse.fact_reviews_batch WHERE batch = '{d}')
                      + (SELECT count(*) FROM warehouse.fact_reviews_counts)"
            ),
        ),
        (
            "agg_public_holiday",
            1,
            format!("SELECT count(*) FROM audit.agg_public_holiday WHERE ingestion_date = '{d}'"),
        ),
        (
            "agg_shipments",
            1,
            format!("SELECT count(*) FROM audit.agg_shipments WHERE ingestion_date = '{d}'"),
        ),
        (
            "best_performing_product",
            1,
            format!(
                "SELECT count(*) FROM audit.best_performing_product WHERE ingestion_date = '{d}'"
            ),
        ),
        (
            "sales_by_month",
            12,
            format!("SELECT count(*) FROM audit.sales_by_month WHERE ingestion_date = '{d}'"),
        ),
        (
            "top_products_by_revenue",
            10,
            format!(
                "SELECT count(*) FROM audit.top_products_by_revenue WHERE ingestion_date = '{d}'"
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

    // The run as recorded: the same list, and the models' times fit within the run's: each one
    // within it, and together within two at a time (LANDFALL_TRANSFORM_PARALLELISM's default).
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
    let longest_ms = payload
        .models
        .iter()
        .map(|run| run.duration_ms)
        .max()
        .unwrap_or(0);
    assert!(
        run_ms >= 0.0,
        "the run ended before it started: {run_ms} ms"
    );
    assert!(
        longest_ms as f64 <= run_ms + 1.0 && models_ms as f64 <= 2.0 * (run_ms + 1.0),
        "the models took {models_ms} ms (the longest {longest_ms} ms) in a run of {run_ms} ms: {:?}",
        payload.models
    );

    transformer.stop().await;
    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}

/// Running a batch again (`landfall transform`) publishes a second `transform.completed` whose
/// report row counts are still the rows each report holds for the batch — 12 months, 10 ranked
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
        ("top_products_by_revenue", 10),
        ("agg_public_holiday", 1),
        ("agg_shipments", 1),
        ("best_performing_product", 1),
    ] {
        let held = env
            .count(&format!(
                "SELECT count(*) FROM audit.{report} WHERE ingestion_date = '{DAY1}'"
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

    // agg_public_holiday depends on holiday_calendar only.
    let output = transform(&["agg_public_holiday"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(last_run().await, ["holiday_calendar", "agg_public_holiday"]);
    let table_models: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| dependencies.iter().any(|(name, _)| name == word))
        .collect();
    assert_eq!(
        table_models,
        ["holiday_calendar", "agg_public_holiday"],
        "{stdout}"
    );
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
    assert_eq!(published, ["holiday_calendar", "agg_public_holiday"]);
    // Its value as worked out in the big test (January 2, February 4, March 1, May 2, October 1,
    // December 3) — it needs only the holiday calendar as of its date.
    assert_eq!(
        report(&env, "audit.agg_public_holiday", DAY1).await,
        rows(&[&["(2026-03-02,2,4,1,0,2,0,0,0,0,1,0,3)"]])
    );
    // The day's calendar: the 11 dates of HOLIDAYS.
    assert_eq!(count("warehouse.holiday_calendar_days").await, 11);
    for table in [
        "warehouse.dim_date",
        "warehouse.dim_customer",
        "warehouse.dim_product",
        "warehouse.fact_orders",
        "warehouse.fact_shipments",
        "warehouse.fact_reviews",
        "audit.agg_shipments",
        "audit.best_performing_product",
        "audit.sales_by_month",
        "audit.top_products_by_revenue",
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
            "fact_reviews",
            "holiday_calendar"
        ]
    );
    assert_dependency_order(
        &ran.iter().map(String::as_str).collect::<Vec<_>>(),
        &dependencies,
    );
    // The big test's hand-worked day-1 row.
    assert_eq!(
        report(&env, "audit.best_performing_product", DAY1).await,
        rows(&[&["(2026-03-02,Kite,2026-02-16,t,41,10.00,0.00,10.00,30.00,50.00,57.14,42.86)"]])
    );
    assert_eq!(count("warehouse.fact_orders").await, 30);
    assert_eq!(count("warehouse.dim_customer").await, 6);
    for table in [
        "warehouse.fact_shipments",
        "audit.agg_shipments",
        "audit.sales_by_month",
        "audit.top_products_by_revenue",
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
