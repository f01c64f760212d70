//! Seeded multi-day `online_retail` scenarios (delta mode: late corrections of old days,
//! re-deliveries in other legal forms, days out of order, duplicate deliveries) landed in S3 and
//! run through all five services; every batch's rows of the three `analytics.retail_*` reports
//! and their exported CSVs are compared with an independent reference computed from the landing
//! files (`landfall_tests::retail_reference`). Also the unit tests of that reference on a tiny
//! example worked out by hand.
//!
//! Long mode: `cargo test -p landfall-tests --test retail_scenarios -- --ignored` runs 25 more
//! seeds (`LANDFALL_RETAIL_SCENARIO_SEEDS=N` for another number).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use landfall_tests::reference::Cell;
use landfall_tests::retail_reference::{
    self, Line, REPORTS, RetailLanding, most_frequent_description, read_transactions, select_sql,
};
use landfall_tests::retail_scenario::{Form, Header, RetailScenario, encode, landing_key};
use landfall_tests::scenario_run::{ExpectedReport, compare_report, date, file_state, quiescent};
use landfall_tests::{ServiceHandle, TestEnv, wait_until};

const DATASET: &str = "online_retail";
/// For every batch of a scenario to be exported from its latest files.
const DEADLINE: Duration = Duration::from_secs(180);

async fn start_pipeline() -> (TestEnv, Vec<ServiceHandle>) {
    let env = TestEnv::new().await;
    let services = env.start_pipeline(&[], Duration::from_secs(60)).await;
    (env, services)
}

/// Puts the scenario's uploads in order; returns each put's (key, ETag). Before an upload the
/// scenario marks as late ([`RetailScenario::settle_before`]), every batch delivered so far is
/// waited for until it is exported from its latest file.
///
/// A day's versions under two keys (`transactions.csv`, then `transactions.csv.gz`) are not
/// ordered by the stager (a known ledger limitation, tested elsewhere): before a day's file
/// lands under another key than its previous version, that version is waited for until the
/// stager has finished it, as files landing seconds apart would be.
async fn land(env: &TestEnv, scenario: &RetailScenario) -> Vec<(String, String)> {
    let mut puts = Vec::new();
    let mut previous: HashMap<NaiveDate, (String, String)> = HashMap::new();
    for (index, upload) in scenario.uploads.iter().enumerate() {
        if scenario.settle_before.contains(&index) {
            let mut dates: Vec<NaiveDate> = previous.keys().copied().collect();
            dates.sort_unstable();
            wait_until(
                &format!(
                    "seed {}: every batch delivered before upload #{index} exported",
                    scenario.seed
                ),
                DEADLINE,
                || quiescent(env, DATASET, scenario.seed, &dates, &puts),
            )
            .await;
        }
        let (day, _) = retail_reference::parse_key(&upload.key).expect("a landing key");
        if let Some((key, etag)) = previous.get(&day)
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
        previous.insert(day, (upload.key.clone(), etag.clone()));
        puts.push((upload.key.clone(), etag));
    }
    puts
}

/// Batches whose last transform ran before the last transform of an earlier batch: their
/// reports "as of D" may miss that earlier batch's latest lines.
async fn stale_reruns(env: &TestEnv, scenario: &RetailScenario) -> Vec<String> {
    let last_runs = env
        .query_text(&format!(
            "SELECT ingestion_date::text, max(id)::text FROM ops.outbox
              WHERE event_type = 'transform.completed' AND dataset = '{DATASET}'
              GROUP BY ingestion_date ORDER BY ingestion_date"
        ))
        .await;
    let mut stale = Vec::new();
    for (index, later) in last_runs.iter().enumerate() {
        for earlier in &last_runs[..index] {
            let (earlier_id, later_id): (i64, i64) = (
                earlier[1].parse().expect("an outbox id"),
                later[1].parse().expect("an outbox id"),
            );
            if later_id < earlier_id {
                stale.push(format!(
                    "seed {} batch {}: last transformed (outbox id {later_id}) before batch {} was (outbox id {earlier_id}), so not re-run after it",
                    scenario.seed, later[0], earlier[0]
                ));
            }
        }
    }
    stale
}

/// Appends the differences between `expected` and `actual` rows (cells as text).
#[allow(clippy::too_many_arguments)]
fn diff_rows(
    out: &mut Vec<String>,
    scenario: &RetailScenario,
    day: NaiveDate,
    report: &str,
    place: &str,
    columns: &[String],
    expected: &[Vec<String>],
    actual: &[Vec<String>],
) {
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
                    "{prefix} row {index} column {column}: expected {want:?}, actual {got:?} (expected row {want_row:?}, actual row {got_row:?})",
                    want_row = expected[index],
                    got_row = actual[index],
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

/// Every difference between the pipeline's reports (tables and exported CSVs) and the
/// reference's, one line each.
async fn compare(
    env: &TestEnv,
    scenario: &RetailScenario,
    puts: &[(String, String)],
) -> Vec<String> {
    let landing = RetailLanding::from_uploads(
        scenario
            .uploads
            .iter()
            .map(|upload| (upload.key.as_str(), upload.body.as_slice())),
    )
    .expect("the reference reads every upload");
    // The reference reads back from the bytes exactly the lines the generator meant.
    assert_eq!(
        landing.days, scenario.logical,
        "seed {}: the reference's reading of the uploads",
        scenario.seed
    );
    let mut mismatches = Vec::new();
    // The stager staged the last delivered version of every day: the last put, whatever its
    // ledger id.
    let mut last_put: BTreeMap<NaiveDate, &(String, String)> = BTreeMap::new();
    for put in puts {
        let (day, _) = retail_reference::parse_key(&put.0).expect("a landing key");
        last_put.insert(day, put);
    }
    let staged = env
        .query_text(&format!(
            "SELECT s.ingestion_date::text, f.key, trim(both '\"' FROM f.etag), f.file_id::text
               FROM ops.staged_sources s JOIN ops.files f USING (file_id)
              WHERE s.dataset = '{DATASET}'"
        ))
        .await;
    for (day, (key, etag)) in &last_put {
        let found = staged.iter().find(|row| row[0] == day.to_string());
        match found {
            Some(row) if row[1] == *key && row[2] == *etag => {}
            other => mismatches.push(format!(
                "seed {} batch {day}: staged {other:?}, but the last delivered file is {key} (ETag {etag})",
                scenario.seed
            )),
        }
    }
    mismatches.extend(stale_reruns(env, scenario).await);
    assert_eq!(landing.batches(), scenario.dates);
    for &day in &scenario.dates {
        let reports = landing.reports(day).expect("the reference's reports");
        for report in reports {
            let columns: Vec<String> = report.columns.iter().map(|c| (*c).to_owned()).collect();
            let expected = ExpectedReport {
                name: report.name,
                db_rows: report.db_rows(),
                csv: report.csv(),
                select_sql: select_sql(&report, day),
            };
            let diff =
                |out: &mut Vec<String>, place: &str, want: &[Vec<String>], got: &[Vec<String>]| {
                    diff_rows(out, scenario, day, report.name, place, &columns, want, got)
                };
            compare_report(
                env,
                DATASET,
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

/// Runs `scenario` through the pipeline and returns its mismatches with the reference.
async fn run(scenario: &RetailScenario) -> Vec<String> {
    let started = Instant::now();
    let (env, services) = start_pipeline().await;
    let puts = land(&env, scenario).await;
    wait_until(
        &format!(
            "seed {}: every batch exported from its latest file",
            scenario.seed
        ),
        DEADLINE,
        || {
            quiescent(
                &env,
                DATASET,
                scenario.seed,
                &scenario.dates,
                puts.as_slice(),
            )
        },
    )
    .await;
    let settled = started.elapsed();
    let mismatches = compare(&env, scenario, &puts).await;
    // How the batches were re-run (each transform run in order).
    let runs = env
        .query_text(&format!(
            "SELECT ingestion_date::text FROM ops.transform_runs WHERE dataset = '{DATASET}' ORDER BY run_id"
        ))
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

fn describe(scenario: &RetailScenario) -> String {
    let uploads: Vec<&str> = scenario
        .uploads
        .iter()
        .map(|upload| upload.what.as_str())
        .collect();
    let uploads: Vec<String> = uploads
        .iter()
        .enumerate()
        .map(|(index, what)| {
            let late = if scenario.settle_before.contains(&index) {
                "(once everything before settled) "
            } else {
                ""
            };
            format!("#{index} {late}{what}")
        })
        .collect();
    format!(
        "seed {}: stock codes {} and {} tie in revenue by construction; uploads in order:\n  {}",
        scenario.seed,
        scenario.tied.0,
        scenario.tied.1,
        uploads.join("\n  ")
    )
}

async fn check_seeds(seeds: impl IntoIterator<Item = u64>) {
    let mut failures = Vec::new();
    for seed in seeds {
        let scenario = RetailScenario::generate(seed);
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
async fn retail_seed_1_matches_the_reference() {
    check_seeds([1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retail_seed_2_matches_the_reference() {
    check_seeds([2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long mode: 25 seeds (LANDFALL_RETAIL_SCENARIO_SEEDS=N for another number), minutes"]
async fn many_retail_seeds_match_the_reference() {
    let count: u64 = std::env::var("LANDFALL_RETAIL_SCENARIO_SEEDS")
        .ok()
        .map(|text| {
            text.parse()
                .expect("LANDFALL_RETAIL_SCENARIO_SEEDS is a number")
        })
        .unwrap_or(25);
    check_seeds(1000..1000 + count).await;
}

// ---------------------------------------------------------------------------------------
// The reference itself, on a tiny example worked out by hand.

// Day 1 (2026-03-02), the dataset's header names. Amounts:
//  A1  85123A WHITE HEART        6 × 2.55 = 15.30  17850 United Kingdom (invoiced 02-27)
//  A1  85123A " CREAM HEART "    2 × 2.55 =  5.10  17850 United Kingdom (invoiced 02-27)
//  A2  POST   POSTAGE            1 × 18.00 = 18.00 guest France
//  A2  POST   POSTAGE            the same line again: 18.00
//  C3  85123A CREAM HEART       -1 × 2.55 = -2.55  17850 United Kingdom (cancellation)
//  A4  21730  (none)            -5 × 0.00 =  0.00  guest United Kingdom (adjustment)
const DAY1: &str =
    "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country
A1,85123A,WHITE HEART,6,2026-02-27 10:00,2.55,17850,United Kingdom
A1,85123A, CREAM HEART ,2,2026-02-27 10:00,2.55,17850,United Kingdom
A2,POST,POSTAGE,1,2026-03-02 09:00,18.00,,France
A2,POST,POSTAGE,1,2026-03-02 09:00,18.00,,France
C3,85123A,CREAM HEART,-1,2026-03-02 11:00,2.55,17850,United Kingdom
A4,21730,,-5,2026-03-02 12:00,0.00,,United Kingdom
";
// Day 2 (2026-03-03), the UCI names, columns shuffled, quoted, T timestamps:
//  A5  85123A CREAM HEART        4 × 2.55 = 10.20  13047 United Kingdom
//  A5  22960  JAM                4 × 9.00 = 36.00  13047 United Kingdom
//  A6  22632  "WARMER, RED"     20 × 1.80 = 36.00  12583 France
//  A2  POST   POSTAGE (A2 continued a day later) 1 × 18.00 = 18.00 guest France
const DAY2: &str = "\u{feff}\"Country\",\"InvoiceNo\",\"StockCode\",\"Description\",\"Quantity\",\"InvoiceDate\",\"UnitPrice\",\"CustomerID\"\r
\"United Kingdom\",\"A5\",\"85123A\",\"CREAM HEART\",\"4\",\"2026-03-03T09:00:00\",\"2.55\",\"13047\"\r
\"United Kingdom\",\"A5\",\"22960\",\"JAM\",\"4\",\"2026-03-03T09:00:00\",\"9\",\"13047\"\r
\"France\",\"A6\",\"22632\",\"WARMER, RED\",\"20\",\"2026-03-03T10:00:00\",\"1.8\",\"12583\"\r
\"France\",\"A2\",\"POST\",\"POSTAGE\",\"1\",\"2026-03-03T10:30:00\",\"18.00\",\"\"\r
";

fn tiny_landing() -> RetailLanding {
    let uploads = [
        (landing_key(date("2026-03-02"), false), DAY1.as_bytes()),
        (landing_key(date("2026-03-03"), false), DAY2.as_bytes()),
    ];
    RetailLanding::from_uploads(uploads.iter().map(|(key, text)| (key.as_str(), *text))).unwrap()
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| row.iter().map(|cell| (*cell).to_owned()).collect())
        .collect()
}

#[test]
fn the_reference_computes_a_tiny_history_as_worked_out_by_hand() {
    let landing = tiny_landing();
    let (day1, day2) = (date("2026-03-02"), date("2026-03-03"));
    assert_eq!(landing.batches(), vec![day1, day2]);
    let reports = landing.reports(day1).unwrap();
    let names: Vec<&str> = reports.iter().map(|report| report.name).collect();
    assert_eq!(names, REPORTS);

    // As of day 1. United Kingdom, February: A1's two lines 15.30 + 5.10 = 20.40, 8 units, one
    // invoice, one customer. France, March: A2 twice = 36.00, 2 units, the guest not counted.
    // United Kingdom, March: only cancellations (C3 2.55, A4 0.00): revenue 0.
    assert_eq!(
        reports[0].db_rows(),
        strings(&[
            &[
                "2026-03-02",
                "United Kingdom",
                "2026-02-01",
                "20.40",
                "0.00",
                "1",
                "8",
                "1"
            ],
            &[
                "2026-03-02",
                "France",
                "2026-03-01",
                "36.00",
                "0.00",
                "1",
                "2",
                "0"
            ],
            &[
                "2026-03-02",
                "United Kingdom",
                "2026-03-01",
                "0.00",
                "2.55",
                "0",
                "0",
                "0"
            ],
        ])
    );
    // Top products as of day 1: POST 36.00 (2 units, 1 invoice), 85123A 20.40 (8 units, A1).
    // 85123A's descriptions over all its lines: WHITE HEART once, CREAM HEART twice (the padded
    // one trimmed, and C3's) → CREAM HEART. 21730 has no sales line: not ranked.
    assert_eq!(
        reports[1].db_rows(),
        strings(&[
            &["2026-03-02", "1", "POST", "POSTAGE", "36.00", "2", "1"],
            &[
                "2026-03-02",
                "2",
                "85123A",
                "CREAM HEART",
                "20.40",
                "8",
                "1"
            ],
        ])
    );
    // Invoices A1, A2, C3, A4 = 4, cancelled C3 and A4 → 50.00; sales 20.40 + 36.00 = 56.40,
    // cancelled 2.55 → 2.55 / 56.40 = 4.5212… → 4.52.
    assert_eq!(
        reports[2].db_rows(),
        strings(&[&["2026-03-02", "4", "2", "50.00", "56.40", "2.55", "4.52"]])
    );

    // As of day 2: both days. France, March: 36.00 + 36.00 (A6) + 18.00 (A2 again) = 90.00, 23
    // units, invoices A2 and A6 = 2, customer 12583 = 1. United Kingdom, March: 10.20 + 36.00
    // = 46.20, cancelled 2.55, invoice A5, 8 units, customer 13047.
    let reports = landing.reports(day2).unwrap();
    assert_eq!(
        reports[0].db_rows(),
        strings(&[
            &[
                "2026-03-03",
                "United Kingdom",
                "2026-02-01",
                "20.40",
                "0.00",
                "1",
                "8",
                "1"
            ],
            &[
                "2026-03-03",
                "France",
                "2026-03-01",
                "90.00",
                "0.00",
                "2",
                "23",
                "1"
            ],
            &[
                "2026-03-03",
                "United Kingdom",
                "2026-03-01",
                "46.20",
                "2.55",
                "1",
                "8",
                "1"
            ],
        ])
    );
    // POST 54.00; 22632 and 22960 tie at 36.00 → the lower code, 22632, first; 85123A 30.60
    // (A1, A5).
    assert_eq!(
        reports[1].db_rows(),
        strings(&[
            &["2026-03-03", "1", "POST", "POSTAGE", "54.00", "3", "1"],
            &[
                "2026-03-03",
                "2",
                "22632",
                "WARMER, RED",
                "36.00",
                "20",
                "1"
            ],
            &["2026-03-03", "3", "22960", "JAM", "36.00", "4", "1"],
            &[
                "2026-03-03",
                "4",
                "85123A",
                "CREAM HEART",
                "30.60",
                "12",
                "2"
            ],
        ])
    );
    assert_eq!(
        reports[1].csv(),
        "ingestion_date,rank,stock_code,description,revenue,units,invoices\n\
         2026-03-03,1,POST,POSTAGE,54.00,3,1\n\
         2026-03-03,2,22632,\"WARMER, RED\",36.00,20,1\n\
         2026-03-03,3,22960,JAM,36.00,4,1\n\
         2026-03-03,4,85123A,CREAM HEART,30.60,12,2\n"
    );
    // Invoices A1, A2, C3, A4, A5, A6 = 6 (A2 once), 2 cancelled → 33.33; sales 56.40 + 10.20
    // + 36.00 + 36.00 + 18.00 = 156.60; 2.55 / 156.60 = 1.628… → 1.63.
    assert_eq!(
        reports[2].db_rows(),
        strings(&[&["2026-03-03", "6", "2", "33.33", "156.60", "2.55", "1.63"]])
    );

    // A day corrected later replaces its lines: day 1 again with only A1's first line.
    let corrected = "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n\
                     A1,85123A,WHITE HEART,6,2026-02-27 10:00,2.55,17850,United Kingdom\n";
    let key1 = landing_key(day1, false);
    let key1_gz = landing_key(day1, true);
    let key2 = landing_key(day2, false);
    let gz = encode(
        &read_transactions(corrected.as_bytes(), false).unwrap(),
        &Form {
            gzip: true,
            ..Form::plain()
        },
    );
    let landing = RetailLanding::from_uploads([
        (key1.as_str(), DAY1.as_bytes()),
        (key2.as_str(), DAY2.as_bytes()),
        (key1_gz.as_str(), gz.as_slice()),
    ])
    .unwrap();
    // As of day 2: invoices A1, A5, A6, A2 = 4, none cancelled; sales 15.30 + 46.20 + 36.00 +
    // 18.00 = 115.50; no cancelled amount: 0.00 of the sales.
    assert_eq!(
        landing.reports(day2).unwrap()[2].db_rows(),
        strings(&[&["2026-03-03", "4", "0", "0.00", "115.50", "0.00", "0.00"]])
    );
    // Without sales the share of the amount is NULL (an empty CSV field).
    let only_cancelled = "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n\
                          C9,POST,,-1,2026-03-02 10:00,18.00,,France\n";
    let landing =
        RetailLanding::from_uploads([(key1.as_str(), only_cancelled.as_bytes())]).unwrap();
    let rate = &landing.reports(day1).unwrap()[2];
    assert_eq!(
        rate.db_rows(),
        strings(&[&["2026-03-02", "1", "1", "100.00", "0.00", "18.00", "NULL"]])
    );
    assert!(
        rate.csv()
            .ends_with("\n2026-03-02,1,1,100.00,0.00,18.00,\n")
    );
    // No ranked product, the description of none.
    assert!(landing.reports(day1).unwrap()[1].rows.is_empty());
}

#[test]
fn the_reference_ranks_ten_products_and_picks_descriptions_by_rule() {
    // Twelve codes, revenue 12.00 down to 1.00; P02 and P03 tie at 9.00 → P02 first; the two
    // lowest (1.00, 2.00) are cut.
    let mut csv = String::from(
        "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n",
    );
    for (index, cents) in [1200, 1100, 900, 900, 800, 700, 600, 500, 400, 300, 200, 100]
        .iter()
        .enumerate()
    {
        csv.push_str(&format!(
            "{index},P{index:02},,1,2026-03-02 10:00,{},,France\n",
            retail_reference_money(*cents)
        ));
    }
    let landing = RetailLanding::from_uploads([(
        landing_key(date("2026-03-02"), false).as_str(),
        csv.as_bytes(),
    )])
    .unwrap();
    let top = &landing.reports(date("2026-03-02")).unwrap()[1];
    let codes: Vec<String> = top.rows.iter().map(|row| row[2].db_text()).collect();
    assert_eq!(
        codes,
        [
            "P00", "P01", "P02", "P03", "P04", "P05", "P06", "P07", "P08", "P09"
        ]
    );
    assert_eq!(top.rows[3][4], Cell::Dec2(900));
    assert_eq!(top.rows[0][3], Cell::Null, "no description at all");
    // Most frequent after trimming spaces; empty and blank ones ignored; ties → byte order
    // (upper case before lower case).
    assert_eq!(
        most_frequent_description([Some("b"), Some(" b "), Some("a"), Some("  "), None]),
        Some("b".to_owned())
    );
    assert_eq!(
        most_frequent_description([Some("b"), Some("a"), Some("B")]),
        Some("B".to_owned())
    );
    assert_eq!(most_frequent_description([None, Some("   ")]), None);
}

fn retail_reference_money(cents: i64) -> String {
    Cell::Dec2(cents).db_text()
}

#[test]
fn the_reference_reads_every_legal_form_of_a_file_alike() {
    let plain = read_transactions(DAY1.as_bytes(), false).unwrap();
    assert_eq!(plain.len(), 6);
    assert_eq!(
        plain[1],
        Line {
            invoice_no: "A1".into(),
            stock_code: "85123A".into(),
            description: Some(" CREAM HEART ".into()),
            quantity: 2,
            invoice_date: date("2026-02-27").and_hms_opt(10, 0, 0).unwrap(),
            unit_price: 255,
            customer_id: Some(17850),
            country: "United Kingdom".into(),
        }
    );
    assert!(plain[4].is_cancellation() && plain[5].is_cancellation());
    assert!(!plain[0].is_cancellation());
    assert_eq!(plain[5].description, None);
    assert_eq!(plain[2].customer_id, None);
    let day2 = read_transactions(DAY2.as_bytes(), false).unwrap();
    assert_eq!(day2[1].unit_price, 900);
    assert_eq!(day2[2].description.as_deref(), Some("WARMER, RED"));
    // Every form the scenarios use, gzip included, reads back the same lines.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let mut headers = Vec::new();
    for _ in 0..30 {
        let form = Form::random(&mut rng);
        headers.push(form.header);
        let bytes = encode(&plain, &form);
        assert_eq!(
            read_transactions(&bytes, form.gzip).unwrap(),
            plain,
            "{form:?}"
        );
    }
    assert!(headers.contains(&Header::Uci) && headers.contains(&Header::UciUpper));
    // Aliases: `invoice`, `price`, `customer`; unknown or missing columns are errors.
    let aliased = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer,Country\n\
                   A1,85123A,WHITE HEART,6,2026-02-27T10:00,2.55,17850,United Kingdom\n";
    assert_eq!(
        read_transactions(aliased.as_bytes(), false).unwrap(),
        vec![plain[0].clone()]
    );
    assert!(read_transactions(b"invoice_no,stock_code\nA1,X\n", false).is_err());
    assert!(
        read_transactions(
            b"invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country,extra\n",
            false
        )
        .is_err()
    );
}

#[test]
fn retail_scenarios_are_reproducible_and_read_back_as_generated() {
    for seed in [1, 2, 3, 42] {
        let scenario = RetailScenario::generate(seed);
        let again = RetailScenario::generate(seed);
        assert!(
            scenario.uploads.len() == again.uploads.len()
                && scenario
                    .uploads
                    .iter()
                    .zip(&again.uploads)
                    .all(|(a, b)| a.key == b.key && a.body == b.body),
            "seed {seed}"
        );
        let landing = RetailLanding::from_uploads(
            scenario
                .uploads
                .iter()
                .map(|upload| (upload.key.as_str(), upload.body.as_slice())),
        )
        .unwrap();
        assert_eq!(landing.days, scenario.logical, "seed {seed}");
        assert_eq!(landing.batches(), scenario.dates);
        let lines: usize = scenario.logical.values().map(Vec::len).sum();
        assert!((20..=400).contains(&lines), "seed {seed}: {lines} lines");
        for &day in &scenario.dates {
            landing.reports(day).unwrap();
        }
        // Cancellations both ways, guests and descriptions that vary for a code.
        let all: Vec<&Line> = scenario.logical.values().flatten().collect();
        assert!(all.iter().any(|line| line.invoice_no.starts_with('C')));
        assert!(all.iter().any(|line| line.customer_id.is_none()));
    }
}
