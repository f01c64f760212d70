//! Reports as of their own date: a late correction of an old batch's product snapshot or
//! holiday calendar changes that batch's reports and no other's, whatever order the days land
//! in, and the product dimension's history (valid from, valid to, current) follows the
//! snapshots: a correction changes its own days only. Every batch is re-run at the end, so a
//! report that read a later or corrected day's state would show it.

use std::fmt::Write as _;
use std::time::Duration;

use landfall_tests::{TestEnv, data};

const DEADLINE: Duration = Duration::from_secs(120);
const DAYS: [&str; 7] = [
    "2026-03-02",
    "2026-03-03",
    "2026-03-04",
    "2026-03-05",
    "2026-03-06",
    "2026-03-07",
    "2026-03-08",
];
/// Monday 5 January 2026: a holiday in every calendar. Tuesday 6 January joins from day 4 on.
const HOLIDAY: &str = "2026-01-05";
const LATER_HOLIDAY: &str = "2026-01-06";

/// Every product (ids 1..=13, as in `data::orders_csv` and `data::reviews_csv`) named
/// `item <id> <version>`.
fn products(version: &str) -> String {
    let mut csv = String::from("product_id,product_category,product_name\n");
    for id in 1..=13 {
        writeln!(csv, "{id},things,item {id} {version}").unwrap();
    }
    csv
}

fn holidays(with_later: bool) -> String {
    let mut csv = format!("holiday_date,name\n{HOLIDAY},First\n");
    if with_later {
        writeln!(csv, "{LATER_HOLIDAY},Second").unwrap();
    }
    csv
}

/// Puts `file` of `date` and waits until it is the staged version of its source.
async fn put(env: &TestEnv, date: &str, file: &str, body: String) {
    env.put_staged(date, file, body, DEADLINE).await;
}

async fn wait_exported(env: &TestEnv, date: &str) {
    env.wait_exported("ecommerce", date, DEADLINE).await;
}

/// A whole day: its snapshots first, then the facts; waits for its export.
async fn land_day(env: &TestEnv, date: &str, version: &str, with_later_holiday: bool) {
    let files = vec![
        ("holidays.csv", holidays(with_later_holiday)),
        ("products.csv", products(version)),
        ("orders.csv", data::orders_csv(1, 40)),
        ("reviews.csv", data::reviews_csv(60)),
        ("shipment_deliveries.csv", data::shipments_csv(40)),
    ];
    env.land_day(date, files, DEADLINE).await;
}

/// The version suffix of every product name the published reports of `date` show, and the
/// January count of orders on public holidays.
async fn as_published(env: &TestEnv, date: &str) -> (Vec<String>, String) {
    let names = env
        .query_text(&format!(
            "SELECT product_name FROM analytics.best_performing_product WHERE ingestion_date = '{date}'
             UNION
             SELECT product_name FROM analytics.top_products_by_revenue WHERE ingestion_date = '{date}'"
        ))
        .await;
    let mut versions: Vec<String> = names
        .iter()
        .map(|row| row[0].rsplit(' ').next().unwrap_or_default().to_owned())
        .collect();
    versions.sort();
    versions.dedup();
    let january = env
        .query_text(&format!(
            "SELECT tt_order_hol_jan::text FROM analytics.agg_public_holiday WHERE ingestion_date = '{date}'"
        ))
        .await;
    (versions, january[0][0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_corrections_change_only_their_own_days_reports() {
    let env = TestEnv::new().await;
    let services = env.start_pipeline(&[], DEADLINE).await;
    // data::orders_csv(1, 40): order `id` is dated 2026-01-(id % 28 + 1), so 5 January holds
    // orders 4 and 32, 6 January orders 5 and 33: two orders on a holiday in the first calendar,
    // four in the second.
    let [d1, d2, d3, d4, d5, d6, d7] = DAYS;
    land_day(&env, d1, "v1", false).await;
    land_day(&env, d2, "v1", false).await;
    land_day(&env, d3, "v1", false).await;
    land_day(&env, d4, "v2", true).await;
    land_day(&env, d5, "v2", true).await;

    // Late corrections. Day 2 renamed inside the version day 1 opened and day 3 carried on: day
    // 3 keeps v1. Day 4's name, which day 5 carried on, corrected: day 5 keeps v2. Day 1's
    // corrected in place. Day 4's calendar loses the second holiday (day 5's keeps it).
    put(&env, d2, "products.csv", products("v3")).await;
    wait_exported(&env, d2).await;
    put(&env, d4, "products.csv", products("v4")).await;
    wait_exported(&env, d4).await;
    put(&env, d1, "products.csv", products("v5")).await;
    wait_exported(&env, d1).await;
    put(&env, d4, "holidays.csv", holidays(false)).await;
    wait_exported(&env, d4).await;

    // Out of order: day 7 (renamed) before day 6 (as day 5).
    land_day(&env, d7, "v6", true).await;
    land_day(&env, d6, "v2", true).await;

    // The dimension's history follows the snapshots whatever the order of the corrections:
    // each correction changed its own days only, and the current version is day 7's.
    let history = || async {
        env.query_text(
            "SELECT product_name, valid_from::text, coalesce(valid_to::text, 'open'), is_current::text
               FROM warehouse.dim_product WHERE product_id = 1 ORDER BY valid_from",
        )
        .await
    };
    let expected_history: Vec<Vec<String>> = [
        ("v5", d1, d2, "false"),
        ("v3", d2, d3, "false"),
        ("v1", d3, d4, "false"),
        ("v4", d4, d5, "false"),
        ("v2", d5, d7, "false"),
        ("v6", d7, "open", "true"),
    ]
    .iter()
    .map(|(version, from, to, current)| {
        vec![
            format!("item 1 {version}"),
            (*from).to_owned(),
            (*to).to_owned(),
            (*current).to_owned(),
        ]
    })
    .collect();
    assert_eq!(history().await, expected_history);

    // Every day again from its transform: each must read its own date's dimension rows and
    // calendar, not whatever a later or corrected day left current.
    for date in DAYS {
        env.landfall_ok(&["replay", "--dataset", "ecommerce", "--date", date])
            .await;
        wait_exported(&env, date).await;
    }
    let expected = [
        (d1, "v5", "2"),
        (d2, "v3", "2"),
        (d3, "v1", "2"),
        (d4, "v4", "2"),
        (d5, "v2", "4"),
        (d6, "v2", "4"),
        (d7, "v6", "4"),
    ];
    let mut mismatches = Vec::new();
    for (date, version, january) in expected {
        let (versions, holiday_orders) = as_published(&env, date).await;
        if versions != [version] || holiday_orders != january {
            mismatches.push(format!(
                "{date}: names {versions:?} (expected [{version}]), January holiday orders \
                 {holiday_orders} (expected {january})"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(
        history().await,
        expected_history,
        "after every day ran again"
    );

    for service in services {
        service.stop().await;
    }
    env.cleanup().await;
}
