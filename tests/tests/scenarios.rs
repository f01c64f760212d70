//! Seeded multi-day scenarios (renames, late corrections, a holiday added later, re-deliveries
//! in other legal forms, days out of order, duplicate deliveries) landed in S3 and run through
//! all five services; every batch's rows of the five `analytics.*` reports and their exported
//! CSVs are compared with an independent reference computed from the landing files
//! (`landfall_tests::reference`). Also the unit tests of that reference on a tiny example
//! worked out by hand.
//!
//! Long mode: `cargo test -p landfall-tests --test scenarios -- --ignored` runs 25 more seeds
//! (`LANDFALL_SCENARIO_SEEDS=N` for another number).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::NaiveDate;
use landfall_tests::reference::{
    self, Cell, DayFiles, Landing, Order, Product, REPORTS, parse_csv, percent_hundredths,
};
use landfall_tests::scenario::{Form, Scenario, encode, landing_key};
use landfall_tests::scenario_run::{ExpectedReport, compare_report, date, file_state, quiescent};
use landfall_tests::{ServiceHandle, TestEnv, wait_until};

/// For every batch of a scenario to be exported from its latest files.
const DEADLINE: Duration = Duration::from_secs(240);

async fn start_pipeline() -> (TestEnv, Vec<ServiceHandle>) {
    let env = TestEnv::new().await;
    let services = env.start_pipeline(&[], Duration::from_secs(60)).await;
    (env, services)
}

/// Puts the scenario's uploads in order; returns each put's (key, ETag).
///
/// Versions of one `(date, source)` under two keys (`orders.csv`, then `orders.csv.gz`) are
/// not ordered by the stager: it stages whichever version its consumers reach last (the ETag
/// check only orders versions of one key; put back to back, 5 dates of 20 kept the older
/// `.csv`). That is reported, not tested here: before a source's file lands under another key
/// than its previous version, that version is waited for until the stager has finished it,
/// as files landing seconds apart would be.
async fn land(env: &TestEnv, scenario: &Scenario) -> Vec<(String, String)> {
    let mut puts = Vec::new();
    let mut previous: HashMap<(NaiveDate, String), (String, String)> = HashMap::new();
    for upload in &scenario.uploads {
        let (day, source, _) = reference::parse_key(&upload.key).expect("a landing key");
        if let Some((key, etag)) = previous.get(&(day, source.clone()))
            && *key != upload.key
        {
            wait_until(
                &format!("{key} ({etag}) staged before {} lands", upload.key),
                DEADLINE,
                || async {
                    let state = file_state(env, key, etag).await?;
                    Ok(state.filter(|state| state != "landed").map(|_| ()))
                },
            )
            .await;
        }
        let etag = env.put(&upload.key, upload.body.clone()).await;
        previous.insert((day, source), (upload.key.clone(), etag.clone()));
        puts.push((upload.key.clone(), etag));
    }
    puts
}

/// Keys whose object in S3 is not the last body put to them (S3 must hold the last write).
async fn s3_not_last_put(env: &TestEnv, scenario: &Scenario) -> Vec<String> {
    let mut last: BTreeMap<&str, (usize, &[u8])> = BTreeMap::new();
    for (index, upload) in scenario.uploads.iter().enumerate() {
        last.insert(upload.key.as_str(), (index, upload.body.as_slice()));
    }
    let mut wrong = Vec::new();
    for (key, (index, body)) in last {
        let object = env
            .s3
            .get_object()
            .bucket(landfall_tests::BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|error| panic!("getting {key}: {error:?}"));
        let etag = object
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned();
        let held = object
            .body
            .collect()
            .await
            .expect("object body")
            .into_bytes();
        if held.as_ref() != body {
            let held_upload: Vec<String> = scenario
                .uploads
                .iter()
                .enumerate()
                .filter(|(_, upload)| upload.key == key && upload.body == held.as_ref())
                .map(|(index, upload)| format!("#{index} {}", upload.what))
                .collect();
            wrong.push(format!(
                "seed {}: S3 holds {key} (ETag {etag}) as put by {held_upload:?}, not as last put by #{index} {}",
                scenario.seed, scenario.uploads[index].what
            ));
        }
    }
    wrong
}

/// Appends the differences between `expected` and `actual` rows (cells as text).
#[allow(clippy::too_many_arguments)]
fn diff_rows(
    out: &mut Vec<String>,
    scenario: &Scenario,
    day: NaiveDate,
    report: &str,
    place: &str,
    columns: &[String],
    expected: &[Vec<String>],
    actual: &[Vec<String>],
) {
    // A holiday added to the calendar after D: in its month's count of agg_public_holiday,
    // or possibly the most ordered day's is_public_holiday.
    let later_holiday = |column: &str| {
        scenario.added_holidays.iter().any(|(from, holiday)| {
            *from > day
                && (column == "is_public_holiday"
                    || (report == "agg_public_holiday"
                        && column.ends_with(&holiday.format("%b").to_string().to_lowercase()[..])))
        })
    };
    let hint = |column: &str, expected: &str, actual: &str| -> &'static str {
        let renamed = |name: &str| {
            scenario
                .renamed_products
                .values()
                .any(|names| names.iter().any(|known| known == name))
        };
        if column == "product_name" && (renamed(expected) || renamed(actual)) {
            "  [a renamed product: the name as of D is expected]"
        } else if later_holiday(column) {
            "  [the calendar changed on a later day: the calendar as of D is expected]"
        } else {
            ""
        }
    };
    let prefix = format!("seed {} batch {day} {report} ({place})", scenario.seed);
    if expected.len() != actual.len() {
        out.push(format!(
            "{prefix}: {} rows expected, {} found",
            expected.len(),
            actual.len()
        ));
    }
    for (index, (want, got)) in expected.iter().zip(actual).enumerate() {
        if want.len() != got.len() {
            out.push(format!(
                "{prefix} row {index}: expected {want:?}, found {got:?}"
            ));
            continue;
        }
        for ((column, want), got) in columns.iter().zip(want).zip(got) {
            if want != got {
                out.push(format!(
                    "{prefix} row {index} column {column}: expected {want:?}, actual {got:?}{}",
                    hint(column, want, got)
                ));
            }
        }
    }
    for extra in expected.iter().skip(actual.len()) {
        out.push(format!("{prefix}: missing row {extra:?}"));
    }
    for extra in actual.iter().skip(expected.len()) {
        out.push(format!("{prefix}: unexpected row {extra:?}"));
    }
}

/// Whether the puts (key, ETag) `a` and `b` of `source` carry the same rows.
fn same_rows(
    scenario: &Scenario,
    puts: &[(String, String)],
    a: (&str, &str),
    b: (&str, &str),
    source: &str,
) -> bool {
    let rows = |(key, etag): (&str, &str)| {
        let index = puts.iter().position(|put| put.0 == key && put.1 == etag)?;
        let (_, _, gzip) = reference::parse_key(key).ok()?;
        let mut files = DayFiles::default();
        files
            .set_file(source, &scenario.uploads[index].body, gzip)
            .ok()?;
        Some(files)
    };
    matches!((rows(a), rows(b)), (Some(a), Some(b)) if a == b)
}

/// Every difference between the pipeline's reports (tables and exported CSVs) and the
/// reference's, one line each.
async fn compare(env: &TestEnv, scenario: &Scenario, puts: &[(String, String)]) -> Vec<String> {
    let landing = Landing::from_uploads(
        scenario
            .uploads
            .iter()
            .map(|upload| (upload.key.as_str(), upload.body.as_slice())),
    )
    .expect("the reference reads every upload");
    // The reference reads back from the bytes exactly the rows the generator meant.
    assert_eq!(
        landing.days, scenario.logical,
        "seed {}: the reference's reading of the uploads",
        scenario.seed
    );
    let mut mismatches = Vec::new();
    // The stager staged the last delivered version of every (date, source): the last put,
    // whatever its ledger id (the ingester's consumers record notifications side by side, so
    // a later put can get the smaller file_id).
    let mut last_put: BTreeMap<(NaiveDate, String), &(String, String)> = BTreeMap::new();
    for put in puts {
        let (day, source, _) = reference::parse_key(&put.0).expect("a landing key");
        last_put.insert((day, source), put);
    }
    let staged = env
        .query_text(
            "SELECT s.ingestion_date::text, s.source, f.key, trim(both '\"' FROM f.etag), f.file_id::text
               FROM ops.staged_sources s JOIN ops.files f USING (file_id)
              WHERE s.dataset = 'ecommerce'",
        )
        .await;
    for ((day, source), (key, etag)) in &last_put {
        let found = staged
            .iter()
            .find(|row| row[0] == day.to_string() && row[1] == *source);
        match found {
            Some(row) if row[2] == *key && row[3] == *etag => {}
            Some(row) if same_rows(scenario, puts, (&row[2], &row[3]), (key, etag), source) => {
                // Seen: customers.csv, then customers.csv.gz, then customers.csv again with the
                // bytes it had: the ledger takes the last put for a duplicate of the first
                // (same key and ETag) and the .gz file stays staged. Same rows here, so the
                // reports agree; with other rows they would not.
                eprintln!(
                    "note: seed {} batch {day} {source}: {} (file {}) stays staged though {key} (ETag {etag}) was delivered after it, with the same rows",
                    scenario.seed, row[2], row[4]
                );
            }
            other => mismatches.push(format!(
                "seed {} batch {day} {source}: staged {other:?}, but the last delivered file is {key} (ETag {etag})",
                scenario.seed
            )),
        }
    }
    assert_eq!(landing.batches(), scenario.dates);
    mismatches.extend(compare_current_facts(env, scenario, &landing).await);
    for &day in &scenario.dates {
        let reports = landing.reports(day).expect("the reference's reports");
        for report in reports {
            let columns: Vec<String> = report.columns.iter().map(|c| (*c).to_owned()).collect();
            let expected = ExpectedReport {
                name: report.name,
                db_rows: report.db_rows(),
                csv: report.csv(),
                select_sql: report.select_sql(day),
            };
            let diff =
                |out: &mut Vec<String>, place: &str, want: &[Vec<String>], got: &[Vec<String>]| {
                    diff_rows(out, scenario, day, report.name, place, &columns, want, got)
                };
            compare_report(
                env,
                "ecommerce",
                scenario.seed,
                day,
                &expected,
                &mut mismatches,
                diff,
            )
            .await;
        }
    }
    mismatches
}

/// The current-state facts (spec §2–3): each order and shipment as the newest day that holds it
/// has it, whatever order the days landed in (a late day never rolls a row back), compared on
/// the source's columns.
async fn compare_current_facts(
    env: &TestEnv,
    scenario: &Scenario,
    landing: &Landing,
) -> Vec<String> {
    let date_text = |date: Option<NaiveDate>| date.map_or("NULL".to_owned(), |d| d.to_string());
    let mut orders: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut shipments: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    // Days in date order: a newer day's row replaces an older one's.
    for files in landing.days.values() {
        for order in files.orders.iter().flatten() {
            let row = [
                order.order_id.to_string(),
                order.customer_id.to_string(),
                order.order_date.to_string(),
                order.product_id.to_string(),
                order.unit_price.to_string(),
                order.quantity.to_string(),
                order.total_price.to_string(),
            ];
            orders.insert(order.order_id, row.to_vec());
        }
        for shipment in files.shipment_deliveries.iter().flatten() {
            let row = [
                shipment.shipment_id.to_string(),
                shipment.order_id.to_string(),
                date_text(shipment.shipment_date),
                date_text(shipment.delivery_date),
            ];
            shipments.insert(shipment.shipment_id, row.to_vec());
        }
    }
    let tables = [
        (
            "fact_orders",
            orders,
            "SELECT order_id::text, customer_id::text, order_date::text, product_id::text,
                    (unit_price * 100)::bigint::text, quantity::text, (total_price * 100)::bigint::text
               FROM warehouse.fact_orders ORDER BY order_id",
        ),
        (
            "fact_shipments",
            shipments,
            "SELECT shipment_id::text, order_id::text, shipment_date::text, delivery_date::text
               FROM warehouse.fact_shipments ORDER BY shipment_id",
        ),
    ];
    let mut mismatches = Vec::new();
    for (table, expected, sql) in tables {
        let actual: BTreeMap<i64, Vec<String>> = env
            .query_text(sql)
            .await
            .into_iter()
            .map(|row| (row[0].parse().expect("an integer key"), row))
            .collect();
        for key in expected
            .keys()
            .chain(actual.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let (want, got) = (expected.get(key), actual.get(key));
            if want != got {
                mismatches.push(format!(
                    "seed {} warehouse.{table} {key}: {got:?}, but the newest day holding it has {want:?}",
                    scenario.seed
                ));
            }
        }
    }
    mismatches
}

/// Runs `scenario` through the pipeline and returns its mismatches with the reference.
async fn run(scenario: &Scenario) -> Vec<String> {
    let started = Instant::now();
    let (env, services) = start_pipeline().await;
    let puts = land(&env, scenario).await;
    let s3_right_after = s3_not_last_put(&env, scenario).await;
    wait_until(
        &format!(
            "seed {}: every batch exported from its latest files",
            scenario.seed
        ),
        DEADLINE,
        || {
            quiescent(
                &env,
                "ecommerce",
                scenario.seed,
                &scenario.dates,
                puts.as_slice(),
            )
        },
    )
    .await;
    let settled = started.elapsed();
    let mut mismatches = s3_right_after;
    mismatches.extend(
        s3_not_last_put(&env, scenario)
            .await
            .into_iter()
            .map(|wrong| format!("{wrong} (once settled)")),
    );
    mismatches.extend(compare(&env, scenario, &puts).await);
    // How the batches were re-run (each transform run in order).
    let runs = env
        .query_text("SELECT ingestion_date::text FROM ops.transform_runs ORDER BY run_id")
        .await;
    let runs: Vec<&str> = runs.iter().map(|row| &row[0][5..]).collect();
    eprintln!(
        "seed {}: {} days, {} uploads, {} transform runs in this order {runs:?}; settled in {:.1} s, {} mismatch(es)",
        scenario.seed,
        scenario.dates.len(),
        scenario.uploads.len(),
        runs.len(),
        settled.as_secs_f64(),
        mismatches.len()
    );
    for service in services {
        service.stop().await;
    }
    env.cleanup().await;
    mismatches
}

fn describe(scenario: &Scenario) -> String {
    let uploads: Vec<&str> = scenario
        .uploads
        .iter()
        .map(|upload| upload.what.as_str())
        .collect();
    format!(
        "seed {}: renamed products {:?}, holidays added {:?}; uploads in order:\n  {}",
        scenario.seed,
        scenario.renamed_products,
        scenario.added_holidays,
        uploads.join("\n  ")
    )
}

async fn check_seeds(seeds: impl IntoIterator<Item = u64>) {
    let mut failures = Vec::new();
    for seed in seeds {
        let scenario = Scenario::generate(seed);
        let mismatches = run(&scenario).await;
        if !mismatches.is_empty() {
            failures.push(format!(
                "{}\n{} mismatch(es) with the reference:\n{}",
                describe(&scenario),
                mismatches.len(),
                mismatches.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_1_matches_the_reference() {
    check_seeds([1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_2_matches_the_reference() {
    check_seeds([2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_3_matches_the_reference() {
    check_seeds([3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long mode: 25 seeds (LANDFALL_SCENARIO_SEEDS=N for another number), several minutes"]
async fn many_seeds_match_the_reference() {
    let count: u64 = std::env::var("LANDFALL_SCENARIO_SEEDS")
        .ok()
        .map(|text| text.parse().expect("LANDFALL_SCENARIO_SEEDS is a number"))
        .unwrap_or(25);
    check_seeds(1000..1000 + count).await;
}

/// Three days land; the best product of day 1 is renamed on day 2; then day 1's files come
/// again (same rows, other column order) and day 1 is re-run after day 2's rename: its best
/// product keeps its day-1 name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_delivered_day_keeps_the_product_name_it_had() {
    let scenario = Scenario::renamed_best_product();
    let landing = Landing::from_uploads(
        scenario
            .uploads
            .iter()
            .map(|upload| (upload.key.as_str(), upload.body.as_slice())),
    )
    .unwrap();
    let day1 = scenario.dates[0];
    // By construction: product 3 is day 1's best product, named Kite on day 1.
    let best = &landing.reports(day1).unwrap()[2];
    assert_eq!(best.rows[0][1], Cell::Text("Kite".into()));
    let mismatches = run(&scenario).await;
    assert!(
        mismatches.is_empty(),
        "{}\n{} mismatch(es) with the reference:\n{}",
        describe(&scenario),
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The reference itself, on a tiny example worked out by hand.

const ORDERS: &str = "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price
1,1,2026-03-02,1,10.00,2,20.00
2,1,2026-03-02,1,5.50,1,5.50
3,2,2026-03-01,2,7.25,1,7.25
4,2,2025-03-05,1,1.00,3,3.00
5,2,2025-03-04,2,2.00,1,2.00
6,3,2026-02-10,3,100.00,1,100.00
7,1,2026-03-05,2,1.00,1,1.00
8,1,2026-02-15,1,0.10,1,0.10
9,2,2026-02-18,2,0.20,1,0.20
10,3,2026-02-20,1,1.00,1,1.00
11,3,2026-02-20,1,1.00,1,1.00
";
const SHIPMENTS: &str = "shipment_id,order_id,shipment_date,delivery_date
10,1,2026-03-02,2026-03-03
11,4,2025-03-11,
12,4,2025-03-10,
13,8,,
14,9,,
15,2,,2026-03-03
16,42,2026-01-01,
17,2,2026-03-04,
";
const REVIEWS: &str = "review,product_id\n5,1\n4,1\n4,1\n1,1\n,1\n5,2\n5,2\n2,2\n2,2\n,3\n,3\n";
const PRODUCTS_0303: &str =
    "product_id,product_category,product_name\n1,toys,Kite\n2,home,\"Lamp, \"\"Retro\"\"\"\n";
const PRODUCTS_0305: &str =
    "product_id,product_category,product_name\n1,toys,Kite Pro\n2,home,\"Lamp, \"\"Retro\"\"\"\n";
const HOLIDAYS_0303: &str =
    "holiday_date,name\n2026-03-02,A\n2026-03-01,B\n2025-03-04,C\n2025-03-05,D\n";
const HOLIDAYS_0305: &str =
    "holiday_date,name\n2026-03-02,A\n2026-03-01,B\n2025-03-04,C\n2025-03-05,D\n2026-02-10,E\n";

fn tiny_landing() -> Landing {
    let key = |day: &str, file: &str| format!("landing/ecommerce/ingestion_date={day}/{file}");
    let uploads = [
        (key("2026-03-03", "products.csv"), PRODUCTS_0303),
        (key("2026-03-03", "holidays.csv"), HOLIDAYS_0303),
        (key("2026-03-04", "orders.csv"), ORDERS),
        (key("2026-03-04", "shipment_deliveries.csv"), SHIPMENTS),
        (key("2026-03-04", "reviews.csv"), REVIEWS),
        (key("2026-03-05", "products.csv"), PRODUCTS_0305),
        (key("2026-03-05", "holidays.csv"), HOLIDAYS_0305),
    ];
    Landing::from_uploads(
        uploads
            .iter()
            .map(|(key, text)| (key.as_str(), text.as_bytes())),
    )
    .unwrap()
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| row.iter().map(|cell| (*cell).to_owned()).collect())
        .collect()
}

#[test]
fn the_reference_computes_a_tiny_batch_as_worked_out_by_hand() {
    let landing = tiny_landing();
    let day = date("2026-03-04"); // a Wednesday
    assert_eq!(landing.batches(), vec![day]);
    let reports = landing.reports(day).unwrap();
    let names: Vec<&str> = reports.iter().map(|report| report.name).collect();
    assert_eq!(names, REPORTS);

    // The calendar as of D is 03-03's (05's later holiday 2026-02-10 does not apply). Public
    // holiday orders with 2025-03-04 < order_date ≤ 2026-03-04: 1 and 2 (Monday 2026-03-02)
    // and 4 (Wednesday 2025-03-05) = 3 in March. Not: 3 (Sunday 03-01, listed), 5 (2025-03-04,
    // D − 1 year itself), 6 (2026-02-10, only in the later calendar).
    assert_eq!(
        reports[0].db_rows(),
        strings(&[&[
            "2026-03-04",
            "0",
            "0",
            "3",
            "0",
            "0",
            "0",
            "0",
            "0",
            "0",
            "0",
            "0",
            "0"
        ]])
    );
    // Late (shipped ≥ order + 6 days, not delivered): 11 (2025-03-05 → 03-11). Not: 12 (5
    // days), 17 (2 days), 10 (delivered), 16 (its order 42 is not in the batch).
    // Undelivered (neither date, order + 15 ≤ D): 13 (02-15 + 15 = 03-02). Not: 14 (02-18 + 15
    // = 03-05), 15 (delivered).
    assert_eq!(reports[1].db_rows(), strings(&[&["2026-03-04", "1", "1"]]));
    // Reviews: product 1 has 4 (5 + 4 + 4 + 1 = 14 points; its empty one does not count),
    // product 2 has 4 (5 + 5 + 2 + 2 = 14), product 3 only empty ones: a full tie → the lower
    // id, 1, named Kite as of D (Kite Pro only from 03-05). Its orders per day: 03-02 two
    // (quantity 2 + 1 = 3), 02-20 two (1 + 1 = 2), 2025-03-05 and 02-15 one each → 03-02, a
    // Monday holiday. Stars of 4: one 1-star 25.00, 4-star 2 → 50.00, 5-star 1 → 25.00.
    // Shipments of its orders 1, 2, 4, 8, 10, 11: 10, 11, 12, 13, 15, 17 = 6, late 11 → 1/6 =
    // 16.666… → 16.67, early 83.33.
    assert_eq!(
        reports[2].db_rows(),
        strings(&[&[
            "2026-03-04",
            "Kite",
            "2026-03-02",
            "true",
            "14",
            "25.00",
            "0.00",
            "0.00",
            "50.00",
            "25.00",
            "83.33",
            "16.67"
        ]])
    );
    // 12 months 2025-04 … 2026-03. March 2026: 1 + 2 + 3 = 20.00 + 5.50 + 7.25 = 32.75 (7 is
    // after D). February: 6, 8, 9, 10, 11 = 100.00 + 0.10 + 0.20 + 1.00 + 1.00 = 102.30. 4 and
    // 5 are in March 2025, outside.
    let mut months = Vec::new();
    for month in [
        "2025-04-01",
        "2025-05-01",
        "2025-06-01",
        "2025-07-01",
        "2025-08-01",
        "2025-09-01",
        "2025-10-01",
        "2025-11-01",
        "2025-12-01",
        "2026-01-01",
    ] {
        months.push(vec!["2026-03-04", month, "0.00", "0"]);
    }
    months.push(vec!["2026-03-04", "2026-02-01", "102.30", "5"]);
    months.push(vec!["2026-03-04", "2026-03-01", "32.75", "3"]);
    let months: Vec<&[&str]> = months.iter().map(Vec::as_slice).collect();
    assert_eq!(reports[3].db_rows(), strings(&months));
    // Revenue of every order of the batch: product 3 (unknown) 100.00 from 1 order; product 1
    // 20.00 + 5.50 + 3.00 + 0.10 + 1.00 + 1.00 = 30.60 from 6; product 2 7.25 + 2.00 + 1.00 +
    // 0.20 = 10.45 from 4.
    assert_eq!(
        reports[4].db_rows(),
        strings(&[
            &["2026-03-04", "1", "3", "NULL", "100.00", "1"],
            &["2026-03-04", "2", "1", "Kite", "30.60", "6"],
            &["2026-03-04", "3", "2", "Lamp, \"Retro\"", "10.45", "4"],
        ])
    );
    // As COPY … (FORMAT csv, HEADER) writes them.
    assert_eq!(
        reports[4].csv(),
        "ingestion_date,rank,product_id,product_name,revenue,order_count\n\
         2026-03-04,1,3,,100.00,1\n\
         2026-03-04,2,1,Kite,30.60,6\n\
         2026-03-04,3,2,\"Lamp, \"\"Retro\"\"\",10.45,4\n"
    );
    assert!(
        reports[2]
            .csv()
            .ends_with("2026-03-04,Kite,2026-03-02,t,14,25.00,0.00,0.00,50.00,25.00,83.33,16.67\n")
    );
}

#[test]
fn the_reference_takes_products_and_calendars_as_of_the_date() {
    let landing = tiny_landing();
    let name = |id, day| {
        landing
            .product_as_of(id, date(day))
            .map(|product: &Product| product.product_name.clone())
    };
    assert_eq!(name(1, "2026-03-02"), None);
    assert_eq!(name(1, "2026-03-04"), Some("Kite".into()));
    assert_eq!(name(1, "2026-03-05"), Some("Kite Pro".into()));
    assert_eq!(name(3, "2026-03-05"), None);
    // Before any calendar landed: the earliest one; after the second: the second.
    assert!(
        !landing
            .calendar_as_of(date("2026-03-01"))
            .contains(&date("2026-02-10"))
    );
    assert_eq!(landing.calendar_as_of(date("2026-03-01")).len(), 4);
    assert!(
        landing
            .calendar_as_of(date("2026-03-09"))
            .contains(&date("2026-02-10"))
    );
    assert!(
        Landing::default()
            .calendar_as_of(date("2026-03-01"))
            .is_empty()
    );
}

#[test]
fn the_reference_rounds_and_prints_like_postgresql() {
    // round(100.0 * part / whole, 2), half away from zero: 1/800 = 0.125 → 0.13.
    assert_eq!(percent_hundredths(1, 800), 13);
    assert_eq!(percent_hundredths(1, 6), 1667);
    assert_eq!(percent_hundredths(1, 8), 1250);
    assert_eq!(percent_hundredths(0, 3), 0);
    assert_eq!(percent_hundredths(3, 3), 10_000);
    assert_eq!(Cell::Dec2(1250).db_text(), "12.50");
    assert_eq!(Cell::Dec2(0).db_text(), "0.00");
    assert_eq!(Cell::Dec2(5).db_text(), "0.05");
    assert_eq!(Cell::Bool(true).csv_field(), "t");
    assert_eq!(Cell::Null.csv_field(), "");
    assert_eq!(Cell::Text(String::new()).csv_field(), "\"\"");
    assert_eq!(reference::parse_cents("12").unwrap(), 1200);
    assert_eq!(reference::parse_cents("12.5").unwrap(), 1250);
    assert_eq!(reference::parse_cents("0.05").unwrap(), 5);
    assert!(reference::parse_cents("1.005").is_err());
}

#[test]
fn the_reference_reads_every_legal_form_of_a_file_alike() {
    let mut plain = DayFiles::default();
    plain.set_file("orders", ORDERS.as_bytes(), false).unwrap();
    let orders = plain.orders.clone().unwrap();
    assert_eq!(orders.len(), 11);
    assert_eq!(
        orders[1],
        Order {
            order_id: 2,
            customer_id: 1,
            order_date: date("2026-03-02"),
            product_id: 1,
            unit_price: 550,
            quantity: 1,
            total_price: 550,
        }
    );
    // Written by hand: columns reordered, the amount alias, every field quoted, CRLF, a BOM.
    let odd = "\u{feff}\"amount\",\"order_id\",\"quantity\",\"unit_price\",\"product_id\",\"order_date\",\"customer_id\"\r\n\
               \"5.5\",\"2\",\"1\",\"5.50\",\"1\",\"2026-03-02\",\"1\"\r\n";
    let mut files = DayFiles::default();
    files.set_file("orders", odd.as_bytes(), false).unwrap();
    assert_eq!(files.orders.unwrap(), vec![orders[1].clone()]);
    // Every form the scenarios use, gzip included, reads back the same rows.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    for _ in 0..20 {
        let form = Form::random("orders", &mut rng);
        let mut files = DayFiles::default();
        files
            .set_file("orders", &encode(&plain, "orders", &form), form.gzip)
            .unwrap();
        assert_eq!(files.orders.as_ref(), Some(&orders), "{form:?}");
    }
    // Quoted line breaks, quotes and commas; an empty quoted field is NULL as an unquoted one.
    assert_eq!(
        parse_csv("a,b\n\"x\ny\",\"he said \"\"hi\"\", ok\"\r\n,\"\"\n").unwrap(),
        vec![
            vec!["a".to_owned(), "b".to_owned()],
            vec!["x\ny".to_owned(), "he said \"hi\", ok".to_owned()],
            vec![String::new(), String::new()],
        ]
    );
    let mut reviews = DayFiles::default();
    reviews
        .set_file("reviews", b"\"review\",\"product_id\"\n\"\",\"3\"\n", false)
        .unwrap();
    assert_eq!(reviews.reviews.unwrap()[0].review, None);
    // A missing or unknown column is an error.
    assert!(
        DayFiles::default()
            .set_file("reviews", b"review\n5\n", false)
            .is_err()
    );
    assert!(
        DayFiles::default()
            .set_file("reviews", b"review,product_id,extra\n5,1,x\n", false)
            .is_err()
    );
    // The last delivered version of a (date, source) wins, whatever its suffix.
    let day = date("2026-03-04");
    let gz = Form {
        gzip: true,
        ..Form::plain("orders")
    };
    let mut first = plain.clone();
    first.orders.as_mut().unwrap().truncate(3);
    let uploads = [
        (
            landing_key(day, "orders", false),
            ORDERS.as_bytes().to_vec(),
        ),
        (
            landing_key(day, "orders", true),
            encode(&first, "orders", &gz),
        ),
    ];
    let landing = Landing::from_uploads(
        uploads
            .iter()
            .map(|(key, bytes)| (key.as_str(), bytes.as_slice())),
    )
    .unwrap();
    assert_eq!(landing.days[&day].orders.as_ref().unwrap().len(), 3);
}

#[test]
fn scenarios_are_reproducible_and_read_back_as_generated() {
    for seed in [1, 2, 3, 42] {
        let scenario = Scenario::generate(seed);
        let again = Scenario::generate(seed);
        assert_eq!(scenario.uploads.len(), again.uploads.len());
        assert!(
            scenario
                .uploads
                .iter()
                .zip(&again.uploads)
                .all(|(a, b)| a.key == b.key && a.body == b.body)
        );
        let landing = Landing::from_uploads(
            scenario
                .uploads
                .iter()
                .map(|upload| (upload.key.as_str(), upload.body.as_slice())),
        )
        .context("reading the uploads")
        .unwrap();
        assert_eq!(landing.days, scenario.logical, "seed {seed}");
        assert_eq!(landing.batches(), scenario.dates);
        let orders = scenario.logical.values().filter_map(|f| f.orders.as_ref());
        let most = orders.map(Vec::len).max().unwrap();
        assert!((50..=300).contains(&most), "seed {seed}: {most} orders");
        for &day in &scenario.dates {
            landing.reports(day).unwrap();
        }
    }
}
