//! Key patterns and source modes, with the real services on a dataset defined in a folder of the
//! test's own (as a team would add one): a kiosk whose till writes
//! `kiosk/2026/11/01/Sales-20261101.csv`, a customer snapshot exported as
//! `kiosk/2026/11/01/customers_<anything>.csv[.gz]` now and then, and returns written as
//! `kiosk-returns/returns_2026-11-01.csv`, every day's in one folder.
//!
//! - files under those keys land, stage and map to the right batch; keys that fit no pattern are
//!   ignored with the reason; a second customers file for a day replaces the first; `backfill`
//!   lists the folders the patterns give and lands only the batch's files;
//! - a snapshot source has the view `snapshot.<table>` (the latest snapshot staged at or before
//!   the batch date), which a model reads on a day without a customers file; a delta source has
//!   none;
//! - `landfall dataset check` reports bad patterns, a pattern another dataset already matches,
//!   and a model reading the snapshot of a delta source, each with its file and line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use landfall_tests::{TestEnv, binary_path, rows, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

const DEFINITION: &str = r#"# A kiosk's till exports, each in its own key layout.
name = "kiosk"
description = "Sales per day, customer tiers now and then, returns"
mode = "delta"
# The sources' layout unless they say otherwise.
key_pattern = "{dataset}/{yyyy}/{mm}/{dd}/{source}_*"

[[sources]]
name = "sales"
table = "kiosk_sales"
key_pattern = "{dataset}/{yyyy}/{mm}/{dd}/Sales-{yyyy}{mm}{dd}"
natural_key = ["sale_id"]
columns = [
    { name = "sale_id", type = "int" },
    { name = "customer_id", type = "int" },
    { name = "amount", type = "numeric(8,2)", min = 0 },
]

[[sources]]
name = "customers"
table = "kiosk_customers"
mode = "snapshot"
required = false
natural_key = ["customer_id"]
columns = [
    { name = "customer_id", type = "int" },
    { name = "tier", type = "text" },
]

[[sources]]
name = "returns"
table = "kiosk_returns"
required = false
key_pattern = "kiosk-returns/{source}_{date}"
columns = [{ name = "sale_id", type = "int" }]
"#;

const TABLES_SQL: &str = "-- model: tables
-- depends_on:
SELECT pg_advisory_xact_lock(hashtext('landfall.kiosk'));
CREATE TABLE IF NOT EXISTS analytics.kiosk_sales_by_tier (
    ingestion_date  date          NOT NULL,
    tier            text          NOT NULL,
    sales           integer       NOT NULL,
    amount          numeric(10,2) NOT NULL,
    customers_as_of date,
    PRIMARY KEY (ingestion_date, tier)
);
";

/// The day's sales by the tier of their customer in the latest customers snapshot at or before
/// the day, and which snapshot that was.
const SALES_BY_TIER_SQL: &str = "-- model: sales_by_tier
-- depends_on: tables
DELETE FROM analytics.kiosk_sales_by_tier WHERE ingestion_date = ops.batch_date();
INSERT INTO analytics.kiosk_sales_by_tier
SELECT ops.batch_date(), coalesce(c.tier, 'unknown'), count(*), sum(s.amount), max(c._batch)
  FROM staging.kiosk_sales s
  LEFT JOIN snapshot.kiosk_customers c ON c.customer_id = s.customer_id
 WHERE s._batch = ops.batch_date()
 GROUP BY 2;
";

/// The dataset, its models included, in a datasets folder of the test's own.
struct Folders {
    root: PathBuf,
    datasets: PathBuf,
    /// The dataset's models, `<datasets>/kiosk/models`.
    models: PathBuf,
}

impl Folders {
    fn new(env: &TestEnv, name: &str) -> Folders {
        let root = std::env::temp_dir().join(format!("landfall-{name}-{}", env.suffix));
        let datasets = root.join("datasets");
        let models = datasets.join("kiosk/models");
        write(&datasets.join("kiosk/dataset.toml"), DEFINITION);
        write(&models.join("tables.sql"), TABLES_SQL);
        write(&models.join("sales_by_tier.sql"), SALES_BY_TIER_SQL);
        Folders {
            root,
            datasets,
            models,
        }
    }

    /// The variable pointing the services and `landfall` at these folders.
    fn overrides(&self) -> [(&'static str, String); 1] {
        [("LANDFALL_DATASETS_DIR", self.datasets.display().to_string())]
    }
}

impl Drop for Folders {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// Runs `landfall` with the test's configuration and `overrides`.
async fn landfall(
    env: &TestEnv,
    overrides: &[(&str, String)],
    args: &[&str],
) -> std::process::Output {
    tokio::process::Command::new(binary_path("landfall"))
        .args(args)
        .env_clear()
        .envs(env.vars())
        .envs(
            overrides
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
        )
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("running landfall")
}

/// A ledger row by key: state, dataset, source, batch date and reason, once it has left
/// `landed`.
async fn settled(env: &TestEnv, key: &str) -> Vec<String> {
    wait_until(&format!("{key} settled"), DEADLINE, || async {
        let row = env
            .db
            .query_opt(
                "SELECT state, coalesce(dataset, '-'), coalesce(source, '-'),
                        coalesce(ingestion_date::text, '-'), coalesce(reason, '-')
                   FROM ops.files WHERE key = $1 AND state <> 'landed'
                  ORDER BY file_id DESC LIMIT 1",
                &[&key],
            )
            .await?;
        Ok(row.map(|row| (0..5).map(|index| row.get::<_, String>(index)).collect()))
    })
    .await
}

fn ledger(state: &str, source: &str, date: &str) -> Vec<String> {
    [state, "kiosk", source, date, "-"]
        .iter()
        .map(|cell| (*cell).to_owned())
        .collect()
}

const SALES_1101: &str = "sale_id,customer_id,amount\n1,1,10.00\n2,2,5.50\n3,1,4.50\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_under_custom_keys_land_stage_and_map_to_their_batch() {
    let env = TestEnv::new().await;
    let folders = Folders::new(&env, "key-patterns");
    let overrides = folders.overrides();
    let vars: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let ingester = env.start_ingester(&vars);
    let stager = env.start_stager(&vars);
    env.wait_consuming("ingester", DEADLINE).await;
    env.wait_consuming("stager", DEADLINE).await;

    let sales = "landing/kiosk/2026/11/01/Sales-20261101.csv";
    let customers = "landing/kiosk/2026/11/01/customers_export (1).csv.gz";
    let customers_again = "landing/kiosk/2026/11/01/customers_export (2).csv";
    let returns = "landing/kiosk-returns/returns_2026-11-01.csv";
    env.put(sales, SALES_1101).await;
    env.put(customers, gzip("customer_id,tier\n1,gold\n2,silver\n"))
        .await;
    env.put(returns, "sale_id\n3\n").await;
    assert_eq!(
        settled(&env, sales).await,
        ledger("staged", "sales", "2026-11-01")
    );
    assert_eq!(
        settled(&env, customers).await,
        ledger("staged", "customers", "2026-11-01")
    );
    assert_eq!(
        settled(&env, returns).await,
        ledger("staged", "returns", "2026-11-01")
    );
    assert_eq!(
        env.query_text(
            "SELECT customer_id::text, tier, _batch::text FROM staging.kiosk_customers ORDER BY 1"
        )
        .await,
        rows(&[&["1", "gold", "2026-11-01"], &["2", "silver", "2026-11-01"]])
    );
    assert_eq!(
        env.count("SELECT count(*) FROM staging.kiosk_sales WHERE _batch = '2026-11-01'")
            .await,
        3
    );
    // One file per source and batch: a second customers file of the day replaces the first.
    env.put(
        customers_again,
        "customer_id,tier\n1,gold\n2,gold\n3,bronze\n",
    )
    .await;
    assert_eq!(
        settled(&env, customers_again).await,
        ledger("staged", "customers", "2026-11-01")
    );
    let first = settled(&env, customers).await;
    assert_eq!(&first[..1], ["superseded"]);
    assert_eq!(
        env.query_text("SELECT customer_id::text, tier FROM staging.kiosk_customers ORDER BY 1")
            .await,
        rows(&[&["1", "gold"], &["2", "gold"], &["3", "bronze"]])
    );
    // Keys no pattern takes are ignored, with the reason.
    let tried = "the key matches no key pattern (tried: \
        landing/kiosk-returns/{source}_{date}.csv[.gz] (kiosk returns); \
        landing/kiosk/{yyyy}/{mm}/{dd}/Sales-{yyyy}{mm}{dd}.csv[.gz] (kiosk sales); \
        landing/kiosk/{yyyy}/{mm}/{dd}/{source}_*.csv[.gz] (kiosk customers))";
    for (key, reason) in [
        // The folder says the 1st, the file name the 2nd.
        ("landing/kiosk/2026/11/01/Sales-20261102.csv", tried),
        // The fixed layout is not this dataset's.
        ("landing/kiosk/ingestion_date=2026-11-01/sales.csv", tried),
        (
            "landing/kiosk/2026/11/01/notes.txt",
            "'notes.txt' is not a .csv or .csv.gz file",
        ),
        (
            "landing/kiosk/2026/02/30/Sales-20260230.csv",
            "'2026-02-30' is not a valid date (key pattern landing/kiosk/{yyyy}/{mm}/{dd}/Sales-{yyyy}{mm}{dd}.csv)",
        ),
    ] {
        env.put(key, SALES_1101).await;
        let row = settled(&env, key).await;
        assert_eq!(row[..4], ["ignored", "-", "-", "-"], "{key}");
        assert_eq!(row[4], reason, "{key}");
    }

    // Backfill, the notifications lost: it lists the folders the patterns give for the date and
    // lands that date's files only, not the next day's in the same folder.
    env.set_notifications(false);
    let sales_1102 = "landing/kiosk/2026/11/02/Sales-20261102.csv";
    let returns_1102 = "landing/kiosk-returns/returns_2026-11-02.csv";
    let returns_1103 = "landing/kiosk-returns/returns_2026-11-03.csv";
    let sales_1103 = "landing/kiosk/2026/11/03/Sales-20261103.csv";
    env.put(sales_1102, "sale_id,customer_id,amount\n4,3,7.00\n")
        .await;
    env.put(returns_1102, "sale_id\n4\n").await;
    env.put(returns_1103, "sale_id\n5\n").await;
    env.put(sales_1103, "sale_id,customer_id,amount\n5,3,1.00\n")
        .await;
    let output = landfall(
        &env,
        &overrides,
        &[
            "backfill",
            "--dataset",
            "kiosk",
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-02",
            "--no-wait",
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "kiosk/2026-11-02 listing s3://lake/landing/kiosk-returns/, s3://lake/landing/kiosk/2026/11/02/",
        "kiosk/2026-11-02: 2 object(s) listed, 2 new file(s) landed",
    ] {
        assert!(stdout.contains(expected), "'{expected}' missing:\n{stdout}");
    }
    assert_eq!(
        settled(&env, sales_1102).await,
        ledger("staged", "sales", "2026-11-02")
    );
    assert_eq!(
        settled(&env, returns_1102).await,
        ledger("staged", "returns", "2026-11-02")
    );
    assert_eq!(
        env.query_text("SELECT key, discovered_by FROM ops.files WHERE ingestion_date >= '2026-11-02' ORDER BY key")
            .await,
        rows(&[&[returns_1102, "reconcile"], &[sales_1102, "reconcile"]])
    );

    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_without_a_snapshot_reads_the_one_before_and_a_delta_source_has_none() {
    let env = TestEnv::new().await;
    let folders = Folders::new(&env, "source-modes");
    let overrides = folders.overrides();
    let vars: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let ingester = env.start_ingester(&vars);
    let stager = env.start_stager(&vars);
    let transformer = env.start_transformer(&vars);
    env.wait_consuming("ingester", DEADLINE).await;
    env.wait_consuming("stager", DEADLINE).await;
    env.wait_consuming("transformer", DEADLINE).await;
    let transformed = |date: &'static str, files: i64| {
        let env = &env;
        async move {
            wait_until(&format!("{date} transformed from {files} file(s)"), DEADLINE, || async {
                let done = env
                    .try_count(&format!(
                        "SELECT count(*) FROM ops.batches WHERE dataset = 'kiosk' AND ingestion_date = '{date}'
                            AND state = 'transformed' AND cardinality(transformed_files) = {files}"
                    ))
                    .await?;
                Ok((done == 1).then_some(()))
            })
            .await
        }
    };
    let report = |date: &'static str| {
        let env = &env;
        async move {
            env.query_text(&format!(
                "SELECT tier, sales::text, amount::text, coalesce(customers_as_of::text, '-')
                   FROM analytics.kiosk_sales_by_tier WHERE ingestion_date = '{date}' ORDER BY tier"
            ))
            .await
        }
    };

    // Nov 1: sales and a customers snapshot (1 gold, 2 silver).
    env.put(
        "landing/kiosk/2026/11/01/customers_export.csv",
        "customer_id,tier\n1,gold\n2,silver\n",
    )
    .await;
    settled(&env, "landing/kiosk/2026/11/01/customers_export.csv").await;
    env.put("landing/kiosk/2026/11/01/Sales-20261101.csv", SALES_1101)
        .await;
    transformed("2026-11-01", 2).await;
    assert_eq!(
        report("2026-11-01").await,
        rows(&[
            &["gold", "2", "14.50", "2026-11-01"],
            &["silver", "1", "5.50", "2026-11-01"]
        ])
    );

    // Nov 2: sales only. The snapshot of Nov 1 is the latest at or before it; customer 3 is in
    // none yet.
    env.put(
        "landing/kiosk/2026/11/02/Sales-20261102.csv",
        "sale_id,customer_id,amount\n4,1,1.00\n5,2,2.00\n6,3,3.00\n",
    )
    .await;
    transformed("2026-11-02", 1).await;
    assert_eq!(
        report("2026-11-02").await,
        rows(&[
            &["gold", "1", "1.00", "2026-11-01"],
            &["silver", "1", "2.00", "2026-11-01"],
            &["unknown", "1", "3.00", "-"]
        ])
    );

    // Nov 3: a new snapshot (2 moves up, 3 arrives), then the sales.
    env.put(
        "landing/kiosk/2026/11/03/customers_export.csv",
        "customer_id,tier\n1,gold\n2,gold\n3,bronze\n",
    )
    .await;
    settled(&env, "landing/kiosk/2026/11/03/customers_export.csv").await;
    env.put(
        "landing/kiosk/2026/11/03/Sales-20261103.csv",
        "sale_id,customer_id,amount\n7,2,2.00\n8,3,3.00\n",
    )
    .await;
    transformed("2026-11-03", 2).await;
    assert_eq!(
        report("2026-11-03").await,
        rows(&[
            &["bronze", "1", "3.00", "2026-11-03"],
            &["gold", "1", "2.00", "2026-11-03"]
        ])
    );

    // The view answers for the batch date it is read for: at or before it, never after.
    let snapshot_on = |date: &'static str| {
        let env = &env;
        async move {
            env.db
                .batch_execute(&format!(
                    "BEGIN; SELECT set_config('landfall.batch_date', '{date}', true)"
                ))
                .await
                .unwrap();
            let found = env
                .query_text(
                    "SELECT customer_id::text, tier, _batch::text FROM snapshot.kiosk_customers ORDER BY 1",
                )
                .await;
            env.db.batch_execute("ROLLBACK").await.unwrap();
            found
        }
    };
    assert_eq!(snapshot_on("2026-10-31").await, rows(&[]));
    assert_eq!(
        snapshot_on("2026-11-02").await,
        rows(&[&["1", "gold", "2026-11-01"], &["2", "silver", "2026-11-01"]])
    );
    assert_eq!(
        snapshot_on("2026-11-30").await,
        rows(&[
            &["1", "gold", "2026-11-03"],
            &["2", "gold", "2026-11-03"],
            &["3", "bronze", "2026-11-03"]
        ])
    );
    // Delta sources have no snapshot view.
    assert_eq!(
        env.query_text(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'snapshot' ORDER BY 1"
        )
        .await,
        rows(&[&["kiosk_customers"]])
    );

    transformer.stop().await;
    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}

/// The 1-based line of the first line of `text` holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("'{needle}' not found"))
        + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_check_reports_pattern_and_mode_problems_by_file_and_line() {
    let env = TestEnv::new().await;
    let folders = Folders::new(&env, "key-pattern-check");
    let overrides = folders.overrides();
    let dir = folders.datasets.join("kiosk");
    let definition = dir.join("dataset.toml");
    let check = |args: Vec<String>| {
        let env = &env;
        let overrides = &overrides;
        async move {
            let mut all = vec!["dataset".to_owned(), "check".to_owned()];
            all.extend(args);
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            let output = landfall(env, overrides, &all).await;
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        }
    };
    let dir_arg = dir.display().to_string();
    // `dataset check --no-database` of the folder fails and reports `expected`.
    let reports = |expected: String| {
        let check = &check;
        let dir_arg = dir_arg.clone();
        async move {
            let (ok, stdout) = check(vec![dir_arg, "--no-database".into()]).await;
            assert!(!ok, "{stdout}");
            assert!(
                stdout.contains(&expected),
                "'{expected}' missing:\n{stdout}"
            );
        }
    };

    // As written, it passes, its SQL run in a scratch database (the snapshot view included).
    let (ok, stdout) = check(vec![dir_arg.clone()]).await;
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains(
            "kiosk (") && stdout.contains(", delta mode): sales → staging.kiosk_sales (keys kiosk/{yyyy}/{mm}/{dd}/Sales-{yyyy}{mm}{dd}.csv[.gz]), customers → staging.kiosk_customers (snapshot; keys kiosk/{yyyy}/{mm}/{dd}/customers_*.csv[.gz]), returns → staging.kiosk_returns (keys kiosk-returns/returns_{date}.csv[.gz])"),
        "{stdout}"
    );
    assert!(stdout.contains("no problems"), "{stdout}");

    // A model reading the snapshot of a delta source: there is none.
    let model = folders.models.join("sales_by_tier.sql");
    write(
        &model,
        &SALES_BY_TIER_SQL.replace(
            "WHERE s._batch = ops.batch_date()",
            "WHERE s._batch = ops.batch_date()\n   AND s.sale_id NOT IN (SELECT sale_id FROM snapshot.kiosk_returns)",
        ),
    );
    let (ok, stdout) = check(vec![dir_arg.clone()]).await;
    assert!(!ok);
    let text = std::fs::read_to_string(&model).unwrap();
    let expected = format!(
        "{}:{}: model sales_by_tier: relation \"snapshot.kiosk_returns\" does not exist",
        model.display(),
        line_of(&text, "snapshot.kiosk_returns")
    );
    assert!(
        stdout.contains(&expected),
        "'{expected}' missing:\n{stdout}"
    );
    write(&model, SALES_BY_TIER_SQL);

    // A pattern without a date.
    write(
        &definition,
        &DEFINITION.replace("kiosk-returns/{source}_{date}", "kiosk-returns/{source}"),
    );
    reports(format!(
        "{}:{}: source 'returns': key_pattern 'kiosk-returns/{{source}}' has no date: it needs {{date}} (YYYY-MM-DD) or all of {{yyyy}}, {{mm}} and {{dd}}",
        definition.display(),
        line_of(DEFINITION, "kiosk-returns/{source}_{date}")
    ))
    .await;

    // An unknown placeholder in the dataset's pattern.
    write(
        &definition,
        &DEFINITION.replace("{dd}/{source}_*", "{day}/{source}_*"),
    );
    reports(format!(
        "{}:{}: key_pattern '{{dataset}}/{{yyyy}}/{{mm}}/{{day}}/{{source}}_*' has an unknown placeholder {{day}}",
        definition.display(),
        line_of(DEFINITION, "{dataset}/{yyyy}/{mm}/{dd}/{source}_*")
    ))
    .await;

    // Two sources whose patterns match the same keys.
    write(
        &definition,
        &DEFINITION.replace(
            "kiosk-returns/{source}_{date}",
            "{dataset}/{yyyy}/{mm}/{dd}/*",
        ),
    );
    reports(format!(
        "{}:{}: sources 'sales' and 'returns' can match the same key (e.g. kiosk/1111/11/11/Sales-11111111.csv)",
        definition.display(),
        line_of(DEFINITION, "kiosk-returns/{source}_{date}")
    ))
    .await;

    // Another dataset in the datasets folder whose pattern matches this one's keys.
    write(&definition, DEFINITION);
    let other = folders.datasets.join("kiosk_copy/dataset.toml");
    write(
        &other,
        &DEFINITION
            .replace("name = \"kiosk\"", "name = \"kiosk_copy\"")
            .replace("table = \"kiosk_", "table = \"copy_")
            .replace(
                "kiosk-returns/{source}_{date}",
                "copy-returns/{source}_{date}",
            )
            .replace(
                "key_pattern = \"{dataset}/{yyyy}/{mm}/{dd}/{source}_*\"",
                "key_pattern = \"copy/{date}/{source}_*\"",
            )
            .replace(
                "{dataset}/{yyyy}/{mm}/{dd}/Sales-",
                "kiosk/{yyyy}/{mm}/{dd}/Sales-",
            ),
    );
    reports(format!(
        "{}:{}: source 'sales' can match the same key as dataset 'kiosk_copy' source 'sales' (key pattern kiosk/{{yyyy}}/{{mm}}/{{dd}}/Sales-{{yyyy}}{{mm}}{{dd}}, e.g. kiosk/1111/11/11/Sales-11111111.csv): key pattern '{{dataset}}/{{yyyy}}/{{mm}}/{{dd}}/Sales-{{yyyy}}{{mm}}{{dd}}' ({})",
        definition.display(),
        line_of(DEFINITION, "{dataset}/{yyyy}/{mm}/{dd}/Sales-"),
        other.display()
    ))
    .await;
    // The services refuse to start with both.
    let output = landfall(&env, &overrides, &["migrate"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("can match the same key as dataset 'kiosk'")
            || stderr.contains("can match the same key as dataset 'kiosk_copy'"),
        "{stderr}"
    );

    env.cleanup().await;
}
