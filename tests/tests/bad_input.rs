//! The bad-input corpus: every kind of broken file, key and message, each with the exact
//! outcome it must have — a ledger state and reason, reject rows with line, column and reason,
//! or a dead letter with its headers — and nothing stored before changed by it (a rejected new
//! version leaves the earlier version's rows staged; an undecodable message leaves no trace in
//! the database).
//!
//! The files are in `tests/corpus/files/` (written by `tests/corpus/generate.py`; read them to
//! see each case); the two 10 MB cases are generated here. Services run in-process.

use std::path::Path;
use std::time::Duration;

use contract::{Envelope, FileLanded, FileRejected, SchemaVersion, StagingLoaded};
use landfall_tests::{TestEnv, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

/// A rejected row as expected: line (the header is line 1), column, a substring of the reason.
type Reject = (i64, Option<&'static str>, &'static str);

enum Expect {
    /// Staged with `rows` rows and exactly these rejects.
    Staged {
        rows: i64,
        rejects: &'static [Reject],
    },
    /// Rejected as a whole with this reason (substring); exactly these rejects kept.
    Rejected {
        reason: &'static str,
        rejects: &'static [Reject],
    },
}

enum Body {
    Corpus(&'static str),
    Generated(fn() -> Vec<u8>),
}

struct FileCase {
    name: &'static str,
    body: Body,
    /// The landing file name, e.g. `orders.csv` (the source is its stem).
    file: &'static str,
    /// A valid version of the same file landed first; a rejected case must leave its rows.
    prior: Option<&'static str>,
    expect: Expect,
}

fn corpus(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus/files")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

const TEN_MB: usize = 10 * 1024 * 1024;

/// One 10 MB line and nothing else: a header that is one enormous unknown column.
fn ten_mb_single_line() -> Vec<u8> {
    vec![b'x'; TEN_MB]
}

/// A valid customers file whose second row is one 10 MB line (a 10 MB name).
fn ten_mb_field() -> Vec<u8> {
    let mut body = b"customer_id,customer_name,postal_code\n1,Short,75001\n2,".to_vec();
    body.extend(std::iter::repeat_n(b'n', TEN_MB));
    body.extend_from_slice(b",75002\n3,Also short,75003\n");
    body
}

fn file_cases() -> Vec<FileCase> {
    use Body::{Corpus, Generated};
    use Expect::{Rejected, Staged};
    let case = |name, body, file, prior, expect| FileCase {
        name,
        body,
        file,
        prior,
        expect,
    };
    vec![
        // Whole files refused; the earlier version stays staged.
        case(
            "wrong header",
            Corpus("wrong_header.csv"),
            "orders.csv",
            Some("good_orders.csv"),
            Rejected {
                reason: "unknown column 'order_no' in the header (expected order_id,customer_id,order_date,product_id,unit_price,quantity,total_price)",
                rejects: &[],
            },
        ),
        case(
            "missing column",
            Corpus("missing_column.csv"),
            "orders.csv",
            Some("good_orders.csv"),
            Rejected {
                reason: "missing column 'total_price' in the header (expected order_id,",
                rejects: &[],
            },
        ),
        case(
            "extra column",
            Corpus("extra_column.csv"),
            "orders.csv",
            Some("good_orders.csv"),
            Rejected {
                reason: "unknown column 'discount' in the header",
                rejects: &[],
            },
        ),
        case(
            "a column twice in the header",
            Corpus("duplicate_header_column.csv"),
            "orders.csv",
            None,
            Rejected {
                reason: "column 'order_id' appears twice in the header",
                rejects: &[],
            },
        ),
        case(
            "empty file",
            Corpus("empty.csv"),
            "orders.csv",
            Some("good_orders.csv"),
            Rejected {
                reason: "the file is empty: expected a header row naming order_id,customer_id,",
                rejects: &[],
            },
        ),
        case(
            "invalid UTF-8 in the header",
            Corpus("invalid_utf8_header.csv"),
            "orders.csv",
            Some("good_orders.csv"),
            Rejected {
                reason: "header field 3 is not valid UTF-8",
                rejects: &[],
            },
        ),
        case(
            "corrupt gzip",
            Corpus("corrupt.csv.gz"),
            "orders.csv.gz",
            Some("good_orders.csv.gz"),
            Rejected {
                reason: "the file cannot be decoded",
                rejects: &[],
            },
        ),
        case(
            ".csv.gz that is not gzip",
            Corpus("not_gzip.csv.gz"),
            "orders.csv.gz",
            None,
            Rejected {
                reason: "the file cannot be decoded",
                rejects: &[],
            },
        ),
        case(
            "gzip cut short",
            Corpus("truncated.csv.gz"),
            "orders.csv.gz",
            Some("good_orders.csv.gz"),
            Rejected {
                reason: "the file cannot be decoded",
                rejects: &[],
            },
        ),
        case(
            "over the reject threshold",
            Corpus("over_threshold_reviews.csv"),
            "reviews.csv",
            Some("good_reviews.csv"),
            Rejected {
                reason: "4 of 10 rows rejected (40.0%), over the dataset's 5% threshold; first: line 2, column review: 9 is above the maximum 5",
                rejects: &[
                    (2, Some("review"), "9 is above the maximum 5"),
                    (3, Some("review"), "0 is below the minimum 1"),
                    (4, Some("review"), "'five' is not an integer"),
                    (5, Some("review"), "6 is above the maximum 5"),
                ],
            },
        ),
        case(
            "a 10 MB single line",
            Generated(ten_mb_single_line),
            "orders.csv",
            Some("good_orders.csv"),
            Rejected {
                reason: "unknown column 'xxxxxxxx",
                rejects: &[],
            },
        ),
        // Files that load.
        case(
            "header only",
            Corpus("header_only.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 0,
                rejects: &[],
            },
        ),
        case(
            "UTF-8 BOM",
            Corpus("bom.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 40,
                rejects: &[],
            },
        ),
        case(
            "CRLF line ends",
            Corpus("crlf.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 40,
                rejects: &[],
            },
        ),
        case(
            "no final newline",
            Corpus("no_final_newline.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 40,
                rejects: &[],
            },
        ),
        case(
            "header in other case, padded, with an alias",
            Corpus("header_case_alias.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 40,
                rejects: &[],
            },
        ),
        case(
            "quotes and embedded newlines",
            Corpus("quotes_and_newlines.csv"),
            "customers.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(
                    5,
                    Some("customer_name"),
                    "is empty, but the column may not be NULL",
                )],
            },
        ),
        case(
            "a 10 MB field",
            Generated(ten_mb_field),
            "customers.csv",
            None,
            Staged {
                rows: 3,
                rejects: &[],
            },
        ),
        // One bad row each: rejected with line, column and reason; the rest loads.
        case(
            "invalid UTF-8 in a field",
            Corpus("invalid_utf8_field.csv"),
            "customers.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(2, Some("customer_name"), "is not valid UTF-8")],
            },
        ),
        case(
            "not an integer",
            Corpus("not_an_integer.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(2, Some("quantity"), "'ten' is not an integer")],
            },
        ),
        case(
            "integer out of range",
            Corpus("int_out_of_range.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(
                    2,
                    Some("order_id"),
                    "'99999999999' is out of range for integer",
                )],
            },
        ),
        case(
            "not a number",
            Corpus("not_a_number.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(2, Some("unit_price"), "'abc' is not a number")],
            },
        ),
        case(
            "more decimals than the scale",
            Corpus("too_many_decimals.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(
                    2,
                    Some("unit_price"),
                    "'1.234' has more than 2 decimal places",
                )],
            },
        ),
        case(
            "numeric overflow",
            Corpus("numeric_overflow.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(
                    2,
                    Some("total_price"),
                    "'12345678901.00' does not fit numeric(12,2)",
                )],
            },
        ),
        case(
            "impossible date",
            Corpus("impossible_date.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(
                    2,
                    Some("order_date"),
                    "'2026-02-30' is not a date (YYYY-MM-DD)",
                )],
            },
        ),
        case(
            "wrong date format",
            Corpus("wrong_date_format.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(
                    2,
                    Some("order_date"),
                    "'02/01/2026' is not a date (YYYY-MM-DD)",
                )],
            },
        ),
        case(
            "negative quantity",
            Corpus("negative_quantity.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(2, Some("quantity"), "-1 is below the minimum 0")],
            },
        ),
        case(
            "NULL in a non-null column",
            Corpus("null_in_not_null.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(
                    2,
                    Some("order_id"),
                    "is empty, but the column may not be NULL",
                )],
            },
        ),
        case(
            "too few fields",
            Corpus("too_few_fields.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(2, None, "has 3 fields, the header has 7")],
            },
        ),
        case(
            "too many fields",
            Corpus("too_many_fields.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(2, None, "has 8 fields, the header has 7")],
            },
        ),
        case(
            "duplicate natural key",
            Corpus("duplicate_natural_key.csv"),
            "orders.csv",
            None,
            Staged {
                rows: 39,
                rejects: &[(
                    4,
                    Some("order_id"),
                    "duplicate order_id 5: an earlier line of the file has it",
                )],
            },
        ),
        case(
            "smallint range, bounds and a NULL",
            Corpus("smallint_range_reviews.csv"),
            "reviews.csv",
            None,
            Staged {
                rows: 77,
                rejects: &[
                    (2, Some("review"), "'70000' is out of range for smallint"),
                    (3, Some("review"), "7 is above the maximum 5"),
                    (4, Some("review"), "0 is below the minimum 1"),
                ],
            },
        ),
        case(
            "exactly at the threshold (5%)",
            Corpus("at_threshold_reviews.csv"),
            "reviews.csv",
            None,
            Staged {
                rows: 19,
                rejects: &[(2, Some("review"), "'x' is not an integer")],
            },
        ),
    ]
}

fn source_of(file: &str) -> &str {
    file.split('.').next().unwrap()
}

/// The newest ledger row of a key once the stager is done with it:
/// (file_id, state, reason, rows_loaded, rows_rejected).
async fn finished(env: &TestEnv, key: &str, etag: &str) -> (i64, String, String, i64, i64) {
    wait_until(&format!("{key} ({etag}) staged or refused"), DEADLINE, || async {
        let row = env
            .db
            .query_opt(
                "SELECT file_id, state, coalesce(reason, ''), coalesce(rows_loaded, 0), coalesce(rows_rejected, 0)
                   FROM ops.files WHERE key = $1 AND etag = $2 AND state <> 'landed'",
                &[&key, &etag],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))))
    })
    .await
}

/// The file's rows in the staging table itself (not only what the view shows): a rejected
/// file's rows, also those its second COPY connection committed, must be gone, with the mark
/// that would send the next attempt looking for them.
async fn rows_of_file(env: &TestEnv, source: &str, file_id: i64) -> i64 {
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM ops.copy_leftovers WHERE file_id = {file_id}"
        ))
        .await,
        0,
        "file {file_id} left a leftover mark"
    );
    env.count(&format!(
        "SELECT count(*) FROM staging_rows.{source} WHERE _file_id = {file_id}"
    ))
    .await
}

/// The file's reject rows: (line, column, reason).
async fn rejects_of(env: &TestEnv, file_id: i64) -> Vec<(i64, Option<String>, String)> {
    env.db
        .query(
            "SELECT line, column_name, reason FROM ops.rejected_rows WHERE file_id = $1 ORDER BY line",
            &[&file_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

fn check_rejects(
    problems: &mut Vec<String>,
    name: &str,
    found: &[(i64, Option<String>, String)],
    expected: &[Reject],
) {
    let matches = found.len() == expected.len()
        && found.iter().zip(expected).all(
            |((line, column, reason), (e_line, e_column, e_reason))| {
                line == e_line && column.as_deref() == *e_column && reason.contains(e_reason)
            },
        );
    if !matches {
        problems.push(format!("{name}: rejects {found:?}, expected {expected:?}"));
    }
}

/// Case `index` lands under its own ingestion date, so cases do not touch each other.
fn date(index: usize) -> String {
    (chrono::NaiveDate::from_ymd_opt(2026, 5, 1).unwrap() + chrono::Days::new(index as u64))
        .to_string()
}

/// Lands every case (after its valid earlier version, if any) and returns what differs from
/// the expected outcomes.
async fn run_file_cases(env: &TestEnv, cases: &[FileCase]) -> Vec<String> {
    env.wait_consuming("ingester", DEADLINE).await;
    env.wait_consuming("stager", DEADLINE).await;

    // The earlier, valid versions.
    let mut priors = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let Some(prior) = case.prior else {
            priors.push(None);
            continue;
        };
        let key = TestEnv::landing_key(&date(index), case.file);
        let etag = env.put(&key, corpus(prior)).await;
        priors.push(Some((key, etag)));
    }
    let mut prior_files = Vec::new();
    for prior in &priors {
        let Some((key, etag)) = prior else {
            prior_files.push(None);
            continue;
        };
        let (file_id, state, reason, rows, _) = finished(env, key, etag).await;
        assert_eq!(
            state, "staged",
            "the valid earlier version of {key}: {reason}"
        );
        prior_files.push(Some((file_id, rows)));
    }

    // The corpus.
    let mut landed = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let key = TestEnv::landing_key(&date(index), case.file);
        let body = match case.body {
            Body::Corpus(name) => corpus(name),
            Body::Generated(make) => make(),
        };
        let etag = env.put(&key, body).await;
        landed.push((key, etag));
    }

    let mut problems = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let (key, etag) = &landed[index];
        let source = source_of(case.file);
        let (file_id, state, reason, rows_loaded, _) = finished(env, key, etag).await;
        let staged_file = env
            .db
            .query_opt(
                "SELECT file_id FROM ops.staged_sources WHERE dataset = 'ecommerce' AND ingestion_date = $1::text::date AND source = $2",
                &[&date(index), &source],
            )
            .await
            .unwrap()
            .map(|row| row.get::<_, i64>(0));
        match &case.expect {
            Expect::Staged { rows, rejects } => {
                if state != "staged" {
                    problems.push(format!(
                        "{}: {state} ({reason}), expected staged",
                        case.name
                    ));
                    continue;
                }
                let stored = rows_of_file(env, source, file_id).await;
                if rows_loaded != *rows || stored != *rows {
                    problems.push(format!(
                        "{}: {rows_loaded} rows loaded, {stored} stored, expected {rows}",
                        case.name
                    ));
                }
                if staged_file != Some(file_id) {
                    problems.push(format!("{}: staged_sources has {staged_file:?}", case.name));
                }
                check_rejects(
                    &mut problems,
                    case.name,
                    &rejects_of(env, file_id).await,
                    rejects,
                );
            }
            Expect::Rejected {
                reason: expected,
                rejects,
            } => {
                if state != "rejected" || !reason.contains(expected) {
                    problems.push(format!(
                        "{}: {state} ({}), expected rejected with {expected:?}",
                        case.name,
                        reason.chars().take(300).collect::<String>()
                    ));
                }
                if rows_of_file(env, source, file_id).await != 0 {
                    problems.push(format!(
                        "{}: rows of the rejected file are staged",
                        case.name
                    ));
                }
                check_rejects(
                    &mut problems,
                    case.name,
                    &rejects_of(env, file_id).await,
                    rejects,
                );
                // Nothing before it changed.
                match prior_files[index] {
                    Some((prior_id, prior_rows)) => {
                        if staged_file != Some(prior_id)
                            || rows_of_file(env, source, prior_id).await != prior_rows
                        {
                            problems.push(format!(
                                "{}: the earlier version's {prior_rows} rows are not all staged",
                                case.name
                            ));
                        }
                    }
                    None => {
                        if staged_file.is_some() {
                            problems
                                .push(format!("{}: the batch has a staged {source}", case.name));
                        }
                    }
                }
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_file_has_its_exact_outcome_and_changes_nothing_before_it() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let cases = file_cases();
    let problems = run_file_cases(&env, &cases).await;
    assert!(
        problems.is_empty(),
        "{} case(s) of {} went wrong:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );

    // The values of the file with quotes and newlines are exactly what the CSV says.
    let quoted = cases
        .iter()
        .position(|case| case.name == "quotes and embedded newlines")
        .unwrap();
    let values: Vec<(i64, String, String)> = env
        .db
        .query(
            "SELECT _line, customer_name, postal_code FROM staging.customers WHERE _batch = $1::text::date AND customer_id < 1000 ORDER BY _line",
            &[&date(quoted)],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        values,
        [
            (2, "Smith, \"Jo\"".to_owned(), "NW1 6XE".to_owned()),
            (3, "two\nlines".to_owned(), "1000".to_owned())
        ]
    );
    // CRLF: no carriage return reaches a value; the 10 MB field is stored whole.
    let crlf = cases
        .iter()
        .position(|case| case.name == "CRLF line ends")
        .unwrap();
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM staging.orders WHERE _batch = '{}' AND total_price = 3.00",
            date(crlf)
        ))
        .await,
        40
    );
    let big = cases
        .iter()
        .position(|case| case.name == "a 10 MB field")
        .unwrap();
    assert_eq!(
        env.count(&format!(
            "SELECT max(length(customer_name))::bigint FROM staging.customers WHERE _batch = '{}'",
            date(big)
        ))
        .await,
        TEN_MB as i64
    );
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

/// A NUL byte in a field rejects that row (PostgreSQL text cannot hold it) and the rest loads;
/// the reject row shows the value with the NUL as `\0`. (Found by this corpus: the file used to
/// be dead-lettered because the reject row kept the raw NUL.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_in_a_field_rejects_only_that_row() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let cases = [FileCase {
        name: "NUL byte in a field",
        body: Body::Corpus("nul_in_field.csv"),
        file: "customers.csv",
        prior: None,
        expect: Expect::Staged {
            rows: 39,
            rejects: &[(2, Some("customer_name"), "contains a NUL byte")],
        },
    }];
    let problems = run_file_cases(&env, &cases).await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

/// A file that is one 10 MB line is rejected with the right reason (checked in the corpus
/// above), and the reason quotes only a bounded prefix of it (found by this corpus: it used to
/// put all 10 MB in `ops.files.reason`, the `file.rejected` event and the log line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reason_for_a_10_mb_line_stays_short() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    env.wait_consuming("ingester", DEADLINE).await;
    env.wait_consuming("stager", DEADLINE).await;
    let key = TestEnv::landing_key("2026-08-01", "orders.csv");
    let etag = env.put(&key, ten_mb_single_line()).await;
    let (_, state, reason, _, _) = finished(&env, &key, &etag).await;
    assert_eq!(state, "rejected");
    assert!(
        reason.len() < 10_000,
        "the reason is {} bytes long",
        reason.len()
    );
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

/// Keys that map to no dataset source are recorded as `ignored` with the reason and go no
/// further; a key outside the landing prefix is not recorded at all; a notification for an
/// object that no longer exists ends as `missing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_key_is_recorded_with_its_reason() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    // The queues exist before anything is published (a notification to an exchange with no
    // queue yet is dropped by the broker; reconcile would catch a real object, not this one).
    env.wait_consuming("ingester", DEADLINE).await;
    env.wait_consuming("stager", DEADLINE).await;
    let body = corpus("good_orders.csv");
    let ignored: &[(&str, &str)] = &[
        (
            "landing/ecommerce/ingestion_date=2026-06-01/unknown.csv",
            "dataset 'ecommerce' has no source 'unknown' (it has: orders, reviews, shipment_deliveries, customers, products, holidays)",
        ),
        (
            "landing/zoo/ingestion_date=2026-06-01/orders.csv",
            "no dataset named 'zoo' is defined",
        ),
        (
            "landing/ecommerce/ingestion_date=2026-02-30/orders.csv",
            "'2026-02-30' is not a valid date (YYYY-MM-DD)",
        ),
        (
            "landing/ecommerce/date=2026-06-01/orders.csv",
            "'date=2026-06-01' is not an ingestion_date=YYYY-MM-DD partition",
        ),
        (
            "landing/ecommerce/ingestion_date=2026-06-02/orders.txt",
            "'orders.txt' is not a .csv or .csv.gz file",
        ),
        (
            "landing/ecommerce/orders.csv",
            "key does not follow landing/<dataset>/ingestion_date=YYYY-MM-DD/<source>.csv",
        ),
    ];
    for (key, _) in ignored {
        env.put(key, body.clone()).await;
    }
    env.put(
        "elsewhere/ecommerce/ingestion_date=2026-06-01/orders.csv",
        body.clone(),
    )
    .await;
    // A notification for an object that is not there (deleted before it could be staged).
    let gone = "landing/ecommerce/ingestion_date=2026-06-03/orders.csv";
    let notification = serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("lake/{gone}"),
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "eventName": "s3:ObjectCreated:Put",
            "s3": {"bucket": {"name": "lake"}, "object": {"key": gone.replace('/', "%2F"), "size": 10, "eTag": "0123456789abcdef0123456789abcdef"}}
        }]
    })
    .to_string();
    env.publish_raw(
        "s3",
        "lake.created",
        notification.as_bytes(),
        Default::default(),
    )
    .await;
    // A valid file last: the ingester handles notifications in order per consumer, and the
    // stager's outcome for `gone` is awaited explicitly.
    let good = "landing/ecommerce/ingestion_date=2026-06-04/orders.csv";
    let good_etag = env.put(good, body.clone()).await;

    for (key, reason) in ignored {
        let (state, found): (String, String) =
            wait_until(&format!("{key} in the ledger"), DEADLINE, || async {
                let row = env
                    .db
                    .query_opt(
                        "SELECT state, coalesce(reason, '') FROM ops.files WHERE key = $1",
                        &[key],
                    )
                    .await?;
                Ok(row.map(|row| (row.get(0), row.get(1))))
            })
            .await;
        assert_eq!(
            (state.as_str(), found.as_str()),
            ("ignored", *reason),
            "{key}"
        );
    }
    let (_, state, reason, _, _) = finished(&env, gone, "0123456789abcdef0123456789abcdef").await;
    assert_eq!(
        (state.as_str(), reason.as_str()),
        (
            "missing",
            "the object no longer exists in S3 (deleted before it could be staged)"
        )
    );
    let (_, state, _, rows, _) = finished(&env, good, &good_etag).await;
    assert_eq!((state.as_str(), rows), ("staged", 10));
    // Nothing else: no ledger row for the key outside the prefix, one file.landed per real
    // file, and only the valid file's rows staged.
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE key LIKE 'elsewhere/%'")
            .await,
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM ops.outbox WHERE event_type = 'file.landed'")
            .await,
        2
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 10);
    assert_eq!(
        env.count("SELECT count(*) FROM ops.staged_sources").await,
        1
    );
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

struct MessageCase {
    name: &'static str,
    /// `events` or `s3`.
    exchange: &'static str,
    routing_key: &'static str,
    body: Vec<u8>,
    /// Which service dead-letters it.
    service: &'static str,
    reason: String,
}

fn file_landed(dataset: &str, source: &str, file_id: i64) -> Envelope<FileLanded> {
    Envelope::new(
        Some(contract::BatchKey {
            dataset: dataset.into(),
            ingestion_date: chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
        }),
        None,
        FileLanded {
            file_id,
            bucket: "lake".into(),
            key: format!("landing/{dataset}/ingestion_date=2026-07-01/{source}.csv"),
            version: "v".into(),
            etag: "e".into(),
            size: 1,
            source: source.into(),
        },
    )
}

fn message_cases() -> Vec<MessageCase> {
    let valid = file_landed("ecommerce", "orders", 424_242).encode();
    let mut unknown_type = file_landed("ecommerce", "orders", 1);
    unknown_type.event_type = "file.teleported".into();
    let mut newer = file_landed("ecommerce", "orders", 1);
    newer.schema_version = SchemaVersion { major: 2, minor: 0 };
    let mut wrong_payload = Envelope::new(
        None,
        None,
        FileRejected {
            file_id: 1,
            bucket: "b".into(),
            key: "k".into(),
            source: "s".into(),
            reason: "r".into(),
            rows_rejected: 0,
        },
    );
    wrong_payload.event_type = "file.landed".into();
    let other_event = Envelope::new(
        None,
        None,
        StagingLoaded {
            file_id: 1,
            bucket: "b".into(),
            key: "k".into(),
            version: "v".into(),
            source: "orders".into(),
            table: "staging.orders".into(),
            rows_loaded: 0,
            rows_rejected: 0,
            replaced_file_id: None,
        },
    );
    let stager = |name, body: Vec<u8>, reason: &str| MessageCase {
        name,
        exchange: "events",
        routing_key: "file.landed",
        body,
        service: "stager",
        reason: reason.to_owned(),
    };
    let ingester = |name, body: &[u8], reason: &str| MessageCase {
        name,
        exchange: "s3",
        routing_key: "lake.created",
        body: body.to_vec(),
        service: "ingester",
        reason: reason.to_owned(),
    };
    vec![
        stager("not MessagePack", b"this is not MessagePack".to_vec(), "message is not a MessagePack landfall envelope"),
        stager("empty message", Vec::new(), "message is not a MessagePack landfall envelope"),
        stager("truncated envelope", valid[..valid.len() / 2].to_vec(), "message is not a MessagePack landfall envelope"),
        stager("JSON to the stager", br#"{"event_type":"file.landed"}"#.to_vec(), "message is not a MessagePack landfall envelope"),
        stager("unknown event type", unknown_type.encode(), "unknown event type 'file.teleported'"),
        stager("newer schema version", newer.encode(), "event 'file.landed' has schema version 2.0, newer than the supported major version 1"),
        stager("payload of another type", wrong_payload.encode(), "payload of 'file.landed' does not match its schema"),
        stager("an event the stager does not handle", other_event.encode(), "the stager does not handle 'staging.loaded' events"),
        stager("a file not in the ledger", valid.clone(), "file 424242 is not in the ledger"),
        stager("an unknown dataset", file_landed("zoo", "orders", 1).encode(), "dataset 'zoo' is not defined in this stager's datasets"),
        stager("an unknown source", file_landed("ecommerce", "unknown", 1).encode(), "dataset 'ecommerce' has no source 'unknown'"),
        ingester("a notification that is not JSON", b"<xml>not a notification</xml>", "not an S3 event notification (expected JSON with Records[])"),
        ingester("a JSON notification without Records", br#"{"EventName":"s3:ObjectCreated:Put"}"#, "not an S3 event notification (expected JSON with Records[]): no Records[] array"),
        ingester("a record without an eTag", br#"{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"lake"},"object":{"key":"landing%2Fecommerce%2Fingestion_date%3D2026-07-01%2Forders.csv"}}}]}"#, "record 0: object 'landing/ecommerce/ingestion_date=2026-07-01/orders.csv' has no eTag"),
        ingester("a key that is not UTF-8", br#"{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"lake"},"object":{"key":"landing%2F%FF.csv","eTag":"x"}}}]}"#, "record 0: key 'landing%2F%FF.csv' is not valid UTF-8 once URL-decoded"),
    ]
}

/// Messages no service can use go to its dead-letter queue at once, with the reason, the
/// error kind, the service and where they came from; none leaves a trace in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_message_is_dead_lettered_with_its_reason() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    env.wait_consuming("ingester", DEADLINE).await;
    env.wait_consuming("stager", DEADLINE).await;
    let cases = message_cases();
    for (index, case) in cases.iter().enumerate() {
        let properties =
            lapin::BasicProperties::default().with_message_id(format!("case-{index}").into());
        env.publish_raw(case.exchange, case.routing_key, &case.body, properties)
            .await;
    }
    let mut dead = std::collections::HashMap::new();
    for service in ["stager", "ingester"] {
        let expected = cases.iter().filter(|case| case.service == service).count();
        for _ in 0..expected {
            let message = wait_until(&format!("a message in {service}.dlq"), DEADLINE, || async {
                env.take_message(&format!("{service}.dlq")).await
            })
            .await;
            let properties = message.delivery.properties.clone();
            let id = properties.message_id().as_ref().unwrap().to_string();
            dead.insert(id, (service, properties));
        }
    }
    let mut problems = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let Some((service, properties)) = dead.get(&format!("case-{index}")) else {
            problems.push(format!("{}: not dead-lettered", case.name));
            continue;
        };
        let header = |name| runtime::broker::header_text(properties, name).unwrap_or_default();
        let found = (
            *service,
            header(runtime::broker::SERVICE_HEADER),
            header(runtime::broker::ERROR_KIND_HEADER),
            header(runtime::broker::ORIGINAL_EXCHANGE_HEADER),
            header(runtime::broker::ORIGINAL_ROUTING_KEY_HEADER),
        );
        let expected = (
            case.service,
            case.service.to_owned(),
            "permanent".to_owned(),
            format!("{}.{}", env.prefix, case.exchange),
            case.routing_key.to_owned(),
        );
        let reason = header(runtime::broker::REASON_HEADER);
        if found != expected || !reason.contains(&case.reason) {
            problems.push(format!(
                "{}: {found:?} {reason:?}, expected {expected:?} with {:?}",
                case.name, case.reason
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // No trace in the database: no ledger row, no processed event, no outbox row.
    for table in [
        "ops.files",
        "ops.processed_events",
        "ops.outbox",
        "ops.staged_sources",
    ] {
        assert_eq!(
            env.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}
