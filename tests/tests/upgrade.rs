//! Each dataset's tables are its own migrations (`datasets/<name>/migrations`), applied after the
//! platform's (`sql/migrations`) for each dataset in the datasets directory. A database
//! migrated before the bundled datasets' tables moved there from the platform's migrations
//! (`tests/fixtures/migrations-before-datasets`, the platform's files as they were then)
//! upgrades in place: no error, no row lost, a batch still runs end to end, and its schema ends
//! exactly as a fresh database's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use landfall_tests::{TestEnv, data};

const DEADLINE: Duration = Duration::from_secs(120);
const DAY1: &str = "2026-03-02";
const DAY2: &str = "2026-03-03";

fn repo() -> PathBuf {
    TestEnv::repo_dir()
}

/// FNV-1a over the text, as the migration runner checksums a migration (written again here so
/// the records this test makes do not come from the code under test).
fn fnv1a(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The `*.sql` files of a folder in name order: (file name without `.sql`, text).
fn sql_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// The bundled dataset's migration files (name without `.sql`, text).
fn dataset_migrations(dataset: &str) -> Vec<(String, String)> {
    sql_files(&repo().join("datasets").join(dataset).join("migrations"))
}

/// Migrates the test database as the runner did before the move: every fixture migration in
/// name order, each in a transaction that records its name and checksum; then the staging
/// tables of the bundled datasets and the service roles' grants.
async fn migrate_as_before(env: &TestEnv) {
    let mut client = runtime::db::connect(&env.database_url)
        .await
        .expect("test database");
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS ops;
             CREATE TABLE IF NOT EXISTS ops.schema_migrations (
                 name       text        PRIMARY KEY,
                 checksum   text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await
        .unwrap();
    for (name, sql) in sql_files(&repo().join("tests/fixtures/migrations-before-datasets")) {
        let tx = client.transaction().await.unwrap();
        tx.batch_execute(&sql)
            .await
            .unwrap_or_else(|error| panic!("applying {name}: {error}"));
        tx.execute(
            "INSERT INTO ops.schema_migrations (name, checksum) VALUES ($1, $2)",
            &[&name, &fnv1a(&sql)],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    catalog::staging::ensure_staging_tables(&client, &env.datasets())
        .await
        .expect("staging tables");
    client
        .batch_execute(
            "SELECT ops.apply_service_grants();
             SELECT ops.apply_staging_rows_grants();
             SELECT ops.apply_audit_grants();",
        )
        .await
        .expect("grants");
}

/// Every row of every table of the schemas the migrations touch, as text, by table (the
/// migrations' own records left out).
async fn all_rows(env: &TestEnv) -> BTreeMap<String, Vec<String>> {
    let tables: Vec<String> = env
        .query_text(
            "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
              WHERE table_schema IN ('ops', 'staging_rows', 'warehouse', 'audit', 'analytics')
                AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'
              ORDER BY 1",
        )
        .await
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    let mut rows = BTreeMap::new();
    for table in tables {
        let text = env
            .query_text(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
            .await
            .into_iter()
            .map(|row| row[0].clone())
            .collect();
        rows.insert(table, text);
    }
    rows
}

/// The bundled datasets as the build of the fixture's time had them: the `fact_reviews` model
/// that kept a row per file line (`tests/fixtures/fact-reviews-by-line`), and only the
/// datasets' first migrations.
fn datasets_of_that_time(env: &TestEnv) -> PathBuf {
    let dir = landfall_tests::datasets::bundled_copy(env, "datasets-before");
    std::fs::copy(
        repo().join("tests/fixtures/fact-reviews-by-line/fact_reviews.sql"),
        dir.join("ecommerce/models/fact_reviews.sql"),
    )
    .unwrap();
    for dataset in ["ecommerce", "online_retail"] {
        for entry in std::fs::read_dir(dir.join(dataset).join("migrations")).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("0001_")
            {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    dir
}

/// warehouse.fact_reviews as a multiset: each (batch, product key, product, review) and how
/// many rows have it.
async fn reviews_multiset(env: &TestEnv) -> Vec<Vec<String>> {
    env.query_text(
        "SELECT last_batch::text, product_key::text, product_id::text, coalesce(review::text, ''),
                count(*)::text
           FROM warehouse.fact_reviews GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
    )
    .await
}

/// The database's schema as `pg_dump --schema-only` describes it (tables and their columns in
/// order with types, defaults and nullability, constraints, indexes, sequences, views,
/// functions, grants and default privileges), without comments, blank lines, the dump's random
/// `\restrict` key and the database's name.
fn schema_of(env: &TestEnv) -> Vec<String> {
    let output = std::process::Command::new("pg_dump")
        .args(["--schema-only", "--dbname", &env.database_url])
        .output()
        .expect("running pg_dump (installed with PostgreSQL)");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8 dump")
        .lines()
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with("--")
                && !line.starts_with("\\restrict")
                && !line.starts_with("\\unrestrict")
        })
        .map(|line| line.replace(&env.database, "<database>"))
        .collect()
}

/// The tables of `warehouse`, `audit` and `analytics`, as `schema.table`.
async fn dataset_tables(env: &TestEnv) -> Vec<String> {
    env.query_text(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables
          WHERE table_schema IN ('warehouse', 'audit', 'analytics') ORDER BY 1",
    )
    .await
    .into_iter()
    .map(|row| row[0].clone())
    .collect()
}

/// The migrations recorded, by name, with their checksums.
async fn records(env: &TestEnv) -> BTreeMap<String, String> {
    env.query_text("SELECT name, checksum FROM ops.schema_migrations")
        .await
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect()
}

/// Lands an ecommerce batch (orders, reviews, shipments and a holiday calendar) with the five
/// services, and waits until it is exported.
async fn land_batch(env: &TestEnv, date: &str, first_order: i64, overrides: &[(&str, &str)]) {
    let services = env.start_pipeline(overrides, DEADLINE).await;
    env.put(
        &TestEnv::landing_key(date, "holidays.csv"),
        "holiday_date,name\n2026-01-01,New Year\n2026-02-16,Carnival Monday\n",
    )
    .await;
    env.put(
        &TestEnv::landing_key(date, "reviews.csv"),
        data::reviews_csv(30),
    )
    .await;
    env.put(
        &TestEnv::landing_key(date, "shipment_deliveries.csv"),
        data::shipments_csv(20),
    )
    .await;
    env.put(
        &TestEnv::landing_key(date, "orders.csv"),
        data::orders_csv(first_order, 20),
    )
    .await;
    env.wait_exported("ecommerce", date, DEADLINE).await;
    for service in services {
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_before_datasets_had_migrations_upgrades_in_place() {
    let env = TestEnv::new().await;
    migrate_as_before(&env).await;
    // A batch landed on that database by the services (which must not migrate it yet) with the
    // models of that time, and rows of the other dataset written by hand.
    let models_before = datasets_of_that_time(&env);
    land_batch(
        &env,
        DAY1,
        1,
        &[
            ("LANDFALL_MIGRATE_ON_START", "false"),
            ("LANDFALL_DATASETS_DIR", models_before.to_str().unwrap()),
        ],
    )
    .await;
    env.db
        .batch_execute(
            "INSERT INTO warehouse.retail_dim_country (country) VALUES ('Norway'), ('Chile');
             INSERT INTO analytics.retail_cancellation_rate
             VALUES (DATE '2026-03-01', 40, 2, 5.00, 1234.50, 61.73, 5.00);
             INSERT INTO audit.retail_cancellation_rate SELECT * FROM analytics.retail_cancellation_rate;",
        )
        .await
        .unwrap();
    let mut before = all_rows(&env).await;
    let reviews_before = reviews_multiset(&env).await;
    assert!(
        !reviews_before.is_empty(),
        "the batch's reviews are in fact_reviews"
    );
    for table in [
        "warehouse.fact_reviews",
        "warehouse.fact_orders",
        "warehouse.holiday_calendar_days",
        "analytics.agg_shipments",
        "audit.top_products_by_revenue",
        "warehouse.retail_dim_country",
        "analytics.retail_cancellation_rate",
    ] {
        assert!(
            !before[table].is_empty(),
            "{table} has rows before the upgrade"
        );
    }
    let old_records = records(&env).await;

    // The upgrade: the datasets' first migrations are recorded (their tables were there).
    let mut client = runtime::db::connect(&env.database_url)
        .await
        .expect("test database");
    let applied = runtime::db::migrate(&mut client, &env.datasets())
        .await
        .expect("the new migrations accept a database migrated before the move");
    // The platform's migrations newer than the fixture's (written since) apply too.
    let fixture = sql_files(&repo().join("tests/fixtures/migrations-before-datasets"));
    let newest_in_fixture = fixture
        .last()
        .map(|(name, _)| name.clone())
        .unwrap_or_default();
    let platform_since = sql_files(&repo().join("sql/migrations"))
        .into_iter()
        .filter(|(name, _)| *name > newest_in_fixture)
        .count();
    assert_eq!(
        applied,
        dataset_migrations("ecommerce").len()
            + dataset_migrations("online_retail").len()
            + platform_since,
        "the datasets' migrations and the platform's newer than the fixture"
    );
    // Every row is still there; fact_reviews's rows numbered per product and stars instead of
    // by file line, the same reviews, and the batch it holds recorded.
    let mut upgraded_rows = all_rows(&env).await;
    assert_eq!(reviews_multiset(&env).await, reviews_before);
    assert_eq!(
        env.query_text(
            "SELECT product_id::text, stars::text FROM warehouse.fact_reviews
              GROUP BY product_id, stars HAVING max(ordinal) <> count(*) OR min(ordinal) <> 1"
        )
        .await,
        Vec::<Vec<String>>::new(),
        "ordinals 1..n without gaps"
    );
    assert_eq!(
        upgraded_rows.remove("warehouse.fact_reviews_batch"),
        Some(vec![format!("(t,{DAY1})")])
    );
    let counts = upgraded_rows
        .remove("warehouse.fact_reviews_counts")
        .expect("fact_reviews_counts");
    let reviews: usize = reviews_before
        .iter()
        .map(|row| row[4].parse::<usize>().unwrap())
        .sum();
    let counted: usize = counts
        .iter()
        .map(|row| {
            let count = row.trim_end_matches(')').rsplit(',').next().unwrap();
            count.parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(
        counted, reviews,
        "fact_reviews_counts adds up to the reviews: {counts:?}"
    );
    before.remove("warehouse.fact_reviews");
    upgraded_rows.remove("warehouse.fact_reviews");
    // A table the platform made since the fixture (0017: ops.extracts) starts empty.
    assert_eq!(
        upgraded_rows.remove("ops.extracts"),
        Some(Vec::new()),
        "ops.extracts, made by the upgrade, is empty"
    );
    assert_eq!(upgraded_rows, before, "every row is still there");

    // The records: the platform's files of this build (the two rewritten ones now with their
    // new checksums), the removed ones as they were, and each dataset's files.
    let mut expected = old_records.clone();
    for (name, sql) in sql_files(&repo().join("sql/migrations")) {
        expected.insert(name, fnv1a(&sql));
    }
    for dataset in ["ecommerce", "online_retail"] {
        for (name, sql) in dataset_migrations(dataset) {
            expected.insert(format!("{dataset}/{name}"), fnv1a(&sql));
        }
    }
    assert_eq!(records(&env).await, expected);
    for removed in [
        "0006_online_retail",
        "0011_fact_keys_checked_by_quality",
        "0012_fact_batch_brin",
        "0015_fact_shipments_no_batch_index",
    ] {
        assert!(
            !repo()
                .join(format!("sql/migrations/{removed}.sql"))
                .exists(),
            "{removed} is no longer a platform migration"
        );
        assert!(expected.contains_key(removed), "{removed} stays recorded");
    }

    // The same schema as a database migrated fresh by this build.
    let fresh = TestEnv::new().await;
    fresh.migrated_client().await;
    let (upgraded, expected_schema) = (schema_of(&env), schema_of(&fresh));
    assert!(
        expected_schema
            .iter()
            .any(|line| line.starts_with("CREATE TABLE warehouse.fact_orders")),
        "the fresh database has the datasets' tables"
    );
    if upgraded != expected_schema {
        // Where they part, with a few lines of each around it.
        let at = upgraded
            .iter()
            .zip(&expected_schema)
            .position(|(a, b)| a != b)
            .unwrap_or(upgraded.len().min(expected_schema.len()));
        let around =
            |lines: &[String]| lines[at.saturating_sub(5)..(at + 5).min(lines.len())].join("\n");
        panic!(
            "the upgraded database's schema differs from a fresh one's at line {at}:\n\
             upgraded:\n{}\n\nfresh:\n{}",
            around(&upgraded),
            around(&expected_schema)
        );
    }
    fresh.cleanup().await;

    // Migrating again changes nothing; the next batch runs end to end (the services migrate at
    // start as usual) and the first batch's reports stay as they were.
    assert_eq!(
        runtime::db::migrate(&mut client, &env.datasets())
            .await
            .unwrap(),
        0
    );
    land_batch(&env, DAY2, 21, &[]).await;
    let after = all_rows(&env).await;
    for report in [
        "agg_public_holiday",
        "agg_shipments",
        "best_performing_product",
    ] {
        let table = format!("analytics.{report}");
        let of_day1 = |rows: &Vec<String>| -> Vec<String> {
            rows.iter()
                .filter(|row| row.starts_with(&format!("({DAY1},")))
                .cloned()
                .collect()
        };
        assert_eq!(of_day1(&after[&table]), of_day1(&before[&table]), "{table}");
        assert!(
            after[&table]
                .iter()
                .any(|row| row.starts_with(&format!("({DAY2},"))),
            "{table} has the second batch's row"
        );
    }
    assert_eq!(
        after["warehouse.retail_dim_country"],
        before["warehouse.retail_dim_country"]
    );
    let _ = std::fs::remove_dir_all(&models_before);
    env.cleanup().await;
}

/// A datasets directory of the test's own: copies of bundled datasets, or a dataset of the test.
struct DatasetsDir(PathBuf);

impl DatasetsDir {
    fn new(env: &TestEnv, datasets: &[&str]) -> DatasetsDir {
        let dir =
            DatasetsDir(std::env::temp_dir().join(format!("landfall-datasets-{}", env.suffix)));
        for dataset in datasets {
            dir.add(dataset);
        }
        dir
    }

    fn add(&self, dataset: &str) {
        let from = repo().join("datasets").join(dataset);
        let to = self.0.join(dataset);
        std::fs::create_dir_all(to.join("migrations")).unwrap();
        std::fs::copy(from.join("dataset.toml"), to.join("dataset.toml")).unwrap();
        for entry in std::fs::read_dir(from.join("migrations")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, to.join("migrations").join(path.file_name().unwrap())).unwrap();
        }
    }

    fn load(&self) -> catalog::Datasets {
        catalog::Datasets::load(&self.0).expect("datasets")
    }
}

impl Drop for DatasetsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names(list: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = list.iter().map(|name| (*name).to_owned()).collect();
    names.sort();
    names
}

const ECOMMERCE_TABLES: &[&str] = &[
    "analytics.agg_public_holiday",
    "analytics.agg_shipments",
    "analytics.best_performing_product",
    "analytics.sales_by_month",
    "analytics.top_products_by_revenue",
    "audit.agg_public_holiday",
    "audit.agg_shipments",
    "audit.best_performing_product",
    "audit.sales_by_month",
    "audit.top_products_by_revenue",
    "warehouse.dim_customer",
    "warehouse.dim_date",
    "warehouse.dim_product",
    "warehouse.fact_orders",
    "warehouse.fact_reviews",
    "warehouse.fact_reviews_batch",
    "warehouse.fact_reviews_counts",
    "warehouse.fact_shipments",
    "warehouse.holiday_calendar_days",
    "warehouse.holiday_calendars",
];

const ONLINE_RETAIL_TABLES: &[&str] = &[
    "analytics.retail_cancellation_rate",
    "analytics.retail_revenue_by_country_month",
    "analytics.retail_top_products",
    "audit.retail_cancellation_rate",
    "audit.retail_revenue_by_country_month",
    "audit.retail_top_products",
    "warehouse.retail_dim_country",
    "warehouse.retail_dim_customer",
    "warehouse.retail_dim_date",
    "warehouse.retail_dim_product",
    "warehouse.retail_fact_transactions",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_gets_the_tables_of_the_datasets_it_has() {
    let env = TestEnv::new().await;
    let platform = sql_files(&repo().join("sql/migrations")).len();
    let dir = DatasetsDir::new(&env, &["ecommerce"]);
    let mut client = runtime::db::connect(&env.database_url).await.unwrap();
    assert_eq!(
        runtime::db::migrate(&mut client, &dir.load())
            .await
            .unwrap(),
        platform + dataset_migrations("ecommerce").len()
    );
    assert_eq!(dataset_tables(&env).await, names(ECOMMERCE_TABLES));
    // Granted like every table there: the transformer writes them.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM information_schema.tables
              WHERE table_schema IN ('warehouse', 'audit', 'analytics')
                AND has_table_privilege('landfall_transformer', format('%I.%I', table_schema, table_name), 'INSERT')"
        )
        .await,
        ECOMMERCE_TABLES.len() as i64
    );

    // The other dataset enabled later: the next migration makes its tables.
    dir.add("online_retail");
    assert_eq!(
        runtime::db::migrate(&mut client, &dir.load())
            .await
            .unwrap(),
        dataset_migrations("online_retail").len()
    );
    let mut both = names(ECOMMERCE_TABLES);
    both.extend(names(ONLINE_RETAIL_TABLES));
    both.sort();
    assert_eq!(dataset_tables(&env).await, both);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_migration_changed_after_it_was_applied_is_refused() {
    let env = TestEnv::new().await;
    let platform = sql_files(&repo().join("sql/migrations")).len();
    let dir = DatasetsDir::new(&env, &[]);
    let kiosk = dir.0.join("kiosk");
    std::fs::create_dir_all(&kiosk).unwrap();
    std::fs::write(
        kiosk.join("dataset.toml"),
        "name = \"kiosk\"\n[[sources]]\nname = \"kiosk_sales\"\ncolumns = [{ name = \"id\", type = \"int\" }]\n",
    )
    .unwrap();
    let mut client = runtime::db::connect(&env.database_url).await.unwrap();
    // No migrations folder: no migrations.
    assert_eq!(
        runtime::db::migrate(&mut client, &dir.load())
            .await
            .unwrap(),
        platform
    );

    let first = "CREATE TABLE warehouse.kiosk_sales (id integer PRIMARY KEY);\n";
    let second = "ALTER TABLE warehouse.kiosk_sales ADD COLUMN amount numeric(8,2);\n";
    std::fs::create_dir_all(kiosk.join("migrations")).unwrap();
    std::fs::write(kiosk.join("migrations/0002_amount.sql"), second).unwrap();
    std::fs::write(kiosk.join("migrations/0001_sales.sql"), first).unwrap();
    std::fs::write(kiosk.join("migrations/notes.txt"), "not a migration").unwrap();
    assert_eq!(
        runtime::db::migrate(&mut client, &dir.load())
            .await
            .unwrap(),
        2,
        "applied in file-name order: the table, then its column"
    );
    assert_eq!(
        env.query_text(
            "SELECT name, checksum FROM ops.schema_migrations WHERE name LIKE 'kiosk/%' ORDER BY 1"
        )
        .await,
        [
            vec!["kiosk/0001_sales".to_owned(), fnv1a(first)],
            vec!["kiosk/0002_amount".to_owned(), fnv1a(second)],
        ]
    );

    std::fs::write(
        kiosk.join("migrations/0001_sales.sql"),
        "CREATE TABLE warehouse.kiosk_sales (id bigint PRIMARY KEY);\n",
    )
    .unwrap();
    let error = runtime::db::migrate(&mut client, &dir.load())
        .await
        .expect_err("a changed migration is refused");
    assert!(
        format!("{error:#}")
            .contains("migration kiosk/0001_sales was changed after it was applied"),
        "{error:#}"
    );

    // A rewritten platform migration is accepted with its old file's checksum only.
    std::fs::write(kiosk.join("migrations/0001_sales.sql"), first).unwrap();
    client
        .batch_execute(
            "UPDATE ops.schema_migrations SET checksum = '0123456789abcdef'
              WHERE name = '0003_warehouse_and_reports'",
        )
        .await
        .unwrap();
    let error = runtime::db::migrate(&mut client, &dir.load())
        .await
        .expect_err("an unknown checksum is refused");
    assert!(
        format!("{error:#}")
            .contains("migration 0003_warehouse_and_reports was changed after it was applied"),
        "{error:#}"
    );
    env.cleanup().await;
}
