//! Write, audit, publish: the models write a batch's reports to `audit.*`, and readers of
//! `analytics.*` see them only once the batch's checks passed. While a batch's checks run, and
//! after they fail, readers see the batch's previously published rows, or none for a batch
//! never published; `landfall status` says which.

use std::time::{Duration, Instant};

use landfall_tests::checks::bundled_checks_with;
use landfall_tests::{TestEnv, data};

const DEADLINE: Duration = Duration::from_secs(120);
const DAY: &str = "2026-03-02";
const NEXT_DAY: &str = "2026-03-03";

/// Two checks of this test, beside the bundled ones: an error-severity gate a file can fail
/// (no order of more than 1000 items), and a check that takes a second to run, so the test
/// reads the published tables while a batch's checks are under way.
const CHECKS: &str = r#"
[[checks]]
name = "orders_quantity_plausible"
description = "No order of more than 1000 items."
kind = "expression"
severity = "error"
table = "staging.orders"
expression = "quantity <= 1000"
where = "_batch = (SELECT ops.batch_date())"

[[checks]]
name = "slow_check"
description = "Takes a second and finds nothing."
kind = "custom_sql"
severity = "error"
sql = "SELECT 1 AS never FROM pg_sleep(1) AS s WHERE random() < 0"
"#;

/// `orders.csv` of [`data::orders_csv`] with order 1's quantity (and total) replaced.
fn orders_with_first_quantity(quantity: i64) -> String {
    let csv = data::orders_csv(1, 40);
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let fields: Vec<&str> = lines[1].split(',').collect();
    let cents: i64 = fields[4].replace('.', "").parse().expect("unit price");
    let total = cents * quantity;
    lines[1] = format!(
        "{},{},{},{},{},{quantity},{}.{:02}",
        fields[0],
        fields[1],
        fields[2],
        fields[3],
        fields[4],
        total / 100,
        total % 100
    );
    lines.join("\n") + "\n"
}

/// Puts a new `orders.csv` for `date` and waits until it is the staged one.
async fn put_day(env: &TestEnv, date: &str, orders: String) {
    env.put_staged(date, "orders.csv", orders, DEADLINE).await;
}

async fn put_batch(env: &TestEnv, date: &str, orders: String) {
    env.put(
        &TestEnv::landing_key(date, "reviews.csv"),
        data::reviews_csv(60),
    )
    .await;
    env.put(
        &TestEnv::landing_key(date, "shipment_deliveries.csv"),
        data::shipments_csv(40),
    )
    .await;
    put_day(env, date, orders).await;
}

/// Every report's rows of `date` in `schema`, as text, read in one statement (one snapshot).
async fn reports(env: &TestEnv, schema: &str, date: &str) -> Vec<Vec<String>> {
    let ecommerce = env.datasets();
    let reports = &ecommerce.get("ecommerce").expect("bundled dataset").reports;
    assert_eq!(reports.len(), 5, "the five ecommerce reports: {reports:?}");
    let selects: Vec<String> = reports
        .iter()
        .map(|report| {
            format!(
                "SELECT '{report}' AS report, t::text AS row FROM {schema}.{report} t
                  WHERE ingestion_date = '{date}'"
            )
        })
        .collect();
    env.query_text(&format!("{} ORDER BY 1, 2", selects.join(" UNION ALL ")))
        .await
}

/// Reads `analytics.*` for `date` every few milliseconds until the batch settles, asserting
/// each read shows `before` (the batch's rows published earlier) or, when the run is to pass
/// (`passes`), exactly the audited rows; returns the settled state and whether a read happened
/// while `audit.*` held rows other than `before` and the checks had not settled.
async fn watch_until_settled(
    env: &TestEnv,
    date: &str,
    before: &[Vec<String>],
    passes: bool,
) -> (String, bool) {
    let started = Instant::now();
    let mut seen_unaudited = false;
    loop {
        let state = env
            .settled_state("ecommerce", date)
            .await
            .expect("batch state");
        let visible = reports(env, "analytics", date).await;
        let audited = reports(env, "audit", date).await;
        // A publish commits between the two reads at most once: then visible is what audit
        // holds from then on.
        let allowed = visible == before || (passes && visible == audited);
        assert!(
            allowed,
            "readers of analytics.* saw rows of batch {date} that did not pass its checks:\n\
             visible {visible:?}\nbefore {before:?}\naudited {audited:?}"
        );
        if audited != before && visible == before && state.is_none() {
            seen_unaudited = true;
        }
        if let Some(state) = state {
            return (state, seen_unaudited);
        }
        assert!(
            started.elapsed() < DEADLINE,
            "batch {date} did not settle within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `published` column of `landfall status` for `date`.
async fn status_published(env: &TestEnv, date: &str) -> String {
    let output = env.landfall(&["status", "--dataset", "ecommerce"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|line| line.starts_with("ecommerce") && line.contains(date) && line.contains("  "))
        .unwrap_or_else(|| panic!("no batch line for {date} in:\n{stdout}"));
    ["earlier run", "yes", "no"]
        .into_iter()
        .find(|word| line.split("  ").any(|cell| cell.trim() == *word))
        .unwrap_or_else(|| panic!("no published cell in {line:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_batches_that_pass_their_checks_are_visible_in_analytics() {
    let env = TestEnv::new().await;
    let datasets = bundled_checks_with(&env, CHECKS);
    let datasets_var = [(
        "LANDFALL_DATASETS_DIR",
        datasets.to_str().expect("UTF-8 path"),
    )];
    let services = env.start_pipeline(&datasets_var, DEADLINE).await;

    // A good batch: published, exactly what the models wrote.
    put_batch(&env, DAY, orders_with_first_quantity(3)).await;
    let (state, _) = watch_until_settled(&env, DAY, &[], true).await;
    assert_eq!(state, "exported");
    let first = reports(&env, "analytics", DAY).await;
    assert_eq!(first.len(), 1 + 1 + 1 + 12 + 10, "{first:?}");
    assert_eq!(first, reports(&env, "audit", DAY).await);
    assert_eq!(status_published(&env, DAY).await, "yes");

    // A corrected file that fails the gate: the models write its rows to audit.*, but readers
    // see the first rows while its checks run and after they fail.
    put_day(&env, DAY, orders_with_first_quantity(5000)).await;
    let (state, seen_unaudited) = watch_until_settled(&env, DAY, &first, false).await;
    assert_eq!(state, "quality_failed");
    assert!(
        seen_unaudited,
        "no read happened while the failing run's rows were in audit.* and its checks ran"
    );
    let failing = reports(&env, "audit", DAY).await;
    assert_ne!(failing, first, "the failing run wrote other report rows");
    assert_eq!(reports(&env, "analytics", DAY).await, first);
    assert_eq!(status_published(&env, DAY).await, "earlier run");

    // A new batch that fails: never visible at all.
    put_batch(&env, NEXT_DAY, orders_with_first_quantity(5000)).await;
    let (state, _) = watch_until_settled(&env, NEXT_DAY, &[], false).await;
    assert_eq!(state, "quality_failed");
    assert!(!reports(&env, "audit", NEXT_DAY).await.is_empty());
    assert!(reports(&env, "analytics", NEXT_DAY).await.is_empty());
    assert_eq!(status_published(&env, NEXT_DAY).await, "no");

    // A corrected file that passes: its rows replace the first ones, all reports at once.
    put_day(&env, DAY, orders_with_first_quantity(4)).await;
    let (state, _) = watch_until_settled(&env, DAY, &first, true).await;
    assert_eq!(state, "exported");
    let second = reports(&env, "analytics", DAY).await;
    assert_ne!(
        second, first,
        "quantity 4 instead of 3 changes the revenue reports"
    );
    assert_eq!(second, reports(&env, "audit", DAY).await);
    assert_eq!(status_published(&env, DAY).await, "yes");

    for service in services {
        service.stop().await;
    }
    let _ = std::fs::remove_dir_all(&datasets);
    env.cleanup().await;
}
